"""Fixtures of the portal tests: a tiny hand-built catalog served over real HTTP.

The catalog follows the storage convention of ``odsframe/testing/model.py`` exactly (one DuckDB
table per dataset, hidden ``__`` columns), so the server is tested on data whose every value is
known, independently of the folder loader and the sample generator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest
import requests
from referencing import Registry, Resource

from odsframe.testing.model import PortalAttachment, PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
API_KEY = "test-secret-key"
OPENAPI = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "reference"
    / "openapi"
    / "ods-explore-v2.1-openapi.json"
)
PROCESSED = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)


@dataclass
class TinyCatalog:
    """Just what the server needs from a catalog: a DuckDB connection and the datasets."""

    con: duckdb.DuckDBPyConnection
    datasets: dict[str, PortalDataset] = field(default_factory=dict)


def record_id(values: list[Any]) -> str:
    """SHA1 over the sorted values, as ods-api.md section 8.4 describes."""
    text = "".join(sorted("" if value is None else str(value) for value in values))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


TYPES_FIELDS = [
    PortalField("name", "text", "Name", annotations={"facet": []}),
    PortalField("tags", "text", "Tags", annotations={"multivalued": [";"]}),
    PortalField("count", "int", "Count"),
    PortalField("ratio", "double", "Ratio"),
    PortalField("flag", "boolean", "Flag"),
    PortalField("day", "date", "Day"),
    PortalField("month", "date", "Month", annotations={"timeserie_precision": ["month"]}),
    PortalField("year", "date", "Year", annotations={"timeserie_precision": ["year"]}),
    PortalField("seen_at", "datetime", "Seen at"),
    PortalField("location", "geo_point_2d", "Location"),
    PortalField("area", "geo_shape", "Area"),
    PortalField("photo", "file", "Photo"),
    PortalField("extra", "json_blob", "Extra"),
]

POLYGON = {"type": "Polygon", "coordinates": [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 48.0]]]}
PHOTO = {
    "id": "3f1c0ffee",
    "filename": "photo.jpg",
    "format": "JPEG",
    "width": 640,
    "height": 480,
    "thumbnail": True,
    "mimetype": "image/jpeg",
}

#: The rows of ``tiny-types``: (name, tags, count, ratio, flag, day, month, year, seen_at (UTC),
#: location (lon, lat), area, photo, extra).
TYPES_ROWS: list[tuple[Any, ...]] = [
    (
        "Alpha",
        ["a", "b"],
        1,
        0.5,
        True,
        "2024-03-05",
        "1988-01-01",
        "2014-01-01",
        "2024-07-01 10:00:00",
        (2.35, 48.85),
        {"type": "Point", "coordinates": [2.35, 48.85]},
        PHOTO,
        {"k": [1, 2], "z": None},
    ),
    (
        "Bêta été",
        ["c"],
        -7,
        2.0,
        False,
        "2023-12-31",
        "2001-06-01",
        "1999-01-01",
        "2024-01-15 23:30:00.250",
        (-0.57, 44.84),
        POLYGON,
        None,
        [1, "two"],
    ),
    ("Gamma", [], 42, -1.25, True, None, None, None, None, None, None, None, "text"),
    (None, None, None, None, None, None, None, None, None, None, None, None, None),
]


def _create_types_table(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    con.execute(
        f"""CREATE TABLE "{table}" (
            name VARCHAR, tags VARCHAR[], count BIGINT, ratio DOUBLE, flag BOOLEAN, day DATE,
            month DATE, year DATE, seen_at TIMESTAMPTZ, location STRUCT(lon DOUBLE, lat DOUBLE),
            area VARCHAR, photo JSON, extra JSON, __rowid BIGINT, __id VARCHAR,
            __timestamp TIMESTAMPTZ, __fts VARCHAR,
            __bbox__area STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE))"""
    )
    ids = []
    for rowid, row in enumerate(TYPES_ROWS):
        (name, tags, count, ratio, flag, day, month, year, seen, point, area, photo, extra) = row
        rid = record_id([name, count, ratio, day, seen, rowid])
        ids.append(rid)
        texts = " ".join(t for t in [name, *(tags or [])] if t).lower()
        bbox = None
        if area is not None:
            flat = _coordinates(area["coordinates"])
            xs, ys = [p[0] for p in flat], [p[1] for p in flat]
            bbox = {"xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys)}
        con.execute(
            f'INSERT INTO "{table}" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMP AT TIME ZONE '
            "'UTC', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                tags,
                count,
                ratio,
                flag,
                day,
                month,
                year,
                seen,
                None if point is None else {"lon": point[0], "lat": point[1]},
                None if area is None else json.dumps(area, separators=(",", ":")),
                None if photo is None else json.dumps(photo),
                None if extra is None else json.dumps(extra),
                rowid,
                rid,
                PROCESSED,
                texts,
                bbox,
            ],
        )
    return ids


def _coordinates(nested: Any) -> list[list[float]]:
    if nested and isinstance(nested[0], int | float):
        return [nested]
    return [point for part in nested for point in _coordinates(part)]


def _metas(title: str, records: int) -> dict[str, dict[str, Any]]:
    return {
        "default": {
            "title": title,
            "description": f"<p>{title}</p>",
            "records_count": records,
            "modified": "2024-03-01T08:30:00+00:00",
            "data_processed": "2024-03-01T08:30:00+00:00",
            "metadata_processed": "2024-03-01T08:31:00+00:00",
            "modified_updates_on_data_change": True,
            "publisher": "odsframe tests",
            "keyword": ["test"],
        },
        "explore": {"download_count": 3},
    }


def build_tiny_catalog(tmp_path: Path) -> TinyCatalog:
    """Three datasets: every field type, a restricted one, and a 20 050-row one for windows."""
    con = duckdb.connect()
    catalog = TinyCatalog(con)
    ids = _create_types_table(con, "ds_tiny_types")
    attachment = tmp_path / "notice.pdf"
    attachment.write_bytes(b"%PDF-1.4 test")
    catalog.datasets["tiny-types"] = PortalDataset(
        dataset_id="tiny-types",
        table="ds_tiny_types",
        fields=list(TYPES_FIELDS),
        metas=_metas("Tiny types", len(TYPES_ROWS)),
        dataset_uid="da_tiny01",
        features=["geo", "analyze", "timeserie"],
        attachments=[PortalAttachment("notice_pdf", "notice.pdf", "application/pdf", attachment)],
        processed_at=PROCESSED,
    )
    catalog.record_ids = ids  # type: ignore[attr-defined]
    catalog.record_names = [row[0] for row in TYPES_ROWS]  # type: ignore[attr-defined]

    con.execute(
        """CREATE TABLE ds_private AS SELECT 'secret ' || range AS name, range AS n,
           range AS __rowid, md5(range::VARCHAR) AS __id,
           TIMESTAMPTZ '2024-03-01 08:30:00+00' AS __timestamp,
           'secret ' || range AS __fts FROM range(3)"""
    )
    catalog.datasets["tiny-private"] = PortalDataset(
        dataset_id="tiny-private",
        table="ds_private",
        fields=[PortalField("name", "text", "Name"), PortalField("n", "int", "N")],
        metas=_metas("Tiny private", 3),
        visibility="restricted",
        features=["analyze"],
    )

    con.execute(
        """CREATE TABLE ds_big AS SELECT range AS n, range % 7 AS bucket, range AS __rowid,
           md5(range::VARCHAR) AS __id, TIMESTAMPTZ '2024-03-01 08:30:00+00' AS __timestamp,
           '' AS __fts FROM range(20050)"""
    )
    catalog.datasets["tiny-big"] = PortalDataset(
        dataset_id="tiny-big",
        table="ds_big",
        fields=[PortalField("n", "int", "N"), PortalField("bucket", "int", "Bucket")],
        metas=_metas("Tiny big", 20050),
        features=["analyze"],
    )
    return catalog


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> TinyCatalog:
    return build_tiny_catalog(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def portal(tiny_catalog: TinyCatalog) -> Iterator[LocalPortal]:
    """The tiny catalog served on a free port, with one API key."""
    with LocalPortal(catalog=tiny_catalog, api_keys=[API_KEY]) as running:
        yield running


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def api(portal: LocalPortal) -> str:
    """The v2.1 base URL of the session portal."""
    return portal.url + V21


@pytest.fixture(scope="session")
def api_key() -> str:
    """The one API key of the session portal."""
    return API_KEY


@pytest.fixture(scope="session")
def ods_error() -> Callable[[requests.Response, int, str], dict[str, Any]]:
    """``ods_error(answer, status, error_code)`` checks an ODS v2 error answer, returns its body."""
    return assert_ods_error


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    assert OPENAPI.is_file(), f"v2.1 OpenAPI spec not found at {OPENAPI}"
    spec: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return spec


def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes a ``"null"`` type."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        converted["type"] = [node["type"], "null"]
    return converted


@pytest.fixture(scope="session")
def validate(openapi: dict[str, Any]) -> Callable[[Any, str], None]:
    """``validate(body, "results-v2.1")`` against a schema of the v2.1 spec, ``$ref`` resolved."""
    spec = _as_json_schema(openapi)
    registry: Registry = Registry().with_resource("spec", Resource.opaque(spec))

    def check(body: Any, schema_name: str) -> None:
        schema = {"$ref": f"spec#/components/schemas/{schema_name}"}
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        errors = sorted(validator.iter_errors(body), key=str)
        assert not errors, [f"{list(error.path)}: {error.message}" for error in errors[:5]]

    return check


def assert_ods_error(answer: requests.Response, status: int, error_code: str) -> dict[str, Any]:
    """The answer is an ODS v2 error with this status and code; returns the body."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = answer.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == error_code, body
    assert isinstance(body["message"], str) and body["message"]
    return body
