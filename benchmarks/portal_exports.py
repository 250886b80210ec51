"""Time the local portal's exports of the large sample dataset and watch the server's memory.

Run: ``.venv/bin/python benchmarks/portal_exports.py [records] [format ...]`` (default
1 000 000 records; parquet, csv, json and geojson). It starts ``odsframe serve --sample
--records N --port 0`` in a subprocess, waits for the base URL it prints, then downloads
``/exports/<format>`` of ``sample-events`` once per format while a thread samples the
server's resident memory (``VmRSS`` in ``/proc/<pid>/status``) every 10 ms. For each format
it prints the time to the first byte, the total time, the bytes received and the server's
peak RSS growth over its RSS just before that export.
"""

from __future__ import annotations

import sys
import threading
import time

import requests
from _common import compile_package, rss_mb, sample_portal

DATASET = "sample-events"
FORMATS = ("parquet", "csv", "json", "geojson")
SAMPLE_EVERY = 0.01


class PeakSampler:
    """Samples a process's RSS in a thread; ``peak`` is the largest value seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(SAMPLE_EVERY)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def export(url: str, fmt: str, pid: int) -> tuple[float, float, int, float, float]:
    """``(ttfb, total, bytes, rss_before, peak_growth)`` of one full export."""
    before = rss_mb(pid)
    with PeakSampler(pid) as sampler:
        start = time.perf_counter()
        first = None
        size = 0
        with requests.get(
            f"{url}/api/explore/v2.1/catalog/datasets/{DATASET}/exports/{fmt}",
            stream=True,
            timeout=600,
        ) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_content(1 << 20):
                if first is None:
                    first = time.perf_counter() - start
                size += len(chunk)
        total = time.perf_counter() - start
    return first or total, total, size, before, sampler.peak - before


def main(records: int, formats: tuple[str, ...]) -> None:
    compile_package()
    with sample_portal(records) as (server, url, ready):
        print(f"portal with {records:,} records ready in {ready:.1f} s at {url}")
        print(f"server RSS after start: {rss_mb(server.pid):.0f} MB")
        print(
            f"{'format':<9} {'first byte':>10} {'total':>8} {'bytes':>14} {'RSS before':>11} "
            f"{'peak growth':>12}"
        )
        for fmt in formats:
            ttfb, total, size, before, growth = export(url, fmt, server.pid)
            print(
                f"{fmt:<9} {ttfb:>9.2f}s {total:>7.2f}s {size:>14,} {before:>9.0f}MB "
                f"{growth:>10.0f}MB"
            )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    count = int(arguments[0]) if arguments and arguments[0].isdigit() else 1_000_000
    chosen = tuple(a for a in arguments if not a.isdigit()) or FORMATS
    main(count, chosen)
