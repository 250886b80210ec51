"""Pure helpers that write ODSQL text (ods-api.md section 5).

Nothing here talks to a portal. Every function returns a string to put in a ``where``,
``select``, ``order_by`` or ``group_by`` parameter, and raises
:class:`~odsframe.errors.InvalidQueryArgument` naming the argument it could not use.

Decisions worth knowing:

* Strings are written as JSON strings (double quotes, JSON escapes), as the official
  dataviz SDK does.
* A naive :class:`~datetime.datetime` is written **without** an offset, so the portal reads it
  in the request's ``timezone`` (UTC unless the query sets one), exactly as ODS reads
  offset-less date literals. An aware datetime keeps its offset.
* Geometries (shapely objects or anything with ``__geo_interface__``, or a GeoJSON geometry
  mapping) are written as ``geom'<GeoJSON>'``; points given as ``(lon, lat)`` as WKT.
* Bounding boxes are taken in the usual ``(minx, miny, maxx, maxy)`` = ``(lon, lat, lon, lat)``
  order and written lat-first, as ``in_bbox`` wants.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from odsframe._spec import RESERVED_WORDS_V21
from odsframe.errors import InvalidQueryArgument

__all__ = [
    "and_all",
    "in_bbox",
    "intersects",
    "literal",
    "quote_field",
    "split_top_level",
    "where_conditions",
    "where_from",
    "within_distance",
]

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")
_DIGITS = re.compile(r"[0-9]+")
_GEOJSON_GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)


def quote_field(name: str, *, reserved: Iterable[str] = RESERVED_WORDS_V21) -> str:
    """Write a field name so ODSQL reads it as that field.

    Names made of ``[A-Za-z0-9_]`` that are neither all digits nor a reserved word are
    returned unchanged; every other name is put in back-quotes, with back-quotes and
    backslashes inside it escaped by a backslash.

    Parameters
    ----------
    name
        The field's technical name.
    reserved
        Reserved words of the API generation (v2.1 by default).

    Examples
    --------
    >>> quote_field("population"), quote_field("year"), quote_field("12")
    ('population', '`year`', '`12`')
    """
    if not isinstance(name, str) or not name:
        raise InvalidQueryArgument(f"field name must be a non-empty string, got {name!r}")
    reserved_words = reserved if isinstance(reserved, (set, frozenset)) else set(reserved)
    if (
        _PLAIN_NAME.fullmatch(name)
        and not _DIGITS.fullmatch(name)
        and name.lower() not in reserved_words
    ):
        return name
    escaped = name.replace("\\", "\\\\").replace("`", "\\`")
    return f"`{escaped}`"


def _number_text(value: numbers.Real | Decimal, argument: str) -> str:
    if isinstance(value, bool):
        raise InvalidQueryArgument(f"{argument}: expected a number, got the boolean {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        raise InvalidQueryArgument(f"{argument}: {value!r} is not a finite number")
    if isinstance(value, Decimal):
        return format(value, "f")
    return repr(number)


def _unwrap_numpy(value: Any) -> Any:
    """Turn numpy scalars into Python ones (without importing numpy)."""
    if type(value).__module__ != "numpy":
        return value
    if type(value).__name__ == "datetime64":
        import pandas as pd

        timestamp = pd.Timestamp(value)
        return None if pd.isna(timestamp) else timestamp
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _is_missing_datetime(value: object) -> bool:
    # pandas.NaT is a datetime subclass whose methods raise or return NaN.
    return type(value).__name__ == "NaTType"


def geometry_mapping(value: Any, argument: str) -> dict[str, Any]:
    """A GeoJSON geometry mapping from a shapely object, ``__geo_interface__`` or mapping."""
    mapping = getattr(value, "__geo_interface__", value)
    if not isinstance(mapping, Mapping):
        raise InvalidQueryArgument(
            f"{argument}: expected a geometry (shapely, __geo_interface__ or a GeoJSON "
            f"mapping), got {type(value).__name__}"
        )
    kind = mapping.get("type")
    if kind == "Feature":
        return geometry_mapping(mapping.get("geometry"), argument)
    if kind == "FeatureCollection":
        raise InvalidQueryArgument(
            f"{argument}: got a collection of features; pass one geometry "
            "(for a GeoDataFrame or GeoSeries, e.g. gdf.union_all())"
        )
    if kind not in _GEOJSON_GEOMETRY_TYPES:
        raise InvalidQueryArgument(f"{argument}: {kind!r} is not a GeoJSON geometry type")
    if kind == "GeometryCollection":
        if not mapping.get("geometries"):
            raise InvalidQueryArgument(f"{argument}: the geometry collection is empty")
    elif not mapping.get("coordinates"):
        raise InvalidQueryArgument(f"{argument}: the {kind} geometry is empty")
    return dict(mapping)


def _geometry_literal(value: Any, argument: str) -> str:
    geometry = geometry_mapping(value, argument)
    try:
        text = json.dumps(geometry, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidQueryArgument(
            f"{argument}: the geometry has coordinates that are not finite numbers"
        ) from err
    return f"geom'{text}'"


def _looks_like_geometry(value: object) -> bool:
    if hasattr(value, "__geo_interface__"):
        return True
    return isinstance(value, Mapping) and value.get("type") in (
        _GEOJSON_GEOMETRY_TYPES | {"Feature", "FeatureCollection"}
    )


def literal(value: Any, *, argument: str = "value") -> str:
    """Write a Python value as an ODSQL literal.

    ============================  ==============================================
    value                         ODSQL
    ============================  ==============================================
    ``None`` (also ``NaT``)       ``null``
    ``bool``                      ``true`` / ``false``
    ``int``, ``float``, Decimal   the number (nan and inf are refused)
    ``str``                       a JSON string: ``"Saint-Denis"``, ``"say \\"hi\\""``
    ``date``                      ``date'2024-05-01'``
    ``datetime``, ``Timestamp``   ``date'2024-05-01T10:00:00+02:00'``; naive values
                                  have no offset and are read in the query timezone
    geometry                      ``geom'{"type":"Point","coordinates":[2.35,48.85]}'``
    ============================  ==============================================

    Parameters
    ----------
    value
        The value to write.
    argument
        Name of the argument the value came from, used in error messages.
    """
    value = _unwrap_numpy(value)
    if value is None or _is_missing_datetime(value):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (numbers.Real, Decimal)):
        return _number_text(value, argument)
    if isinstance(value, datetime):
        return f"date'{value.isoformat()}'"
    if isinstance(value, date):
        return f"date'{value.isoformat()}'"
    if _looks_like_geometry(value):
        return _geometry_literal(value, argument)
    raise InvalidQueryArgument(
        f"{argument}: cannot write a {type(value).__name__} as an ODSQL literal "
        "(use str, int, float, bool, None, date, datetime or a geometry)"
    )


def lon_lat(point: Any, argument: str) -> tuple[float, float]:
    """``(lon, lat)`` from a pair or a Point geometry, validated."""
    if _looks_like_geometry(point):
        geometry = geometry_mapping(point, argument)
        if geometry["type"] != "Point":
            raise InvalidQueryArgument(f"{argument}: expected a Point, got a {geometry['type']}")
        coordinates = geometry["coordinates"]
    else:
        coordinates = point
    if (
        isinstance(coordinates, (str, bytes))
        or not isinstance(coordinates, Sequence)
        or len(coordinates) < 2
    ):
        raise InvalidQueryArgument(
            f"{argument}: expected a (lon, lat) pair or a shapely Point, got {point!r}"
        )
    lon = _coordinate(coordinates[0], f"{argument} longitude", 180.0)
    lat = _coordinate(coordinates[1], f"{argument} latitude", 90.0)
    return lon, lat


def _coordinate(value: Any, argument: str, bound: float) -> float:
    value = _unwrap_numpy(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidQueryArgument(f"{argument}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or abs(number) > bound:
        raise InvalidQueryArgument(f"{argument}: {value!r} is outside [-{bound:g}, {bound:g}]")
    return number


def _point_wkt(lon: float, lat: float) -> str:
    return f"geom'POINT({lon!r} {lat!r})'"


def in_bbox(field: str, bbox: Sequence[float]) -> str:
    """``in_bbox(field, lat_min, lon_min, lat_max, lon_max)`` from ``(minx, miny, maxx, maxy)``.

    Parameters
    ----------
    field
        The geo_point_2d or geo_shape field.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84 degrees (GeoPandas
        ``total_bounds`` order). ODSQL wants latitude first; this function swaps.
    """
    if isinstance(bbox, (str, bytes)) or not isinstance(bbox, Sequence) or len(bbox) != 4:
        raise InvalidQueryArgument(
            f"bbox: expected (min_lon, min_lat, max_lon, max_lat), got {bbox!r}"
        )
    min_lon = _coordinate(bbox[0], "bbox min_lon", 180.0)
    min_lat = _coordinate(bbox[1], "bbox min_lat", 90.0)
    max_lon = _coordinate(bbox[2], "bbox max_lon", 180.0)
    max_lat = _coordinate(bbox[3], "bbox max_lat", 90.0)
    if min_lon > max_lon or min_lat > max_lat:
        raise InvalidQueryArgument(
            f"bbox: minimum above maximum in {tuple(bbox)!r}; the order is "
            "(min_lon, min_lat, max_lon, max_lat)"
        )
    return f"in_bbox({quote_field(field)}, {min_lat!r}, {min_lon!r}, {max_lat!r}, {max_lon!r})"


def intersects(field: str, geometry: Any) -> str:
    """``intersects(field, geom'<GeoJSON>')``: records whose geometry meets ``geometry``."""
    return f"intersects({quote_field(field)}, {_geometry_literal(geometry, 'geometry')})"


def within_distance(field: str, center: Any, distance_m: float) -> str:
    """``within_distance(field, geom'POINT(lon lat)', <d>m)``: records within a circle.

    Parameters
    ----------
    field
        The geo field.
    center
        ``(lon, lat)`` or a Point geometry.
    distance_m
        Radius in metres (> 0).
    """
    lon, lat = lon_lat(center, "center")
    distance_m = _unwrap_numpy(distance_m)
    if isinstance(distance_m, bool) or not isinstance(distance_m, numbers.Real):
        raise InvalidQueryArgument(f"distance_m: expected metres as a number, got {distance_m!r}")
    if not math.isfinite(float(distance_m)) or distance_m <= 0:
        raise InvalidQueryArgument(f"distance_m: must be a positive distance, got {distance_m!r}")
    number = float(distance_m)
    text = str(int(number)) if number.is_integer() else repr(number)
    return f"within_distance({quote_field(field)}, {_point_wkt(lon, lat)}, {text}m)"


def _condition_for(field: str, value: Any) -> str:
    """One condition from a ``{field: value}`` entry (see :func:`where_from`)."""
    name = quote_field(field)
    argument = f"where[{field!r}]"
    value = _unwrap_numpy(value)
    if value is None or _is_missing_datetime(value):
        return f"{name} IS NULL"
    if isinstance(value, bool):
        return f"{name} IS {'TRUE' if value else 'FALSE'}"
    if isinstance(value, tuple):
        return _range_condition(name, value, argument)
    if isinstance(value, (list, Set)):
        return _membership_condition(name, value, argument)
    if _looks_like_geometry(value):
        raise InvalidQueryArgument(
            f"{argument}: a geometry is not a value to compare; use "
            "odsframe.query.intersects(field, geometry) or the mask= argument"
        )
    if isinstance(value, Mapping):
        raise InvalidQueryArgument(f"{argument}: a mapping is not a value to compare")
    return f"{name} = {literal(value, argument=argument)}"


def _range_condition(name: str, bounds: tuple[Any, ...], argument: str) -> str:
    if len(bounds) != 2:
        raise InvalidQueryArgument(
            f"{argument}: a tuple means an inclusive range (low, high) and needs exactly 2 "
            f"items, got {len(bounds)}; use a list for a set of values"
        )
    low, high = (_unwrap_numpy(bound) for bound in bounds)
    if low is None and high is None:
        raise InvalidQueryArgument(f"{argument}: range (None, None) has no bound")
    for bound in (low, high):
        if isinstance(bound, (bool, list, tuple, Set, Mapping)) or _looks_like_geometry(bound):
            raise InvalidQueryArgument(
                f"{argument}: range bounds must be numbers, dates or strings, got {bound!r}"
            )
    parts = []
    if low is not None:
        parts.append(f"{name} >= {literal(low, argument=argument)}")
    if high is not None:
        parts.append(f"{name} <= {literal(high, argument=argument)}")
    return " AND ".join(parts)


def _membership_condition(name: str, values: Iterable[Any], argument: str) -> str:
    items = [_unwrap_numpy(item) for item in values]
    if not items:
        raise InvalidQueryArgument(
            f"{argument}: the list of values is empty, so nothing could match; "
            "drop the condition or give at least one value"
        )
    has_null = any(item is None for item in items)
    texts = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, (list, tuple, Set, Mapping)) or _looks_like_geometry(item):
            raise InvalidQueryArgument(f"{argument}: list items must be scalars, got {item!r}")
        text = literal(item, argument=argument)
        if text not in texts:
            texts.append(text)
    texts.sort()  # membership is order-free; a sorted list keeps query keys stable
    if not texts:
        return f"{name} IS NULL"
    condition = f"{name} = {texts[0]}" if len(texts) == 1 else f"{name} IN ({', '.join(texts)})"
    return f"{condition} OR {name} IS NULL" if has_null else condition


def where_conditions(value: Any) -> list[str]:
    """Split a ``where`` argument into separate conditions (ANDed by the caller).

    Accepts what :func:`where_from` accepts; a mapping gives one condition per key.
    Empty strings and empty mappings give no condition.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        return [text] if text else []
    if isinstance(value, Mapping):
        conditions = []
        for field, item in value.items():
            if not isinstance(field, str):
                raise InvalidQueryArgument(f"where: field names must be strings, got {field!r}")
            conditions.append(_condition_for(field, item))
        return conditions
    if isinstance(value, (list, tuple)):
        conditions = []
        for item in value:
            if not isinstance(item, (str, Mapping)) and item is not None:
                raise InvalidQueryArgument(
                    f"where: list items must be ODSQL strings or mappings, got {item!r}"
                )
            conditions.extend(where_conditions(item))
        return conditions
    raise InvalidQueryArgument(
        f"where: expected an ODSQL string, a {{field: value}} mapping or a list of these, "
        f"got {type(value).__name__}"
    )


def and_all(conditions: Iterable[str]) -> str:
    """Join conditions with ``AND``, each in parentheses when there are several."""
    items = [condition for condition in conditions if condition]
    if len(items) == 1:
        return items[0]
    return " AND ".join(f"({condition})" for condition in items)


def where_from(value: Any) -> str:
    """Build one ODSQL ``where`` text.

    Parameters
    ----------
    value
        * an ODSQL string: passed through unchanged;
        * a mapping ``{field: spec}`` where ``spec`` is

          - a scalar (str, number, date, datetime): ``field = value``
            (``True``/``False``: ``field IS TRUE``/``IS FALSE``);
          - ``None``: ``field IS NULL``;
          - a **list or set**: membership, ``field IN (a, b)`` (a ``None`` item adds
            ``OR field IS NULL``);
          - a **tuple of length 2**: the inclusive range ``(low, high)``; ``None`` leaves
            that end open (``(10, None)`` is ``field >= 10``);
        * a list of strings and mappings.

        All conditions are ANDed, each wrapped in parentheses when there are several.

    Examples
    --------
    >>> where_from({"city": ["Paris", "Lyon"], "pop": (1000, None)})
    '(city IN ("Paris", "Lyon")) AND (pop >= 1000)'
    """
    return and_all(where_conditions(value))


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split ODSQL text on ``separator`` outside parentheses, brackets, quotes and back-quotes."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    escaped = False
    current: list[str] = []
    for char in text:
        if quote is not None:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'`":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]
