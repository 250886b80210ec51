"""Local portal speed on the 1,000,000-record sample dataset (issue #3 targets).

Starts ``odsframe serve --sample --records N --port 0`` in a subprocess, then prints start-up
time, p50/p95 latency of a filtered ``records`` page, of a two-key ``group_by`` and of a
full-text ``where``, and the server's peak memory (VmHWM).

Targets on a 2-core machine: start-up <= 10 s, records page p50 <= 20 ms, group_by p50 <= 300 ms,
server RSS < 1.5 GB.

Run: ``.venv/bin/python benchmarks/portal_latency.py [--records 1000000] [--repeat 50]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from _common import compile_package, peak_rss_mb, sample_portal

DATASET = "sample-events"
RECORDS = "/api/explore/v2.1/catalog/datasets/{dataset}/records"

CASES: dict[str, dict[str, str]] = {
    "filtered records page": {
        "where": 'category = "Concert" AND price > 20',
        "order_by": "start DESC",
        "limit": "20",
    },
    "group_by on two keys": {
        "select": "count(*) AS n, avg(price) AS mean_price",
        "group_by": "category, arrondissement",
        "limit": "1000",
    },
    "full-text where": {"where": '"jazz"', "limit": "20"},
    "date histogram (month, Europe/Paris)": {
        "select": "count(*) AS n",
        "group_by": "date_format(start, 'yyyy-MM') AS month",
        "timezone": "Europe/Paris",
        "limit": "100",
    },
}


def measure(
    session: requests.Session, url: str, params: dict[str, str], repeat: int
) -> list[float]:
    timings = []
    target = url + RECORDS.format(dataset=DATASET)
    session.get(target, params=params).raise_for_status()  # warm-up
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = session.get(target, params=params)
        timings.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    compile_package()
    with sample_portal(args.records) as (proc, url, startup):
        session = requests.Session()
        print(f"portal: {url}, {DATASET} with {args.records:,} records")
        print(f"{'measure':<40} {'p50':>10} {'p95':>10}")
        print(f"{'start-up (to first answer)':<40} {startup:>9.2f}s {'':>10}")
        for name, params in CASES.items():
            timings = measure(session, url, params, args.repeat)
            p50 = statistics.median(timings)
            p95 = statistics.quantiles(timings, n=20)[-1]
            print(f"{name:<40} {p50:>8.1f}ms {p95:>8.1f}ms")
        print(f"{'server peak RSS':<40} {peak_rss_mb(proc.pid):>8.0f}MB")


if __name__ == "__main__":
    main()
