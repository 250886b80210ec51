"""The notebooks run from top to bottom in a fresh kernel and show what they promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, folder: Path) -> Any:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    return notebook


def outputs_of(notebook: Any) -> list[dict[str, Any]]:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def text_of(output: dict[str, Any]) -> str:
    data = output.get("data", {})
    return (
        str(output.get("text", ""))
        + str(data.get("text/plain", ""))
        + str(data.get("text/html", ""))
    )


def test_aggregations_facets_clusters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("ODSFRAME_CACHE_DIR", str(tmp_path / "cache"))
    notebook = execute("aggregations_facets_clusters.ipynb", tmp_path)
    outputs = outputs_of(notebook)
    errors = [output for output in outputs if output.get("output_type") == "error"]
    assert not errors, errors
    assert all(cell.execution_count for cell in notebook.cells if cell.cell_type == "code")
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 3  # the histogram and the two cluster maps
    shown = "\n".join(text_of(output) for output in outputs)
    for expected in ("mean_price", "p90_price", "[10.0, 20.0)", "excluded", "hull"):
        assert expected in shown, expected
    assert "clusters holding 10000 events" in shown
