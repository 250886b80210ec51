"""The portal's catalog loader: real ODS exports, type inference, storage, record ids."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from odsframe._spec import FIELD_TYPES
from odsframe.testing.catalog import (
    CATALOG_FIELDS,
    DEFAULT_META_KEYS,
    Catalog,
    DataFileError,
    convert_annotations,
    dataset_uid,
    header_names,
    infer_column,
    infer_strings,
    slugify,
    sniff_delimiter,
    table_name,
)
from odsframe.testing.errors import NotFoundError
from odsframe.testing.model import PortalDataset, PortalField

FIXTURE_PREFIX = {
    "fontaines_v21": "Pigura1__test-technique-__fontaines-a-boire",
    "stations_v2x": "AmmarSo__VelibIDFExplorer__velib-emplacement-des-stations",
    "velib_v1_export": "hosuaby__bug-elasticsearch-collapse-rescore__velib-disponibilite-en-temps-reel",
    "fontaines_geojson": "TasnimeLouartani__labchapelle.github.io__fontaines-a-boire",
    "arrondissements_v1_geojson": "mastersigat__data__arrondissements",
}


def query(catalog: Catalog, sql: str) -> list[dict[str, Any]]:
    """Rows as dicts (through arrow: fetchall on TIMESTAMPTZ would need pytz)."""
    return catalog.con.sql(sql).to_arrow_table().to_pylist()


def types_of(dataset: PortalDataset) -> dict[str, str]:
    return {f.name: f.type for f in dataset.fields}


@pytest.fixture(scope="session")
def fixture_catalog(real_fixtures: Path) -> Catalog:
    """Every file of the real-fixtures folder, loaded in place."""
    return Catalog.from_folder(real_fixtures)


# --------------------------------------------------------------------------------------
# Real exports: inferred types and row counts

# dataset id (file name without extension) -> (rows, {field: type}) for the record files.
EXPECTED: dict[str, tuple[int, dict[str, str]]] = {
    # v2.1 JSON export: Feature-wrapped shape, {lon, lat} point, DST datetimes.
    "Pigura1__test-technique-__fontaines-a-boire": (
        1322,
        {
            "gid": "text",
            "type_objet": "text",
            "no_voirie_pair": "text",
            "debut_ind": "datetime",
            "fin_ind": "datetime",
            "geo_shape": "geo_shape",
            "geo_point_2d": "geo_point_2d",
        },
    ),
    # v2.x JSON export without a shape.
    "AmmarSo__VelibIDFExplorer__velib-emplacement-des-stations": (
        1464,
        {
            "stationcode": "text",
            "name": "text",
            "capacity": "int",
            "coordonnees_geo": "geo_point_2d",
        },
    ),
    # v1 JSON export: fields of [{datasetid, recordid, fields, geometry}].
    "hosuaby__bug-elasticsearch-collapse-rescore__velib-disponibilite-en-temps-reel": (
        1398,
        {
            "ebike": "int",
            "capacity": "int",
            "name": "text",
            "is_installed": "text",
            "stationcode": "text",
            "coordonnees_geo": "geo_point_2d",
            "duedate": "datetime",
        },
    ),
    # v2.1 GeoJSON export: the geometry is the geo point, so no extra shape field.
    "TasnimeLouartani__labchapelle.github.io__fontaines-a-boire": (
        93,
        {"gid": "text", "debut_ind": "datetime", "geo_point_2d": "geo_point_2d"},
    ),
    # v1 GeoJSON export: [lat, lon] point in the properties, polygons as geometry.
    "mastersigat__data__arrondissements": (
        20,
        {
            "c_ar": "int",
            "c_arinsee": "int",
            "surface": "double",
            "perimetre": "double",
            "l_ar": "text",
            "geom_x_y": "geo_point_2d",
            "geo_shape": "geo_shape",
        },
    ),
    # v2.1 CSV exports with label headers.
    "victorhrls__Velib__velib-disponibilite-en-temps-reel": (
        1495,
        {
            "identifiant_station": "int",
            "nom_station": "text",
            "station_en_fonctionnement": "text",
            "capacite_de_la_station": "int",
            "actualisation_de_la_donnee": "datetime",
            "coordonnees_geographiques": "geo_point_2d",
            "code_insee_communes_equipees": "int",
            "station_opening_hours": "text",
        },
    ),
    "melanie-donne__analyse-immobilier-Paris-2022__arrondissements": (
        20,
        {
            "identifiant_sequentiel_de_l_arrondissement": "int",
            "numero_d_arrondissement": "int",
            "nom_officiel_de_l_arrondissement": "text",
            "surface": "double",
            "perimetre": "double",
            "geometry_x_y": "geo_point_2d",
            "geometry": "geo_shape",
        },
    ),
    "melanie-donne__analyse-immobilier-Paris-2022__etablissements-scolaires-colleges": (
        759,
        {
            "type_d_etablissement_annee_scolaire": "text",
            "code_insee": "int",
            "annee_scolaire": "text",
            "created_user": "text",
            "geo_shape": "geo_shape",
            "geo_point_2d": "geo_point_2d",
        },
    ),
    "melanie-donne__analyse-immobilier-Paris-2022__plu_secteurs_de_risques_delimites_par_le_ppri": (
        1596,
        {
            "zonage": "text",
            "n_sq_pprizone": "int",
            "st_area_shape": "double",
            "geo_shape": "geo_shape",
            "geo_point_2d": "geo_point_2d",
        },
    ),
    # Older CSV export: field names as header, "lat,lon" without a space, CRLF.
    "Noobzik__Paris_AIS__arrondissements": (
        20,
        {
            "c_ar": "int",
            "l_ar": "text",
            "surface": "double",
            "geom_x_y": "geo_point_2d",
            "geom": "geo_shape",
        },
    ),
    "EikeDehling__machine-learnings__titanic-passengers": (
        891,
        {
            "passengerid": "int",
            "survived": "text",
            "pclass": "int",
            "name": "text",
            "age": "double",
            "ticket": "text",
            "fare": "double",
            "cabin": "text",
        },
    ),
    "smarie__python-odsclient__opendatasoft-offices.extracted": (
        3,
        {
            "geo_point": "geo_point_2d",
            "geo_shape": "geo_shape",
            "office_name": "text",
            "address": "text",
        },
    ),
    "smarie__python-odsclient__odsclient-reference-dataset.extracted": (
        18,
        {"transport": "text", "annee": "int", "millions_de_voyageurs": "int"},
    ),
    # v1 search responses.
    "klaasnicolaas__python-eindhoven__1_parkings": (
        10,
        {
            "straat": "text",
            "type_en_merk": "text",
            "geo_point_2d": "geo_point_2d",
            "geo_shape": "geo_shape",
            "aantal": "double",
            "objectid": "int",
        },
    ),
    "klaasnicolaas__python-eindhoven__zero_results": (0, {}),
    "klaasnicolaas__python-namur__parking_pmr": (
        10,
        {
            "date_creation": "date",
            "largeur": "double",
            "code_rue": "text",
            "identifiant": "text",
            "geo_shape": "geo_shape",
            "geo_point_2d": "geo_point_2d",
        },
    ),
    "klaasnicolaas__python-odp-gent__garages": (
        2,
        {
            "lastupdate": "datetime",
            "location": "geo_point_2d",
            "locationanddimension": "text",
            "isopennow": "int",
            "id": "text",
        },
    ),
    "klaasnicolaas__python-odp-gent__bluebikes": (
        1,
        {"last_seen": "datetime", "geopoint": "geo_point_2d", "latitude": "text", "id": "int"},
    ),
    "klaasnicolaas__python-brussel__garages": (
        10,
        {
            "maxwidth": "double",
            "maxheight": "double",
            "capacity": "int",
            "geo_point_2d": "geo_point_2d",
        },
    ),
    "klaasnicolaas__python-liege__garages": (
        10,
        {
            "postal_code": "int",
            "last_modified": "date",
            "house_number": "text",
            "geo_shape": "geo_shape",
        },
    ),
    "FlamFilo__learn-react-native__velib-emplacement-des-stations.extracted": (
        10,
        {
            "xy": "geo_point_2d",
            "lat": "double",
            "lon": "double",
            "station_id": "int",
            "stationcode": "text",
        },
    ),
    "benj-moreau__EvaMap__data.extracted": (
        10,
        {
            "home_goal": "int",
            "home_team": "text",
            "start_date": "date",
            "end_date": "date",
            "name": "int",
        },
    ),
    # v2.1 records responses and a v2.0 records response.
    "malkreide__sbb-opendata-mcp__passenger_frequency": (
        6,
        {"uic": "double", "jahr_annee_anno": "date", "geopos": "geo_point_2d", "remarks": "text"},
    ),
    "malkreide__sbb-opendata-mcp__stations_search": (
        20,
        {"number": "int", "validfrom": "date", "validto": "date", "geopos": "geo_point_2d"},
    ),
    "nasqueron__datasources__catalog_datasets_records": (
        3,
        {
            "code_postal": "text",
            "prix_visite": "int",
            "date_application_visite": "date",
            "latitude": "geo_point_2d",
        },
    ),
}

NOT_RECORDS = [
    "139bercy__data-eco-datasets-manager__dataset-sample-explore",
    "amagovpt__udata-pt__sns_dataset",
    "malkreide__sbb-opendata-mcp__catalog",
    "malkreide__sbb-opendata-mcp__dataset_fields",
    "nasqueron__datasources__catalog_datasets",
    "nasqueron__datasources__catalog_facets",
    "nasqueron__datasources__catalog_dataset_fantoir_attachments",
    "opendatateam__udata-ods__test-a",
    "opendatateam__udata__search-ods",
]


@pytest.mark.parametrize("dataset_id", sorted(EXPECTED))
def test_real_export_types_and_row_count(fixture_catalog: Catalog, dataset_id: str) -> None:
    rows, expected_types = EXPECTED[dataset_id]
    dataset = fixture_catalog.get(dataset_id)
    assert dataset.records_count == rows
    (count,) = fixture_catalog.con.execute(f"SELECT count(*) FROM {dataset.table}").fetchall()[0]
    assert count == rows
    actual = types_of(dataset)
    for name, kind in expected_types.items():
        assert actual.get(name) == kind, f"{dataset_id}.{name}: {actual.get(name)} != {kind}"
    assert set(actual.values()) <= FIELD_TYPES


def test_every_record_file_loads_and_other_files_are_skipped(
    real_fixtures: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="odsframe.testing.catalog"):
        catalog = Catalog.from_folder(real_fixtures)
    for dataset_id in EXPECTED:
        assert dataset_id in catalog
    for dataset_id in NOT_RECORDS:
        assert dataset_id not in catalog
        assert any(dataset_id in record.getMessage() for record in caplog.records), dataset_id
    # Every data file is either loaded or reported, never silently dropped.
    for path in real_fixtures.iterdir():
        if path.suffix in (".json", ".csv", ".geojson"):
            stem = path.name[: -len(path.suffix)]
            assert stem in catalog or any(str(path) in r.getMessage() for r in caplog.records)


def test_label_headers_keep_labels(fixture_catalog: Catalog) -> None:
    dataset = fixture_catalog.get("melanie-donne__analyse-immobilier-Paris-2022__arrondissements")
    field = dataset.field("numero_d_arrondissement")
    assert field is not None and field.label == "Numéro d’arrondissement"
    offices = fixture_catalog.get("smarie__python-odsclient__opendatasoft-offices.extracted")
    point = offices.field("geo_point")
    assert point is not None and point.label == "Geo Point"


def test_v1_point_order_and_ids_and_timestamps_are_kept(fixture_catalog: Catalog) -> None:
    dataset = fixture_catalog.get(
        "hosuaby__bug-elasticsearch-collapse-rescore__velib-disponibilite-en-temps-reel"
    )
    first = query(fixture_catalog, f"SELECT * FROM {dataset.table} ORDER BY __rowid LIMIT 1")[0]
    # [48.8408553118, 2.38755494356] is [lat, lon] in v1.
    assert first["coordonnees_geo"] == {"lon": 2.38755494356, "lat": 48.8408553118}
    assert first["__id"] == "d5c749a30655b214ff7eeeb2a83d8bbdac151309"
    assert first["duedate"] == datetime(2020, 6, 24, 10, 56, 28, tzinfo=UTC)
    assert first["__timestamp"] == datetime(2020, 6, 24, 11, 24, 6, 539000, tzinfo=UTC)


def test_v20_record_ids_are_kept(fixture_catalog: Catalog) -> None:
    dataset = fixture_catalog.get("nasqueron__datasources__catalog_datasets_records")
    rows = query(fixture_catalog, f"SELECT __id, latitude FROM {dataset.table} ORDER BY __rowid")
    assert rows[0]["__id"] == "b839362b229db63bc9b344e980ae6273be7f80fd"
    assert -90 <= rows[0]["latitude"]["lat"] <= 90


def test_csv_points_and_shapes(fixture_catalog: Catalog) -> None:
    velib = fixture_catalog.get("victorhrls__Velib__velib-disponibilite-en-temps-reel")
    first = query(fixture_catalog, f"SELECT * FROM {velib.table} ORDER BY __rowid LIMIT 1")[0]
    assert first["coordonnees_geographiques"] == {"lon": 2.275725, "lat": 48.865983}
    assert first["actualisation_de_la_donnee"] == datetime(2025, 10, 18, 16, 37, 2, tzinfo=UTC)
    assert first["station_opening_hours"] is None  # empty cell = null
    noobzik = fixture_catalog.get("Noobzik__Paris_AIS__arrondissements")
    row = query(fixture_catalog, f"SELECT geom_x_y, geom FROM {noobzik.table} LIMIT 1")[0]
    assert 48 < row["geom_x_y"]["lat"] < 49 and 2 < row["geom_x_y"]["lon"] < 3
    assert json.loads(row["geom"])["type"] == "Polygon"
    plu = fixture_catalog.get(
        "melanie-donne__analyse-immobilier-Paris-2022__plu_secteurs_de_risques_delimites_par_le_ppri"
    )
    kinds = query(
        fixture_catalog,
        f"SELECT json_extract_string(geo_shape, '$.type') AS kind, count(*) AS n "
        f"FROM {plu.table} GROUP BY kind ORDER BY kind",
    )
    assert kinds == [{"kind": "MultiPolygon", "n": 3}, {"kind": "Polygon", "n": 1593}]


def test_multiline_cells_and_feature_wrapped_shapes(fixture_catalog: Catalog) -> None:
    offices = fixture_catalog.get("smarie__python-odsclient__opendatasoft-offices.extracted")
    address = query(fixture_catalog, f"SELECT address FROM {offices.table} ORDER BY __rowid")[0]
    assert address["address"] == "Opendatasoft\n130, rue de Lourmel\n75015 Paris, France"
    fontaines = fixture_catalog.get("Pigura1__test-technique-__fontaines-a-boire")
    shape = query(fixture_catalog, f"SELECT geo_shape FROM {fontaines.table} LIMIT 1")[0][
        "geo_shape"
    ]
    assert json.loads(shape)["type"] == "Point"  # the Feature wrapper is gone


def test_partial_year_dates_and_four_digit_codes(fixture_catalog: Catalog) -> None:
    frequency = fixture_catalog.get("malkreide__sbb-opendata-mcp__passenger_frequency")
    year = frequency.field("jahr_annee_anno")
    assert year is not None and year.date_precision == "year"
    value = query(fixture_catalog, f"SELECT jahr_annee_anno FROM {frequency.table} LIMIT 1")[0]
    assert value["jahr_annee_anno"] == date(2025, 1, 1)
    namur = fixture_catalog.get("klaasnicolaas__python-namur__parking_pmr")
    assert types_of(namur)["code_rue"] == "text"  # 1813, 3269, 5607...: codes, not years


def test_v1_facet_groups_become_facet_annotations(fixture_catalog: Catalog) -> None:
    eindhoven = fixture_catalog.get("klaasnicolaas__python-eindhoven__1_parkings")
    assert eindhoven.field("type_en_merk").is_facet  # type: ignore[union-attr]
    assert not eindhoven.field("straat").is_facet  # type: ignore[union-attr]
    league = fixture_catalog.get("benj-moreau__EvaMap__data.extracted")
    assert {f.name for f in league.fields if f.is_facet} == {
        "name",
        "end_date",
        "start_date",
        "home_team",
        "away_team",
    }


def test_empty_search_response_is_an_empty_dataset(fixture_catalog: Catalog) -> None:
    empty = fixture_catalog.get("klaasnicolaas__python-eindhoven__zero_results")
    assert empty.fields == []
    assert empty.records_count == 0
    assert empty.metas["default"]["records_count"] == 0


def test_geojson_point_geometry_is_not_duplicated(fixture_catalog: Catalog) -> None:
    fontaines = fixture_catalog.get("TasnimeLouartani__labchapelle.github.io__fontaines-a-boire")
    assert [f.name for f in fontaines.fields if f.type in ("geo_shape", "geo_point_2d")] == [
        "geo_point_2d"
    ]
    districts = fixture_catalog.get("mastersigat__data__arrondissements")
    bbox = query(fixture_catalog, f"SELECT __bbox__geo_shape AS b FROM {districts.table} LIMIT 1")[
        0
    ]["b"]
    assert 2.2 < bbox["xmin"] < bbox["xmax"] < 2.5
    assert 48.8 < bbox["ymin"] < bbox["ymax"] < 48.95


# --------------------------------------------------------------------------------------
# Storage convention and hidden columns


def test_storage_types_follow_the_model(tmp_path: Path) -> None:
    records = [
        {
            "label": "Alpha",
            "count": 3,
            "ratio": 0.5,
            "open": True,
            "day": "2024-03-01",
            "month": "2024-03",
            "at": "2024-03-31T01:30:00+01:00",
            "point": {"lon": 2.35, "lat": 48.85},
            "shape": {"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [3, 49], [2, 48]]]},
            "tags": ["a", "b"],
            "extra": {"k": [1, 2]},
            "photo": {"id": "f1", "filename": "a.png", "format": "png", "thumbnail": False},
        },
        {
            "label": "beta",
            "count": None,
            "ratio": 1.5,
            "open": False,
            "day": None,
            "month": "2024-04",
            "at": "2024-04-01T00:00:00Z",
            "point": None,
            "shape": None,
            "tags": [],
            "extra": None,
            "photo": None,
        },
    ]
    path = tmp_path / "all-types.json"
    path.write_text(json.dumps(records))
    catalog = Catalog()
    dataset = catalog.load_file(path)
    assert types_of(dataset) == {
        "label": "text",
        "count": "int",
        "ratio": "double",
        "open": "boolean",
        "day": "date",
        "month": "date",
        "at": "datetime",
        "point": "geo_point_2d",
        "shape": "geo_shape",
        "tags": "text",
        "extra": "json_blob",
        "photo": "file",
    }
    assert dataset.field("tags").multivalued  # type: ignore[union-attr]
    assert dataset.field("month").date_precision == "month"  # type: ignore[union-attr]
    described = {
        row[0]: row[1] for row in catalog.con.execute(f"DESCRIBE {dataset.table}").fetchall()
    }
    assert described == {
        "label": "VARCHAR",
        "count": "BIGINT",
        "ratio": "DOUBLE",
        "open": "BOOLEAN",
        "day": "DATE",
        "month": "DATE",
        "at": "TIMESTAMP WITH TIME ZONE",
        "point": "STRUCT(lon DOUBLE, lat DOUBLE)",
        "shape": "VARCHAR",
        "tags": "VARCHAR[]",
        "extra": "JSON",
        "photo": "JSON",
        "__bbox__shape": "STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE)",
        "__rowid": "BIGINT",
        "__id": "VARCHAR",
        "__timestamp": "TIMESTAMP WITH TIME ZONE",
        "__fts": "VARCHAR",
    }
    rows = query(catalog, f"SELECT * FROM {dataset.table} ORDER BY __rowid")
    assert rows[0]["month"] == date(2024, 3, 1)
    assert rows[0]["at"] == datetime(2024, 3, 31, 0, 30, tzinfo=UTC)
    assert rows[0]["__bbox__shape"] == {"xmin": 2.0, "ymin": 48.0, "xmax": 3.0, "ymax": 49.0}
    assert rows[1]["__bbox__shape"] is None
    assert rows[0]["__fts"] == "alpha a b"
    assert rows[1]["tags"] == []
    assert [r["__rowid"] for r in rows] == [0, 1]
    assert rows[0]["__timestamp"] == datetime.fromtimestamp(path.stat().st_mtime, UTC)


def test_table_names_are_plain_identifiers() -> None:
    for dataset_id in ("commodity-prices@public", "a.b.c", "UPPER_case-1"):
        name = table_name(dataset_id)
        assert re.fullmatch(r"[a-z0-9_]+", name), name
    assert table_name("a-b") != table_name("a_b")


# --------------------------------------------------------------------------------------
# Record ids


def _sha1(values: list[str]) -> str:
    return hashlib.sha1("".join(sorted(values)).encode()).hexdigest()


def test_record_id_is_sha1_of_sorted_values(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name": "b",
                    "n": 12,
                    "x": 1.5,
                    "ok": True,
                    "d": "2024-03-01",
                    "p": {"lon": 2.5, "lat": 48.5},
                },
                {"name": "a", "n": None, "x": 2.0, "ok": False, "d": None, "p": None},
            ]
        )
    )
    catalog = Catalog()
    dataset = catalog.load_file(path)
    ids = [r["__id"] for r in query(catalog, f"SELECT __id FROM {dataset.table} ORDER BY __rowid")]
    assert ids[0] == _sha1(["b", "12", "1.5", "true", "2024-03-01", "48.5,2.5"])
    assert ids[1] == _sha1(["a", "2.0", "false"])  # nulls are left out


def test_record_id_uses_id_fields_and_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "keyed.csv").write_text("code;label;n\nA1;first;1\nB2;second;2\n")
    (tmp_path / "keyed.schema.json").write_text(
        json.dumps(
            {
                "fields": [
                    {"name": "code", "type": "text", "annotations": [{"name": "id"}]},
                    {"name": "label", "type": "text"},
                    {"name": "n", "type": "int", "annotations": {"id": []}},
                ]
            }
        )
    )
    first = Catalog.from_folder(tmp_path)
    second = Catalog.from_folder(tmp_path)
    table = first.get("keyed").table
    ids = [r["__id"] for r in query(first, f"SELECT __id FROM {table} ORDER BY __rowid")]
    assert ids == [_sha1(["A1", "1"]), _sha1(["B2", "2"])]
    assert ids == [r["__id"] for r in query(second, f"SELECT __id FROM {table} ORDER BY __rowid")]


def test_records_with_the_same_id_are_one_record_last_wins(tmp_path: Path) -> None:
    (tmp_path / "dupes.csv").write_text("code;v\nA;1\nB;2\nA;3\n")
    (tmp_path / "dupes.schema.json").write_text(
        json.dumps(
            {
                "fields": [
                    {"name": "code", "type": "text", "annotations": {"id": []}},
                    {"name": "v", "type": "int"},
                ]
            }
        )
    )
    (tmp_path / "identical.json").write_text(json.dumps([{"a": 1}, {"a": 1}, {"a": 2}]))
    catalog = Catalog.from_folder(tmp_path)
    dupes = catalog.get("dupes")
    assert dupes.records_count == 2
    rows = query(catalog, f"SELECT code, v, __rowid FROM {dupes.table} ORDER BY __rowid")
    assert rows == [{"code": "B", "v": 2, "__rowid": 1}, {"code": "A", "v": 3, "__rowid": 2}]
    assert catalog.get("identical").records_count == 2


# --------------------------------------------------------------------------------------
# Schema files, attachments, files


def test_schema_file_drives_types_labels_and_metadata(tmp_path: Path) -> None:
    (tmp_path / "shops@public.csv").write_text(
        "\ufeffCode postal;Nom du magasin;Ouvert;Position\r\n"
        '01000;"Chez ""Léa""";true;48.85, 2.35\r\n'
        "75011;Bio;false;\r\n",
        encoding="utf-8",
    )
    schema = {
        "dataset_id": "shops@public",
        "visibility": "restricted",
        "fields": [
            {
                "name": "code_postal",
                "label": "Code postal",
                "type": "text",
                "annotations": [{"name": "facet"}],
            },
            {"name": "nom", "label": "Nom du magasin", "type": "text", "description": "Enseigne"},
            {"name": "ouvert", "label": "Ouvert", "type": "boolean", "annotations": {}},
            {"name": "position", "label": "Position", "type": "geo_point_2d"},
            {"name": "note", "label": "Note", "type": "double"},
        ],
        "metas": {
            "default": {
                "title": "Magasins",
                "publisher": "Ville",
                "keyword": "commerce",
                "records_count": 99,
            },
            "dcat": {"accrualperiodicity": "daily"},
        },
        "features": ["calendar"],
        "attachments": [
            {
                "id": "notice_pdf",
                "title": "Notice",
                "mimetype": "application/pdf",
                "url": "odsfile://notice.pdf",
            },
            {"id": "missing", "title": "gone.zip", "url": "odsfile://gone.zip"},
        ],
    }
    (tmp_path / "shops@public.schema.json").write_text(json.dumps(schema))
    attachments = tmp_path / "shops@public.attachments"
    attachments.mkdir()
    (attachments / "notice.pdf").write_bytes(b"%PDF-1.4 notice")
    (attachments / "tarifs 2024.csv").write_text("a;b\n")
    catalog = Catalog.from_folder(tmp_path)
    dataset = catalog.get("shops@public")
    assert types_of(dataset) == {
        "code_postal": "text",
        "nom": "text",
        "ouvert": "boolean",
        "position": "geo_point_2d",
        "note": "double",
    }
    assert dataset.field("code_postal").annotations == {"facet": []}  # type: ignore[union-attr]
    assert dataset.field("nom").description == "Enseigne"  # type: ignore[union-attr]
    rows = query(catalog, f"SELECT * FROM {dataset.table} ORDER BY __rowid")
    assert rows[0]["code_postal"] == "01000"  # declared text: the leading zero stays
    assert rows[0]["nom"] == 'Chez "Léa"'
    assert rows[0]["position"] == {"lon": 2.35, "lat": 48.85}
    assert rows[1]["position"] is None and rows[1]["note"] is None
    assert dataset.visibility == "restricted" and dataset.is_private
    default = dataset.metas["default"]
    assert default["title"] == "Magasins" and default["keyword"] == ["commerce"]
    assert default["records_count"] == 2  # counted, not copied
    assert dataset.metas["dcat"] == {"accrualperiodicity": "daily"}
    assert dataset.features == ["geo", "analyze", "calendar"]
    assert [(a.id, a.title, a.mimetype) for a in dataset.attachments] == [
        ("notice_pdf", "Notice", "application/pdf"),
        ("tarifs_2024_csv", "tarifs 2024.csv", "text/csv"),
    ]


def test_geojson_shape_declared_in_schema_receives_the_geometry(tmp_path: Path) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[2, 48], [3, 48], [3, 49], [2, 48]]],
                },
                "properties": {"name": "x", "centre": {"lon": 2.6, "lat": 48.3}},
            }
        ],
    }
    (tmp_path / "zones.geojson").write_text(json.dumps(collection))
    (tmp_path / "zones.schema.json").write_text(
        json.dumps(
            {
                "fields": [
                    {"name": "name", "type": "text"},
                    {"name": "centre", "type": "geo_point_2d"},
                    {"name": "contour", "type": "geo_shape"},
                ]
            }
        )
    )
    catalog = Catalog.from_folder(tmp_path)
    dataset = catalog.get("zones")
    assert [f.name for f in dataset.fields] == ["name", "centre", "contour"]
    row = query(catalog, f"SELECT contour FROM {dataset.table}")[0]
    assert json.loads(row["contour"])["type"] == "Polygon"


def test_file_fields_and_schema_only_datasets(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x08\x08\x02\x00\x00\x00"
    files = tmp_path / "photos.files"
    files.mkdir()
    (files / "cat.png").write_bytes(png)
    (tmp_path / "photos.csv").write_text("title,picture\nCat,cat.png\nNone,\n")
    (tmp_path / "photos.schema.json").write_text(
        json.dumps(
            {"fields": [{"name": "title", "type": "text"}, {"name": "picture", "type": "file"}]}
        )
    )
    (tmp_path / "docs-only.schema.json").write_text(
        json.dumps({"metas": {"title": "Docs", "publisher": "Me"}, "fields": []})
    )
    catalog = Catalog.from_folder(tmp_path)
    photos = catalog.get("photos")
    assert photos.files == {"cat.png": files / "cat.png"}
    picture = json.loads(
        query(catalog, f"SELECT picture FROM {photos.table} LIMIT 1")[0]["picture"]
    )
    assert picture == {
        "id": "cat.png",
        "filename": "cat.png",
        "format": "png",
        "width": 16,
        "height": 8,
        "thumbnail": True,
        "mimetype": "image/png",
    }
    assert photos.features == ["image"]
    docs = catalog.get("docs-only")
    assert docs.records_count == 0 and docs.metas["default"]["title"] == "Docs"


def test_malformed_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.json").write_text("[{'not': json")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "badtype.csv").write_text("a\n1\n")
    (tmp_path / "badtype.schema.json").write_text(
        json.dumps({"fields": [{"name": "a", "type": "integer"}]})
    )
    (tmp_path / "badvalue.csv").write_text("a\nx\n")
    (tmp_path / "badvalue.schema.json").write_text(
        json.dumps({"fields": [{"name": "a", "type": "int"}]})
    )
    (tmp_path / "good.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="odsframe.testing.catalog"):
        catalog = Catalog.from_folder(tmp_path)
    assert list(catalog.datasets) == ["good"]
    assert catalog.get("good").records_count == 2
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "broken.json: invalid JSON" in messages
    assert "empty.csv: empty CSV file" in messages
    assert "unknown type 'integer'" in messages
    assert "field 'a': 'x' is not an integer" in messages
    with pytest.raises(DataFileError, match="not a data file"):
        catalog.load_file(tmp_path / "notes.txt")


def test_get_unknown_dataset_is_a_404() -> None:
    with pytest.raises(NotFoundError) as caught:
        Catalog().get("nope")
    assert caught.value.status == 404 and "nope" in caught.value.message


# --------------------------------------------------------------------------------------
# Metadata, reload, add_dataset


def test_default_metas_have_every_key(fixture_catalog: Catalog) -> None:
    dataset = fixture_catalog.get("AmmarSo__VelibIDFExplorer__velib-emplacement-des-stations")
    default = dataset.metas["default"]
    assert list(default)[: len(DEFAULT_META_KEYS)] == list(DEFAULT_META_KEYS)
    assert default["title"] == dataset.dataset_id
    assert default["records_count"] == 1464
    assert default["modified_updates_on_data_change"] is True
    for key in ("modified", "data_processed", "metadata_processed"):
        assert default[key].endswith("+00:00")
        assert datetime.fromisoformat(default[key]).tzinfo is not None
    assert re.fullmatch(r"da_[a-z0-9]{6}", dataset.dataset_uid)
    assert dataset.dataset_uid == dataset_uid(dataset.dataset_id)
    assert dataset.features == ["geo", "analyze"]


def test_reload_bumps_processing_dates_and_count(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    path.write_text(json.dumps([{"a": 1}]))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    catalog = Catalog.from_folder(tmp_path)
    before = dict(catalog.get("live").metas["default"])
    assert before["data_processed"] == "2023-11-14T22:13:20+00:00"
    old_table = catalog.catalog_dataset().table
    path.write_text(json.dumps([{"a": 1}, {"a": 2}, {"a": 3}]))
    os.utime(path, (1_700_000_000, 1_700_000_000))  # same mtime: still moves forward
    dataset = catalog.reload("live")
    after = dataset.metas["default"]
    assert after["records_count"] == 3
    assert after["data_processed"] > before["data_processed"]
    assert after["modified"] == after["data_processed"]
    assert catalog.get("live") is dataset
    # catalog_dataset() rebuilds the catalog table after a change (same table name).
    assert catalog.catalog_dataset().table == old_table
    rows = query(catalog, f"SELECT records_count FROM {old_table} WHERE dataset_id = 'live'")
    assert rows == [{"records_count": 3}]


def test_add_dataset_and_update_records() -> None:
    catalog = Catalog()
    dataset = PortalDataset(
        dataset_id="made",
        table="",
        fields=[
            PortalField("k", "text", annotations={"id": []}),
            PortalField("n", "int"),
            PortalField("when", "datetime"),
        ],
        metas={"default": {"title": "Made", "data_processed": "2024-01-01T00:00:00+00:00"}},
    )
    table = pa.table(
        {"k": ["a", "b"], "n": ["1", "2"], "when": ["2024-01-01T10:00:00+02:00", None]}
    )
    catalog.add_dataset(dataset, table)
    assert dataset.table and dataset.records_count == 2
    rows = query(catalog, f"SELECT * FROM {dataset.table} ORDER BY __rowid")
    assert rows[0]["n"] == 1 and rows[0]["when"] == datetime(2024, 1, 1, 8, tzinfo=UTC)
    assert rows[0]["__timestamp"] == datetime(2024, 1, 1, tzinfo=UTC)
    catalog.update_records("made", pa.table({"k": ["c"], "n": pa.array([5])}))
    default = catalog.get("made").metas["default"]
    assert default["records_count"] == 1
    assert default["data_processed"] > "2024-01-01T00:00:00+00:00"
    with pytest.raises(ValueError, match=r"columns \['zzz'\]"):
        catalog.add_dataset(dataset, pa.table({"zzz": [1]}))
    bad = PortalDataset("bad", "", [PortalField("x", "decimal")], {"default": {}})
    with pytest.raises(ValueError, match="unknown type 'decimal'"):
        catalog.add_dataset(bad, pa.table({"x": [1]}))
    with pytest.raises(ValueError, match="field 'n'"):
        catalog.add_dataset(dataset, pa.table({"n": ["one"]}))


# --------------------------------------------------------------------------------------
# The catalog pseudo-dataset


def test_catalog_pseudo_dataset(tmp_path: Path) -> None:
    (tmp_path / "open.json").write_text(json.dumps([{"a": 1, "p": {"lon": 1.0, "lat": 2.0}}]))
    (tmp_path / "secret.json").write_text(json.dumps([{"b": "x"}, {"b": "y"}]))
    (tmp_path / "secret.schema.json").write_text(
        json.dumps(
            {
                "visibility": "restricted",
                "metas": {"default": {"theme": ["Finances"], "publisher": "Me"}},
            }
        )
    )
    catalog = Catalog.from_folder(tmp_path)
    everything = catalog.catalog_dataset(include_private=True)
    public = catalog.catalog_dataset()
    assert everything.dataset_id == public.dataset_id == "__catalog"
    assert [f.name for f in everything.fields] == [f.name for f in CATALOG_FIELDS]
    facets = {f.name for f in everything.fields if f.is_facet}
    assert facets == {
        "publisher",
        "license",
        "language",
        "theme",
        "keyword",
        "modified",
        "features",
    }
    rows = query(catalog, f"SELECT * FROM {everything.table} ORDER BY __rowid")
    assert [r["dataset_id"] for r in rows] == ["open", "secret"]
    assert rows[0]["features"] == ["geo", "analyze"] and rows[0]["records_count"] == 1
    assert rows[1]["theme"] == ["Finances"] and rows[1]["visibility"] == "restricted"
    assert rows[1]["has_records"] is True and rows[0]["federated"] is False
    assert rows[0]["__id"] == hashlib.sha1(b"open").hexdigest()
    assert isinstance(rows[0]["modified"], datetime)
    public_rows = query(catalog, f"SELECT dataset_id FROM {public.table}")
    assert public_rows == [{"dataset_id": "open"}]
    assert public.records_count == 1 and everything.records_count == 2
    catalog.remove_dataset("open")
    rows = query(
        catalog, f"SELECT dataset_id FROM {catalog.catalog_dataset(include_private=True).table}"
    )
    assert rows == [{"dataset_id": "secret"}]


# --------------------------------------------------------------------------------------
# Inference rules, one by one


@pytest.mark.parametrize(
    ("values", "kind", "annotations"),
    [
        ([1, 2, None], "int", {}),
        ([1, 2.0], "double", {}),
        ([1.0], "double", {}),
        ([True, None, False], "boolean", {}),
        (["2024-01-02", None], "date", {}),
        (["2024-01", "1999-12"], "date", {"timeserie_precision": ["month"]}),
        (["2014", "2020"], "date", {"timeserie_precision": ["year"]}),
        (["1813", "5607"], "text", {}),
        (["2024-01", "2024-01-02"], "text", {}),
        (["2024-01-02T10:00:00", "2024-01-02T10:00:00.5Z", "2024-01-03"], "datetime", {}),
        ([[48.85, 2.35], None], "geo_point_2d", {}),
        ([[3, 5]], "json_blob", {}),
        ([["a", "b"], []], "text", {"multivalued": [","]}),
        ([{"lon": 2.0, "lat": 48.0}], "geo_point_2d", {}),
        (
            [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [1, 2]},
                    "properties": {},
                }
            ],
            "geo_shape",
            {},
        ),
        ([{"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}], "geo_shape", {}),
        ([{"id": "x", "filename": "x.png"}], "file", {}),
        ([{"a": 1}, [1]], "json_blob", {}),
        (["a", 1], "text", {}),
        ([None, None], "text", {}),
        (["4.5", "2.0"], "text", {}),
    ],
)
def test_infer_json_values(values: list[Any], kind: str, annotations: dict[str, Any]) -> None:
    column = infer_column(values)
    assert column.type == kind
    assert column.annotations == annotations
    assert len(column.array) == len(values)


@pytest.mark.parametrize(
    ("cells", "kind"),
    [
        (["1", "-2", None], "int"),
        (["01", "2"], "text"),
        (["1.5", "2", ".5", "1e3"], "double"),
        (["true", "False"], "boolean"),
        (["Yes", "No"], "text"),
        (["2011", "2014"], "int"),
        (["2020-02"], "date"),
        (["2025-10-18T18:37:02+02:00"], "datetime"),
        (["48.85, 2.35", "48.8,2.3"], "geo_point_2d"),
        (["95.0, 2.35"], "text"),
        (['{"coordinates": [2.3, 48.8], "type": "Point"}'], "geo_shape"),
        (['{"type": "Feature", "geometry": null, "properties": {}}'], "geo_shape"),
        (['{"type": "Unknown"}'], "text"),
    ],
)
def test_infer_csv_cells(cells: list[str | None], kind: str) -> None:
    assert infer_strings(pa.array(cells, pa.string()), csv_cells=True).type == kind


def test_names_labels_and_delimiters() -> None:
    assert slugify("Numéro d’arrondissement") == "numero_d_arrondissement"
    assert slugify("st_area(shape)") == "st_area_shape"
    assert slugify("Capacité (m²)") == "capacite_m2"
    assert header_names(["Code", "code", "N_SQ", "", "geo_point_2d"]) == [
        "code",
        "code_2",
        "n_sq",
        "field_4",
        "geo_point_2d",
    ]
    assert sniff_delimiter('a;"b,c";d') == ";"
    assert sniff_delimiter("a,b,c") == ","
    assert sniff_delimiter("single") == ";"
    assert convert_annotations([{"name": "facet"}, {"name": "unit", "args": "%"}]) == {
        "facet": [],
        "unit": ["%"],
    }
    with pytest.raises(ValueError, match="no 'name'"):
        convert_annotations([{"args": []}])


def test_null_or_odd_metadata_from_a_real_schema(tmp_path: Path) -> None:
    (tmp_path / "odd.json").write_text(json.dumps([{"a": 1}]))
    (tmp_path / "odd.schema.json").write_text(
        json.dumps(
            {
                "dataset": {  # the v2.0 wrapper
                    "dataset_id": "odd",
                    "dataset_uid": "da_eeozwd",
                    "metas": {
                        "default": {
                            "title": None,
                            "data_processed": None,
                            "modified": "soon",
                            "keyword": "single",
                            "federated": True,
                            "records_count": "many",
                        },
                        "custom": {"editeur": ["X"]},
                    },
                }
            }
        )
    )
    catalog = Catalog.from_folder(tmp_path)
    dataset = catalog.get("odd")
    default = dataset.metas["default"]
    assert dataset.dataset_uid == "da_eeozwd"
    assert default["title"] == "odd" and default["records_count"] == 1
    assert datetime.fromisoformat(default["data_processed"]) == datetime.fromtimestamp(
        (tmp_path / "odd.json").stat().st_mtime, UTC
    )
    assert default["modified"] == default["data_processed"]
    assert dataset.metas["custom"] == {"editeur": ["X"]}
    row = query(
        catalog, f"SELECT keyword, federated, modified FROM {catalog.catalog_dataset().table}"
    )
    assert row[0]["keyword"] == ["single"] and row[0]["federated"] is True
    assert row[0]["modified"] is not None


def test_parquet_and_geoparquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    import shapely

    shapes = shapely.to_wkb(
        [shapely.box(2.0, 48.0, 3.0, 49.0), None, shapely.Point(2.5, 48.5)]
    ).tolist()
    table = pa.table(
        {
            "name": ["a", "b", None],
            "n": pa.array([1, 2, 3], pa.int32()),
            "x": pa.array([1.5, None, 2.0], pa.float32()),
            "ok": [True, False, None],
            "day": pa.array([date(2024, 1, 2), None, date(2024, 3, 4)], pa.date32()),
            "at": pa.array([datetime(2024, 1, 1, 12), None, None], pa.timestamp("ms")),
            "when": pa.array(["2024-01-01T00:00:00+01:00", None, None]),
            "tags": pa.array([["x", "y"], [], None], pa.list_(pa.string())),
            "pos": pa.array(
                [{"lat": 48.1, "lon": 2.1}, None, {"lat": 48.2, "lon": 2.2}],
                pa.struct([("lat", pa.float64()), ("lon", pa.float64())]),
            ),
            "geometry": pa.array(shapes, pa.binary()),
        }
    )
    geo = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB"}},
    }
    table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, tmp_path / "inferred.parquet")
    pq.write_table(table.select(["n", "at"]), tmp_path / "declared.parquet")
    (tmp_path / "declared.schema.json").write_text(
        json.dumps(
            {"fields": [{"name": "n", "type": "double"}, {"name": "at", "type": "datetime"}]}
        )
    )
    catalog = Catalog.from_folder(tmp_path)
    inferred = catalog.get("inferred")
    assert types_of(inferred) == {
        "name": "text",
        "n": "int",
        "x": "double",
        "ok": "boolean",
        "day": "date",
        "at": "datetime",
        "when": "datetime",
        "tags": "text",
        "pos": "geo_point_2d",
        "geometry": "geo_shape",
    }
    rows = query(catalog, f"SELECT * FROM {inferred.table} ORDER BY __rowid")
    assert rows[0]["at"] == datetime(2024, 1, 1, 12, tzinfo=UTC)  # naive means UTC
    assert rows[0]["pos"] == {"lon": 2.1, "lat": 48.1}
    assert json.loads(rows[0]["geometry"])["type"] == "Polygon"
    assert rows[0]["__bbox__geometry"] == {"xmin": 2.0, "ymin": 48.0, "xmax": 3.0, "ymax": 49.0}
    assert rows[1]["geometry"] is None and rows[0]["tags"] == ["x", "y"]
    declared = catalog.get("declared")
    rows = query(catalog, f"SELECT * FROM {declared.table} ORDER BY __rowid")
    assert rows[0]["n"] == 1.0 and isinstance(rows[0]["n"], float)
    assert rows[0]["at"] == datetime(2024, 1, 1, 12, tzinfo=UTC)


def test_record_with_only_nulls_is_kept(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": "x"}, {"a": None, "b": None}, {"a": 2, "b": None}]
    (tmp_path / "nulls.json").write_text(json.dumps(rows))
    catalog = Catalog.from_folder(tmp_path)
    dataset = catalog.datasets["nulls"]
    assert dataset.records_count == 3
    ids = catalog.con.sql(f'SELECT __id FROM "{dataset.table}" ORDER BY __rowid').fetchall()
    assert all(row[0] is not None for row in ids)
    assert len({row[0] for row in ids}) == 3
