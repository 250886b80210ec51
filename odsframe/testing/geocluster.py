"""ODS geo clustering (``group_by=geo_cluster(field, zoom[, radius])``), vectorised.

This is the algorithm of ODS's Elasticsearch plugin ``geo_point_clustering``
(opendatasoft/elasticsearch-aggregation-geoclustering at 637da3e), reproduced decision for
decision (ods-api.md section 7.2):

1. ``radius_m = radius_px * EARTH_EQUATOR / (256 * 2**zoom)``; the geohash level is
   Elasticsearch's ``GeoUtils.geoHashLevelsForPrecision(radius_m)``.
2. Every point goes to the bucket of its cell, keyed by ``Geohash.longEncode(lon, lat, level)``
   (a signed 64-bit long); a bucket keeps its point count and mean position (centroid).
3. Merge pass: buckets in descending signed key order; each bucket not yet absorbed becomes a
   head and scans the buckets after it in that order, absorbing every unabsorbed bucket whose
   centroid is within ``radius_m * cos(radians(mean of the two latitudes))`` of the head's
   centroid (distance: Lucene's ``SloppyMath.haversinMeters``, emulated exactly here). The head
   centroid moves to the count-weighted mean (plain longitude average) after each absorption.
   Output order is head order.

Differences from the plugin, on purpose:

* No ``size`` cap. The plugin keeps only the 10,000 largest cell keys before merging, so beyond
  10,000 occupied cells it silently drops points; what ODS passes for ``size`` is unknown. We
  keep every cell, so counts always add up to the number of points.
* Bucket centroids are ``sum / count`` rather than the plugin's running mean over documents in
  index order; they agree to ~1e-15 relative. Points are taken as given: Elasticsearch stores
  them quantised to ~1e-7 degree (:func:`quantize_lat_lon` reproduces that if wanted).
* One shard; ``ratio`` (second pass) is 0, the plugin's default.

The merge pass is exact but not quadratic: candidates come from a uniform latitude/longitude
grid whose cells are at least the largest possible merge distance, and each scan walks its
candidates in key order with distances measured from a reference centroid; a rigorous bound on
how far the centroid has drifted since decides most candidates without recomputing a distance,
and the rare ones too close to call get Lucene's own sloppy haversine.
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
    bits = int(round(math.ceil(math.log(part) / math.log(2))))
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
_SIN_COS_MAX_VALUE_FOR_INT_MODULO = ((2147483647 >> 9) / _SIN_COS_INDEXER) * 0.99
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


def _sloppy_cos(a: float) -> float:
    if a < 0.0:
        a = -a
    if a > _SIN_COS_MAX_VALUE_FOR_INT_MODULO:
        return math.cos(a)
    index = int(a * _SIN_COS_INDEXER + 0.5)
    delta = (a - index * _SIN_COS_DELTA_HI) - index * _SIN_COS_DELTA_LO
    index &= _SIN_COS_TABS_SIZE - 2
    c = _COS_TAB[index]
    s = _SIN_TAB[index]
    return c + delta * (
        -s + delta * (-c * _ONE_DIV_F2 + delta * (s * _ONE_DIV_F3 + delta * c * _ONE_DIV_F4))
    )


def _sloppy_asin(a: float) -> float:
    negate = a < 0.0
    if negate:
        a = -a
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
    elif a == 1.0:
        result = math.pi / 2
    else:
        return math.nan
    return -result if negate else result


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
    out = c + delta * (
        -s + delta * (-c * _ONE_DIV_F2 + delta * (s * _ONE_DIV_F3 + delta * c * _ONE_DIV_F4))
    )
    far = a > _SIN_COS_MAX_VALUE_FOR_INT_MODULO
    if far.any():
        out[far] = np.cos(a[far])
    return out


def _sloppy_asin_np(a: NDArray[np.float64]) -> NDArray[np.float64]:
    # only called with 0 <= a <= 1 (square roots of clamped haversines)
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

    Vectorised and bit-for-bit: the table-driven cosine and arcsine, and the clearing of the
    three low bits of the haversine, are Lucene's. Inputs broadcast against each other.
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
# Buckets and the merge pass
# --------------------------------------------------------------------------------------------

#: Sloppy haversine error bound, absolute metres plus a relative part of the radius. The
#: largest error measured over random pairs at every scale is ~0.09 m (distances under 10 m,
#: where ``1 - cos`` loses its digits); Lucene documents at most 0.4 m.
_SLOPPY_ERROR_M = 0.5
_SLOPPY_ERROR_REL = 1e-7
#: Candidate lists keep buckets up to this fraction of the radius beyond the merge distance,
#: so the head's centroid may drift about that far before its list must be gathered again.
_LIST_SLACK = 0.25
#: Buckets whose 3x3 grid neighbourhood holds at most this many buckets get their candidate
#: list computed in one vectorised pass; denser heads gather theirs when they come up.
_SPARSE_NEIGHBOURHOOD = 48
#: Geohash cells walked around a moving centroid are about this fraction of the radius wide,
#: and the set of open cells is widened each time the centroid moves this fraction of it.
_WALK_CELL = 0.5
_WALK_MARGIN = 0.25
#: A walk that would open more cells than this (poles, huge radii) uses vectorised gathers.
_WALK_MAX_CELLS = 400
#: Below this many buckets the quadratic merge pass is the fastest.
_NAIVE_BUCKETS = 48
#: Latitudes up to which a grid cell is as wide as the longest merge distance needs.
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
    return math.degrees(2 * math.asin(math.sqrt(ratio))) * (1 + 1e-9) + 1e-12


def _lon_reach_deg_np(
    lat_deg: NDArray[np.float64], radius_m: float, beyond_m: NDArray[np.float64]
) -> NDArray[np.float64]:
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
    return np.where(unbounded, 180.0, reach)


def _haversine_np(
    lat1: Any, lon1: Any, lat2: NDArray[np.float64], lon2: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Accurate great-circle distance in metres (no ``1 - cos`` cancellation)."""
    p1 = np.multiply(lat1, _DEG)
    p2 = lat2 * _DEG
    a = (
        np.sin((p2 - p1) * 0.5) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin((lon2 - lon1) * (_DEG * 0.5)) ** 2
    )
    result: NDArray[np.float64] = (2 * EARTH_MEAN_RADIUS) * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return result


def _merge_distance_np(
    lat1: Any, lat2: NDArray[np.float64], radius_m: float
) -> NDArray[np.float64]:
    """The plugin's merge distance ``radius * cos(toRadians((lat1 + lat2) / 2))``."""
    result: NDArray[np.float64] = radius_m * np.cos(((lat1 + lat2) / 2) * _DEG)
    return result


class _Grid:
    """Buckets by latitude/longitude cell; a cell is as large as the longest merge reach."""

    def __init__(
        self,
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
        reach_m: float,
        radius_m: float,
        beyond_at: Any,
    ) -> None:
        self.lat_step = _lat_reach_deg(reach_m)
        self.n_lat = max(1, math.ceil(180.0 / self.lat_step))
        widest = max(_lon_reach_deg(phi, radius_m, beyond_at(phi)) for phi in _GRID_LATITUDES)
        self.n_lon = 1 if widest >= 180.0 else max(1, math.floor(360.0 / widest))
        self.lon_step = 360.0 / self.n_lon
        rows = np.clip(np.floor((lat + 90.0) / self.lat_step), 0, self.n_lat - 1).astype(np.int64)
        cols = np.floor((lon + 180.0) / self.lon_step).astype(np.int64) % self.n_lon
        cell_of = rows * self.n_lon + cols
        # stable: members of a cell stay in ascending bucket position
        self.members = np.argsort(cell_of, kind="stable")
        sorted_cells = cell_of[self.members]
        first = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
        self.keys = sorted_cells[first]
        #: member range of cell ``k`` is ``start[k]:start[k + 1]``
        self.start = np.r_[first, sorted_cells.size]
        self.cell_of_bucket = np.empty(lat.size, dtype=np.int64)
        self.cell_of_bucket[self.members] = np.repeat(
            np.arange(self.keys.size), np.diff(self.start)
        )

    def row_col(self, lat: float, lon: float) -> tuple[float, float]:
        return (lat + 90.0) / self.lat_step, (lon + 180.0) / self.lon_step

    def key_ranges(
        self, lat: float, lon: float, lat_reach: float, lon_reach: float
    ) -> list[tuple[int, int]]:
        """Key intervals ``[lo, hi)`` covering every cell within the reaches of a point."""
        row_lo = max(0, math.floor((lat - lat_reach + 90.0) / self.lat_step))
        row_hi = min(self.n_lat - 1, math.floor((lat + lat_reach + 90.0) / self.lat_step))
        n_lon = self.n_lon
        col_lo = math.floor((lon - lon_reach + 180.0) / self.lon_step)
        col_hi = math.floor((lon + lon_reach + 180.0) / self.lon_step)
        if lon_reach >= 180.0 or col_hi - col_lo + 1 >= n_lon:
            return [(row * n_lon, (row + 1) * n_lon) for row in range(row_lo, row_hi + 1)]
        spans = []
        col_lo %= n_lon
        col_hi %= n_lon
        if col_lo <= col_hi:
            spans.append((col_lo, col_hi + 1))
        else:
            spans.extend(((col_lo, n_lon), (0, col_hi + 1)))
        return [
            (row * n_lon + a, row * n_lon + b)
            for row in range(row_lo, row_hi + 1)
            for a, b in spans
        ]

    def neighbourhood(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """For every occupied cell, the member ranges of the three rows of its 3x3 block.

        Returns ``lo`` and ``hi`` of shape ``(cells, 3)`` (indices into :attr:`members`) and a
        mask of cells whose block wraps across the antimeridian (left to the general path).
        """
        keys = self.keys
        n_lon = self.n_lon
        cols = keys % n_lon
        rows = keys // n_lon
        n_cells = keys.size
        lo = np.empty((n_cells, 3), dtype=np.int64)
        hi = np.empty((n_cells, 3), dtype=np.int64)
        if n_lon >= 3:
            first_col = np.maximum(cols - 1, 0)
            last_col = np.minimum(cols + 1, n_lon - 1)
            wraps = (cols == 0) | (cols == n_lon - 1)
        else:
            first_col = np.zeros_like(cols)
            last_col = np.full_like(cols, n_lon - 1)
            wraps = np.zeros(n_cells, dtype=bool)
        for k, d_row in enumerate((-1, 0, 1)):
            row = rows + d_row
            valid = (row >= 0) & (row < self.n_lat)
            a = np.searchsorted(keys, row * n_lon + first_col)
            b = np.searchsorted(keys, row * n_lon + last_col, side="right")
            b = np.where(valid, b, a)
            lo[:, k] = self.start[a]
            hi[:, k] = self.start[b]
        return lo, hi, wraps


class _TooManyCells(Exception):
    """A cell walk would open too many cells; the caller falls back to vectorised gathers."""


def _walk_cell_bits(level: int, radius_m: float) -> int:
    """Prefix length (bits) whose cells are about ``_WALK_CELL * radius`` wide in longitude."""
    target = math.degrees(_WALK_CELL * radius_m / EARTH_MEAN_RADIUS)
    bits = 5 * level
    while bits > 2 and 360.0 / (1 << ((bits + 1) // 2)) < target:
        bits -= 1
    return bits


def _ragged_expand(
    owner: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pairs ``(owner[k], t)`` for ``t`` in ``range(lo[k], hi[k])``, grouped by ``k``."""
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    owners = np.repeat(owner, lengths)
    offsets = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
    return owners, np.arange(total, dtype=np.int64) + offsets


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


class _PrefixCells:
    """Geohash cells of ``bits`` leading key bits: each is a contiguous range of scan positions.

    The scan visits a cell's buckets in one run, so walking the cells near a centroid in order
    of their first position walks the candidates in scan order. Cells are indexed by
    ``y * n_x + x`` (latitude row, longitude column), sorted, for row-interval lookups.
    """

    def __init__(self, keys: NDArray[np.int64], level: int, bits: int) -> None:
        self.lon_bits = (bits + 1) // 2
        self.lat_bits = bits // 2
        self.n_x = 1 << self.lon_bits
        self.n_y = 1 << self.lat_bits
        self.lon_width = 360.0 / self.n_x
        self.lat_height = 180.0 / self.n_y
        interleaved = (keys.view(np.uint64) >> np.uint64(4)) << np.uint64(64 - 5 * level)
        x = _compact_bits(interleaved >> np.uint64(1)) >> np.uint64(32 - self.lon_bits)
        y = _compact_bits(interleaved) >> np.uint64(32 - self.lat_bits)
        cell = (y * np.uint64(self.n_x) + x).astype(np.int64)
        first = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        end = np.r_[first[1:], cell.size]
        order = np.argsort(cell[first])
        self.keys: list[int] = cell[first][order].tolist()
        self.start: list[int] = first[order].tolist()
        self.end: list[int] = end[order].tolist()


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
    """The plugin's merge pass over buckets in scan order: the head position of each bucket."""
    m = lat.size
    if level > 12 or m <= _NAIVE_BUCKETS:
        return _merge_naive(lat, lon, count, radius_m)
    head_of = np.arange(m, dtype=np.int64)
    r = radius_m
    band = _SLOPPY_ERROR_M + _SLOPPY_ERROR_REL * 2 * r
    # a centroid drift d moves distances by d and merge distances by r * d / (2 R)
    drift_factor = 1 + r / (2 * EARTH_MEAN_RADIUS) + 1e-12
    slack_scale = _LIST_SLACK * r

    def list_slack(lat_deg: float) -> float:
        return slack_scale * math.cos(lat_deg * _DEG) + 2 * band

    grid = _Grid(
        lat,
        lon,
        reach_m=r + slack_scale + 3 * band,
        radius_m=r,
        beyond_at=lambda phi: list_slack(phi) + band,
    )
    members = grid.members

    # ---- vectorised: which buckets cannot absorb anything, which get a precomputed list ----
    # The list of bucket i: every j > i whose distance is within the merge distance plus
    # list_slack(lat_i); it stays complete while the centroid is within allowance of i.
    cell = grid.cell_of_bucket
    lo3, hi3, wraps = grid.neighbourhood()
    slack_limit = slack_scale * np.cos(lat * _DEG) + 2 * band
    allowance_np = (slack_limit - band) / drift_factor
    general = (_lon_reach_deg_np(lat, r, slack_limit + band) > grid.lon_step) | wraps[cell]
    cell_last = members[grid.start[1:] - 1]  # largest position in each cell
    cell_of_member = cell[members]
    block_last = np.full(grid.keys.size, -1, dtype=np.int64)
    for k in range(3):
        # the cells of one row of the block are contiguous in key order (at most 3 of them)
        has = hi3[:, k] > lo3[:, k]
        first_cell = cell_of_member[np.minimum(lo3[:, k], m - 1)]
        last_cell = cell_of_member[np.maximum(hi3[:, k] - 1, 0)]
        for step in range(3):
            c = np.minimum(first_cell + step, last_cell)
            block_last = np.where(has, np.maximum(block_last, cell_last[c]), block_last)
    positions = np.arange(m, dtype=np.int64)
    alone = (block_last[cell] == positions) & ~general
    block_size = (hi3 - lo3).sum(axis=1)
    listed = ~alone & ~general & (block_size[cell] <= _SPARSE_NEIGHBOURHOOD)

    # list_start: -1 = no list, otherwise pair_j[list_start:list_end] (alone: empty)
    list_start = np.where(alone, 0, -1)
    list_end = np.zeros(m, dtype=np.int64)
    pair_j: list[int] = []
    owners = np.flatnonzero(listed)
    if owners.size:
        owner_cell = cell[owners]
        own, member_idx = _ragged_expand(
            np.repeat(owners, 3), lo3[owner_cell].ravel(), hi3[owner_cell].ravel()
        )
        other = members[member_idx]
        keep = other > own
        own = own[keep]
        other = other[keep]
        slack = _haversine_np(lat[own], lon[own], lat[other], lon[other]) - _merge_distance_np(
            lat[own], lat[other], r
        )
        keep = slack <= slack_limit[own]
        pair_j = other[keep].tolist()
        per_owner = np.bincount(np.searchsorted(owners, own[keep]), minlength=owners.size)
        ends = np.cumsum(per_owner)
        list_start[owners] = ends - per_owner
        list_end[owners] = ends

    # ---- geohash prefix cells for walking the neighbourhood of a moving centroid -----------
    cells = _PrefixCells(keys, level, _walk_cell_bits(level, r))
    cell_keys, cell_start, cell_end = cells.keys, cells.start, cells.end
    n_cells = len(cell_keys)
    n_x, n_y = cells.n_x, cells.n_y
    lon_width, lat_height = cells.lon_width, cells.lat_height
    walk_margin_scale = _WALK_MARGIN * r

    # ---- the sequential scan, over the buckets that may absorb something -------------------
    visited = bytearray(m)
    visited_np = np.frombuffer(visited, dtype=np.bool_)
    find_unvisited = visited.find
    lat_l = lat.tolist()
    lon_l = lon.tolist()
    count_l = count.tolist()
    cos_lat = np.cos(lat * _DEG)
    px_l = (cos_lat * np.cos(lon * _DEG)).tolist()
    py_l = (cos_lat * np.sin(lon * _DEG)).tolist()
    pz_l = np.sin(lat * _DEG).tolist()
    start_l = list_start.tolist()
    end_l = list_end.tolist()
    allowance_l = allowance_np.tolist()
    absorbed: list[int] = []
    absorbed_by: list[int] = []
    sin, cos, sqrt = math.sin, math.cos, math.sqrt
    deg, half_deg = _DEG, _DEG * 0.5
    inv_earth = 1 / EARTH_MEAN_RADIUS
    earth = EARTH_MEAN_RADIUS * (1 + 1e-12)
    band_rad = band * inv_earth
    heappush, heappop, heapify = heapq.heappush, heapq.heappop, heapq.heapify
    bisect_left = bisect.bisect_left

    def walk(h: int, c_lat: float, c_lon: float, weight: int, after: int) -> None:
        """Finish head ``h``'s scan after position ``after`` over the prefix cells near the
        centroid, opening more cells as the centroid moves."""
        cos_c = cos(c_lat * deg)
        cx = cos_c * cos(c_lon * deg)
        cy = cos_c * sin(c_lon * deg)
        cz = sin(c_lat * deg)
        opened: dict[int, tuple[int, int]] = {}  # row -> opened column span (unwrapped)
        queue: list[tuple[int, int, int, int]] = []

        def open_span(y: int, x_a: int, x_b: int, after: int) -> None:
            row = y * n_x
            lo = x_a % n_x
            width = x_b - x_a
            segments = (
                [(lo, lo + width)] if lo + width < n_x else [(lo, n_x - 1), (0, lo + width - n_x)]
            )
            for a, b in segments:
                i = bisect_left(cell_keys, row + a)
                stop = row + b
                while i < n_cells and cell_keys[i] <= stop:
                    end = cell_end[i]
                    if end - 1 > after:
                        heappush(queue, (cell_start[i], end, cell_keys[i] - row, y))
                    i += 1

        def open_cells(b_lat: float, b_lon: float, after: int) -> tuple[int, int, int, int, float]:
            margin = walk_margin_scale * cos(b_lat * deg) + band
            beyond = band + margin * drift_factor
            lat_reach = _lat_reach_deg(r + beyond)
            lon_reach = _lon_reach_deg(b_lat, r, beyond)
            y_lo = max(0, int((b_lat - lat_reach + 90.0) // lat_height))
            y_hi = min(n_y - 1, int((b_lat + lat_reach + 90.0) // lat_height))
            x_lo = int((b_lon - lon_reach + 180.0) // lon_width)
            x_hi = int((b_lon + lon_reach + 180.0) // lon_width)
            if lon_reach >= 180.0 or x_hi - x_lo + 1 >= n_x:
                x_lo, x_hi = 0, n_x - 1
            if (x_hi - x_lo + 1) * (y_hi - y_lo + 1) > _WALK_MAX_CELLS:
                raise _TooManyCells
            for y in range(y_lo, y_hi + 1):
                span = opened.get(y)
                if span is None or x_lo > span[1] + 1 or x_hi < span[0] - 1:
                    open_span(y, x_lo, x_hi, after)
                    opened[y] = (x_lo, x_hi)
                    continue
                if x_lo < span[0]:
                    open_span(y, x_lo, span[0] - 1, after)
                if x_hi > span[1]:
                    open_span(y, span[1] + 1, x_hi, after)
                opened[y] = (min(x_lo, span[0]), max(x_hi, span[1]))
            return x_lo % n_x, x_hi - x_lo, y_lo, y_hi, margin

        b_x, b_y, b_z = cx, cy, cz
        x_lo, x_span, y_lo, y_hi, margin = open_cells(c_lat, c_lon, after)
        while queue:
            start, end, x, y = heappop(queue)
            if not (y_lo <= y <= y_hi and (x - x_lo) % n_x <= x_span):
                continue  # the centroid moved away: nothing in there is within reach
            p = start if start > after else after + 1
            while True:
                p = find_unvisited(0, p, end)
                if p < 0:
                    break
                dx = px_l[p] - cx
                dy = py_l[p] - cy
                dz = pz_l[p] - cz
                chord2 = dx * dx + dy * dy + dz * dz
                p_lat = lat_l[p]
                t = r * cos((c_lat + p_lat) * half_deg) * inv_earth
                outer = t + band_rad
                if chord2 > outer * outer:
                    p += 1
                    continue
                inner = t - band_rad
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
                dx = cx - b_x
                dy = cy - b_y
                dz = cz - b_z
                chord2 = dx * dx + dy * dy + dz * dz
                if earth * sqrt(chord2) * (1 + 0.25 * chord2) > margin:
                    b_x, b_y, b_z = cx, cy, cz
                    x_lo, x_span, y_lo, y_hi, margin = open_cells(c_lat, c_lon, p)
                    if not (y_lo <= y <= y_hi and (x - x_lo) % n_x <= x_span):
                        break
                p += 1
            if end - 1 > after:
                after = end - 1

    def scan_gathered(h: int, c_lat: float, c_lon: float, weight: int, after: int) -> None:
        """Finish head ``h``'s scan with vectorised gathers (any latitude, any radius)."""
        while True:
            limit = list_slack(c_lat)
            beyond = limit + band
            spans = grid.key_ranges(
                c_lat, c_lon, _lat_reach_deg(r + beyond), _lon_reach_deg(c_lat, r, beyond)
            )
            bounds = np.searchsorted(grid.keys, np.array(spans, dtype=np.int64).ravel())
            found = np.concatenate(
                [members[grid.start[a] : grid.start[b]] for a, b in zip(bounds[0::2], bounds[1::2])]
                + [np.empty(0, np.int64)]
            )
            found = found[(found > after) & ~visited_np[found]]
            slack = _haversine_np(c_lat, c_lon, lat[found], lon[found]) - _merge_distance_np(
                c_lat, lat[found], r
            )
            candidates = np.sort(found[slack <= limit]).tolist()
            allowance = (limit - band) / drift_factor
            ref_lat, ref_lon = c_lat, c_lon
            moved = False
            for j in candidates:
                if visited[j]:
                    continue
                j_lat, j_lon = lat_l[j], lon_l[j]
                merge_distance = r * cos(((c_lat + j_lat) / 2) * deg)
                if _sloppy_arc_distance(c_lat, c_lon, j_lat, j_lon) > merge_distance:
                    continue
                visited[j] = 1
                absorbed.append(j)
                absorbed_by.append(h)
                w = count_l[j]
                total = weight + w
                c_lat = (c_lat * weight + j_lat * w) / total
                c_lon = (c_lon * weight + j_lon * w) / total
                weight = total
                drift = _haversine_np(ref_lat, ref_lon, np.array([c_lat]), np.array([c_lon]))[0]
                if drift > allowance:
                    after = j
                    moved = True
                    break
            if not moved:
                return

    def finish(h: int, c_lat: float, c_lon: float, weight: int, after: int) -> None:
        try:
            walk(h, c_lat, c_lon, weight, after)
        except _TooManyCells:
            # raised before the walk changes anything, so the scan restarts cleanly
            scan_gathered(h, c_lat, c_lon, weight, after)

    for h in np.flatnonzero(~alone).tolist():
        if visited[h]:
            continue
        visited[h] = 1
        a = start_l[h]
        if a < 0:
            finish(h, lat_l[h], lon_l[h], count_l[h], h)
            continue
        b = end_l[h]
        if a == b:
            continue
        # Candidates: the union of the lists of the head and of every merged bucket, in scan
        # order. It is complete while the centroid is within the allowance of one of them
        # (the anchor); when none is close enough, walk the cells around the centroid.
        pool = pair_j[a:b]
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
            # chord = 2 sin(arc / 2) >= arc (1 - arc**2 / 24): a chord this short is in
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
                # distance bound: arc <= chord (1 + chord**2 / 4)
                dx = cx - px_l[j]
                dy = cy - py_l[j]
                dz = cz - pz_l[j]
                chord2 = dx * dx + dy * dy + dz * dz
                if earth * sqrt(chord2) * (1 + 0.25 * chord2) <= allowance_l[j]:
                    ax, ay, az, anchor_allowance = px_l[j], py_l[j], pz_l[j], allowance_l[j]
                    continue
            dx = cx - ax
            dy = cy - ay
            dz = cz - az
            chord2 = dx * dx + dy * dy + dz * dz
            if earth * sqrt(chord2) * (1 + 0.25 * chord2) <= anchor_allowance:
                continue
            for k in listed_members:
                dx = cx - px_l[k]
                dy = cy - py_l[k]
                dz = cz - pz_l[k]
                chord2 = dx * dx + dy * dy + dz * dz
                if earth * sqrt(chord2) * (1 + 0.25 * chord2) <= allowance_l[k]:
                    ax, ay, az, anchor_allowance = px_l[k], py_l[k], pz_l[k], allowance_l[k]
                    break
            else:
                finish(h, c_lat, c_lon, weight, j)
                break

    if absorbed:
        head_of[np.array(absorbed, dtype=np.int64)] = np.array(absorbed_by, dtype=np.int64)
    return head_of


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def cluster_points(
    lat: ArrayLike, lon: ArrayLike, zoom: int, radius_px: int = DEFAULT_RADIUS_PX
) -> NDArray[np.int64]:
    """Cluster label of each point, as ODS's ``geo_cluster(field, zoom, radius)`` groups them.

    Labels are ``0..k-1`` in the order ODS lists the clusters (head order of the merge pass).
    Raises :class:`GeoClusterInputError` for bad coordinates, zoom or radius.
    """
    zoom = _check_zoom(zoom)
    radius_px = _check_radius(radius_px)
    lat_arr, lon_arr = _as_coordinates(lat, lon)
    if lat_arr.size == 0:
        return np.empty(0, dtype=np.int64)
    radius_m = radius_metres(zoom, radius_px)
    level = geohash_levels_for_precision(radius_m)
    keys = geohash_long_encode(lon_arr, lat_arr, level)
    unique_keys, bucket_of_point = np.unique(keys, return_inverse=True)
    m = unique_keys.size
    # scan order is descending signed key: position = m - 1 - ascending index
    bucket_of_point = (m - 1) - bucket_of_point.ravel()
    count = np.bincount(bucket_of_point, minlength=m)
    bucket_lat = np.bincount(bucket_of_point, weights=lat_arr, minlength=m) / count
    bucket_lon = np.bincount(bucket_of_point, weights=lon_arr, minlength=m) / count
    head_of = _merge_buckets(unique_keys[::-1], bucket_lat, bucket_lon, count, radius_m, level)
    is_head = head_of == np.arange(m)
    label_of_head = np.cumsum(is_head) - 1
    result: NDArray[np.int64] = label_of_head[head_of][bucket_of_point]
    return result


@dataclass(frozen=True)
class ClusterSummary:
    """Per-cluster point count and centroid, indexed by cluster label."""

    count: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]


def cluster_summary(lat: ArrayLike, lon: ArrayLike, labels: ArrayLike) -> ClusterSummary:
    """Count and centroid of each cluster (the mean of its points, longitudes averaged plainly).

    ``labels`` are those of :func:`cluster_points`; the centroid is the one ODS reports as
    ``cluster_centroid``, to floating-point rounding.
    """
    lat_arr, lon_arr = _as_coordinates(lat, lon)
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
    count = np.bincount(labels_arr, minlength=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_lat = np.bincount(labels_arr, weights=lat_arr, minlength=count.size) / count
        mean_lon = np.bincount(labels_arr, weights=lon_arr, minlength=count.size) / count
    return ClusterSummary(count=count, lat=mean_lat, lon=mean_lon)
