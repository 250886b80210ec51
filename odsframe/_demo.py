"""``odsframe demo``: a tour of odsframe on the embedded local portal.

It starts a :class:`~odsframe.testing.LocalPortal` over the sample datasets, then reads the
catalog, a filtered GeoDataFrame (twice: the second read is a cache hit), an aggregation and
geo clusters, and writes a PNG map of the clusters. Everything goes over real HTTP on
127.0.0.1, exactly as it would against a live portal.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

#: The sample datasets the demo reads.
STATIONS = "sample-bike-stations"
EVENTS = "sample-events"


def _section(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


def _show(frame: pd.DataFrame, rows: int = 8) -> None:
    with pd.option_context("display.width", 120, "display.max_columns", 12):
        print(frame.head(rows).to_string(max_colwidth=40))


def run_demo(*, records: int = 20_000, output: Path | None = None) -> Path:
    """Run the tour and return the path of the cluster map it wrote."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import odsframe
    from odsframe import cache
    from odsframe.testing import LocalPortal

    output = Path(output) if output is not None else Path.cwd() / "demo-output"
    output.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="odsframe-demo-cache-") as cache_dir:
        cache.set_cache_dir(Path(cache_dir))
        started = time.perf_counter()
        with LocalPortal(sample=True, sample_records=records) as portal:
            print(
                f"Local ODS portal at {portal.url} (started in {time.perf_counter() - started:.1f} s)"
            )

            _section("1. The catalog: read_ods_catalog(portal)")
            catalog = odsframe.read_ods_catalog(portal.url)
            columns = [
                c for c in ("dataset_id", "title", "records_count", "features") if c in catalog
            ]
            _show(catalog[columns], rows=20)

            _section(
                f"2. A filtered GeoDataFrame: read_ods(portal, {STATIONS!r}, where=..., bbox=...)"
            )
            query: dict[str, Any] = {
                "where": {"capacity": (30, None)},
                "bbox": (2.29, 48.83, 2.40, 48.89),
                "order_by": "capacity DESC",
            }
            t0 = time.perf_counter()
            stations = odsframe.read_ods(portal.url, STATIONS, **query)
            cold = time.perf_counter() - t0
            print(
                f"{type(stations).__name__}: {len(stations)} rows, CRS {getattr(stations, 'crs', None)}"
            )
            plain = [c for c in stations.columns if str(stations[c].dtype) != "geometry"]
            _show(stations[plain[:7]])
            print(
                f"active geometry: {stations.geometry.name!r}, types "
                f"{sorted(set(stations.geometry.geom_type))}"
            )
            print("\ndtypes:")
            print(stations.dtypes.to_string())
            print(f"\nrequest (no key ever): {stations.ods.url}")
            t0 = time.perf_counter()
            again = odsframe.read_ods(portal.url, STATIONS, **query)
            warm = time.perf_counter() - t0
            same = again.equals(stations)
            print(
                f"first read {cold * 1000:.0f} ms; second read from the cache {warm * 1000:.0f} ms "
                f"(identical: {same})"
            )

            _section(f"3. An aggregation: read_ods_aggregate(portal, {EVENTS!r}, by=..., agg=...)")
            table = odsframe.read_ods_aggregate(
                portal.url,
                EVENTS,
                by="category",
                agg={
                    "events": "count(*)",
                    "mean_price": ("price", "mean"),
                    "attendance": ("attendance", "sum"),
                },
                order_by="events DESC",
            )
            _show(table, rows=12)

            _section(f"4. Geo clusters: read_ods_geocluster(portal, {EVENTS!r}, zoom=12)")
            clusters = odsframe.read_ods_geocluster(portal.url, EVENTS, zoom=12, hulls=True)
            total = int(clusters["count"].sum())
            print(f"{len(clusters)} clusters holding {total:,} events")
            _show(clusters.drop(columns=[c for c in ("hull",) if c in clusters]), rows=6)
            ax = odsframe.plot_clusters(
                clusters, hulls=True, title=f"{EVENTS}: clusters at zoom 12"
            )
            path = output / "clusters.png"
            figure = ax.get_figure(root=True)
            assert figure is not None
            figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(figure)
            print(f"\nCluster map written to {path}")
    return path
