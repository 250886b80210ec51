"""Large reads: exports through the chunked downloader (parts, retries, resume) and dask.

``read_ods`` fetches every export with :func:`odsframe.download.download_parts`: one part
up to ``chunk_rows`` records, slices of a field beyond. These tests read ``sample-events``
(10 000 records) with a small ``chunk_rows`` so that a read takes several parts, and
compare with the one-part read and with ``engine="dask"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import dask_geopandas
import geopandas
import geopandas.testing
import pandas as pd
import pytest

import odsframe
from odsframe import read as read_module
from odsframe.download import load_manifest
from odsframe.errors import InvalidQueryArgument
from odsframe.read import build_query
from odsframe.testing.faults import Faults
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"
RECORDS = 10_000
EXPORTS = "*/exports/*"


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=RECORDS, faults=Faults()) as local:
        yield local


@pytest.fixture
def faults(portal: LocalPortal) -> Iterator[Faults]:
    """The portal's request log, empty, and no fault injected (also after the test)."""
    assert portal.faults is not None
    portal.faults.configure([])
    portal.faults.reset()
    yield portal.faults
    portal.faults.configure([])


def read(portal: LocalPortal, **kwargs: object) -> pd.DataFrame:
    options: dict[str, object] = {"cache": False, "progress": False}
    options.update(kwargs)
    return odsframe.read_ods(portal.url, EVENTS, **options)  # type: ignore[arg-type]


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("event_id", ignore_index=True)


def read_folders(cache_folder: Path) -> list[Path]:
    """The download folders of reads left in the cache folder (lock files aside)."""
    root = cache_folder / read_module.READS_FOLDER
    if not root.is_dir():
        return []
    return [entry for entry in root.iterdir() if entry.is_dir()]


def test_one_part_up_to_chunk_rows(portal: LocalPortal, faults: Faults) -> None:
    frame = read(portal)
    assert len(frame) == RECORDS
    assert faults.count(EXPORTS) == 1
    # No more requests than a plain export read: metadata, count, formats, the export.
    assert faults.count("/api/*") == 4
    assert frame.attrs["ods"]["route"] == "export"
    assert frame.attrs["ods"]["export_format"] == "parquet"


def test_a_read_past_chunk_rows_takes_several_parts_and_equals_one_export(
    portal: LocalPortal, faults: Faults
) -> None:
    one_part = read(portal, order_by="event_id")
    assert faults.count(EXPORTS) == 1
    faults.reset()
    parts = read(portal, order_by="event_id", chunk_rows=2_000)
    assert faults.count(EXPORTS) >= RECORDS // 2_000
    assert isinstance(parts, geopandas.GeoDataFrame)
    # order_by starts with the slicing field: the parts come in order.
    geopandas.testing.assert_geodataframe_equal(parts, one_part)
    assert parts.attrs["ods"]["records_count"] == RECORDS


def test_sliced_read_without_order_has_the_same_rows(portal: LocalPortal, faults: Faults) -> None:
    one_part = read(portal, where="price > 20 OR free")
    faults.reset()
    parts = read(portal, where="price > 20 OR free", chunk_rows=1_500)
    assert faults.count(EXPORTS) > 2
    assert len(parts) == len(one_part) > 1_500
    geopandas.testing.assert_geodataframe_equal(by_id(parts), by_id(one_part))
    # Multivalued lists, text and geometry dtypes are the same through the parts.
    assert parts.dtypes.equals(one_part.dtypes)


def test_the_parts_folder_is_removed_after_the_read(
    portal: LocalPortal, faults: Faults, isolated_cache: Path
) -> None:
    read(portal, chunk_rows=3_000)
    assert faults.count(EXPORTS) >= 4
    assert list((isolated_cache / read_module.READS_FOLDER).iterdir()) == []  # no lock file


def test_a_folder_locked_by_another_process_is_not_taken(tmp_path: Path) -> None:
    folder = tmp_path / "reads" / "0123456789abcdef0123456789abcdef"
    folder.parent.mkdir()
    with read_module._process_lock(folder) as first:
        assert first
        # A second open file holds a lock of its own, as another process would.
        with read_module._process_lock(folder) as second:
            assert not second
    with read_module._process_lock(folder) as again:
        assert again


class StopRead(Exception):
    """Raised by a progress callback to stop a read half-way."""


def test_a_failed_read_resumes_with_the_missing_parts(
    portal: LocalPortal, faults: Faults, isolated_cache: Path
) -> None:
    completed: list[int] = []

    def stop_after_two_parts(done: int, total: int | None) -> None:
        if done:
            completed.append(done)
        if len(completed) == 2:
            raise StopRead(f"stopped after {done} of {total} records")

    with pytest.raises(StopRead):
        read(portal, order_by="event_id", chunk_rows=2_000, progress=stop_after_two_parts)
    (folder,) = read_folders(isolated_cache)  # kept for the next read
    manifest = load_manifest(folder)
    assert sum(chunk.status == "complete" for chunk in manifest.chunks) == 2
    parts = len(manifest.chunks)
    assert parts >= RECORDS // 2_000

    faults.reset()
    frame = read(portal, order_by="event_id", chunk_rows=2_000)
    assert faults.count(EXPORTS) == parts - 2  # only the missing parts
    assert faults.count("*/records") == 1  # read_ods's count; no slicing probes again
    assert read_folders(isolated_cache) == []
    geopandas.testing.assert_geodataframe_equal(frame, read(portal, order_by="event_id"))


def test_a_part_cut_short_is_fetched_again(portal: LocalPortal, faults: Faults) -> None:
    expected = read(portal, order_by="event_id")
    faults.configure(f"path={EXPORTS},drop=first:1,drop_after=2000")
    faults.reset()
    frame = read(portal, order_by="event_id", chunk_rows=4_000)
    assert faults.injected == {"drop": 1}
    assert faults.count(EXPORTS, fault=None) >= 3
    geopandas.testing.assert_geodataframe_equal(frame, expected)


def test_a_read_of_the_same_query_in_progress_gets_a_private_folder(
    portal: LocalPortal, isolated_cache: Path
) -> None:
    query = build_query(EVENTS, where="free")
    with odsframe.Portal(portal.url) as ods:
        adapter = ods._adapter
        with read_module._download_folder(adapter, query, "parquet", None) as first:
            with read_module._download_folder(adapter, query, "parquet", None) as second:
                assert second != first
                assert second.name.startswith(first.name)
                second.mkdir()
            assert not second.exists()  # a private folder never resumes: removed
            first.mkdir()
        assert not first.exists()  # the read went well: removed
        with read_module._download_folder(adapter, query, "csv", None) as other_format:
            assert other_format != first
    assert first.parent == isolated_cache / read_module.READS_FOLDER


def test_stale_read_folders_are_removed(portal: LocalPortal, isolated_cache: Path) -> None:
    import os

    root = isolated_cache / read_module.READS_FOLDER
    stale = root / "0123456789abcdef0123456789abcdef"
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"left by a failed read")
    old = stale.stat().st_mtime - read_module.STALE_READ_SECONDS - 60
    os.utime(stale, (old, old))
    recent = root / "fedcba9876543210fedcba9876543210"
    recent.mkdir()
    read(portal, where="free")
    assert not stale.exists()
    assert recent.exists()


def test_engine_dask_equals_the_pandas_frame(portal: LocalPortal) -> None:
    ddf = read(portal, engine="dask", order_by="event_id", chunk_rows=2_500)
    assert isinstance(ddf, dask_geopandas.GeoDataFrame)
    assert ddf.npartitions >= RECORDS // 2_500
    computed = ddf.compute()
    expected = read(portal, order_by="event_id")
    assert isinstance(computed, geopandas.GeoDataFrame)
    pd.testing.assert_frame_equal(pd.DataFrame(computed), pd.DataFrame(expected))
    assert computed.geometry.name == expected.geometry.name
    assert computed.crs == expected.crs


def test_engine_dask_takes_the_same_query_arguments(portal: LocalPortal) -> None:
    arguments: dict[str, object] = {
        "select": "event_id, price, start, location",
        "where": "price > 20",
        "bbox": (2.25, 48.82, 2.42, 48.90),
        "timezone": "Europe/Paris",
        "geometry": None,
    }
    ddf = read(portal, engine="dask", chunk_rows=1_000, **arguments)
    assert isinstance(ddf, dd.DataFrame)
    assert not isinstance(ddf, dask_geopandas.GeoDataFrame)  # geometry=None
    assert str(ddf.dtypes["start"]) == "datetime64[us, Europe/Paris]"
    computed = by_id(ddf.compute())
    expected = by_id(read(portal, **arguments))
    assert 0 < len(expected) < RECORDS
    pd.testing.assert_frame_equal(computed, expected)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"engine": "polars"}, "engine: expected one of 'pandas', 'dask'"),
        ({"engine": None}, "engine: expected one of"),
        ({"chunk_rows": 0}, "chunk_rows: expected a whole number >= 1, got 0"),
        ({"chunk_rows": 2.5}, "chunk_rows: expected a whole number >= 1, got 2.5"),
        ({"chunk_rows": True}, "chunk_rows: expected a whole number >= 1, got True"),
        ({"engine": "dask", "chunk_rows": -1}, "chunk_rows: expected a whole number"),
    ],
)
def test_bad_engine_or_chunk_rows_is_refused_before_any_request(
    portal: LocalPortal, faults: Faults, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        read(portal, **arguments)
    assert faults.count("*") == 0
