"""Records payloads (v1, v2.0, v2.1) and JSON exports into typed frames, on real captures."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pandas as pd
import pytest
import shapely

from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames import (
    FieldSpec,
    ValueCastWarning,
    cast_values,
    frame_from_json_export,
    frame_from_records,
    label_columns,
    payload_generation,
    records_from_payload,
    records_from_v1,
    records_from_v20,
    records_from_v21,
    reindex_on_schema,
    to_geodataframe,
)

STRING = pd.StringDtype()
INT = pd.Int64Dtype()
FLOAT = pd.Float64Dtype()
DATE = np.dtype("datetime64[us]")
UTC = pd.DatetimeTZDtype("us", "UTC")


def load(real_fixtures: Path, name: str) -> Any:
    return json.loads((real_fixtures / name).read_text(encoding="utf-8"))


def xy(geometry: shapely.Geometry) -> tuple[float, float]:
    return geometry.x, geometry.y


# Expected schemas of the captures (name -> type), written from what the payloads show.
EINDHOVEN = {
    "straat": "text",
    "type_en_merk": "text",
    "geo_point_2d": "geo_point_2d",
    "geo_shape": "geo_shape",
    "aantal": "int",  # served as 1.0: int-like doubles must cast to Int64
    "objectid": "int",
}
GENT_GARAGES = {
    "name": "text",
    "lastupdate": "datetime",
    "totalcapacity": "int",
    "availablecapacity": "int",
    "occupation": "int",
    "isopennow": "int",
    "locationanddimension": "text",
    "location": "geo_point_2d",
    "type": "text",
}
GENT_PARK_AND_RIDE = {
    "name": "text",
    "lastupdate": "datetime",
    "latitude": "text",
    "longitude": "text",
    "gentse_feesten": "text",
    "numberofspaces": "int",
    "location": "geo_point_2d",
}
GENT_BLUEBIKES = {
    "name": "text",
    "last_seen": "datetime",
    "bikes_available": "int",
    "bikes_in_use": "int",
    "geopoint": "geo_point_2d",
    "id": "int",
}
NAMUR = {
    "identifiant": "text",
    "rue_nom": "text",
    "type_parking": "text",
    "zone_stationn": "text",
    "horaire": "text",
    "date_creation": "date",
    "largeur": "double",
    "longueur": "double",
    "superficie": "double",
    "geo_shape": "geo_shape",
    "geo_point_2d": "geo_point_2d",
}
LIEGE = {
    "gid": "int",
    "title": "text",
    "postal_code": "int",
    "email": "text",
    "house_number": "text",
    "created": "date",
    "last_modified": "date",
    "available_spaces": "int",
    "geo_shape": "geo_shape",
    "geo_point_2d": "geo_point_2d",
}
BRUSSELS_PMR = {
    "gid": "text",
    "evp": "int",
    "length": "int",
    "zones_fr": "text",
    "geo_point_2d": "geo_point_2d",
}
BRUSSELS_GARAGES = {
    "name_fr": "text",
    "capacity": "int",
    "maxheight": "double",
    "maxwidth": "double",
    "geo_point_2d": "geo_point_2d",
}
LIGUE_1 = {
    "name": "int",
    "home_team": "text",
    "away_team": "text",
    "home_goal": "int",
    "away_goal": "int",
    "start_date": "date",
    "end_date": "date",
}
VELIB_STATIONS_2019 = {
    "stationcode": "text",
    "name": "text",
    "capacity": "int",
    "station_id": "int",
    "lat": "double",
    "lon": "double",
    "xy": "geo_point_2d",
}
VELIB_AVAILABILITY = {
    "stationcode": "text",
    "name": "text",
    "is_installed": "text",
    "capacity": "int",
    "numdocksavailable": "int",
    "numbikesavailable": "int",
    "mechanical": "int",
    "ebike": "int",
    "is_renting": "text",
    "is_returning": "text",
    "duedate": "datetime",
    "coordonnees_geo": "geo_point_2d",
    "nom_arrondissement_communes": "text",
}
CONTROLE_TECHN = {
    "cct_code_dept": "text",
    "code_postal": "text",
    "cct_tel": "text",
    "prix_visite": "int",
    "date_application_visite": "date",
    "prix_contre_visite_min": "int",
    "latitude": "geo_point_2d",
    "cct_siret": "text",
}
SBB_STATIONS = {
    "designationofficial": "text",
    "number": "int",
    "numbershort": "int",
    "cantonabbreviation": "text",
    "businessorganisationnumber": "int",
    "businessorganisationdescriptionde": "text",
    "geopos": "geo_point_2d",
    "validfrom": "date",
    "validto": "date",
}
SBB_FREQUENCY = {
    "code_codice": "text",
    "uic": "double",
    "bahnhof_gare_stazione": "text",
    "jahr_annee_anno": "text",
    "dtv_tjm_tgm": "double",
    "bemerkungen": "text",
    "geopos": "geo_point_2d",
}
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
VELIB_STATIONS_2023 = {
    "stationcode": "text",
    "name": "text",
    "capacity": "int",
    "coordonnees_geo": "geo_point_2d",
}


def v1_frame(real_fixtures: Path, name: str, schema: dict[str, str], **options: Any) -> Any:
    records = records_from_v1(load(real_fixtures, name))
    return frame_from_records(records, schema, all_fields=True, **options)


# --- v1 search answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("klaasnicolaas__python-eindhoven__1_parkings.json", "Parkeerplaats"),
        ("klaasnicolaas__python-eindhoven__2_permit_parkings.json", "Parkeerplaats Vergunning"),
        (
            "klaasnicolaas__python-eindhoven__3_disabled_parkings.json",
            "Parkeerplaats Gehandicapten",
        ),
        (
            "klaasnicolaas__python-eindhoven__4_crossed_out_parkings.json",
            "Parkeerplaats Afgekruist",
        ),
        ("klaasnicolaas__python-eindhoven__5_loading_parkings.json", "Parkeerplaats laden/lossen"),
        (
            "klaasnicolaas__python-eindhoven__6_charging_parkings.json",
            "Parkeerplaats Electrisch opladen",
        ),
    ],
)
def test_v1_eindhoven_parkings(real_fixtures: Path, name: str, kind: str) -> None:
    raw = load(real_fixtures, name)
    frame = v1_frame(real_fixtures, name, EINDHOVEN)

    assert isinstance(frame, geopandas.GeoDataFrame)
    assert len(frame) == 10
    assert list(frame.columns) == list(EINDHOVEN)
    assert frame.active_geometry_name == "geo_shape"  # the shape wins over the point
    assert frame.crs.to_epsg() == 4326
    assert frame["aantal"].dtype == INT and frame["aantal"].tolist() == [1] * 10
    assert frame["objectid"].dtype == INT
    assert frame["straat"].dtype == STRING
    assert set(frame["type_en_merk"]) == {kind}
    assert set(frame.geometry.geom_type) == {"Point"}
    assert isinstance(frame["geo_point_2d"].dtype, geopandas.array.GeometryDtype)
    lat, lon = raw["records"][0]["fields"]["geo_point_2d"]  # v1 order: [lat, lon]
    assert xy(frame["geo_point_2d"].iloc[0]) == pytest.approx((lon, lat))
    assert frame["geo_point_2d"].iloc[0].equals(frame.geometry.iloc[0])


def test_v1_zero_results_give_an_empty_typed_frame(real_fixtures: Path) -> None:
    payload = load(real_fixtures, "klaasnicolaas__python-eindhoven__zero_results.json")
    assert payload["nhits"] == 10260  # edited capture: hits announced, none sent
    frame = frame_from_records(records_from_v1(payload), EINDHOVEN)

    assert len(frame) == 0
    assert list(frame.columns) == list(EINDHOVEN)
    assert frame["aantal"].dtype == INT and frame["straat"].dtype == STRING
    assert isinstance(frame, geopandas.GeoDataFrame)
    assert frame.active_geometry_name == "geo_shape"


def test_v1_gent_garages(real_fixtures: Path) -> None:
    frame = v1_frame(real_fixtures, "klaasnicolaas__python-odp-gent__garages.json", GENT_GARAGES)
    assert len(frame) == 2
    assert frame.active_geometry_name == "location"
    assert frame["lastupdate"].dtype == UTC
    # "2022-07-15T13:36:45+02:00" is 11:36:45 UTC
    assert frame["lastupdate"].iloc[0] == pd.Timestamp("2022-07-15T11:36:45Z")
    assert frame["totalcapacity"].tolist() == [315, frame["totalcapacity"].iloc[1]]
    assert frame["locationanddimension"].dtype == STRING
    assert json.loads(frame["locationanddimension"].iloc[0])["level"] == "0"
    assert xy(frame.geometry.iloc[0]) == pytest.approx((3.719727740000235, 51.05311004768356))
    # columns outside the schema are kept, with inferred types, after the schema columns
    assert list(frame.columns[: len(GENT_GARAGES)]) == list(GENT_GARAGES)
    assert frame["freeparking"].dtype == INT
    assert frame["urllinkaddress"].dtype == STRING


def test_v1_gent_park_and_ride_in_a_requested_timezone(real_fixtures: Path) -> None:
    frame = v1_frame(
        real_fixtures,
        "klaasnicolaas__python-odp-gent__park_and_ride.json",
        GENT_PARK_AND_RIDE,
        timezone="Europe/Brussels",
    )
    assert len(frame) == 2
    assert frame["lastupdate"].dtype == pd.DatetimeTZDtype("us", "Europe/Brussels")
    assert frame["lastupdate"].iloc[0].isoformat() == "2022-07-15T13:30:42+02:00"
    assert frame["latitude"].iloc[0] == "51.0985019636"  # text stays text
    assert frame["gentse_feesten"].iloc[0] == "False"
    assert xy(frame.geometry.iloc[0]) == pytest.approx((3.71138627257, 51.0985019636))


def test_v1_gent_bluebikes(real_fixtures: Path) -> None:
    frame = v1_frame(
        real_fixtures, "klaasnicolaas__python-odp-gent__bluebikes.json", GENT_BLUEBIKES
    )
    assert len(frame) == 1
    assert frame["last_seen"].iloc[0] == pd.Timestamp("2023-05-06T20:34:59Z")
    assert frame["bikes_available"].iloc[0] == 45
    assert xy(frame.geometry.iloc[0]) == pytest.approx((3.740194, 51.056083))


def test_v1_namur_missing_keys_become_typed_nulls(real_fixtures: Path) -> None:
    frame = v1_frame(real_fixtures, "klaasnicolaas__python-namur__parking_pmr.json", NAMUR)
    assert len(frame) == 10
    assert frame["date_creation"].dtype == DATE
    assert frame["date_creation"].iloc[0] == pd.Timestamp("2020-09-16")
    assert frame["largeur"].dtype == FLOAT and frame["largeur"].iloc[0] == 3.5
    # v1 leaves null fields out: zone_stationn and horaire exist in only 4 records
    assert frame["zone_stationn"].notna().sum() == 4
    assert frame["horaire"].isna().sum() == 6
    assert frame["zone_stationn"].dtype == STRING
    assert set(frame.geometry.geom_type) == {"Point"}
    assert xy(frame.geometry.iloc[0]) == pytest.approx((4.87520726773486, 50.46580805599107))


def test_v1_liege_garages(real_fixtures: Path) -> None:
    frame = v1_frame(real_fixtures, "klaasnicolaas__python-liege__garages.json", LIEGE)
    assert len(frame) == 10
    assert frame["email"].isna().sum() == 2
    assert frame["house_number"].isna().sum() == 1
    assert frame["postal_code"].iloc[0] == 4020
    assert frame["last_modified"].iloc[0] == pd.Timestamp("2024-03-05")
    assert frame["title"].iloc[0] == "Parking Natalis"
    assert xy(frame["geo_point_2d"].iloc[0]) == pytest.approx((5.5826088906, 50.6301695672))


def test_v1_brussels_disabled_parkings(real_fixtures: Path) -> None:
    frame = v1_frame(
        real_fixtures, "klaasnicolaas__python-brussel__disabled_parkings.json", BRUSSELS_PMR
    )
    assert len(frame) == 10
    assert frame.active_geometry_name == "geo_point_2d"
    assert frame["gid"].iloc[0] == "893"
    assert frame["evp"].dtype == INT and frame["evp"].iloc[0] == 2
    assert frame["orientationn"].iloc[0] == "Parallèle"  # inferred, accents intact
    assert xy(frame.geometry.iloc[0]) == pytest.approx((4.355222056418672, 50.838032395915626))


def test_v1_brussels_garages(real_fixtures: Path) -> None:
    frame = v1_frame(real_fixtures, "klaasnicolaas__python-brussel__garages.json", BRUSSELS_GARAGES)
    assert len(frame) == 10
    assert frame["maxheight"].iloc[0] == 2.05
    assert frame["maxwidth"].iloc[0] == -999.0
    assert frame["capacity"].iloc[0] == 380
    assert xy(frame.geometry.iloc[0]) == pytest.approx((4.35906599521552, 50.853812003718275))


def test_v1_records_without_geometry_give_a_plain_frame(real_fixtures: Path) -> None:
    frame = v1_frame(real_fixtures, "benj-moreau__EvaMap__data.extracted.json", LIGUE_1)
    assert type(frame) is pd.DataFrame
    assert len(frame) == 10
    assert list(frame.columns) == list(LIGUE_1)
    assert frame["start_date"].dtype == DATE
    assert frame["start_date"].iloc[0] == pd.Timestamp("2017-08-04")
    assert frame["home_team"].iloc[0] == "Paris_SG"
    assert frame["home_goal"].dtype == INT


def test_v1_velib_stations_with_technical_values(real_fixtures: Path) -> None:
    payload = load(
        real_fixtures, "FlamFilo__learn-react-native__velib-emplacement-des-stations.extracted.json"
    )
    frame = frame_from_records(
        records_from_v1(payload, technical=True), VELIB_STATIONS_2019, all_fields=True
    )
    assert len(frame) == 10
    assert frame["station_id"].dtype == INT
    assert frame["station_id"].iloc[1] == 2254322638
    assert frame["_id"].iloc[0] == "bd7ee57ccb5c9c732fd32c6bf4544ad04a13b477"
    assert frame["_timestamp"].iloc[0] == pd.Timestamp("2019-11-26T22:59:06.527Z")
    # the point field is the active geometry; the record geometry is kept as _geometry
    assert frame.active_geometry_name == "xy"
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.38113380225, 48.8959473685))
    assert frame["_geometry"].iloc[0].equals(frame.geometry.iloc[0])
    assert frame["lon"].iloc[0] == pytest.approx(2.381133802246315)


# --- v1 JSON export --------------------------------------------------------------------------


def test_v1_json_export_velib_availability(real_fixtures: Path) -> None:
    path = real_fixtures / (
        "hosuaby__bug-elasticsearch-collapse-rescore__velib-disponibilite-en-temps-reel.json"
    )
    frame = frame_from_json_export(path.read_bytes(), VELIB_AVAILABILITY, timezone="Europe/Paris")
    assert len(frame) == 1398
    assert list(frame.columns) == list(VELIB_AVAILABILITY)  # v1: reindexed on the schema
    assert frame["duedate"].dtype == pd.DatetimeTZDtype("us", "Europe/Paris")
    assert frame["duedate"].iloc[0].isoformat() == "2020-06-24T12:56:28+02:00"
    assert frame["capacity"].dtype == INT and frame["capacity"].iloc[0] == 30
    assert frame["name"].iloc[0] == "Mairie du 12ème"
    assert frame["nom_arrondissement_communes"].isna().sum() == 0
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.38755494356, 48.8408553118))
    assert frame.geometry.notna().all()


# --- v2.0 ------------------------------------------------------------------------------------


def test_v20_records_controle_technique(real_fixtures: Path) -> None:
    payload = load(real_fixtures, "nasqueron__datasources__catalog_datasets_records.json")
    assert payload_generation(payload) == "v2.0"
    records = records_from_v20(payload, technical=True)
    frame = frame_from_records(records, CONTROLE_TECHN)

    assert len(frame) == 3
    assert frame.active_geometry_name == "latitude"  # a geo_point named 'latitude'
    assert xy(frame.geometry.iloc[0]) == pytest.approx((-1.867611, 46.85617))
    assert frame["code_postal"].iloc[0] == "85300"  # a code stays text
    assert frame["prix_visite"].dtype == INT and frame["prix_visite"].iloc[0] == 94
    assert frame["date_application_visite"].iloc[0] == pd.Timestamp("2020-09-14")
    assert frame["cct_tel"].isna().sum() == 1
    assert frame["_id"].iloc[0] == "b839362b229db63bc9b344e980ae6273be7f80fd"
    assert frame["_size"].dtype == INT and frame["_size"].iloc[0] == 313
    assert frame["_timestamp"].iloc[0] == pd.Timestamp("2021-01-07T23:00:00Z")
    assert frame["cct_code_dept"].iloc[0] == "Vendée"


# --- v2.1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "first_name", "first_point"),
    [
        (
            "malkreide__sbb-opendata-mcp__stations_search.json",
            20,
            "Wädenswil",
            (8.675216270989166, 47.22930727741808),
        ),
        (
            "malkreide__sbb-opendata-mcp__stations_expired.json",
            3,
            "Niederbipp, Aengi",
            (7.700016875435567, 47.280513658488516),
        ),
    ],
)
def test_v21_sbb_stations(
    real_fixtures: Path, name: str, rows: int, first_name: str, first_point: tuple[float, float]
) -> None:
    payload = load(real_fixtures, name)
    assert payload_generation(payload) == "v2.1"
    frame = frame_from_records(records_from_v21(payload), SBB_STATIONS)
    assert len(frame) == rows
    assert list(frame.columns) == list(SBB_STATIONS)
    assert frame["designationofficial"].iloc[0] == first_name
    assert frame["number"].dtype == INT
    assert frame["validto"].dtype == DATE
    assert xy(frame.geometry.iloc[0]) == pytest.approx(first_point)


def test_v21_far_sentinel_dates_do_not_overflow(real_fixtures: Path) -> None:
    payload = load(real_fixtures, "malkreide__sbb-opendata-mcp__stations_search.json")
    frame = frame_from_records(records_from_v21(payload), SBB_STATIONS)
    assert frame["validto"].iloc[0] == pd.Timestamp("9999-12-31")
    assert frame["validfrom"].iloc[0] == pd.Timestamp("2021-04-01")


def test_v21_passenger_frequency(real_fixtures: Path) -> None:
    payload = load(real_fixtures, "malkreide__sbb-opendata-mcp__passenger_frequency.json")
    frame = frame_from_records(records_from_payload(payload), SBB_FREQUENCY)
    assert len(frame) == 6
    assert frame["uic"].dtype == FLOAT and frame["uic"].iloc[0] == 8502113.0
    assert frame["jahr_annee_anno"].iloc[0] == "2025"
    assert frame["bemerkungen"].isna().sum() == 4
    assert xy(frame.geometry.iloc[0]) == pytest.approx((8.051273718700699, 47.39135951416977))
    # the same column read as int: int-like doubles cast without loss
    as_int = frame_from_records(records_from_v21(payload), {"uic": "int"}, geometry=None)
    assert as_int["uic"].dtype == INT and as_int["uic"].iloc[0] == 8502113


def test_v1_analyze_rows_without_a_schema(real_fixtures: Path) -> None:
    rows = load(
        real_fixtures,
        "opendatasoft__ods-documentation-explore-api__records_api.analyze-example.extracted.json",
    )
    frame = frame_from_records(rows)
    assert len(frame) == 11
    assert frame["x"].dtype == STRING and frame["my_count"].dtype == INT
    assert frame.set_index("x")["my_count"]["FR"] == 1468


# --- v2.x JSON exports -----------------------------------------------------------------------


def test_v21_json_export_fountains(real_fixtures: Path) -> None:
    data = (real_fixtures / "Pigura1__test-technique-__fontaines-a-boire.json").read_bytes()
    frame = frame_from_json_export(data, FOUNTAINS)
    assert len(frame) == 1322
    assert list(frame.columns) == list(FOUNTAINS)
    assert frame.active_geometry_name == "geo_shape"  # unwrapped from the Feature wrapper
    assert set(frame.geometry.geom_type) == {"Point"}
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.3128939116029996, 48.84274722972126))
    assert frame["geo_point_2d"].iloc[0].equals(frame.geometry.iloc[0])
    assert frame["gid"].iloc[0] == "450024946"
    assert frame["modele"].isna().sum() == 198
    assert frame["debut_ind"].notna().sum() == 60
    assert frame["fin_ind"].notna().sum() == 21
    # +01:00 (winter) and +02:00 (summer) offsets land on the same UTC axis
    assert frame["debut_ind"].dtype == UTC
    raw = json.loads(data)
    summer = next(r for r in raw if r["debut_ind"] and r["debut_ind"].endswith("+02:00"))
    winter = next(r for r in raw if r["debut_ind"] and r["debut_ind"].endswith("+01:00"))
    for record in (summer, winter):
        position = raw.index(record)
        assert frame["debut_ind"].iloc[position] == pd.Timestamp(record["debut_ind"])


def test_v2_json_export_without_shape(real_fixtures: Path) -> None:
    data = (
        real_fixtures / "AmmarSo__VelibIDFExplorer__velib-emplacement-des-stations.json"
    ).read_bytes()
    frame = frame_from_json_export(data, VELIB_STATIONS_2023)
    assert len(frame) == 1464
    assert frame.active_geometry_name == "coordonnees_geo"
    assert frame["stationcode"].iloc[0] == "30002"
    assert frame["capacity"].iloc[1] == 42
    assert frame["name"].iloc[1] == "Porte de Saint-Ouen - Bessières"
    assert xy(frame.geometry.iloc[0]) == pytest.approx((2.4530601033354, 48.908168131015))
    assert frame.geometry.notna().all()


def test_json_export_accepts_a_file_path_and_a_parsed_list(real_fixtures: Path) -> None:
    path = real_fixtures / "AmmarSo__VelibIDFExplorer__velib-emplacement-des-stations.json"
    by_path = frame_from_json_export(path, VELIB_STATIONS_2023, geometry=None)
    by_list = frame_from_json_export(
        json.loads(path.read_bytes()), VELIB_STATIONS_2023, geometry=None
    )
    assert type(by_path) is pd.DataFrame
    assert by_path.drop(columns="coordonnees_geo").equals(by_list.drop(columns="coordonnees_geo"))
    assert isinstance(by_path["coordonnees_geo"].iloc[0], shapely.Point)


# --- envelopes -------------------------------------------------------------------------------


def test_envelope_detection_and_errors() -> None:
    assert payload_generation([]) == "v2.1"
    assert payload_generation([{"recordid": "x", "fields": {}}]) == "v1"
    assert payload_generation({"nhits": 0, "records": []}) == "v1"
    assert payload_generation({"record": {"fields": {}}}) == "v2.0"
    assert records_from_v20({"record": {"id": "r", "fields": {"a": 1}}}) == [{"a": 1}]
    assert records_from_v20({"records": [{"count": 3, "x": "a"}]}) == [{"count": 3, "x": "a"}]
    assert records_from_v1({"recordid": "r", "fields": {"a": 1}}) == [{"a": 1}]
    with pytest.raises(ServerError, match="keys: error"):
        payload_generation({"error": "boom"})
    with pytest.raises(ServerError, match="'results'"):
        records_from_v21({"records": []})
    with pytest.raises(ServerError, match="#1"):
        records_from_v21({"results": [{}, 3]})
    with pytest.raises(ServerError, match="no 'fields'"):
        records_from_v20({"records": [{"record": {"id": "x"}}]})


def test_v21_links_are_dropped_and_technical_keys_typed() -> None:
    records = [
        {"_id": "a", "_timestamp": "2024-01-01T00:00:00Z", "_size": 12, "_links": [], "v": 1},
    ]
    frame = frame_from_records(records, {"v": "int"})
    assert list(frame.columns) == ["_id", "_timestamp", "_size", "v"]
    assert frame["_timestamp"].dtype == UTC and frame["_size"].dtype == INT


# --- casting edge cases ----------------------------------------------------------------------


def test_nulls_keep_every_row() -> None:
    records = [
        {"i": None, "d": None, "t": None, "b": None, "day": None, "dt": None, "p": None},
        {"i": 1, "d": 1.5, "t": "x", "b": True, "day": "2024-05-01", "dt": None, "p": None},
    ]
    schema = {
        "i": "int",
        "d": "double",
        "t": "text",
        "b": "boolean",
        "day": "date",
        "dt": "datetime",
        "p": "geo_point_2d",
    }
    frame = frame_from_records(records, schema)
    assert len(frame) == 2
    assert frame.iloc[0].isna().all()
    assert frame["b"].dtype == pd.BooleanDtype() and frame["b"].iloc[1] is np.True_
    assert frame["dt"].dtype == UTC
    assert isinstance(frame, geopandas.GeoDataFrame) and frame.geometry.isna().all()


def test_partial_dates_become_their_first_day() -> None:
    spec = FieldSpec("date", "date", annotations={"timeserie_precision": ["month"]})
    values = ["1988-01", "2014", "2019-03-26", "2020-02-03T23:30:00+01:00", None, ""]
    series = cast_values(values, spec)
    assert series.dtype == DATE
    assert series.tolist()[:4] == [
        pd.Timestamp("1988-01-01"),
        pd.Timestamp("2014-01-01"),
        pd.Timestamp("2019-03-26"),
        pd.Timestamp("2020-02-03"),  # the calendar day as written, not shifted to UTC
    ]
    assert series.iloc[4:].isna().all()


def test_datetimes_across_dst_and_formats() -> None:
    values = [
        "2024-03-31T01:30:00+01:00",  # just before the spring change in Paris
        "2024-03-31T03:30:00+02:00",  # one hour later
        "2025-01-23T14:33:29Z",
        "2019-11-26T22:59:06.527000+00:00",
        "2024-01-15T10:55:36.165Z",
        "2018-01-08T11:47:45",  # legacy value without offset: UTC
        1700000000,  # v2.0 GeoJSON epoch seconds
        None,
    ]
    series = cast_values(values, FieldSpec("when", "datetime"), timezone="Europe/Paris")
    assert series.dtype == pd.DatetimeTZDtype("us", "Europe/Paris")
    assert series.iloc[1] - series.iloc[0] == pd.Timedelta(hours=1)
    assert series.iloc[0].isoformat() == "2024-03-31T01:30:00+01:00"
    assert series.iloc[1].isoformat() == "2024-03-31T03:30:00+02:00"
    assert series.iloc[3] == pd.Timestamp("2019-11-26T22:59:06.527Z")
    assert series.iloc[5] == pd.Timestamp("2018-01-08T11:47:45Z")
    assert series.iloc[6] == pd.Timestamp(1700000000, unit="s", tz="UTC")
    assert pd.isna(series.iloc[7])


def test_failed_casts_become_na_with_a_warning_naming_the_column() -> None:
    records = [{"n": "12"}, {"n": 1.5}, {"n": "abc"}, {"n": 3.0}, {"n": ""}]
    with pytest.warns(
        ValueCastWarning, match=r"2 value\(s\) of column 'n' could not be read as int"
    ):
        frame = frame_from_records(records, {"n": "int"})
    assert len(frame) == 5
    assert frame["n"].tolist()[0] == 12 and frame["n"].iloc[3] == 3
    assert frame["n"].iloc[[1, 2, 4]].isna().all()

    with pytest.warns(ValueCastWarning, match="'when'"):
        when = cast_values(["2024-01-01T00:00:00Z", "yesterday"], FieldSpec("when", "datetime"))
    assert when.isna().tolist() == [False, True]
    with pytest.warns(ValueCastWarning, match="'day'"):
        day = cast_values(["2024-01-01", "soon"], FieldSpec("day", "date"))
    assert day.isna().tolist() == [False, True]
    with pytest.warns(ValueCastWarning, match="'x'"):
        x = cast_values([1, "1,5", "2.5"], FieldSpec("x", "double"))
    assert x.tolist()[0] == 1.0 and pd.isna(x.iloc[1]) and x.iloc[2] == 2.5
    with pytest.warns(ValueCastWarning, match="'ok'"):
        ok = cast_values(["OUI", "non", "maybe", True], FieldSpec("ok", "boolean"))
    assert ok.tolist()[:2] == [True, False] and pd.isna(ok.iloc[2]) and ok.iloc[3]


def test_clean_values_raise_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cast_values([1, 2.0, None, "3"], FieldSpec("n", "int"))
        cast_values(["2024-01", None], FieldSpec("d", "date"))
        cast_values([{"lon": 1, "lat": 2}, None], FieldSpec("p", "geo_point_2d"))


def test_multivalued_json_blob_file_and_unknown_types() -> None:
    records = [
        {
            "tags": ["a", "b"],
            "blob": {"k": [1, 2]},
            "photo": {"id": "abc", "filename": "p.jpg", "url": "https://x/p.jpg"},
            "legacy": {"anything": 1},
        },
        {"tags": "c;d", "blob": None, "photo": {"id": "def", "filename": "q.jpg"}, "legacy": None},
    ]
    schema = [
        FieldSpec("tags", "text", annotations={"multivalued": [";"]}),
        FieldSpec("blob", "json_blob"),
        FieldSpec("photo", "file"),
        FieldSpec("legacy", "image"),
    ]
    frame = frame_from_records(records, schema, file_base_url="https://portal/files/")
    assert frame["tags"].tolist() == [["a", "b"], ["c", "d"]]
    assert frame["blob"].iloc[0] == {"k": [1, 2]} and frame["blob"].iloc[1] is None
    assert frame["photo"].dtype == STRING
    assert frame["photo"].tolist() == ["https://x/p.jpg", "https://portal/files/def"]
    assert frame["legacy"].iloc[0] == {"anything": 1}
    without_base = frame_from_records(records, schema)
    assert without_base["photo"].iloc[1] == "def"  # no URL and no base: the file id


def test_text_fields_holding_numbers_or_objects_stay_text() -> None:
    series = cast_values([12, 1.5, {"a": 1}, "x", None], FieldSpec("t", "text"))
    assert series.dtype == STRING
    assert series.tolist()[:4] == ["12", "1.5", '{"a": 1}', "x"]


# --- geometry choice, labels, reindexing -----------------------------------------------------

BOTH = {"name": "text", "geo_point_2d": "geo_point_2d", "geo_shape": "geo_shape"}
BOTH_RECORDS = [
    {
        "name": "a",
        "geo_point_2d": {"lon": 2.0, "lat": 48.0},
        "geo_shape": {"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [3, 49], [2, 48]]]},
    }
]


def test_geometry_choices() -> None:
    auto = frame_from_records(BOTH_RECORDS, BOTH)
    assert auto.active_geometry_name == "geo_shape"
    assert auto.geometry.iloc[0].geom_type == "Polygon"
    assert isinstance(auto["geo_point_2d"].dtype, geopandas.array.GeometryDtype)
    assert auto["geo_point_2d"].crs.to_epsg() == 4326

    chosen = frame_from_records(BOTH_RECORDS, BOTH, geometry="geo_point_2d")
    assert chosen.active_geometry_name == "geo_point_2d"

    plain = frame_from_records(BOTH_RECORDS, BOTH, geometry=None)
    assert type(plain) is pd.DataFrame
    assert isinstance(plain["geo_shape"].iloc[0], shapely.Polygon)
    assert type(to_geodataframe(auto, BOTH, geometry=False)) is pd.DataFrame

    with pytest.raises(InvalidQueryArgument, match="'name' is not a geo field"):
        frame_from_records(BOTH_RECORDS, BOTH, geometry="name")
    with pytest.raises(InvalidQueryArgument, match="no geo_point_2d or geo_shape"):
        frame_from_records([{"a": 1}], {"a": "int"}, geometry=True)
    with pytest.raises(InvalidQueryArgument, match="geometry must be"):
        frame_from_records(BOTH_RECORDS, BOTH, geometry=3)  # type: ignore[arg-type]


def test_to_geodataframe_without_a_schema_finds_shapely_columns() -> None:
    frame = pd.DataFrame({"a": [1], "g": [shapely.Point(1, 2)]})
    result = to_geodataframe(frame)
    assert isinstance(result, geopandas.GeoDataFrame) and result.active_geometry_name == "g"


def test_without_geopandas_shapely_objects_stay_in_a_dataframe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "geopandas", None)  # import geopandas now fails
    plain = frame_from_records(BOTH_RECORDS, BOTH)
    assert type(plain) is pd.DataFrame
    assert isinstance(plain["geo_point_2d"].iloc[0], shapely.Point)
    with pytest.raises(ImportError, match="needs geopandas"):
        frame_from_records(BOTH_RECORDS, BOTH, geometry="geo_shape")


def test_labels_rename_columns_and_the_active_geometry() -> None:
    schema = [
        FieldSpec("name", "text", label="Nom de l’arrondissement"),
        FieldSpec("geo_shape", "geo_shape", label="Géométrie"),
        FieldSpec("geo_point_2d", "geo_point_2d", label="Point"),
    ]
    frame = frame_from_records(BOTH_RECORDS, schema, labels=True)
    assert list(frame.columns) == ["Nom de l’arrondissement", "Point", "Géométrie"]
    assert frame.active_geometry_name == "Géométrie"
    assert frame.geometry.iloc[0].geom_type == "Polygon"
    plain = label_columns(pd.DataFrame({"name": ["x"]}), schema)
    assert list(plain.columns) == ["Nom de l’arrondissement"]


def test_reindex_on_schema_adds_typed_columns_in_schema_order() -> None:
    frame = frame_from_records([{"b": "x", "extra": 1}], {"b": "text"}, geometry=None)
    schema = {"a": "int", "b": "text", "when": "datetime", "p": "geo_point_2d"}
    result = reindex_on_schema(frame, schema, timezone="Europe/Paris")
    assert list(result.columns) == ["a", "b", "when", "p", "extra"]
    assert result["a"].dtype == INT and result["a"].isna().all()
    assert result["when"].dtype == pd.DatetimeTZDtype("us", "Europe/Paris")
    assert result["p"].iloc[0] is None
    assert list(reindex_on_schema(frame, schema, drop_extra=True).columns) == [
        "a",
        "b",
        "when",
        "p",
    ]


def test_reindex_a_geodataframe_keeps_geometry_columns() -> None:
    frame = frame_from_records(BOTH_RECORDS, {"geo_shape": "geo_shape", "name": "text"})
    result = reindex_on_schema(
        frame, {"name": "text", "geo_shape": "geo_shape", "p": "geo_point_2d"}
    )
    assert isinstance(result, geopandas.GeoDataFrame)
    assert isinstance(result["p"].dtype, geopandas.array.GeometryDtype)
    assert list(result.columns) == ["name", "geo_shape", "p", "geo_point_2d"]  # extra last


def test_empty_records_without_schema() -> None:
    frame = frame_from_records([])
    assert frame.shape == (0, 0)


def test_bad_arguments_are_typed_errors() -> None:
    with pytest.raises(InvalidQueryArgument, match="timezone"):
        frame_from_records([{"a": 1}], timezone="Nowhere/Town")
    with pytest.raises(ServerError, match="item #0"):
        frame_from_records([3])  # type: ignore[list-item]


def test_date_words_numpy_would_accept_are_refused() -> None:
    with pytest.warns(ValueCastWarning, match="'d'"):
        series = cast_values(["today", "2024", 2014, "2024-13-01"], FieldSpec("d", "date"))
    assert pd.isna(series.iloc[0]) and pd.isna(series.iloc[3])
    assert series.iloc[1] == pd.Timestamp("2024-01-01")
    assert series.iloc[2] == pd.Timestamp("2014-01-01")


def test_geojson_point_geometries_parse_as_points() -> None:
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.5, 48.5]}},
        None,
        {"type": "Point", "coordinates": [3.5, 49.5]},
    ]
    series = cast_values(features, FieldSpec("p", "geo_point_2d"))
    assert [None if g is None else xy(g) for g in series] == [(2.5, 48.5), None, (3.5, 49.5)]
