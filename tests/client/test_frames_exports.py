"""CSV, GeoJSON, JSON Lines and Parquet exports into typed frames (real captures where we have them)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames import (
    FieldSpec,
    ValueCastWarning,
    frame_from_csv,
    frame_from_export,
    frame_from_geojson,
    frame_from_json_export,
    frame_from_jsonl,
    frame_from_parquet,
    map_header,
)

STRING = pd.StringDtype()
INT = pd.Int64Dtype()
FLOAT = pd.Float64Dtype()
DATE = np.dtype("datetime64[us]")
UTC = pd.DatetimeTZDtype("us", "UTC")


def xy(geometry: shapely.Geometry) -> tuple[float, float]:
    return geometry.x, geometry.y


def fields(*specs: tuple[str, str, str]) -> list[FieldSpec]:
    """Fields from (name, type, label) triples."""
    return [FieldSpec(name, kind, label=label) for name, kind, label in specs]


ARRONDISSEMENTS = fields(
    ("n_sq_ar", "int", "Identifiant séquentiel de l’arrondissement"),
    ("c_ar", "int", "Numéro d’arrondissement"),
    ("c_arinsee", "int", "Numéro d’arrondissement INSEE"),
    ("l_ar", "text", "Nom de l’arrondissement"),
    ("l_aroff", "text", "Nom officiel de l’arrondissement"),
    ("n_sq_co", "int", "N_SQ_CO"),
    ("surface", "double", "Surface"),
    ("perimetre", "double", "Périmètre"),
    ("geom_x_y", "geo_point_2d", "Geometry X Y"),
    ("geom", "geo_shape", "Geometry"),
)
VELIB = fields(
    ("stationcode", "text", "Identifiant station"),
    ("name", "text", "Nom station"),
    ("is_installed", "text", "Station en fonctionnement"),
    ("capacity", "int", "Capacité de la station"),
    ("numdocksavailable", "int", "Nombre bornettes libres"),
    ("numbikesavailable", "int", "Nombre total vélos disponibles"),
    ("mechanical", "int", "Vélos mécaniques disponibles"),
    ("ebike", "int", "Vélos électriques disponibles"),
    ("is_renting", "text", "Borne de paiement disponible"),
    ("is_returning", "text", "Retour vélib possible"),
    ("duedate", "datetime", "Actualisation de la donnée"),
    ("coordonnees_geo", "geo_point_2d", "Coordonnées géographiques"),
    ("nom_arrondissement_communes", "text", "Nom communes équipées"),
    ("code_insee_commune", "text", "Code INSEE communes équipées"),
    ("station_opening_hours", "text", "Horaires"),  # the export kept the name here
)
TITANIC = {
    "PassengerId": "int",
    "Survived": "text",
    "Pclass": "int",
    "Name": "text",
    "Sex": "text",
    "Age": "double",
    "SibSp": "int",
    "Parch": "int",
    "Ticket": "text",
    "Fare": "double",
    "Cabin": "text",
    "Embarked": "text",
}
COLLEGES = fields(
    ("libelle", "text", "Libellé établissement"),
    ("arrondissement", "text", "Arrondissement"),
    ("code_insee", "text", "Code INSEE"),
    ("annee_scol", "text", "Année scolaire"),
    ("created_date", "datetime", "created_date"),
    ("geo_shape", "geo_shape", "Geo Shape"),
    ("geo_point_2d", "geo_point_2d", "Geo Point"),
)
PPRI = fields(
    ("zonage", "text", "ZONAGE"),
    ("n_sq_pprizone", "int", "N_SQ_PPRIZONE"),
    ("st_area_shape", "double", "st_area(shape)"),
    ("st_perimeter_shape", "double", "st_perimeter(shape)"),
    ("geo_shape", "geo_shape", "Geo Shape"),
    ("geo_point_2d", "geo_point_2d", "Geo Point"),
)
REFERENCE = fields(
    ("transport", "text", "Transport"),
    ("annee", "int", "Année"),
    ("millions_de_voyageurs", "int", "Millions de Voyageurs"),
)
OFFICES = fields(
    ("geo_point", "geo_point_2d", "Geo Point"),
    ("geo_shape", "geo_shape", "Geo Shape"),
    ("office_name", "text", "Office Name"),
    ("address", "text", "Address"),
)
FOUNTAINS = {
    "gid": "text",
    "type_objet": "text",
    "modele": "text",
    "no_voirie_pair": "text",
    "no_voirie_impair": "text",
    "voie": "text",
    "commune": "text",
    "dispo": "text",
    "debut_ind": "datetime",
    "fin_ind": "datetime",
    "motif_ind": "text",
    "geo_shape": "geo_shape",
    "geo_point_2d": "geo_point_2d",
}

NOOBZIK = "Noobzik__Paris_AIS__arrondissements.csv"
MELANIE_ARRONDISSEMENTS = "melanie-donne__analyse-immobilier-Paris-2022__arrondissements.csv"
MASTERSIGAT = "mastersigat__data__arrondissements.geojson"


# --- CSV exports -----------------------------------------------------------------------------


def test_v21_csv_with_labels_bom_and_lat_space_lon(real_fixtures: Path) -> None:
    path = real_fixtures / "victorhrls__Velib__velib-disponibilite-en-temps-reel.csv"
    frame = frame_from_csv(path, VELIB)

    assert len(frame) == 1495
    assert list(frame.columns) == [f.name for f in VELIB]  # labels mapped back to names
    assert frame.active_geometry_name == "coordonnees_geo"
    assert frame["stationcode"].iloc[0] == "16107"
    assert frame["capacity"].dtype == INT and frame["capacity"].iloc[0] == 35
    assert frame["duedate"].dtype == UTC
    assert frame["duedate"].iloc[0] == pd.Timestamp("2025-10-18T18:37:02+02:00")
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.275725, 48.865983))
    assert frame["code_insee_commune"].iloc[0] == "75056"
    assert frame["station_opening_hours"].isna().all()  # an empty column: all null
    assert frame["station_opening_hours"].dtype == STRING
    assert frame["name"].iloc[2] == "Hôpital Mondor"


def test_csv_header_mode_can_be_forced(real_fixtures: Path) -> None:
    path = real_fixtures / "victorhrls__Velib__velib-disponibilite-en-temps-reel.csv"
    frame = frame_from_csv(path.read_bytes(), VELIB, labels=True, timezone="Europe/Paris")
    assert frame["duedate"].iloc[0].isoformat() == "2025-10-18T18:37:02+02:00"
    assert "station_opening_hours" in frame.columns  # a name in a label header still maps


def test_v21_csv_labels_with_typographic_apostrophes_and_polygons(real_fixtures: Path) -> None:
    frame = frame_from_csv(real_fixtures / MELANIE_ARRONDISSEMENTS, ARRONDISSEMENTS)
    assert len(frame) == 20
    assert list(frame.columns) == [f.name for f in ARRONDISSEMENTS]
    assert frame.active_geometry_name == "geom"
    assert set(frame.geometry.geom_type) == {"Polygon"}
    assert frame["c_ar"].iloc[0] == 1 and frame["l_aroff"].iloc[0] == "Louvre"
    assert frame["surface"].dtype == FLOAT
    assert xy(frame["geom_x_y"].iloc[0]) == pytest.approx((2.3364433620533878, 48.862562701836005))
    assert frame.geometry.iloc[0].contains(frame["geom_x_y"].iloc[0])


def test_labels_match_loosely(real_fixtures: Path) -> None:
    """Straight apostrophes, other case and spacing in the schema labels still match."""
    loose = [
        FieldSpec(f.name, f.type, label=f.label.replace("’", "'").upper() + "  ")
        for f in ARRONDISSEMENTS
    ]
    frame = frame_from_csv(real_fixtures / MELANIE_ARRONDISSEMENTS, loose)
    assert list(frame.columns) == [f.name for f in ARRONDISSEMENTS]
    assert frame["c_arinsee"].iloc[0] == 75101


def test_old_csv_with_names_and_lat_lon_without_space(real_fixtures: Path) -> None:
    frame = frame_from_csv(real_fixtures / NOOBZIK, ARRONDISSEMENTS)
    assert len(frame) == 20
    assert list(frame.columns) == [f.name for f in ARRONDISSEMENTS]
    assert frame["l_ar"].iloc[0] == "5ème Ardt"
    assert xy(frame["geom_x_y"].iloc[0]) == pytest.approx((2.3507146095752596, 48.84444315053269))
    assert set(frame.geometry.geom_type) == {"Polygon"}


def test_csv_with_refine_point_shapes_and_empty_columns(real_fixtures: Path) -> None:
    path = (
        real_fixtures
        / "melanie-donne__analyse-immobilier-Paris-2022__etablissements-scolaires-colleges.csv"
    )
    frame = frame_from_csv(path, COLLEGES)
    assert len(frame) == 759
    assert frame.active_geometry_name == "geo_shape"
    assert set(frame.geometry.geom_type) == {"Point"}
    assert frame["geo_shape"].iloc[0].equals(frame["geo_point_2d"].iloc[0])
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.304324505511373, 48.858949371483625))
    assert set(frame["annee_scol"]) == {"2022-2023"}
    assert frame["code_insee"].iloc[0] == "75107"
    assert frame["created_date"].dtype == UTC and frame["created_date"].isna().all()
    # headers the schema does not list keep their text, typed by inference
    assert frame["last_edited_user"].isna().all()
    assert frame["Type établissement"].iloc[0] == "MAT"


def test_csv_with_large_polygons_and_multipolygons(real_fixtures: Path) -> None:
    path = (
        real_fixtures
        / "melanie-donne__analyse-immobilier-Paris-2022__plu_secteurs_de_risques_delimites_par_le_ppri.csv"
    )
    frame = frame_from_csv(path, PPRI)
    assert len(frame) == 1596
    assert frame.geometry.geom_type.value_counts().to_dict() == {"Polygon": 1593, "MultiPolygon": 3}
    assert frame.geometry.notna().all()
    assert frame["zonage"].iloc[0] == "B" and frame["n_sq_pprizone"].iloc[0] == 95
    assert frame["st_area_shape"].iloc[0] == pytest.approx(2180.535494542301)


def test_titanic_csv_with_doubled_quotes_and_empty_numbers(real_fixtures: Path) -> None:
    frame = frame_from_csv(
        real_fixtures / "EikeDehling__machine-learnings__titanic-passengers.csv", TITANIC
    )
    assert type(frame) is pd.DataFrame
    assert len(frame) == 891
    assert frame["Name"].iloc[1] == 'Watt, Mrs. James (Elizabeth "Bessie" Inglis Milne)'
    assert frame["Age"].dtype == FLOAT and pd.isna(frame["Age"].iloc[0])
    assert frame["Age"].iloc[1] == 40.0
    assert frame["Age"].isna().sum() == 177
    assert frame["PassengerId"].iloc[0] == 155
    assert set(frame["Survived"]) == {"Yes", "No"}
    assert frame["Ticket"].iloc[2] == "347068"  # a text field of digits stays text


def test_legacy_download_with_geo_labels_and_multiline_cells(real_fixtures: Path) -> None:
    path = real_fixtures / "smarie__python-odsclient__opendatasoft-offices.extracted.csv"
    frame = frame_from_csv(path, OFFICES)
    assert len(frame) == 3
    assert list(frame.columns) == ["geo_point", "geo_shape", "office_name", "address"]
    assert frame["address"].iloc[0] == "Opendatasoft\n130, rue de Lourmel\n75015 Paris, France"
    assert xy(frame["geo_point"].iloc[2]) == pytest.approx((-71.0575962067, 42.3568473029))
    assert xy(frame.geometry.iloc[1]) == pytest.approx((-1.5440967679023743, 47.217678943247684))


def test_csv_with_accented_header_and_empty_cells(real_fixtures: Path) -> None:
    path = real_fixtures / "smarie__python-odsclient__odsclient-reference-dataset.extracted.csv"
    frame = frame_from_csv(path, REFERENCE)
    assert len(frame) == 18
    assert list(frame.columns) == ["transport", "annee", "millions_de_voyageurs"]
    assert frame["annee"].dtype == INT
    assert frame["annee"].isna().sum() == 3
    assert frame["millions_de_voyageurs"].iloc[2] == 7575


def test_csv_without_schema_infers_types(real_fixtures: Path) -> None:
    frame = frame_from_csv(
        real_fixtures / "smarie__python-odsclient__opendatasoft-offices.extracted.csv"
    )
    assert frame.active_geometry_name == "Geo Shape"
    assert xy(frame["Geo Point"].iloc[0]) == pytest.approx((2.28492558002, 48.8416126212))
    titanic = frame_from_csv(
        real_fixtures / "EikeDehling__machine-learnings__titanic-passengers.csv"
    )
    assert titanic["PassengerId"].dtype == INT and titanic["Fare"].dtype == FLOAT
    assert titanic["Name"].dtype == STRING


def test_csv_sources_bytes_path_and_file_agree(real_fixtures: Path) -> None:
    path = real_fixtures / "smarie__python-odsclient__odsclient-reference-dataset.extracted.csv"
    by_path = frame_from_csv(path, REFERENCE)
    by_bytes = frame_from_csv(path.read_bytes(), REFERENCE)
    with path.open("rb") as handle:
        by_file = frame_from_csv(handle, REFERENCE)
    pd.testing.assert_frame_equal(by_path, by_bytes)
    pd.testing.assert_frame_equal(by_path, by_file)


def test_csv_text_types() -> None:
    data = (
        "\ufeffid;tags;payload;ok;day;photo\r\n"
        '1;a,b;"{""k"": [1, 2]}";true;1988-01;https://x/f.jpg\r\n'
        "2;;;false;2014;\r\n"
    ).encode()
    schema = [
        FieldSpec("id", "int"),
        FieldSpec("tags", "text", annotations={"multivalued": [";"]}),
        FieldSpec("payload", "json_blob"),
        FieldSpec("ok", "boolean"),
        FieldSpec("day", "date", annotations={"timeserie_precision": ["month"]}),
        FieldSpec("photo", "file"),
    ]
    frame = frame_from_csv(data, schema)
    assert frame["tags"].tolist() == [["a", "b"], pd.NA]  # split on list_separator, not ";"
    assert frame["payload"].tolist() == [{"k": [1, 2]}, None]
    assert frame["ok"].tolist() == [True, False]
    assert frame["day"].tolist() == [pd.Timestamp("1988-01-01"), pd.Timestamp("2014-01-01")]
    assert frame["photo"].iloc[0] == "https://x/f.jpg" and pd.isna(frame["photo"].iloc[1])
    piped = frame_from_csv(data.replace(b"a,b", b"a|b"), schema, list_separator="|")
    assert piped["tags"].iloc[0] == ["a", "b"]


def test_csv_bad_cells_warn_and_keep_rows() -> None:
    data = b"n;when\n1;2024-01-01T00:00:00+01:00\nx;never\n3;\n"
    with pytest.warns(ValueCastWarning) as caught:
        frame = frame_from_csv(data, {"n": "int", "when": "datetime"})
    messages = " ".join(str(w.message) for w in caught)
    assert "'n'" in messages and "'when'" in messages
    assert len(frame) == 3
    assert frame["n"].tolist()[0] == 1 and pd.isna(frame["n"].iloc[1])
    assert frame["when"].iloc[0] == pd.Timestamp("2023-12-31T23:00:00Z")


def test_empty_csv_results_are_typed() -> None:
    header_only = frame_from_csv(b"\xef\xbb\xbfa;geo\r\n", {"a": "int", "geo": "geo_point_2d"})
    assert len(header_only) == 0 and header_only["a"].dtype == INT
    assert isinstance(header_only, geopandas.GeoDataFrame)
    nothing = frame_from_csv(b"", {"a": "int", "b": "text"})
    assert list(nothing.columns) == ["a", "b"] and len(nothing) == 0
    assert nothing["b"].dtype == STRING


def test_csv_delimiter_sniffing_and_errors() -> None:
    assert frame_from_csv(b"a,b\n1,2\n", {"a": "int", "b": "int"})["b"].tolist() == [2]
    assert frame_from_csv(b"a;b\n1;2\n", delimiter=";")["a"].tolist() == [1]
    with pytest.raises(ServerError, match="could not read the CSV export"):
        frame_from_csv(b"a;b\n1;2;3\n")
    with pytest.raises(InvalidQueryArgument, match="delimiter"):
        frame_from_csv(b"a;b\n", delimiter=";;")
    with pytest.raises(InvalidQueryArgument, match="cannot read CSV file"):
        frame_from_csv("/nonexistent/export.csv")
    text_mode = frame_from_csv(io.StringIO("a;b\n1;é\n"))  # type: ignore[arg-type]
    assert text_mode["b"].tolist() == ["é"]
    with pytest.raises(InvalidQueryArgument, match="bytes, a path or a binary file"):
        frame_from_csv(3)  # type: ignore[arg-type]


def test_map_header_rules() -> None:
    schema = [FieldSpec("a", "text", label="b"), FieldSpec("b", "text", label="Bee")]
    # more cells match names than labels: names first
    assert map_header(["a", "b"], schema) == ["a", "b"]
    assert map_header(["b", "Bee"], schema) == ["a", "b"]  # labels
    assert map_header(["b"], schema, labels=True) == ["a"]
    assert map_header(["b"], schema, labels=False) == ["b"]
    assert map_header(["x", "x", ""], schema) == ["x", "x_2", "column_3"]


# --- GeoJSON exports -------------------------------------------------------------------------


def test_v21_geojson_fountains(real_fixtures: Path) -> None:
    path = real_fixtures / "TasnimeLouartani__labchapelle.github.io__fontaines-a-boire.geojson"
    frame = frame_from_geojson(path.read_bytes(), FOUNTAINS)
    assert len(frame) == 93
    # the shape left the properties to become the feature geometry: it is put back
    assert frame.active_geometry_name == "geo_shape"
    assert set(frame.geometry.geom_type) == {"Point"}
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.3419862356352485, 48.89499724328696))
    assert frame["geo_point_2d"].iloc[0].equals(frame.geometry.iloc[0])
    assert frame["debut_ind"].dtype == UTC
    assert frame["debut_ind"].iloc[1] == pd.Timestamp("2024-01-09T02:00:00+01:00")
    assert frame["fin_ind"].iloc[1] == pd.Timestamp("2024-04-30T04:00:00+02:00")
    assert pd.isna(frame["debut_ind"].iloc[0])
    assert frame["modele"].iloc[0] == "Mât source"


def test_v1_geojson_arrondissements(real_fixtures: Path) -> None:
    frame = frame_from_geojson(real_fixtures / MASTERSIGAT, ARRONDISSEMENTS)
    assert len(frame) == 20
    assert frame.active_geometry_name == "geom"
    assert set(frame.geometry.geom_type) == {"Polygon"}
    first = json.loads((real_fixtures / MASTERSIGAT).read_bytes())["features"][0]
    lat, lon = first["properties"]["geom_x_y"]  # v1 point property: [lat, lon]
    assert xy(frame["geom_x_y"].iloc[0]) == pytest.approx((lon, lat))
    assert frame["c_ar"].iloc[0] == 17 and frame["l_aroff"].iloc[0] == "Batignolles-Monceau"
    assert frame.geometry.iloc[0].contains(frame["geom_x_y"].iloc[0])


def test_geojson_without_schema_keeps_the_geometry(real_fixtures: Path) -> None:
    frame = frame_from_geojson(real_fixtures / MASTERSIGAT)
    assert frame.active_geometry_name == "geometry"
    assert set(frame.geometry.geom_type) == {"Polygon"}
    assert frame["c_ar"].dtype == INT
    assert isinstance(frame["geom_x_y"].dtype, geopandas.array.GeometryDtype)


def test_the_same_dataset_reads_alike_from_csv_and_geojson(real_fixtures: Path) -> None:
    frames = [
        frame_from_csv(real_fixtures / NOOBZIK, ARRONDISSEMENTS),
        frame_from_csv(real_fixtures / MELANIE_ARRONDISSEMENTS, ARRONDISSEMENTS),
        frame_from_geojson(real_fixtures / MASTERSIGAT, ARRONDISSEMENTS),
    ]
    names = [f.name for f in ARRONDISSEMENTS]
    for frame in frames:
        assert sorted(frame.columns) == sorted(names)
        assert (
            frame[names].dtypes.astype(str).tolist() == frames[0][names].dtypes.astype(str).tolist()
        )
        assert sorted(frame["c_ar"].tolist()) == list(range(1, 21))
        assert frame.active_geometry_name == "geom"


def test_geojson_edge_cases() -> None:
    empty = frame_from_geojson(b'{"type": "FeatureCollection", "features": []}', FOUNTAINS)
    assert len(empty) == 0 and list(empty.columns) == list(FOUNTAINS)
    single = {
        "type": "Feature",
        "geometry": None,
        "properties": {"when": 1600000000000},  # v2.0 epoch milliseconds
    }
    frame = frame_from_geojson(single, {"when": "datetime", "shape": "geo_shape"})
    assert frame["when"].iloc[0] == pd.Timestamp("2020-09-13T12:26:40Z")
    assert frame["shape"].iloc[0] is None
    with pytest.raises(ServerError, match="FeatureCollection"):
        frame_from_geojson(b'{"type": "Point", "coordinates": [1, 2]}')
    with pytest.raises(ServerError, match="not valid JSON"):
        frame_from_geojson(b"{")


# --- JSON Lines and the dispatcher -----------------------------------------------------------


def test_jsonl_export_reads_like_the_json_export(real_fixtures: Path) -> None:
    rows = json.loads(
        (real_fixtures / "Pigura1__test-technique-__fontaines-a-boire.json").read_bytes()
    )
    lines = "\n".join(json.dumps(row) for row in rows).encode() + b"\n\n"
    from_jsonl = frame_from_jsonl(lines, FOUNTAINS)
    from_json = frame_from_json_export(rows, FOUNTAINS)
    assert len(from_jsonl) == 1322
    pd.testing.assert_frame_equal(from_jsonl, from_json)
    with pytest.raises(ServerError, match="line 2"):
        frame_from_jsonl(b'{"a": 1}\n[1]\n')


def test_frame_from_export_dispatches_by_format(real_fixtures: Path) -> None:
    path = real_fixtures / "smarie__python-odsclient__odsclient-reference-dataset.extracted.csv"
    frame = frame_from_export(path.read_bytes(), "CSV", REFERENCE)
    assert len(frame) == 18
    with pytest.raises(InvalidQueryArgument, match="xlsx"):
        frame_from_export(b"", "xlsx")


# --- Parquet ---------------------------------------------------------------------------------


def write_parquet(table: pa.Table, path: Path, geo_columns: dict[str, Any] | None = None) -> Path:
    if geo_columns is not None:
        geo = {
            "version": "1.0.0",
            "primary_column": next(iter(geo_columns)),
            "columns": geo_columns,
        }
        table = table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(table, path)
    return path


def test_geoparquet_from_a_real_export(real_fixtures: Path, tmp_path: Path) -> None:
    """The fountains JSON export rewritten as GeoParquet (WKB shape, struct point) reads the same."""
    rows = json.loads(
        (real_fixtures / "Pigura1__test-technique-__fontaines-a-boire.json").read_bytes()
    )
    expected = frame_from_json_export(rows, FOUNTAINS)
    columns: dict[str, Any] = {}
    for name, kind in FOUNTAINS.items():
        if kind == "geo_shape":
            columns[name] = pa.array(shapely.to_wkb(expected[name].to_numpy()), pa.binary())
        elif kind == "geo_point_2d":
            columns[name] = pa.array([row[name] for row in rows])
        elif kind == "datetime":
            columns[name] = pa.array(expected[name].dt.tz_convert("UTC"))
        else:
            columns[name] = pa.array([row[name] for row in rows], pa.string())
    path = write_parquet(
        pa.table(columns),
        tmp_path / "fountains.parquet",
        {"geo_shape": {"encoding": "WKB", "geometry_types": ["Point"]}},
    )
    frame = frame_from_parquet(path, FOUNTAINS)
    assert len(frame) == 1322
    assert frame.active_geometry_name == "geo_shape"
    pd.testing.assert_frame_equal(pd.DataFrame(frame), pd.DataFrame(expected), check_dtype=True)
    assert frame.geometry.geom_equals(expected.geometry).all()


def test_parquet_types_and_alternative_geo_encodings(tmp_path: Path) -> None:
    table = pa.table(
        {
            "n": pa.array([1, None, 3], pa.int32()),
            "x": pa.array([1.5, None, 2.0]),
            "flag": pa.array([True, None, False]),
            "day": pa.array([18000, None, 2932896], pa.date32()),  # 2932896 = 9999-12-31
            "when": pa.array([0, None, 1_000_000], pa.timestamp("ms", "UTC")),
            "naive": pa.array([0, 1, None], pa.timestamp("s")),
            "tags": pa.array([["a", "b"], None, []], pa.list_(pa.string())),
            "blob": pa.array(['{"k": 1}', None, "[1, 2]"]),
            "code": pa.array(["01000", "75001", None]),
            "point": pa.array(
                [shapely.to_wkb(shapely.Point(2, 48)), None, shapely.to_wkb(shapely.Point(3, 49))]
            ),
            "shape": pa.array(['{"type": "Point", "coordinates": [1, 2]}', None, ""]),
        }
    )
    path = write_parquet(table, tmp_path / "types.parquet")
    schema = {
        "n": "int",
        "x": "double",
        "flag": "boolean",
        "day": "date",
        "when": "datetime",
        "naive": "datetime",
        "tags": {"type": "text", "annotations": {"multivalued": [","]}},
        "blob": "json_blob",
        "code": "text",
        "point": "geo_point_2d",
        "shape": "geo_shape",
    }
    frame = frame_from_parquet(path.read_bytes(), schema, timezone="Europe/Paris")
    assert frame["n"].dtype == INT and frame["n"].tolist()[0] == 1 and pd.isna(frame["n"].iloc[1])
    assert frame["x"].dtype == FLOAT and frame["flag"].dtype == pd.BooleanDtype()
    assert frame["day"].dtype == DATE
    assert frame["day"].iloc[0] == pd.Timestamp("2019-04-14")
    assert frame["day"].iloc[2] == pd.Timestamp("9999-12-31")
    assert frame["when"].dtype == pd.DatetimeTZDtype("us", "Europe/Paris")
    assert frame["when"].iloc[2] == pd.Timestamp("1970-01-01T00:16:40Z")
    assert frame["naive"].iloc[1] == pd.Timestamp("1970-01-01T00:00:01Z")  # naive = UTC
    assert frame["tags"].tolist() == [["a", "b"], pd.NA, []]
    assert frame["blob"].tolist() == [{"k": 1}, None, [1, 2]]
    assert frame["code"].dtype == STRING and frame["code"].iloc[0] == "01000"
    assert frame.active_geometry_name == "shape"
    assert xy(frame["point"].iloc[2]) == (3, 49) and frame["point"].iloc[1] is None
    assert xy(frame.geometry.iloc[0]) == (1, 2) and frame.geometry.iloc[2] is None


def test_parquet_text_points_and_column_selection(tmp_path: Path) -> None:
    table = pa.table({"p": ["48.5, 2.5", None], "name": ["a", "b"], "skip": [1, 2]})
    path = write_parquet(table, tmp_path / "text.parquet")
    frame = frame_from_parquet(path, {"p": "geo_point_2d", "name": "text"}, columns=["name", "p"])
    assert list(frame.columns) == ["name", "p"]
    assert xy(frame.geometry.iloc[0]) == (2.5, 48.5)


def test_parquet_without_schema_uses_arrow_types_and_geo_metadata(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "label": ["a", "b"],
            "pt": pa.array([{"lon": 1.0, "lat": 2.0}, {"lon": 3.0, "lat": 4.0}]),
            "footprint": pa.array(
                [shapely.to_wkb(shapely.box(0, 0, 1, 1)), shapely.to_wkb(shapely.box(1, 1, 2, 2))]
            ),
        }
    )
    path = write_parquet(
        table,
        tmp_path / "inferred.parquet",
        {"footprint": {"encoding": "WKB", "geometry_types": []}},
    )
    frame = frame_from_parquet(path)
    assert frame["id"].dtype == INT and frame["label"].dtype == STRING
    assert frame.active_geometry_name == "footprint"
    assert set(frame.geometry.geom_type) == {"Polygon"}
    assert xy(frame["pt"].iloc[1]) == (3, 4)


def test_bad_parquet_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="Parquet"):
        frame_from_parquet(b"not a parquet file")


def test_csv_rows_larger_than_a_read_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import odsframe.frames.exports as exports

    monkeypatch.setattr(exports, "_CSV_BLOCK_BYTES", 1024)  # a small block: the row straddles it
    ring = ", ".join(f"[{i / 1000}, {i / 1000}]" for i in range(400)) + ", [0.0, 0.0]"
    cell = json.dumps({"type": "LineString", "coordinates": json.loads(f"[{ring}]")})
    data = ("id;shape\n1;" + '"' + cell.replace('"', '""') + '"\n2;\n').encode()
    frame = frame_from_csv(data, {"id": "int", "shape": "geo_shape"})
    assert frame.geometry.iloc[0].geom_type == "LineString"
    assert len(frame.geometry.iloc[0].coords) == 401 and frame.geometry.iloc[1] is None
