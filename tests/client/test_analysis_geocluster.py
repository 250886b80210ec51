"""read_ods_geocluster against the local portal.

The reference is ``odsframe.testing.geocluster.cluster_points`` (ODS's clustering, reproduced)
run here on the portal's own points: counts, centroids (means of member points), hulls and
per-cluster aggregates must agree with it, cluster by cluster, in the portal's order.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import shapely
from helpers import portal_frame
from matplotlib.collections import PathCollection

from odsframe import analysis
from odsframe.analysis import choose_zoom, read_ods_geocluster, zoom_for_bbox
from odsframe.errors import InvalidQueryArgument
from odsframe.plotting import plot_clusters
from odsframe.testing.catalog import Catalog
from odsframe.testing.geocluster import cluster_points, cluster_summary
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"


@pytest.fixture(scope="module")
def events(sample_catalog: Catalog) -> pd.DataFrame:
    return portal_frame(
        sample_catalog,
        EVENTS,
        "SELECT category, price, attendance, location.lon AS lon, location.lat AS lat "
        "FROM {table} ORDER BY __rowid",
    )


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labelled(points: pd.DataFrame, zoom: int, radius: int = 40) -> pd.DataFrame:
    """``points`` with a ``label`` column: their cluster as ODS makes it."""
    points = points.dropna(subset=["lon", "lat"])
    labels = cluster_points(points["lat"].to_numpy(), points["lon"].to_numpy(), zoom, radius)
    return points.assign(label=labels)


@pytest.mark.parametrize(("zoom", "radius"), [(11, 40), (13, 40), (13, 80), (16, 40)])
def test_clusters_equal_the_reference(
    sample_portal: LocalPortal, events, zoom: int, radius: int
) -> None:
    gdf = read_ods_geocluster(
        sample_portal.url, EVENTS, zoom=zoom, radius=radius, where={"category": "Concert"}
    )
    members = labelled(events[events["category"] == "Concert"], zoom, radius)
    summary = cluster_summary(members["lat"], members["lon"], members["label"])
    assert gdf.crs == "EPSG:4326"
    assert list(gdf.columns) == ["count", "geometry"]
    assert gdf["count"].dtype == "Int64"
    assert len(gdf) == len(summary.count) > 1
    assert gdf["count"].tolist() == summary.count.tolist()
    assert gdf["count"].sum() == len(members)
    np.testing.assert_allclose(gdf.geometry.x, summary.lon, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gdf.geometry.y, summary.lat, rtol=0, atol=1e-9)


def test_hulls_are_valid_and_hold_their_members(sample_portal: LocalPortal, events) -> None:
    zoom = 14
    gdf = read_ods_geocluster(sample_portal.url, EVENTS, zoom=zoom, hulls=True)
    members = labelled(events, zoom)
    assert list(gdf.columns) == ["count", "hull", "geometry"]
    assert gdf["count"].sum() == len(members)
    kinds = set()
    for label, group in members.groupby("label"):
        hull = gdf["hull"].iloc[label]
        points = shapely.points(group[["lon", "lat"]].to_numpy())
        distinct = len(group[["lon", "lat"]].drop_duplicates())
        expected = {1: "Point", 2: "LineString"}.get(distinct, "Polygon")
        assert hull.geom_type == expected
        assert hull.is_valid
        assert shapely.covers(hull.buffer(1e-9), points).all()
        kinds.add(hull.geom_type)
    assert "Polygon" in kinds


def test_aggregates_per_cluster(sample_portal: LocalPortal, events) -> None:
    zoom = 12
    gdf = read_ods_geocluster(
        sample_portal.url,
        EVENTS,
        zoom=zoom,
        agg={
            "mean_price": ("price", "mean"),
            "most_attendance": ("attendance", "max"),
            "records": "count(*)",
        },
    )
    members = labelled(events, zoom)
    grouped = members.groupby("label")
    assert list(gdf.columns) == ["count", "mean_price", "most_attendance", "records", "geometry"]
    np.testing.assert_allclose(gdf["mean_price"].to_numpy(float), grouped["price"].mean())
    assert gdf["most_attendance"].tolist() == grouped["attendance"].max().tolist()
    assert gdf["records"].tolist() == gdf["count"].tolist()
    series = gdf.attrs["ods_clusters"]["series"]
    assert series["mean_price"]["max"] == pytest.approx(grouped["price"].mean().max())


def test_zoom_from_the_extent_of_the_points(sample_portal: LocalPortal, events) -> None:
    gdf = read_ods_geocluster(sample_portal.url, EVENTS, where={"category": "Danse"})
    dance = events[events["category"] == "Danse"]
    extent = (dance["lon"].min(), dance["lat"].min(), dance["lon"].max(), dance["lat"].max())
    zoom = zoom_for_bbox(extent)
    assert gdf.attrs["ods"]["query"]["zoom"] == zoom
    assert gdf["count"].tolist() == np.bincount(labelled(dance, zoom)["label"]).tolist()

    small = read_ods_geocluster(sample_portal.url, EVENTS, zoom=None, width_px=200)
    assert small.attrs["ods"]["query"]["zoom"] == zoom_for_bbox(
        (events["lon"].min(), events["lat"].min(), events["lon"].max(), events["lat"].max()),
        width_px=200,
    )


def test_zoom_from_the_bbox(sample_portal: LocalPortal, events) -> None:
    box = (2.30, 48.84, 2.36, 48.88)
    gdf = read_ods_geocluster(sample_portal.url, EVENTS, bbox=box)
    zoom = zoom_for_bbox(box)
    assert gdf.attrs["ods"]["query"]["zoom"] == zoom
    inside = events[events["lon"].between(box[0], box[2]) & events["lat"].between(box[1], box[3])]
    assert gdf["count"].sum() == len(inside)
    assert gdf["count"].tolist() == np.bincount(labelled(inside, zoom)["label"]).tolist()


def test_choose_zoom_aims_at_a_number_of_clusters(sample_portal: LocalPortal, events) -> None:
    target = 25
    zoom = choose_zoom(sample_portal.url, EVENTS, target_clusters=target)
    found = labelled(events, zoom)["label"].max() + 1
    more = labelled(events, zoom + 1)["label"].max() + 1
    assert found <= target < more


def test_choose_zoom_edges(sample_portal: LocalPortal, events) -> None:
    one = choose_zoom(sample_portal.url, EVENTS, target_clusters=1)
    assert labelled(events, one)["label"].max() == 0 < labelled(events, one + 1)["label"].max()
    assert choose_zoom(sample_portal.url, EVENTS, where="price > 100000") == 0
    with pytest.raises(InvalidQueryArgument, match="target_clusters"):
        choose_zoom(sample_portal.url, EVENTS, target_clusters=0)


def test_no_matching_point_gives_an_empty_frame(sample_portal: LocalPortal) -> None:
    gdf = read_ods_geocluster(
        sample_portal.url,
        EVENTS,
        where="price > 100000",
        hulls=True,
        agg={"mean_price": ("price", "mean")},
    )
    assert gdf.empty and gdf.crs == "EPSG:4326"
    assert list(gdf.columns) == ["count", "hull", "mean_price", "geometry"]
    assert gdf["count"].dtype == "Int64" and gdf["mean_price"].dtype == "Float64"
    assert gdf.attrs["ods"]["query"]["zoom"] == 0  # no extent to fit


def test_default_field_and_provenance(sample_portal: LocalPortal, recording_session) -> None:
    gdf = read_ods_geocluster(
        sample_portal.url, "sample-bike-stations", zoom=13, session=recording_session
    )
    ods = gdf.attrs["ods"]
    assert ods["kind"] == "geocluster" and ods["dataset"] == "sample-bike-stations"
    assert ods["query"]["field"] == "coordonnees_geo"
    assert (ods["query"]["zoom"], ods["query"]["radius"]) == (13, 40)
    assert ods["url"] in recording_session.urls
    assert gdf["count"].sum() == 150


@pytest.mark.parametrize(
    ("dataset", "arguments", "message"),
    [
        ("sample-bike-stations", {"field": "geo_shape"}, "only geo_point_2d fields"),
        ("sample-bike-stations", {"field": "nowhere"}, "no field 'nowhere'"),
        ("sample-monthly-prices", {}, "no geo_point_2d field"),
        (EVENTS, {"zoom": 26}, "between 0 and 25"),
        (EVENTS, {"zoom": "12"}, "zoom: expected"),
        (EVENTS, {"radius": 0}, "radius"),
        (EVENTS, {"agg": {"count": "count(*)"}}, "cluster frame makes itself"),
        (EVENTS, {"hulls": "yes"}, "hulls"),
    ],
)
def test_bad_arguments_are_named(
    sample_portal: LocalPortal, dataset: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        read_ods_geocluster(sample_portal.url, dataset, **arguments)


def test_clusters_plot_as_a_map(sample_portal: LocalPortal) -> None:
    assert analysis.plot_clusters is plot_clusters
    gdf = read_ods_geocluster(sample_portal.url, EVENTS, zoom=12, hulls=True)
    ax = plot_clusters(gdf, hulls=True)
    circles = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(circles) == 1 and len(circles[0].get_offsets()) == len(gdf)
    np.testing.assert_allclose(circles[0].get_offsets()[:, 0], gdf.geometry.x)
