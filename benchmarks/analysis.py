"""Time aggregations, facets and geo clusters on the 1 000 000-record sample dataset.

Run: ``.venv/bin/python benchmarks/analysis.py [records] [repeat]`` (default 1 000 000 and 7).

For each case it prints the median over ``repeat`` runs of

* **server**: the raw HTTP request of the case's data URL (``requests`` GET + JSON decode on
  a kept-alive session): the portal's work plus one loopback round trip;
* **odsframe**: the whole odsframe call (``read_ods_geocluster`` / ``read_ods_aggregate`` /
  ``read_ods_facets``), which also asks for the dataset metadata and builds the typed frame;
* **overhead**: the median of (odsframe - server) over runs that alternate the two: what the
  client adds beyond the data request (the metadata request, building the frame).

Targets: geo_cluster <= 2 s, a two-key aggregation <= 0.5 s, client overhead <= 50 ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import requests

from odsframe.analysis import read_ods_aggregate, read_ods_facets, read_ods_geocluster
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"
OVERHEAD_TARGET = 0.050


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def paired_medians(
    call: Callable[[], Any], raw: Callable[[], Any], repeat: int
) -> tuple[float, float, float]:
    """Medians of the call, of the raw request, and of their paired differences.

    The two alternate, so that load from other processes falls on both alike.
    """
    calls, raws, differences = [], [], []
    for _ in range(repeat):
        raw_seconds, _ = timed(raw)
        call_seconds, _ = timed(call)
        calls.append(call_seconds)
        raws.append(raw_seconds)
        differences.append(call_seconds - raw_seconds)
    return statistics.median(calls), statistics.median(raws), statistics.median(differences)


def main(records: int, repeat: int) -> None:
    start = time.perf_counter()
    with LocalPortal(sample=True, sample_records=records) as portal, requests.Session() as session:
        print(f"portal with {records:,} events ready in {time.perf_counter() - start:.1f} s\n")
        url = portal.url

        def clusters(zoom: int) -> Callable[[], Any]:
            return lambda: read_ods_geocluster(url, EVENTS, zoom=zoom, session=session)

        cases: list[tuple[str, Callable[[], Any], float]] = [
            (f"geo_cluster zoom {zoom}", clusters(zoom), 2.0) for zoom in (5, 10, 15)
        ]
        cases.append(
            (
                "aggregate by 2 keys",
                lambda: read_ods_aggregate(
                    url,
                    EVENTS,
                    by=["category", "year(start) AS year"],
                    agg={"n": "count(*)", "mean_price": ("price", "mean")},
                    session=session,
                ),
                0.5,
            )
        )
        cases.append(("facets (all 5)", lambda: read_ods_facets(url, EVENTS, session=session), 0))
        header = (
            f"{'case':<22} {'rows':>6} {'server':>9} {'odsframe':>9} {'overhead':>9}  "
            "target (server / overhead)"
        )
        print(header)
        print("-" * len(header))
        for name, call, server_target in cases:
            frame = call()  # warm-up; its provenance names the data request
            data_url = frame.attrs["ods"]["url"]

            def raw(data_url: str = data_url) -> Any:
                response = session.get(data_url, timeout=60)
                response.raise_for_status()
                return response.json()

            total, server, overhead = paired_medians(call, raw, repeat)
            verdicts = []
            if server_target:
                verdicts.append(
                    f"{'ok' if server <= server_target else 'MISSED'} <= {server_target:g} s"
                )
            verdicts.append(
                f"{'ok' if overhead <= OVERHEAD_TARGET else 'MISSED'} "
                f"<= {OVERHEAD_TARGET * 1000:.0f} ms"
            )
            print(
                f"{name:<22} {len(frame):>6} {server * 1000:>7.0f}ms {total * 1000:>7.0f}ms "
                f"{overhead * 1000:>7.1f}ms  {' / '.join(verdicts)}"
            )


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:]]
    main(arguments[0] if arguments else 1_000_000, arguments[1] if len(arguments) > 1 else 7)
