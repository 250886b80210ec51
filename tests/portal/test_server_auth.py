"""API keys, restricted datasets, rate-limit headers and the daily quota."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
import requests

from odsframe import _spec
from odsframe.testing.portal import LocalPortal
from odsframe.testing.server import UNLIMITED_DAILY_CALLS, CallCounter, next_utc_midnight

V21 = "/api/explore/v2.1"
PRIVATE = "tiny-private"
OdsError = Callable[[requests.Response, int, str], dict[str, Any]]


def catalog_ids(answer: requests.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {item["dataset_id"] for item in answer.json()["results"]}


def test_restricted_dataset_needs_a_key(
    http: requests.Session, api: str, ods_error: OdsError
) -> None:
    body = ods_error(http.get(f"{api}/catalog/datasets/{PRIVATE}"), 401, "Unauthorized")
    assert PRIVATE in body["message"]
    ods_error(http.get(f"{api}/catalog/datasets/{PRIVATE}/records"), 401, "Unauthorized")


@pytest.mark.parametrize("scheme", ["Apikey", "apikey", "APIKEY", "ApiKey"])
def test_key_in_authorization_header_any_case(
    http: requests.Session, api: str, scheme: str, api_key: str
) -> None:
    answer = http.get(
        f"{api}/catalog/datasets/{PRIVATE}", headers={"Authorization": f"{scheme} {api_key}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["dataset_id"] == PRIVATE
    assert answer.json()["visibility"] == "restricted"


def test_key_as_apikey_parameter(http: requests.Session, api: str, api_key: str) -> None:
    answer = http.get(f"{api}/catalog/datasets/{PRIVATE}", params={"apikey": api_key})
    assert answer.status_code == 200, answer.text
    assert answer.json()["dataset_id"] == PRIVATE


def test_wrong_key_is_refused_even_on_public_data(
    http: requests.Session, api: str, ods_error: OdsError
) -> None:
    body = ods_error(
        http.get(f"{api}/catalog/datasets/tiny-types", params={"apikey": "not-a-key"}),
        401,
        "Unauthorized",
    )
    assert "API key" in body["message"]
    ods_error(
        http.get(f"{api}/catalog/datasets", headers={"Authorization": "Apikey nope"}),
        401,
        "Unauthorized",
    )


def test_other_authorization_schemes_are_ignored(
    http: requests.Session, api: str, ods_error: OdsError
) -> None:
    answer = http.get(f"{api}/catalog/datasets/tiny-types", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 200
    ods_error(
        http.get(f"{api}/catalog/datasets/{PRIVATE}", headers={"Authorization": "Bearer x"}),
        401,
        "Unauthorized",
    )


def test_restricted_dataset_hidden_from_anonymous_catalog(
    http: requests.Session, api: str, api_key: str
) -> None:
    anonymous = http.get(f"{api}/catalog/datasets", params={"limit": 100})
    assert PRIVATE not in catalog_ids(anonymous)
    assert anonymous.json()["total_count"] == len(catalog_ids(anonymous))
    keyed = http.get(f"{api}/catalog/datasets", params={"limit": 100, "apikey": api_key})
    assert PRIVATE in catalog_ids(keyed)
    assert keyed.json()["total_count"] == anonymous.json()["total_count"] + 1


def test_rate_limit_headers_on_every_api_answer(http: requests.Session, api: str) -> None:
    before = next_utc_midnight(time.time())
    answers = [
        http.get(f"{api}/catalog/datasets"),
        http.get(f"{api}/catalog/datasets/unknown"),
        http.get(f"{api}/catalog/datasets/tiny-types/records", params={"limit": 1000}),
        http.get(f"{api}/no/such/endpoint"),
    ]
    after = next_utc_midnight(time.time())
    for answer in answers:
        assert int(answer.headers["X-RateLimit-Limit"]) == UNLIMITED_DAILY_CALLS
        assert 0 <= int(answer.headers["X-RateLimit-Remaining"]) < UNLIMITED_DAILY_CALLS
        assert int(answer.headers["X-RateLimit-Reset"]) in {before, after}
    remaining = [int(answer.headers["X-RateLimit-Remaining"]) for answer in answers]
    assert remaining == sorted(remaining, reverse=True)


def test_reset_is_next_utc_midnight() -> None:
    moment = datetime(2024, 7, 1, 23, 59, 59, tzinfo=UTC).timestamp()
    assert next_utc_midnight(moment) == int(datetime(2024, 7, 2, tzinfo=UTC).timestamp())
    midnight = datetime(2024, 12, 31, tzinfo=UTC).timestamp()
    assert next_utc_midnight(midnight) == int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture()
def quota_portal(tiny_catalog: Any, api_key: str) -> Iterator[LocalPortal]:
    with LocalPortal(catalog=tiny_catalog, api_keys=[api_key], quota=3) as running:
        yield running


def test_quota_answers_429_with_v1_body(
    quota_portal: LocalPortal, http: requests.Session, openapi: dict, api_key: str
) -> None:
    url = f"{quota_portal.url}{V21}/catalog/datasets/tiny-types"
    remaining = [int(http.get(url).headers["X-RateLimit-Remaining"]) for _ in range(3)]
    assert remaining == [2, 1, 0]
    refused = http.get(url)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json; charset=utf-8"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    body = refused.json()
    jsonschema.validate(
        body,
        openapi["components"]["responses"]["quota"]["content"]["application/json; charset=utf-8"][
            "schema"
        ],
    )
    assert body["errorcode"] == _spec.QUOTA_ANONYMOUS_LIMIT
    assert body["call_limit"] == 3
    assert body["limit_time_unit"] == "day"
    reset = datetime.fromisoformat(body["reset_time"].replace("Z", "+00:00"))
    assert int(reset.timestamp()) == int(refused.headers["X-RateLimit-Reset"])
    assert (reset.hour, reset.minute, reset.second) == (0, 0, 0)

    # Each key has its own quota; a keyed user over quota gets the domain code.
    keyed = {"Authorization": f"Apikey {api_key}"}
    assert [http.get(url, headers=keyed).status_code for _ in range(3)] == [200, 200, 200]
    over = http.get(url, headers=keyed)
    assert over.status_code == 429
    assert over.json()["errorcode"] == _spec.QUOTA_DOMAIN_LIMIT


def test_quota_does_not_count_the_home_page(quota_portal: LocalPortal) -> None:
    for _ in range(5):
        assert requests.get(quota_portal.url + "/").status_code == 200
    answer = requests.get(f"{quota_portal.url}{V21}/catalog/datasets")
    assert answer.status_code == 200
    assert answer.headers["X-RateLimit-Remaining"] == "2"
    assert "X-RateLimit-Limit" not in requests.get(quota_portal.url + "/").headers


def test_call_counter_resets_each_utc_day() -> None:
    now = [datetime(2024, 7, 1, 23, 59, tzinfo=UTC).timestamp()]
    counter = CallCounter(2, clock=lambda: now[0])
    assert [counter.hit("anonymous").exceeded for _ in range(3)] == [False, False, True]
    assert not counter.hit("some-key").exceeded
    now[0] += 120  # past midnight UTC
    status = counter.hit("anonymous")
    assert not status.exceeded and status.remaining == 1
    assert status.reset == int(datetime(2024, 7, 3, tzinfo=UTC).timestamp())


def test_call_counter_rejects_negative_quota() -> None:
    with pytest.raises(ValueError, match="quota"):
        CallCounter(-1)
