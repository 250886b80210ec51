"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Real captures from live portals, kept beside the repository (never copied into it).
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "ods-real-fixtures"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    assert FIXTURES.is_dir(), f"real fixtures not found at {FIXTURES}"
    return FIXTURES
