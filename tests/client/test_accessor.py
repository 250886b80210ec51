"""The ``df.ods`` accessor on frames read from the local portal."""

from __future__ import annotations

from typing import Any

import geopandas
import geopandas.testing
import pandas as pd
import pytest

import odsframe
from odsframe.accessor import ProvenanceError
from odsframe.testing.portal import LocalPortal

TREES = "sample-trees"
STATIONS = "sample-bike-stations"
BUDGET = "sample-budget-restricted"


@pytest.fixture
def stations(sample_portal: LocalPortal) -> pd.DataFrame:
    return odsframe.read_ods(
        sample_portal.url, STATIONS, where={"commune": "Paris"}, order_by="-capacity", limit=30
    )


def test_source_holds_the_provenance(stations: pd.DataFrame, sample_portal: LocalPortal) -> None:
    source = stations.ods.source
    assert source["portal"] == sample_portal.url
    assert source["dataset"] == STATIONS
    assert source["api_version"] == "2.1"
    assert source["records_count"] == int(source["records_count"]) > 30
    assert source["data_processed"] == "2024-06-01T08:05:00+00:00"
    assert pd.Timestamp(source["fetched_at"]).tzinfo is not None
    assert [field["name"] for field in source["fields"]] == list(stations.columns)
    source["dataset"] = "changed"  # a copy
    assert stations.ods.source["dataset"] == STATIONS


def test_url_query_and_fields(stations: pd.DataFrame, sample_portal: LocalPortal) -> None:
    assert stations.ods.url.startswith(
        f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{STATIONS}/records?"
    )
    assert "order_by=capacity+DESC" in stations.ods.url
    query = stations.ods.query
    assert query["where"] == ['commune = "Paris"']
    assert query["order_by"] == ["capacity DESC"]
    assert query["limit"] == 30
    assert ["limit", "30"] not in query["params"]  # the plan's business, not the query's
    fields = stations.ods.fields
    assert list(fields.columns) == ["name", "label", "type", "unit", "description"]
    assert fields.set_index("name").loc["capacity", "type"] == "int"
    assert len(fields) == len(stations.columns)


def test_geodataframes_have_it_and_copies_keep_it(stations: pd.DataFrame) -> None:
    assert isinstance(stations, geopandas.GeoDataFrame)
    head = stations.head(3)
    assert head.ods.dataset == STATIONS
    assert stations[["stationcode", "capacity"]].ods.dataset == STATIONS


def test_labels(stations: pd.DataFrame) -> None:
    labelled = stations.ods.labels()
    assert "Capacité" in labelled.columns and "capacity" not in labelled.columns
    assert labelled.geometry.name == "Geo Shape"
    assert list(stations.columns[:2]) == ["stationcode", "name"]  # unchanged


def test_refresh_reads_again_past_the_cache(
    stations: pd.DataFrame, sample_portal: LocalPortal, recording_session: Any
) -> None:
    cached = odsframe.read_ods(
        sample_portal.url, STATIONS, where={"commune": "Paris"}, order_by="-capacity", limit=30
    )
    assert cached.attrs["ods"]["cache"] == "hit"
    fresh = stations.ods.refresh(session=recording_session)
    assert fresh.attrs["ods"]["cache"] == "fetched"
    geopandas.testing.assert_geodataframe_equal(fresh, stations)
    assert fresh.ods.query == stations.ods.query
    assert any("/records?" in url for url in recording_session.urls)


def test_refresh_reuses_an_explicit_key(private_portal: LocalPortal, api_key: str) -> None:
    budget = odsframe.read_ods(private_portal.url, BUDGET, api_key=api_key, limit=7)
    again = budget.ods.refresh()
    assert len(again) == 7
    assert api_key not in repr(again.attrs)
    with odsframe.Portal(private_portal.url, api_key=api_key) as portal:
        via_portal = portal.read(BUDGET, limit=3)
    assert len(via_portal.ods.refresh()) == 3


def test_refresh_of_a_catalog(sample_portal: LocalPortal) -> None:
    catalog = odsframe.read_ods_catalog(sample_portal.url, where="records_count > 300")
    again = catalog.ods.refresh()
    pd.testing.assert_frame_equal(catalog, again)
    with pytest.raises(ProvenanceError, match="catalog"):
        catalog.ods.fields  # noqa: B018
    with pytest.raises(ProvenanceError, match="catalog"):
        catalog.ods.dataset  # noqa: B018


def test_explain_and_read_kwargs(stations: pd.DataFrame) -> None:
    text = stations.ods.explain()
    assert "route = records" in text
    assert "order_by=capacity+DESC" in text
    kwargs = stations.ods.read_kwargs()
    assert kwargs["where"] == ['commune = "Paris"'] and kwargs["limit"] == 30
    offline = stations.ods.explain(offline=True)
    assert "no request made" in offline


def test_portal_of_a_frame(stations: pd.DataFrame, sample_portal: LocalPortal) -> None:
    with stations.ods.portal() as portal:
        assert portal.url == sample_portal.url
        assert portal.dataset(STATIONS).records_count == 150


def test_frames_without_provenance_say_so() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    for use in (
        lambda: frame.ods.source,
        lambda: frame.ods.url,
        lambda: frame.ods.fields,
        lambda: frame.ods.refresh(),
        lambda: frame.ods.labels(),
    ):
        with pytest.raises(ProvenanceError, match=r"no odsframe provenance.*read_ods"):
            use()
    frame.attrs["ods"] = {"portal": ""}
    with pytest.raises(ProvenanceError):
        frame.ods.explain()
    assert issubclass(ProvenanceError, odsframe.ODSError)
