"""The on-disk cache: keys, the freshness decision, storage, listing and concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import geopandas
import geopandas.testing
import numpy as np
import pandas as pd
import platformdirs
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from odsframe import cache
from odsframe.cache import Action, Freshness
from odsframe.errors import CacheError, InvalidQueryArgument

SECRET = "s3cr3t-Key-7f9a2c"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(root))
    cache.set_cache_dir(None)
    yield root
    cache.set_cache_dir(None)


def key_for(dataset: str = "trees", portal: str = "data.example.com", **params: str) -> str:
    return cache.cache_key(
        portal=portal, dataset=dataset, params=sorted(params.items()), api_version="v2.1"
    )


def typed_frame() -> pd.DataFrame:
    """A DataFrame with every dtype odsframe produces, plus a few odd ones."""
    frame = pd.DataFrame(
        {
            "count": pd.array([1, None, 3], dtype="Int64"),
            "ratio": pd.array([0.5, None, 2.25], dtype="Float64"),
            "name": pd.array(["a", None, "été"], dtype="string"),
            "label": pd.Series(["x", None, "z"]),
            "plain_text": pd.Series(["u", "v", "w"], dtype=object),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "naive": pd.to_datetime(["2024-01-01 00:00", "NaT", "2024-03-01 12:30"]),
            "paris": pd.to_datetime(["2024-01-01 00:00", "NaT", "2024-07-01 12:30"]).tz_localize(
                "Europe/Paris"
            ),
            "nanos": pd.to_datetime(["2024-01-01", "2024-01-02", "NaT"]).astype("datetime64[ns]"),
            "real": [1.5, np.nan, -2.0],
            "tags": [["a", "b"], None, []],
            "blob": [{"k": 1, "nested": [1, {"x": None}]}, None, {"empty": {}}],
            "mixed": [1, "two", None],
            "numbers": [[1, 2.5], None, []],
            "sparse": [{"a": 1}, pd.NA, [1.5, float("nan")]],
            "raw": [b"\x00\x01", None, b"abc"],
            "money": [Decimal("1.10"), None, Decimal("2.50")],
            "day": [date(2024, 1, 1), None, date(2024, 2, 29)],
            "kind": pd.Categorical(["p", "q", None], categories=["p", "q", "unused"]),
            "rank": pd.Categorical([3, 1, 3], categories=[3, 2, 1], ordered=True),
        }
    )
    frame.attrs = {
        "ods": {
            "portal": "https://data.example.com",
            "dataset": "trees",
            "fetched_at": pd.Timestamp("2024-06-01 10:00", tz="UTC"),
            "bounds": (1.0, 2.0),
            "schema": [{"name": "count", "type": "int"}],
        }
    }
    return frame


SQUARE = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
TRIANGLE = Polygon([(2, 2), (3, 2), (3, 3)])


def geo_frame(rows: int = 3) -> geopandas.GeoDataFrame:
    """A GeoDataFrame with Point, Polygon and MultiPolygon geometry and two extra shapes."""
    base = [Point(2.35, 48.85), SQUARE, MultiPolygon([SQUARE, TRIANGLE])]
    shapes = [base[i % 3] for i in range(rows)]
    frame = geopandas.GeoDataFrame(
        {
            "id": pd.array(range(rows), dtype="Int64"),
            "name": pd.array([f"tree {i}" for i in range(rows)], dtype="string"),
            "planted": pd.date_range("2020-01-01", periods=rows, freq="D", tz="Europe/Paris"),
            "tags": [["oak"] if i % 2 else [] for i in range(rows)],
            "site": geopandas.GeoSeries(
                [None if i == 1 else Point(650000 + i, 6860000) for i in range(rows)],
                crs="EPSG:2154",
            ),
            "outline": [None if i == 2 else SQUARE.buffer(i) for i in range(rows)],
            "geo_shape": geopandas.GeoSeries(shapes, crs="EPSG:4326"),
        },
        geometry="geo_shape",
    )
    frame.attrs = {"ods": {"dataset": "trees", "geometry_fields": ["geo_shape", "site"]}}
    return frame


def provenance(**extra: Any) -> dict[str, Any]:
    base = {
        "portal": "https://data.example.com",
        "dataset": "trees",
        "api_version": "v2.1",
        "params": [["where", "height > 3"], ["limit", "-1"]],
        "url": "https://data.example.com/api/explore/v2.1/catalog/datasets/trees/exports/parquet",
        "fetched_at": NOW - timedelta(hours=1),
        "data_processed": "2024-05-01T10:00:00+00:00",
        "records_count": 3,
    }
    base.update(extra)
    return base


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# ------------------------------------------------------------------------------------------
# Location


def test_cache_dir_comes_from_environment(cache_root: Path) -> None:
    assert cache.cache_dir() == cache_root


def test_set_cache_dir_takes_precedence_and_resets(cache_root: Path, tmp_path: Path) -> None:
    cache.set_cache_dir(tmp_path / "elsewhere")
    assert cache.cache_dir() == tmp_path / "elsewhere"
    cache.set_cache_dir(None)
    assert cache.cache_dir() == cache_root


def test_cache_dir_defaults_to_platform_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cache.CACHE_DIR_ENV, raising=False)
    cache.set_cache_dir(None)
    assert cache.cache_dir() == Path(platformdirs.user_cache_dir("odsframe"))


def test_set_cache_dir_rejects_non_paths() -> None:
    with pytest.raises(CacheError, match="non-empty path"):
        cache.set_cache_dir("")
    with pytest.raises(CacheError, match="non-empty path"):
        cache.set_cache_dir(42)  # type: ignore[arg-type]


def test_unusable_cache_folder_names_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(blocker))
    with pytest.raises(CacheError, match=cache.CACHE_DIR_ENV):
        cache.write_entry(key_for(), pd.DataFrame({"a": [1]}), provenance())


def test_reading_and_listing_an_absent_folder_is_empty(cache_root: Path) -> None:
    assert cache.read_entry(key_for()) is None
    assert cache.read_meta(key_for()) is None
    assert cache.info().empty
    assert cache.clear() == 0
    assert not cache_root.exists()


# ------------------------------------------------------------------------------------------
# Keys and secrets


def test_cache_key_is_sha256_hex_and_ignores_parameter_order() -> None:
    one = cache.cache_key(
        portal="data.example.com",
        dataset="trees",
        params=[("where", "a > 1"), ("limit", "-1"), ("refine", "x:1"), ("refine", "y:2")],
        api_version="v2.1",
    )
    other = cache.cache_key(
        portal="data.example.com",
        dataset="trees",
        params=[("refine", "y:2"), ("limit", "-1"), ("refine", "x:1"), ("where", "a > 1")],
        api_version="v2.1",
    )
    assert re.fullmatch(r"[0-9a-f]{64}", one)
    assert one == other


@pytest.mark.parametrize(
    "spelling",
    [
        "data.example.com",
        "https://data.example.com/",
        "HTTPS://Data.Example.COM",
        " data.example.com ",
    ],
)
def test_cache_key_normalises_the_portal(spelling: str) -> None:
    assert key_for(portal=spelling) == key_for(portal="https://data.example.com")


@pytest.mark.parametrize(
    "change",
    [
        {"portal": "other.example.com"},
        {"portal": "http://data.example.com"},
        {"dataset": "bushes"},
        {"params": [("where", "a > 2")]},
        {"params": []},
        {"api_version": "v2.0"},
        {"kind": "export"},
        {"credential_digest": "0" * 64},
    ],
)
def test_cache_key_depends_on_every_component(change: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "portal": "data.example.com",
        "dataset": "trees",
        "params": [("where", "a > 1")],
        "api_version": "v2.1",
    }
    assert cache.cache_key(**arguments) != cache.cache_key(**{**arguments, **change})


@pytest.mark.parametrize("name", ["apikey", "ApiKey", "api_key", "API-KEY", "token"])
def test_cache_key_refuses_credentials_in_parameters(name: str) -> None:
    with pytest.raises(CacheError, match="credential"):
        cache.cache_key(
            portal="p.example.com", dataset="d", params=[(name, SECRET)], api_version="v2.1"
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"params": [("limit",)]}, "pairs"),
        ({"params": [("limit", 10)]}, "strings"),
        ({"dataset": ""}, "dataset"),
        ({"api_version": None}, "api_version"),
        ({"portal": "https://"}, "host"),
        ({"portal": ""}, "portal"),
        ({"credential_digest": ""}, "credential_digest"),
    ],
)
def test_cache_key_rejects_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "portal": "p.example.com",
        "dataset": "d",
        "params": [],
        "api_version": "v2.1",
    }
    with pytest.raises(CacheError, match=message):
        cache.cache_key(**{**base, **arguments})


def test_credential_digest_is_one_way_and_stable() -> None:
    digest = cache.credential_digest(SECRET)
    assert digest == cache.credential_digest(SECRET)
    assert digest != cache.credential_digest(SECRET + "x")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert SECRET not in digest and SECRET.lower() not in digest
    with pytest.raises(CacheError):
        cache.credential_digest("")


def test_scrub_url_drops_keys_and_user_info_only() -> None:
    url = f"https://user:{SECRET}@data.example.com/api/x?where=a%20%3D%201&ApiKey={SECRET}&limit=5"
    assert cache.scrub_url(url) == "https://data.example.com/api/x?where=a%20%3D%201&limit=5"
    quoted = f"https://data.example.com/x?api%5Fkey={SECRET}#top"
    assert cache.scrub_url(quoted) == "https://data.example.com/x#top"
    clean = "https://data.example.com/x?where=a+%3D+1&select=b"
    assert cache.scrub_url(clean) == clean


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"where=a&apikey={SECRET}", "where=a"),
        (f"?apikey={SECRET}&limit=5", "?limit=5"),
        ('name = "what?" and x=1', 'name = "what?" and x=1'),
        ('title like "apikey=1"', 'title like "apikey=1"'),
    ],
)
def test_scrub_secrets_handles_bare_query_strings_and_leaves_odsql_alone(
    text: str, expected: str
) -> None:
    assert cache.scrub_secrets(text) == expected


def test_scrub_secrets_walks_nested_structures() -> None:
    scrubbed = cache.scrub_secrets(
        {
            "headers": {"Authorization": f"Apikey {SECRET}", "Accept": "application/json"},
            "params": [("apikey", SECRET), ("where", "x")],
            "api_key": SECRET,
            "urls": [f"https://h.example.com/?apikey={SECRET}"],
        }
    )
    assert SECRET not in json.dumps(scrubbed)
    assert scrubbed["headers"] == {"Accept": "application/json"}
    assert scrubbed["params"] == [("where", "x")]


# ------------------------------------------------------------------------------------------
# The decision

ENTRY = Freshness(
    data_processed="2024-05-01T10:00:00+00:00",
    records_count=100,
    modified="2024-05-01T10:00:00+00:00",
    fetched_at=NOW - timedelta(hours=1),
)
SAME = Freshness(data_processed="2024-05-01T10:00:00+00:00", records_count=100)

DECISIONS = [
    # (id, entry, current, reachable, max_age, mode, expected action, reason fragment)
    ("off", ENTRY, SAME, True, None, "off", Action.FETCH, "disabled"),
    ("off-unreachable", ENTRY, None, False, None, "off", Action.FETCH, "disabled"),
    ("refresh", ENTRY, SAME, True, None, "refresh", Action.FETCH, "refresh"),
    ("refresh-unreachable", ENTRY, None, False, None, "refresh", Action.FETCH, "refresh"),
    ("miss", None, SAME, True, None, "use", Action.FETCH, "not in cache"),
    ("miss-unreachable", None, None, False, None, "use", Action.FETCH, "not in cache"),
    ("unchanged", ENTRY, SAME, True, None, "use", Action.USE, "unchanged"),
    (
        "unchanged-other-spelling",
        ENTRY,
        Freshness(data_processed="2024-05-01T12:00:00+02:00", records_count=100),
        True,
        None,
        "use",
        Action.USE,
        "unchanged",
    ),
    (
        "data-processed-moved",
        ENTRY,
        Freshness(data_processed="2024-05-02T10:00:00+00:00", records_count=100),
        True,
        None,
        "use",
        Action.FETCH,
        "data_processed",
    ),
    (
        "records-count-moved",
        ENTRY,
        Freshness(data_processed="2024-05-01T10:00:00+00:00", records_count=101),
        True,
        None,
        "use",
        Action.FETCH,
        "records_count",
    ),
    (
        "metadata-only-edit",
        ENTRY,
        Freshness(
            data_processed="2024-05-01T10:00:00+00:00",
            records_count=100,
            modified="2024-05-20T00:00:00+00:00",
        ),
        True,
        None,
        "use",
        Action.USE,
        "unchanged",
    ),
    (
        "only-modified-same",
        ENTRY,
        Freshness(modified="2024-05-01T10:00:00+00:00"),
        True,
        None,
        "use",
        Action.USE,
        "unchanged",
    ),
    (
        "only-modified-moved",
        ENTRY,
        Freshness(modified="2024-05-03T10:00:00+00:00"),
        True,
        None,
        "use",
        Action.FETCH,
        "modified",
    ),
    (
        "count-unknown-in-entry",
        Freshness(data_processed="2024-05-01T10:00:00+00:00", fetched_at=NOW),
        SAME,
        True,
        None,
        "use",
        Action.FETCH,
        "records_count",
    ),
    ("within-max-age", ENTRY, SAME, True, timedelta(hours=2), "use", Action.USE, "unchanged"),
    ("past-max-age", ENTRY, SAME, True, timedelta(minutes=30), "use", Action.FETCH, "max_age"),
    (
        "unknown-age-with-max-age",
        Freshness(data_processed="2024-05-01T10:00:00+00:00", records_count=100),
        SAME,
        True,
        timedelta(days=1),
        "use",
        Action.FETCH,
        "unknown age",
    ),
    (
        "unreachable",
        ENTRY,
        None,
        False,
        None,
        "use",
        Action.USE_STALE_WITH_WARNING,
        "could not be checked",
    ),
    (
        "unreachable-within-max-age",
        ENTRY,
        None,
        False,
        timedelta(hours=2),
        "use",
        Action.USE_STALE_WITH_WARNING,
        "unreachable",
    ),
    (
        "unreachable-past-max-age",
        ENTRY,
        None,
        False,
        timedelta(minutes=1),
        "use",
        Action.USE_STALE_WITH_WARNING,
        "older than max_age",
    ),
    ("no-metadata", ENTRY, None, True, None, "use", Action.FETCH, "no freshness metadata"),
    ("empty-metadata", ENTRY, Freshness(), True, None, "use", Action.FETCH, "no freshness"),
    (
        "empty-metadata-within-max-age",
        ENTRY,
        Freshness(),
        True,
        timedelta(hours=2),
        "use",
        Action.USE,
        "within max_age",
    ),
    (
        "entry-as-metadata-mapping",
        {
            "data_processed": "2024-05-01T10:00:00+00:00",
            "records_count": 100,
            "fetched_at": (NOW - timedelta(minutes=5)).isoformat(),
        },
        SAME,
        True,
        timedelta(minutes=10),
        "use",
        Action.USE,
        "unchanged",
    ),
]


@pytest.mark.parametrize(
    ("entry", "current", "reachable", "max_age", "mode", "action", "reason"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_decide(
    entry: Any,
    current: Freshness | None,
    reachable: bool,
    max_age: timedelta | None,
    mode: cache.CacheMode,
    action: Action,
    reason: str,
) -> None:
    decision = cache.decide(
        entry, current=current, reachable=reachable, max_age=max_age, mode=mode, now=NOW
    )
    assert decision.action is action
    assert reason in decision.reason
    assert decision.serves_cache is (action is not Action.FETCH)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mode": "sometimes"}, "mode"),
        ({"now": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"max_age": timedelta(seconds=-1)}, "max_age"),
        ({"max_age": 60}, "max_age"),
    ],
)
def test_decide_rejects_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "current": SAME,
        "reachable": True,
        "max_age": None,
        "mode": "use",
        "now": NOW,
    }
    with pytest.raises(CacheError, match=message):
        cache.decide(ENTRY, **{**base, **arguments})


def test_freshness_from_ods_metas_reads_v2_and_v1_shapes() -> None:
    v2 = {"default": {"data_processed": "2024-05-01T10:00:00+00:00", "records_count": 100}}
    v1 = {"data_processed": "2024-05-01T10:00:00+00:00", "records_count": "100", "modified": "x"}
    assert Freshness.from_ods_metas(v2) == SAME
    assert Freshness.from_ods_metas(v1) == Freshness(
        data_processed="2024-05-01T10:00:00+00:00", records_count=100, modified="x"
    )


@pytest.mark.parametrize(
    ("given", "expected"), [(True, "use"), (False, "off"), ("refresh", "refresh"), ("use", "use")]
)
def test_normalise_mode(given: bool | str, expected: str) -> None:
    assert cache.normalise_mode(given) == expected


def test_normalise_mode_and_max_age_reject_bad_values() -> None:
    with pytest.raises(InvalidQueryArgument, match="cache"):
        cache.normalise_mode("always")
    with pytest.raises(InvalidQueryArgument, match="negative"):
        cache.normalise_max_age(-5)
    with pytest.raises(InvalidQueryArgument, match="max_age"):
        cache.normalise_max_age("1h")  # type: ignore[arg-type]
    assert cache.normalise_max_age(90) == timedelta(seconds=90)
    assert cache.normalise_max_age(None) is None


# ------------------------------------------------------------------------------------------
# Storage round trips


def test_dataframe_round_trip_keeps_dtypes_values_and_attrs(cache_root: Path) -> None:
    frame = typed_frame()
    key = key_for()
    path = cache.write_entry(key, frame, provenance())
    assert path.is_file() and path.parent == cache_root / "frames"

    hit = cache.read_entry(key)
    assert hit is not None
    restored, meta = hit
    pd.testing.assert_frame_equal(restored, frame)
    assert restored.attrs == frame.attrs
    assert [type(v) for v in restored["tags"]] == [list, type(None), list]
    assert restored["blob"][0] == {"k": 1, "nested": [1, {"x": None}]}
    assert restored["label"][1] is not None and pd.isna(restored["label"][1])
    assert restored["sparse"][1] is pd.NA and restored["blob"][1] is None
    assert meta["kind"] == "DataFrame" and meta["rows"] == 3
    assert meta["data_processed"] == "2024-05-01T10:00:00+00:00"


def test_dataframe_with_a_custom_index_round_trips(cache_root: Path) -> None:
    frame = pd.DataFrame(
        {"height": pd.array([3.5, None], dtype="Float64")},
        index=pd.Index(["rec-1", "rec-2"], name="record_id"),
    )
    frame.columns.name = "fields"
    key = key_for()
    cache.write_entry(key, frame, provenance())
    hit = cache.read_entry(key)
    assert hit is not None
    pd.testing.assert_frame_equal(hit[0], frame)


@pytest.mark.parametrize(
    "index",
    [
        pd.Index([7, 7, 3], name="count"),
        pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["k", "n"]),
        pd.date_range("2024-01-01", periods=3, tz="Europe/Paris", name="day"),
    ],
    ids=["duplicates-named-like-a-column", "multi", "datetime"],
)
def test_indexes_round_trip(cache_root: Path, index: pd.Index) -> None:
    frame = typed_frame().set_axis(index)
    key = key_for()
    cache.write_entry(key, frame, provenance())
    hit = cache.read_entry(key)
    assert hit is not None
    pd.testing.assert_frame_equal(hit[0], frame)


def test_empty_frame_round_trips(cache_root: Path) -> None:
    frame = typed_frame().iloc[:0]
    key = key_for()
    cache.write_entry(key, frame, provenance(records_count=0))
    hit = cache.read_entry(key)
    assert hit is not None
    pd.testing.assert_frame_equal(hit[0], frame)


def test_geodataframe_round_trip_keeps_geometry_crs_and_extra_shapes(cache_root: Path) -> None:
    frame = geo_frame()
    key = key_for()
    cache.write_entry(key, frame, provenance())

    hit = cache.read_entry(key)
    assert hit is not None
    restored, meta = hit
    assert isinstance(restored, geopandas.GeoDataFrame)
    geopandas.testing.assert_geodataframe_equal(restored, frame)
    pd.testing.assert_frame_equal(restored, frame)
    assert restored.geometry.name == "geo_shape"
    assert restored.crs == "EPSG:4326"
    assert restored["site"].crs == "EPSG:2154"
    assert restored["outline"].dtype == object
    assert list(restored.geom_type) == ["Point", "Polygon", "MultiPolygon"]
    assert restored.attrs == frame.attrs
    assert meta["kind"] == "GeoDataFrame" and meta["geometry"] == "geo_shape"


def test_entry_is_valid_geoparquet(cache_root: Path) -> None:
    frame = geo_frame()
    path = cache.write_entry(key_for(), frame, provenance())
    outside = geopandas.read_parquet(path)
    assert outside.geometry.name == "geo_shape"
    assert outside.crs == "EPSG:4326"
    assert outside["site"].crs == "EPSG:2154"
    assert outside.geometry.geom_equals(frame.geometry).all()


def test_point_columns_are_stored_as_geoarrow_points_and_round_trip(cache_root: Path) -> None:
    import pyarrow.parquet as pq

    frame = geopandas.GeoDataFrame(
        {
            "n": pd.array([1, 2, 3, 4], dtype="Int64"),
            "where": geopandas.GeoSeries(
                [
                    shapely.Point(2.35, 48.85),
                    None,
                    shapely.Point(-1.5, 47.2),
                    shapely.Point(0.1 + 0.2, -0.0),
                ],
                crs="EPSG:4326",
            ),
        },
        geometry="where",
    )
    path = cache.write_entry(key_for(), frame, provenance())
    schema = pq.read_schema(path)
    assert str(schema.field("where").type) == "struct<x: double not null, y: double not null>"
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["columns"]["where"]["encoding"] == "point"
    assert geo["columns"]["where"]["geometry_types"] == ["Point"]
    hit = cache.read_entry(key_for())
    assert hit is not None
    restored = hit[0]
    geopandas.testing.assert_geodataframe_equal(restored, frame)
    assert restored.geometry[1] is None
    assert restored.geometry[3].x == 0.1 + 0.2  # bit for bit, no text round trip
    outside = geopandas.read_parquet(path)  # other GeoParquet readers understand it
    assert outside.crs == "EPSG:4326"
    assert outside.geometry.iloc[[0, 2, 3]].geom_equals(frame.geometry.iloc[[0, 2, 3]]).all()
    assert outside.geometry.isna().tolist() == [False, True, False, False]


@pytest.mark.parametrize(
    "points",
    [
        [shapely.Point(1, 2, 3), shapely.Point(4, 5, 6)],  # 3D
        [shapely.Point(1, 2), shapely.from_wkt("POINT EMPTY")],  # empty
        [shapely.Point(1, 2), shapely.box(0, 0, 1, 1)],  # mixed
    ],
    ids=["z", "empty", "mixed"],
)
def test_geometries_that_are_not_plain_points_stay_wkb(cache_root: Path, points: list[Any]) -> None:
    import pyarrow.parquet as pq

    frame = geopandas.GeoDataFrame({"g": geopandas.GeoSeries(points, crs=4326)}, geometry="g")
    path = cache.write_entry(key_for(), frame, provenance())
    assert json.loads(pq.read_schema(path).metadata[b"geo"])["columns"]["g"]["encoding"] == "WKB"
    hit = cache.read_entry(key_for())
    assert hit is not None
    assert shapely.equals_identical(hit[0].geometry.values, frame.geometry.values).all()


def test_arrow_list_columns_round_trip_without_python_lists(cache_root: Path) -> None:
    import pyarrow as pa

    lists = pd.Series(
        pd.arrays.ArrowExtensionArray(
            pa.array([["a", "b"], None, [], ["c", None]], pa.list_(pa.string()))
        )
    )
    frame = pd.DataFrame({"tags": lists, "n": pd.array([1, 2, 3, 4], dtype="Int64")})
    cache.write_entry(key_for(), frame, provenance())
    hit = cache.read_entry(key_for())
    assert hit is not None
    pd.testing.assert_frame_equal(hit[0], frame)
    assert hit[0]["tags"].dtype == pd.ArrowDtype(pa.list_(pa.string()))
    assert hit[0]["tags"].tolist() == [["a", "b"], pd.NA, [], ["c", None]]


def test_metadata_is_in_the_parquet_footer_and_the_sidecar(cache_root: Path) -> None:
    import pyarrow.parquet as pq

    key = key_for()
    path = cache.write_entry(key, geo_frame(), provenance())
    footer = json.loads(pq.read_schema(path).metadata[b"odsframe"])
    sidecar = json.loads((path.parent / f"{key}.json").read_text())
    assert sidecar["data_file"] == path.name
    assert footer["write_id"] == sidecar["write_id"]
    for meta in (footer, sidecar):
        assert meta["portal"] == "https://data.example.com"
        assert meta["dataset"] == "trees"
        assert meta["records_count"] == 3
        assert meta["fetched_at"] == (NOW - timedelta(hours=1)).isoformat()
        assert meta["provenance"]["url"].endswith("/exports/parquet")
    assert cache.read_meta(key) == sidecar


def test_written_metadata_drives_the_decision(cache_root: Path) -> None:
    key = key_for()
    cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    meta = cache.read_meta(key)
    assert meta is not None
    current = Freshness.from_ods_metas(
        {"default": {"data_processed": "2024-05-01T10:00:00+00:00", "records_count": 3}}
    )
    decide: dict[str, Any] = {"reachable": True, "max_age": None, "mode": "use", "now": NOW}
    assert cache.decide(meta, current=current, **decide).action is Action.USE
    moved = Freshness(data_processed="2024-05-09T00:00:00+00:00", records_count=3)
    assert cache.decide(meta, current=moved, **decide).action is Action.FETCH


def test_rewriting_a_key_replaces_the_entry_and_its_data_file(cache_root: Path) -> None:
    key = key_for()
    cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    second = cache.write_entry(key, pd.DataFrame({"a": [2, 3]}), provenance(records_count=2))
    assert sorted(p.name for p in (cache_root / "frames").glob(f"{key}.*.parquet")) == [second.name]
    hit = cache.read_entry(key)
    assert hit is not None
    assert hit[0]["a"].tolist() == [2, 3]
    assert hit[1]["records_count"] == 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"thing": [object(), None]}), "'thing'"),
        (pd.DataFrame({0: [1]}), "column names"),
    ],
)
def test_unstorable_frames_raise_cache_error(
    cache_root: Path, frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(CacheError, match=message):
        cache.write_entry(key_for(), frame, provenance())
    assert not list((cache_root / "frames").iterdir())


def test_unstorable_attrs_raise_cache_error(cache_root: Path) -> None:
    frame = pd.DataFrame({"a": [1]})
    frame.attrs = {"ods": {"session": object()}}
    with pytest.raises(CacheError, match="object"):
        cache.write_entry(key_for(), frame, provenance())


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABC", "0" * 63, 12])
def test_bad_keys_are_refused(cache_root: Path, key: Any) -> None:
    with pytest.raises(CacheError, match="cache key"):
        cache.read_entry(key)
    with pytest.raises(CacheError, match="cache key"):
        cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())


def test_write_refuses_non_frames_and_bad_provenance(cache_root: Path) -> None:
    with pytest.raises(CacheError, match="DataFrame"):
        cache.write_entry(key_for(), [1, 2], provenance())  # type: ignore[arg-type]
    with pytest.raises(CacheError, match="provenance"):
        cache.write_entry(key_for(), pd.DataFrame({"a": [1]}), ["x"])  # type: ignore[arg-type]
    with pytest.raises(CacheError, match="fetched_at"):
        cache.write_entry(key_for(), pd.DataFrame({"a": [1]}), provenance(fetched_at="soon"))


@pytest.mark.parametrize("failing_step", ["data file", "sidecar"])
def test_failed_write_keeps_the_previous_entry_and_leaves_no_debris(
    cache_root: Path, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    import pyarrow.parquet as pq

    key = key_for()
    first = pd.DataFrame({"a": [1, 2]})
    cache.write_entry(key, first, provenance())
    before = sorted(p.name for p in (cache_root / "frames").iterdir())

    with monkeypatch.context() as patch:
        if failing_step == "data file":
            real_write_table = pq.write_table

            def write_half_then_fail(table: Any, where: Any, **kwargs: Any) -> None:
                real_write_table(table.slice(0, 1), where, **kwargs)
                raise OSError(28, "No space left on device")

            patch.setattr(pq, "write_table", write_half_then_fail)
        else:
            real_replace = os.replace

            def refuse_sidecar(source: Any, target: Any) -> None:
                if str(target).endswith(".json"):
                    raise OSError(28, "No space left on device")
                real_replace(source, target)

            patch.setattr(os, "replace", refuse_sidecar)

        with pytest.raises(CacheError, match="No space left"):
            cache.write_entry(key, pd.DataFrame({"a": [9]}), provenance())

    assert sorted(p.name for p in (cache_root / "frames").iterdir()) == before
    hit = cache.read_entry(key)
    assert hit is not None
    pd.testing.assert_frame_equal(hit[0], first)


# ------------------------------------------------------------------------------------------
# Secrets never reach the disk


def test_api_key_appears_in_no_file_of_the_cache(cache_root: Path) -> None:
    frame = geo_frame()
    frame.attrs = {
        "ods": {
            "url": f"https://data.example.com/api/explore/v2.1/x?where=a&apikey={SECRET}",
            "api_key": SECRET,
            "request": {"params": [["apikey", SECRET], ["where", "a"]]},
            "headers": {"Authorization": f"Apikey {SECRET}"},
        }
    }
    leaky = provenance(
        portal=f"reader:{SECRET}@data.example.com",
        query_string=f"where=a&apikey={SECRET}",
        url=f"https://data.example.com/api/explore/v2.1/x?apikey={SECRET}&where=a",
        params=[["apikey", SECRET], ["where", "a"]],
        headers={"Authorization": f"Apikey {SECRET}", "X-Api-Key": SECRET},
    )
    key = cache.cache_key(
        portal="data.example.com",
        dataset="trees",
        params=[("where", "a")],
        api_version="v2.1",
        credential_digest=cache.credential_digest(SECRET),
    )
    cache.write_entry(key, frame, leaky)
    cache.write_entry(key_for(), typed_frame(), leaky)

    files = all_files(cache_root)
    assert len(files) == 4
    for path in files:
        content = path.read_bytes()
        assert SECRET.encode() not in content, path
        assert SECRET.encode("utf-16-le") not in content, path
    # What is not secret is kept.
    meta = cache.read_meta(key)
    assert meta is not None
    assert meta["provenance"]["params"] == [["where", "a"]]
    assert meta["provenance"]["url"].endswith("/x?where=a")
    assert meta["portal"] == meta["provenance"]["portal"] == "https://data.example.com"
    assert meta["provenance"]["query_string"] == "where=a"
    hit = cache.read_entry(key)
    assert hit is not None
    assert hit[0].attrs == {
        "ods": {
            "url": "https://data.example.com/api/explore/v2.1/x?where=a",
            "request": {"params": [["where", "a"]]},
            "headers": {},
        }
    }


# ------------------------------------------------------------------------------------------
# Broken entries are misses, never errors


def _entry_files(root: Path, key: str) -> list[Path]:
    return sorted((root / "frames").glob(f"{key}*"))


def test_truncated_data_file_is_a_miss_and_is_removed(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, geo_frame(), provenance())
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    assert cache.read_entry(key) is None
    assert _entry_files(cache_root, key) == []


def test_garbage_sidecar_is_a_miss_and_is_removed(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    (path.parent / f"{key}.json").write_bytes(b"{not json")
    assert cache.read_meta(key) is None
    assert cache.read_entry(key) is None
    assert not (path.parent / f"{key}.json").exists()


def test_missing_sidecar_is_a_miss(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    (path.parent / f"{key}.json").unlink()
    assert cache.read_entry(key) is None
    assert cache.read_meta(key) is None


def test_sidecar_that_does_not_match_its_data_file_is_a_miss(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    sidecar = path.parent / f"{key}.json"
    meta = json.loads(sidecar.read_text())
    other_id = "f" * 32
    moved = path.rename(path.parent / f"{key}.{other_id}.parquet")
    sidecar.write_text(json.dumps({**meta, "write_id": other_id, "data_file": moved.name}))
    assert cache.read_entry(key) is None
    assert _entry_files(cache_root, key) == []


def test_sidecar_pointing_to_a_missing_data_file_is_a_miss(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    path.unlink()
    assert cache.read_entry(key) is None
    assert _entry_files(cache_root, key) == []


def test_sidecar_of_another_format_version_is_a_miss(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    sidecar = path.parent / f"{key}.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "format": 999}))
    assert cache.read_entry(key) is None


# ------------------------------------------------------------------------------------------
# info() and clear()


def _fill(cache_root: Path) -> dict[str, str]:
    keys = {
        "a-trees": key_for("trees", "a.example.com"),
        "a-bikes": key_for("bikes", "a.example.com"),
        "b-trees": key_for("trees", "b.example.com"),
    }
    for name, key in keys.items():
        portal, dataset = name.split("-")
        cache.write_entry(
            key,
            pd.DataFrame({"x": range(len(name))}),
            provenance(portal=f"{portal}.example.com", dataset=dataset, records_count=len(name)),
        )
    return keys


def test_info_lists_one_row_per_entry(cache_root: Path) -> None:
    keys = _fill(cache_root)
    table = cache.info()
    assert list(table.columns[:8]) == [
        "key",
        "portal",
        "dataset",
        "rows",
        "bytes",
        "fetched_at",
        "data_processed",
        "path",
    ]
    assert sorted(table["key"]) == sorted(keys.values())
    row = table.set_index("key").loc[keys["a-bikes"]]
    assert row["portal"] == "https://a.example.com"
    assert row["dataset"] == "bikes"
    assert row["rows"] == 7
    assert row["fetched_at"] == pd.Timestamp(NOW - timedelta(hours=1))
    entry_bytes = sum(p.stat().st_size for p in _entry_files(cache_root, keys["a-bikes"]))
    assert row["bytes"] == entry_bytes
    assert Path(row["path"]).is_file()


def test_clear_by_dataset_then_portal_then_everything(cache_root: Path) -> None:
    keys = _fill(cache_root)
    assert cache.clear(dataset="bikes") == 1
    assert cache.read_entry(keys["a-bikes"]) is None
    assert cache.read_entry(keys["a-trees"]) is not None

    assert cache.clear(portal="HTTPS://B.example.com/", dataset="trees") == 1
    assert sorted(cache.info()["key"]) == [keys["a-trees"]]

    assert cache.clear() == 1
    assert cache.info().empty
    assert list((cache_root / "frames").iterdir()) == []


def test_clear_removes_stale_leftovers_but_not_recent_ones(cache_root: Path) -> None:
    key = key_for()
    cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    folder = cache_root / "frames"
    old = time.time() - 2 * 3600
    stale_temp = folder / ".tmp-0123-crashed.parquet"
    fresh_temp = folder / ".tmp-4567-writing.parquet"
    stale_orphan = folder / f"{key_for('other')}.{'a' * 32}.parquet"
    fresh_orphan = folder / f"{key_for('other')}.{'b' * 32}.parquet"
    for path in (stale_temp, fresh_temp, stale_orphan, fresh_orphan):
        path.write_bytes(b"partial")
    for path in (stale_temp, stale_orphan):
        os.utime(path, (old, old))

    assert cache.clear(dataset="nothing-matches") == 0
    assert not stale_temp.exists() and not stale_orphan.exists()
    assert fresh_temp.exists() and fresh_orphan.exists()
    assert cache.read_entry(key) is not None

    # Clearing everything also takes unreferenced data files, but not a write in progress.
    assert cache.clear() == 1
    assert sorted(p.name for p in folder.iterdir()) == [fresh_temp.name]


def test_clear_without_filters_removes_broken_entries(cache_root: Path) -> None:
    key = key_for()
    path = cache.write_entry(key, pd.DataFrame({"a": [1]}), provenance())
    (path.parent / f"{key}.json").write_text("[]")
    assert cache.info().empty
    assert cache.clear() == 1
    assert not (path.parent / f"{key}.json").exists()


# ------------------------------------------------------------------------------------------
# Two processes at once

CONCURRENT_ROWS = 3000
WRITES_PER_PROCESS = 12


def _concurrent_writer(root: str, key: str, writer: int, barrier: Any) -> None:
    cache.set_cache_dir(root)
    frame = geo_frame(CONCURRENT_ROWS)
    barrier.wait(timeout=60)
    for round_ in range(WRITES_PER_PROCESS):
        cache.write_entry(key, frame, provenance(writer=writer, round=round_))


def _concurrent_reader(root: str, key: str, barrier: Any, done: Any, results: Any) -> None:
    try:
        cache.set_cache_dir(root)
        expected = geo_frame(CONCURRENT_ROWS)
        hits = misses = 0
        barrier.wait(timeout=60)
        while True:
            finished = done.is_set()
            hit = cache.read_entry(key)
            if hit is None:
                misses += 1
            else:
                geopandas.testing.assert_geodataframe_equal(hit[0], expected)
                hits += 1
            if finished:
                break
        results.put(("ok", hits, misses, hit is not None))
    except BaseException:
        results.put(("error", traceback.format_exc(), 0, False))


def test_concurrent_writers_of_one_key_all_succeed_and_leave_a_valid_entry(
    cache_root: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    key = key_for()
    cache.write_entry(key, geo_frame(CONCURRENT_ROWS), provenance(writer=-1, round=-1))
    writers = 2
    barrier = context.Barrier(writers + 1)
    done = context.Event()
    results = context.Queue()
    processes = [
        context.Process(target=_concurrent_writer, args=(str(cache_root), key, i, barrier))
        for i in range(writers)
    ]
    reader = context.Process(
        target=_concurrent_reader, args=(str(cache_root), key, barrier, done, results)
    )
    for process in [*processes, reader]:
        process.start()
    for process in processes:
        process.join(timeout=240)
    done.set()
    reader_result = results.get(timeout=240)
    reader.join(timeout=60)

    assert [p.exitcode for p in processes] == [0] * writers
    assert reader.exitcode == 0
    status, detail, misses, last_read_hit = reader_result
    assert status == "ok", detail
    # The entry existed before the writers started, so every read is a whole, equal frame.
    assert misses == 0 and detail >= 1 and last_read_hit

    hit = cache.read_entry(key)
    assert hit is not None
    geopandas.testing.assert_geodataframe_equal(hit[0], geo_frame(CONCURRENT_ROWS))
    assert hit[1]["provenance"]["writer"] in range(writers)
    assert hit[1]["provenance"]["round"] == WRITES_PER_PROCESS - 1
    assert not list((cache_root / "frames").glob(".tmp-*"))
    assert len(cache.info()) == 1


def test_clear_everything_removes_interrupted_read_parts(tmp_path: Path) -> None:
    cache.set_cache_dir(tmp_path)
    try:
        leftover = tmp_path / "reads" / "somekey" / "part-00000.parquet"
        leftover.parent.mkdir(parents=True)
        leftover.write_bytes(b"PAR1")
        cache.clear(dataset="other")  # a filtered clear leaves them
        assert leftover.exists()
        cache.clear()
        assert not (tmp_path / "reads").exists()
    finally:
        cache.set_cache_dir(None)
