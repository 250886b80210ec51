"""read_ods gives the same frame whatever API generation it speaks (v2.1, v2.0, v1)."""

from __future__ import annotations

import pandas as pd
import pytest

import odsframe
from odsframe.errors import InvalidQueryArgument
from odsframe.testing import LocalPortal


@pytest.mark.parametrize("version", ["2.0", "1.0"])
@pytest.mark.parametrize(
    ("dataset", "where"),
    [("sample-bike-stations", {"capacity": (20, 40)}), ("sample-districts", None)],
)
def test_same_frame_as_v21(
    sample_portal: LocalPortal, version: str, dataset: str, where: object
) -> None:
    reference = odsframe.read_ods(sample_portal.url, dataset, where=where, cache=False)
    other = odsframe.read_ods(
        sample_portal.url, dataset, where=where, cache=False, api_version=version
    )
    assert other.attrs["ods"]["api_version"] == version
    assert len(other) == len(reference) > 0
    key = reference.columns[0]
    pd.testing.assert_frame_equal(
        other.sort_values(key).reset_index(drop=True),
        reference.sort_values(key).reset_index(drop=True),
        check_like=False,
    )


def test_refresh_keeps_the_api_version(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods(sample_portal.url, "sample-districts", api_version="2.0", cache=False)
    again = frame.ods.refresh()
    assert again.attrs["ods"]["api_version"] == "2.0"
    assert len(again) == len(frame)


def test_unknown_api_version_is_refused(sample_portal: LocalPortal) -> None:
    with pytest.raises(InvalidQueryArgument, match="api_version"):
        odsframe.read_ods(sample_portal.url, "sample-districts", api_version="3")


def test_drill_down_keeps_the_api_version(sample_portal: LocalPortal) -> None:
    frame = odsframe.read_ods(
        sample_portal.url, "sample-bike-stations", api_version="2.0", cache=False
    )
    table = frame.ods.aggregate(by="commune", agg={"n": "count(*)"})
    assert table.attrs["ods"]["api_version"] == "2.0"
    assert int(table["n"].sum()) == len(frame)
