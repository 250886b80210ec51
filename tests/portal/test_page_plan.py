"""The two-step records page (sort the keys, then read the page's rows by ``__rowid``).

Every page it gives must be exactly the page the one-statement plan (``compiled.sql``) gives:
same rows, same order, same columns, same total, for orders on fields, on select aliases, on
expressions and on ``random(seed)``, with and without filters, and past the last record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from odsframe.testing import server
from odsframe.testing.engine import compile_query
from odsframe.testing.portal import LocalPortal

API = "/api/explore/v2.1/catalog/datasets"

CASES: list[dict[str, Any]] = [
    {"limit": 20},
    {"limit": 7, "offset": 13},
    {"where": ['category = "Concert" AND price > 20'], "order_by": "start DESC", "limit": 20},
    {"where": ['"jazz"'], "order_by": "price, start DESC", "limit": 15, "offset": 3},
    {"order_by": "free DESC, attendance", "limit": 100, "offset": 2900},
    {"select": "title, price * 2 AS double_price", "order_by": "double_price DESC", "limit": 9},
    {"select": "exclude(tags), exclude(location)", "order_by": "venue", "limit": 11},
    {"order_by": "random(7)", "limit": 25},
    {
        "select": "event_id, distance(location, geom'POINT(2.35 48.85)') AS d",
        "where": ["within_distance(location, geom'POINT(2.35 48.85)', 3km)"],
        "order_by": "d",
        "limit": 12,
    },
    {
        "where": ["intersects(location, geom'POLYGON((2.3 48.8, 2.4 48.8, 2.4 48.9, 2.3 48.8))')"],
        "limit": 9,
    },
    {"order_by": "price + attendance DESC", "limit": 10},
    {"where": ["price > 1000000"], "limit": 10},  # no match: an empty page with its columns
    {"limit": 10, "offset": 5000},  # past the end
]


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=3_000) as p:
        yield p


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_two_step_page_equals_the_one_statement_page(
    portal: LocalPortal, case: dict[str, Any]
) -> None:
    dataset = portal.catalog.datasets["sample-events"]
    compiled = compile_query(dataset, **case)
    assert compiled.keys_sql is not None and compiled.rows_sql is not None
    cursor = portal.catalog.con.cursor()
    try:
        total, page = server.fetch_page(cursor, compiled)
        expected = server.fetch_arrow(cursor, compiled)
        expected_total = server.fetch_count(cursor, compiled)
    finally:
        cursor.close()
    assert total == expected_total
    assert page.schema.names == expected.schema.names
    assert page.to_pylist() == expected.to_pylist()


def test_unlimited_queries_keep_the_one_statement_plan(portal: LocalPortal) -> None:
    dataset = portal.catalog.datasets["sample-events"]
    for limit in (None, -1, 0):
        assert compile_query(dataset, limit=limit).keys_sql is None
    grouped = compile_query(dataset, select="count(*) AS n", group_by="category", limit=10)
    assert grouped.keys_sql is None


def test_pages_over_http_tile_the_result_without_gaps_or_repeats(portal: LocalPortal) -> None:
    url = f"{portal.url}{API}/sample-events/records"
    base = {"where": "price > 10", "order_by": "category, price DESC", "select": "event_id"}
    whole = requests.get(url, params={**base, "limit": 100}).json()
    total = whole["total_count"]
    ids: list[str] = []
    for offset in range(0, 100, 25):
        answer = requests.get(url, params={**base, "limit": 25, "offset": offset}).json()
        assert answer["total_count"] == total
        ids += [r["event_id"] for r in answer["results"]]
    assert ids == [r["event_id"] for r in whole["results"]]


def test_pushed_records_are_found_by_the_page_plan_after_writes(portal: LocalPortal) -> None:
    """The ``__rowid`` index follows inserts and deletes (push API, ENUM twins dropped)."""
    from odsframe.testing.routes_push import SAMPLE_PUSH_DATASET, SAMPLE_PUSH_KEY

    push = portal.catalog.datasets[SAMPLE_PUSH_DATASET]
    url = f"{portal.url}{API}/{SAMPLE_PUSH_DATASET}/records"
    before = requests.get(url, params={"limit": 0}).json()["total_count"]
    fields = [f.name for f in push.fields]
    record = {name: None for name in fields}
    text_field = next(f.name for f in push.fields if f.type == "text")
    record[text_field] = "page-plan-probe"
    response = requests.post(
        f"{portal.url}/api/push/1.0/{SAMPLE_PUSH_DATASET}/realtime/push/",
        params={"pushkey": SAMPLE_PUSH_KEY},
        json=record,
    )
    assert response.status_code == 200, response.text
    answer = requests.get(
        url, params={"where": f'{text_field} = "page-plan-probe"', "limit": 5}
    ).json()
    assert answer["total_count"] == 1
    assert answer["results"][0][text_field] == "page-plan-probe"
    after = requests.get(url, params={"limit": 0}).json()["total_count"]
    assert after == before + 1
    last = requests.get(url, params={"limit": 1, "offset": after - 1}).json()["results"]
    assert last and last[0][text_field] == "page-plan-probe"


def test_an_evaluation_error_in_a_page_is_an_odsql_error_and_the_cursor_recovers(
    portal: LocalPortal,
) -> None:
    url = f"{portal.url}{API}/sample-events/records"
    overflow = {"select": "attendance * 9223372036854775807 AS big", "order_by": "start"}
    bad = requests.get(url, params={**overflow, "limit": 5})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error_code"] == "ODSQLError"
    good = requests.get(url, params={"order_by": "start", "limit": 5})
    assert good.status_code == 200 and len(good.json()["results"]) == 5


def test_pages_stay_whole_while_records_are_replaced(portal: LocalPortal) -> None:
    """A push replacing records between the two statements of a page takes no row away."""
    import threading

    import odsframe
    from odsframe.testing.routes_push import SAMPLE_PUSH_DATASET, SAMPLE_PUSH_KEY

    first = odsframe.read_ods(portal.url, SAMPLE_PUSH_DATASET, limit=40, cache=False)
    stop = threading.Event()
    pushes = 0

    def pusher() -> None:  # the same records again: each push deletes and re-appends them
        nonlocal pushes
        while not stop.is_set():
            odsframe.push(
                portal.url, SAMPLE_PUSH_DATASET, "realtime", first, pushkey=SAMPLE_PUSH_KEY
            )
            pushes += 1

    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        url = f"{portal.url}{API}/{SAMPLE_PUSH_DATASET}/records"
        for _ in range(150):
            params = {"limit": 100, "select": "stationcode", "order_by": "stationcode"}
            answer = requests.get(url, params=params).json()
            assert len(answer["results"]) == min(100, answer["total_count"])
            assert len({r["stationcode"] for r in answer["results"]}) == len(answer["results"])
    finally:
        stop.set()
        thread.join()
    assert pushes > 5
