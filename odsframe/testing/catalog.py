"""The local portal's catalog: datasets loaded from files (or generated tables) into DuckDB.

A data folder holds one dataset per data file, named ``<dataset_id>.<ext>`` with ``ext`` one
of ``parquet``, ``csv``, ``json``, ``geojson`` or ``jsonl`` (ids may contain ``@``, ``-``,
``_`` and ``.``). Beside a data file:

* ``<dataset_id>.schema.json`` (optional) holds the dataset metadata in the shape of a real
  v2.1 ``GET /catalog/datasets/<id>`` body (``fields``, ``metas``, ``visibility``,
  ``features``, ``attachments`` ...). The v2.0 ``{"dataset": {...}}`` wrapper and v1 dataset
  bodies (flat ``metas``, list-form annotations) are accepted too. A schema without a data
  file gives a dataset without records (like an attachment-only dataset).
* ``<dataset_id>.attachments/`` (optional): every file becomes an attachment (id = the file
  name slugged, ``cities1000.zip`` -> ``cities1000_zip``).
* ``<dataset_id>.files/`` (optional): blobs of ``file`` fields; the file id is the file name.

Real ODS exports load as they are: v2.x JSON exports (a list of flat records), v1 JSON exports
(``[{datasetid, recordid, fields, geometry, record_timestamp}]``, recordid kept as the record
id), v1 search responses (``{nhits, records, facet_groups}``; facet names become ``facet``
annotations), v2.0 and v2.1 records responses, GeoJSON exports and CSV exports (``;`` or
``,`` sniffed, BOM, CRLF, quoted multi-line cells, label headers slugged into names).

Without a schema, field types are inferred from the values (:func:`infer_column`): JSON
numbers give ``int`` (``1.0`` gives ``double``), booleans ``boolean``, ISO strings ``date``
(with ``timeserie_precision`` for columns made only of ``YYYY-MM`` or, in JSON, ``YYYY``
values) or ``datetime`` (no offset means UTC), ``{lon, lat}`` objects or ``[lat, lon]``
arrays ``geo_point_2d``, GeoJSON geometries or Features ``geo_shape``, ODS file objects
``file``, lists of strings multivalued ``text``, other objects ``json_blob``. CSV cells are
strings, so there numbers, booleans, ``"lat, lon"`` / ``"lat,lon"`` points and GeoJSON
geometry strings are recognised too; a 4-digit CSV number stays an ``int``.

Records go into one DuckDB table per dataset following ``model.py``'s storage convention.
The record id (``__id``) is the SHA1 hex digest of the values of the ``id``-annotated fields
(all fields when none is), each null value dropped and every other value written as text:

* text as is; multivalued text joined with its separator;
* int, double, boolean and date as DuckDB casts them to ``VARCHAR`` (``12``, ``1.5``,
  ``true``, ``2024-03-01``);
* datetime as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (UTC);
* geo_point_2d as ``lat,lon``; geo_shape, file and json_blob as their compact JSON text;

then sorted and concatenated without separator (ods-api.md section 8.4). As on ODS, records
with the same id are one record: the last one in the source wins (the others are dropped). A
v1 ``recordid`` or v2.0 ``record.id`` found in the source is kept as the id instead.

Files that cannot be read are skipped with a logged warning naming the file and the reason,
so a portal always starts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import mimetypes
import re
import struct
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import shapely

from odsframe._spec import FIELD_TYPES
from odsframe.testing.errors import NotFoundError
from odsframe.testing.model import (
    HIDDEN_BBOX_PREFIX,
    HIDDEN_ENUM_PREFIX,
    HIDDEN_FTS,
    HIDDEN_ID,
    HIDDEN_ROWID,
    HIDDEN_TIMESTAMP,
    PortalAttachment,
    PortalDataset,
    PortalField,
)

logger = logging.getLogger(__name__)

#: Most distinct values of a text field that gets an ``__enum__`` twin column.
ENUM_MAX_VALUES = 1024

#: Data file extensions, in the order tried when two files share a dataset id.
DATA_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".json", ".geojson", ".jsonl")
SCHEMA_SUFFIX = ".schema.json"
ATTACHMENTS_SUFFIX = ".attachments"
FILES_SUFFIX = ".files"

#: Id of the pseudo-dataset that ``/catalog/datasets`` ODSQL queries run over.
CATALOG_DATASET_ID = "__catalog"
CATALOG_TABLE = "catalog_datasets"
CATALOG_PUBLIC_VIEW = "catalog_datasets_public"

#: DuckDB storage type per ODS field type (``model.py``).
STORAGE_TYPES: dict[str, str] = {
    "text": "VARCHAR",
    "int": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMPTZ",
    "geo_point_2d": "STRUCT(lon DOUBLE, lat DOUBLE)",
    "geo_shape": "VARCHAR",
    "file": "JSON",
    "json_blob": "JSON",
}
BBOX_STORAGE_TYPE = "STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE)"

#: ``metas.default`` keys in the order a real v2.1 portal writes them (ods-api.md 4.3).
DEFAULT_META_KEYS: tuple[str, ...] = (
    "title",
    "description",
    "theme",
    "keyword",
    "license",
    "license_url",
    "language",
    "metadata_languages",
    "timezone",
    "modified",
    "modified_updates_on_metadata_change",
    "modified_updates_on_data_change",
    "geographic_area_mode",
    "geographic_area",
    "data_processed",
    "metadata_processed",
    "geographic_reference",
    "geographic_reference_auto",
    "territory",
    "geometry_types",
    "bbox",
    "publisher",
    "references",
    "records_count",
    "attributions",
    "source_domain",
    "source_domain_title",
    "source_domain_address",
    "source_dataset",
    "shared_catalog",
    "federated",
    "oauth_scope",
    "parent_domain",
)

POINT_TYPE = pa.struct([("lon", pa.float64()), ("lat", pa.float64())])
BBOX_TYPE = pa.struct(
    [("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64())]
)

_GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_INT_RE = r"^[+-]?(?:0|[1-9][0-9]*)$"
_FLOAT_RE = r"^[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_BOOL_RE = r"^(?i:true|false)$"
_DAY_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_MONTH_RE = r"^[0-9]{4}-[0-9]{2}$"
_YEAR_RE = r"^[0-9]{4}$"
_DATETIME_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_POINT_RE = r"^\s*[+-]?[0-9]+(?:\.[0-9]+)?\s*,\s*[+-]?[0-9]+(?:\.[0-9]+)?\s*$"
#: A column of bare ``YYYY`` strings is a year-precision date only within these years
#: (4-digit codes such as street codes fall outside).
_YEAR_RANGE = (1000, 2100)
_INT64_MAX = 2**63 - 1


class DataFileError(ValueError):
    """A data or schema file that cannot be loaded; the message names the file and why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


# --------------------------------------------------------------------------------------
# Small helpers


def slugify(text: str) -> str:
    """Field name for a header label, as ODS makes it (``"Numéro d’arrondissement"`` ->
    ``numero_d_arrondissement``): accents dropped, lower case, other characters ``_``."""
    decomposed = unicodedata.normalize("NFKD", text)
    unaccented = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "_", unaccented.lower()).strip("_")


def attachment_id(filename: str) -> str:
    """ODS attachment id for a file name (``cities1000.zip`` -> ``cities1000_zip``)."""
    return slugify(filename) or "attachment"


def dataset_uid(dataset_id: str) -> str:
    """Stable ``da_`` + 6 base-36 characters derived from the dataset id."""
    number = int.from_bytes(hashlib.sha1(dataset_id.encode()).digest()[:8], "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    chars = []
    for _ in range(6):
        number, rest = divmod(number, 36)
        chars.append(digits[rest])
    return "da_" + "".join(chars)


def table_name(dataset_id: str) -> str:
    """DuckDB table name for a dataset: a plain identifier, unique per id."""
    readable = re.sub(r"[^a-z0-9]+", "_", dataset_id.lower()).strip("_")[:40]
    digest = hashlib.sha1(dataset_id.encode()).hexdigest()[:8]
    return f"ds_{readable}_{digest}"


def quote_ident(name: str) -> str:
    """A DuckDB identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def iso_utc(moment: datetime) -> str:
    """``2024-02-20T17:39:42.804000+00:00``: how ODS writes metadata datetimes."""
    return moment.astimezone(UTC).isoformat()


def _parse_iso(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def convert_annotations(annotations: Any) -> dict[str, Any]:
    """v2.1 dict-form annotations from the v1 list form (or a dict, returned as a copy)."""
    if annotations is None:
        return {}
    if isinstance(annotations, dict):
        return {
            str(k): (list(v) if isinstance(v, list) else ([] if v is None else [v]))
            for k, v in annotations.items()
        }
    if isinstance(annotations, list):
        converted: dict[str, Any] = {}
        for item in annotations:
            if not isinstance(item, dict) or "name" not in item:
                raise ValueError(f"annotation {item!r} has no 'name'")
            args = item.get("args")
            converted[str(item["name"])] = (
                list(args) if isinstance(args, list) else ([] if args is None else [args])
            )
        return converted
    raise ValueError(f"annotations must be a dict or a list, not {type(annotations).__name__}")


# --------------------------------------------------------------------------------------
# Values: geometry, points, files


def as_geometry(value: Any) -> dict[str, Any] | None:
    """The GeoJSON geometry in a geometry, a Feature, or the JSON text of either.

    Raises
    ------
    ValueError
        When the value is none of those.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {value[:60]!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"not a GeoJSON object: {value!r:.60}")
    kind = value.get("type")
    if kind == "Feature":
        geometry = value.get("geometry")
        return None if geometry is None else as_geometry(geometry)
    if kind in _GEOMETRY_TYPES and (
        isinstance(value.get("coordinates"), list)
        or (kind == "GeometryCollection" and isinstance(value.get("geometries"), list))
    ):
        return value
    raise ValueError(f"not a GeoJSON geometry: {_compact_json(value)[:60]!r}")


def as_point(value: Any) -> tuple[float, float]:
    """``(lon, lat)`` of a ``{lon, lat}`` object, a v1 ``[lat, lon]`` array, a GeoJSON
    Point, or a ``"lat, lon"`` / ``"lat,lon"`` string.

    Raises
    ------
    ValueError
        When the value is none of those or is out of the lat/lon range.
    """
    lon: Any
    lat: Any
    if isinstance(value, dict):
        if "lon" in value and "lat" in value:
            lon, lat = value["lon"], value["lat"]
        elif value.get("type") == "Point" and isinstance(value.get("coordinates"), list):
            lon, lat = value["coordinates"][:2]
        else:
            raise ValueError(f"not a point: {value!r:.60}")
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        lat, lon = value
    elif isinstance(value, str) and re.fullmatch(_POINT_RE, value):
        lat, lon = (part.strip() for part in value.split(","))
    else:
        raise ValueError(f"not a point: {value!r:.60}")
    if isinstance(lon, bool) or isinstance(lat, bool):
        raise ValueError(f"not a point: {value!r:.60}")
    try:
        lon_f, lat_f = float(lon), float(lat)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a point: {value!r:.60}") from exc
    if not (-90.0 <= lat_f <= 90.0 and -180.0 <= lon_f <= 180.0):
        raise ValueError(f"point out of range (lat {lat_f}, lon {lon_f})")
    return lon_f, lat_f


def _is_file_object(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value and "filename" in value


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, GIF or JPEG file, read from its header."""
    with path.open("rb") as handle:
        head = handle.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", head[6:10])
            return int(width), int(height)
        if head[:2] == b"\xff\xd8":
            handle.seek(2)
            while True:
                marker = handle.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    return None
                length = struct.unpack(">H", marker[2:4])[0]
                if marker[1] in (0xC0, 0xC1, 0xC2):
                    data = handle.read(5)
                    height, width = struct.unpack(">HH", data[1:5])
                    return int(width), int(height)
                handle.seek(length - 2, 1)
    return None


def file_object(file_id: str, path: Path) -> dict[str, Any]:
    """The ODS file object for a blob (``{id, filename, format, width, height, thumbnail,
    mimetype}``)."""
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    size = image_size(path) if mimetype.startswith("image/") else None
    return {
        "id": file_id,
        "filename": path.name,
        "format": path.suffix.lstrip(".").lower() or None,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "thumbnail": size is not None,
        "mimetype": mimetype,
    }


# --------------------------------------------------------------------------------------
# Columns: inference and conversion to the storage convention


@dataclass
class Column:
    """One field's values in arrow form, ready for DuckDB (``bbox`` for geo_shape)."""

    type: str
    array: pa.Array
    annotations: dict[str, Any] = field(default_factory=dict)
    bbox: pa.Array | None = None


_cast_local = threading.local()


def _duckdb_cast(array: pa.Array, sql_type: str) -> pa.Array:
    """``TRY_CAST`` every value with DuckDB (TimeZone UTC); raises if a value fails."""
    con = getattr(_cast_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        _cast_local.con = con
    source = pa.table({"v": array})
    con.register("__cast_source", source)
    try:
        result = con.sql(
            f"SELECT TRY_CAST(v AS {sql_type}) AS v FROM __cast_source"
        ).to_arrow_table()
    finally:
        con.unregister("__cast_source")
    out = result.column("v").combine_chunks()
    if out.null_count != array.null_count:
        bad = pc.and_(pc.is_null(out), pc.is_valid(array))
        first = pc.filter(array, bad)[0].as_py()
        raise ValueError(f"{first!r} is not a valid {sql_type.lower()}")
    return out


def _all_match(valid: pa.Array, pattern: str) -> bool:
    # Most columns fail on their first values: check those before scanning everything.
    head = valid.slice(0, 1000)
    if not pc.all(pc.match_substring_regex(head, pattern)).as_py():
        return False
    if len(valid) <= len(head):
        return True
    return bool(pc.all(pc.match_substring_regex(valid, pattern)).as_py())


def _any_match(valid: pa.Array, pattern: str) -> bool:
    return bool(pc.any(pc.match_substring_regex(valid, pattern)).as_py())


def _strings_to_dates(array: pa.Array) -> pa.Array:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` strings (or datetimes) -> date32 (first day)."""
    text = pc.utf8_slice_codeunits(array, 0, 10)
    length = pc.utf8_length(text)
    padded = pc.if_else(
        pc.equal(length, 4),
        pc.binary_join_element_wise(text, "-01-01", ""),
        pc.if_else(pc.equal(length, 7), pc.binary_join_element_wise(text, "-01", ""), text),
    )
    return pc.cast(padded, pa.date32())


def _strings_to_points(array: pa.Array) -> pa.Array:
    """``"lat, lon"`` / ``"lat,lon"`` strings -> ``{lon, lat}`` structs."""
    parts = pc.split_pattern(array, ",")
    lat = pc.cast(pc.utf8_trim_whitespace(pc.list_element(parts, 0)), pa.float64())
    lon = pc.cast(pc.utf8_trim_whitespace(pc.list_element(parts, 1)), pa.float64())
    lat_ok = pc.all(pc.less_equal(pc.abs(lat), 90.0)).as_py()
    lon_ok = pc.all(pc.less_equal(pc.abs(lon), 180.0)).as_py()
    if lat_ok is False or lon_ok is False:
        raise ValueError("point out of the lat/lon range")
    return pa.StructArray.from_arrays([lon, lat], fields=list(POINT_TYPE), mask=pc.is_null(array))


def _points_array(points: Sequence[tuple[float, float] | None]) -> pa.Array:
    lons = [None if p is None else p[0] for p in points]
    lats = [None if p is None else p[1] for p in points]
    mask = pa.array([p is None for p in points], pa.bool_())
    return pa.StructArray.from_arrays(
        [pa.array(lons, pa.float64()), pa.array(lats, pa.float64())],
        fields=list(POINT_TYPE),
        mask=mask,
    )


def shape_column(geometries: Sequence[dict[str, Any] | str | None]) -> Column:
    """A geo_shape column (compact GeoJSON text + bbox) from geometries or their JSON text.

    Raises
    ------
    ValueError
        When a geometry is not valid GeoJSON.
    """
    texts = [
        None if g is None else (g if isinstance(g, str) else _compact_json(g)) for g in geometries
    ]
    array = pa.array(texts, pa.string())
    return Column("geo_shape", array, bbox=shape_bboxes(array))


def shape_bboxes(shapes: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``__bbox__`` struct array for a column of GeoJSON geometry text (null stays null)."""
    values = np.asarray(shapes.to_numpy(zero_copy_only=False), dtype=object)
    try:
        geometries = shapely.from_geojson(values, on_invalid="raise")
    except Exception as exc:  # shapely raises GEOSException subclasses
        raise ValueError(f"invalid GeoJSON geometry ({exc})") from exc
    bounds = shapely.bounds(geometries)
    missing = np.isnan(bounds[:, 0]) if len(bounds) else np.zeros(0, dtype=bool)
    return pa.StructArray.from_arrays(
        [pa.array(bounds[:, i], pa.float64()) for i in range(4)],
        fields=list(BBOX_TYPE),
        mask=pa.array(missing),
    )


def infer_strings(array: pa.Array, *, csv_cells: bool) -> Column:
    """Infer the ODS type of a string column (CSV cells, or JSON strings when not
    ``csv_cells``) and convert it."""
    array = array.cast(pa.string()) if array.type != pa.string() else array
    valid = pc.drop_null(array)
    if len(valid) == 0:
        return Column("text", array)
    if csv_cells:
        if _all_match(valid, _INT_RE):
            try:
                return Column("int", pc.cast(array, pa.int64()))
            except (pa.ArrowInvalid, OverflowError):
                pass
        if _all_match(valid, _FLOAT_RE):
            return Column("double", pc.cast(array, pa.float64()))
        if _all_match(valid, _BOOL_RE):
            return Column("boolean", pc.equal(pc.utf8_lower(array), "true"))
    datetime_or_day = f"(?:{_DATETIME_RE})|(?:{_DAY_RE})"
    if _all_match(valid, datetime_or_day) and _any_match(valid, _DATETIME_RE):
        try:
            return Column("datetime", _duckdb_cast(array, "TIMESTAMPTZ"))
        except ValueError:
            pass
    precision: str | None = None
    if _all_match(valid, _DAY_RE):
        precision = "day"
    elif _all_match(valid, _MONTH_RE):
        precision = "month"
    elif not csv_cells and _all_match(valid, _YEAR_RE):
        years = pc.cast(valid, pa.int64())
        low, high = pc.min_max(years).values()
        if _YEAR_RANGE[0] <= low.as_py() and high.as_py() <= _YEAR_RANGE[1]:
            precision = "year"
    if precision is not None:
        try:
            dates = _strings_to_dates(array)
        except pa.ArrowInvalid:
            pass
        else:
            annotations = {} if precision == "day" else {"timeserie_precision": [precision]}
            return Column("date", dates, annotations)
    if csv_cells:
        if _all_match(valid, _POINT_RE):
            try:
                return Column("geo_point_2d", _strings_to_points(array))
            except (ValueError, pa.ArrowInvalid):
                pass
        if _all_match(valid, r"(?s)^\s*\{.*\"type\"\s*:"):
            try:
                return shape_column(
                    [None if v is None else as_geometry(v) for v in array.to_pylist()]
                )
            except ValueError:
                pass
    return Column("text", array)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "other"


def _is_latlon_pair(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        and -90.0 <= value[0] <= 90.0
        and -180.0 <= value[1] <= 180.0
    )


def _text_value(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else _compact_json(value)


def infer_column(values: Sequence[Any]) -> Column:
    """Infer the ODS type of a column of JSON values and convert it (see module docstring)."""
    present = [v for v in values if v is not None]
    kinds = {_kind(v) for v in present}
    if not kinds:
        return Column("text", pa.nulls(len(values), pa.string()))
    if kinds == {"bool"}:
        return Column("boolean", pa.array(values, pa.bool_()))
    if kinds <= {"int", "float"}:
        if kinds == {"int"} and all(-_INT64_MAX - 1 <= v <= _INT64_MAX for v in present):
            return Column("int", pa.array(values, pa.int64()))
        return Column(
            "double", pa.array([None if v is None else float(v) for v in values], pa.float64())
        )
    if kinds == {"str"}:
        return infer_strings(pa.array(values, pa.string()), csv_cells=False)
    if kinds == {"list"}:
        # A v1 [lat, lon] point: two numbers in range, and not all integers (a pair of
        # counts is not a place).
        if all(_is_latlon_pair(v) for v in present) and any(
            isinstance(x, float) and not x.is_integer() for v in present for x in v
        ):
            return Column(
                "geo_point_2d", _points_array([None if v is None else as_point(v) for v in values])
            )
        if all(all(isinstance(x, str) or x is None for x in v) for v in present):
            lists = [None if v is None else [x for x in v if x is not None] for v in values]
            return Column("text", pa.array(lists, pa.list_(pa.string())), {"multivalued": [","]})
        return Column("json_blob", pa.array([_text_value(v) for v in values], pa.string()))
    if kinds == {"dict"}:
        if all("lon" in v and "lat" in v for v in present):
            try:
                return Column(
                    "geo_point_2d",
                    _points_array([None if v is None else as_point(v) for v in values]),
                )
            except ValueError:
                pass
        if all(v.get("type") in _GEOMETRY_TYPES or v.get("type") == "Feature" for v in present):
            try:
                return shape_column([None if v is None else as_geometry(v) for v in values])
            except ValueError:
                pass
        if all(_is_file_object(v) for v in present):
            return Column("file", pa.array([_text_value(v) for v in values], pa.string()))
        return Column("json_blob", pa.array([_text_value(v) for v in values], pa.string()))
    if kinds & {"dict", "list", "other"}:
        return Column("json_blob", pa.array([_text_value(v) for v in values], pa.string()))
    return Column("text", pa.array([_text_value(v) for v in values], pa.string()))


def _python_values_to(field_: PortalField, values: Sequence[Any], files: dict[str, Path]) -> Column:
    """Convert JSON values to the declared type of ``field_`` (strict)."""
    kind = field_.type
    annotations = field_.annotations
    if kind == "text":
        if field_.multivalued:
            separator = field_.multivalued_separator
            lists: list[list[str] | None] = []
            for v in values:
                if v is None:
                    lists.append(None)
                elif isinstance(v, list):
                    lists.append(
                        [str(x) if not isinstance(x, str) else x for x in v if x is not None]
                    )
                elif isinstance(v, str):
                    lists.append([part.strip() for part in v.split(separator) if part.strip()])
                else:
                    lists.append([_text_value(v) or ""])
            return Column(kind, pa.array(lists, pa.list_(pa.string())), annotations)
        return Column(kind, pa.array([_text_value(v) for v in values], pa.string()), annotations)
    if kind in ("int", "double", "boolean", "date", "datetime"):
        strings = [
            None if v is None else (v if isinstance(v, str) else _compact_json(v)) for v in values
        ]
        array = pa.array(strings, pa.string())
        return _strings_to(field_, array, files)
    if kind == "geo_point_2d":
        return Column(
            kind, _points_array([None if v is None else as_point(v) for v in values]), annotations
        )
    if kind == "geo_shape":
        column = shape_column([None if v is None else as_geometry(v) for v in values])
        column.annotations = annotations
        return column
    if kind == "file":
        objects: list[str | None] = []
        for v in values:
            if v is None:
                objects.append(None)
            elif isinstance(v, dict):
                objects.append(_compact_json(v))
            elif isinstance(v, str):
                name = v.rsplit("/", 1)[-1]
                if name not in files:
                    raise ValueError(f"no file {name!r} in the dataset's files folder")
                objects.append(_compact_json(file_object(name, files[name])))
            else:
                raise ValueError(f"{v!r} is not a file object")
        return Column(kind, pa.array(objects, pa.string()), annotations)
    if kind == "json_blob":
        return Column(
            kind,
            pa.array([None if v is None else _compact_json(v) for v in values], pa.string()),
            annotations,
        )
    raise ValueError(f"unknown field type {kind!r}")


def _strings_to(field_: PortalField, array: pa.Array, files: dict[str, Path]) -> Column:
    """Convert strings (CSV cells) to the declared type of ``field_`` (strict)."""
    kind = field_.type
    annotations = field_.annotations
    valid = pc.drop_null(array)
    try:
        if kind == "text" and not field_.multivalued:
            return Column(kind, array, annotations)
        if kind == "int":
            integral = r"^[+-]?[0-9]+(?:\.0*)?$"
            if len(valid) and not _all_match(valid, integral):
                bad = pc.filter(valid, pc.invert(pc.match_substring_regex(valid, integral)))
                raise ValueError(f"{bad[0].as_py()!r} is not an integer")
            digits = pc.replace_substring_regex(array, r"\.0*$", "")
            return Column(kind, pc.cast(digits, pa.int64()), annotations)
        if kind == "double":
            return Column(kind, pc.cast(array, pa.float64()), annotations)
        if kind == "boolean":
            lowered = pc.utf8_lower(array)
            if len(valid) and not _all_match(pc.drop_null(lowered), r"^(?:true|false|1|0)$"):
                raise ValueError("booleans must be written true or false")
            truth = pc.is_in(lowered, value_set=pa.array(["true", "1"]))
            return Column(
                kind,
                pc.if_else(pc.is_valid(array), truth, pa.scalar(None, pa.bool_())),
                annotations,
            )
        if kind == "date":
            return Column(kind, _strings_to_dates(array), annotations)
        if kind == "datetime":
            return Column(kind, _duckdb_cast(array, "TIMESTAMPTZ"), annotations)
        if kind == "geo_point_2d" and (len(valid) == 0 or _all_match(valid, _POINT_RE)):
            return Column(kind, _strings_to_points(array), annotations)
    except pa.ArrowInvalid as exc:
        raise ValueError(str(exc)) from exc
    values: list[Any] = array.to_pylist()
    if kind == "json_blob":
        parsed: list[Any] = []
        for v in values:
            try:
                parsed.append(None if v is None else json.loads(v))
            except json.JSONDecodeError:
                parsed.append(v)
        values = parsed
    return _python_values_to(field_, values, files)


def _arrow_to(field_: PortalField | None, array: pa.Array, geo_column: bool) -> Column:
    """Infer (``field_`` None) or convert an arrow column read from Parquet."""
    kind = array.type
    if geo_column:
        geometries = shapely.from_wkb(
            np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)
        )
        texts = shapely.to_geojson(geometries)
        return shape_column([None if t is None else t for t in texts.tolist()])
    if field_ is not None:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return _strings_to(field_, array.cast(pa.string()), {})
        inferred = _arrow_to(None, array, False)
        if inferred.type == field_.type and (
            field_.type != "text" or field_.multivalued == ("multivalued" in inferred.annotations)
        ):
            return Column(field_.type, inferred.array, field_.annotations, inferred.bbox)
        values = [
            v.isoformat() if isinstance(v, (date, datetime)) else v for v in array.to_pylist()
        ]
        return _python_values_to(field_, values, {})
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return infer_strings(array.cast(pa.string()), csv_cells=False)
    if pa.types.is_boolean(kind):
        return Column("boolean", array)
    if pa.types.is_integer(kind):
        try:
            return Column("int", array.cast(pa.int64()))
        except pa.ArrowInvalid:
            return Column("double", array.cast(pa.float64()))
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return Column("double", array.cast(pa.float64()))
    if pa.types.is_date(kind):
        return Column("date", array.cast(pa.date32()))
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            array = pc.assume_timezone(array, "UTC")
        return Column("datetime", array.cast(pa.timestamp("us", tz="UTC")))
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
        pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)
    ):
        return Column("text", array.cast(pa.list_(pa.string())), {"multivalued": [","]})
    if pa.types.is_struct(kind) and {kind.field(i).name for i in range(kind.num_fields)} >= {
        "lon",
        "lat",
    }:
        lon = pc.struct_field(array, "lon").cast(pa.float64())
        lat = pc.struct_field(array, "lat").cast(pa.float64())
        return Column(
            "geo_point_2d",
            pa.StructArray.from_arrays([lon, lat], fields=list(POINT_TYPE), mask=pc.is_null(array)),
        )
    return infer_column(array.to_pylist())


# --------------------------------------------------------------------------------------
# Reading files


@dataclass
class _RawColumn:
    name: str
    label: str
    values: Any  # list of JSON values ("json"), pa.Array of strings ("csv") or arrow ("arrow")
    encoding: Literal["json", "csv", "arrow"]


@dataclass
class _RawData:
    columns: list[_RawColumn]
    num_rows: int
    source_ids: list[str | None] | None = None
    source_timestamps: list[str | None] | None = None
    #: GeoJSON feature geometries ("geojson") or v1 record geometries ("v1").
    geometries: list[Any] | None = None
    geometry_origin: Literal["geojson", "v1"] | None = None
    facets: list[str] = field(default_factory=list)
    geo_columns: set[str] = field(default_factory=set)


def _records_to_raw(records: Sequence[Any], path: Path) -> _RawData:
    names: dict[str, None] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataFileError(path, f"record {index} is not a JSON object")
        for key in record:
            names.setdefault(key, None)
    columns = [
        _RawColumn(name, name, [record.get(name) for record in records], "json") for name in names
    ]
    return _RawData(columns, len(records))


def _is_v1_record(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("fields"), dict)
        and ("recordid" in item or "datasetid" in item)
    )


def _v1_records(items: Sequence[dict[str, Any]], path: Path) -> _RawData:
    raw = _records_to_raw([item["fields"] for item in items], path)
    raw.source_ids = [item.get("recordid") for item in items]
    raw.source_timestamps = [item.get("record_timestamp") for item in items]
    if any(item.get("geometry") is not None for item in items):
        raw.geometries = [item.get("geometry") for item in items]
        raw.geometry_origin = "v1"
    return raw


def _json_document_to_raw(document: Any, path: Path) -> _RawData:
    """Records of any ODS JSON export or records response (see the module docstring)."""
    if isinstance(document, list):
        if document and all(_is_v1_record(item) for item in document):
            return _v1_records(document, path)
        return _records_to_raw(document, path)
    if not isinstance(document, dict):
        raise DataFileError(path, "JSON document is neither a list of records nor an object")
    if document.get("type") == "FeatureCollection":
        return _geojson_to_raw(document, path)
    records = document.get("records")
    if isinstance(records, list):
        if all(
            _is_v1_record(item) or (isinstance(item, dict) and "fields" in item) for item in records
        ):
            raw = _v1_records(records, path)
            parameters = document.get("parameters") or {}
            facets = parameters.get("facet") or []
            facets = [facets] if isinstance(facets, str) else list(facets)
            for group in document.get("facet_groups") or []:
                if isinstance(group, dict) and group.get("name"):
                    facets.append(group["name"])
            raw.facets = list(dict.fromkeys(str(f) for f in facets))
            return raw
        if all(isinstance(item, dict) and isinstance(item.get("record"), dict) for item in records):
            inner = [item["record"] for item in records]
            raw = _records_to_raw([r.get("fields") or {} for r in inner], path)
            raw.source_ids = [r.get("id") for r in inner]
            raw.source_timestamps = [r.get("timestamp") for r in inner]
            return raw
        raise DataFileError(path, "'records' holds neither v1 nor v2.0 records")
    results = document.get("results")
    if isinstance(results, list):
        if results and all(
            isinstance(r, dict) and "dataset_id" in r and "metas" in r for r in results
        ):
            raise DataFileError(path, "a catalog response (datasets), not records")
        return _records_to_raw(results, path)
    keys = ", ".join(list(document)[:6])
    raise DataFileError(path, f"not an ODS export or records response (keys: {keys})")


def _geojson_to_raw(document: Any, path: Path) -> _RawData:
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise DataFileError(path, "a GeoJSON file must hold a FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise DataFileError(path, "FeatureCollection without a 'features' list")
    properties: list[dict[str, Any]] = []
    geometries: list[Any] = []
    for index, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise DataFileError(path, f"feature {index} is not a GeoJSON Feature")
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise DataFileError(path, f"feature {index} has non-object properties")
        properties.append(props)
        geometries.append(feature.get("geometry"))
    raw = _records_to_raw(properties, path)
    raw.geometries = geometries
    raw.geometry_origin = "geojson"
    return raw


def _read_json(path: Path) -> _RawData:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(path, f"invalid JSON ({exc})") from exc
    if path.suffix == ".geojson":
        return _geojson_to_raw(document, path)
    return _json_document_to_raw(document, path)


def _read_jsonl(path: Path) -> _RawData:
    records = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataFileError(path, f"line {number} is not JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"not UTF-8 text ({exc})") from exc
    return _records_to_raw(records, path)


def sniff_delimiter(header_line: str) -> str:
    """``;``, ``,`` or tab: the one that occurs most outside quotes in the header line."""
    counts = {";": 0, ",": 0, "\t": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: (counts[c], c == ";"))
    return best if counts[best] else ";"


def header_names(labels: Sequence[str]) -> list[str]:
    """Field names for CSV header cells: kept when already names, else slugged (unique)."""
    names: list[str] = []
    for index, label in enumerate(labels):
        base = label if _NAME_RE.match(label) else slugify(label)
        base = base or f"field_{index + 1}"
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.append(name)
    return names


def _read_csv(path: Path) -> _RawData:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("cp1252", errors="replace").encode("utf-8")
    if not data[:65536].strip():
        raise DataFileError(path, "empty CSV file (no header)")
    prefix = data[:65536].decode("utf-8", errors="ignore")
    first_line = prefix.splitlines()[0] if prefix.splitlines() else ""
    delimiter = sniff_delimiter(first_line)
    labels = next(csv.reader(io.StringIO(prefix), delimiter=delimiter))
    labels = [label.strip() for label in labels]
    names = header_names(labels)
    skipped = 0

    def skip_row(row: Any) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    keys = [f"c{i}" for i in range(len(names))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(
                column_names=keys, skip_rows=1, block_size=min(max(len(data) + 1, 1 << 20), 1 << 30)
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=skip_row
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(keys, pa.string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DataFileError(path, f"unreadable CSV ({exc})") from exc
    if skipped:
        logger.warning("%s: skipped %d CSV row(s) with the wrong number of cells", path, skipped)
    columns = [
        _RawColumn(name, label, table.column(key).combine_chunks(), "csv")
        for name, label, key in zip(names, labels, keys)
    ]
    return _RawData(columns, table.num_rows)


def _read_parquet(path: Path) -> _RawData:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(path, f"unreadable Parquet ({exc})") from exc
    geo_columns: set[str] = set()
    metadata = table.schema.metadata or {}
    if b"geo" in metadata:
        try:
            geo = json.loads(metadata[b"geo"])
            geo_columns = set((geo.get("columns") or {}).keys())
        except (json.JSONDecodeError, AttributeError):
            geo_columns = set()
    columns = [
        _RawColumn(name, name, table.column(name).combine_chunks(), "arrow")
        for name in table.column_names
    ]
    return _RawData(columns, table.num_rows, geo_columns=geo_columns)


_READERS = {
    ".json": _read_json,
    ".geojson": _read_json,
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


# --------------------------------------------------------------------------------------
# Schema files


@dataclass
class _Schema:
    fields: list[PortalField] | None
    metas: dict[str, dict[str, Any]]
    visibility: Literal["domain", "restricted"]
    features: list[str]
    attachments: list[dict[str, Any]]
    alternative_exports: list[dict[str, Any]]
    dataset_uid: str | None
    mtime: datetime


def parse_field(item: Any) -> PortalField:
    """A :class:`PortalField` from a v2.1 (or v1) ``fields[]`` item.

    Raises
    ------
    ValueError
        When the item has no name or an unknown type.
    """
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise ValueError(f"field {item!r:.80} has no name")
    kind = item.get("type")
    if kind not in FIELD_TYPES:
        raise ValueError(f"field {item['name']!r} has unknown type {kind!r}")
    if item["name"].startswith("__"):
        raise ValueError(f"field name {item['name']!r} must not start with '__'")
    return PortalField(
        name=item["name"],
        type=kind,
        label=item.get("label") or item["name"],
        description=item.get("description"),
        annotations=convert_annotations(item.get("annotations")),
    )


def read_schema(path: Path) -> _Schema:
    """Read a ``<dataset_id>.schema.json`` file (v2.1 body, v2.0 wrapper or v1 body)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(path, f"invalid schema JSON ({exc})") from exc
    if isinstance(body, dict) and isinstance(body.get("dataset"), dict):
        body = body["dataset"]
    if not isinstance(body, dict):
        raise DataFileError(path, "a schema must be a JSON object (a v2.1 dataset body)")
    fields: list[PortalField] | None = None
    if body.get("fields") is not None:
        if not isinstance(body["fields"], list):
            raise DataFileError(path, "'fields' must be a list")
        try:
            fields = [parse_field(item) for item in body["fields"]]
        except ValueError as exc:
            raise DataFileError(path, str(exc)) from exc
        if len({f.name for f in fields}) != len(fields):
            raise DataFileError(path, "two fields have the same name")
    metas_in = body.get("metas") or {}
    if not isinstance(metas_in, dict):
        raise DataFileError(path, "'metas' must be an object")
    if isinstance(metas_in.get("default"), dict):
        metas = {str(k): dict(v) for k, v in metas_in.items() if isinstance(v, dict)}
    else:  # v1: one flat template
        metas = {"default": dict(metas_in)}
    visibility = body.get("visibility") or metas["default"].get("visibility") or "domain"
    if visibility not in ("domain", "restricted"):
        raise DataFileError(
            path, f"visibility must be 'domain' or 'restricted', not {visibility!r}"
        )
    metas["default"].pop("visibility", None)
    features = body.get("features") or []
    attachments = body.get("attachments") or []
    alternative_exports = body.get("alternative_exports") or []
    if not isinstance(features, list) or not isinstance(attachments, list):
        raise DataFileError(path, "'features' and 'attachments' must be lists")
    return _Schema(
        fields=fields,
        metas=metas,
        visibility="restricted" if visibility == "restricted" else "domain",
        features=[str(f) for f in features],
        attachments=[a for a in attachments if isinstance(a, dict)],
        alternative_exports=[a for a in alternative_exports if isinstance(a, dict)],
        dataset_uid=body.get("dataset_uid") if isinstance(body.get("dataset_uid"), str) else None,
        mtime=_mtime(path),
    )


# --------------------------------------------------------------------------------------
# Building fields and arrow tables


def _build_columns(
    raw: _RawData, declared: list[PortalField] | None, files: dict[str, Path], path: Path
) -> tuple[list[PortalField], list[Column]]:
    """Fields and converted columns: declared fields first (by name, then label), then the
    source columns the schema does not name (inferred)."""
    fields: list[PortalField] = []
    columns: list[Column] = []
    by_name = {c.name: c for c in raw.columns}
    by_label = {c.label: c for c in raw.columns}
    used: set[str] = set()

    def convert(field_: PortalField | None, source: _RawColumn) -> Column:
        name = field_.name if field_ else source.name
        try:
            if source.encoding == "json":
                return (
                    _python_values_to(field_, source.values, files)
                    if field_
                    else infer_column(source.values)
                )
            if source.encoding == "csv":
                return (
                    _strings_to(field_, source.values, files)
                    if field_
                    else infer_strings(source.values, csv_cells=True)
                )
            return _arrow_to(field_, source.values, source.name in raw.geo_columns)
        except ValueError as exc:
            raise DataFileError(path, f"field {name!r}: {exc}") from exc

    for field_ in declared or []:
        source = by_name.get(field_.name) or by_label.get(field_.label) or by_label.get(field_.name)
        if source is None:
            source = next((c for c in raw.columns if slugify(c.label) == field_.name), None)
        if source is None or source.name in used:
            fields.append(field_)
            columns.append(_null_column(field_, raw.num_rows))
            continue
        used.add(source.name)
        column = convert(field_, source)
        fields.append(field_)
        columns.append(column)
    for source in raw.columns:
        if source.name in used:
            continue
        if source.name.startswith("__"):
            raise DataFileError(path, f"column name {source.name!r} must not start with '__'")
        if declared is not None:
            logger.info(
                "%s: column %r is not in the schema; its type is inferred", path, source.name
            )
        column = convert(None, source)
        fields.append(
            PortalField(
                name=source.name,
                type=column.type,
                label=source.label,
                annotations=dict(column.annotations),
            )
        )
        columns.append(column)
    return fields, columns


def _null_column(field_: PortalField, num_rows: int) -> Column:
    arrow_type = {
        "int": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us", tz="UTC"),
        "geo_point_2d": POINT_TYPE,
    }.get(field_.type, pa.list_(pa.string()) if field_.multivalued else pa.string())
    bbox = pa.nulls(num_rows, BBOX_TYPE) if field_.type == "geo_shape" else None
    return Column(field_.type, pa.nulls(num_rows, arrow_type), field_.annotations, bbox)


def _reconcile_geometry(
    raw: _RawData, fields: list[PortalField], columns: list[Column], path: Path
) -> None:
    """Give GeoJSON feature geometries (or v1 record geometries) a field, unless a geo field
    already holds them."""
    geometries = raw.geometries
    if geometries is None:
        return
    # A declared geo_shape field absent from the properties receives the geometry (a GeoJSON
    # export moves the shape out of the properties).
    present = {c.name for c in raw.columns}
    for index, field_ in enumerate(fields):
        if field_.type == "geo_shape" and field_.name not in present:
            try:
                column = shape_column([None if g is None else as_geometry(g) for g in geometries])
            except ValueError as exc:
                raise DataFileError(path, f"feature geometry: {exc}") from exc
            column.annotations = field_.annotations
            columns[index] = column
            return
    if raw.geometry_origin == "v1":
        # v1 `geometry` mirrors the dataset's geo field.
        if any(f.type in ("geo_point_2d", "geo_shape") for f in fields):
            return
    else:
        for index, field_ in enumerate(fields):
            if field_.type == "geo_point_2d" and _geometries_are_points(
                geometries, columns[index].array
            ):
                return
    try:
        column = shape_column([None if g is None else as_geometry(g) for g in geometries])
    except ValueError as exc:
        raise DataFileError(path, f"feature geometry: {exc}") from exc
    name, suffix = "geo_shape", 2
    while any(f.name == name for f in fields):
        name, suffix = f"geo_shape_{suffix}", suffix + 1
    fields.append(
        PortalField(name=name, type="geo_shape", label="Geo Shape" if name == "geo_shape" else name)
    )
    columns.append(column)


def _geometries_are_points(geometries: Sequence[Any], points: pa.Array) -> bool:
    for geometry, point in zip(geometries, points.to_pylist()):
        if geometry is None and point is None:
            continue
        if not isinstance(geometry, dict) or geometry.get("type") != "Point" or point is None:
            return False
        coordinates = geometry.get("coordinates") or []
        if len(coordinates) < 2 or not (
            math.isclose(float(coordinates[0]), point["lon"], abs_tol=1e-7)
            and math.isclose(float(coordinates[1]), point["lat"], abs_tol=1e-7)
        ):
            return False
    return True


def compute_features(fields: Iterable[PortalField], extra: Iterable[str] = ()) -> list[str]:
    """Dataset ``features`` from its fields (ods-api.md 8.6), plus ``extra`` ones."""
    fields = list(fields)
    found: list[str] = []
    if any(f.type in ("geo_point_2d", "geo_shape") for f in fields):
        found.append("geo")
    if any(f.is_facet or f.type in ("int", "double") for f in fields):
        found.append("analyze")
    if any(f.type in ("date", "datetime") for f in fields):
        found.append("timeserie")
    if any(f.type == "file" for f in fields):
        found.append("image")
    for name in extra:
        if name not in found:
            found.append(name)
    return found


def default_metas(
    dataset_id: str,
    given: dict[str, Any] | None,
    *,
    records_count: int,
    data_processed: datetime,
    metadata_processed: datetime,
) -> dict[str, Any]:
    """``metas.default`` with every v2.1 key (``given`` values win, null where unknown)."""
    given = dict(given or {})
    metas: dict[str, Any] = dict.fromkeys(DEFAULT_META_KEYS)
    metas.update(
        title=dataset_id,
        modified=iso_utc(data_processed),
        modified_updates_on_metadata_change=False,
        modified_updates_on_data_change=True,
        data_processed=iso_utc(data_processed),
        metadata_processed=iso_utc(metadata_processed),
        geographic_reference_auto=False,
        federated=False,
    )
    for key, value in given.items():
        metas[key] = value
    # Always present (model.py), whatever the schema says (real catalogs have nulls).
    if not metas.get("title"):
        metas["title"] = dataset_id
    for key, fallback in (
        ("data_processed", data_processed),
        ("metadata_processed", metadata_processed),
        ("modified", data_processed),
    ):
        if _parse_iso(metas.get(key)) is None:
            metas[key] = iso_utc(fallback)
    for key in ("theme", "keyword"):
        if isinstance(metas.get(key), str):
            metas[key] = [metas[key]]
    if metas.get("language") and not metas.get("metadata_languages"):
        metas["metadata_languages"] = [metas["language"]]
    metas["records_count"] = records_count
    return metas


def _collect_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


def _collect_attachments(
    folder: Path, declared: Sequence[dict[str, Any]], data_path: Path
) -> list[PortalAttachment]:
    files = _collect_files(folder)
    attachments: list[PortalAttachment] = []
    used: set[str] = set()
    for item in declared:
        url = str(item.get("url") or "")
        name = url.removeprefix("odsfile://") if url.startswith("odsfile://") else None
        candidates = [name, item.get("title"), item.get("id")]
        path = next((files[c] for c in candidates if isinstance(c, str) and c in files), None)
        if path is None:
            path = next((p for n, p in files.items() if attachment_id(n) == item.get("id")), None)
        if path is None:
            logger.warning(
                "%s: attachment %r has no file in %s; left out",
                data_path,
                item.get("id"),
                folder.name,
            )
            continue
        used.add(path.name)
        attachments.append(
            PortalAttachment(
                id=str(item.get("id") or attachment_id(path.name)),
                title=str(item.get("title") or path.name),
                mimetype=str(
                    item.get("mimetype")
                    or mimetypes.guess_type(path.name)[0]
                    or "application/octet-stream"
                ),
                path=path,
            )
        )
    for name, path in files.items():
        if name not in used:
            attachments.append(
                PortalAttachment(
                    id=attachment_id(name),
                    title=name,
                    mimetype=mimetypes.guess_type(name)[0] or "application/octet-stream",
                    path=path,
                )
            )
    return attachments


def _split_name(path: Path) -> tuple[str, str] | None:
    """``(dataset_id, suffix)`` for a data file name, None for anything else."""
    name = path.name
    if name.endswith(SCHEMA_SUFFIX):
        return None
    for suffix in DATA_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return None


# --------------------------------------------------------------------------------------
# The catalog


#: Fields of the catalog pseudo-dataset (the ``/catalog/datasets`` records).
CATALOG_FIELDS: tuple[PortalField, ...] = (
    PortalField("dataset_id", "text", "Dataset ID", annotations={"id": [], "sortable": []}),
    PortalField("dataset_uid", "text", "Dataset UID"),
    PortalField("title", "text", "Title", annotations={"sortable": []}),
    PortalField("description", "text", "Description"),
    PortalField("publisher", "text", "Publisher", annotations={"facet": []}),
    PortalField("license", "text", "License", annotations={"facet": []}),
    PortalField("license_url", "text", "License URL"),
    PortalField("language", "text", "Language", annotations={"facet": []}),
    PortalField("theme", "text", "Themes", annotations={"facet": [], "multivalued": [","]}),
    PortalField("keyword", "text", "Keywords", annotations={"facet": [], "multivalued": [","]}),
    PortalField("territory", "text", "Territory", annotations={"multivalued": [","]}),
    PortalField("timezone", "text", "Timezone"),
    PortalField("records_count", "int", "Records count"),
    PortalField("modified", "datetime", "Modified", annotations={"facet": []}),
    PortalField("data_processed", "datetime", "Data processed"),
    PortalField("metadata_processed", "datetime", "Metadata processed"),
    PortalField("features", "text", "Features", annotations={"facet": [], "multivalued": [","]}),
    PortalField("visibility", "text", "Visibility"),
    PortalField("has_records", "boolean", "Has records"),
    PortalField("data_visible", "boolean", "Data visible"),
    PortalField("federated", "boolean", "Federated"),
    PortalField("source_domain", "text", "Source domain"),
    PortalField("source_dataset", "text", "Source dataset"),
    PortalField("attributions", "text", "Attributions"),
)


class Catalog:
    """The portal's datasets and the one DuckDB connection holding their records.

    Attributes
    ----------
    con
        The DuckDB connection (in memory, ``TimeZone`` UTC). Request threads should use
        :meth:`cursor` rather than sharing it.
    datasets
        ``dataset_id -> PortalDataset``.
    lock
        Held while datasets change; take it to read a consistent catalog.
    """

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone='UTC'")
        self.datasets: dict[str, PortalDataset] = {}
        self.lock = threading.RLock()
        self._version = 0
        self._enum_serial = 0
        self._catalog_version = -1
        self._catalog: dict[bool, PortalDataset] = {}

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the shared database for one thread (``TimeZone`` UTC)."""
        cursor = self.con.cursor()
        cursor.execute("SET TimeZone='UTC'")
        return cursor

    def close(self) -> None:
        self.con.close()

    def __contains__(self, dataset_id: object) -> bool:
        return dataset_id in self.datasets

    def __iter__(self) -> Iterator[PortalDataset]:
        return iter(list(self.datasets.values()))

    def __len__(self) -> int:
        return len(self.datasets)

    def get(self, dataset_id: str) -> PortalDataset:
        """The dataset, or :class:`NotFoundError` (404) when there is none."""
        try:
            return self.datasets[dataset_id]
        except KeyError:
            raise NotFoundError(f"Unknown dataset: {dataset_id}", error_code="NotFound") from None

    # -- loading files -------------------------------------------------------------------

    @classmethod
    def from_folder(cls, path: str | Path) -> Catalog:
        """A catalog of every dataset in a data folder (bad files skipped with a warning)."""
        catalog = cls()
        catalog.load_folder(path)
        return catalog

    def load_folder(self, path: str | Path) -> list[PortalDataset]:
        """Load every dataset of ``path``; files that fail are logged and skipped."""
        folder = Path(path)
        if not folder.is_dir():
            raise NotADirectoryError(f"data folder not found: {folder}")
        loaded: list[PortalDataset] = []
        seen: dict[str, Path] = {}
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
        for entry in entries:
            if not entry.is_file():
                continue
            split = _split_name(entry)
            if split is None:
                continue
            dataset_id = split[0]
            if dataset_id in seen:
                logger.warning(
                    "skipping %s: dataset %r is already loaded from %s",
                    entry,
                    dataset_id,
                    seen[dataset_id].name,
                )
                continue
            seen[dataset_id] = entry
            try:
                loaded.append(self.load_file(entry))
            except DataFileError as exc:
                logger.warning("skipping %s: %s", entry, exc.reason)
            except Exception as exc:  # a broken file must not stop the portal
                logger.warning("skipping %s: %s: %s", entry, type(exc).__name__, exc)
        for entry in entries:
            if entry.is_file() and entry.name.endswith(SCHEMA_SUFFIX):
                dataset_id = entry.name[: -len(SCHEMA_SUFFIX)]
                if dataset_id in seen:
                    continue
                try:
                    loaded.append(self.load_file(entry))
                except DataFileError as exc:
                    logger.warning("skipping %s: %s", entry, exc.reason)
        return loaded

    def load_file(self, path: str | Path, *, dataset_id: str | None = None) -> PortalDataset:
        """Load one data file (or a schema file alone) with its schema, attachments, files.

        Raises
        ------
        DataFileError
            When the file (or its schema) cannot be read; the message says why.
        """
        path = Path(path)
        data_path: Path | None
        if path.name.endswith(SCHEMA_SUFFIX):
            stem, data_path, reader = path.name[: -len(SCHEMA_SUFFIX)], None, None
        else:
            split = _split_name(path)
            if split is None:
                raise DataFileError(
                    path, f"not a data file (expected one of {', '.join(DATA_SUFFIXES)})"
                )
            stem, data_path, reader = split[0], path, _READERS[split[1]]
        if not path.is_file():
            raise DataFileError(path, "no such file")
        dataset_id = dataset_id or stem
        if not dataset_id:
            raise DataFileError(path, "empty dataset id")
        schema_path = path.with_name(stem + SCHEMA_SUFFIX)
        schema = read_schema(schema_path) if schema_path.is_file() else None
        files = _collect_files(path.with_name(stem + FILES_SUFFIX))
        raw = reader(path) if reader is not None else _RawData([], 0)
        declared = schema.fields if schema else None
        fields, columns = _build_columns(raw, declared, files, path)
        _reconcile_geometry(raw, fields, columns, path)
        if declared is None:
            for field_ in fields:
                if field_.name in raw.facets and field_.type not in ("geo_point_2d", "geo_shape"):
                    field_.annotations.setdefault("facet", [])
        data_time = _mtime(data_path) if data_path else _mtime(path)
        meta_time = max(data_time, schema.mtime) if schema else data_time
        given = dict(schema.metas.get("default", {})) if schema else {}
        data_processed = _parse_iso(given.get("data_processed")) or data_time
        metadata_processed = _parse_iso(given.get("metadata_processed")) or meta_time
        dataset = PortalDataset(
            dataset_id=dataset_id,
            table=table_name(dataset_id),
            fields=fields,
            metas={**(schema.metas if schema else {}), "default": given},
            dataset_uid=(schema.dataset_uid if schema and schema.dataset_uid else "")
            or dataset_uid(dataset_id),
            visibility=schema.visibility if schema else "domain",
            features=list(schema.features) if schema else [],
            attachments=_collect_attachments(
                path.with_name(stem + ATTACHMENTS_SUFFIX),
                schema.attachments if schema else [],
                path,
            ),
            files=files,
            alternative_exports=schema.alternative_exports if schema else [],
            source_path=path,
            processed_at=data_processed,
        )
        table = _arrow_table(fields, columns, raw.num_rows)
        try:
            self._store(
                dataset,
                table,
                record_timestamp=data_time,
                data_processed=data_processed,
                metadata_processed=metadata_processed,
                source_ids=raw.source_ids,
                source_timestamps=raw.source_timestamps,
            )
        except duckdb.Error as exc:
            raise DataFileError(path, f"cannot load into DuckDB ({exc})") from exc
        return dataset

    def reload(self, dataset_id: str) -> PortalDataset:
        """Re-read a dataset's file (and schema).

        ``records_count`` follows the file; ``data_processed`` (and ``modified`` when
        ``modified_updates_on_data_change``) moves forward: the file's mtime, or 1 ms after
        the previous value if that is not later.
        """
        with self.lock:
            old = self.get(dataset_id)
            if old.source_path is None:
                raise ValueError(
                    f"dataset {dataset_id!r} was not loaded from a file; use update_records()"
                )
            previous = _parse_iso(old.metas["default"].get("data_processed"))
            dataset = self.load_file(old.source_path, dataset_id=dataset_id)
            self._bump(dataset, previous, data_time=_mtime(old.source_path))
            return dataset

    def _bump(
        self, dataset: PortalDataset, previous: datetime | None, *, data_time: datetime
    ) -> None:
        processed = data_time
        if previous is not None and processed <= previous:
            processed = previous + timedelta(milliseconds=1)
        default = dataset.metas["default"]
        default["data_processed"] = iso_utc(processed)
        if default.get("modified_updates_on_data_change", True):
            default["modified"] = iso_utc(processed)
        dataset.processed_at = processed
        self._version += 1

    def mark_data_changed(self, dataset: PortalDataset, *, records_count: int) -> None:
        """Record that ``dataset``'s records changed in place (a push or a delete).

        ``records_count`` is stored, ``data_processed`` (and ``modified`` when it follows the
        data) moves strictly forward, and the catalog listing is rebuilt on next use, so
        clients' freshness checks see the change.
        """
        dataset.metas["default"]["records_count"] = records_count
        self._bump(dataset, dataset.processed_at, data_time=datetime.now(UTC))

    # -- loading tables ------------------------------------------------------------------

    def add_dataset(
        self,
        dataset: PortalDataset,
        table: pa.Table,
        *,
        record_timestamp: datetime | None = None,
    ) -> PortalDataset:
        """Add (or replace) a dataset whose records are an arrow table.

        ``table`` has one column per field of ``dataset.fields`` (missing ones are null),
        named like the field, in the storage convention's arrow form: ``string`` for text,
        geo_shape (GeoJSON geometry text), file and json_blob (JSON text); ``list<string>``
        for multivalued text; ``struct<lon, lat>`` for geo_point_2d; ``date32``,
        ``timestamp[tz]``, ints, floats, bools for the others (strings are converted like
        CSV cells). ``metas["default"]`` is completed (``records_count``; processing dates
        from ``dataset.processed_at`` or now, unless already set); ``features``, ``table``
        and ``dataset_uid`` are filled when empty. Records get ``record_timestamp``
        (default: ``data_processed``) as ``__timestamp``.

        Raises
        ------
        ValueError
            When a column has no field, a field has an unknown type, or a value does not
            convert.
        """
        for f in dataset.fields:
            if f.type not in FIELD_TYPES:
                raise ValueError(
                    f"field {f.name!r} of {dataset.dataset_id!r}: unknown type {f.type!r}"
                )
            if f.name.startswith("__"):
                raise ValueError(f"field name {f.name!r} must not start with '__'")
        names = {f.name for f in dataset.fields}
        extra = [c for c in table.column_names if c not in names]
        if extra:
            raise ValueError(
                f"columns {extra} of {dataset.dataset_id!r} have no field in dataset.fields"
            )
        columns: list[Column] = []
        for f in dataset.fields:
            if f.name not in table.column_names:
                columns.append(_null_column(f, table.num_rows))
                continue
            array = table.column(f.name).combine_chunks()
            try:
                if pa.types.is_string(array.type) and f.type not in (
                    "text",
                    "geo_shape",
                    "file",
                    "json_blob",
                ):
                    column = _strings_to(f, array, dataset.files)
                else:
                    column = Column(f.type, array, f.annotations)
                    if f.type == "geo_shape":
                        column.bbox = shape_bboxes(array)
            except (ValueError, pa.ArrowInvalid) as exc:
                raise ValueError(f"field {f.name!r} of {dataset.dataset_id!r}: {exc}") from exc
            columns.append(column)
        moment = dataset.processed_at or datetime.now(UTC)
        default = dataset.metas.setdefault("default", {})
        data_processed = _parse_iso(default.get("data_processed")) or moment
        metadata_processed = _parse_iso(default.get("metadata_processed")) or moment
        dataset.table = dataset.table or table_name(dataset.dataset_id)
        dataset.dataset_uid = dataset.dataset_uid or dataset_uid(dataset.dataset_id)
        arrow = _arrow_table(dataset.fields, columns, table.num_rows)
        try:
            self._store(
                dataset,
                arrow,
                record_timestamp=record_timestamp or data_processed,
                data_processed=data_processed,
                metadata_processed=metadata_processed,
            )
        except duckdb.Error as exc:
            raise ValueError(
                f"dataset {dataset.dataset_id!r}: cannot load into DuckDB ({exc})"
            ) from exc
        return dataset

    def update_records(self, dataset_id: str, table: pa.Table) -> PortalDataset:
        """Replace a dataset's records (same fields, as for :meth:`add_dataset`).

        ``records_count`` follows; ``data_processed`` (and ``modified`` when
        ``modified_updates_on_data_change``) moves to now, or 1 ms after the previous value.
        """
        with self.lock:
            dataset = self.get(dataset_id)
            previous = _parse_iso(dataset.metas["default"].get("data_processed"))
            now = datetime.now(UTC)
            dataset.metas["default"]["data_processed"] = iso_utc(now)
            self.add_dataset(dataset, table, record_timestamp=now)
            self._bump(dataset, previous, data_time=now)
            return dataset

    def _add_enum_twins(self, table: str, fields: Sequence[PortalField]) -> set[str]:
        """Add an ``__enum__<field>`` column for each text field whose few values repeat.

        DuckDB compares ENUM codes instead of strings: ``field = "value"`` filters and facet
        refines run several times faster (model.py describes the column).
        """
        candidates = [f for f in fields if f.type == "text" and not f.multivalued]
        if not candidates:
            return set()
        target = quote_ident(table)
        counts = ", ".join(f"approx_count_distinct({quote_ident(f.name)})" for f in candidates)
        rows = self.con.execute(f"SELECT count(*), {counts} FROM {target}").fetchall()[0]
        total = int(rows[0])
        twins: set[str] = set()
        for f, distinct in zip(candidates, rows[1:], strict=True):
            if not distinct or distinct > ENUM_MAX_VALUES or distinct * 2 > total:
                continue
            self._enum_serial += 1
            type_name = quote_ident(f"__enum_type_{self._enum_serial}")
            column = quote_ident(HIDDEN_ENUM_PREFIX + f.name)
            source = quote_ident(f.name)
            self.con.execute(
                f"CREATE TYPE {type_name} AS ENUM (SELECT DISTINCT {source} FROM {target} "
                f"WHERE {source} IS NOT NULL ORDER BY {source})"
            )
            self.con.execute(f"ALTER TABLE {target} ADD COLUMN {column} {type_name}")
            self.con.execute(f"UPDATE {target} SET {column} = CAST({source} AS {type_name})")
            twins.add(f.name)
        return twins

    def _index_rowids(self, table: str, *, drop: bool = False) -> None:
        """Create (or drop) the ``__rowid`` index a page's rows are read through.

        A records page sorts only the keys, then reads its rows by ``__rowid``
        (``CompiledQuery.rows_sql``); the index makes that read a lookup, not a scan.
        """
        index = quote_ident(f"__rowid_index_{hashlib.sha1(table.encode()).hexdigest()[:12]}")
        if drop:
            self.con.execute(f"DROP INDEX IF EXISTS {index}")
        else:
            self.con.execute(f"CREATE INDEX {index} ON {quote_ident(table)} ({HIDDEN_ROWID})")

    def drop_enum_twins(self, dataset: PortalDataset) -> None:
        """Remove a dataset's ``__enum__`` columns (before writing records in place)."""
        with self.lock:
            names, dataset.enum_fields = dataset.enum_fields, set()
            if not names:
                return
            self._index_rowids(dataset.table, drop=True)  # DuckDB alters no indexed table
            for name in sorted(names):
                column = quote_ident(HIDDEN_ENUM_PREFIX + name)
                self.con.execute(
                    f"ALTER TABLE {quote_ident(dataset.table)} DROP COLUMN IF EXISTS {column}"
                )
            self._index_rowids(dataset.table)

    def remove_dataset(self, dataset_id: str) -> None:
        """Drop a dataset and its table."""
        with self.lock:
            dataset = self.get(dataset_id)
            self.con.execute(f"DROP TABLE IF EXISTS {quote_ident(dataset.table)}")
            del self.datasets[dataset_id]
            self._version += 1

    def _store(
        self,
        dataset: PortalDataset,
        table: pa.Table,
        *,
        record_timestamp: datetime,
        data_processed: datetime,
        metadata_processed: datetime,
        source_ids: Sequence[str | None] | None = None,
        source_timestamps: Sequence[str | None] | None = None,
    ) -> None:
        """Load the records, complete the metadata and register the dataset."""
        with self.lock:
            records_count = self._load_table(
                dataset.table,
                dataset.fields,
                table,
                record_timestamp=record_timestamp,
                source_ids=source_ids,
                source_timestamps=source_timestamps,
            )
            dataset.enum_fields = self._add_enum_twins(dataset.table, dataset.fields)
            self._index_rowids(dataset.table)
            dataset.metas["default"] = default_metas(
                dataset.dataset_id,
                dataset.metas.get("default"),
                records_count=records_count,
                data_processed=data_processed,
                metadata_processed=metadata_processed,
            )
            dataset.features = compute_features(dataset.fields, dataset.features)
            dataset.processed_at = data_processed
            self.datasets[dataset.dataset_id] = dataset
            self._version += 1

    def _load_table(
        self,
        target_table: str,
        fields: Sequence[PortalField],
        table: pa.Table,
        *,
        record_timestamp: datetime,
        source_ids: Sequence[str | None] | None = None,
        source_timestamps: Sequence[str | None] | None = None,
    ) -> int:
        """Create ``target_table`` from ``table`` (data, ``__bbox__`` and ``__rowid``
        columns) with the hidden columns; returns the number of records kept."""
        if source_ids is not None and any(source_ids):
            table = table.append_column("__source_id", pa.array(list(source_ids), pa.string()))
        if source_timestamps is not None and any(source_timestamps):
            table = table.append_column(
                "__source_ts", pa.array(list(source_timestamps), pa.string())
            )
        inner = []
        for f in fields:
            storage = "VARCHAR[]" if f.multivalued else STORAGE_TYPES[f.type]
            inner.append(f"CAST({quote_ident(f.name)} AS {storage}) AS {quote_ident(f.name)}")
        bboxes = [quote_ident(HIDDEN_BBOX_PREFIX + f.name) for f in fields if f.type == "geo_shape"]
        inner += [f"CAST({bbox} AS {BBOX_STORAGE_TYPE}) AS {bbox}" for bbox in bboxes]
        inner.append(HIDDEN_ROWID)
        id_sql = record_id_sql(fields)
        if "__source_id" in table.column_names:
            inner.append("__source_id")
            id_sql = f"COALESCE(__source_id, {id_sql})"
        timestamp_sql = f"TIMESTAMPTZ {_sql_string(iso_utc(record_timestamp))}"
        if "__source_ts" in table.column_names:
            inner.append("TRY_CAST(__source_ts AS TIMESTAMPTZ) AS __source_ts")
            timestamp_sql = f"COALESCE(__source_ts, {timestamp_sql})"
        outer = [quote_ident(f.name) for f in fields] + bboxes
        outer += [
            HIDDEN_ROWID,
            f"{id_sql} AS {HIDDEN_ID}",
            f"{timestamp_sql} AS {HIDDEN_TIMESTAMP}",
            f"{fts_sql(fields)} AS {HIDDEN_FTS}",
        ]
        source = f"__src_{hashlib.sha1(target_table.encode()).hexdigest()[:12]}"
        target = quote_ident(target_table)
        with self.lock:
            self.con.register(source, table)
            try:
                self.con.execute(
                    f"CREATE OR REPLACE TABLE {target} AS SELECT {', '.join(outer)} "
                    f"FROM (SELECT {', '.join(inner)} FROM {source})"
                )
            finally:
                self.con.unregister(source)
            # fetchall, not fetchone: DuckDB 2 keeps a half-read result open and then
            # refuses register() on this connection.
            rows = self.con.execute(
                f"SELECT count(*), count(DISTINCT {HIDDEN_ID}) FROM {target}"
            ).fetchall()
            count, distinct = int(rows[0][0]), int(rows[0][1])
            if distinct != count:
                # Records with the same id are one record: the last in the source wins.
                self.con.execute(
                    f"DELETE FROM {target} WHERE {HIDDEN_ROWID} IN (SELECT {HIDDEN_ROWID} FROM "
                    f"(SELECT {HIDDEN_ROWID}, row_number() OVER (PARTITION BY {HIDDEN_ID} "
                    f"ORDER BY {HIDDEN_ROWID} DESC) AS n FROM {target}) WHERE n > 1)"
                )
                logger.info(
                    "%s: %d record(s) replaced by a later one with the same id",
                    target_table,
                    count - distinct,
                )
        return distinct

    # -- the catalog pseudo-dataset ------------------------------------------------------

    def catalog_dataset(self, *, include_private: bool = False) -> PortalDataset:
        """The pseudo-dataset ``/catalog/datasets`` ODSQL queries run over.

        One row per dataset, ordered by ``dataset_id``, with the columns of
        :data:`CATALOG_FIELDS` and the hidden columns (``__timestamp`` is
        ``metadata_processed``, ``__id`` the SHA1 of the dataset id). Its table is
        ``catalog_datasets``; with ``include_private=False`` (anonymous callers) the
        returned dataset reads the view ``catalog_datasets_public``, which leaves out
        ``restricted`` datasets. Rebuilt when datasets have changed.
        """
        with self.lock:
            if self._catalog_version != self._version:
                self._build_catalog_table()
            return self._catalog[include_private]

    def _build_catalog_table(self) -> None:
        rows = sorted(self.datasets.values(), key=lambda d: d.dataset_id)
        values: dict[str, list[Any]] = {f.name: [] for f in CATALOG_FIELDS}
        timestamps: list[str | None] = []
        for d in rows:
            default = d.metas.get("default", {})
            record = dict(default)
            record.update(
                dataset_id=d.dataset_id,
                dataset_uid=d.dataset_uid,
                features=list(d.features),
                visibility=d.visibility,
                has_records=d.records_count > 0,
                data_visible=True,
                federated=bool(default.get("federated")),
                records_count=d.records_count,
            )
            for f in CATALOG_FIELDS:
                values[f.name].append(_catalog_value(f, record.get(f.name)))
            timestamps.append(default.get("metadata_processed"))
        fields = [
            PortalField(f.name, f.type, f.label, f.description, dict(f.annotations))
            for f in CATALOG_FIELDS
        ]
        columns = [_python_values_to(f, values[f.name], {}) for f in fields]
        now = datetime.now(UTC)
        self._load_table(
            CATALOG_TABLE,
            fields,
            _arrow_table(fields, columns, len(rows)),
            record_timestamp=now,
            source_timestamps=timestamps,
        )
        self.con.execute(
            f"CREATE OR REPLACE VIEW {CATALOG_PUBLIC_VIEW} AS "
            f"SELECT * FROM {CATALOG_TABLE} WHERE visibility = 'domain'"
        )
        public_count = sum(1 for d in rows if not d.is_private)
        self._catalog = {
            private: PortalDataset(
                dataset_id=CATALOG_DATASET_ID,
                table=CATALOG_TABLE if private else CATALOG_PUBLIC_VIEW,
                fields=fields,
                metas={
                    "default": default_metas(
                        CATALOG_DATASET_ID,
                        {"title": "Catalog"},
                        records_count=len(rows) if private else public_count,
                        data_processed=now,
                        metadata_processed=now,
                    )
                },
                dataset_uid=dataset_uid(CATALOG_DATASET_ID),
                processed_at=now,
            )
            for private in (True, False)
        }
        self._catalog_version = self._version


def _catalog_value(field_: PortalField, value: Any) -> Any:
    """A metadata value in the form the catalog column takes (odd values become null)."""
    if value is None:
        return None
    if field_.type == "datetime":
        parsed = _parse_iso(value)
        return iso_utc(parsed) if parsed else None
    if field_.type == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if field_.type == "boolean":
        return bool(value)
    if field_.multivalued:
        items = value if isinstance(value, list) else [value]
        return [i if isinstance(i, str) else _compact_json(i) for i in items if i is not None]
    return value if isinstance(value, str) else _compact_json(value)


def _arrow_table(
    fields: Sequence[PortalField], columns: Sequence[Column], num_rows: int
) -> pa.Table:
    """Data columns, ``__bbox__`` columns and ``__rowid`` (source positions)."""
    names = [f.name for f in fields]
    arrays = [column.array for column in columns]
    for f, column in zip(fields, columns):
        if f.type == "geo_shape":
            names.append(HIDDEN_BBOX_PREFIX + f.name)
            arrays.append(column.bbox if column.bbox is not None else pa.nulls(num_rows, BBOX_TYPE))
    names.append(HIDDEN_ROWID)
    arrays.append(pa.array(np.arange(num_rows, dtype=np.int64)))
    return pa.Table.from_arrays(arrays, names=names)


def _id_value_sql(f: PortalField) -> str:
    """SQL writing one field's value as text for the record id (module docstring)."""
    col = quote_ident(f.name)
    if f.type == "text":
        return (
            f"array_to_string({col}, {_sql_string(f.multivalued_separator)})"
            if f.multivalued
            else col
        )
    if f.type == "datetime":
        return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%f') || '+00:00'"
    if f.type == "geo_point_2d":
        return f"CAST({col}.lat AS VARCHAR) || ',' || CAST({col}.lon AS VARCHAR)"
    if f.type == "geo_shape":
        return col
    return f"CAST({col} AS VARCHAR)"


def record_id_sql(fields: Sequence[PortalField]) -> str:
    """SQL computing ``__id`` over a table with the fields' storage columns."""
    keyed = [f for f in fields if f.is_id] or list(fields)
    if not keyed:
        return "sha1('')"
    values = ", ".join(_id_value_sql(f) for f in keyed)
    # Null values take no part; a record whose values are all null still gets an id.
    return f"sha1(coalesce(array_to_string(list_sort([{values}]), ''), ''))"


def fts_sql(fields: Sequence[PortalField]) -> str:
    """SQL computing ``__fts``: text values joined by spaces, lower-cased, accents removed."""
    parts = []
    for f in fields:
        if f.type != "text":
            continue
        col = quote_ident(f.name)
        parts.append(f"array_to_string({col}, ' ')" if f.multivalued else col)
    if not parts:
        return "''"
    return f"strip_accents(lower(concat_ws(' ', {', '.join(parts)})))"
