"""Facets (``/catalog/datasets/{id}/facets`` and ``/catalog/facets``) over real HTTP.

Every expected count is computed here, in Python, from the records of the JSON export of the
same portal, so the facets (DuckDB ``GROUP BY``) are checked against an independent count.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
EVENTS = "sample-events"
FANTOIR = "nasqueron__datasources__catalog_dataset_fantoir.json"
FANTOIR_FACETS = "nasqueron__datasources__catalog_dataset_fantoir_facets.json"


@pytest.fixture(scope="module")
def sample_portal(
    tmp_path_factory: pytest.TempPathFactory, real_fixtures: Path
) -> Iterator[LocalPortal]:
    """The sample datasets (3 000 events) plus the real attachment-only fantoir dataset."""
    folder = tmp_path_factory.mktemp("facets")
    shutil.copyfile(real_fixtures / FANTOIR, folder / "fantoir.schema.json")
    with LocalPortal(data_dir=folder, sample=True, sample_records=3000) as running:
        yield running


@pytest.fixture(scope="module")
def datasets_url(sample_portal: LocalPortal) -> str:
    return f"{sample_portal.url}{V21}/catalog/datasets"


@pytest.fixture(scope="module")
def events(datasets_url: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{datasets_url}/{EVENTS}/exports/json", timeout=60)
    assert answer.status_code == 200
    records: list[dict[str, Any]] = answer.json()
    assert len(records) == 3000
    return records


def facets(datasets_url: str, dataset: str = EVENTS, **params: Any) -> dict[str, list[Any]]:
    answer = requests.get(f"{datasets_url}/{dataset}/facets", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"_links", "facets"}
    return {group["name"]: group["facets"] for group in body["facets"]}


def by_count(counter: Counter[str]) -> list[tuple[str, int]]:
    """Values by count, descending, ties by value: the default facet order."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def items(values: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(value["value"], value["count"]) for value in values]


def test_default_facets_are_the_annotated_fields_in_schema_order(
    datasets_url: str, events: list[dict[str, Any]], validate: Callable[[Any, str], None]
) -> None:
    groups = facets(datasets_url)

    assert list(groups) == ["category", "theme", "start", "tags", "arrondissement"]
    assert items(groups["category"]) == by_count(Counter(e["category"] for e in events))
    for group in groups.values():
        for value in group:
            assert value["state"] == "displayed"
            validate(value, "facet_value_enumeration")


def test_multivalued_facet_counts_each_record_once_per_value(
    datasets_url: str, events: list[dict[str, Any]]
) -> None:
    expected = Counter(tag for e in events for tag in set(e["tags"] or []))

    assert items(facets(datasets_url, facet="tags")["tags"]) == by_count(expected)


def test_disjunctive_facet_ignores_its_own_refines(
    datasets_url: str, events: list[dict[str, Any]]
) -> None:
    groups = facets(datasets_url, refine=["category:Danse", 'category:"Concert"'])

    # category is disjunctive: every value stays, with its unfiltered count
    assert items(groups["category"]) == by_count(Counter(e["category"] for e in events))
    states = {value["value"]: value["state"] for value in groups["category"]}
    assert {v for v, state in states.items() if state == "refined"} == {"Danse", "Concert"}
    # the other facets count the records of either category
    chosen = [e for e in events if e["category"] in ("Danse", "Concert")]
    assert items(groups["arrondissement"]) == by_count(Counter(e["arrondissement"] for e in chosen))


def test_conjunctive_facet_keeps_only_the_refined_value(
    datasets_url: str, events: list[dict[str, Any]]
) -> None:
    groups = facets(datasets_url, refine="arrondissement:75011")
    count = sum(e["arrondissement"] == "75011" for e in events)

    assert groups["arrondissement"] == [
        {"name": "75011", "count": count, "state": "refined", "value": "75011"}
    ]
    assert sum(value["count"] for value in groups["category"]) == count


def test_facet_function_makes_a_facet_disjunctive(
    datasets_url: str, events: list[dict[str, Any]]
) -> None:
    groups = facets(
        datasets_url,
        facet=['facet(name="arrondissement", disjunctive=true)', "category"],
        refine=["arrondissement:75011", "arrondissement:75012"],
    )

    assert list(groups) == ["arrondissement", "category"]
    assert items(groups["arrondissement"]) == by_count(Counter(e["arrondissement"] for e in events))
    chosen = [e for e in events if e["arrondissement"] in ("75011", "75012")]
    assert items(groups["category"]) == by_count(Counter(e["category"] for e in chosen))


def test_excluded_values_come_without_count(
    datasets_url: str, events: list[dict[str, Any]]
) -> None:
    groups = facets(datasets_url, facet="category", exclude="category:Danse")
    kept = Counter(e["category"] for e in events if e["category"] != "Danse")

    assert groups["category"][:-1] == [
        {"name": value, "count": count, "state": "displayed", "value": value}
        for value, count in by_count(kept)
    ]
    assert groups["category"][-1] == {"name": "Danse", "state": "excluded", "value": "Danse"}


def test_where_filters_the_counts(datasets_url: str, events: list[dict[str, Any]]) -> None:
    groups = facets(datasets_url, facet="category", where="duration_min >= 90")
    chosen = [e for e in events if e["duration_min"] is not None and e["duration_min"] >= 90]

    assert items(groups["category"]) == by_count(Counter(e["category"] for e in chosen))


def test_sort_and_limit(datasets_url: str, events: list[dict[str, Any]]) -> None:
    groups = facets(
        datasets_url,
        facet=[
            'facet(name="arrondissement", sort="alphanum", limit=3)',
            'facet(name="category", sort="-alphanum")',
            'facet(name="tags", sort="count")',
        ],
    )

    arrondissements = sorted({e["arrondissement"] for e in events})[:3]
    assert [value["value"] for value in groups["arrondissement"]] == arrondissements
    assert [value["value"] for value in groups["category"]] == sorted(
        {e["category"] for e in events}, reverse=True
    )
    counts = [value["count"] for value in groups["tags"]]
    assert counts == sorted(counts)


def local_start(event: dict[str, Any], zone: str) -> datetime:
    return datetime.fromisoformat(event["start"]).astimezone(ZoneInfo(zone))


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Auckland"])
def test_date_facet_is_a_tree_in_the_request_timezone(
    datasets_url: str, events: list[dict[str, Any]], zone: str
) -> None:
    years = Counter(f"{local_start(e, zone):%Y}" for e in events)

    top = facets(datasets_url, facet="start", timezone=zone)["start"]
    assert items(top) == sorted(years.items())  # dates sort alphanum by default
    assert all("facets" not in value for value in top)

    refined = facets(datasets_url, facet="start", timezone=zone, refine="start:2023")["start"]
    assert refined[0]["value"] == "2023" and refined[0]["state"] == "refined"
    months = Counter(
        f"{local_start(e, zone):%Y/%m}" for e in events if local_start(e, zone).year == 2023
    )
    assert [(m["name"], m["value"], m["count"]) for m in refined[0]["facets"]] == [
        (value[-2:], value, count) for value, count in sorted(months.items())
    ]
    assert sum(m["count"] for m in refined[0]["facets"]) == refined[0]["count"] == years["2023"]


def test_refining_a_month_shows_its_days(datasets_url: str, events: list[dict[str, Any]]) -> None:
    tree = facets(datasets_url, facet="start", refine="start:2022/03", timezone="Europe/Paris")
    year = tree["start"][0]
    month = year["facets"][0]
    days = Counter(
        f"{local_start(e, 'Europe/Paris'):%Y/%m/%d}"
        for e in events
        if f"{local_start(e, 'Europe/Paris'):%Y/%m}" == "2022/03"
    )

    assert (year["value"], year["state"], month["value"], month["state"]) == (
        "2022",
        "refined",
        "2022/03",
        "refined",
    )
    assert [(d["value"], d["count"]) for d in month["facets"]] == sorted(days.items())


def test_hierarchical_facet_is_a_path_tree(datasets_url: str, events: list[dict[str, Any]]) -> None:
    top = facets(datasets_url, facet="theme")["theme"]
    assert items(top) == by_count(Counter(e["theme"].split("/")[0] for e in events))

    refined = facets(datasets_url, facet="theme", refine="theme:Musique")["theme"]
    music = [e["theme"] for e in events if e["theme"].startswith("Musique/")]
    assert refined[0]["value"] == "Musique" and refined[0]["state"] == "refined"
    assert [(v["name"], v["value"], v["count"]) for v in refined[0]["facets"]] == [
        (value.split("/")[1], value, count) for value, count in by_count(Counter(music))
    ]


def test_date_field_facet_on_a_date_type(datasets_url: str) -> None:
    records = requests.get(f"{datasets_url}/sample-trees/exports/json", timeout=60).json()
    years = Counter(r["date_plantation"][:4] for r in records if r["date_plantation"])

    groups = facets(datasets_url, "sample-trees", facet="date_plantation")
    assert items(groups["date_plantation"]) == sorted(years.items())


def test_dataset_without_records_has_no_facets(datasets_url: str, real_fixtures: Path) -> None:
    """As the real attachment-only fantoir dataset answers (``"facets": []``)."""
    real = json.loads((real_fixtures / FANTOIR_FACETS).read_text(encoding="utf-8"))
    answer = requests.get(f"{datasets_url}/fantoir/facets")

    assert answer.status_code == 200
    assert answer.json()["facets"] == real["facets"] == []


def test_catalog_facets(sample_portal: LocalPortal) -> None:
    url = f"{sample_portal.url}{V21}/catalog/facets"
    groups = {g["name"]: g["facets"] for g in requests.get(url, timeout=60).json()["facets"]}
    datasets = requests.get(
        f"{sample_portal.url}{V21}/catalog/datasets", params={"limit": 100}, timeout=60
    ).json()["results"]

    features = Counter(f for d in datasets for f in d["features"])
    assert items(groups["features"]) == by_count(features)
    assert "sample-budget-restricted" not in {d["dataset_id"] for d in datasets}
    publishers = Counter(d["metas"]["default"].get("publisher") for d in datasets)
    publishers.pop(None, None)
    assert items(groups["publisher"]) == by_count(publishers)
    refined = {
        g["name"]: g["facets"]
        for g in requests.get(url, params={"refine": "features:geo"}, timeout=60).json()["facets"]
    }
    assert sum(v["count"] for v in refined["features"] if v["value"] == "geo") == features["geo"]


@pytest.mark.parametrize(
    ("params", "error_code", "detail"),
    [
        ({"facet": "nope"}, "ODSQLError", "Unknown field: nope"),
        ({"facet": "location"}, "ODSQLError", "cannot be a facet"),
        ({"facet": 'facet(name="category", sort="num")'}, "ODSQLError", "Invalid sort 'num'"),
        ({"facet": 'facet(name="category", size=3)'}, "ODSQLError", "Unknown facet() argument"),
        ({"facet": 'facet(name="category", limit=0)'}, "ODSQLError", "positive integer"),
        ({"facet": "facet(name="}, "ODSQLError", "Clause(s) containing the error(s): facet."),
        ({"refine": "category"}, "ODSQLError", "refine"),
        ({"where": "duration_min >"}, "ODSQLError", "where"),
        ({"timezone": "Nowhere/Land"}, "InvalidRESTParameterError", "timezone"),
        ({"lang": "klingon"}, "InvalidRESTParameterError", "lang"),
    ],
)
def test_bad_facet_requests_get_an_ods_error(
    datasets_url: str,
    ods_error: Callable[[requests.Response, int, str], dict[str, Any]],
    params: dict[str, Any],
    error_code: str,
    detail: str,
) -> None:
    answer = requests.get(f"{datasets_url}/{EVENTS}/facets", params=params, timeout=60)
    assert detail in ods_error(answer, 400, error_code)["message"]


def test_facets_of_unknown_and_restricted_datasets(
    datasets_url: str, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    ods_error(requests.get(f"{datasets_url}/nope/facets", timeout=60), 404, "NotFound")
    ods_error(
        requests.get(f"{datasets_url}/sample-budget-restricted/facets", timeout=60),
        401,
        "Unauthorized",
    )
