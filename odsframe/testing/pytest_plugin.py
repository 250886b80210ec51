"""pytest plugin: fixtures for testing code against a local ODS portal.

Registered as the ``odsframe`` pytest plugin, it gives every test session an ``ods_portal``
fixture: a :class:`~odsframe.testing.LocalPortal` over the sample datasets, started once per
session on a free port of 127.0.0.1::

    def test_my_pipeline(ods_portal):
        df = my_pipeline(ods_portal.url, "sample-bike-stations")
        assert len(df) > 0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from odsframe.testing.portal import LocalPortal

#: Records of the large sample dataset served by ``ods_portal`` (small, so sessions start fast).
SAMPLE_RECORDS = 1_000


@pytest.fixture(scope="session")
def ods_portal() -> Iterator[LocalPortal]:
    """A running local ODS portal with the sample datasets (``.url``, ``.catalog``)."""
    from odsframe.testing.portal import LocalPortal

    with LocalPortal(sample=True, sample_records=SAMPLE_RECORDS) as portal:
        yield portal
