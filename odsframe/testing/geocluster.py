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


def _as_coordinates(lat: ArrayLike, lon: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
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


def _double_from_bits(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<q", bits))[0]
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
    _double_from_bits(bits - (1 << 64) if bits >= 1 << 63 else bits)
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
    _double_from_bits(bits - (1 << 64) if bits >= 1 << 63 else bits)
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
    return c + delta * (-s + delta * (-c * _ONE_DIV_F2 + delta * (s * _ONE_DIV_F3 + delta * c * _ONE_DIV_F4)))


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
    out = c + delta * (-s + delta * (-c * _ONE_DIV_F2 + delta * (s * _ONE_DIV_F3 + delta * c * _ONE_DIV_F4)))
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


# Java Math.toRadians multiplies by this constant (JDK 9 and later); so does math.radians.
_DEG = math.pi / 180.0
