"""Shape parity with real v2.1 captures: load a real export, serve it, compare the answers.

The real files are read from ``../shared/ods-real-fixtures/`` (``real_fixtures``) and copied
(or cut down) into ``tmp_path`` only for the duration of a test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from odsframe.testing.catalog import Catalog
from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
FOUNTAINS = "Pigura1__test-technique-__fontaines-a-boire.json"
STATIONS = "malkreide__sbb-opendata-mcp__stations_search.json"
EXPLORE_DATASET = "139bercy__data-eco-datasets-manager__dataset-sample-explore.json"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}$")


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fountains(real_fixtures: Path) -> list[dict[str, Any]]:
    """The first 60 records of a real v2.1 JSON export (geo_shape, geo_point, datetimes, nulls)."""
    records: list[dict[str, Any]] = load_json(real_fixtures / FOUNTAINS)[:60]
    return records


@pytest.fixture(scope="module")
def real_portal(
    tmp_path_factory: pytest.TempPathFactory, real_fixtures: Path, fountains: list[dict[str, Any]]
) -> Iterator[LocalPortal]:
    folder = tmp_path_factory.mktemp("real")
    (folder / "fontaines-a-boire.json").write_text(json.dumps(fountains), encoding="utf-8")
    stations = load_json(real_fixtures / STATIONS)
    (folder / "stations.json").write_text(json.dumps(stations), encoding="utf-8")
    with LocalPortal(catalog=Catalog.from_folder(folder)) as running:
        yield running


def all_records(portal: LocalPortal, dataset: str, **params: Any) -> dict[str, Any]:
    answer = requests.get(
        f"{portal.url}{V21}/catalog/datasets/{dataset}/records",
        params={"limit": 100, **params},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_v21_export_round_trips_exactly(
    real_portal: LocalPortal, fountains: list[dict[str, Any]]
) -> None:
    """Served in Europe/Paris, every record equals the real export's record."""
    body = all_records(real_portal, "fontaines-a-boire", timezone="Europe/Paris")
    assert body["total_count"] == len(fountains)
    served = {record["gid"]: record for record in body["results"]}
    real = {record["gid"]: record for record in fountains}
    assert served.keys() == real.keys()
    for gid, record in real.items():
        assert served[gid] == record, gid
        assert list(served[gid]["geo_point_2d"]) == ["lon", "lat"]


def test_v21_export_value_encodings_per_type(
    real_portal: LocalPortal, fountains: list[dict[str, Any]]
) -> None:
    body = all_records(real_portal, "fontaines-a-boire", timezone="Europe/Paris")
    fields = {
        field["name"]: field["type"]
        for field in requests.get(
            f"{real_portal.url}{V21}/catalog/datasets/fontaines-a-boire", timeout=30
        ).json()["fields"]
    }
    assert fields["geo_shape"] == "geo_shape" and fields["geo_point_2d"] == "geo_point_2d"
    for record in body["results"]:
        assert set(record) == set(fountains[0])
        shape = record["geo_shape"]
        assert set(shape) == {"type", "geometry", "properties"}
        assert shape["type"] == "Feature" and shape["properties"] == {}
        for name, kind in fields.items():
            value = record[name]
            if value is None:
                continue
            if kind == "datetime":
                assert DATETIME.match(value), value
                assert value[-6:] in ("+01:00", "+02:00")
            elif kind == "text":
                assert isinstance(value, str)


def test_v21_records_response_round_trips(real_portal: LocalPortal, real_fixtures: Path) -> None:
    real = load_json(real_fixtures / STATIONS)
    body = all_records(real_portal, "stations")
    assert body["total_count"] == len(real["results"])
    served = sorted(body["results"], key=lambda record: record["number"])
    assert served == sorted(real["results"], key=lambda record: record["number"])


def test_dataset_object_has_the_real_v21_keys(
    real_portal: LocalPortal, real_fixtures: Path, openapi: dict[str, Any]
) -> None:
    real = load_json(real_fixtures / EXPLORE_DATASET)["results"][0]
    served = requests.get(
        f"{real_portal.url}{V21}/catalog/datasets/fontaines-a-boire", timeout=30
    ).json()
    assert list(served) == list(real)
    example = openapi["components"]["examples"]["dataset-v2.1"]["value"]
    real_field_keys = {key for field in example["fields"] for key in field}
    assert {key for field in served["fields"] for key in field} <= real_field_keys
    assert set(served["metas"]["default"]) >= {
        "title",
        "records_count",
        "modified",
        "data_processed",
        "metadata_processed",
    }
    listing = requests.get(f"{real_portal.url}{V21}/catalog/datasets", timeout=30).json()
    assert set(listing) == set(load_json(real_fixtures / EXPLORE_DATASET))
    assert {item["dataset_id"] for item in listing["results"]} == {"fontaines-a-boire", "stations"}
