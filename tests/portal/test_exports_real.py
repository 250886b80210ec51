"""Real v2.1 exports, loaded by the portal and exported again, come back as they were.

Each real export in ``../shared/ods-real-fixtures/`` is copied into a temporary data folder
for the test session only, served by a ``LocalPortal(data_dir=...)``, and exported again in
the same format over HTTP. The answers are compared with the real files: parsed JSON (keys,
values and their order), then bytes.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
#: dataset id in the portal -> real file (and the timezone the real export was made in).
JSON_EXPORTS = {
    "fontaines-a-boire": "Pigura1__test-technique-__fontaines-a-boire.json",
    "velib-emplacement": "AmmarSo__VelibIDFExplorer__velib-emplacement-des-stations.json",
}
GEOJSON_EXPORTS = {
    "fontaines-filtrees": "TasnimeLouartani__labchapelle.github.io__fontaines-a-boire.geojson",
}
CSV_EXPORTS = {
    "velib-dispo": ("victorhrls__Velib__velib-disponibilite-en-temps-reel.csv", "Europe/Paris"),
    "arrondissements": ("melanie-donne__analyse-immobilier-Paris-2022__arrondissements.csv", "UTC"),
    "colleges": (
        "melanie-donne__analyse-immobilier-Paris-2022__etablissements-scolaires-colleges.csv",
        "UTC",
    ),
}
POINT_CELL = re.compile(r"^-?\d+(\.\d+)?, -?\d+(\.\d+)?$")
DATETIME_CELL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?[+-]\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def real_portal(
    tmp_path_factory: pytest.TempPathFactory, real_fixtures: Path
) -> Iterator[LocalPortal]:
    folder = tmp_path_factory.mktemp("real-exports")
    for dataset_id, name in {**JSON_EXPORTS, **GEOJSON_EXPORTS}.items():
        shutil.copyfile(real_fixtures / name, folder / f"{dataset_id}{Path(name).suffix}")
    for dataset_id, (name, _) in CSV_EXPORTS.items():
        shutil.copyfile(real_fixtures / name, folder / f"{dataset_id}.csv")
    with LocalPortal(data_dir=folder) as running:
        yield running


def export(portal: LocalPortal, dataset: str, fmt: str, **params: Any) -> requests.Response:
    answer = requests.get(
        f"{portal.url}{V21}/catalog/datasets/{dataset}/exports/{fmt}", params=params, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return answer


def parsed_with_order(payload: Any) -> Any:
    """JSON with every object as a list of (key, value) pairs, so key order counts."""
    if isinstance(payload, dict):
        return [(key, parsed_with_order(value)) for key, value in payload.items()]
    if isinstance(payload, list):
        return [parsed_with_order(item) for item in payload]
    return payload


@pytest.mark.parametrize("dataset", sorted(JSON_EXPORTS))
def test_json_export_gives_back_the_real_json_export(
    real_portal: LocalPortal, real_fixtures: Path, dataset: str
) -> None:
    real = json.loads((real_fixtures / JSON_EXPORTS[dataset]).read_text(encoding="utf-8"))
    answer = export(real_portal, dataset, "json", timezone="Europe/Paris")

    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    exported = answer.json()
    assert len(exported) == len(real)
    assert parsed_with_order(exported) == parsed_with_order(real)


@pytest.mark.parametrize("dataset", sorted(JSON_EXPORTS))
def test_json_export_is_byte_for_byte_the_real_one(
    real_portal: LocalPortal, real_fixtures: Path, dataset: str
) -> None:
    """Records dumped with ``", "``/``": "`` separators and ``\\u`` escapes, joined by ``,``."""
    answer = export(real_portal, dataset, "json", timezone="Europe/Paris")
    assert answer.content == (real_fixtures / JSON_EXPORTS[dataset]).read_bytes()


@pytest.mark.parametrize("dataset", sorted(JSON_EXPORTS))
def test_jsonl_export_holds_the_same_records_one_per_line(
    real_portal: LocalPortal, real_fixtures: Path, dataset: str
) -> None:
    real = json.loads((real_fixtures / JSON_EXPORTS[dataset]).read_text(encoding="utf-8"))
    lines = export(real_portal, dataset, "jsonl", timezone="Europe/Paris").text.split("\n")

    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == real


@pytest.mark.parametrize("dataset", sorted(GEOJSON_EXPORTS))
def test_geojson_export_gives_back_the_real_geojson_export(
    real_portal: LocalPortal, real_fixtures: Path, dataset: str
) -> None:
    path = real_fixtures / GEOJSON_EXPORTS[dataset]
    real = json.loads(path.read_text(encoding="utf-8"))
    answer = export(real_portal, dataset, "geojson", timezone="Europe/Paris")

    assert parsed_with_order(answer.json()) == parsed_with_order(real)
    assert answer.content == path.read_bytes()


@pytest.mark.parametrize("dataset", sorted(CSV_EXPORTS))
def test_csv_export_gives_back_the_real_csv_export(
    real_portal: LocalPortal, real_fixtures: Path, dataset: str
) -> None:
    """Same bytes as the real ``use_labels=true`` export, line ends aside (git may have
    normalised them in the fixtures)."""
    name, timezone = CSV_EXPORTS[dataset]
    answer = export(real_portal, dataset, "csv", use_labels="true", timezone=timezone)
    real = (real_fixtures / name).read_bytes()

    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.content.replace(b"\r\n", b"\n") == real.replace(b"\r\n", b"\n")


def test_csv_export_of_a_json_export_follows_the_real_csv_rules(
    real_portal: LocalPortal,
) -> None:
    records = export(real_portal, "fontaines-a-boire", "json", timezone="Europe/Paris").json()
    body = export(real_portal, "fontaines-a-boire", "csv", timezone="Europe/Paris").content

    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8")[1:]
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0] == list(records[0])
    assert len(rows) == len(records) + 1
    for record, row in zip(records, rows[1:]):
        cells = dict(zip(rows[0], row))
        point = record["geo_point_2d"]
        assert POINT_CELL.match(cells["geo_point_2d"])
        assert cells["geo_point_2d"] == f"{point['lat']!r}, {point['lon']!r}"
        assert json.loads(cells["geo_shape"]) == record["geo_shape"]["geometry"]
        for key, value in record.items():
            if value is None:
                assert cells[key] == ""
            elif key in ("debut_ind", "fin_ind"):
                assert DATETIME_CELL.match(cells[key]) and cells[key] == value
            elif isinstance(value, str):
                assert cells[key] == value
    # the geometry is a JSON string with Python's separators, so its cell is quoted
    first_line = text.split("\r\n")[1]
    assert ';"{""type"": ""Point"", ""coordinates"": [' in first_line or (
        ';"{""coordinates"": [' in first_line
    )
