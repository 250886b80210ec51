"""Request parameters: page windows, types, enums, and their ODS error answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

OdsError = Callable[[requests.Response, int, str], dict[str, Any]]
BIG = "/catalog/datasets/tiny-big/records"
TYPES = "/catalog/datasets/tiny-types/records"
LIMIT_MESSAGE = (
    "Invalid value for limit API parameter: {} was found but -1 <= limit <= 100 is expected."
)


def get(http: requests.Session, api: str, path: str, **params: Any) -> requests.Response:
    return http.get(api + path, params=params)


def results(answer: requests.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["results"]
    return found


@pytest.mark.parametrize(("limit", "expected"), [(1, 1), (10, 10), (100, 100), (-1, 100)])
def test_limit_edges_accepted(http: requests.Session, api: str, limit: int, expected: int) -> None:
    answer = get(http, api, BIG, limit=limit, order_by="n")
    rows = results(answer)
    assert len(rows) == expected
    assert answer.json()["total_count"] == 20050
    assert [row["n"] for row in rows] == list(range(expected))


def test_default_limit_is_10(http: requests.Session, api: str) -> None:
    assert len(results(get(http, api, BIG))) == 10


def test_limit_zero_returns_only_the_count(http: requests.Session, api: str) -> None:
    answer = get(http, api, BIG, limit=0, where="n < 7")
    assert answer.json() == {"total_count": 7, "results": []}


@pytest.mark.parametrize("limit", [101, 1473, -2, 20000])
def test_limit_out_of_range(
    http: requests.Session, api: str, limit: int, ods_error: OdsError
) -> None:
    body = ods_error(get(http, api, BIG, limit=limit), 400, "InvalidRESTParameterError")
    assert body["message"] == LIMIT_MESSAGE.format(limit)


def test_catalog_has_the_same_limits(http: requests.Session, api: str, ods_error: OdsError) -> None:
    body = ods_error(
        get(http, api, "/catalog/datasets", limit=1473), 400, "InvalidRESTParameterError"
    )
    assert body["message"] == LIMIT_MESSAGE.format(1473)
    ods_error(
        get(http, api, "/catalog/datasets", offset=9901, limit=100),
        400,
        "InvalidRESTParameterError",
    )


def test_offset_window(http: requests.Session, api: str, ods_error: OdsError) -> None:
    rows = results(get(http, api, BIG, offset=9900, limit=100, order_by="n"))
    assert [row["n"] for row in rows] == list(range(9900, 10000))
    assert len(results(get(http, api, BIG, offset=9990, limit=10))) == 10
    body = ods_error(get(http, api, BIG, offset=9901, limit=100), 400, "InvalidRESTParameterError")
    assert body["message"].startswith("Invalid value for offset API parameter: 9901 was found")
    assert "offset + limit <= 10000" in body["message"]
    ods_error(get(http, api, BIG, offset=10000), 400, "InvalidRESTParameterError")
    ods_error(get(http, api, BIG, offset=-1), 400, "InvalidRESTParameterError")


def test_limit_minus_one_stops_at_the_window(http: requests.Session, api: str) -> None:
    rows = results(get(http, api, BIG, offset=9950, limit=-1, order_by="n"))
    assert [row["n"] for row in rows] == list(range(9950, 10000))
    assert get(http, api, BIG, offset=10000, limit=0).json()["results"] == []


def test_group_by_window(http: requests.Session, api: str, ods_error: OdsError) -> None:
    groups = results(get(http, api, BIG, group_by="n", limit=20000, select="count(*) as c"))
    assert len(groups) == 20000
    assert "total_count" not in get(http, api, BIG, group_by="bucket").json()
    body = ods_error(
        get(http, api, BIG, group_by="n", limit=20001), 400, "InvalidRESTParameterError"
    )
    assert body["message"] == (
        "Invalid value for limit API parameter: 20001 was found but "
        "-1 <= limit <= 20000 is expected."
    )
    ods_error(
        get(http, api, BIG, group_by="n", limit=100, offset=19901),
        400,
        "InvalidRESTParameterError",
    )
    assert len(results(get(http, api, BIG, group_by="n", limit=100, offset=19900))) == 100


def test_group_by_without_limit_returns_every_group(http: requests.Session, api: str) -> None:
    groups = results(get(http, api, BIG, group_by="bucket", select="count(*) as c"))
    assert len(groups) == 7
    assert sum(group["c"] for group in groups) == 20050


@pytest.mark.parametrize("value", ["abc", "1.5", "10e2", "", " ", "0x10", "١٠", "9" * 40])
def test_non_integer_limit_and_offset(
    http: requests.Session, api: str, value: str, ods_error: OdsError
) -> None:
    if not value.strip():  # an empty value means "not sent"
        assert get(http, api, BIG, limit=value).status_code == 200
        return
    for name in ("limit", "offset"):
        body = ods_error(get(http, api, BIG, **{name: value}), 400, "InvalidRESTParameterError")
        assert f"{name} API parameter" in body["message"]
        assert "integer" in body["message"]


@pytest.mark.parametrize("name", ["include_links", "include_app_metas"])
def test_boolean_parameters(
    http: requests.Session, api: str, name: str, ods_error: OdsError
) -> None:
    for value in ("true", "false", "True", "FALSE", "1", "0"):
        assert get(http, api, TYPES, **{name: value}).status_code == 200
    body = ods_error(get(http, api, TYPES, **{name: "maybe"}), 400, "InvalidRESTParameterError")
    assert name in body["message"] and "maybe" in body["message"]
    ods_error(
        get(http, api, "/catalog/datasets/tiny-types", **{name: "yes please"}),
        400,
        "InvalidRESTParameterError",
    )


def test_lang(http: requests.Session, api: str, ods_error: OdsError) -> None:
    for lang in ("en", "fr", "sv"):
        assert get(http, api, TYPES, lang=lang).status_code == 200
    body = ods_error(get(http, api, TYPES, lang="klingon"), 400, "InvalidRESTParameterError")
    assert "lang" in body["message"] and "klingon" in body["message"]
    ods_error(get(http, api, "/catalog/datasets", lang="EN"), 400, "InvalidRESTParameterError")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Europe/"])
def test_bad_timezone(http: requests.Session, api: str, zone: str, ods_error: OdsError) -> None:
    body = ods_error(get(http, api, TYPES, timezone=zone), 400, "InvalidRESTParameterError")
    assert "timezone" in body["message"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "US/Eastern", "Asia/Kolkata"])
def test_good_timezones(http: requests.Session, api: str, zone: str) -> None:
    assert get(http, api, TYPES, timezone=zone).status_code == 200


def test_where_is_repeatable_and_anded(http: requests.Session, api: str) -> None:
    url = api + BIG
    answer = http.get(url, params=[("where", "n >= 10"), ("where", "n < 15"), ("limit", 100)])
    assert answer.json()["total_count"] == 5
    assert sorted(row["n"] for row in results(answer)) == [10, 11, 12, 13, 14]


def test_select_and_order_by(http: requests.Session, api: str) -> None:
    rows = results(get(http, api, BIG, select="n, n * 2 as double_n", order_by="n desc", limit=2))
    assert rows == [{"n": 20049, "double_n": 40098}, {"n": 20048, "double_n": 40096}]


def test_bad_odsql_is_a_400_naming_the_clause(
    http: requests.Session, api: str, ods_error: OdsError
) -> None:
    body = ods_error(get(http, api, TYPES, select="invalid_function()"), 400, "ODSQLError")
    assert body["message"].startswith("ODSQL query is malformed:")
    assert body["message"].endswith("select.")
    body = ods_error(get(http, api, TYPES, where="no_such_field = 1"), 400, "ODSQLError")
    assert body["message"].endswith("where.")


def test_unknown_parameters_are_ignored(http: requests.Session, api: str) -> None:
    assert get(http, api, TYPES, pretty="true", foo="bar").status_code == 200


def test_include_links_on_records(
    http: requests.Session, api: str, validate: Callable[[Any, str], None]
) -> None:
    answer = get(http, api, BIG, include_links="true", limit=100, offset=200, order_by="n")
    body = answer.json()
    validate(body, "results-v2.1")
    links = {link["rel"]: link["href"] for link in body["_links"]}
    assert set(links) == {"self", "first", "last", "next"}
    assert "offset=300" in links["next"] and "limit=100" in links["next"]
    assert "offset=0" in links["first"]
    assert "offset=9900" in links["last"]  # the last page the window can reach
    following = http.get(links["next"]).json()
    assert following["results"][0]["n"] == 300


def test_include_links_adds_record_technical_keys(
    http: requests.Session, api: str, tiny_catalog: Any, validate: Callable[[Any, str], None]
) -> None:
    answer = get(http, api, TYPES, include_links="true", order_by="amount", select="name, amount")
    body = answer.json()
    validate(body, "results-v2.1")
    first = body["results"][0]
    assert list(first) == ["_links", "_id", "_timestamp", "_size", "name", "amount"]
    assert first["name"] == "Bêta été"
    assert first["_id"] == tiny_catalog.record_ids[1]
    assert first["_timestamp"] == "2024-03-01T08:30:00+00:00"
    assert first["_size"] > 0
    self_link = {link["rel"]: link["href"] for link in first["_links"]}["self"]
    assert http.get(self_link).json()["name"] == "Bêta été"
    plain = get(http, api, TYPES, order_by="amount", select="name, amount").json()["results"][0]
    assert plain == {"name": "Bêta été", "amount": -7}
    grouped = get(http, api, TYPES, include_links="true", select="count(*) as n").json()
    assert grouped["results"] == [{"n": 4}]
