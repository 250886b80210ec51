"""Chunked, resumable, parallel downloads of large ODS datasets.

:func:`download` writes a folder of part files plus a ``manifest.json``; :func:`download_parts`
does the same with an adapter and a :class:`~odsframe.query.Query` (``read_ods`` uses it for
large reads); :func:`read_parts` turns a complete folder into one typed frame.

How a download goes:

1. **State**: the dataset metadata (schema, ``data_processed``, ``records_count``) and the
   server's count of the query (``limit=0``).
2. **Resume or start**: a manifest for the same portal, dataset, query and format is reused
   when the dataset did not change; its complete parts are checked (size and SHA-256) and
   only the others are fetched. When the dataset changed, the download starts over with a
   :class:`DatasetChangedWarning`.
3. **Plan**: exports have no offset, so chunks are *slices of one sortable field*, chosen
   with ``where``. One aggregate request gives, for every candidate field (int, double, date,
   datetime, text), its distinct, non-null, min and max counts; the field that splits best
   is picked (fine-grained, few nulls, numbers and dates before text, ``id`` fields first).
   Its range is cut at evenly spread (rounded) values into about ``count / chunk_rows``
   slices, each counted with ``limit=0`` (in parallel); slices still too large are cut
   again (text: in halves) until every slice holds at most ``chunk_rows`` records, then
   neighbouring small slices are merged back.
   Slices are half-open (``f >= a AND f < b``; the first and last are open-ended), so every
   non-null value is in exactly one slice; nulls get their own ``f IS NULL`` chunk. The
   counts of the chunks must add up to the server's count, else one export is used.
   Without a usable field (or with a ``limit``, or an ``order_by`` that does not start with
   a usable field) the download is one chunk, and the manifest's ``note`` says why.
4. **Fetch**: ``workers`` threads (one shared session) stream chunks to temporary files in
   the folder, hashing as they go; a chunk's row count (Parquet metadata, CSV rows, JSON
   lines ...) must equal its expected count, else it is fetched again (bounded), then
   :class:`~odsframe.errors.IncompleteResultError` names the chunk. A complete chunk is
   renamed into place and recorded in the manifest at once, so a killed process loses at
   most the chunks in flight.

One download per folder at a time: two processes writing the same folder race on the
manifest.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, cast

from odsframe.errors import (
    IncompleteResultError,
    InvalidQueryArgument,
    ODSWarning,
    PortalConnectionError,
    QueryError,
    ServerError,
)

if TYPE_CHECKING:
    import pandas as pd

    from odsframe._http import RetryPolicy
    from odsframe._progress import Progress, ProgressArg
    from odsframe.api.base import ExploreAdapter
    from odsframe.query.query import Query

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_WORKERS",
    "DOWNLOAD_FORMATS",
    "MANIFEST_NAME",
    "MAX_WORKERS",
    "Chunk",
    "DatasetChangedWarning",
    "Manifest",
    "download",
    "download_parts",
    "load_manifest",
    "read_parts",
]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_WORKERS = 4
#: Most parallel downloads (a requests session keeps 10 connections per host).
MAX_WORKERS = 8
#: Tries per chunk (each try also has the HTTP layer's own retries).
CHUNK_ATTEMPTS = 4
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
#: Formats whose row count can be checked, with the part files' suffix.
DOWNLOAD_FORMATS: dict[str, str] = {
    "parquet": ".parquet",
    "csv": ".csv",
    "jsonl": ".jsonl",
    "json": ".json",
    "geojson": ".geojson",
}
#: Deepest splitting of one slice (enough for any double or a long text prefix).
_MAX_SPLIT_DEPTH = 64
#: A slice is cut into pieces of about ``_FILL * chunk_rows`` records (if values are even),
#: at most ``_MAX_PIECES`` at a time; pieces still too large are cut again.
_FILL = 0.85
_MAX_PIECES = 64
#: Most fields compared in the one aggregate request that picks the chunk field.
_MAX_PROBED_FIELDS = 12
_SLICEABLE_TYPES = ("int", "double", "date", "datetime", "text")
_TEMP_SUFFIX = ".part"
_HASH_BLOCK = 1 << 20

ChunkStatus = Literal["pending", "complete"]
T = TypeVar("T")


class DatasetChangedWarning(ODSWarning):
    """A resumed download starts over: the dataset changed since the manifest was written."""


# --------------------------------------------------------------------------------------------
# Manifest


@dataclass
class Chunk:
    """One part of a download: a slice of the records and the file holding it.

    Attributes
    ----------
    index
        Position of the chunk (the order of the parts).
    file
        The part file's name in the download folder.
    where
        The ODSQL condition selecting the slice (``None``: the whole query).
    expected
        Records the server counted in the slice.
    status
        ``"pending"`` or ``"complete"``.
    rows, bytes, sha256
        What the complete part file holds.
    attempts
        Requests made for this chunk.
    """

    index: int
    file: str
    where: str | None
    expected: int
    status: ChunkStatus = "pending"
    rows: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "where": self.where,
            "expected": self.expected,
            "status": self.status,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Chunk:
        status = item.get("status")
        return cls(
            index=int(item["index"]),
            file=_safe_file_name(str(item["file"])),
            where=item.get("where"),
            expected=int(item["expected"]),
            status="complete" if status == "complete" else "pending",
            rows=item.get("rows"),
            bytes=item.get("bytes"),
            sha256=item.get("sha256"),
            attempts=int(item.get("attempts") or 0),
        )

    def reset(self) -> None:
        """Mark the chunk as still to fetch."""
        self.status = "pending"
        self.rows = self.bytes = None
        self.sha256 = None


def _safe_file_name(name: str) -> str:
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a plain file name")
    return name


@dataclass
class Manifest:
    """What a download folder holds: the query, the server's state, and every chunk.

    Written as ``manifest.json`` in the folder after every completed chunk; never holds an API
    key. Read it back with :func:`load_manifest`.
    """

    folder: Path
    portal: str
    dataset: str
    query: dict[str, Any]
    format: str
    total: int
    data_processed: str | None
    records_count: int | None
    fields: list[dict[str, Any]]
    chunks: list[Chunk]
    chunk_field: str | None = None
    chunk_field_type: str | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    note: str = ""
    api_version: str = "2.1"
    created: str = ""
    updated: str = ""

    def __repr__(self) -> str:
        done = sum(chunk.status == "complete" for chunk in self.chunks)
        return (
            f"<Manifest {self.dataset!r}: {done}/{len(self.chunks)} chunks complete, "
            f"{self.rows} of {self.expected_rows} rows, {self.format}, {self.folder}>"
        )

    @property
    def path(self) -> Path:
        """The manifest file."""
        return self.folder / MANIFEST_NAME

    @property
    def complete(self) -> bool:
        """Whether every chunk is downloaded."""
        return all(chunk.status == "complete" for chunk in self.chunks)

    @property
    def files(self) -> list[Path]:
        """The part files, in chunk order (complete chunks only)."""
        return [self.folder / c.file for c in self.chunks if c.status == "complete"]

    @property
    def rows(self) -> int:
        """Rows in the complete part files."""
        return sum(chunk.rows or 0 for chunk in self.chunks if chunk.status == "complete")

    @property
    def expected_rows(self) -> int:
        """Rows the download holds once complete (the server's count, capped by a limit)."""
        return sum(chunk.expected for chunk in self.chunks)

    @property
    def timezone(self) -> str | None:
        """The query's ``timezone`` parameter, if any."""
        return _param(self.query, "timezone")

    def to_json(self) -> dict[str, Any]:
        return {
            "odsframe_download": MANIFEST_VERSION,
            "portal": self.portal,
            "dataset": self.dataset,
            "api_version": self.api_version,
            "query": self.query,
            "format": self.format,
            "total": self.total,
            "data_processed": self.data_processed,
            "records_count": self.records_count,
            "chunk_field": self.chunk_field,
            "chunk_field_type": self.chunk_field_type,
            "chunk_rows": self.chunk_rows,
            "note": self.note,
            "created": self.created,
            "updated": self.updated,
            "fields": self.fields,
            "chunks": [chunk.to_json() for chunk in self.chunks],
        }

    @classmethod
    def from_json(cls, folder: Path, payload: Mapping[str, Any]) -> Manifest:
        if payload.get("odsframe_download") != MANIFEST_VERSION:
            raise ValueError("not an odsframe download manifest of this version")
        return cls(
            folder=folder,
            portal=str(payload["portal"]),
            dataset=str(payload["dataset"]),
            query=dict(payload["query"]),
            format=str(payload["format"]),
            total=int(payload["total"]),
            data_processed=payload.get("data_processed"),
            records_count=payload.get("records_count"),
            fields=list(payload.get("fields") or []),
            chunks=[Chunk.from_json(item) for item in payload["chunks"]],
            chunk_field=payload.get("chunk_field"),
            chunk_field_type=payload.get("chunk_field_type"),
            chunk_rows=int(payload.get("chunk_rows") or DEFAULT_CHUNK_ROWS),
            note=str(payload.get("note") or ""),
            api_version=str(payload.get("api_version") or "2.1"),
            created=str(payload.get("created") or ""),
            updated=str(payload.get("updated") or ""),
        )

    def write(self) -> None:
        """Write ``manifest.json`` atomically (temporary file, fsync, rename)."""
        self.updated = _now()
        data = json.dumps(self.to_json(), ensure_ascii=False, indent=1).encode("utf-8")
        temporary = self.folder / f".{MANIFEST_NAME}.{uuid.uuid4().hex}{_TEMP_SUFFIX}"
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise


def _param(query: Mapping[str, Any], name: str) -> str | None:
    for key, value in query.get("params") or []:
        if key == name:
            return str(value)
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """The manifest of a download folder.

    Raises
    ------
    InvalidQueryArgument
        The folder has no readable odsframe manifest.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.from_json(Path(folder), payload)
    except FileNotFoundError:
        raise InvalidQueryArgument(f"{folder}: no {MANIFEST_NAME} here (not a download)") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InvalidQueryArgument(f"{path} is not a readable download manifest: {err}") from err


# --------------------------------------------------------------------------------------------
# Values of the chunk field: parsing, midpoints and literals


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INT_UNITS = tuple(10**power for power in range(18, -1, -1))
_DATETIME_UNITS = (
    86_400_000_000,  # day
    3_600_000_000,  # hour
    60_000_000,  # minute
    1_000_000,  # second
    1_000,  # millisecond
    1,
)
# (first, end) code points of character classes: digits, upper case, lower case.
_CHARACTER_CLASSES = ((0x30, 0x3A), (0x41, 0x5B), (0x61, 0x7B))
_SURROGATES = (0xD800, 0xDFFF)


def _nice_integer_between(low: int, high: int, units: Sequence[int]) -> int | None:
    """An integer strictly between ``low`` and ``high`` near the middle, as round as can be."""
    span = high - low
    if span < 2:
        return None
    middle = low + span // 2
    for unit in units:
        candidate = middle - middle % unit
        if candidate <= low:
            candidate += unit
        if low + span // 4 <= candidate <= high - span // 4 and low < candidate < high:
            return candidate
    return middle


def _double_between(low: float, high: float) -> float | None:
    if not low < high:
        return None
    middle = low / 2 + high / 2
    if not low < middle < high:
        middle = math.nextafter(low, math.inf)
        return middle if middle < high else None
    span = high - low
    if math.isfinite(span):
        for digits in range(1, 18):
            rounded = float(f"{middle:.{digits}g}")
            if low + span / 4 <= rounded <= high - span / 4 and low < rounded < high:
                return rounded
    return middle


def _round_integer(value: int, tolerance: int, units: Sequence[int]) -> int:
    """``value`` rounded down to the largest unit not above ``tolerance``."""
    for unit in units:
        if unit <= tolerance:
            return value - value % unit
    return value


def _round_double(value: float, tolerance: float) -> float:
    """``value`` with the fewest significant digits that keep it within ``tolerance``."""
    for digits in range(1, 18):
        rounded = float(f"{value:.{digits}g}")
        if abs(rounded - value) <= tolerance:
            return rounded
    return value


def _class_end(code: int) -> int:
    for first, end in _CHARACTER_CLASSES:
        if first <= code < end:
            return end
    return 0x7F if code < 0x7F else 0x110000


def _usable_code(code: int, low: int, high: int) -> int | None:
    """``code`` moved out of the surrogate range, kept strictly between ``low`` and ``high``."""
    if _SURROGATES[0] <= code <= _SURROGATES[1]:
        for moved in (_SURROGATES[0] - 1, _SURROGATES[1] + 1):
            if low < moved < high:
                return moved
        return None
    return code if low < code < high else None


def _class_middle(code: int) -> str:
    for first, end in _CHARACTER_CLASSES:
        if first <= code < end:
            return chr((first + end) // 2)
    return "O"


def _text_after(suffix: str, before: str) -> str:
    """A short text greater than ``suffix``, halfway to the end of its character class.

    ``before`` is the character in front of ``suffix``: its class guesses what could follow.
    """
    for position, char in enumerate(suffix):
        code = ord(char)
        end = _class_end(code)
        if code + 1 < end:
            chosen = _usable_code((code + end) // 2, code, end)
            if chosen is not None:
                return suffix[:position] + chr(chosen)
    return suffix + _class_middle(ord((before + suffix)[-1]))


def _text_between(low: str, high: str) -> str | None:
    """A text strictly between ``low`` and ``high`` in code-point order, near the middle."""
    if not low < high:
        return None
    prefix = 0
    while prefix < len(low) and low[prefix] == high[prefix]:
        prefix += 1
    head = high[:prefix]
    b = ord(high[prefix])
    # When low is a prefix of high, stay above the control characters if possible.
    a = ord(low[prefix]) if prefix < len(low) else (0x1F if b > 0x20 else -1)
    if b - a >= 2:
        chosen = _usable_code((a + b) // 2, a, b)
        if chosen is not None:
            result = head + chr(chosen)
            return result if low < result < high else None
    if prefix < len(low):
        result = head + low[prefix] + _text_after(low[prefix + 1 :], low[prefix])
        return result if low < result < high else None
    return None


class _Domain:
    """Arithmetic on the values of the chunk field, as plain Python values.

    Values are ints for ``int``, days since 0001-01-01 for ``date``, microseconds since the
    epoch for ``datetime``, floats for ``double`` and ``str`` for ``text``.
    """

    def __init__(self, kind: str) -> None:
        if kind not in _SLICEABLE_TYPES:
            raise ValueError(f"cannot slice a {kind} field")
        self.kind = kind

    def parse(self, raw: Any) -> Any:
        """A value from its JSON form in an answer (raises ValueError when not usable)."""
        if raw is None or isinstance(raw, bool):
            raise ValueError(f"not a {self.kind} value: {raw!r}")
        if self.kind == "int":
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(f"not an int: {raw!r}")
            return math.floor(number) if isinstance(raw, float) else int(raw)
        if self.kind == "double":
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(f"not a finite double: {raw!r}")
            return number
        if self.kind == "text":
            return str(raw)
        if not isinstance(raw, str):
            raise ValueError(f"not an ISO {self.kind}: {raw!r}")
        if self.kind == "date":
            return date.fromisoformat(raw[:10]).toordinal()
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND

    def successor(self, value: Any) -> Any:
        """The smallest value above ``value``."""
        if self.kind == "double":
            return math.nextafter(value, math.inf)
        if self.kind == "text":
            return value + "\x00"
        return value + 1

    def between(self, low: Any, high: Any) -> Any | None:
        """A value strictly between ``low`` and ``high`` (``None`` when there is none)."""
        if self.kind == "int":
            return _nice_integer_between(low, high, _INT_UNITS)
        if self.kind == "date":
            return _nice_integer_between(low, high, (1,))
        if self.kind == "datetime":
            return _nice_integer_between(low, high, _DATETIME_UNITS)
        if self.kind == "double":
            return _double_between(low, high)
        return _text_between(low, high)

    def split(self, start: Any, stop: Any, pieces: int) -> list[Any]:
        """Increasing values strictly inside ``(start, stop)`` cutting it into up to
        ``pieces`` even parts, rounded when that costs little (text: one midpoint)."""
        span = stop - start if self.kind != "text" else None
        if pieces <= 2 or span is None or (self.kind == "double" and not math.isfinite(span)):
            middle = self.between(start, stop)
            return [] if middle is None else [middle]
        units = {"int": _INT_UNITS, "date": (1,), "datetime": _DATETIME_UNITS}.get(self.kind)
        points: list[Any] = []
        for number in range(1, pieces):
            if units is None:
                point = _round_double(start + span * number / pieces, span / pieces / 4)
            else:
                point = start + span * number // pieces
                point = _round_integer(point, span // pieces // 4, units)
            if start < point < stop and (not points or point > points[-1]):
                points.append(point)
        return points

    def literal(self, value: Any) -> str:
        """The value as an ODSQL literal."""
        from odsframe.query.odsql import literal

        if self.kind == "int":
            return str(int(value))
        if self.kind == "double":
            return literal(Decimal(repr(float(value))))  # never an exponent
        if self.kind == "date":
            return literal(date.fromordinal(value))
        if self.kind == "datetime":
            return literal(_EPOCH + value * _MICROSECOND)
        return literal(str(value))


@dataclass
class _Slice:
    """Records whose chunk-field value is in ``[low, high)`` (``None``: open end).

    ``start`` and ``stop`` bound the values for midpoints: ``start <= value < stop``.
    """

    low: Any
    high: Any
    start: Any
    stop: Any
    count: int = 0
    depth: int = 0


def _slice_condition(quoted: str, domain: _Domain, low: Any, high: Any) -> str:
    parts = []
    if low is not None:
        parts.append(f"{quoted} >= {domain.literal(low)}")
    if high is not None:
        parts.append(f"{quoted} < {domain.literal(high)}")
    return " AND ".join(parts) if parts else f"{quoted} IS NOT NULL"


# --------------------------------------------------------------------------------------------
# Choosing the chunk field


@dataclass
class _Candidate:
    name: str
    type: str
    is_id: bool
    position: int
    distinct: int | None = None
    non_null: int | None = None
    minimum: Any = None
    maximum: Any = None


def _annotation_names(annotations: Any) -> set[str]:
    if isinstance(annotations, Mapping):
        return {str(name) for name in annotations}
    if isinstance(annotations, list):
        return {str(item.get("name")) for item in annotations if isinstance(item, Mapping)}
    return set()


def _candidates(fields: Sequence[Mapping[str, Any]]) -> list[_Candidate]:
    """Fields whose values can be sliced with ``>=`` and ``<``, in schema order."""
    found = []
    for position, item in enumerate(fields):
        name, kind = item.get("name"), item.get("type")
        if not isinstance(name, str) or not name or kind not in _SLICEABLE_TYPES:
            continue
        annotations = _annotation_names(item.get("annotations"))
        if "multivalued" in annotations:
            continue
        found.append(_Candidate(name, str(kind), "id" in annotations, position))
    return found


def _rank(candidate: _Candidate, chunk_rows: int, total: int) -> tuple[Any, ...]:
    """Sort key, best first: few nulls, fine-grained, numbers and dates, id, distinct."""
    non_null = candidate.non_null if candidate.non_null is not None else total
    distinct = candidate.distinct or 0
    fine = distinct * chunk_rows >= 4 * non_null
    return (
        total - non_null <= chunk_rows,
        fine,
        candidate.type != "text",
        candidate.is_id,
        distinct,
        -candidate.position,
    )


# --------------------------------------------------------------------------------------------
# Requests with retries


@dataclass
class _Calls:
    """The adapter's requests, tried again on transient failures the HTTP layer does not
    retry (a body cut short), up to ``attempts`` times."""

    adapter: ExploreAdapter
    attempts: int

    def retrying(self, call: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except (PortalConnectionError, ServerError, IncompleteResultError) as err:
                if attempt >= self.attempts:
                    raise
                delay = self.adapter.http.retry.backoff_delay(attempt)
                logger.info("%s; trying again in %.2f s", err, delay)
                time.sleep(delay)

    def count(self, query: Query, condition: str | None = None) -> int:
        """Records matching ``query`` and ``condition``."""
        sliced = query.replace(where=[*query.where, condition]) if condition else query
        return self.retrying(lambda: self.adapter.count(sliced))

    def first_record(self, query: Query) -> list[dict[str, Any]]:
        """The first record (or aggregate row) of ``query``, as a list."""
        return self.retrying(functools.partial(self.adapter.records_page, query, 1, 0))


# --------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Plan:
    chunks: list[tuple[str | None, int]]  # (where, expected), the IS NULL chunk last
    field_name: str | None = None
    field_type: str | None = None
    note: str = ""
    null_chunk: bool = False


def _single(expected: int, note: str) -> _Plan:
    return _Plan([(None, expected)], note=note)


def _plan(
    calls: _Calls,
    query: Query,
    fields: Sequence[Mapping[str, Any]],
    total: int,
    chunk_rows: int,
    pool: ThreadPoolExecutor,
) -> _Plan:
    from odsframe.query.query import order_expression

    rows = total if query.limit is None else min(total, query.limit)
    if rows <= chunk_rows:
        return _single(rows, f"{rows} records fit in one chunk of {chunk_rows}")
    if query.limit is not None and query.limit < total:
        return _single(rows, f"limit={query.limit} keeps the first records: one export")
    candidates = _candidates(fields)
    descending = False
    if query.order_by:
        lead = query.order_by[0]
        name = order_expression(lead)
        candidates = [c for c in candidates if c.name == name]
        if not candidates:
            return _single(
                rows,
                f"order_by starts with {lead!r}, which cannot slice the records: one export "
                "keeps the order",
            )
        descending = lead.rstrip().upper().endswith(" DESC")
    if not candidates:
        return _single(rows, "no int, double, date, datetime or text field to slice on")
    candidates = _probe(calls, query, candidates[:_MAX_PROBED_FIELDS])
    if not candidates:
        return _single(rows, "the portal could not describe the fields to slice on")
    candidates.sort(key=lambda c: _rank(c, chunk_rows, total), reverse=True)
    for candidate in candidates[:2]:
        try:
            plan = _slice_on(calls, query, candidate, total, chunk_rows, pool)
        except QueryError as err:
            logger.info("cannot slice on %s: %s", candidate.name, err)
            continue
        if plan is not None:
            if descending:  # nulls sort last in both directions
                cut = len(plan.chunks) - plan.null_chunk
                plan.chunks = plan.chunks[:cut][::-1] + plan.chunks[cut:]
            return plan
    return _single(rows, "slicing on the candidate fields failed: one export")


def _probe(calls: _Calls, query: Query, candidates: list[_Candidate]) -> list[_Candidate]:
    """Distinct and non-null counts (and min/max of numbers and dates) in one request."""
    from odsframe.query.odsql import quote_field

    def items(with_distinct: bool) -> list[str]:
        select = []
        for number, candidate in enumerate(candidates):
            quoted = quote_field(candidate.name)
            select.append(f"count({quoted}) as c{number}")
            if with_distinct:
                select.append(f"count(distinct {quoted}) as d{number}")
            if candidate.type != "text":
                select += [f"min({quoted}) as lo{number}", f"max({quoted}) as hi{number}"]
        return select

    row: Mapping[str, Any] | None = None
    for with_distinct in (True, False):
        probe = query.replace(select=items(with_distinct), order_by=None, limit=None)
        try:
            results = calls.first_record(probe)
        except QueryError as err:
            logger.info("field probe refused (%s)", err)
            continue
        if results and isinstance(results[0], Mapping):
            row = results[0]
            break
    if row is None:
        return []
    usable = []
    for number, candidate in enumerate(candidates):
        try:
            candidate.non_null = int(row[f"c{number}"])
            distinct = row.get(f"d{number}")
            candidate.distinct = int(distinct) if distinct is not None else None
            if candidate.type != "text":
                domain = _Domain(candidate.type)
                low, high = row.get(f"lo{number}"), row.get(f"hi{number}")
                if candidate.non_null:
                    candidate.minimum, candidate.maximum = domain.parse(low), domain.parse(high)
        except (KeyError, TypeError, ValueError) as err:
            logger.info("field %s cannot be sliced: %s", candidate.name, err)
            continue
        usable.append(candidate)
    return usable


def _text_extremes(calls: _Calls, query: Query, candidate: _Candidate) -> tuple[str, str] | None:
    from odsframe.query.odsql import quote_field

    quoted = quote_field(candidate.name)
    ends = []
    for direction in ("ASC", "DESC"):
        probe = query.replace(
            select=[candidate.name],
            where=[*query.where, f"{quoted} IS NOT NULL"],
            order_by=f"{quoted} {direction}",
            limit=None,
        )
        page = calls.first_record(probe)
        if not page or not isinstance(page[0].get(candidate.name), str):
            return None
        ends.append(page[0][candidate.name])
    return ends[0], ends[1]


def _slice_on(
    calls: _Calls,
    query: Query,
    candidate: _Candidate,
    total: int,
    chunk_rows: int,
    pool: ThreadPoolExecutor,
) -> _Plan | None:
    """Chunks of at most ``chunk_rows`` records sliced on ``candidate`` (None: unusable)."""
    from odsframe.query.odsql import quote_field

    domain = _Domain(candidate.type)
    quoted = quote_field(candidate.name)
    non_null = candidate.non_null or 0
    if candidate.type == "text" and non_null:
        extremes = _text_extremes(calls, query, candidate)
        if extremes is None:
            return None
        candidate.minimum, candidate.maximum = extremes
    slices: list[_Slice] = []
    if non_null:
        todo = [
            _Slice(
                None,
                None,
                candidate.minimum,
                domain.successor(candidate.maximum),
                count=non_null,
            )
        ]
        while todo:
            pieces: list[_Slice] = []
            for part in todo:
                points = []
                if part.count > chunk_rows and part.depth < _MAX_SPLIT_DEPTH:
                    wanted = math.ceil(part.count / (chunk_rows * _FILL))
                    points = domain.split(part.start, part.stop, min(wanted, _MAX_PIECES))
                if not points:
                    slices.append(part)
                    continue
                starts, stops = [part.start, *points], [*points, part.stop]
                lows, highs = [part.low, *points], [*points, part.high]
                pieces += [
                    _Slice(low, high, first, end, depth=part.depth + 1)
                    for low, high, first, end in zip(lows, highs, starts, stops)
                ]
            conditions = [_slice_condition(quoted, domain, s.low, s.high) for s in pieces]
            counts = pool.map(functools.partial(calls.count, query), conditions)
            for part, count in zip(pieces, counts):
                part.count = count
            todo = pieces
    slices.sort(key=lambda s: s.start)
    merged: list[_Slice] = []
    for part in slices:
        last = merged[-1] if merged else None
        if last is not None and last.count + part.count <= chunk_rows:
            merged[-1] = _Slice(last.low, part.high, last.start, part.stop, last.count + part.count)
        else:
            merged.append(part)
    chunks: list[tuple[str | None, int]] = [
        (_slice_condition(quoted, domain, s.low, s.high), s.count) for s in merged
    ]
    if non_null < total:
        null_condition = f"{quoted} IS NULL"
        chunks.append((null_condition, calls.count(query, null_condition)))
    counted = sum(expected for _, expected in chunks)
    if counted != total:
        logger.warning(
            "slices of %s add up to %d records, not the %d counted: not slicing on it",
            candidate.name,
            counted,
            total,
        )
        return None
    largest = max(expected for _, expected in chunks)
    note = f"{len(chunks)} slices of {candidate.name} ({candidate.type})"
    if largest > chunk_rows:
        note += f"; one holds {largest} records (values too coarse to split further)"
    return _Plan(chunks, candidate.name, candidate.type, note, null_chunk=non_null < total)


# --------------------------------------------------------------------------------------------
# Fetching one chunk


class _Cancelled(Exception):
    """The download was stopped while this chunk was streaming."""


class _HashingWriter:
    """Writes to a file while hashing, counting and reporting the bytes."""

    def __init__(self, handle: IO[bytes], progress: Progress, cancel: threading.Event) -> None:
        self.handle = handle
        self.progress = progress
        self.cancel = cancel
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if self.cancel.is_set():
            raise _Cancelled("the download was stopped")
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)
        self.progress.update(len(data))
        return len(data)

    def flush(self) -> None:
        self.handle.flush()


def count_rows(path: str | os.PathLike[str], fmt: str) -> int:
    """Records in an export file (``parquet``, ``csv``, ``jsonl``, ``json``, ``geojson``).

    Raises
    ------
    ServerError
        The file is not a readable export of that format.
    """
    path = Path(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt == "jsonl":
            with path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        if fmt == "csv":
            return _csv_rows(path)
        with path.open("rb") as handle:
            payload = json.loads(handle.read().decode("utf-8-sig"))
        if fmt == "geojson":
            payload = payload.get("features") if isinstance(payload, dict) else None
        if not isinstance(payload, list):
            raise ValueError(f"a {fmt} export holds a list of records")
        return len(payload)
    except Exception as err:
        raise ServerError(f"{path.name} is not a readable {fmt} export ({err})") from err


def _csv_rows(path: Path) -> int:
    """CSV records (quoted newlines allowed), read in blocks, only the first column kept."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    with path.open("rb") as handle:
        head = handle.readline().decode("utf-8-sig")
    if not head.strip():
        return 0
    # ";" is the ODS default; "," or a tab only when the header has no ";".
    delimiter = next((sep for sep in (";", ",", "\t") if sep in head), ";")
    first = next(csv.reader([head], delimiter=delimiter))[0]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            include_columns=[first], column_types={first: pa.string()}
        ),
    )
    return sum(batch.num_rows for batch in reader)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _part_is_intact(folder: Path, chunk: Chunk) -> bool:
    path = folder / chunk.file
    try:
        if path.stat().st_size != chunk.bytes:
            return False
        return _hash_file(path) == chunk.sha256
    except OSError:
        return False


@dataclass
class _Fetcher:
    adapter: ExploreAdapter
    query: Query
    folder: Path
    fmt: str
    attempts: int
    bytes_progress: Progress
    cancel: threading.Event = field(default_factory=threading.Event)

    def __call__(self, chunk: Chunk) -> tuple[int, int, str, int]:
        """Fetch ``chunk``: (rows, bytes, sha256, attempts), or raise naming the chunk."""
        query = self.query.replace(limit=None) if chunk.where else self.query
        if chunk.where:
            query = query.replace(where=[*query.where, chunk.where])
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            if self.cancel.is_set():
                raise _Cancelled("the download was stopped")
            temporary = self.folder / f".{chunk.file}.{uuid.uuid4().hex}{_TEMP_SUFFIX}"
            try:
                with temporary.open("wb") as handle:
                    writer = _HashingWriter(handle, self.bytes_progress, self.cancel)
                    self.adapter.stream_export(query, self.fmt, cast(IO[bytes], writer))
                    handle.flush()
                    os.fsync(handle.fileno())
                rows = count_rows(temporary, self.fmt)
                if rows != chunk.expected:
                    raise IncompleteResultError(
                        f"chunk {chunk.index} ({chunk.where or 'all records'}) holds {rows} "
                        f"records, the portal counted {chunk.expected}",
                        dataset=self.query.dataset,
                    )
                os.replace(temporary, self.folder / chunk.file)
                return rows, writer.size, writer.digest.hexdigest(), attempt
            except (PortalConnectionError, ServerError, IncompleteResultError) as err:
                last_error = err
                logger.info("chunk %d, attempt %d failed: %s", chunk.index, attempt, err)
                if attempt < self.attempts:
                    time.sleep(self.adapter.http.retry.backoff_delay(attempt))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
        raise IncompleteResultError(
            f"Dataset {self.query.dataset!r}: chunk {chunk.index} "
            f"({chunk.where or 'all records'}, {chunk.expected} records expected) failed "
            f"{self.attempts} times; last error: {last_error}. Run the download again to "
            "resume; if the dataset is changing, wait until it is stable.",
            dataset=self.query.dataset,
        ) from last_error


# --------------------------------------------------------------------------------------------
# The download


def _check_arguments(fmt: Any, chunk_rows: Any, workers: Any) -> str:
    if not isinstance(fmt, str) or fmt.lower() not in DOWNLOAD_FORMATS:
        raise InvalidQueryArgument(
            f"format: {fmt!r} cannot be downloaded in chunks; use one of "
            f"{', '.join(DOWNLOAD_FORMATS)}"
        )
    for name, value in (("chunk_rows", chunk_rows), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidQueryArgument(f"{name}: expected a whole number >= 1, got {value!r}")
    return fmt.lower()


def _query_record(query: Query) -> dict[str, Any]:
    return {"params": [list(pair) for pair in query.params()], "limit": query.limit}


def _metas(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    metas = metadata.get("metas")
    default = metas.get("default") if isinstance(metas, Mapping) else None
    return default if isinstance(default, Mapping) else {}


def _existing_manifest(folder: Path) -> Manifest | None:
    if not (folder / MANIFEST_NAME).exists():
        return None
    try:
        return load_manifest(folder)
    except InvalidQueryArgument as err:
        warnings.warn(f"{err}; starting the download again", DatasetChangedWarning, stacklevel=3)
        return None


def _remove_temporaries(folder: Path) -> None:
    for leftover in folder.glob(f".*{_TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _file_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}{DOWNLOAD_FORMATS[fmt]}"


def download_parts(
    adapter: ExploreAdapter,
    query: Query,
    dest_dir: str | os.PathLike[str],
    *,
    format: str = "parquet",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressArg = None,
    metadata: Mapping[str, Any] | None = None,
    attempts: int = CHUNK_ATTEMPTS,
    count: int | None = None,
    export_formats: Sequence[str] | None = None,
) -> Manifest:
    """Download ``query`` into ``dest_dir`` as part files plus ``manifest.json``; resume.

    Parameters
    ----------
    adapter
        The portal's adapter (its HTTP client is shared by every worker).
    query
        What to download (no ``group_by``). Its ``limit`` below the count gives one chunk.
    dest_dir
        The download folder (created if needed).
    format
        ``parquet`` (default), ``csv``, ``jsonl``, ``json`` or ``geojson``.
    chunk_rows
        Most records per chunk (a chunk may hold more when one value of the slicing field
        does).
    workers
        Chunks downloaded at once (at most :data:`MAX_WORKERS`).
    progress
        ``None``: bars (records and bytes) in interactive sessions when tqdm is installed;
        ``True``/``False``; or a callable ``callback(records_done, records_total)``.
    metadata
        The dataset's metadata when the caller has it (saves one request).
    attempts
        Tries per chunk, and per planning request whose answer is cut short, before giving
        up (the HTTP layer retries failed connections and 429/5xx answers on its own).
    count, export_formats
        The server's count of ``query`` and the dataset's export formats when the caller
        just asked for them (each saves one request); every part's rows are still checked
        against the count.

    Returns
    -------
    Manifest
        The complete download (``manifest.files`` lists the parts in order).

    Raises
    ------
    InvalidQueryArgument
        A bad argument, or a folder holding another download.
    IncompleteResultError
        A chunk kept failing or kept holding the wrong number of records.
    """
    from odsframe._progress import open_progress
    from odsframe.cache import scrub_url

    fmt = _check_arguments(format, chunk_rows, workers)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidQueryArgument(f"attempts: expected a whole number >= 1, got {attempts!r}")
    if query.grouped:
        raise InvalidQueryArgument(
            "group_by: grouped answers cannot be sliced into chunks; read them with read_ods"
        )
    folder = Path(dest_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidQueryArgument(f"dest_dir: {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(folder)
    workers = min(workers, MAX_WORKERS)
    portal = scrub_url(adapter.base_url)
    calls = _Calls(adapter, attempts)

    if metadata is None:
        metadata = calls.retrying(lambda: adapter.dataset_metadata(query.dataset))
    metas = _metas(metadata)
    data_processed = metas.get("data_processed")
    records_count = metas.get("records_count")
    fields = [item for item in metadata.get("fields") or [] if isinstance(item, Mapping)]
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise InvalidQueryArgument(f"count: expected a whole number >= 0, got {count!r}")
    total = calls.count(query) if count is None else count

    manifest = _existing_manifest(folder)
    if manifest is not None:
        same = (
            manifest.portal == portal
            and manifest.dataset == query.dataset
            and manifest.query == _query_record(query)
            and manifest.format == fmt
        )
        if not same:
            raise InvalidQueryArgument(
                f"dest_dir: {folder} holds a download of dataset {manifest.dataset!r} from "
                f"{manifest.portal} with another query or format; use another folder or "
                "delete this one"
            )
        changed = [
            f"{name} {old!r} -> {new!r}"
            for name, old, new in (
                ("data_processed", manifest.data_processed, data_processed),
                ("records_count", manifest.records_count, records_count),
                ("matching records", manifest.total, total),
            )
            if old != new
        ]
        if changed:
            warnings.warn(
                f"Dataset {query.dataset!r} changed since the download in {folder} began "
                f"({'; '.join(changed)}); starting over.",
                DatasetChangedWarning,
                stacklevel=2,
            )
            for chunk in manifest.chunks:
                with contextlib.suppress(OSError):
                    (folder / chunk.file).unlink()
            manifest = None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="odsframe-download") as pool:
        if manifest is None:
            manifest = _new_manifest(
                calls,
                query,
                folder,
                fmt,
                fields,
                total,
                chunk_rows,
                pool,
                portal,
                metas,
                export_formats,
            )
            manifest.write()
        else:
            for chunk in manifest.chunks:
                if chunk.status == "complete" and not _part_is_intact(folder, chunk):
                    logger.info("part %s is missing or damaged: fetching it again", chunk.file)
                    chunk.reset()
        _fetch_pending(adapter, query, manifest, fmt, attempts, pool, progress, open_progress)

    if not manifest.complete or manifest.rows != manifest.expected_rows:
        raise IncompleteResultError(
            f"Dataset {query.dataset!r}: the download in {folder} holds {manifest.rows} rows, "
            f"expected {manifest.expected_rows}.",
            dataset=query.dataset,
        )
    return manifest


def _new_manifest(
    calls: _Calls,
    query: Query,
    folder: Path,
    fmt: str,
    fields: list[Mapping[str, Any]],
    total: int,
    chunk_rows: int,
    pool: ThreadPoolExecutor,
    portal: str,
    metas: Mapping[str, Any],
    known_formats: Sequence[str] | None = None,
) -> Manifest:
    adapter = calls.adapter
    formats = (
        list(known_formats)
        if known_formats is not None
        else calls.retrying(lambda: adapter.export_formats(query.dataset))
    )
    if fmt not in {name.lower() for name in formats}:
        raise InvalidQueryArgument(
            f"format: dataset {query.dataset!r} has no {fmt} export (it lists "
            f"{', '.join(formats) or 'none'})"
        )
    plan = _plan(calls, query, fields, total, chunk_rows, pool)
    logger.info("download of %s: %s", query.dataset, plan.note)
    now = _now()
    return Manifest(
        folder=folder,
        portal=portal,
        dataset=query.dataset,
        query=_query_record(query),
        format=fmt,
        total=total,
        data_processed=metas.get("data_processed"),
        records_count=metas.get("records_count"),
        fields=[dict(item) for item in fields],
        chunks=[
            Chunk(index, _file_name(index, fmt), where, expected)
            for index, (where, expected) in enumerate(plan.chunks)
        ],
        chunk_field=plan.field_name,
        chunk_field_type=plan.field_type,
        chunk_rows=chunk_rows,
        note=plan.note,
        api_version=adapter.version,
        created=now,
        updated=now,
    )


def _fetch_pending(
    adapter: ExploreAdapter,
    query: Query,
    manifest: Manifest,
    fmt: str,
    attempts: int,
    pool: ThreadPoolExecutor,
    progress: ProgressArg,
    open_progress: Callable[..., Progress],
) -> None:
    pending = [chunk for chunk in manifest.chunks if chunk.status != "complete"]
    if not pending:
        return
    bytes_progress_arg = (
        False if callable(progress) and not isinstance(progress, bool) else progress
    )
    with (
        open_progress(
            progress, total=manifest.expected_rows, unit="records", description=query.dataset
        ) as rows_bar,
        open_progress(
            bytes_progress_arg, total=None, unit="bytes", description=f"{query.dataset} bytes"
        ) as bytes_bar,
    ):
        rows_bar.update(manifest.rows)
        fetcher = _Fetcher(adapter, query, manifest.folder, fmt, attempts, bytes_bar)
        futures: dict[Future[tuple[int, int, str, int]], Chunk] = {
            pool.submit(fetcher, chunk): chunk for chunk in pending
        }
        try:
            for future in as_completed(futures):
                chunk = futures[future]
                rows, size, digest, tries = future.result()
                chunk.status, chunk.rows, chunk.bytes, chunk.sha256 = "complete", rows, size, digest
                chunk.attempts += tries
                manifest.write()
                rows_bar.update(rows)
        except BaseException:
            fetcher.cancel.set()
            for future in futures:
                future.cancel()
            raise


def download(
    portal: str,
    dataset: str,
    path: str | os.PathLike[str],
    *,
    where: Any = None,
    select: str | Sequence[str] | None = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    format: str = "parquet",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressArg = None,
    api_key: str | None = None,
    session: Any = None,
    retry: RetryPolicy | None = None,
) -> Manifest:
    """Download a dataset (or part of it) into a folder of part files; resume if interrupted.

    Parameters
    ----------
    portal
        A URL, a domain or a shorthand (see :func:`~odsframe.read_ods`).
    dataset
        The dataset id.
    path
        The download folder; ``manifest.json`` there describes it. Running the same download
        into the same folder again fetches only what is missing (along the chunks planned
        the first time), or starts over (with a :class:`DatasetChangedWarning`) when the
        dataset changed.
    where, select, refine, exclude, order_by, timezone, lang
        The query, as for :func:`~odsframe.read_ods`.
    format
        ``parquet`` (default), ``csv``, ``jsonl``, ``json`` or ``geojson``.
    chunk_rows
        Most records per part file.
    workers
        Parts downloaded at once (capped at :data:`MAX_WORKERS`).
    progress
        ``None``: bars in interactive sessions when tqdm is installed; ``True``/``False``;
        or a callable ``callback(records_done, records_total)``.
    api_key, session
        As for :func:`~odsframe.read_ods`; the key is never written to the folder.
    retry
        The HTTP retry policy (:class:`~odsframe._http.RetryPolicy`).

    Returns
    -------
    Manifest
        The complete download: ``manifest.files`` are the part files, in order.

    Examples
    --------
    >>> m = download("data.example.org", "big-dataset", "big/", chunk_rows=200_000)  # doctest: +SKIP
    >>> frame = read_parts(m)  # doctest: +SKIP
    """
    from odsframe._auth import resolve_api_key
    from odsframe._portal_url import portal_host, resolve_portal
    from odsframe.api import open_adapter
    from odsframe.query.query import Query

    query = Query(
        dataset,
        select=select,
        where=where,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        timezone=timezone,
        lang=lang,
    )
    _check_arguments(format, chunk_rows, workers)
    base_url = resolve_portal(portal)
    key = resolve_api_key(api_key, host=portal_host(base_url))
    with open_adapter(base_url, api_key=key, session=session, retry=retry) as adapter:
        return download_parts(
            adapter,
            query,
            path,
            format=format,
            chunk_rows=chunk_rows,
            workers=workers,
            progress=progress,
        )


# --------------------------------------------------------------------------------------------
# Reading a download


def part_reader(
    manifest: Manifest,
    fields: Any = None,
    *,
    geometry: str | bool | None = "auto",
    timezone: str | None = None,
    labels: bool = False,
    file_base_url: str | None = None,
) -> Callable[[str | os.PathLike[str] | bytes | list[Any]], pd.DataFrame]:
    """A function reading one part file (a path, or its bytes) into a typed frame.

    ``fields`` default to the schema saved in the manifest; ``timezone`` to the query's;
    ``file_base_url`` (the base of file URLs) to the v2.1 one of the dataset. Parquet
    parts may also be given as a list of paths, read as one frame.
    """
    from odsframe._portal_url import dataset_path_segment
    from odsframe.frames import fields_from_metadata
    from odsframe.frames.exports import frame_from_export, frame_from_parquet

    specs = fields if fields is not None else fields_from_metadata({"fields": manifest.fields})
    options: dict[str, Any] = {
        "timezone": timezone if timezone is not None else manifest.timezone,
        "geometry": geometry,
        "file_base_url": file_base_url
        or (
            f"{manifest.portal}/api/explore/v2.1/catalog/datasets/"
            f"{dataset_path_segment(manifest.dataset)}/files"
        ),
        "all_fields": _param(manifest.query, "select") is None,
    }
    fmt = manifest.format

    def read(path: str | os.PathLike[str] | bytes | list[Any]) -> pd.DataFrame:
        if fmt == "parquet":
            return frame_from_parquet(path, specs, labels=labels, **options)
        if isinstance(path, list):
            raise InvalidQueryArgument(f"{fmt} parts are read one at a time, not as a list")
        if fmt == "csv":
            from odsframe.frames.records import label_columns

            frame = frame_from_export(path, fmt, specs, labels=False, **options)
            return label_columns(frame, specs) if labels else frame
        return frame_from_export(path, fmt, specs, labels=labels, **options)

    return read


def read_parts(
    manifest: Manifest | str | os.PathLike[str],
    fields: Any = None,
    *,
    geometry: str | bool | None = "auto",
    timezone: str | None = None,
    labels: bool = False,
    file_base_url: str | None = None,
) -> pd.DataFrame:
    """One typed frame from a complete download (a :class:`Manifest` or its folder).

    Parquet parts are read together one column at a time (each column of every part, then
    the next column), so the peak memory stays near the size of the finished frame; other
    formats are read part by part and concatenated.

    Parameters
    ----------
    manifest
        The download.
    fields
        The schema (``FieldSpec`` list or v2.1 field dicts); the one saved in the manifest
        by default.
    geometry, timezone, labels
        As for :func:`~odsframe.read_ods`.
    file_base_url
        The base of file URLs (file fields); the v2.1 one of the dataset by default.

    Raises
    ------
    IncompleteResultError
        Some chunks are not downloaded yet.
    """
    import pandas as pd

    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    if not manifest.complete:
        missing = [chunk.index for chunk in manifest.chunks if chunk.status != "complete"]
        raise IncompleteResultError(
            f"the download in {manifest.folder} is incomplete (chunks {missing} missing); "
            "run the download again to finish it",
            dataset=manifest.dataset,
        )
    read = part_reader(
        manifest,
        fields,
        geometry=geometry,
        timezone=timezone,
        labels=labels,
        file_base_url=file_base_url,
    )
    files = [
        manifest.folder / chunk.file
        for chunk in manifest.chunks
        if chunk.status == "complete" and chunk.rows
    ] or manifest.files[:1]
    if manifest.format == "parquet" or len(files) == 1:
        return read([str(path) for path in files] if len(files) > 1 else files[0])
    frames = [read(path) for path in files]
    return pd.concat(frames, ignore_index=True)
