"""The v2.1 adapter over real HTTP.

Two servers:

* the local ODS portal (``LocalPortal(sample=True)``) for metadata, errors and keys;
* a small ODS-like server written here (``FakeODS``) whose ``/records`` honours
  ``limit``/``offset``/``order_by`` and the 10 000 window but breaks ties in a different
  random order on every request, as a search engine may: it shows that paging along a plan
  returns each record exactly once, and lets the export and grouping routes be checked
  request by request.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from helpers import BackgroundServer, QuietHandler

from odsframe._http import RetryPolicy
from odsframe.api import ExploreV21, open_adapter
from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    InvalidQueryArgument,
    QueryError,
)
from odsframe.query import Query
from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1/catalog"
DATASET = "fake@public"
FIELDS = [
    {"name": "code", "type": "text", "annotations": {"id": []}},
    {"name": "n", "type": "int", "annotations": {}},
]
ROWS = [{"code": f"r{index:03d}", "n": index % 7} for index in range(250)]


@dataclass
class Seen:
    path: str
    params: list[tuple[str, str]]


class FakeODS:
    """An ODS-like server over ``ROWS`` (see the module docstring)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.server = BackgroundServer(self._handler())
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()

    def requests_to(self, suffix: str) -> list[dict[str, Any]]:
        """Parameters of the requests whose path ends with ``suffix`` (repeated names as lists)."""
        found = []
        for seen in self.seen:
            if seen.path.endswith(suffix):
                params: dict[str, Any] = {}
                for name, value in seen.params:
                    params.setdefault(name, []).append(value)
                found.append({k: v[0] if len(v) == 1 else v for k, v in params.items()})
        return found

    # -- behaviour ------------------------------------------------------------------------

    def answer(self, path: str, params: list[tuple[str, str]]) -> tuple[int, Any, str]:
        query = dict(params)
        base = f"{V21}/datasets/{DATASET}"
        if path == f"{V21}/datasets":
            return 200, {"total_count": 1, "results": [{"dataset_id": DATASET}]}, "json"
        if path == base:
            return 200, {"dataset_id": DATASET, "fields": FIELDS, "metas": {"default": {}}}, "json"
        if path == f"{base}/exports":
            links = [{"rel": "self", "href": f"{self.url}{base}/exports"}]
            links += [
                {"rel": fmt, "href": f"{self.url}{base}/exports/{fmt}"}
                for fmt in ("csv", "json", "jsonl")
            ]
            return 200, {"_links": links}, "json"
        if path == f"{base}/attachments":
            attachment = {"href": f"{self.url}{base}/attachments/a", "metas": {"title": "A"}}
            return 200, {"_links": [], "attachments": [attachment]}, "json"
        if path == f"{base}/facets":
            facets = [{"name": "n", "facets": [{"name": "0", "value": "0", "count": 36}]}]
            return 200, {"facets": facets}, "json"
        if path == f"{base}/records":
            return self._records(query)
        if path.startswith(f"{base}/exports/"):
            rows = self._ordered(query.get("order_by"))
            limit = int(query.get("limit", "-1"))
            rows = rows if limit == -1 else rows[:limit]
            fmt = path.rsplit("/", 1)[-1]
            if fmt == "jsonl":
                return 200, "".join(json.dumps(row) + "\n" for row in rows), "jsonl"
            if fmt == "csv":
                text = "code;n\n" + "".join(f"{r['code']};{r['n']}\n" for r in rows)
                return 200, text, "csv"
            return 200, rows, "json"
        return 404, {"error_code": "NotFound", "message": f"no {path}"}, "json"

    def _ordered(self, order_by: str | None) -> list[dict[str, Any]]:
        rows = list(ROWS)
        random.shuffle(rows)  # ties come out in a different order on every request
        for item in reversed((order_by or "").split(",")):
            if item.strip():
                name, _, direction = item.strip().partition(" ")
                rows.sort(key=lambda row: row[name], reverse=direction.upper() == "DESC")
        return rows

    def _records(self, query: dict[str, str]) -> tuple[int, Any, str]:
        limit, offset = int(query.get("limit", "10")), int(query.get("offset", "0"))
        if "group_by" in query:
            groups: dict[int, int] = {}
            for row in ROWS:
                groups[row["n"]] = groups.get(row["n"], 0) + 1
            results = [{"n": key, "count": groups[key]} for key in sorted(groups)][:limit]
            return 200, {"results": results}, "json"
        if not -1 <= limit <= 100 or offset + limit > 10_000:
            message = f"Invalid value for limit API parameter: {limit} was found but -1 <= limit <= 100 is expected."
            return 400, {"error_code": "InvalidRESTParameterError", "message": message}, "json"
        rows = self._ordered(query.get("order_by"))
        return 200, {"total_count": len(ROWS), "results": rows[offset : offset + limit]}, "json"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path, params = unquote(parts.path), parse_qsl(parts.query)
                fake.seen.append(Seen(path, params))
                status, body, kind = fake.answer(path, params)
                if kind == "json":
                    data = json.dumps(body).encode()
                    content_type = "application/json; charset=utf-8"
                else:
                    data = body.encode()
                    content_type = "text/csv" if kind == "csv" else "application/x-ndjson"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def fake() -> Iterator[FakeODS]:
    server = FakeODS()
    yield server
    server.close()


@pytest.fixture
def api(fake: FakeODS) -> Iterator[ExploreV21]:
    adapter = ExploreV21.open(
        fake.url, retry=RetryPolicy(attempts=2, backoff=0.01), use_keyring=False
    )
    yield adapter
    adapter.close()


# -- the adapter's requests ---------------------------------------------------------------


def test_urls(api: ExploreV21, fake: FakeODS) -> None:
    assert api.catalog_url == f"{fake.url}/api/explore/v2.1/catalog"
    assert api.dataset_url(DATASET) == f"{fake.url}{V21}/datasets/fake@public"
    assert api.dataset_url("a/b c") == f"{fake.url}{V21}/datasets/a%2Fb%20c"


def test_count_and_metadata(api: ExploreV21, fake: FakeODS) -> None:
    assert api.count(Query(DATASET, where={"n": 3}, order_by="n")) == 250
    (count,) = fake.requests_to("/records")
    assert count == {"limit": "0", "where": "n = 3"}  # no order_by for a count
    assert api.dataset_metadata(DATASET)["fields"] == FIELDS


def test_export_formats_come_from_the_links(api: ExploreV21) -> None:
    assert api.export_formats(DATASET) == ["csv", "json", "jsonl"]


def test_paging_returns_every_record_once(api: ExploreV21, fake: FakeODS) -> None:
    records = list(api.iter_records(Query(DATASET, order_by="n")))
    assert len(records) == 250
    assert len({row["code"] for row in records}) == 250
    ns = [row["n"] for row in records]
    assert ns == sorted(ns)
    pages = fake.requests_to("/records")[1:]  # after the count
    assert [(p["offset"], p["limit"]) for p in pages] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "50"),
    ]
    assert {p["order_by"] for p in pages} == {"n ASC, code ASC"}
    # The schema gave a total order, so the export formats were never asked for.
    assert [seen.path.rsplit("/", 1)[-1] for seen in fake.seen] == [
        "records",
        "fake@public",
        "records",
        "records",
        "records",
    ]


def test_big_reads_stream_an_export(api: ExploreV21, fake: FakeODS) -> None:
    records = list(api.iter_records(Query(DATASET), records_threshold=100))
    assert sorted(row["code"] for row in records) == [row["code"] for row in ROWS]
    (export,) = fake.requests_to("/exports/jsonl")
    assert export == {"limit": "-1"}
    assert fake.requests_to("/records") == [{"limit": "0"}]  # only the count
    assert [seen.path.rsplit("/", 1)[-1] for seen in fake.seen] == ["records", "exports", "jsonl"]


def test_plan_explain_shows_full_urls(api: ExploreV21, fake: FakeODS) -> None:
    plan = api.plan(Query(DATASET, limit=150))
    text = api.explain(plan)
    assert f"GET {fake.url}{V21}/datasets/fake@public/records?limit=100&offset=0" in text
    assert "offset=100" in text
    assert "route = records" in text


def test_stream_export_with_options(api: ExploreV21, fake: FakeODS, tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    written = api.stream_export(
        Query(DATASET, where="n > 2", limit=5), "CSV", dest, delimiter=";", with_bom=False
    )
    assert written == dest.stat().st_size
    assert dest.read_text().splitlines()[0] == "code;n"
    (request,) = fake.requests_to("/exports/csv")
    assert request == {"delimiter": ";", "limit": "5", "where": "n > 2", "with_bom": "false"}


@pytest.mark.parametrize(
    ("fmt", "options", "match"),
    [
        ("xls", {}, "export format"),
        ("csv", {"where": "x"}, "belong in the Query"),
        ("csv", {"limit": 3}, "belong in the Query"),
        ("csv", {"apikey": "k"}, "header"),
    ],
)
def test_stream_export_validates(
    api: ExploreV21, fake: FakeODS, tmp_path: Path, fmt: str, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidQueryArgument, match=match):
        api.stream_export(Query(DATASET), fmt, tmp_path / "x", **options)
    assert fake.seen == []


def test_grouped_sends_an_explicit_limit(api: ExploreV21, fake: FakeODS) -> None:
    groups = api.grouped(Query(DATASET, group_by="n", select="n, count(*) as count"))
    assert [group["n"] for group in groups] == list(range(7))
    assert sum(group["count"] for group in groups) == 250
    (request,) = fake.requests_to("/records")
    assert request["limit"] == "20000"
    with pytest.raises(InvalidQueryArgument, match="group_by"):
        api.grouped(Query(DATASET))
    with pytest.raises(InvalidQueryArgument, match="20000"):
        api.grouped(Query(DATASET, group_by="n", limit=20_001))


def test_pages_outside_the_window_are_refused_before_sending(
    api: ExploreV21, fake: FakeODS
) -> None:
    for limit, offset in ((101, 0), (100, 9_901), (-1, 0), (10, -5)):
        with pytest.raises(InvalidQueryArgument):
            api.records_page(Query(DATASET), limit, offset)
    assert fake.seen == []
    page = api.records_page(Query(DATASET), 100, 9_900, order_by=["code"])
    assert page == []  # allowed: the last page of the window
    assert fake.requests_to("/records")[0]["order_by"] == "code ASC"


def test_server_side_refusals_are_query_errors(api: ExploreV21) -> None:
    with pytest.raises(QueryError, match="500 was found") as info:
        api.http.get_json(f"{api.dataset_url(DATASET)}/records", {"limit": 500}, dataset=DATASET)
    assert info.value.error_code == "InvalidRESTParameterError"


def test_fetch_runs_only_records_and_grouped_requests(api: ExploreV21, fake: FakeODS) -> None:
    from odsframe.query.plan import PlannedRequest

    page = PlannedRequest("records", DATASET, (("limit", "100"), ("offset", "200")))
    assert len(api.fetch(page)) == 50
    with pytest.raises(InvalidQueryArgument, match="export"):
        api.fetch(PlannedRequest("export", DATASET, (), export_format="csv"))
    with pytest.raises(InvalidQueryArgument, match="offset"):
        api.fetch(PlannedRequest("records", DATASET, (("limit", "100"), ("offset", "9950"))))
    assert len(fake.seen) == 1


def test_facets_catalog_and_attachments(api: ExploreV21, fake: FakeODS) -> None:
    query = Query(DATASET, where={"n": 1}, refine={"code": "r001"}, order_by="n", select="n")
    facets = api.facets(DATASET, query=query, facet=["n", 'facet(name="code", limit=5)'])
    assert facets["facets"][0]["name"] == "n"
    (request,) = fake.requests_to("/facets")
    assert request == {
        "facet": ['facet(name="code", limit=5)', "n"],
        "refine": 'code:"r001"',
        "where": "n = 1",
    }
    with pytest.raises(InvalidQueryArgument, match="reads"):
        api.facets("other", query=query)

    page = api.catalog_page(where={"features": "geo"}, order_by="-modified", limit=10, lang="en")
    assert page["results"] == [{"dataset_id": DATASET}]
    (catalog,) = fake.requests_to("/catalog/datasets")
    assert catalog == {
        "lang": "en",
        "limit": "10",
        "offset": "0",
        "order_by": "modified DESC",
        "where": 'features = "geo"',
    }
    assert api.attachments(DATASET)[0]["metas"]["title"] == "A"


# -- against the local portal -------------------------------------------------------------


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=200, api_keys=["good-key"]) as running:
        yield running


def test_portal_metadata(portal: LocalPortal) -> None:
    with open_adapter(portal.url, use_keyring=False) as api:
        metadata = api.dataset_metadata("sample-trees")
    assert metadata["dataset_id"] == "sample-trees"
    assert {"name", "type"} <= set(metadata["fields"][0])


def test_portal_unknown_dataset(portal: LocalPortal) -> None:
    with (
        open_adapter(portal.url, use_keyring=False) as api,
        pytest.raises(DatasetNotFoundError, match="no-such-dataset"),
    ):
        api.dataset_metadata("no-such-dataset")


def test_portal_private_dataset_needs_the_key(
    portal: LocalPortal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ODS_APIKEY", "ODS_API_KEY", "HUWISE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with open_adapter(portal.url, use_keyring=False) as api, pytest.raises(AuthenticationError):
        api.dataset_metadata("sample-budget-restricted")
    with (
        open_adapter(portal.url, api_key="wrong", use_keyring=False) as api,
        pytest.raises(AuthenticationError, match="key was refused"),
    ):
        api.dataset_metadata("sample-budget-restricted")
    monkeypatch.setenv("ODS_APIKEY", "good-key")  # the key chain, end to end
    with open_adapter(portal.url, use_keyring=False) as api:
        assert api.dataset_metadata("sample-budget-restricted")["dataset_id"] == (
            "sample-budget-restricted"
        )


def test_portal_paging_reads_every_record_once(portal: LocalPortal) -> None:
    with open_adapter(portal.url, use_keyring=False) as api:
        query = Query("sample-events", order_by="-start")
        total = api.count(query)
        plan = api.plan(query)
        records = list(api.iter_records(query))
    assert total > 100  # several pages
    assert plan.route == "records"
    assert plan.order_by == ("start DESC", "event_id ASC")  # event_id is the id field
    assert len(records) == total
    assert len({record["event_id"] for record in records}) == total
    starts = [record["start"] for record in records if record["start"] is not None]
    assert starts == sorted(starts, reverse=True)


def test_portal_filters_and_groups_agree_with_counts(portal: LocalPortal) -> None:
    with open_adapter(portal.url, use_keyring=False) as api:
        total = api.count(Query("sample-events"))
        groups = api.grouped(
            Query("sample-events", group_by="category", select="category, count(*) as n")
        )
        concerts = api.count(Query("sample-events", where={"category": "Concert"}))
        not_free = api.count(Query("sample-events", where={"free": False}))
        free = api.count(Query("sample-events", where={"free": True}))
    assert sum(group["n"] for group in groups) == total
    assert {group["category"]: group["n"] for group in groups}["Concert"] == concerts
    assert free + not_free <= total


def test_portal_odsql_errors_are_query_errors(portal: LocalPortal) -> None:
    with open_adapter(portal.url, use_keyring=False) as api, pytest.raises(QueryError) as info:
        api.count(Query("sample-trees", where={"no_such_field": 1}))
    assert info.value.error_code == "ODSQLError"
    assert "no_such_field" in (info.value.server_message or "")
