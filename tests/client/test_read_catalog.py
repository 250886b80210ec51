"""``read_ods_catalog`` against local portals: every dataset, typed metadata, filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import odsframe
from odsframe.errors import InvalidQueryArgument
from odsframe.testing.catalog import Catalog
from odsframe.testing.portal import LocalPortal

PUBLIC_SAMPLES = [
    "sample-bike-stations",
    "sample-districts",
    "sample-events",
    "sample-monthly-prices",
    "sample-trees",
]
MANY = 230  # more than two catalog pages of 100


@pytest.fixture(scope="module")
def many_portal(prices: Any) -> Iterator[LocalPortal]:
    catalog = Catalog()
    for number in range(MANY):
        dataset = prices.dataset(f"ds-{number:03d}")
        dataset.metas["default"]["title"] = f"Dataset {number}"
        catalog.add_dataset(dataset, prices.table(number % 4))
    with LocalPortal(catalog=catalog) as portal:
        yield portal


def test_every_dataset_past_the_first_page(
    many_portal: LocalPortal, recording_session: Any
) -> None:
    frame = odsframe.read_ods_catalog(many_portal.url, session=recording_session)
    assert len(frame) == MANY
    assert list(frame["dataset_id"]) == [f"ds-{number:03d}" for number in range(MANY)]
    assert list(frame["records_count"]) == [number % 4 for number in range(MANY)]
    pages = [url for url in recording_session.urls if "/catalog/datasets?" in url]
    assert len(pages) == 3
    assert all("order_by=dataset_id+ASC" in url for url in pages)
    assert frame.attrs["ods"]["records_count"] == MANY


def test_catalog_columns_are_typed(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods_catalog(sample_portal.url)
    assert list(frame["dataset_id"]) == PUBLIC_SAMPLES  # restricted data stays hidden
    assert list(frame.columns[:6]) == [
        "dataset_id",
        "title",
        "publisher",
        "theme",
        "keyword",
        "license",
    ]
    assert isinstance(frame["title"].dtype, pd.StringDtype)
    assert frame["records_count"].dtype == "Int64"
    assert str(frame["modified"].dtype) == "datetime64[us, UTC]"
    assert str(frame["data_processed"].dtype) == "datetime64[us, UTC]"
    assert frame["geo"].dtype == "boolean"
    row = frame.set_index("dataset_id").loc["sample-trees"]
    assert row["records_count"] == 400
    assert row["title"] == "Arbres d'alignement (échantillon)"
    assert row["theme"] == ["Environnement"]
    assert "arbres" in row["keyword"]
    assert "geo" in row["features"]
    assert row["geo"]
    assert "idbase" in row["fields"]
    assert row["data_processed"] == pd.Timestamp("2024-06-01T08:10:00Z")
    assert not frame.set_index("dataset_id").loc["sample-monthly-prices", "geo"]


def test_private_datasets_with_a_key(private_portal: LocalPortal, api_key: str) -> None:
    frame = odsframe.read_ods_catalog(private_portal.url, api_key=api_key)
    assert "sample-budget-restricted" in set(frame["dataset_id"])
    restricted = frame.set_index("dataset_id").loc["sample-budget-restricted"]
    assert restricted["visibility"] == "restricted"


def test_where_refine_and_order(sample_portal: LocalPortal) -> None:
    big = odsframe.read_ods_catalog(sample_portal.url, where="records_count > 300")
    assert list(big["dataset_id"]) == ["sample-events", "sample-monthly-prices", "sample-trees"]
    ordered = odsframe.read_ods_catalog(sample_portal.url, order_by="-records_count")
    assert list(ordered["records_count"]) == sorted(ordered["records_count"], reverse=True)
    refined = odsframe.read_ods_catalog(
        sample_portal.url, refine={"publisher": "Observatoire des prix (échantillon)"}
    )
    assert list(refined["dataset_id"]) == ["sample-monthly-prices"]
    assert refined.attrs["ods"]["query"]["refine"] == [
        'publisher:"Observatoire des prix (échantillon)"'
    ]


def test_timezone_of_the_dates(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods_catalog(sample_portal.url, timezone="Europe/Paris")
    assert str(frame["modified"].dtype) == "datetime64[us, Europe/Paris]"
    utc = odsframe.read_ods_catalog(sample_portal.url)
    pd.testing.assert_series_equal(frame["modified"].dt.tz_convert("UTC"), utc["modified"])


def test_bad_catalog_arguments(recording_session: Any) -> None:
    with pytest.raises(InvalidQueryArgument, match="lang"):
        odsframe.read_ods_catalog("http://127.0.0.1:9", lang="klingon", session=recording_session)
    assert recording_session.urls == []
