"""The examples of the documentation run, so the docs cannot drift from the code.

The conventions, stated at the top of each page of ``docs/``:

* a ```` ```python ```` block runs. The blocks of a page run in order in one namespace, like
  the cells of a notebook. ``http://127.0.0.1:8000`` (where ``odsframe serve`` listens by
  default) stands for the portal: the test replaces it with the URL of a
  ``LocalPortal(sample=True, api_keys=["demo-key"])`` started for the test, which serves what
  ``odsframe serve --sample --api-key demo-key`` serves;
* a ```` ```text output ```` block right after a python block is what that block prints
  (the portal URL written as ``http://127.0.0.1:8000``); a line holding only ``...`` stands
  for any number of lines;
* a ```` ```python notest ```` block (it needs a real portal) is compiled, not run;
* a ```` ```python pytest ```` block is a test module, run by pytest in a subprocess.

Besides the blocks, the reference tables of the pages are checked against the code: the
dtypes per ODS type, the sample datasets, the ``odsframe serve`` options, the install extras,
the error classes and the public names.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import odsframe
from odsframe import cache, errors
from odsframe.testing.portal import LocalPortal

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ("user-guide.md", "local-portal.md", "api-versions.md")
#: The portal URL the examples are written with (``odsframe serve``'s default address).
DOC_PORTAL = "http://127.0.0.1:8000"
#: The key the examples' portal accepts (``odsframe serve --api-key demo-key``).
DOC_API_KEY = "demo-key"
_FENCE = re.compile(r"^```(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # of the opening fence, 1-based
    language: str
    tags: tuple[str, ...]
    code: str
    output: str | None = None  # the ```text output block that follows, if any

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def parse_blocks(page: str) -> list[Block]:
    """The fenced blocks of ``docs/<page>``, each python block with the output after it."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    raw: list[tuple[int, str, list[str], str]] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        info = match["info"].split()
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index] != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise AssertionError(f"docs/{page}:{start + 1}: code block never closed")
        language = info[0] if info else ""
        raw.append((start, language, info[1:], "\n".join(body) + "\n"))
        index += 1
    blocks: list[Block] = []
    for position, (start, language, tags, code) in enumerate(raw):
        if language == "text" and "output" in tags:
            continue  # attached to the python block before it
        output = None
        if position + 1 < len(raw):
            next_start, next_language, next_tags, next_code = raw[position + 1]
            between = lines[start + code.count("\n") + 2 : next_start]
            if next_language == "text" and "output" in next_tags:
                if language != "python" or any(line.strip() for line in between):
                    raise AssertionError(
                        f"docs/{page}:{next_start + 1}: an output block must follow a "
                        "python block directly"
                    )
                output = next_code
        blocks.append(Block(page, start + 1, language, tuple(tags), code, output))
    return blocks


def runnable(page: str) -> list[Block]:
    return [block for block in parse_blocks(page) if block.language == "python" and not block.tags]


def _output_pattern(expected: str) -> re.Pattern[str]:
    parts = []
    for line in expected.strip("\n").splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(re.escape(line.rstrip()) + r"\n")
    return re.compile("".join(parts))


def _normalised(text: str, portal_url: str) -> str:
    text = text.replace(portal_url, DOC_PORTAL)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def run_page(page: str, portal_url: str) -> dict[str, Any]:
    """Run the python blocks of a page in order; fail naming the block that failed."""
    namespace: dict[str, Any] = {"__name__": f"docs_{page.replace('-', '_')}"}
    for block in runnable(page):
        code = block.code.replace(DOC_PORTAL, portal_url)
        printed = io.StringIO()
        try:
            compiled = compile(code, block.where, "exec")
            with contextlib.redirect_stdout(printed):
                exec(compiled, namespace)
        except Exception:
            pytest.fail(
                f"{block.where}: the example failed\n{block.code}\n{traceback.format_exc()}",
                pytrace=False,
            )
        if block.output is not None:
            shown = _normalised(printed.getvalue(), portal_url)
            if not _output_pattern(block.output).fullmatch(shown):
                pytest.fail(
                    f"{block.where}: the example printed\n{shown}\n"
                    f"but the page shows\n{block.output}",
                    pytrace=False,
                )
    return namespace


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def docs_portal() -> Iterator[LocalPortal]:
    """What ``odsframe serve --sample --api-key demo-key`` serves, on a free port."""
    with LocalPortal(sample=True, api_keys=[DOC_API_KEY]) as portal:
        yield portal


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh cache, no key in the environment, a scratch working folder, no plot windows."""
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    for name in ("ODS_APIKEY", "ODS_API_KEY", "HUWISE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    cache.set_cache_dir(None)
    import matplotlib

    matplotlib.use("Agg")
    yield tmp_path
    import matplotlib.pyplot as plt

    plt.close("all")
    cache.set_cache_dir(None)


# --------------------------------------------------------------------------------------------
# The examples


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str, docs_portal: LocalPortal, docs_env: Path) -> None:
    assert runnable(page), f"docs/{page} has no runnable example"
    run_page(page, docs_portal.url)


def test_notest_examples_compile() -> None:
    blocks = [
        block
        for page in PAGES
        for block in parse_blocks(page)
        if block.language == "python" and "notest" in block.tags
    ]
    for block in blocks:
        compile(block.code, block.where, "exec")


def test_pytest_examples_pass(tmp_path: Path) -> None:
    blocks = [
        block
        for page in PAGES
        for block in parse_blocks(page)
        if block.language == "python" and "pytest" in block.tags
    ]
    assert blocks, "the pytest fixture example is missing"
    for number, block in enumerate(blocks):
        path = tmp_path / f"test_doc_example_{number}.py"
        path.write_text(block.code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
            cwd=tmp_path,
            env={**os.environ, cache.CACHE_DIR_ENV: str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"
        assert " passed" in result.stdout, result.stdout


def test_code_blocks_are_labelled() -> None:
    known = {"python", "text", "bash", "json", "console", ""}
    for page in PAGES:
        for block in parse_blocks(page):
            assert block.language in known, f"{block.where}: unknown language {block.language!r}"
            if block.language == "python":
                assert set(block.tags) <= {"notest", "pytest"}, f"{block.where}: {block.tags}"


# --------------------------------------------------------------------------------------------
# Reference tables


def table_rows(page: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading`` (cells stripped)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index(heading)
    rows: list[list[str]] = []
    in_table = False
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                rows.append(cells)
        elif in_table:
            break
    assert rows, f"no table after {heading!r} in docs/{page}"
    return rows[1:]  # without the header


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_dtype_table_matches_frames(docs_portal: LocalPortal, docs_env: Path) -> None:
    rows = table_rows("user-guide.md", "## Column types")
    seen_types = set()
    frames: dict[str, Any] = {}
    for row in rows:
        ods_type, dtype, example = row[0], row[1], row[2]
        seen_types.add(_code(ods_type)[0])
        dataset, column = _code(example)[0].split(".")
        if dataset not in frames:
            frames[dataset] = odsframe.read_ods(docs_portal.url, dataset, api_key=DOC_API_KEY)
        actual = str(frames[dataset][column].dtype)
        assert actual == _code(dtype)[0], f"{ods_type}: {dataset}.{column} is {actual}"
    from odsframe._spec import FIELD_TYPES

    assert seen_types == set(FIELD_TYPES)


def test_sample_table_matches_catalog(docs_portal: LocalPortal) -> None:
    rows = table_rows("local-portal.md", "## Sample datasets")
    catalog = docs_portal.catalog
    listed = set()
    for row in rows:
        dataset_id = _code(row[0])[0]
        listed.add(dataset_id)
        dataset = catalog.get(dataset_id)
        rows_cell = row[1].replace(",", "")
        if dataset_id == "sample-events":
            assert "records" in rows_cell, row
        else:
            assert int(rows_cell) == dataset.records_count, row
        documented = dict(re.findall(r"`([^`]+)` \(([^)]+)\)", row[2]))
        actual = {
            field.name: field.type + (", multivalued" if field.multivalued else "")
            for field in dataset.fields
        }
        assert documented == actual, f"{dataset_id}: {documented} != {actual}"
        assert ("restricted" in row[3]) == dataset.is_private, row
    assert listed == set(catalog.datasets)


def test_serve_options_match_the_cli() -> None:
    from odsframe.cli import build_parser

    parser = build_parser()
    commands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    serve = commands.choices["serve"]
    options = {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    documented = {
        _code(row[0])[0].split()[0] for row in table_rows("local-portal.md", "### Options")
    }
    assert documented == options


def test_install_extras_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(project["optional-dependencies"])
    documented = {_code(row[0])[0] for row in table_rows("user-guide.md", "## Install")}
    assert documented == extras


def test_every_error_class_is_documented() -> None:
    text = (DOCS / "user-guide.md").read_text(encoding="utf-8")
    section = text[text.index("## Errors and warnings") :]
    classes = [
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, (errors.ODSError, errors.ODSWarning))
        and value.__module__ == errors.__name__
    ]
    assert "QuotaExceededError" in classes
    for name in [*classes, "ProvenanceError"]:
        assert f"`{name}`" in section, name


def test_every_public_name_is_documented() -> None:
    text = (DOCS / "user-guide.md").read_text(encoding="utf-8")
    for name in odsframe.__all__:
        if name != "__version__":
            assert re.search(rf"`(?:odsframe\.)?{re.escape(name)}\b", text), name


def test_every_accessor_member_is_documented() -> None:
    documented = {
        name.split("(")[0]
        for row in table_rows("user-guide.md", "## Provenance and `df.ods`")
        for name in _code(row[0])
    }
    members = {name for name in vars(odsframe.OdsAccessor) if not name.startswith("_")}
    assert members <= documented, sorted(members - documented)
