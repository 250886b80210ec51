"""The Explore API v2.0 adapter (ods-api.md section 3): ``<portal>/api/v2/catalog/...``.

v2.0 takes the same ODSQL parameters as v2.1 and answers in other envelopes; this adapter
turns every answer into the v2.1 shape, so what follows the adapter is shared:

* records ``{"links", "record": {"id", "timestamp", "size", "fields"}}`` become their flat
  ``fields`` (``frames.records.records_from_v20``);
* grouped answers: epoch-millisecond keys of groups on a date or datetime field become the
  v2.1 ISO strings (in the query timezone), and the string results of ``year()``,
  ``month()``, ``day()``, ``hour()``, ``minute()``, ``second()``, ``millisecond()``,
  ``quarter()`` and ``dayofweek()`` become ints (ods-api.md 5.10);
* dataset metadata ``{"links", "dataset"}`` becomes the dataset object, annotations in the
  v2.1 dict form (``{"facet": true}`` -> ``{"facet": []}``);
* catalog pages ``{"total_count", "links", "datasets": [{"links", "dataset"}]}`` become
  ``{"total_count", "results": [dataset, ...]}``.

Spatial filters are sent with the v2.0 predicate names: ``bbox(f, lat, lon, lat, lon)``
(top-left then bottom-right corner), ``distance(f, geom'POINT(...)', <d>m)`` and
``geometry(f, geom'...', INTERSECTS)``. Export formats are v2.0's (``xls``, no ``parquet``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from odsframe._spec import EXPLORE_V20
from odsframe.api.base import CatalogRequest, item_alias, plain_name
from odsframe.api.v21 import ExploreV21
from odsframe.errors import ServerError
from odsframe.frames.records import records_from_v20
from odsframe.frames.schema import normalize_annotations
from odsframe.query.odsql import split_top_level
from odsframe.query.plan import PlannedRequest

__all__ = ["ExploreV20", "v20_where"]

#: Dataset export formats of v2.0 (the v2.0 spec's enum plus ical and ov2).
EXPORT_FORMATS_V20: frozenset[str] = frozenset(
    {"json", "geojson", "shp", "csv", "xls", "jsonl", "jsonld", "rdfxml", "turtle", "n3"}
    | {"ical", "ov2"}
)
_DATE_PARTS = frozenset(
    {"year", "month", "day", "hour", "minute", "second", "millisecond", "quarter", "dayofweek"}
)
_FIELD = r"(?:`(?:[^`\\]|\\.)*`|[A-Za-z0-9_]+)"
_NUMBER = r"-?[0-9.eE+-]+"
_IN_BBOX = re.compile(
    rf"in_bbox\((?P<field>{_FIELD}), (?P<lat1>{_NUMBER}), (?P<lon1>{_NUMBER}), "
    rf"(?P<lat2>{_NUMBER}), (?P<lon2>{_NUMBER})\)"
)
_WITHIN_DISTANCE = re.compile(rf"within_distance\((?P<args>{_FIELD}, geom'[^']*', \S+)\)")
_INTERSECTS = re.compile(rf"intersects\((?P<field>{_FIELD}), (?P<geometry>geom'[^']*')\)")
_CALL = re.compile(r"^(?P<name>[A-Za-z_]+)\s*\(", re.IGNORECASE)


def v20_where(condition: str) -> str:
    """One ``where`` condition with the v2.1 spatial predicates odsframe writes renamed to
    their v2.0 forms (any other text is returned unchanged)."""
    text = condition.strip()
    match = _IN_BBOX.fullmatch(text)
    if match:
        # in_bbox gives (south, west, north, east); v2.0 bbox() takes top-left, bottom-right.
        return (
            f"bbox({match['field']}, {match['lat2']}, {match['lon1']}, "
            f"{match['lat1']}, {match['lon2']})"
        )
    match = _WITHIN_DISTANCE.fullmatch(text)
    if match:
        return f"distance({match['args']})"
    match = _INTERSECTS.fullmatch(text)
    if match:
        return f"geometry({match['field']}, {match['geometry']}, INTERSECTS)"
    return condition


def _v20_params(params: Any) -> list[tuple[str, str]]:
    """Request parameters with the ``where`` conditions in their v2.0 form."""
    if params is None:
        return []
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return [(name, v20_where(value) if name == "where" else value) for name, value in pairs]


def _item_key(item: str) -> tuple[str, str]:
    """``(result key, expression)`` of a select or group_by item as ODS names results."""
    expression, alias = item_alias(item)
    return alias or plain_name(expression) or expression, expression


class ExploreV20(ExploreV21):
    """Explore API v2.0: ``<portal>/api/v2/catalog/...``, answers in the v2.1 shapes.

    ``stream_export`` takes a v2.0 format (json, geojson, csv, jsonl, xls, shp ...) and the
    format's own parameters as options (``delimiter=","``, ``with_bom=True`` ...).

    Examples
    --------
    >>> api = ExploreV20.open("data.example.org")  # doctest: +SKIP
    >>> api.records_page(Query("my-dataset"), 10, 0)  # doctest: +SKIP
    """

    version = "2.0"
    export_format_names = tuple(sorted(EXPORT_FORMATS_V20))
    export_format_label = "a v2.0 export format"

    def __init__(self, portal: str, http: Any) -> None:
        super().__init__(portal, http)
        self._field_types: dict[str, dict[str, tuple[str, str]]] = {}

    @property
    def catalog_url(self) -> str:
        return f"{self.base_url}{EXPLORE_V20}/catalog"

    def _wire_params(self, params: Any) -> list[tuple[str, str]]:
        """Request parameters with the ``where`` conditions in their v2.0 form."""
        return _v20_params(params)

    # -- metadata -------------------------------------------------------------------------

    def dataset_metadata(
        self, dataset: str, *, lang: str | None = None, timezone: str | None = None
    ) -> dict[str, Any]:
        """``GET /catalog/datasets/<id>``: the dataset object (v2.1 shape)."""
        body = super().dataset_metadata(dataset, lang=lang, timezone=timezone)
        metadata = _unwrap_dataset(body, dataset)
        self._field_types[dataset] = _field_types(metadata)
        return metadata

    def _types(self, dataset: str) -> dict[str, tuple[str, str]]:
        if dataset not in self._field_types:
            self.dataset_metadata(dataset)
        return self._field_types[dataset]

    # -- records --------------------------------------------------------------------------

    def _records(
        self, body: dict[str, Any], url: str, request: PlannedRequest
    ) -> list[dict[str, Any]]:
        """The v2.0 records of an answer as flat records, groups in their v2.1 form."""
        try:
            records = records_from_v20(body)
        except ServerError as err:
            raise ServerError(
                f"The answer for dataset {request.dataset!r} is not a v2.0 records answer: {err}",
                dataset=request.dataset,
                url=url,
            ) from err
        if request.kind == "grouped" or request.param("group_by"):
            records = self._v21_groups(request, records)
        return records

    def _v21_groups(
        self, request: PlannedRequest, groups: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """v2.0 group values in their v2.1 form (see the module docstring)."""
        tz: tzinfo = ZoneInfo(request.param("timezone") or "UTC")
        date_keys: dict[str, tuple[str, str]] = {}
        part_keys: set[str] = set()
        group_by = request.param("group_by") or ""
        select = request.param("select") or ""
        types = self._types(request.dataset) if group_by else {}
        for item in split_top_level(group_by):
            key, expression = _item_key(item)
            name = plain_name(expression)
            if name and types.get(name, ("", ""))[0] in ("date", "datetime"):
                date_keys[key] = types[name]
        for item in [*split_top_level(group_by), *split_top_level(select)]:
            key, expression = _item_key(item)
            call = _CALL.match(expression)
            if call and call["name"].lower() in _DATE_PARTS:
                part_keys.add(key)
        for group in groups:
            for key, (kind, precision) in date_keys.items():
                group[key] = _iso_from_epoch(group.get(key), kind, precision, tz)
            for key in part_keys:
                value = group.get(key)
                if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
                    group[key] = int(value)
        return groups

    # -- catalog --------------------------------------------------------------------------

    def _catalog_page(self, request: CatalogRequest) -> dict[str, Any]:
        """``GET /catalog/datasets`` as ``{"total_count", "results": [dataset, ...]}``."""
        body = super()._catalog_page(request)
        items = body.get("datasets")
        if not isinstance(items, list):
            raise ServerError(
                f"The catalog of {self.base_url} answered no 'datasets' list (v2.0).",
                url=f"{self.catalog_url}/datasets",
            )
        results = [_unwrap_dataset(item, None) for item in items]
        return {"total_count": body.get("total_count"), "results": results}


def _unwrap_dataset(body: Any, dataset: str | None) -> dict[str, Any]:
    """``{"links", "dataset": {...}}`` -> the dataset object, annotations in v2.1 form."""
    inner = body.get("dataset") if isinstance(body, Mapping) else None
    if not isinstance(inner, Mapping):
        raise ServerError(
            f"The metadata of dataset {dataset!r} has no 'dataset' object (v2.0).",
            dataset=dataset,
        )
    metadata = dict(inner)
    fields = metadata.get("fields")
    if isinstance(fields, list):
        metadata["fields"] = [_field_v21(item) for item in fields]
    return metadata


def _field_v21(item: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    field = dict(item)
    field["annotations"] = normalize_annotations(field.get("annotations"))
    return field


def _field_types(metadata: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``name -> (type, date precision)`` of the dataset's fields."""
    types: dict[str, tuple[str, str]] = {}
    fields = metadata.get("fields")
    for item in fields if isinstance(fields, Iterable) else ():
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            annotations = item.get("annotations") or {}
            precision = "day"
            if isinstance(annotations, Mapping):
                args = annotations.get("timeserie_precision") or []
                if args and str(args[0]) in ("year", "month"):
                    precision = str(args[0])
            types[item["name"]] = (str(item.get("type")), precision)
    return types


def _iso_from_epoch(value: Any, kind: str, precision: str, tz: tzinfo) -> Any:
    """An epoch-millisecond group key as the v2.1 ISO value of a date or datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    moment = datetime.fromtimestamp(value / 1000, UTC).astimezone(tz)
    if kind == "datetime":
        return moment.isoformat()
    if precision == "year":
        return f"{moment.year:04d}"
    if precision == "month":
        return f"{moment.year:04d}-{moment.month:02d}"
    return moment.date().isoformat()
