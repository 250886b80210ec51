"""Value encodings of serialize.py, on values as DuckDB hands them over through Arrow."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from odsframe.testing.model import OutputColumn, PortalField
from odsframe.testing.serialize import RecordWriter, SerializeContext, dumps, value_converter

PARIS = ZoneInfo("Europe/Paris")


def convert(kind: str, value: Any, context: SerializeContext | None = None, **column: Any) -> Any:
    column_spec = OutputColumn(key="k", sql_name="k", type=kind, **column)
    return value_converter(column_spec, context or SerializeContext())(value)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (datetime(2024, 7, 1, 10, 0, tzinfo=UTC), PARIS, "2024-07-01T12:00:00+02:00"),
        (datetime(2024, 1, 15, 10, 0, tzinfo=UTC), PARIS, "2024-01-15T11:00:00+01:00"),
        (datetime(2024, 7, 1, 10, 0, tzinfo=UTC), UTC, "2024-07-01T10:00:00+00:00"),
        (
            datetime(2024, 7, 1, 10, 0, 0, 250000, tzinfo=UTC),
            UTC,
            "2024-07-01T10:00:00.250000+00:00",
        ),
        (datetime(2024, 7, 1, 10, 0), UTC, "2024-07-01T10:00:00+00:00"),  # naive = UTC
        # The DST switch in Paris: 2024-03-31 01:00 UTC is 03:00 CEST.
        (datetime(2024, 3, 31, 0, 59, tzinfo=UTC), PARIS, "2024-03-31T01:59:00+01:00"),
        (datetime(2024, 3, 31, 1, 0, tzinfo=UTC), PARIS, "2024-03-31T03:00:00+02:00"),
        (
            datetime(2024, 7, 1, 10, 0, tzinfo=UTC),
            ZoneInfo("Asia/Kolkata"),
            "2024-07-01T15:30:00+05:30",
        ),
    ],
)
def test_datetime_in_request_timezone(moment: datetime, zone: Any, expected: str) -> None:
    assert convert("datetime", moment, SerializeContext(timezone=zone)) == expected


@pytest.mark.parametrize(
    ("precision", "expected"), [("day", "2024-03-05"), ("month", "2024-03"), ("year", "2024")]
)
def test_date_by_precision(precision: str, expected: str) -> None:
    assert convert("date", date(2024, 3, 5), date_precision=precision) == expected


def test_old_dates_keep_four_digit_years() -> None:
    assert convert("date", date(33, 1, 2)) == "0033-01-02"
    assert convert("date", date(33, 1, 2), date_precision="year") == "0033"


def test_geo_point_is_lon_then_lat() -> None:
    value = convert("geo_point_2d", {"lat": 48.85, "lon": 2.35})
    assert value == {"lon": 2.35, "lat": 48.85}
    assert list(value) == ["lon", "lat"]
    assert json.dumps(value) == '{"lon": 2.35, "lat": 48.85}'
    assert convert("geo_point_2d", None) is None


def test_geo_shape_is_a_feature_wrapper() -> None:
    text = '{"type":"Polygon","coordinates":[[[2.0,48.0],[3.0,48.0],[3.0,49.0],[2.0,48.0]]]}'
    value = convert("geo_shape", text)
    assert value == {"type": "Feature", "geometry": json.loads(text), "properties": {}}
    assert convert("geo_shape", None) is None


def test_file_object_gets_the_portal_file_url() -> None:
    context = SerializeContext(base_url="http://127.0.0.1:9", dataset_id="my-ds@public")
    value = convert("file", json.dumps({"id": "abc 1", "filename": "a.jpg"}), context)
    assert value == {
        "id": "abc 1",
        "filename": "a.jpg",
        "url": "http://127.0.0.1:9/api/explore/v2.1/catalog/datasets/my-ds@public/files/abc%201",
    }


def test_numbers() -> None:
    assert convert("int", 5) == 5
    assert convert("int", Decimal("12")) == 12 and isinstance(convert("int", Decimal(12)), int)
    assert convert("double", 3) == 3.0 and isinstance(convert("double", 3), float)
    assert convert("double", float("nan")) is None
    assert convert("double", float("inf")) is None
    assert convert("number", Decimal("10")) == 10
    assert convert("number", Decimal("2.5")) == 2.5
    assert convert("number", 7) == 7 and convert("number", 0.5) == 0.5
    assert convert("boolean", True) is True and convert("boolean", None) is None


def test_text_multivalued_and_json_blob() -> None:
    assert convert("text", "été") == "été"
    assert convert("text", ["a", "b"], multivalued=True) == ["a", "b"]
    assert convert("text", "solo", multivalued=True) == ["solo"]
    assert convert("json_blob", '{"a": [1, null]}') == {"a": [1, None]}
    assert convert("json_blob", '"just text"') == "just text"


def test_cluster_and_range() -> None:
    assert convert("cluster", {"lat": 48.87, "lon": 2.36}) == {
        "cluster_centroid": {"lat": 48.87, "lon": 2.36}
    }
    assert convert("range", "[0, 14]") == "[0, 14]"


def test_unknown_types_still_give_json() -> None:
    assert convert("mystery", Decimal("1.5")) == 1.5
    assert convert("mystery", datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00+00:00"
    assert json.loads(dumps({"v": convert("mystery", {"d": date(2024, 1, 2)})})) == {
        "v": {"d": "2024-01-02"}
    }


def test_dumps_is_compact_utf8_and_strict() -> None:
    assert dumps({"a": "é", "b": [1, None]}) == '{"a":"é","b":[1,null]}'.encode()
    with pytest.raises(ValueError):
        dumps({"nan": float("nan")})


def test_record_writer_over_duckdb_arrow() -> None:
    """Every storage type of model.py, fetched as Arrow, written as v2.1 values."""
    con = duckdb.connect()
    table = con.sql(
        """SELECT 'x' AS t, ['a', 'b'] AS tags, 3::BIGINT AS i, 1.5::DOUBLE AS d, true AS b,
           DATE '1988-01-01' AS m, TIMESTAMPTZ '2024-07-01 10:00:00+00' AS ts,
           {'lon': 2.35, 'lat': 48.85} AS p,
           '{"type":"Point","coordinates":[2.35,48.85]}' AS s,
           '{"id": "f1", "filename": "a.png"}'::JSON AS f, '[1, {"a": 2}]'::JSON AS j,
           sum(3::BIGINT) AS total, {'lat': 1.0, 'lon': 2.0} AS c, '[0, 14]' AS r"""
    ).to_arrow_table()
    columns = [
        OutputColumn("t", "t", "text"),
        OutputColumn("tags", "tags", "text", multivalued=True),
        OutputColumn("i", "i", "int"),
        OutputColumn("d", "d", "double"),
        OutputColumn("b", "b", "boolean"),
        OutputColumn("m", "m", "date", date_precision="month"),
        OutputColumn("ts", "ts", "datetime"),
        OutputColumn("p", "p", "geo_point_2d"),
        OutputColumn("s", "s", "geo_shape"),
        OutputColumn("f", "f", "file"),
        OutputColumn("j", "j", "json_blob"),
        OutputColumn("count(*)", "total", "number"),
        OutputColumn("GEO_CLUSTER(p, 3)", "c", "cluster"),
        OutputColumn("RANGE(i, 15)", "r", "range"),
    ]
    context = SerializeContext(timezone=PARIS, base_url="http://h", dataset_id="ds")
    [record] = RecordWriter(columns, context).records(table)
    assert record == {
        "t": "x",
        "tags": ["a", "b"],
        "i": 3,
        "d": 1.5,
        "b": True,
        "m": "1988-01",
        "ts": "2024-07-01T12:00:00+02:00",
        "p": {"lon": 2.35, "lat": 48.85},
        "s": {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
            "properties": {},
        },
        "f": {
            "id": "f1",
            "filename": "a.png",
            "url": "http://h/api/explore/v2.1/catalog/datasets/ds/files/f1",
        },
        "j": [1, {"a": 2}],
        "count(*)": 3,
        "GEO_CLUSTER(p, 3)": {"cluster_centroid": {"lat": 1.0, "lon": 2.0}},
        "RANGE(i, 15)": "[0, 14]",
    }
    assert isinstance(record["count(*)"], int)


def test_record_writer_nulls_and_row_major_input() -> None:
    columns = [OutputColumn(name, name, kind) for name, kind in [("a", "text"), ("b", "int")]]
    writer = RecordWriter(columns, SerializeContext())
    assert writer.from_rows([(None, None), ("x", 1)]) == [
        {"a": None, "b": None},
        {"a": "x", "b": 1},
    ]
    assert writer.from_columns([["x"], [2]]) == [{"a": "x", "b": 2}]
    assert writer.from_columns([[], []]) == []


def test_output_column_may_carry_its_field() -> None:
    field = PortalField("when", "date", annotations={"timeserie_precision": ["year"]})
    column = OutputColumn("when", "when", "date", date_precision=field.date_precision, field=field)
    assert value_converter(column, SerializeContext())(date(2014, 1, 1)) == "2014"
