"""ENUM twin columns: a faster path for text equality filters that never changes an answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from odsframe.testing.portal import LocalPortal
from odsframe.testing.routes_push import SAMPLE_PUSH_DATASET, SAMPLE_PUSH_KEY

API = "/api/explore/v2.1/catalog/datasets"


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=3_000) as p:
        yield p


def table(portal: LocalPortal, dataset: str) -> pd.DataFrame:
    ds = portal.catalog.datasets[dataset]
    return portal.catalog.con.sql(f'SELECT * FROM "{ds.table}"').to_arrow_table().to_pandas()


def total(portal: LocalPortal, dataset: str, **params: Any) -> int:
    response = requests.get(f"{portal.url}{API}/{dataset}/records", params={**params, "limit": 0})
    assert response.status_code == 200, response.text
    return int(response.json()["total_count"])


def test_repeated_text_fields_get_a_twin_and_unique_ones_do_not(portal: LocalPortal) -> None:
    events = portal.catalog.datasets["sample-events"]
    assert {"category", "arrondissement"} <= events.enum_fields
    assert "event_id" not in events.enum_fields  # unique values: no gain
    assert "tags" not in events.enum_fields  # multivalued


@pytest.mark.parametrize("value", ["Concert", "Danse", "Nope", "concert"])
def test_equality_through_the_twin_equals_pandas(portal: LocalPortal, value: str) -> None:
    frame = table(portal, "sample-events")
    expected = int((frame["category"] == value).sum())
    assert total(portal, "sample-events", where=f'category = "{value}"') == expected
    assert total(portal, "sample-events", refine=f"category:{value}") == expected


def test_in_lists_ranges_and_negations(portal: LocalPortal) -> None:
    frame = table(portal, "sample-events")
    listed = frame["category"].isin(["Concert", "Danse"])
    assert total(portal, "sample-events", where='category IN ("Concert", "Danse", "Nope")') == int(
        listed.sum()
    )
    assert total(portal, "sample-events", where='NOT category = "Concert"') == int(
        (frame["category"].notna() & (frame["category"] != "Concert")).sum()
    )
    # Ordering comparisons stay string comparisons.
    assert total(portal, "sample-events", where='category > "D"') == int(
        (frame["category"] > "D").sum()
    )


def test_a_push_keeps_equality_filters_exact(portal: LocalPortal) -> None:
    dataset = SAMPLE_PUSH_DATASET
    assert "commune" in portal.catalog.datasets[dataset].enum_fields
    before = total(portal, dataset, where='commune = "Zanzibar"')
    assert before == 0
    record = {"stationcode": "99999", "name": "Test", "commune": "Zanzibar", "capacity": 3}
    url = f"{portal.url}/api/push/1.0/{dataset}/realtime/push/"
    response = requests.post(url, params={"pushkey": SAMPLE_PUSH_KEY}, json=record)
    assert response.status_code == 200, response.text
    assert total(portal, dataset, where='commune = "Zanzibar"') == 1
    assert not portal.catalog.datasets[dataset].enum_fields


def test_full_text_ignores_accents_and_case_over_http(portal: LocalPortal) -> None:
    theatre = total(portal, "sample-events", where='category = "Théâtre"')
    assert theatre > 0
    for spelling in ('"theatre"', '"THÉÂTRE"', '"Théâtre"', "search(category, 'theatr')"):
        assert total(portal, "sample-events", where=spelling) >= theatre, spelling
    assert total(portal, "sample-events", where='"theatre" AND category = "Théâtre"') == theatre
