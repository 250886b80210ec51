"""Full reads of a large dataset by odsframe and by other readers, on the same local portal.

Run: ``.venv/bin/python benchmarks/readers.py [--records N] [--repeat 3] [--readers a,b]``.

One :class:`~odsframe.testing.LocalPortal` serves the sample datasets (``sample-events``
with ``--records`` rows, 1 000 000 by default) in this process. Each reader then runs in a
fresh Python process (this file with ``--child``), ``--repeat`` times, and the table shows
the median wall time of the read (imports excluded), the median peak RSS of the process,
its RSS after the imports and after the read while holding the result (what the result
costs: no peak can be lower), and the rows read:

``odsframe``
    ``odsframe.read_ods(url, "sample-events", cache=False)``: a typed GeoDataFrame.
``odsclient``
    odsclient 0.8.4 ``get_whole_dataframe``: the legacy CSV download, untyped.
``portalkit``
    portalkit 0.1.1 ``Dataset.to_geopandas``: the JSON export, then a GeoDataFrame.
``requests+pandas``
    a plain script: ``requests.get`` of the CSV export, ``pandas.read_csv``.
``floor``
    the parquet export's bytes read by ``pyarrow.parquet.read_table``: no typing, no
    geometry; what any reader must at least do.

Then the time of ``import odsframe`` (and of its first use) against ``import pandas``, and
the targets: odsframe no slower than odsclient, at least 10x faster than portalkit, within
1.5x of the floor, peak memory no more than the floor's process.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import compile_package

DATASET = "sample-events"
PARQUET_EXPORT = "/api/explore/v2.1/catalog/datasets/{dataset}/exports/parquet"
CSV_EXPORT = "/api/explore/v2.1/catalog/datasets/{dataset}/exports/csv"


# -- readers (each runs in its own process) ----------------------------------------------


def read_odsframe(url: str, dataset: str) -> Any:
    import odsframe

    return odsframe.read_ods(url, dataset, cache=False, progress=False)


def read_odsclient(url: str, dataset: str) -> Any:
    from odsclient import get_whole_dataframe

    return get_whole_dataframe(
        dataset, base_url=url, use_labels_for_header=False, use_keyring=False
    )


def read_portalkit(url: str, dataset: str) -> Any:
    import portalkit

    portal = portalkit.open(url, kind="opendatasoft", cache=False)
    return portal.dataset(dataset).to_geopandas()


def read_requests_pandas(url: str, dataset: str) -> Any:
    import io

    import pandas as pd
    import requests

    answer = requests.get(url + CSV_EXPORT.format(dataset=dataset), timeout=600)
    answer.raise_for_status()
    return pd.read_csv(io.BytesIO(answer.content), sep=";")


def read_floor(url: str, dataset: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import requests

    answer = requests.get(url + PARQUET_EXPORT.format(dataset=dataset), timeout=600)
    answer.raise_for_status()
    return pq.read_table(pa.BufferReader(answer.content))


READERS: dict[str, Callable[[str, str], Any]] = {
    "odsframe": read_odsframe,
    "odsclient": read_odsclient,
    "portalkit": read_portalkit,
    "requests+pandas": read_requests_pandas,
    "floor": read_floor,
}
#: Modules each reader imports before its clock starts (imports are timed separately).
WARM_IMPORTS: dict[str, tuple[str, ...]] = {
    "odsframe": ("odsframe.read", "geopandas", "shapely"),
    "odsclient": ("odsclient", "pandas"),
    "portalkit": ("portalkit", "pandas", "geopandas", "shapely"),
    "requests+pandas": ("requests", "pandas"),
    "floor": ("requests", "pyarrow.parquet"),
}


def peak_rss_mb() -> float:
    """The process's peak resident set size in MB.

    ``VmHWM`` is reset by ``exec``; ``ru_maxrss`` is not (a child forked from the portal's
    large process would report the parent's size), so it is only the fallback.
    """
    held = _status_mb("VmHWM:")
    if held is not None:
        return held
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mb() -> float | None:
    """The process's resident set size now, in MB (None where /proc is missing)."""
    return _status_mb("VmRSS:")


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def child(name: str, url: str, dataset: str) -> None:
    """Run one reader and print ``{"seconds", "rss_mb", "start_mb", "held_mb", "rows"}``.

    ``start_mb`` is the RSS once the imports are done, ``held_mb`` the RSS after the read
    while its result is still alive (after a garbage collection): what the result itself
    costs, below which no peak can go.
    """
    import gc
    import importlib

    for module in WARM_IMPORTS[name]:
        importlib.import_module(module)
    start_mb = rss_mb()
    started = time.perf_counter()
    result = READERS[name](url, dataset)
    seconds = time.perf_counter() - started
    rows = int(result.num_rows) if hasattr(result, "num_rows") else len(result)
    gc.collect()
    report = {
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "start_mb": start_mb,
        "held_mb": rss_mb(),
        "rows": rows,
    }
    print(json.dumps(report))


# -- the driver ---------------------------------------------------------------------------


def run_child(name: str, url: str, dataset: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", name, url, dataset],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:160]}
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(name: str, url: str, dataset: str, repeat: int) -> dict[str, Any]:
    runs = [run_child(name, url, dataset) for _ in range(repeat)]
    failed = [run for run in runs if "error" in run]
    if failed:
        return {"name": name, "error": failed[0]["error"]}
    result = {"name": name, "rows": runs[0]["rows"]}
    for key in ("seconds", "rss_mb", "start_mb", "held_mb"):
        values = [run[key] for run in runs if run.get(key) is not None]
        result[key] = statistics.median(values) if values else float("nan")
    return result


def import_seconds(code: str, repeat: int) -> float:
    timer = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", timer], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main(records: int, repeat: int, names: list[str]) -> None:
    from odsframe.testing import LocalPortal

    compile_package()
    print(f"building the sample portal ({records:,} records of {DATASET}) ...", flush=True)
    with LocalPortal(sample=True, sample_records=records) as portal:
        results = []
        for name in names:
            print(f"  {name} ...", flush=True)
            results.append(measure(name, portal.url, DATASET, repeat))

    print()
    print(f"Full read of {DATASET} ({records:,} records), median of {repeat} fresh processes")
    print(
        f"{'reader':<17} {'wall (s)':>9} {'peak RSS (MB)':>14} {'after imports':>14} "
        f"{'holding result':>15} {'rows':>10}"
    )
    for result in results:
        if "error" in result:
            print(f"{result['name']:<17} failed: {result['error']}")
            continue
        print(
            f"{result['name']:<17} {result['seconds']:>9.2f} {result['rss_mb']:>14.0f} "
            f"{result['start_mb']:>14.0f} {result['held_mb']:>15.0f} {result['rows']:>10,}"
        )
    print(
        "(after imports: RSS before the read; holding result: RSS after it, the result "
        "alive; no peak can be lower than that)"
    )

    pandas_s = import_seconds("import pandas", repeat)
    odsframe_s = import_seconds("import odsframe", repeat)
    first_use_s = import_seconds("import odsframe; odsframe.read_ods", repeat)
    print()
    print(f"import pandas                       {pandas_s:6.3f} s")
    print(f"import odsframe                     {odsframe_s:6.3f} s ({odsframe_s / pandas_s:.2f}x)")
    print(
        f"import odsframe + odsframe.read_ods {first_use_s:6.3f} s "
        f"({first_use_s / pandas_s:.2f}x import pandas)"
    )

    by_name = {result["name"]: result for result in results if "error" not in result}
    failed = {result["name"] for result in results if "error" in result}
    ours = by_name.get("odsframe")
    if ours is None:
        return
    print()
    print("Targets")
    checks = [
        ("no slower than odsclient", "odsclient", lambda o, r: o["seconds"] <= r["seconds"]),
        (
            ">= 10x faster than portalkit",
            "portalkit",
            lambda o, r: o["seconds"] * 10 <= r["seconds"],
        ),
        ("within 1.5x of the floor", "floor", lambda o, r: o["seconds"] <= 1.5 * r["seconds"]),
        ("peak RSS <= the floor's", "floor", lambda o, r: o["rss_mb"] <= r["rss_mb"]),
    ]
    for label, other, check in checks:
        if other not in by_name:
            why = "failed" if other in failed else "not run"
            print(f"  {label:<30} n/a ({other} {why})")
            continue
        reference = by_name[other]
        verdict = "met" if check(ours, reference) else "MISSED"
        print(
            f"  {label:<30} {verdict:<7} odsframe {ours['seconds']:.2f} s / "
            f"{ours['rss_mb']:.0f} MB vs {other} {reference['seconds']:.2f} s / "
            f"{reference['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated names")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.readers.split(",") if name.strip()]
    unknown = set(chosen) - set(READERS)
    if unknown:
        parser.error(f"unknown readers: {', '.join(sorted(unknown))}")
    main(args.records, args.repeat, chosen)
