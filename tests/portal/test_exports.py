"""Dataset and catalog exports over real HTTP: formats, parameters, errors, streaming.

Exact values come from ``export-types``, a small dataset built here with every field type
and awkward values (quotes, line breaks, accents, non-finite doubles, nulls); windows and
auth use the session portal of ``conftest.py`` (``tiny-big`` has 20 050 records).
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
import json
import re
import time
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from odsframe.testing.catalog import Catalog
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal
from odsframe.testing.routes_exports import _Stream

V21 = "/api/explore/v2.1"
DATASET = "export-types"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x01" + b"\x00" * 16
FIELDS = [
    PortalField("name", "text", "Nom", annotations={"facet": []}),
    PortalField("tags", "text", "Mots-clés", annotations={"multivalued": [","], "facet": []}),
    PortalField("n", "int", "Nombre"),
    PortalField("x", "double", "Valeur"),
    PortalField("flag", "boolean", "Drapeau"),
    PortalField("day", "date", "Jour"),
    PortalField("month", "date", "Mois", annotations={"timeserie_precision": ["month"]}),
    PortalField("seen", "datetime", "Vu le"),
    PortalField("point", "geo_point_2d", "Point géo"),
    PortalField("shape", "geo_shape", "Forme"),
    PortalField("extra", "json_blob", "Extra"),
    PortalField("photo", "file", "Photo"),
]
POLYGON = {"type": "Polygon", "coordinates": [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 48.0]]]}
PHOTO = {"id": "photo-1", "filename": "p.png", "format": "png", "mimetype": "image/png"}
NAMES = ["Alpha", 'Bêta, "quoted"\nline', "Gamma", None]


def _rows_table() -> pa.Table:
    point = pa.struct([("lon", pa.float64()), ("lat", pa.float64())])
    return pa.table(
        {
            "name": pa.array(NAMES, pa.string()),
            "tags": pa.array([["a", "b"], ["c; d"], [], None], pa.list_(pa.string())),
            "n": pa.array([1, -7, 42, None], pa.int64()),
            "x": pa.array([0.5, 1e16, float("inf"), None], pa.float64()),
            "flag": pa.array([True, False, True, None], pa.bool_()),
            "day": pa.array([date(2024, 3, 5), date(2023, 12, 31), None, None], pa.date32()),
            "month": pa.array([date(1988, 1, 1), None, None, None], pa.date32()),
            "seen": pa.array(
                [
                    datetime(2024, 7, 1, 10, 0, tzinfo=UTC),
                    datetime(2024, 1, 15, 23, 30, 0, 250000, tzinfo=UTC),
                    None,
                    None,
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "point": pa.array(
                [{"lon": 2.35, "lat": 48.85}, {"lon": -0.57, "lat": 44.84}, None, None], point
            ),
            "shape": pa.array(
                ['{"type":"Point","coordinates":[2.35,48.85]}', json.dumps(POLYGON), None, None],
                pa.string(),
            ),
            "extra": pa.array(['{"k": [1, 2], "z": null}', '[1, "two"]', '"text"', None]),
            "photo": pa.array([json.dumps(PHOTO), None, None, None], pa.string()),
        }
    )


@pytest.fixture(scope="module")
def types_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPortal]:
    folder = tmp_path_factory.mktemp("export-types")
    (folder / "photo-1.png").write_bytes(PNG)
    catalog = Catalog()
    catalog.add_dataset(
        PortalDataset(
            dataset_id=DATASET,
            table="",
            fields=list(FIELDS),
            metas={"default": {"title": "Export types"}},
            files={"photo-1": folder / "photo-1.png"},
        ),
        _rows_table(),
    )
    with LocalPortal(catalog=catalog) as running:
        yield running


@pytest.fixture(scope="module")
def base(types_portal: LocalPortal) -> str:
    return f"{types_portal.url}{V21}/catalog/datasets/{DATASET}"


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=60)


def ok(url: str, **params: Any) -> requests.Response:
    answer = get(url, **params)
    assert answer.status_code == 200, answer.text
    return answer


def csv_rows(body: bytes, delimiter: str = ";") -> list[list[str]]:
    text = body.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


# -- format lists ---------------------------------------------------------------------------


def test_dataset_export_formats_are_links_that_answer(base: str) -> None:
    links = ok(f"{base}/exports").json()["_links"]

    assert [link["rel"] for link in links] == [
        "csv",
        "fgb",
        "geojson",
        "json",
        "jsonl",
        "parquet",
        "xlsx",
    ]
    for link in links:
        assert link["href"] == f"{base}/exports/{link['rel']}"
        answer = ok(link["href"])
        assert answer.content
        assert f'filename="{DATASET}.' in answer.headers["content-disposition"]


def test_catalog_export_formats_are_listed(types_portal: LocalPortal) -> None:
    body = ok(f"{types_portal.url}{V21}/catalog/exports").json()

    assert body == {
        "_links": [
            {"rel": "csv", "href": f"{types_portal.url}{V21}/catalog/exports/csv"},
            {"rel": "json", "href": f"{types_portal.url}{V21}/catalog/exports/json"},
        ]
    }


# -- JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris", "Asia/Kolkata"])
def test_json_export_equals_the_records_answer(base: str, timezone: str) -> None:
    records = ok(f"{base}/records", limit=100, timezone=timezone).json()["results"]
    exported = ok(f"{base}/exports/json", timezone=timezone).json()

    assert exported == records
    assert [list(record) for record in exported] == [list(record) for record in records]


def test_json_export_writes_non_finite_doubles_as_null_and_files_with_their_url(
    base: str,
) -> None:
    exported = ok(f"{base}/exports/json").json()

    assert [record["x"] for record in exported] == [0.5, 1e16, None, None]
    assert exported[0]["photo"] == {**PHOTO, "url": f"{base}/files/photo-1"}
    assert exported[0]["shape"] == {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
        "properties": {},
    }
    assert exported[1]["seen"] == "2024-01-15T23:30:00.250000+00:00"


@pytest.mark.parametrize(
    "params",
    [
        {"select": "name, n * 2 AS double_n, point"},
        {"where": "n > 0", "order_by": "n DESC"},
        {"where": 'search(name, "alpha")'},
        {"refine": "name:Gamma"},
        {"exclude": "name:Alpha"},
        {"order_by": "x DESC", "limit": 2, "offset": 1},
        {"select": "count(*) AS total, max(n) AS top"},
        {"group_by": "flag", "select": "flag, count(*) AS k"},
    ],
)
def test_json_export_follows_the_query_parameters_like_records(
    base: str, params: dict[str, Any]
) -> None:
    records = ok(f"{base}/records", **{"limit": 100, **params}).json()["results"]

    assert ok(f"{base}/exports/json", **params).json() == records


def test_jsonl_export_is_one_record_per_line(base: str) -> None:
    body = ok(f"{base}/exports/jsonl").text

    assert body.endswith("\n")
    assert [json.loads(line) for line in body.splitlines()] == ok(f"{base}/exports/json").json()


def test_json_exports_escape_non_ascii_like_real_ones(base: str) -> None:
    body = ok(f"{base}/exports/json", select="name", limit=2).content

    assert body.isascii()
    assert b'"B\\u00eata, \\"quoted\\"\\nline"' in body
    assert body.startswith(b'[{"name": "Alpha"},{"name": ')


def test_export_has_no_records_window(api: str) -> None:
    """``limit`` defaults to -1: every record, past the records API's 10 000."""
    lines = ok(f"{api}/catalog/datasets/tiny-big/exports/jsonl").text.splitlines()

    assert len(lines) == 20050
    assert json.loads(lines[-1])["n"] == 20049
    assert len(ok(f"{api}/catalog/datasets/tiny-big/exports/json", limit=15000).json()) == 15000
    tail = ok(f"{api}/catalog/datasets/tiny-big/exports/json", offset=20000).json()
    assert [record["n"] for record in tail] == list(range(20000, 20050))


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": -2}, "limit >= -1"),
        ({"limit": "ten"}, "integer"),
        ({"offset": -1}, "offset >= 0"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"lang": "xx"}, "lang"),
        ({"use_labels": "maybe"}, "boolean"),
        ({"compressed": "2"}, "boolean"),
        ({"epsg": "wgs84"}, "integer"),
        ({"epsg": 999999}, "999999"),
    ],
)
def test_bad_export_parameters_get_an_ods_error(
    base: str,
    ods_error: Callable[[requests.Response, int, str], dict[str, Any]],
    params: dict[str, Any],
    detail: str,
) -> None:
    body = ods_error(get(f"{base}/exports/json", **params), 400, "InvalidRESTParameterError")
    assert detail in body["message"]


@pytest.mark.parametrize(
    ("params", "clause"),
    [
        ({"where": "nope = 1"}, "where"),
        ({"select": "avg("}, "select"),
        ({"refine": "n:abc"}, "refine"),
        ({"facet": "facet(name="}, "facet"),
    ],
)
def test_bad_odsql_in_an_export_gets_an_odsql_error(
    base: str,
    ods_error: Callable[[requests.Response, int, str], dict[str, Any]],
    params: dict[str, Any],
    clause: str,
) -> None:
    body = ods_error(get(f"{base}/exports/csv", **params), 400, "ODSQLError")
    assert body["message"].endswith(f"Clause(s) containing the error(s): {clause}.")


@pytest.mark.parametrize(
    ("fmt", "detail"), [("kml", "does not write 'kml'"), ("docx", "'docx' was found")]
)
def test_formats_the_portal_does_not_write_get_a_400(
    base: str,
    ods_error: Callable[[requests.Response, int, str], dict[str, Any]],
    fmt: str,
    detail: str,
) -> None:
    body = ods_error(get(f"{base}/exports/{fmt}"), 400, "InvalidRESTParameterError")
    assert detail in body["message"] and "csv, fgb, geojson, json" in body["message"]


def test_export_of_unknown_or_restricted_datasets(
    api: str, api_key: str, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    ods_error(get(f"{api}/catalog/datasets/nope/exports/csv"), 404, "NotFound")
    ods_error(get(f"{api}/catalog/datasets/tiny-private/exports/csv"), 401, "Unauthorized")
    ods_error(get(f"{api}/catalog/datasets/tiny-private/exports"), 401, "Unauthorized")
    answer = ok(f"{api}/catalog/datasets/tiny-private/exports/json", apikey=api_key)
    assert [record["n"] for record in answer.json()] == [0, 1, 2]


def test_facet_parameter_makes_export_refines_disjunctive(base: str) -> None:
    refines = ["name:Alpha", "name:Gamma"]
    assert ok(f"{base}/exports/json", refine=refines).json() == []

    either = ok(
        f"{base}/exports/json",
        refine=refines,
        facet='facet(name="name", disjunctive=true)',
    ).json()
    assert [record["name"] for record in either] == ["Alpha", "Gamma"]


# -- CSV ------------------------------------------------------------------------------------


def test_csv_export_cells(base: str) -> None:
    body = ok(f"{base}/exports/csv").content
    photo_url = f"{base}/files/photo-1"

    assert body.startswith(b"\xef\xbb\xbf")
    lines = body[3:].decode("utf-8").split("\r\n")
    assert lines[0] == "name;tags;n;x;flag;day;month;seen;point;shape;extra;photo"
    assert lines[1] == (
        "Alpha;a,b;1;0.5;true;2024-03-05;1988-01;2024-07-01T10:00:00+00:00;48.85, 2.35;"
        '"{""type"": ""Point"", ""coordinates"": [2.35, 48.85]}";'
        f'"{{""k"": [1, 2], ""z"": null}}";{photo_url}'
    )
    # quotes doubled, the line break kept inside the quoted cell, "c; d" quoted for its ";"
    assert lines[2].startswith(
        '"Bêta, ""quoted""\nline";"c; d";-7;1e+16;false;2023-12-31;;'
        "2024-01-15T23:30:00.250000+00:00;44.84, -0.57;"
        '"{""type"": ""Polygon"", ""coordinates"": [[[2.0, 48.0], [3.0, 48.0]'
    )
    assert lines[2].endswith(';"[1, ""two""]";')
    assert lines[3] == "Gamma;;42;;true;;;;;;text;"
    assert lines[4] == ";;;;;;;;;;;"
    assert lines[5] == ""
    assert len(csv_rows(body)) == 5


def test_csv_export_in_a_timezone(base: str) -> None:
    rows = csv_rows(ok(f"{base}/exports/csv", timezone="America/New_York").content)

    assert [row[7] for row in rows[1:3]] == [
        "2024-07-01T06:00:00-04:00",
        "2024-01-15T18:30:00.250000-05:00",
    ]


def test_csv_parameters(base: str) -> None:
    body = ok(
        f"{base}/exports/csv",
        delimiter=",",
        list_separator="|",
        use_labels="true",
        with_bom="false",
        select="name, tags, n, point",
    ).content

    assert not body.startswith(b"\xef\xbb\xbf")
    lines = body.decode("utf-8").split("\r\n")
    assert lines[0] == "Nom,Mots-clés,Nombre,Point géo"
    assert lines[1] == 'Alpha,a|b,1,"48.85, 2.35"'
    assert csv_rows(body, ",")[2] == ['Bêta, "quoted"\nline', "c; d", "-7", "44.84, -0.57"]


def test_csv_quote_all_quotes_text_cells_only(base: str) -> None:
    body = ok(f"{base}/exports/csv", quote_all="true", select="name, n, x, flag, `day`").content
    lines = body.decode("utf-8-sig").split("\r\n")

    assert lines[0] == '"name";"n";"x";"flag";"day"'
    assert lines[1] == '"Alpha";1;0.5;true;"2024-03-05"'
    assert lines[-2] == ";;;;"


def test_csv_tab_delimiter_and_bad_csv_parameters(
    base: str, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    rows = csv_rows(ok(f"{base}/exports/csv", delimiter="\t", select="name, n").content, "\t")
    assert rows[1] == ["Alpha", "1"]
    for params in ({"delimiter": ":"}, {"list_separator": '"'}, {"quote_all": "often"}):
        ods_error(get(f"{base}/exports/csv", **params), 400, "InvalidRESTParameterError")


def test_compressed_export_is_the_gzip_of_the_plain_one(base: str) -> None:
    plain = ok(f"{base}/exports/csv").content
    answer = ok(f"{base}/exports/csv", compressed="true")

    assert answer.headers["content-type"] == "application/gzip"
    assert f'filename="{DATASET}.csv.gzip"' in answer.headers["content-disposition"]
    assert "content-encoding" not in answer.headers
    assert gzip.decompress(answer.content) == plain


# -- GeoJSON --------------------------------------------------------------------------------


def test_geojson_export_takes_the_shape_as_geometry(base: str) -> None:
    collection = ok(f"{base}/exports/geojson", timezone="Europe/Paris").json()
    records = ok(f"{base}/exports/json", timezone="Europe/Paris").json()

    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [feature["geometry"] for feature in features] == [
        {"type": "Point", "coordinates": [2.35, 48.85]},
        POLYGON,
        None,
        None,
    ]
    for feature, record in zip(features, records):
        assert feature["type"] == "Feature"
        record.pop("shape")
        assert feature["properties"] == record
    assert features[0]["properties"]["seen"] == "2024-07-01T12:00:00+02:00"


def test_geojson_export_of_points_only(base: str) -> None:
    features = ok(f"{base}/exports/geojson", select="name, point").json()["features"]

    assert features[0] == {
        "type": "Feature",
        "geometry": {"coordinates": [2.35, 48.85], "type": "Point"},
        "properties": {"name": "Alpha", "point": {"lon": 2.35, "lat": 48.85}},
    }
    assert features[2]["geometry"] is None


def test_geojson_export_reprojects_with_epsg(base: str) -> None:
    from pyproj import Transformer

    features = ok(f"{base}/exports/geojson", epsg=2154, select="shape").json()["features"]
    to_lambert = Transformer.from_crs(4326, 2154, always_xy=True)

    x, y = features[0]["geometry"]["coordinates"]
    assert (x, y) == pytest.approx(to_lambert.transform(2.35, 48.85))
    ring = features[1]["geometry"]["coordinates"][0]
    assert ring[1] == pytest.approx(list(to_lambert.transform(3.0, 48.0)))
    assert features[2]["geometry"] is None


# -- Parquet --------------------------------------------------------------------------------


def test_parquet_export_has_typed_columns(base: str) -> None:
    answer = ok(f"{base}/exports/parquet", timezone="Europe/Paris")
    table = pq.read_table(io.BytesIO(answer.content))

    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    types = dict(zip(table.schema.names, table.schema.types))
    assert types == {
        "name": pa.string(),
        "tags": pa.list_(pa.string()),
        "n": pa.int64(),
        "x": pa.float64(),
        "flag": pa.bool_(),
        "day": pa.date32(),
        "month": pa.date32(),
        "seen": pa.timestamp("us", tz="Europe/Paris"),
        "point": pa.binary(),
        "shape": pa.binary(),
        "extra": pa.string(),
        "photo": pa.string(),
    }
    columns = table.to_pydict()
    assert columns["name"] == NAMES
    assert columns["tags"] == [["a", "b"], ["c; d"], [], None]
    assert columns["n"] == [1, -7, 42, None]
    assert columns["x"][:2] == [0.5, 1e16] and columns["x"][3] is None
    assert columns["month"][0] == date(1988, 1, 1)
    assert columns["seen"][1] == datetime(2024, 1, 15, 23, 30, 0, 250000, tzinfo=UTC)
    assert [json.loads(v) if v else v for v in columns["extra"]] == [
        {"k": [1, 2], "z": None},
        [1, "two"],
        "text",
        None,
    ]
    assert json.loads(columns["photo"][0])["url"] == f"{base}/files/photo-1"


def test_parquet_export_is_geoparquet(base: str) -> None:
    import geopandas
    import shapely

    frame = geopandas.read_parquet(io.BytesIO(ok(f"{base}/exports/parquet").content))

    assert frame.geometry.name == "shape"
    assert frame.crs is not None and frame.crs.to_epsg() == 4326
    assert frame["shape"].iloc[1].equals(shapely.geometry.shape(POLYGON))
    assert isinstance(frame["point"], geopandas.GeoSeries)
    assert frame["point"].iloc[0].equals(shapely.Point(2.35, 48.85))
    assert frame["point"].iloc[2] is None and frame["shape"].iloc[3] is None
    metadata = json.loads(
        pq.read_schema(io.BytesIO(ok(f"{base}/exports/parquet").content)).metadata[b"geo"]
    )
    assert metadata["primary_column"] == "shape"
    assert metadata["columns"]["point"]["geometry_types"] == ["Point"]


def test_parquet_export_parameters(base: str) -> None:
    import geopandas

    body = ok(f"{base}/exports/parquet", parquet_compression="zstd", epsg=2154).content
    metadata = pq.ParquetFile(io.BytesIO(body)).metadata

    assert metadata.row_group(0).column(0).compression == "ZSTD"
    frame = geopandas.read_parquet(io.BytesIO(body))
    assert frame.crs.to_epsg() == 2154
    assert frame["point"].iloc[0].x == pytest.approx(652_000, abs=5_000)

    labelled = pq.read_table(io.BytesIO(ok(f"{base}/exports/parquet", use_labels="true").content))
    assert labelled.schema.names[:3] == ["Nom", "Mots-clés", "Nombre"]


def test_bad_parquet_compression(
    base: str, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    body = ods_error(
        get(f"{base}/exports/parquet", parquet_compression="gzip"), 400, "InvalidRESTParameterError"
    )
    assert "'snappy', 'zstd'" in body["message"]


# -- XLSX and FlatGeobuf --------------------------------------------------------------------

_SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def read_xlsx(body: bytes) -> list[list[Any]]:
    """Cell values of the first sheet (shared or inline strings, numbers, booleans)."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in archive.namelist():
            root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{_SHEET}t")) for si in root]
        sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    rows: list[list[Any]] = []
    for row in sheet.iter(f"{_SHEET}row"):
        values: list[Any] = []
        for cell in row.iter(f"{_SHEET}c"):
            column = re.match(r"[A-Z]+", cell.get("r", "A"))
            index = 0
            for letter in column.group(0) if column else "A":
                index = index * 26 + ord(letter) - 64
            values += [None] * (index - 1 - len(values))
            kind, value = cell.get("t"), cell.find(f"{_SHEET}v")
            if kind == "s" and value is not None:
                values.append(shared[int(value.text or 0)])
            elif kind == "inlineStr":
                values.append("".join(t.text or "" for t in cell.iter(f"{_SHEET}t")))
            elif kind == "str":
                values.append(value.text if value is not None else "")
            elif kind == "b" and value is not None:
                values.append(value.text == "1")
            elif value is not None:
                values.append(float(value.text or 0))
        rows.append(values)
    return rows


def test_xlsx_export(base: str) -> None:
    answer = ok(f"{base}/exports/xlsx", use_labels="true", select="name, n, x, flag, seen, point")
    rows = read_xlsx(answer.content)

    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert rows[0] == ["Nom", "Nombre", "Valeur", "Drapeau", "Vu le", "Point géo"]
    assert rows[1] == [
        "Alpha",
        1.0,
        0.5,
        True,
        "2024-07-01T10:00:00+00:00",
        "48.85, 2.35",
    ]
    assert rows[2][0] == 'Bêta, "quoted"\nline'
    assert rows[3] == ["Gamma", 42.0, None, True]
    assert len(rows) == 4  # the last record has only nulls: an empty row, not written


def test_fgb_export_reads_back_with_pyogrio(base: str, tmp_path: Path) -> None:
    import pyogrio

    path = tmp_path / "export.fgb"
    path.write_bytes(ok(f"{base}/exports/fgb").content)
    frame = pyogrio.read_dataframe(path)

    assert frame["name"].tolist()[:3] == NAMES[:3] and frame["name"].isna().iloc[3]
    assert frame.geometry.iloc[0].wkt == "POINT (2.35 48.85)"
    assert frame.crs.to_epsg() == 4326
    assert frame["n"].tolist()[:3] == [1, -7, 42]


# -- catalog exports ------------------------------------------------------------------------


def test_catalog_json_export_lists_the_dataset_objects(api: str) -> None:
    exported = ok(f"{api}/catalog/exports/json").json()
    visible = ok(f"{api}/catalog/datasets", limit=100).json()["results"]

    assert exported == visible
    assert "tiny-private" not in {item["dataset_id"] for item in exported}
    selected = ok(f"{api}/catalog/exports/json", select="dataset_id, title", limit=1).json()
    assert (
        selected
        == ok(f"{api}/catalog/datasets", select="dataset_id, title", limit=1).json()["results"]
    )


def test_catalog_csv_export(api: str, api_key: str) -> None:
    rows = csv_rows(ok(f"{api}/catalog/exports/csv", select="dataset_id, records_count").content)

    assert rows[0] == ["dataset_id", "records_count"]
    assert ["tiny-big", "20050"] in rows[1:]
    assert all(row[0] != "tiny-private" for row in rows)
    with_key = csv_rows(
        ok(
            f"{api}/catalog/exports/csv", where='dataset_id = "tiny-private"', apikey=api_key
        ).content
    )
    assert len(with_key) == 2 and with_key[1][0] == "tiny-private"


def test_catalog_export_formats_it_does_not_write(
    api: str, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    body = ods_error(get(f"{api}/catalog/exports/rss"), 400, "InvalidRESTParameterError")
    assert "csv, json" in body["message"]


# -- streaming ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_portal() -> Iterator[LocalPortal]:
    """The sample datasets with 60 000 events: a JSON export of about 22 MB, more than the
    socket buffers hold."""
    with LocalPortal(sample=True, sample_records=60_000) as running:
        yield running


def test_clients_that_leave_in_the_middle_of_exports_do_not_hurt_the_server(
    big_portal: LocalPortal,
) -> None:
    url = f"{big_portal.url}{V21}/catalog/datasets/sample-events/exports/json"
    # More abandoned exports than the portal has handler threads: none may stay stuck.
    for _ in range(17):
        with requests.get(url, stream=True, timeout=60) as answer:
            assert answer.status_code == 200
            received = b""
            for chunk in answer.iter_content(65536):
                received += chunk
                if len(received) > 200_000:
                    break
            assert received.startswith(b'[{"event_id": "EV-0000001"')

    records = ok(f"{big_portal.url}{V21}/catalog/datasets/sample-events/records", limit=1)
    assert records.json()["total_count"] == 60_000
    tail = ok(url, select="event_id", offset=59_998).json()
    assert tail == [{"event_id": "EV-0059999"}, {"event_id": "EV-0060000"}]
    # every abandoned export freed its cursor (the portal runs in this process)
    assert wait_until(lambda: all(stream.closed for stream in export_streams()))


def export_streams() -> list[_Stream]:
    return [item for item in gc.get_objects() if isinstance(item, _Stream)]


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_big_export_streams_every_record(big_portal: LocalPortal) -> None:
    url = f"{big_portal.url}{V21}/catalog/datasets/sample-events/exports/csv"
    count = 0
    with requests.get(url, params={"select": "event_id"}, stream=True, timeout=120) as answer:
        assert answer.headers.get("transfer-encoding") == "chunked"
        for line in answer.iter_lines():
            count += 1
            if count == 2:
                assert line == b"EV-0000001"
    assert count == 60_001
