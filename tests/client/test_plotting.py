"""Cluster maps (odsframe.plotting) under the Agg backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as PolygonPatch

from odsframe.errors import ODSWarning
from odsframe.frames.aggregate import geoclusters_from_v1, geoclusters_to_geodataframe
from odsframe.plotting import plot_clusters

KEY = "geo_cluster(geo,6)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def triangle(lon: float, lat: float, half: float) -> dict:
    ring = [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat - half],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture
def clusters():
    rows = [
        (2.35, 48.85, 1000, triangle(2.35, 48.85, 0.2), 12.5),
        (4.83, 45.76, 100, triangle(4.83, 45.76, 0.1), 8.0),
        (5.37, 43.30, 10, {"type": "LineString", "coordinates": [[5.3, 43.2], [5.4, 43.4]]}, 3.0),
        (-1.55, 47.22, 1, {"type": "Point", "coordinates": [-1.55, 47.22]}, 1.0),
    ]
    results = [
        {
            KEY: {"cluster_centroid": {"lat": lat, "lon": lon}},
            "count(*)": count,
            "envelope(geo)": hull,
            "avg(load)": load,
        }
        for lon, lat, count, hull, load in rows
    ]
    return geoclusters_to_geodataframe(results, KEY)


def scatter_of(ax) -> PathCollection:
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(collections) == 1
    return collections[0]


def test_circles_at_centroids_sized_and_coloured_by_count(clusters):
    ax = plot_clusters(clusters)
    scatter = scatter_of(ax)
    offsets = np.asarray(scatter.get_offsets())
    assert offsets.shape == (4, 2)
    np.testing.assert_allclose(offsets[:, 0], clusters.geometry.x)
    np.testing.assert_allclose(offsets[:, 1], clusters.geometry.y)
    sizes = scatter.get_sizes()
    order = np.argsort(clusters["count"].to_numpy(dtype=float))
    assert np.all(np.diff(sizes[order]) > 0)
    assert sizes.max() == pytest.approx(600)
    assert sizes.min() >= 20
    # sqrt scaling: 100 is a tenth of 1000 in count but sqrt(0.1) of the way up in area
    assert sizes[1] == pytest.approx(20 + 580 * math.sqrt(100 / 1000))
    np.testing.assert_allclose(
        np.asarray(scatter.get_array()), clusters["count"].to_numpy(dtype=float)
    )
    assert ax.get_xlabel() == "Longitude"
    assert ax.get_ylabel() == "Latitude"
    mean_lat = float(np.mean(clusters.geometry.y))
    assert ax.get_aspect() == pytest.approx(1 / math.cos(math.radians(mean_lat)))


def test_colorbar_and_size_legend(clusters):
    ax = plot_clusters(clusters, title="Clusters")
    figure = ax.figure
    assert len(figure.axes) == 2
    colorbar_axes = next(a for a in figure.axes if a is not ax)
    assert colorbar_axes.get_ylabel() == "count"
    legend = ax.get_legend()
    assert legend is not None
    assert legend.get_title().get_text() == "count"
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[0] == "1" and labels[-1] == "1,000"
    assert 2 <= len(labels) <= 3
    handles: list[Any] = list(legend.legend_handles)
    marker_sizes = [handle.get_markersize() for handle in handles]
    assert marker_sizes == sorted(marker_sizes)
    assert ax.get_title() == "Clusters"


def test_legend_and_colorbar_can_be_left_out(clusters):
    ax = plot_clusters(clusters, legend=False, colorbar=False)
    assert ax.get_legend() is None
    assert len(ax.figure.axes) == 1


def test_another_column_and_an_existing_axes(clusters):
    _, ax = plt.subplots()
    returned = plot_clusters(clusters, ax=ax, column="avg(load)", cmap="magma", alpha=0.5)
    assert returned is ax
    scatter = scatter_of(ax)
    assert scatter.get_alpha() == 0.5
    assert scatter.get_cmap().name == "magma"
    sizes = scatter.get_sizes()
    assert np.argmax(sizes) == int(np.argmax(clusters["avg(load)"].to_numpy(dtype=float)))
    legend = ax.get_legend()
    assert legend is not None
    assert legend.get_title().get_text() == "avg(load)"
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[0] == "1" and labels[-1] == "12.5"


def test_hulls_are_drawn_beneath_the_circles(clusters):
    ax = plot_clusters(clusters, hulls=True)
    polygons = [p for p in ax.patches if isinstance(p, PolygonPatch)]
    assert len(polygons) == 2  # two Polygon hulls; the LineString is a line, the Point nothing
    assert len(ax.lines) == 1
    scatter = scatter_of(ax)
    assert all(p.get_zorder() < scatter.get_zorder() for p in polygons)
    paris_hull = polygons[0].get_xy()
    assert paris_hull[:, 0].min() == pytest.approx(2.15)
    assert ax.get_xlim()[0] <= 2.15


def test_no_hull_patches_by_default(clusters):
    ax = plot_clusters(clusters)
    assert len(ax.patches) == 0


def test_png_is_written(clusters, tmp_path: Path):
    ax = plot_clusters(clusters, hulls=True, title="PNG")
    path = tmp_path / "clusters.png"
    figure = ax.figure
    assert isinstance(figure, Figure)
    figure.savefig(path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_basemap_failure_is_a_warning_not_an_error(clusters):
    # contextily is not installed here (and there is no network): the map still comes out.
    with pytest.warns(ODSWarning, match="basemap not drawn"):
        ax = plot_clusters(clusters, basemap=True)
    assert len(np.asarray(scatter_of(ax).get_offsets())) == 4


def test_v1_clusters_plot(tmp_path: Path):
    answer = {
        "clusters": [
            {"cluster_center": [48.85, 2.35], "count": 5, "cluster": triangle(2.35, 48.85, 0.1)},
            {
                "cluster_center": [43.3, 5.37],
                "count": 1,
                "cluster": {"type": "Point", "coordinates": [5.37, 43.3]},
            },
        ],
        "count": {"min": 1, "max": 5},
        "clusterprecision": 6,
    }
    ax = plot_clusters(geoclusters_from_v1(answer), hulls=True)
    offsets = np.asarray(scatter_of(ax).get_offsets())
    np.testing.assert_allclose(offsets[0], [2.35, 48.85])
    assert len(ax.patches) == 1


def test_empty_frame_gives_an_empty_map_that_says_so():
    empty = geoclusters_to_geodataframe([], KEY)
    ax = plot_clusters(empty, title="Paris")
    assert "no clusters" in ax.get_title().lower()
    assert "Paris" in ax.get_title()
    assert len(ax.collections) == 0
    assert ax.get_legend() is None
    assert "no clusters" in plot_clusters(empty).get_title().lower()


def test_rows_without_a_value_are_not_drawn(clusters):
    clusters = clusters.copy()
    clusters.loc[0, "count"] = pd.NA
    ax = plot_clusters(clusters)
    assert len(np.asarray(scatter_of(ax).get_offsets())) == 3


def test_missing_column_is_named():
    from odsframe.frames.aggregate import geoclusters_to_geodataframe as build

    gdf = build([{KEY: {"cluster_centroid": {"lat": 1, "lon": 2}}, "count(*)": 3}], KEY)
    with pytest.raises(ValueError, match="'population'"):
        plot_clusters(gdf, column="population")
    with pytest.raises(ValueError, match="'hull'"):
        plot_clusters(gdf, hulls=True)


def test_bad_inputs_are_value_errors(clusters):
    labelled = clusters.assign(label="x")
    with pytest.raises(ValueError, match="'label' must be numeric"):
        plot_clusters(labelled, column="label")
    with pytest.raises(ValueError, match="size_range"):
        plot_clusters(clusters, size_range=(600, 20))
    with pytest.raises(ValueError, match="'geometry'"):
        plot_clusters(pd.DataFrame({"count": [1]}))
    with pytest.raises(ValueError, match="DataFrame"):
        plot_clusters([1, 2, 3])  # type: ignore[arg-type]
