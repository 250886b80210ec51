"""read_ods_aggregate against the local portal, checked value for value against pandas.

The reference data is the portal's own DuckDB table (the records the portal serves), grouped
with pandas on this side.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import portal_frame

from odsframe.analysis import aggregate_with, read_ods_aggregate
from odsframe.api import open_adapter
from odsframe.errors import IncompleteResultError, InvalidQueryArgument, QueryError
from odsframe.query import Query
from odsframe.testing.catalog import Catalog
from odsframe.testing.portal import LocalPortal

EVENTS = "sample-events"


@pytest.fixture(scope="module")
def events(sample_catalog: Catalog) -> pd.DataFrame:
    return portal_frame(sample_catalog, EVENTS)


def rows_by_key(frame: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``{key tuple: {column: value}}`` with missing values as None."""
    result = {}
    for record in frame.astype(object).to_dict("records"):
        clean = {k: (None if _missing(v) else v) for k, v in record.items()}
        result[tuple(clean[k] for k in keys)] = clean
    return result


def _missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def test_several_aggregates_per_key_equal_pandas(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by="category",
        agg={
            "n": "count",
            "priced": ("price", "count"),
            "mean_price": ("price", "mean"),
            "total_attendance": ("attendance", "sum"),
            "cheapest": ("price", "min"),
            "dearest": "max(price)",
            "median_price": ("price", "median"),
            "p90": ("price", ("percentile", 90)),
            "venues": ("venue", "nunique"),
            "last_start": ("start", "max"),
        },
    )
    grouped = events.groupby("category")
    expected = pd.DataFrame(
        {
            "n": grouped.size(),
            "priced": grouped["price"].count(),
            "mean_price": grouped["price"].mean(),
            "total_attendance": grouped["attendance"].sum(),
            "cheapest": grouped["price"].min(),
            "dearest": grouped["price"].max(),
            "median_price": grouped["price"].median(),
            "p90": grouped["price"].quantile(0.9),
            "venues": grouped["venue"].nunique(),
            "last_start": grouped["start"].max(),
        }
    )
    assert list(frame.columns) == ["category", *expected.columns]
    assert list(frame["category"]) == sorted(expected.index)  # key order, ascending
    got = frame.set_index("category")
    for column in ("n", "priced", "total_attendance", "venues"):
        assert got[column].dtype == "Int64"
        assert got[column].tolist() == expected.loc[got.index, column].tolist(), column
    for column in ("mean_price", "cheapest", "dearest", "median_price", "p90"):
        assert got[column].dtype == "Float64"
        np.testing.assert_allclose(
            got[column].to_numpy(float), expected.loc[got.index, column].to_numpy(float)
        )
    assert str(got["last_start"].dtype) == "datetime64[us, UTC]"
    assert (got["last_start"] == expected.loc[got.index, "last_start"]).all()


def test_date_functions_in_the_request_timezone(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by=["year(start) AS year", "hour(start)"],
        agg={"n": "count(*)", "mean_duration": ("duration_min", "mean")},
        timezone="Europe/Paris",
    )
    local = events["start"].dt.tz_convert("Europe/Paris")
    expected = events.groupby([local.dt.year.rename("y"), local.dt.hour.rename("h")]).agg(
        n=("event_id", "size"), mean_duration=("duration_min", "mean")
    )
    assert list(frame.columns) == ["year", "hour(start)", "n", "mean_duration"]
    assert frame["year"].dtype == "Int64" and frame["hour(start)"].dtype == "Int64"
    got = frame.set_index(["year", "hour(start)"])
    assert got.index.tolist() == expected.index.tolist()
    assert got["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(got["mean_duration"].to_numpy(float), expected["mean_duration"])
    # Hours in UTC are not the same: the timezone was applied by the portal.
    utc_hours = events["start"].dt.hour.value_counts().sort_index()
    assert frame.groupby("hour(start)")["n"].sum().to_dict() != utc_hours.to_dict()


def test_date_format_key_and_date_histogram(sample_portal: LocalPortal, events) -> None:
    months = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by="date_format(start, 'yyyy-MM') AS month_text",
        agg={"n": "count(*)"},
    )
    expected = events["start"].dt.strftime("%Y-%m").value_counts().sort_index()
    assert months["month_text"].tolist() == expected.index.tolist()
    assert months["n"].tolist() == expected.tolist()

    years = read_ods_aggregate(
        sample_portal.url, EVENTS, by="range(start, 1y) AS year_start", timezone="Europe/Paris"
    )
    assert str(years["year_start"].dtype) == "datetime64[us, Europe/Paris]"
    local = events["start"].dt.tz_convert("Europe/Paris")
    expected_years = local.dt.year.value_counts().sort_index()
    assert years["year_start"].dt.year.tolist() == expected_years.index.tolist()
    assert (years["year_start"].dt.month == 1).all() and (years["year_start"].dt.hour == 0).all()
    assert years["count"].tolist() == expected_years.tolist()


def test_numeric_ranges_become_intervals(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_aggregate(
        sample_portal.url, EVENTS, by="range(price, 10) AS band", agg={"n": "count(*)"}
    )
    assert isinstance(frame["band"].dtype, pd.IntervalDtype)
    assert frame["band"].array.closed == "left"
    priced = events["price"].dropna()
    lower = (np.floor(priced / 10) * 10).value_counts().sort_index()
    assert frame["band"].array.left.tolist() == lower.index.tolist()
    assert (frame["band"].array.right - frame["band"].array.left == 10).all()
    assert frame["n"].tolist() == lower.tolist()
    # Each record falls in the interval of its group.
    for interval, count in zip(frame["band"], frame["n"], strict=True):
        assert priced.map(lambda value, iv=interval: value in iv).sum() == count

    ints = read_ods_aggregate(sample_portal.url, EVENTS, by="range(attendance, 50) AS band")
    assert ints["band"].array.closed == "left"
    attendance = events["attendance"].dropna().astype(int)
    expected = (attendance // 50 * 50).value_counts().sort_index()
    assert ints["band"].array.left.astype(int).tolist() == expected.index.tolist()
    assert ints["count"].tolist() == expected.tolist()


def test_null_keys_form_their_own_group(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by="attendance",
        agg={"n": "count(*)", "mean_price": ("price", "mean")},
    )
    expected = events.groupby("attendance", dropna=False).agg(
        n=("event_id", "size"), mean_price=("price", "mean")
    )
    assert frame["attendance"].dtype == "Int64"
    assert frame["attendance"].isna().sum() == 1
    assert frame["attendance"].isna().iloc[-1]  # nulls come last
    got = rows_by_key(frame, ["attendance"])
    want = rows_by_key(expected.reset_index(), ["attendance"])
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert got[key]["n"] == row["n"]
        if row["mean_price"] is None:
            assert got[key]["mean_price"] is None
        else:
            assert got[key]["mean_price"] == pytest.approx(row["mean_price"])


def test_multi_key_groups_with_filters(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by=["arrondissement", "free"],
        agg={"n": "count(*)", "attendance": ("attendance", "mean")},
        where="duration_min >= 60",
        refine={"category": ["Concert", "Danse"]},
        exclude={"arrondissement": "75010"},
    )
    kept = events[
        (events["duration_min"] >= 60)
        & events["category"].isin(["Concert", "Danse"])
        & (events["arrondissement"] != "75010")
    ]
    expected = kept.groupby(["arrondissement", "free"]).agg(
        n=("event_id", "size"), attendance=("attendance", "mean")
    )
    assert frame["free"].dtype == "boolean"
    assert "75010" not in set(frame["arrondissement"])
    got = frame.set_index(["arrondissement", "free"])
    assert got.index.tolist() == expected.index.tolist()
    assert got["n"].tolist() == expected["n"].tolist()
    np.testing.assert_allclose(got["attendance"].to_numpy(float), expected["attendance"])


def test_order_by_a_column_name_and_limit(sample_portal: LocalPortal, events) -> None:
    frame = read_ods_aggregate(
        sample_portal.url, EVENTS, by="venue", agg={"n": "count"}, order_by="-n", limit=5
    )
    counts = events["venue"].value_counts()
    assert len(frame) == 5
    assert frame["n"].tolist() == counts.head(5).tolist()
    assert all(counts[venue] == n for venue, n in zip(frame["venue"], frame["n"], strict=True))

    reserved = read_ods_aggregate(
        sample_portal.url, EVENTS, by="category", order_by="count DESC", limit=2
    )
    assert reserved["count"].tolist() == events["category"].value_counts().head(2).tolist()


def test_without_keys_one_row_over_every_match(
    sample_portal: LocalPortal, events, recording_session
) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        agg={"n": "count(*)", "total": "sum(attendance)", "mean": ("price", "mean")},
        where={"category": "Cinéma"},
        session=recording_session,
    )
    assert frame.attrs["ods"]["url"] in recording_session.urls
    assert "group_by" not in frame.attrs["ods"]["url"]
    cinema = events[events["category"] == "Cinéma"]
    assert len(frame) == 1
    assert frame.loc[0, "n"] == len(cinema)
    assert frame.loc[0, "total"] == cinema["attendance"].sum()
    assert frame.loc[0, "mean"] == pytest.approx(cinema["price"].mean())


def test_no_matching_record_gives_an_empty_typed_frame(sample_portal: LocalPortal) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by=["category", "year(start) AS year"],
        agg={"n": "count(*)", "mean": ("price", "mean")},
        where="price > 100000",
    )
    assert frame.empty
    assert list(frame.columns) == ["category", "year", "n", "mean"]
    assert frame["year"].dtype == "Int64" and frame["mean"].dtype == "Float64"


def test_provenance(sample_portal: LocalPortal, recording_session) -> None:
    frame = read_ods_aggregate(
        sample_portal.url,
        EVENTS,
        by="category",
        agg={"mean price": ("price", "mean")},
        where="price > 10",
        session=recording_session,
    )
    ods = frame.attrs["ods"]
    assert ods["kind"] == "aggregate"
    assert ods["portal"] == sample_portal.url and ods["dataset"] == EVENTS
    assert ods["data_processed"] == "2024-06-01T08:00:00+00:00"
    assert ods["query"]["where"] == ["price > 10"]
    assert ods["query"]["agg"] == {"mean price": "avg(price)"}
    assert ods["route"] == "records" and ods["requests"] == 1 and ods["groups"] == len(frame)
    # The data request made is the one recorded (a name with a space gets a safe alias).
    assert ods["url"] in recording_session.urls
    assert "group_by=category" in ods["url"] and "AS+odsframe_a0" in ods["url"]
    assert frame.columns.tolist() == ["category", "mean price"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"by": "nowhere"}, "no field 'nowhere'"),
        ({"by": "location"}, "geo field"),
        ({"by": ["category", "category"]}, "given twice"),
        ({"by": 12}, "by: expected"),
        ({"agg": {"m": ("price", "std")}}, "unknown aggregation 'std'"),
        ({"agg": {"m": ("nowhere", "sum")}}, "no field 'nowhere'"),
        ({"agg": {"m": ("price", ("percentile", 120))}}, "between 0 and 100"),
        ({"agg": {"m": ("price", "percentile")}}, "which percentile"),
        ({"agg": {"m": "avg(price) AS m"}}, "leave the AS alias out"),
        ({"agg": {"m": "sum"}}, "needs a field"),
        ({"agg": ["count(*)"]}, "expected a mapping"),
        ({"by": "category", "agg": {"category": "count(*)"}}, "already a group key"),
        ({"partition": "sideways"}, "partition"),
    ],
)
def test_bad_arguments_are_named(
    sample_portal: LocalPortal, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        read_ods_aggregate(sample_portal.url, EVENTS, **arguments)


def test_odsql_the_portal_refuses_is_a_query_error(sample_portal: LocalPortal) -> None:
    with pytest.raises(QueryError, match=r"(?i)odsql"):
        read_ods_aggregate(sample_portal.url, EVENTS, by="category", agg={"x": "avg(title"})


# ------------------------------------------------------------------------------------------
# More groups than one request: keyset parts, checked on small parts of the 3 000 events


@pytest.fixture
def adapter(sample_portal: LocalPortal):
    with open_adapter(sample_portal.url) as opened:
        yield opened


@pytest.mark.parametrize(
    "by",
    [
        ["free", "attendance", "category"],  # a boolean, an int with nulls, a text
        ["arrondissement", "year(start) AS year", "duration_min"],  # an expression key
        ["start"],  # datetimes compared in a where
    ],
)
def test_keyset_parts_give_the_same_groups_as_one_answer(adapter, by: list[str]) -> None:
    whole = aggregate_with(adapter, Query(EVENTS), by=by, agg={"n": "count(*)"})
    parts = aggregate_with(
        adapter, Query(EVENTS), by=by, agg={"n": "count(*)"}, partition="where", page_size=97
    )
    assert whole.attrs["ods"]["requests"] == 1
    assert parts.attrs["ods"]["route"] == "where"
    assert parts.attrs["ods"]["requests"] == math.ceil((len(whole) + 1) / 97)
    pd.testing.assert_frame_equal(parts, whole)
    assert parts["n"].sum() == 3_000


def test_keyset_parts_with_an_order_and_a_limit(adapter, events) -> None:
    query = Query(EVENTS, order_by=["-n", "venue"], limit=150)
    frame = aggregate_with(
        adapter, query, by=["venue", "category"], agg={"n": "count(*)"}, page_size=40
    )
    expected = (
        events.groupby(["venue", "category"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["n", "venue"], ascending=[False, True], kind="stable")
        .head(150)
    )
    assert len(frame) == 150
    assert frame["n"].tolist() == expected["n"].tolist()
    assert frame["venue"].tolist() == expected["venue"].tolist()


def test_keys_that_cannot_be_partitioned_fail_loudly(adapter) -> None:
    with pytest.raises(IncompleteResultError, match="range"):
        aggregate_with(
            adapter, Query(EVENTS), by="range(price, 1) AS band", partition="where", page_size=10
        )
    with pytest.raises(IncompleteResultError, match=r"\['tags = tags'\]"):
        aggregate_with(adapter, Query(EVENTS), by="tags", partition="where", page_size=3)


def test_a_limit_within_one_answer_is_not_partitioned(adapter) -> None:
    frame = aggregate_with(adapter, Query(EVENTS, limit=20), by="event_id", page_size=20)
    assert len(frame) == 20 and frame.attrs["ods"]["requests"] == 1
