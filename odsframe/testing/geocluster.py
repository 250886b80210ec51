"""ODS geo clustering (``group_by=geo_cluster(field, zoom[, radius])``), vectorised.

The algorithm of ODS's Elasticsearch plugin ``geo_point_clustering``
(opendatasoft/elasticsearch-aggregation-geoclustering at 637da3e), decision for decision
(ods-api.md section 7.2):

1. ``radius_m = radius_px * EARTH_EQUATOR / (256 * 2**zoom)``; the geohash level is
   Elasticsearch's ``GeoUtils.geoHashLevelsForPrecision(radius_m)``.
2. Every point goes to the bucket of its cell, keyed by ``Geohash.longEncode(lon, lat, level)``
   (a signed 64-bit long); a bucket keeps its point count and centroid (mean position).
3. Merge pass: buckets in descending signed key order; each bucket not yet absorbed becomes a
   head and scans the buckets after it in that order, absorbing every one not yet absorbed
   whose centroid is within ``radius_m * cos(radians(mean of the two latitudes))`` of the
   head's centroid, measured with Lucene's ``SloppyMath.haversinMeters`` (emulated bit for bit
   here). After each absorption the head's centroid moves to the count-weighted mean (plain
   longitude average). Clusters come out in head order.

Choices where the plugin leaves room:

* Points are clustered as Elasticsearch stores them, quantised by Lucene to ~1e-7 degree
  (``quantize=True``, the default; :func:`quantize_lat_lon`). With it, the centroids of the
  plugin README's example come out bit for bit.
* No ``size`` cap. The plugin keeps only the 10,000 largest cell keys before merging, so past
  10,000 occupied cells it drops points silently, and what ODS passes for ``size`` is unknown.
  We keep every cell, so the counts always add up to the number of points.
* Bucket centroids are ``sum / count`` instead of the plugin's running mean in index order
  (equal to ~1e-15 relative); one shard; ``ratio`` 0 (no second pass), the plugin's default.

The merge pass is exact but not quadratic (see :func:`_merge_buckets`): buckets that cannot
absorb anything are found vectorised, sparse ones scan precomputed candidate lists, dense ones
walk the geohash cells around their moving centroid, and only decisions within Lucene's error
of the merge distance evaluate the emulated sloppy haversine. Its cost is Python work per
merged bucket: about a second per 300 000 merged buckets on the portal's machine.
"""

from __future__ import annotations

import bisect
import heapq
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_RADIUS_PX",
    "EARTH_EQUATOR",
    "EARTH_MEAN_RADIUS",
    "EARTH_POLAR_DISTANCE",
    "MAX_ZOOM",
    "TILE_EXTENT",
    "ClusterSummary",
    "GeoClusterInputError",
    "arc_distance",
    "cluster_points",
    "cluster_summary",
    "geohash_level",
    "geohash_levels_for_precision",
    "geohash_long_encode",
    "geohash_string",
    "ground_resolution",
    "quantize_lat_lon",
    "radius_metres",
]

#: WGS 84 axes and the derived lengths Elasticsearch's ``GeoUtils`` uses (metres).
EARTH_SEMI_MAJOR_AXIS = 6378137.0
EARTH_SEMI_MINOR_AXIS = 6356752.314245
EARTH_EQUATOR = 2 * math.pi * EARTH_SEMI_MAJOR_AXIS
EARTH_POLAR_DISTANCE = math.pi * EARTH_SEMI_MINOR_AXIS
#: Lucene ``SloppyMath`` earth radius (metres).
EARTH_MEAN_RADIUS = 6_371_008.7714

#: Plugin defaults: tile extent in pixels, radius in pixels, zoom range.
TILE_EXTENT = 256
DEFAULT_RADIUS_PX = 40
MAX_ZOOM = 25


class GeoClusterInputError(ValueError):
    """Invalid input to the clustering functions (the message names the argument)."""


# --------------------------------------------------------------------------------------------
# Zoom, radius and geohash level
# --------------------------------------------------------------------------------------------


def _check_zoom(zoom: Any) -> int:
    if isinstance(zoom, bool) or not isinstance(zoom, (int, np.integer)):
        raise GeoClusterInputError(f"zoom must be an integer, got {zoom!r}")
    if not 0 <= int(zoom) <= MAX_ZOOM:
        raise GeoClusterInputError(f"zoom must be between 0 and {MAX_ZOOM}, got {zoom}")
    return int(zoom)


def _check_radius(radius_px: Any) -> int:
    if isinstance(radius_px, bool) or not isinstance(radius_px, (int, np.integer)):
        raise GeoClusterInputError(f"radius must be an integer number of pixels, got {radius_px!r}")
    if int(radius_px) <= 0:
        raise GeoClusterInputError(f"radius must be greater than 0, got {radius_px}")
    return int(radius_px)


def ground_resolution(zoom: int) -> float:
    """Metres per pixel at ``zoom`` on a 256-pixel tile at the equator."""
    zoom = _check_zoom(zoom)
    return EARTH_EQUATOR / (TILE_EXTENT * math.pow(2, zoom))


def radius_metres(zoom: int, radius_px: int = DEFAULT_RADIUS_PX) -> float:
    """Cluster radius in metres: ``radius_px`` pixels at ``zoom``."""
    return _check_radius(radius_px) * ground_resolution(zoom)


def geohash_levels_for_precision(meters: float) -> int:
    """Elasticsearch ``GeoUtils.geoHashLevelsForPrecision(meters)`` (the bit-count formula).

    No upper cap: a small enough radius asks for levels above 12, as Elasticsearch does.
    """
    if not meters > 0 or not math.isfinite(meters):
        raise GeoClusterInputError(f"precision in metres must be positive and finite, got {meters}")
    ratio = 1 + (EARTH_POLAR_DISTANCE / EARTH_EQUATOR)
    width = math.sqrt((meters * meters) / (ratio * ratio))
    part = math.ceil(EARTH_EQUATOR / width)
    if part == 1:
        return 1
    bits = math.ceil(math.log(part) / math.log(2))
    full = bits // 5
    left = bits - full * 5
    even = full + (1 if left > 0 else 0)
    odd = full + (1 if left > 3 else 0)
    return even + odd


def geohash_level(zoom: int, radius_px: int = DEFAULT_RADIUS_PX) -> int:
    """Geohash level of the buckets at ``zoom`` (levels 2..12 for the default radius 40)."""
    return geohash_levels_for_precision(radius_metres(zoom, radius_px))


# --------------------------------------------------------------------------------------------
# Geohash long encoding (Elasticsearch ``org.elasticsearch.geometry.utils.Geohash``)
# --------------------------------------------------------------------------------------------

_LAT_DECODE = 180.0 / (1 << 32)
_LON_DECODE = 360.0 / (1 << 32)
_BASE_32 = "0123456789bcdefghjkmnpqrstuvwxyz"
_SPREAD_STEPS = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)


def _spread_bits(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Move bit ``k`` of each 32-bit value to bit ``2k`` (Lucene ``BitUtil.interleave``)."""
    spread = values & np.uint64(0xFFFFFFFF)
    for shift, mask in _SPREAD_STEPS:
        spread = (spread | (spread << np.uint64(shift))) & np.uint64(mask)
    return spread


def _as_coordinates(
    lat: ArrayLike, lon: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    try:
        lat_arr = np.asarray(lat, dtype=np.float64)
        lon_arr = np.asarray(lon, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GeoClusterInputError(f"lat and lon must be numeric arrays: {exc}") from None
    if lat_arr.ndim != 1 or lon_arr.ndim != 1:
        raise GeoClusterInputError(
            f"lat and lon must be one-dimensional, got shapes {lat_arr.shape} and {lon_arr.shape}"
        )
    if lat_arr.shape != lon_arr.shape:
        raise GeoClusterInputError(
            f"lat and lon must have the same length, got {lat_arr.size} and {lon_arr.size}"
        )
    bad_lat = ~((lat_arr >= -90.0) & (lat_arr <= 90.0))
    if bad_lat.any():
        first = int(np.flatnonzero(bad_lat)[0])
        raise GeoClusterInputError(
            f"lat must be finite and within [-90, 90]; point {first} has lat={lat_arr[first]!r}"
        )
    bad_lon = ~((lon_arr >= -180.0) & (lon_arr <= 180.0))
    if bad_lon.any():
        first = int(np.flatnonzero(bad_lon)[0])
        raise GeoClusterInputError(
            f"lon must be finite and within [-180, 180]; point {first} has lon={lon_arr[first]!r}"
        )
    return lat_arr, lon_arr


def _check_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise GeoClusterInputError(f"geohash level must be an integer, got {level!r}")
    if not 1 <= int(level) <= 24:
        raise GeoClusterInputError(f"geohash level must be between 1 and 24, got {level}")
    return int(level)


def geohash_long_encode(lon: ArrayLike, lat: ArrayLike, level: int) -> NDArray[np.int64]:
    """Elasticsearch ``Geohash.longEncode(lon, lat, level)`` for arrays of points.

    The long holds the interleaved lon/lat bits of the cell (longitude first) above 4 bits of
    level. Levels above 12 reproduce Java's shift-count masking, as Elasticsearch computes them.
    """
    level = _check_level(level)
    lat_arr, lon_arr = _as_coordinates(lat, lon)
    # the maximum value cannot be encoded without overflow: Java uses Math.nextDown
    lat_arr = np.where(lat_arr == 90.0, np.nextafter(90.0, 0.0), lat_arr)
    lon_arr = np.where(lon_arr == 180.0, np.nextafter(180.0, 0.0), lon_arr)
    # encodeLatitude(lat) ^ 0x80000000: the signed 32-bit cell index shifted to unsigned
    lat_bits = (np.floor(lat_arr / _LAT_DECODE).astype(np.int64) + (1 << 31)).astype(np.uint64)
    lon_bits = (np.floor(lon_arr / _LON_DECODE).astype(np.int64) + (1 << 31)).astype(np.uint64)
    interleaved = (_spread_bits(lon_bits) << np.uint64(1)) | _spread_bits(lat_bits)
    # Java: ((interleaved >>> 2) >>> msf) << 4 | level, with msf taken modulo 64
    msf = ((12 - level) * 5 + 2) & 63
    keys = ((interleaved >> np.uint64(2)) >> np.uint64(msf)) << np.uint64(4)
    return (keys | np.uint64(level)).view(np.int64)


def geohash_string(key: int) -> str:
    """Elasticsearch ``Geohash.stringEncode(long)``: the geohash text of a long key."""
    bits = int(key) & 0xFFFFFFFFFFFFFFFF
    level = bits & 15
    if level == 0:
        raise GeoClusterInputError(f"geohash long {key} has level 0")
    bits >>= 4
    chars = []
    for _ in range(level):
        chars.append(_BASE_32[bits & 31])
        bits >>= 5
    return "".join(reversed(chars))


def quantize_lat_lon(
    lat: ArrayLike, lon: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points as Elasticsearch stores them (Lucene ``LatLonDocValuesField``, ~1e-7 degree)."""
    lat_arr, lon_arr = _as_coordinates(lat, lon)
    lat_arr = np.where(lat_arr == 90.0, np.nextafter(90.0, 0.0), lat_arr)
    lon_arr = np.where(lon_arr == 180.0, np.nextafter(180.0, 0.0), lon_arr)
    return (
        np.floor(lat_arr / _LAT_DECODE) * _LAT_DECODE,
        np.floor(lon_arr / _LON_DECODE) * _LON_DECODE,
    )


# --------------------------------------------------------------------------------------------
# Lucene SloppyMath.haversinMeters (GeoUtils.arcDistance), bit for bit
# --------------------------------------------------------------------------------------------


# Java's Math.toRadians multiplies by this constant (JDK 9 and later), as math.radians does.
_DEG = math.pi / 180.0


def _double_from_bits(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits & 0xFFFFFFFFFFFFFFFF))[0]
    return value


_TO_METERS = EARTH_MEAN_RADIUS
_ONE_DIV_F2 = 1 / 2.0
_ONE_DIV_F3 = 1 / 6.0
_ONE_DIV_F4 = 1 / 24.0
_PIO2_HI = _double_from_bits(0x3FF921FB54400000)
_PIO2_LO = _double_from_bits(0x3DD0B4611A626331)
_TWOPI_HI = 4 * _PIO2_HI
_TWOPI_LO = 4 * _PIO2_LO
_SIN_COS_TABS_SIZE = (1 << 11) + 1
_SIN_COS_DELTA_HI = _TWOPI_HI / (_SIN_COS_TABS_SIZE - 1)
_SIN_COS_DELTA_LO = _TWOPI_LO / (_SIN_COS_TABS_SIZE - 1)
_SIN_COS_INDEXER = 1 / (_SIN_COS_DELTA_HI + _SIN_COS_DELTA_LO)
_ASIN_MAX_VALUE_FOR_TABS = math.sin(math.radians(73.0))
_ASIN_TABS_SIZE = (1 << 13) + 1
_ASIN_DELTA = _ASIN_MAX_VALUE_FOR_TABS / (_ASIN_TABS_SIZE - 1)
_ASIN_INDEXER = 1 / _ASIN_DELTA
_ASIN_PIO2_HI = _double_from_bits(0x3FF921FB54442D18)
_ASIN_PIO2_LO = _double_from_bits(0x3C91A62633145C07)
_ASIN_PS = tuple(
    _double_from_bits(bits)
    for bits in (
        0x3FC5555555555555,
        0xBFD4D61203EB6F7D,
        0x3FC9C1550E884455,
        0xBFA48228B5688F3B,
        0x3F49EFE07501B288,
        0x3F023DE10DFDF709,
    )
)
_ASIN_QS = tuple(
    _double_from_bits(bits)
    for bits in (0xC0033A271C8A2D4B, 0x40002AE59C598AC8, 0xBFE6066C1B8D0159, 0x3FB3B8C5B12E9282)
)


def _sloppy_tables() -> tuple[list[float], ...]:
    sin_tab = [0.0] * _SIN_COS_TABS_SIZE
    cos_tab = [0.0] * _SIN_COS_TABS_SIZE
    pi_index = (_SIN_COS_TABS_SIZE - 1) // 2
    for i in range(_SIN_COS_TABS_SIZE):
        angle = i * _SIN_COS_DELTA_HI + i * _SIN_COS_DELTA_LO
        sin_angle = math.sin(angle)
        cos_angle = math.cos(angle)
        # exact zeros where the table hits a multiple of pi/2, as Lucene does
        if i in (pi_index, 2 * pi_index):
            sin_angle = 0.0
        elif i in (pi_index // 2, 3 * pi_index // 2):
            cos_angle = 0.0
        sin_tab[i] = sin_angle
        cos_tab[i] = cos_angle
    asin_tab, der1, der2, der3, der4 = ([0.0] * _ASIN_TABS_SIZE for _ in range(5))
    for i in range(_ASIN_TABS_SIZE):
        x = i * _ASIN_DELTA
        asin_tab[i] = math.asin(x)
        inv = 1.0 / (1 - x * x)
        inv0_5 = math.sqrt(inv)
        inv1_5 = inv0_5 * inv
        inv2_5 = inv1_5 * inv
        inv3_5 = inv2_5 * inv
        der1[i] = inv0_5
        der2[i] = (x * inv1_5) * _ONE_DIV_F2
        der3[i] = ((1 + 2 * x * x) * inv2_5) * _ONE_DIV_F3
        der4[i] = ((5 + 2 * x * (2 + x * (5 - 2 * x))) * inv3_5) * _ONE_DIV_F4
    return sin_tab, cos_tab, asin_tab, der1, der2, der3, der4


_SIN_TAB, _COS_TAB, _ASIN_TAB, _ASIN_D1, _ASIN_D2, _ASIN_D3, _ASIN_D4 = _sloppy_tables()
_SIN_TAB_NP, _COS_TAB_NP = np.array(_SIN_TAB), np.array(_COS_TAB)
_ASIN_TABS_NP = tuple(np.array(t) for t in (_ASIN_TAB, _ASIN_D1, _ASIN_D2, _ASIN_D3, _ASIN_D4))


# Angles here are latitudes and differences of coordinates, within 2 pi: Lucene's fallback to
# Math.cos beyond ~12 000 radians, and its arcsine outside [0, 1], are never reached.


def _sloppy_cos(a: float) -> float:
    if a < 0.0:
        a = -a
    index = int(a * _SIN_COS_INDEXER + 0.5)
    delta = (a - index * _SIN_COS_DELTA_HI) - index * _SIN_COS_DELTA_LO
    index &= _SIN_COS_TABS_SIZE - 2
    c = _COS_TAB[index]
    s = _SIN_TAB[index]
    return c + delta * (
        -s + delta * (-c * _ONE_DIV_F2 + delta * (s * _ONE_DIV_F3 + delta * c * _ONE_DIV_F4))
    )


def _sloppy_asin(a: float) -> float:
    if a <= _ASIN_MAX_VALUE_FOR_TABS:
        index = int(a * _ASIN_INDEXER + 0.5)
        delta = a - index * _ASIN_DELTA
        result = _ASIN_TAB[index] + delta * (
            _ASIN_D1[index]
            + delta * (_ASIN_D2[index] + delta * (_ASIN_D3[index] + delta * _ASIN_D4[index]))
        )
    elif a < 1.0:
        ps0, ps1, ps2, ps3, ps4, ps5 = _ASIN_PS
        qs1, qs2, qs3, qs4 = _ASIN_QS
        t = (1.0 - a) * 0.5
        p = t * (ps0 + t * (ps1 + t * (ps2 + t * (ps3 + t * (ps4 + t * ps5)))))
        q = 1.0 + t * (qs1 + t * (qs2 + t * (qs3 + t * qs4)))
        s = math.sqrt(t)
        z = s + s * (p / q)
        result = _ASIN_PIO2_HI - ((z + z) - _ASIN_PIO2_LO)
    else:
        result = math.pi / 2
    return result


def _clobber_low_bits(value: float) -> float:
    bits = struct.unpack("<q", struct.pack("<d", value))[0] & ~7
    return _double_from_bits(bits)


def _sloppy_arc_distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """``SloppyMath.haversinMeters`` for one pair (used for the too-close-to-call merges)."""
    x1 = lat1 * _DEG
    x2 = lat2 * _DEG
    h1 = 1 - _sloppy_cos(x1 - x2)
    h2 = 1 - _sloppy_cos((lon1 - lon2) * _DEG)
    h = _clobber_low_bits(h1 + _sloppy_cos(x1) * _sloppy_cos(x2) * h2)
    return _TO_METERS * 2 * _sloppy_asin(min(1.0, math.sqrt(h * 0.5)))


def _sloppy_cos_np(a: NDArray[np.float64]) -> NDArray[np.float64]:
    a = np.abs(a)
    index = (a * _SIN_COS_INDEXER + 0.5).astype(np.int64)
    delta = (a - index * _SIN_COS_DELTA_HI) - index * _SIN_COS_DELTA_LO
    index &= _SIN_COS_TABS_SIZE - 2
    c = _COS_TAB_NP[index]
    s = _SIN_TAB_NP[index]
    out: NDArray[np.float64] = c + delta * (
        -s + delta * (-c * _ONE_DIV_F2 + delta * (s * _ONE_DIV_F3 + delta * c * _ONE_DIV_F4))
    )
    return out


def _sloppy_asin_np(a: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.empty_like(a)
    tab = a <= _ASIN_MAX_VALUE_FOR_TABS
    at = a[tab]
    index = (at * _ASIN_INDEXER + 0.5).astype(np.int64)
    delta = at - index * _ASIN_DELTA
    t0, t1, t2, t3, t4 = (t[index] for t in _ASIN_TABS_NP)
    out[tab] = t0 + delta * (t1 + delta * (t2 + delta * (t3 + delta * t4)))
    rest = ~tab
    if rest.any():
        out[rest] = [_sloppy_asin(float(v)) for v in a[rest]]
    return out


def arc_distance(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64]:
    """Elasticsearch ``GeoUtils.arcDistance`` (Lucene ``SloppyMath.haversinMeters``), in metres.

    Vectorised and bit for bit: the table-driven cosine and arcsine, and the clearing of the
    three low bits of the haversine, are Lucene's. Coordinates in degrees, within the usual
    ranges; inputs broadcast against each other.
    """
    lat1_a, lon1_a, lat2_a, lon2_a = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (lat1, lon1, lat2, lon2))
    )
    x1 = lat1_a * _DEG
    x2 = lat2_a * _DEG
    h1 = 1 - _sloppy_cos_np(x1 - x2)
    h2 = 1 - _sloppy_cos_np((lon1_a - lon2_a) * _DEG)
    h = h1 + _sloppy_cos_np(x1) * _sloppy_cos_np(x2) * h2
    h = (np.ascontiguousarray(h).view(np.int64) & np.int64(~7)).view(np.float64)
    return _TO_METERS * 2 * _sloppy_asin_np(np.minimum(1.0, np.sqrt(h * 0.5)))


# --------------------------------------------------------------------------------------------
# The merge pass
# --------------------------------------------------------------------------------------------

#: Bound on |SloppyMath.haversinMeters - exact haversine|: absolute metres plus a relative
#: part. The largest error measured over random pairs at every scale is ~0.09 m (distances
#: under 10 m, where ``1 - cos`` loses its digits); Lucene documents at most 0.4 m. Decisions
#: closer than this to the merge distance are taken with the emulated sloppy haversine.
_SLOPPY_ERROR_M = 0.5
_SLOPPY_ERROR_REL = 1e-7
#: Precomputed candidate lists reach this fraction of the radius beyond the merge distance; a
#: list stays complete while the moving centroid is within about that distance of its owner.
_LIST_SLACK = 0.5
#: Buckets with at most this many buckets in their 3x3 block of list cells get a precomputed
#: list; denser ones walk the cells around their centroid.
_SPARSE_BLOCK = 96
#: Bucket pairs examined at once when building the lists (bounds the memory used).
_PAIRS_PER_CHUNK = 2_000_000
#: Cells walked around a moving centroid are at least the merge reach over this divisor.
_WALK_CELL_DIVISOR = 2.0
#: Below this many buckets the quadratic merge pass is the fastest.
_NAIVE_BUCKETS = 48
#: Latitudes up to which list cells are wide enough for a 3x3 block; beyond, the walk.
_GRID_LATITUDES = (0.0, 15.0, 30.0, 45.0, 55.0, 65.0, 72.0)


def _lat_reach_deg(reach_m: float) -> float:
    return math.degrees(reach_m / EARTH_MEAN_RADIUS) * (1 + 1e-9)


def _lon_reach_deg(lat_deg: float, radius_m: float, beyond_m: float) -> float:
    """Largest longitude gap (degrees) between a point at ``lat_deg`` and any point within
    ``radius_m * cos(mean latitude) + beyond_m`` of it; 180 when unbounded.

    From the haversine: ``cos(lat1) cos(lat2) hav(dlon) <= hav(d / R)`` and
    ``cos(lat1) cos(lat2) = cos(mean)**2 - sin(dlat / 2)**2``, bounding the mean latitude over
    the band of latitudes the other point can have.
    """
    dlat = (radius_m + beyond_m) / EARTH_MEAN_RADIUS
    lat = abs(lat_deg) * _DEG
    cos_high = math.cos(max(0.0, lat - dlat / 2))
    cos_low = math.cos(min(math.pi / 2, lat + dlat / 2))
    angle = (radius_m * cos_high + beyond_m) / EARTH_MEAN_RADIUS
    denominator = cos_low * cos_low - math.sin(dlat / 2) ** 2
    if angle >= math.pi or denominator <= 0:
        return 180.0
    ratio = math.sin(angle / 2) ** 2 / denominator
    if ratio >= 1:
        return 180.0
    return min(180.0, math.degrees(2 * math.asin(math.sqrt(ratio))) * (1 + 1e-9) + 1e-12)


def _lon_reach_deg_np(
    lat_deg: NDArray[np.float64], radius_m: float, beyond_m: NDArray[np.float64]
) -> NDArray[np.float64]:
    """:func:`_lon_reach_deg` for arrays."""
    dlat = (radius_m + beyond_m) / EARTH_MEAN_RADIUS
    lat = np.abs(lat_deg) * _DEG
    cos_high = np.cos(np.maximum(0.0, lat - dlat / 2))
    cos_low = np.cos(np.minimum(math.pi / 2, lat + dlat / 2))
    angle = (radius_m * cos_high + beyond_m) / EARTH_MEAN_RADIUS
    denominator = cos_low * cos_low - np.sin(dlat / 2) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sin(np.minimum(angle, math.pi) / 2) ** 2 / denominator
        reach = np.degrees(2 * np.arcsin(np.sqrt(np.minimum(ratio, 1.0)))) * (1 + 1e-9) + 1e-12
    unbounded = (angle >= math.pi) | (denominator <= 0) | ~(ratio < 1)
    result: NDArray[np.float64] = np.where(unbounded, 180.0, reach)
    return result


def _compact_bits(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Inverse of :func:`_spread_bits`: the even bits of each value, packed into 32 bits."""
    compact = values & np.uint64(0x5555555555555555)
    for shift, mask in (
        (1, 0x3333333333333333),
        (2, 0x0F0F0F0F0F0F0F0F),
        (4, 0x00FF00FF00FF00FF),
        (8, 0x0000FFFF0000FFFF),
        (16, 0x00000000FFFFFFFF),
    ):
        compact = (compact | (compact >> np.uint64(shift))) & np.uint64(mask)
    return compact


def _cell_bits(level: int, lat_reach_deg: float, lon_reach_deg: float) -> int:
    """Longest key prefix (bits) whose cells are at least the given reaches tall and wide."""
    bits = 5 * level
    while bits > 0 and (
        180.0 / (1 << (bits // 2)) < lat_reach_deg
        or 360.0 / (1 << ((bits + 1) // 2)) < lon_reach_deg
    ):
        bits -= 1
    return bits


class _PrefixCells:
    """Geohash cells of the first ``bits`` key bits.

    Every cell holds a contiguous range of scan positions, so walking the cells near a point
    in order of their first position walks the buckets there in scan order. Cells are kept
    sorted by ``y * n_x + x`` (latitude row, longitude column) for row-range lookups.
    """

    def __init__(self, keys: NDArray[np.int64], level: int, bits: int) -> None:
        self.lon_bits = (bits + 1) // 2
        self.lat_bits = bits // 2
        self.n_x = 1 << self.lon_bits
        self.n_y = 1 << self.lat_bits
        self.lon_width = 360.0 / self.n_x
        self.lat_height = 180.0 / self.n_y
        interleaved = (keys.view(np.uint64) >> np.uint64(4)) << np.uint64(64 - 5 * level)
        x = (_compact_bits(interleaved >> np.uint64(1)) >> np.uint64(32 - self.lon_bits)).astype(
            np.int64
        )
        y = (_compact_bits(interleaved) >> np.uint64(32 - self.lat_bits)).astype(np.int64)
        self.x, self.y = x, y
        cell = y * self.n_x + x
        first = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        last = np.r_[first[1:], cell.size]
        order = np.argsort(cell[first])
        self.keys = cell[first][order]
        self.start = first[order]
        self.end = last[order]
        rank = np.empty(first.size, dtype=np.int64)
        rank[order] = np.arange(first.size)
        self.cell_of_bucket = np.repeat(rank, last - first)

    def block_ranges(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """For every cell, the cells of its 3x3 block, one row at a time.

        Returns ``lo`` and ``hi`` of shape ``(cells, 3)``: the block's cells in row
        ``y - 1 + k`` are ``lo[:, k]:hi[:, k]`` in sorted order. The mask marks cells whose
        block would wrap across the antimeridian (their buckets take the general path).
        """
        keys = self.keys
        n_x = self.n_x
        x = keys % n_x
        y = keys // n_x
        lo = np.empty((keys.size, 3), dtype=np.int64)
        hi = np.empty((keys.size, 3), dtype=np.int64)
        for k, d_row in enumerate((-1, 0, 1)):
            row = y + d_row
            a = np.searchsorted(keys, row * n_x + x - 1)
            b = np.searchsorted(keys, row * n_x + x + 1, side="right")
            valid = (row >= 0) & (row < self.n_y)
            lo[:, k] = a
            hi[:, k] = np.where(valid, b, a)
        return lo, hi, (x == 0) | (x == n_x - 1)


def _ragged_expand(
    owner: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pairs ``(owner[k], t)`` for ``t`` in ``range(lo[k], hi[k])``, grouped by ``k``."""
    lengths = np.maximum(hi - lo, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    owners = np.repeat(owner, lengths)
    offsets = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
    return owners, np.arange(total, dtype=np.int64) + offsets


def _merge_naive(
    lat: NDArray[np.float64], lon: NDArray[np.float64], count: NDArray[np.int64], radius_m: float
) -> NDArray[np.int64]:
    """The plugin's merge pass verbatim, quadratic (small inputs and levels above 12)."""
    m = lat.size
    head_of = np.arange(m, dtype=np.int64)
    visited = [False] * m
    lat_l, lon_l, count_l = lat.tolist(), lon.tolist(), count.tolist()
    for h in range(m):
        if visited[h]:
            continue
        visited[h] = True
        c_lat, c_lon, weight = lat_l[h], lon_l[h], count_l[h]
        for j in range(h + 1, m):
            if visited[j]:
                continue
            j_lat, j_lon = lat_l[j], lon_l[j]
            merge_distance = radius_m * math.cos(((c_lat + j_lat) / 2) * _DEG)
            if _sloppy_arc_distance(c_lat, c_lon, j_lat, j_lon) <= merge_distance:
                visited[j] = True
                head_of[j] = h
                w = count_l[j]
                total = weight + w
                c_lat = (c_lat * weight + j_lat * w) / total
                c_lon = (c_lon * weight + j_lon * w) / total
                weight = total
    return head_of


def _merge_buckets(
    keys: NDArray[np.int64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    count: NDArray[np.int64],
    radius_m: float,
    level: int,
) -> NDArray[np.int64]:
    """The plugin's merge pass over buckets in scan order: the head position of each bucket.

    Three tiers, all exact. (1) Buckets with no later bucket within merge distance of them
    are singleton heads if nobody absorbs them: skipped, vectorised. (2) Sparse buckets get a
    precomputed list of the later buckets within the merge distance plus a slack; a head scans
    the union of its list and those of the buckets it absorbs, which stays complete while the
    centroid is within the slack of one of them. (3) Otherwise the head walks the geohash
    cells around its centroid, opening cells as the centroid moves to another cell.
    """
    m = lat.size
    if level > 12 or m <= _NAIVE_BUCKETS:
        return _merge_naive(lat, lon, count, radius_m)
    r = radius_m
    earth = EARTH_MEAN_RADIUS
    band = _SLOPPY_ERROR_M + _SLOPPY_ERROR_REL * 2 * r
    # a centroid drift d changes distances by d and merge distances by r * d / (2 R)
    drift_factor = 1 + r / (2 * earth) + 1e-12
    slack_scale = _LIST_SLACK * r
    cos_lat = np.cos(lat * _DEG)
    px = cos_lat * np.cos(lon * _DEG)
    py = cos_lat * np.sin(lon * _DEG)
    pz = np.sin(lat * _DEG)

    # ---- tiers 1 and 2, vectorised: who cannot absorb anything, who gets a list ------------
    list_slack = slack_scale * cos_lat + 2 * band
    allowance = (list_slack - band) / drift_factor
    coarse = _PrefixCells(
        keys,
        level,
        _cell_bits(
            level,
            _lat_reach_deg(r + slack_scale + 3 * band),
            max(
                _lon_reach_deg(phi, r, slack_scale * math.cos(phi * _DEG) + 3 * band)
                for phi in _GRID_LATITUDES
            ),
        ),
    )
    cell = coarse.cell_of_bucket
    block_lo, block_hi, block_wraps = coarse.block_ranges()
    cell_sizes = np.r_[0, np.cumsum(coarse.end - coarse.start)]
    block_size = (cell_sizes[block_hi] - cell_sizes[block_lo]).sum(axis=1)
    # blocks too narrow for the longitude reach at the row's highest latitude (near the poles),
    # or wrapping across the antimeridian, are left to the walk
    cell_rows = coarse.keys // coarse.n_x
    rows, row_of_cell = np.unique(cell_rows, return_inverse=True)
    row_edge = np.minimum(
        90.0,
        np.maximum(
            np.abs(rows * coarse.lat_height - 90.0), np.abs((rows + 1) * coarse.lat_height - 90.0)
        ),
    )
    row_too_wide = (
        _lon_reach_deg_np(row_edge, r, slack_scale * np.cos(row_edge * _DEG) + 3 * band)
        > coarse.lon_width
    )
    general = (block_wraps | row_too_wide[row_of_cell.ravel()])[cell]
    sparse = ~general & (block_size[cell] <= _SPARSE_BLOCK)
    # chord <= arc / R: a pair is kept if its arc can be within the bound (a few more is fine)
    lat_rad = np.abs(lat) * _DEG
    merge_bound = r * np.cos(np.maximum(0.0, lat_rad - (r + list_slack) / (2 * earth)))
    near_chord2 = ((merge_bound + band) / earth) ** 2
    list_chord2 = ((merge_bound + list_slack) / earth) ** 2
    # a bucket alone in its block has nothing to absorb; the others pair with their block,
    # a bounded number of pairs at a time
    owners = np.flatnonzero(sparse & (block_size[cell] > 1))
    chunk_ends = np.searchsorted(
        np.cumsum(block_size[cell[owners]]),
        np.arange(_PAIRS_PER_CHUNK, int(block_size[cell[owners]].sum()), _PAIRS_PER_CHUNK),
    )
    has_near = np.zeros(m, dtype=bool)
    per_owner = np.zeros(m, dtype=np.int64)
    pair_j: list[int] = []
    for chunk in np.split(owners, chunk_ends):
        own, block_cell = _ragged_expand(
            np.repeat(chunk, 3),
            block_lo[cell[chunk]].ravel(),
            block_hi[cell[chunk]].ravel(),
        )
        # only later buckets can be absorbed: drop the cells that end before the owner
        cell_end = coarse.end[block_cell]
        later = cell_end - 1 > own
        own, other = _ragged_expand(
            own[later],
            np.maximum(coarse.start[block_cell[later]], own[later] + 1),
            cell_end[later],
        )
        chord2 = (px[own] - px[other]) ** 2
        chord2 += (py[own] - py[other]) ** 2
        chord2 += (pz[own] - pz[other]) ** 2
        has_near[own[chord2 <= near_chord2[own]]] = True
        in_list = chord2 <= list_chord2[own]
        per_owner += np.bincount(own[in_list], minlength=m)
        pair_j.extend(other[in_list].tolist())
    alone = sparse & ~has_near
    list_end = np.cumsum(per_owner)
    # list_start -1: no list (walk); alone buckets have an empty list
    list_start = np.where(sparse, list_end - per_owner, -1)

    # ---- tier 3: finer cells walked around a moving centroid --------------------------------
    fine = _PrefixCells(
        keys,
        level,
        _cell_bits(
            level,
            _lat_reach_deg(r + band) / _WALK_CELL_DIVISOR,
            max(_lon_reach_deg(phi, r, band) for phi in _GRID_LATITUDES) / _WALK_CELL_DIVISOR,
        ),
    )
    n_x, n_y = fine.n_x, fine.n_y
    lon_width, lat_height = fine.lon_width, fine.lat_height
    fine_keys: list[int] = fine.keys.tolist()
    fine_start: list[int] = fine.start.tolist()
    fine_end: list[int] = fine.end.tolist()
    n_fine = len(fine_keys)
    lat_band = (r + band) / earth
    row_reach: dict[int, tuple[int, float, int, float]] = {}

    def reach_from_row(y: int) -> tuple[int, float, int, float]:
        """For a centroid in row ``y``: columns each side and longitude reach (degrees), rows
        each side and latitude reach (degrees) of every bucket it can absorb."""
        found = row_reach.get(y)
        if found is None:
            south = y * lat_height - 90.0
            north = south + lat_height
            nearest = 0.0 if south <= 0.0 <= north else min(abs(south), abs(north))
            lon_reach = _lon_reach_deg(min(max(abs(south), abs(north)), 90.0), r, band)
            # the merge distance r cos(mean latitude) also bounds the latitude gap
            lat_reach = _lat_reach_deg(r * math.cos(max(0.0, nearest * _DEG - lat_band / 2)) + band)
            found = (
                n_x if lon_reach >= 180.0 else math.ceil(lon_reach / lon_width),
                lon_reach,
                math.ceil(lat_reach / lat_height),
                lat_reach,
            )
            row_reach[y] = found
        return found

    # ---- the sequential scan ----------------------------------------------------------------
    visited = bytearray(m)
    find_unvisited = visited.find
    lat_l: list[float] = lat.tolist()
    lon_l: list[float] = lon.tolist()
    count_l: list[int] = count.tolist()
    px_l: list[float] = px.tolist()
    py_l: list[float] = py.tolist()
    pz_l: list[float] = pz.tolist()
    start_l: list[int] = list_start.tolist()
    end_l: list[int] = list_end.tolist()
    allowance_l: list[float] = allowance.tolist()
    absorbed: list[int] = []
    absorbed_by: list[int] = []
    sin, cos, sqrt = math.sin, math.cos, math.sqrt
    deg, half_deg = _DEG, _DEG * 0.5
    inv_earth = 1 / earth
    earth_up = earth * (1 + 1e-12)
    band_rad = band * inv_earth
    heappush, heappop, heapify = heapq.heappush, heapq.heappop, heapq.heapify
    bisect_left = bisect.bisect_left

    def walk(h: int, c_lat: float, c_lon: float, weight: int, after: int) -> None:
        """Finish head ``h``'s scan after position ``after`` over the cells near the centroid."""
        cos_c = cos(c_lat * deg)
        cx = cos_c * cos(c_lon * deg)
        cy = cos_c * sin(c_lon * deg)
        cz = sin(c_lat * deg)
        opened: dict[int, tuple[int, int]] = {}  # row -> opened columns, unwrapped
        queue: list[tuple[int, int, int]] = []  # (first position, end, cell key)

        def open_block(x_c: int, y_c: int, after: int) -> tuple[int, int, int, float, int, float]:
            d_col, lon_reach, d_row, lat_reach = reach_from_row(y_c)
            if 2 * d_col + 1 >= n_x:
                x_lo, x_hi = x_c - n_x, x_c + n_x
            else:
                x_lo, x_hi = x_c - d_col, x_c + d_col
            for y in range(max(0, y_c - d_row), min(n_y - 1, y_c + d_row) + 1):
                span = opened.get(y)
                if span is None or x_lo > span[1] + 1 or x_hi < span[0] - 1:
                    todo = [(x_lo, x_hi)]
                    opened[y] = (x_lo, x_hi)
                else:
                    todo = []
                    if x_lo < span[0]:
                        todo.append((x_lo, span[0] - 1))
                    if x_hi > span[1]:
                        todo.append((span[1] + 1, x_hi))
                    opened[y] = (min(x_lo, span[0]), max(x_hi, span[1]))
                row = y * n_x
                for a, b in todo:
                    segments = _wrap_segments(a, b, n_x) if b - a + 1 < n_x else ((0, n_x - 1),)
                    for s0, s1 in segments:
                        i = bisect_left(fine_keys, row + s0)
                        stop = row + s1
                        while i < n_fine and fine_keys[i] <= stop:
                            end = fine_end[i]
                            if end - 1 > after:
                                heappush(queue, (fine_start[i], end, fine_keys[i]))
                            i += 1
            return x_lo, x_hi, y_c, lon_reach, d_row, lat_reach

        x_c = int((c_lon + 180.0) // lon_width) % n_x
        y_c = min(n_y - 1, int((c_lat + 90.0) // lat_height))
        x_lo, x_hi, y_box, lon_reach, d_row, lat_reach = open_block(x_c, y_c, after)
        while queue:
            start, end, key = heappop(queue)
            y = key // n_x
            x = key - y * n_x
            if abs(y - y_box) > d_row or (x_hi - x_lo + 1 < n_x and (x - x_lo) % n_x > x_hi - x_lo):
                continue  # the centroid moved away: nothing in that cell is within reach
            p = start if start > after else after + 1
            while True:
                p = find_unvisited(0, p, end)
                if p < 0:
                    break
                p_lat = lat_l[p]
                d_lat = p_lat - c_lat
                if d_lat > lat_reach or d_lat < -lat_reach:
                    p += 1
                    continue
                d_lon = lon_l[p] - c_lon
                if (d_lon > lon_reach or d_lon < -lon_reach) and -180.0 < d_lon < 180.0:
                    p += 1
                    continue
                dx = px_l[p] - cx
                dy = py_l[p] - cy
                dz = pz_l[p] - cz
                chord2 = dx * dx + dy * dy + dz * dz
                t = r * cos((c_lat + p_lat) * half_deg) * inv_earth
                outer = t + band_rad
                if chord2 > outer * outer:
                    p += 1
                    continue
                inner = t - band_rad
                # chord = 2 sin(arc / 2) >= arc (1 - arc**2 / 24): a chord this short is in
                if inner <= 0 or t > 2.5 or chord2 > inner * inner * (1 - t * t / 12):
                    merge_distance = r * cos(((c_lat + p_lat) / 2) * deg)
                    if _sloppy_arc_distance(c_lat, c_lon, p_lat, lon_l[p]) > merge_distance:
                        p += 1
                        continue
                visited[p] = 1
                absorbed.append(p)
                absorbed_by.append(h)
                w = count_l[p]
                total = weight + w
                c_lat = (c_lat * weight + p_lat * w) / total
                c_lon = (c_lon * weight + lon_l[p] * w) / total
                weight = total
                cos_c = cos(c_lat * deg)
                cx = cos_c * cos(c_lon * deg)
                cy = cos_c * sin(c_lon * deg)
                cz = sin(c_lat * deg)
                new_x = int((c_lon + 180.0) // lon_width) % n_x
                new_y = min(n_y - 1, int((c_lat + 90.0) // lat_height))
                if new_x != x_c or new_y != y_c:
                    x_c, y_c = new_x, new_y
                    x_lo, x_hi, y_box, lon_reach, d_row, lat_reach = open_block(x_c, y_c, p)
                    if abs(y - y_box) > d_row or (
                        x_hi - x_lo + 1 < n_x and (x - x_lo) % n_x > x_hi - x_lo
                    ):
                        break
                p += 1
            if end - 1 > after:
                after = end - 1

    for h in np.flatnonzero(~alone).tolist():
        if visited[h]:
            continue
        visited[h] = 1
        a = start_l[h]
        if a < 0:
            walk(h, lat_l[h], lon_l[h], count_l[h], h)
            continue
        # The union of the lists of the head and of every bucket it absorbs, in scan order:
        # complete while the centroid is within the allowance of one of them (the anchor).
        pool = pair_j[a : end_l[h]]
        heapify(pool)
        c_lat = lat_l[h]
        c_lon = lon_l[h]
        cx = ax = px_l[h]
        cy = ay = py_l[h]
        cz = az = pz_l[h]
        anchor_allowance = allowance_l[h]
        weight = count_l[h]
        listed_members = [h]
        last = h
        while pool:
            j = heappop(pool)
            if j <= last or visited[j]:
                continue
            last = j
            dx = px_l[j] - cx
            dy = py_l[j] - cy
            dz = pz_l[j] - cz
            chord2 = dx * dx + dy * dy + dz * dz
            j_lat = lat_l[j]
            t = r * cos((c_lat + j_lat) * half_deg) * inv_earth
            outer = t + band_rad
            if chord2 > outer * outer:
                continue
            inner = t - band_rad
            if inner <= 0 or t > 2.5 or chord2 > inner * inner * (1 - t * t / 12):
                merge_distance = r * cos(((c_lat + j_lat) / 2) * deg)
                if _sloppy_arc_distance(c_lat, c_lon, j_lat, lon_l[j]) > merge_distance:
                    continue
            visited[j] = 1
            absorbed.append(j)
            absorbed_by.append(h)
            w = count_l[j]
            total = weight + w
            c_lat = (c_lat * weight + j_lat * w) / total
            c_lon = (c_lon * weight + lon_l[j] * w) / total
            weight = total
            cos_c = cos(c_lat * deg)
            cx = cos_c * cos(c_lon * deg)
            cy = cos_c * sin(c_lon * deg)
            cz = sin(c_lat * deg)
            a = start_l[j]
            if a >= 0:
                for q in pair_j[a : end_l[j]]:
                    heappush(pool, q)
                listed_members.append(j)
                # distance bound from the chord: arc <= chord (1 + chord**2 / 4)
                dx = cx - px_l[j]
                dy = cy - py_l[j]
                dz = cz - pz_l[j]
                chord2 = dx * dx + dy * dy + dz * dz
                if earth_up * sqrt(chord2) * (1 + 0.25 * chord2) <= allowance_l[j]:
                    ax, ay, az, anchor_allowance = px_l[j], py_l[j], pz_l[j], allowance_l[j]
                    continue
            dx = cx - ax
            dy = cy - ay
            dz = cz - az
            chord2 = dx * dx + dy * dy + dz * dz
            if earth_up * sqrt(chord2) * (1 + 0.25 * chord2) <= anchor_allowance:
                continue
            for k in listed_members:
                dx = cx - px_l[k]
                dy = cy - py_l[k]
                dz = cz - pz_l[k]
                chord2 = dx * dx + dy * dy + dz * dz
                if earth_up * sqrt(chord2) * (1 + 0.25 * chord2) <= allowance_l[k]:
                    ax, ay, az, anchor_allowance = px_l[k], py_l[k], pz_l[k], allowance_l[k]
                    break
            else:
                walk(h, c_lat, c_lon, weight, j)
                break

    head_of = np.arange(m, dtype=np.int64)
    if absorbed:
        head_of[np.array(absorbed, dtype=np.int64)] = np.array(absorbed_by, dtype=np.int64)
    return head_of


def _wrap_segments(first: int, last: int, n: int) -> tuple[tuple[int, int], ...]:
    """Columns ``first..last`` (unwrapped, fewer than ``n``) as wrapped inclusive ranges."""
    a = first % n
    b = a + (last - first)
    if b < n:
        return ((a, b),)
    return ((a, n - 1), (0, b - n))


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def cluster_points(
    lat: ArrayLike,
    lon: ArrayLike,
    zoom: int,
    radius_px: int = DEFAULT_RADIUS_PX,
    *,
    quantize: bool = True,
) -> NDArray[np.int64]:
    """Cluster label of each point, as ODS's ``geo_cluster(field, zoom, radius)`` groups them.

    Parameters
    ----------
    lat, lon
        Point coordinates in degrees, one-dimensional, same length.
    zoom
        Map zoom, 0 to 25.
    radius_px
        Cluster radius in pixels (ODS's default 40).
    quantize
        Cluster the points as Elasticsearch stores them (:func:`quantize_lat_lon`); ``False``
        clusters the coordinates as given.

    Returns
    -------
    numpy.ndarray
        ``int64`` labels ``0..k-1``, numbered in the order ODS lists the clusters.

    Raises
    ------
    GeoClusterInputError
        Bad coordinates, zoom or radius.
    """
    zoom = _check_zoom(zoom)
    radius_px = _check_radius(radius_px)
    lat_arr, lon_arr = quantize_lat_lon(lat, lon) if quantize else _as_coordinates(lat, lon)
    if lat_arr.size == 0:
        return np.empty(0, dtype=np.int64)
    radius_m = radius_metres(zoom, radius_px)
    level = geohash_levels_for_precision(radius_m)
    keys = geohash_long_encode(lon_arr, lat_arr, level)
    unique_keys, bucket_of_point = np.unique(keys, return_inverse=True)
    m = unique_keys.size
    # the scan goes by descending signed key: position = m - 1 - ascending index
    bucket_of_point = (m - 1) - bucket_of_point.ravel()
    count = np.bincount(bucket_of_point, minlength=m)
    bucket_lat = np.bincount(bucket_of_point, weights=lat_arr, minlength=m) / count
    bucket_lon = np.bincount(bucket_of_point, weights=lon_arr, minlength=m) / count
    head_of = _merge_buckets(unique_keys[::-1], bucket_lat, bucket_lon, count, radius_m, level)
    label_of_head = np.cumsum(head_of == np.arange(m)) - 1
    labels: NDArray[np.int64] = label_of_head[head_of][bucket_of_point]
    return labels


@dataclass(frozen=True)
class ClusterSummary:
    """Point count and centroid of each cluster, indexed by cluster label."""

    count: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]


def cluster_summary(
    lat: ArrayLike, lon: ArrayLike, labels: ArrayLike, *, quantize: bool = True
) -> ClusterSummary:
    """Count and centroid of each cluster of :func:`cluster_points`.

    The centroid is the mean of the cluster's points (longitudes averaged plainly, as the
    plugin does), which is what ODS reports as ``cluster_centroid``. ``quantize`` must match
    the one given to :func:`cluster_points`.
    """
    lat_arr, lon_arr = quantize_lat_lon(lat, lon) if quantize else _as_coordinates(lat, lon)
    labels_arr = np.asarray(labels)
    if labels_arr.shape != lat_arr.shape:
        raise GeoClusterInputError(
            f"labels must have one entry per point, got {labels_arr.size} for {lat_arr.size} points"
        )
    if labels_arr.size and (
        not np.issubdtype(labels_arr.dtype, np.integer) or labels_arr.min() < 0
    ):
        raise GeoClusterInputError("labels must be non-negative integers")
    labels_arr = labels_arr.astype(np.int64, copy=False)
    count = np.bincount(labels_arr)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_lat = np.bincount(labels_arr, weights=lat_arr, minlength=count.size) / count
        mean_lon = np.bincount(labels_arr, weights=lon_arr, minlength=count.size) / count
    return ClusterSummary(count=count, lat=mean_lat, lon=mean_lon)
