"""The Query object: validation, normalisation, parameters, keys and URLs."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
import shapely

from odsframe.errors import InvalidQueryArgument
from odsframe.query import Query


def test_defaults_have_no_parameters() -> None:
    query = Query("trees")
    assert query.params() == []
    assert query.limit is None
    assert not query.grouped
    assert repr(query) == "Query('trees')"


def test_queries_are_immutable_and_hashable() -> None:
    query = Query("trees", where={"kind": "oak"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.limit = 3  # type: ignore[misc]
    assert hash(query) == hash(Query("trees", where={"kind": "oak"}))


def test_equivalent_queries_share_one_key() -> None:
    a = Query(
        "trees",
        where={"kind": ["oak", "elm"], "height": (10, None)},
        refine={"city": "Paris", "year": date(2020, 5, 1)},
        select=["name", "height"],
    )
    b = Query(
        "trees",
        where=["height >= 10", {"kind": {"elm", "oak"}}],
        refine=['year:"2020/05/01"', "city:Paris"],
        select="name, height",
    )
    assert a == b
    assert a.normalised_key() == b.normalised_key()
    assert a.params() == b.params()


def test_different_queries_have_different_keys() -> None:
    base = Query("trees", where={"kind": "oak"})
    assert base.normalised_key() != Query("trees", where={"kind": "elm"}).normalised_key()
    assert base.normalised_key() != Query("bushes", where={"kind": "oak"}).normalised_key()
    assert base.normalised_key() != base.replace(limit=10).normalised_key()
    # select and order_by keep their order: it changes the answer.
    assert Query("t", select="a, b") != Query("t", select="b, a")
    assert Query("t", order_by="a, b") != Query("t", order_by="b, a")


def test_params_are_sorted_pairs_with_repeated_filters() -> None:
    query = Query(
        "trees",
        select="name",
        where=["height > 3", "kind = 'oak'"],
        refine={"city": ["Paris", "Lyon"]},
        exclude="district:12",
        order_by="-height",
        timezone="Europe/Paris",
        lang="EN",
    )
    assert query.params() == [
        ("exclude", 'district:"12"'),
        ("lang", "en"),
        ("order_by", "height DESC"),
        ("refine", 'city:"Lyon"'),
        ("refine", 'city:"Paris"'),
        ("select", "name"),
        ("timezone", "Europe/Paris"),
        ("where", "height > 3"),
        ("where", "kind = 'oak'"),
    ]


def test_select_quotes_bare_names_and_keeps_expressions() -> None:
    query = Query("t", select=["year", "count(*) as n", "12", "name"])
    assert query.select == ("`year`", "count(*) as n", "`12`", "name")
    assert Query("t", select="*").select == ()
    assert Query("t", select=["*"]).params() == []


def test_order_by_gets_explicit_directions() -> None:
    query = Query("t", order_by=["-pop", "name", "year desc", "count(*) Desc", "random(3)"])
    assert query.order_by == (
        "pop DESC",
        "name ASC",
        "`year` DESC",
        "count(*) DESC",
        "random(3)",
    )
    assert Query("t", order_by="a desc, b") == Query("t", order_by=["a DESC", "b ASC"])


def test_group_by_items() -> None:
    query = Query("t", group_by="city, year(date) as y")
    assert query.group_by == ("city", "year(date) as y")
    assert query.grouped


def test_refine_and_exclude_values() -> None:
    query = Query(
        "t",
        refine={
            "day": datetime(2021, 3, 4, 23, 0),
            "ok": True,
            "n": 5,
            "label": 'say "hi"',
        },
        exclude=[{"city": ("Lyon", "Nice")}, 'district:"Saint-Denis"'],
    )
    assert query.refine == (
        'day:"2021/03/04"',
        'label:"say \\"hi\\""',
        'n:"5"',
        'ok:"true"',
    )
    assert query.exclude == ('city:"Lyon"', 'city:"Nice"', 'district:"Saint-Denis"')


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"refine": "no-colon"}, "facet:value"),
        ({"refine": {"city": None}}, "None"),
        ({"refine": {"city": []}}, "empty"),
        ({"refine": {"a b": "x"}}, "facet name"),
        ({"exclude": 3}, "exclude"),
        ({"limit": -2}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": True}, "limit"),
        ({"timezone": "Europe/Pari"}, "timezone"),
        ({"lang": "xx"}, "lang"),
        ({"select": 3}, "select"),
        ({"order_by": [1]}, "order_by"),
        ({"where": 3.5}, "where"),
        ({"bbox": (3, 48, 2, 49)}, "bbox"),
        ({"mask": "not json"}, "mask"),
        ({"distance": ((2.3, 48.8),)}, "distance"),
        ({"distance": ((2.3, 48.8), -1)}, "distance_m"),
        ({"geo_field": ""}, "field name"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=match):
        Query("t", **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("dataset", ["", "  ", "two words", "..", None])
def test_bad_dataset_ids(dataset: object) -> None:
    with pytest.raises(InvalidQueryArgument, match="dataset"):
        Query(dataset)  # type: ignore[arg-type]


def test_limit_minus_one_means_all() -> None:
    assert Query("t", limit=-1).limit is None
    assert Query("t", limit=0).limit == 0


def test_spatial_filters_need_a_geo_field() -> None:
    query = Query("t", bbox=(2.2, 48.8, 2.4, 48.9))
    assert query.needs_geo_field
    with pytest.raises(InvalidQueryArgument, match="geo_field"):
        query.params()
    located = query.with_geo_field("geo")
    assert not located.needs_geo_field
    assert ("where", "in_bbox(geo, 48.8, 2.2, 48.9, 2.4)") in located.params()


def test_mask_and_distance_conditions() -> None:
    query = Query(
        "t",
        geo_field="shape",
        mask=shapely.box(0, 0, 1, 1),
        distance=(shapely.Point(2.35, 48.85), 250),
    )
    wheres = [value for name, value in query.params() if name == "where"]
    assert any(value.startswith("intersects(shape, geom'") for value in wheres)
    assert "within_distance(shape, geom'POINT(2.35 48.85)', 250m)" in wheres
    # The stored mask is canonical GeoJSON text, so replace() round-trips it.
    assert query.replace(limit=5).mask == query.mask


def test_replace_revalidates_and_rejects_unknown_arguments() -> None:
    query = Query("t", where={"a": 1})
    assert query.replace(where={"a": 2}).where == ("a = 2",)
    with pytest.raises(InvalidQueryArgument, match="wherever"):
        query.replace(wherever=1)
    with pytest.raises(InvalidQueryArgument, match="lang"):
        query.replace(lang="zz")


def test_url_with_parameters_is_exact_and_never_holds_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ODS_APIKEY", "secret-key-123")
    query = Query("prices@public", where={"city": "Saint-Denis"}, limit=250)
    url = query.url_with_parameters("https://data.example.org/api/explore/v2.1/")
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == "data.example.org"
    assert parts.path == "/api/explore/v2.1/catalog/datasets/prices@public/records"
    assert parse_qsl(parts.query) == [("limit", "100"), ("where", 'city = "Saint-Denis"')]
    assert "secret" not in url
    assert "apikey" not in url.lower()
    assert "secret" not in query.normalised_key()
    assert "secret" not in repr(query)


def test_url_with_parameters_for_grouped_queries_sends_an_explicit_limit() -> None:
    url = Query("t", group_by="city", select="city, count(*) as n").url_with_parameters("public")
    assert url.startswith("https://public.opendatasoft.com/api/explore/v2.1/")
    assert ("limit", "20000") in parse_qsl(urlsplit(url).query)
