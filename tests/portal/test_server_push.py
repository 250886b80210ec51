"""The real-time push API of the local portal over real HTTP (ods-api.md 2.10).

Each test gets a fresh portal (pushes change data) over two hand-built datasets:
``push-types`` has every field type and no ``id`` field (the record id is the hash of all
values), ``push-keyed`` has ``code`` as its ``id`` field (pushes upsert).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import requests

from odsframe.testing.catalog import Catalog
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal
from odsframe.testing.routes_push import MAX_PUSH_BYTES, SAMPLE_PUSH_DATASET, SAMPLE_PUSH_KEY

V21 = "/api/explore/v2.1"
PUSH = "/api/push/1.0"
KEY = "push-key-7d1e"
PROCESSED = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x03\x00\x00\x00\x02"
    + b"\x08\x02\x00\x00\x00"
    + b"\x00" * 12
)

TYPES_FIELDS = [
    PortalField("name", "text", "Name"),
    PortalField("tags", "text", "Tags", annotations={"multivalued": [";"]}),
    PortalField("n", "int", "N"),
    PortalField("x", "double", "X"),
    PortalField("flag", "boolean", "Flag"),
    PortalField("day", "date", "Day"),
    PortalField("month", "date", "Month", annotations={"timeserie_precision": ["month"]}),
    PortalField("seen", "datetime", "Seen"),
    PortalField("point", "geo_point_2d", "Point"),
    PortalField("shape", "geo_shape", "Shape"),
    PortalField("photo", "file", "Photo"),
    PortalField("extra", "json_blob", "Extra"),
]
KEYED_FIELDS = [
    PortalField("code", "text", "Code", annotations={"id": []}),
    PortalField("count", "int", "Count"),
]


def _metas(title: str) -> dict[str, dict[str, Any]]:
    return {"default": {"title": title, "modified_updates_on_data_change": True}}


def _catalog() -> Catalog:
    catalog = Catalog()
    catalog.add_dataset(
        PortalDataset("push-types", "", TYPES_FIELDS, _metas("Types"), processed_at=PROCESSED),
        pa.table({"name": ["seed"], "n": [1]}),
    )
    catalog.add_dataset(
        PortalDataset("push-keyed", "", KEYED_FIELDS, _metas("Keyed"), processed_at=PROCESSED),
        pa.table({"code": ["a", "b"], "count": [1, 2]}),
    )
    catalog.add_dataset(
        PortalDataset("no-push", "", KEYED_FIELDS, _metas("Closed"), processed_at=PROCESSED),
        pa.table({"code": ["a"], "count": [1]}),
    )
    catalog.add_dataset(
        PortalDataset(
            "push-private",
            "",
            KEYED_FIELDS,
            _metas("Private"),
            visibility="restricted",
            processed_at=PROCESSED,
        ),
        pa.table({"code": ["a"], "count": [1]}),
    )
    return catalog


@pytest.fixture
def portal() -> Iterator[LocalPortal]:
    keys = {"push-types": KEY, "push-keyed": KEY, "push-private": KEY}
    with LocalPortal(catalog=_catalog(), push_keys=keys) as running:
        yield running


def push_url(portal: LocalPortal, dataset: str, action: str = "push") -> str:
    return f"{portal.url}{PUSH}/{dataset}/realtime/{action}/"


def post(portal: LocalPortal, dataset: str, body: Any, *, key: str | None = KEY) -> Any:
    params = {"pushkey": key} if key is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(push_url(portal, dataset), params=params, data=data, timeout=30)


def records(portal: LocalPortal, dataset: str, **params: Any) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{portal.url}{V21}/catalog/datasets/{dataset}/records",
        params={"limit": 100, **params},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["results"])


def metas(portal: LocalPortal, dataset: str) -> dict[str, Any]:
    answer = requests.get(f"{portal.url}{V21}/catalog/datasets/{dataset}", timeout=30)
    return dict(answer.json()["metas"]["default"])


# -- pushing ----------------------------------------------------------------------------------


def test_one_object_is_one_record_and_ok_is_the_answer(portal: LocalPortal) -> None:
    answer = post(portal, "push-keyed", {"code": "c", "count": 3})
    assert answer.status_code == 200
    assert answer.json() == {"status": "OK"}
    assert {r["code"]: r["count"] for r in records(portal, "push-keyed")} == {
        "a": 1,
        "b": 2,
        "c": 3,
    }


def test_a_list_is_appended_after_the_existing_records(portal: LocalPortal) -> None:
    answer = post(portal, "push-keyed", [{"code": "x", "count": 10}, {"code": "y"}])
    assert answer.json() == {"status": "OK"}
    got = records(portal, "push-keyed")
    assert [r["code"] for r in got] == ["a", "b", "x", "y"]
    assert got[-1]["count"] is None


def test_every_type_is_cast_to_the_schema(portal: LocalPortal) -> None:
    record = {
        "name": "all",
        "tags": "red; green",
        "n": "42",
        "x": 7,
        "flag": "true",
        "day": "2024-02-29",
        "month": "2024-05",
        "seen": "2024-05-01T10:30:00+02:00",
        "point": "48.85,2.35",
        "shape": {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[2, 48], [3, 49]]},
        },
        "extra": {"a": [1, 2]},
    }
    assert post(portal, "push-types", record).status_code == 200
    (got,) = records(portal, "push-types", where='name="all"')
    assert got["tags"] == ["red", "green"]
    assert got["n"] == 42 and got["x"] == 7.0 and got["flag"] is True
    assert got["day"] == "2024-02-29" and got["month"] == "2024-05"
    assert got["seen"] == "2024-05-01T08:30:00+00:00"
    assert got["point"] == {"lon": 2.35, "lat": 48.85}
    assert got["shape"]["geometry"] == {"type": "LineString", "coordinates": [[2, 48], [3, 49]]}
    assert got["extra"] == {"a": [1, 2]}
    assert got["photo"] is None


def test_point_shapes_and_naive_datetimes(portal: LocalPortal) -> None:
    body = [
        {
            "name": "p1",
            "point": {"lon": 2.3, "lat": 48.8},
            "shape": "48.8,2.3",
            "seen": "2024-01-01T00:00:00",
        },
        {
            "name": "p2",
            "point": [48.9, 2.4],
            "shape": {"type": "Point", "coordinates": [2.4, 48.9]},
        },
        {"name": "p3", "point": {"type": "Point", "coordinates": [2.5, 49.0]}},
    ]
    assert post(portal, "push-types", body).status_code == 200
    got = {r["name"]: r for r in records(portal, "push-types", where='name like "p*"')}
    assert got["p1"]["point"] == {"lon": 2.3, "lat": 48.8}
    assert got["p1"]["shape"]["geometry"] == {"type": "Point", "coordinates": [2.3, 48.8]}
    assert got["p1"]["seen"] == "2024-01-01T00:00:00+00:00"  # no offset means UTC
    assert got["p2"]["point"] == {"lon": 2.4, "lat": 48.9}
    assert got["p3"]["point"] == {"lon": 2.5, "lat": 49.0}


def test_pushed_records_are_queryable_and_searchable(portal: LocalPortal) -> None:
    post(portal, "push-types", [{"name": "Zebra crossing", "n": 5}, {"name": "other", "n": 6}])
    assert [r["n"] for r in records(portal, "push-types", where="n >= 5", order_by="n")] == [5, 6]
    assert [r["name"] for r in records(portal, "push-types", where='search("zebra")')] == [
        "Zebra crossing"
    ]


def test_metadata_moves_so_caches_see_the_change(portal: LocalPortal) -> None:
    before = metas(portal, "push-keyed")
    assert post(portal, "push-keyed", {"code": "new", "count": 1}).status_code == 200
    after = metas(portal, "push-keyed")
    assert after["records_count"] == before["records_count"] + 1
    assert datetime.fromisoformat(after["data_processed"]) > datetime.fromisoformat(
        before["data_processed"]
    )
    assert after["modified"] == after["data_processed"]
    listed = requests.get(
        f"{portal.url}{V21}/catalog/datasets",
        params={"where": 'dataset_id="push-keyed"', "select": "records_count, data_processed"},
        timeout=30,
    ).json()["results"][0]
    assert listed["records_count"] == after["records_count"]
    assert listed["data_processed"] == after["data_processed"]


def test_a_record_with_an_existing_id_replaces_it(portal: LocalPortal) -> None:
    before = metas(portal, "push-keyed")["records_count"]
    post(portal, "push-keyed", [{"code": "a", "count": 100}, {"code": "a", "count": 200}])
    got = {r["code"]: r["count"] for r in records(portal, "push-keyed")}
    assert got == {"a": 200, "b": 2}
    assert metas(portal, "push-keyed")["records_count"] == before


def test_identical_records_without_id_fields_are_one_record(portal: LocalPortal) -> None:
    post(portal, "push-types", [{"name": "twin", "n": 1}, {"name": "twin", "n": 1}])
    post(portal, "push-types", {"name": "twin", "n": 1})
    assert len(records(portal, "push-types", where='name="twin"')) == 1
    post(portal, "push-types", {"name": "twin", "n": 2})
    assert len(records(portal, "push-types", where='name="twin"')) == 2


def test_records_get_an_id_and_the_arrival_time(portal: LocalPortal) -> None:
    started = datetime.now(UTC)
    post(portal, "push-keyed", {"code": "t", "count": 1})
    (got,) = records(portal, "push-keyed", where='code="t"', include_links="true")
    assert len(got["_id"]) == 40
    assert datetime.fromisoformat(got["_timestamp"]) >= started.replace(microsecond=0)
    (old,) = records(portal, "push-keyed", where='code="a"', include_links="true")
    assert datetime.fromisoformat(old["_timestamp"]) == PROCESSED


def test_a_file_field_takes_base64_content_served_by_the_files_route(portal: LocalPortal) -> None:
    body = {
        "name": "with photo",
        "photo": {"content": base64.b64encode(PNG).decode(), "content-type": "image/png"},
    }
    assert post(portal, "push-types", body).status_code == 200
    (got,) = records(portal, "push-types", where='name="with photo"')
    photo = got["photo"]
    assert photo["mimetype"] == "image/png" and photo["format"] == "png"
    assert (photo["width"], photo["height"]) == (3, 2)
    served = requests.get(photo["url"], timeout=30)
    assert served.status_code == 200
    assert served.content == PNG
    assert served.headers["content-type"] == "image/png"
    thumbnail = requests.get(photo["url"] + "/thumbnail", timeout=30)
    assert thumbnail.content == PNG  # no thumbnail of its own: the image itself


def test_an_empty_list_changes_nothing(portal: LocalPortal) -> None:
    before = metas(portal, "push-keyed")
    assert post(portal, "push-keyed", []).json() == {"status": "OK"}
    assert metas(portal, "push-keyed") == before


def test_concurrent_pushes_all_land(portal: LocalPortal) -> None:
    def push_some(worker: int) -> None:
        for n in range(5):
            answer = post(portal, "push-keyed", {"code": f"w{worker}-{n}", "count": n})
            assert answer.status_code == 200

    threads = [threading.Thread(target=push_some, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metas(portal, "push-keyed")["records_count"] == 2 + 20
    assert len(records(portal, "push-keyed", where='code like "w*"')) == 20


def test_a_restricted_dataset_takes_pushes_with_its_push_key(portal: LocalPortal) -> None:
    assert post(portal, "push-private", {"code": "p", "count": 1}).status_code == 200
    assert portal.catalog.datasets["push-private"].records_count == 2


# -- refusals ---------------------------------------------------------------------------------


def error_of(answer: requests.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"errorcode", "error"}
    assert body["errorcode"] == status
    return str(body["error"])


def test_unknown_fields_and_bad_values_are_listed_and_nothing_is_written(
    portal: LocalPortal,
) -> None:
    before = metas(portal, "push-types")
    body = [
        {"name": "ok", "n": 1},
        {"name": "bad", "n": "twelve", "colour": "red"},
        {"x": "NaNish", "day": "31/12/2024", "point": "north", "flag": "maybe"},
    ]
    message = error_of(post(portal, "push-types", body), 400)
    assert "record 1: unknown field(s) 'colour'" in message
    assert "record 1, field 'n' (int): \"twelve\" is not an integer" in message
    assert "record 2, field 'x' (double)" in message
    assert "record 2, field 'day' (date)" in message
    assert "record 2, field 'point' (geo_point_2d)" in message
    assert "record 2, field 'flag' (boolean)" in message
    assert "nothing was written" in message
    assert metas(portal, "push-types") == before
    assert records(portal, "push-types", where='name="ok"') == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("n", 1.5, "is not an integer"),
        ("n", 2**63, "out of the 64-bit integer range"),
        ("n", True, "is not an integer"),
        ("name", {"a": 1}, "is not text"),
        ("seen", 1714554000, "is not an ISO 8601 datetime"),
        ("shape", {"type": "Polygon", "coordinates": "x"}, "is not a GeoJSON geometry"),
        ("point", "95,2", "is not a point"),
        ("photo", "http://example.org/x.png", "is not a file object"),
        ("photo", {"content": "not base64!!", "content-type": "image/png"}, "not valid base64"),
        ("photo", {"id": "unknown"}, "a file field takes"),
    ],
)
def test_each_bad_value_is_named(
    portal: LocalPortal, field: str, value: Any, expected: str
) -> None:
    message = error_of(post(portal, "push-types", {field: value}), 400)
    assert f"field '{field}'" in message
    assert expected in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "The body is empty"),
        (b"{not json", "not valid JSON"),
        (b'{"x": NaN}', "NaN is not a JSON value"),
        (b'"text"', "The body is a JSON str"),
        (b"[1, 2]", "Record 0 is a JSON number"),
        ("é".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bodies_that_are_not_records(portal: LocalPortal, body: bytes, expected: str) -> None:
    assert expected in error_of(post(portal, "push-types", body), 400)


def test_more_than_5_mb_is_refused_with_advice_to_split(portal: LocalPortal) -> None:
    before = metas(portal, "push-types")["records_count"]
    big = [{"name": "x" * 1000} for _ in range(MAX_PUSH_BYTES // 1000 + 10)]
    message = error_of(post(portal, "push-types", big), 413)
    assert "limited to a 5 MB payload" in message and "Split" in message
    assert metas(portal, "push-types")["records_count"] == before
    just_under = json.dumps([{"name": "y" * (MAX_PUSH_BYTES - 100)}]).encode()
    assert len(just_under) <= MAX_PUSH_BYTES
    assert post(portal, "push-types", just_under).status_code == 200


def test_push_keys(portal: LocalPortal) -> None:
    missing = error_of(post(portal, "push-keyed", {"code": "k"}, key=None), 401)
    assert "pushkey parameter is missing" in missing
    wrong = error_of(post(portal, "push-keyed", {"code": "k"}, key="not-the-key"), 401)
    assert "not valid for dataset 'push-keyed'" in wrong
    assert "not-the-key" not in wrong
    closed = error_of(post(portal, "no-push", {"code": "k"}), 403)
    assert "no real-time push source" in closed
    unknown = error_of(post(portal, "nowhere", {"code": "k"}), 404)
    assert "'nowhere'" in unknown
    assert records(portal, "push-keyed", where='code="k"') == []


def test_bad_resource_ids_and_methods(portal: LocalPortal) -> None:
    answer = requests.post(
        f"{portal.url}{PUSH}/push-keyed/bad%20resource/push/", params={"pushkey": KEY}, timeout=30
    )
    assert "Resource" in error_of(answer, 404)
    answer = requests.get(push_url(portal, "push-keyed"), params={"pushkey": KEY}, timeout=30)
    assert "takes POST" in error_of(answer, 405)


def test_no_trailing_slash_works_too(portal: LocalPortal) -> None:
    answer = requests.post(
        f"{portal.url}{PUSH}/push-keyed/realtime/push",
        params={"pushkey": KEY},
        json={"code": "slashless"},
        timeout=30,
    )
    assert answer.json() == {"status": "OK"}


# -- deleting ---------------------------------------------------------------------------------


def test_delete_by_values(portal: LocalPortal) -> None:
    post(portal, "push-types", [{"name": "gone", "n": 1}, {"name": "kept", "n": 1}])
    answer = requests.post(
        push_url(portal, "push-types", "delete"),
        params={"pushkey": KEY},
        json=[{"name": "gone", "n": 1}, {"name": "kept", "n": 999}],
        timeout=30,
    )
    assert answer.json() == {"status": "OK"}
    assert records(portal, "push-types", where='name="gone"') == []
    assert len(records(portal, "push-types", where='name="kept"')) == 1


def test_delete_by_values_needs_only_the_id_fields(portal: LocalPortal) -> None:
    before = metas(portal, "push-keyed")
    answer = requests.post(
        push_url(portal, "push-keyed", "delete"),
        params={"pushkey": KEY},
        json={"code": "a"},
        timeout=30,
    )
    assert answer.json() == {"status": "OK"}
    assert [r["code"] for r in records(portal, "push-keyed")] == ["b"]
    after = metas(portal, "push-keyed")
    assert after["records_count"] == before["records_count"] - 1
    assert after["data_processed"] > before["data_processed"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_delete_by_record_id(portal: LocalPortal, method: str) -> None:
    (record,) = records(portal, "push-keyed", where='code="b"', include_links="true")
    url = f"{portal.url}{PUSH}/push-keyed/realtime/{record['_id']}/delete/"
    answer = requests.request(method, url, params={"pushkey": KEY}, timeout=30)
    assert answer.json() == {"status": "OK"}
    assert [r["code"] for r in records(portal, "push-keyed")] == ["a"]
    # Deleting it again is not an error (pushes are idempotent), and changes nothing.
    before = metas(portal, "push-keyed")
    assert requests.request(method, url, params={"pushkey": KEY}, timeout=30).status_code == 200
    assert metas(portal, "push-keyed") == before


def test_delete_needs_the_push_key(portal: LocalPortal) -> None:
    (record,) = records(portal, "push-keyed", where='code="b"', include_links="true")
    url = f"{portal.url}{PUSH}/push-keyed/realtime/{record['_id']}/delete/"
    error_of(requests.get(url, params={"pushkey": "wrong"}, timeout=30), 401)
    assert len(records(portal, "push-keyed")) == 2


# -- configuration ----------------------------------------------------------------------------


def test_the_sample_portal_opens_the_bike_stations_with_the_sample_key() -> None:
    with LocalPortal(sample=True, sample_records=20) as sample:
        url = push_url(sample, SAMPLE_PUSH_DATASET)
        answer = requests.post(
            url, params={"pushkey": SAMPLE_PUSH_KEY}, json={"stationcode": "S1"}, timeout=30
        )
        assert answer.json() == {"status": "OK"}
        assert len(records(sample, SAMPLE_PUSH_DATASET, where='stationcode="S1"')) == 1
        other = requests.post(
            push_url(sample, "sample-trees"),
            params={"pushkey": SAMPLE_PUSH_KEY},
            json={},
            timeout=30,
        )
        assert other.status_code == 403


def test_push_keys_given_replace_the_sample_key() -> None:
    portal = LocalPortal(sample=True, push_keys={SAMPLE_PUSH_DATASET: "mine"})
    assert portal.push_keys == {SAMPLE_PUSH_DATASET: "mine"}
    assert LocalPortal(sample=False).push_keys == {}


@pytest.mark.parametrize(
    ("push_keys", "error"),
    [("dataset=key", TypeError), ({"ds": ""}, ValueError), ({"": "key"}, ValueError)],
)
def test_bad_push_keys_are_refused(push_keys: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="push_keys"):
        LocalPortal(catalog=Catalog(), push_keys=push_keys)
