"""The Search API v1 adapter against the local portal over real HTTP.

The adapter turns v2.1-style queries into v1 parameters and v1 answers back into v2.1
shapes, so every answer is checked against the v2.1 adapter on the same portal; the
translation of ``where`` conditions into the v1 query language is checked on its own too.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import shapely
from helpers import adapter_pair, both

from odsframe.api import ExploreV21, SearchV1, open_adapter
from odsframe.api.v1 import translate_where
from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    InvalidQueryArgument,
    QueryError,
)
from odsframe.frames import fields_from_metadata, frame_from_csv, frame_from_records
from odsframe.query import Query
from odsframe.query.plan import tiebreak_fields
from odsframe.testing.portal import LocalPortal


@pytest.fixture(scope="module")
def apis(sample_portal: LocalPortal) -> Iterator[tuple[SearchV1, ExploreV21]]:
    with adapter_pair(sample_portal, "1.0") as pair:
        yield pair


# -- the where translation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "q", "geofilters"),
    [
        (['city = "Paris"'], '#exact(city, "Paris")', []),
        (["pop >= 1000"], "pop>=1000", []),
        (["pop = 12"], "pop:12", []),
        (['city IN ("Lyon", "Paris")'], '(#exact(city, "Lyon") OR #exact(city, "Paris"))', []),
        (["pop IN [1..5]"], "pop:[1 TO 5]", []),
        (["pop IN ]1..5["], "(pop>1 AND pop<5)", []),
        (["flag IS TRUE"], "flag:true", []),
        (["flag IS NOT TRUE"], "flag:false", []),
        (["x IS NULL"], "#null(x)", []),
        (["x IS NOT NULL"], "NOT #null(x)", []),
        (["d >= date'2024-05-01'"], "d>=2024-05-01", []),
        (["d < date'2024-05-01T10:00:00+02:00'"], "d<2024-05-01T10:00:00+02:00", []),
        (['"big tree"'], '"big tree"', []),
        (['"x" IN tags'], 'tags:"x"', []),
        (['search(name, "oak")'], '#search(name, "oak")', []),
        (['suggest("oak")'], "oak", []),
        (['startswith(name, "Ma")'], '#startswith(name, "Ma")', []),
        (['NOT (a = 1 OR b != "x")'], 'NOT ((a:1 OR NOT #exact(b, "x")))', []),
        (["a = 1", "b = 2"], "(a:1) AND (b:2)", []),
        (['`name` = "say \\"hi\\""'], '#exact(name, "say \\"hi\\"")', []),
        (
            ["in_bbox(geo, 48.8, 2.3, 48.9, 2.4)"],
            None,
            [("geofilter.bbox", "48.8,2.3,48.9,2.4")],
        ),
        (
            ["within_distance(geo, geom'POINT(2.35 48.85)', 2km)"],
            None,
            [("geofilter.distance", "48.85,2.35,2000")],
        ),
        (
            [
                "intersects(geo, geom'"
                '{"type":"Polygon","coordinates":[[[2.0,48.0],[3.0,48.0],[3.0,49.0],[2.0,48.0]]]}'
                "')",
                "a = 1",
            ],
            "a:1",
            [("geofilter.polygon", "(48.0,2.0),(48.0,3.0),(49.0,3.0),(48.0,2.0)")],
        ),
    ],
)
def test_translate_where(
    conditions: list[str], q: str | None, geofilters: list[tuple[str, str]]
) -> None:
    translation = translate_where(conditions)
    assert translation.q == q
    assert translation.geofilters == geofilters


@pytest.mark.parametrize(
    "condition",
    [
        'name LIKE "oak"',
        "length(name) > 3",
        "a + 1 > 3",
        "a = b",
        "NOT in_bbox(geo, 1, 2, 3, 4)",
        'intersects(geo, geom\'{"type":"Point","coordinates":[2.0,48.0]}\')',
        "`my field` = 1",
        "a = ",
    ],
)
def test_untranslatable_conditions_are_named(condition: str) -> None:
    with pytest.raises(InvalidQueryArgument, match="v1 query language") as info:
        translate_where([condition])
    assert "where" in str(info.value)


# -- against the portal ---------------------------------------------------------------------


def test_urls(apis: tuple[SearchV1, ExploreV21]) -> None:
    v1, _ = apis
    assert v1.version == "1.0"
    assert v1.catalog_url.endswith("/api/datasets/1.0")
    assert v1.dataset_url("sample-trees").endswith("/api/datasets/1.0/sample-trees")
    plan = v1.plan(Query("sample-trees", order_by="-hauteur_m"))
    assert len(plan.requests) == 4
    urls = [v1.url_for(request) for request in plan.requests]
    assert all("/api/records/1.0/search/?dataset=sample-trees" in url for url in urls)
    assert all("sort=hauteur_m" in url and "sort=-idbase" in url for url in urls)
    assert "/api/records/1.0/" in v1.explain(plan)
    export = v1.plan(Query("sample-events"), records_threshold=0).requests[0]
    assert "/api/records/1.0/download/?dataset=sample-events" in v1.url_for(export)
    grouped = v1.plan(Query("sample-events", group_by="category", select="count(*)"))
    assert "/api/records/1.0/analyze/?dataset=sample-events" in v1.url_for(grouped.requests[0])


def test_metadata_is_normalised_to_v21(apis: tuple[SearchV1, ExploreV21]) -> None:
    old, new = both(apis, "dataset_metadata", "sample-events")
    assert old["dataset_id"] == "sample-events"
    assert [(f["name"], f["type"], f["label"], f["annotations"]) for f in old["fields"]] == [
        (f["name"], f["type"], f["label"], f["annotations"]) for f in new["fields"]
    ]
    assert fields_from_metadata(old) == fields_from_metadata(new)
    default = new["metas"]["default"]
    assert {k: v for k, v in default.items() if v is not None} == {
        k: v for k, v in old["metas"]["default"].items()
    }
    assert tiebreak_fields(old["fields"]) == (["event_id"], True)


@pytest.mark.parametrize(
    "query",
    [
        Query("sample-events"),
        Query("sample-events", where={"category": ["Concert", "Danse"], "free": False}),
        Query("sample-events", where={"duration_min": (60, 120), "attendance": None}),
        Query("sample-events", where='duration_min >= 90 OR NOT category = "Atelier"'),
        Query("sample-events", where="start >= date'2023-01-01' AND price < 20"),
        Query("sample-events", where='"jardin"'),
        Query("sample-events", refine={"theme": "Musique"}, exclude={"arrondissement": "75001"}),
        Query("sample-events", refine={"start": "2022"}, timezone="Europe/Paris"),
        Query("sample-events", bbox=(2.30, 48.84, 2.38, 48.88), geo_field="location"),
        Query("sample-events", distance=((2.35, 48.86), 1500), geo_field="location"),
        Query("sample-bike-stations", where={"payment": "Navigo"}),
        Query("sample-bike-stations", where='"Navigo" IN payment AND is_installed IS TRUE'),
    ],
    ids=[
        "all",
        "list",
        "range-null",
        "or-not",
        "dates",
        "full-text",
        "facets",
        "date-facet",
        "bbox",
        "distance",
        "multivalued",
        "membership",
    ],
)
def test_counts_equal_v21(apis: tuple[SearchV1, ExploreV21], query: Query) -> None:
    old, new = both(apis, "count", query)
    assert old == new > 0


def test_polygon_mask_count_equals_v21(apis: tuple[SearchV1, ExploreV21]) -> None:
    query = Query(
        "sample-districts", mask=shapely.box(2.30, 48.84, 2.36, 48.87), geo_field="geom_x_y"
    )
    old, new = both(apis, "count", query)
    assert old == new > 0


def test_records_pages_equal_v21(apis: tuple[SearchV1, ExploreV21]) -> None:
    query = Query(
        "sample-bike-stations",
        select=["stationcode", "capacity", "opened_on", "duedate", "coordonnees_geo", "geo_shape"],
        where={"commune": "Paris"},
        timezone="Europe/Paris",
    )
    old, new = both(apis, "records_page", query, 20, 10, order_by=["-capacity", "ebike"])
    assert old == new and len(old) == 20
    assert list(old[0]) == [
        "stationcode",
        "capacity",
        "opened_on",
        "duedate",
        "coordonnees_geo",
        "geo_shape",
    ]
    assert set(old[0]["coordonnees_geo"]) == {"lon", "lat"}
    assert old[0]["geo_shape"]["type"] == "Feature"


def test_records_hold_every_field_with_nulls(apis: tuple[SearchV1, ExploreV21]) -> None:
    query = Query("sample-events", where={"free": True}, order_by="duration_min")
    old, new = both(apis, "records_page", query, 10, 0)
    assert old == new
    assert all(record["price"] is None for record in old)
    names = [f["name"] for f in apis[0].dataset_metadata("sample-events")["fields"]]
    assert all(list(record) == names for record in old)


def _file_urls_apart(records: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The records with their file objects' ``url`` left out, and those URLs."""
    kept, urls = [], []
    for record in records:
        record = dict(record)
        photo = record.get("photo")
        if isinstance(photo, dict) and "url" in photo:
            photo = dict(photo)
            urls.append(photo.pop("url"))
            record["photo"] = photo
        kept.append(record)
    return kept, urls


def test_iter_records_equal_v21_on_both_routes(apis: tuple[SearchV1, ExploreV21]) -> None:
    paged, expected = both(apis, "iter_records", Query("sample-trees", order_by="-hauteur_m"))
    (old_records, old_urls), (new_records, new_urls) = map(_file_urls_apart, (paged, expected))
    assert old_records == new_records
    # each generation's file URLs use its own file route, and they serve the same bytes
    assert old_urls and all("/api/datasets/1.0/sample-trees/files/" in u for u in old_urls)
    assert all("/api/explore/v2.1/catalog/datasets/sample-trees/files/" in u for u in new_urls)
    assert [u.rsplit("/", 1)[1] for u in old_urls] == [u.rsplit("/", 1)[1] for u in new_urls]
    assert requests.get(old_urls[0], timeout=30).content == requests.get(new_urls[0]).content
    # a text id (event_id) cannot be a v1 sort: pages follow the portal's stable order
    events = Query("sample-events", where="duration_min >= 60")
    old, new = both(apis, "iter_records", events)
    assert sorted(list(old), key=lambda r: r["event_id"]) == list(new)
    downloaded, exported = both(apis, "iter_records", Query("sample-trees"), records_threshold=0)
    assert _file_urls_apart(downloaded)[0] == _file_urls_apart(exported)[0]
    selected = Query("sample-trees", select=["idbase", "photo"], where={"remarquable": True})
    downloaded, exported = both(apis, "iter_records", selected, records_threshold=0)
    (old_records, old_urls), (new_records, new_urls) = map(_file_urls_apart, (downloaded, exported))
    assert old_records == new_records
    assert [u.rsplit("/", 1)[1] for u in old_urls] == [u.rsplit("/", 1)[1] for u in new_urls]


def test_typed_frames_equal_v21(apis: tuple[SearchV1, ExploreV21]) -> None:
    query = Query("sample-bike-stations", order_by="ebike", timezone="Europe/Paris")
    frames = []
    for api in apis:
        fields = fields_from_metadata(api.dataset_metadata("sample-bike-stations"))
        records = list(api.iter_records(query, records_threshold=0))
        frames.append(frame_from_records(records, fields, timezone="Europe/Paris", geometry=None))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_csv_download_reads_as_the_v21_frame(
    apis: tuple[SearchV1, ExploreV21], tmp_path: Path
) -> None:
    v1, v21 = apis
    query = Query("sample-trees", where={"domanialite": "Jardin"})
    fields = fields_from_metadata(v21.dataset_metadata("sample-trees"))
    paths = []
    for api, fmt in ((v1, "csv"), (v21, "csv")):
        path = tmp_path / f"{api.version}.csv"
        written = api.stream_export(query, fmt, path)
        assert written == path.stat().st_size > 0
        paths.append(path)
    assert not paths[0].read_bytes().startswith(b"\xef\xbb\xbf")
    old, new = (frame_from_csv(path, fields, geometry=None) for path in paths)
    pd.testing.assert_frame_equal(old.drop(columns=["photo"]), new.drop(columns=["photo"]))


def test_stream_export_validates(apis: tuple[SearchV1, ExploreV21]) -> None:
    v1, _ = apis
    buffer = io.BytesIO()
    v1.stream_export(Query("sample-trees", limit=3), "csv", buffer, csv_separator=",")
    lines = buffer.getvalue().decode().strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("idbase,")
    with pytest.raises(InvalidQueryArgument, match="download format"):
        v1.stream_export(Query("sample-trees"), "parquet", io.BytesIO())
    with pytest.raises(InvalidQueryArgument, match="not v1 download parameters"):
        v1.stream_export(Query("sample-trees"), "csv", io.BytesIO(), delimiter=",")


@pytest.mark.parametrize(
    ("dataset", "group_by", "select", "order_by", "limit"),
    [
        ("sample-events", "category", "category, count(*) as n, avg(price) as p", None, None),
        ("sample-events", "category", "count(*) as n, sum(duration_min) as d", "n DESC", 3),
        ("sample-events", "arrondissement", "count(*)", "arrondissement DESC", None),
        (
            "sample-monthly-prices",
            "month",
            "month, avg(price_index) as p, max(price_index)",
            None,
            None,
        ),
        ("sample-budget-restricted", "exercice", "count(*) as n", None, None),
        ("sample-bike-stations", "opened_on", "count(*) as n", None, None),
        ("sample-events", "year(start) as y", "y, count(*) as n", None, None),
        ("sample-events", "month(start)", "count(*) as n, min(price) as low", "low ASC", None),
        ("sample-events", "dayofweek(start) as d", "count(*) as n", None, None),
        ("sample-bike-stations", "is_installed", "count(*) as n, avg(capacity) as c", None, None),
    ],
)
def test_groups_equal_v21(
    apis: tuple[SearchV1, ExploreV21],
    private_portal: LocalPortal,
    api_key: str,
    dataset: str,
    group_by: str,
    select: str,
    order_by: str | None,
    limit: int | None,
) -> None:
    query = Query(
        dataset,
        group_by=group_by,
        select=select,
        order_by=order_by,
        limit=limit,
        timezone="Europe/Paris",
    )
    if dataset == "sample-budget-restricted":
        keyed = [
            open_adapter(private_portal.url, version=v, api_key=api_key, use_keyring=False)
            for v in ("1.0", "2.1")
        ]
        old, new = (api.grouped(query) for api in keyed)
        for api in keyed:
            api.close()
    else:
        old, new = both(apis, "grouped", query)
    assert old == [group for group in new if None not in group.values()] and old


@pytest.mark.parametrize(
    ("group_by", "select", "match"),
    [
        ("category, free", "count(*)", "one key"),
        ("start", "count(*)", "datetime"),
        ("lower(title)", "count(*)", "analyze x"),
        ("category", "percentile(price, 50)", "serie"),
        ("category", "sum(*)", "needs a field"),
    ],
)
def test_groups_v1_cannot_express(
    apis: tuple[SearchV1, ExploreV21], group_by: str, select: str, match: str
) -> None:
    v1, _ = apis
    with pytest.raises(InvalidQueryArgument, match=match):
        v1.grouped(Query("sample-events", group_by=group_by, select=select))


def test_catalog_pages_equal_v21(apis: tuple[SearchV1, ExploreV21]) -> None:
    old, new = both(apis, "catalog_page", limit=3, offset=1, order_by="-records_count")
    assert old["total_count"] == new["total_count"] == 5
    assert [d["dataset_id"] for d in old["results"]] == [d["dataset_id"] for d in new["results"]]
    assert old["results"][0]["fields"] == new["results"][0]["fields"]
    where = {"publisher": "Ville de Paris (échantillon)"}
    filtered, expected = both(apis, "catalog_page", where=where, refine={"theme": "Culture"})
    assert (
        [d["dataset_id"] for d in filtered["results"]]
        == [d["dataset_id"] for d in expected["results"]]
        == ["sample-events"]
    )
    with pytest.raises(InvalidQueryArgument, match="select"):
        apis[0].catalog_page(select="dataset_id")


def test_facets_and_attachments(apis: tuple[SearchV1, ExploreV21]) -> None:
    v1, _ = apis
    old, new = both(apis, "facets", "sample-events", facet=["category", "start"])
    assert old["facets"] == new["facets"]
    query = Query("sample-events", where={"free": True}, refine={"category": "Concert"})
    old, new = both(apis, "facets", "sample-events", query=query)
    assert old["facets"] == new["facets"]
    with pytest.raises(InvalidQueryArgument, match="facet names"):
        v1.facets("sample-events", facet='facet(name="category")')
    attachments = v1.attachments("sample-bike-stations")
    assert [a["metas"]["id"] for a in attachments] == ["stations_summary_csv", "notice_pdf"]
    answer = requests.get(attachments[1]["href"], timeout=30)
    assert answer.status_code == 200 and answer.content.startswith(b"%PDF")
    assert v1.export_formats("sample-trees") == ["csv", "json", "geojson"]


def test_errors(apis: tuple[SearchV1, ExploreV21]) -> None:
    v1, _ = apis
    with pytest.raises(DatasetNotFoundError, match="nope"):
        v1.dataset_metadata("nope")
    with pytest.raises(DatasetNotFoundError):
        v1.count(Query("nope"))
    with pytest.raises(AuthenticationError):
        v1.count(Query("sample-budget-restricted"))
    with pytest.raises(QueryError) as info:
        v1.count(Query("sample-trees", where={"remarquable": "maybe"}))
    assert info.value.error_code == 400
    assert "maybe" in (info.value.server_message or "")
    with pytest.raises(InvalidQueryArgument, match="select"):
        v1.records_page(Query("sample-trees", select="count(*) as n, idbase"), 10, 0)
    with pytest.raises(InvalidQueryArgument, match="order_by"):
        v1.records_page(Query("sample-trees", order_by="random(1)"), 10, 0)
    with pytest.raises(InvalidQueryArgument, match="limit"):
        v1.records_page(Query("sample-trees"), 101, 0)


def test_private_dataset_with_the_key(private_portal: LocalPortal, api_key: str) -> None:
    with open_adapter(private_portal.url, version="1.0", api_key=api_key, use_keyring=False) as api:
        assert api.count(Query("sample-budget-restricted")) == 60
        metadata = api.dataset_metadata("sample-budget-restricted")
    assert metadata["visibility"] == "restricted"
