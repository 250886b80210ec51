"""``odsframe.push`` / ``df.ods.push`` / ``odsframe.push.delete`` against a local portal.

Serialisation (:func:`to_push_records`) is checked on its own; every push goes over real
HTTP to a fresh portal per test (pushes change the data) with the sample datasets
(``sample-bike-stations`` takes the sample push key) and ``push-all``, a small dataset with
every field type and ``code`` as its ``id`` field.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests
import shapely

import odsframe
from odsframe.errors import AuthenticationError, InvalidQueryArgument, QueryError
from odsframe.push import PushResult, delete, to_push_records
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal, build_catalog
from odsframe.testing.routes_push import SAMPLE_PUSH_DATASET, SAMPLE_PUSH_KEY

STATIONS = SAMPLE_PUSH_DATASET
ALL = "push-all"
ALL_KEY = "all-key-91c3"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x04\x00\x00\x00\x03"
    + b"\x08\x02\x00\x00\x00"
    + b"\x01" * 20
)
ALL_FIELDS = [
    PortalField("code", "text", "Code", annotations={"id": []}),
    PortalField("tags", "text", "Tags", annotations={"multivalued": [","]}),
    PortalField("n", "int", "Count"),
    PortalField("x", "double", "Value"),
    PortalField("flag", "boolean", "Flag"),
    PortalField("day", "date", "Day"),
    PortalField("seen", "datetime", "Seen"),
    PortalField("point", "geo_point_2d", "Point"),
    PortalField("shape", "geo_shape", "Shape"),
    PortalField("photo", "file", "Photo"),
    PortalField("extra", "json_blob", "Extra"),
]


@pytest.fixture
def portal() -> Iterator[LocalPortal]:
    catalog = build_catalog(None, True, 20)
    catalog.add_dataset(
        PortalDataset(
            ALL,
            "",
            ALL_FIELDS,
            {"default": {"title": "All types", "modified_updates_on_data_change": True}},
            processed_at=datetime(2024, 1, 1, tzinfo=UTC),
        ),
        pa.table({"code": ["seed"], "n": [0]}),
    )
    with LocalPortal(
        catalog=catalog, push_keys={STATIONS: SAMPLE_PUSH_KEY, ALL: ALL_KEY}
    ) as running:
        yield running


def count(portal: LocalPortal, dataset: str) -> int:
    answer = requests.get(
        f"{portal.url}/api/explore/v2.1/catalog/datasets/{dataset}/records",
        params={"limit": 0},
        timeout=30,
    )
    return int(answer.json()["total_count"])


# -- serialisation ----------------------------------------------------------------------------


def test_frame_values_become_push_json() -> None:
    frame = pd.DataFrame(
        {
            "code": pd.array(["a", None], dtype="string"),
            "n": pd.array([1, None], dtype="Int64"),
            "x": [1.5, np.nan],
            "flag": pd.array([True, None], dtype="boolean"),
            "seen": pd.to_datetime(["2024-05-01 10:30", None]).tz_localize("Europe/Paris"),
            "day": pd.to_datetime(["2024-02-29", None]),
            "stamp": pd.to_datetime(["2024-02-29 12:00:00.250", None]),
            "tags": [["a", "b"], None],
            "extra": [{"k": [1, None, np.int64(2)]}, None],
            "kind": pd.Categorical(["c1", None]),
        }
    )
    first, second = to_push_records(frame)
    assert first == {
        "code": "a",
        "n": 1,
        "x": 1.5,
        "flag": True,
        "seen": "2024-05-01T10:30:00+02:00",
        "day": "2024-02-29",
        "stamp": "2024-02-29T12:00:00.250000+00:00",
        "tags": ["a", "b"],
        "extra": {"k": [1, None, 2]},
        "kind": "c1",
    }
    assert second == {}  # nulls leave their key out
    assert isinstance(first["n"], int) and isinstance(first["flag"], bool)


def test_arrow_list_cells_become_json_arrays() -> None:
    tags = pd.Series(
        pd.arrays.ArrowExtensionArray(pa.array([["a", "b"], None, []], pa.list_(pa.string())))
    )
    first, second, third = to_push_records(pd.DataFrame({"tags": tags}))
    assert first == {"tags": ["a", "b"]}
    assert second == {}
    assert third == {"tags": []}


def test_a_frame_read_with_read_ods_pushes_back_unchanged(portal: LocalPortal) -> None:
    frame = odsframe.read_ods(portal.url, STATIONS, order_by="stationcode", limit=3, cache=False)
    frame["stationcode"] = ["NEW-1", "NEW-2", "NEW-3"]
    frame.loc[frame.index[2], "payment"] = None
    odsframe.push(portal.url, STATIONS, "realtime", frame, pushkey=SAMPLE_PUSH_KEY)
    back = odsframe.read_ods(
        portal.url,
        STATIONS,
        where={"stationcode": ["NEW-1", "NEW-2", "NEW-3"]},
        order_by="stationcode",
        cache=False,
    )
    assert back["payment"].dtype == frame["payment"].dtype
    assert back["payment"].tolist() == frame["payment"].tolist()
    assert back["payment"].isna().tolist() == [False, False, True]


def test_geometries_points_as_lat_lon_and_shapes_as_geojson() -> None:
    frame = gpd.GeoDataFrame(
        {
            "code": ["p", "s", "e"],
            "shape": [
                shapely.Point(2.35, 48.85),
                shapely.box(2, 48, 3, 49),
                None,
            ],
        },
        geometry="shape",
        crs=4326,
    )
    point, square, empty = to_push_records(frame)
    assert point["shape"] == "48.85,2.35"
    assert square["shape"]["type"] == "Polygon"
    assert square["shape"]["coordinates"][0][0] == [3.0, 48.0]
    assert "shape" not in empty
    assert to_push_records(frame, point_format="geojson")[0]["shape"] == {
        "type": "Point",
        "coordinates": [2.35, 48.85],
    }
    tiny = to_push_records([{"p": shapely.Point(0.00001, -0.000002)}])
    assert tiny == [{"p": "-0.000002,0.00001"}]  # never in exponent notation


def test_geometries_in_another_crs_are_reprojected() -> None:
    frame = gpd.GeoDataFrame(
        {"geo": [shapely.Point(2.35, 48.85)]}, geometry="geo", crs=4326
    ).to_crs(3857)
    (record,) = to_push_records(frame)
    lat, lon = (float(part) for part in record["geo"].split(","))
    assert lat == pytest.approx(48.85) and lon == pytest.approx(2.35)


def test_bytes_and_paths_become_file_contents(tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0jpeg")
    records = to_push_records([{"a": PNG, "b": image, "c": b"plain"}])
    assert records[0]["a"] == {
        "content": base64.b64encode(PNG).decode(),
        "content-type": "image/png",
    }
    assert records[0]["b"]["content-type"] == "image/jpeg"
    assert base64.b64decode(records[0]["b"]["content"]) == b"\xff\xd8\xff\xe0jpeg"
    assert records[0]["c"]["content-type"] == "application/octet-stream"


def test_records_mappings_and_python_values() -> None:
    records = to_push_records(
        {"d": date(2024, 1, 2), "t": datetime(2024, 1, 2, 3, 4, 5), "m": Decimal("1.25")}
    )
    assert records == [{"d": "2024-01-02", "t": "2024-01-02T03:04:05+00:00", "m": 1.25}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"x": [1.0, np.inf]}), "column 'x', row 1: infinity"),
        (pd.DataFrame({"d": pd.to_timedelta([1], unit="s")}), "column 'd': durations"),
        (pd.DataFrame({"o": [object()]}), "column 'o', row 0: a object has no ODS JSON form"),
        (pd.DataFrame({0: [1]}), "column names must be field names"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicated column"),
        ("text", "expected a DataFrame"),
        ([1, 2], "record 0 is a int"),
        ([{"p": Path("/no/such/file.png")}], "cannot read the file"),
    ],
)
def test_values_without_json_form_are_named(data: Any, message: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        to_push_records(data)


# -- pushing ----------------------------------------------------------------------------------


def test_push_then_read_ods_sees_the_rows_and_the_cache_is_refreshed(portal: LocalPortal) -> None:
    first = odsframe.read_ods(portal.url, STATIONS)
    assert first.attrs["ods"]["cache"] == "fetched"
    assert odsframe.read_ods(portal.url, STATIONS).attrs["ods"]["cache"] == "hit"
    new = first.head(3).copy()
    new["stationcode"] = ["N1", "N2", "N3"]
    result = odsframe.push(portal.url, STATIONS, "realtime", new, pushkey=SAMPLE_PUSH_KEY)
    assert result == PushResult(
        portal=portal.url,
        dataset=STATIONS,
        resource="realtime",
        action="push",
        records=3,
        requests=1,
        bytes_sent=result.bytes_sent,
        url=f"{portal.url}/api/push/1.0/{STATIONS}/realtime/push/",
    )
    assert result.bytes_sent > 100
    again = odsframe.read_ods(portal.url, STATIONS)
    assert again.attrs["ods"]["cache"] == "fetched"  # data_processed moved
    assert len(again) == len(first) + 3
    pushed = again[again["stationcode"].isin(["N1", "N2", "N3"])].reset_index(drop=True)
    original = first.head(3).drop(columns="stationcode").reset_index(drop=True)
    pd.testing.assert_frame_equal(pushed.drop(columns="stationcode"), original)


def test_df_ods_push_writes_back_to_the_frames_dataset(portal: LocalPortal) -> None:
    before = count(portal, STATIONS)
    edited = odsframe.read_ods(portal.url, STATIONS, limit=2)
    edited["capacity"] = [1000, 1001]
    result = edited.ods.push("realtime", pushkey=SAMPLE_PUSH_KEY)
    assert (result.dataset, result.records) == (STATIONS, 2)
    # The stations have an id field: the two records were replaced, not added.
    assert count(portal, STATIONS) == before
    codes = list(edited["stationcode"])
    back = odsframe.read_ods(portal.url, STATIONS, where={"stationcode": codes})
    assert sorted(back["capacity"]) == [1000, 1001]


def test_a_frame_read_with_labels_is_pushed_under_field_names(portal: LocalPortal) -> None:
    labelled = odsframe.read_ods(portal.url, STATIONS, limit=1, labels=True)
    assert "Code station" in labelled.columns
    labelled["Code station"] = ["L1"]
    labelled.ods.push("realtime", pushkey=SAMPLE_PUSH_KEY)
    back = odsframe.read_ods(portal.url, STATIONS, where={"stationcode": "L1"})
    assert len(back) == 1


def test_every_field_type_round_trips(portal: LocalPortal) -> None:
    frame = gpd.GeoDataFrame(
        {
            "code": ["r1"],
            "tags": [["x", "y"]],
            "n": pd.array([7], dtype="Int64"),
            "x": [0.125],
            "flag": [False],
            "day": pd.to_datetime(["2023-12-31"]),
            "seen": pd.to_datetime(["2024-03-31 02:30"]).tz_localize("UTC"),
            "point": gpd.GeoSeries([shapely.Point(2.1, 48.1)], crs=4326),
            "shape": gpd.GeoSeries([shapely.box(2, 48, 2.5, 48.5)], crs=4326),
            "photo": [PNG],
            "extra": [{"deep": {"list": [1, 2]}}],
        },
        geometry="shape",
    )
    odsframe.push(portal.url, ALL, "rt", frame, pushkey=ALL_KEY)
    back = odsframe.read_ods(portal.url, ALL, where={"code": "r1"})
    row = back.iloc[0]
    assert list(row["tags"]) == ["x", "y"]
    assert row["n"] == 7 and row["x"] == 0.125 and not row["flag"]
    assert row["day"] == pd.Timestamp("2023-12-31")
    assert row["seen"] == pd.Timestamp("2024-03-31 02:30", tz="UTC")
    assert row["point"].equals(shapely.Point(2.1, 48.1))
    assert row["shape"].normalize().equals(shapely.box(2, 48, 2.5, 48.5).normalize())
    assert row["extra"] == {"deep": {"list": [1, 2]}}
    assert requests.get(row["photo"], timeout=30).content == PNG


def test_batches_respect_batch_size_and_max_bytes(portal: LocalPortal) -> None:
    def records(width: int) -> list[dict[str, Any]]:
        # {"code":"bN","tags":["ttt..."]} is width + 25 bytes of JSON.
        return [{"code": f"b{n}", "tags": ["t" * width]} for n in range(7)]

    by_count = odsframe.push(portal.url, ALL, "rt", records(10), pushkey=ALL_KEY, batch_size=3)
    assert (by_count.records, by_count.requests) == (7, 3)
    # Three records of 340 bytes: a body of 2 + 3 * 340 + 2 = 1024 bytes, the limit.
    at_limit = odsframe.push(portal.url, ALL, "rt", records(315), pushkey=ALL_KEY, max_bytes=1024)
    assert at_limit.requests == 3
    assert at_limit.bytes_sent == 2 * 1024 + (2 + 340)
    # One byte more per record: only two fit.
    over = odsframe.push(portal.url, ALL, "rt", records(316), pushkey=ALL_KEY, max_bytes=1024)
    assert over.requests == 4
    assert count(portal, ALL) == 1 + 7


def test_a_record_larger_than_max_bytes_stops_everything_before_sending(
    portal: LocalPortal,
) -> None:
    records = [{"code": "small"}, {"code": "huge", "tags": ["x" * 5000]}]
    with pytest.raises(InvalidQueryArgument, match=r"record 1 is 5,0\d\d bytes of JSON"):
        odsframe.push(portal.url, ALL, "rt", records, pushkey=ALL_KEY, max_bytes=2048)
    assert count(portal, ALL) == 1


def test_a_wrong_push_key_is_an_authentication_error_that_never_shows_the_key(
    portal: LocalPortal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-key-4c2f0a"
    with pytest.raises(AuthenticationError) as caught:
        odsframe.push(portal.url, ALL, "rt", {"code": "k"}, pushkey=secret)
    error = caught.value
    assert error.status == 401
    assert "push key" in str(error) and "Nothing was sent" in str(error)
    assert error.url is not None and "pushkey=***" in error.url
    assert error.__cause__ is None and error.__suppress_context__
    for text in (str(error), repr(error), error.url, caplog.text):
        assert secret not in text
    assert "pushkey=***" in caplog.text  # the request was logged, masked


def test_rejected_records_are_a_query_error_saying_what_was_sent(portal: LocalPortal) -> None:
    records = [{"code": "ok1"}, {"code": "ok2"}, {"code": "bad", "n": "many"}]
    with pytest.raises(QueryError) as caught:
        odsframe.push(portal.url, ALL, "rt", records, pushkey=ALL_KEY, batch_size=2)
    message = str(caught.value)
    assert "record 2 for dataset 'push-all'" in message
    assert "field 'n' (int)" in message
    assert "The 2 record(s) of the 1 earlier request(s) were sent." in message
    assert count(portal, ALL) == 1 + 2


def test_unknown_dataset_and_closed_dataset(portal: LocalPortal) -> None:
    with pytest.raises(odsframe.DatasetNotFoundError, match="push API has no dataset 'nope'"):
        odsframe.push(portal.url, "nope", "rt", {"a": 1}, pushkey="k")
    with pytest.raises(AuthenticationError, match="HTTP 403"):
        odsframe.push(portal.url, "sample-trees", "rt", {"idbase": 1}, pushkey="k")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pushkey": ""}, "pushkey: expected the push key"),
        ({"pushkey": "k", "batch_size": 0}, "batch_size"),
        ({"pushkey": "k", "max_bytes": 10}, "max_bytes"),
        ({"pushkey": "k", "point_format": "wkt"}, "point_format"),
    ],
)
def test_bad_arguments_fail_before_any_request(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        odsframe.push("http://127.0.0.1:9", "ds", "rt", [{"a": 1}], **kwargs)


def test_bad_resource_ids() -> None:
    with pytest.raises(InvalidQueryArgument, match="resource"):
        odsframe.push("http://127.0.0.1:9", "ds", "a/b", [{"a": 1}], pushkey="k")
    with pytest.raises(InvalidQueryArgument, match="resource"):
        odsframe.push("http://127.0.0.1:9", "ds", " ", [{"a": 1}], pushkey="k")


# -- deleting ---------------------------------------------------------------------------------


def test_delete_by_values_and_by_ids(portal: LocalPortal) -> None:
    odsframe.push(
        portal.url, ALL, "rt", [{"code": f"d{n}", "n": n} for n in range(4)], pushkey=ALL_KEY
    )
    result = delete(portal.url, ALL, "rt", [{"code": "d0"}, {"code": "d1"}], pushkey=ALL_KEY)
    assert (result.action, result.records, result.requests) == ("delete", 2, 1)
    assert count(portal, ALL) == 1 + 2
    found = requests.get(
        f"{portal.url}/api/explore/v2.1/catalog/datasets/{ALL}/records",
        params={"where": 'code in ("d2", "d3")', "include_links": "true"},
        timeout=30,
    ).json()["results"]
    ids = [record["_id"] for record in found]
    by_id = delete(portal.url, ALL, "rt", record_ids=ids, pushkey=ALL_KEY)
    assert (by_id.records, by_id.requests) == (2, 2)
    assert count(portal, ALL) == 1


def test_delete_needs_exactly_one_of_values_and_ids() -> None:
    with pytest.raises(InvalidQueryArgument, match="either data"):
        delete("http://127.0.0.1:9", "ds", "rt", pushkey="k")
    with pytest.raises(InvalidQueryArgument, match="either data"):
        delete("http://127.0.0.1:9", "ds", "rt", [{"a": 1}], record_ids=["x"], pushkey="k")


def test_delete_by_id_with_a_wrong_key(portal: LocalPortal) -> None:
    with pytest.raises(AuthenticationError, match="deletion of 'abc'"):
        delete(portal.url, ALL, "rt", record_ids="abc", pushkey="bad")


def test_push_is_a_public_name() -> None:
    assert "push" in odsframe.__all__
    assert odsframe.push.__module__ == "odsframe.push"
    assert callable(odsframe.push)
