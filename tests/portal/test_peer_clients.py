"""Third-party ODS clients read datasets from the local portal, unchanged.

* odsclient 0.8.4 downloads the legacy CSV (``/explore/dataset/<id>/download/``);
* portalkit 0.1.1 detects the portal, pages the v2.1 records API for small requests and reads
  ``/exports/json`` for whole datasets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
KEY = "peer-key"


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=700, api_keys=[KEY]) as running:
        yield running


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """odsclient looks for API keys in the system keyring: give it an empty one."""
    import keyring
    from keyring.backends.null import Keyring

    previous = keyring.get_keyring()
    keyring.set_keyring(Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def exported(portal: LocalPortal, dataset: str, **params: Any) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{portal.url}{V21}/catalog/datasets/{dataset}/exports/json", params=params, timeout=60
    )
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()
    return records


def test_odsclient_reads_a_whole_dataset(portal: LocalPortal, no_keyring: None) -> None:
    import odsclient

    frame = odsclient.get_whole_dataframe("sample-bike-stations", base_url=portal.url)
    records = exported(portal, "sample-bike-stations")

    assert list(frame.columns) == [
        "Code station",
        "Nom station",
        "Capacité",
        "Vélos disponibles",
        "Bornettes libres",
        "Vélos mécaniques",
        "Vélos électriques",
        "Station en fonctionnement",
        "Commune",
        "Moyens de paiement",
        "Mise en service",
        "Actualisation",
        "Coordonnées géographiques",
        "Geo Shape",
    ]
    assert len(frame) == len(records) == 150
    assert frame["Code station"].astype(str).tolist() == [r["stationcode"] for r in records]
    assert frame["Nom station"].tolist() == [r["name"] for r in records]
    assert frame["Capacité"].tolist() == [r["capacity"] for r in records]
    lat, lon = frame["Coordonnées géographiques"].iloc[0].split(",")
    assert (float(lat), float(lon)) == pytest.approx(
        (records[0]["coordonnees_geo"]["lat"], records[0]["coordonnees_geo"]["lon"])
    )


def test_odsclient_with_an_api_key(portal: LocalPortal, no_keyring: None) -> None:
    import odsclient

    frame = odsclient.get_whole_dataframe(
        "sample-budget-restricted", base_url=portal.url, apikey=KEY
    )
    assert len(frame) == len(exported(portal, "sample-budget-restricted", apikey=KEY)) == 60


def test_portalkit_reads_a_dataset_through_the_export(portal: LocalPortal) -> None:
    import portalkit

    dataset = portalkit.open(portal.url, cache=False).dataset("sample-events")
    whole = dataset.to_pandas(cache=False)
    records = exported(portal, "sample-events")

    assert dataset.info.rows == 700
    assert len(whole) == 700
    assert whole["event_id"].tolist() == [r["event_id"] for r in records]
    assert whole["start"].iloc[0] == pd.Timestamp(records[0]["start"])


def test_portalkit_records_pages_and_export_agree(portal: LocalPortal) -> None:
    import portalkit

    dataset = portalkit.open(portal.url, kind="opendatasoft", cache=False).dataset("sample-events")
    paged = dataset.to_pandas(limit=250, cache=False, where="duration_min >= 60")
    whole = dataset.to_pandas(cache=False, where="duration_min >= 60")

    assert len(paged) == 250
    pd.testing.assert_frame_equal(paged, whole.iloc[:250])


def test_portalkit_geodataframe(portal: LocalPortal) -> None:
    import portalkit

    districts = portalkit.open(portal.url, cache=False).dataset("sample-districts").to_geopandas()

    assert len(districts) == 20
    assert districts.crs.to_epsg() == 4326
    assert set(districts.geometry.geom_type) == {"Polygon", "MultiPolygon"}
    assert districts.geometry.name == "geom"
