"""``odsframe.explain``: the exact requests of a read, without the data requests."""

from __future__ import annotations

from typing import Any

import pytest

import odsframe
from odsframe.errors import InvalidQueryArgument
from odsframe.testing.portal import LocalPortal

TREES = "sample-trees"
EVENTS = "sample-events"


def planned_urls(text: str) -> list[str]:
    """The URLs listed under "Requests (n):" in an explanation."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Requests ("))
    return [line.strip().removeprefix("GET ") for line in lines[start + 1 :]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"where": {"domanialite": "Jardin"}},
        {"order_by": "-hauteur_m", "limit": 250, "bbox": (2.25, 48.8, 2.45, 48.9)},
        {"select": ["idbase"], "limit": 42},
    ],
    ids=["where", "ordered-bbox", "one-page"],
)
def test_explain_lists_exactly_the_data_requests_read_ods_makes(
    sample_portal: LocalPortal, kwargs: dict[str, Any], recording_session: Any
) -> None:
    text = odsframe.explain(sample_portal.url, TREES, session=recording_session, **kwargs)
    made_while_explaining = list(recording_session.urls)
    planned = planned_urls(text)
    assert planned and all("/records?" in url for url in planned)
    assert not set(planned) & set(made_while_explaining)  # the data requests are not made
    recording_session.urls.clear()
    odsframe.read_ods(sample_portal.url, TREES, session=recording_session, cache=False, **kwargs)
    assert recording_session.urls == made_while_explaining + planned


def test_explain_a_large_read(sample_portal: LocalPortal, recording_session: Any) -> None:
    text = odsframe.explain(sample_portal.url, EVENTS, session=recording_session)
    assert "route = export" in text
    assert f"/datasets/{EVENTS}/exports/parquet?limit=-1" in text
    assert not any("/exports/parquet" in url for url in recording_session.urls)


def test_offline_explain_makes_no_request(
    sample_portal: LocalPortal, recording_session: Any
) -> None:
    text = odsframe.explain(
        sample_portal.url,
        TREES,
        where="hauteur_m > 10",
        order_by="idbase",
        offline=True,
        session=recording_session,
    )
    assert recording_session.urls == []
    assert "no request made" in text
    assert f"GET {sample_portal.url}/api/explore/v2.1/catalog/datasets/{TREES}" in text
    assert "limit=0&where=hauteur_m+%3E+10" in text
    assert f"/datasets/{TREES}/exports/parquet?limit=-1&order_by=idbase+ASC" in text


def test_offline_spatial_explain_needs_the_geo_field(recording_session: Any) -> None:
    with pytest.raises(InvalidQueryArgument, match="geometry="):
        odsframe.explain("http://127.0.0.1:9", TREES, bbox=(2, 48, 3, 49), offline=True)
    text = odsframe.explain(
        "http://127.0.0.1:9",
        TREES,
        bbox=(2, 48, 3, 49),
        geometry="geo_point_2d",
        offline=True,
        session=recording_session,
    )
    assert "in_bbox%28geo_point_2d" in text
    assert recording_session.urls == []


@pytest.mark.parametrize(
    ("total", "limit", "slices"), [(3_000_000, None, 2), (9_000_001, None, 5), (1_500_000, None, 0)]
)
def test_explain_says_when_a_large_export_is_read_in_slices(
    total: int, limit: int | None, slices: int
) -> None:
    from odsframe.query import Plan
    from odsframe.read import READ_CHUNK_ROWS, _slicing_note, build_query

    plan = Plan.build(
        build_query(EVENTS, limit=limit), total=total, export_formats=["parquet", "csv"]
    )
    assert plan.route == "export"
    note = "\n".join(_slicing_note(plan, READ_CHUNK_ROWS))
    if not slices:
        assert note == ""
    else:
        assert f"about {slices} slices of at most {READ_CHUNK_ROWS:,} records" in note
        assert "where condition on a sortable field" in note


def test_a_limited_export_is_one_part_in_the_explanation() -> None:
    from odsframe.query import Plan
    from odsframe.read import _slicing_note, build_query

    plan = Plan.build(
        build_query(EVENTS, limit=50_000), total=9_000_000, export_formats=["parquet"]
    )
    assert plan.route == "export"
    assert _slicing_note(plan, 10_000) == []
