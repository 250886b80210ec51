"""Grouped answers, geo clusters and analyze series as typed frames (pure, no I/O).

Three answer shapes are covered (ods-api.md sections 4.3, 5.6, 5.8, 7, 2.7 and 2.9):

* v2.x grouped records: ``{"results": [{"<key>": value, "<aggregate>": number}, ...]}``
  (v2.0: ``records`` or ``aggregations``), read by :func:`frame_from_groups`; groups of
  ``geo_cluster(...)`` are read by :func:`geoclusters_to_geodataframe`;
* v1 ``/api/records/1.0/geocluster/``: :func:`geoclusters_from_v1`;
* v1 ``/api/records/1.0/analyze/``: :func:`frame_from_v1_analyze`.

Typing rules (per column):

* date and datetime keys (ISO strings) become ``datetime64``; the column is timezone-aware
  when the values carry an offset (converted to ``timezone`` when given, else kept when all
  offsets agree, else UTC) and naive otherwise. v2.0 epoch-millisecond dates are read as UTC.
* ints become ``Int64``, doubles ``Float64``, booleans ``boolean``, counts ``Int64``.
* range labels become an interval column (see :func:`parse_range_label`); when one label of
  the column cannot be read, or the intervals are not closed on the same side, the column
  keeps the labels as strings.
* ``geo_cluster`` keys ``{"cluster_centroid": {"lat", "lon"}}`` and geo points become shapely
  Points (lon, lat); ``envelope``/``bbox`` aggregates and geo shapes (GeoJSON geometries,
  maybe Feature-wrapped) become shapely geometries.

Heavy libraries (shapely, geopandas) are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from odsframe._spec import FIELD_TYPES, GEO_CLUSTER_MAX_ZOOM
from odsframe.errors import InvalidQueryArgument, ServerError

if TYPE_CHECKING:
    import geopandas

__all__ = [
    "COLUMN_KINDS",
    "frame_from_groups",
    "frame_from_v1_analyze",
    "geoclusters_from_v1",
    "geoclusters_to_geodataframe",
    "parse_range_label",
    "zoom_for_bbox",
    "zoom_for_clusters",
]

#: Kinds accepted in ``key_types``: the ODS field types plus the result-only kinds.
COLUMN_KINDS: frozenset[str] = FIELD_TYPES | {
    "range",  # a range(...) label
    "cluster",  # a geo_cluster(...) key
    "count",  # count(...): Int64
    "number",  # any numeric aggregate: Int64 when every value is an int, else Float64
    "geometry",  # a GeoJSON geometry (envelope, bbox), like geo_shape
}

_GEOJSON_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
        "Feature",
    }
)

_RANGE_LABEL = re.compile(r"^\s*([\[\]])\s*([^,\[\]]+?)\s*,\s*([^,\[\]]+?)\s*([\[\]])\s*$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_TIME_WITH_OFFSET = re.compile(r"[T ]\d{2}:\d{2}.*(Z|[+-]\d{2}:?\d{2})$")

#: Expression prefixes (normalised: lower case, no spaces) that fix a column's kind.
_KIND_BY_FUNCTION: tuple[tuple[str, str], ...] = (
    ("count(", "count"),
    ("geo_cluster(", "cluster"),
    ("range(", "range"),
    ("envelope(", "geometry"),
    ("bbox(", "geometry"),
    ("year(", "int"),
    ("month(", "int"),
    ("day(", "int"),
    ("hour(", "int"),
    ("minute(", "int"),
    ("second(", "int"),
    ("date_format(", "text"),
    ("avg(", "double"),
    ("median(", "double"),
    ("percentile(", "double"),
)


# --------------------------------------------------------------------------- range labels


def parse_range_label(label: str) -> pd.Interval:
    """Read a ``range()`` group label as a left-closed :class:`pandas.Interval`.

    ODS writes ranges with a lower bound included and an upper bound excluded. Forms read:

    * ``"[10, 15["`` -> ``[10, 15)``;
    * integer labels ``"[15, 19]"`` (the label shows ``upper - 1``) -> ``[15, 20)``, and
      likewise ``"]14, 19]"`` -> ``[15, 20)``;
    * open ends ``"[*, 14]"`` -> ``[-inf, 15)`` and ``"[40, *]"`` -> ``[40, inf)``;
    * decimal or date bounds keep the brackets as written (``"[0.5, 1.5]"`` -> closed on both
      sides, ``"]0.5, 1.5]"`` -> closed right);
    * date bounds (``"[2020-01-01T00:00:00.000Z, 2020-01-02T00:00:00.000Z["``) give an
      interval of Timestamps.

    Parameters
    ----------
    label
        The group key as the server wrote it.

    Returns
    -------
    pandas.Interval

    Raises
    ------
    ValueError
        When the label is not a range label (open-ended date ranges included: an interval of
        Timestamps has no infinite end).
    """
    if not isinstance(label, str):
        raise ValueError(f"a range label must be a string, not {type(label).__name__}")
    match = _RANGE_LABEL.match(label)
    if match is None:
        raise ValueError(f"{label!r} is not a range label like '[10, 15[' or '[*, 14]'")
    left_bracket, low_text, high_text, right_bracket = match.groups()
    low = _range_bound(low_text, label)
    high = _range_bound(high_text, label)
    low_included = left_bracket == "["
    high_included = right_bracket == "]"

    bounds = [b for b in (low, high) if b is not None]
    if any(isinstance(b, pd.Timestamp) for b in bounds):
        if len(bounds) < 2 or not all(isinstance(b, pd.Timestamp) for b in bounds):
            raise ValueError(f"{label!r}: a date range needs two date bounds")
        return pd.Interval(low, high, closed=_closed_side(low_included, high_included))

    if all(isinstance(b, int) for b in bounds):
        # Integer labels: normalise to [low, high) whatever brackets were written.
        int_low = low + (0 if low_included else 1) if isinstance(low, int) else -math.inf
        int_high = high + (1 if high_included else 0) if isinstance(high, int) else math.inf
        if any(math.isinf(b) for b in (int_low, int_high)):
            return pd.Interval(float(int_low), float(int_high), closed="left")
        return pd.Interval(int(int_low), int(int_high), closed="left")

    num_low = -math.inf if low is None else float(low)
    num_high = math.inf if high is None else float(high)
    # An open end is never included, so only the finite ends decide the closed side.
    return pd.Interval(
        num_low,
        num_high,
        closed=_closed_side(low_included or low is None, high_included and high is not None),
    )


def _closed_side(low_included: bool, high_included: bool) -> Any:
    if low_included and high_included:
        return "both"
    if low_included:
        return "left"
    if high_included:
        return "right"
    return "neither"


def _range_bound(text: str, label: str) -> int | float | pd.Timestamp | None:
    if text == "*":
        return None
    if _INTEGER.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    if _ISO_DATE.match(text) or _ISO_DATETIME.match(text) or re.match(r"^\d{4}(-\d{2})?$", text):
        return pd.Timestamp(text)
    raise ValueError(f"{label!r}: cannot read the bound {text!r}")


# --------------------------------------------------------------------------- grouped records


def frame_from_groups(
    results: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    keys: Sequence[str],
    aggregates: Sequence[str],
    key_types: Mapping[str, str] | None = None,
    timezone: str | None = None,
) -> pd.DataFrame:
    """Turn the groups of a grouped records answer into a tidy, typed DataFrame.

    Parameters
    ----------
    results
        The ``results`` list of a v2.1 grouped answer (or the whole answer; v2.0 ``records``
        and ``aggregations`` are read too, a single aggregation object gives one row).
    keys, aggregates
        Column names in the answer: the group keys, then the aggregates (aliases or the
        expression text as written). They become the frame's columns in that order. A name
        that differs from the answer's key only by case, spaces or back-quotes still matches.
    key_types
        Kind of some columns (keys or aggregates): an ODS field type or one of ``range``,
        ``cluster``, ``count``, ``number``, ``geometry``. Columns not named here take their
        kind from the expression (``count(``, ``geo_cluster(``, ``range(``, ``envelope(``,
        ``bbox(``, ``year(``...) or else from their values.
    timezone
        The request's timezone: offset-carrying dates are converted to it.

    Returns
    -------
    pandas.DataFrame
        One row per group, one typed column per key and per aggregate (see the module
        docstring for the typing rules). Geometries are shapely objects in object columns.

    Raises
    ------
    InvalidQueryArgument
        A name is repeated, or a kind in ``key_types`` is unknown.
    ServerError
        The answer is not a list of objects, a column is missing from every group, or a value
        cannot be read as its declared kind.
    """
    rows = _group_rows(results)
    names = [*keys, *aggregates]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidQueryArgument(f"column names given twice in keys/aggregates: {repeated}")
    declared = _check_kinds(key_types)
    answer_keys = _resolve_columns(names, rows)
    columns: dict[str, Any] = {}
    for name in names:
        key = answer_keys[name]
        values = [row.get(key) for row in rows]
        kind = declared.get(name) or declared.get(key) or _kind_from_expression(key)
        columns[name] = _typed_column(values, kind or _infer_kind(values), name, timezone)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def _group_rows(results: Any) -> list[Mapping[str, Any]]:
    if isinstance(results, Mapping):
        for member in ("results", "aggregations", "records"):
            if member in results:
                inner = results[member]
                break
        else:
            raise ServerError(
                "a grouped answer must be a list of groups or hold one under 'results' "
                f"('aggregations' or 'records' in v2.0); got keys {sorted(results)}"
            )
        results = [inner] if isinstance(inner, Mapping) else inner
    if isinstance(results, str | bytes) or not isinstance(results, Sequence):
        raise ServerError(
            f"a grouped answer must be a list of groups, not {type(results).__name__}"
        )
    for position, row in enumerate(results):
        if not isinstance(row, Mapping):
            raise ServerError(
                f"group {position} of the answer is a {type(row).__name__}, not an object"
            )
    return list(results)


def _check_kinds(key_types: Mapping[str, str] | None) -> dict[str, str]:
    if not key_types:
        return {}
    unknown = {name: kind for name, kind in key_types.items() if kind not in COLUMN_KINDS}
    if unknown:
        raise InvalidQueryArgument(
            f"unknown column kind(s) in key_types: {unknown}; expected one of "
            f"{sorted(COLUMN_KINDS)}"
        )
    return dict(key_types)


def _normalise_expression(text: str) -> str:
    return re.sub(r"[\s`]", "", text).lower()


def _answer_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _resolve_columns(names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    present = _answer_keys(rows)
    by_normal = {_normalise_expression(k): k for k in present}
    resolved: dict[str, str] = {}
    for name in names:
        if name in present or not rows:
            resolved[name] = name
        elif _normalise_expression(name) in by_normal:
            resolved[name] = by_normal[_normalise_expression(name)]
        else:
            raise ServerError(
                f"no column {name!r} in the grouped answer; its columns are {present}"
            )
    return resolved


def _kind_from_expression(key: str) -> str | None:
    normal = _normalise_expression(key)
    for prefix, kind in _KIND_BY_FUNCTION:
        if normal.startswith(prefix):
            return kind
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _infer_kind(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "empty"
    if all(isinstance(v, bool | np.bool_) for v in present):
        return "boolean"
    if all(_is_number(v) for v in present):
        integral = all(isinstance(v, int | np.integer) for v in present)
        return "int" if integral else "double"
    if all(isinstance(v, Mapping) for v in present):
        if all("cluster_centroid" in v for v in present):
            return "cluster"
        if all(v.get("type") in _GEOJSON_TYPES for v in present):
            return "geometry"
        if all("lon" in v and "lat" in v for v in present):
            return "geo_point_2d"
        return "json_blob"
    if all(isinstance(v, str) for v in present):
        if all(_RANGE_LABEL.match(v) for v in present):
            return "range"
        if all(_ISO_DATE.match(v) for v in present):
            return "date"
        if all(_ISO_DATE.match(v) or _ISO_DATETIME.match(v) for v in present):
            return "datetime"
        return "text"
    return "json_blob"


def _typed_column(values: Sequence[Any], kind: str, name: str, timezone: str | None) -> Any:
    if kind in ("int", "count"):
        return _integer_array(values, name)
    if kind == "double":
        return pd.array([_as_float(v, name) for v in values], dtype="Float64")
    if kind == "number":
        if all(v is None or isinstance(v, int | np.integer) for v in values):
            return _integer_array(values, name)
        return pd.array([_as_float(v, name) for v in values], dtype="Float64")
    if kind == "boolean":
        return pd.array(list(values), dtype="boolean")
    if kind == "text":
        return pd.array(
            [None if v is None else str(v) for v in values], dtype="string"
        )  # as read_ods text columns
    if kind in ("date", "datetime"):
        return _datetime_column(values, kind, name, timezone)
    if kind == "range":
        return _range_column(values)
    if kind == "cluster":
        return _object_array([None if v is None else _cluster_point(v, name) for v in values])
    if kind == "geo_point_2d":
        return _object_array([None if v is None else _geo_point(v, name) for v in values])
    if kind in ("geometry", "geo_shape"):
        return _object_array([_geometry(v, name) for v in values])
    # empty, json_blob, file and anything else: the values as they came
    return _object_array(list(values))


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _integer_array(values: Sequence[Any], name: str) -> Any:
    integers: list[int | None] = []
    for value in values:
        if value is None:
            integers.append(None)
            continue
        number = _as_float(value, name) if not isinstance(value, int | np.integer) else value
        if isinstance(number, float) and not number.is_integer():
            # A declared int that is not integral: keep the information rather than fail.
            return pd.array([_as_float(v, name) for v in values], dtype="Float64")
        integers.append(int(number) if number is not None else None)
    return pd.array(integers, dtype="Int64")


def _as_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        raise ServerError(f"column {name!r}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ServerError(f"column {name!r}: expected a number, got {value!r}") from None


def _datetime_column(
    values: Sequence[Any], kind: str, name: str, timezone: str | None
) -> pd.Series:
    series = pd.Series(list(values), dtype=object)
    present = series.dropna()
    if len(present) and all(_is_number(v) for v in present):
        # v2.0 writes dates as epoch milliseconds.
        instants = pd.to_datetime(series, unit="ms", utc=True)
        if kind == "date":
            return instants.dt.tz_localize(None)
        return instants.dt.tz_convert(timezone) if timezone else instants
    bad = [v for v in present if not isinstance(v, str)]
    if bad:
        raise ServerError(f"column {name!r}: expected ISO date strings, got {bad[0]!r}")
    with_offset = [bool(_TIME_WITH_OFFSET.search(v)) for v in present]
    try:
        if any(with_offset) and (timezone or not all(with_offset)):
            # Values without an offset next to values with one are UTC (ods-api.md 8.2).
            parsed = pd.to_datetime(series, format="ISO8601", utc=True)
            return parsed.dt.tz_convert(timezone) if timezone else parsed
        if any(with_offset):
            try:
                return pd.to_datetime(series, format="ISO8601")
            except ValueError:  # several offsets (summer and winter time): one instant type
                return pd.to_datetime(series, format="ISO8601", utc=True)
        return pd.to_datetime(series, format="ISO8601")
    except (ValueError, OverflowError):
        for value in present:
            try:
                pd.Timestamp(value)
            except (ValueError, OverflowError):
                raise ServerError(f"column {name!r}: cannot read {value!r} as a date") from None
        raise ServerError(f"column {name!r}: cannot read the values as dates") from None


def _range_column(values: Sequence[Any]) -> Any:
    labels = [None if v is None else str(v) for v in values]
    intervals: list[Any] = []
    for label in labels:
        if label is None:
            intervals.append(np.nan)
            continue
        try:
            intervals.append(parse_range_label(label))
        except ValueError:
            return pd.array(labels, dtype="str")
    try:
        return pd.arrays.IntervalArray(intervals)
    except (ValueError, TypeError):  # closed on different sides, or mixed bound types
        return pd.array(labels, dtype="str")


def _cluster_point(value: Any, name: str) -> Any:
    from shapely.geometry import Point

    centre = value.get("cluster_centroid", value) if isinstance(value, Mapping) else None
    if not isinstance(centre, Mapping) or "lat" not in centre or "lon" not in centre:
        raise ServerError(
            f"column {name!r}: expected a geo_cluster key "
            f'{{"cluster_centroid": {{"lat": .., "lon": ..}}}}, got {value!r}'
        )
    return Point(float(centre["lon"]), float(centre["lat"]))


def _geo_point(value: Any, name: str) -> Any:
    from shapely.geometry import Point

    try:
        if isinstance(value, Mapping):
            return Point(float(value["lon"]), float(value["lat"]))
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        lat, lon = value  # v1 and CSV order: lat, lon
        return Point(float(lon), float(lat))
    except (KeyError, TypeError, ValueError):
        raise ServerError(f"column {name!r}: cannot read {value!r} as a geo point") from None


def _geometry(value: Any, name: str) -> Any:
    from shapely.geometry import shape

    if value is None:
        return None
    try:
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, Mapping) and value.get("type") == "Feature":
            value = value.get("geometry")
            if value is None:
                return None
        return shape(value)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise ServerError(
            f"column {name!r}: cannot read {value!r} as a GeoJSON geometry ({exc})"
        ) from None


# --------------------------------------------------------------------------- geo clusters


def geoclusters_to_geodataframe(
    results: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    cluster_key: str,
    *,
    count_key: str | None = None,
    hull_key: str | None = None,
    key_types: Mapping[str, str] | None = None,
    timezone: str | None = None,
) -> geopandas.GeoDataFrame:
    """Turn the groups of a ``group_by=geo_cluster(...)`` answer into a GeoDataFrame.

    Parameters
    ----------
    results
        The ``results`` list (or the whole answer) of the grouped query.
    cluster_key
        The key of the ``geo_cluster(field, zoom)`` group (alias or expression text).
    count_key
        The key holding the cluster sizes; by default the one named ``count(*)`` or ``count``.
    hull_key
        The key holding each cluster's hull (``envelope(field)``); by default the only
        ``envelope(...)`` key or a key named ``hull``, if any.
    key_types, timezone
        As in :func:`frame_from_groups`, for the other columns.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326; ``geometry`` is the centroid Point, ``count`` is Int64, ``hull`` (when
        there is one) a shapely geometry, then the other keys and aggregates, typed (one
        named ``count``, ``hull`` or ``geometry`` gets a trailing underscore).
        ``attrs["ods_clusters"]`` holds the ``count`` (and per-aggregate) ``{min, max}``
        that v1 used to send for colour and size scales.

    Raises
    ------
    ServerError
        The answer has no ``cluster_key`` or no count column.
    """
    import geopandas

    rows = _group_rows(results)
    present = _answer_keys(rows)
    cluster_col = _resolve_columns([cluster_key], rows)[cluster_key]
    count_col = _find_count_column(count_key, rows, present)
    hull_col = _find_hull_column(hull_key, rows, present)
    special = {cluster_col, count_col, hull_col}
    others = [k for k in present if k not in special]
    kinds = {**_check_kinds(key_types), cluster_col: "cluster"}
    if count_col is not None:
        kinds[count_col] = "count"
    if hull_col is not None:
        kinds[hull_col] = "geometry"
    aggregates = [c for c in (count_col, hull_col) if c is not None] + others
    frame = frame_from_groups(
        rows, keys=[cluster_col], aggregates=aggregates, key_types=kinds, timezone=timezone
    )
    if count_col is None:  # only when there are no groups at all
        frame["count"] = pd.array([], dtype="Int64")
    else:
        frame = frame.rename(columns={count_col: "count"})
    if hull_col is not None:
        frame = frame.rename(columns={hull_col: "hull"})
    centroids = frame.pop(cluster_col)
    if any(point is None for point in centroids):
        raise ServerError(f"a group of the answer has no {cluster_key!r} centroid")
    # Other columns named like the ones this function makes get a trailing underscore.
    taken = {"count", "hull", "geometry"}
    renamed = {name: f"{name}_" if name in taken else name for name in others}
    frame = frame.rename(columns=renamed)
    others = [renamed[name] for name in others]
    columns = ["count", *(["hull"] if hull_col is not None else []), *others]
    gdf = geopandas.GeoDataFrame(
        frame[columns],
        geometry=geopandas.GeoSeries(list(centroids), index=frame.index, crs="EPSG:4326"),
    )
    gdf.attrs["ods_clusters"] = {
        "count": _min_max(gdf["count"]),
        "series": {
            name: _min_max(gdf[name])
            for name in others
            if pd.api.types.is_numeric_dtype(gdf[name].dtype)
            and not pd.api.types.is_bool_dtype(gdf[name].dtype)
        },
    }
    return gdf


def _find_count_column(
    count_key: str | None, rows: Sequence[Mapping[str, Any]], present: Sequence[str]
) -> str | None:
    if count_key is not None:
        return _resolve_columns([count_key], rows)[count_key]
    for key in present:
        if _normalise_expression(key) in ("count(*)", "count"):
            return key
    if rows:
        raise ServerError(
            f"no count column (count(*) or count) in the clusters answer; its columns are "
            f"{list(present)}; name it with count_key="
        )
    return None


def _find_hull_column(
    hull_key: str | None, rows: Sequence[Mapping[str, Any]], present: Sequence[str]
) -> str | None:
    if hull_key is not None:
        return _resolve_columns([hull_key], rows)[hull_key]
    candidates = [
        k
        for k in present
        if _normalise_expression(k).startswith("envelope(") or _normalise_expression(k) == "hull"
    ]
    return candidates[0] if len(candidates) == 1 else None


def _min_max(column: pd.Series) -> dict[str, Any]:
    present = column.dropna()
    if present.empty:
        return {"min": None, "max": None}
    low, high = present.min(), present.max()
    return {"min": _plain(low), "max": _plain(high)}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def geoclusters_from_v1(payload: Mapping[str, Any]) -> geopandas.GeoDataFrame:
    """Read a v1 ``/api/records/1.0/geocluster/`` answer as a GeoDataFrame.

    Parameters
    ----------
    payload
        ``{"clusters": [{"cluster_center": [lat, lon], "count": n, "cluster": geometry,
        "series": {...}}], "count": {"min", "max"}, "series": {...}, "clusterprecision": z}``.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326; ``geometry`` is the centre Point (lon, lat), ``count`` Int64, ``hull`` the
        ``cluster`` geometry (a Point for single-record clusters, else a Polygon), then one
        column per serie (a serie named like one of those columns gets a ``series.`` prefix).
        ``attrs["ods_clusters"]`` keeps the answer's ``count``, ``series`` and
        ``clusterprecision`` summaries.

    Raises
    ------
    ServerError
        The payload has no ``clusters`` list, or a cluster has no usable ``cluster_center``.
    """
    import geopandas
    from shapely.geometry import Point

    clusters = payload.get("clusters") if isinstance(payload, Mapping) else None
    if not isinstance(clusters, list):
        raise ServerError(
            "a v1 geocluster answer must be an object with a 'clusters' list; got "
            f"{type(payload).__name__}"
            + (f" with keys {sorted(payload)}" if isinstance(payload, Mapping) else "")
        )
    centres: list[Any] = []
    counts: list[Any] = []
    hulls: list[Any] = []
    series_rows: list[Mapping[str, Any]] = []
    for position, cluster in enumerate(clusters):
        if not isinstance(cluster, Mapping):
            raise ServerError(f"cluster {position} is a {type(cluster).__name__}, not an object")
        centre = cluster.get("cluster_center")
        try:
            lat, lon = centre  # type: ignore[misc]
            centres.append(Point(float(lon), float(lat)))
        except (TypeError, ValueError):
            raise ServerError(
                f"cluster {position}: 'cluster_center' must be [lat, lon], got {centre!r}"
            ) from None
        counts.append(cluster.get("count"))
        hulls.append(_geometry(cluster.get("cluster"), "cluster"))
        series = cluster.get("series") or {}
        series_rows.append(series if isinstance(series, Mapping) else {})

    columns: dict[str, Any] = {
        "count": _integer_array(counts, "count"),
        "hull": _object_array(hulls),
    }
    for serie in _answer_keys(series_rows):
        column = f"series.{serie}" if serie in ("count", "hull", "geometry") else serie
        values = [row.get(serie) for row in series_rows]
        columns[column] = _typed_column(values, "number", column, None)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(clusters)))
    gdf = geopandas.GeoDataFrame(
        frame, geometry=geopandas.GeoSeries(centres, index=frame.index, crs="EPSG:4326")
    )
    gdf.attrs["ods_clusters"] = {
        "count": dict(payload.get("count") or _min_max(gdf["count"])),
        "series": dict(payload.get("series") or {}),
        "clusterprecision": payload.get("clusterprecision"),
    }
    return gdf


# --------------------------------------------------------------------------- v1 analyze


def frame_from_v1_analyze(
    payload: Sequence[Mapping[str, Any]] | Mapping[str, Any], *, timezone: str | None = None
) -> pd.DataFrame:
    """Read a v1 ``/api/records/1.0/analyze/`` answer as a typed DataFrame.

    Parameters
    ----------
    payload
        A list of ``{"x": value, "<serie>": number}`` (or the widgets' join form
        ``{"results": [...], "aggregations": {...}}``, whose ``aggregations`` go to
        ``attrs["ods_analyze"]``).
    timezone
        The request's timezone; date buckets are given as local components, so a date ``x``
        column is localised to it when given (naive otherwise).

    Returns
    -------
    pandas.DataFrame
        Column ``x`` first, then one column per serie (Int64 or Float64). A date ``x``
        (``{"year": 2002, "month": 1}``) becomes a datetime column; periodic buckets without a
        year (``{"weekday": 0}``) become one Int64 column per component, named ``x_<component>``.

    Raises
    ------
    ServerError
        The payload is not a list of objects.
    """
    aggregations = None
    if isinstance(payload, Mapping):
        if "results" not in payload:
            raise ServerError(
                f"an analyze answer must be a list of buckets; got an object with keys "
                f"{sorted(payload)}"
            )
        aggregations = payload.get("aggregations")
        payload = payload["results"]
    rows = _group_rows(payload)
    series_names = [k for k in _answer_keys(rows) if k != "x"]
    xs = [row.get("x") for row in rows]
    columns: dict[str, Any] = {}
    present = [x for x in xs if x is not None]
    if present and all(isinstance(x, Mapping) for x in present):
        components = _answer_keys(present)
        if "year" in components:
            columns["x"] = _timestamps_from_components(xs, timezone)
        else:
            for component in components:
                values = [None if x is None else x.get(component) for x in xs]
                columns[f"x_{component}"] = _integer_array(values, f"x_{component}")
    else:
        columns["x"] = _typed_column(xs, _infer_kind(xs), "x", timezone)
    for serie in series_names:
        values = [row.get(serie) for row in rows]
        columns[serie] = _typed_column(values, "number", serie, None)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))
    if aggregations is not None:
        frame.attrs["ods_analyze"] = {"aggregations": aggregations}
    return frame


def _timestamps_from_components(xs: Sequence[Any], timezone: str | None) -> pd.Series:
    stamps: list[Any] = []
    for x in xs:
        if x is None:
            stamps.append(pd.NaT)
            continue
        stamps.append(
            pd.Timestamp(
                year=int(x["year"]),
                month=int(x.get("month", 1)),
                day=int(x.get("day", 1)),
                hour=int(x.get("hour", 0)),
                minute=int(x.get("minute", 0)),
            )
        )
    series = pd.Series(pd.to_datetime(stamps), dtype="datetime64[us]")
    return series.dt.tz_localize(timezone) if timezone else series


# --------------------------------------------------------------------------- map zoom


_MERCATOR_MAX_LAT = 85.0511287798066


def zoom_for_bbox(
    bbox: Sequence[float],
    *,
    width_px: int = 800,
    height_px: int | None = None,
    tile_size: int = 256,
    max_zoom: int = GEO_CLUSTER_MAX_ZOOM,
) -> int:
    """Pick the largest web-map zoom at which a bounding box fits a viewport.

    Standard web-mercator math: at zoom ``z`` the world is ``tile_size * 2**z`` pixels wide,
    so a box spanning a fraction ``f`` of the world's width fits ``width_px`` when
    ``z <= log2(width_px / (tile_size * f))``; heights use the mercator ``y`` of the
    latitudes (clamped to +/-85.0511). The result is the floor of the smaller of the two,
    clamped to ``[0, max_zoom]``. A box with ``min_lon > max_lon`` crosses the antimeridian.
    A single point (zero extent) gives ``max_zoom``.

    Parameters
    ----------
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees (the order of v1 ``/boundingbox/``
        and of GeoPandas ``total_bounds``).
    width_px, height_px
        Viewport size in pixels; ``height_px`` defaults to ``width_px`` (a square viewport).
    tile_size
        Pixel size of a map tile (256 for ODS, Leaflet and OSM tiles).
    max_zoom
        Highest zoom returned (25 is the ``geo_cluster`` maximum).

    Returns
    -------
    int

    Raises
    ------
    InvalidQueryArgument
        The box is not four finite numbers in range, or a size is not a positive number.
    """
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InvalidQueryArgument(
            f"bbox must be four numbers (min_lon, min_lat, max_lon, max_lat), got {bbox!r}"
        ) from None
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
        raise InvalidQueryArgument(f"bbox values must be finite numbers, got {bbox!r}")
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise InvalidQueryArgument(f"bbox longitudes must lie in [-180, 180], got {bbox!r}")
    if not (-90 <= min_lat <= max_lat <= 90):
        raise InvalidQueryArgument(
            f"bbox latitudes must satisfy -90 <= min_lat <= max_lat <= 90, got {bbox!r}"
        )
    height = width_px if height_px is None else height_px
    for label, size in (("width_px", width_px), ("height_px", height), ("tile_size", tile_size)):
        if isinstance(size, bool) or not isinstance(size, int | float) or not size > 0:
            raise InvalidQueryArgument(f"{label} must be a positive number, got {size!r}")
    if isinstance(max_zoom, bool) or not isinstance(max_zoom, int) or max_zoom < 0:
        raise InvalidQueryArgument(f"max_zoom must be a non-negative int, got {max_zoom!r}")

    lon_span = max_lon - min_lon
    if lon_span < 0:
        lon_span += 360.0
    lon_fraction = lon_span / 360.0
    lat_fraction = (_mercator_y(max_lat) - _mercator_y(min_lat)) / (2 * math.pi)
    zooms = [
        math.log2(pixels / (tile_size * fraction))
        for pixels, fraction in ((width_px, lon_fraction), (height, lat_fraction))
        if fraction > 0
    ]
    if not zooms:
        return max_zoom
    return max(0, min(max_zoom, math.floor(min(zooms))))


def _mercator_y(lat: float) -> float:
    lat = max(-_MERCATOR_MAX_LAT, min(_MERCATOR_MAX_LAT, lat))
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def zoom_for_clusters(
    clusters: Any,
    *,
    width_px: int = 800,
    height_px: int | None = None,
    padding: float = 0.05,
    max_zoom: int = GEO_CLUSTER_MAX_ZOOM,
) -> int:
    """Pick the web-map zoom that shows every cluster (centroids and hulls) in a viewport.

    The bounds of the geometries (and of a ``hull`` column, when the frame has one) are
    widened by ``padding`` times their extent on each side, then passed to
    :func:`zoom_for_bbox`.

    Parameters
    ----------
    clusters
        A GeoDataFrame (as from :func:`geoclusters_to_geodataframe`), a GeoSeries, or an
        iterable of shapely geometries, in lon/lat.
    width_px, height_px, max_zoom
        As in :func:`zoom_for_bbox`.
    padding
        Margin around the clusters, as a fraction of their extent (0 for none).

    Returns
    -------
    int

    Raises
    ------
    InvalidQueryArgument
        There are no geometries, or ``padding`` is negative.
    """
    import shapely

    if isinstance(padding, bool) or not isinstance(padding, int | float) or padding < 0:
        raise InvalidQueryArgument(f"padding must be a non-negative number, got {padding!r}")
    geometries: list[Any] = []
    if hasattr(clusters, "geometry") and hasattr(clusters, "columns"):
        geometries.extend(clusters.geometry)
        if "hull" in clusters.columns:
            geometries.extend(clusters["hull"])
    elif isinstance(clusters, Iterable):
        geometries.extend(clusters)
    else:
        raise InvalidQueryArgument(
            f"clusters must be a GeoDataFrame, GeoSeries or geometries, not "
            f"{type(clusters).__name__}"
        )
    shapes = [g for g in geometries if g is not None and not shapely.is_empty(g)]
    if not shapes:
        raise InvalidQueryArgument("no cluster geometries to fit in the viewport")
    min_lon, min_lat, max_lon, max_lat = shapely.total_bounds(np.asarray(shapes, dtype=object))
    pad_lon = (max_lon - min_lon) * padding
    pad_lat = (max_lat - min_lat) * padding
    padded = (
        max(-180.0, min_lon - pad_lon),
        max(-90.0, min_lat - pad_lat),
        min(180.0, max_lon + pad_lon),
        min(90.0, max_lat + pad_lat),
    )
    return zoom_for_bbox(padded, width_px=width_px, height_px=height_px, max_zoom=max_zoom)
