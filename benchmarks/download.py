"""Chunked parallel downloads: time per number of workers, and the client's peak memory.

Run: ``.venv/bin/python benchmarks/download.py [--records N] [--memory-records M]
[--chunk-rows R] [--workers 1 2 4]`` (defaults: 1 000 000 records timed with 1, 2 and 4
workers, after one plain streamed export of everything as the baseline; peak memory while
downloading 5 000 000 records with 4 workers; 100 000 records per chunk).

The portal runs in its own process (``odsframe serve --sample --records N --port 0``), and
each download runs in a child process of its own, whose resident memory is sampled from
``/proc/<pid>/status`` (``VmRSS`` every 10 ms, and the kernel's high-water mark ``VmHWM``).
Target: the peak stays under 500 MB whatever the size, since parts are streamed to disk and
never held in memory. Pass ``--memory-records 0`` to skip the large run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import ROOT, compile_package, sample_portal, status_kb

TARGET_PEAK_MB = 500

_CHILD = """
import json, sys, time
from odsframe.download import download

url, folder, chunk_rows, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
if workers == 0:  # the baseline: one plain streamed export, no planning, no check
    import pyarrow.parquet as pq
    import requests
    path = folder + "/all.parquet"
    with requests.get(url + "/api/explore/v2.1/catalog/datasets/sample-events/exports/parquet",
                      stream=True, timeout=600) as answer, open(path, "wb") as handle:
        answer.raise_for_status()
        for block in answer.iter_content(1 << 16):
            handle.write(block)
        size = handle.tell()
    result = {"rows": pq.ParquetFile(path).metadata.num_rows, "bytes": size, "chunks": 1}
else:
    manifest = download(url, "sample-events", folder, chunk_rows=chunk_rows, workers=workers,
                        progress=False)
    result = {
        "rows": manifest.rows,
        "bytes": sum(chunk.bytes or 0 for chunk in manifest.chunks),
        "chunks": len(manifest.chunks),
    }
result["seconds"] = time.perf_counter() - start
print(json.dumps(result))
"""


@contextlib.contextmanager
def serve(records: int) -> Iterator[str]:
    """The sample portal with ``records`` events, in its own process; yields its URL."""
    with sample_portal(records) as (_, url, ready):
        print(f"# portal with {records:,} records ready in {ready:.1f} s", flush=True)
        yield url


def run_download(url: str, chunk_rows: int, workers: int) -> dict[str, float]:
    """One download in a child process: its result plus the peak RSS seen (MB)."""
    folder = Path(tempfile.mkdtemp(prefix="odsframe-bench-download-"))
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, str(folder), str(chunk_rows), str(workers)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        peak_kb = 0
        while child.poll() is None:
            peak_kb = max(peak_kb, status_kb(child.pid, "VmRSS"), status_kb(child.pid, "VmHWM"))
            time.sleep(0.01)
        output, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the download failed (exit code {child.returncode})")
        result = json.loads(output.strip().splitlines()[-1])
        result["peak_mb"] = peak_kb / 1024
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _row(records: int, workers: int, result: dict[str, float]) -> str:
    shown = str(workers) if workers else "export"
    return (
        f"{records:>10,} {shown:>8} {int(result['chunks']):>7} {result['seconds']:>8.2f}s "
        f"{result['rows'] / result['seconds']:>11,.0f} {result['bytes'] / 2**20:>10.1f} "
        f"{result['peak_mb']:>14.0f}"
    )


HEADER = (
    f"{'records':>10} {'workers':>8} {'chunks':>7} {'time':>9} {'records/s':>11} "
    f"{'MB on disk':>10} {'peak RSS (MB)':>14}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--memory-records", type=int, default=5_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    print("# workers 'export': one plain streamed parquet export of everything (the baseline)")
    print(HEADER, flush=True)
    compile_package()
    with serve(args.records) as url:
        for workers in [0, *args.workers]:
            result = run_download(url, args.chunk_rows, workers)
            assert result["rows"] == args.records, result
            print(_row(args.records, workers, result), flush=True)
    if args.memory_records:
        with serve(args.memory_records) as url:
            workers = max(args.workers)
            result = run_download(url, args.chunk_rows, workers)
            assert result["rows"] == args.memory_records, result
            print(_row(args.memory_records, workers, result), flush=True)
            verdict = "OK" if result["peak_mb"] < TARGET_PEAK_MB else "OVER TARGET"
            print(
                f"# peak RSS {result['peak_mb']:.0f} MB (target < {TARGET_PEAK_MB} MB): {verdict}"
            )


if __name__ == "__main__":
    main()
