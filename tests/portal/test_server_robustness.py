"""Malformed requests never give a 500; unexpected errors do, with an ODS body; concurrency."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odsframe.testing.portal import LocalPortal
from odsframe.testing.server import ApiRequest, ApiRoute

PARAMETERS = [
    "select",
    "where",
    "group_by",
    "order_by",
    "limit",
    "offset",
    "refine",
    "exclude",
    "lang",
    "timezone",
    "include_links",
    "include_app_metas",
]
TOKENS = [
    "n",
    "bucket",
    "name",
    "tags",
    "seen_at",
    "location",
    "area",
    "count(*)",
    "sum(n)",
    "avg(",
    "(",
    ")",
    "'",
    '"',
    "`",
    "\\",
    "%",
    "and",
    "or",
    "not",
    "=",
    "!=",
    ">",
    "<=",
    "like",
    "in",
    "[",
    "]",
    ",",
    " as ",
    "*",
    "/",
    "+",
    "0",
    "-1",
    "1.5",
    "1e400",
    "99999999999999999999999",
    "date'2020'",
    "date'bad'",
    "geom'POINT(1 2)'",
    "geom'nope'",
    "distance(location, geom'POINT(2 48)', 1km)",
    "within_distance(",
    "search(",
    "suggest(",
    "startswith(",
    "#null",
    "null",
    "true",
    "range(n, 10)",
    "range(",
    "geo_cluster(location, 3)",
    "geo_cluster(location, 99)",
    "year(seen_at)",
    "date_format(seen_at, 'YYYY')",
    "now()",
    "ifnull(",
    "percentile(n, 150)",
    "median(n)",
    "envelope(location)",
    "bbox(area)",
    "in_bbox(location, 1, 2, 3, 4)",
    "random(1)",
    "desc",
    "asc",
    ":",
    "name:Alpha",
    " ",
    "\x00",
    "é",
    "💥",
]

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
odsql = st.lists(st.sampled_from(TOKENS), max_size=8).map(" ".join)
value = st.one_of(text, odsql, st.integers(-(10**6), 10**6).map(str))
pairs = st.lists(st.tuples(st.sampled_from([*PARAMETERS, "apikey", "x"]), value), max_size=6)
paths = st.sampled_from(
    [
        "/catalog/datasets",
        "/catalog/datasets/",
        "/catalog/datasets/tiny-types",
        "/catalog/datasets/tiny-types/records",
        "/catalog/datasets/tiny-big/records/",
        "/catalog/datasets/tiny-types/records/abc",
        "/catalog/datasets/tiny-private/records",
    ]
)


def assert_ods_answer(answer: requests.Response) -> None:
    assert answer.status_code < 500, (answer.request.url, answer.text)
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    body = answer.json()
    if answer.status_code >= 400:
        assert set(body) == {"error_code", "message"}, body
    else:
        assert isinstance(body, dict)


@settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=paths, params=pairs)
def test_random_parameters_never_fail_the_server(
    http: requests.Session, api: str, path: str, params: list[tuple[str, str]]
) -> None:
    assert_ods_answer(http.get(api + path, params=params))


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(path=paths, raw=st.binary(max_size=60))
def test_raw_query_bytes_never_fail_the_server(
    http: requests.Session, api: str, path: str, raw: bytes
) -> None:
    """Arbitrary bytes, percent-encoded, including invalid UTF-8."""
    for name in ("where", "limit", "timezone", "select"):
        assert_ods_answer(http.get(f"{api}{path}?{name}={quote(raw)}"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("where", "(" * 1500 + "n" + ")" * 1500),  # deeper than Python's recursion limit
        ("where", "not " * 1200 + "n > 1"),
        ("select", "-" * 2500 + "1"),
        ("order_by", "\x1e³#P"),  # a superscript digit: str.isdigit() but not a number
        ("where", "n > ²"),
    ],
)
def test_odd_odsql_is_a_400(http: requests.Session, api: str, name: str, value: str) -> None:
    answer = http.get(f"{api}/catalog/datasets/tiny-big/records", params={name: value})
    assert_ods_answer(answer)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "ODSQLError"
    assert answer.json()["message"].endswith(f"{name}.")


@pytest.mark.parametrize("tail", ["%00", "%FF%FE", "a%27b", "x" * 3000, "%2E%2E"])
def test_odd_record_and_dataset_ids_are_404(http: requests.Session, api: str, tail: str) -> None:
    for path in (f"/catalog/datasets/tiny-types/records/{tail}", f"/catalog/datasets/{tail}"):
        answer = http.get(api + path)
        assert_ods_answer(answer)
        assert answer.status_code == 404


def test_broken_query_strings(http: requests.Session, api: str) -> None:
    for query in ["where=%", "limit=%FF", "&&&", "=1", "where", "limit", "%00=%00", "a=b=c"]:
        assert_ods_answer(http.get(f"{api}/catalog/datasets/tiny-types/records?{query}"))


def test_concurrent_clients_get_their_own_answers(api: str, tiny_catalog: Any) -> None:
    """Eight threads at once, each checking that its answers match its own requests."""

    def client(worker: int) -> int:
        checked = 0
        with requests.Session() as session:
            for step in range(12):
                n = worker * 100 + step
                answer = session.get(
                    f"{api}/catalog/datasets/tiny-big/records", params={"where": f"n = {n}"}
                )
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"total_count": 1, "results": [{"n": n, "bucket": n % 7}]}
                record_id = tiny_catalog.record_ids[step % 4]
                lookup = session.get(f"{api}/catalog/datasets/tiny-types/records/{record_id}")
                assert lookup.status_code == 200, lookup.text
                assert lookup.json()["name"] == tiny_catalog.record_names[step % 4]
                listing = session.get(f"{api}/catalog/datasets")
                assert listing.json()["total_count"] == 2
                checked += 3
        return checked

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(client, range(8))) == 8 * 12 * 3


def _explode(api_request: ApiRequest) -> Any:
    raise RuntimeError("boom: a bug in a handler")


@pytest.fixture()
def fragile_portal(tiny_catalog: Any) -> Iterator[LocalPortal]:
    route = ApiRoute("/api/explore/v2.1/catalog/explode", _explode)
    with LocalPortal(catalog=tiny_catalog, extra_routes=[route]) as running:
        yield running


def test_unexpected_error_is_a_logged_500_and_the_server_goes_on(
    fragile_portal: LocalPortal, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="odsframe.testing.server"):
        answer = requests.get(f"{fragile_portal.url}/api/explore/v2.1/catalog/explode")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.json()["error_code"] == "InternalServerError"
    assert "boom" not in answer.json()["message"]
    assert any(record.exc_info and "boom" in str(record.exc_info[1]) for record in caplog.records)
    after = requests.get(f"{fragile_portal.url}/api/explore/v2.1/catalog/datasets")
    assert after.status_code == 200
