"""Fixtures of the portal tests: a tiny hand-built catalog served over real HTTP.

The catalog is built with ``Catalog.add_dataset`` from arrow tables whose every value is known
(see ``TYPES_ROWS``), so the server is tested on exact data, independently of the folder loader
and of the sample generator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
import requests
from referencing import Registry, Resource

from odsframe.testing.catalog import Catalog
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


TYPES_FIELDS = [
    PortalField("name", "text", "Name", annotations={"facet": []}),
    PortalField("tags", "text", "Tags", annotations={"multivalued": [";"]}),
    PortalField("amount", "int", "Amount"),
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

#: The rows of ``tiny-types``: (name, tags, amount, ratio, flag, day, month, year, seen_at (UTC),
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
    ("Empty", None, 0, None, None, None, None, None, None, None, None, None, None),
]


def _types_table() -> pa.Table:
    """``TYPES_ROWS`` in the arrow form ``Catalog.add_dataset`` takes."""
    columns = list(zip(*TYPES_ROWS))
    point = pa.struct([("lon", pa.float64()), ("lat", pa.float64())])

    def as_json(values: tuple[Any, ...], compact: bool = False) -> pa.Array:
        separators = (",", ":") if compact else None
        return pa.array(
            [None if v is None else json.dumps(v, separators=separators) for v in values],
            pa.string(),
        )

    return pa.table(
        {
            "name": pa.array(columns[0], pa.string()),
            "tags": pa.array(columns[1], pa.list_(pa.string())),
            "amount": pa.array(columns[2], pa.int64()),
            "ratio": pa.array(columns[3], pa.float64()),
            "flag": pa.array(columns[4], pa.bool_()),
            "day": pa.array([_date(v) for v in columns[5]], pa.date32()),
            "month": pa.array([_date(v) for v in columns[6]], pa.date32()),
            "year": pa.array([_date(v) for v in columns[7]], pa.date32()),
            "seen_at": pa.array(
                [
                    None if v is None else datetime.fromisoformat(v).replace(tzinfo=UTC)
                    for v in columns[8]
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "location": pa.array(
                [None if v is None else {"lon": v[0], "lat": v[1]} for v in columns[9]], point
            ),
            "area": as_json(columns[10], compact=True),
            "photo": as_json(columns[11]),
            "extra": as_json(columns[12]),
        }
    )


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _metas(title: str) -> dict[str, dict[str, Any]]:
    return {
        "default": {
            "title": title,
            "description": f"<p>{title}</p>",
            "modified": "2024-03-01T08:30:00+00:00",
            "data_processed": "2024-03-01T08:30:00+00:00",
            "metadata_processed": "2024-03-01T08:31:00+00:00",
            "modified_updates_on_data_change": True,
            "publisher": "odsframe tests",
            "keyword": ["test"],
        },
        "explore": {"download_count": 3},
    }


def build_tiny_catalog(tmp_path: Path) -> Catalog:
    """Three datasets: every field type, a restricted one, and a 20 050-row one for windows."""
    catalog = Catalog()
    attachment = tmp_path / "notice.pdf"
    attachment.write_bytes(b"%PDF-1.4 test")
    types = catalog.add_dataset(
        PortalDataset(
            dataset_id="tiny-types",
            table="",
            fields=list(TYPES_FIELDS),
            metas=_metas("Tiny types"),
            dataset_uid="da_tiny01",
            features=["geo", "analyze", "timeserie"],
            attachments=[
                PortalAttachment("notice_pdf", "notice.pdf", "application/pdf", attachment)
            ],
            processed_at=PROCESSED,
        ),
        _types_table(),
    )
    rows = catalog.con.execute(
        f'SELECT __id, name FROM "{types.table}" ORDER BY __rowid'
    ).fetchall()
    catalog.record_ids = [row[0] for row in rows]  # type: ignore[attr-defined]
    catalog.record_names = [row[1] for row in rows]  # type: ignore[attr-defined]

    catalog.add_dataset(
        PortalDataset(
            dataset_id="tiny-private",
            table="",
            fields=[PortalField("name", "text", "Name"), PortalField("n", "int", "N")],
            metas=_metas("Tiny private"),
            visibility="restricted",
            processed_at=PROCESSED,
        ),
        pa.table({"name": [f"secret {i}" for i in range(3)], "n": list(range(3))}),
    )
    catalog.add_dataset(
        PortalDataset(
            dataset_id="tiny-big",
            table="",
            fields=[
                PortalField("n", "int", "N", annotations={"id": []}),
                PortalField("bucket", "int", "Bucket"),
            ],
            metas=_metas("Tiny big"),
            processed_at=PROCESSED,
        ),
        pa.table(
            {
                "n": pa.array(range(20050), pa.int64()),
                "bucket": pa.array([i % 7 for i in range(20050)], pa.int64()),
            }
        ),
    )
    return catalog


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return build_tiny_catalog(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def portal(tiny_catalog: Catalog) -> Iterator[LocalPortal]:
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
