"""read_ods_facets against the local portal, checked against pandas value_counts."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from helpers import portal_frame

from odsframe.analysis import read_ods_facets
from odsframe.errors import InvalidQueryArgument
from odsframe.testing.catalog import Catalog
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"


@pytest.fixture(scope="module")
def events(sample_catalog: Catalog) -> pd.DataFrame:
    return portal_frame(sample_catalog, EVENTS)


def counts(frame: pd.DataFrame, facet: str, depth: int = 0) -> dict[str, int]:
    """``{value: count}`` of the displayed or refined values of one facet at one depth."""
    rows = frame[(frame["facet"] == facet) & (frame["depth"] == depth)]
    rows = rows[rows["state"] != "excluded"]
    return {str(value): int(count) for value, count in zip(rows["value"], rows["count"])}


def test_every_facet_equals_value_counts(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_facets(sample_portal.url, EVENTS)
    assert list(frame.columns[:7]) == ["facet", "value", "name", "path", "count", "state", "depth"]
    assert frame["count"].dtype == "Int64" and frame["depth"].dtype == "Int64"
    assert set(frame["facet"]) == {"category", "theme", "start", "tags", "arrondissement"}
    assert (frame["state"] == "displayed").all()
    for facet in ("category", "arrondissement"):
        assert counts(frame, facet) == events[facet].value_counts().to_dict()
    # A multivalued record counts once for each of its values.
    assert counts(frame, "tags") == events["tags"].explode().value_counts().to_dict()
    # Hierarchies and dates: the top level of the tree.
    assert counts(frame, "theme") == events["theme"].str.split("/").str[0].value_counts().to_dict()
    years = events["start"].dt.year.astype(str).value_counts().to_dict()
    assert counts(frame, "start") == years


def test_refine_and_exclude(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_facets(
        sample_portal.url,
        EVENTS,
        facets=["category", "arrondissement", "tags"],
        refine={"arrondissement": "75011"},
        exclude={"category": "Danse"},
    )
    kept = events[(events["arrondissement"] == "75011") & (events["category"] != "Danse")]
    refined = frame[frame["facet"] == "arrondissement"]
    assert refined[["value", "state"]].values.tolist() == [["75011", "refined"]]
    assert refined["count"].tolist() == [len(kept)]
    excluded = frame[(frame["facet"] == "category") & (frame["state"] == "excluded")]
    assert excluded["value"].tolist() == ["Danse"] and excluded["count"].isna().all()
    assert counts(frame, "category") == kept["category"].value_counts().to_dict()
    assert counts(frame, "tags") == kept["tags"].explode().value_counts().to_dict()


def test_hierarchical_facet_refined_lists_its_children(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_facets(sample_portal.url, EVENTS, facets="theme", refine={"theme": "Musique"})
    top = frame[frame["depth"] == 0]
    assert top[["value", "state"]].values.tolist() == [["Musique", "refined"]]
    music = events[events["theme"].str.startswith("Musique/")]
    assert top["count"].tolist() == [len(music)]
    children = frame[frame["depth"] == 1]
    assert (children["parent"] == "Musique").all()
    assert dict(zip(children["path"], children["count"], strict=True)) == (
        music["theme"].value_counts().to_dict()
    )
    assert set(children["name"]) == set(music["theme"].str.split("/").str[1])


def test_date_facet_in_the_request_timezone(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_facets(
        sample_portal.url,
        EVENTS,
        facets="start",
        refine={"start": "2022/03"},
        timezone="Europe/Paris",
    )
    local = events["start"].dt.tz_convert("Europe/Paris")
    march = local[(local.dt.year == 2022) & (local.dt.month == 3)]
    assert frame.loc[frame["depth"] == 1, ["value", "state"]].values.tolist() == [
        ["2022/03", "refined"]
    ]
    assert frame.loc[frame["depth"] == 1, "count"].tolist() == [len(march)]
    days = march.dt.strftime("%Y/%m/%d").value_counts().to_dict()
    assert counts(frame, "start", depth=2) == days


def test_facet_options(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_facets(
        sample_portal.url,
        EVENTS,
        facets={"category": {"sort": "alphanum", "limit": 3}, "arrondissement": {}},
    )
    assert (
        frame.loc[frame["facet"] == "category", "value"].tolist()
        == sorted(events["category"].unique())[:3]
    )
    assert counts(frame, "arrondissement") == events["arrondissement"].value_counts().to_dict()
    ods = frame.attrs["ods"]
    assert ods["kind"] == "facets" and ods["dataset"] == EVENTS
    assert 'facet(name="category", sort="alphanum", limit=3)' in ods["query"]["facets"]


def test_spatial_filter_and_provenance(
    sample_portal: LocalPortal, events, recording_session
) -> None:
    box = (2.30, 48.84, 2.36, 48.88)
    frame = read_ods_facets(
        sample_portal.url, EVENTS, facets="category", bbox=box, session=recording_session
    )
    lon = events["location"].map(lambda point: point["lon"])
    lat = events["location"].map(lambda point: point["lat"])
    inside = events[lon.between(box[0], box[2]) & lat.between(box[1], box[3])]
    assert 0 < len(inside) < len(events)
    assert counts(frame, "category") == inside["category"].value_counts().to_dict()
    ods = frame.attrs["ods"]
    assert ods["query"]["geo_field"] == "location"
    assert ods["url"] in recording_session.urls
    assert "in_bbox" in ods["url"]


@pytest.mark.parametrize(
    ("facets", "message"),
    [
        ([], "the list is empty"),
        ("two words", "is not a facet name"),
        ({"category": {"order": "-count"}}, "unknown option"),
        ({"category": {"sort": "largest"}}, "sort must be one of"),
        ({"category": {"limit": 0}}, "limit must be a positive int"),
        ({"category": {"disjunctive": "yes"}}, "True or False"),
        (42, "expected a name"),
    ],
)
def test_bad_facets_are_named(sample_portal: LocalPortal, facets: Any, message: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        read_ods_facets(sample_portal.url, EVENTS, facets=facets)
