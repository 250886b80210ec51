"""The deterministic sample datasets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import shapely

from odsframe._spec import FIELD_TYPES
from odsframe.testing.catalog import Catalog
from odsframe.testing.sample import (
    BUDGET_ID,
    DISTRICTS_ID,
    EVENTS_ID,
    PRICES_ID,
    SAMPLE_IDS,
    STATIONS_ID,
    THUMBNAIL_SUFFIX,
    TREES_ID,
    build_sample,
    sample_tables,
)

RECORDS = 600


def query(catalog: Catalog, sql: str) -> list[dict[str, Any]]:
    return catalog.con.sql(sql).to_arrow_table().to_pylist()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog()
    build_sample(catalog, RECORDS, workdir=tmp_path_factory.mktemp("sample"))
    return catalog


def test_datasets_and_sizes(sample: Catalog) -> None:
    assert sorted(sample.datasets) == sorted(SAMPLE_IDS)
    counts = {dataset_id: sample.get(dataset_id).records_count for dataset_id in SAMPLE_IDS}
    assert counts == {
        EVENTS_ID: RECORDS,
        STATIONS_ID: 150,
        TREES_ID: 400,
        DISTRICTS_ID: 20,
        PRICES_ID: 720,
        BUDGET_ID: 60,
    }
    for dataset in sample:
        (count,) = sample.con.execute(f"SELECT count(*) FROM {dataset.table}").fetchall()[0]
        assert count == dataset.records_count


def test_every_field_type_and_annotation_is_used(sample: Catalog) -> None:
    fields = [f for dataset in sample for f in dataset.fields]
    assert {f.type for f in fields} == FIELD_TYPES
    assert any(f.multivalued for f in fields)
    assert any(f.hierarchical_separator == "/" for f in fields)
    assert any(f.is_facet and f.type in ("date", "datetime") for f in fields)
    assert any(f.disjunctive for f in fields)
    precisions = {f.date_precision for f in fields if f.type == "date"}
    assert precisions == {"day", "month", "year"}
    assert all(
        any(f.is_id for f in sample.get(i).fields)
        for i in (EVENTS_ID, STATIONS_ID, TREES_ID, DISTRICTS_ID, PRICES_ID)
    )
    assert sample.get(BUDGET_ID).visibility == "restricted"
    assert [d.dataset_id for d in sample if d.is_private] == [BUDGET_ID]
    assert sample.get(TREES_ID).features == ["geo", "analyze", "timeserie", "image"]


def test_record_ids_are_unique(sample: Catalog) -> None:
    for dataset in sample:
        (distinct,) = sample.con.execute(
            f"SELECT count(DISTINCT __id) FROM {dataset.table}"
        ).fetchall()[0]
        assert distinct == dataset.records_count, dataset.dataset_id


def test_shapes_are_valid_points_polygons_and_multipolygons(sample: Catalog) -> None:
    kinds: Counter[str] = Counter()
    for dataset_id, column in ((DISTRICTS_ID, "geom"), (STATIONS_ID, "geo_shape")):
        rows = query(
            sample,
            f"SELECT {column} AS shape, __bbox__{column} AS bbox FROM {sample.get(dataset_id).table}",
        )
        shapes = shapely.from_geojson([r["shape"] for r in rows])
        assert shapely.is_valid(shapes).all()
        kinds.update(json.loads(r["shape"])["type"] for r in rows)
        for shape, row in zip(shapes, rows):
            assert tuple(row["bbox"].values()) == pytest.approx(shapely.bounds(shape).tolist())
    assert kinds == Counter({"Point": 150, "Polygon": 17, "MultiPolygon": 3})


def test_events_look_like_paris_events_across_dst(sample: Catalog) -> None:
    table = sample.get(EVENTS_ID).table
    frame = (
        sample.con.sql(f"SELECT start, location, theme, price, free, tags FROM {table}")
        .to_arrow_table()
        .to_pandas()
    )
    local = pd.to_datetime(frame["start"]).dt.tz_convert("Europe/Paris")
    assert local.dt.hour.between(10, 22).all()
    offsets = {ts.utcoffset().total_seconds() / 3600 for ts in local}
    assert offsets == {1.0, 2.0}
    assert local.min().year == 2021 and local.max().year == 2024
    lats = frame["location"].map(lambda p: p["lat"])
    lons = frame["location"].map(lambda p: p["lon"])
    assert lats.between(48.80, 48.92).all() and lons.between(2.22, 2.45).all()
    assert frame["theme"].str.contains("/").all()
    assert (frame["price"].isna() == frame["free"]).all()
    assert frame["tags"].map(len).max() >= 2


def test_file_field_points_to_generated_images(sample: Catalog) -> None:
    trees = sample.get(TREES_ID)
    photos = [
        json.loads(r["photo"])
        for r in query(sample, f"SELECT photo FROM {trees.table} WHERE photo IS NOT NULL")
    ]
    assert len(photos) == 50  # every 8th of 400 trees
    for photo in photos:
        path = trees.files[photo["id"]]
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert int.from_bytes(data[16:20], "big") == photo["width"] == 64
        assert int.from_bytes(data[20:24], "big") == photo["height"] == 48
        thumbnail = trees.files[photo["id"] + THUMBNAIL_SUFFIX].read_bytes()
        assert int.from_bytes(thumbnail[16:20], "big") == 32
        assert photo["mimetype"] == "image/png" and photo["thumbnail"] is True
    blob = query(sample, f"SELECT caracteristiques FROM {trees.table} LIMIT 1")[0][
        "caracteristiques"
    ]
    assert set(json.loads(blob)) == {"stade", "fosses", "sol"}


def test_attachments_exist(sample: Catalog) -> None:
    stations = sample.get(STATIONS_ID)
    by_id = {a.id: a for a in stations.attachments}
    assert set(by_id) == {"stations_summary_csv", "notice_pdf"}
    summary = by_id["stations_summary_csv"].path.read_text(encoding="utf-8").splitlines()
    assert summary[0] == "commune;stations;capacite_totale"
    assert sum(int(line.split(";")[1]) for line in summary[1:]) == 150
    assert by_id["notice_pdf"].path.read_bytes().startswith(b"%PDF-")
    assert by_id["notice_pdf"].mimetype == "application/pdf"


def test_partial_dates_are_stored_as_first_days(sample: Catalog) -> None:
    months = query(sample, f"SELECT DISTINCT day(month) AS d FROM {sample.get(PRICES_ID).table}")
    assert months == [{"d": 1}]
    years = query(
        sample,
        f"SELECT DISTINCT month(exercice) AS m, day(exercice) AS d FROM {sample.get(BUDGET_ID).table}",
    )
    assert years == [{"m": 1, "d": 1}]


def test_metadata(sample: Catalog) -> None:
    default = sample.get(EVENTS_ID).metas["default"]
    assert default["timezone"] == "Europe/Paris"
    assert default["data_processed"] == "2024-06-01T08:00:00+00:00"
    assert default["records_count"] == RECORDS
    assert default["keyword"] and default["theme"] and default["title"]
    catalog_rows = query(sample, f"SELECT dataset_id FROM {sample.catalog_dataset().table}")
    assert sorted(r["dataset_id"] for r in catalog_rows) == sorted(set(SAMPLE_IDS) - {BUDGET_ID})


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = sample_tables(300, seed=7, workdir=tmp_path / "a")
    second = sample_tables(300, seed=7, workdir=tmp_path / "b")
    other = sample_tables(300, seed=8, workdir=tmp_path / "c")
    for (d1, t1), (d2, t2) in zip(first, second):
        assert d1.dataset_id == d2.dataset_id
        assert t1.equals(t2), d1.dataset_id
    assert not first[0][1].equals(other[0][1])
    images_a = sorted(p.read_bytes() for p in (tmp_path / "a").rglob("*.png"))
    images_b = sorted(p.read_bytes() for p in (tmp_path / "b").rglob("*.png"))
    assert images_a == images_b and len(images_a) == 24
    # Other datasets do not depend on the events' size.
    smaller = sample_tables(10, seed=7, workdir=tmp_path / "d")
    assert smaller[1][1].equals(first[1][1])


def test_records_argument_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="records must be a non-negative integer"):
        sample_tables(-1, workdir=tmp_path)
    catalog = Catalog()
    build_sample(catalog, 0, workdir=tmp_path)
    assert catalog.get(EVENTS_ID).records_count == 0
