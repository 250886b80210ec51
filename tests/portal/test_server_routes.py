"""Every v2.1 route, with and without trailing slash, against the v2.1 OpenAPI schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

OdsError = Callable[[requests.Response, int, str], dict[str, Any]]
JSON = "application/json; charset=utf-8"


@pytest.mark.parametrize("slash", ["", "/"])
def test_catalog_datasets(
    http: requests.Session, api: str, slash: str, validate: Callable[[Any, str], None]
) -> None:
    answer = http.get(f"{api}/catalog/datasets{slash}", allow_redirects=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == JSON
    body = answer.json()
    validate(body, "results_dataset-v2.1")
    assert set(body) == {"total_count", "results"}
    assert body["total_count"] == 2
    assert {item["dataset_id"] for item in body["results"]} == {"tiny-types", "tiny-big"}


@pytest.mark.parametrize("slash", ["", "/"])
def test_dataset_object(
    http: requests.Session, api: str, slash: str, validate: Callable[[Any, str], None]
) -> None:
    answer = http.get(f"{api}/catalog/datasets/tiny-types{slash}", allow_redirects=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == JSON
    body = answer.json()
    validate(body, "dataset-v2.1")
    assert list(body) == [
        "visibility",
        "dataset_id",
        "dataset_uid",
        "has_records",
        "features",
        "attachments",
        "alternative_exports",
        "data_visible",
        "fields",
        "metas",
    ]
    assert body["dataset_id"] == "tiny-types"
    assert body["dataset_uid"] == "da_tiny01"
    assert body["visibility"] == "domain"
    assert body["has_records"] is True and body["data_visible"] is True
    assert body["features"][:3] == ["geo", "analyze", "timeserie"]
    assert body["attachments"] == [
        {
            "id": "notice_pdf",
            "title": "notice.pdf",
            "mimetype": "application/pdf",
            "url": "odsfile://notice.pdf",
        }
    ]
    assert [f["name"] for f in body["fields"]][:3] == ["name", "tags", "amount"]
    assert body["fields"][1] == {
        "name": "tags",
        "label": "Tags",
        "type": "text",
        "annotations": {"multivalued": [";"]},
        "description": None,
    }
    # Application metadata templates only on request.
    assert set(body["metas"]) == {"default"}
    assert body["metas"]["default"]["records_count"] == 4
    with_app = http.get(f"{api}/catalog/datasets/tiny-types", params={"include_app_metas": "true"})
    assert set(with_app.json()["metas"]) == {"default", "explore"}


def test_dataset_links_on_request(http: requests.Session, api: str) -> None:
    body = http.get(f"{api}/catalog/datasets/tiny-types", params={"include_links": "true"}).json()
    assert [link["rel"] for link in body["_links"]] == ["self", "catalog"]
    assert body["_links"][0]["href"].endswith("/api/explore/v2.1/catalog/datasets/tiny-types")
    assert "_links" not in http.get(f"{api}/catalog/datasets/tiny-types").json()


@pytest.mark.parametrize("slash", ["", "/"])
def test_records(
    http: requests.Session, api: str, slash: str, validate: Callable[[Any, str], None]
) -> None:
    answer = http.get(f"{api}/catalog/datasets/tiny-types/records{slash}", allow_redirects=False)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == JSON
    body = answer.json()
    validate(body, "results-v2.1")
    assert list(body) == ["total_count", "results"]
    assert body["total_count"] == 4
    assert len(body["results"]) == 4
    assert set(body["results"][0]) == {
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


@pytest.mark.parametrize("slash", ["", "/"])
def test_record_lookup(
    http: requests.Session,
    api: str,
    tiny_catalog: Any,
    slash: str,
    validate: Callable[[Any, str], None],
) -> None:
    first = tiny_catalog.record_ids[0]
    answer = http.get(
        f"{api}/catalog/datasets/tiny-types/records/{first}{slash}", allow_redirects=False
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    validate(body, "record-v2.1")
    assert body["name"] == "Alpha"
    assert body["amount"] == 1
    selected = http.get(
        f"{api}/catalog/datasets/tiny-types/records/{first}", params={"select": "name, amount"}
    )
    assert selected.json() == {"name": "Alpha", "amount": 1}


def test_record_lookup_unknown_record(
    http: requests.Session, api: str, ods_error: OdsError
) -> None:
    body = ods_error(
        http.get(f"{api}/catalog/datasets/tiny-types/records/{'0' * 40}"), 404, "NotFound"
    )
    assert "0" * 40 in body["message"]
    # Quotes in the id are data, not SQL.
    ods_error(http.get(f"{api}/catalog/datasets/tiny-types/records/x' OR '1'='1"), 404, "NotFound")


@pytest.mark.parametrize(
    "path",
    [
        "/catalog/datasets/nope",
        "/catalog/datasets/nope/",
        "/catalog/datasets/nope/records",
        "/catalog/datasets/nope/records/",
        "/catalog/datasets/nope/records/abc",
    ],
)
def test_unknown_dataset(http: requests.Session, api: str, path: str, ods_error: OdsError) -> None:
    body = ods_error(http.get(api + path), 404, "NotFound")
    assert "nope" in body["message"]


def test_unknown_path_and_method(http: requests.Session, api: str, ods_error: OdsError) -> None:
    ods_error(http.get(f"{api}/catalog/nothing/here"), 404, "NotFound")
    ods_error(http.get(f"{api}/catalog/datasets/tiny-types/records/a/b"), 404, "NotFound")
    ods_error(http.post(f"{api}/catalog/datasets"), 405, "MethodNotAllowed")
    ods_error(http.delete(f"{api}/catalog/datasets/tiny-types"), 405, "MethodNotAllowed")


def test_head_is_answered(http: requests.Session, api: str) -> None:
    answer = http.head(f"{api}/catalog/datasets")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == JSON


@pytest.mark.parametrize("slash", ["", "/"])
def test_api_indexes(http: requests.Session, api: str, slash: str) -> None:
    body = http.get(api + slash, allow_redirects=False).json()
    rels = {link["rel"]: link["href"] for link in body["_links"]}
    assert rels["catalog"].endswith("/api/explore/v2.1/catalog")
    catalog = http.get(rels["catalog"] + slash, allow_redirects=False).json()
    datasets = {link["rel"]: link["href"] for link in catalog["_links"]}["datasets"]
    assert http.get(datasets).status_code == 200


def test_home_page(http: requests.Session, portal: Any) -> None:
    as_json = http.get(portal.url + "/")
    assert as_json.status_code == 200
    body = as_json.json()
    assert body["explore_v2.1"] == f"{portal.url}/api/explore/v2.1/"
    assert body["datasets"] == ["tiny-big", "tiny-types"]
    as_html = http.get(portal.url + "/", headers={"Accept": "text/html"})
    assert as_html.headers["content-type"].startswith("text/html")
    assert "tiny-types/records" in as_html.text
    assert "tiny-private" not in as_html.text


def test_catalog_links_on_request(
    http: requests.Session, api: str, validate: Callable[[Any, str], None]
) -> None:
    body = http.get(f"{api}/catalog/datasets", params={"include_links": "true", "limit": 1}).json()
    validate(body, "results_dataset-v2.1")
    assert {link["rel"] for link in body["_links"]} == {"self", "first", "last", "next"}
    [item] = body["results"]
    assert [link["rel"] for link in item["_links"]] == ["self", "catalog"]
    following = http.get({link["rel"]: link["href"] for link in body["_links"]}["next"]).json()
    assert following["results"][0]["dataset_id"] != item["dataset_id"]
