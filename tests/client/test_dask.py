"""``read_ods_dask``: dask frames over a chunked download equal the pandas frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import dask_geopandas
import geopandas
import pandas as pd
import pytest

from odsframe._dask import dask_frame, read_ods_dask
from odsframe._http import RetryPolicy
from odsframe.download import download, load_manifest, read_parts
from odsframe.errors import IncompleteResultError
from odsframe.testing.faults import Faults
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"
RECORDS = 12_000
FAST = RetryPolicy(attempts=8, backoff=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=RECORDS, faults=Faults()) as local:
        yield local


def test_geo_dataset_gives_a_dask_geodataframe(portal: LocalPortal, tmp_path: Path) -> None:
    ddf = read_ods_dask(
        portal.url, EVENTS, path=tmp_path, chunk_rows=2500, progress=False, retry=FAST
    )
    assert isinstance(ddf, dask_geopandas.GeoDataFrame)
    manifest = load_manifest(tmp_path)
    assert ddf.npartitions == len(manifest.chunks) >= 5
    assert ddf.known_divisions
    assert ddf.divisions[0] == 0 and ddf.divisions[-1] == RECORDS - 1
    computed = ddf.compute()
    expected = read_parts(manifest)
    assert isinstance(computed, geopandas.GeoDataFrame)
    pd.testing.assert_frame_equal(pd.DataFrame(computed), pd.DataFrame(expected))
    assert computed.geometry.name == expected.geometry.name
    assert computed.crs == expected.crs
    # The schema dtypes, before any compute.
    assert str(ddf.dtypes["start"]) == "datetime64[us, UTC]"
    assert str(ddf.dtypes["attendance"]) == "Int64"
    # Lazy work goes through the partitions.
    by_category = ddf.groupby("category").size().compute().sort_index()
    pd.testing.assert_series_equal(by_category, expected.groupby("category").size().sort_index())


def test_plain_dataframe_without_geometry(portal: LocalPortal, tmp_path: Path) -> None:
    ddf = read_ods_dask(
        portal.url,
        EVENTS,
        path=tmp_path,
        select="event_id, price, start",
        where="price > 20",
        timezone="Europe/Paris",
        chunk_rows=1500,
        progress=False,
        retry=FAST,
    )
    assert isinstance(ddf, dd.DataFrame)
    assert not isinstance(ddf, dask_geopandas.GeoDataFrame)
    assert list(ddf.columns) == ["event_id", "price", "start"]
    assert str(ddf.dtypes["start"]) == "datetime64[us, Europe/Paris]"
    computed = ddf.compute()
    pd.testing.assert_frame_equal(computed, read_parts(load_manifest(tmp_path)))
    assert (computed["price"] > 20).all()


def test_default_folder_is_reused(portal: LocalPortal, isolated_cache: Path) -> None:
    assert portal.faults is not None
    portal.faults.reset()
    first = read_ods_dask(portal.url, EVENTS, where="free", chunk_rows=1500, progress=False)
    exports = portal.faults.count("*/exports/*")
    assert exports >= 2
    assert list((isolated_cache / "downloads").iterdir())
    again = read_ods_dask(portal.url, EVENTS, where="free", chunk_rows=1500, progress=False)
    assert portal.faults.count("*/exports/*") == exports  # nothing downloaded again
    pd.testing.assert_frame_equal(pd.DataFrame(first.compute()), pd.DataFrame(again.compute()))


def test_empty_result_gives_an_empty_typed_frame(portal: LocalPortal, tmp_path: Path) -> None:
    manifest = download(
        portal.url, EVENTS, tmp_path, where="price > 100000", progress=False, retry=FAST
    )
    ddf = dask_frame(manifest, geometry=False)
    computed = ddf.compute()
    assert len(computed) == 0
    assert str(computed.dtypes["price"]) == "Float64"


def test_incomplete_download_is_refused(portal: LocalPortal, tmp_path: Path) -> None:
    manifest = download(portal.url, EVENTS, tmp_path, chunk_rows=4000, progress=False)
    manifest.chunks[1].reset()
    with pytest.raises(IncompleteResultError, match="incomplete"):
        dask_frame(manifest)
