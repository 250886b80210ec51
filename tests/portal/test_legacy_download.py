"""The legacy download route ``/explore/dataset/<id>/download/`` (v1 parameters and formats)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
STATIONS = "sample-bike-stations"
KEY = "legacy-key"
#: A legacy CSV point: ``lat,lon`` without a space, 12 significant digits at most.
LEGACY_POINT = re.compile(r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?$")


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=500, api_keys=[KEY]) as running:
        yield running


@pytest.fixture(scope="module")
def stations(portal: LocalPortal) -> list[dict[str, Any]]:
    """The stations as v2.1 records with their ids (``include_links``)."""
    records: list[dict[str, Any]] = []
    for offset in (0, 100):
        answer = requests.get(
            f"{portal.url}{V21}/catalog/datasets/{STATIONS}/records",
            params={"limit": 100, "offset": offset, "include_links": "true"},
            timeout=30,
        )
        assert answer.status_code == 200
        records += answer.json()["results"]
    assert len(records) == 150
    return records


def download(portal: LocalPortal, dataset: str = STATIONS, **params: Any) -> requests.Response:
    answer = requests.get(
        f"{portal.url}/explore/dataset/{dataset}/download/", params=params, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return answer


def rows(body: bytes, separator: str = ";") -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline=""), delimiter=separator))


def test_csv_is_the_default_format(portal: LocalPortal, stations: list[dict[str, Any]]) -> None:
    answer = download(portal)
    table = rows(answer.content)

    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert not answer.content.startswith(b"\xef\xbb\xbf")
    assert answer.content.split(b"\r\n")[0] == (
        b"stationcode;name;capacity;numbikesavailable;numdocksavailable;mechanical;ebike;"
        b"is_installed;commune;payment;opened_on;duedate;coordonnees_geo;geo_shape"
    )
    assert len(table) == 151
    for record, row in zip(stations, table[1:]):
        cells = dict(zip(table[0], row))
        assert cells["stationcode"] == record["stationcode"]
        assert cells["capacity"] == str(record["capacity"])
        point = record["coordonnees_geo"]
        assert LEGACY_POINT.match(cells["coordonnees_geo"])
        assert cells["coordonnees_geo"] == f"{point['lat']:.12g},{point['lon']:.12g}"
        assert json.loads(cells["geo_shape"]) == record["geo_shape"]["geometry"]
        assert cells["payment"] == ",".join(record["payment"])


def test_csv_with_labels_and_another_separator(portal: LocalPortal) -> None:
    """What odsclient asks for (``use_labels_for_header=True``, ``csv_separator=;``), and ``,``."""
    labelled = download(portal, use_labels_for_header="true").content.split(b"\r\n")[0]
    assert labelled.decode("utf-8").startswith("Code station;Nom station;Capacité;")
    assert labelled.decode("utf-8").endswith(";Coordonnées géographiques;Geo Shape")

    table = rows(download(portal, csv_separator=",", fields="stationcode,payment").content, ",")
    assert table[0] == ["stationcode", "payment"]
    assert any("," in row[1] for row in table[1:])  # multivalued cells were quoted


def test_json_gives_v1_records(portal: LocalPortal, stations: list[dict[str, Any]]) -> None:
    exported = download(portal, format="json", timezone="Europe/Paris").json()

    assert len(exported) == len(stations)
    for record, v1 in zip(stations, exported):
        assert list(v1) == ["datasetid", "recordid", "fields", "geometry", "record_timestamp"]
        assert v1["datasetid"] == STATIONS
        assert v1["recordid"] == record["_id"]
        point = record["coordonnees_geo"]
        assert v1["fields"]["coordonnees_geo"] == [point["lat"], point["lon"]]
        assert v1["fields"]["geo_shape"] == record["geo_shape"]["geometry"]
        assert v1["geometry"] == record["geo_shape"]["geometry"]
        assert v1["record_timestamp"] == "2024-06-01T10:00:00+02:00"
        assert v1["fields"]["duedate"][-6:] in ("+01:00", "+02:00")
        fields = {
            key: value
            for key, value in record.items()
            if not key.startswith("_") and value is not None
        }
        assert set(v1["fields"]) == set(fields)


def test_json_leaves_out_null_fields_and_missing_geometry(portal: LocalPortal) -> None:
    exported = download(portal, "sample-trees", format="json", q="#null(photo)").json()

    assert exported and all("photo" not in record["fields"] for record in exported)
    assert all(record["geometry"]["type"] == "Point" for record in exported)
    no_geo = download(portal, "sample-trees", format="json", fields="idbase,espece").json()
    assert all("geometry" not in record for record in no_geo)
    assert list(no_geo[0]["fields"]) == ["idbase", "espece"]


def test_geojson_is_a_v1_feature_collection(portal: LocalPortal) -> None:
    body = download(portal, "sample-districts", format="geojson").content
    collection = json.loads(body)

    assert body.startswith(b'{"type":"FeatureCollection","features":[{"type": "Feature", ')
    assert len(collection["features"]) == 20
    feature = collection["features"][0]
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert "geom" not in feature["properties"]
    lat, lon = feature["properties"]["geom_x_y"]
    assert 48.8 < lat < 48.95 and 2.2 < lon < 2.5


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"q": "commune:Paris"}, lambda r: r["commune"] == "Paris"),
        (
            {"q": "capacity>=40 AND NOT commune:Paris"},
            lambda r: r["capacity"] >= 40 and r["commune"] != "Paris",
        ),
        ({"q": "capacity:[20 TO 25]"}, lambda r: 20 <= r["capacity"] <= 25),
        ({"q": "opened_on >= 2023/06"}, lambda r: r["opened_on"] >= "2023-06"),
        (
            {"q": "(commune:Pantin OR commune:Montreuil) capacity<30"},
            lambda r: r["commune"] in ("Pantin", "Montreuil") and r["capacity"] < 30,
        ),
        (
            {"q": '#exact(commune, "Boulogne-Billancourt")'},
            lambda r: r["commune"] == "Boulogne-Billancourt",
        ),
        ({"q": "payment:Navigo"}, lambda r: "Navigo" in r["payment"]),
        ({"refine.commune": "Paris"}, lambda r: r["commune"] == "Paris"),
        ({"exclude.commune": "Paris"}, lambda r: r["commune"] != "Paris"),
        (
            {"refine.commune": ["Pantin", "Montreuil"], "disjunctive.commune": "true"},
            lambda r: r["commune"] in ("Pantin", "Montreuil"),
        ),
    ],
)
def test_v1_filters(
    portal: LocalPortal,
    stations: list[dict[str, Any]],
    params: dict[str, Any],
    keep: Callable[[dict[str, Any]], bool],
) -> None:
    exported = download(portal, format="json", **params).json()
    expected = [record["_id"] for record in stations if keep(record)]

    assert expected
    assert [record["recordid"] for record in exported] == expected


def test_full_text_q_matches_word_prefixes(
    portal: LocalPortal, stations: list[dict[str, Any]]
) -> None:
    exported = download(portal, format="json", q="vaugir").json()

    assert exported
    assert {r["recordid"] for r in exported} == {
        r["_id"] for r in stations if "vaugir" in r["name"].lower()
    }


def test_geofilter_distance(portal: LocalPortal, stations: list[dict[str, Any]]) -> None:
    import math

    def metres(point: dict[str, float]) -> float:
        lat1, lon1, lat2, lon2 = map(math.radians, (48.8566, 2.3522, point["lat"], point["lon"]))
        a = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * 6371008.7714 * math.asin(math.sqrt(a))

    exported = download(portal, format="json", **{"geofilter.distance": "48.8566,2.3522,2500"})
    inside = {r["_id"] for r in stations if metres(r["coordonnees_geo"]) < 2490}
    outside = {r["_id"] for r in stations if metres(r["coordonnees_geo"]) > 2510}
    got = {r["recordid"] for r in exported.json()}
    assert inside <= got and not got & outside


def test_v1_geo_functions_in_q(portal: LocalPortal, stations: list[dict[str, Any]]) -> None:
    by_param = download(portal, format="json", **{"geofilter.distance": "48.8566,2.3522,2500"})
    by_function = download(
        portal, format="json", q='#distance(coordonnees_geo, "48.8566, 2.3522", 2500)'
    )
    expected = {r["recordid"] for r in by_param.json()}
    assert expected and {r["recordid"] for r in by_function.json()} == expected

    polygon = '#polygon(coordonnees_geo, "(48.85,2.30),(48.85,2.40),(48.89,2.40),(48.89,2.30)")'
    got = {r["recordid"] for r in download(portal, format="json", q=polygon).json()}
    inside = {
        r["_id"]
        for r in stations
        if 48.85 < r["coordonnees_geo"]["lat"] < 48.89 and 2.30 < r["coordonnees_geo"]["lon"] < 2.40
    }
    assert inside and got == inside
    both = download(portal, format="json", q=f"{polygon} AND commune:Paris").json()
    assert {r["recordid"] for r in both} == {
        r["_id"] for r in stations if r["_id"] in inside and r["commune"] == "Paris"
    }


@pytest.mark.parametrize(
    ("q", "expect_all"),
    [
        ("opened_on >= #now(years=-100)", True),
        ("opened_on > #now(years=10)", False),
        ("opened_on <= #NOW(weeks=-2, weekday=MO(1))", True),
        ("duedate < #now(hours=1, minute=0)", True),
    ],
)
def test_v1_now_as_a_date_value(
    portal: LocalPortal, stations: list[dict[str, Any]], q: str, expect_all: bool
) -> None:
    field = q.split()[0]
    exported = download(portal, format="json", q=q).json()
    dated = {r["_id"] for r in stations if r.get(field) is not None}
    assert dated
    assert {r["recordid"] for r in exported} == (dated if expect_all else set())


def test_api_key_opens_restricted_datasets(
    portal: LocalPortal, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    url = f"{portal.url}/explore/dataset/sample-budget-restricted/download"
    ods_error(requests.get(url, timeout=30), 401, "Unauthorized")
    ods_error(requests.get(url, params={"apikey": "wrong"}, timeout=30), 401, "Unauthorized")
    table = rows(requests.get(url, params={"apikey": KEY}, timeout=30).content)
    assert len(table) == 61


@pytest.mark.parametrize(
    ("params", "status", "error_code", "detail"),
    [
        ({"format": "xls"}, 400, "InvalidRESTParameterError", "'xls'"),
        ({"csv_separator": ";;"}, 400, "InvalidRESTParameterError", "csv_separator"),
        ({"timezone": "Mars/Base"}, 400, "InvalidRESTParameterError", "timezone"),
        ({"q": "#now(days=-1)"}, 400, "InvalidRESTParameterError", "#now()"),
        ({"q": '#geometry(geo_shape, "polygon")'}, 400, "InvalidRESTParameterError", "#geometry"),
        ({"q": '#distance(name, "48.8, 2.3", 10)'}, 400, "InvalidRESTParameterError", "geo field"),
        (
            {"q": '#distance(coordonnees_geo, "48.8", 10)'},
            400,
            "InvalidRESTParameterError",
            "lat,lon is expected",
        ),
        (
            {"q": "#distance(coordonnees_geo, 48.8, 10)"},
            400,
            "InvalidRESTParameterError",
            "written",
        ),
        (
            {"q": '#polygon(coordonnees_geo, "(48.8,2.3),(48.9,2.4)")'},
            400,
            "InvalidRESTParameterError",
            "three",
        ),
        ({"q": "opened_on > #now(days=x)"}, 400, "InvalidRESTParameterError", "integer"),
        ({"q": "opened_on > #now(2)"}, 400, "InvalidRESTParameterError", "named"),
        ({"q": '"unclosed'}, 400, "InvalidRESTParameterError", "unclosed quote"),
        ({"q": "(commune:Paris"}, 400, "InvalidRESTParameterError", "parenthesis"),
        ({"q": "capacity>many"}, 400, "InvalidRESTParameterError", "number"),
        ({"fields": "stationcode,nope"}, 400, "InvalidRESTParameterError", "nope"),
        ({"refine.nope": "x"}, 400, "ODSQLError", "nope"),
        ({"geofilter.distance": "48.8,2.3"}, 400, "InvalidRESTParameterError", "lat,lon,distance"),
        ({"use_labels_for_header": "perhaps"}, 400, "InvalidRESTParameterError", "boolean"),
    ],
)
def test_bad_legacy_parameters(
    portal: LocalPortal,
    ods_error: Callable[[requests.Response, int, str], dict[str, Any]],
    params: dict[str, Any],
    status: int,
    error_code: str,
    detail: str,
) -> None:
    answer = requests.get(
        f"{portal.url}/explore/dataset/{STATIONS}/download/", params=params, timeout=30
    )
    assert detail in ods_error(answer, status, error_code)["message"]


def test_unknown_dataset_with_and_without_trailing_slash(
    portal: LocalPortal, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    for suffix in ("download", "download/"):
        answer = requests.get(f"{portal.url}/explore/dataset/nope/{suffix}", timeout=30)
        ods_error(answer, 404, "NotFound")
    assert requests.get(f"{portal.url}/explore/dataset/{STATIONS}/download", timeout=30).ok
