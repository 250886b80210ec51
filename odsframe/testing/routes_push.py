"""The real-time push API of the local portal (ods-api.md section 2.10).

Routes (``/api/push/1.0``, with and without the trailing slash):

=============================================================  ===============================
``POST /{dataset_id}/{resource_id}/push/?pushkey=KEY``          add records (one JSON object or
                                                                a list of objects)
``POST /{dataset_id}/{resource_id}/delete/?pushkey=KEY``        delete the records whose values
                                                                are sent (same body shapes)
``GET /{dataset_id}/{resource_id}/{record_id}/delete/?pushkey``  delete one record by its id
                                                                (``DELETE`` is accepted too)
=============================================================  ===============================

Success is ``{"status": "OK"}``; errors have the v1 body ``{"errorcode": <status>, "error":
"<text>"}``. As on ODS, a body is limited to 5 MB (:data:`MAX_PUSH_BYTES`; more is a 413 that
says to split the records).

Push keys are per dataset: ``create_app(push_keys={"dataset": "key"})`` (``LocalPortal(
push_keys=...)``, ``odsframe serve --push-key dataset=KEY``). ``LocalPortal(sample=True)``
also opens :data:`SAMPLE_PUSH_DATASET` with :data:`SAMPLE_PUSH_KEY`. Any resource id made of
letters, digits, ``.``, ``_`` and ``-`` is accepted (the local portal has one real-time source
per dataset). No ``pushkey``, or a wrong one: 401; a dataset without a push key: 403 (ODS
answers an error when pushing to a disabled source); unknown dataset: 404. A restricted
dataset takes pushes with its push key alone, as on ODS.

Records are checked against the dataset's schema and cast to the storage convention of
``model.py``; the first problems are listed in one 400 answer and nothing is written:

* a field the schema does not have; a value of the wrong kind (``int``: integers, integral
  numbers or digit strings; ``double``: numbers or numeric strings; ``boolean``: ``true``/
  ``false`` (also ``"true"``, ``0``/``1``); ``date``: ``YYYY-MM-DD`` (or ``YYYY-MM``,
  ``YYYY``); ``datetime``: ISO 8601, UTC when it has no offset; ``text``: strings (numbers are
  written as text), multivalued text also a list of strings; ``geo_point_2d``: ``"lat,lon"``,
  ``{"lon", "lat"}``, ``[lat, lon]`` or a GeoJSON Point; ``geo_shape``: a GeoJSON geometry or
  Feature (a point written as for geo_point_2d is a Point); ``file``:
  ``{"content": <base64>, "content-type": <mime type>}`` (optionally ``"filename"``), or the
  file object of a file the dataset already has; ``json_blob``: any JSON value);
* ``NaN`` and ``Infinity`` are not JSON and are refused. Null values and absent keys are null.

Accepted records are appended in one DuckDB transaction with the hidden columns (``__rowid``
after the last one, ``__id`` computed as the catalog does, ``__timestamp`` the arrival time),
so readers never see half a push. Records with the same id are one record: a pushed record
replaces the older one (with ``id`` fields set, the upsert of ods-api.md 8.4). Then
``records_count`` follows and ``data_processed`` (and ``modified`` when
``modified_updates_on_data_change``) moves forward, so caches see the change. Deletions bump
them the same way when a record was removed; deleting a record that does not exist answers
``{"status": "OK"}`` too (pushes are idempotent).

Pushed file contents are written once (the file id is the MD5 of the bytes) to a temporary
folder of the app, removed when the process exits, and served by the files routes.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import hmac
import json
import math
import mimetypes
import re
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from odsframe.testing.catalog import (
    BBOX_STORAGE_TYPE,
    POINT_TYPE,
    STORAGE_TYPES,
    as_geometry,
    as_point,
    file_object,
    fts_sql,
    quote_ident,
    record_id_sql,
    shape_bboxes,
)
from odsframe.testing.errors import NotFoundError, PortalError, UnauthorizedError
from odsframe.testing.model import (
    HIDDEN_BBOX_PREFIX,
    HIDDEN_FTS,
    HIDDEN_ID,
    HIDDEN_ROWID,
    HIDDEN_TIMESTAMP,
    PortalDataset,
    PortalField,
)
from odsframe.testing.routes_v1 import v1_error_response
from odsframe.testing.server import ApiRequest, api_endpoint

PUSH_BASE = "/api/push/1.0"
#: Largest body a push or delete request may have (ODS: "limited to a 5MB payload").
MAX_PUSH_BYTES = 5 * 1024 * 1024
#: The sample dataset that ``LocalPortal(sample=True)`` opens to pushes, and its key.
SAMPLE_PUSH_DATASET = "sample-bike-stations"
SAMPLE_PUSH_KEY = "sample-push-key"
#: Most problems listed in one 400 answer.
MAX_REPORTED_PROBLEMS = 10

_RESOURCE_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)
_PUSH_BODY_KEY = "odsframe_push_body"


class PayloadTooLargeError(PortalError):
    status = 413
    error_code = "PayloadTooLarge"


class ForbiddenError(PortalError):
    status = 403
    error_code = "Forbidden"


class MethodNotAllowedError(PortalError):
    status = 405
    error_code = "MethodNotAllowed"


# -- push keys and the request ----------------------------------------------------------------


def check_push_keys(push_keys: Mapping[str, str] | None) -> dict[str, str]:
    """``push_keys`` as a plain dict, checked: dataset ids and keys are non-empty strings.

    Raises
    ------
    TypeError, ValueError
        When it is not a mapping of non-empty strings to non-empty strings.
    """
    if push_keys is None:
        return {}
    if not isinstance(push_keys, Mapping):
        raise TypeError(
            f"push_keys must be a mapping {{dataset_id: push key}}, not {type(push_keys).__name__}"
        )
    checked: dict[str, str] = {}
    for dataset_id, key in push_keys.items():
        if not isinstance(dataset_id, str) or not dataset_id:
            raise ValueError(f"push_keys: {dataset_id!r} is not a dataset id")
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"push_keys[{dataset_id!r}] must be a non-empty string")
        checked[dataset_id] = key
    return checked


def _push_dataset(api: ApiRequest) -> PortalDataset:
    """The dataset of a push request, once its ``pushkey`` is checked."""
    dataset_id = str(api.path_params["dataset_id"])
    resource_id = str(api.path_params["resource_id"])
    dataset = api.catalog.datasets.get(dataset_id)
    if dataset is None:
        raise NotFoundError(f"Dataset '{dataset_id}' was not found.")
    if not _RESOURCE_RE.fullmatch(resource_id):
        raise NotFoundError(
            f"Resource '{resource_id[:80]}' was not found in dataset '{dataset_id}' (resource "
            "ids are letters, digits, '.', '_' and '-')."
        )
    given = api.query.getlist("pushkey")
    if not given or not given[-1]:
        raise UnauthorizedError(
            "The pushkey parameter is missing: send the push key of the real-time source as "
            "?pushkey=<key>."
        )
    keys: Mapping[str, str] = getattr(api.request.app.state, "push_keys", None) or {}
    expected = keys.get(dataset_id)
    if expected is None:
        raise ForbiddenError(
            f"Dataset '{dataset_id}' has no real-time push source enabled; no record can be "
            "pushed to it."
        )
    if not hmac.compare_digest(given[-1].encode(), expected.encode()):
        raise UnauthorizedError(
            f"The push key is not valid for dataset '{dataset_id}', resource '{resource_id}'."
        )
    return dataset


def _body_records(api: ApiRequest) -> list[dict[str, Any]]:
    """The JSON body: one object or a list of objects."""
    body: bytes = getattr(api.request.state, _PUSH_BODY_KEY, b"")
    if not body.strip():
        raise PortalError(
            "The body is empty: send one JSON object (a record) or a list of JSON objects."
        )

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value (send null for a missing number)")

    try:
        document = json.loads(body.decode("utf-8"), parse_constant=reject_constant)
    except UnicodeDecodeError as exc:
        raise PortalError(f"The body is not UTF-8 text ({exc.reason}).") from None
    except json.JSONDecodeError as exc:
        raise PortalError(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except ValueError as exc:
        raise PortalError(f"The body is not valid JSON: {exc}.") from None
    items = [document] if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise PortalError(
            f"The body is a JSON {type(document).__name__}: send one JSON object (a record) "
            "or a list of JSON objects."
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PortalError(
                f"Record {index} is a JSON {_json_kind(item)}, not an object of field values."
            )
    return items


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# -- values -----------------------------------------------------------------------------------


class _BadValue(ValueError):
    """A value the field's type does not take (the message says what was expected)."""


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _is_number(value):
        return json.dumps(value)
    raise _BadValue(f"{_shown(value)} is not text")


def _to_int(value: Any) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None:
        raise _BadValue(f"{_shown(value)} is not an integer")
    if not _INT64[0] <= number <= _INT64[1]:
        raise _BadValue(f"{number} is out of the 64-bit integer range")
    return number


def _to_double(value: Any) -> float:
    number: float | None = None
    if _is_number(value):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _BadValue(f"{_shown(value)} is not a number")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _BadValue(f"{_shown(value)} is not a boolean (true or false)")


def _to_date(value: Any) -> date:
    if isinstance(value, str):
        text = value.strip()
        padded = {4: text + "-01-01", 7: text + "-01"}.get(len(text), text[:10])
        try:
            if len(text) > 10:
                datetime.fromisoformat(text)  # the whole value must be a valid datetime
            return date.fromisoformat(padded)
        except ValueError:
            pass
    raise _BadValue(f"{_shown(value)} is not a date (YYYY-MM-DD, YYYY-MM or YYYY)")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
    raise _BadValue(f"{_shown(value)} is not an ISO 8601 datetime (e.g. 2024-05-01T10:30:00+02:00)")


def _to_point(value: Any) -> dict[str, float]:
    try:
        lon, lat = as_point(value)
    except ValueError:
        point = None
        if isinstance(value, dict) and value.get("type") == "Feature":
            try:
                point = as_geometry(value)
            except ValueError:
                point = None
        if point is None or point.get("type") != "Point":
            raise _BadValue(
                f'{_shown(value)} is not a point ("lat,lon", {{"lon", "lat"}}, [lat, lon] or a '
                "GeoJSON Point)"
            ) from None
        lon, lat = as_point(point)
    return {"lon": lon, "lat": lat}


def _to_shape(value: Any) -> str:
    geometry: dict[str, Any] | None
    try:
        geometry = as_geometry(value)
    except ValueError:
        try:
            lon, lat = as_point(value)
        except ValueError:
            raise _BadValue(f"{_shown(value)} is not a GeoJSON geometry or Feature") from None
        geometry = {"type": "Point", "coordinates": [lon, lat]}
    if geometry is None:
        raise _BadValue("the Feature has no geometry")
    text = json.dumps(geometry, ensure_ascii=False, separators=(",", ":"))
    try:
        shape_bboxes(pa.array([text], pa.string()))
    except ValueError as exc:
        raise _BadValue(str(exc)) from None
    return text


@dataclass
class _FileStore:
    """Where pushed file contents go (one temporary folder per app)."""

    folder: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def path_for(self, file_id: str, extension: str) -> Path:
        with self.lock:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="odsframe-push-files-"))
                atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
            return self.folder / f"{file_id}{extension}"


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def _extension(content_type: str, content: bytes) -> str:
    media = content_type.split(";")[0].strip().lower()
    if media in ("", "application/octet-stream"):
        media = next((m for sig, m in _SIGNATURES if content.startswith(sig)), media)
    if media in ("image/jpg", "image/jpeg"):
        return ".jpg"
    return mimetypes.guess_extension(media) or ".bin"


def _safe_filename(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    base = re.sub(r"[^\w.\- ]+", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return base[:200] or None


@dataclass
class _PendingFile:
    file_id: str
    path: Path
    content: bytes


def _to_file(
    value: Any, dataset: PortalDataset, store: _FileStore, pending: dict[str, _PendingFile]
) -> str:
    expected = '{"content": <base64>, "content-type": <mime type>}'
    if not isinstance(value, dict):
        raise _BadValue(f"{_shown(value)} is not a file object {expected}")
    if "content" not in value:
        file_id = value.get("id")
        path = dataset.files.get(file_id) if isinstance(file_id, str) else None
        if path is None or file_id is None or "/" in file_id:
            raise _BadValue(f"a file field takes {expected} (or the object of a known file)")
        described = file_object(file_id, path)
        return json.dumps(described, ensure_ascii=False, separators=(",", ":"))
    content_text = value.get("content")
    content_type = value.get("content-type", value.get("content_type", ""))
    if not isinstance(content_text, str) or not isinstance(content_type, str):
        raise _BadValue(f"a file field takes {expected}")
    try:
        content = base64.b64decode(content_text, validate=True)
    except (binascii.Error, ValueError):
        raise _BadValue("the file content is not valid base64") from None
    if not content:
        raise _BadValue("the file content is empty")
    file_id = hashlib.md5(content).hexdigest()
    path = store.path_for(file_id, _extension(content_type, content))
    pending.setdefault(file_id, _PendingFile(file_id, path, content))
    if not path.exists():
        path.write_bytes(content)
    described = file_object(file_id, path)
    filename = _safe_filename(value.get("filename"))
    if filename:
        described["filename"] = filename
    return json.dumps(described, ensure_ascii=False, separators=(",", ":"))


def _to_json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _to_multivalued(value: Any, separator: str) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(separator) if part.strip()]
    if isinstance(value, list):
        return [_to_text(item) for item in value if item is not None]
    return [_to_text(value)]


_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "int": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "geo_point_2d": POINT_TYPE,
    "geo_shape": pa.string(),
    "file": pa.string(),
    "json_blob": pa.string(),
}


@dataclass
class RecordBatch:
    """Pushed records cast to the storage convention (one arrow column per field)."""

    table: pa.Table
    files: dict[str, _PendingFile]


def records_table(
    dataset: PortalDataset,
    records: Sequence[Mapping[str, Any]],
    store: _FileStore | None = None,
) -> RecordBatch:
    """Check ``records`` against the schema of ``dataset`` and cast them to arrow columns.

    Returns the table (data columns named like the fields, plus the ``__bbox__`` columns of
    geo_shape fields) and the file contents met.

    Raises
    ------
    PortalError
        A 400 listing the first problems (unknown fields, values of the wrong kind).
    """
    fields = {f.name: f for f in dataset.fields}
    problems: list[str] = []
    count = 0

    def problem(text: str) -> None:
        nonlocal count
        count += 1
        if len(problems) < MAX_REPORTED_PROBLEMS:
            problems.append(text)

    store = store or _FileStore()
    pending: dict[str, _PendingFile] = {}
    columns: dict[str, list[Any]] = {name: [] for name in fields}
    for index, record in enumerate(records):
        unknown = [key for key in record if key not in fields]
        if unknown:
            names = ", ".join(repr(k) for k in unknown[:5])
            problem(f"record {index}: unknown field(s) {names}")
        for name, field_ in fields.items():
            value = record.get(name)
            if value is None:
                columns[name].append(None)
                continue
            try:
                columns[name].append(_convert(field_, value, dataset, store, pending))
            except _BadValue as exc:
                problem(f"record {index}, field '{name}' ({field_.type}): {exc}")
                columns[name].append(None)
    if problems:
        more = f" (and {count - len(problems)} more)" if count > len(problems) else ""
        known = ", ".join(fields) or "none"
        raise PortalError(
            f"{count} problem(s) in the pushed records, nothing was written: "
            f"{'; '.join(problems)}{more}. The fields of dataset '{dataset.dataset_id}' are: "
            f"{known}."
        )
    arrays: dict[str, pa.Array] = {}
    for name, field_ in fields.items():
        arrow_type = pa.list_(pa.string()) if field_.multivalued else _ARROW_TYPES[field_.type]
        arrays[name] = pa.array(columns[name], arrow_type)
        if field_.type == "geo_shape":
            arrays[HIDDEN_BBOX_PREFIX + name] = shape_bboxes(arrays[name])
    table = pa.table(arrays) if arrays else pa.table({"__empty": pa.nulls(len(records))})
    return RecordBatch(table, pending)


def _convert(
    field_: PortalField,
    value: Any,
    dataset: PortalDataset,
    store: _FileStore,
    pending: dict[str, _PendingFile],
) -> Any:
    kind = field_.type
    if kind == "text":
        if field_.multivalued:
            return _to_multivalued(value, field_.multivalued_separator)
        return _to_text(value)
    converters: dict[str, Callable[[Any], Any]] = {
        "int": _to_int,
        "double": _to_double,
        "boolean": _to_bool,
        "date": _to_date,
        "datetime": _to_datetime,
        "geo_point_2d": _to_point,
        "geo_shape": _to_shape,
        "json_blob": _to_json_text,
    }
    if kind == "file":
        return _to_file(value, dataset, store, pending)
    return converters[kind](value)


# -- writing ----------------------------------------------------------------------------------


def _select_storage(fields: Sequence[PortalField]) -> list[str]:
    """``CAST(<column> AS <storage type>) AS <column>`` for the fields and their bboxes."""
    items = []
    for f in fields:
        storage = "VARCHAR[]" if f.multivalued else STORAGE_TYPES[f.type]
        items.append(f"CAST({quote_ident(f.name)} AS {storage}) AS {quote_ident(f.name)}")
    for f in fields:
        if f.type == "geo_shape":
            bbox = quote_ident(HIDDEN_BBOX_PREFIX + f.name)
            items.append(f"CAST({bbox} AS {BBOX_STORAGE_TYPE}) AS {bbox}")
    return items


def _bump_after_change(api: ApiRequest, dataset: PortalDataset, cursor: Any) -> None:
    """``records_count`` from the table; ``data_processed``/``modified`` moved forward."""
    rows = cursor.execute(f"SELECT count(*) FROM {quote_ident(dataset.table)}").fetchall()
    api.catalog.mark_data_changed(dataset, records_count=int(rows[0][0]))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _catalog_lock(api: ApiRequest) -> Any:
    lock = getattr(api.catalog, "lock", None)
    return lock if lock is not None else _FALLBACK_LOCK


_FALLBACK_LOCK = threading.RLock()


def _file_store(api: ApiRequest) -> _FileStore:
    state = api.request.app.state
    with _FALLBACK_LOCK:
        store = getattr(state, "push_file_store", None)
        if store is None:
            store = _FileStore()
            state.push_file_store = store
    return store


def append_records(api: ApiRequest, dataset: PortalDataset, batch: RecordBatch) -> None:
    """Insert ``batch`` after the last record (one transaction), replacing same-id records."""
    fields = dataset.fields
    target = quote_ident(dataset.table)
    staging = f"__push_{hashlib.sha1(dataset.table.encode()).hexdigest()[:12]}"
    table = batch.table.append_column(
        "__position", pa.array(range(batch.table.num_rows), pa.int64())
    )
    names = [quote_ident(f.name) for f in fields] + [
        quote_ident(HIDDEN_BBOX_PREFIX + f.name) for f in fields if f.type == "geo_shape"
    ]
    hidden = [HIDDEN_ROWID, HIDDEN_ID, HIDDEN_TIMESTAMP, HIDDEN_FTS]
    now = datetime.now(UTC)
    if dataset.enum_fields:  # in-place writes would leave the ENUM twins stale: drop them
        api.catalog.drop_enum_twins(dataset)
    with _catalog_lock(api), api.cursor() as cursor:
        for pushed in batch.files.values():
            dataset.files.setdefault(pushed.file_id, pushed.path)
        rows = cursor.execute(
            f"SELECT coalesce(max({HIDDEN_ROWID}) + 1, 0) FROM {target}"
        ).fetchall()
        first_rowid = int(rows[0][0])
        inner = [*_select_storage(fields), f"(? + __position) AS {HIDDEN_ROWID}"]
        outer = [
            *names,
            HIDDEN_ROWID,
            f"{record_id_sql(fields)} AS {HIDDEN_ID}",
            f"CAST(? AS TIMESTAMPTZ) AS {HIDDEN_TIMESTAMP}",
            f"{fts_sql(fields)} AS {HIDDEN_FTS}",
        ]
        cursor.register(staging, table)
        try:
            cursor.execute("BEGIN TRANSACTION")
            try:
                cursor.execute(
                    f"INSERT INTO {target} ({', '.join([*names, *hidden])}) "
                    f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {staging})",
                    [now, first_rowid],
                )
                # A record with the id of an older one replaces it (the newest one wins).
                cursor.execute(
                    f"DELETE FROM {target} WHERE {HIDDEN_ROWID} IN (SELECT {HIDDEN_ROWID} FROM "
                    f"(SELECT {HIDDEN_ROWID}, row_number() OVER (PARTITION BY {HIDDEN_ID} "
                    f"ORDER BY {HIDDEN_ROWID} DESC) AS n FROM {target} WHERE {HIDDEN_ID} IN "
                    f"(SELECT {HIDDEN_ID} FROM {target} WHERE {HIDDEN_ROWID} >= ?)) WHERE n > 1)",
                    [first_rowid],
                )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        finally:
            cursor.unregister(staging)
        _bump_after_change(api, dataset, cursor)


def record_ids(api: ApiRequest, dataset: PortalDataset, batch: RecordBatch) -> list[str]:
    """The record ids the records of ``batch`` have (as the catalog computes them)."""
    staging = f"__push_ids_{hashlib.sha1(dataset.table.encode()).hexdigest()[:12]}"
    with api.cursor() as cursor:
        cursor.register(staging, batch.table)
        try:
            rows = cursor.execute(
                f"SELECT {record_id_sql(dataset.fields)} FROM "
                f"(SELECT {', '.join(_select_storage(dataset.fields))} FROM {staging})"
            ).fetchall()
        finally:
            cursor.unregister(staging)
    return [str(row[0]) for row in rows]


def delete_ids(api: ApiRequest, dataset: PortalDataset, ids: Sequence[str]) -> int:
    """Delete the records with these ids; returns how many went."""
    if not ids:
        return 0
    target = quote_ident(dataset.table)
    placeholders = ", ".join("?" for _ in ids)
    with _catalog_lock(api), api.cursor() as cursor:
        before = cursor.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
        cursor.execute(f"DELETE FROM {target} WHERE {HIDDEN_ID} IN ({placeholders})", list(ids))
        after = cursor.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
        removed = int(before) - int(after)
        if removed:
            _bump_after_change(api, dataset, cursor)
    return removed


# -- handlers ---------------------------------------------------------------------------------

_OK = {"status": "OK"}


def _require(api: ApiRequest, *methods: str) -> None:
    if api.request.method not in methods:
        raise MethodNotAllowedError(
            f"Method {api.request.method} is not allowed here: the push API takes "
            f"{' or '.join(methods)}."
        )


def push_records(api: ApiRequest) -> Any:
    """``POST /api/push/1.0/{dataset_id}/{resource_id}/push/``."""
    _require(api, "POST")
    dataset = _push_dataset(api)
    records = _body_records(api)
    if not records:
        return _OK
    batch = records_table(dataset, records, _file_store(api))
    append_records(api, dataset, batch)
    return _OK


def delete_by_values(api: ApiRequest) -> Any:
    """``POST /api/push/1.0/{dataset_id}/{resource_id}/delete/``: the records sent go."""
    _require(api, "POST")
    dataset = _push_dataset(api)
    records = _body_records(api)
    if not records:
        return _OK
    batch = records_table(dataset, records, _file_store(api))
    delete_ids(api, dataset, record_ids(api, dataset, batch))
    return _OK


def delete_by_id(api: ApiRequest) -> Any:
    """``GET /api/push/1.0/{dataset_id}/{resource_id}/{record_id}/delete/``."""
    _require(api, "GET", "DELETE", "POST")
    dataset = _push_dataset(api)
    delete_ids(api, dataset, [str(api.path_params["record_id"])])
    return _OK


# -- routes -----------------------------------------------------------------------------------

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def read_limited_body(request: Request, limit: int = MAX_PUSH_BYTES) -> bytes:
    """The request body, or :class:`PayloadTooLargeError` past ``limit`` bytes.

    An oversized body is still read to its end (and dropped), so the client gets the 413
    rather than a connection reset while it is sending.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise PayloadTooLargeError(
            f"The payload is {size / 1_000_000:.1f} MB: real-time push requests are limited "
            f"to a 5 MB payload ({limit} bytes). Split the records into several requests."
        )
    return b"".join(chunks)


def _push_endpoint(
    handler: Callable[[ApiRequest], Any],
) -> Callable[[Request], Awaitable[Response]]:
    inner = api_endpoint(handler, error_response=v1_error_response)

    async def endpoint(request: Request) -> Response:
        try:
            body = await read_limited_body(request)
        except PortalError as error:
            return v1_error_response(error)
        setattr(request.state, _PUSH_BODY_KEY, body)
        return await inner(request)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


def push_routes() -> list[Route]:
    """The starlette routes of the push API (mounted by ``server.create_app``)."""
    source = f"{PUSH_BASE}/{{dataset_id}}/{{resource_id}}"
    table = [
        (f"{source}/push", push_records),
        (f"{source}/delete", delete_by_values),
        (f"{source}/{{record_id}}/delete", delete_by_id),
    ]
    routes = []
    for path, handler in table:
        endpoint = _push_endpoint(handler)
        routes.append(Route(path, endpoint, methods=_METHODS))
        routes.append(Route(path + "/", endpoint, methods=_METHODS))
    return routes


__all__ = [
    "MAX_PUSH_BYTES",
    "PUSH_BASE",
    "SAMPLE_PUSH_DATASET",
    "SAMPLE_PUSH_KEY",
    "check_push_keys",
    "push_routes",
    "records_table",
]
