"""``read_ods`` with its on-disk cache: hits, freshness checks, refreshes, stale serving.

Each test has its own cache folder (the autouse ``isolated_cache`` fixture). Requests are
observed with a real ``requests.Session`` that notes URLs (``recording_session``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import geopandas
import geopandas.testing
import pandas as pd
import pytest

import odsframe
from odsframe._http import RetryPolicy
from odsframe.api import open_adapter
from odsframe.errors import (
    AuthenticationError,
    ODSWarning,
    PortalConnectionError,
    StaleCacheWarning,
)
from odsframe.read import build_query, read_with
from odsframe.testing.catalog import Catalog
from odsframe.testing.portal import LocalPortal

TREES = "sample-trees"
STATIONS = "sample-bike-stations"
BUDGET = "sample-budget-restricted"


def without_volatile(attrs: dict[str, Any]) -> dict[str, Any]:
    """Provenance minus what differs between a fetch and a hit (cache status, read id)."""
    ods = dict(attrs["ods"])
    for name in ("cache", "read_id"):
        ods.pop(name)
    return ods


def assert_same_frame(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert type(left) is type(right)
    if isinstance(left, geopandas.GeoDataFrame):
        geopandas.testing.assert_geodataframe_equal(left, right)
        for name in left.columns:
            if isinstance(left[name].dtype, geopandas.array.GeometryDtype):
                assert isinstance(right[name], geopandas.GeoSeries)
                assert left[name].crs == right[name].crs
    else:
        pd.testing.assert_frame_equal(left, right)
    assert without_volatile(left.attrs) == without_volatile(right.attrs)


def status(frame: pd.DataFrame) -> str:
    """How the read was served: ``fetched``, ``hit`` or ``stale``."""
    return str(frame.attrs["ods"]["cache"])


def metadata_url(portal: LocalPortal, dataset: str) -> str:
    return f"{portal.url}/api/explore/v2.1/catalog/datasets/{dataset}"


@pytest.mark.parametrize("dataset", [TREES, STATIONS])
def test_a_hit_equals_the_original_after_one_metadata_request(
    sample_portal: LocalPortal, recording_session: Any, dataset: str
) -> None:
    first = odsframe.read_ods(sample_portal.url, dataset, progress=False)
    assert first.attrs["ods"]["cache"] == "fetched"
    again = odsframe.read_ods(sample_portal.url, dataset, session=recording_session, progress=False)
    assert again.attrs["ods"]["cache"] == "hit"
    assert_same_frame(first, again)
    assert recording_session.urls == [metadata_url(sample_portal, dataset)]


def test_a_hit_keeps_the_query(sample_portal: LocalPortal) -> None:
    options = {"where": {"commune": "Paris"}, "select": ["stationcode", "payment"]}
    first = odsframe.read_ods(sample_portal.url, STATIONS, **options)
    other = odsframe.read_ods(sample_portal.url, STATIONS, where={"commune": "Pantin"})
    again = odsframe.read_ods(sample_portal.url, STATIONS, **options)
    assert other.attrs["ods"]["cache"] == "fetched"
    assert again.attrs["ods"]["cache"] == "hit"
    assert_same_frame(first, again)
    assert set(other["commune"]) == {"Pantin"}


def test_geometry_and_labels_are_part_of_the_key(sample_portal: LocalPortal) -> None:
    plain = odsframe.read_ods(sample_portal.url, STATIONS, limit=5)
    labelled = odsframe.read_ods(sample_portal.url, STATIONS, limit=5, labels=True)
    points = odsframe.read_ods(sample_portal.url, STATIONS, limit=5, geometry="coordonnees_geo")
    assert labelled.attrs["ods"]["cache"] == points.attrs["ods"]["cache"] == "fetched"
    assert "Code station" in labelled.columns and "stationcode" in plain.columns
    assert points.geometry.name == "coordonnees_geo"
    assert status(odsframe.read_ods(sample_portal.url, STATIONS, limit=5, labels=True)) == "hit"


def test_cache_off_writes_nothing(sample_portal: LocalPortal, isolated_cache: Path) -> None:
    odsframe.read_ods(sample_portal.url, TREES, limit=3, cache=False)
    again = odsframe.read_ods(sample_portal.url, TREES, limit=3, cache=False)
    assert again.attrs["ods"]["cache"] == "fetched"
    assert not isolated_cache.exists() or not any(isolated_cache.rglob("*.json"))


def test_refresh_fetches_and_updates_the_entry(sample_portal: LocalPortal) -> None:
    odsframe.read_ods(sample_portal.url, TREES, limit=3)
    refreshed = odsframe.read_ods(sample_portal.url, TREES, limit=3, cache="refresh")
    assert refreshed.attrs["ods"]["cache"] == "fetched"
    hit = odsframe.read_ods(sample_portal.url, TREES, limit=3)
    assert hit.attrs["ods"]["cache"] == "hit"
    assert hit.attrs["ods"]["fetched_at"] == refreshed.attrs["ods"]["fetched_at"]


def test_max_age(sample_portal: LocalPortal) -> None:
    odsframe.read_ods(sample_portal.url, TREES, limit=3)
    assert status(odsframe.read_ods(sample_portal.url, TREES, limit=3, max_age=3600)) == "hit"
    assert status(odsframe.read_ods(sample_portal.url, TREES, limit=3, max_age=0)) == "fetched"


def test_a_changed_dataset_is_read_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = data / "things.csv"
    source.write_text("code;size\na;1\nb;2\n", encoding="utf-8")
    with LocalPortal(data) as portal:
        first = odsframe.read_ods(portal.url, "things")
        assert list(first["code"]) == ["a", "b"]
        source.write_text("code;size\na;1\nb;2\nc;30\n", encoding="utf-8")
        portal.catalog.reload("things")
        second = odsframe.read_ods(portal.url, "things")
        assert second.attrs["ods"]["cache"] == "fetched"
        assert list(second["code"]) == ["a", "b", "c"]
        assert second["size"].dtype == "Int64" and second["size"].iloc[-1] == 30
        third = odsframe.read_ods(portal.url, "things")
        assert third.attrs["ods"]["cache"] == "hit"
        assert_same_frame(second, third)


def _read_without_retries(portal_url: str, dataset: str, **kwargs: Any) -> pd.DataFrame:
    adapter = open_adapter(portal_url, retry=RetryPolicy(attempts=1))
    with adapter:
        return read_with(adapter, build_query(dataset), api_key=None, **kwargs)


def test_unreachable_portal_serves_the_entry_with_a_warning(prices: Any) -> None:
    catalog = Catalog()
    catalog.add_dataset(prices.dataset("prices"), prices.table(30))
    portal = LocalPortal(catalog=catalog).start()
    url = portal.url
    try:
        first = _read_without_retries(url, "prices")
    finally:
        portal.stop()
    with pytest.warns(StaleCacheWarning, match="'prices'.*unreachable"):
        stale = _read_without_retries(url, "prices")
    assert stale.attrs["ods"]["cache"] == "stale"
    assert_same_frame(first, stale)
    # nothing cached for this query: the connection error goes through
    with pytest.raises(PortalConnectionError, match="prices"):
        adapter = open_adapter(url, retry=RetryPolicy(attempts=1))
        with adapter:
            read_with(adapter, build_query("prices", limit=3), api_key=None)
    # cache="refresh" never serves a stale entry
    with pytest.raises(PortalConnectionError):
        _read_without_retries(url, "prices", cache_mode="refresh")


def test_entries_are_kept_apart_by_credentials(
    private_portal: LocalPortal, api_key: str, isolated_cache: Path
) -> None:
    private = odsframe.read_ods(private_portal.url, BUDGET, api_key=api_key)
    assert len(private) == 60
    assert odsframe.read_ods(private_portal.url, BUDGET, api_key=api_key).attrs["ods"]["cache"] == (
        "hit"
    )
    # anonymous callers never get the private entry
    with pytest.raises(AuthenticationError):
        odsframe.read_ods(private_portal.url, BUDGET)
    stored = [path.read_bytes() for path in isolated_cache.rglob("*") if path.is_file()]
    assert stored
    assert not any(api_key.encode() in content for content in stored)


def test_an_unwritable_cache_warns_and_still_returns_the_frame(
    sample_portal: LocalPortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("ODSFRAME_CACHE_DIR", str(not_a_folder))
    with pytest.warns(ODSWarning, match="Could not cache.*sample-trees"):
        frame = odsframe.read_ods(sample_portal.url, TREES, limit=4)
    assert len(frame) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleCacheWarning)
        assert len(odsframe.read_ods(sample_portal.url, TREES, limit=4, cache=False)) == 4
