"""The HTTP layer survives a portal that fails mid-way (fault injection over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from odsframe._http import HTTPClient, RetryPolicy
from odsframe.testing import LocalPortal

RECORDS = "/api/explore/v2.1/catalog/datasets/sample-bike-stations/records"


@pytest.fixture(scope="module")
def flaky_portal() -> Iterator[LocalPortal]:
    # The first two records requests are cut off in the middle of their body.
    with LocalPortal(sample=True, sample_records=100, faults=f"path={RECORDS},drop=first:2") as p:
        yield p


def test_a_body_cut_mid_way_is_retried(flaky_portal: LocalPortal) -> None:
    client = HTTPClient(retry=RetryPolicy(attempts=4, backoff=0.01))
    payload = client.get_json(flaky_portal.url + RECORDS, {"limit": 100})
    assert payload["total_count"] == 150
    assert len(payload["results"]) == 100
    assert len(flaky_portal.faults.requests) >= 3
