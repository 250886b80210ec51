"""The Explore API v2.0 adapter against the local portal over real HTTP.

Every answer must equal what the v2.1 adapter gives for the same query on the same portal
(records, counts, groups, metadata, catalog pages), and the typed frames built from them must
be identical: everything after the adapter is shared.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pandas as pd
import pytest
import requests
import shapely
from helpers import adapter_pair, both

from odsframe.api import ExploreV20, ExploreV21, open_adapter
from odsframe.api.v20 import v20_where
from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    InvalidQueryArgument,
    QueryError,
)
from odsframe.frames import fields_from_metadata, frame_from_records
from odsframe.query import Query
from odsframe.testing.portal import LocalPortal


@pytest.fixture(scope="module")
def apis(sample_portal: LocalPortal) -> Iterator[tuple[ExploreV20, ExploreV21]]:
    with adapter_pair(sample_portal, "2.0") as pair:
        yield pair


def test_urls_are_v20_urls(apis: tuple[ExploreV20, ExploreV21]) -> None:
    v20, _ = apis
    assert v20.version == "2.0"
    assert v20.catalog_url.endswith("/api/v2/catalog")
    assert v20.dataset_url("prices@public").endswith("/api/v2/catalog/datasets/prices@public")
    plan = v20.plan(Query("sample-trees", where={"domanialite": "Jardin"}))
    assert all("/api/v2/catalog/datasets/sample-trees/" in v20.url_for(r) for r in plan.requests)
    assert "/api/v2/" in v20.explain(plan)


def test_metadata_is_normalised_to_v21(apis: tuple[ExploreV20, ExploreV21]) -> None:
    old, new = both(apis, "dataset_metadata", "sample-events")
    assert old["dataset_id"] == new["dataset_id"] == "sample-events"
    assert old["metas"] == new["metas"]
    assert [(f["name"], f["type"], f["annotations"]) for f in old["fields"]] == [
        (f["name"], f["type"], f["annotations"]) for f in new["fields"]
    ]
    assert fields_from_metadata(old) == fields_from_metadata(new)
    assert "links" not in old


@pytest.mark.parametrize(
    "query",
    [
        Query("sample-events"),
        Query("sample-events", where={"category": ["Concert", "Danse"], "free": False}),
        Query("sample-events", where="duration_min >= 90 OR price IS NULL"),
        Query("sample-events", refine={"theme": "Musique"}, exclude={"arrondissement": "75001"}),
        Query("sample-events", bbox=(2.30, 48.84, 2.38, 48.88), geo_field="location"),
        Query("sample-events", distance=((2.35, 48.86), 1500), geo_field="location"),
        Query(
            "sample-districts",
            mask=shapely.box(2.30, 48.84, 2.36, 48.87),
            geo_field="geom",
        ),
    ],
    ids=["all", "mapping", "odsql", "facets", "bbox", "distance", "mask"],
)
def test_counts_equal_v21(apis: tuple[ExploreV20, ExploreV21], query: Query) -> None:
    old, new = both(apis, "count", query)
    assert old == new > 0


def test_spatial_filters_use_v20_names(apis: tuple[ExploreV20, ExploreV21]) -> None:
    v20, _ = apis
    query = Query("sample-events", bbox=(2.30, 48.84, 2.38, 48.88), geo_field="location")
    url = v20.url_for(v20.plan(query).requests[0])
    assert "where=bbox%28location%2C+48.88%2C+2.3%2C+48.84%2C+2.38%29" in url
    assert "in_bbox" not in url


def test_records_pages_equal_v21(apis: tuple[ExploreV20, ExploreV21]) -> None:
    query = Query(
        "sample-bike-stations",
        select=["stationcode", "capacity", "opened_on", "duedate", "coordonnees_geo", "geo_shape"],
        where={"commune": "Paris"},
        order_by="-capacity",
        timezone="Europe/Paris",
    )
    old, new = both(apis, "records_page", query, 20, 10, order_by=["-capacity", "stationcode"])
    assert old == new and len(old) == 20


def test_iter_records_equal_v21_on_both_routes(apis: tuple[ExploreV20, ExploreV21]) -> None:
    query = Query("sample-events", where="duration_min >= 60", order_by="-start")
    old, new = both(apis, "iter_records", query)
    old_records, new_records = list(old), list(new)
    assert old_records == new_records and len(new_records) > 100  # several pages
    exported, _ = both(apis, "iter_records", Query("sample-trees"), records_threshold=0)
    listed = list(exported)
    assert len(listed) == 400
    assert listed == list(apis[1].iter_records(Query("sample-trees"), records_threshold=0))


def test_typed_frames_equal_v21(apis: tuple[ExploreV20, ExploreV21]) -> None:
    v20, v21 = apis
    query = Query("sample-trees", order_by="idbase", timezone="Europe/Paris")
    frames = []
    for api in (v20, v21):
        fields = fields_from_metadata(api.dataset_metadata("sample-trees"))
        frames.append(frame_from_records(list(api.iter_records(query)), fields, geometry=None))
    old, new = (frame.pop("photo") for frame in frames)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert len(frames[0]) == 400
    # each generation's file URLs use its own file route, for the same files
    assert old.dropna().str.contains("/api/v2/catalog/datasets/sample-trees/files/").all()
    assert new.dropna().str.contains("/api/explore/v2.1/catalog/datasets/").all()
    assert old.str.rsplit("/", n=1).str[1].equals(new.str.rsplit("/", n=1).str[1])
    assert (
        requests.get(old.dropna().iloc[0], timeout=30).content
        == requests.get(new.dropna().iloc[0], timeout=30).content
    )


@pytest.mark.parametrize(
    ("dataset", "group_by", "select"),
    [
        ("sample-events", "category", "category, count(*) as n, avg(price) as p"),
        ("sample-monthly-prices", "month", "month, avg(price_index) as p"),
        ("sample-bike-stations", "opened_on", "opened_on, count(*) as n"),
        ("sample-bike-stations", "duedate", "duedate, count(*) as n"),
        ("sample-events", "year(start) as y", "y, count(*) as n"),
        ("sample-events", "month(start) as m, category", "m, category, count(*)"),
    ],
)
def test_groups_equal_v21(
    apis: tuple[ExploreV20, ExploreV21], dataset: str, group_by: str, select: str
) -> None:
    query = Query(dataset, group_by=group_by, select=select, timezone="Europe/Paris")
    old, new = both(apis, "grouped", query)
    assert old == new and old


def test_groups_leave_out_the_null_group(apis: tuple[ExploreV20, ExploreV21]) -> None:
    query = Query("sample-events", group_by="attendance", select="attendance, count(*) as n")
    old, new = both(apis, "grouped", query)
    assert any(group["attendance"] is None for group in new)
    assert old == [group for group in new if group["attendance"] is not None]


def test_catalog_pages_equal_v21(apis: tuple[ExploreV20, ExploreV21]) -> None:
    old, new = both(apis, "catalog_page", limit=3, offset=1, order_by="-records_count")
    assert old["total_count"] == new["total_count"] == 5
    assert [d["dataset_id"] for d in old["results"]] == [d["dataset_id"] for d in new["results"]]
    assert old["results"][0]["fields"] == [
        {**field, "annotations": field["annotations"]} for field in new["results"][0]["fields"]
    ]
    filtered, _ = both(apis, "catalog_page", where={"publisher": "Ville de Paris (échantillon)"})
    assert filtered["total_count"] == 4


def test_facets_attachments_and_formats(apis: tuple[ExploreV20, ExploreV21]) -> None:
    v20, v21 = apis
    old, new = both(apis, "facets", "sample-events", facet="category")
    assert old["facets"] == new["facets"]
    assert "links" in old
    attachments = v20.attachments("sample-bike-stations")
    assert [a["metas"]["id"] for a in attachments] == ["stations_summary_csv", "notice_pdf"]
    assert "/api/v2/" in attachments[0]["href"]
    assert v20.export_formats("sample-trees") == ["json", "geojson", "csv", "jsonl"]
    assert "parquet" in v21.export_formats("sample-trees")


def test_stream_export(apis: tuple[ExploreV20, ExploreV21]) -> None:
    v20, _ = apis
    buffer = io.BytesIO()
    written = v20.stream_export(Query("sample-trees", limit=2), "csv", buffer, delimiter=",")
    assert written == len(buffer.getvalue()) > 0
    assert buffer.getvalue().startswith(b"idbase,")  # v2.0: no BOM
    with pytest.raises(InvalidQueryArgument, match=r"v2\.0 export format"):
        v20.stream_export(Query("sample-trees"), "parquet", io.BytesIO())
    with pytest.raises(InvalidQueryArgument, match="apikey"):
        v20.stream_export(Query("sample-trees"), "csv", io.BytesIO(), apikey="x")
    with pytest.raises(InvalidQueryArgument, match="belong in the Query"):
        v20.stream_export(Query("sample-trees"), "csv", io.BytesIO(), where="x")


def test_errors(apis: tuple[ExploreV20, ExploreV21]) -> None:
    v20, _ = apis
    with pytest.raises(DatasetNotFoundError, match="nope"):
        v20.dataset_metadata("nope")
    with pytest.raises(AuthenticationError):
        v20.count(Query("sample-budget-restricted"))
    with pytest.raises(QueryError) as info:
        v20.count(Query("sample-trees", where={"no_such_field": 1}))
    assert info.value.error_code == "ODSQLError"
    with pytest.raises(InvalidQueryArgument, match="limit"):
        v20.records_page(Query("sample-trees"), 101, 0)


def test_private_dataset_with_the_key(private_portal: LocalPortal, api_key: str) -> None:
    with open_adapter(private_portal.url, version="2.0", api_key=api_key, use_keyring=False) as api:
        assert api.count(Query("sample-budget-restricted")) == 60
        assert api.dataset_metadata("sample-budget-restricted")["visibility"] == "restricted"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            "in_bbox(geo, 48.8, 2.3, 48.9, 2.4)",
            "bbox(geo, 48.9, 2.3, 48.8, 2.4)",
        ),
        (
            "within_distance(`my geo`, geom'POINT(2.35 48.85)', 500m)",
            "distance(`my geo`, geom'POINT(2.35 48.85)', 500m)",
        ),
        (
            'intersects(geo, geom\'{"type":"Point","coordinates":[2.0,48.0]}\')',
            'geometry(geo, geom\'{"type":"Point","coordinates":[2.0,48.0]}\', INTERSECTS)',
        ),
        ('name = "in_bbox(x, 1, 2, 3, 4)"', 'name = "in_bbox(x, 1, 2, 3, 4)"'),
        ("NOT in_bbox(geo, 1, 2, 3, 4)", "NOT in_bbox(geo, 1, 2, 3, 4)"),
    ],
)
def test_v20_where(condition: str, expected: str) -> None:
    assert v20_where(condition) == expected
