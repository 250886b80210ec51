"""Search API v1 records search and record lookup of the local portal, over real HTTP.

Shape parity: each real v1 search capture (``../shared/ods-real-fixtures``) is loaded as a
dataset from a temporary folder, and the portal's v1 answer for the same request must give
back the captured records: same record ids, fields, geometries and record timestamps.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import get, ok, v1_error

from odsframe.testing.portal import LocalPortal

SEARCH = "/api/records/1.0/search/"
EVENTS = 300
#: Real v1 search captures of 2022-2024 (the current encodings), by dataset id.
CAPTURES = {
    "parkeerplaatsen": "klaasnicolaas__python-eindhoven__1_parkings.json",
    "parking-voirie-pmr-ville-de-bruxelles": "klaasnicolaas__python-brussel__disabled_parkings.json",
    "bruxelles_parkings_publics": "klaasnicolaas__python-brussel__garages.json",
    "parkings-voitures-hors-voirie": "klaasnicolaas__python-liege__garages.json",
    "namur-parking-emplacements": "klaasnicolaas__python-namur__parking_pmr.json",
    "blue-bike-deelfietsen-gent-dampoort": "klaasnicolaas__python-odp-gent__bluebikes.json",
    "bezetting-parkeergarages-real-time": "klaasnicolaas__python-odp-gent__garages.json",
}


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=EVENTS, api_keys=["v1-key"]) as running:
        yield running


@pytest.fixture(scope="module")
def captured_portal(
    real_fixtures: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPortal]:
    """The real captures served again, each as a dataset (copied to a temporary folder)."""
    folder = tmp_path_factory.mktemp("v1-captures")
    for dataset_id, name in CAPTURES.items():
        shutil.copy(real_fixtures / name, folder / f"{dataset_id}.json")
    with LocalPortal(folder) as running:
        yield running


def search(portal: LocalPortal, **params: Any) -> requests.Response:
    return get(portal, SEARCH, **params)


def v21_total(portal: LocalPortal, where: str) -> int:
    """``total_count`` of the v2.1 records of ``sample-events`` matching ``where``."""
    records = "/api/explore/v2.1/catalog/datasets/sample-events/records"
    return int(ok(portal, records, where=where, limit=0)["total_count"])


def _instants(fields: dict[str, Any]) -> dict[str, Any]:
    """Datetime texts as instants (a real portal may keep a source offset)."""
    out = {}
    for key, value in fields.items():
        if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
            out[key] = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            out[key] = value
    return out


# -- parity with real captures --------------------------------------------------------------


@pytest.mark.parametrize("dataset_id", sorted(CAPTURES))
def test_records_match_the_real_capture(
    captured_portal: LocalPortal, real_fixtures: Path, dataset_id: str
) -> None:
    captured = json.loads((real_fixtures / CAPTURES[dataset_id]).read_text("utf-8"))
    body = ok(captured_portal, SEARCH, dataset=dataset_id, rows=10)
    assert list(body) == ["nhits", "parameters", "records"]
    mine = {record["recordid"]: record for record in body["records"]}
    assert set(mine) == {record["recordid"] for record in captured["records"]}
    for record in captured["records"]:
        answer = mine[record["recordid"]]
        assert list(answer) == list(record)
        assert answer["datasetid"] == record["datasetid"] == dataset_id
        assert _instants(answer["fields"]) == _instants(record["fields"])
        assert answer.get("geometry") == record.get("geometry")
        assert answer["record_timestamp"] == record["record_timestamp"]


def test_parameters_and_facet_groups_match_the_real_capture(
    captured_portal: LocalPortal, real_fixtures: Path
) -> None:
    captured = json.loads((real_fixtures / CAPTURES["parkeerplaatsen"]).read_text("utf-8"))
    body = ok(
        captured_portal,
        SEARCH,
        dataset="parkeerplaatsen",
        rows=10,
        start=0,
        **{"refine.type_en_merk": "Parkeerplaats"},
    )
    assert body["parameters"] == captured["parameters"]
    assert list(body) == list(captured)
    group, real_group = body["facet_groups"][0], captured["facet_groups"][0]
    assert group["name"] == real_group["name"]
    item, real_item = group["facets"][0], real_group["facets"][0]
    assert list(item) == list(real_item)
    assert {k: item[k] for k in ("name", "state", "path")} == {
        k: real_item[k] for k in ("name", "state", "path")
    }
    assert item["count"] == body["nhits"] == 10  # every loaded record has that value


# -- records search on the sample -----------------------------------------------------------


def test_record_shape_and_encodings(portal: LocalPortal) -> None:
    body = ok(portal, SEARCH, dataset="sample-bike-stations", rows=1, timezone="Europe/Paris")
    assert body["nhits"] == 150
    record = body["records"][0]
    assert list(record) == ["datasetid", "recordid", "fields", "geometry", "record_timestamp"]
    fields = record["fields"]
    lon_lat = record["geometry"]["coordinates"]
    assert fields["coordonnees_geo"] == [lon_lat[1], lon_lat[0]]  # [lat, lon]
    assert fields["geo_shape"] == {"type": "Point", "coordinates": lon_lat}  # bare geometry
    assert record["geometry"]["type"] == "Point"
    assert record["record_timestamp"] == "2024-06-01T10:00:00+02:00"
    assert fields["duedate"].endswith("+02:00")
    assert body["parameters"]["timezone"] == "Europe/Paris"


def test_null_fields_are_left_out_and_ids_match_v21(portal: LocalPortal) -> None:
    body = ok(portal, SEARCH, dataset="sample-events", q="free:true", rows=5, sort="-duration_min")
    assert body["nhits"] > 0
    v21 = ok(
        portal,
        "/api/explore/v2.1/catalog/datasets/sample-events/records",
        where="free IS TRUE",
        order_by="duration_min ASC",
        include_links="true",
        limit=5,
    )["results"]
    assert [r["recordid"] for r in body["records"]] == [r["_id"] for r in v21]
    for record, flat in zip(body["records"], v21, strict=True):
        assert "price" not in record["fields"]  # null in v2.1
        present = {k: v for k, v in flat.items() if not k.startswith("_") and v is not None}
        assert set(record["fields"]) == set(present)
        assert record["fields"]["title"] == flat["title"]


def test_rows_start_and_sort(portal: LocalPortal) -> None:
    first = ok(portal, SEARCH, dataset="sample-events", rows=20, sort="duration_min,-title")
    durations = [r["fields"]["duration_min"] for r in first["records"]]
    assert durations == sorted(durations, reverse=True)  # v1 sorts descending by default
    ties = [
        r["fields"]["title"]
        for r in first["records"]
        if r["fields"]["duration_min"] == durations[0]
    ]
    assert ties == sorted(ties)  # "-title": ascending
    second = ok(
        portal, SEARCH, dataset="sample-events", rows=10, start=10, sort="duration_min,-title"
    )
    assert second["records"] == first["records"][10:]
    assert first["parameters"]["sort"] == ["duration_min", "-title"]
    none = ok(portal, SEARCH, dataset="sample-events", rows=0)
    assert none["records"] == [] and none["nhits"] == EVENTS


def test_sort_on_record_timestamp_and_fields_selection(portal: LocalPortal) -> None:
    body = ok(
        portal,
        SEARCH,
        dataset="sample-trees",
        rows=3,
        sort="record_timestamp",
        fields="idbase,hauteur_m",
    )
    assert [set(r["fields"]) <= {"idbase", "hauteur_m"} for r in body["records"]] == [True] * 3
    assert "geometry" not in body["records"][0]  # no geo field selected
    assert body["parameters"]["fields"] == "idbase,hauteur_m"


def test_q_language(portal: LocalPortal) -> None:
    def hits(q: str) -> int:
        return int(ok(portal, SEARCH, dataset="sample-events", q=q, rows=0)["nhits"])

    assert hits("category:Concert") == v21_total(portal, 'category = "Concert"') > 0
    assert hits("duration_min >= 90 AND NOT category:Concert") == v21_total(
        portal, 'duration_min >= 90 AND NOT category = "Concert"'
    )
    assert hits("category:Concert OR category:Danse") == v21_total(
        portal, 'category IN ("Concert", "Danse")'
    )
    assert hits("start:[2022 TO 2022]") == v21_total(portal, "year(start) = 2022") > 0
    assert hits("start >= 2024/01/01") == v21_total(portal, "start >= date'2024-01-01'")
    assert hits("#null(attendance)") == v21_total(portal, "attendance IS NULL") > 0
    assert hits('#exact(venue, "Pavillon Bercy 3")') == v21_total(
        portal, 'venue = "Pavillon Bercy 3"'
    )
    assert 0 < hits("jardin") < EVENTS  # words: prefix full text


def test_several_q_are_anded(portal: LocalPortal) -> None:
    both = ok(portal, SEARCH, dataset="sample-events", q=["category:Concert", "free:false"], rows=0)
    one = ok(portal, SEARCH, dataset="sample-events", q="category:Concert AND free:false", rows=0)
    assert both["nhits"] == one["nhits"] > 0
    assert both["parameters"]["q"] == ["category:Concert", "free:false"]


def test_refine_exclude_and_disjunctive(portal: LocalPortal) -> None:
    one = ok(portal, SEARCH, dataset="sample-events", rows=0, **{"refine.category": "Concert"})
    two = requests.get(
        portal.url + SEARCH,
        params=[
            ("dataset", "sample-events"),
            ("rows", "0"),
            ("refine.category", "Concert"),
            ("refine.category", "Danse"),
            ("facet", "category"),
        ],
        timeout=30,
    ).json()
    # category carries the disjunctive annotation: two refines are OR-ed
    danse = ok(portal, SEARCH, dataset="sample-events", rows=0, **{"refine.category": "Danse"})
    assert two["nhits"] == one["nhits"] + danse["nhits"]
    assert two["parameters"]["refine"] == {"category": ["Concert", "Danse"]}
    states = {item["path"]: item["state"] for item in two["facet_groups"][0]["facets"]}
    assert states["Concert"] == states["Danse"] == "refined"
    assert "displayed" in states.values()  # disjunctive: the other values stay
    excluded = ok(
        portal, SEARCH, dataset="sample-events", rows=0, **{"exclude.category": "Concert"}
    )
    assert excluded["nhits"] == EVENTS - one["nhits"]
    excluded_item = excluded["facet_groups"][0]["facets"][-1]
    assert excluded_item == {"name": "Concert", "state": "excluded", "path": "Concert"}
    theme = ok(portal, SEARCH, dataset="sample-events", rows=0, **{"refine.theme": "Musique"})
    tree = theme["facet_groups"][0]["facets"][0]
    assert tree["path"] == "Musique" and tree["state"] == "refined"
    assert {child["path"].split("/")[0] for child in tree["facets"]} == {"Musique"}


def test_facets_dates_and_facetsort(portal: LocalPortal) -> None:
    body = ok(
        portal,
        SEARCH,
        dataset="sample-events",
        rows=0,
        facet=["start", "category"],
        **{"facetsort.category": "alphanum", "refine.start": "2022"},
    )
    groups = {group["name"]: group["facets"] for group in body["facet_groups"]}
    year = next(item for item in groups["start"] if item["path"] == "2022")
    assert year["state"] == "refined"
    assert [child["path"] for child in year["facets"]][:1] == ["2022/01"]
    names = [item["name"] for item in groups["category"]]
    assert names == sorted(names)
    assert body["parameters"]["facet"] == ["start", "category"]


def test_geofilters(portal: LocalPortal) -> None:
    def hits(**params: str) -> int:
        return int(ok(portal, SEARCH, dataset="sample-events", rows=0, **params)["nhits"])

    assert (
        hits(**{"geofilter.distance": "48.86,2.35,2000"})
        == v21_total(portal, "within_distance(location, geom'POINT(2.35 48.86)', 2000m)")
        > 0
    )
    assert (
        hits(**{"geofilter.bbox": "48.84,2.30,48.88,2.38"})
        == v21_total(portal, "in_bbox(location, 48.84, 2.30, 48.88, 2.38)")
        > 0
    )
    polygon = "(48.84,2.30),(48.88,2.30),(48.88,2.38),(48.84,2.38)"
    assert hits(**{"geofilter.polygon": polygon}) == hits(
        **{"geofilter.bbox": "48.84,2.30,48.88,2.38"}
    )


def test_record_lookup(portal: LocalPortal) -> None:
    page = ok(portal, SEARCH, dataset="sample-trees", rows=1)["records"][0]
    body = ok(portal, f"/api/datasets/1.0/sample-trees/records/{page['recordid']}/")
    assert body == page
    v1_error(
        requests.get(f"{portal.url}/api/datasets/1.0/sample-trees/records/{'0' * 40}/", timeout=30),
        404,
    )


def test_api_key_opens_restricted_datasets(portal: LocalPortal) -> None:
    v1_error(search(portal, dataset="sample-budget-restricted"), 401)
    body = ok(portal, SEARCH, dataset="sample-budget-restricted", rows=1, apikey="v1-key")
    assert body["nhits"] == 60


def test_pretty_print(portal: LocalPortal) -> None:
    answer = search(portal, dataset="sample-districts", rows=1, pretty_print="true")
    assert answer.text.startswith('{\n  "nhits": 20')


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 400, "dataset"),
        ({"dataset": "nope"}, 404, "nope"),
        ({"dataset": "sample-events", "rows": -1}, 400, "rows"),
        ({"dataset": "sample-events", "rows": 10001}, 400, "rows"),
        ({"dataset": "sample-events", "start": 9995, "rows": 10}, 400, "start + rows"),
        ({"dataset": "sample-events", "rows": "ten"}, 400, "rows"),
        ({"dataset": "sample-events", "sort": "venue"}, 400, "sortable"),
        ({"dataset": "sample-events", "sort": "nofield"}, 400, "nofield"),
        ({"dataset": "sample-events", "q": 'title:"unclosed'}, 400, "q"),
        ({"dataset": "sample-events", "q": "#distance(location, 1)"}, 400, "#distance"),
        ({"dataset": "sample-events", "fields": "nofield"}, 400, "nofield"),
        ({"dataset": "sample-events", "facet": "location"}, 400, "facet"),
        ({"dataset": "sample-events", "geofilter.distance": "48.8"}, 400, "geofilter.distance"),
        ({"dataset": "sample-events", "geofilter.bbox": "1,2,3"}, 400, "geofilter.bbox"),
        ({"dataset": "sample-events", "timezone": "Nowhere/Land"}, 400, "timezone"),
        ({"dataset": "sample-events", "format": "rss"}, 400, "format"),
        ({"dataset": ["sample-events", "sample-trees"]}, 400, "dataset"),
    ],
)
def test_errors_have_the_v1_body(
    portal: LocalPortal, params: dict[str, Any], status: int, fragment: str
) -> None:
    assert fragment in v1_error(search(portal, **params), status)


# -- POST -----------------------------------------------------------------------------------


def test_post_with_a_form_body_answers_as_get(portal: LocalPortal) -> None:
    params = {
        "dataset": "sample-events",
        "q": "category:Concert AND price>20",
        "rows": "7",
        "sort": "-price",
        "facet": "category",
    }
    by_get = search(portal, **params).json()
    by_post = requests.post(f"{portal.url}{SEARCH}", data=params, timeout=30)
    assert by_post.status_code == 200, by_post.text
    assert by_post.json() == by_get
    assert by_post.json()["nhits"] > 7
    # URL and body parameters add up; a long q fits in a body
    mixed = requests.post(
        f"{portal.url}{SEARCH}?dataset=sample-events", data={"rows": "3"}, timeout=30
    ).json()
    assert len(mixed["records"]) == 3
    long_q = " OR ".join(f"event_id:EV-{i:07d}" for i in range(1, 400))
    assert len(long_q) > 8_000
    answer = requests.post(
        f"{portal.url}{SEARCH}", data={"dataset": "sample-events", "q": long_q}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    expected = v21_total(portal, "event_id >= 'EV-0000001' AND event_id <= 'EV-0000399'")
    assert expected > 0 and answer.json()["nhits"] == expected


def test_post_carries_the_api_key_and_checks_its_body(portal: LocalPortal) -> None:
    private = {"dataset": "sample-budget-restricted", "rows": "1"}
    denied = requests.post(f"{portal.url}{SEARCH}", data=private, timeout=30)
    v1_error(denied, 401)
    allowed = requests.post(f"{portal.url}{SEARCH}", data={**private, "apikey": "v1-key"})
    assert allowed.status_code == 200 and allowed.json()["nhits"] > 0
    as_json = requests.post(f"{portal.url}{SEARCH}", json=private, timeout=30)
    assert "form-encoded" in v1_error(as_json, 400)
    v21 = requests.post(f"{portal.url}/api/explore/v2.1/catalog/datasets", timeout=30)
    assert v21.status_code == 405  # v2.x is GET only
