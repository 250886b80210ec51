"""Geometry parsing: every ODS encoding of geo_point_2d and geo_shape into shapely 2 objects.

geo_point_2d comes as ``{"lon": x, "lat": y}`` (v2.x JSON), ``[lat, lon]`` (v1 JSON), ``"lat, lon"``
(v2.1 CSV) or ``"lat,lon"`` (legacy CSV); in parquet as a ``{lon, lat}`` struct or WKB. geo_shape
comes as a bare GeoJSON geometry (v1), a GeoJSON Feature wrapper (v2.1), the JSON text of either
(CSV, any key order) or WKB (GeoParquet). See ods-api.md sections 6.3 and 9.

Every function returns a NumPy object array holding shapely geometries and ``None`` for missing
values, and works on whole arrays at once where the encoding allows it. Values that cannot be read
become ``None`` with a :class:`~odsframe.frames.schema.ValueCastWarning` naming the column.
shapely is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from odsframe.frames.schema import warn_cast_failures

ObjectArray = npt.NDArray[np.object_]


def parse_geometries(values: Any, ods_type: str, *, name: str = "geometry") -> ObjectArray:
    """Parse the values of a ``geo_point_2d`` or ``geo_shape`` column (see module docs)."""
    if ods_type == "geo_point_2d":
        return parse_points(values, name=name)
    return parse_shapes(values, name=name)


def points_from_lonlat(lon: Any, lat: Any) -> ObjectArray:
    """shapely Points from coordinate arrays; positions where either is NaN become None."""
    import shapely

    lon_array = np.asarray(lon, dtype=np.float64)
    lat_array = np.asarray(lat, dtype=np.float64)
    result = np.full(len(lon_array), None, dtype=object)
    valid = ~(np.isnan(lon_array) | np.isnan(lat_array))
    if valid.all():
        return np.asarray(shapely.points(lon_array, lat_array), dtype=object)
    result[valid] = shapely.points(lon_array[valid], lat_array[valid])
    return result


# --- geo_point_2d ----------------------------------------------------------------------------


def parse_points(values: Any, *, name: str = "geo_point_2d") -> ObjectArray:
    """Parse geo_point_2d values of any ODS encoding into shapely Points.

    Parameters
    ----------
    values
        A list, NumPy array, pandas Series or pyarrow array of ``{"lon", "lat"}`` objects,
        ``[lat, lon]`` pairs, ``"lat, lon"`` / ``"lat,lon"`` strings, GeoJSON Points (objects
        or text), WKB bytes or shapely geometries; nulls and empty strings give None.
    name
        The column name used in warnings.
    """
    if _is_arrow(values):
        return _points_from_arrow(values, name)
    array = _object_array(values)
    if not len(array):
        return np.empty(0, dtype=object)
    first = _first_valid(array)
    if first is None:
        return np.full(len(array), None, dtype=object)
    fast = _points_fast(array, first)
    if fast is not None:
        return fast
    return _points_slow(array, name)


def _points_fast(array: ObjectArray, first: Any) -> ObjectArray | None:
    """The homogeneous encodings in one pass; None when the values are mixed or invalid."""
    nan = math.nan
    n = len(array)
    try:
        if isinstance(first, Mapping) and "lon" in first:
            lon = np.fromiter((nan if v is None else v["lon"] for v in array), np.float64, n)
            lat = np.fromiter((nan if v is None else v["lat"] for v in array), np.float64, n)
        elif isinstance(first, Mapping) and first.get("type") in ("Point", "Feature"):
            geometries = [None if v is None else _unwrap_feature(v) for v in array]
            if not all(g is None or g["type"] == "Point" for g in geometries):
                return None
            pairs = np.array(
                [(nan, nan) if g is None else g["coordinates"] for g in geometries],
                dtype=np.float64,
                ndmin=2,
            )
            if pairs.shape != (n, 2):
                return None
            lon, lat = pairs[:, 0], pairs[:, 1]
        elif isinstance(first, list | tuple):
            pairs = np.array(
                [(nan, nan) if v is None else v for v in array], dtype=np.float64, ndmin=2
            )
            if pairs.shape != (n, 2):
                return None
            lat, lon = pairs[:, 0], pairs[:, 1]
        elif isinstance(first, str) and not first.lstrip().startswith(("{", "P", "p")):
            import pyarrow as pa

            strings = pa.array(array, type=pa.string(), from_pandas=True)
            return _points_from_arrow_strings(strings, len(array))
        else:
            return None
    except (TypeError, KeyError, ValueError, IndexError, OverflowError):
        return None
    except Exception as exc:  # pyarrow errors (ArrowInvalid, ArrowTypeError)
        if type(exc).__module__.startswith("pyarrow"):
            return None
        raise
    nulls = np.equal(array, cast(Any, None))
    if (np.isnan(lon) | np.isnan(lat))[~nulls].any():
        return None  # a NaN coordinate in a value: let the slow path report it
    return points_from_lonlat(lon, lat)


def _points_slow(array: ObjectArray, name: str) -> ObjectArray:
    """One value at a time, for mixed encodings; unreadable values become None (warned)."""
    import shapely

    n = len(array)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    result = np.full(n, None, dtype=object)
    bad: list[Any] = []
    for i, value in enumerate(array):
        if _is_missing(value):
            continue
        try:
            point = _one_point(value)
        except (TypeError, KeyError, ValueError, IndexError, shapely.errors.GEOSException):
            point = None
        if point is None:
            bad.append(value)
        elif isinstance(point, tuple):
            lon[i], lat[i] = point
        else:
            result[i] = point
    valid = ~(np.isnan(lon) | np.isnan(lat))
    if valid.any():
        result[valid] = shapely.points(lon[valid], lat[valid])
    warn_cast_failures(name, "geo_point_2d", bad)
    return result


def _one_point(value: Any) -> tuple[float, float] | Any:
    """(lon, lat) or a shapely geometry for one value; None when unreadable."""
    import shapely

    if isinstance(value, Mapping):
        if "lon" in value and "lat" in value:
            return _finite_pair(float(value["lon"]), float(value["lat"]))
        geometry = _unwrap_feature(value)
        if isinstance(geometry, Mapping) and geometry.get("type") == "Point":
            coordinates = geometry.get("coordinates") or []
            return _finite_pair(float(coordinates[0]), float(coordinates[1]))
        return None
    if isinstance(value, list | tuple | np.ndarray):
        if len(value) != 2:
            return None
        return _finite_pair(float(value[1]), float(value[0]))  # v1 order: [lat, lon]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            return _one_point(json.loads(text))
        if text[:5].upper() == "POINT":
            return shapely.from_wkt(text)
        lat_text, lon_text = text.split(",")
        return _finite_pair(float(lon_text), float(lat_text))
    if isinstance(value, bytes | bytearray | memoryview):
        return shapely.from_wkb(bytes(value))
    if _is_shapely(value):
        return value
    return None


def _finite_pair(lon: float, lat: float) -> tuple[float, float] | None:
    if math.isfinite(lon) and math.isfinite(lat):
        return lon, lat
    return None


def _points_from_arrow(values: Any, name: str) -> ObjectArray:
    import pyarrow as pa

    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
        points = _points_from_wkb_array(values)  # chunk by chunk: no combined copy
        if points is not None:
            return points
    array = _combined(values)
    kind = array.type
    if pa.types.is_struct(kind):
        names = {kind.field(i).name for i in range(kind.num_fields)}
        for x_name, y_name in (("lon", "lat"), ("x", "y")):
            if {x_name, y_name} <= names:
                return _points_from_struct(array, x_name, y_name, name)
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _from_wkb(array.to_numpy(zero_copy_only=False), name, "geo_point_2d")
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        points = _points_from_arrow_strings(array, len(array))
        if points is not None:
            return points
    elif pa.types.is_null(kind):
        return np.full(len(array), None, dtype=object)
    return parse_points(_pylist(array), name=name)


#: Little-endian WKB of a 2D point: byte order 1, geometry type 1 (uint32), then x and y.
_WKB_POINT_HEADER = np.array([1, 1, 0, 0, 0], dtype=np.uint8)
_WKB_POINT_BYTES = 21


def _points_from_wkb_array(values: Any) -> ObjectArray | None:
    """Points read straight from an arrow binary (Chunked)Array of little-endian 2D WKB points.

    The coordinates are taken from the bytes at fixed positions (no per-value parsing);
    None when any value is something else (another geometry type, big-endian, Z/M or SRID
    flags, an empty point), which the WKB parser then reads.
    """
    import pyarrow as pa

    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    n = len(values)
    if not n or values.null_count == n:
        return None
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    start = 0
    for chunk in chunks:
        stop = start + len(chunk)
        if not _wkb_point_coordinates(chunk, lon[start:stop], lat[start:stop]):
            return None
        start = stop
    return points_from_lonlat(lon, lat)


def _wkb_point_coordinates(array: Any, lon: np.ndarray, lat: np.ndarray) -> bool:
    """Fill ``lon`` and ``lat`` from one binary array of WKB points (False: not only those)."""
    import pyarrow as pa

    n = len(array)
    if not n or array.null_count == n:
        return True
    if not (pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
        return False
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _validity, offsets_buffer, data_buffer = array.buffers()
    if data_buffer is None:
        return False
    offsets: npt.NDArray[np.int64] = np.frombuffer(
        offsets_buffer,
        dtype=offset_type,
        count=n + 1,
        offset=array.offset * np.dtype(offset_type).itemsize,
    )
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    if valid is not None:
        starts, lengths = starts[valid], lengths[valid]
    if not (lengths == _WKB_POINT_BYTES).all():
        return False
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    first = int(starts[0]) if len(starts) else 0
    if valid is None and int(offsets[-1]) - first == n * _WKB_POINT_BYTES:
        # Back to back (the usual layout): a rows x 21 view, no gather.
        records = data[first : first + n * _WKB_POINT_BYTES].reshape(n, _WKB_POINT_BYTES)
        if not (records[:, :5] == _WKB_POINT_HEADER).all():
            return False
        coordinates = np.ascontiguousarray(records[:, 5:]).view("<f8")
    else:
        if not (data[starts[:, None] + np.arange(5)] == _WKB_POINT_HEADER).all():
            return False
        coordinates = data[starts[:, None] + np.arange(5, _WKB_POINT_BYTES)].view("<f8")
    if np.isnan(coordinates).any():
        return False  # POINT EMPTY: the WKB parser gives an empty point, not a missing one
    if valid is None:
        lon[:n], lat[:n] = coordinates[:, 0], coordinates[:, 1]
    else:
        lon[:n][valid], lat[:n][valid] = coordinates[:, 0], coordinates[:, 1]
    return True


def _points_from_struct(array: Any, x_name: str, y_name: str, name: str) -> ObjectArray:
    import pyarrow.compute as pc

    lon = pc.struct_field(array, x_name).to_numpy(zero_copy_only=False).astype(np.float64)
    lat = pc.struct_field(array, y_name).to_numpy(zero_copy_only=False).astype(np.float64)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    missing_coordinates = valid & (np.isnan(lon) | np.isnan(lat))
    if missing_coordinates.any():
        bad = [array[int(i)].as_py() for i in np.flatnonzero(missing_coordinates)]
        warn_cast_failures(name, "geo_point_2d", bad)
    lon[~valid] = np.nan
    return points_from_lonlat(lon, lat)


def _points_from_arrow_strings(strings: Any, n: int) -> ObjectArray | None:
    """``"lat, lon"`` / ``"lat,lon"`` text, vectorised with pyarrow; None if any cell differs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        trimmed = pc.utf8_trim_whitespace(strings)
        present = pc.and_(pc.is_valid(trimmed), pc.not_equal(trimmed, ""))
        present = pc.fill_null(present, False)
        parts = pc.split_pattern(pc.if_else(present, trimmed, pa.scalar(None, trimmed.type)), ",")
        lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
        mask = present.to_numpy(zero_copy_only=False)
        if not (lengths[mask] == 2).all():
            return None
        flat = pc.cast(pc.utf8_trim_whitespace(pc.list_flatten(parts)), pa.float64())
        coordinates = flat.to_numpy(zero_copy_only=False).reshape(-1, 2)
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):
            return None
        raise
    if not np.isfinite(coordinates).all():
        return None
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    lat[mask] = coordinates[:, 0]
    lon[mask] = coordinates[:, 1]
    return points_from_lonlat(lon, lat)


# --- geo_shape -------------------------------------------------------------------------------


def parse_shapes(values: Any, *, name: str = "geo_shape") -> ObjectArray:
    """Parse geo_shape values of any ODS encoding into shapely geometries.

    Parameters
    ----------
    values
        A list, NumPy array, pandas Series or pyarrow array of GeoJSON geometries or Feature
        wrappers (objects or JSON text in either key order), WKT text, WKB bytes or shapely
        geometries; nulls and empty strings give None.
    name
        The column name used in warnings.
    """
    if _is_arrow(values):
        return _shapes_from_arrow(values, name)
    array = _object_array(values)
    n = len(array)
    result = np.full(n, None, dtype=object)
    if not n:
        return result
    groups: dict[str, list[int]] = {"json": [], "dict": [], "wkb": [], "wkt": [], "geom": []}
    bad: list[Any] = []
    for i, value in enumerate(array):
        if _is_missing(value):
            continue
        if isinstance(value, str):
            groups["json" if value.lstrip().startswith("{") else "wkt"].append(i)
        elif isinstance(value, Mapping):
            groups["dict"].append(i)
        elif isinstance(value, bytes | bytearray | memoryview):
            groups["wkb"].append(i)
        elif _is_shapely(value):
            groups["geom"].append(i)
        else:
            bad.append(value)
    if groups["json"]:
        index = np.asarray(groups["json"])
        result[index], failed = _from_geojson(array[index])
        bad.extend(array[index][failed].tolist())
    if groups["dict"]:
        index = np.asarray(groups["dict"])
        result[index] = _shapes_from_dicts(array[index], bad)
    if groups["wkb"]:
        index = np.asarray(groups["wkb"])
        wkb = np.asarray([bytes(v) for v in array[index]], dtype=object)
        result[index] = _from_wkb(wkb, name, "geo_shape", bad)
    if groups["wkt"]:
        index = np.asarray(groups["wkt"])
        result[index] = _from_wkt(array[index], bad)
    if groups["geom"]:
        index = np.asarray(groups["geom"])
        result[index] = array[index]
    warn_cast_failures(name, "geo_shape", bad)
    return result


def _shapes_from_dicts(values: ObjectArray, bad: list[Any]) -> ObjectArray:
    geometries = [_unwrap_feature(v) for v in values]
    try:  # the frequent all-Points case needs no JSON round trip
        if all(g.get("type") == "Point" for g in geometries):
            coordinates = np.array([g["coordinates"] for g in geometries], dtype=np.float64)
            shaped = coordinates.ndim == 2 and coordinates.shape[1] in (2, 3)
            if shaped and np.isfinite(coordinates).all():
                import shapely

                return np.asarray(shapely.points(coordinates), dtype=object)
    except (TypeError, KeyError, ValueError, AttributeError):
        pass
    texts = np.full(len(geometries), None, dtype=object)
    for i, geometry in enumerate(geometries):
        if isinstance(geometry, Mapping):
            texts[i] = json.dumps(geometry)
        else:
            bad.append(values[i])
    result, failed = _from_geojson(texts)
    bad.extend(values[failed].tolist())
    return result


def _unwrap_feature(value: Any) -> Any:
    if isinstance(value, Mapping) and value.get("type") == "Feature":
        return value.get("geometry")
    return value


def _from_geojson(texts: ObjectArray) -> tuple[ObjectArray, npt.NDArray[np.intp]]:
    """Geometries from GeoJSON text (geometry or Feature), and the positions that failed."""
    import shapely

    texts = np.asarray(texts, dtype=object)
    result = np.asarray(shapely.from_geojson(texts, on_invalid="ignore"), dtype=object)
    return result, _failed(result, texts)


def _from_wkb(
    wkb: ObjectArray, name: str, ods_type: str, bad: list[Any] | None = None
) -> ObjectArray:
    import shapely

    result = np.asarray(shapely.from_wkb(wkb, on_invalid="ignore"), dtype=object)
    failed = _failed(result, wkb)
    if bad is not None:
        bad.extend(wkb[failed].tolist())
    else:
        warn_cast_failures(name, ods_type, wkb[failed].tolist())
    return result


def _from_wkt(texts: ObjectArray, bad: list[Any]) -> ObjectArray:
    import shapely

    result = np.asarray(shapely.from_wkt(texts, on_invalid="ignore"), dtype=object)
    failed = _failed(result, texts)
    bad.extend(texts[failed].tolist())
    return result


def _shapes_from_arrow(values: Any, name: str) -> ObjectArray:
    import pyarrow as pa

    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
        points = _points_from_wkb_array(values)  # all points: no WKB parsing, no copy
        if points is not None:
            return points
    array = _combined(values)
    kind = array.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _from_wkb(array.to_numpy(zero_copy_only=False), name, "geo_shape")
    if pa.types.is_null(kind):
        return np.full(len(array), None, dtype=object)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = array.to_numpy(zero_copy_only=False)
        texts = np.asarray(texts, dtype=object)
        texts[np.equal(texts, "")] = None
        if all(t is None or t.lstrip().startswith("{") for t in texts[:50]):
            result, failed = _from_geojson(texts)
            warn_cast_failures(name, "geo_shape", texts[failed].tolist())
            return result
        return parse_shapes(texts, name=name)
    return parse_shapes(_pylist(array), name=name)


# --- helpers ---------------------------------------------------------------------------------


def _failed(result: ObjectArray, source: ObjectArray) -> npt.NDArray[np.intp]:
    """Positions where a value was given but no geometry came out."""
    import shapely

    given = ~np.equal(source, cast(Any, None))
    return np.flatnonzero(shapely.is_missing(result) & given)


def _is_arrow(values: Any) -> bool:
    pyarrow = sys.modules.get("pyarrow")
    return pyarrow is not None and isinstance(values, pyarrow.Array | pyarrow.ChunkedArray)


def _combined(values: Any) -> Any:
    """One pyarrow Array from an Array or a ChunkedArray."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return values.chunk(0)
        return values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    return values


def _pylist(array: Any) -> ObjectArray:
    """A pyarrow array as a 1-d object array of Python values (lists stay list elements)."""
    items = array.to_pylist()
    return np.fromiter(items, dtype=object, count=len(items))


def _object_array(values: Any) -> ObjectArray:
    """An object array in which every missing value (None, NaN, NA, NaT) is None."""
    if isinstance(values, pd.Series | pd.Index):
        array = values.to_numpy(dtype=object)
    elif isinstance(values, np.ndarray) and values.dtype == object:
        array = values
    else:
        items = values if isinstance(values, Sequence) else list(values)
        array = np.fromiter(items, dtype=object, count=len(items))
    missing = pd.isna(array)
    if missing.any():
        array = array.copy()
        array[missing] = None
    return array


def _first_valid(array: ObjectArray) -> Any:
    for value in array:
        if not _is_missing(value):
            return value
    return None


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def _is_shapely(value: Any) -> bool:
    return type(value).__module__.startswith("shapely")
