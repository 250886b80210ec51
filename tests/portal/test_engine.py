"""The ODSQL engine over real DuckDB tables: select, where, order_by, refine/exclude, errors.

``build_portal`` (also used by the other ``test_engine_*`` files) creates a table that follows
the storage convention of ``odsframe/testing/model.py`` from a few Python rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odsframe.testing.engine import compile_query, ensure_udfs, execute, fold, run, run_count
from odsframe.testing.errors import InvalidRESTParameterError, ODSQLError
from odsframe.testing.model import CompiledQuery, PortalDataset, PortalField

_SQL_TYPES = {
    "text": "VARCHAR",
    "int": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMPTZ",
    "geo_point_2d": "STRUCT(lon DOUBLE, lat DOUBLE)",
    "geo_shape": "VARCHAR",
    "file": "JSON",
    "json_blob": "JSON",
}
_BBOX = "STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE)"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Portal:
    """A DuckDB table and its dataset, with shortcuts to run engine queries."""

    con: duckdb.DuckDBPyConnection
    dataset: PortalDataset

    def compile(self, **params: Any) -> CompiledQuery:
        return compile_query(self.dataset, **params)

    def rows(self, **params: Any) -> list[dict[str, Any]]:
        """Result rows as ``{answer key: value}``."""
        compiled = self.compile(**params)
        table = run(self.con, compiled)
        return [{c.key: row[c.sql_name] for c in compiled.columns} for row in table.to_pylist()]

    def column(self, key: str, **params: Any) -> list[Any]:
        return [row[key] for row in self.rows(**params)]

    def names(self, **params: Any) -> list[str]:
        """The ``name`` of every matching record, in result order."""
        return self.column("name", **{"select": "name", **params})

    def count(self, **params: Any) -> int | None:
        return run_count(self.con, self.compile(**params))


def build_portal(fields: list[PortalField], rows: list[dict[str, Any]], table: str = "t") -> Portal:
    """A table following the storage convention, filled from ``rows``.

    Values are Python values; a geo_point_2d is ``(lon, lat)``, a geo_shape a GeoJSON dict.
    """
    import shapely

    con = duckdb.connect()
    columns = []
    for f in fields:
        sql_type = _SQL_TYPES[f.type] + ("[]" if f.multivalued else "")
        columns.append(f"{_quote(f.name)} {sql_type}")
    columns += [
        '"__rowid" BIGINT',
        '"__id" VARCHAR',
        '"__timestamp" TIMESTAMPTZ',
        '"__fts" VARCHAR',
    ]
    shapes = [f for f in fields if f.type == "geo_shape"]
    columns += [f'"__bbox__{f.name}" {_BBOX}' for f in shapes]
    con.execute(f"CREATE TABLE {_quote(table)} ({', '.join(columns)})")
    for rowid, row in enumerate(rows):
        values: list[Any] = []
        texts: list[str] = []
        for f in fields:
            value = row.get(f.name)
            if f.type == "text" and value is not None:
                texts.extend(value if f.multivalued else [value])
            if f.type == "geo_point_2d" and value is not None:
                value = {"lon": value[0], "lat": value[1]}
            elif f.type in ("geo_shape", "file", "json_blob") and value is not None:
                value = json.dumps(value)
            values.append(value)
        record_id = hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
        values += [rowid, record_id, datetime(2024, 1, 1, tzinfo=UTC), fold(" ".join(texts))]
        for f in shapes:
            shape = row.get(f.name)
            if shape is None:
                values.append(None)
            else:
                xmin, ymin, xmax, ymax = shapely.bounds(shapely.from_geojson(json.dumps(shape)))
                values.append({"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax})
        placeholders = ", ".join("?" for _ in values)
        con.execute(f"INSERT INTO {_quote(table)} VALUES ({placeholders})", values)
    metas = {"default": {"title": table, "records_count": len(rows)}}
    return Portal(con, PortalDataset(table, table, fields, metas))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


PEOPLE_FIELDS = [
    PortalField("name", "text", annotations={"facet": []}),
    PortalField("city", "text", annotations={"facet": [], "disjunctive": []}),
    PortalField("age", "int", annotations={"facet": []}),
    PortalField("score", "double"),
    PortalField("born", "date", annotations={"facet": []}),
    PortalField("seen", "datetime", annotations={"facet": []}),
    PortalField("active", "boolean"),
    PortalField("tags", "text", annotations={"multivalued": [","], "facet": []}),
    PortalField("region", "text", annotations={"facet": [], "hierarchical": ["/"]}),
    PortalField("note", "text"),
    PortalField("payload", "text"),
]
PEOPLE = [
    {
        "name": "Alice",
        "city": "Paris",
        "age": 34,
        "score": 12.5,
        "born": date(1990, 4, 12),
        "seen": utc(2020, 1, 1, 0, 30),
        "active": True,
        "tags": ["red", "blue"],
        "region": "Europe/France/Paris",
        "note": "The Book of Secrets",
        "payload": '{"a": 1}',
    },
    {
        "name": "Bob",
        "city": "Lyon",
        "age": 27,
        "score": 8.0,
        "born": date(1997, 11, 30),
        "seen": utc(2020, 6, 15, 12),
        "active": False,
        "tags": ["blue"],
        "region": "Europe/France/Lyon",
        "note": "star wars fan",
        "payload": "not json",
    },
    {
        "name": "Chloé",
        "city": "Paris",
        "age": None,
        "score": 15.0,
        "born": date(2001, 1, 1),
        "seen": utc(2019, 12, 31, 23, 30),
        "active": True,
        "tags": [],
        "region": "Europe/France",
        "note": None,
    },
    {
        "name": "David",
        "city": "Berlin",
        "age": 45,
        "score": None,
        "born": None,
        "seen": None,
        "active": None,
        "tags": ["green"],
        "region": "Europe/Germany/Berlin",
        "note": "Filmography of films",
    },
    {
        "name": "Eve",
        "city": "Saint-Denis",
        "age": 34,
        "score": 3.25,
        "born": date(1990, 12, 31),
        "seen": utc(2021, 3, 28, 1, 30),
        "active": False,
        "tags": ["red"],
        "region": None,
        "note": "the secret garden",
    },
    {
        "name": "Frank",
        "city": None,
        "age": 60,
        "score": 20.0,
        "born": date(1964, 2, 29),
        "seen": utc(2020, 2, 29, 22, 59, 59),
        "active": True,
        "tags": None,
        "region": "Asia/Japan",
        "note": "Star Trek",
    },
]
ALL = ["Alice", "Bob", "Chloé", "David", "Eve", "Frank"]


@pytest.fixture(scope="module")
def people() -> Iterator[Portal]:
    portal = build_portal(PEOPLE_FIELDS, PEOPLE)
    yield portal
    portal.con.close()


def where(portal: Portal, *filters: str, **params: Any) -> list[str]:
    return portal.names(where=list(filters), **params)


# --------------------------------------------------------------------------- select


def test_default_select_returns_every_field_in_schema_order(people: Portal) -> None:
    compiled = people.compile()
    assert [c.key for c in compiled.columns] == [f.name for f in PEOPLE_FIELDS]
    assert [c.type for c in compiled.columns] == [f.type for f in PEOPLE_FIELDS]
    assert [c.key for c in compiled.columns if c.multivalued] == ["tags"]
    first = people.rows()[0]
    assert first["tags"] == ["red", "blue"]
    assert first["seen"] == utc(2020, 1, 1, 0, 30)


def test_select_keys_are_alias_field_name_or_text_as_written(people: Portal) -> None:
    rows = people.rows(
        select="name, age AS years, `age`*2, age / 0, length(name), 'x' AS c, 3 AS three, score + 1.5"
    )
    assert list(rows[0]) == [
        "name",
        "years",
        "`age`*2",
        "age / 0",
        "length(name)",
        "c",
        "three",
        "score + 1.5",
    ]
    assert rows[0] == {
        "name": "Alice",
        "years": 34,
        "`age`*2": 68,
        "age / 0": None,
        "length(name)": 5,
        "c": "x",
        "three": 3,
        "score + 1.5": 14.0,
    }
    assert rows[2]["`age`*2"] is None  # null in, null out
    types = {
        c.key: c.type for c in people.compile(select="age * 2 AS a, age / 2 AS b, 2.5 AS c").columns
    }
    assert types == {"a": "int", "b": "double", "c": "double"}


def test_division_gives_doubles_and_null_on_zero(people: Portal) -> None:
    assert people.column("r", select="age / 4 AS r", where=["name = 'Alice'"]) == [8.5]
    assert people.column("r", select="age / (age - 34) AS r", where=["name = 'Alice'"]) == [None]


def test_include_and_exclude_patterns(people: Portal) -> None:
    keys = [c.key for c in people.compile(select="include(na*, age)").columns]
    assert keys == ["name", "age"]
    keys = [c.key for c in people.compile(select="exclude(n*, p*)").columns]
    assert keys == ["city", "age", "score", "born", "seen", "active", "tags", "region"]
    keys = [c.key for c in people.compile(select="*, exclude(tags, region, note, payload)").columns]
    assert keys == ["name", "city", "age", "score", "born", "seen", "active"]


def test_text_functions_and_ifnull(people: Portal) -> None:
    rows = people.rows(
        select="lower(name) AS l, upper(city) AS u, ifnull(age, 0) AS a, ifnull(city, 'nowhere') AS c, lower(tags) AS t",
        where=["name IN ('Chloé', 'Frank')"],
    )
    assert rows == [
        {"l": "chloé", "u": "PARIS", "a": 0, "c": "Paris", "t": []},
        {"l": "frank", "u": None, "a": 60, "c": "nowhere", "t": None},
    ]


def test_json_format_parses_text_or_falls_back(people: Portal) -> None:
    compiled = people.compile(
        select="json_format(payload) AS j, json_format(payload, 'bad') AS f, json_format(payload, null) AS n"
    )
    assert [c.type for c in compiled.columns] == ["json_blob"] * 3
    rows = people.rows(
        select="json_format(payload) AS j, json_format(payload, 'bad') AS f, json_format(payload, null) AS n"
    )
    assert json.loads(rows[0]["j"]) == {"a": 1}
    assert json.loads(rows[1]["j"]) == "not json"
    assert json.loads(rows[1]["f"]) == "bad"
    assert rows[1]["n"] is None
    assert rows[2]["j"] is None


# --------------------------------------------------------------------------- where


def test_comparisons_are_exact_and_case_sensitive(people: Portal) -> None:
    assert where(people, "age > 30") == ["Alice", "David", "Eve", "Frank"]
    assert where(people, "age: 34") == ["Alice", "Eve"]
    assert where(people, "age >= 34 AND age <= 45") == ["Alice", "David", "Eve"]
    assert where(people, "city = 'Paris'") == ["Alice", "Chloé"]
    assert where(people, 'city = "paris"') == []
    assert where(people, "score < 8.5") == ["Bob", "Eve"]
    assert where(people, 'age = "34"') == ["Alice", "Eve"]  # a numeric string is a number


def test_predicates_on_null_are_false_even_under_not(people: Portal) -> None:
    assert where(people, "NOT age > 30") == ["Bob", "Chloé"]
    assert where(people, "NOT city = 'Paris'") == ["Bob", "David", "Eve", "Frank"]
    assert where(people, "age != 34") == ["Bob", "Chloé", "David", "Frank"]
    assert where(people, "age <> 34") == where(people, "age != 34")
    assert where(people, "age = null") == []


def test_and_binds_tighter_than_or(people: Portal) -> None:
    assert where(people, "city = 'Lyon' OR city = 'Paris' AND age > 30") == ["Alice", "Bob"]
    assert where(people, "(city = 'Lyon' OR city = 'Paris') AND age > 30") == ["Alice"]
    assert where(people, "not(city = 'Lyon' OR age > 40)") == ["Alice", "Chloé", "Eve"]


def test_several_where_parameters_are_anded(people: Portal) -> None:
    assert where(people, "age > 30", "active") == ["Alice", "Frank"]


def test_in_ranges_respect_their_brackets(people: Portal) -> None:
    assert where(people, "age IN [27..34]") == ["Alice", "Bob", "Eve"]
    assert where(people, "age IN ]27..34]") == ["Alice", "Eve"]
    assert where(people, "age IN [27..34[") == ["Bob"]
    assert where(people, "age IN ]27 TO 45[") == ["Alice", "Eve"]
    assert where(people, "score IN [8.0..12.5]") == ["Alice", "Bob"]


def test_in_lists_and_multivalued_fields(people: Portal) -> None:
    assert where(people, "city IN (\"Paris\", 'Berlin')") == ["Alice", "Chloé", "David"]
    assert where(people, "tags = 'blue'") == ["Alice", "Bob"]
    assert where(people, "'red' IN tags") == ["Alice", "Eve"]
    assert where(people, "tags IN ('green', 'red')") == ["Alice", "David", "Eve"]
    assert where(people, "tags IS NULL") == ["Chloé", "Frank"]
    assert where(people, "tags IS NOT NULL") == ["Alice", "Bob", "David", "Eve"]
    assert where(people, "'Paris' IN city") == ["Alice", "Chloé"]


def test_like_matches_words_case_insensitively(people: Portal) -> None:
    assert where(people, "note LIKE 'star'") == ["Bob", "Frank"]
    assert where(people, "note LIKE 'STAR WARS'") == ["Bob"]
    assert where(people, "note LIKE 'secret'") == ["Eve"]
    assert where(people, "note LIKE 'secret%'") == ["Alice", "Eve"]
    assert where(people, "note LIKE '%ilm%'") == ["David"]
    assert where(people, "tags LIKE 'gre*'") == ["David"]


def test_null_and_boolean_tests(people: Portal) -> None:
    assert where(people, "age IS NULL") == ["Chloé"]
    assert where(people, "score IS NOT NULL") == ["Alice", "Bob", "Chloé", "Eve", "Frank"]
    assert where(people, "active") == ["Alice", "Chloé", "Frank"]
    assert where(people, "active IS TRUE") == ["Alice", "Chloé", "Frank"]
    assert where(people, "active IS FALSE") == ["Bob", "Eve"]
    assert where(people, "active: false") == ["Bob", "Eve"]
    assert where(people, "active = 'true'") == ["Alice", "Chloé", "Frank"]
    assert where(people, "NOT active") == ["Bob", "David", "Eve"]
    assert where(people, "active IS NOT TRUE") == ["Bob", "David", "Eve"]


def test_full_text_queries_match_whole_words_of_any_text_field(people: Portal) -> None:
    assert where(people, '"paris"') == ["Alice", "Chloé"]
    assert where(people, '"PARIS"') == ["Alice", "Chloé"]
    assert where(people, '"secret"') == ["Eve"]
    assert where(people, '"secret*"') == ["Alice", "Eve"]
    assert where(people, '"star wars"') == ["Bob"]
    assert where(people, '"star" AND NOT "wars"') == ["Frank"]
    assert where(people, '"europe france"') == ["Alice", "Bob", "Chloé"]
    assert where(people, '"chloé"') == ["Chloé"]
    assert where(people, '"chloe"') == ["Chloé"]  # accents are ignored, both ways
    assert where(people, '"CHLOÉ"') == ["Chloé"]
    assert where(people, '"pâris"') == ["Alice", "Chloé"]
    assert where(people, '"saint-denis"') == ["Eve"]
    assert where(people, '"red"') == ["Alice", "Eve"]  # multivalued values are text too


def test_search_is_fuzzy_on_every_term_but_the_last_which_is_a_prefix(people: Portal) -> None:
    assert where(people, "search(note, 'bok of secret')") == ["Alice"]  # the documented example
    assert where(people, "search(note, 'flimography films')") == ["David"]  # a transposition
    assert where(people, "search(note, 'fxlmxgrxphy films')") == []  # distance 3 is too far
    assert where(people, "search(note, 'bk of')") == []  # 2 letters: exact only
    assert where(people, "search(name, 'davd')") == []  # the last term is a prefix, not fuzzy
    assert where(people, "search(name, 'DAV')") == ["David"]
    assert where(people, "search('alice')") == ["Alice"]
    assert where(people, "search(*, 'lyo')") == ["Bob"]
    assert where(people, "search(name, city, 'berl')") == ["David"]
    assert where(people, "search(name, 'chloe')") == ["Chloé"]
    assert where(people, "suggest('CHLO')") == ["Chloé"]


def test_suggest_and_startswith(people: Portal) -> None:
    assert where(people, "suggest(note, 'sec')") == ["Alice", "Eve"]
    assert where(people, "suggest('STAR')") == ["Bob", "Frank"]
    assert where(people, "startswith(note, 'Star')") == ["Frank"]
    assert where(people, "startswith(note, 'star')") == ["Bob"]
    assert where(people, "startswith(note, 'wars')") == []
    assert where(people, "startswith(*, 'Eur')") == ["Alice", "Bob", "Chloé", "David"]
    assert where(people, "startswith(tags, 'gr')") == ["David"]


def test_partial_date_literals_stand_for_their_whole_period(people: Portal) -> None:
    assert where(people, "born = date'1990'") == ["Alice", "Eve"]
    assert where(people, "born > date'1990'") == ["Bob", "Chloé"]
    assert where(people, "born <= date'1990'") == ["Alice", "Eve", "Frank"]
    assert where(people, "born >= date'1990-12'") == ["Bob", "Chloé", "Eve"]
    assert where(people, "born < date'1990/12/31'") == ["Alice", "Frank"]
    assert where(people, "born IN [date'1990'..date'1997']") == ["Alice", "Bob", "Eve"]
    assert where(people, "born = '2001-01-01'") == ["Chloé"]
    assert where(people, "date'1990' = born") == ["Alice", "Eve"]


def test_datetime_literals_use_the_request_timezone(people: Portal) -> None:
    assert where(people, "seen >= date'2020-01-01'") == ["Alice", "Bob", "Eve", "Frank"]
    paris = {"timezone": "Europe/Paris"}
    assert where(people, "seen >= date'2020-01-01'", **paris) == [
        "Alice",
        "Bob",
        "Chloé",
        "Eve",
        "Frank",
    ]
    assert where(people, "seen < date'2020-01-01T01:00:00'") == ["Alice", "Chloé"]
    assert where(people, "seen < date'2020-01-01T01:00:00'", **paris) == ["Chloé"]
    assert where(people, "seen < date'2020-01-01T01:00:00+01:00'") == ["Chloé"]
    assert where(people, "seen < '2020-01-01T00:00:00Z'", **paris) == ["Chloé"]
    assert where(people, "seen = date'2020-02-29'", **paris) == ["Frank"]
    assert where(people, "seen = date'2020-03-01'", timezone="Asia/Tokyo") == ["Frank"]


def test_date_functions_use_the_request_timezone(people: Portal) -> None:
    assert where(people, "year(seen) = 2020") == ["Alice", "Bob", "Frank"]
    assert where(people, "year(seen) = 2020", timezone="Europe/Paris") == [
        "Alice",
        "Bob",
        "Chloé",
        "Frank",
    ]
    assert where(people, "hour(seen) = 0", timezone="Europe/Paris") == ["Chloé"]
    assert where(people, "month(born) = 2") == ["Frank"]
    assert where(people, "date_format(born, 'dd') = '31'") == ["Eve"]
    rows = people.rows(
        select="year(seen) AS y, month(seen) AS m, day(seen) AS d, hour(seen) AS h, minute(seen) AS mi, second(seen) AS s, dayofweek(seen) AS w, quarter(seen) AS q",
        where=["name = 'Frank'"],
        timezone="Europe/Paris",
    )
    assert rows == [{"y": 2020, "m": 2, "d": 29, "h": 23, "mi": 59, "s": 59, "w": 6, "q": 1}]


NOW = datetime(2021, 5, 6, 12, 34, 55, 450500, tzinfo=UTC)  # a Thursday, as in the ODS docs


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("now()", NOW),
        ("now(year=2000)", NOW.replace(year=2000)),
        ("now(years=-1)", NOW.replace(year=2020)),
        ("now(year=2001, months=-1)", NOW.replace(year=2001, month=4)),
        ("now(day=31, month=2)", NOW.replace(month=2, day=28)),
        ("now(weekday=0)", NOW.replace(day=10)),
        ("now(mondays=+1)", NOW.replace(day=10)),
        ("now(mondays=-1)", NOW.replace(day=3)),
        ("now(days=1, days=2)", NOW.replace(day=8)),
        ("now(hours=-13)", NOW.replace(day=5, hour=23)),
        (
            "now(hour=0, minute=0, second=0, microsecond=0)",
            NOW.replace(hour=0, minute=0, second=0, microsecond=0),
        ),
    ],
)
def test_now_sets_with_singular_and_adds_with_plural_arguments(
    people: Portal, call: str, expected: datetime
) -> None:
    (value,) = people.column("n", select=f"{call} AS n", where=["name = 'Alice'"], now=NOW)
    assert value == expected


def test_now_in_a_filter(people: Portal) -> None:
    assert where(people, "seen > now(years=-10)", now=NOW) == [
        "Alice",
        "Bob",
        "Chloé",
        "Eve",
        "Frank",
    ]
    start_of_june = "now(year=2020, month=6, day=1, hour=0, minute=0, second=0)"
    assert where(people, f"seen >= {start_of_june}", now=NOW) == ["Bob", "Eve"]
    with pytest.raises(ODSQLError, match="between 1 and 12"):
        people.compile(where=["seen > now(month=13)"])
    with pytest.raises(ODSQLError, match="Unknown now"):
        people.compile(where=["seen > now(fortnights=1)"])


@pytest.mark.parametrize(
    ("pattern", "lang", "expected"),
    [
        ("dd/MM/YYYY", "fr", "20/11/2007"),
        ("'The date is 'dd/MM/YYYY", "en", "The date is 20/11/2007"),
        ("'The date is '''dd/MM/YYYY''", "en", "The date is '20/11/2007'"),
        ("E", "fr", "mar."),
        ("EEEE", "fr", "mardi"),
        ("EEEE d MMMM yyyy", "en", "Tuesday 20 November 2007"),
        ("MMM", "fr", "nov."),
        ("H:HH:m:mm:s:ss", "fr", "1:01:23:23:45:45"),
        ("yy M MM d e D DDD", "fr", "07 11 11 20 2 324 324"),
        ("xxxx-'W'ww", "fr", "2007-W47"),
    ],
)
def test_date_format_follows_joda_patterns_and_lang(
    people: Portal, pattern: str, lang: str, expected: str
) -> None:
    select = f"date_format(date'2007-11-20T01:23:45', \"{pattern}\") AS f"
    assert people.column("f", select=select, where=["name = 'Alice'"], lang=lang) == [expected]


def test_date_format_week_years_and_names_of_a_field(people: Portal) -> None:
    rows = people.rows(
        select="date_format(date'2021-01-03', 'xxxx w e EEEE') AS f",
        where=["name = 'Bob'"],
        lang="en",
    )
    assert rows == [{"f": "2020 53 7 Sunday"}]
    assert people.column(
        "f", select="date_format(born, 'EEEE d MMMM yyyy') AS f", where=["name = 'Alice'"]
    ) == ["jeudi 12 avril 1990"]
    with pytest.raises(ODSQLError, match="pattern letter 'Q'"):
        people.compile(select="date_format(born, 'Q')")


# --------------------------------------------------------------------------- order_by


def test_order_by_puts_nulls_last_both_ways_and_breaks_ties_by_position(people: Portal) -> None:
    assert people.names(order_by="age DESC") == ["Frank", "David", "Alice", "Eve", "Bob", "Chloé"]
    assert people.names(order_by="age ASC") == ["Bob", "Alice", "Eve", "David", "Frank", "Chloé"]
    assert people.names(order_by="city, name DESC") == [
        "David",
        "Bob",
        "Chloé",
        "Alice",
        "Eve",
        "Frank",
    ]


def test_order_by_aliases_and_expressions(people: Portal) -> None:
    rows = people.rows(select="name, length(name) AS l", order_by="l DESC, name")
    assert [r["name"] for r in rows] == ["Alice", "Chloé", "David", "Frank", "Bob", "Eve"]
    assert people.names(order_by="length(note) desc")[:2] == ["David", "Alice"]


def test_default_order_is_the_source_order(people: Portal) -> None:
    assert people.names() == ALL


def test_random_order_is_stable_for_a_seed(people: Portal) -> None:
    first = people.names(order_by="random(1)")
    assert people.names(order_by="random(1)") == first
    assert sorted(first) == sorted(ALL)
    orders = {tuple(people.names(order_by=f"random({seed})")) for seed in range(1, 6)}
    assert len(orders) > 1


def test_limit_offset_and_total_count(people: Portal) -> None:
    assert people.names(limit=2, offset=1) == ["Bob", "Chloé"]
    assert people.count(limit=2, offset=1) == 6
    assert people.names(where=["age > 30"], limit=1) == ["Alice"]
    assert people.count(where=["age > 30"], limit=1) == 4
    assert people.names(limit=-1) == ALL
    assert people.names(limit=0) == []


def test_where_sql_is_the_whole_filter_alone(people: Portal) -> None:
    compiled = people.compile(
        where=["age > 20"], refine=["city:Paris"], exclude=["tags:blue"], select="name"
    )
    statement = f'SELECT name FROM t WHERE {compiled.where_sql} ORDER BY "__rowid"'
    names = [r[0] for r in execute(people.con, statement, compiled.where_params).fetchall()]
    assert names == people.names(where=["age > 20"], refine=["city:Paris"], exclude=["tags:blue"])
    assert names == []
    assert people.compile().where_sql == "TRUE"


def test_execute_maps_duckdb_errors(people: Portal) -> None:
    with pytest.raises(ODSQLError, match="could not be evaluated"):
        execute(people.con, "SELECT * FROM t WHERE nope", clause="facet")


# --------------------------------------------------------------------------- refine / exclude


def test_refine_on_text_multivalued_and_hierarchical_facets(people: Portal) -> None:
    assert people.names(refine=['city:"Paris"']) == ["Alice", "Chloé"]
    assert people.names(refine=["city:Paris"]) == ["Alice", "Chloé"]
    assert people.names(refine=["city:Paris", "city:Lyon"]) == [
        "Alice",
        "Bob",
        "Chloé",
    ]  # disjunctive
    assert people.names(refine=["tags:red", "tags:blue"]) == ["Alice"]  # conjunctive
    assert people.names(refine=["region:Europe/France"]) == ["Alice", "Bob", "Chloé"]
    assert people.names(refine=["region:Europe"]) == ["Alice", "Bob", "Chloé", "David"]
    assert people.names(refine=["region:Europe/Fr"]) == []
    assert people.names(refine=["age:34"]) == ["Alice", "Eve"]
    assert people.names(refine=["city:Paris"], where=["age > 30"]) == ["Alice"]


def test_refine_on_date_facets_uses_paths_in_the_request_timezone(people: Portal) -> None:
    assert people.names(refine=["born:1990"]) == ["Alice", "Eve"]
    assert people.names(refine=["born:1990/12"]) == ["Eve"]
    assert people.names(refine=["born:1990/12/31"]) == ["Eve"]
    assert people.names(refine=["seen:2020"]) == ["Alice", "Bob", "Frank"]
    assert people.names(refine=["seen:2020"], timezone="Europe/Paris") == [
        "Alice",
        "Bob",
        "Chloé",
        "Frank",
    ]
    assert people.names(refine=["seen:2020/01/01"], timezone="Europe/Paris") == ["Alice", "Chloé"]


def test_exclude_removes_matching_records_and_keeps_nulls(people: Portal) -> None:
    assert people.names(exclude=["city:Paris"]) == ["Bob", "David", "Eve", "Frank"]
    assert people.names(exclude=["tags:red"]) == ["Bob", "Chloé", "David", "Frank"]
    assert people.names(exclude=["tags:red", "tags:green"]) == ["Bob", "Chloé", "Frank"]
    assert people.names(refine=["city:Paris"], exclude=["tags:red"]) == ["Chloé"]


@pytest.mark.parametrize(
    ("params", "clause", "fragment"),
    [
        ({"refine": ["note:x"]}, "refine", "Field note is not a facet"),
        ({"refine": ["nope:x"]}, "refine", "Unknown field: nope"),
        ({"refine": ["garbage"]}, "refine", "expected <facet>:<value>"),
        ({"exclude": ["age:abc"]}, "exclude", "not a number"),
        ({"refine": ["born:1990-05"]}, "refine", "expected YYYY"),
        ({"exclude": ["born:1990/13"]}, "exclude", "not a date"),
    ],
)
def test_bad_refine_and_exclude_name_their_clause(
    people: Portal, params: dict[str, Any], clause: str, fragment: str
) -> None:
    with pytest.raises(ODSQLError) as error:
        people.compile(**params)
    assert error.value.clause == clause
    assert fragment in error.value.detail


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "clause", "detail"),
    [
        ({"where": ["nope > 1"]}, "where", "Unknown field: nope"),
        ({"select": "name, nope"}, "select", "Unknown field: nope"),
        ({"order_by": "nope"}, "order_by", "Unknown field: nope"),
        ({"group_by": "nope"}, "group_by", "Unknown field: nope"),
        ({"select": "invalid_function()"}, "select", "Unknown function: invalid_function()"),
    ],
)
def test_unknown_names(people: Portal, params: dict[str, Any], clause: str, detail: str) -> None:
    with pytest.raises(ODSQLError) as error:
        people.compile(**params)
    assert error.value.clause == clause
    assert error.value.detail == detail
    assert (
        error.value.message
        == f"ODSQL query is malformed: {detail} Clause(s) containing the error(s): {clause}."
    )


@pytest.mark.parametrize(
    ("params", "clause", "fragment"),
    [
        ({"select": "length(name, city)"}, "select", "takes 1 argument(s), 2 given"),
        ({"select": "sum(name)"}, "select", "sum() expects a numeric field"),
        ({"select": "avg(born)"}, "select", "avg() expects a numeric field"),
        ({"select": "name + 1"}, "select", "Arithmetic operators need numbers"),
        ({"where": ["count(*) > 1"]}, "where", "not allowed in where"),
        ({"where": ["name"]}, "where", "not a boolean"),
        ({"where": ["age = 'abc'"]}, "where", "Cannot compare a number"),
        ({"where": ["born > 3"]}, "where", "Cannot compare a date"),
        ({"where": ["name > age"]}, "where", "Cannot compare text with int"),
        ({"where": ["born = date'2020-13-01'"]}, "where", "Invalid date literal"),
        ({"where": ["lower(name)"]}, "where", "cannot be a filter"),
        ({"select": "search(name, 'x')"}, "select", "can only be used in a where clause"),
        ({"select": "name, count(*)"}, "select", "must be an aggregation or appear in a group_by"),
        ({"select": "random(1)"}, "select", "only be used in order_by"),
        ({"select": "range(age, 10)"}, "select", "only be used in group_by"),
        ({"order_by": "count(*)"}, "order_by", "not allowed in order_by"),
        ({"order_by": "random('x')"}, "order_by", "integer seed"),
        ({"where": ["'a' IN 1 + 1"]}, "where", "right side of IN"),
        ({"select": "json_format(tags)"}, "select", "expects a text value"),
    ],
)
def test_invalid_queries_raise_odsql_errors(
    people: Portal, params: dict[str, Any], clause: str, fragment: str
) -> None:
    with pytest.raises(ODSQLError) as error:
        people.compile(**params)
    assert error.value.clause == clause
    assert fragment in error.value.detail


def test_evaluation_errors_become_odsql_errors(people: Portal) -> None:
    compiled = people.compile(select="age * 9223372036854775807 AS big")
    with pytest.raises(ODSQLError) as error:
        run(people.con, compiled)
    assert "could not be evaluated" in error.value.detail
    assert error.value.clause == "select"


def test_an_invalid_timezone_is_a_parameter_error(people: Portal) -> None:
    with pytest.raises(InvalidRESTParameterError):
        people.compile(timezone="Mars/Olympus")
    with pytest.raises(InvalidRESTParameterError):
        people.compile(timezone="'; DROP TABLE t; --")


def test_literals_never_reach_the_sql_text(people: Portal) -> None:
    compiled = people.compile(where=["name = 'Robert\\'); DROP TABLE t; --'"], select="'x' AS c")
    assert "DROP" not in compiled.sql
    assert "DROP" in " ".join(str(p) for p in compiled.params)
    assert people.names(where=['name = "Bob\'; --"']) == []


# --------------------------------------------------------------------------- catalog


def test_catalog_pseudo_dataset_types() -> None:
    fields = [
        PortalField("dataset_id", "text"),
        PortalField("title", "text"),
        PortalField("theme", "text", annotations={"multivalued": [","], "facet": []}),
        PortalField("features", "text", annotations={"multivalued": [","], "facet": []}),
        PortalField("records_count", "int"),
        PortalField("modified", "datetime", annotations={"facet": []}),
    ]
    rows = [
        {
            "dataset_id": "a",
            "title": "Bikes",
            "theme": ["Transport"],
            "features": ["geo", "analyze"],
            "records_count": 10,
            "modified": utc(2024, 5, 1),
        },
        {
            "dataset_id": "b",
            "title": "Budget",
            "theme": ["Finance"],
            "features": ["analyze"],
            "records_count": 0,
            "modified": utc(2023, 1, 2),
        },
    ]
    portal = build_portal(fields, rows, table="catalog")
    try:
        ids = portal.column("dataset_id", select="dataset_id", where=["features = 'geo'"])
        assert ids == ["a"]
        assert portal.column("dataset_id", select="dataset_id", refine=["modified:2023"]) == ["b"]
        assert portal.column("dataset_id", select="dataset_id", refine=["theme:Finance"]) == ["b"]
        assert portal.column(
            "dataset_id", select="dataset_id", where=["records_count > 0", "'bikes'"]
        ) == ["a"]
        rows_by_feature = portal.rows(group_by="features", select="count(*) AS n")
        assert rows_by_feature == [{"features": "analyze", "n": 2}, {"features": "geo", "n": 1}]
    finally:
        portal.con.close()


# --------------------------------------------------------------------------- property


def _evaluate(node: tuple[Any, ...], row: dict[str, int | None]) -> bool:
    """Reference semantics: a comparison with null is false; NOT/AND/OR are plain booleans."""
    kind = node[0]
    if kind == "cmp":
        _, column, op, value = node
        left = row[column]
        if left is None:
            return False
        return {"=": left == value, ">": left > value, "<=": left <= value}[op]
    if kind == "null":
        return row[node[1]] is None
    if kind == "not":
        return not _evaluate(node[1], row)
    results = [_evaluate(child, row) for child in node[1]]
    return all(results) if kind == "and" else any(results)


def _write(node: tuple[Any, ...]) -> str:
    kind = node[0]
    if kind == "cmp":
        return f"{node[1]} {node[2]} {node[3]}"
    if kind == "null":
        return f"{node[1]} IS NULL"
    if kind == "not":
        return f"NOT ({_write(node[1])})"
    return "(" + f" {kind.upper()} ".join(_write(c) for c in node[1]) + ")"


_atoms = st.one_of(
    st.tuples(
        st.just("cmp"),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["=", ">", "<="]),
        st.integers(0, 4),
    ),
    st.tuples(st.just("null"), st.sampled_from(["a", "b"])),
)
_filters = st.recursive(
    _atoms,
    lambda children: st.one_of(
        st.tuples(st.just("not"), children),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)
_NUMBERS = [
    {"name": str(i), "a": (i * 7) % 5 if i % 4 else None, "b": (i * 3) % 5 if i % 3 else None}
    for i in range(20)
]


@pytest.fixture(scope="module")
def numbers() -> Iterator[Portal]:
    fields = [PortalField("name", "text"), PortalField("a", "int"), PortalField("b", "int")]
    portal = build_portal(fields, _NUMBERS)
    yield portal
    portal.con.close()


@settings(max_examples=120, deadline=None)
@given(_filters)
def test_boolean_filters_match_the_reference_semantics(
    numbers: Portal, node: tuple[Any, ...]
) -> None:
    expected = [row["name"] for row in _NUMBERS if _evaluate(node, row)]
    assert numbers.names(where=[_write(node)]) == expected


def test_udfs_register_once_per_connection(people: Portal) -> None:
    ensure_udfs(people.con)
    ensure_udfs(people.con)
    names = {
        r[0] for r in people.con.execute("SELECT function_name FROM duckdb_functions()").fetchall()
    }
    assert {"__ods_point_relate", "__ods_shape_relate", "__ods_envelope"} <= names
