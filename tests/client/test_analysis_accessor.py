"""Drill-down from a read_ods frame: df.ods.aggregate / facets / geocluster / plot_clusters.

Each must equal the explicit call with the frame's source and filters, and agree with the
frame's own records (read_ods returned every matching record).
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import odsframe
from odsframe import analysis, plotting
from odsframe.accessor import ProvenanceError
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"
BOX = (2.30, 48.84, 2.36, 48.88)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def same_frame(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(left, right)
    volatile = {"fetched_at"}
    assert {k: v for k, v in left.attrs["ods"].items() if k not in volatile} == {
        k: v for k, v in right.attrs["ods"].items() if k not in volatile
    }


def test_public_names() -> None:
    assert odsframe.read_ods_aggregate is analysis.read_ods_aggregate
    assert odsframe.read_ods_facets is analysis.read_ods_facets
    assert odsframe.read_ods_geocluster is analysis.read_ods_geocluster
    assert odsframe.choose_zoom is analysis.choose_zoom
    assert odsframe.plot_clusters is plotting.plot_clusters


def test_aggregate_reuses_the_frames_filters(sample_portal: LocalPortal) -> None:
    filters: dict[str, Any] = {"where": "price > 20", "refine": {"category": ["Concert", "Danse"]}}
    frame = odsframe.read_ods(sample_portal.url, EVENTS, cache=False, **filters)
    drilled = frame.ods.aggregate(
        "arrondissement", {"n": "count(*)", "mean": ("attendance", "mean")}
    )
    explicit = odsframe.read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by="arrondissement",
        agg={"n": "count(*)", "mean": ("attendance", "mean")},
        **filters,
    )
    same_frame(drilled, explicit)
    local = frame.groupby("arrondissement")["attendance"].agg(["size", "mean"])
    assert drilled["n"].tolist() == local["size"].tolist()
    assert drilled["mean"].to_numpy(float) == pytest.approx(local["mean"].to_numpy(float))


def test_extra_filters_are_anded_with_the_frames(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods(sample_portal.url, EVENTS, where="price > 20", cache=False)
    drilled = frame.ods.aggregate("free", where="attendance > 180", refine={"tags": "famille"})
    kept = frame[
        (frame["attendance"] > 180) & frame["tags"].map(lambda tags: "famille" in list(tags))
    ]
    assert drilled["count"].tolist() == kept.groupby("free").size().tolist()
    assert drilled.attrs["ods"]["query"]["where"] == ["attendance > 180", "price > 20"]
    assert drilled.attrs["ods"]["query"]["refine"] == ['tags:"famille"']


def test_timezone_and_order_come_along(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods(
        sample_portal.url, EVENTS, where="duration_min > 100", timezone="Europe/Paris", cache=False
    )
    drilled = frame.ods.aggregate("hour(start) AS hour", order_by="-count", limit=3)
    local = frame["start"].dt.hour.value_counts()
    assert drilled["count"].tolist() == local.head(3).tolist()
    assert all(local[hour] == n for hour, n in zip(drilled["hour"], drilled["count"], strict=True))


def test_facets_of_the_frame(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods(sample_portal.url, EVENTS, where="price < 15", cache=False)
    drilled = frame.ods.facets(["category"], exclude={"category": "Atelier"})
    explicit = odsframe.read_ods_facets(
        sample_portal.url,
        EVENTS,
        facets=["category"],
        where="price < 15",
        exclude={"category": "Atelier"},
    )
    same_frame(drilled, explicit)
    shown = drilled[drilled["state"] == "displayed"]
    expected = frame.loc[frame["category"] != "Atelier", "category"].value_counts()
    assert dict(zip(shown["value"], shown["count"], strict=True)) == expected.to_dict()


def test_geocluster_of_a_bbox_read_and_its_map(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods(sample_portal.url, EVENTS, bbox=BOX, cache=False)
    clusters = frame.ods.geocluster(12, hulls=True)
    explicit = odsframe.read_ods_geocluster(
        sample_portal.url, EVENTS, zoom=12, bbox=BOX, hulls=True
    )
    assert clusters["count"].sum() == len(frame) > 0
    assert clusters["count"].tolist() == explicit["count"].tolist()
    assert clusters.geometry.geom_equals(explicit.geometry).all()
    assert clusters.attrs["ods"]["query"]["bbox"] == list(BOX)
    ax = clusters.ods.plot_clusters(hulls=True, title="events")
    assert ax.get_title() == "events"


def test_the_reads_credentials_are_reused(private_portal: LocalPortal, api_key: str) -> None:
    frame = odsframe.read_ods(
        private_portal.url, "sample-budget-restricted", api_key=api_key, cache=False
    )
    drilled = frame.ods.aggregate("service", {"total": ("montant_eur", "sum")})
    local = frame.groupby("service")["montant_eur"].sum()
    assert drilled["total"].to_numpy(float) == pytest.approx(local.to_numpy(float))


def test_frames_without_a_records_source_are_refused(sample_portal: LocalPortal) -> None:
    with pytest.raises(ProvenanceError):
        pd.DataFrame({"a": [1]}).ods.aggregate("a")
    groups = odsframe.read_ods_aggregate(sample_portal.url, EVENTS, by="category")
    with pytest.raises(ProvenanceError, match="'aggregate' frame"):
        groups.ods.facets()
