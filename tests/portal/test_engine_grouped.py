"""The ODSQL engine's group_by: keys, ranges, date buckets, ordering, aggregates, geo_cluster.

Expected values are computed independently with pandas/numpy from the same Python rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_engine import Portal, build_portal, utc

from odsframe.testing.engine import run
from odsframe.testing.errors import ODSQLError
from odsframe.testing.model import PortalField

SALES_FIELDS = [
    PortalField("store", "text", annotations={"facet": []}),
    PortalField("cats", "text", annotations={"multivalued": [","]}),
    PortalField("qty", "int"),
    PortalField("price", "double"),
    PortalField("sold_on", "date", annotations={"timeserie_precision": ["month"]}),
    PortalField("at", "datetime"),
    PortalField("geo", "geo_point_2d"),
]
SALES: list[dict[str, Any]] = [
    {
        "store": "A",
        "cats": ["x", "y"],
        "qty": 1,
        "price": 10.0,
        "sold_on": date(2020, 1, 1),
        "at": utc(2020, 1, 1, 23, 30),
        "geo": (2.0, 48.0),
    },
    {
        "store": "A",
        "cats": ["x"],
        "qty": 5,
        "price": 2.5,
        "sold_on": date(2020, 1, 15),
        "at": utc(2020, 1, 2, 0, 30),
        "geo": (2.1, 48.1),
    },
    {
        "store": "B",
        "cats": ["y"],
        "qty": 12,
        "price": None,
        "sold_on": date(2020, 2, 1),
        "at": utc(2020, 2, 1, 12),
        "geo": (5.0, 45.0),
    },
    {
        "store": "B",
        "cats": [],
        "qty": 20,
        "price": 7.5,
        "sold_on": date(2021, 3, 1),
        "at": utc(2021, 3, 1, 8),
        "geo": (5.1, 45.1),
    },
    {
        "store": "C",
        "cats": None,
        "qty": None,
        "price": 1.0,
        "sold_on": None,
        "at": None,
        "geo": None,
    },
    {
        "store": None,
        "cats": ["z"],
        "qty": 49,
        "price": 4.0,
        "sold_on": date(2021, 12, 31),
        "at": utc(2021, 12, 31, 23, 59),
        "geo": (2.05, 48.05),
    },
    {
        "store": "A",
        "cats": ["x", "z"],
        "qty": 50,
        "price": 3.0,
        "sold_on": date(2020, 1, 1),
        "at": utc(2020, 1, 1),
        "geo": (10.0, 50.0),
    },
    {
        "store": "C",
        "cats": ["y"],
        "qty": 14,
        "price": 6.0,
        "sold_on": date(2020, 2, 29),
        "at": utc(2020, 2, 29, 23),
        "geo": (2.0, 48.2),
    },
]


@pytest.fixture(scope="module")
def sales() -> Iterator[Portal]:
    portal = build_portal(SALES_FIELDS, SALES)
    yield portal
    portal.con.close()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame(SALES)


def _nulls_last(values: list[Any]) -> list[Any]:
    return sorted([v for v in values if v is not None]) + [v for v in values if v is None]


# --------------------------------------------------------------------------- keys


def test_group_by_field_sorts_keys_and_gives_nulls_a_group(sales: Portal) -> None:
    assert sales.rows(group_by="store") == [
        {"store": "A"},
        {"store": "B"},
        {"store": "C"},
        {"store": None},
    ]
    compiled = sales.compile(group_by="store")
    assert compiled.grouped and compiled.count_sql is None


def test_aggregates_per_group_match_pandas(sales: Portal, frame: pd.DataFrame) -> None:
    rows = sales.rows(
        group_by="store",
        select="store, count(*), count(qty), sum(qty), avg(price), min(sold_on), max(at)",
    )
    grouped = frame.groupby("store", dropna=False)
    for row in rows:
        part = (
            frame[frame["store"].isna()]
            if row["store"] is None
            else grouped.get_group(row["store"])
        )
        assert row["count(*)"] == len(part)
        assert row["count(qty)"] == part["qty"].notna().sum()
        assert row["sum(qty)"] == part["qty"].fillna(0).sum()
        assert (
            row["avg(price)"] == pytest.approx(part["price"].mean())
            if part["price"].notna().any()
            else row["avg(price)"] is None
        )
        days = [d for d in part["sold_on"] if d is not None and not pd.isna(d)]
        assert row["min(sold_on)"] == (min(days) if days else None)
        stamps = [t for t in part["at"] if t is not None and not pd.isna(t)]
        assert row["max(at)"] == (max(stamps) if stamps else None)
    assert [r["store"] for r in rows] == ["A", "B", "C", None]


def test_multivalued_keys_give_one_group_per_value(sales: Portal) -> None:
    rows = sales.rows(group_by="cats", select="count(*) AS n")
    assert rows == [
        {"cats": "x", "n": 3},
        {"cats": "y", "n": 3},
        {"cats": "z", "n": 2},
        {"cats": None, "n": 2},
    ]


def test_several_keys_give_the_cartesian_groups(sales: Portal, frame: pd.DataFrame) -> None:
    rows = sales.rows(group_by="store, cats", select="count(*) AS n")
    exploded = frame.assign(cats=frame["cats"].map(lambda v: v if v else [None])).explode("cats")
    counts = exploded.groupby(["store", "cats"], dropna=False).size()
    expected = []
    for (store, cat), n in counts.items():
        expected.append(
            {
                "store": None if pd.isna(store) else store,
                "cats": None if pd.isna(cat) else cat,
                "n": int(n),
            }
        )
    expected.sort(
        key=lambda r: (r["store"] is None, r["store"] or "", r["cats"] is None, r["cats"] or "")
    )
    assert rows == expected


def test_aliases_name_keys_and_can_be_selected_and_sorted(sales: Portal) -> None:
    rows = sales.rows(group_by="store AS s", select="s, count(*) AS n", order_by="n DESC")
    assert rows == [{"s": "A", "n": 3}, {"s": "B", "n": 2}, {"s": "C", "n": 2}, {"s": None, "n": 1}]
    rows = sales.rows(group_by="store", select="count(*) AS n, store")
    assert list(rows[0]) == ["n", "store"]


def test_keys_come_first_when_select_does_not_name_them(sales: Portal) -> None:
    compiled = sales.compile(group_by="store, year(sold_on)", select="count(*)")
    assert [c.key for c in compiled.columns] == ["store", "year(sold_on)", "count(*)"]
    assert [c.type for c in compiled.columns] == ["text", "int", "int"]


def test_select_must_only_use_keys_and_aggregates(sales: Portal) -> None:
    with pytest.raises(ODSQLError) as error:
        sales.compile(group_by="store", select="qty, count(*)")
    assert error.value.clause == "select"
    assert "qty must be an aggregation or appear in group_by" in error.value.detail
    rows = sales.rows(group_by="year(sold_on)", select="YEAR(sold_on), count(*) AS n")
    assert rows == [
        {"YEAR(sold_on)": 2020, "n": 5},
        {"YEAR(sold_on)": 2021, "n": 2},
        {"YEAR(sold_on)": None, "n": 1},
    ]


def test_date_function_keys_use_the_request_timezone(sales: Portal, frame: pd.DataFrame) -> None:
    rows = sales.rows(
        group_by="year(at) AS y, month(at) AS m", select="count(*) AS n", timezone="Europe/Paris"
    )
    local = pd.to_datetime(frame["at"].dropna(), utc=True).dt.tz_convert("Europe/Paris")
    counts = local.groupby([local.dt.year, local.dt.month]).size()
    expected = [{"y": int(y), "m": int(m), "n": int(n)} for (y, m), n in counts.items()]
    assert rows[:-1] == expected
    assert rows[-1] == {"y": None, "m": None, "n": 1}


def test_date_format_keys_are_strings(sales: Portal) -> None:
    rows = sales.rows(group_by="date_format(sold_on, 'yyyy-MM') AS ym", select="count(*) AS n")
    assert rows == [
        {"ym": "2020-01", "n": 3},
        {"ym": "2020-02", "n": 2},
        {"ym": "2021-03", "n": 1},
        {"ym": "2021-12", "n": 1},
        {"ym": None, "n": 1},
    ]


def test_date_and_datetime_keys_stay_dates_for_the_serializer(sales: Portal) -> None:
    compiled = sales.compile(group_by="sold_on, at")
    day_key, at_key = compiled.columns
    assert (day_key.type, day_key.date_precision, at_key.type) == ("date", "month", "datetime")
    rows = sales.rows(group_by="sold_on", select="count(*) AS n")
    assert rows[0] == {"sold_on": date(2020, 1, 1), "n": 2}


def test_grouping_on_geo_fields_is_refused(sales: Portal) -> None:
    with pytest.raises(ODSQLError, match="geo_cluster"):
        sales.compile(group_by="geo")


# --------------------------------------------------------------------------- ranges


def test_static_int_ranges_show_upper_minus_one(sales: Portal) -> None:
    rows = sales.rows(group_by="range(qty, *, 10, 20, *)", select="count(*) AS n")
    assert rows == [
        {"range(qty, *, 10, 20, *)": "[*, 9]", "n": 2},
        {"range(qty, *, 10, 20, *)": "[10, 19]", "n": 2},
        {"range(qty, *, 10, 20, *)": "[20, *]", "n": 3},
    ]
    rows = sales.rows(group_by="RANGE(qty,10,20,50) AS r", select="count(*) AS n")
    assert rows == [{"r": "[10, 19]", "n": 2}, {"r": "[20, 49]", "n": 2}]
    assert sales.compile(group_by="range(qty, 10, 20) AS r").columns[0].type == "range"


def test_static_double_and_date_ranges_are_half_open(sales: Portal) -> None:
    rows = sales.rows(group_by="range(price, *, 5, *) AS r", select="count(*) AS n")
    assert rows == [{"r": "[*, 5.0[", "n": 4}, {"r": "[5.0, *[", "n": 3}]
    rows = sales.rows(
        group_by="range(sold_on, *, date'2020-02-01', date'2021-01-01', *) AS r",
        select="count(*) AS n",
    )
    assert rows == [
        {"r": "[*, 2020-02-01T00:00:00.000Z[", "n": 3},
        {"r": "[2020-02-01T00:00:00.000Z, 2021-01-01T00:00:00.000Z[", "n": 2},
        {"r": "[2021-01-01T00:00:00.000Z, *[", "n": 2},
    ]
    rows = sales.rows(
        group_by="range(at, date'2020-02-01', *) AS r",
        select="count(*) AS n",
        timezone="Europe/Paris",
    )
    assert rows == [{"r": "[2020-02-01T00:00:00.000+01:00, *[", "n": 4}]


def test_equal_width_ranges_skip_empty_buckets(sales: Portal) -> None:
    rows = sales.rows(group_by="range(qty, 15) AS r", select="count(*) AS n")
    assert rows == [{"r": "[0, 14]", "n": 4}, {"r": "[15, 29]", "n": 1}, {"r": "[45, 59]", "n": 2}]
    rows = sales.rows(group_by="range(price, 2.5) AS r", select="count(*) AS n")
    assert rows == [
        {"r": "[0.0, 2.5[", "n": 1},
        {"r": "[2.5, 5.0[", "n": 3},
        {"r": "[5.0, 7.5[", "n": 1},
        {"r": "[7.5, 10.0[", "n": 1},
        {"r": "[10.0, 12.5[", "n": 1},
    ]


@pytest.mark.parametrize(
    ("width", "timezone", "freq"),
    [
        ("1d", "UTC", "D"),
        ("1 day", "Europe/Paris", "D"),
        ("12h", "UTC", "12h"),
        ("1y", "Asia/Tokyo", "YS"),
        ("1M", "UTC", "MS"),
    ],
)
def test_date_histograms_start_buckets_in_the_request_timezone(
    sales: Portal, frame: pd.DataFrame, width: str, timezone: str, freq: str
) -> None:
    rows = sales.rows(
        group_by=f"range(at, {width}) AS b", select="count(*) AS n", timezone=timezone
    )
    local = (
        pd.to_datetime(frame["at"].dropna(), utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
    )
    if freq in ("YS", "MS"):
        starts = local.dt.to_period(freq[0]).dt.start_time
    else:
        starts = local.dt.floor(freq)
    counts = starts.groupby(starts).size()
    expected = [
        {"b": start.tz_localize(timezone).to_pydatetime(), "n": int(n)}
        for start, n in counts.items()
    ]
    assert rows == expected
    assert sales.compile(group_by=f"range(at, {width})").columns[0].type == "datetime"


def test_date_field_histograms_have_date_keys(sales: Portal) -> None:
    rows = sales.rows(group_by="range(sold_on, 1M) AS m", select="count(*) AS n")
    assert rows == [
        {"m": date(2020, 1, 1), "n": 3},
        {"m": date(2020, 2, 1), "n": 2},
        {"m": date(2021, 3, 1), "n": 1},
        {"m": date(2021, 12, 1), "n": 1},
    ]


@pytest.mark.parametrize(
    ("group_by", "fragment"),
    [
        ("range(qty, 20, 10)", "increasing order"),
        ("range(qty, 0)", "must be positive"),
        ("range(sold_on, 2M)", "more than 1 month"),
        ("range(sold_on, 1 fortnight)", "unit"),
        ("range(sold_on, 3)", "needs an interval"),
        ("range(store, 3)", "numeric, date or datetime"),
        ("range(qty, *, *)", "'*' is only allowed"),
        ("count(*)", "not allowed in group_by"),
    ],
)
def test_bad_ranges(sales: Portal, group_by: str, fragment: str) -> None:
    with pytest.raises(ODSQLError) as error:
        sales.compile(group_by=group_by)
    assert error.value.clause == "group_by"
    assert fragment in error.value.detail


# --------------------------------------------------------------------------- ordering


def test_order_by_aggregates_then_keys(sales: Portal) -> None:
    expected = ["A", "B", "C", None]
    assert sales.column("store", group_by="store", order_by="count(*) DESC") == expected
    assert sales.column("store", group_by="store", order_by="store DESC") == ["C", "B", "A", None]
    assert sales.column("store", group_by="store", order_by="sum(qty) DESC, store") == [
        "A",
        None,
        "B",
        "C",
    ]
    assert sales.column("store", group_by="store", select="avg(price) AS p", order_by="p") == [
        "C",
        None,
        "A",
        "B",
    ]
    with pytest.raises(ODSQLError) as error:
        sales.compile(group_by="store", order_by="store, count(*)")
    assert error.value.clause == "order_by"
    assert "aggregations must come before" in error.value.detail
    with pytest.raises(ODSQLError, match="group key"):
        sales.compile(group_by="store", order_by="qty")


def test_random_order_of_groups_is_stable(sales: Portal) -> None:
    first = sales.column("store", group_by="store", order_by="random(7)")
    assert first == sales.column("store", group_by="store", order_by="random(7)")
    assert _nulls_last(first) == ["A", "B", "C", None]


def test_limit_and_offset_apply_to_groups(sales: Portal) -> None:
    assert sales.column("store", group_by="store", limit=2, offset=1) == ["B", "C"]


# --------------------------------------------------------------------------- aggregates


def test_aggregates_without_group_by_give_one_row(sales: Portal, frame: pd.DataFrame) -> None:
    compiled = sales.compile(
        select="count(*), count(distinct store), median(qty), percentile(qty, 90), sum(price)"
    )
    assert compiled.grouped and compiled.count_sql is None
    (row,) = sales.rows(
        select="count(*), count(distinct store), median(qty), percentile(qty, 90), sum(price)"
    )
    quantities = frame["qty"].dropna().to_numpy(dtype=float)
    assert row == {
        "count(*)": 8,
        "count(distinct store)": 3,
        "median(qty)": pytest.approx(float(np.median(quantities))),
        "percentile(qty, 90)": pytest.approx(float(np.percentile(quantities, 90))),
        "sum(price)": pytest.approx(frame["price"].sum()),
    }
    types = {c.key: c.type for c in compiled.columns}
    assert types["count(*)"] == "int" and types["median(qty)"] == "number"


def test_aggregates_follow_the_filters(sales: Portal) -> None:
    (row,) = sales.rows(
        select="count(*) AS n, max(qty) AS m", where=["qty < 20"], refine=["store:B"]
    )
    assert row == {"n": 1, "m": 12}
    (row,) = sales.rows(select="count(distinct ifnull(store, 'none')) AS n")
    assert row == {"n": 4}


@pytest.mark.parametrize(
    ("select", "fragment"),
    [
        ("percentile(qty, 120)", "between 0 and 100"),
        ("percentile(qty, qty)", "between 0 and 100"),
        ("sum(count(*))", "cannot be nested"),
        ("envelope(store)", "expects a geo_point_2d or geo_shape field"),
        ("min(store)", "numeric or date"),
        ("sum(distinct qty)", "DISTINCT is only allowed in count()"),
    ],
)
def test_bad_aggregates(sales: Portal, select: str, fragment: str) -> None:
    with pytest.raises(ODSQLError) as error:
        sales.compile(select=select)
    assert error.value.clause == "select"
    assert fragment in error.value.detail


def test_envelope_is_a_convex_hull_and_bbox_a_box(sales: Portal) -> None:
    rows = sales.rows(
        group_by="store",
        select="envelope(geo) AS hull, bbox(geo) AS box",
        where=["store IS NOT NULL"],
    )
    hulls = {row["store"]: json.loads(row["hull"]) for row in rows}
    assert hulls["A"]["type"] == "Polygon"
    assert sorted(map(tuple, hulls["A"]["coordinates"][0][:-1])) == [
        (2.0, 48.0),
        (2.1, 48.1),
        (10.0, 50.0),
    ]
    assert hulls["B"] == {"type": "LineString", "coordinates": [[5.0, 45.0], [5.1, 45.1]]}
    assert hulls["C"] == {"type": "Point", "coordinates": [2.0, 48.2]}
    box = json.loads(rows[0]["box"])
    assert box == {
        "type": "Polygon",
        "coordinates": [[[2.0, 48.0], [10.0, 48.0], [10.0, 50.0], [2.0, 50.0], [2.0, 48.0]]],
    }
    assert {
        c.key: c.type for c in sales.compile(group_by="store", select="envelope(geo) AS h").columns
    }["h"] == "geo_shape"


# --------------------------------------------------------------------------- geo_cluster


class ClusterByLongitude:
    """A real (if simple) clustering: one cluster per integer longitude, numbered west to east."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[float], list[float], int, int]] = []

    def __call__(
        self, lat: np.ndarray, lon: np.ndarray, zoom: int, radius_px: int = 40
    ) -> np.ndarray:
        self.calls.append((list(lat), list(lon), zoom, radius_px))
        _, labels = np.unique(np.floor(lon), return_inverse=True)
        return labels.astype(np.int64)


def test_geo_cluster_groups_by_the_assigned_clusters(sales: Portal) -> None:
    clusterer = ClusterByLongitude()
    select = "count(*), envelope(geo) AS hull, avg(qty) AS q"
    rows = sales.rows(group_by="geo_cluster(geo, 5)", select=select, cluster_points=clusterer)
    ((_, lon, zoom, radius),) = clusterer.calls
    assert (zoom, radius) == (5, 40)
    assert sorted(lon) == sorted(p["geo"][0] for p in SALES if p["geo"] is not None)
    key = "geo_cluster(geo, 5)"
    assert [r["count(*)"] for r in rows] == [4, 2, 1]
    assert rows[0][key] == {"lat": pytest.approx(48.0875), "lon": pytest.approx(2.0375)}
    assert rows[1][key] == {"lat": pytest.approx(45.05), "lon": pytest.approx(5.05)}
    # A lone point comes back as Elasticsearch stores it: on Lucene's ~1e-7 degree grid.
    assert rows[2][key] == {
        "lat": pytest.approx(50.0, abs=1e-7),
        "lon": pytest.approx(10.0, abs=1e-7),
    }
    assert json.loads(rows[0]["hull"])["type"] == "Polygon"
    assert json.loads(rows[2]["hull"]) == {"type": "Point", "coordinates": [10.0, 50.0]}
    assert rows[0]["q"] == pytest.approx((1 + 5 + 49 + 14) / 4)
    compiled = sales.compile(group_by="geo_cluster(geo, 5) AS c", cluster_points=clusterer)
    assert [(c.key, c.type) for c in compiled.columns] == [("c", "cluster")]


@pytest.mark.parametrize("zoom", [0, 5, 9, 14])
def test_geo_cluster_uses_the_geocluster_module_by_default(sales: Portal, zoom: int) -> None:
    from odsframe.testing.geocluster import cluster_points

    points = np.array([p["geo"] for p in SALES if p["geo"] is not None])
    labels = cluster_points(points[:, 1], points[:, 0], zoom)
    rows = sales.rows(group_by=f"geo_cluster(geo, {zoom}) AS c", select="count(*) AS n")
    assert [r["n"] for r in rows] == [int((labels == k).sum()) for k in range(labels.max() + 1)]
    for k, row in enumerate(rows):
        assert row["c"]["lat"] == pytest.approx(points[labels == k, 1].mean())
        assert row["c"]["lon"] == pytest.approx(points[labels == k, 0].mean())


def test_geo_cluster_sees_only_filtered_points_and_takes_a_radius(sales: Portal) -> None:
    clusterer = ClusterByLongitude()
    rows = sales.rows(
        group_by="GEO_CLUSTER(geo, 12, 60)",
        select="count(*) AS n",
        where=["qty > 10"],
        cluster_points=clusterer,
    )
    ((lat, _, zoom, radius),) = clusterer.calls
    assert (zoom, radius) == (12, 60)
    assert sorted(lat) == [45.0, 45.1, 48.05, 48.2, 50.0]
    assert [r["n"] for r in rows] == [2, 2, 1]


def test_geo_cluster_tables_are_released_after_the_query(sales: Portal) -> None:
    compiled = sales.compile(group_by="geo_cluster(geo, 3)", cluster_points=ClusterByLongitude())
    run(sales.con, compiled)
    (name,) = re.findall(r"__ods_cluster_[0-9a-f]+", compiled.sql)
    with pytest.raises(duckdb.CatalogException):
        sales.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()


@pytest.mark.parametrize(
    ("group_by", "fragment"),
    [
        ("geo_cluster(geo, 26)", "between 0 and 25"),
        ("geo_cluster(geo, 2.5)", "integer between 0 and 25"),
        ("geo_cluster(geo, 3, 0)", "positive integer"),
        ("geo_cluster(store, 3)", "geo_point_2d or geo_shape field"),
        ("geo_cluster(geo, 3), store", "only group_by expression"),
        ("geo_cluster(geo)", "takes 2 to 3 argument(s)"),
    ],
)
def test_bad_geo_clusters(sales: Portal, group_by: str, fragment: str) -> None:
    with pytest.raises(ODSQLError) as error:
        sales.compile(group_by=group_by)
    assert error.value.clause == "group_by"
    assert fragment in error.value.detail


def test_geo_cluster_refuses_geo_shapes() -> None:
    portal = build_portal(
        [PortalField("shape", "geo_shape")], [{"shape": {"type": "Point", "coordinates": [1, 2]}}]
    )
    try:
        with pytest.raises(ODSQLError, match="needs a geo_point_2d field"):
            portal.compile(group_by="geo_cluster(shape, 3)")
    finally:
        portal.con.close()


def test_timestamps_in_results_are_aware(sales: Portal) -> None:
    (row,) = sales.rows(select="max(at) AS m")
    assert isinstance(row["m"], datetime) and row["m"].utcoffset() is not None
