"""Chunked, resumable, parallel downloads against the local portal over real HTTP.

Every download is checked against one plain export of the same query: the same record ids
(no duplicate, none missing) and, for the whole dataset, the same frame.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import requests

from odsframe._http import RetryPolicy
from odsframe.api import open_adapter
from odsframe.download import (
    MANIFEST_NAME,
    DatasetChangedWarning,
    Manifest,
    download,
    download_parts,
    load_manifest,
    read_parts,
)
from odsframe.errors import IncompleteResultError, InvalidQueryArgument
from odsframe.frames import fields_from_metadata, frame_from_parquet
from odsframe.query import Query
from odsframe.testing.catalog import Catalog
from odsframe.testing.faults import Faults
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal

ROOT = Path(__file__).resolve().parents[2]
EVENTS = "sample-events"
EVENT_RECORDS = 20_000
#: Quick retries, so faulty runs stay fast.
FAST = RetryPolicy(attempts=8, backoff=0.01, backoff_max=0.05, max_wait=5)
V21 = "/api/explore/v2.1/catalog/datasets"


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=EVENT_RECORDS, faults=Faults()) as local:
        yield local


@pytest.fixture(autouse=True)
def no_faults(portal: LocalPortal) -> Iterator[Faults]:
    """Each test starts with no fault and an empty request log."""
    assert portal.faults is not None
    portal.faults.configure([])
    portal.faults.enabled = True
    portal.faults.reset()
    yield portal.faults
    portal.faults.configure([])


def single_export(portal: LocalPortal, dataset: str, folder: Path, **params: Any) -> pd.DataFrame:
    """The reference: one plain parquet export of the query, read with the schema."""
    path = folder / f"reference-{dataset}.parquet"
    answer = requests.get(f"{portal.url}{V21}/{dataset}/exports/parquet", params=params, timeout=60)
    answer.raise_for_status()
    path.write_bytes(answer.content)
    metadata = requests.get(f"{portal.url}{V21}/{dataset}", timeout=10).json()
    fields = fields_from_metadata(metadata)
    return frame_from_parquet(path, fields, all_fields="select" not in params)


def sorted_frame(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


def exports_made(faults: Faults) -> int:
    return faults.count("*/exports/*")


# -- a plain download -----------------------------------------------------------------------


def test_download_equals_one_export(portal: LocalPortal, tmp_path: Path) -> None:
    manifest = download(
        portal.url, EVENTS, tmp_path / "events", chunk_rows=3000, progress=False, retry=FAST
    )
    assert manifest.complete
    assert manifest.total == manifest.rows == EVENT_RECORDS
    assert len(manifest.chunks) >= 7
    assert all(chunk.expected <= 3000 for chunk in manifest.chunks)
    assert manifest.chunk_field is not None
    assert all(manifest.chunk_field in (chunk.where or "") for chunk in manifest.chunks)
    frame = read_parts(manifest)
    assert frame["event_id"].is_unique
    expected = single_export(portal, EVENTS, tmp_path)
    pd.testing.assert_frame_equal(
        sorted_frame(frame, "event_id"), sorted_frame(expected, "event_id")
    )
    # The manifest on disk says the same, and holds the state of the dataset.
    saved = json.loads((tmp_path / "events" / MANIFEST_NAME).read_text())
    assert saved["total"] == EVENT_RECORDS
    assert saved["data_processed"] and saved["records_count"] == EVENT_RECORDS
    assert [c["sha256"] for c in saved["chunks"]] == [c.sha256 for c in manifest.chunks]
    assert {path.name for path in (tmp_path / "events").iterdir()} == {
        MANIFEST_NAME,
        *(chunk.file for chunk in manifest.chunks),
    }


@pytest.mark.parametrize(
    ("order_by", "field_type"),
    [("event_id", "text"), ("-price", "double"), ("duration_min", "int"), ("title", "text")],
)
def test_order_by_slices_on_its_field_and_keeps_the_order(
    portal: LocalPortal, tmp_path: Path, order_by: str, field_type: str
) -> None:
    manifest = download(
        portal.url,
        EVENTS,
        tmp_path,
        order_by=order_by,
        chunk_rows=3000,
        progress=False,
        retry=FAST,
    )
    name = order_by.lstrip("-")
    assert (manifest.chunk_field, manifest.chunk_field_type) == (name, field_type)
    frame = read_parts(manifest)
    assert len(frame) == EVENT_RECORDS
    assert frame["event_id"].is_unique
    values = frame[name].dropna()
    descending = order_by.startswith("-")
    ordered = values.is_monotonic_decreasing if descending else values.is_monotonic_increasing
    assert ordered
    # Nulls come last, in their own chunk.
    nulls = int(frame[name].isna().sum())
    if nulls:
        assert frame[name].iloc[-nulls:].isna().all()
        assert manifest.chunks[-1].where == f"{name} IS NULL"
        assert manifest.chunks[-1].expected == nulls
    if name == "duration_min":
        # Six values of ~3 300 records: chunks hold more than chunk_rows; the note says so.
        assert "too coarse" in manifest.note


def test_where_and_select_are_kept(portal: LocalPortal, tmp_path: Path) -> None:
    where = "duration_min >= 90"
    manifest = download(
        portal.url,
        EVENTS,
        tmp_path / "d",
        where=where,
        select="event_id, start, price",
        chunk_rows=2500,
        progress=False,
        retry=FAST,
    )
    expected = single_export(portal, EVENTS, tmp_path, where=where, select="event_id, start, price")
    frame = read_parts(manifest)
    assert list(frame.columns) == ["event_id", "start", "price"]
    assert len(manifest.chunks) > 1
    pd.testing.assert_frame_equal(
        sorted_frame(frame, "event_id"), sorted_frame(expected, "event_id")
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "geojson"])
def test_other_formats(portal: LocalPortal, tmp_path: Path, fmt: str) -> None:
    where = "duration_min = 60 AND free"
    manifest = download(
        portal.url,
        EVENTS,
        tmp_path,
        where=where,
        format=fmt,
        chunk_rows=300,
        progress=False,
        retry=FAST,
    )
    assert len(manifest.chunks) > 1
    assert all(path.suffix == f".{fmt}" for path in manifest.files)
    frame = read_parts(manifest)
    expected = single_export(portal, EVENTS, tmp_path, where=where)
    assert sorted(frame["event_id"]) == sorted(expected["event_id"])


def test_one_chunk_when_slicing_cannot_help(portal: LocalPortal, tmp_path: Path) -> None:
    small = download(portal.url, "sample-trees", tmp_path / "small", progress=False, retry=FAST)
    assert [chunk.where for chunk in small.chunks] == [None]
    assert "fit in one chunk" in small.note
    random_order = download(
        portal.url,
        EVENTS,
        tmp_path / "random",
        order_by="random(3)",
        chunk_rows=5000,
        progress=False,
        retry=FAST,
    )
    assert [chunk.expected for chunk in random_order.chunks] == [EVENT_RECORDS]
    assert "order_by" in random_order.note
    with open_adapter(portal.url, retry=FAST) as adapter:
        limited = download_parts(
            adapter, Query(EVENTS, limit=7000), tmp_path / "limited", chunk_rows=1000
        )
    assert [chunk.expected for chunk in limited.chunks] == [7000]
    assert len(read_parts(limited)) == 7000


def test_progress_callback_reaches_the_total(portal: LocalPortal, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    download(
        portal.url,
        EVENTS,
        tmp_path,
        chunk_rows=5000,
        progress=lambda done, total: calls.append((done, total)),
        retry=FAST,
    )
    assert calls[-1] == (EVENT_RECORDS, EVENT_RECORDS)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_download_survives_faults(
    portal: LocalPortal, no_faults: Faults, tmp_path: Path, seed: int
) -> None:
    no_faults.configure(f"drop=0.25,status503=0.15,status429=0.1,retry_after=0,seed={seed}")
    with open_adapter(portal.url, retry=FAST) as adapter:
        manifest = download_parts(
            adapter, Query(EVENTS), tmp_path / "d", chunk_rows=2500, workers=4, attempts=12
        )
    no_faults.enabled = False
    assert set(no_faults.injected) == {"drop", "status503", "status429"}
    assert no_faults.count("*/exports/*", fault="drop") > 0
    frame = read_parts(manifest)
    expected = single_export(portal, EVENTS, tmp_path)
    assert len(frame) == EVENT_RECORDS
    assert sorted(frame["event_id"]) == sorted(expected["event_id"])


def test_wrong_row_count_names_the_chunk(portal: LocalPortal, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    manifest = download(portal.url, EVENTS, folder, chunk_rows=5000, progress=False, retry=FAST)
    # The plan now claims one more record in chunk 2 than the portal returns.
    payload = json.loads(manifest.path.read_text())
    payload["chunks"][2].update(expected=payload["chunks"][2]["expected"] + 1, status="pending")
    manifest.path.write_text(json.dumps(payload))
    with (
        open_adapter(portal.url, retry=FAST) as adapter,
        pytest.raises(IncompleteResultError, match=r"chunk 2 \(.*\) failed 2 times"),
    ):
        download_parts(adapter, Query(EVENTS), folder, chunk_rows=5000, attempts=2)
    assert load_manifest(folder).chunks[2].status == "pending"


# -- resume ---------------------------------------------------------------------------------


def test_complete_download_is_not_fetched_again(
    portal: LocalPortal, no_faults: Faults, tmp_path: Path
) -> None:
    first = download(portal.url, EVENTS, tmp_path, chunk_rows=4000, progress=False, retry=FAST)
    assert exports_made(no_faults) == len(first.chunks)
    no_faults.reset()
    again = download(portal.url, EVENTS, tmp_path, chunk_rows=4000, progress=False, retry=FAST)
    assert exports_made(no_faults) == 0
    assert again.to_json()["chunks"] == first.to_json()["chunks"]


def test_damaged_or_missing_parts_are_fetched_again(
    portal: LocalPortal, no_faults: Faults, tmp_path: Path
) -> None:
    first = download(portal.url, EVENTS, tmp_path, chunk_rows=4000, progress=False, retry=FAST)
    damaged, missing = first.files[1], first.files[3]
    damaged.write_bytes(damaged.read_bytes()[:-100] + b"\0" * 100)
    missing.unlink()
    no_faults.reset()
    again = download(portal.url, EVENTS, tmp_path, chunk_rows=4000, progress=False, retry=FAST)
    assert exports_made(no_faults) == 2
    assert [c.sha256 for c in again.chunks] == [c.sha256 for c in first.chunks]
    assert len(read_parts(again)) == EVENT_RECORDS


def test_another_download_in_the_folder_is_refused(portal: LocalPortal, tmp_path: Path) -> None:
    download(portal.url, EVENTS, tmp_path, chunk_rows=10_000, progress=False, retry=FAST)
    with pytest.raises(InvalidQueryArgument, match="holds a download of dataset 'sample-events'"):
        download(portal.url, EVENTS, tmp_path, where="free", progress=False, retry=FAST)


_CHILD = """
import sys
from odsframe._http import RetryPolicy
from odsframe.download import download

download(sys.argv[1], "sample-events", sys.argv[2], chunk_rows=2000, workers=1,
         progress=False, retry=RetryPolicy(backoff=0.01))
"""


def _complete_chunks(folder: Path) -> int:
    try:
        payload = json.loads((folder / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return sum(chunk["status"] == "complete" for chunk in payload["chunks"])


def test_killed_download_resumes_with_the_missing_chunks(
    portal: LocalPortal, no_faults: Faults, tmp_path: Path
) -> None:
    folder = tmp_path / "killed"
    no_faults.configure("path=*/exports/*,delay=0.4")  # slow chunks: time to kill in between
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, portal.url, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _complete_chunks(folder) == 0:
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the child completed no chunk in time"
            time.sleep(0.02)
    finally:
        child.kill()
        child.communicate()
    killed = load_manifest(folder)
    missing = [chunk.index for chunk in killed.chunks if chunk.status != "complete"]
    assert 0 < len(missing) < len(killed.chunks), "killed before the end, after one chunk"

    no_faults.configure([])
    no_faults.reset()
    resumed = download(portal.url, EVENTS, folder, chunk_rows=2000, progress=False, retry=FAST)
    assert exports_made(no_faults) == len(missing)
    assert [c.sha256 for c in resumed.chunks if c.index not in missing] == [
        c.sha256 for c in killed.chunks if c.index not in missing
    ]
    assert not list(folder.glob(".*.part"))
    frame = read_parts(resumed)
    assert sorted(frame["event_id"]) == sorted(single_export(portal, EVENTS, tmp_path)["event_id"])


# -- a dataset that changes -------------------------------------------------------------------

CHANGING = "changing"
CHANGING_ROWS = 6000
FIRST_DAY = date(2020, 1, 1)


def _changing_catalog() -> Catalog:
    catalog = Catalog()
    days = [
        None if i % 13 == 0 else FIRST_DAY + timedelta(days=(i * 7919) % 1500)
        for i in range(CHANGING_ROWS)
    ]
    catalog.add_dataset(
        PortalDataset(
            dataset_id=CHANGING,
            table="",
            fields=[
                PortalField("n", "int", "N", annotations={"id": []}),
                PortalField("day", "date", "Day"),
                PortalField("label", "text", "Label"),
            ],
            metas={"default": {"title": "Changes between runs"}},
            processed_at=datetime(2024, 1, 1, tzinfo=UTC),
        ),
        pa.table(
            {
                "n": pa.array(range(CHANGING_ROWS), pa.int64()),
                "day": pa.array(days, pa.date32()),
                "label": [f"label {i % 97}" for i in range(CHANGING_ROWS)],
            }
        ),
    )
    return catalog


def test_changed_dataset_starts_over(tmp_path: Path) -> None:
    catalog = _changing_catalog()
    with LocalPortal(catalog=catalog) as local:
        first = download(
            local.url, CHANGING, tmp_path, order_by="day", chunk_rows=1000, progress=False
        )
        assert (first.chunk_field, first.chunk_field_type) == ("day", "date")
        assert first.chunks[-1].where == "`day` IS NULL"  # a reserved word, quoted
        assert sorted(read_parts(first)["n"]) == list(range(CHANGING_ROWS))

        dataset = catalog.datasets[CHANGING]
        catalog.con.execute(f'DELETE FROM "{dataset.table}" WHERE n >= 5000')
        metas = dataset.metas["default"]
        metas["records_count"] = 5000
        metas["data_processed"] = "2024-06-01T00:00:00+00:00"
        with pytest.warns(DatasetChangedWarning, match="changed since the download"):
            second = download(
                local.url, CHANGING, tmp_path, order_by="day", chunk_rows=1000, progress=False
            )
    assert second.total == 5000
    assert sorted(read_parts(second)["n"]) == list(range(5000))
    assert second.data_processed == "2024-06-01T00:00:00+00:00"
    assert {path.name for path in tmp_path.iterdir()} == {
        MANIFEST_NAME,
        *(chunk.file for chunk in second.chunks),
    }


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "xlsx"}, "format: 'xlsx' cannot be downloaded in chunks"),
        ({"chunk_rows": 0}, "chunk_rows: expected a whole number >= 1"),
        ({"workers": 2.5}, "workers: expected a whole number >= 1"),
        ({"where": 3}, "where"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    portal: LocalPortal, no_faults: Faults, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        download(portal.url, EVENTS, tmp_path, progress=False, **options)
    assert no_faults.count() == 0


def test_grouped_queries_and_files_as_folders_are_refused(
    portal: LocalPortal, tmp_path: Path
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with open_adapter(portal.url) as adapter:
        with pytest.raises(InvalidQueryArgument, match="group_by"):
            download_parts(adapter, Query(EVENTS, group_by="category"), tmp_path / "g")
        with pytest.raises(InvalidQueryArgument, match="is not a folder"):
            download_parts(adapter, Query(EVENTS), a_file)


def test_manifest_repr_and_files(portal: LocalPortal, tmp_path: Path) -> None:
    manifest = download(portal.url, "sample-districts", tmp_path, progress=False)
    assert isinstance(manifest, Manifest)
    assert "20 of 20 rows" in repr(manifest)
    copy = tmp_path.parent / "copy"
    shutil.copytree(tmp_path, copy)
    moved = read_parts(copy)  # a folder works too, wherever it was moved
    assert len(moved) == 20
