"""Search API v1 ``/analyze/`` and ``/geocluster/`` of the local portal, over real HTTP.

Expected values come from the v2.1 API of the same portal (``group_by`` and ``geo_cluster``),
so both generations must agree on the same data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import get, ok, v1_error

from odsframe.testing.portal import LocalPortal

ANALYZE = "/api/records/1.0/analyze/"
GEOCLUSTER = "/api/records/1.0/geocluster/"
RECORDS_V21 = "/api/explore/v2.1/catalog/datasets/{}/records"
EVENTS = 400


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=EVENTS) as running:
        yield running


def groups(portal: LocalPortal, dataset: str, **params: Any) -> list[dict[str, Any]]:
    return list(ok(portal, RECORDS_V21.format(dataset), limit=20000, **params)["results"])


# -- analyze --------------------------------------------------------------------------------


def test_analyze_counts_like_the_documented_example(
    portal: LocalPortal, real_fixtures: Path
) -> None:
    example = json.loads(
        (
            real_fixtures
            / "opendatasoft__ods-documentation-explore-api__records_api.analyze-example.extracted.json"
        ).read_text("utf-8")
    )
    body = ok(
        portal,
        ANALYZE,
        dataset="sample-events",
        x="arrondissement",
        **{"y.my_count.func": "COUNT"},
    )
    assert [set(point) for point in body] == [set(example[0])] * len(body)
    expected = groups(
        portal, "sample-events", group_by="arrondissement", select="arrondissement, count(*) as n"
    )
    assert body == [{"x": g["arrondissement"], "my_count": g["n"]} for g in expected]


def test_analyze_functions(portal: LocalPortal) -> None:
    body = ok(
        portal,
        ANALYZE,
        dataset="sample-events",
        x="category",
        **{
            "y.n.func": "COUNT",
            "y.avg.func": "AVG",
            "y.avg.expr": "price",
            "y.total.func": "SUM",
            "y.total.expr": "duration_min * 2",
            "y.low.func": "MIN",
            "y.low.expr": "price",
            "y.high.func": "max",
            "y.high.expr": "price",
            "y.sd.func": "STDDEV",
            "y.sd.expr": "duration_min",
            "y.sq.func": "SUMSQUARES",
            "y.sq.expr": "duration_min",
        },
    )
    expected = groups(
        portal,
        "sample-events",
        group_by="category",
        select="category, count(*) as n, avg(price) as a, sum(duration_min) as s, "
        "min(price) as lo, max(price) as hi",
    )
    durations: dict[str, list[int]] = {}
    for record in ok(
        portal,
        "/api/explore/v2.1/catalog/datasets/sample-events/exports/json",
        select="category, duration_min",
    ):
        durations.setdefault(record["category"], []).append(record["duration_min"])
    assert [point["x"] for point in body] == [g["category"] for g in expected]
    for point, group in zip(body, expected, strict=True):
        values = durations[group["category"]]
        mean = sum(values) / len(values)
        assert point["n"] == group["n"]
        assert point["avg"] == pytest.approx(group["a"])
        assert point["total"] == 2 * group["s"]
        assert (point["low"], point["high"]) == (group["lo"], group["hi"])
        assert point["sq"] == sum(v * v for v in values)
        assert point["sd"] == pytest.approx(
            math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        )


def test_analyze_dates_by_precision_and_periodic(portal: LocalPortal) -> None:
    months = ok(
        portal,
        ANALYZE,
        dataset="sample-events",
        x="start",
        precision="month",
        timezone="Europe/Paris",
        **{"y.n.func": "COUNT"},
    )
    expected = groups(
        portal,
        "sample-events",
        group_by="year(start) as y, month(start) as m",
        select="y, m, count(*) as n",
        timezone="Europe/Paris",
    )
    assert months == [{"x": {"year": g["y"], "month": g["m"]}, "n": g["n"]} for g in expected]
    weekdays = ok(
        portal,
        ANALYZE,
        dataset="sample-events",
        x="start",
        periodic="weekday",
        **{"y.n.func": "COUNT"},
    )
    expected = groups(
        portal, "sample-events", group_by="dayofweek(start) as d", select="d, count(*) as n"
    )
    assert weekdays == [{"x": {"weekday": g["d"] - 1}, "n": g["n"]} for g in expected]
    cyclic = ok(
        portal,
        ANALYZE,
        dataset="sample-events",
        x="start",
        periodic="month",
        precision="month",
        **{"y.n.func": "COUNT"},
    )
    assert [point["x"] for point in cyclic] == [{"month": m} for m in range(1, 13)]
    assert sum(point["n"] for point in cyclic) == EVENTS
    days = ok(
        portal, ANALYZE, dataset="sample-bike-stations", x="opened_on", **{"y.n.func": "COUNT"}
    )
    assert set(days[0]["x"]) == {"year", "month", "day"}
    assert sum(point["n"] for point in days) == 150
    weeks = ok(
        portal,
        ANALYZE,
        dataset="sample-events",
        x="start",
        precision="week",
        **{"y.n.func": "COUNT"},
    )
    assert set(weeks[0]["x"]) == {"year", "week"}
    assert sum(point["n"] for point in weeks) == EVENTS


def test_analyze_sort_cumulative_maxpoints_and_filters(portal: LocalPortal) -> None:
    params = {"dataset": "sample-events", "x": "category", "y.n.func": "COUNT"}
    by_count = ok(portal, ANALYZE, sort="n", **params)
    counts = [point["n"] for point in by_count]
    assert counts == sorted(counts, reverse=True)  # descending by default
    ascending = ok(portal, ANALYZE, sort="-n", **params)
    assert [point["n"] for point in ascending] == sorted(counts)
    reverse_x = ok(portal, ANALYZE, sort="x", **params)
    assert [p["x"] for p in reverse_x] == sorted((p["x"] for p in by_count), reverse=True)
    capped = ok(portal, ANALYZE, maxpoints=2, sort="n", **params)
    assert capped == by_count[:2]
    running = ok(portal, ANALYZE, **params, **{"y.n.cumulative": "true"})
    plain = ok(portal, ANALYZE, **params)
    totals = [sum(p["n"] for p in plain[: index + 1]) for index in range(len(plain))]
    assert [p["n"] for p in running] == totals and totals[-1] == EVENTS
    filtered = ok(portal, ANALYZE, q="free:true", **{"refine.arrondissement": "75011"}, **params)
    expected = groups(
        portal,
        "sample-events",
        where="free IS TRUE",
        refine='arrondissement:"75011"',
        group_by="category",
        select="category, count(*) as n",
    )
    assert filtered == [{"x": g["category"], "n": g["n"]} for g in expected]


def test_analyze_leaves_out_null_x_and_unnests_multivalued(portal: LocalPortal) -> None:
    body = ok(portal, ANALYZE, dataset="sample-events", x="tags", **{"y.n.func": "COUNT"})
    expected = groups(portal, "sample-events", group_by="tags", select="tags, count(*) as n")
    assert body == [{"x": g["tags"], "n": g["n"]} for g in expected if g["tags"] is not None]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"y.n.func": "COUNT"}, "x"),
        ({"x": "nofield", "y.n.func": "COUNT"}, "nofield"),
        ({"x": "location", "y.n.func": "COUNT"}, "geo_point_2d"),
        ({"x": "category", "y.n.func": "MEDIAN"}, "y.n.func"),
        ({"x": "category", "y.n.func": "AVG"}, "y.n.expr"),
        ({"x": "category", "y.n.func": "AVG", "y.n.expr": "sqrt(price)"}, "q"),
        ({"x": "start", "precision": "fortnight", "y.n.func": "COUNT"}, "precision"),
        ({"x": "start", "periodic": "century", "y.n.func": "COUNT"}, "periodic"),
        ({"x": "start", "periodic": "day", "precision": "month", "y.n.func": "COUNT"}, "precision"),
        ({"x": "category", "sort": "other", "y.n.func": "COUNT"}, "sort"),
        ({"x": "category", "maxpoints": -5, "y.n.func": "COUNT"}, "maxpoints"),
    ],
)
def test_analyze_errors(portal: LocalPortal, params: dict[str, Any], fragment: str) -> None:
    message = v1_error(get(portal, ANALYZE, dataset="sample-events", **params), 400)
    assert fragment in message


# -- geocluster -----------------------------------------------------------------------------


def test_geocluster_matches_v21_geo_cluster(portal: LocalPortal) -> None:
    body = ok(
        portal,
        GEOCLUSTER,
        dataset="sample-events",
        clusterprecision=13,
        clusterdistance=40,
        **{"y.avg.func": "AVG", "y.avg.expr": "price"},
    )
    expected = groups(
        portal,
        "sample-events",
        group_by="geo_cluster(location, 13, 40) as c",
        select="c, count(*) as n, avg(price) as p",
    )
    assert list(body) == ["clusters", "count", "series", "clusterprecision"]
    assert body["clusterprecision"] == 13
    assert sorted(c["count"] for c in body["clusters"]) == sorted(g["n"] for g in expected)
    by_center = {
        (
            round(g["c"]["cluster_centroid"]["lat"], 9),
            round(g["c"]["cluster_centroid"]["lon"], 9),
        ): g
        for g in expected
    }
    for cluster in body["clusters"]:
        lat, lon = cluster["cluster_center"]
        group = by_center[(round(lat, 9), round(lon, 9))]
        assert cluster["count"] == group["n"]
        if group["p"] is None:
            assert cluster["series"]["avg"] is None
        else:
            assert cluster["series"]["avg"] == pytest.approx(group["p"])
        kind = cluster["cluster"]["type"]
        assert (
            kind == "Point" if cluster["count"] == 1 else kind in ("Polygon", "LineString", "Point")
        )
    counts = [c["count"] for c in body["clusters"]]
    assert body["count"] == {"min": min(counts), "max": max(counts)}
    averages = [c["series"]["avg"] for c in body["clusters"] if c["series"]["avg"] is not None]
    assert body["series"]["avg"] == {"min": min(averages), "max": max(averages)}
    assert sum(counts) == EVENTS


def test_geocluster_hulls_hold_their_points(portal: LocalPortal) -> None:
    import shapely

    body = ok(
        portal, GEOCLUSTER, dataset="sample-bike-stations", clusterprecision=11, clusterdistance=50
    )
    hulls = [shapely.geometry.shape(c["cluster"]) for c in body["clusters"]]
    big = next(c for c, h in zip(body["clusters"], hulls, strict=True) if c["count"] > 2)
    hull = shapely.geometry.shape(big["cluster"])
    assert hull.geom_type == "Polygon"
    center = shapely.Point(big["cluster_center"][1], big["cluster_center"][0])
    assert hull.buffer(1e-9).contains(center)
    simplified = ok(
        portal,
        GEOCLUSTER,
        dataset="sample-bike-stations",
        clusterprecision=11,
        clusterdistance=50,
        shapeprecision=1,
        clustermode="heatmap",
    )
    assert [c["count"] for c in simplified["clusters"]] == [c["count"] for c in body["clusters"]]


def test_geocluster_filters_and_empty_answers(portal: LocalPortal) -> None:
    some = ok(
        portal,
        GEOCLUSTER,
        dataset="sample-events",
        clusterprecision=10,
        **{"refine.category": "Concert"},
    )
    concerts = ok(
        portal,
        "/api/records/1.0/search/",
        dataset="sample-events",
        rows=0,
        **{"refine.category": "Concert"},
    )["nhits"]
    assert sum(c["count"] for c in some["clusters"]) == concerts
    none = ok(
        portal, GEOCLUSTER, dataset="sample-events", clusterprecision=10, q="category:Nothing"
    )
    assert none["clusters"] == [] and none["count"] == {"min": 0, "max": 0}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "clusterprecision"),
        ({"clusterprecision": 26}, "clusterprecision"),
        ({"clusterprecision": 10, "clusterdistance": 0}, "clusterdistance"),
        ({"clusterprecision": 20, "shapeprecision": 10}, "shapeprecision"),
        ({"clusterprecision": 10, "clustermode": "dots"}, "clustermode"),
    ],
)
def test_geocluster_errors(portal: LocalPortal, params: dict[str, Any], fragment: str) -> None:
    message = v1_error(get(portal, GEOCLUSTER, dataset="sample-events", **params), 400)
    assert fragment in message


def test_geocluster_needs_a_point_field(portal: LocalPortal) -> None:
    catalog_less = v1_error(
        get(portal, GEOCLUSTER, dataset="sample-monthly-prices", clusterprecision=3), 400
    )
    assert "geo_point_2d" in catalog_less
