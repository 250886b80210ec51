"""The ``geo_cluster`` algorithm (odsframe.testing.geocluster) against ODS's plugin semantics.

A deliberately naive reference lives in this file, written from the algorithm's description
(ods-api.md section 7.2): text geohashes from a hand-written bisection encoder, a dict of
buckets, and the quadratic merge pass. Only the distance primitive is shared: Lucene's sloppy
haversine, which is tested on its own (against an exact haversine and against the centroids
Elasticsearch printed for the plugin README's example).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from odsframe.testing import geocluster as gc
from odsframe.testing.geocluster import GeoClusterInputError

BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
EARTH_RADIUS = 6_371_008.7714

#: ods-api.md section 7.2: geohash level per zoom for the default radius of 40 pixels.
LEVELS_RADIUS_40 = [
    2,
    2,
    3,
    3,
    3,
    4,
    4,
    5,
    5,
    5,
    6,
    6,
    7,
    7,
    7,
    8,
    8,
    9,
    9,
    9,
    10,
    10,
    11,
    11,
    11,
    12,
]

#: The plugin README's example (opendatasoft/elasticsearch-aggregation-geoclustering):
#: 15 points as [lon, lat], aggregated at zoom 9, and the two buckets Elasticsearch returned.
README_POINTS = [
    (2.454929, 48.821578),
    (2.245858, 48.86914),
    (2.240358, 48.863481),
    (2.25292, 48.847176),
    (2.279111, 48.872383),
    (2.336267, 48.822021),
    (2.338677, 48.822672),
    (2.336643, 48.822493),
    (2.438465, 48.84204),
    (2.381554, 48.835382),
    (2.407744, 48.83733),
    (2.34521, 48.849358),
    (2.252938, 48.846041),
    (2.279715, 48.871775),
    (2.380629, 48.879757),
]
README_CLUSTERS = [
    {
        "cells": {"u09wn", "u09tz", "u09ty", "u09tx", "u09tv", "u09tt"},
        "count": 9,
        "lat": 48.83695897646248,
        "lon": 2.380013056099415,
    },
    {
        "cells": {"u09w5", "u09tg", "u09tf"},
        "count": 6,
        "lat": 48.86166598415002,
        "lon": 2.258483301848173,
    },
]


# -- the naive reference ---------------------------------------------------------------------


def naive_geohash(lat: float, lon: float, length: int) -> str:
    """Textbook geohash: bisect longitude and latitude alternately, longitude first."""
    lat_range, lon_range = [-90.0, 90.0], [-180.0, 180.0]
    bits: list[int] = []
    for i in range(5 * length):
        interval, value = (lon_range, lon) if i % 2 == 0 else (lat_range, lat)
        middle = (interval[0] + interval[1]) / 2
        if value >= middle:
            bits.append(1)
            interval[0] = middle
        else:
            bits.append(0)
            interval[1] = middle
    return "".join(
        BASE32[int("".join(map(str, bits[k : k + 5])), 2)] for k in range(0, len(bits), 5)
    )


def scan_order_key(cell: str) -> tuple[bool, str]:
    """Sort key of a cell in the plugin's scan order (descending signed 64-bit long).

    Below level 12 the long is positive and orders like the text. At level 12 its top bit is
    the first longitude bit, so eastern cells (first character 'h' or later) are negative.
    """
    western = len(cell) < 12 or BASE32.index(cell[0]) < 16
    return (western, cell)


def naive_clusters(
    lat: list[float], lon: list[float], zoom: int, radius_px: int = 40
) -> tuple[list[int], list[dict[str, object]]]:
    """Labels per point and, per cluster, its cells, count and centroid (plugin semantics)."""
    radius_m = radius_px * 2 * math.pi * 6378137.0 / (256 * 2**zoom)
    level = gc.geohash_levels_for_precision(radius_m)
    assert level <= 12, "the text reference covers levels 1..12"
    buckets: dict[str, list[int]] = {}
    for i, (y, x) in enumerate(zip(lat, lon)):
        buckets.setdefault(naive_geohash(y, x, level), []).append(i)
    order = sorted(buckets, key=scan_order_key, reverse=True)
    centroid = {
        cell: [
            len(points),
            sum(lat[i] for i in points) / len(points),
            sum(lon[i] for i in points) / len(points),
        ]
        for cell, points in buckets.items()
    }
    absorbed: set[str] = set()
    clusters: list[dict[str, object]] = []
    # a latitude gap of more than the radius (plus Lucene's error) cannot merge: skip early
    too_far_deg = math.degrees((radius_m + 1.0) / EARTH_RADIUS)
    for head in order:
        if head in absorbed:
            continue
        absorbed.add(head)
        count, c_lat, c_lon = centroid[head]
        cells = [head]
        for other in order:
            if other in absorbed:
                continue
            o_count, o_lat, o_lon = centroid[other]
            if abs(o_lat - c_lat) > too_far_deg:
                continue
            distance = gc._sloppy_arc_distance(c_lat, c_lon, o_lat, o_lon)
            if distance <= radius_m * math.cos(math.radians((c_lat + o_lat) / 2)):
                absorbed.add(other)
                cells.append(other)
                total = count + o_count
                c_lat = (c_lat * count + o_lat * o_count) / total
                c_lon = (c_lon * count + o_lon * o_count) / total
                count = total
        clusters.append({"cells": set(cells), "count": count, "lat": c_lat, "lon": c_lon})
    labels = [0] * len(lat)
    for label, cluster in enumerate(clusters):
        for cell in cluster["cells"]:
            for i in buckets[cell]:
                labels[i] = label
    return labels, clusters


def assert_matches_reference(lat: np.ndarray, lon: np.ndarray, zoom: int, radius: int) -> None:
    labels = gc.cluster_points(lat, lon, zoom, radius, quantize=False)
    expected_labels, expected = naive_clusters(lat.tolist(), lon.tolist(), zoom, radius)
    assert labels.tolist() == expected_labels, f"zoom {zoom}, radius {radius}"
    summary = gc.cluster_summary(lat, lon, labels, quantize=False)
    assert summary.count.tolist() == [c["count"] for c in expected]
    np.testing.assert_allclose(summary.lat, [c["lat"] for c in expected], rtol=0, atol=1e-9)
    np.testing.assert_allclose(summary.lon, [c["lon"] for c in expected], rtol=0, atol=1e-9)


# -- point sets ------------------------------------------------------------------------------


def uniform_world(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(-89, 89, n), rng.uniform(-180, 180, n)


def around_centres(
    rng: np.random.Generator, n: int, spread_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    centres = np.c_[rng.uniform(-60, 60, 4), rng.uniform(-170, 170, 4)]
    which = rng.integers(0, 4, n)
    lat = centres[which, 0] + rng.normal(0, spread_deg, n)
    lon = centres[which, 1] + rng.normal(0, spread_deg, n)
    return np.clip(lat, -90, 90), np.clip(lon, -180, 180)


def city(rng: np.random.Generator, n: int, spread_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense Gaussian blobs with a sparse halo, around Paris."""
    blobs = rng.integers(0, 5, n)
    centre_lat = 48.85 + rng.normal(0, spread_deg, 5)
    centre_lon = 2.35 + rng.normal(0, spread_deg, 5)
    scale = np.where(rng.random(n) < 0.7, spread_deg / 4, spread_deg * 2)
    return (
        centre_lat[blobs] + rng.normal(0, 1, n) * scale,
        centre_lon[blobs] + rng.normal(0, 1, n) * scale,
    )


def antimeridian(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    east = rng.random(n) < 0.5
    lon = np.where(east, rng.uniform(179.5, 180, n), rng.uniform(-180, -179.5, n))
    return rng.uniform(-3, 3, n), lon


def polar(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    lat = np.where(rng.random(n) < 0.5, rng.uniform(88, 90, n), rng.uniform(-90, -88, n))
    return lat, rng.uniform(-180, 180, n)


# -- zoom, radius, geohash level -------------------------------------------------------------


def test_geohash_level_matches_the_reference_table_for_every_zoom() -> None:
    assert [gc.geohash_level(zoom) for zoom in range(26)] == LEVELS_RADIUS_40


def test_ground_resolution_and_radius_follow_the_tile_formula() -> None:
    assert gc.ground_resolution(0) == pytest.approx(156543.03392804097, rel=1e-15)
    assert gc.ground_resolution(10) == gc.ground_resolution(0) / 1024
    assert gc.radius_metres(9) == pytest.approx(12229.92, abs=0.01)
    assert gc.radius_metres(9, 80) == 2 * gc.radius_metres(9)


def test_geohash_levels_for_precision_at_its_extremes() -> None:
    # no upper cap: small radii at zoom 25 ask for levels above 12, as Elasticsearch does
    assert gc.geohash_level(25, 15) == 12
    assert gc.geohash_level(25, 10) == 13
    assert gc.geohash_level(25, 1) == 14
    assert gc.geohash_level(0, 200) == 1
    # a cell wider than the equator: the formula's early exit
    assert gc.geohash_levels_for_precision(1e8) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gc.geohash_level(26), "zoom must be between 0 and 25"),
        (lambda: gc.geohash_level(-1), "zoom must be between 0 and 25"),
        (lambda: gc.geohash_level(3.0), "zoom must be an integer"),  # type: ignore[arg-type]
        (lambda: gc.geohash_level(True), "zoom must be an integer"),
        (lambda: gc.radius_metres(5, 0), "radius must be greater than 0"),
        (lambda: gc.radius_metres(5, 2.5), "radius must be an integer"),  # type: ignore[arg-type]
        (lambda: gc.geohash_levels_for_precision(0.0), "positive and finite"),
        (lambda: gc.geohash_long_encode([0.0], [0.0], 0), "level must be between 1 and 24"),
        (lambda: gc.geohash_long_encode([0.0], [0.0], 2.0), "level must be an integer"),
        (lambda: gc.geohash_string(0x50), "has level 0"),
    ],
)
def test_bad_parameters_raise_a_typed_error_naming_them(call, message: str) -> None:
    with pytest.raises(GeoClusterInputError, match=message):
        call()


# -- geohash long encoding -------------------------------------------------------------------


def test_long_encode_gives_the_textbook_geohash_at_every_level() -> None:
    rng = np.random.default_rng(11)
    lat, lon = rng.uniform(-90, 90, 300), rng.uniform(-180, 180, 300)
    for level in range(1, 13):
        keys = gc.geohash_long_encode(lon, lat, level)
        assert [gc.geohash_string(k) for k in keys] == [
            naive_geohash(y, x, level) for y, x in zip(lat, lon)
        ]
        assert set((keys & 15).tolist()) == {level}


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (57.64911, 10.40744, "u4pruydqqvj"),  # the Wikipedia example
        (42.605, -5.603, "ezs42"),
        (90.0, 180.0, "zzzzzzzzzzzz"),
        (-90.0, -180.0, "000000000000"),
    ],
)
def test_long_encode_of_well_known_points(lat: float, lon: float, expected: str) -> None:
    key = gc.geohash_long_encode([lon], [lat], len(expected))[0]
    assert gc.geohash_string(key) == expected


def test_scan_order_is_descending_signed_key_with_eastern_cells_last_at_level_12() -> None:
    lon = np.array([-100.0, -1.0, 1.0, 100.0])
    keys = gc.geohash_long_encode(lon, np.zeros(4), 12)
    assert (keys[:2] > 0).all() and (keys[2:] < 0).all()
    keys = gc.geohash_long_encode(lon, np.zeros(4), 11)
    assert (keys > 0).all()
    assert np.argsort(keys).tolist() == [0, 1, 2, 3]


def test_levels_above_12_reproduce_javas_shift_count_masking() -> None:
    lon = np.array([-120.0, -0.5, 0.5, 120.0])
    # level 13: (interleaved >>> 2) >>> 61 keeps only the first longitude bit
    assert gc.geohash_long_encode(lon, np.full(4, 45.0), 13).tolist() == [13, 13, 29, 29]
    # level 14: >>> 56 keeps the first 6 bits, below the level's 4 bits
    key = gc.geohash_long_encode([120.0], [45.0], 14)[0]
    assert key & 15 == 14
    assert key >> 4 == int(
        "".join(f"{BASE32.index(c):05b}" for c in naive_geohash(45.0, 120.0, 2))[:6], 2
    )


def test_the_readme_cells_are_the_textbook_cells() -> None:
    lon = [p[0] for p in README_POINTS]
    lat = [p[1] for p in README_POINTS]
    keys = gc.geohash_long_encode(lon, lat, 5)
    cells = {gc.geohash_string(k) for k in keys}
    assert cells == README_CLUSTERS[0]["cells"] | README_CLUSTERS[1]["cells"]


# -- Lucene's sloppy haversine ---------------------------------------------------------------


def exact_haversine(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS * np.arcsin(np.minimum(1, np.sqrt(a)))


@pytest.mark.parametrize("scale_deg", [1e-7, 1e-5, 1e-3, 0.1, 10.0, 120.0])
def test_arc_distance_stays_within_half_a_metre_of_the_exact_haversine(scale_deg: float) -> None:
    rng = np.random.default_rng(int(scale_deg * 1e7) % 2**32)
    lat1, lon1 = rng.uniform(-85, 85, 2000), rng.uniform(-180, 180, 2000)
    lat2 = np.clip(lat1 + rng.normal(0, scale_deg, 2000), -90, 90)
    lon2 = lon1 + rng.normal(0, scale_deg, 2000)
    sloppy = gc.arc_distance(lat1, lon1, lat2, lon2)
    assert np.abs(sloppy - exact_haversine(lat1, lon1, lat2, lon2)).max() < 0.5


def test_arc_distance_is_symmetric_zero_on_itself_and_has_lucenes_granularity() -> None:
    rng = np.random.default_rng(3)
    lat1, lon1 = rng.uniform(-80, 80, 500), rng.uniform(-180, 180, 500)
    lat2, lon2 = rng.uniform(-80, 80, 500), rng.uniform(-180, 180, 500)
    np.testing.assert_array_equal(
        gc.arc_distance(lat1, lon1, lat2, lon2), gc.arc_distance(lat2, lon2, lat1, lon1)
    )
    assert (gc.arc_distance(lat1, lon1, lat1, lon1) == 0).all()
    # 1 - cos(x) vanishes below ~1e-8 rad: Lucene sees 0.6 mm apart points as one
    assert gc.arc_distance(10.0, 20.0, 10.0, 20.0 + 5e-9)[()] == 0.0


def test_scalar_and_vector_sloppy_haversines_agree_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    lat1, lon1 = rng.uniform(-90, 90, 400), rng.uniform(-180, 180, 400)
    lat2 = np.clip(lat1 + rng.normal(0, 0.01, 400), -90, 90)
    lon2 = lon1 + rng.normal(0, 0.01, 400)
    lat2[:100], lon2[:100] = -lat1[:100], lon1[:100] + 180  # far pairs, fdlibm asin branch
    vector = gc.arc_distance(lat1, lon1, lat2, lon2)
    scalar = [gc._sloppy_arc_distance(*args) for args in zip(lat1, lon1, lat2, lon2)]
    assert vector.tolist() == scalar


# -- the clustering ---------------------------------------------------------------------------


def test_the_readme_example_gives_elasticsearchs_clusters_bit_for_bit() -> None:
    lon = [p[0] for p in README_POINTS]
    lat = [p[1] for p in README_POINTS]
    labels = gc.cluster_points(lat, lon, 9)
    summary = gc.cluster_summary(lat, lon, labels)
    assert summary.count.tolist() == [9, 6]
    assert summary.lat.tolist() == [c["lat"] for c in README_CLUSTERS]
    assert summary.lon.tolist() == [c["lon"] for c in README_CLUSTERS]
    keys = gc.geohash_long_encode(lon, lat, 5)
    for label, cluster in enumerate(README_CLUSTERS):
        assert {gc.geohash_string(k) for k in keys[labels == label]} == cluster["cells"]
    # without Lucene's quantisation the centroids move by millimetres, the clusters do not
    raw = gc.cluster_points(lat, lon, 9, quantize=False)
    assert raw.tolist() == labels.tolist()
    raw_lat = gc.cluster_summary(lat, lon, raw, quantize=False).lat
    assert 0 < abs(raw_lat[0] - README_CLUSTERS[0]["lat"]) < 1e-7


@pytest.mark.parametrize(
    ("zoom", "radius"),
    [
        (zoom, radius)
        for zoom in (0, 3, 5, 8, 11, 14, 17, 20, 23, 25)
        for radius in (40, 9, 90)
        if gc.geohash_level(zoom, radius) <= 12  # the text reference stops at level 12
    ],
)
def test_uniform_points_match_the_naive_reference(zoom: int, radius: int) -> None:
    rng = np.random.default_rng(zoom * 100 + radius)
    assert_matches_reference(*uniform_world(rng, 400), zoom, radius)


@pytest.mark.parametrize("zoom", [2, 4, 6, 9, 12, 15, 18, 21, 24])
@pytest.mark.parametrize("spread", [1e-4, 3e-3, 0.05, 1.0])
def test_points_around_a_few_centres_match_the_naive_reference(zoom: int, spread: float) -> None:
    rng = np.random.default_rng(zoom * 7 + int(spread * 1e4))
    assert_matches_reference(*around_centres(rng, 500, spread), zoom, 40)


@pytest.mark.parametrize(("zoom", "spread"), [(10, 0.3), (12, 0.08), (14, 0.02), (16, 0.004)])
def test_dense_cities_match_the_naive_reference(zoom: int, spread: float) -> None:
    # dense blobs in a sparse halo: heads that walk cells, heads that use candidate lists,
    # centroids drifting away from their head
    rng = np.random.default_rng(zoom)
    assert_matches_reference(*city(rng, 1500, spread), zoom, 40)
    assert_matches_reference(*city(rng, 1500, spread), zoom, 25)


@pytest.mark.parametrize("zoom", [0, 2, 5, 8, 11, 14])
def test_points_on_both_sides_of_the_antimeridian_match_the_naive_reference(zoom: int) -> None:
    rng = np.random.default_rng(40 + zoom)
    assert_matches_reference(*antimeridian(rng, 300), zoom, 40)


@pytest.mark.parametrize("zoom", [0, 3, 6, 9, 12, 15])
def test_points_near_the_poles_match_the_naive_reference(zoom: int) -> None:
    rng = np.random.default_rng(60 + zoom)
    assert_matches_reference(*polar(rng, 300), zoom, 40)


def test_duplicates_single_points_and_no_points() -> None:
    rng = np.random.default_rng(8)
    lat, lon = around_centres(rng, 60, 0.01)
    repeated = np.repeat(np.arange(60), rng.integers(1, 20, 60))
    assert_matches_reference(lat[repeated], lon[repeated], 12, 40)
    assert gc.cluster_points([48.85], [2.35], 15).tolist() == [0]
    assert gc.cluster_points([48.85] * 5, [2.35] * 5, 25).tolist() == [0] * 5
    assert gc.cluster_points([], [], 7).dtype == np.int64
    assert gc.cluster_points([], [], 7).size == 0
    assert gc.cluster_summary([], [], []).count.size == 0


def test_levels_above_12_cluster_in_the_two_hemisphere_buckets_java_computes() -> None:
    # radius 5 at zoom 25 asks for level 13, whose keys keep only the first longitude bit
    lat = [10.0, 10.0000001, -40.0, 10.0]
    lon = [-50.0, -50.0000001, 30.0, 30.0]
    labels = gc.cluster_points(lat, lon, 25, 5)
    summary = gc.cluster_summary(lat, lon, labels)
    assert labels.tolist() == [1, 1, 0, 0]  # the eastern bucket (larger key) comes first
    assert summary.count.tolist() == [2, 2]


def test_labels_follow_odss_order_and_counts_add_up() -> None:
    rng = np.random.default_rng(21)
    lat, lon = city(rng, 3000, 0.05)
    labels = gc.cluster_points(lat, lon, 13)
    summary = gc.cluster_summary(lat, lon, labels)
    assert summary.count.sum() == 3000
    assert set(labels.tolist()) == set(range(summary.count.size))
    keys = gc.geohash_long_encode(*gc.quantize_lat_lon(lat, lon)[::-1], gc.geohash_level(13))
    head_keys = [keys[labels == label].max() for label in range(summary.count.size)]
    assert head_keys == sorted(head_keys, reverse=True)


def test_cluster_points_is_deterministic_and_independent_of_point_order() -> None:
    rng = np.random.default_rng(4)
    lat, lon = city(rng, 2000, 0.02)
    labels = gc.cluster_points(lat, lon, 15)
    shuffle = rng.permutation(2000)
    assert gc.cluster_points(lat[shuffle], lon[shuffle], 15).tolist() == labels[shuffle].tolist()


def test_quantize_lat_lon_is_lucenes_floor_to_a_32_bit_grid() -> None:
    rng = np.random.default_rng(9)
    lat, lon = rng.uniform(-90, 90, 1000), rng.uniform(-180, 180, 1000)
    q_lat, q_lon = gc.quantize_lat_lon(lat, lon)
    step_lat, step_lon = 180 / 2**32, 360 / 2**32
    assert ((lat - q_lat >= 0) & (lat - q_lat < step_lat)).all()
    assert ((lon - q_lon >= 0) & (lon - q_lon < step_lon)).all()
    np.testing.assert_array_equal(np.round(q_lat / step_lat), q_lat / step_lat)
    again = gc.quantize_lat_lon(q_lat, q_lon)
    np.testing.assert_array_equal(again[0], q_lat)
    np.testing.assert_array_equal(again[1], q_lon)
    assert gc.quantize_lat_lon([90.0], [180.0])[0][0] < 90.0


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        ([91.0], [0.0], "lat must be finite and within \\[-90, 90\\]; point 0"),
        ([0.0, float("nan")], [0.0, 1.0], "lat must be finite.*point 1"),
        ([0.0], [-180.5], "lon must be finite and within \\[-180, 180\\]"),
        ([0.0, 1.0], [0.0], "same length"),
        ([[0.0]], [[0.0]], "one-dimensional"),
        (["a"], [0.0], "numeric"),
    ],
)
def test_bad_coordinates_raise_a_typed_error_naming_the_point(lat, lon, message: str) -> None:
    with pytest.raises(GeoClusterInputError, match=message):
        gc.cluster_points(lat, lon, 10)


def test_cluster_summary_rejects_labels_that_do_not_fit() -> None:
    with pytest.raises(GeoClusterInputError, match="one entry per point"):
        gc.cluster_summary([1.0, 2.0], [1.0, 2.0], [0])
    with pytest.raises(GeoClusterInputError, match="non-negative integers"):
        gc.cluster_summary([1.0], [1.0], [-1])
    with pytest.raises(GeoClusterInputError, match="non-negative integers"):
        gc.cluster_summary([1.0], [1.0], [0.5])
