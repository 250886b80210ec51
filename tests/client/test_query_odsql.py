"""ODSQL text helpers: field quoting, literals, where mappings, spatial predicates."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import shapely

from odsframe._spec import RESERVED_WORDS_V20, RESERVED_WORDS_V21
from odsframe.errors import InvalidQueryArgument
from odsframe.query.odsql import (
    and_all,
    in_bbox,
    intersects,
    literal,
    quote_field,
    split_top_level,
    where_conditions,
    where_from,
    within_distance,
)

# -- quote_field --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["population", "geo_point_2d", "Name2", "_x", "a1b2"])
def test_plain_names_stay_bare(name: str) -> None:
    assert quote_field(name) == name


@pytest.mark.parametrize("word", sorted(RESERVED_WORDS_V21))
def test_every_reserved_word_is_back_quoted(word: str) -> None:
    assert quote_field(word) == f"`{word}`"
    assert quote_field(word.upper()) == f"`{word.upper()}`"


def test_v20_reserved_words_can_be_chosen() -> None:
    assert quote_field("search", reserved=RESERVED_WORDS_V20) == "search"
    assert quote_field("search") == "`search`"


@pytest.mark.parametrize("name", ["12", "0", "2024"])
def test_digit_only_names_are_back_quoted(name: str) -> None:
    assert quote_field(name) == f"`{name}`"


def test_names_mixing_digits_and_letters_stay_bare() -> None:
    assert quote_field("2024_total") == "2024_total"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("code postal", "`code postal`"),
        ("prix-m2", "`prix-m2`"),
        ("année", "`année`"),
        ("名前", "`名前`"),
        ("a`b", "`a\\`b`"),
        ("`", "`\\``"),
        ("back\\slash", "`back\\\\slash`"),
        ('say "x"', '`say "x"`'),
    ],
)
def test_other_names_are_back_quoted_and_escaped(name: str, expected: str) -> None:
    assert quote_field(name) == expected


@pytest.mark.parametrize("bad", ["", None, 3])
def test_quote_field_rejects_non_names(bad: object) -> None:
    with pytest.raises(InvalidQueryArgument, match="field name"):
        quote_field(bad)  # type: ignore[arg-type]


# -- literal ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Paris", '"Paris"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("l'été", '"l\'été"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak\ttab", '"line\\nbreak\\ttab"'),
        ("Zürich 東京", '"Zürich 東京"'),
        ("", '""'),
    ],
)
def test_strings_are_json_strings(value: str, expected: str) -> None:
    text = literal(value)
    assert text == expected
    assert json.loads(text) == value


def test_scalars() -> None:
    assert literal(None) == "null"
    assert literal(True) == "true"
    assert literal(False) == "false"
    assert literal(42) == "42"
    assert literal(-3) == "-3"
    assert literal(5.8) == "5.8"
    assert literal(1e-7) == "1e-07"
    assert literal(Decimal("12.50")) == "12.50"


def test_numpy_and_pandas_scalars() -> None:
    assert literal(np.int64(7)) == "7"
    assert literal(np.float32(0.5)) == "0.5"
    assert literal(np.bool_(True)) == "true"
    assert literal(pd.NaT) == "null"
    assert literal(np.datetime64("2024-05-01T10:30:00")) == "date'2024-05-01T10:30:00'"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(InvalidQueryArgument, match="finite"):
        literal(value, argument="where['x']")


def test_dates() -> None:
    assert literal(date(2024, 5, 1)) == "date'2024-05-01'"


def test_datetimes_keep_their_offset() -> None:
    paris = timezone(timedelta(hours=2))
    assert literal(datetime(2024, 5, 1, 10, 0, tzinfo=paris)) == "date'2024-05-01T10:00:00+02:00'"
    assert literal(datetime(2024, 5, 1, 8, 0, tzinfo=UTC)) == "date'2024-05-01T08:00:00+00:00'"
    assert (
        literal(datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC))
        == "date'2024-05-01T08:00:00.250000+00:00'"
    )


def test_naive_datetimes_have_no_offset_so_the_query_timezone_applies() -> None:
    assert literal(datetime(2024, 5, 1, 10, 0)) == "date'2024-05-01T10:00:00'"


def test_pandas_timestamps() -> None:
    stamp = pd.Timestamp("2024-05-01 10:00", tz="Europe/Paris")
    assert literal(stamp) == "date'2024-05-01T10:00:00+02:00'"
    assert literal(pd.Timestamp("2024-05-01")) == "date'2024-05-01T00:00:00'"


def test_shapely_geometries_become_geojson_literals() -> None:
    text = literal(shapely.Point(2.35, 48.85))
    assert text.startswith("geom'") and text.endswith("'")
    assert json.loads(text[5:-1]) == {"type": "Point", "coordinates": [2.35, 48.85]}
    polygon = shapely.box(2.0, 48.0, 3.0, 49.0)
    geometry = json.loads(literal(polygon)[5:-1])
    assert geometry["type"] == "Polygon"
    assert shapely.geometry.shape(geometry).equals(polygon)


def test_geo_interface_objects_and_mappings_and_features() -> None:
    class Thing:
        __geo_interface__ = {"type": "LineString", "coordinates": [(0, 0), (1, 1)]}

    assert json.loads(literal(Thing())[5:-1])["coordinates"] == [[0, 0], [1, 1]]
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Point", "coordinates": [1, 2]},
    }
    assert json.loads(literal(feature)[5:-1]) == {"type": "Point", "coordinates": [1, 2]}


def test_bad_geometries_are_refused() -> None:
    with pytest.raises(InvalidQueryArgument, match="one geometry"):
        literal({"type": "FeatureCollection", "features": []}, argument="mask")
    with pytest.raises(InvalidQueryArgument, match="empty"):
        literal(shapely.Point())
    with pytest.raises(InvalidQueryArgument, match="finite"):
        literal({"type": "Point", "coordinates": [math.nan, 1.0]})


def test_unsupported_values_name_the_argument() -> None:
    with pytest.raises(InvalidQueryArgument, match=r"where\['x'\].*object"):
        literal(object(), argument="where['x']")


# -- where_from ---------------------------------------------------------------------------


def test_raw_odsql_passes_through() -> None:
    text = 'population > 1000 OR search("tree")'
    assert where_from(text) == text
    assert where_from("  ") == ""
    assert where_from(None) == ""


def test_scalar_null_and_boolean_entries() -> None:
    assert where_from({"city": "Paris"}) == 'city = "Paris"'
    assert where_from({"n": 3}) == "n = 3"
    assert where_from({"gone": None}) == "gone IS NULL"
    assert where_from({"open": True}) == "open IS TRUE"
    assert where_from({"open": False}) == "open IS FALSE"
    assert where_from({"when": date(2024, 1, 2)}) == "when = date'2024-01-02'"


def test_lists_and_sets_are_membership() -> None:
    assert where_from({"city": ["Paris", "Lyon"]}) == 'city IN ("Lyon", "Paris")'
    assert where_from({"n": {3, 1, 2}}) == "n IN (1, 2, 3)"
    assert where_from({"city": ["Paris"]}) == 'city = "Paris"'
    assert where_from({"city": ["Paris", None]}) == 'city = "Paris" OR city IS NULL'
    assert where_from({"city": [None]}) == "city IS NULL"
    assert where_from({"n": [1, 1, 2]}) == "n IN (1, 2)"


def test_two_tuples_are_inclusive_ranges_with_open_ends() -> None:
    assert where_from({"pop": (10, 20)}) == "pop >= 10 AND pop <= 20"
    assert where_from({"pop": (10, None)}) == "pop >= 10"
    assert where_from({"pop": (None, 20)}) == "pop <= 20"
    assert (
        where_from({"d": (date(2020, 1, 1), date(2020, 12, 31))})
        == "d >= date'2020-01-01' AND d <= date'2020-12-31'"
    )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ((1, 2, 3), "exactly 2"),
        ((1,), "exactly 2"),
        ((None, None), "no bound"),
        ([], "empty"),
        ((True, False), "bounds"),
        ([[1, 2]], "scalars"),
        ({"a": 1}, "mapping"),
    ],
)
def test_ambiguous_or_empty_entries_are_refused(value: object, match: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=match) as info:
        where_from({"field": value})
    assert "where['field']" in str(info.value)


def test_geometry_values_point_to_spatial_helpers() -> None:
    with pytest.raises(InvalidQueryArgument, match="intersects"):
        where_from({"geo": shapely.Point(1, 2)})


def test_field_names_in_mappings_are_quoted() -> None:
    assert where_from({"year": 2020}) == "`year` = 2020"
    assert where_from({"code postal": "75001"}) == '`code postal` = "75001"'


def test_several_conditions_are_anded_in_parentheses() -> None:
    text = where_from({"city": "Paris", "pop": (1000, None)})
    assert text == '(city = "Paris") AND (pop >= 1000)'
    text = where_from(["a > 1 OR b < 2", {"c": None}])
    assert text == "(a > 1 OR b < 2) AND (c IS NULL)"
    assert where_conditions(["x = 1", {"y": 2, "z": 3}]) == ["x = 1", "y = 2", "z = 3"]
    assert and_all(["x = 1"]) == "x = 1"


def test_where_rejects_other_types() -> None:
    with pytest.raises(InvalidQueryArgument, match="where"):
        where_from(42)
    with pytest.raises(InvalidQueryArgument, match="where"):
        where_from([42])
    with pytest.raises(InvalidQueryArgument, match="field names must be strings"):
        where_from({1: 2})


# -- spatial ------------------------------------------------------------------------------


def test_in_bbox_writes_latitude_first() -> None:
    assert in_bbox("geo", (2.26, 48.84, 2.27, 48.85)) == "in_bbox(geo, 48.84, 2.26, 48.85, 2.27)"
    assert in_bbox("year", (0, 0, 1, 1)) == "in_bbox(`year`, 0.0, 0.0, 1.0, 1.0)"


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((2.0, 48.0, 3.0), "min_lon, min_lat"),
        ((48.8, 2.3, 48.9, 2.4, 0), "min_lon, min_lat"),
        ((3.0, 48.0, 2.0, 49.0), "minimum above maximum"),
        ((2.0, 95.0, 3.0, 96.0), "min_lat"),
        ((2.0, 48.0, math.nan, 49.0), "max_lon"),
        ("2,48,3,49", "min_lon, min_lat"),
    ],
)
def test_in_bbox_validates(bbox: object, match: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=match):
        in_bbox("geo", bbox)  # type: ignore[arg-type]


def test_intersects_takes_any_geometry() -> None:
    text = intersects("shape", shapely.box(0, 0, 1, 1))
    assert text.startswith("intersects(shape, geom'{")
    assert text.endswith("}')")


def test_within_distance_from_pair_or_point() -> None:
    expected = "within_distance(geo, geom'POINT(2.35 48.85)', 500m)"
    assert within_distance("geo", (2.35, 48.85), 500) == expected
    assert within_distance("geo", shapely.Point(2.35, 48.85), 500.0) == expected
    assert within_distance("geo", (2.35, 48.85), 12.5).endswith("12.5m)")


@pytest.mark.parametrize(
    ("center", "distance", "match"),
    [
        ((2.35, 48.85), 0, "positive"),
        ((2.35, 48.85), -5, "positive"),
        ((2.35, 48.85), "1km", "metres"),
        ((200.0, 48.85), 10, "longitude"),
        ((2.35,), 10, "lon, lat"),
        (shapely.box(0, 0, 1, 1), 10, "Point"),
    ],
)
def test_within_distance_validates(center: object, distance: object, match: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=match):
        within_distance("geo", center, distance)  # type: ignore[arg-type]


# -- splitting ----------------------------------------------------------------------------


def test_split_top_level_respects_nesting_and_quotes() -> None:
    text = "a, count(*) as n, distance(geo, geom'POINT(1 2)'), \"x, y\", `odd,name`"
    assert split_top_level(text) == [
        "a",
        "count(*) as n",
        "distance(geo, geom'POINT(1 2)')",
        '"x, y"',
        "`odd,name`",
    ]
    assert split_top_level("range(x, *, 10, 20, *), b") == ["range(x, *, 10, 20, *)", "b"]
    assert split_top_level('"a \\" , b", c') == ['"a \\" , b"', "c"]
