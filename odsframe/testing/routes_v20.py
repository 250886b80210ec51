"""Explore API v2.0 routes of the local portal (ods-api.md section 3).

Served under ``/api/v2`` and ``/api/explore/v2.0`` (the same tree), over the same datasets and
record ids as v2.1; queries go through the same engine. What differs from v2.1 is the shape of
the answers and a few ODSQL results (ods-api.md sections 3.4, 3.5 and 5.10):

==========================================================  ===================================
path (under the base)                                       answer
==========================================================  ===================================
``/``                                                       ``{"links": [self, catalog]}``
``/catalog``                                                ``{"links": [...]}``
``/catalog/datasets``                                       ``{"total_count", "links",
                                                            "datasets": [{"links", "dataset"}]}``
``/catalog/datasets/{id}``                                  ``{"links", "dataset": {...}}``
``/catalog/datasets/{id}/records``                          ``{"total_count", "links", "records":
                                                            [{"links", "record": {"id",
                                                            "timestamp", "size", "fields"}}]}``;
                                                            with ``group_by``: ``{"links": [],
                                                            "records": [<flat groups>]}``
``/catalog/datasets/{id}/records/{record_id}``              ``{"links", "record": {...}}``
``/catalog/facets``, ``/catalog/datasets/{id}/facets``      ``{"links", "facets": [...]}``
``/catalog/datasets/{id}/exports``                          ``{"links": [{rel: format, href}]}``
``/catalog/datasets/{id}/exports/{format}``                 csv, json, jsonl, geojson (streamed)
``/catalog/datasets/{id}/attachments``                      ``{"links", "attachments": [...]}``
``/catalog/datasets/{id}/attachments/{attachment_id}``      the attachment's bytes
``/catalog/datasets/{id}/files/{file_id}``                  a file field's bytes
==========================================================  ===================================

v2.0 results that differ from v2.1 (the rest is the v2.1 engine's):

* record fields hold every field, nulls included (``null``), in the v2.1 value encodings;
  ``record.timestamp`` is written in the request timezone with ``Z`` for UTC and
  milliseconds when non-zero (``2021-01-07T23:00:00Z``); ``record.size`` is the length in
  bytes of the record's fields as compact JSON;
* grouping directly on a date or datetime field gives epoch **milliseconds** as the key (the
  start of the day in the request timezone for dates);
* ``year()``, ``month()``, ``day()``, ``hour()``, ``minute()``, ``second()``,
  ``millisecond()``, ``quarter()`` and ``dayofweek()`` give **strings** (``"2021"``);
* null values form no group (such groups are left out);
* CSV exports have no BOM unless ``with_bom=true``; the export formats are the v2.0 ones this
  portal writes (csv, json, jsonl, geojson: no parquet or xlsx).

``pretty=true`` indents the JSON; ``include_app_metas`` adds the application metadata
templates (and is echoed in page links, as ODS does: ``include_app_metas=False``).

Page links (``self``, ``first``, ``last``, ``next``) repeat the request's parameters with
``limit``, ``offset``, ``timezone`` and ``include_app_metas`` normalised; ``last`` points at
``total_count - limit`` as the real v2.0 does (not page-aligned, not capped at 10 000).

Errors are the v2 bodies ``{"error_code", "message"}`` (the server's default).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from urllib.parse import quote

import duckdb
from starlette.responses import Response

from odsframe import _spec
from odsframe.testing import odsql
from odsframe.testing.engine import _item_key  # result keys as the engine names them
from odsframe.testing.errors import InvalidRESTParameterError, NotFoundError
from odsframe.testing.exports import dataset_formats, plan_export
from odsframe.testing.model import HIDDEN_ID, CompiledQuery, OutputColumn, PortalDataset
from odsframe.testing.routes_exports import (
    catalog_facets,
    dataset_facets,
    export_options,
    export_window,
    get_attachment,
    get_file,
    open_cursor,
    stream_export,
)
from odsframe.testing.serialize import RecordWriter, dumps
from odsframe.testing.server import (
    JSON_MEDIA_TYPE,
    ApiRequest,
    ApiRoute,
    ODSQLParams,
    bool_param,
    catalog_results,
    dataset_object,
    fetch_count,
    fetch_page,
    get_dataset,
    one_row_dataset,
    page_window,
    with_technical_fields,
)

#: The two base paths of the v2.0 tree.
V20_BASES: tuple[str, ...] = (_spec.EXPLORE_V20, "/api/explore/v2.0")
#: Date-part functions whose results are strings in v2.0 (ints in v2.1).
DATE_PART_FUNCTIONS = frozenset(
    {"year", "month", "day", "hour", "minute", "second", "millisecond", "quarter", "dayofweek"}
)
#: Export formats of v2.0 (the spec's list) that this portal writes.
V20_EXPORT_FORMATS: tuple[str, ...] = ("json", "geojson", "csv", "jsonl")
_V20_KNOWN_FORMATS = (
    "json",
    "geojson",
    "shp",
    "csv",
    "xls",
    "jsonl",
    "jsonld",
    "rdfxml",
    "turtle",
    "n3",
    "ical",
    "ov2",
)
#: Key order of the v2.0 ``dataset`` object (nasqueron captures).
_DATASET_KEYS = (
    "dataset_id",
    "dataset_uid",
    "has_records",
    "features",
    "visibility",
    "attachments",
    "data_visible",
    "fields",
    "metas",
)

# -- answers --------------------------------------------------------------------------------


def answer(api: ApiRequest, payload: Any) -> Any:
    """``payload`` as JSON, indented when the request says ``pretty=true``."""
    if bool_param(api.query, "pretty"):
        text = json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False, default=str)
        return Response(text.encode("utf-8"), media_type=JSON_MEDIA_TYPE)
    return payload


def zulu_timestamp(value: Any, tz: tzinfo = UTC) -> Any:
    """An ISO instant (text or datetime) in ``tz`` as ODS writes record timestamps.

    Milliseconds only when non-zero (trailing zeros dropped), ``Z`` for a zero offset:
    ``2024-04-01T21:45:05.786Z``, ``2020-06-24T13:24:06.539+02:00``.
    """
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(tz)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        text += f".{millis:03d}".rstrip("0")
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    return text + moment.isoformat()[-6:]


def _base_of(api: ApiRequest) -> str:
    path = api.request.url.path
    for base in V20_BASES:
        if path == base or path.startswith(base + "/"):
            return base
    return V20_BASES[0]


def _dataset_path(base: str, dataset_id: str) -> str:
    return f"{base}/catalog/datasets/{quote(dataset_id, safe='@')}"


def _normalised_params(api: ApiRequest, limit: int, offset: int) -> list[tuple[str, str]]:
    """The request's parameters as page links repeat them (limit/offset/timezone first)."""
    kept = [
        (key, value)
        for key, value in api.query.multi_items()
        if key not in ("limit", "offset", "timezone", "include_app_metas", "apikey")
    ]
    timezone = api.query.get("timezone") or "UTC"
    app_metas = "True" if bool_param(api.query, "include_app_metas") else "False"
    return [
        ("limit", str(limit)),
        ("offset", str(offset)),
        *kept,
        ("timezone", timezone),
        ("include_app_metas", app_metas),
    ]


def page_links_v20(api: ApiRequest, limit: int, offset: int, total: int) -> list[dict[str, str]]:
    """``self``/``first``/``last``/``next`` links of a v2.0 page."""
    path = api.request.url.path.rstrip("/")

    def href(page_offset: int) -> str:
        return api.url(path, _normalised_params(api, limit, page_offset))

    links = [{"rel": "self", "href": href(offset)}, {"rel": "first", "href": href(0)}]
    if limit > 0:
        links.append({"rel": "last", "href": href(max(0, total - limit))})
        if offset + limit < total:
            links.append({"rel": "next", "href": href(offset + limit)})
    return links


def dataset_links_v20(api: ApiRequest, base: str, dataset: PortalDataset) -> list[dict[str, str]]:
    """Links of a v2.0 dataset: records, exports and facets when it has records."""
    path = _dataset_path(base, dataset.dataset_id)
    links = [
        {"rel": "self", "href": api.url(path)},
        {"rel": "datasets", "href": api.url(f"{base}/catalog/datasets")},
    ]
    if dataset.records_count > 0:
        for rel in ("records", "exports", "facets"):
            links.append({"rel": rel, "href": api.url(f"{path}/{rel}")})
    if dataset.attachments:
        links.append({"rel": "attachments", "href": api.url(f"{path}/attachments")})
    return links


def field_v20(item: Any) -> Any:
    """A v2.1 ``fields[]`` item as v2.0 writes it: flag annotations are ``true``, not ``[]``."""
    if not isinstance(item, dict):
        return item
    annotations = item.get("annotations")
    if isinstance(annotations, dict):
        annotations = {key: True if args == [] else args for key, args in annotations.items()}
    return {
        "name": item.get("name"),
        "description": item.get("description"),
        "annotations": annotations if annotations is not None else {},
        "label": item.get("label"),
        "type": item.get("type"),
    }


def dataset_v20(dataset_object_v21: dict[str, Any]) -> dict[str, Any]:
    """A v2.1 dataset object in the v2.0 key order (``_links`` and ``alternative_exports``
    are not part of the v2.0 object)."""
    ordered = {key: dataset_object_v21[key] for key in _DATASET_KEYS if key in dataset_object_v21}
    if isinstance(ordered.get("fields"), list):
        ordered["fields"] = [field_v20(item) for item in ordered["fields"]]
    for key, value in dataset_object_v21.items():
        if key not in ordered and key not in ("_links", "alternative_exports"):
            ordered[key] = value
    return ordered


# -- v2.0 values of grouped answers ---------------------------------------------------------


def _date_part_keys(params: ODSQLParams) -> set[str]:
    """Result keys of select and group_by items that are date-part function calls."""
    keys: set[str] = set()
    items: list[tuple[odsql.Node, str | None, str]] = []
    if params.select:
        for entry in odsql.parse_select(params.select):
            if isinstance(entry, odsql.SelectItem):
                items.append((entry.expr, entry.alias, entry.text))
    if params.group_by:
        for group in odsql.parse_group_by(params.group_by):
            items.append((group.expr, group.alias, group.text))
    for expr, alias, text in items:
        if isinstance(expr, odsql.FuncCall) and expr.name.lower() in DATE_PART_FUNCTIONS:
            keys.add(_item_key(expr, alias, text))
    return keys


def _group_keys(params: ODSQLParams) -> list[tuple[str, odsql.Node]]:
    if not params.group_by:
        return []
    return [
        (_item_key(group.expr, group.alias, group.text), group.expr)
        for group in odsql.parse_group_by(params.group_by)
    ]


def epoch_millis(value: Any, kind: str, tz: tzinfo) -> Any:
    """A v2.1 date or datetime value (ISO text) as epoch milliseconds (v2.0 group keys).

    Dates (also partial ``YYYY`` / ``YYYY-MM``) stand for their first instant in ``tz``.
    """
    if not isinstance(value, str):
        return value
    if kind == "date":
        parts = [int(part) for part in value.split("-")]
        day = date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
        moment = datetime(day.year, day.month, day.day, tzinfo=tz)
    else:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def v20_groups(
    records: list[dict[str, Any]],
    columns: Sequence[OutputColumn],
    params: ODSQLParams,
) -> list[dict[str, Any]]:
    """Grouped v2.1 results as v2.0 writes them (see the module docstring)."""
    types = {column.key: column.type for column in columns}
    date_keys = {
        key
        for key, expr in _group_keys(params)
        if isinstance(expr, odsql.Field) and types.get(key) in ("date", "datetime")
    }
    part_keys = _date_part_keys(params) & set(types)
    group_keys = [key for key, _ in _group_keys(params) if key in types]
    out = []
    for record in records:
        if any(record.get(key) is None for key in group_keys):
            continue  # v2.0 has no null group
        for key in date_keys:
            record[key] = epoch_millis(record[key], types[key], params.tz)
        for key in part_keys:
            if record.get(key) is not None:
                record[key] = str(record[key])
        out.append(record)
    return out


# -- records --------------------------------------------------------------------------------


def _technical_keys(extended: PortalDataset) -> tuple[str, str]:
    """Keys under which ``with_technical_fields`` returns the record id and timestamp."""
    return extended.fields[-2].name, extended.fields[-1].name


def _record_v20(
    api: ApiRequest,
    base: str,
    dataset_id: str,
    record: dict[str, Any],
    keys: tuple[str, str],
    tz: tzinfo,
) -> dict[str, Any]:
    record_id = record.pop(keys[0])
    timestamp = record.pop(keys[1])
    path = _dataset_path(base, dataset_id)
    return {
        "links": [
            {"rel": "self", "href": api.url(f"{path}/records/{quote(str(record_id), safe='')}")},
            {"rel": "datasets", "href": api.url(f"{base}/catalog/datasets")},
            {"rel": "dataset", "href": api.url(path)},
        ],
        "record": {
            "id": record_id,
            "timestamp": zulu_timestamp(timestamp, tz),
            "size": len(dumps(record)),
            "fields": record,
        },
    }


def _run(
    cursor: duckdb.DuckDBPyConnection,
    params: ODSQLParams,
    dataset: PortalDataset,
    *,
    limit: int,
    offset: int,
    select: str | None,
) -> tuple[CompiledQuery, int | None, Any]:
    compiled = params.compile(dataset, limit=limit, offset=offset, select=select)
    if not limit:
        return compiled, fetch_count(cursor, compiled, params.clauses), None
    total, table = fetch_page(cursor, compiled, params.clauses)
    return compiled, total, table


def get_records(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/records`` (v2.0 shapes)."""
    base = _base_of(api)
    dataset = api.dataset(api.path_params["dataset_id"])
    params = ODSQLParams.from_query(api.query)
    limit, offset = page_window(api.query, grouped=params.group_by is not None)
    bool_param(api.query, "include_app_metas")
    context = api.serialize_context(
        params.tz, dataset.dataset_id, datasets_path=f"{base}/catalog/datasets"
    )
    with api.cursor() as cursor:
        probe = params.compile(dataset, limit=0)
        if probe.grouped:
            compiled, _, table = _run(
                cursor, params, dataset, limit=limit, offset=offset, select=params.select
            )
            keys = None
            total = None
        else:
            extended, select = with_technical_fields(cursor, dataset, params.select)
            compiled, total, table = _run(
                cursor, params, extended, limit=limit, offset=offset, select=select
            )
            keys = _technical_keys(extended)
    records = RecordWriter(compiled.columns, context).records(table) if table is not None else []
    if keys is None:
        return answer(api, {"links": [], "records": v20_groups(records, compiled.columns, params)})
    wrapped = [
        _record_v20(api, base, dataset.dataset_id, record, keys, params.tz) for record in records
    ]
    payload = {
        "total_count": total or 0,
        "links": page_links_v20(api, limit, offset, total or 0),
        "records": wrapped,
    }
    return answer(api, payload)


def get_record(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/records/{record_id}``: ``{"links", "record"}``."""
    base = _base_of(api)
    dataset = api.dataset(api.path_params["dataset_id"])
    record_id = str(api.path_params["record_id"])
    params = ODSQLParams.from_query(api.query)
    select_only = ODSQLParams(
        select=params.select, lang=params.lang, timezone=params.timezone, tz=params.tz
    )
    with api.cursor() as cursor:
        one_record = one_row_dataset(cursor, dataset, HIDDEN_ID, record_id)
        extended, select = with_technical_fields(cursor, one_record, params.select)
        compiled, _, table = _run(cursor, select_only, extended, limit=1, offset=0, select=select)
    context = api.serialize_context(
        params.tz, dataset.dataset_id, datasets_path=f"{base}/catalog/datasets"
    )
    records = RecordWriter(compiled.columns, context).records(table)
    if not records:
        raise NotFoundError(
            f"Record '{record_id}' was not found in dataset '{dataset.dataset_id}'."
        )
    record = _record_v20(
        api, base, dataset.dataset_id, records[0], _technical_keys(extended), params.tz
    )
    return answer(api, record)


# -- catalog --------------------------------------------------------------------------------


def get_datasets(api: ApiRequest) -> Any:
    """``GET /catalog/datasets``: ``{"total_count", "links", "datasets": [...]}``."""
    base = _base_of(api)
    params = ODSQLParams.from_query(api.query)
    limit, offset = page_window(api.query, grouped=params.group_by is not None)
    with api.cursor() as cursor:
        total, results = catalog_results(
            api, params, api.catalog_pseudo_dataset(), cursor, limit=limit, offset=offset
        )
    if total is None:  # grouped: the groups as they are
        return answer(api, {"links": [], "datasets": results})
    datasets = []
    for result in results:
        dataset = api.catalog.datasets.get(str(result.get("dataset_id")))
        links = dataset_links_v20(api, base, dataset) if dataset is not None else []
        datasets.append({"links": links, "dataset": dataset_v20(result)})
    payload = {
        "total_count": total,
        "links": page_links_v20(api, limit, offset, total),
        "datasets": datasets,
    }
    return answer(api, payload)


def get_dataset_v20(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}``: ``{"links", "dataset"}``."""
    base = _base_of(api)
    dataset = api.dataset(api.path_params["dataset_id"])
    if ODSQLParams.from_query(api.query).select is None:
        include_app_metas = bool_param(api.query, "include_app_metas")
        body = dataset_object(dataset, include_app_metas=include_app_metas)
    else:
        body = get_dataset(api)
    return answer(
        api, {"links": dataset_links_v20(api, base, dataset), "dataset": dataset_v20(body)}
    )


def api_index(api: ApiRequest) -> Any:
    """``GET /api/v2``: links to the sources this portal serves."""
    base = _base_of(api)
    return {
        "links": [
            {"rel": "self", "href": api.url(base)},
            {"rel": "catalog", "href": api.url(f"{base}/catalog")},
        ]
    }


def catalog_index(api: ApiRequest) -> Any:
    """``GET /api/v2/catalog``: links to the catalog's endpoints."""
    base = _base_of(api)
    return {
        "links": [
            {"rel": "self", "href": api.url(f"{base}/catalog")},
            {"rel": "datasets", "href": api.url(f"{base}/catalog/datasets")},
            {"rel": "facets", "href": api.url(f"{base}/catalog/facets")},
        ]
    }


# -- facets, attachments, exports -----------------------------------------------------------


def get_dataset_facets(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/facets``: ``{"links", "facets"}``."""
    base = _base_of(api)
    body = dataset_facets(api)
    path = _dataset_path(base, str(api.path_params["dataset_id"]))
    links = [
        {"rel": "self", "href": api.url(f"{path}/facets")},
        {"rel": "dataset", "href": api.url(path)},
    ]
    return answer(api, {"links": links, "facets": body["facets"]})


def get_catalog_facets(api: ApiRequest) -> Any:
    """``GET /catalog/facets``: ``{"links", "facets"}``."""
    base = _base_of(api)
    body = catalog_facets(api)
    links = [
        {"rel": "self", "href": api.url(f"{base}/catalog/facets")},
        {"rel": "source", "href": api.url(f"{base}/catalog")},
    ]
    return answer(api, {"links": links, "facets": body["facets"]})


def get_attachments(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/attachments``: ``{"links", "attachments"}``."""
    base = _base_of(api)
    dataset = api.dataset(api.path_params["dataset_id"])
    path = _dataset_path(base, dataset.dataset_id)
    attachments = [
        {
            "href": api.url(f"{path}/attachments/{quote(attachment.id, safe='')}"),
            "metas": {
                "id": attachment.id,
                "title": attachment.title,
                "mimetype": attachment.mimetype,
                "url": f"odsfile://{attachment.path.name}",
            },
        }
        for attachment in dataset.attachments
    ]
    links = [
        {"rel": "self", "href": api.url(f"{path}/attachments")},
        {"rel": "dataset", "href": api.url(path)},
    ]
    return answer(api, {"links": links, "attachments": attachments})


def v20_formats() -> list[str]:
    """The v2.0 export formats this portal writes."""
    available = dataset_formats()
    return [fmt for fmt in V20_EXPORT_FORMATS if fmt in available]


def list_exports(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/exports``: one link per format."""
    base = _base_of(api)
    dataset = api.dataset(api.path_params["dataset_id"])
    path = _dataset_path(base, dataset.dataset_id)
    return {
        "links": [
            {"rel": "self", "href": api.url(f"{path}/exports")},
            *({"rel": fmt, "href": api.url(f"{path}/exports/{fmt}")} for fmt in v20_formats()),
        ]
    }


def export_records(api: ApiRequest) -> Response:
    """``GET /catalog/datasets/{dataset_id}/exports/{format}`` (v2.0 defaults: no BOM)."""
    dataset = api.dataset(api.path_params["dataset_id"])
    fmt = str(api.path_params["format"])
    formats = v20_formats()
    if fmt not in formats:
        known = fmt in _V20_KNOWN_FORMATS
        raise InvalidRESTParameterError(
            f"Invalid value for format API parameter: {fmt!r} "
            + ("is a v2.0 format the local portal does not write" if known else "was found")
            + f"; one of {', '.join(formats)} is expected."
        )
    params = ODSQLParams.from_query(api.query)
    limit, offset = export_window(api)
    options = export_options(api, fmt, dataset.dataset_id, params.timezone)
    options = dataclasses.replace(options, with_bom=bool_param(api.query, "with_bom", False))
    compiled = params.compile(dataset, limit=limit, offset=offset)
    prepared = plan_export(fmt, compiled.columns, options)
    return stream_export(
        api,
        open_cursor(api),
        compiled,
        prepared,
        clauses=params.clauses,
        basename=dataset.dataset_id,
        compressed=False,
    )


# -- the routes table -----------------------------------------------------------------------


def v20_routes(bases: Sequence[str] = V20_BASES) -> list[ApiRoute]:
    """The Explore API v2.0 routes, under every base of ``bases``."""
    routes: list[ApiRoute] = []
    for base in bases:
        datasets = f"{base}/catalog/datasets"
        dataset = f"{datasets}/{{dataset_id}}"
        routes += [
            ApiRoute(base, api_index),
            ApiRoute(f"{base}/catalog", catalog_index),
            ApiRoute(f"{base}/catalog/facets", get_catalog_facets),
            ApiRoute(datasets, get_datasets),
            ApiRoute(dataset, get_dataset_v20),
            ApiRoute(f"{dataset}/records", get_records),
            ApiRoute(f"{dataset}/records/{{record_id}}", get_record),
            ApiRoute(f"{dataset}/facets", get_dataset_facets),
            ApiRoute(f"{dataset}/exports", list_exports),
            ApiRoute(f"{dataset}/exports/{{format}}", export_records),
            ApiRoute(f"{dataset}/attachments", get_attachments),
            ApiRoute(f"{dataset}/attachments/{{attachment_id}}", get_attachment),
            ApiRoute(f"{dataset}/files/{{file_id}}", get_file),
        ]
    return routes


__all__ = ["V20_BASES", "epoch_millis", "v20_routes", "zulu_timestamp"]
