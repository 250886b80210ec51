"""Read plans: route choice, page requests, total order, explain()."""

from __future__ import annotations

import pytest

from odsframe._spec import GROUP_BY_MAX_LIMIT, RECORDS_MAX_LIMIT, RECORDS_MAX_WINDOW
from odsframe.errors import InvalidQueryArgument
from odsframe.query import Plan, Query
from odsframe.query.plan import count_request, tiebreak_fields

FIELDS = [
    {"name": "name", "type": "text", "annotations": {}},
    {"name": "height", "type": "int", "annotations": {}},
    {"name": "geo", "type": "geo_point_2d", "annotations": {}},
    {"name": "tags", "type": "text", "annotations": {"multivalued": [","]}},
    {"name": "photo", "type": "file"},
]
ID_FIELDS = [*FIELDS, {"name": "code", "type": "text", "annotations": {"id": []}}]
ALL_FORMATS = ["csv", "json", "jsonl", "geojson", "parquet"]


def _window_ok(plan: Plan) -> None:
    for request in plan.requests:
        if request.kind == "records":
            assert request.limit is not None
            assert 0 < request.limit <= RECORDS_MAX_LIMIT
            assert request.offset + request.limit <= RECORDS_MAX_WINDOW


def test_small_reads_take_one_page() -> None:
    plan = Plan.build(Query("t", order_by="-height"), total=42, export_formats=ALL_FORMATS)
    assert plan.route == "records"
    (request,) = plan.requests
    assert request.param("limit") == "42"
    assert request.offset == 0
    assert request.param("order_by") == "height DESC"  # one page needs no tie-break


def test_pages_cover_every_row_once_in_a_total_order() -> None:
    plan = Plan.build(Query("t", order_by="-height"), total=250, fields=FIELDS)
    assert plan.route == "records"
    assert [(r.offset, r.limit) for r in plan.requests] == [(0, 100), (100, 100), (200, 50)]
    assert plan.order_by == ("height DESC", "name ASC")  # geo, multivalued, file skipped
    assert {r.param("order_by") for r in plan.requests} == {"height DESC, name ASC"}
    _window_ok(plan)


def test_id_fields_are_the_preferred_tiebreak() -> None:
    assert tiebreak_fields(ID_FIELDS) == (["code"], True)
    assert tiebreak_fields(FIELDS) == (["name", "height"], False)
    v1_style = [{"name": "k", "type": "text", "annotations": [{"name": "id", "args": []}]}]
    assert tiebreak_fields(v1_style) == (["k"], True)
    plan = Plan.build(Query("t"), total=300, fields=ID_FIELDS)
    assert plan.order_by == ("code ASC",)


def test_tiebreak_does_not_repeat_ordered_fields() -> None:
    plan = Plan.build(Query("t", order_by="code DESC"), total=300, fields=ID_FIELDS)
    assert plan.order_by == ("code DESC",)
    reserved = [{"name": "year", "type": "int", "annotations": {"id": []}}]
    plan = Plan.build(Query("t", order_by="-year"), total=300, fields=reserved)
    assert plan.order_by == ("`year` DESC",)


def test_beyond_the_threshold_the_preferred_export_is_used() -> None:
    query = Query("t", where={"height": (2000, None)})
    plan = Plan.build(query, total=5_000, fields=FIELDS, export_formats=["csv", "parquet"])
    assert plan.route == "export"
    assert plan.export_format == "parquet"
    (request,) = plan.requests
    assert request.kind == "export"
    assert request.param("limit") == "-1"
    assert request.param("where") == "height >= 2000"
    assert "records_threshold 1000" in plan.reason


@pytest.mark.parametrize(
    ("formats", "expected"),
    [(["csv", "json", "xlsx"], "csv"), (["json", "geojson"], "json"), (["PARQUET"], "parquet")],
)
def test_export_format_preference(formats: list[str], expected: str) -> None:
    plan = Plan.build(Query("t"), total=50_000, export_formats=formats)
    assert plan.export_format == expected


def test_user_limit_caps_rows_and_the_export() -> None:
    plan = Plan.build(Query("t", limit=30_000), total=80_000, export_formats=ALL_FORMATS)
    assert plan.rows == 30_000
    assert plan.requests[0].param("limit") == "30000"
    plan = Plan.build(Query("t", limit=150), total=80_000, fields=FIELDS)
    assert plan.route == "records"
    assert [(r.offset, r.limit) for r in plan.requests] == [(0, 100), (100, 50)]


def test_threshold_is_tunable_and_validated() -> None:
    plan = Plan.build(Query("t"), total=5_000, fields=FIELDS, records_threshold=10_000)
    assert plan.route == "records"
    assert len(plan.requests) == 50
    _window_ok(plan)
    with pytest.raises(InvalidQueryArgument, match="records_threshold"):
        Plan.build(Query("t"), total=5, records_threshold=10_001)


def test_without_a_schema_several_pages_go_to_an_export() -> None:
    plan = Plan.build(Query("t"), total=300, export_formats=["csv"])
    assert plan.route == "export"
    assert "total order" in plan.reason


def test_the_window_is_never_crossed_without_exports() -> None:
    plan = Plan.build(Query("t"), total=RECORDS_MAX_WINDOW, fields=FIELDS)
    assert plan.route == "records"
    assert len(plan.requests) == 100
    assert plan.requests[-1].offset == RECORDS_MAX_WINDOW - RECORDS_MAX_LIMIT
    _window_ok(plan)
    with pytest.raises(InvalidQueryArgument, match="10,000-record window"):
        Plan.build(Query("t"), total=RECORDS_MAX_WINDOW + 1, fields=FIELDS)
    with pytest.raises(InvalidQueryArgument, match="total order"):
        Plan.build(Query("t"), total=500)


@pytest.mark.parametrize("total", [0, 1, 99, 100, 101, 999, 1000, 1001, 9_999, 10_000, 10_001])
def test_no_plan_ever_hits_the_cap(total: int) -> None:
    for threshold in (0, 1_000, RECORDS_MAX_WINDOW):
        plan = Plan.build(
            Query("t"),
            total=total,
            fields=FIELDS,
            export_formats=ALL_FORMATS,
            records_threshold=threshold,
        )
        _window_ok(plan)
        if plan.route == "records":
            assert sum(r.limit or 0 for r in plan.requests) == total


def test_empty_plans() -> None:
    assert Plan.build(Query("t"), total=0).route == "empty"
    plan = Plan.build(Query("t", limit=0), total=10)
    assert plan.route == "empty"
    assert plan.requests == ()
    assert "limit=0" in plan.reason


def test_grouped_queries_send_an_explicit_limit() -> None:
    query = Query("t", group_by="city", select="city, count(*) as n", order_by="n desc")
    plan = Plan.build(query, total=None)
    assert plan.route == "grouped"
    (request,) = plan.requests
    assert request.param("limit") == str(GROUP_BY_MAX_LIMIT)
    assert request.param("group_by") == "city"
    assert Plan.build(query.replace(limit=15), total=None).requests[0].param("limit") == "15"


def test_more_groups_than_the_cap_use_a_grouped_export() -> None:
    query = Query("t", group_by="city", limit=50_000)
    plan = Plan.build(query, total=None, export_formats=["csv"])
    assert plan.route == "export"
    assert plan.requests[0].param("group_by") == "city"
    with pytest.raises(InvalidQueryArgument, match="limit"):
        Plan.build(query, total=None)


def test_a_records_plan_needs_a_count() -> None:
    with pytest.raises(InvalidQueryArgument, match="total"):
        Plan.build(Query("t"), total=None)


def test_count_request_drops_order_and_asks_for_zero_rows() -> None:
    request = count_request(Query("t", where="a > 1", order_by="a"))
    assert request.params == (("limit", "0"), ("where", "a > 1"))


def test_explain_lists_route_reason_and_every_request() -> None:
    plan = Plan.build(Query("t", where={"city": "Paris"}), total=250, fields=ID_FIELDS)
    text = plan.explain(lambda request: f"https://portal.test/{request.describe()}")
    assert "route = records" in text
    assert "Why: 250 records <= records_threshold 1000" in text
    assert "Order: code ASC" in text
    assert 'where = city = "Paris"' in text
    assert text.count("  GET https://portal.test/records?") == 3
    assert "offset=200" in text
    assert "Counted with: GET https://portal.test/records?limit=0" in text
    relative = plan.explain()
    assert "GET records?limit=100&offset=0" in relative
