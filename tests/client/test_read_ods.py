"""``read_ods`` against the local portal over real HTTP: arguments, types, routes, errors.

Filters are checked against the whole dataset read once and filtered with pandas/shapely,
so each test says what the portal must have kept, not only how many rows came back.
"""

from __future__ import annotations

import json
import math
from typing import Any

import geopandas
import geopandas.testing
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from shapely.geometry import Point, box

import odsframe
from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    IncompleteResultError,
    InvalidQueryArgument,
    QueryError,
)
from odsframe.testing.portal import LocalPortal

TREES = "sample-trees"
STATIONS = "sample-bike-stations"
DISTRICTS = "sample-districts"
PRICES = "sample-monthly-prices"
EVENTS = "sample-events"
BUDGET = "sample-budget-restricted"
FEDERATED_ID = "prices@public"  # in extra_portal
SAMPLE_EVENTS = 3_000  # records of sample-events in sample_portal


def read(portal: LocalPortal, dataset: str, **kwargs: Any) -> pd.DataFrame:
    kwargs.setdefault("cache", False)
    kwargs.setdefault("progress", False)
    return odsframe.read_ods(portal.url, dataset, **kwargs)


@pytest.fixture(scope="module")
def trees(sample_portal: LocalPortal) -> pd.DataFrame:
    return read(sample_portal, TREES)


@pytest.fixture(scope="module")
def stations(sample_portal: LocalPortal) -> pd.DataFrame:
    return read(sample_portal, STATIONS)


# -- types --------------------------------------------------------------------------------


def test_every_field_type_gets_its_dtype(trees: pd.DataFrame, sample_portal: LocalPortal) -> None:
    assert isinstance(trees, geopandas.GeoDataFrame)
    assert trees.crs == "EPSG:4326"
    assert len(trees) == 400
    dtypes = trees.dtypes
    assert dtypes["idbase"] == "Int64"
    assert dtypes["hauteur_m"] == "Float64"
    assert isinstance(dtypes["espece"], pd.StringDtype)
    assert dtypes["remarquable"] == "boolean"
    assert dtypes["date_plantation"] == np.dtype("datetime64[us]")
    assert isinstance(dtypes["photo"], pd.StringDtype)
    assert trees.geometry.name == "geo_point_2d"
    assert trees.geometry.geom_type.eq("Point").all()
    lon, lat = trees.geometry.x, trees.geometry.y
    assert lon.between(2.2, 2.5).all() and lat.between(48.8, 48.95).all()
    # json_blob values are objects, file values absolute URLs of the portal's files endpoint
    blobs = trees["caracteristiques"].dropna()
    assert len(blobs) == 400 and all(isinstance(value, dict) for value in blobs)
    photos = trees["photo"].dropna()
    assert 0 < len(photos) < 400
    assert photos.str.startswith(
        f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{TREES}/files/"
    ).all()
    assert trees["idbase"].is_unique


def test_datetimes_are_aware_in_the_requested_timezone(sample_portal: LocalPortal) -> None:
    utc = read(sample_portal, STATIONS, select=["stationcode", "duedate"], order_by="stationcode")
    paris = read(
        sample_portal,
        STATIONS,
        select=["stationcode", "duedate"],
        order_by="stationcode",
        timezone="Europe/Paris",
    )
    assert str(utc["duedate"].dtype) == "datetime64[us, UTC]"
    assert str(paris["duedate"].dtype) == "datetime64[us, Europe/Paris]"
    pd.testing.assert_series_equal(
        utc["duedate"], paris["duedate"].dt.tz_convert("UTC"), check_names=False
    )


def test_multivalued_fields_are_lists(stations: pd.DataFrame) -> None:
    payments = stations["payment"]
    assert payments.dtype == pd.ArrowDtype(pa.list_(pa.string()))
    assert all(isinstance(value, list) and value for value in payments)
    assert payments.list.len().min() >= 1
    assert set().union(*payments) <= {"carte bancaire", "Navigo", "application"}


def test_partial_dates_are_first_days(sample_portal: LocalPortal) -> None:
    prices = read(sample_portal, PRICES)
    assert type(prices) is pd.DataFrame  # no geo field: a plain DataFrame
    assert prices["month"].dtype == np.dtype("datetime64[us]")
    assert (prices["month"].dt.day == 1).all()
    assert prices["month"].min() == pd.Timestamp("2019-01-01")
    assert prices["month"].max() == pd.Timestamp("2024-12-01")
    assert len(prices) == 720


def test_shape_preferred_as_geometry_and_the_point_kept(stations: pd.DataFrame) -> None:
    assert isinstance(stations, geopandas.GeoDataFrame)
    assert stations.geometry.name == "geo_shape"
    assert isinstance(stations["coordonnees_geo"], geopandas.GeoSeries)
    assert stations["coordonnees_geo"].crs == "EPSG:4326"
    assert stations.geometry.geom_equals_exact(stations["coordonnees_geo"], 1e-6).all()


def test_polygons_of_districts(sample_portal: LocalPortal) -> None:
    districts = read(sample_portal, DISTRICTS)
    assert districts.geometry.name == "geom"
    assert set(districts.geometry.geom_type) == {"Polygon", "MultiPolygon"}
    assert districts["geom_x_y"].geom_type.eq("Point").all()


# -- geometry and labels ------------------------------------------------------------------


def test_geometry_none_gives_shapely_objects_in_a_dataframe(sample_portal: LocalPortal) -> None:
    frame = read(sample_portal, DISTRICTS, geometry=None)
    assert type(frame) is pd.DataFrame
    assert frame["geom"].dtype == object
    assert shapely.is_geometry(frame["geom"].to_numpy()).all()
    assert type(read(sample_portal, DISTRICTS, geometry=False)) is pd.DataFrame


def test_geometry_names_the_active_geometry(sample_portal: LocalPortal) -> None:
    frame = read(sample_portal, DISTRICTS, geometry="geom_x_y")
    assert frame.geometry.name == "geom_x_y"
    assert isinstance(frame["geom"], geopandas.GeoSeries)
    assert read(sample_portal, DISTRICTS, geometry=True).geometry.name == "geom"


@pytest.mark.parametrize(
    ("dataset", "geometry", "message"),
    [
        (DISTRICTS, "surface", "not a geo field"),
        (DISTRICTS, "nowhere", "no field of that name"),
        (PRICES, True, "no geo_point_2d or geo_shape field"),
    ],
)
def test_bad_geometry_is_refused_naming_the_dataset(
    sample_portal: LocalPortal, dataset: str, geometry: Any, message: str
) -> None:
    with pytest.raises(InvalidQueryArgument, match=message) as info:
        read(sample_portal, dataset, geometry=geometry)
    assert dataset in str(info.value)


def test_labels_name_the_columns(sample_portal: LocalPortal) -> None:
    frame = read(sample_portal, STATIONS, labels=True, limit=3)
    assert list(frame.columns[:3]) == ["Code station", "Nom station", "Capacité"]
    assert frame.geometry.name == "Geo Shape"
    assert frame.attrs["ods"]["fields"][0]["name"] == "stationcode"


# -- query arguments ----------------------------------------------------------------------


def test_select_as_list_and_as_text(sample_portal: LocalPortal) -> None:
    listed = read(sample_portal, TREES, select=["idbase", "hauteur_m"], order_by="idbase")
    text = read(sample_portal, TREES, select="idbase, hauteur_m", order_by="idbase")
    assert list(listed.columns) == ["idbase", "hauteur_m"]
    assert type(listed) is pd.DataFrame
    pd.testing.assert_frame_equal(listed, text)
    assert [f["name"] for f in listed.attrs["ods"]["fields"]] == ["idbase", "hauteur_m"]


def test_select_expressions_with_aliases(sample_portal: LocalPortal) -> None:
    frame = read(
        sample_portal, TREES, select="idbase, hauteur_m * 100 as cm", order_by="idbase", limit=5
    )
    assert list(frame.columns) == ["idbase", "cm"]
    assert frame["cm"].notna().all()


def test_where_as_text_mapping_and_list(sample_portal: LocalPortal, trees: pd.DataFrame) -> None:
    expected = trees[(trees["domanialite"] == "Jardin") & (trees["hauteur_m"] > 10)]
    as_text = read(sample_portal, TREES, where='domanialite = "Jardin" and hauteur_m > 10')
    as_list = read(sample_portal, TREES, where=[{"domanialite": "Jardin"}, "hauteur_m > 10"])
    as_mapping = read(
        sample_portal, TREES, where={"domanialite": "Jardin", "hauteur_m": (10.000001, None)}
    )
    assert 0 < len(expected) < len(trees)
    for frame in (as_text, as_list, as_mapping):
        assert sorted(frame["idbase"]) == sorted(expected["idbase"])


def test_where_mapping_with_a_list_means_in(
    sample_portal: LocalPortal, trees: pd.DataFrame
) -> None:
    frame = read(sample_portal, TREES, where={"domanialite": ["Jardin", "DASCO"]})
    expected = trees[trees["domanialite"].isin(["Jardin", "DASCO"])]
    assert sorted(frame["idbase"]) == sorted(expected["idbase"])


def test_bbox_keeps_the_points_in_the_box(sample_portal: LocalPortal, trees: pd.DataFrame) -> None:
    bbox = (2.28, 48.83, 2.36, 48.87)
    frame = read(sample_portal, TREES, bbox=bbox)
    inside = trees[trees.geometry.within(box(*bbox))]
    assert 0 < len(inside) < len(trees)
    assert sorted(frame["idbase"]) == sorted(inside["idbase"])


def test_bbox_on_shapes(sample_portal: LocalPortal) -> None:
    every = read(sample_portal, DISTRICTS)
    area = box(2.25, 48.82, 2.30, 48.86)
    got = set(read(sample_portal, DISTRICTS, bbox=area.bounds)["c_ar"])
    # The filter is on the shapes: what lies inside is in, what does not touch the box is out.
    assert set(every.loc[every.geometry.within(area), "c_ar"]) <= got
    assert got <= set(every.loc[every.geometry.intersects(area), "c_ar"])
    assert 0 < len(got) < len(every)


class GeoInterfaceOnly:
    """Not shapely: only ``__geo_interface__``, as many geo libraries offer."""

    def __init__(self, geometry: Any) -> None:
        self.__geo_interface__ = shapely.geometry.mapping(geometry)


TRIANGLE = shapely.Polygon([(2.26, 48.82), (2.40, 48.83), (2.30, 48.90)])


@pytest.mark.parametrize("mask", [TRIANGLE, GeoInterfaceOnly(TRIANGLE)], ids=["shapely", "geo"])
def test_mask_keeps_what_intersects_the_polygon(
    sample_portal: LocalPortal, trees: pd.DataFrame, mask: Any
) -> None:
    frame = read(sample_portal, TREES, mask=mask)
    expected = trees[trees.geometry.intersects(TRIANGLE)]
    assert 0 < len(expected) < len(trees)
    assert sorted(frame["idbase"]) == sorted(expected["idbase"])
    assert frame.attrs["ods"]["query"]["mask"]["type"] == "Polygon"


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlon = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlon / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


@pytest.mark.parametrize("center", [(2.33, 48.86), Point(2.33, 48.86)], ids=["pair", "point"])
def test_distance_keeps_the_records_within(
    sample_portal: LocalPortal, trees: pd.DataFrame, center: Any
) -> None:
    metres = 2_500
    frame = read(sample_portal, TREES, distance=(center, metres))
    got = set(frame["idbase"])
    distances = {
        idbase: _metres(2.33, 48.86, point.x, point.y)
        for idbase, point in zip(trees["idbase"], trees.geometry)
    }
    # Earth models differ by a fraction of a percent: only judge clear-cut records.
    assert {i for i, d in distances.items() if d < metres * 0.995} <= got
    assert not {i for i, d in distances.items() if d > metres * 1.005} & got
    assert 0 < len(got) < len(trees)


def test_spatial_filter_on_a_named_geo_field(sample_portal: LocalPortal) -> None:
    frame = read(sample_portal, STATIONS, bbox=(2.3, 48.84, 2.4, 48.9), geometry="coordonnees_geo")
    assert frame.geometry.name == "coordonnees_geo"
    assert frame.attrs["ods"]["query"]["geo_field"] == "coordonnees_geo"
    assert frame.geometry.within(box(2.3, 48.84, 2.4, 48.9)).all()


def test_spatial_filter_needs_a_geo_field(sample_portal: LocalPortal) -> None:
    with pytest.raises(InvalidQueryArgument, match="no geo field") as info:
        read(sample_portal, PRICES, bbox=(2.3, 48.84, 2.4, 48.9))
    assert PRICES in str(info.value)


def test_refine_and_exclude(sample_portal: LocalPortal, stations: pd.DataFrame) -> None:
    refined = read(sample_portal, STATIONS, refine={"commune": "Paris"})
    assert set(refined["commune"]) == {"Paris"}
    assert len(refined) == (stations["commune"] == "Paris").sum()
    excluded = read(sample_portal, STATIONS, exclude='commune:"Paris"')
    assert "Paris" not in set(excluded["commune"])
    assert len(refined) + len(excluded) == len(stations)
    both = read(sample_portal, STATIONS, refine=["commune:Paris", "commune:Pantin"])
    assert len(both) == stations["commune"].isin(["Paris", "Pantin"]).sum()


def test_order_by_and_limit(sample_portal: LocalPortal, trees: pd.DataFrame) -> None:
    frame = read(sample_portal, TREES, order_by=["-hauteur_m", "idbase"], limit=150)
    assert len(frame) == 150
    expected = trees.sort_values(["hauteur_m", "idbase"], ascending=[False, True]).head(150)
    assert list(frame["idbase"]) == list(expected["idbase"])
    # the server's count is of the whole match, not of the rows read
    assert frame.attrs["ods"]["records_count"] == 400


def test_limit_zero_gives_an_empty_typed_frame(sample_portal: LocalPortal) -> None:
    frame = read(sample_portal, TREES, limit=0)
    assert len(frame) == 0
    assert frame.dtypes["idbase"] == "Int64"
    assert frame.attrs["ods"]["route"] == "empty"
    empty = read(sample_portal, TREES, where="hauteur_m > 1000", select=["idbase", "espece"])
    assert len(empty) == 0 and list(empty.columns) == ["idbase", "espece"]


def test_lang_changes_language_sensitive_values(sample_portal: LocalPortal) -> None:
    options = {"select": "date_format(opened_on, 'MMMM') as month", "order_by": "stationcode"}
    english = read(sample_portal, STATIONS, lang="en", limit=40, **options)
    french = read(sample_portal, STATIONS, lang="fr", limit=40, **options)
    months_en = {"January", "February", "March", "April", "May", "June", "July"}
    assert set(english["month"]) & months_en
    assert not set(french["month"]) & months_en
    assert english.attrs["ods"]["query"]["lang"] == "en"


def test_federated_dataset_id(extra_portal: LocalPortal) -> None:
    frame = read(extra_portal, FEDERATED_ID)
    assert len(frame) == 12
    assert f"/datasets/{FEDERATED_ID}/records" in frame.attrs["ods"]["url"]


@pytest.mark.parametrize("form", ["url", "api_url", "host_port"])
def test_portal_forms(sample_portal: LocalPortal, form: str) -> None:
    address = {
        "url": sample_portal.url + "/",
        "api_url": f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{TREES}/records?x=1",
        "host_port": sample_portal.url.removeprefix("http://"),
    }[form]
    frame = odsframe.read_ods(address, TREES, limit=2, cache=False)
    assert frame.attrs["ods"]["portal"] == sample_portal.url


# -- routes -------------------------------------------------------------------------------


def test_small_reads_use_records_pages(trees: pd.DataFrame) -> None:
    source = trees.attrs["ods"]
    assert source["route"] == "records"
    assert "/records?" in source["url"] and "offset=0" in source["url"]
    # several pages in a total order: every tree once
    assert trees["idbase"].is_unique and len(trees) == source["records_count"] == 400


def test_large_reads_use_an_export(sample_portal: LocalPortal) -> None:
    events = read(sample_portal, EVENTS)
    source = events.attrs["ods"]
    assert len(events) == SAMPLE_EVENTS == source["records_count"]
    assert source["route"] == "export"
    assert source["export_format"] == "parquet"
    assert f"/datasets/{EVENTS}/exports/parquet?" in source["url"]
    assert events["event_id"].is_unique
    assert isinstance(events, geopandas.GeoDataFrame)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_every_route_gives_the_same_frame(sample_portal: LocalPortal, fmt: str) -> None:
    """Records pages and each export format: same rows, same dtypes, same geometries."""
    from odsframe.read import build_query, read_with

    query = build_query(EVENTS, where={"category": "Concert"}, order_by="event_id")
    with odsframe.Portal(sample_portal.url) as portal:
        adapter = portal._adapter
        pages = read_with(adapter, query, api_key=None, cache_mode=False, records_threshold=10_000)
        export = read_with(
            adapter,
            query,
            api_key=None,
            cache_mode=False,
            records_threshold=0,
            preferred_formats=(fmt,),
        )
    assert pages.attrs["ods"]["route"] == "records"
    assert export.attrs["ods"]["route"] == "export"
    assert export.attrs["ods"]["export_format"] == fmt
    assert 100 < len(pages) <= 1_000
    if fmt == "csv":
        # An empty cell is all a CSV has for both an empty list and a missing one.
        assert export["tags"].isna().sum() == pages["tags"].map(len).eq(0).sum()
        export["tags"] = export["tags"].fillna(
            pd.Series([[]] * len(export), dtype=export["tags"].dtype)
        )
    geopandas.testing.assert_geodataframe_equal(pages, export)


def test_progress_callback_sees_every_record(sample_portal: LocalPortal) -> None:
    seen: list[tuple[int, int | None]] = []
    frame = read(sample_portal, TREES, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(frame), 400)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) == 4  # one call per page


def test_row_count_check(prices: Any) -> None:
    """The dataset shrinks between two pages: the read says so instead of returning less."""
    from odsframe.testing.catalog import Catalog

    catalog = Catalog()
    catalog.add_dataset(prices.dataset("shrinking"), prices.table(250))
    with LocalPortal(catalog=catalog) as portal:
        shrunk: list[bool] = []

        def shrink(done: int, total: int | None) -> None:
            if not shrunk:
                catalog.update_records("shrinking", prices.table(150))
                shrunk.append(True)

        with pytest.raises(IncompleteResultError, match=r"'shrinking'.*received 150 rows"):
            odsframe.read_ods(portal.url, "shrinking", cache=False, progress=shrink)


# -- credentials and errors ---------------------------------------------------------------


def test_private_dataset_needs_a_key(private_portal: LocalPortal, api_key: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        read(private_portal, BUDGET)
    assert BUDGET in str(info.value)
    assert info.value.status == 401
    frame = read(private_portal, BUDGET, api_key=api_key)
    assert len(frame) == 60
    assert frame["exercice"].dt.year.between(2015, 2024).all()
    assert (frame["exercice"].dt.month == 1).all()  # year precision: first day of the year


def test_wrong_key_is_refused(private_portal: LocalPortal) -> None:
    with pytest.raises(AuthenticationError):
        read(private_portal, BUDGET, api_key="not-the-key")


@pytest.mark.parametrize("variable", ["ODS_APIKEY", "HUWISE_API_KEY"])
def test_key_from_the_environment(
    private_portal: LocalPortal, monkeypatch: pytest.MonkeyPatch, variable: str, api_key: str
) -> None:
    monkeypatch.setenv(variable, api_key)
    assert len(read(private_portal, BUDGET)) == 60


def test_the_key_is_never_in_the_frame(
    private_portal: LocalPortal, recording_session: Any, api_key: str
) -> None:
    frame = read(private_portal, BUDGET, api_key=api_key, session=recording_session, cache=True)
    text = json.dumps(frame.attrs, default=str) + repr(frame) + frame.ods.url
    text += frame.ods.explain() + repr(frame.ods.source)
    assert api_key not in text
    assert all(api_key not in url for url in recording_session.urls)
    assert all(
        headers.get("Authorization") == f"Apikey {api_key}"
        for headers in recording_session.headers_sent
    )


def test_unknown_dataset(sample_portal: LocalPortal) -> None:
    with pytest.raises(DatasetNotFoundError, match="no-such-dataset"):
        read(sample_portal, "no-such-dataset")


def test_bad_where_is_a_query_error_naming_the_dataset(sample_portal: LocalPortal) -> None:
    with pytest.raises(QueryError, match=TREES):
        read(sample_portal, TREES, where="hauteur_m >>> 3")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": -5}, "limit"),
        ({"bbox": (3, 49, 2, 48)}, "bbox"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"lang": "xx"}, "lang"),
        ({"geometry": ""}, "geometry"),
        ({"labels": "yes"}, "labels"),
        ({"cache": "sometimes"}, "cache"),
        ({"max_age": -1}, "max_age"),
        ({"progress": 3}, "progress"),
        ({"mask": "not geojson"}, "mask"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    kwargs: dict[str, Any], message: str, recording_session: Any
) -> None:
    with pytest.raises(InvalidQueryArgument, match=message):
        odsframe.read_ods(
            "http://127.0.0.1:9", TREES, session=recording_session, **{"cache": False, **kwargs}
        )
    assert recording_session.urls == []


def test_the_garbage_collector_is_left_as_it_was(sample_portal: LocalPortal) -> None:
    import gc

    read(sample_portal, TREES, limit=150)
    assert gc.isenabled()
    gc.disable()
    try:
        read(sample_portal, EVENTS, limit=1_500)  # an export
        assert not gc.isenabled()
    finally:
        gc.enable()
