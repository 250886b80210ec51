"""Search API v1 routes of the local portal (ods-api.md section 2).

===============================================================  ================================
path                                                             answer
===============================================================  ================================
``/api/datasets/1.0/search/``                                    ``{"nhits", "parameters",
                                                                 "datasets", "facet_groups"?}``
``/api/datasets/1.0/{dataset_id}/``                              one v1 dataset object
``/api/datasets/1.0/{dataset_id}/records/{record_id}/``          one v1 record
``/api/datasets/1.0/{dataset_id}/attachments/{attachment_id}/``  the attachment's bytes
``/api/datasets/1.0/{dataset_id}/files/{file_id}/`` (+ ``300/``)  a file field's bytes
``/api/records/1.0/search/``                                     ``{"nhits", "parameters",
                                                                 "records", "facet_groups"?}``
``/api/records/1.0/analyze/``                                    ``[{"x": ..., "<serie>": n}]``
``/api/records/1.0/download/``                                   csv (default), json, geojson
``/api/records/1.0/geocluster/``                                 ``{"clusters", "count",
                                                                 "series"?, "clusterprecision"}``
===============================================================  ================================

Filters (every records endpoint): ``dataset`` (required; ``datasetid`` is accepted too),
``q`` in the v1 query language (translated to ODSQL by :mod:`odsframe.testing.legacy`: words,
phrases, ``AND``/``OR``/``NOT``, ``field:value``, ``field>value``, ``field:[a TO b]``, dates as
``YYYY[/MM[/DD]]``, ``#null``, ``#exact``, ``#startswith``, ``#search``), ``refine.<facet>``,
``exclude.<facet>``, ``disjunctive.<facet>=true``, ``geofilter.distance=lat,lon,metres``,
``geofilter.polygon=(lat,lon),(lat,lon),...``, ``geofilter.bbox=lat,lon,lat,lon`` (two opposite
corners), ``timezone``, ``lang``. The geofilters apply to the dataset's first geo_point_2d
field, else its first geo_shape field.

Records search: ``rows`` (default 10, ``0 <= rows``, ``start + rows <= 10000``), ``start``,
``sort`` (repeatable or comma-separated; **descending by default**, ``-field`` ascending; int,
double, date, datetime and boolean fields, text fields with the ``sortable`` annotation, and
``record_timestamp``), ``fields`` (comma-separated), ``facet`` (repeatable),
``facetsort.<facet>``, ``format=json``, ``pretty_print``. Records follow the real captures
(ods-api.md 2.5, fixtures README 2.1): ``{"datasetid", "recordid", "fields", "geometry"?,
"record_timestamp"}``; ``fields`` leave out null values; geo_point_2d values are ``[lat, lon]``
and geo_shape values bare GeoJSON geometries; ``geometry`` is the first geo_shape (else
geo_point_2d) value as a GeoJSON geometry, absent when null; ``record_timestamp`` is written in
the request timezone (``Z`` for UTC, milliseconds when non-zero). ``facet_groups`` lists the
requested facets and every refined or excluded one, items ``{"name", "count", "state",
"path"}`` (``facets.py`` computes them), and is left out when empty. ``parameters`` echoes the
request: ``dataset`` as a string, ``sort`` and ``facet`` as lists, ``refine``/``exclude`` as
``{facet: value}`` (a list when a facet is refined several times), ``disjunctive`` as
``{facet: true}``, ``rows`` and ``start`` as ints, ``format`` and ``timezone`` always.

Analyze: ``x`` (required, a field), ``y.<serie>.func`` (COUNT, AVG, SUM, MIN, MAX, STDDEV,
SUMSQUARES), ``y.<serie>.expr`` (a field or arithmetic over fields; required except for
COUNT), ``y.<serie>.cumulative``, ``periodic`` and ``precision`` for date and datetime ``x``,
``sort`` (``x`` or a serie, descending by default, ``-`` ascending; without it, ascending
``x``), ``maxpoints``. A date ``x`` is an object of components: ``year`` down to ``precision``
(default ``day``); with ``periodic`` (``month``, ``week``, ``weekday``, ``day``, ``hour``,
``minute``; ``year`` means none) the components from ``periodic`` down to ``precision``;
``weekday`` is 0 (Monday) to 6 and takes no other component. Null ``x`` values form no group.
STDDEV is the population standard deviation.

Download: the filters, ``fields``, ``sort``, ``rows`` (-1 or absent: everything, no cap),
``format`` (``csv`` default, ``json``, ``geojson``), ``csv_separator`` (``;``),
``use_labels_for_header``: the legacy export flavour of ``exports.py`` (no BOM, ``lat,lon``
points, v1 JSON records), streamed.

Geocluster: the filters, ``clusterprecision`` (required, the zoom, 0 to 25),
``clusterdistance`` (radius in pixels, default 50 as the widgets send), ``shapeprecision``
(``clusterprecision + shapeprecision <= 29``; when given, hulls are simplified to the ground
resolution of that zoom), ``clustermode`` (``polygon`` or ``heatmap``: same answer),
``y.<serie>.func``/``expr``. Points of the first geo_point_2d field are clustered with
``geocluster.cluster_points``; each cluster gives ``cluster_center`` ``[lat, lon]`` (the mean
of its points), ``count``, ``cluster`` (a Point for one point, else the convex hull of the
points: a Polygon, or a Point/LineString when they are all equal/aligned) and ``series``.

Dataset search: ``q`` over the catalog metadata (``title:paris``, ``records_count >= 50``,
words), ``refine.<facet>``/``exclude.<facet>`` (``publisher``, ``license``, ``language``,
``theme``, ``keyword``, ``modified``, ``features``; ``datasetid`` stands for ``dataset_id``),
``facet``, ``sort`` (``modified``, ``records_count``, ``title``, ``data_processed`` ...;
descending by default), ``rows``, ``start``, ``interopmetas=true`` (adds ``interop_metas``).
The v1 dataset object has flat ``metas`` (``domain``, ``staged``, ``visibility``, then the
non-null default metadata, then the other templates' keys) and annotations as a list of
``{"name", "args"?}``.

Errors: ``{"errorcode": <int>, "error": "<text>"}``; the code is the HTTP status (400 bad
parameter or query, 401 restricted dataset, 404 unknown dataset or record), which ODS does
not document; 429 keeps its v1 quota body. Only GET is served (real v1 also takes POST).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from starlette.datastructures import QueryParams
from starlette.responses import Response

from odsframe import _spec
from odsframe.testing import odsql
from odsframe.testing.errors import (
    InvalidRESTParameterError,
    NotFoundError,
    ODSQLError,
    PortalError,
    QuotaError,
)
from odsframe.testing.exports import geometry_column, plan_export, v1_value
from odsframe.testing.facets import (
    FacetFilters,
    compute_facets,
    resolve_facets,
    with_facet_overrides,
)
from odsframe.testing.geocluster import (
    GeoClusterInputError,
    cluster_points,
    cluster_summary,
    ground_resolution,
)
from odsframe.testing.legacy import LegacyFilters, legacy_filters
from odsframe.testing.model import HIDDEN_ID, CompiledQuery, OutputColumn, PortalDataset
from odsframe.testing.routes_exports import (
    download_request,
    get_attachment,
    get_file,
    get_file_thumbnail,
    stream_cursor,
    stream_export,
)
from odsframe.testing.routes_v20 import zulu_timestamp
from odsframe.testing.serialize import RecordWriter
from odsframe.testing.server import (
    JSON_MEDIA_TYPE,
    ApiRequest,
    ApiRoute,
    bool_param,
    compile_request,
    dataset_object,
    fetch_arrow,
    fetch_count,
    fetch_page,
    int_param,
    json_response,
    lang_param,
    one_row_dataset,
    text_param,
    timezone_param,
    with_technical_fields,
)

RECORDS = _spec.SEARCH_V1_RECORDS
DATASETS = _spec.SEARCH_V1_DATASETS
#: ``rows`` default and the ``start + rows`` window of records search (ods-api.md 2.5).
DEFAULT_ROWS = 10
MAX_WINDOW = 10_000
#: Analyze functions and the clusterprecision + shapeprecision cap (ods-api.md 2.7, 2.9).
ANALYZE_FUNCTIONS = ("COUNT", "AVG", "SUM", "MIN", "MAX", "STDDEV", "SUMSQUARES")
MAX_CLUSTER_AND_SHAPE_PRECISION = 29
DEFAULT_CLUSTER_DISTANCE = 50
#: Date components of analyze's ``x``, coarsest first; ``periodic``/``precision`` values.
DATE_COMPONENTS = ("year", "month", "week", "day", "hour", "minute")
PERIODIC_VALUES = ("year", "month", "week", "weekday", "day", "hour", "minute")
#: v1 names of the v2 clauses, for error messages.
_V1_CLAUSES = {
    "where": "q",
    "select": "fields",
    "order_by": "sort",
    "group_by": "x",
    "refine": "refine",
    "exclude": "exclude",
    "facet": "facet",
}
_SORTABLE_TYPES = frozenset({"int", "double", "date", "datetime", "boolean"})
_RECORD_TIMESTAMP = "record_timestamp"
_APP_METAS = frozenset({"visualization", "explore", "processing", "publishing", "exporters"})


# -- errors ---------------------------------------------------------------------------------


def v1_error_response(error: PortalError) -> Response:
    """The v1 error answer ``{"errorcode", "error"}`` (429 keeps its quota body)."""
    if isinstance(error, QuotaError):
        return json_response(error.body(), status=error.status)
    message = error.message
    if isinstance(error, ODSQLError):
        clauses = ", ".join(
            _V1_CLAUSES.get(name.strip(), name.strip()) for name in error.clause.split(",")
        )
        message = f"Invalid query: {error.detail} (parameter: {clauses})."
    return json_response({"errorcode": error.status, "error": message}, status=error.status)


def _bad(parameter: str, detail: str) -> InvalidRESTParameterError:
    return InvalidRESTParameterError(f"Invalid value for {parameter} API parameter: {detail}")


# -- parameters -----------------------------------------------------------------------------


def pretty_answer(api: ApiRequest, payload: Any) -> Any:
    """``payload``, indented when ``pretty_print=true``."""
    if bool_param(api.query, "pretty_print"):
        text = json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False, default=str)
        return Response(text.encode("utf-8"), media_type=JSON_MEDIA_TYPE)
    return payload


def request_dataset(api: ApiRequest) -> PortalDataset:
    """The dataset of the ``dataset`` parameter (one dataset per request)."""
    values = [value.strip() for value in api.query.getlist("dataset") if value.strip()]
    values += [value.strip() for value in api.query.getlist("datasetid") if value.strip()]
    if not values:
        raise InvalidRESTParameterError(
            "Missing dataset API parameter: give the dataset id, e.g. dataset=my-dataset."
        )
    if len(set(values)) > 1:
        raise _bad(
            "dataset",
            f"{sorted(set(values))} names several datasets; the local portal "
            "searches one dataset per request.",
        )
    return api.dataset(values[0])


def _window(api: ApiRequest) -> tuple[int, int]:
    rows = int_param(api.query, "rows", DEFAULT_ROWS)
    start = int_param(api.query, "start", 0)
    if rows < 0:
        raise _bad("rows", f"{rows} was found but rows >= 0 is expected.")
    if start < 0:
        raise _bad("start", f"{start} was found but start >= 0 is expected.")
    if start + rows > MAX_WINDOW:
        raise _bad(
            "rows",
            f"start + rows must be at most {MAX_WINDOW} (got start={start}, rows={rows}); use "
            "the download API for more records.",
        )
    return rows, start


def geo_field(dataset: PortalDataset, kinds: Sequence[str] = ("geo_point_2d", "geo_shape")) -> str:
    """The field geofilters and clustering apply to (``""`` when there is none)."""
    for kind in kinds:
        for portal_field in dataset.fields:
            if portal_field.type == kind:
                return portal_field.name
    return ""


def _bbox_condition(api: ApiRequest, dataset: PortalDataset) -> list[str]:
    """``geofilter.bbox=lat,lon,lat,lon`` as an ``in_bbox`` condition."""
    text = text_param(api.query, "geofilter.bbox")
    if text is None:
        return []
    try:
        numbers = [float(part) for part in text.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise _bad("geofilter.bbox", f"{text!r} was found but latSW,lonSW,latNE,lonNE is expected.")
    name = geo_field(dataset)
    if not name:
        raise _bad("geofilter.bbox", f"dataset '{dataset.dataset_id}' has no geo field.")
    lat1, lon1, lat2, lon2 = numbers
    return [f"in_bbox({odsql.quote_name(name)}, {lat1!r}, {lon1!r}, {lat2!r}, {lon2!r})"]


@dataclass
class V1Filters:
    """The filtering parameters of a v1 request, as v2.1 ones over ``dataset``."""

    dataset: PortalDataset
    legacy: LegacyFilters
    timezone: str
    tz: tzinfo
    lang: str

    @property
    def where(self) -> list[str]:
        return self.legacy.where

    @property
    def clauses(self) -> list[str]:
        sent = (
            ("where", self.legacy.where),
            ("refine", self.legacy.refine),
            ("exclude", self.legacy.exclude),
        )
        return [name for name, value in sent if value]

    def compile(
        self,
        dataset: PortalDataset | None = None,
        *,
        select: str | None = None,
        group_by: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        extra_clauses: Sequence[str] = (),
    ) -> CompiledQuery:
        clauses = [*self.clauses, *extra_clauses]
        return compile_request(
            dataset or self.dataset,
            clauses,
            select=select,
            where=self.legacy.where,
            group_by=group_by,
            order_by=order_by,
            refine=self.legacy.refine,
            exclude=self.legacy.exclude,
            limit=limit,
            offset=offset,
            timezone=self.timezone,
            lang=self.lang,
        )

    def search(
        self,
        cursor: duckdb.DuckDBPyConnection,
        query: QueryParams,
        dataset: PortalDataset | None = None,
        *,
        select: str | None,
        order_by: str | None,
        rows: int,
        start: int,
    ) -> _SearchPage:
        """One page of a v1 search: the count, the rows (none for ``rows=0``), the facets."""
        compiled = self.compile(
            dataset,
            select=select,
            order_by=order_by,
            limit=rows,
            offset=start,
            extra_clauses=["order_by"] if order_by else (),
        )
        if rows:
            total, table = fetch_page(cursor, compiled, self.clauses)
        else:
            total, table = fetch_count(cursor, compiled, self.clauses), None
        nhits = total or 0
        return _SearchPage(compiled, nhits, table, facet_groups(query, cursor, self))


@dataclass(frozen=True)
class _SearchPage:
    """One page of a v1 search, before it is written in v1 terms."""

    compiled: CompiledQuery
    nhits: int
    table: pa.Table | None
    groups: list[dict[str, Any]]

    def answer(self, api: ApiRequest, parameters: dict[str, Any], key: str, items: Any) -> Any:
        """``{"nhits", "parameters", key: items}``, with ``facet_groups`` when there are."""
        payload: dict[str, Any] = {"nhits": self.nhits, "parameters": parameters, key: items}
        if self.groups:
            payload["facet_groups"] = self.groups
        return pretty_answer(api, payload)


def v1_filters(
    api: ApiRequest, dataset: PortalDataset, query: QueryParams | None = None
) -> V1Filters:
    """``q``, refine/exclude/disjunctive, geofilters, ``fields``, timezone and lang."""
    query = api.query if query is None else query
    timezone, tz = timezone_param(query)
    lang = lang_param(query)
    legacy = legacy_filters(query, dataset)
    legacy.where += _bbox_condition(api, dataset)
    dataset = with_facet_overrides(dataset, legacy.facets)
    return V1Filters(dataset, legacy, timezone, tz, lang)


def _sort_values(query: QueryParams) -> list[str]:
    """The ``sort`` values of a request, comma-separated lists split."""
    values: list[str] = []
    for value in query.getlist("sort"):
        values += [part.strip() for part in value.split(",") if part.strip()]
    return values


def order_by_from_sort(
    sorts: Sequence[str], dataset: PortalDataset, timestamp_field: str | None = None
) -> str | None:
    """v1 ``sort`` values (descending, ``-`` ascending) as an ODSQL ``order_by``."""
    items = []
    for value in sorts:
        name = value[1:] if value.startswith("-") else value
        direction = "ASC" if value.startswith("-") else "DESC"
        if name == _RECORD_TIMESTAMP and timestamp_field is not None:
            items.append(f"{odsql.quote_name(timestamp_field)} {direction}")
            continue
        portal_field = dataset.field(name)
        if portal_field is None:
            raise _bad("sort", f"unknown field {name!r}.")
        sortable = portal_field.type in _SORTABLE_TYPES or (
            portal_field.type == "text" and "sortable" in portal_field.annotations
        )
        if not sortable or portal_field.multivalued:
            raise _bad(
                "sort",
                f"field {name!r} ({portal_field.type}) cannot be sorted on: sort takes int, "
                "double, date, datetime and boolean fields, text fields with the 'sortable' "
                "annotation, and record_timestamp.",
            )
        items.append(f"{odsql.quote_name(name)} {direction}")
    return ", ".join(items) or None


def _refine_echo(query: QueryParams, prefix: str) -> dict[str, Any]:
    echo: dict[str, Any] = {}
    for key, value in query.multi_items():
        if key.startswith(prefix) and key[len(prefix) :]:
            name = key[len(prefix) :]
            if name in echo:
                previous = echo[name]
                echo[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                echo[name] = value
    return echo


def parameters_echo(
    api: ApiRequest, filters: V1Filters | None, extra: dict[str, Any]
) -> dict[str, Any]:
    """The ``parameters`` member of a v1 search answer."""
    query = api.query
    echo: dict[str, Any] = {}
    dataset = [value for value in query.getlist("dataset") if value.strip()]
    if dataset:
        echo["dataset"] = dataset[0] if len(dataset) == 1 else dataset
    q = [value for value in query.getlist("q") if value.strip()]
    if q:
        echo["q"] = q[0] if len(q) == 1 else q
    echo.update(extra)
    sorts = _sort_values(query)
    if sorts:
        echo["sort"] = sorts
    facets = [value for value in query.getlist("facet") if value.strip()]
    if facets:
        echo["facet"] = facets
    for name, prefix in (("refine", "refine."), ("exclude", "exclude.")):
        values = _refine_echo(query, prefix)
        if values:
            echo[name] = values
    disjunctive = {
        key[len("disjunctive.") :]: True
        for key, value in query.multi_items()
        if key.startswith("disjunctive.") and value.strip().lower() in ("true", "1")
    }
    if disjunctive:
        echo["disjunctive"] = disjunctive
    for name in ("geofilter.distance", "geofilter.polygon", "geofilter.bbox", "fields"):
        value = text_param(query, name)
        if value is not None:
            echo[name] = value
    echo["format"] = "json"
    echo["timezone"] = filters.timezone if filters is not None else timezone_param(query)[0]
    return echo


# -- facet groups ---------------------------------------------------------------------------


def _facet_items_v1(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        converted: dict[str, Any] = {"name": item["name"]}
        if "count" in item:
            converted["count"] = item["count"]
        converted["state"] = item["state"]
        converted["path"] = item["value"]
        if item.get("facets"):
            converted["facets"] = _facet_items_v1(item["facets"])
        out.append(converted)
    return out


def facet_groups(
    query: QueryParams, cursor: duckdb.DuckDBPyConnection, filters: V1Filters
) -> list[dict[str, Any]]:
    """``facet_groups``: the requested facets and the refined or excluded ones."""
    names: list[str] = []
    for value in query.getlist("facet"):
        if value.strip() and value.strip() not in names:
            names.append(value.strip())
    for prefix in ("refine.", "exclude."):
        for key, _ in query.multi_items():
            name = key[len(prefix) :]
            if key.startswith(prefix) and name and name not in names:
                names.append(name)
    if not names:
        return []
    target = filters.dataset
    texts = []
    for name in names:
        arguments = [f"name={odsql.quote_string(name)}"]
        sort = text_param(query, f"facetsort.{name}")
        if sort is not None:
            arguments.append(f"sort={odsql.quote_string(sort)}")
        texts.append(f"facet({', '.join(arguments)})")
    facets = resolve_facets(target, texts)
    groups = compute_facets(
        cursor,
        target,
        facets,
        FacetFilters(
            where=tuple(filters.where),
            refine=tuple(filters.legacy.refine),
            exclude=tuple(filters.legacy.exclude),
            timezone=filters.timezone,
            lang=filters.lang,
        ),
    )
    return [{"name": group["name"], "facets": _facet_items_v1(group["facets"])} for group in groups]


# -- v1 records -----------------------------------------------------------------------------


def _geometry(value: Any, column: OutputColumn) -> Any:
    """The record-level GeoJSON geometry of a v2.1 geo value (``None`` when absent)."""
    if value is None:
        return None
    if column.type == "geo_point_2d":
        return {"type": "Point", "coordinates": [value["lon"], value["lat"]]}
    return value.get("geometry") if value.get("type") == "Feature" else value


def v1_records(
    records: list[dict[str, Any]],
    columns: Sequence[OutputColumn],
    dataset_id: str,
    keys: tuple[str, str],
    tz: tzinfo,
) -> list[dict[str, Any]]:
    """v2.1 records (with the technical id and timestamp columns) as v1 record objects."""
    data_columns = [column for column in columns if column.key not in keys]
    geometry_source = geometry_column(data_columns)
    out = []
    for record in records:
        fields = {}
        for column in data_columns:
            value = v1_value(record.get(column.key), column)
            if value is not None:
                fields[column.key] = value
        item: dict[str, Any] = {
            "datasetid": dataset_id,
            "recordid": record.get(keys[0]),
            "fields": fields,
        }
        if geometry_source is not None:
            geometry = _geometry(record.get(geometry_source.key), geometry_source)
            if geometry is not None:
                item["geometry"] = geometry
        item["record_timestamp"] = zulu_timestamp(record.get(keys[1]), tz)
        out.append(item)
    return out


def _technical_keys(extended: PortalDataset) -> tuple[str, str]:
    return extended.fields[-2].name, extended.fields[-1].name


def records_search(api: ApiRequest) -> Any:
    """``GET /api/records/1.0/search/``."""
    dataset = request_dataset(api)
    fmt = (text_param(api.query, "format") or "json").lower()
    if fmt != "json":
        raise _bad(
            "format",
            f"{fmt!r} was found but json is expected (the local portal "
            "writes records search answers as json only).",
        )
    rows, start = _window(api)
    filters = v1_filters(api, dataset)
    sorts = _sort_values(api.query)
    with api.cursor() as cursor:
        extended, select = with_technical_fields(cursor, filters.dataset, filters.legacy.select)
        keys = _technical_keys(extended)
        order_by = order_by_from_sort(sorts, filters.dataset, keys[1])
        page = filters.search(
            cursor, api.query, extended, select=select, order_by=order_by, rows=rows, start=start
        )
    columns = page.compiled.columns
    context = api.serialize_context(filters.tz, dataset.dataset_id, datasets_path=DATASETS)
    raw = RecordWriter(columns, context).records(page.table) if page.table is not None else []
    return page.answer(
        api,
        parameters_echo(api, filters, {"rows": rows, "start": start}),
        "records",
        v1_records(raw, columns, dataset.dataset_id, keys, filters.tz),
    )


def record_lookup(api: ApiRequest) -> Any:
    """``GET /api/datasets/1.0/{dataset_id}/records/{record_id}/``: one v1 record."""
    dataset = api.dataset(str(api.path_params["dataset_id"]))
    record_id = str(api.path_params["record_id"])
    timezone, tz = timezone_param(api.query)
    lang = lang_param(api.query)
    with api.cursor() as cursor:
        one = one_row_dataset(cursor, dataset, HIDDEN_ID, record_id)
        extended, select = with_technical_fields(cursor, one, None)
        compiled = compile_request(
            extended, [], select=select, limit=1, timezone=timezone, lang=lang
        )
        table = fetch_arrow(cursor, compiled)
    raw = RecordWriter(
        compiled.columns, api.serialize_context(tz, dataset.dataset_id, datasets_path=DATASETS)
    ).records(table)
    if not raw:
        raise NotFoundError(
            f"Record '{record_id}' was not found in dataset '{dataset.dataset_id}'."
        )
    keys = _technical_keys(extended)
    return pretty_answer(api, v1_records(raw, compiled.columns, dataset.dataset_id, keys, tz)[0])


# -- download -------------------------------------------------------------------------------


def download(api: ApiRequest) -> Response:
    """``GET /api/records/1.0/download/``: csv (default), json or geojson, streamed."""
    dataset = request_dataset(api)
    request = download_request(api)
    fmt = request.fmt
    rows = int_param(api.query, "rows", -1)
    if rows < -1:
        raise _bad("rows", f"{rows} was found but rows >= -1 is expected (-1: every record).")
    filters = v1_filters(api, dataset)
    with stream_cursor(api) as cursor:
        target, select = filters.dataset, filters.legacy.select
        keys: tuple[str | None, str | None] = (None, None)
        timestamp_field = None
        if fmt == "json" or any(
            s.lstrip("-") == _RECORD_TIMESTAMP for s in _sort_values(api.query)
        ):
            target, select = with_technical_fields(cursor, target, select)
            keys = _technical_keys(target) if fmt == "json" else (None, None)
            timestamp_field = _technical_keys(target)[1]
        order_by = order_by_from_sort(_sort_values(api.query), filters.dataset, timestamp_field)
        compiled = filters.compile(
            target,
            select=select,
            order_by=order_by,
            limit=None if rows == -1 else rows,
        )
        if fmt != "json" and timestamp_field is not None:
            compiled = _without_columns(compiled, _technical_keys(target))
        options = request.options(api, dataset.dataset_id, filters.timezone, keys)
        prepared = plan_export(fmt, compiled.columns, options)
    return stream_export(
        api,
        cursor,
        compiled,
        prepared,
        clauses=filters.clauses,
        basename=dataset.dataset_id,
        compressed=False,
    )


def _without_columns(compiled: CompiledQuery, keys: Sequence[str]) -> CompiledQuery:
    """``compiled`` with the technical columns left out of what the export writes."""
    columns = [column for column in compiled.columns if column.key not in keys]
    names = ", ".join('"' + c.sql_name.replace('"', '""') + '"' for c in columns)
    return dataclasses.replace(
        compiled, sql=f'SELECT {names} FROM ({compiled.sql}) AS "__v1"', columns=columns
    )


# -- analyze --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Serie:
    """One ``y.<name>.*`` serie of analyze or geocluster."""

    name: str
    func: str
    expr: str | None
    cumulative: bool


def parse_series(api: ApiRequest) -> list[Serie]:
    """The ``y.<serie>.func``/``.expr``/``.cumulative`` parameters, in request order."""
    names: list[str] = []
    for key, _ in api.query.multi_items():
        if key.startswith("y.") and key.count(".") >= 2:
            name = key[2 : key.rindex(".")]
            if name and name not in names:
                names.append(name)
    series = []
    for name in names:
        func = (text_param(api.query, f"y.{name}.func") or "").upper()
        expr = text_param(api.query, f"y.{name}.expr")
        if func not in ANALYZE_FUNCTIONS:
            raise _bad(
                f"y.{name}.func",
                f"{func or 'nothing'!r} was found but one of "
                f"{', '.join(ANALYZE_FUNCTIONS)} is expected.",
            )
        if func != "COUNT" and expr is None:
            raise _bad(f"y.{name}.expr", f"{func} needs an expression (a numeric field).")
        cumulative = bool_param(api.query, f"y.{name}.cumulative")
        series.append(Serie(name, func, expr, cumulative))
    return series


def _serie_select(serie: Serie, index: int) -> list[str]:
    """Select items computing ``serie`` (STDDEV needs three: sum of squares, sum, count)."""
    expr = f"({serie.expr})" if serie.expr else None
    prefix = f"s{index}"
    if serie.func == "COUNT":
        return [f"count(*) AS {prefix}"]
    if serie.func in ("AVG", "SUM", "MIN", "MAX"):
        return [f"{serie.func.lower()}({expr}) AS {prefix}"]
    if serie.func == "SUMSQUARES":
        return [f"sum({expr} * {expr}) AS {prefix}"]
    return [
        f"sum({expr} * {expr}) AS {prefix}_sq",
        f"sum({expr}) AS {prefix}_sum",
        f"count({expr}) AS {prefix}_n",
    ]


def _serie_value(serie: Serie, index: int, row: dict[str, Any]) -> Any:
    prefix = f"s{index}"
    if serie.func != "STDDEV":
        return row.get(prefix)
    squares, total, count = (
        row.get(f"{prefix}_sq"),
        row.get(f"{prefix}_sum"),
        row.get(f"{prefix}_n"),
    )
    if not count or squares is None or total is None:
        return None
    mean = total / count
    return math.sqrt(max(0.0, squares / count - mean * mean))


def _date_components(api: ApiRequest, field_type: str) -> list[str]:
    precision = (text_param(api.query, "precision") or "day").lower()
    if precision not in DATE_COMPONENTS:
        raise _bad(
            "precision",
            f"{precision!r} was found but one of {', '.join(DATE_COMPONENTS)} is expected.",
        )
    if field_type == "date" and precision in ("hour", "minute"):
        raise _bad("precision", f"{precision!r} is finer than a date field holds.")
    periodic = (text_param(api.query, "periodic") or "year").lower()
    if periodic not in PERIODIC_VALUES:
        raise _bad(
            "periodic",
            f"{periodic!r} was found but one of {', '.join(PERIODIC_VALUES)} is expected.",
        )
    if periodic == "weekday":
        return ["weekday"]
    first = DATE_COMPONENTS.index(periodic)
    last = DATE_COMPONENTS.index(precision)
    if last < first:
        raise _bad("precision", f"{precision!r} is coarser than periodic={periodic!r}.")
    if precision == "week":  # weeks do not nest in months: a week goes with its (week) year
        return ["year", "week"] if periodic == "year" else ["week"]
    return [c for c in DATE_COMPONENTS[first : last + 1] if c != "week"]


_COMPONENT_SQL = {
    "year": "year({})",
    "month": "month({})",
    "day": "day({})",
    "hour": "hour({})",
    "minute": "minute({})",
    "weekday": "dayofweek({})",
}


def _component_expr(component: str, name: str, periodic_week: bool) -> str:
    if component == "week":
        return f'date_format({name}, "w")'
    if component == "year" and periodic_week:
        return f'date_format({name}, "xxxx")'
    return _COMPONENT_SQL[component].format(name)


def analyze(api: ApiRequest) -> Any:
    """``GET /api/records/1.0/analyze/``: a list of ``{"x": ..., "<serie>": n}``."""
    dataset = request_dataset(api)
    x = text_param(api.query, "x")
    if x is None:
        raise InvalidRESTParameterError(
            "Missing x API parameter: give the field to group on, e.g. x=category."
        )
    x_field = dataset.field(x.strip())
    if x_field is None:
        raise _bad("x", f"unknown field {x!r}.")
    if x_field.type in ("geo_point_2d", "geo_shape", "file", "json_blob"):
        raise _bad("x", f"cannot group on the {x_field.type} field {x!r}.")
    series = parse_series(api)
    maxpoints = int_param(api.query, "maxpoints", -1)
    if maxpoints < -1:
        raise _bad("maxpoints", f"{maxpoints} was found but maxpoints >= 0 is expected.")
    filters = v1_filters(api, dataset)
    name = odsql.quote_name(x_field.name)
    temporal = x_field.type in ("date", "datetime")
    components = _date_components(api, x_field.type) if temporal else []
    periodic_week = "week" in components
    if components:
        group_items = [f"{_component_expr(c, name, periodic_week)} AS x_{c}" for c in components]
    else:
        group_items = [f"{name} AS x_value"]
    keys = [item.rsplit(" AS ", 1)[1] for item in group_items]
    select = [*keys]
    for index, serie in enumerate(series):
        select += _serie_select(serie, index)
    with api.cursor() as cursor:
        compiled = filters.compile(
            select=", ".join(select),
            group_by=", ".join(group_items),
            extra_clauses=["group_by", "select"],
        )
        table = fetch_arrow(cursor, compiled, filters.clauses)
    rows = RecordWriter(compiled.columns, api.serialize_context(filters.tz)).records(table)
    points = []
    for row in rows:
        if any(row.get(key) is None for key in keys):
            continue  # v1 has no null group
        if components:
            x_value: Any = {}
            for component in components:
                value = row[f"x_{component}"]
                value = int(value)
                x_value[component] = value - 1 if component == "weekday" else value
        else:
            x_value = row["x_value"]
        point: dict[str, Any] = {"x": x_value}
        for index, serie in enumerate(series):
            point[serie.name] = _serie_value(serie, index, row)
        points.append(point)
    points = _sorted_points(api, points, series, components)
    for serie in series:
        if serie.cumulative:
            running = 0.0
            for point in points:
                running += point[serie.name] or 0
                point[serie.name] = running
    if maxpoints >= 0:
        points = points[:maxpoints]
    return pretty_answer(api, points)


def _sorted_points(
    api: ApiRequest, points: list[dict[str, Any]], series: Sequence[Serie], components: list[str]
) -> list[dict[str, Any]]:
    def x_key(point: dict[str, Any]) -> Any:
        x = point["x"]
        if components:
            return tuple(x[c] for c in components)
        return (isinstance(x, str), x)

    ordered = sorted(points, key=x_key)
    sort = text_param(api.query, "sort")
    if sort is None:
        return ordered
    sort = sort.strip()
    name = sort[1:] if sort.startswith("-") else sort
    descending = not sort.startswith("-")
    if name == "x":
        return sorted(ordered, key=x_key, reverse=descending)
    if name not in {serie.name for serie in series}:
        raise _bad("sort", f"{sort!r} was found but x or a serie name is expected.")
    present = [p for p in ordered if p[name] is not None]
    missing = [p for p in ordered if p[name] is None]
    return sorted(present, key=lambda p: p[name], reverse=descending) + missing


# -- geocluster -----------------------------------------------------------------------------


def _struct_arrays(column: Any) -> tuple[np.ndarray, np.ndarray]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lon = pc.struct_field(array, "lon").to_numpy(zero_copy_only=False)
    lat = pc.struct_field(array, "lat").to_numpy(zero_copy_only=False)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


def sql_names_of(compiled: CompiledQuery) -> list[str]:
    """The SQL names of a compiled query's output columns, in output order."""
    return [column.sql_name for column in compiled.columns]


def _serie_reduce(serie: Serie, values: np.ndarray) -> Any:
    if serie.func == "COUNT":
        return int(values.size)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    if serie.func == "AVG":
        return float(finite.mean())
    if serie.func == "SUM":
        return float(finite.sum())
    if serie.func == "MIN":
        return float(finite.min())
    if serie.func == "MAX":
        return float(finite.max())
    if serie.func == "SUMSQUARES":
        return float((finite * finite).sum())
    return float(finite.std())


def geocluster(api: ApiRequest) -> Any:
    """``GET /api/records/1.0/geocluster/``."""
    dataset = request_dataset(api)
    if text_param(api.query, "clusterprecision") is None:
        raise InvalidRESTParameterError(
            "Missing clusterprecision API parameter: give the map zoom level (0 to 25)."
        )
    zoom = int_param(api.query, "clusterprecision", 0)
    if not 0 <= zoom <= _spec.GEO_CLUSTER_MAX_ZOOM:
        raise _bad(
            "clusterprecision",
            f"{zoom} was found but 0 <= clusterprecision <= "
            f"{_spec.GEO_CLUSTER_MAX_ZOOM} is expected.",
        )
    distance = int_param(api.query, "clusterdistance", DEFAULT_CLUSTER_DISTANCE)
    if distance <= 0:
        raise _bad("clusterdistance", f"{distance} was found but a radius > 0 pixels is expected.")
    shape_text = text_param(api.query, "shapeprecision")
    shape_precision = int_param(api.query, "shapeprecision", 0)
    if shape_precision < 0 or zoom + shape_precision > MAX_CLUSTER_AND_SHAPE_PRECISION:
        raise _bad(
            "shapeprecision",
            f"{shape_precision} was found but shapeprecision >= 0 and "
            f"clusterprecision + shapeprecision <= {MAX_CLUSTER_AND_SHAPE_PRECISION} is "
            "expected.",
        )
    mode = (text_param(api.query, "clustermode") or "polygon").lower()
    if mode not in ("polygon", "heatmap"):
        raise _bad("clustermode", f"{mode!r} was found but polygon or heatmap is expected.")
    name = geo_field(dataset, ("geo_point_2d",))
    if not name:
        raise _bad(
            "dataset", f"dataset '{dataset.dataset_id}' has no geo_point_2d field to cluster."
        )
    series = parse_series(api)
    filters = v1_filters(api, dataset)
    select = [odsql.quote_name(name)]
    select += [f"({serie.expr}) AS s{index}" for index, serie in enumerate(series) if serie.expr]
    with api.cursor() as cursor:
        compiled = filters.compile(
            select=", ".join(select), extra_clauses=["select"] if series else ()
        )
        table = fetch_arrow(cursor, compiled, filters.clauses)
    lat, lon = _struct_arrays(table.column(sql_names_of(compiled)[0]))
    present = np.isfinite(lat) & np.isfinite(lon)
    lat, lon = lat[present], lon[present]
    try:
        labels = cluster_points(lat, lon, zoom, distance)
    except GeoClusterInputError as exc:
        raise _bad("clusterprecision", str(exc)) from exc
    summary = cluster_summary(lat, lon, labels) if labels.size else None
    sql_names = {column.key: column.sql_name for column in compiled.columns}
    serie_values: dict[str, np.ndarray] = {}
    for index, serie in enumerate(series):
        if serie.expr:
            values = table.column(sql_names[f"s{index}"]).to_numpy(zero_copy_only=False)
            serie_values[serie.name] = np.asarray(values, dtype=np.float64)[present]
    tolerance = None
    if shape_text is not None:
        tolerance = ground_resolution(min(zoom + shape_precision, _spec.GEO_CLUSTER_MAX_ZOOM))
        tolerance /= 111_320.0  # metres to degrees (at the equator)
    clusters = []
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange((summary.count.size if summary else 0) + 1))
    for label in range(summary.count.size if summary else 0):
        members = order[bounds[label] : bounds[label + 1]]
        assert summary is not None
        count = int(summary.count[label])
        if count == 1:
            geometry: Any = shapely.Point(lon[members[0]], lat[members[0]])
        else:
            geometry = shapely.convex_hull(
                shapely.multipoints(np.column_stack([lon[members], lat[members]]))
            )
            if tolerance is not None:
                geometry = shapely.simplify(geometry, tolerance, preserve_topology=True)
        cluster: dict[str, Any] = {
            "cluster_center": [float(summary.lat[label]), float(summary.lon[label])],
            "count": count,
            "cluster": json.loads(shapely.to_geojson(geometry)),
        }
        if series:
            cluster["series"] = {
                serie.name: _serie_reduce(
                    serie, serie_values[serie.name][members] if serie.expr else np.zeros(count)
                )
                for serie in series
            }
        clusters.append(cluster)
    counts = [cluster["count"] for cluster in clusters]
    payload: dict[str, Any] = {
        "clusters": clusters,
        "count": {"min": min(counts), "max": max(counts)} if counts else {"min": 0, "max": 0},
    }
    if series:
        payload["series"] = {}
        for serie in series:
            values = [
                c["series"][serie.name] for c in clusters if c["series"][serie.name] is not None
            ]
            payload["series"][serie.name] = (
                {"min": min(values), "max": max(values)} if values else {"min": None, "max": None}
            )
    payload["clusterprecision"] = zoom
    return pretty_answer(api, payload)


# -- datasets -------------------------------------------------------------------------------


def field_v1(item: dict[str, Any]) -> dict[str, Any]:
    """A v2.1 ``fields[]`` item in the v1 form (annotations as a list of ``{name, args}``)."""
    out: dict[str, Any] = {
        "name": item["name"],
        "label": item.get("label") or item["name"],
        "type": item["type"],
    }
    if item.get("description") is not None:
        out["description"] = item["description"]
    annotations = []
    for name, args in (item.get("annotations") or {}).items():
        annotation: dict[str, Any] = {"name": name}
        if args:
            annotation["args"] = list(args) if isinstance(args, list) else [args]
        annotations.append(annotation)
    if annotations:
        out["annotations"] = annotations
    return out


def dataset_v1(api: ApiRequest, dataset: PortalDataset) -> dict[str, Any]:
    """The v1 dataset object (flat ``metas``, list annotations)."""
    body = dataset_object(dataset)
    host = urlsplit(api.base_url).hostname or "localhost"
    metas: dict[str, Any] = {"domain": host, "staged": False, "visibility": dataset.visibility}
    default = dataset.metas.get("default", {})
    metas.update({key: value for key, value in default.items() if value is not None})
    interop: dict[str, Any] = {}
    for template, values in dataset.metas.items():
        if template == "default" or template in _APP_METAS:
            continue
        interop[template] = dict(values)
        for key, value in values.items():
            if key not in metas and value is not None:
                metas[key] = value
    payload: dict[str, Any] = {
        "datasetid": dataset.dataset_id,
        "metas": metas,
        "has_records": body["has_records"],
        "data_visible": body["data_visible"],
        "features": body["features"],
        "attachments": body["attachments"],
        "alternative_exports": body["alternative_exports"],
        "fields": [field_v1(item) for item in body["fields"]],
    }
    if bool_param(api.query, "interopmetas"):
        payload["interop_metas"] = interop
    return payload


def dataset_lookup(api: ApiRequest) -> Any:
    """``GET /api/datasets/1.0/{dataset_id}/``: the v1 dataset object."""
    dataset = api.dataset(str(api.path_params["dataset_id"]))
    timezone_param(api.query)
    return pretty_answer(api, dataset_v1(api, dataset))


def _catalog_query(query: QueryParams) -> tuple[QueryParams, list[str]]:
    """The request with v1's ``datasetid`` turned into ``dataset_id``.

    ``refine.datasetid``/``exclude.datasetid`` become ``where`` conditions (returned apart):
    the dataset id is no facet of the catalog.
    """
    items = []
    conditions = []
    for key, value in query.multi_items():
        if key in ("refine.datasetid", "refine.dataset_id"):
            conditions.append(f"dataset_id = {odsql.quote_string(value)}")
            continue
        if key in ("exclude.datasetid", "exclude.dataset_id"):
            conditions.append(f"NOT dataset_id = {odsql.quote_string(value)}")
            continue
        if key == "sort":
            value = ",".join(
                ("-" if part.strip().startswith("-") else "") + "dataset_id"
                if part.strip().lstrip("-") == "datasetid"
                else part
                for part in value.split(",")
            )
        items.append((key, value))
    return QueryParams(items), conditions


def datasets_search(api: ApiRequest) -> Any:
    """``GET /api/datasets/1.0/search/``: ``{"nhits", "parameters", "datasets"}``."""
    fmt = (text_param(api.query, "format") or "json").lower()
    if fmt != "json":
        raise _bad("format", f"{fmt!r} was found but json is expected.")
    rows, start = _window(api)
    pseudo = api.catalog_pseudo_dataset()
    query, conditions = _catalog_query(api.query)
    filters = v1_filters(api, pseudo, query)
    filters.legacy.where += conditions
    order_by = order_by_from_sort(_sort_values(query), pseudo)
    with api.cursor() as cursor:
        page = filters.search(
            cursor, query, select="dataset_id", order_by=order_by, rows=rows, start=start
        )
    datasets = []
    for dataset_id in page.table.column(0).to_pylist() if page.table is not None else []:
        dataset = api.catalog.datasets.get(str(dataset_id))
        if dataset is not None:
            datasets.append(dataset_v1(api, dataset))
    echo = parameters_echo(api, filters, {"rows": rows, "start": start})
    echo["staged"] = False
    return page.answer(api, echo, "datasets", datasets)


# -- the routes table -----------------------------------------------------------------------


def v1_routes() -> list[ApiRoute]:
    """The Search API v1 routes: GET or POST (form-encoded), errors with the v1 body."""

    def route(path: str, handler: Any) -> ApiRoute:
        return ApiRoute(path, handler, error_response=v1_error_response, methods=("GET", "POST"))

    dataset = f"{DATASETS}/{{dataset_id}}"
    return [
        route(f"{DATASETS}/search", datasets_search),
        route(dataset, dataset_lookup),
        route(f"{dataset}/records/{{record_id}}", record_lookup),
        route(f"{dataset}/attachments/{{attachment_id}}", get_attachment),
        route(f"{dataset}/files/{{file_id}}", get_file),
        route(f"{dataset}/files/{{file_id}}/300", get_file_thumbnail),
        route(f"{RECORDS}/search", records_search),
        route(f"{RECORDS}/analyze", analyze),
        route(f"{RECORDS}/download", download),
        route(f"{RECORDS}/geocluster", geocluster),
    ]


__all__ = ["v1_error_response", "v1_routes"]
