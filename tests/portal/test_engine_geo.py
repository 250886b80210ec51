"""The ODSQL engine's geo predicates and distance(), on geo_point_2d and geo_shape fields.

Expected answers come from shapely (relations) and a plain haversine written here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import shapely
from test_engine import Portal, build_portal

from odsframe.testing.errors import ODSQLError
from odsframe.testing.model import PortalField

PLACES_FIELDS = [
    PortalField("name", "text"),
    PortalField("point", "geo_point_2d"),
    PortalField("shape", "geo_shape"),
]


def _square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


PLACES: list[dict[str, Any]] = [
    {
        "name": "Louvre",
        "point": (2.3376, 48.8606),
        "shape": {"type": "Point", "coordinates": [2.3376, 48.8606]},
    },
    {"name": "Eiffel", "point": (2.2945, 48.8584), "shape": _square(2.29, 48.855, 2.30, 48.862)},
    {
        "name": "Lyon",
        "point": (4.8357, 45.7640),
        "shape": {"type": "LineString", "coordinates": [[4.80, 45.75], [4.90, 45.78]]},
    },
    {"name": "Versailles", "point": (2.1204, 48.8049), "shape": _square(2.10, 48.79, 2.14, 48.82)},
    {"name": "Nowhere", "point": None, "shape": None},
    {"name": "Big", "point": (2.35, 48.85), "shape": _square(2.2, 48.8, 2.45, 48.92)},
]
LOUVRE = "geom'POINT(2.3376 48.8606)'"
PARIS_WKT = "POLYGON((2.25 48.83, 2.40 48.83, 2.40 48.88, 2.25 48.88, 2.25 48.83))"


@pytest.fixture(scope="module")
def places() -> Iterator[Portal]:
    portal = build_portal(PLACES_FIELDS, PLACES)
    yield portal
    portal.con.close()


def where(portal: Portal, *filters: str) -> list[str]:
    return portal.names(where=list(filters))


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    radius = 6371008.7714
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))


def expected(relation: str, field: str, literal: shapely.Geometry) -> list[str]:
    names = []
    for place in PLACES:
        value = place[field]
        if value is None:
            continue
        geometry = (
            shapely.Point(*value) if field == "point" else shapely.from_geojson(json.dumps(value))
        )
        if getattr(shapely, relation)(geometry, literal):
            names.append(place["name"])
    return names


# --------------------------------------------------------------------------- boxes and circles


def test_in_bbox_takes_any_two_opposite_corners_lat_first(places: Portal) -> None:
    assert where(places, "in_bbox(point, 48.85, 2.29, 48.87, 2.34)") == ["Louvre", "Eiffel"]
    assert where(places, "in_bbox(point, 48.87, 2.34, 48.85, 2.29)") == ["Louvre", "Eiffel"]
    assert where(places, "in_bbox(point, 48.85, 2.34, 48.87, 2.29)") == ["Louvre", "Eiffel"]
    assert where(places, "bbox(point, 48.85, 2.29, 48.87, 2.34)") == ["Louvre", "Eiffel"]
    assert where(places, "in_bbox(point, 48.84, 2.29, 48.87, 2.36)") == ["Louvre", "Eiffel", "Big"]
    assert where(places, "not(in_bbox(point, 48.85, 2.29, 48.87, 2.34))") == [
        "Lyon",
        "Versailles",
        "Nowhere",
        "Big",
    ]


def test_in_bbox_on_shapes_matches_intersecting_shapes(places: Portal) -> None:
    box = shapely.box(2.29, 48.80, 2.31, 48.86)
    assert where(places, "in_bbox(shape, 48.80, 2.29, 48.86, 2.31)") == expected(
        "intersects", "shape", box
    )
    assert where(places, "in_bbox(shape, 48.80, 2.29, 48.86, 2.31)") == ["Eiffel", "Big"]


@pytest.mark.parametrize(
    ("distance", "metres"),
    [
        ("5km", 5000.0),
        ("5000m", 5000.0),
        ("2mi", 3218.688),
        ("3000yd", 2743.2),
        ("9000ft", 2743.2),
        ("150000cm", 1500.0),
        ("1400000mm", 1400.0),
        ("1.5 km", 1500.0),
    ],
)
def test_within_distance_on_points_uses_haversine_metres(
    places: Portal, distance: str, metres: float
) -> None:
    inside = [
        p["name"]
        for p in PLACES
        if p["point"] is not None and haversine(2.3376, 48.8606, *p["point"]) <= metres
    ]
    assert where(places, f"within_distance(point, {LOUVRE}, {distance})") == inside
    assert where(places, f"distance(point, {LOUVRE}, {distance})") == inside


def test_within_distance_boundaries(places: Portal) -> None:
    to_eiffel = haversine(2.3376, 48.8606, 2.2945, 48.8584)
    assert "Eiffel" in where(places, f"within_distance(point, {LOUVRE}, {to_eiffel + 1:.1f}m)")
    assert "Eiffel" not in where(places, f"within_distance(point, {LOUVRE}, {to_eiffel - 1:.1f}m)")


def test_within_distance_on_shapes_matches_shapes_reaching_the_circle(places: Portal) -> None:
    assert where(places, f"within_distance(shape, {LOUVRE}, 1km)") == ["Louvre", "Big"]
    assert where(places, f"within_distance(shape, {LOUVRE}, 3km)") == ["Louvre", "Eiffel", "Big"]


# --------------------------------------------------------------------------- relations


@pytest.mark.parametrize("field", ["point", "shape"])
@pytest.mark.parametrize("relation", ["intersects", "within", "disjoint"])
def test_relations_with_a_wkt_polygon(places: Portal, field: str, relation: str) -> None:
    literal = shapely.from_wkt(PARIS_WKT)
    assert where(places, f"{relation}({field}, geom'{PARIS_WKT}')") == expected(
        relation, field, literal
    )


def test_relation_answers_by_hand(places: Portal) -> None:
    assert where(places, f"intersects(shape, geom'{PARIS_WKT}')") == ["Louvre", "Eiffel", "Big"]
    assert where(places, f"within(shape, geom'{PARIS_WKT}')") == ["Louvre", "Eiffel"]
    assert where(places, f"disjoint(shape, geom'{PARIS_WKT}')") == ["Lyon", "Versailles"]
    assert where(places, f"within(point, geom'{PARIS_WKT}')") == ["Louvre", "Eiffel", "Big"]


def test_geojson_literals_and_legacy_names(places: Portal) -> None:
    geojson = json.dumps(shapely.geometry.mapping(shapely.from_wkt(PARIS_WKT)))
    assert where(places, f"intersects(shape, geom'{geojson}')") == where(
        places, f"intersects(shape, geom'{PARIS_WKT}')"
    )
    assert where(places, f"geometry(shape, geom'{PARIS_WKT}', WITHIN)") == ["Louvre", "Eiffel"]
    assert where(places, f"geometry(shape, geom'{PARIS_WKT}', disjoint)") == ["Lyon", "Versailles"]
    assert where(places, f"geometry(shape, geom'{PARIS_WKT}')") == ["Louvre", "Eiffel", "Big"]
    assert where(places, f"polygon(point, geom'{PARIS_WKT}')") == ["Louvre", "Eiffel", "Big"]
    hexed = shapely.to_wkb(shapely.from_wkt(PARIS_WKT), hex=True)
    assert where(places, f"intersects(point, geom'{hexed}')") == ["Louvre", "Eiffel", "Big"]


def test_multipolygon_literals(places: Portal) -> None:
    both = "MULTIPOLYGON(((2.33 48.85, 2.34 48.85, 2.34 48.87, 2.33 48.87, 2.33 48.85)), ((4.8 45.7, 4.9 45.7, 4.9 45.8, 4.8 45.8, 4.8 45.7)))"
    assert where(places, f"intersects(point, geom'{both}')") == ["Louvre", "Lyon"]
    assert where(places, f"intersects(shape, geom'{both}')") == ["Louvre", "Lyon", "Big"]


# --------------------------------------------------------------------------- distance()


def test_distance_in_select_and_order_by(places: Portal) -> None:
    rows = places.rows(select=f"name, distance(point, {LOUVRE}) AS d", order_by="d DESC")
    points = {p["name"]: p["point"] for p in PLACES}
    assert [r["name"] for r in rows] == ["Lyon", "Versailles", "Eiffel", "Big", "Louvre", "Nowhere"]
    for row in rows:
        if points[row["name"]] is None:
            assert row["d"] is None
        else:
            assert row["d"] == pytest.approx(
                haversine(2.3376, 48.8606, *points[row["name"]]), rel=1e-9
            )
    assert places.names(order_by=f"distance(point, {LOUVRE})")[:2] == ["Louvre", "Big"]
    assert {c.key: c.type for c in places.compile(select=f"distance(point, {LOUVRE})").columns} == {
        f"distance(point, {LOUVRE})": "double"
    }


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("filter_", "fragment"),
    [
        (
            f"within_distance(name, {LOUVRE}, 1km)",
            "expects a geo_point_2d or geo_shape field, name is text",
        ),
        ("intersects(point, geom'POLYGON((1 2, 3')", "Invalid geometry literal"),
        ("intersects(point, 'POINT(1 2)')", "expects a geometry literal"),
        (f"within_distance(point, geom'{PARIS_WKT}', 1km)", "expects a POINT geometry literal"),
        (f"within_distance(point, {LOUVRE}, 5parsec)", "Unknown distance unit"),
        (f"within_distance(point, {LOUVRE}, -1km)", "must not be negative"),
        ("in_bbox(point, 1, 2, 3, name)", "expects a number"),
        ("in_bbox(point, 1, 2, 3)", "takes 5 argument(s), 4 given"),
        (f"geometry(shape, geom'{PARIS_WKT}', TOUCHES)", "INTERSECTS, WITHIN or DISJOINT"),
        ("intersects(point, geom'POINT EMPTY')", "Invalid geometry literal"),
    ],
)
def test_bad_geo_filters(places: Portal, filter_: str, fragment: str) -> None:
    with pytest.raises(ODSQLError) as error:
        places.compile(where=[filter_])
    assert error.value.clause == "where"
    assert fragment in error.value.detail


def test_distance_needs_a_point_field(places: Portal) -> None:
    with pytest.raises(ODSQLError, match="distance\\(\\) needs a geo_point_2d field"):
        places.compile(select=f"distance(shape, {LOUVRE})")
    with pytest.raises(ODSQLError, match="Cannot sort on a geo_point_2d"):
        places.compile(order_by="point")
