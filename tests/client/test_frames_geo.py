"""Geometry parsing: the four geo_point_2d encodings and every geo_shape encoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from odsframe.frames import (
    ValueCastWarning,
    parse_geometries,
    parse_points,
    parse_shapes,
    points_from_lonlat,
)

PARIS = (2.3364433620533878, 48.862562701836005)  # lon, lat


def coords(geometry: shapely.Geometry) -> tuple[float, float]:
    return geometry.x, geometry.y


# --- geo_point_2d ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded",
    [
        {"lon": PARIS[0], "lat": PARIS[1]},  # v2.x JSON
        [PARIS[1], PARIS[0]],  # v1 JSON [lat, lon]
        f"{PARIS[1]}, {PARIS[0]}",  # v2.1 CSV
        f"{PARIS[1]},{PARIS[0]}",  # legacy CSV
    ],
    ids=["dict", "v1-list", "lat-space-lon", "lat-lon"],
)
def test_the_four_point_encodings_give_lon_lat_points(encoded: object) -> None:
    points = parse_points([encoded, None, encoded])
    assert points[1] is None
    assert coords(points[0]) == pytest.approx(PARIS)
    assert coords(points[2]) == pytest.approx(PARIS)


def test_mixed_point_encodings_in_one_column() -> None:
    values = [
        {"lon": 1.0, "lat": 2.0},
        [4.0, 3.0],
        " 6.0 ,5.0 ",
        '{"type": "Point", "coordinates": [7.0, 8.0]}',
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [9, 10]}},
        "POINT (11 12)",
        shapely.Point(13, 14),
        shapely.to_wkb(shapely.Point(15, 16)),
        float("nan"),
        "",
        pd.NA,
    ]
    points = parse_points(values)
    assert [coords(p) for p in points[:8]] == [
        (1, 2),
        (3, 4),
        (5, 6),
        (7, 8),
        (9, 10),
        (11, 12),
        (13, 14),
        (15, 16),
    ]
    assert list(points[8:]) == [None, None, None]


def test_unreadable_points_become_none_with_a_warning_naming_the_column() -> None:
    with pytest.warns(ValueCastWarning, match=r"2 value\(s\) of column 'coordonnees_geo'"):
        points = parse_points(
            ["48.8, 2.3", "somewhere", {"lon": "x", "lat": 1}, None],
            name="coordonnees_geo",
        )
    assert coords(points[0]) == pytest.approx((2.3, 48.8))
    assert list(points[1:]) == [None, None, None]


def test_points_from_a_pandas_series_and_numpy_array() -> None:
    series = pd.Series(["1, 2", None, "3, 4"])
    assert [None if p is None else coords(p) for p in parse_points(series)] == [
        (2, 1),
        None,
        (4, 3),
    ]
    array = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert [coords(p) for p in parse_points(list(array))] == [(2, 1), (4, 3)]


def test_points_from_arrow_struct_binary_and_text() -> None:
    struct = pa.array([{"lon": 2.0, "lat": 48.0}, None, {"lon": 3.0, "lat": 49.0}])
    assert [None if p is None else coords(p) for p in parse_points(struct)] == [
        (2, 48),
        None,
        (3, 49),
    ]
    xy = pa.array([{"x": 1.0, "y": 2.0}])
    assert coords(parse_points(xy)[0]) == (1, 2)
    wkb = pa.array([shapely.to_wkb(shapely.Point(5, 6)), None], type=pa.binary())
    result = parse_points(pa.chunked_array([wkb]))
    assert coords(result[0]) == (5, 6) and result[1] is None
    text = pa.chunked_array([pa.array(["48.5, 2.5", None]), pa.array(["", "49,3"])])
    result = parse_points(text)
    assert coords(result[0]) == (2.5, 48.5)
    assert result[1] is None and result[2] is None
    assert coords(result[3]) == (3, 49)


def test_points_from_lonlat_keeps_nan_as_none() -> None:
    points = points_from_lonlat([1.0, np.nan], [2.0, 3.0])
    assert coords(points[0]) == (1, 2) and points[1] is None


def test_empty_and_all_null_inputs() -> None:
    assert len(parse_points([])) == 0
    assert list(parse_points([None, None])) == [None, None]
    assert len(parse_shapes([])) == 0
    assert list(parse_shapes(pa.array([None, None]))) == [None, None]


# --- geo_shape -------------------------------------------------------------------------------

POLYGON = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}


@pytest.mark.parametrize(
    "encoded",
    [
        POLYGON,  # v1 bare geometry
        {"type": "Feature", "geometry": POLYGON, "properties": {}},  # v2.1 wrapper
        json.dumps(POLYGON),  # CSV, type first
        json.dumps({"coordinates": POLYGON["coordinates"], "type": "Polygon"}),  # other key order
        json.dumps({"type": "Feature", "geometry": POLYGON, "properties": {}}),
        shapely.to_wkb(shapely.from_geojson(json.dumps(POLYGON))),  # GeoParquet
        "POLYGON ((0 0, 1 0, 1 1, 0 0))",
    ],
    ids=["geometry", "feature", "text", "text-coordinates-first", "feature-text", "wkb", "wkt"],
)
def test_shape_encodings(encoded: object) -> None:
    shapes = parse_shapes([encoded, None])
    assert shapes[0].geom_type == "Polygon"
    assert shapely.get_coordinates(shapes[0]).tolist() == [[0, 0], [1, 0], [1, 1], [0, 0]]
    assert shapes[1] is None


def test_point_shapes_take_the_fast_path_and_keep_order() -> None:
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [i, -i]}, "properties": {}}
        for i in range(5)
    ]
    shapes = parse_shapes(features)
    assert [coords(s) for s in shapes] == [(i, -i) for i in range(5)]


def test_mixed_shapes_and_failures() -> None:
    multi = {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}
    with pytest.warns(ValueCastWarning, match=r"3 value\(s\) of column 'geo_shape'"):
        shapes = parse_shapes(
            [multi, "not json", {"type": "Polygon", "coordinates": "x"}, 42, json.dumps(POLYGON)]
        )
    assert shapes[0].geom_type == "MultiPoint"
    assert list(shapes[1:4]) == [None, None, None]
    assert shapes[4].geom_type == "Polygon"


def test_shapes_from_arrow_text_and_wkb() -> None:
    text = pa.array([json.dumps(POLYGON), None, ""])
    shapes = parse_shapes(text)
    assert shapes[0].geom_type == "Polygon" and shapes[1] is None and shapes[2] is None
    wkb = pa.array([shapely.to_wkb(shapely.Point(1, 2)), b"garbage"], type=pa.binary())
    with pytest.warns(ValueCastWarning, match="'footprint'"):
        shapes = parse_shapes(wkb, name="footprint")
    assert coords(shapes[0]) == (1, 2) and shapes[1] is None


def test_parse_geometries_dispatches_on_the_type() -> None:
    assert coords(parse_geometries(["1, 2"], "geo_point_2d")[0]) == (2, 1)
    assert parse_geometries([POLYGON], "geo_shape")[0].geom_type == "Polygon"


def test_real_multipolygon_cells_from_a_csv_export(real_fixtures: Path) -> None:
    """Cells of the PPRI export (doubled quotes already undone by the CSV reader)."""
    import csv

    path = real_fixtures / (
        "melanie-donne__analyse-immobilier-Paris-2022__plu_secteurs_de_risques_delimites_par_le_ppri.csv"
    )
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    shapes = parse_shapes([row["geo_shape"] for row in rows])
    points = parse_points([row["geo_point_2d"] for row in rows])
    kinds = pd.Series([s.geom_type for s in shapes]).value_counts().to_dict()
    assert set(kinds) == {"Polygon", "MultiPolygon"}
    assert kinds["MultiPolygon"] == 3
    assert all(s.area > 0 for s in shapes)
    # every point lies in Paris (lon about 2.3, lat about 48.8): lon/lat order is right
    xs, ys = shapely.get_x(points), shapely.get_y(points)
    assert np.all((xs > 2.1) & (xs < 2.6)) and np.all((ys > 48.7) & (ys < 49.0))


def test_points_from_arrow_lists_and_large_strings() -> None:
    pairs = pa.array([[48.5, 2.5], None, [49.5, 3.5]], pa.list_(pa.float64()))  # v1 order
    assert [None if p is None else coords(p) for p in parse_points(pairs)] == [
        (2.5, 48.5),
        None,
        (3.5, 49.5),
    ]
    large = pa.array(["48.5, 2.5", None], pa.large_string())
    assert coords(parse_points(large)[0]) == (2.5, 48.5)
