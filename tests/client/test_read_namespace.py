"""The flat, lazy ``odsframe`` namespace and the registration of ``df.ods``."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

import odsframe

HEAVY = ("geopandas", "shapely", "duckdb", "matplotlib", "tqdm", "dask", "starlette", "uvicorn")


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


#: Submodules ``import odsframe`` may load: ``download`` and ``push`` are functions named like
#: their modules, bound eagerly; they and ``errors`` need only the standard library.
LIGHT_SUBMODULES = ["odsframe._version", "odsframe.download", "odsframe.errors", "odsframe.push"]


def test_import_loads_only_light_submodules() -> None:
    out = run(
        "import sys, odsframe; "
        "print(sorted(m for m in sys.modules if m.startswith('odsframe.'))); "
        "print([m for m in ('pandas', 'numpy', 'requests', 'pyarrow') if m in sys.modules])"
    )
    loaded, heavy = out.splitlines()
    assert set(ast.literal_eval(loaded)) <= set(LIGHT_SUBMODULES)
    assert heavy == "[]"


def test_function_and_module_of_the_same_name() -> None:
    out = run(
        "import odsframe, odsframe.download, odsframe.push; "
        "print(callable(odsframe.download), callable(odsframe.push))"
    )
    assert out.strip() == "True True"


def test_public_names_load_on_first_use_without_heavy_libraries() -> None:
    out = run(
        "import sys, pandas as pd, odsframe; "
        "before = hasattr(pd.DataFrame, 'ods'); "
        "odsframe.read_ods, odsframe.Portal, odsframe.explain; "
        "print(before, hasattr(pd.DataFrame, 'ods')); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert out.splitlines() == ["False True", "[]"]


def test_names_and_dir() -> None:
    from odsframe.portal import Portal
    from odsframe.read import explain, read_ods, read_ods_catalog

    assert odsframe.read_ods is read_ods
    assert odsframe.read_ods_catalog is read_ods_catalog
    assert odsframe.explain is explain
    assert odsframe.Portal is Portal
    assert issubclass(odsframe.IncompleteResultError, odsframe.ODSError)
    assert isinstance(odsframe.__version__, str) and odsframe.__version__
    listed = dir(odsframe)
    for name in ("read_ods", "read_ods_catalog", "explain", "Portal", "Dataset", "__version__"):
        assert name in listed
    assert set(odsframe.__all__) <= set(listed)
    with pytest.raises(AttributeError, match="no attribute 'read_excel'"):
        odsframe.read_excel  # noqa: B018
