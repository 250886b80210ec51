"""Cold versus warm ``read_ods`` on the 1,000,000-record sample dataset (issue #7 targets).

Starts ``odsframe serve --sample --records N --port 0`` in a subprocess, then times, each in a
fresh Python process (median of ``--repeat`` runs):

* cold: ``read_ods`` with an empty cache folder (download, typing, cache write);
* warm: ``read_ods`` again (one metadata request, then the GeoParquet cache entry);
* floor: ``pyarrow.parquet.read_table`` of the cache entry's file (no typing, no geometry).

Targets: warm within 2x of the floor; the cache at least 20x faster than a cold read.

odsframe is byte-compiled first, as an install is (``_common.compile_package``).

Run: ``.venv/bin/python benchmarks/cache.py [--records 1000000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import compile_package, sample_portal

DATASET = "sample-events"

READ = """
import json, sys, time
t0 = time.perf_counter()
import odsframe
frame = odsframe.read_ods(sys.argv[1], {dataset!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "rows": len(frame),
                   "cache": frame.attrs["ods"].get("cache")}}))
"""

FLOOR = """
import json, sys, time
t0 = time.perf_counter()
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": table.num_rows}))
"""


def run(code: str, arg: str, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code, arg], capture_output=True, text=True, env=env, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import os

    compile_package()
    cold, warm, floor = [], [], []
    with sample_portal(args.records) as (_, url, _):
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="odsframe-bench-cache-") as folder:
                env = {**os.environ, "ODSFRAME_CACHE_DIR": folder}
                first = run(READ.format(dataset=DATASET), url, env)
                assert first["cache"] != "hit", first
                cold.append(float(first["seconds"]))  # type: ignore[arg-type]
                second = run(READ.format(dataset=DATASET), url, env)
                assert second["cache"] == "hit", second
                warm.append(float(second["seconds"]))  # type: ignore[arg-type]
                entry = max(Path(folder).rglob("*.parquet"), key=lambda p: p.stat().st_size)
                floor.append(float(run(FLOOR, str(entry), env)["seconds"]))  # type: ignore[arg-type]

    c, w, f = statistics.median(cold), statistics.median(warm), statistics.median(floor)
    print(f"{DATASET}, {args.records:,} records, median of {args.repeat} fresh processes")
    print(f"{'measure':<44} {'seconds':>8}")
    print(f"{'cold read_ods (download, type, cache write)':<44} {c:>8.2f}")
    print(f"{'warm read_ods (cache hit)':<44} {w:>8.2f}")
    print(f"{'floor: pyarrow.parquet.read_table':<44} {f:>8.2f}")
    print(f"warm / floor = {w / f:.2f} (target <= 2); cold / warm = {c / w:.1f} (target >= 20)")


if __name__ == "__main__":
    main()
