"""Facet answers as long DataFrames (odsframe.frames.facets)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from odsframe.errors import ServerError
from odsframe.frames.facets import FACET_COLUMNS, frame_from_facets


def load(real_fixtures: Path, name: str) -> dict:
    return json.loads((real_fixtures / name).read_text(encoding="utf-8"))


def assert_facet_dtypes(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == FACET_COLUMNS
    assert frame["count"].dtype == "Int64"
    assert frame["depth"].dtype == "Int64"
    for column in ("facet", "value", "name", "path", "state", "parent"):
        assert pd.api.types.is_string_dtype(frame[column].dtype), column


# --------------------------------------------------------------------------- real fixtures


def test_v20_catalog_facets(real_fixtures: Path):
    payload = load(real_fixtures, "nasqueron__datasources__catalog_facets.json")
    frame = frame_from_facets(payload)
    assert_facet_dtypes(frame)
    sizes = {group["name"]: len(group["facets"]) for group in payload["facets"]}
    assert frame.groupby("facet", sort=False).size().to_dict() == sizes
    assert list(frame["facet"].unique()) == [
        "features",
        "modified",
        "publisher",
        "keyword",
        "theme",
    ]
    years = frame[frame["facet"] == "modified"]
    assert list(years["value"]) == ["2018", "2019", "2020", "2021", "2022", "2023"]
    assert list(years["count"]) == [262, 32, 26, 39, 52, 15]
    assert (frame["depth"] == 0).all()
    assert frame["parent"].isna().all()
    assert (frame["state"] == "displayed").all()
    assert (frame["path"] == frame["value"]).all()
    analyze = frame[(frame["facet"] == "features") & (frame["value"] == "analyze")]
    assert analyze["count"].tolist() == [306]
    # values keep their leading spaces: they are refine values
    assert "  PLR 2011" in set(frame.loc[frame["facet"] == "keyword", "value"])


def test_v20_empty_facets(real_fixtures: Path):
    frame = frame_from_facets(
        load(real_fixtures, "nasqueron__datasources__catalog_dataset_fantoir_facets.json")
    )
    assert len(frame) == 0
    assert_facet_dtypes(frame)


def test_v1_refined_facet_group(real_fixtures: Path):
    frame = frame_from_facets(
        load(real_fixtures, "klaasnicolaas__python-eindhoven__1_parkings.json")
    )
    assert_facet_dtypes(frame)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["facet"], row["value"], row["name"], row["path"]) == (
        "type_en_merk",
        "Parkeerplaats",
        "Parkeerplaats",
        "Parkeerplaats",
    )
    assert row["count"] == 10260
    assert row["state"] == "refined"
    assert row["depth"] == 0


def test_v1_facet_groups_with_date_facets(real_fixtures: Path):
    payload = load(real_fixtures, "benj-moreau__EvaMap__data.extracted.json")
    frame = frame_from_facets(payload)
    assert_facet_dtypes(frame)
    assert len(frame) == sum(len(group["facets"]) for group in payload["facet_groups"]) == 44
    assert "name" not in set(frame["facet"])  # the 'name' facet came back empty
    end_dates = frame[frame["facet"] == "end_date"]
    assert list(end_dates["path"]) == ["2017", "2018"]
    assert list(end_dates["count"]) == [190, 190]
    teams = frame[frame["facet"] == "home_team"]
    assert len(teams) == 20
    assert "AS_SaintÉtienne" in set(teams["value"])
    assert int(teams["count"].sum()) == 380


def test_bare_facet_group_lists_are_accepted(real_fixtures: Path):
    payload = load(real_fixtures, "benj-moreau__EvaMap__data.extracted.json")
    from_list = frame_from_facets(payload["facet_groups"])
    pd.testing.assert_frame_equal(from_list, frame_from_facets(payload))


# --------------------------------------------------------------------------- trees


def v21_date_tree() -> dict:
    return {
        "links": [],
        "facets": [
            {
                "name": "date",
                "facets": [
                    {
                        "name": "2020",
                        "value": "2020",
                        "count": 12,
                        "state": "refined",
                        "facets": [
                            {
                                "name": "11",
                                "value": "2020/11",
                                "count": 7,
                                "state": "displayed",
                                "facets": [
                                    {
                                        "name": "05",
                                        "value": "2020/11/05",
                                        "count": 4,
                                        "state": "displayed",
                                    },
                                    {
                                        "name": "06",
                                        "value": "2020/11/06",
                                        "count": 3,
                                        "state": "displayed",
                                    },
                                ],
                            },
                            {"name": "12", "value": "2020/12", "count": 5, "state": "displayed"},
                        ],
                    },
                    {"name": "2021", "value": "2021", "count": 2, "state": "displayed"},
                ],
            },
            {
                "name": "city",
                "facets": [
                    {"name": "Paris", "value": "Paris", "count": 9, "state": "displayed"},
                    {"name": "Lyon", "value": "Lyon", "state": "excluded"},
                ],
            },
        ],
    }


def test_hierarchical_v21_facets_are_flattened_depth_first():
    frame = frame_from_facets(v21_date_tree())
    assert_facet_dtypes(frame)
    dates = frame[frame["facet"] == "date"]
    assert list(dates["path"]) == ["2020", "2020/11", "2020/11/05", "2020/11/06", "2020/12", "2021"]
    assert list(dates["depth"]) == [0, 1, 2, 2, 1, 0]
    assert dates["parent"].tolist()[1:5] == ["2020", "2020/11", "2020/11", "2020"]
    assert pd.isna(dates["parent"].iloc[0]) and pd.isna(dates["parent"].iloc[5])
    assert list(dates["name"]) == ["2020", "11", "05", "06", "12", "2021"]
    assert list(dates["state"]) == ["refined"] + ["displayed"] * 5
    # the children of a level add up to its count
    assert dates.loc[dates["parent"] == "2020/11", "count"].sum() == 7


def test_excluded_values_without_count_are_missing():
    frame = frame_from_facets(v21_date_tree())
    lyon = frame[(frame["facet"] == "city") & (frame["value"] == "Lyon")].iloc[0]
    assert lyon["state"] == "excluded"
    assert pd.isna(lyon["count"])


def test_v1_nested_facets_with_leaf_paths_get_full_paths():
    # Servers send full paths (2013/08/11); a path that is only the leaf is joined to its parent.
    groups = [
        {
            "name": "tz",
            "count": 3,
            "facets": [
                {
                    "name": "Europe",
                    "path": "Europe",
                    "count": 3,
                    "state": "displayed",
                    "facets": [
                        {"name": "Paris", "path": "Paris", "count": 2, "state": "displayed"},
                        {
                            "name": "Berlin",
                            "path": "Europe/Berlin",
                            "count": 1,
                            "state": "displayed",
                        },
                    ],
                }
            ],
        }
    ]
    frame = frame_from_facets({"nhits": 3, "records": [], "facet_groups": groups})
    assert list(frame["path"]) == ["Europe", "Europe/Paris", "Europe/Berlin"]
    assert list(frame["value"]) == ["Europe", "Paris", "Europe/Berlin"]
    assert list(frame["parent"].fillna("-")) == ["-", "Europe", "Europe"]


def test_v1_answer_without_facet_groups_is_empty():
    frame = frame_from_facets({"nhits": 0, "parameters": {}, "records": []})
    assert len(frame) == 0
    assert_facet_dtypes(frame)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"results": []}, "'facets' \\(v2\\) or 'facet_groups' \\(v1\\)"),
        ("facets", "must be a list"),
        ({"facets": {"name": "x"}}, "must be a list"),
        ({"facets": ["x"]}, "facet group 0"),
        ({"facets": [{"name": "x", "facets": ["y"]}]}, "facet 'x': a value is a str"),
        ({"facets": [{"name": "x", "facets": [{"count": 1}]}]}, "no name, value or path"),
    ],
)
def test_payloads_that_are_not_facets_are_server_errors(payload, message):
    with pytest.raises(ServerError, match=message):
        frame_from_facets(payload)
