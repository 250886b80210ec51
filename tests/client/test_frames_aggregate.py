"""Grouped answers, geo clusters and analyze series as typed frames (odsframe.frames.aggregate)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, Polygon

from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames.aggregate import (
    frame_from_groups,
    frame_from_v1_analyze,
    geoclusters_from_v1,
    geoclusters_to_geodataframe,
    parse_range_label,
    zoom_for_bbox,
    zoom_for_clusters,
)

ANALYZE_FIXTURE = (
    "opendatasoft__ods-documentation-explore-api__records_api.analyze-example.extracted.json"
)


# --------------------------------------------------------------------------- range labels


@pytest.mark.parametrize(
    ("label", "left", "right", "closed"),
    [
        ("[*, 14]", -math.inf, 15, "left"),
        ("[15, 19]", 15, 20, "left"),
        ("[40, *]", 40, math.inf, "left"),
        ("[0, 14]", 0, 15, "left"),
        ("[15,19]", 15, 20, "left"),
        ("[-10, -1]", -10, 0, "left"),
        ("[10, 15[", 10, 15, "left"),
        ("]14, 19]", 15, 20, "left"),
        ("[*, 10[", -math.inf, 10, "left"),
        ("[10.5, 15[", 10.5, 15.0, "left"),
        ("[*, 2.5[", -math.inf, 2.5, "left"),
        ("[2.5, *]", 2.5, math.inf, "left"),
        ("[0.5, 1.5]", 0.5, 1.5, "both"),
        ("]0.5, 1.5]", 0.5, 1.5, "right"),
        ("]0.5, 1.5[", 0.5, 1.5, "neither"),
    ],
)
def test_parse_range_label_numeric_forms(label, left, right, closed):
    interval = parse_range_label(label)
    assert isinstance(interval, pd.Interval)
    assert (interval.left, interval.right, interval.closed) == (left, right, closed)


def test_integer_labels_include_the_shown_upper_bound_and_exclude_the_next():
    interval = parse_range_label("[15, 19]")
    assert 19 in interval
    assert 19.5 in interval  # an int label [15, 19] is the bucket [15, 20)
    assert 20 not in interval
    assert 14 in parse_range_label("[*, 14]")
    assert 15 not in parse_range_label("[*, 14]")
    assert 10**9 in parse_range_label("[40, *]")


def test_parse_range_label_dates():
    interval = parse_range_label("[2020-01-01T00:00:00.000Z, 2020-01-02T00:00:00.000Z[")
    assert interval.closed == "left"
    assert interval.left == pd.Timestamp("2020-01-01T00:00:00Z")
    assert interval.right == pd.Timestamp("2020-01-02T00:00:00Z")
    assert pd.Timestamp("2020-01-01T12:00:00Z") in interval
    day_interval = parse_range_label("[2020-01-01, 2020-02-01[")
    assert day_interval.left == pd.Timestamp("2020-01-01")


@pytest.mark.parametrize(
    "label", ["FR", "[a, b]", "(1, 2)", "[1, 2, 3]", "[2020-01-01T00:00:00Z, *]", ""]
)
def test_parse_range_label_rejects_other_strings(label):
    with pytest.raises(ValueError, match=r"range label|bound|date range"):
        parse_range_label(label)


def test_parse_range_label_rejects_non_strings():
    with pytest.raises(ValueError, match="must be a string"):
        parse_range_label(15)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- grouped records

RANGE_KEY = "RANGE(capacity,*,15,20,25,30,40,*)"


def range_results() -> list[dict]:
    labels = ["[*, 14]", "[15, 19]", "[20, 24]", "[25, 29]", "[30, 39]", "[40, *]"]
    return [{RANGE_KEY: label, "count(*)": n} for label, n in zip(labels, [5, 3, 0, 2, 7, 1])]


def test_range_keys_become_an_interval_column():
    frame = frame_from_groups(range_results(), keys=[RANGE_KEY], aggregates=["count(*)"])
    assert list(frame.columns) == [RANGE_KEY, "count(*)"]
    assert str(frame[RANGE_KEY].dtype) == "interval[float64, left]"
    assert frame["count(*)"].dtype == "Int64"
    index: Any = pd.IntervalIndex(frame[RANGE_KEY].array)
    assert index.is_non_overlapping_monotonic
    # every capacity lands in exactly one bucket, as on the server
    assert list(index.get_indexer([3, 14, 15, 19, 24, 39, 40, 500])) == [0, 0, 1, 1, 2, 4, 5, 5]


def test_integer_ranges_without_open_ends_keep_integer_bounds():
    results: list[dict[str, Any]] = [{"r": "[0, 14]", "n": 1}, {"r": "[15, 29]", "n": 2}]
    frame = frame_from_groups(results, keys=["r"], aggregates=["n"], key_types={"r": "range"})
    assert frame["r"].dtype == pd.IntervalDtype("int64", closed="left")
    assert frame["r"].iloc[1] == pd.Interval(15, 30, closed="left")


def test_decimal_half_open_ranges_become_intervals():
    results: list[dict[str, Any]] = [
        {"r": "[10, 15[", "n": 1},
        {"r": "[15, 20[", "n": 2},
        {"r": None, "n": 4},
    ]
    frame = frame_from_groups(results, keys=["r"], aggregates=["n"], key_types={"r": "range"})
    assert isinstance(frame["r"].dtype, pd.IntervalDtype)
    assert frame["r"].iloc[0] == pd.Interval(10, 15, closed="left")
    assert pd.isna(frame["r"].iloc[2])


def test_unreadable_or_mixed_range_labels_stay_strings():
    unreadable = [{"r": "[10, 15[", "n": 1}, {"r": "other", "n": 2}]
    frame = frame_from_groups(unreadable, keys=["r"], aggregates=["n"], key_types={"r": "range"})
    assert list(frame["r"]) == ["[10, 15[", "other"]
    assert pd.api.types.is_string_dtype(frame["r"].dtype)
    mixed_sides = [{"r": "[0.5, 1.5]", "n": 1}, {"r": "[1.5, 2.5[", "n": 2}]
    frame = frame_from_groups(mixed_sides, keys=["r"], aggregates=["n"], key_types={"r": "range"})
    assert list(frame["r"]) == ["[0.5, 1.5]", "[1.5, 2.5["]


def test_date_keys_with_one_offset_stay_in_that_offset():
    results: list[dict[str, Any]] = [
        {"date": "2024-01-05T10:00:00+01:00", "count(*)": 2},
        {"date": "2024-01-06T10:00:00+01:00", "count(*)": 1},
    ]
    frame = frame_from_groups(results, keys=["date"], aggregates=["count(*)"])
    assert isinstance(frame["date"].dtype, pd.DatetimeTZDtype)
    assert frame["date"].iloc[0] == pd.Timestamp("2024-01-05T09:00:00Z")
    assert frame["date"].iloc[0].utcoffset() == pd.Timedelta(hours=1)


def test_date_keys_across_summer_time_are_instants():
    results: list[dict[str, Any]] = [
        {"d": "2024-01-05T10:00:00+01:00", "n": 2},
        {"d": "2024-07-05T10:00:00+02:00", "n": 1},
        {"d": None, "n": 4},
    ]
    in_utc = frame_from_groups(results, keys=["d"], aggregates=["n"])
    assert str(in_utc["d"].dt.tz) == "UTC"
    assert in_utc["d"].iloc[1] == pd.Timestamp("2024-07-05T08:00:00Z")
    assert pd.isna(in_utc["d"].iloc[2])
    in_paris = frame_from_groups(results, keys=["d"], aggregates=["n"], timezone="Europe/Paris")
    assert str(in_paris["d"].dt.tz) == "Europe/Paris"
    assert in_paris["d"].iloc[1].hour == 10
    assert in_paris["d"].iloc[1] == in_utc["d"].iloc[1]


def test_plain_dates_are_naive_and_partial_dates_read_when_declared():
    days = [{"day": "2020-01-02", "n": 1}, {"day": "2020-01-03", "n": 1}]
    frame = frame_from_groups(days, keys=["day"], aggregates=["n"])
    assert pd.api.types.is_datetime64_dtype(frame["day"].dtype)
    assert frame["day"].dt.tz is None
    assert frame["day"].iloc[1] == pd.Timestamp("2020-01-03")
    partial = [{"month": "1988-01", "n": 1}, {"month": "2014", "n": 2}]
    frame = frame_from_groups(
        partial, keys=["month"], aggregates=["n"], key_types={"month": "date"}
    )
    assert list(frame["month"]) == [pd.Timestamp("1988-01-01"), pd.Timestamp("2014-01-01")]


def test_v20_epoch_millisecond_dates_are_utc():
    results: list[dict[str, Any]] = [{"d": 1577836800000, "n": 1}]
    as_datetime = frame_from_groups(
        results, keys=["d"], aggregates=["n"], key_types={"d": "datetime"}
    )
    assert as_datetime["d"].iloc[0] == pd.Timestamp("2020-01-01T00:00:00Z")
    as_date = frame_from_groups(results, keys=["d"], aggregates=["n"], key_types={"d": "date"})
    assert as_date["d"].iloc[0] == pd.Timestamp("2020-01-01")
    assert as_date["d"].dt.tz is None


def test_date_key_that_is_not_a_date_is_a_server_error():
    results: list[dict[str, Any]] = [{"d": "2020-01-01", "n": 1}, {"d": "yesterday", "n": 2}]
    with pytest.raises(ServerError, match="'yesterday'"):
        frame_from_groups(results, keys=["d"], aggregates=["n"], key_types={"d": "date"})


def test_numbers_booleans_and_text_are_typed():
    results: list[dict[str, Any]] = [
        {"year(date)": 2020, "city": "Paris", "open": True, "sum(x)": 10, "avg(x)": 2, "m": 1.5},
        {"year(date)": None, "city": None, "open": False, "sum(x)": 12, "avg(x)": 2.5, "m": None},
    ]
    frame = frame_from_groups(
        results,
        keys=["year(date)", "city", "open"],
        aggregates=["sum(x)", "avg(x)", "m"],
    )
    assert frame["year(date)"].dtype == "Int64"
    assert pd.isna(frame["year(date)"].iloc[1])
    assert pd.api.types.is_string_dtype(frame["city"].dtype)
    assert pd.isna(frame["city"].iloc[1])
    assert frame["open"].dtype == "boolean"
    assert frame["sum(x)"].dtype == "Int64"
    assert frame["avg(x)"].dtype == "Float64"  # avg() is a double even when a value is whole
    assert frame["m"].dtype == "Float64"
    assert frame["avg(x)"].iloc[0] == 2.0


def test_aliased_counts_and_v20_string_years_follow_key_types():
    results: list[dict[str, Any]] = [{"y": "2019", "n": 3.0}, {"y": "2020", "n": 4.0}]
    frame = frame_from_groups(
        results, keys=["y"], aggregates=["n"], key_types={"y": "int", "n": "count"}
    )
    assert frame["y"].dtype == "Int64"
    assert list(frame["y"]) == [2019, 2020]
    assert frame["n"].dtype == "Int64"
    assert list(frame["n"]) == [3, 4]


def test_geo_cluster_keys_are_lon_lat_points():
    key = "GEO_CLUSTER(coordonnees_geo,10)"
    results: list[dict[str, Any]] = [
        {key: {"cluster_centroid": {"lat": 48.8706, "lon": 2.3641}}, "count(*)": 609}
    ]
    frame = frame_from_groups(results, keys=[key], aggregates=["count(*)"])
    point = frame[key].iloc[0]
    assert isinstance(point, Point)
    assert (point.x, point.y) == (2.3641, 48.8706)


def test_envelope_and_bbox_aggregates_become_shapely_geometries():
    feature_polygon = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 0]]]},
        "properties": {},
    }
    results: list[dict[str, Any]] = [
        {"k": "a", "envelope(geo)": feature_polygon, "bbox(geo)": feature_polygon},
        {
            "k": "b",
            "envelope(geo)": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
            "bbox(geo)": {
                "type": "Polygon",
                "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
            },
        },
        {"k": "c", "envelope(geo)": {"type": "Point", "coordinates": [3, 4]}, "bbox(geo)": None},
    ]
    frame = frame_from_groups(results, keys=["k"], aggregates=["envelope(geo)", "bbox(geo)"])
    hulls = list(frame["envelope(geo)"])
    assert isinstance(hulls[0], Polygon) and hulls[0].area == pytest.approx(1.0)
    assert isinstance(hulls[1], LineString)
    assert hulls[2] == Point(3, 4)
    assert frame["bbox(geo)"].iloc[1].bounds == (0.0, 0.0, 1.0, 1.0)
    assert frame["bbox(geo)"].iloc[2] is None


def test_geojson_strings_and_geo_points_are_read():
    results: list[dict[str, Any]] = [
        {
            "shape": json.dumps({"type": "Point", "coordinates": [2.0, 48.0]}),
            "pt": {"lon": 2.0, "lat": 48.0},
        },
        {"shape": None, "pt": [48.5, 2.5]},
    ]
    frame = frame_from_groups(
        results,
        keys=["shape", "pt"],
        aggregates=[],
        key_types={"shape": "geo_shape", "pt": "geo_point_2d"},
    )
    assert frame["shape"].iloc[0] == Point(2.0, 48.0)
    assert frame["pt"].iloc[0] == Point(2.0, 48.0)
    assert frame["pt"].iloc[1] == Point(2.5, 48.5)  # v1 order is [lat, lon]


def test_bad_geometries_and_clusters_are_server_errors():
    with pytest.raises(ServerError, match=r"'hull'.*GeoJSON"):
        frame_from_groups(
            [{"hull": {"type": "Polygon"}}],
            keys=[],
            aggregates=["hull"],
            key_types={"hull": "geometry"},
        )
    with pytest.raises(ServerError, match="cluster_centroid"):
        frame_from_groups(
            [{"c": {"lat": 1}}], keys=["c"], aggregates=[], key_types={"c": "cluster"}
        )


def test_names_match_the_answer_despite_case_and_spaces():
    results: list[dict[str, Any]] = [{"count(*)": 4, "sum(capacity)": 10}]
    frame = frame_from_groups(results, keys=[], aggregates=["COUNT( * )", "sum(`capacity`)"])
    assert list(frame.columns) == ["COUNT( * )", "sum(`capacity`)"]
    assert frame["COUNT( * )"].dtype == "Int64"
    assert frame.iloc[0].tolist() == [4, 10]


def test_missing_column_names_the_column_and_the_available_ones():
    with pytest.raises(ServerError, match=r"'avg\(x\)'.*count\(\*\)"):
        frame_from_groups([{"count(*)": 1}], keys=[], aggregates=["avg(x)"])


def test_argument_errors_are_typed():
    with pytest.raises(InvalidQueryArgument, match="given twice"):
        frame_from_groups([], keys=["a"], aggregates=["a"])
    with pytest.raises(InvalidQueryArgument, match=r"unknown column kind.*'decimal'"):
        frame_from_groups([], keys=["a"], aggregates=[], key_types={"a": "decimal"})
    assert issubclass(InvalidQueryArgument, ValueError)


@pytest.mark.parametrize("payload", ["text", 3, [1, 2], {"nothing": []}])
def test_payloads_that_are_not_grouped_answers_are_server_errors(payload):
    with pytest.raises(ServerError, match=r"grouped answer|group 0"):
        frame_from_groups(payload, keys=["a"], aggregates=[])


def test_answer_envelopes_of_v21_and_v20_are_accepted():
    v21 = {"results": [{"k": "x", "count(*)": 1}]}
    assert frame_from_groups(v21, keys=["k"], aggregates=["count(*)"]).shape == (1, 2)
    v20_grouped = {"links": [], "records": [{"count": 16729, "cou_name_en": "United States"}]}
    frame = frame_from_groups(
        v20_grouped, keys=["cou_name_en"], aggregates=["count"], key_types={"count": "count"}
    )
    assert frame.iloc[0].tolist() == ["United States", 16729]
    v20_single = {"aggregations": {"count(*)": 42}}
    assert frame_from_groups(v20_single, keys=[], aggregates=["count(*)"])["count(*)"].tolist() == [
        42
    ]


def test_empty_answer_gives_an_empty_frame_with_the_columns():
    frame = frame_from_groups([], keys=["k"], aggregates=["count(*)"])
    assert list(frame.columns) == ["k", "count(*)"]
    assert len(frame) == 0


# --------------------------------------------------------------------------- v2.1 geo clusters

CLUSTER_KEY = "GEO_CLUSTER(geo,5)"


def cluster_results() -> list[dict]:
    return [
        {
            CLUSTER_KEY: {"cluster_centroid": {"lat": 48.85, "lon": 2.35}},
            "count(*)": 120,
            "envelope(geo)": {
                "type": "Polygon",
                "coordinates": [[[2.2, 48.8], [2.5, 48.8], [2.4, 48.9], [2.2, 48.8]]],
            },
            "avg(population)": 1500.5,
        },
        {
            CLUSTER_KEY: {"cluster_centroid": {"lat": 45.76, "lon": 4.83}},
            "count(*)": 2,
            "envelope(geo)": {"type": "LineString", "coordinates": [[4.8, 45.7], [4.9, 45.8]]},
            "avg(population)": 200.0,
        },
        {
            CLUSTER_KEY: {"cluster_centroid": {"lat": 43.3, "lon": 5.37}},
            "count(*)": 1,
            "envelope(geo)": {"type": "Point", "coordinates": [5.37, 43.3]},
            "avg(population)": None,
        },
    ]


def test_geoclusters_to_geodataframe():
    gdf = geoclusters_to_geodataframe(cluster_results(), CLUSTER_KEY)
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf.columns) == ["count", "hull", "avg(population)", "geometry"]
    assert gdf["count"].dtype == "Int64"
    assert list(gdf["count"]) == [120, 2, 1]
    assert list(gdf.geometry.x) == [2.35, 4.83, 5.37]
    assert list(gdf.geometry.y) == [48.85, 45.76, 43.3]
    assert [g.geom_type for g in gdf["hull"]] == ["Polygon", "LineString", "Point"]
    assert gdf["avg(population)"].dtype == "Float64"
    assert gdf.attrs["ods_clusters"]["count"] == {"min": 1, "max": 120}
    assert gdf.attrs["ods_clusters"]["series"]["avg(population)"] == {"min": 200.0, "max": 1500.5}


def test_geoclusters_with_aliases():
    results: list[dict[str, Any]] = [
        {"cl": {"cluster_centroid": {"lat": 1.0, "lon": 2.0}}, "n": 5, "h": None, "geometry": 3}
    ]
    gdf = geoclusters_to_geodataframe(results, "cl", count_key="n", hull_key="h")
    assert list(gdf.columns) == ["count", "hull", "geometry_", "geometry"]
    assert gdf["count"].tolist() == [5]
    assert gdf.geometry.iloc[0] == Point(2.0, 1.0)


def test_geoclusters_without_a_count_or_cluster_key_are_server_errors():
    with pytest.raises(ServerError, match="no count column"):
        geoclusters_to_geodataframe(
            [{CLUSTER_KEY: {"cluster_centroid": {"lat": 1, "lon": 2}}}], CLUSTER_KEY
        )
    with pytest.raises(ServerError, match="'GEO_CLUSTER\\(other,5\\)'"):
        geoclusters_to_geodataframe(cluster_results(), "GEO_CLUSTER(other,5)")


def test_no_clusters_give_an_empty_geodataframe():
    gdf = geoclusters_to_geodataframe({"results": []}, CLUSTER_KEY)
    assert len(gdf) == 0
    assert "count" in gdf.columns
    assert gdf.crs.to_epsg() == 4326


# --------------------------------------------------------------------------- v1 answers


def v1_geocluster_answer() -> dict:
    return {
        "clusters": [
            {
                "cluster_center": [48.85, 2.35],
                "count": 5,
                "cluster": {
                    "type": "Polygon",
                    "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.8]]],
                },
                "series": {"avg_population": 54285.8},
            },
            {
                "cluster_center": [43.3, 5.37],
                "count": 1,
                "cluster": {"type": "Point", "coordinates": [5.37, 43.3]},
                "series": {"avg_population": 2.0},
            },
        ],
        "count": {"min": 1, "max": 5},
        "series": {"avg_population": {"min": 2, "max": 54285.8}},
        "clusterprecision": 3,
    }


def test_geoclusters_from_v1():
    gdf = geoclusters_from_v1(v1_geocluster_answer())
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf.columns) == ["count", "hull", "avg_population", "geometry"]
    assert gdf.geometry.iloc[0] == Point(2.35, 48.85)  # cluster_center is [lat, lon]
    assert gdf["count"].dtype == "Int64"
    assert list(gdf["count"]) == [5, 1]
    assert isinstance(gdf["hull"].iloc[0], Polygon)
    assert gdf["hull"].iloc[1] == Point(5.37, 43.3)
    assert gdf["avg_population"].dtype == "Float64"
    assert gdf.attrs["ods_clusters"]["clusterprecision"] == 3
    assert gdf.attrs["ods_clusters"]["count"] == {"min": 1, "max": 5}


def test_geoclusters_from_v1_rejects_other_payloads():
    with pytest.raises(ServerError, match="'clusters' list"):
        geoclusters_from_v1({"results": []})
    bad_centre = {"clusters": [{"cluster_center": {"lat": 1, "lon": 2}, "count": 1}]}
    with pytest.raises(ServerError, match=r"cluster 0: 'cluster_center' must be \[lat, lon\]"):
        geoclusters_from_v1(bad_centre)


def test_v1_analyze_real_fixture(real_fixtures: Path):
    payload = json.loads((real_fixtures / ANALYZE_FIXTURE).read_text(encoding="utf-8"))
    frame = frame_from_v1_analyze(payload)
    assert list(frame.columns) == ["x", "my_count"]
    assert len(frame) == len(payload) == 11
    assert pd.api.types.is_string_dtype(frame["x"].dtype)
    assert frame["my_count"].dtype == "Int64"
    by_country = dict(zip(frame["x"], frame["my_count"]))
    assert by_country["FR"] == 1468
    assert by_country["MC"] == 3
    assert int(frame["my_count"].sum()) == sum(row["my_count"] for row in payload)


def test_v1_analyze_date_buckets():
    payload = [
        {"x": {"year": 2002, "month": 1}, "series1": 3, "avg": 1.5},
        {"x": {"year": 2002, "month": 2}, "series1": 5, "avg": None},
    ]
    frame = frame_from_v1_analyze(payload)
    assert list(frame["x"]) == [pd.Timestamp("2002-01-01"), pd.Timestamp("2002-02-01")]
    assert frame["series1"].dtype == "Int64"
    assert frame["avg"].dtype == "Float64"
    local = frame_from_v1_analyze(payload, timezone="Europe/Paris")
    assert str(local["x"].dt.tz) == "Europe/Paris"
    periodic = frame_from_v1_analyze(
        [{"x": {"weekday": 0}, "s": 12}, {"x": {"weekday": 6}, "s": 2}]
    )
    assert list(periodic.columns) == ["x_weekday", "s"]
    assert periodic["x_weekday"].dtype == "Int64"
    assert list(periodic["x_weekday"]) == [0, 6]


def test_v1_analyze_join_form_keeps_aggregations():
    payload = {"results": [{"x": "a", "s": 1}], "aggregations": {"m": {"min": 1, "max": 1}}}
    frame = frame_from_v1_analyze(payload)
    assert frame.attrs["ods_analyze"]["aggregations"] == {"m": {"min": 1, "max": 1}}
    with pytest.raises(ServerError, match="list of buckets"):
        frame_from_v1_analyze({"error": "x"})


# --------------------------------------------------------------------------- zoom helpers


def test_zoom_for_the_whole_world():
    world = (-180, -85, 180, 85)
    assert zoom_for_bbox(world, width_px=256) == 0
    assert zoom_for_bbox(world, width_px=800) == 1  # 512 px fits, 1024 px does not
    assert zoom_for_bbox(world, width_px=1024) == 2


@pytest.mark.parametrize("level", [1, 4, 9])
def test_zoom_for_a_box_one_tile_wide(level):
    # A box 360 / 2**level degrees wide is exactly 256 px wide at that zoom.
    span = 360 / 2**level
    box = (0.0, 0.0, span, 0.0)
    assert zoom_for_bbox(box, width_px=256) == level
    assert zoom_for_bbox(box, width_px=255) == level - 1
    assert zoom_for_bbox(box, width_px=512) == level + 1


def test_zoom_uses_mercator_heights_and_the_narrower_side():
    tall = (2.0, 40.0, 2.001, 60.0)
    square_view = zoom_for_bbox(tall, width_px=800)
    assert square_view == zoom_for_bbox(tall, width_px=800, height_px=800)
    assert zoom_for_bbox(tall, width_px=800, height_px=1600) == square_view + 1
    # the same latitude span is taller in mercator near the poles
    assert zoom_for_bbox((0, 60, 1, 61), width_px=10_000) < zoom_for_bbox(
        (0, 0, 1, 1), width_px=10_000
    )


def test_zoom_across_the_antimeridian_and_degenerate_boxes():
    assert zoom_for_bbox((170, -10, -170, 10)) == zoom_for_bbox((-10, -10, 10, 10))
    assert zoom_for_bbox((2.35, 48.85, 2.35, 48.85)) == 25
    assert zoom_for_bbox((2.35, 48.85, 2.35, 48.85), max_zoom=18) == 18


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ((1, 2, 3), "four numbers"),
        (("a", 0, 1, 1), "four numbers"),
        ((0, 0, float("nan"), 1), "finite"),
        ((0, 0, 200, 1), "longitudes"),
        ((0, 10, 1, 5), "latitudes"),
    ],
)
def test_zoom_rejects_bad_boxes(bbox, message):
    with pytest.raises(InvalidQueryArgument, match=message):
        zoom_for_bbox(bbox)


def test_zoom_rejects_bad_sizes():
    with pytest.raises(InvalidQueryArgument, match="width_px"):
        zoom_for_bbox((0, 0, 1, 1), width_px=0)
    with pytest.raises(InvalidQueryArgument, match="max_zoom"):
        zoom_for_bbox((0, 0, 1, 1), max_zoom=-1)


def test_zoom_for_clusters_fits_centroids_and_hulls():
    gdf = geoclusters_to_geodataframe(cluster_results(), CLUSTER_KEY)
    bounds = gdf.geometry.total_bounds
    assert zoom_for_clusters(gdf, padding=0) == zoom_for_bbox(tuple(bounds))
    assert zoom_for_clusters(gdf.geometry, padding=0) == zoom_for_bbox(tuple(bounds))
    # one cluster alone, with and without its hull
    one = gdf.iloc[:1]
    assert zoom_for_clusters(one.geometry) == 25
    assert zoom_for_clusters(one, padding=0) == zoom_for_bbox((2.2, 48.8, 2.5, 48.9)) < 25
    assert zoom_for_clusters([Point(0, 0), Point(90, 0)], padding=0) == zoom_for_bbox((0, 0, 90, 0))


def test_zoom_for_clusters_rejects_nothing_to_fit():
    with pytest.raises(InvalidQueryArgument, match="no cluster geometries"):
        zoom_for_clusters([])
    with pytest.raises(InvalidQueryArgument, match="padding"):
        zoom_for_clusters([Point(0, 0)], padding=-1)


def test_padding_lowers_or_keeps_the_zoom():
    points = [Point(0, 0), Point(10, 10)]
    assert zoom_for_clusters(points, padding=0.5) <= zoom_for_clusters(points, padding=0)
    assert isinstance(zoom_for_clusters(points), int)
    assert np.isfinite(zoom_for_clusters(points))
