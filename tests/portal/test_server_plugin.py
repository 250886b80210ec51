"""The ``ods_portal`` fixture the odsframe pytest plugin gives users."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from odsframe.testing.portal import LocalPortal
from odsframe.testing.pytest_plugin import SAMPLE_RECORDS


def test_ods_portal_serves_the_sample(ods_portal: LocalPortal) -> None:
    assert ods_portal.running
    assert ods_portal.url.startswith("http://127.0.0.1:")
    assert "sample-events" in ods_portal.catalog.datasets
    answer = requests.get(
        f"{ods_portal.url}/api/explore/v2.1/catalog/datasets/sample-events/records",
        params={"limit": 0},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.json() == {"total_count": SAMPLE_RECORDS, "results": []}
    listing = requests.get(f"{ods_portal.url}/api/explore/v2.1/catalog/datasets", timeout=30)
    ids = {item["dataset_id"] for item in listing.json()["results"]}
    assert "sample-budget-restricted" not in ids  # restricted: hidden without a key
    assert {"sample-events", "sample-trees", "sample-districts"} <= ids


def test_plugin_and_package_import_light() -> None:
    """The plugin loads in every pytest session: it must not pull the server in."""
    code = (
        "import sys, odsframe.testing, odsframe.testing.pytest_plugin; "
        "heavy = ('starlette', 'uvicorn', 'duckdb', 'shapely'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_lazy_exports() -> None:
    import odsframe.testing as testing
    from odsframe.testing.server import create_app

    assert testing.LocalPortal is LocalPortal
    assert testing.create_app is create_app
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope  # type: ignore[attr-defined]


def test_local_portal_validates_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        LocalPortal(tmp_path / "missing")
    with pytest.raises(ValueError, match="quota"):
        LocalPortal(sample=True, quota=-1)
    with pytest.raises(ValueError, match="port"):
        LocalPortal(sample=True, port=70000)
    with pytest.raises(TypeError, match="api_keys"):
        LocalPortal(sample=True, api_keys="one-key")
    with pytest.raises(RuntimeError, match="not running"):
        _ = LocalPortal(sample=True).url
