"""Explore API v2.0 routes of the local portal, over real HTTP, against the sample datasets.

Shapes are compared with the real v2.0 captures of data.economie.gouv.fr (nasqueron, read in
place from ``../shared/ods-real-fixtures``): same top-level keys, same item keys, same link
rels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import get, ok

from odsframe.testing.portal import LocalPortal

V20 = "/api/v2/catalog"
V21 = "/api/explore/v2.1/catalog"
EVENTS = 300


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=EVENTS) as running:
        yield running


def real(real_fixtures: Path, name: str) -> Any:
    return json.loads((real_fixtures / f"nasqueron__datasources__{name}.json").read_text("utf-8"))


def rels(links: list[dict[str, str]]) -> list[str]:
    return [link["rel"] for link in links]


# -- records --------------------------------------------------------------------------------


def test_records_have_the_shape_of_the_real_capture(
    portal: LocalPortal, real_fixtures: Path
) -> None:
    captured = real(real_fixtures, "catalog_datasets_records")
    body = ok(portal, f"{V20}/datasets/sample-bike-stations/records", limit=3, offset=3)
    assert list(body) == list(captured)
    assert rels(body["links"]) == rels(captured["links"])
    item, real_item = body["records"][0], captured["records"][0]
    assert list(item) == list(real_item)
    assert rels(item["links"]) == rels(real_item["links"])
    assert list(item["record"]) == list(real_item["record"])
    assert body["total_count"] == 150 and len(body["records"]) == 3
    record = item["record"]
    assert re.fullmatch(r"[0-9a-f]{40}", record["id"])
    assert record["timestamp"] == "2024-06-01T08:00:00Z"
    assert record["size"] == len(
        json.dumps(record["fields"], ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert item["links"][0]["href"].endswith(f"/records/{record['id']}")


def test_page_links_repeat_the_normalised_query(portal: LocalPortal) -> None:
    body = ok(portal, f"{V20}/datasets/sample-bike-stations/records", limit=10, offset=20)
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert links["self"].endswith(
        "/records?limit=10&offset=20&timezone=UTC&include_app_metas=False"
    )
    assert "offset=0&" in links["first"]
    assert "offset=140&" in links["last"]  # total_count - limit, as the real v2.0 writes it
    assert "offset=30&" in links["next"]
    last = ok(portal, f"{V20}/datasets/sample-bike-stations/records", limit=10, offset=140)
    assert "next" not in rels(last["links"])
    app = ok(portal, f"{V20}/datasets/sample-bike-stations/records", include_app_metas="true")
    assert app["links"][0]["href"].endswith("include_app_metas=True")


def test_fields_hold_every_field_with_nulls_in_v21_encodings(portal: LocalPortal) -> None:
    body = ok(
        portal,
        f"{V20}/datasets/sample-events/records",
        where="free IS TRUE",
        limit=1,
        timezone="Europe/Paris",
    )
    fields = body["records"][0]["record"]["fields"]
    names = [f["name"] for f in ok(portal, f"{V21}/datasets/sample-events")["fields"]]
    assert list(fields) == names
    assert fields["price"] is None and fields["free"] is True
    assert set(fields["location"]) == {"lon", "lat"}
    assert fields["start"].endswith(("+01:00", "+02:00"))
    assert body["records"][0]["record"]["timestamp"] == "2024-06-01T10:00:00+02:00"


def test_record_ids_and_values_are_those_of_v21(portal: LocalPortal) -> None:
    params = {"order_by": "stationcode", "limit": 20}
    v20 = ok(portal, f"{V20}/datasets/sample-bike-stations/records", **params)
    v21 = ok(portal, f"{V21}/datasets/sample-bike-stations/records", include_links="true", **params)
    assert [r["record"]["id"] for r in v20["records"]] == [r["_id"] for r in v21["results"]]
    stripped = [{k: v for k, v in r.items() if not k.startswith("_")} for r in v21["results"]]
    assert [r["record"]["fields"] for r in v20["records"]] == stripped


def test_both_bases_answer_the_same(portal: LocalPortal) -> None:
    path = "/catalog/datasets/sample-districts/records"
    first = ok(portal, "/api/v2" + path, limit=5)
    second = ok(portal, "/api/explore/v2.0" + path, limit=5)
    assert [r["record"] for r in first["records"]] == [r["record"] for r in second["records"]]
    assert "/api/explore/v2.0/" in second["links"][0]["href"]
    assert "/api/v2/" in first["links"][0]["href"]


def test_trailing_slash_and_filters(portal: LocalPortal) -> None:
    params: dict[str, Any] = {
        "where": ['category = "Concert"', "duration_min >= 90"],
        "refine": 'arrondissement:"75011"',
        "select": "title, category, duration_min",
        "order_by": "duration_min DESC",
        "limit": 100,
    }
    body = ok(portal, f"{V20}/datasets/sample-events/records/", **params)
    v21 = ok(portal, f"{V21}/datasets/sample-events/records", **params)
    assert body["total_count"] == v21["total_count"] > 0
    assert [r["record"]["fields"] for r in body["records"]] == v21["results"]


def test_record_lookup(portal: LocalPortal) -> None:
    page = ok(portal, f"{V20}/datasets/sample-trees/records", limit=1)
    record_id = page["records"][0]["record"]["id"]
    body = ok(portal, f"{V20}/datasets/sample-trees/records/{record_id}")
    assert list(body) == ["links", "record"]
    assert body["record"] == page["records"][0]["record"]
    assert rels(body["links"]) == ["self", "datasets", "dataset"]
    selected = ok(portal, f"{V20}/datasets/sample-trees/records/{record_id}", select="idbase")
    assert list(selected["record"]["fields"]) == ["idbase"]
    missing = get(portal, f"{V20}/datasets/sample-trees/records/{'0' * 40}")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "NotFound"


# -- grouped answers ------------------------------------------------------------------------


def test_date_group_keys_are_epoch_milliseconds(portal: LocalPortal) -> None:
    params = {"group_by": "opened_on", "select": "opened_on, count(*) AS n", "limit": 500}
    v20 = ok(portal, f"{V20}/datasets/sample-bike-stations/records", **params)
    v21 = ok(portal, f"{V21}/datasets/sample-bike-stations/records", **params)
    assert list(v20) == ["links", "records"]  # no total_count when grouped
    expected = [
        int(datetime.fromisoformat(g["opened_on"]).replace(tzinfo=UTC).timestamp() * 1000)
        for g in v21["results"]
        if g["opened_on"] is not None
    ]
    assert [g["opened_on"] for g in v20["records"]] == expected
    assert all(isinstance(key, int) for key in expected)


def test_datetime_group_keys_and_timezone(portal: LocalPortal) -> None:
    params = {
        "group_by": "duedate",
        "select": "duedate, count(*) AS n",
        "limit": 3,
        "timezone": "Europe/Paris",
    }
    v20 = ok(portal, f"{V20}/datasets/sample-bike-stations/records", **params)
    v21 = ok(portal, f"{V21}/datasets/sample-bike-stations/records", **params)
    for old, new in zip(v20["records"], v21["results"], strict=True):
        assert old["duedate"] == int(datetime.fromisoformat(new["duedate"]).timestamp() * 1000)


def test_date_functions_give_strings_and_nulls_form_no_group(portal: LocalPortal) -> None:
    params = {"group_by": "year(start) AS y", "select": "y, count(*) AS n"}
    v20 = ok(portal, f"{V20}/datasets/sample-events/records", **params)
    v21 = ok(portal, f"{V21}/datasets/sample-events/records", **params)
    assert [g["y"] for g in v20["records"]] == [str(g["y"]) for g in v21["results"]]
    assert {g["y"] for g in v20["records"]} == {"2021", "2022", "2023", "2024"}
    nulls = {"group_by": "attendance", "select": "attendance, count(*) AS n", "limit": 1000}
    with_null = ok(portal, f"{V21}/datasets/sample-events/records", **nulls)["results"]
    without = ok(portal, f"{V20}/datasets/sample-events/records", **nulls)["records"]
    assert any(g["attendance"] is None for g in with_null)
    assert without == [g for g in with_null if g["attendance"] is not None]


# -- datasets and catalog -------------------------------------------------------------------


def test_dataset_has_the_shape_of_the_real_capture(
    portal: LocalPortal, real_fixtures: Path
) -> None:
    captured = real(real_fixtures, "catalog_datasets")["datasets"][0]
    body = ok(portal, f"{V20}/datasets/sample-events")
    assert list(body) == list(captured)
    assert list(body["dataset"]) == list(captured["dataset"])
    assert rels(body["links"]) == rels(captured["links"])  # self, datasets, records, ...
    real_field = real(real_fixtures, "catalog_datasets")["datasets"][1]["dataset"]["fields"][1]
    field = next(f for f in body["dataset"]["fields"] if f["name"] == "category")
    assert list(field) == list(real_field)
    assert field["annotations"] == {"facet": True, "disjunctive": True}
    unit = next(f for f in body["dataset"]["fields"] if f["name"] == "price")
    assert unit["annotations"]["unit"] == ["€"]
    assert "explore" not in body["dataset"]["metas"]


def test_dataset_with_attachments_links_them(portal: LocalPortal, real_fixtures: Path) -> None:
    body = ok(portal, f"{V20}/datasets/sample-bike-stations")
    assert "attachments" in rels(body["links"])
    listing = ok(portal, f"{V20}/datasets/sample-bike-stations/attachments")
    captured = real(real_fixtures, "catalog_dataset_fantoir_attachments")
    assert list(listing) == list(captured)
    assert set(listing["attachments"][0]) == set(captured["attachments"][0])
    assert set(listing["attachments"][0]["metas"]) == set(captured["attachments"][0]["metas"])
    download = requests.get(listing["attachments"][1]["href"], timeout=30)
    assert download.status_code == 200 and download.content.startswith(b"%PDF")


def test_dataset_select(portal: LocalPortal) -> None:
    body = ok(portal, f"{V20}/datasets/sample-events", select="title, records_count")
    assert body["dataset"] == {
        "title": "Événements culturels (échantillon)",
        "records_count": EVENTS,
    }


def test_catalog_has_the_shape_of_the_real_capture(
    portal: LocalPortal, real_fixtures: Path
) -> None:
    captured = real(real_fixtures, "catalog_datasets")
    body = ok(portal, f"{V20}/datasets", limit=3)
    assert list(body) == list(captured)
    assert rels(body["links"]) == rels(captured["links"])
    assert body["total_count"] == 5  # the restricted sample is not listed
    assert [list(item) for item in body["datasets"]] == [["links", "dataset"]] * 3
    ids = [item["dataset"]["dataset_id"] for item in body["datasets"]]
    assert ids == sorted(ids)
    filtered = ok(portal, f"{V20}/datasets", where='dataset_id = "sample-trees"')
    assert [d["dataset"]["dataset_id"] for d in filtered["datasets"]] == ["sample-trees"]


def test_facets_have_the_shape_of_the_real_captures(
    portal: LocalPortal, real_fixtures: Path
) -> None:
    catalog = ok(portal, f"{V20}/facets")
    captured = real(real_fixtures, "catalog_facets")
    assert list(catalog) == list(captured)
    assert rels(catalog["links"]) == rels(captured["links"])
    assert set(catalog["facets"][0]["facets"][0]) == set(captured["facets"][0]["facets"][0])
    dataset = ok(portal, f"{V20}/datasets/sample-events/facets", facet="category")
    empty = real(real_fixtures, "catalog_dataset_fantoir_facets")
    assert rels(dataset["links"]) == rels(empty["links"])
    assert [group["name"] for group in dataset["facets"]] == ["category"]
    assert sum(item["count"] for item in dataset["facets"][0]["facets"]) == EVENTS


def test_pretty_indents(portal: LocalPortal) -> None:
    answer = get(portal, f"{V20}/datasets/sample-districts/records", limit=1, pretty="true")
    assert answer.status_code == 200
    assert answer.text.startswith('{\n  "total_count": 20')
    compact = get(portal, f"{V20}/datasets/sample-districts/records", limit=1, pretty="false")
    assert compact.text.startswith('{"total_count":20')
    assert compact.json()["records"] == answer.json()["records"]


def test_index_routes(portal: LocalPortal) -> None:
    assert rels(ok(portal, "/api/v2")["links"]) == ["self", "catalog"]
    assert "datasets" in rels(ok(portal, "/api/v2/catalog")["links"])


# -- exports --------------------------------------------------------------------------------


def test_exports_list_and_csv_without_bom(portal: LocalPortal) -> None:
    listing = ok(portal, f"{V20}/datasets/sample-trees/exports")
    assert rels(listing["links"]) == ["self", "json", "geojson", "csv", "jsonl"]
    csv = get(portal, f"{V20}/datasets/sample-trees/exports/csv", limit=2)
    assert csv.status_code == 200 and csv.content.startswith(b"idbase;")
    assert len(csv.text.strip().splitlines()) == 3
    bom = get(portal, f"{V20}/datasets/sample-trees/exports/csv", limit=2, with_bom="true")
    assert bom.content.startswith(b"\xef\xbb\xbfidbase;")
    records = get(portal, f"{V20}/datasets/sample-trees/exports/json", where="idbase < 100010")
    assert [r["idbase"] for r in records.json()] == list(range(100001, 100010))


def test_exports_refuse_formats_v20_does_not_have(portal: LocalPortal) -> None:
    answer = get(portal, f"{V20}/datasets/sample-trees/exports/parquet")
    assert answer.status_code == 400
    body = answer.json()
    assert body["error_code"] == "InvalidRESTParameterError"
    assert "'parquet'" in body["message"] and "csv" in body["message"]


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/datasets/nope/records", {}, 404, "NotFound"),
        ("/datasets/nope", {}, 404, "NotFound"),
        ("/datasets/sample-budget-restricted/records", {}, 401, "Unauthorized"),
        ("/datasets/sample-events/records", {"limit": 101}, 400, "InvalidRESTParameterError"),
        (
            "/datasets/sample-events/records",
            {"offset": 9995, "limit": 10},
            400,
            "InvalidRESTParameterError",
        ),
        ("/datasets/sample-events/records", {"where": "nofield = 1"}, 400, "ODSQLError"),
        (
            "/datasets/sample-events/records",
            {"timezone": "Mars/Olympus"},
            400,
            "InvalidRESTParameterError",
        ),
        ("/datasets", {"order_by": "nothing("}, 400, "ODSQLError"),
    ],
)
def test_errors_have_the_v2_body(
    portal: LocalPortal, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    answer = get(portal, V20 + path, **params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code and body["message"]
