"""Every real v2.1 records and catalog capture is matched in shape by the local portal.

Each capture's records become a dataset (a JSON export in a temporary folder); the portal's
answer to the same kind of request must give back the same records: same keys in the same
order, same values and the same encoding per type (geo points as ``{lon, lat}``, partial
dates, doubles, nulls).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"

#: Real v2.1 records captures: file -> a key field that orders records uniquely.
RECORDS_CAPTURES = {
    "malkreide__sbb-opendata-mcp__stations_search.json": "number",
    "malkreide__sbb-opendata-mcp__stations_expired.json": "number",
    "malkreide__sbb-opendata-mcp__passenger_frequency.json": "code_codice",
}
CATALOG_CAPTURE = "malkreide__sbb-opendata-mcp__catalog.json"


def dataset_id(capture: str) -> str:
    return capture.split("__")[-1].removesuffix(".json").replace("_", "-")


@pytest.fixture(scope="module")
def capture_portal(
    real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPortal]:
    folder = tmp_path_factory.mktemp("real-captures")
    for capture in RECORDS_CAPTURES:
        results = json.loads((real_fixtures / capture).read_text(encoding="utf-8"))["results"]
        (folder / f"{dataset_id(capture)}.json").write_text(json.dumps(results), encoding="utf-8")
    with LocalPortal(folder) as portal:
        yield portal


@pytest.mark.parametrize("capture", sorted(RECORDS_CAPTURES))
def test_records_answer_matches_the_capture(
    capture_portal: LocalPortal, real_fixtures: Path, capture: str
) -> None:
    real = json.loads((real_fixtures / capture).read_text(encoding="utf-8"))
    key = RECORDS_CAPTURES[capture]
    answer = requests.get(
        f"{capture_portal.url}{V21}/catalog/datasets/{dataset_id(capture)}/records",
        params={"limit": 100, "order_by": key},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert list(body) == ["total_count", "results"]
    assert body["total_count"] == len(real["results"])
    expected = sorted(real["results"], key=lambda record: record[key])
    for served, original in zip(body["results"], expected, strict=True):
        assert list(served) == list(original)
        assert served == original
        for name, value in original.items():
            assert type(served[name]) is type(value), name


def test_catalog_answer_has_the_capture_shape(
    capture_portal: LocalPortal, real_fixtures: Path
) -> None:
    real = json.loads((real_fixtures / CATALOG_CAPTURE).read_text(encoding="utf-8"))
    answer = requests.get(
        f"{capture_portal.url}{V21}/catalog/datasets",
        params={"limit": 100, "order_by": "title asc"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body) == list(real)
    assert body["total_count"] == len(RECORDS_CAPTURES)
    titles = [item["metas"]["default"]["title"] for item in body["results"]]
    assert titles == sorted(titles)
    for served in body["results"]:
        # The capture was trimmed to a few keys per entry: each must be there, same types.
        for item in real["results"]:
            assert set(item) <= set(served)
            assert set(item["metas"]["default"]) <= set(served["metas"]["default"])
            assert isinstance(served["metas"]["default"]["records_count"], int)
            assert isinstance(served["metas"]["default"]["title"], str)
