"""Time the sample generator and the catalog loader on large tables.

Run: ``.venv/bin/python benchmarks/sample_load.py [rows ...]`` (default 10 000, 100 000 and
1 000 000). For each size it prints how long :func:`build_sample` takes (generation, DuckDB
load and record ids) and how long :meth:`Catalog.load_file` takes on the same events written
as a ``;`` CSV export (with ``"lat, lon"`` points) and as Parquet.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from odsframe.testing.catalog import Catalog
from odsframe.testing.sample import EVENTS_ID, build_sample


def main(sizes: list[int]) -> None:
    print(f"{'rows':>10} {'build_sample':>13} {'load csv':>10} {'load parquet':>13}")
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="odsframe-bench-") as tmp:
            folder = Path(tmp)
            catalog = Catalog()
            start = time.perf_counter()
            build_sample(catalog, rows, workdir=folder / "work")
            build = time.perf_counter() - start
            table = catalog.get(EVENTS_ID).table
            data = folder / "data"
            data.mkdir()
            catalog.con.execute(
                f"COPY (SELECT event_id, title, category, theme, start, duration_min, price, free,"
                f" attendance, array_to_string(tags, ',') AS tags, venue, arrondissement,"
                f" CAST(location.lat AS VARCHAR) || ', ' || CAST(location.lon AS VARCHAR) AS location"
                f" FROM {table} ORDER BY __rowid) TO '{data / 'events.csv'}' (HEADER, DELIMITER ';')"
            )
            catalog.con.execute(
                f"COPY (SELECT * EXCLUDE (__rowid, __id, __timestamp, __fts) FROM {table}"
                f" ORDER BY __rowid) TO '{data / 'events_pq.parquet'}' (FORMAT parquet)"
            )
            loader = Catalog()
            start = time.perf_counter()
            loader.load_file(data / "events.csv")
            load_csv = time.perf_counter() - start
            start = time.perf_counter()
            loader.load_file(data / "events_pq.parquet")
            load_parquet = time.perf_counter() - start
            assert loader.get("events").records_count == rows
            print(f"{rows:>10,} {build:>12.2f}s {load_csv:>9.2f}s {load_parquet:>12.2f}s")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
