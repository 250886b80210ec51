"""Pure parts of the chunked download: slice values, row counts of part files, manifests."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from odsframe.download import (
    MANIFEST_NAME,
    Chunk,
    Manifest,
    _Domain,
    _slice_condition,
    _text_between,
    count_rows,
    load_manifest,
    read_parts,
)
from odsframe.errors import IncompleteResultError, InvalidQueryArgument, ServerError

# -- values strictly between two others -------------------------------------------------------


@given(st.text(max_size=12), st.text(max_size=12))
def test_text_between_is_strictly_inside(first: str, second: str) -> None:
    low, high = sorted((first, second))
    middle = _text_between(low, high)
    if middle is None:
        # Only when nothing fits: high is low followed by NUL characters.
        assert high == low + "\x00" * (len(high) - len(low))
    else:
        assert low < middle < high
        assert not any(0xD800 <= ord(char) <= 0xDFFF for char in middle[len(low) :])


def test_text_between_splits_ids_near_the_middle() -> None:
    assert _text_between("EV-0000001", "EV-1000000\x00") == "EV-05"
    assert _text_between("EV-0000001", "EV-05") == "EV-02"
    assert _text_between("a", "b") == "an"
    assert _text_between("x", "x\x00") is None


@pytest.mark.parametrize("kind", ["int", "date", "datetime"])
@given(low=st.integers(-(10**15), 10**15), width=st.integers(1, 10**12))
def test_integer_domains_split_strictly_inside(kind: str, low: int, width: int) -> None:
    domain = _Domain(kind)
    if kind == "date":
        low, width = abs(low) % 700_000 + 1, width % 10_000 + 1
    middle = domain.between(low, low + width)
    if width < 2:
        assert middle is None
    else:
        assert low < middle < low + width


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
def test_double_split_strictly_inside(first: float, second: float) -> None:
    low, high = sorted((first, second))
    middle = _Domain("double").between(low, high)
    if middle is None:
        assert low == high or _Domain("double").successor(low) == high
    else:
        assert low < middle < high


@pytest.mark.parametrize("kind", ["int", "double", "datetime", "text"])
@given(
    bounds=st.tuples(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12)),
    pieces=st.integers(1, 70),
)
def test_split_points_increase_strictly_inside(
    kind: str, bounds: tuple[int, int], pieces: int
) -> None:
    domain = _Domain(kind)
    low, high = sorted(bounds)
    start: object
    stop: object
    if kind == "double":
        start, stop = low / 7, high / 7
    elif kind == "text":
        start, stop = str(low), str(high)
        start, stop = sorted((start, stop))
    else:
        start, stop = low, high
    points = domain.split(start, stop, pieces)
    assert all(start < point < stop for point in points)  # type: ignore[operator]
    assert points == sorted(set(points))
    if kind in ("int", "datetime") and pieces > 2 and high - low > 100 * pieces:
        assert len(points) == pieces - 1


def test_even_split_of_a_year() -> None:
    datetimes = _Domain("datetime")
    start = datetimes.parse("2021-01-01T00:00:00+00:00")
    stop = datetimes.parse("2025-01-01T00:00:00+00:00")
    literals = [datetimes.literal(point) for point in datetimes.split(start, stop, 4)]
    assert literals == [
        "date'2022-01-01T00:00:00+00:00'",
        "date'2023-01-01T00:00:00+00:00'",
        "date'2024-01-01T00:00:00+00:00'",
    ]
    assert _Domain("int").split(0, 1000, 10) == list(range(100, 1000, 100))


def test_round_split_points() -> None:
    assert _Domain("int").between(1, 1_000_001) == 500_000
    assert _Domain("double").between(5.0, 99.37) == 50.0
    datetimes = _Domain("datetime")
    low = datetimes.parse("2021-01-03T12:15:00+00:00")
    high = datetimes.successor(datetimes.parse("2024-12-30T10:15:00+00:00"))
    assert datetimes.literal(datetimes.between(low, high)) == "date'2023-01-01T00:00:00+00:00'"


def test_parse_answers_of_each_type() -> None:
    assert _Domain("int").parse(42) == 42
    assert _Domain("double").parse(2) == 2.0
    assert _Domain("date").parse("2021-03-04") == date(2021, 3, 4).toordinal()
    micro = _Domain("datetime").parse("2021-03-04T10:00:00+01:00")
    assert micro == int(datetime(2021, 3, 4, 9, tzinfo=UTC).timestamp()) * 1_000_000
    assert _Domain("datetime").parse("2021-03-04T09:00:00Z") == micro
    for kind, raw in [("int", None), ("double", float("inf")), ("date", 20210304), ("int", True)]:
        with pytest.raises(ValueError):
            _Domain(kind).parse(raw)


def test_literals_never_use_exponents() -> None:
    assert _Domain("double").literal(1e-7) == "0.0000001"
    assert _Domain("double").literal(2.5e20) == "250000000000000000000"
    assert _Domain("date").literal(date(2020, 2, 29).toordinal()) == "date'2020-02-29'"
    assert _Domain("text").literal('say "hi"') == '"say \\"hi\\""'


def test_slice_conditions_are_half_open() -> None:
    ints = _Domain("int")
    assert _slice_condition("n", ints, None, 10) == "n < 10"
    assert _slice_condition("n", ints, 10, 20) == "n >= 10 AND n < 20"
    assert _slice_condition("`year`", ints, 20, None) == "`year` >= 20"
    assert _slice_condition("n", ints, None, None) == "n IS NOT NULL"


# -- row counts of part files -----------------------------------------------------------------


def test_count_rows_of_each_format(tmp_path: Path) -> None:
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.table({"a": list(range(7))}), parquet)
    csv = tmp_path / "p.csv"
    # A BOM, CRLF, a quoted cell spanning two lines, and a ; inside quotes.
    csv.write_bytes('\ufeffa;b\r\n1;"two\r\nlines"\r\n2;"x;y"\r\n3;\r\n'.encode())
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"a": 1}\n{"a": 2}\n\n{"a": 3}\n')
    records = tmp_path / "p.json"
    records.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    geojson = tmp_path / "p.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [{}, {}, {}, {}]}))
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_bytes(b"")
    assert count_rows(parquet, "parquet") == 7
    assert count_rows(csv, "csv") == 3
    assert count_rows(jsonl, "jsonl") == 3
    assert count_rows(records, "json") == 2
    assert count_rows(geojson, "geojson") == 4
    assert count_rows(empty_csv, "csv") == 0


def test_count_rows_of_a_cut_file_is_a_server_error(tmp_path: Path) -> None:
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.table({"a": list(range(7))}), parquet)
    parquet.write_bytes(parquet.read_bytes()[:-20])
    cut_json = tmp_path / "p.json"
    cut_json.write_text('[{"a": 1}, {"a"')
    with pytest.raises(ServerError, match=r"p\.parquet is not a readable parquet export"):
        count_rows(parquet, "parquet")
    with pytest.raises(ServerError, match="json"):
        count_rows(cut_json, "json")


# -- manifests --------------------------------------------------------------------------------


def _manifest(folder: Path) -> Manifest:
    return Manifest(
        folder=folder,
        portal="http://127.0.0.1:1",
        dataset="things",
        query={"params": [["where", "n > 1"]], "limit": None},
        format="parquet",
        total=5,
        data_processed="2024-01-01T00:00:00+00:00",
        records_count=9,
        fields=[{"name": "n", "type": "int"}],
        chunks=[
            Chunk(0, "part-00000.parquet", "n < 4", 2, "complete", 2, 10, "ab"),
            Chunk(1, "part-00001.parquet", "n >= 4", 3),
        ],
        chunk_field="n",
        chunk_field_type="int",
    )


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write()
    again = load_manifest(tmp_path)
    assert again.to_json() == manifest.to_json()
    assert again.files == [tmp_path / "part-00000.parquet"]
    assert (again.rows, again.expected_rows, again.complete) == (2, 5, False)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_manifest_refuses_unsafe_file_names(tmp_path: Path) -> None:
    payload = _manifest(tmp_path).to_json()
    payload["chunks"][1]["file"] = "../escape.parquet"
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(payload))
    with pytest.raises(InvalidQueryArgument, match="not a readable download manifest"):
        load_manifest(tmp_path)


def test_no_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidQueryArgument, match=r"no manifest\.json"):
        load_manifest(tmp_path)


def test_read_parts_of_an_incomplete_download(tmp_path: Path) -> None:
    with pytest.raises(IncompleteResultError, match=r"chunks \[1\] missing"):
        read_parts(_manifest(tmp_path))
