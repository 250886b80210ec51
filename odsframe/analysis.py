"""Aggregations, facets and geo clusters of an ODS dataset as frames.

Three readers ask the portal to compute instead of downloading records:

* :func:`read_ods_aggregate`: ``group_by`` + aggregates (ods-api.md sections 5.6 and 5.8) as
  a tidy DataFrame, one typed column per key and per aggregate. More groups than one
  request returns (20 000) are never cut silently: a full answer means "maybe more", and the
  rest is read through the grouped export (``/exports/json?group_by=...``) when the portal
  lists one, else by keyset partitions (``where`` "key tuple after the last one read").
* :func:`read_ods_facets`: the ``/facets`` tree flattened into one long DataFrame.
* :func:`read_ods_geocluster`: ``group_by=geo_cluster(field, zoom, radius)`` as a
  GeoDataFrame of cluster centroids (ods-api.md section 7.2), with hulls and aggregates.

:func:`aggregate_frame`, :func:`facets_frame` and :func:`geocluster_frame` run the same on the
source and filters of a frame from ``read_ods`` (what ``df.ods.aggregate`` and friends call).
Every result carries provenance in ``attrs["ods"]`` (``kind`` says which reader made it).
"""

from __future__ import annotations

import io
import json
import logging
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

import odsframe.accessor  # noqa: F401  # registers df.ods on the frames made here
from odsframe._auth import ApiKey
from odsframe._http import build_url
from odsframe._spec import (
    GEO_CLUSTER_DEFAULT_RADIUS,
    GEO_CLUSTER_MAX_ZOOM,
    GROUP_BY_MAX_LIMIT,
    RESERVED_WORDS_V21,
)
from odsframe.accessor import ProvenanceError
from odsframe.api import ExploreAdapter
from odsframe.api.base import FACETS_PARAMS, grouped_request
from odsframe.errors import (
    DatasetNotFoundError,
    IncompleteResultError,
    InvalidQueryArgument,
    QueryError,
    ServerError,
)
from odsframe.frames.aggregate import (
    frame_from_groups,
    geoclusters_to_geodataframe,
    zoom_for_bbox,
    zoom_for_clusters,
)
from odsframe.frames.facets import frame_from_facets
from odsframe.frames.schema import FieldSpec, fields_from_metadata
from odsframe.plotting import plot_clusters
from odsframe.query.odsql import literal, quote_field, split_top_level
from odsframe.query.query import Query, facet_filters, order_expression
from odsframe.read import (
    _metas,
    _source_version,
    build_query,
    query_record,
    remembered_credentials,
)
from odsframe.read import _open as _open_read

if TYPE_CHECKING:
    import geopandas

__all__ = [
    "aggregate_frame",
    "choose_zoom",
    "facets_frame",
    "geocluster_frame",
    "plot_clusters",
    "read_ods_aggregate",
    "read_ods_facets",
    "read_ods_geocluster",
    "zoom_for_bbox",
    "zoom_for_clusters",
]

logger = logging.getLogger(__name__)

#: An aggregate: ODSQL text (``"avg(price)"``), ``"count"``/``"size"``, or a pandas-like pair
#: ``(field, "sum")`` / ``(field, ("percentile", 90))``.
AggSpec = str | tuple[str, str | tuple[str, float]]
Partition = Literal["auto", "export", "where"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_FIELD = re.compile(r"[A-Za-z0-9_]+|`(?:[^`\\]|\\.)+`")
_ALIAS = re.compile(
    r"^(?P<expr>.+?)\s+as\s+(?P<alias>[A-Za-z0-9_]+|`(?:[^`\\]|\\.)+`)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CALL = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\((?P<args>.*)\)\s*$", re.DOTALL)
_DISTINCT = re.compile(r"^distinct\s+", re.IGNORECASE)
_INTERVAL = re.compile(r"^\d+\s*[A-Za-z]+$")

#: pandas-like aggregation names -> ODSQL aggregate function.
_PANDAS_AGGREGATES: dict[str, str] = {
    "count": "count",
    "size": "count",
    "nunique": "count",
    "sum": "sum",
    "mean": "avg",
    "avg": "avg",
    "min": "min",
    "max": "max",
    "median": "median",
    "percentile": "percentile",
}
_DATE_PART_FUNCTIONS = frozenset(
    {"year", "month", "day", "hour", "minute", "second", "millisecond", "quarter", "dayofweek"}
)
_TEXT_FUNCTIONS = frozenset({"date_format", "lower", "upper"})
#: Group expressions a ``where`` cannot repeat (so keyset partitions cannot follow them).
_UNFILTERABLE_GROUPS = frozenset({"range", "geo_cluster"})
_FACET_OPTIONS = frozenset({"disjunctive", "hierarchical", "separator", "sort", "limit"})
_FACET_SORTS = frozenset({"count", "-count", "alphanum", "-alphanum", "num", "-num"})
#: Column names a cluster frame makes itself.
_CLUSTER_COLUMNS = frozenset({"count", "hull", "geometry"})
#: The keys of ``read_ods``'s query record that are filters (what every reader here keeps).
_FILTER_KEYS = (
    "where",
    "refine",
    "exclude",
    "timezone",
    "lang",
    "bbox",
    "mask",
    "distance",
    "geo_field",
)


# --------------------------------------------------------------------------------------------
# Opening a portal, provenance


def _open(
    portal: str, api_key: str | ApiKey | None, session: Any, api_version: str = "2.1"
) -> ExploreAdapter:
    """An adapter for ``portal`` with the key from the key chain (as ``read_ods`` opens one)."""
    adapter, _ = _open_read(portal, api_key, session, api_version)
    return adapter


def _filters_record(query: Query) -> dict[str, Any]:
    """The filters of ``query`` as plain JSON values (for ``attrs["ods"]["query"]``)."""
    record = query_record(query, geometry=None, labels=False)
    return {key: record[key] for key in _FILTER_KEYS}


def _provenance(
    kind: str,
    adapter: ExploreAdapter,
    query: Query,
    *,
    url: str,
    fetched_at: datetime,
    metadata: Mapping[str, Any] | None,
    details: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    metas = _metas(metadata) if metadata is not None else {}
    record = {**_filters_record(query), **details, "params": [list(p) for p in query.params()]}
    return {
        "kind": kind,
        "portal": adapter.base_url,
        "dataset": query.dataset,
        "query": record,
        "url": url,
        "fetched_at": fetched_at.isoformat(),
        "data_processed": metas.get("data_processed"),
        "records_count": metas.get("records_count"),
        "api_version": adapter.version,
        **(extra or {}),
    }


def _grouped_url(adapter: ExploreAdapter, query: Query, limit: int | None) -> str:
    return adapter.url_for(grouped_request(query, limit))


# --------------------------------------------------------------------------------------------
# Schema helpers


def _specs_by_name(metadata: Mapping[str, Any]) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in fields_from_metadata(metadata)}


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1].replace("\\`", "`").replace("\\\\", "\\")
    return name


def _field_name(expression: str) -> str | None:
    """The field an expression is, when it is a bare (maybe back-quoted) field name."""
    text = expression.strip()
    return _unquote(text) if _PLAIN_FIELD.fullmatch(text) else None


def _function_call(expression: str) -> tuple[str, list[str]] | None:
    """``(lower-case function name, top-level arguments)`` of a call, else None."""
    match = _CALL.match(expression)
    if match is None:
        return None
    args = match["args"]
    # "f(a) + g(b)" also matches the pattern: the parentheses must close at the very end.
    depth = 0
    for position, char in enumerate(args):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0 and position < len(args) - 1:
            return None
    return match["name"].lower(), split_top_level(args)


def _geo_specs(specs: Mapping[str, FieldSpec], kinds: Sequence[str]) -> list[FieldSpec]:
    return [spec for spec in specs.values() if spec.type in kinds]


def _with_geo_field(query: Query, specs: Mapping[str, FieldSpec], geo_field: str | None) -> Query:
    """Point bbox/mask/distance at ``geo_field`` (checked), else at the first geo field."""
    geo = _geo_specs(specs, ("geo_point_2d", "geo_shape"))
    names = [spec.name for spec in geo]
    if geo_field is not None:
        if geo_field not in names:
            raise InvalidQueryArgument(
                f"geo_field={geo_field!r}: dataset {query.dataset!r} has no geo field of that "
                f"name (geo fields: {names or 'none'})"
            )
        return query.with_geo_field(geo_field)
    if not query.needs_geo_field:
        return query
    if not names:
        raise InvalidQueryArgument(
            f"bbox/mask/distance: dataset {query.dataset!r} has no geo field to filter on"
        )
    return query.with_geo_field(names[0])


# --------------------------------------------------------------------------------------------
# Group keys and aggregates


@dataclass(frozen=True)
class _Column:
    """One key or aggregate: how it is asked for and how its answer is read."""

    name: str  # the frame's column
    expression: str  # ODSQL without alias
    alias: str | None  # the AS alias sent (None: a plain field, keyed by its name)
    kind: str | None  # frame_from_groups kind (None: from the values)
    filterable: bool = True  # a where can repeat the expression (keyset partitions)

    @property
    def answer_key(self) -> str:
        return self.alias if self.alias is not None else (_field_name(self.expression) or "")

    @property
    def select_item(self) -> str:
        return self.expression if self.alias is None else f"{self.expression} AS {self.alias}"

    @property
    def order_key(self) -> str:
        return self.alias if self.alias is not None else self.expression


def _split_alias(text: str) -> tuple[str, str | None]:
    match = _ALIAS.match(text.strip())
    if match is None:
        return text.strip(), None
    return match["expr"].strip(), _unquote(match["alias"])


def _value_kind(spec: FieldSpec | None) -> str | None:
    if spec is None:
        return None
    if spec.type in ("text", "int", "double", "boolean", "date", "datetime"):
        return spec.type
    return None


def _key_kind(expression: str, specs: Mapping[str, FieldSpec]) -> tuple[str | None, bool]:
    """The kind of a group key's values and whether a ``where`` can repeat the key."""
    call = _function_call(expression)
    if call is None:
        return None, True
    name, args = call
    first = specs.get(_field_name(args[0]) or "") if args else None
    if name in _DATE_PART_FUNCTIONS:
        return "int", True
    if name in _TEXT_FUNCTIONS:
        return "text", True
    if name == "geo_cluster":
        return "cluster", False
    if name == "range":
        # range(d, 1y): buckets keyed by their start; static date ranges are labels.
        by_interval = len(args) == 2 and _INTERVAL.match(args[1].strip()) is not None
        if first is not None and first.type in ("date", "datetime") and by_interval:
            return first.type, False
        return "range", False
    if name == "ifnull":
        return _value_kind(first), True
    return None, True


def _plain_alias(name: str, specs: Mapping[str, FieldSpec]) -> bool:
    """Whether ``name`` can be sent as an alias as it is."""
    return (
        _IDENTIFIER.fullmatch(name) is not None
        and name.lower() not in RESERVED_WORDS_V21
        and name not in specs
    )


def _parse_keys(by: Any, specs: Mapping[str, FieldSpec], dataset: str) -> list[_Column]:
    if by is None:
        return []
    if isinstance(by, str):
        items = split_top_level(by)
    elif isinstance(by, Sequence) and not isinstance(by, bytes):
        items = []
        for item in by:
            if not isinstance(item, str):
                raise InvalidQueryArgument(
                    f"by: expected field names or ODSQL expressions, got {item!r}"
                )
            items.extend(split_top_level(item))
    else:
        raise InvalidQueryArgument(
            f"by: expected a field, an expression or a list of them, got {type(by).__name__}"
        )
    if not items:
        raise InvalidQueryArgument("by: no group key given (leave by=None for one group)")
    keys: list[_Column] = []
    for position, item in enumerate(items):
        expression, alias = _split_alias(item)
        field = _field_name(expression)
        if field is not None:
            spec = specs.get(field)
            if spec is None:
                raise InvalidQueryArgument(
                    f"by: dataset {dataset!r} has no field {field!r} (fields: {sorted(specs)})"
                )
            if spec.type in ("geo_point_2d", "geo_shape"):
                raise InvalidQueryArgument(
                    f"by: {field!r} is a geo field; group points with "
                    f"read_ods_geocluster(..., field={field!r}) or geo_cluster({field}, zoom)"
                )
            expression = quote_field(field)
            # A where on a multivalued field matches records by any of their values, so
            # groups of earlier values come back in later parts: no keyset partitions.
            kind, filterable = _value_kind(spec), not spec.multivalued
        else:
            kind, filterable = _key_kind(expression, specs)
        name = alias if alias is not None else (field if field is not None else expression)
        if alias is None and field is not None:
            sent = None
        elif _plain_alias(name, specs):
            sent = name
        else:
            sent = f"odsframe_k{position}"
        keys.append(_Column(name, expression, sent, kind, filterable))
    return keys


def _field_arg(field: Any, name: str, specs: Mapping[str, FieldSpec], dataset: str) -> str:
    if not isinstance(field, str) or not field:
        raise InvalidQueryArgument(f"agg[{name!r}]: expected a field name, got {field!r}")
    if field != "*" and field not in specs:
        raise InvalidQueryArgument(
            f"agg[{name!r}]: dataset {dataset!r} has no field {field!r} (fields: {sorted(specs)})"
        )
    return field


def _percentile(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidQueryArgument(f"agg[{name!r}]: a percentile is a number, got {value!r}")
    if not 0 <= float(value) <= 100:
        raise InvalidQueryArgument(
            f"agg[{name!r}]: a percentile lies between 0 and 100, got {value!r}"
        )
    return literal(value, argument=f"agg[{name!r}]")


def _pair_expression(
    spec: tuple[Any, ...], name: str, specs: Mapping[str, FieldSpec], dataset: str
) -> str:
    if len(spec) != 2:
        raise InvalidQueryArgument(
            f"agg[{name!r}]: expected (field, function) such as ('price', 'mean'), got {spec!r}"
        )
    field_name, function = spec
    field = _field_arg(field_name, name, specs, dataset)
    argument: Any = None
    if isinstance(function, tuple):
        if len(function) != 2 or function[0] != "percentile":
            raise InvalidQueryArgument(
                f"agg[{name!r}]: a function with an argument is ('percentile', p), got {function!r}"
            )
        function, argument = function
    if not isinstance(function, str) or function.lower() not in _PANDAS_AGGREGATES:
        raise InvalidQueryArgument(
            f"agg[{name!r}]: unknown aggregation {function!r}; use one of "
            f"{', '.join(sorted(_PANDAS_AGGREGATES))} or ODSQL text like 'avg(price)'"
        )
    function = function.lower()
    quoted = "*" if field == "*" else quote_field(field)
    if function == "size" or (function == "count" and field == "*"):
        return "count(*)"
    if field == "*":
        raise InvalidQueryArgument(f"agg[{name!r}]: {function} needs a field, not '*'")
    if function == "nunique":
        return f"count(distinct {quoted})"
    if function == "percentile":
        if argument is None:
            raise InvalidQueryArgument(
                f"agg[{name!r}]: write ({field!r}, ('percentile', 90)) to say which percentile"
            )
        return f"percentile({quoted}, {_percentile(argument, name)})"
    return f"{_PANDAS_AGGREGATES[function]}({quoted})"


def _aggregate_kind(expression: str, specs: Mapping[str, FieldSpec]) -> str | None:
    call = _function_call(expression)
    if call is None:
        return None
    name, args = call
    field = specs.get(_field_name(_DISTINCT.sub("", args[0])) or "") if args else None
    if name == "count":
        return "count"
    if name in ("avg", "median", "percentile"):
        return "double"
    if name == "sum":
        return "int" if field is not None and field.type == "int" else "double"
    if name in ("min", "max"):
        if field is not None and field.type in ("int", "double", "date", "datetime"):
            return field.type
        return None
    if name in ("envelope", "bbox"):
        return "geometry"
    return None


def _parse_aggregates(
    agg: Any,
    specs: Mapping[str, FieldSpec],
    dataset: str,
    *,
    default: Mapping[str, str] | None = None,
    taken: Sequence[str] = (),
) -> list[_Column]:
    if agg is None:
        agg = dict(default or {})
    if not isinstance(agg, Mapping):
        raise InvalidQueryArgument(
            "agg: expected a mapping {column name: aggregation}, e.g. "
            "{'n': 'count(*)', 'mean_price': ('price', 'mean')}; got "
            f"{type(agg).__name__}"
        )
    columns: list[_Column] = []
    for position, (name, spec) in enumerate(agg.items()):
        if not isinstance(name, str) or not name.strip():
            raise InvalidQueryArgument(f"agg: column names must be non-empty strings, got {name!r}")
        if name in taken:
            raise InvalidQueryArgument(
                f"agg: the column name {name!r} is already a group key; pick another name"
            )
        if isinstance(spec, str):
            text = spec.strip()
            if not text:
                raise InvalidQueryArgument(f"agg[{name!r}]: the aggregation is empty")
            if text.lower() in ("count", "size"):
                expression = "count(*)"
            elif text.lower() in _PANDAS_AGGREGATES:
                raise InvalidQueryArgument(
                    f"agg[{name!r}]: {text!r} needs a field: write (field, {text!r}) or "
                    f"'{_PANDAS_AGGREGATES[text.lower()]}(field)'"
                )
            else:
                expression, alias = _split_alias(text)
                if alias is not None:
                    raise InvalidQueryArgument(
                        f"agg[{name!r}]: leave the AS alias out of {text!r}; the mapping key "
                        "names the column"
                    )
                if len(split_top_level(expression)) != 1:
                    raise InvalidQueryArgument(
                        f"agg[{name!r}]: one aggregation per column, got {text!r}"
                    )
        elif isinstance(spec, tuple):
            expression = _pair_expression(spec, name, specs, dataset)
        else:
            raise InvalidQueryArgument(
                f"agg[{name!r}]: expected ODSQL text or a (field, function) pair, got {spec!r}"
            )
        alias = name if _plain_alias(name, specs) else f"odsframe_a{position}"
        columns.append(_Column(name, expression, alias, _aggregate_kind(expression, specs)))
    return columns


def _translate_order(order_by: Sequence[str], columns: Sequence[_Column]) -> list[str]:
    """User ``order_by`` items with column names replaced by the aliases sent."""
    by_name = {column.name: column for column in columns}
    items = []
    for item in order_by:
        expression = order_expression(item)
        column = by_name.get(expression)
        if column is None:
            items.append(item)
            continue
        direction = "DESC" if item.upper().endswith(" DESC") else "ASC"
        items.append(f"{column.order_key} {direction}")
    return items


def _sort_columns(order_by: Sequence[str], columns: Sequence[_Column]) -> list[tuple[str, bool]]:
    """``(column, ascending)`` of each ``order_by`` item, to sort on the client."""
    by_name = {column.name: column.name for column in columns}
    by_expression = {
        re.sub(r"\s", "", column.expression).lower(): column.name for column in columns
    }
    sort = []
    for item in order_by:
        expression = order_expression(item)
        name = by_name.get(expression) or by_expression.get(re.sub(r"\s", "", expression).lower())
        if name is None:
            raise InvalidQueryArgument(
                f"order_by: {item!r} is not a key or an aggregate of the result, and more "
                f"than {GROUP_BY_MAX_LIMIT:,} groups are sorted on this machine; order by "
                "the names of by/agg columns"
            )
        sort.append((name, not item.upper().endswith(" DESC")))
    return sort


# --------------------------------------------------------------------------------------------
# Fetching every group


def _row_key(row: Mapping[str, Any], keys: Sequence[_Column]) -> str:
    return json.dumps([row.get(key.answer_key) for key in keys], sort_keys=True, default=str)


def _key_literal(value: Any, key: _Column) -> str:
    if isinstance(value, str) and key.kind in ("date", "datetime"):
        return f"date'{value}'"
    if isinstance(value, str | int | float):
        return literal(value, argument=f"by[{key.name!r}]")
    raise InvalidQueryArgument(
        f"by: the key {key.name!r} has values like {value!r} that a where cannot compare"
    )


def _after_condition(keys: Sequence[_Column], values: Sequence[Any]) -> str | None:
    """ODSQL selecting the groups after ``values`` in ascending key order (nulls last).

    ``None`` when no group can come after (every later key is null).
    """

    def after(position: int) -> str | None:
        key, value = keys[position], values[position]
        expression = key.expression
        last = position == len(keys) - 1
        rest = None if last else after(position + 1)
        if value is None:
            return None if rest is None else f"({expression} IS NULL) AND ({rest})"
        if isinstance(value, bool):
            greater = None if value else f"{expression} IS TRUE"
            equal = f"{expression} IS {'TRUE' if value else 'FALSE'}"
        else:
            text = _key_literal(value, key)
            greater, equal = f"{expression} > {text}", f"{expression} = {text}"
        parts = [part for part in (greater, f"{expression} IS NULL") if part is not None]
        if rest is not None:
            parts.append(f"({equal}) AND ({rest})")
        return " OR ".join(f"({part})" for part in parts)

    return after(0)


@dataclass
class _Fetched:
    rows: list[dict[str, Any]]
    route: str  # "records", "export" or "where"
    requests: int
    sorted_by_server: bool


def _export_rows(adapter: ExploreAdapter, query: Query, keys: Sequence[_Column]) -> list[Any]:
    """Every group of ``query`` through the grouped JSON export."""
    buffer = io.BytesIO()
    adapter.stream_export(query, "json", buffer)
    try:
        rows = json.loads(buffer.getvalue().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ServerError(
            f"The grouped json export of dataset {query.dataset!r} is not valid JSON ({err}).",
            dataset=query.dataset,
        ) from err
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ServerError(
            f"The grouped json export of dataset {query.dataset!r} is not a list of groups.",
            dataset=query.dataset,
        )
    wanted = {key.answer_key for key in keys}
    if rows and not wanted <= set(rows[0]):
        raise ServerError(
            f"The json export of dataset {query.dataset!r} ignored group_by (its rows have "
            f"keys {sorted(rows[0])[:8]}).",
            dataset=query.dataset,
        )
    return rows


def _offers_json_export(adapter: ExploreAdapter, dataset: str) -> bool:
    try:
        return "json" in {fmt.lower() for fmt in adapter.export_formats(dataset)}
    except DatasetNotFoundError:  # no /exports listing on this portal
        return False


def _ungrouped_rows(adapter: ExploreAdapter, query: Query) -> list[dict[str, Any]]:
    """The one row of aggregates over every record of ``query`` (no ``group_by``)."""
    return adapter.fetch(grouped_request(query, None))


def _fetch_all_groups(
    adapter: ExploreAdapter,
    query: Query,
    keys: Sequence[_Column],
    *,
    limit: int | None,
    page_size: int,
    partition: Partition,
    user_order: bool,
) -> _Fetched:
    """Every group of ``query`` (or the first ``limit``), never cut silently.

    An answer with as many groups as asked may have left some out: the rest is read through
    the grouped export, or in key order by parts (see :func:`_fetch_keyset`).
    """
    if not keys:
        return _Fetched(_ungrouped_rows(adapter, query), "records", 1, True)
    first_limit = page_size if limit is None else min(limit, page_size)
    rows = adapter.grouped(query.replace(limit=first_limit))
    if len(rows) < first_limit or (limit is not None and limit <= page_size):
        return _Fetched(rows, "records", 1, True)
    logger.info(
        "%s: %d groups in one answer, the most it holds; reading the rest",
        query.dataset,
        len(rows),
    )
    if partition in ("auto", "export"):
        if _offers_json_export(adapter, query.dataset):
            try:
                export_query = query.replace(limit=limit)
                return _Fetched(_export_rows(adapter, export_query, keys), "export", 3, True)
            except (QueryError, ServerError) as err:
                if partition == "export":
                    raise
                logger.info("grouped export refused (%s); reading the groups in parts", err)
        elif partition == "export":
            raise IncompleteResultError(
                f"Dataset {query.dataset!r} has more than {page_size:,} groups and the portal "
                "lists no json export to read them all; use partition='where' or 'auto'.",
                dataset=query.dataset,
            )
    blocked = [f"{key.name} = {key.expression}" for key in keys if not key.filterable]
    if blocked:
        raise IncompleteResultError(
            f"Dataset {query.dataset!r} has more than {page_size:,} groups and no grouped "
            f"export could read them; the keys {blocked} cannot be read in parts with a where "
            "(range() and geo_cluster() keys, multivalued fields). Narrow the filters or use "
            "coarser keys.",
            dataset=query.dataset,
        )
    return _fetch_keyset(
        adapter, query, keys, rows, limit=limit, page_size=page_size, user_order=user_order
    )


def _fetch_keyset(
    adapter: ExploreAdapter,
    query: Query,
    keys: Sequence[_Column],
    first_rows: list[dict[str, Any]],
    *,
    limit: int | None,
    page_size: int,
    user_order: bool,
) -> _Fetched:
    """Parts of the groups in ascending key order, each after the last key tuple read.

    Without a user ``order_by`` the first answer was already asked in key order and is the
    first part; with one, every group is read in key order and the caller sorts.
    """
    ordered = query.replace(order_by=[f"{key.order_key} ASC" for key in keys], limit=page_size)
    if user_order:
        page, requests = adapter.grouped(ordered), 2
    else:
        page, requests = first_rows, 1
    seen: dict[str, dict[str, Any]] = {}
    while True:
        new = 0
        for row in page:
            identity = _row_key(row, keys)
            if identity not in seen:  # a multivalued key can repeat a group in a later part
                seen[identity] = row
                new += 1
        if len(page) < page_size or (limit is not None and not user_order and len(seen) >= limit):
            break
        if new == 0:
            raise ServerError(
                f"Dataset {query.dataset!r}: a part of the groups brought no new group; the "
                "portal does not order groups by their keys, so they cannot be read in parts.",
                dataset=query.dataset,
            )
        condition = _after_condition(keys, [page[-1].get(key.answer_key) for key in keys])
        if condition is None:
            break
        page = adapter.grouped(ordered.replace(where=[*query.where, condition]))
        requests += 1
    result = list(seen.values())
    if limit is not None and not user_order:
        result = result[:limit]
    return _Fetched(result, "where", requests, not user_order)


# --------------------------------------------------------------------------------------------
# Aggregations


def _grouped_frame(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[_Column],
    keys: Sequence[_Column],
    timezone: str | None,
) -> pd.DataFrame:
    frame = frame_from_groups(
        rows,
        keys=[key.answer_key for key in keys],
        aggregates=[column.answer_key for column in columns if column not in keys],
        key_types={column.answer_key: column.kind for column in columns if column.kind},
        timezone=timezone,
    )
    return frame.rename(columns={column.answer_key: column.name for column in columns})


def aggregate_with(
    adapter: ExploreAdapter,
    query: Query,
    *,
    by: Any = None,
    agg: Any = None,
    geo_field: str | None = None,
    partition: Partition = "auto",
    page_size: int = GROUP_BY_MAX_LIMIT,
) -> pd.DataFrame:
    """:func:`read_ods_aggregate` on an open adapter, for the filters, order and limit of ``query``.

    ``query`` holds the filters (where, refine, exclude, spatial), ``order_by``, ``limit``,
    ``timezone`` and ``lang``; its ``select`` and ``group_by`` are made from ``by``/``agg``.
    ``page_size`` is the most groups asked per request (the portal's 20 000 by default).
    """
    if partition not in ("auto", "export", "where"):
        raise InvalidQueryArgument(
            f"partition: expected 'auto', 'export' or 'where', got {partition!r}"
        )
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidQueryArgument(f"page_size: expected a positive int, got {page_size!r}")
    metadata = adapter.dataset_metadata(query.dataset)
    specs = _specs_by_name(metadata)
    keys = _parse_keys(by, specs, query.dataset)
    aggregates = _parse_aggregates(
        agg, specs, query.dataset, default={"count": "count(*)"}, taken=[k.name for k in keys]
    )
    columns = [*keys, *aggregates]
    names = [column.name for column in columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidQueryArgument(f"by: the group keys {repeated} are given twice")
    query = _with_geo_field(query, specs, geo_field)
    user_order = list(query.order_by)
    if user_order:
        order = _translate_order(user_order, columns)
    elif keys and all(key.filterable for key in keys):
        # The portal's default order, made explicit: the first answer is then the first
        # part of a keyset read if there are more groups than one answer holds.
        order = [f"{key.order_key} ASC" for key in keys]
    else:
        order = []
    grouped = query.replace(
        select=[column.select_item for column in columns],
        group_by=[key.select_item for key in keys] or None,
        order_by=order or None,
        limit=None,
    )
    fetched_at = datetime.now(UTC)
    fetched = _fetch_all_groups(
        adapter,
        grouped,
        keys,
        limit=query.limit,
        page_size=page_size,
        partition=partition,
        user_order=bool(user_order),
    )
    frame = _grouped_frame(fetched.rows, columns, keys, query.timezone)
    if user_order and not fetched.sorted_by_server:
        sort = _sort_columns(user_order, columns)
        frame = frame.sort_values(
            [name for name, _ in sort],
            ascending=[ascending for _, ascending in sort],
            na_position="last",
            kind="stable",
            ignore_index=True,
        )
        if query.limit is not None:
            frame = frame.head(query.limit)
    first_limit = page_size if query.limit is None else min(query.limit, page_size)
    url = _grouped_url(adapter, grouped, first_limit if keys else None)
    frame.attrs["ods"] = _provenance(
        "aggregate",
        adapter,
        grouped,
        url=url,
        fetched_at=fetched_at,
        metadata=metadata,
        details={
            "by": [key.name for key in keys],
            "keys": {key.name: key.expression for key in keys},
            "agg": {column.name: column.expression for column in aggregates},
            "order_by": user_order,
            "limit": query.limit,
        },
        extra={"route": fetched.route, "requests": fetched.requests, "groups": len(frame)},
    )
    return frame


def read_ods_aggregate(
    portal: str,
    dataset: str,
    *,
    by: str | Sequence[str] | None = None,
    agg: Mapping[str, AggSpec] | None = None,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    geo_field: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    partition: Partition = "auto",
    api_key: str | None = None,
    session: Any = None,
) -> pd.DataFrame:
    """Aggregate a dataset on the portal (``group_by``) into a tidy, typed DataFrame.

    Parameters
    ----------
    portal, dataset
        As for :func:`odsframe.read_ods`.
    by
        The group keys: a field, an ODSQL expression (``"year(start)"``,
        ``"range(price, 10)"``, ``"date_format(start, 'yyyy-MM') AS month"``), or a list of
        them. ``None``: one group over every matching record.
    agg
        ``{column: aggregation}``. An aggregation is ODSQL text (``"avg(price)"``,
        ``"percentile(price, 90)"``, ``"count(distinct venue)"``), ``"count"``/``"size"``
        (records per group), or a pandas-like pair ``(field, function)`` with function one
        of ``count`` (non-null values), ``size``, ``sum``, ``mean``/``avg``, ``min``,
        ``max``, ``median``, ``nunique`` (``count(distinct ...)``, approximate on real
        portals) or ``("percentile", p)``. Default ``{"count": "count(*)"}``.
    where, refine, exclude, bbox, mask, distance
        Filters, as for ``read_ods``; ``geo_field`` is the field the spatial ones apply to
        (default: the first geo field).
    order_by
        Order of the groups: names of ``by``/``agg`` columns or ODSQL (``"-count"``,
        ``"avg(price) DESC"``). Default: by the keys, ascending, nulls last.
    limit
        Most groups to return (``None``: all of them).
    timezone, lang
        Timezone of dates in the query and the answer (default UTC); answer language.
    partition
        How to read more groups than one answer holds (20 000): ``"auto"`` (the grouped
        json export when the portal lists one, else ``where`` partitions), ``"export"`` or
        ``"where"`` (pages in key order, each after the last key tuple read; keys made with
        ``range()`` cannot be partitioned so).
    api_key, session
        As for ``read_ods``.

    Returns
    -------
    pandas.DataFrame
        One row per group; one column per key (named by its field, its alias, or its
        expression text), then one per aggregate. Typed: counts ``Int64``, means and
        percentiles ``Float64``, sums/min/max like their field, dates ``datetime64``,
        ``range()`` keys intervals (labels when they cannot be read as intervals), null keys
        missing values. ``attrs["ods"]`` holds the provenance (``kind="aggregate"``, the
        URL of the first request, ``route`` and ``requests``).

    Raises
    ------
    InvalidQueryArgument
        A bad key or aggregation (unknown field, a geo field as key, repeated names ...).
    QueryError
        The portal refused the ODSQL.
    IncompleteResultError
        More than 20 000 groups and no way to read them all.

    Examples
    --------
    >>> read_ods_aggregate(url, "sample-events", by=["category", "year(start) AS year"],
    ...                    agg={"n": "count(*)", "mean_price": ("price", "mean")})  # doctest: +SKIP
    """
    query = build_query(
        dataset,
        where=where,
        bbox=bbox,
        mask=mask,
        distance=distance,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        limit=limit,
        timezone=timezone,
        lang=lang,
    )
    with _open(portal, api_key, session) as adapter:
        return aggregate_with(
            adapter, query, by=by, agg=agg, geo_field=geo_field, partition=partition
        )


# --------------------------------------------------------------------------------------------
# Facets


def _facet_parameter(item: Any, options: Any = None) -> str:
    if not isinstance(item, str) or not item.strip():
        raise InvalidQueryArgument(f"facets: expected facet names, got {item!r}")
    name = item.strip()
    if options is None:
        if name.lower().startswith("facet("):
            return name
        if not re.fullmatch(r"[^\s:]+", name):
            raise InvalidQueryArgument(f"facets: {name!r} is not a facet name")
        return name
    if not isinstance(options, Mapping):
        raise InvalidQueryArgument(
            f"facets[{name!r}]: options must be a mapping like {{'sort': '-count', 'limit': 10}}"
        )
    unknown = set(options) - _FACET_OPTIONS
    if unknown:
        raise InvalidQueryArgument(
            f"facets[{name!r}]: unknown option(s) {sorted(unknown)}; use "
            f"{', '.join(sorted(_FACET_OPTIONS))}"
        )
    parts = [f"name={json.dumps(name, ensure_ascii=False)}"]
    for option in ("disjunctive", "hierarchical", "separator", "sort", "limit"):
        if option not in options:
            continue
        value = options[option]
        if option in ("disjunctive", "hierarchical"):
            if not isinstance(value, bool):
                raise InvalidQueryArgument(f"facets[{name!r}]: {option} must be True or False")
            parts.append(f"{option}={'true' if value else 'false'}")
        elif option == "sort":
            if value not in _FACET_SORTS:
                raise InvalidQueryArgument(
                    f"facets[{name!r}]: sort must be one of {sorted(_FACET_SORTS)}, got {value!r}"
                )
            parts.append(f'sort="{value}"')
        elif option == "limit":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidQueryArgument(
                    f"facets[{name!r}]: limit must be a positive int, got {value!r}"
                )
            parts.append(f"limit={value}")
        else:
            if not isinstance(value, str) or not value:
                raise InvalidQueryArgument(f"facets[{name!r}]: separator must be a string")
            parts.append(f"separator={json.dumps(value, ensure_ascii=False)}")
    return f"facet({', '.join(parts)})"


def _facet_parameters(facets: Any) -> list[str] | None:
    if facets is None:
        return None
    if isinstance(facets, str):
        return [_facet_parameter(facets)]
    if isinstance(facets, Mapping):
        return [_facet_parameter(name, options or {}) for name, options in facets.items()]
    if isinstance(facets, Sequence):
        items = [_facet_parameter(item) for item in facets]
        if not items:
            raise InvalidQueryArgument("facets: the list is empty (None asks for every facet)")
        return items
    raise InvalidQueryArgument(
        f"facets: expected a name, a list of names or {{name: options}}, got "
        f"{type(facets).__name__}"
    )


def facets_with(
    adapter: ExploreAdapter,
    query: Query,
    *,
    facets: Any = None,
    geo_field: str | None = None,
) -> pd.DataFrame:
    """:func:`read_ods_facets` on an open adapter, for the filters of ``query``."""
    parameters = _facet_parameters(facets)
    metadata = None
    if query.needs_geo_field or geo_field is not None:
        metadata = adapter.dataset_metadata(query.dataset)
        query = _with_geo_field(query, _specs_by_name(metadata), geo_field)
    fetched_at = datetime.now(UTC)
    body = adapter.facets(query.dataset, query=query, facet=parameters)
    frame = frame_from_facets(body)
    params = [(name, value) for name, value in query.params() if name in FACETS_PARAMS]
    params += [("facet", parameter) for parameter in parameters or []]
    frame.attrs["ods"] = _provenance(
        "facets",
        adapter,
        query,
        url=build_url(f"{adapter.dataset_url(query.dataset)}/facets", sorted(params)),
        fetched_at=fetched_at,
        metadata=metadata,
        details={"facets": parameters},
    )
    return frame


def read_ods_facets(
    portal: str,
    dataset: str,
    *,
    facets: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    geo_field: str | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    api_key: str | None = None,
    session: Any = None,
) -> pd.DataFrame:
    """The facet values of a dataset and their counts, as one long DataFrame.

    Parameters
    ----------
    portal, dataset
        As for :func:`odsframe.read_ods`.
    facets
        ``None``: every facet the dataset configures. A name or list of names, maybe
        ``facet(name=..., ...)`` ODSQL; or ``{name: options}`` with options ``disjunctive``,
        ``hierarchical`` (bool), ``separator`` (str), ``sort`` (``count``, ``-count``,
        ``alphanum``, ``-alphanum``, ``num``, ``-num``) and ``limit`` (int).
    where, refine, exclude, bbox, mask, distance, geo_field
        Filters, as for ``read_ods``. A refined value comes back with ``state="refined"``,
        an excluded one with ``state="excluded"`` and no count.
    timezone
        Timezone of the date facets' buckets (default UTC).
    lang, api_key, session
        As for ``read_ods``.

    Returns
    -------
    pandas.DataFrame
        One row per facet value, depth-first: ``facet``, ``value`` (the refine value),
        ``name`` (display), ``path`` (``2021/03/14`` for dates, ``Musique/Jazz`` for
        hierarchies), ``count`` (Int64), ``state``, ``depth`` (0 at the top), ``parent``.
        ``attrs["ods"]`` holds the provenance (``kind="facets"``).
    """
    query = Query(
        dataset,
        where=where,
        refine=refine,
        exclude=exclude,
        timezone=timezone,
        lang=lang,
        bbox=bbox,
        mask=mask,
        distance=distance,
    )
    with _open(portal, api_key, session) as adapter:
        return facets_with(adapter, query, facets=facets, geo_field=geo_field)


# --------------------------------------------------------------------------------------------
# Geo clusters


def _check_zoom(zoom: Any) -> int:
    if isinstance(zoom, bool) or not isinstance(zoom, numbers.Integral):
        raise InvalidQueryArgument(f"zoom: expected an int from 0 to 25 (or None), got {zoom!r}")
    if not 0 <= int(zoom) <= GEO_CLUSTER_MAX_ZOOM:
        raise InvalidQueryArgument(
            f"zoom: must lie between 0 and {GEO_CLUSTER_MAX_ZOOM}, got {zoom}"
        )
    return int(zoom)


def _check_radius(radius: Any) -> int:
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 1:
        raise InvalidQueryArgument(f"radius: expected a positive number of pixels, got {radius!r}")
    return int(radius)


def _cluster_field(specs: Mapping[str, FieldSpec], field: str | None, dataset: str) -> str:
    points = [spec.name for spec in _geo_specs(specs, ("geo_point_2d",))]
    if field is None:
        if not points:
            raise InvalidQueryArgument(
                f"field: dataset {dataset!r} has no geo_point_2d field to cluster"
            )
        return points[0]
    if field not in specs:
        raise InvalidQueryArgument(
            f"field: dataset {dataset!r} has no field {field!r} (geo_point_2d fields: "
            f"{points or 'none'})"
        )
    if field not in points:
        raise InvalidQueryArgument(
            f"field: {field!r} is a {specs[field].type} field; only geo_point_2d fields can be "
            f"clustered (geo_point_2d fields: {points or 'none'})"
        )
    return field


def _extent(adapter: ExploreAdapter, query: Query, field: str) -> tuple[float, ...] | None:
    """``(min_lon, min_lat, max_lon, max_lat)`` of the matching points (one request)."""
    from shapely.geometry import shape

    extent_query = query.replace(
        select=[f"bbox({quote_field(field)}) AS extent"], group_by=None, order_by=None, limit=None
    )
    rows = _ungrouped_rows(adapter, extent_query)
    value = rows[0].get("extent") if rows else None
    if value is None:
        return None
    if isinstance(value, Mapping) and value.get("type") == "Feature":
        value = value.get("geometry")
    try:
        bounds = tuple(float(v) for v in shape(value).bounds)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ServerError(
            f"Dataset {query.dataset!r}: cannot read bbox({field}) {value!r} ({err})",
            dataset=query.dataset,
        ) from err
    return bounds if all(math.isfinite(v) for v in bounds) else None


def geocluster_with(
    adapter: ExploreAdapter,
    query: Query,
    *,
    zoom: int | None = None,
    field: str | None = None,
    radius: int = GEO_CLUSTER_DEFAULT_RADIUS,
    agg: Any = None,
    hulls: bool = False,
    width_px: int = 800,
    height_px: int | None = None,
) -> geopandas.GeoDataFrame:
    """:func:`read_ods_geocluster` on an open adapter, for the filters of ``query``."""
    radius = _check_radius(radius)
    if zoom is not None:
        zoom = _check_zoom(zoom)
    if not isinstance(hulls, bool):
        raise InvalidQueryArgument(f"hulls: expected True or False, got {hulls!r}")
    metadata = adapter.dataset_metadata(query.dataset)
    specs = _specs_by_name(metadata)
    field = _cluster_field(specs, field, query.dataset)
    aggregates = _parse_aggregates(agg, specs, query.dataset)
    clash = sorted(_CLUSTER_COLUMNS & {column.name for column in aggregates})
    if clash:
        raise InvalidQueryArgument(
            f"agg: {clash} name columns the cluster frame makes itself; pick other names"
        )
    query = query.with_geo_field(field) if query.needs_geo_field else query
    extent: tuple[float, ...] | None = query.bbox
    if zoom is None:
        if extent is None:
            extent = _extent(adapter, query, field)
        zoom = (
            zoom_for_bbox(extent, width_px=width_px, height_px=height_px)
            if extent is not None
            else 0
        )
    quoted = quote_field(field)
    select = ["count(*) AS odsframe_count"]
    if hulls:
        select.append(f"envelope({quoted}) AS odsframe_hull")
    select += [column.select_item for column in aggregates]
    clusters = query.replace(
        select=select,
        group_by=f"geo_cluster({quoted}, {zoom}, {radius}) AS odsframe_cluster",
        order_by=None,
        limit=None,
    )
    fetched_at = datetime.now(UTC)
    rows = adapter.grouped(clusters.replace(limit=GROUP_BY_MAX_LIMIT))
    route = "records"
    if len(rows) >= GROUP_BY_MAX_LIMIT:
        rows, route = _all_clusters(adapter, clusters, zoom)
    kinds = {column.alias or "": column.kind for column in aggregates if column.kind}
    gdf = _clusters_frame(rows, aggregates, hulls=hulls, kinds=kinds, timezone=query.timezone)
    gdf.attrs["ods"] = _provenance(
        "geocluster",
        adapter,
        clusters,
        url=_grouped_url(adapter, clusters, GROUP_BY_MAX_LIMIT),
        fetched_at=fetched_at,
        metadata=metadata,
        details={
            "field": field,
            "zoom": zoom,
            "radius": radius,
            "hulls": hulls,
            "agg": {column.name: column.expression for column in aggregates},
        },
        extra={"route": route, "clusters": len(gdf)},
    )
    return gdf


def _all_clusters(
    adapter: ExploreAdapter, clusters: Query, zoom: int
) -> tuple[list[dict[str, Any]], str]:
    if _offers_json_export(adapter, clusters.dataset):
        try:
            key = _Column("cluster", "", "odsframe_cluster", "cluster", False)
            return _export_rows(adapter, clusters, [key]), "export"
        except (QueryError, ServerError) as err:
            logger.info("grouped export of clusters refused (%s)", err)
    raise IncompleteResultError(
        f"Dataset {clusters.dataset!r} has more than {GROUP_BY_MAX_LIMIT:,} clusters at zoom "
        f"{zoom} and the portal offers no grouped export to read them all; use a lower zoom "
        "or a smaller bbox.",
        dataset=clusters.dataset,
    )


def _clusters_frame(
    rows: list[dict[str, Any]],
    aggregates: Sequence[_Column],
    *,
    hulls: bool,
    kinds: Mapping[str, str | None],
    timezone: str | None,
) -> geopandas.GeoDataFrame:
    import geopandas

    declared = {name: kind for name, kind in kinds.items() if kind}
    names = {column.alias or column.name: column.name for column in aggregates}
    if rows:
        gdf = geoclusters_to_geodataframe(
            rows,
            "odsframe_cluster",
            count_key="odsframe_count",
            hull_key="odsframe_hull" if hulls else None,
            key_types=declared,
            timezone=timezone,
        )
        series = gdf.attrs.get("ods_clusters", {}).get("series", {})
        gdf = gdf.rename(columns=names)
        gdf.attrs["ods_clusters"]["series"] = {names.get(k, k): v for k, v in series.items()}
        return gdf
    empty = frame_from_groups(
        [], keys=[], aggregates=list(names), key_types=declared, timezone=timezone
    ).rename(columns=names)
    columns: dict[str, Any] = {"count": pd.array([], dtype="Int64")}
    if hulls:
        columns["hull"] = pd.Series([], dtype=object)
    frame = pd.concat([pd.DataFrame(columns), empty], axis=1)
    gdf = geopandas.GeoDataFrame(
        frame, geometry=geopandas.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326"
    )
    gdf.attrs["ods_clusters"] = {"count": {"min": None, "max": None}, "series": {}}
    return gdf


def read_ods_geocluster(
    portal: str,
    dataset: str,
    *,
    zoom: int | None = None,
    field: str | None = None,
    radius: int = GEO_CLUSTER_DEFAULT_RADIUS,
    agg: Mapping[str, AggSpec] | None = None,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    hulls: bool = False,
    width_px: int = 800,
    height_px: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    api_key: str | None = None,
    session: Any = None,
) -> geopandas.GeoDataFrame:
    """Cluster a dataset's points on the portal (``geo_cluster``) into a GeoDataFrame.

    Parameters
    ----------
    portal, dataset
        As for :func:`odsframe.read_ods`.
    zoom
        Web-map zoom (0-25) the clusters are made for. ``None``: the zoom at which the
        ``bbox`` (else the extent of the matching points, one ``bbox(field)`` request) fits
        a ``width_px`` x ``height_px`` map (see :func:`zoom_for_bbox`, and
        :func:`choose_zoom` to aim at a number of clusters).
    field
        The geo_point_2d field to cluster (default: the dataset's first one).
    radius
        Cluster radius in pixels at that zoom (ODS default 40).
    agg
        Aggregates per cluster, as for :func:`read_ods_aggregate` (``{"mean_price":
        ("price", "mean")}``); ``count``, ``hull`` and ``geometry`` are taken.
    where, refine, exclude, bbox, mask, distance
        Filters, as for ``read_ods``; spatial ones apply to ``field``.
    hulls
        Add a ``hull`` column: the convex hull of each cluster's points (a Point for one
        distinct point, a LineString for two, else a Polygon).
    width_px, height_px
        Map size used to pick the zoom when ``zoom=None``.
    timezone, lang, api_key, session
        As for ``read_ods``.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per cluster in the portal's order: ``geometry`` (the centroid, the
        mean of the cluster's points), ``count`` (Int64), ``hull`` when asked, then the
        aggregates. ``attrs["ods"]`` holds the provenance (``zoom``, ``radius``, ``field``);
        ``attrs["ods_clusters"]`` the min/max of ``count`` and of numeric aggregates.

    Raises
    ------
    InvalidQueryArgument
        No geo_point_2d field, a bad zoom or radius, an aggregate named ``count``...
    IncompleteResultError
        More than 20 000 clusters and no grouped export to read them all.
    """
    query = Query(
        dataset,
        where=where,
        refine=refine,
        exclude=exclude,
        timezone=timezone,
        lang=lang,
        bbox=bbox,
        mask=mask,
        distance=distance,
        geo_field=field,
    )
    with _open(portal, api_key, session) as adapter:
        return geocluster_with(
            adapter,
            query,
            zoom=zoom,
            field=field,
            radius=radius,
            agg=agg,
            hulls=hulls,
            width_px=width_px,
            height_px=height_px,
        )


def choose_zoom_with(
    adapter: ExploreAdapter,
    query: Query,
    *,
    target_clusters: int = 50,
    field: str | None = None,
    radius: int = GEO_CLUSTER_DEFAULT_RADIUS,
) -> int:
    """:func:`choose_zoom` on an open adapter."""
    if (
        isinstance(target_clusters, bool)
        or not isinstance(target_clusters, int)
        or target_clusters < 1
    ):
        raise InvalidQueryArgument(
            f"target_clusters: expected a positive int, got {target_clusters!r}"
        )
    radius = _check_radius(radius)
    specs = _specs_by_name(adapter.dataset_metadata(query.dataset))
    field = _cluster_field(specs, field, query.dataset)
    query = query.with_geo_field(field) if query.needs_geo_field else query
    quoted = quote_field(field)
    counted: dict[int, int] = {}

    def clusters_at(zoom: int) -> int:
        if zoom not in counted:
            probe = query.replace(
                select=["count(*) AS n"],
                group_by=f"geo_cluster({quoted}, {zoom}, {radius}) AS c",
                order_by=None,
                limit=min(target_clusters + 1, GROUP_BY_MAX_LIMIT),
            )
            counted[zoom] = len(adapter.grouped(probe))
        return counted[zoom]

    low, high = 0, GEO_CLUSTER_MAX_ZOOM
    while low < high:  # clusters grow in number with the zoom: the largest zoom that fits
        middle = (low + high + 1) // 2
        if clusters_at(middle) <= target_clusters:
            low = middle
        else:
            high = middle - 1
    # No point at all matches: every zoom fits; say 0 rather than the deepest zoom.
    return 0 if clusters_at(low) == 0 else low


def choose_zoom(
    portal: str,
    dataset: str,
    *,
    target_clusters: int = 50,
    field: str | None = None,
    radius: int = GEO_CLUSTER_DEFAULT_RADIUS,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    api_key: str | None = None,
    session: Any = None,
) -> int:
    """The largest zoom at which the matching points make at most ``target_clusters`` clusters.

    Probes a few zooms (a binary search over 0-25, about five grouped requests), assuming
    that the number of clusters grows with the zoom, as it does for real data.

    Parameters
    ----------
    target_clusters
        The most clusters wanted.
    field, radius, where, refine, exclude, bbox, mask, distance, api_key, session
        As for :func:`read_ods_geocluster`.

    Returns
    -------
    int
        A zoom for ``read_ods_geocluster(..., zoom=...)``; 0 when even zoom 0 makes more,
        or when no point matches.
    """
    query = Query(
        dataset,
        where=where,
        refine=refine,
        exclude=exclude,
        bbox=bbox,
        mask=mask,
        distance=distance,
        geo_field=field,
    )
    with _open(portal, api_key, session) as adapter:
        return choose_zoom_with(
            adapter, query, target_clusters=target_clusters, field=field, radius=radius
        )


# --------------------------------------------------------------------------------------------
# Drill-down from a read_ods frame (df.ods.aggregate, .facets, .geocluster)


def _frame_source(frame: pd.DataFrame) -> dict[str, Any]:
    ods = frame.attrs.get("ods") if isinstance(frame, pd.DataFrame) else None
    if (
        not isinstance(ods, Mapping)
        or ods.get("kind", "records") != "records"
        or not ods.get("portal")
        or not ods.get("dataset")
    ):
        kind = ods.get("kind") if isinstance(ods, Mapping) else None
        raise ProvenanceError(
            "This frame does not come from read_ods (df.attrs['ods'] names no portal and "
            f"dataset of a records read{'; it is a ' + repr(kind) + ' frame' if kind else ''}); "
            "call read_ods_aggregate / read_ods_facets / read_ods_geocluster with the portal "
            "and dataset instead."
        )
    return dict(ods)


def _frame_query(
    frame: pd.DataFrame,
    *,
    where: Any,
    refine: Any,
    exclude: Any,
    timezone: str | None,
    lang: str | None,
    order_by: Any = None,
    limit: int | None = None,
) -> tuple[dict[str, Any], Query, str | None]:
    """The frame's source, its filters AND-ed with the extra ones, and its geo field."""
    source = _frame_source(frame)
    record = source.get("query") or {}
    distance = record.get("distance")
    base = Query(
        source["dataset"],
        where=list(record.get("where") or []),
        refine=list(record.get("refine") or []),
        exclude=list(record.get("exclude") or []),
        timezone=record.get("timezone"),
        lang=record.get("lang"),
        bbox=record.get("bbox"),
        mask=record.get("mask"),
        distance=(tuple(distance[0]), distance[1]) if distance else None,
    )
    extra = Query(source["dataset"], where=where, refine=refine, exclude=exclude)
    query = base.replace(
        where=[*base.where, *extra.where],
        refine=[*base.refine, *facet_filters(refine, "refine")],
        exclude=[*base.exclude, *facet_filters(exclude, "exclude")],
        timezone=timezone if timezone is not None else base.timezone,
        lang=lang if lang is not None else base.lang,
        order_by=order_by,
        limit=limit,
    )
    return source, query, record.get("geo_field")


def _frame_adapter(
    source: Mapping[str, Any], api_key: str | ApiKey | None, session: Any
) -> ExploreAdapter:
    """An adapter on the frame's portal, with the key and session of its read if known."""
    if api_key is None or session is None:
        remembered_key, remembered_session = remembered_credentials(source.get("read_id"))
        api_key = api_key if api_key is not None else remembered_key
        session = session if session is not None else remembered_session
    # Drill down in the API generation the frame was read with.
    return _open(str(source["portal"]), api_key, session, _source_version(source))


def aggregate_frame(
    frame: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    agg: Mapping[str, AggSpec] | None = None,
    *,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    partition: Partition = "auto",
    api_key: str | None = None,
    session: Any = None,
) -> pd.DataFrame:
    """:func:`read_ods_aggregate` on the dataset and filters ``frame`` was read with.

    The frame's ``where``, ``refine``, ``exclude``, spatial filters, ``timezone`` and
    ``lang`` (from ``attrs["ods"]``) apply, AND-ed with the ones given here. Its ``select``,
    ``order_by`` and ``limit`` do not: the aggregation covers every matching record.
    """
    source, query, geo_field = _frame_query(
        frame,
        where=where,
        refine=refine,
        exclude=exclude,
        timezone=timezone,
        lang=lang,
        order_by=order_by,
        limit=limit,
    )
    with _frame_adapter(source, api_key, session) as adapter:
        return aggregate_with(
            adapter, query, by=by, agg=agg, geo_field=geo_field, partition=partition
        )


def facets_frame(
    frame: pd.DataFrame,
    facets: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    *,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    timezone: str | None = None,
    lang: str | None = None,
    api_key: str | None = None,
    session: Any = None,
) -> pd.DataFrame:
    """:func:`read_ods_facets` on the dataset and filters ``frame`` was read with.

    Extra ``where``/``refine``/``exclude`` are AND-ed with the frame's (see
    :func:`aggregate_frame`).
    """
    source, query, geo_field = _frame_query(
        frame, where=where, refine=refine, exclude=exclude, timezone=timezone, lang=lang
    )
    with _frame_adapter(source, api_key, session) as adapter:
        return facets_with(
            adapter, query, facets=facets, geo_field=geo_field if query.needs_geo_field else None
        )


def geocluster_frame(
    frame: pd.DataFrame,
    zoom: int | None = None,
    *,
    field: str | None = None,
    radius: int = GEO_CLUSTER_DEFAULT_RADIUS,
    agg: Mapping[str, AggSpec] | None = None,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    hulls: bool = False,
    width_px: int = 800,
    height_px: int | None = None,
    api_key: str | None = None,
    session: Any = None,
) -> geopandas.GeoDataFrame:
    """:func:`read_ods_geocluster` on the dataset and filters ``frame`` was read with.

    Extra ``where``/``refine``/``exclude`` are AND-ed with the frame's (see
    :func:`aggregate_frame`); the frame's spatial filters apply to its own geo field.
    """
    source, query, geo_field = _frame_query(
        frame, where=where, refine=refine, exclude=exclude, timezone=None, lang=None
    )
    if query.needs_geo_field:
        if geo_field is None:
            geo_field = field
        if geo_field is not None:
            query = query.with_geo_field(geo_field)
    with _frame_adapter(source, api_key, session) as adapter:
        return geocluster_with(
            adapter,
            query,
            zoom=zoom,
            field=field,
            radius=radius,
            agg=agg,
            hulls=hulls,
            width_px=width_px,
            height_px=height_px,
        )


#: What ``df.ods`` delegates to (kept here so the accessor stays a thin layer).
DRILL_DOWN: dict[str, Callable[..., Any]] = {
    "aggregate": aggregate_frame,
    "facets": facets_frame,
    "geocluster": geocluster_frame,
}
