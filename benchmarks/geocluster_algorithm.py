"""Speed of the portal's ``geo_cluster`` algorithm on a million points.

Run: ``.venv/bin/python benchmarks/geocluster_algorithm.py [--points N] [--repeat 3]
[--zooms 5,10,15]``.

Two deterministic point sets (seeded, generated here, no data files):

``paris``
    a Paris-area set: 60% around 300 hot spots inside Paris (50-600 m wide, weights
    Pareto-distributed, as shops, trees or addresses gather along streets), 15% spread evenly
    over Paris, 25% over the inner suburbs (6 km Gaussian).
``france``
    a France-wide set: 75% around 120 towns (1-12 km wide, Pareto weights), 25% spread evenly
    over mainland France.

For each set and zoom the table shows the geohash level, the number of occupied cells
(buckets), the number of clusters, and the best wall time of ``cluster_points`` over
``--repeat`` runs, split into bucketing (quantisation, geohash keys, ``np.unique``) and the
rest (mostly the merge pass). Target: well under 2 s for a million points at zooms 5, 10 and 15.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from odsframe.testing import geocluster

TARGET_SECONDS = 2.0


def paris_points(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Paris-area points: hot spots in Paris, an even spread over Paris, the inner suburbs."""
    rng = np.random.default_rng(seed)
    n_spots, n_even = int(n * 0.60), int(n * 0.15)
    n_suburbs = n - n_spots - n_even
    spot_lat = rng.uniform(48.818, 48.900, 300)
    spot_lon = rng.uniform(2.255, 2.415, 300)
    weight = rng.pareto(1.3, 300) + 1
    which = rng.choice(300, n_spots, p=weight / weight.sum())
    spread = rng.uniform(50, 600, 300)[which] / 111_195.0
    lat = np.concatenate(
        [
            spot_lat[which] + rng.normal(0, 1, n_spots) * spread,
            rng.uniform(48.818, 48.900, n_even),
            rng.normal(48.8566, 6_000 / 111_195.0, n_suburbs),
        ]
    )
    lon = np.concatenate(
        [
            spot_lon[which] + rng.normal(0, 1, n_spots) * spread / 0.658,
            rng.uniform(2.255, 2.415, n_even),
            rng.normal(2.3522, 6_000 / 73_180.0, n_suburbs),
        ]
    )
    return lat, lon


def france_points(n: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """France-wide points: towns of Pareto-distributed sizes, and an even spread."""
    rng = np.random.default_rng(seed)
    n_towns = int(n * 0.75)
    town_lat = rng.uniform(43.3, 50.6, 120)
    town_lon = rng.uniform(-1.2, 7.2, 120)
    weight = rng.pareto(1.1, 120) + 1
    which = rng.choice(120, n_towns, p=weight / weight.sum())
    spread = rng.uniform(1_000, 12_000, 120)[which] / 111_195.0
    lat = np.concatenate(
        [
            town_lat[which] + rng.normal(0, 1, n_towns) * spread,
            rng.uniform(42.5, 51.0, n - n_towns),
        ]
    )
    lon = np.concatenate(
        [
            town_lon[which] + rng.normal(0, 1, n_towns) * spread / np.cos(np.radians(46.5)),
            rng.uniform(-4.5, 8.0, n - n_towns),
        ]
    )
    return np.clip(lat, -90, 90), np.clip(lon, -180, 180)


def time_one(lat: np.ndarray, lon: np.ndarray, zoom: int) -> tuple[float, float, int, int]:
    """Wall time of ``cluster_points``, of its bucketing step alone, buckets and clusters."""
    start = time.perf_counter()
    labels = geocluster.cluster_points(lat, lon, zoom)
    total = time.perf_counter() - start
    # the bucketing step on its own: quantise, geohash keys, distinct cells
    start = time.perf_counter()
    q_lat, q_lon = geocluster.quantize_lat_lon(lat, lon)
    keys = geocluster.geohash_long_encode(q_lon, q_lat, geocluster.geohash_level(zoom))
    buckets = np.unique(keys).size
    bucketing = time.perf_counter() - start
    return total, bucketing, buckets, int(labels.max()) + 1 if labels.size else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--zooms", default="5,10,15")
    args = parser.parse_args()
    zooms = [int(z) for z in args.zooms.split(",")]

    print(f"{args.points:,} points, best of {args.repeat} runs (wall seconds)")
    header = f"{'set':<8}{'zoom':>5}{'level':>6}{'buckets':>10}{'clusters':>10}"
    header += f"{'bucketing':>11}{'merge':>8}{'total':>8}  target"
    print(header)
    for name, make in (("paris", paris_points), ("france", france_points)):
        lat, lon = make(args.points)
        for zoom in zooms:
            runs = [time_one(lat, lon, zoom) for _ in range(args.repeat)]
            total, bucketing, buckets, clusters = min(runs)
            verdict = "ok" if total < TARGET_SECONDS else "SLOW"
            print(
                f"{name:<8}{zoom:>5}{geocluster.geohash_level(zoom):>6}{buckets:>10,}"
                f"{clusters:>10,}{bucketing:>11.2f}{total - bucketing:>8.2f}{total:>8.2f}"
                f"  {verdict}"
            )


if __name__ == "__main__":
    main()
