"""The code base stays clean: ruff, mypy, and a light ``import odsframe``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", "odsframe", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_clean() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "odsframe", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    result = _run(str(BIN / "mypy"), "odsframe")
    assert result.returncode == 0, result.stdout + result.stderr


HEAVY = ("geopandas", "shapely", "matplotlib", "tqdm", "duckdb", "dask", "starlette", "uvicorn")


def test_import_is_light() -> None:
    code = (
        "import sys, odsframe, odsframe.errors; "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import odsframe pulled in: {result.stdout.strip()}"
