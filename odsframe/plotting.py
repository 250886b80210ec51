"""Maps of geo clusters (matplotlib, imported lazily).

:func:`plot_clusters` draws the GeoDataFrame of
:func:`odsframe.frames.aggregate.geoclusters_to_geodataframe` (or of
:func:`~odsframe.frames.aggregate.geoclusters_from_v1`): one circle per cluster at its
centroid, sized and coloured by a column, with a size legend, a colour bar and, when asked,
the cluster hulls and a web basemap.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from odsframe.errors import ODSWarning

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_clusters"]


def plot_clusters(
    gdf: pd.DataFrame,
    *,
    ax: Axes | None = None,
    column: str = "count",
    hulls: bool = False,
    basemap: bool = False,
    cmap: str = "viridis",
    size_range: tuple[float, float] = (20, 600),
    legend: bool = True,
    colorbar: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Draw geo clusters as circles sized and coloured by a column.

    Parameters
    ----------
    gdf
        Clusters in lon/lat (EPSG:4326): a GeoDataFrame, or a DataFrame with a ``geometry``
        column of shapely geometries. Points are drawn where they are; other geometries at
        their centroid. Rows whose ``column`` is missing are not drawn.
    ax
        The Axes to draw on; a new figure is made when omitted.
    column
        Numeric column that sets the circles' size and colour (``count`` by default).
    hulls
        Draw each cluster's ``hull`` geometry (Polygon, or LineString for two points)
        beneath the circles.
    basemap
        Add web map tiles with contextily, when it is installed and the tiles can be fetched.
        Any failure is reported as an :class:`~odsframe.errors.ODSWarning` and the map is
        drawn without tiles.
    cmap
        Matplotlib colour map name.
    size_range
        Smallest and largest marker area (points squared). The area grows with the square
        root of the value: ``area = min + (max - min) * sqrt((v - lo) / (hi - lo))`` with
        ``lo = min(0, smallest value)`` and ``hi`` the largest value.
    legend
        Add a legend of marker sizes for a few representative values.
    colorbar
        Add a colour bar for ``column``.
    title
        Axes title.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter` (``alpha``, ``edgecolor``, ...).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        ``column`` (or ``hull`` with ``hulls=True``, or ``geometry``) is not a column of
        ``gdf``, ``column`` is not numeric, or ``size_range`` is not two increasing
        non-negative numbers.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    geometry_name = _geometry_column(gdf)
    if column not in gdf.columns:
        raise ValueError(
            f"column {column!r} is not in the frame; its columns are {list(gdf.columns)}"
        )
    if hulls and "hull" not in gdf.columns:
        raise ValueError("hulls=True needs a 'hull' column of cluster hull geometries")
    if not (pd.api.types.is_numeric_dtype(gdf[column].dtype)) or pd.api.types.is_bool_dtype(
        gdf[column].dtype
    ):
        raise ValueError(f"column {column!r} must be numeric to size the circles")
    smallest, largest = _check_size_range(size_range)

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8))
    ax.set_xlabel("Longitude")
    ax.set_ylabel("Latitude")

    values = pd.to_numeric(gdf[column], errors="coerce").astype("float64").to_numpy()
    drawn = ~np.isnan(values)
    if not drawn.any():
        ax.set_title(f"{title}: no clusters to show" if title else "No clusters to show")
        return ax

    lons, lats = _coordinates(gdf[geometry_name])
    lons, lats, values = lons[drawn], lats[drawn], values[drawn]
    low, high = min(0.0, float(values.min())), float(values.max())

    if hulls:
        _draw_hulls(ax, gdf["hull"][drawn], cmap=cmap)

    scatter_options: dict[str, Any] = {"edgecolor": "white", "linewidth": 0.5, "alpha": 0.85}
    scatter_options.update(kwargs)
    scatter = ax.scatter(
        lons,
        lats,
        s=_marker_areas(values, low, high, smallest, largest),
        c=values,
        cmap=cmap,
        vmin=float(values.min()),
        vmax=high,
        zorder=3,
        **scatter_options,
    )

    mean_lat = float(np.clip(np.mean(lats), -85.0, 85.0))
    ax.set_aspect(1.0 / math.cos(math.radians(mean_lat)), adjustable="datalim")
    _pad_limits(ax, lons, lats)

    if colorbar:
        ax.figure.colorbar(scatter, ax=ax, label=column, shrink=0.8)
    if legend:
        integral = bool(np.all(np.equal(np.mod(values, 1), 0)))
        shown = _representative_values(float(values.min()), high, integral)
        areas = _marker_areas(np.asarray(shown), low, high, smallest, largest)
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=math.sqrt(area),
                markerfacecolor="lightgrey",
                markeredgecolor="dimgrey",
                label=_format_value(value, integral),
            )
            for value, area in zip(shown, areas)
        ]
        ax.legend(
            handles=handles,
            title=column,
            loc="upper left",
            labelspacing=1.5,
            borderpad=1.0,
            framealpha=0.8,
        )
    if title:
        ax.set_title(title)
    if basemap:
        _add_basemap(ax)
    return ax


def _geometry_column(gdf: Any) -> str:
    if not isinstance(gdf, pd.DataFrame):
        raise ValueError(f"plot_clusters needs a (Geo)DataFrame, not {type(gdf).__name__}")
    name = getattr(gdf, "_geometry_column_name", None) or "geometry"
    if name not in gdf.columns:
        raise ValueError(
            f"the frame has no {name!r} column of cluster points; its columns are "
            f"{list(gdf.columns)}"
        )
    return str(name)


def _check_size_range(size_range: Any) -> tuple[float, float]:
    try:
        smallest, largest = (float(v) for v in size_range)
    except (TypeError, ValueError):
        raise ValueError(f"size_range must be two numbers, got {size_range!r}") from None
    if not (0 <= smallest <= largest):
        raise ValueError(
            f"size_range must be (smallest, largest) with 0 <= smallest <= largest, got {size_range!r}"
        )
    return smallest, largest


def _coordinates(geometries: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    import shapely

    shapes = np.asarray(list(geometries), dtype=object)
    missing = [i for i, g in enumerate(shapes) if g is None or shapely.is_empty(g)]
    if missing:
        raise ValueError(f"cluster rows {missing[:5]} have no geometry")
    points = shapely.centroid(shapes)
    return shapely.get_x(points).astype(float), shapely.get_y(points).astype(float)


def _marker_areas(
    values: np.ndarray, low: float, high: float, smallest: float, largest: float
) -> np.ndarray:
    if high <= low:
        return np.full(len(values), (smallest + largest) / 2.0)
    share = np.sqrt(np.clip((values - low) / (high - low), 0.0, 1.0))
    return smallest + (largest - smallest) * share


def _representative_values(vmin: float, vmax: float, integral: bool) -> list[float]:
    """The smallest, a rounded middle and the largest value, without repeats."""
    if vmax <= vmin:
        return [vmin]
    middle = (vmin + vmax) / 2.0
    digits = 1 - math.floor(math.log10(abs(middle))) if middle else 0
    middle = round(middle, digits)
    if integral:
        middle = float(round(middle))
    picks: list[float] = []
    for value in (vmin, middle, vmax):
        if vmin <= value <= vmax and value not in picks:
            picks.append(value)
    return picks


def _format_value(value: float, integral: bool) -> str:
    return f"{value:,.0f}" if integral else f"{value:.3g}"


def _draw_hulls(ax: Any, hulls: pd.Series, *, cmap: str) -> None:
    import shapely
    from matplotlib.patches import Polygon as PolygonPatch

    colour = _hull_colour(cmap)
    for hull in hulls:
        if hull is None or shapely.is_empty(hull):
            continue
        kind = hull.geom_type
        parts = (
            list(hull.geoms) if kind.startswith("Multi") or kind == "GeometryCollection" else [hull]
        )
        for part in parts:
            if part.geom_type == "Polygon":
                ax.add_patch(
                    PolygonPatch(
                        np.asarray(part.exterior.coords)[:, :2],
                        closed=True,
                        facecolor=colour,
                        edgecolor=colour,
                        alpha=0.25,
                        linewidth=1.0,
                        zorder=2,
                    )
                )
            elif part.geom_type == "LineString":
                xs, ys = np.asarray(part.coords)[:, 0], np.asarray(part.coords)[:, 1]
                ax.plot(xs, ys, color=colour, alpha=0.5, linewidth=1.5, zorder=2)
    ax.autoscale_view()


def _hull_colour(cmap: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[cmap](0.35)


def _pad_limits(ax: Any, lons: np.ndarray, lats: np.ndarray) -> None:
    """Keep a margin around the circles (a single cluster would otherwise fill the axes).

    The margin goes into the data limits, not fixed axis limits, so that the aspect ratio
    can still widen the view.
    """
    x_pad = max(float(np.ptp(lons)) * 0.08, 0.01)
    y_pad = max(float(np.ptp(lats)) * 0.08, 0.01)
    ax.update_datalim(
        [
            (float(lons.min()) - x_pad, float(lats.min()) - y_pad),
            (float(lons.max()) + x_pad, float(lats.max()) + y_pad),
        ]
    )
    ax.autoscale_view()


def _add_basemap(ax: Any) -> None:
    try:
        import contextily

        contextily.add_basemap(ax, crs="EPSG:4326", attribution_size=6)
    except Exception as exc:  # optional decoration: never fail the plot for it
        warnings.warn(
            f"basemap not drawn ({type(exc).__name__}: {exc}); install contextily and check "
            "the network to get map tiles",
            ODSWarning,
            stacklevel=3,
        )
