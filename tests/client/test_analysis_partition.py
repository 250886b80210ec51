"""More groups than one grouped request returns (20 000): never cut, read in full.

``sample-events`` with 25 000 records grouped by its unique ``event_id`` has 25 000 groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from helpers import portal_frame

from odsframe.analysis import read_ods_aggregate
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"
RECORDS = 25_000


@pytest.fixture(scope="module")
def big_portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=RECORDS) as portal:
        yield portal


@pytest.fixture(scope="module")
def prices(big_portal: LocalPortal) -> pd.Series:
    """``price`` by ``event_id``, from the portal's own table."""
    frame = portal_frame(big_portal.catalog, EVENTS, "SELECT event_id, price FROM {table}")
    return frame.set_index("event_id")["price"]


def read_events(portal: LocalPortal, **options: Any) -> pd.DataFrame:
    """Every event's count and top price, one group per ``event_id`` (25 000 groups)."""
    agg = {"n": "count(*)", "top_price": ("price", "max")}
    return read_ods_aggregate(portal.url, EVENTS, by="event_id", agg=agg, **options)


def check_every_event(frame: pd.DataFrame, prices: pd.Series) -> None:
    assert len(frame) == RECORDS
    assert frame["event_id"].is_unique
    assert set(frame["event_id"]) == set(prices.index)
    assert (frame["n"] == 1).all()
    by_id = frame.set_index("event_id")["top_price"].astype("float64")
    pd.testing.assert_series_equal(
        by_id.sort_index(),
        prices.sort_index().rename("top_price"),
        check_names=False,
        check_index_type=False,  # the frame's keys are "string", the reference's "str"
    )


def test_keyset_parts_read_every_group(big_portal: LocalPortal, prices: pd.Series) -> None:
    frame = read_events(big_portal, partition="where")
    check_every_event(frame, prices)
    assert frame["event_id"].is_monotonic_increasing
    ods = frame.attrs["ods"]
    assert ods["route"] == "where"
    assert ods["requests"] == 2  # 20 000 groups, then the 5 000 after the last key
    assert ods["groups"] == RECORDS


def test_auto_reads_every_group(big_portal: LocalPortal, prices: pd.Series) -> None:
    frame = read_events(big_portal)
    check_every_event(frame, prices)
    assert frame.attrs["ods"]["route"] in ("export", "where")


def test_an_order_and_a_limit_past_one_answer(big_portal: LocalPortal, prices: pd.Series) -> None:
    frame = read_events(
        big_portal,
        order_by=["-top_price", "event_id"],
        limit=21_000,
        partition="where",
    )
    expected = (
        prices.rename("top_price")
        .reset_index()
        .sort_values(["top_price", "event_id"], ascending=[False, True], na_position="last")
        .head(21_000)
    )
    assert len(frame) == 21_000
    assert frame["event_id"].tolist() == expected["event_id"].tolist()


def test_the_grouped_export_reads_every_group(big_portal: LocalPortal, prices: pd.Series) -> None:
    frame = read_events(big_portal, partition="export")
    check_every_event(frame, prices)
    ods = frame.attrs["ods"]
    assert ods["route"] == "export"
    assert ods["requests"] == 3  # the full answer, the list of formats, the export
