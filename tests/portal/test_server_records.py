"""Records answers over HTTP: every field type's encoding, timezones and DST, grouping."""

from __future__ import annotations

from typing import Any

import pytest
import requests

TYPES = "/catalog/datasets/tiny-types"


def records(http: requests.Session, api: str, **params: Any) -> list[dict[str, Any]]:
    answer = http.get(f"{api}{TYPES}/records", params={"order_by": "amount", **params})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["results"]
    return found


def by_name(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def test_every_type_encoded_as_v21(http: requests.Session, api: str, portal: Any) -> None:
    rows = by_name(records(http, api))
    alpha = rows["Alpha"]
    assert alpha["tags"] == ["a", "b"]
    assert alpha["amount"] == 1 and isinstance(alpha["amount"], int)
    assert alpha["ratio"] == 0.5
    assert alpha["flag"] is True
    assert alpha["day"] == "2024-03-05"
    assert alpha["month"] == "1988-01"
    assert alpha["year"] == "2014"
    assert alpha["seen_at"] == "2024-07-01T10:00:00+00:00"
    assert alpha["location"] == {"lon": 2.35, "lat": 48.85}
    assert list(alpha["location"]) == ["lon", "lat"]
    assert alpha["area"] == {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
        "properties": {},
    }
    photo = alpha["photo"]
    assert photo["id"] == "3f1c0ffee" and photo["filename"] == "photo.jpg"
    assert (
        photo["url"] == f"{portal.url}/api/explore/v2.1/catalog/datasets/tiny-types/files/3f1c0ffee"
    )
    assert alpha["extra"] == {"k": [1, 2], "z": None}

    beta = rows["Bêta été"]
    assert beta["ratio"] == 2.0 and beta["flag"] is False
    assert beta["seen_at"] == "2024-01-15T23:30:00.250000+00:00"
    assert beta["area"]["geometry"]["type"] == "Polygon"
    assert beta["photo"] is None
    assert beta["extra"] == [1, "two"]
    assert rows["Gamma"]["extra"] == "text"


def test_nulls_are_written_as_null(http: requests.Session, api: str) -> None:
    empty = by_name(records(http, api))["Empty"]
    assert set(empty) == {
        "name",
        "tags",
        "amount",
        "ratio",
        "flag",
        "day",
        "month",
        "year",
        "seen_at",
        "location",
        "area",
        "photo",
        "extra",
    }
    assert empty["amount"] == 0
    assert all(value is None for key, value in empty.items() if key not in ("name", "amount"))


def test_non_ascii_is_sent_as_utf8(http: requests.Session, api: str) -> None:
    answer = http.get(f"{api}{TYPES}/records", params={"where": "amount = -7"})
    assert "Bêta été".encode() in answer.content
    assert answer.json()["results"][0]["name"] == "Bêta été"


@pytest.mark.parametrize(
    ("zone", "summer", "winter"),
    [
        ("UTC", "2024-07-01T10:00:00+00:00", "2024-01-15T23:30:00.250000+00:00"),
        ("Europe/Paris", "2024-07-01T12:00:00+02:00", "2024-01-16T00:30:00.250000+01:00"),
        ("US/Eastern", "2024-07-01T06:00:00-04:00", "2024-01-15T18:30:00.250000-05:00"),
        ("Asia/Kolkata", "2024-07-01T15:30:00+05:30", "2024-01-16T05:00:00.250000+05:30"),
    ],
)
def test_datetimes_follow_the_request_timezone_and_dst(
    http: requests.Session, api: str, zone: str, summer: str, winter: str
) -> None:
    rows = by_name(records(http, api, timezone=zone))
    assert rows["Alpha"]["seen_at"] == summer
    assert rows["Bêta été"]["seen_at"] == winter
    # Dates are not instants: they do not move with the timezone.
    assert rows["Alpha"]["day"] == "2024-03-05"


def test_record_lookup_uses_the_timezone(
    http: requests.Session, api: str, tiny_catalog: Any
) -> None:
    record_id = tiny_catalog.record_ids[0]
    record = http.get(
        f"{api}{TYPES}/records/{record_id}", params={"timezone": "Europe/Paris"}
    ).json()
    assert record["seen_at"] == "2024-07-01T12:00:00+02:00"
    assert "_id" not in record


def test_group_by_answer_has_no_total_count(http: requests.Session, api: str) -> None:
    answer = http.get(
        f"{api}{TYPES}/records",
        params={"group_by": "flag", "select": "count(*)", "order_by": "flag"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == ["results"]
    counts = {group["flag"]: group["count(*)"] for group in body["results"]}
    assert counts == {False: 1, True: 2, None: 1}


def test_select_keeps_only_the_selected_keys(http: requests.Session, api: str) -> None:
    rows = records(http, api, select="name, amount * 10 as tenfold", where="amount > 0")
    assert rows == [{"name": "Alpha", "tenfold": 10}, {"name": "Gamma", "tenfold": 420}]


def test_catalog_select_puts_metadata_at_the_root(http: requests.Session, api: str) -> None:
    answer = http.get(
        f"{api}/catalog/datasets",
        params={"select": "dataset_id, title, fields", "order_by": "dataset_id"},
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [item["dataset_id"] for item in results] == ["tiny-big", "tiny-types"]
    assert results[1]["title"] == "Tiny types"
    assert set(results[1]) == {"dataset_id", "title", "fields"}
    assert results[1]["fields"][0]["name"] == "name"


def test_catalog_where_and_group_by(http: requests.Session, api: str, api_key: str) -> None:
    found = http.get(f"{api}/catalog/datasets", params={"where": 'dataset_id = "tiny-big"'})
    assert found.json()["total_count"] == 1
    assert found.json()["results"][0]["dataset_id"] == "tiny-big"
    grouped = http.get(
        f"{api}/catalog/datasets",
        params={"group_by": "visibility", "select": "count(*) as n", "apikey": api_key},
    ).json()
    assert "total_count" not in grouped
    assert {group["visibility"]: group["n"] for group in grouped["results"]} == {
        "domain": 2,
        "restricted": 1,
    }


def test_dataset_select(http: requests.Session, api: str) -> None:
    answer = http.get(f"{api}{TYPES}", params={"select": "title, records_count"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"title": "Tiny types", "records_count": 4}


def test_refine_and_exclude_are_repeatable(http: requests.Session, api: str) -> None:
    def names(params: list[tuple[str, str]]) -> list[str]:
        answer = http.get(f"{api}{TYPES}/records", params=[*params, ("order_by", "amount")])
        assert answer.status_code == 200, answer.text
        return [row["name"] for row in answer.json()["results"]]

    assert names([("refine", "name:Alpha")]) == ["Alpha"]
    assert names([("refine", 'name:"Bêta été"')]) == ["Bêta été"]
    assert names([("exclude", "name:Alpha"), ("exclude", "name:Gamma")]) == ["Bêta été", "Empty"]
    assert names([("refine", "name:Alpha"), ("exclude", "name:Alpha")]) == []


def test_geometry_functions_work_on_every_request(portal: Any) -> None:
    """The shapely UDFs are registered once per database, whatever cursor a request uses."""
    polygon = "POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))"
    url = f"{portal.url}/api/explore/v2.1/catalog/datasets/tiny-types/records"
    params = {"where": f"intersects(area, geom'{polygon}')", "limit": 0}
    counts = []
    for _ in range(4):
        response = requests.get(url, params=params)
        assert response.status_code == 200, response.text
        counts.append(response.json()["total_count"])
    assert counts[0] > 0
    assert len(set(counts)) == 1
