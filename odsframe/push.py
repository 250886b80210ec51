"""Real-time push: send rows of a frame (or plain records) to an ODS dataset.

ODS datasets with a real-time source take records at
``POST <portal>/api/push/1.0/<dataset>/<resource>/push/?pushkey=<key>``: one JSON object or a
list of them, at most 5 MB per request, answered ``{"status": "OK"}`` (ods-api.md 2.10).
When the dataset has ``id`` fields, a record with the key of an existing one replaces it;
otherwise identical records share one id. Pushes are therefore safe to repeat, and a batch
is retried like a read (connection failures, 5xx, 429).

:func:`push` serialises a DataFrame or GeoDataFrame (or records) to that JSON
(:func:`to_push_records`) and sends it in batches under the size limit; :func:`delete`
removes records by their values or their ids. The push key goes in the URL, as ODS
requires, and nowhere else: it is masked in logs, error messages and results, and the
portal's API key is never sent to the push API.

How values are written (null values leave their key out, as v1 JSON does):

==========================================  ===============================================
value                                       JSON
==========================================  ===============================================
tz-aware datetimes                          ISO 8601 with the offset (``...T10:30:00+02:00``)
naive datetimes                             ``YYYY-MM-DD`` when a column holds only
                                            midnights (a ``date`` field as ``read_ods``
                                            returns it), else ISO 8601 in UTC (``+00:00``)
``datetime.date``                           ``YYYY-MM-DD``
numbers, booleans, strings                  as they are (NaN and NA are null; infinities
                                            are refused)
shapely points (and ``__geo_interface__``)  ``"lat,lon"`` (``point_format="geojson"``: a
                                            GeoJSON Point); other geometries: GeoJSON
                                            geometries, in EPSG:4326 (GeoSeries in another
                                            CRS are reprojected)
``bytes``, ``pathlib.Path``                 a file field's ``{"content": <base64>,
                                            "content-type": <mime type>}``
lists, arrays, dicts                        JSON arrays and objects (multivalued text,
                                            json_blob)
==========================================  ===============================================
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import mimetypes
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    InvalidQueryArgument,
    ODSError,
    QueryError,
    ServerError,
)

if TYPE_CHECKING:
    import pandas as pd

    from odsframe._http import HTTPClient, RetryPolicy

__all__ = ["PushResult", "delete", "push", "to_push_records"]

logger = logging.getLogger(__name__)

PUSH_PATH = "/api/push/1.0"
#: Largest request body sent by default: under ODS's 5 MB, whether MB means 10^6 or 2^20.
DEFAULT_MAX_BYTES = 5_000_000
#: Most records per request by default.
DEFAULT_BATCH_SIZE = 1_000

PointFormat = Literal["latlon", "geojson"]

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


class _Omit:
    """A null value: its key is left out of the record."""


_OMIT = _Omit()


@dataclass(frozen=True)
class PushResult:
    """What :func:`push` or :func:`delete` sent.

    Attributes
    ----------
    portal, dataset, resource
        Where the records went.
    action
        ``"push"`` or ``"delete"``.
    records
        Records (or record ids) sent.
    requests
        HTTP requests made (batches).
    bytes_sent
        Bytes of JSON sent.
    url
        The push URL, without the push key.
    """

    portal: str
    dataset: str
    resource: str
    action: str
    records: int
    requests: int
    bytes_sent: int
    url: str


# -- serialising ------------------------------------------------------------------------------


def _field_error(column: Any, row: Any, message: str) -> InvalidQueryArgument:
    where = f"column {column!r}" if row is None else f"column {column!r}, row {row!r}"
    return InvalidQueryArgument(f"data: {where}: {message}")


def _iso(moment: Any) -> str:
    """ISO 8601 of an aware datetime or Timestamp, microseconds only when there are some."""
    fraction = getattr(moment, "microsecond", 0) or getattr(moment, "nanosecond", 0)
    return str(moment.isoformat(timespec="microseconds" if fraction else "seconds"))


def _number_text(value: float) -> str:
    import numpy as np

    return str(np.format_float_positional(value, trim="-"))


def _file_content(content: bytes, content_type: str | None = None) -> dict[str, str]:
    if content_type is None:
        content_type = next(
            (mime for signature, mime in _SIGNATURES if content.startswith(signature)),
            "application/octet-stream",
        )
    return {"content": base64.b64encode(content).decode("ascii"), "content-type": content_type}


def _geometry(value: Any, point_format: PointFormat) -> Any:
    """A geometry as ``"lat,lon"`` (points) or a GeoJSON geometry object."""
    mapping = getattr(value, "__geo_interface__", None)
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{type(value).__name__} has no GeoJSON form")
    if getattr(value, "is_empty", False):
        return _OMIT
    geometry = json.loads(json.dumps(mapping))  # tuples to lists, a plain JSON value
    if geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
        if not isinstance(geometry, dict):
            return _OMIT
    if geometry.get("type") == "Point" and point_format == "latlon":
        coordinates = geometry.get("coordinates") or []
        if len(coordinates) < 2:
            return _OMIT
        lon, lat = float(coordinates[0]), float(coordinates[1])
        return f"{_number_text(lat)},{_number_text(lon)}"
    return geometry


def _value(value: Any, point_format: PointFormat, *, nested: bool = False) -> Any:
    """One value as JSON (``_OMIT`` for a top-level null)."""
    import numpy as np
    import pandas as pd

    null = None if nested else _OMIT
    if value is None or value is pd.NA or value is pd.NaT:
        return null
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        number = float(value)
        if math.isnan(number):
            return null
        if math.isinf(number):
            raise ValueError("infinity is not a JSON number")
        return number
    if isinstance(value, str):
        return value
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        stamp = pd.Timestamp(value)
        return _iso(stamp if stamp.tzinfo is not None else stamp.tz_localize("UTC"))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (np.datetime64, np.timedelta64, pd.Timedelta, dt.timedelta)):
        if isinstance(value, np.datetime64):
            return null if np.isnat(value) else _value(pd.Timestamp(value), point_format)
        raise TypeError("durations have no ODS type (send a number of seconds, for example)")
    if hasattr(value, "__geo_interface__"):
        return _geometry(value, point_format)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _file_content(bytes(value))
    if isinstance(value, PurePath):
        path = os.fspath(value)
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as err:
            raise ValueError(f"cannot read the file {path} ({err.strerror})") from None
        return _file_content(content, mimetypes.guess_type(path)[0])
    if isinstance(value, Mapping):
        return {str(k): _value(v, point_format, nested=True) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, set, frozenset)):
        return [_value(item, point_format, nested=True) for item in value]
    raise TypeError(f"a {type(value).__name__} has no ODS JSON form")


def _column_values(name: str, series: pd.Series, point_format: PointFormat) -> list[Any]:
    """The JSON values of one column (``_OMIT`` for nulls)."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if getattr(dtype, "name", None) == "geometry":
        crs = getattr(series, "crs", None)
        if crs is not None and crs.to_epsg() != 4326:
            series = series.to_crs(4326)
        values: list[Any] = []
        for index, geometry in zip(series.index, series.array, strict=True):
            if geometry is None:
                values.append(_OMIT)
                continue
            try:
                values.append(_geometry(geometry, point_format))
            except (TypeError, ValueError) as err:
                raise _field_error(name, index, str(err)) from None
        return values
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
        dtype = series.dtype
    if types.is_datetime64_any_dtype(dtype):
        aware = getattr(dtype, "tz", None) is not None
        present = series.dropna()
        dates_only = (
            not aware and len(present) > 0 and bool((present == present.dt.normalize()).all())
        )
        values = []
        for stamp in series:
            if pd.isna(stamp):
                values.append(_OMIT)
            elif dates_only:
                values.append(stamp.strftime("%Y-%m-%d"))
            else:
                values.append(_iso(stamp if aware else stamp.tz_localize("UTC")))
        return values
    if types.is_timedelta64_dtype(dtype):
        raise _field_error(name, None, "durations have no ODS type (convert them to numbers)")
    values = []
    for index, value in zip(series.index, series.array, strict=True):
        try:
            values.append(_value(value, point_format))
        except (TypeError, ValueError) as err:
            raise _field_error(name, index, str(err)) from None
    return values


def _frame_records(frame: pd.DataFrame, point_format: PointFormat) -> list[dict[str, Any]]:
    names = list(frame.columns)
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidQueryArgument(
                f"data: column names must be field names (non-empty strings), not {name!r}"
            )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidQueryArgument(f"data: duplicated column(s) {duplicated}")
    columns = [
        _column_values(name, frame.iloc[:, position], point_format)
        for position, name in enumerate(names)
    ]
    records = []
    for row in zip(*columns, strict=True) if columns else [() for _ in range(len(frame))]:
        records.append(
            {name: value for name, value in zip(names, row, strict=True) if value is not _OMIT}
        )
    return records


def to_push_records(data: Any, *, point_format: PointFormat = "latlon") -> list[dict[str, Any]]:
    """The records of ``data`` as the push API takes them (JSON-ready dicts, nulls left out).

    Parameters
    ----------
    data
        A DataFrame or GeoDataFrame (one record per row, one field per column), one record
        (a mapping) or an iterable of records.
    point_format
        ``"latlon"``: points as ``"lat,lon"`` text, which ODS reads into geo_point_2d
        fields; ``"geojson"``: GeoJSON Points (for geo_shape fields).

    Raises
    ------
    InvalidQueryArgument
        When a value has no ODS JSON form; the message names the column and row.
    """
    import pandas as pd

    if point_format not in ("latlon", "geojson"):
        raise InvalidQueryArgument(
            f"point_format: expected 'latlon' or 'geojson', got {point_format!r}"
        )
    if isinstance(data, pd.DataFrame):
        return _frame_records(data, point_format)
    if isinstance(data, Mapping):
        data = [data]
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise InvalidQueryArgument(
            "data: expected a DataFrame, a record (mapping) or an iterable of records, "
            f"got {type(data).__name__}"
        )
    records = []
    for number, record in enumerate(data):
        if not isinstance(record, Mapping):
            raise InvalidQueryArgument(
                f"data: record {number} is a {type(record).__name__}, not a mapping of field values"
            )
        encoded: dict[str, Any] = {}
        for key, value in record.items():
            if not isinstance(key, str) or not key:
                raise InvalidQueryArgument(f"data: record {number}: {key!r} is not a field name")
            try:
                converted = _value(value, point_format)
            except (TypeError, ValueError) as err:
                raise _field_error(key, number, str(err)) from None
            if converted is not _OMIT:
                encoded[key] = converted
        records.append(encoded)
    return records


def _encode(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _batches(
    encoded: Sequence[bytes], batch_size: int, max_bytes: int
) -> Iterator[tuple[int, list[bytes]]]:
    """``(index of the first record, records)`` of each request body under both limits."""
    current: list[bytes] = []
    start = 0
    size = 2  # the brackets
    for index, record in enumerate(encoded):
        extra = len(record) + (1 if current else 0)
        if current and (len(current) >= batch_size or size + extra > max_bytes):
            yield start, current
            current, start, size = [], index, 2
            extra = len(record)
        current.append(record)
        size += extra
    if current:
        yield start, current


# -- sending ----------------------------------------------------------------------------------


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidQueryArgument(f"{name}: expected a non-empty string, got {value!r}")
    return value.strip()


def _check_limits(batch_size: Any, max_bytes: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidQueryArgument(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        raise InvalidQueryArgument(f"max_bytes: expected an integer >= 1024, got {max_bytes!r}")


@dataclass
class _Target:
    portal: str
    dataset: str
    resource: str
    pushkey: str

    @property
    def source_url(self) -> str:
        from odsframe._portal_url import dataset_path_segment

        return (
            f"{self.portal}{PUSH_PATH}/{dataset_path_segment(self.dataset)}/"
            f"{quote(self.resource, safe='')}"
        )

    def result(self, action: str, records: int, requests: int, sent: int) -> PushResult:
        return PushResult(
            portal=self.portal,
            dataset=self.dataset,
            resource=self.resource,
            action=action,
            records=records,
            requests=requests,
            bytes_sent=sent,
            url=f"{self.source_url}/{action}/",
        )


def _target(portal: str, dataset: str, resource: str, pushkey: str) -> _Target:
    from odsframe._portal_url import dataset_path_segment, resolve_portal

    dataset = _check_text("dataset", dataset)
    dataset_path_segment(dataset)  # validates the id
    resource = _check_text("resource", resource)
    if "/" in resource or resource in (".", ".."):
        raise InvalidQueryArgument(f"resource: {resource!r} is not a resource id")
    if not isinstance(pushkey, str) or not pushkey.strip():
        raise InvalidQueryArgument(
            "pushkey: expected the push key of the dataset's real-time source (a non-empty string)"
        )
    return _Target(resolve_portal(portal), dataset, resource, pushkey.strip())


class _MaskKeys(logging.Filter):
    """Masks ``pushkey=`` (and other key parameters) in the URLs urllib3 logs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        from odsframe._http import safe_url

        if isinstance(record.args, tuple):
            record.args = tuple(
                safe_url(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = safe_url(record.msg)
        return True


_MASK_KEYS = _MaskKeys()


def _client(
    session: Any, timeout: float | tuple[float, float] | None, retry: RetryPolicy | None
) -> HTTPClient:
    from odsframe._http import DEFAULT_TIMEOUT, HTTPClient

    # The push key must travel in the URL; urllib3 writes request URLs to its debug log.
    connection_log = logging.getLogger("urllib3.connectionpool")
    if _MASK_KEYS not in connection_log.filters:
        connection_log.addFilter(_MASK_KEYS)
    # No API key: the push API authenticates with the push key alone.
    return HTTPClient(
        api_key=None,
        session=session,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        retry=retry,
    )


def _explained(error: ODSError, target: _Target, what: str, done: str) -> ODSError:
    """``error`` reworded for the push API (the key, the records, what was already sent)."""
    server = f": {error.server_message}" if error.server_message else ""
    status = f"HTTP {error.status}{server}" if error.status else str(error)
    common: dict[str, Any] = {
        "status": error.status,
        "error_code": error.error_code,
        "server_message": error.server_message,
        "dataset": target.dataset,
        "url": error.url,
    }
    about = f"dataset {target.dataset!r}, resource {target.resource!r}"
    if isinstance(error, AuthenticationError):
        return AuthenticationError(
            f"The push API refused {what} for {about} ({status}). Check the push key of the "
            f"real-time source and that pushing is enabled.{done}",
            **common,
        )
    if isinstance(error, DatasetNotFoundError):
        return DatasetNotFoundError(
            f"The push API has no {about} ({status}). Check the dataset and resource ids of "
            f"the push URL.{done}",
            **common,
        )
    if isinstance(error, QueryError):
        return QueryError(f"The push API rejected {what} for {about} ({status}).{done}", **common)
    error.message = f"{error.message}{done}"
    error.args = (error.message,)
    return error


def _send(http: HTTPClient, url: str, target: _Target, body: bytes) -> None:
    answer = http.post_json(url, body, {"pushkey": target.pushkey}, dataset=target.dataset)
    _check_ok(answer, target)


def _check_ok(answer: Any, target: _Target) -> None:
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, str) or status.lower() != "ok":
        raise ServerError(
            f"The push API answered {json.dumps(answer)[:200]} for dataset {target.dataset!r} "
            'instead of {"status": "OK"}.',
            dataset=target.dataset,
        )


def _send_batches(
    http: HTTPClient,
    target: _Target,
    action: str,
    records: Sequence[Mapping[str, Any]],
    batch_size: int,
    max_bytes: int,
) -> PushResult:
    encoded = [_encode(record) for record in records]
    for index, record in enumerate(encoded):
        if len(record) + 2 > max_bytes:
            raise InvalidQueryArgument(
                f"data: record {index} is {len(record):,} bytes of JSON, more than the "
                f"{max_bytes:,}-byte limit of one push request; make it smaller (file fields "
                "count their base64 content)"
            )
    url = f"{target.source_url}/{action}/"
    requests = sent = 0
    for start, batch in _batches(encoded, batch_size, max_bytes):
        body = b"[" + b",".join(batch) + b"]"
        try:
            _send(http, url, target, body)
        except ODSError as err:
            done = (
                f" The {start:,} record(s) of the {requests} earlier request(s) were sent."
                if requests
                else " Nothing was sent."
            )
            last = start + len(batch) - 1
            what = f"record {start}" if last == start else f"records {start}-{last}"
            error = _explained(err, target, what, done)
        else:
            requests += 1
            sent += len(body)
            continue
        error.__cause__ = None
        error.__suppress_context__ = True  # the chained errors may show the key
        raise error
    logger.info(
        "%s: %d record(s) to %s/%s in %d request(s) (%d bytes)",
        action,
        len(records),
        target.dataset,
        target.resource,
        requests,
        sent,
    )
    return target.result(action, len(records), requests, sent)


def push(
    portal: str,
    dataset: str,
    resource: str,
    data: Any,
    *,
    pushkey: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    point_format: PointFormat = "latlon",
    session: Any = None,
    timeout: float | tuple[float, float] | None = None,
    retry: RetryPolicy | None = None,
) -> PushResult:
    """Push records to a dataset's real-time source.

    Parameters
    ----------
    portal
        The portal (URL, domain or shorthand, as for :func:`~odsframe.read_ods`).
    dataset
        The dataset id.
    resource
        The id of the dataset's real-time resource (in the push URL the portal shows).
    data
        A DataFrame or GeoDataFrame (its columns are field names), one record (a mapping)
        or an iterable of records; see :func:`to_push_records` for how values are written.
    pushkey
        The push key of the real-time source (sent in the URL as ODS requires; masked in
        logs and errors).
    batch_size
        Most records per request.
    max_bytes
        Largest request body (ODS refuses more than 5 MB).
    point_format
        ``"latlon"`` (``"lat,lon"`` text, for geo_point_2d fields) or ``"geojson"``.
    session, timeout, retry
        A ``requests.Session`` of yours, ``(connect, read)`` seconds, a
        :class:`~odsframe._http.RetryPolicy`.

    Returns
    -------
    PushResult
        Records, requests and bytes sent.

    Raises
    ------
    InvalidQueryArgument
        Bad arguments, a value with no JSON form, or a record larger than ``max_bytes``
        (before anything is sent).
    AuthenticationError
        The push key was refused (or pushing is disabled).
    QueryError
        The portal rejected records (unknown field, wrong type ...); the message names the
        records of the batch and says what was sent before.

    Examples
    --------
    >>> odsframe.push("data.example.org", "bike-counts", "realtime", df, pushkey=key)  # doctest: +SKIP
    PushResult(..., records=120, requests=1, ...)
    """
    target = _target(portal, dataset, resource, pushkey)
    _check_limits(batch_size, max_bytes)
    records = to_push_records(data, point_format=point_format)
    http = _client(session, timeout, retry)
    try:
        return _send_batches(http, target, "push", records, batch_size, max_bytes)
    finally:
        http.close()


def delete(
    portal: str,
    dataset: str,
    resource: str,
    data: Any = None,
    *,
    pushkey: str,
    record_ids: Iterable[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    point_format: PointFormat = "latlon",
    session: Any = None,
    timeout: float | tuple[float, float] | None = None,
    retry: RetryPolicy | None = None,
) -> PushResult:
    """Delete pushed records, by their values (``data``) or by their ids (``record_ids``).

    By values, each record is sent to ``.../delete/`` as it was pushed (with ``id`` fields,
    those are enough); by id, one ``GET .../<record_id>/delete/`` per id. The other
    parameters are those of :func:`push`.

    Raises
    ------
    InvalidQueryArgument
        When neither or both of ``data`` and ``record_ids`` are given.
    """
    target = _target(portal, dataset, resource, pushkey)
    _check_limits(batch_size, max_bytes)
    if (data is None) == (record_ids is None):
        raise InvalidQueryArgument("delete: give either data (record values) or record_ids")
    http = _client(session, timeout, retry)
    try:
        if data is not None:
            records = to_push_records(data, point_format=point_format)
            return _send_batches(http, target, "delete", records, batch_size, max_bytes)
        if isinstance(record_ids, str):
            record_ids = [record_ids]
        ids = [_check_text("record_ids", record_id) for record_id in record_ids or []]
        for number, record_id in enumerate(ids):
            url = f"{target.source_url}/{quote(record_id, safe='')}/delete/"
            try:
                response = http.request(url, {"pushkey": target.pushkey}, dataset=target.dataset)
                _check_ok(response.json(), target)
            except (ODSError, ValueError) as err:
                done = f" {number} earlier id(s) were deleted." if number else " Nothing was sent."
                if isinstance(err, ODSError):
                    error = _explained(err, target, f"the deletion of {record_id!r}", done)
                else:
                    error = ServerError(
                        f"The push API answered something that is not JSON.{done}",
                        dataset=target.dataset,
                    )
                error.__cause__ = None
                error.__suppress_context__ = True
                raise error from None
        return target.result("delete", len(ids), len(ids), 0)
    finally:
        http.close()
