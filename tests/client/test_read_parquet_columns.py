"""The column-at-a-time Parquet reader behind large reads, and its fast conversions.

* several Parquet parts read as one frame equal the frame of one file;
* multivalued text from an Arrow ``list<string>`` column: independent Python lists whose
  equal strings are one shared object;
* 2D WKB points read from their bytes equal what the WKB parser gives, and anything else
  goes to the parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas
import geopandas.testing
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from odsframe.errors import InvalidQueryArgument
from odsframe.frames import FieldSpec, frame_from_parquet
from odsframe.frames.geo import parse_points, parse_shapes
from odsframe.frames.records import cast_values

FIELDS = [
    FieldSpec("name", "text"),
    FieldSpec("tags", "text", annotations={"multivalued": [","]}),
    FieldSpec("n", "int"),
    FieldSpec("x", "double"),
    FieldSpec("seen", "datetime"),
    FieldSpec("point", "geo_point_2d"),
    FieldSpec("shape", "geo_shape"),
]
GEO = (
    b'{"version": "1.1.0", "primary_column": "shape", "columns": '
    b'{"point": {"encoding": "WKB"}, "shape": {"encoding": "WKB"}}}'
)


def table(rows: int, start: int = 0, *, null_names: bool = False) -> pa.Table:
    numbers = np.arange(start, start + rows)
    words = ["famille", "plein air", "nocturne"]
    tags = [None if i % 7 == 3 else [words[j % 3] for j in range(i % 4)] for i in numbers.tolist()]
    points = shapely.points(numbers * 0.001 + 2.3, numbers * 0.001 + 48.8)
    shapes = [
        shapely.box(i, i, i + 1, i + 1) if i % 5 == 0 else shapely.points(i, -i)
        for i in numbers.tolist()
    ]
    names = pa.nulls(rows) if null_names else pa.array([f"r{i}" for i in numbers.tolist()])
    data = pa.table(
        {
            "name": names,
            "tags": pa.array(tags, pa.list_(pa.string())),
            "n": pa.array(numbers, pa.int64()),
            "x": pa.array(numbers / 3, mask=numbers % 4 == 0),
            "seen": pa.array(numbers * 1_000_000, pa.timestamp("us", tz="UTC")),
            "point": pa.array(shapely.to_wkb(points).tolist(), pa.binary()),
            "shape": pa.array(shapely.to_wkb(shapes).tolist(), pa.binary()),
        }
    )
    return data.replace_schema_metadata({b"geo": GEO})


def write(data: pa.Table, path: Path, row_group_size: int = 64) -> Path:
    pq.write_table(data, path, row_group_size=row_group_size)
    return path


def test_parts_read_as_one_frame_equal_one_file(tmp_path: Path) -> None:
    whole = write(pa.concat_tables([table(300), table(200, 300)]), tmp_path / "whole.parquet")
    first = write(table(300), tmp_path / "part-0.parquet")
    second = write(table(200, 300), tmp_path / "part-1.parquet")
    expected = frame_from_parquet(whole, FIELDS)
    frame = frame_from_parquet([first, str(second)], FIELDS)
    assert isinstance(frame, geopandas.GeoDataFrame)
    assert frame.geometry.name == "shape"
    assert len(frame) == 500
    geopandas.testing.assert_geodataframe_equal(frame, expected)
    assert list(frame.columns) == [spec.name for spec in FIELDS]  # file order, not read order
    assert str(frame["name"].dtype) == "string"
    assert frame["tags"].dtype == pd.ArrowDtype(pa.list_(pa.string()))


def test_a_part_with_an_all_null_column_takes_the_type_of_the_others(tmp_path: Path) -> None:
    first = write(table(100), tmp_path / "part-0.parquet")
    second = write(table(50, 100, null_names=True), tmp_path / "part-1.parquet")
    assert pq.read_schema(second).field("name").type == pa.null()
    frame = frame_from_parquet([first, second], FIELDS)
    assert str(frame["name"].dtype) == "string"
    assert frame["name"].iloc[:100].tolist() == [f"r{i}" for i in range(100)]
    assert frame["name"].iloc[100:].isna().all()


def test_parts_of_different_types_are_converted_one_by_one(tmp_path: Path) -> None:
    first = write(table(20), tmp_path / "part-0.parquet")
    other = table(10, 20)
    other = other.set_column(2, "n", other.column("n").cast(pa.string()))
    second = write(other, tmp_path / "part-1.parquet")
    frame = frame_from_parquet([first, second], FIELDS)
    assert str(frame["n"].dtype) == "Int64"
    assert frame["n"].tolist() == list(range(30))


def test_bytes_and_selected_columns(tmp_path: Path) -> None:
    path = write(table(40), tmp_path / "export.parquet")
    frame = frame_from_parquet(path.read_bytes(), FIELDS, columns=["n", "name"], geometry=None)
    assert list(frame.columns) == ["n", "name"]
    assert frame["n"].tolist() == list(range(40))
    with pytest.raises(InvalidQueryArgument, match="no column 'missing'"):
        frame_from_parquet(path, FIELDS, columns=["n", "missing"])
    with pytest.raises(InvalidQueryArgument, match="no Parquet source"):
        frame_from_parquet([], FIELDS)


def test_string_lists_are_arrow_lists_that_read_as_python_lists() -> None:
    values = pa.chunked_array(
        [
            pa.array([["a", "b"], None, [], ["b", None], ["a"]], pa.list_(pa.string())),
            pa.array([["b", "a", "b"], []], pa.list_(pa.string())),
        ]
    )
    series = cast_values(values, FIELDS[1], from_text=True)
    assert series.dtype == pd.ArrowDtype(pa.list_(pa.string()))
    assert series.tolist() == [["a", "b"], pd.NA, [], ["b", None], ["a"], ["b", "a", "b"], []]
    assert all(type(value) is list for value in series.dropna())
    assert series.list.len().tolist()[:3] == [2, pd.NA, 0]
    assert series.explode().dropna().tolist() == ["a", "b", "b", "a", "b", "a", "b"]
    series[2].append("mutated")  # a cell is a fresh list: the frame does not change
    assert series[2] == []


def test_string_lists_of_every_arrow_layout_equal_the_row_by_row_result() -> None:
    rng = np.random.default_rng(1)
    rows: list[Any] = [
        None if length < 0 else [f"w{v}" for v in rng.integers(0, 50, length)]
        for length in rng.integers(-1, 40, 2_000).tolist()
    ]
    expected = [pd.NA if row is None else row for row in rows]
    values = pa.array(rows, pa.list_(pa.string())).slice(5)
    assert cast_values(values, FIELDS[1]).tolist() == expected[5:]
    dictionary = pa.array(rows, pa.list_(pa.dictionary(pa.int32(), pa.string())))
    assert cast_values(dictionary, FIELDS[1]).tolist() == expected
    large = pa.array(rows, pa.large_list(pa.large_string()))
    assert cast_values(large, FIELDS[1]).tolist() == expected
    objects = np.empty(len(rows), dtype=object)
    objects[:] = rows
    python = cast_values(objects, FIELDS[1])
    assert python.dtype == pd.ArrowDtype(pa.list_(pa.string()))
    assert python.tolist() == expected


def test_wkb_points_equal_the_wkb_parser() -> None:
    rng = np.random.default_rng(2)
    points = shapely.points(rng.uniform(-180, 180, 500), rng.uniform(-90, 90, 500))
    wkb = shapely.to_wkb(points).tolist()
    wkb[7] = None
    values = pa.chunked_array([pa.array(wkb[:100], pa.binary()), pa.array(wkb[100:])])
    parsed = parse_points(values)
    expected = shapely.from_wkb(np.array(wkb, dtype=object))
    assert parsed[7] is None
    assert bool(shapely.equals_exact(parsed[:7], expected[:7], tolerance=0).all())
    assert bool(shapely.equals_exact(parsed[8:], expected[8:], tolerance=0).all())
    shapes = parse_shapes(pa.array(wkb, pa.large_binary()))
    assert [g is None for g in shapes] == [g is None for g in parsed]
    sliced = parse_points(pa.array(wkb[8:], pa.binary()).slice(3))  # no null, an offset
    assert bool(shapely.equals_exact(sliced, expected[11:], tolerance=0).all())


@pytest.mark.parametrize(
    "geometry",
    [
        "POINT EMPTY",
        "POINT Z (1 2 3)",
        "LINESTRING (0 0, 1 1)",
    ],
)
def test_wkb_other_than_2d_points_goes_to_the_parser(geometry: str) -> None:
    odd = shapely.from_wkt(geometry)
    wkb = [shapely.to_wkb(shapely.points(1.5, 2.5)), shapely.to_wkb(odd)]
    shapes = parse_shapes(pa.array(wkb, pa.binary()))
    assert shapes[0] == shapely.points(1.5, 2.5)
    assert shapely.equals_exact(shapes[1], odd, tolerance=0) or (
        odd.is_empty and shapes[1].is_empty
    )
    assert shapes[1].geom_type == odd.geom_type
    big_endian = pa.array([shapely.to_wkb(shapely.points(3, 4), byte_order=0)], pa.binary())
    assert parse_points(big_endian)[0] == shapely.points(3, 4)


def test_geo_columns_hold_the_parsed_geometries_in_a_geodataframe(tmp_path: Path) -> None:
    path = write(table(30), tmp_path / "export.parquet")
    frame = frame_from_parquet(path, FIELDS)
    plain = frame_from_parquet(path, FIELDS, geometry=None)
    assert isinstance(frame, geopandas.GeoDataFrame)
    assert frame.crs == "EPSG:4326"
    assert isinstance(frame["point"], geopandas.GeoSeries)
    pd.testing.assert_series_equal(
        pd.Series(frame["point"].to_numpy(dtype=object)), plain["point"], check_names=False
    )
