"""Reading ODS datasets into frames: :func:`read_ods`, :func:`read_ods_catalog`, :func:`explain`.

One read goes like this (ods-api.md sections 4 and 8.1):

1. the arguments become a :class:`~odsframe.query.Query` (validated, no request);
2. with the cache on and an entry for this exact query, one metadata request checks that the
   dataset did not change (``data_processed``, ``records_count``) and the entry is served;
   an unreachable portal serves the entry anyway with a
   :class:`~odsframe.errors.StaleCacheWarning`;
3. otherwise the dataset metadata (schema, once), a ``limit=0`` count, and, when the route
   depends on it, the list of export formats;
4. the plan (:class:`~odsframe.query.Plan`): ``/records`` pages in a total order for small
   results, an export (parquet, else csv, else json) for large or unlimited ones; never a
   request past the 10 000-record window;
5. an export goes through the chunked downloader (:func:`~odsframe.download.download_parts`):
   one part up to ``chunk_rows`` records (2 000 000 by default), slices of a field beyond,
   each part's rows checked against the count and fetched again when cut short, into a
   folder of the cache that a failed read resumes from; Parquet parts are then read one
   column at a time (:func:`~odsframe.frames.frame_from_parquet`), so that the peak
   memory stays near the size of the finished frame;
6. the payload becomes a typed frame (:mod:`odsframe.frames`), its row count is checked
   against the server's count, ``attrs["ods"]`` records where it came from (never the key),
   and the frame is cached.

``engine="dask"`` hands the same query to :func:`~odsframe.read_ods_dask`.

``df.ods`` (:mod:`odsframe.accessor`) is registered when this module is imported.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pandas as pd

import odsframe.accessor  # noqa: F401  # registers the df.ods accessor
from odsframe import cache as cache_store
from odsframe._auth import ApiKey, resolve_api_key
from odsframe._http import build_url
from odsframe._portal_url import portal_host, resolve_portal
from odsframe._progress import ProgressArg, check_progress, open_progress
from odsframe._spec import RECORDS_MAX_LIMIT, RECORDS_MAX_WINDOW
from odsframe.api import API_VERSIONS, ExploreAdapter, open_adapter
from odsframe.errors import (
    CacheError,
    DatasetNotFoundError,
    IncompleteResultError,
    InvalidQueryArgument,
    ODSWarning,
    PortalConnectionError,
    ServerError,
    StaleCacheWarning,
)
from odsframe.frames import (
    FieldSpec,
    fields_from_metadata,
    frame_from_records,
)
from odsframe.query import Plan, PlannedRequest, Query
from odsframe.query.plan import (
    DEFAULT_PREFERRED_FORMATS,
    DEFAULT_RECORDS_THRESHOLD,
    tiebreak_fields,
)
from odsframe.query.query import order_expression

__all__ = ["explain", "read_ods", "read_ods_catalog"]

logger = logging.getLogger(__name__)

#: Bumped when the frames read_ods builds change, so older cache entries become misses.
READER_VERSION = "1"
#: Most records an export read fetches as one part; larger reads are sliced into parts of
#: at most this many records (see :func:`odsframe.download.download_parts`). One part
#: is the fastest way to read a million records; slicing costs planning requests.
READ_CHUNK_ROWS = 2_000_000
#: Parts of a sliced read downloaded at once.
READ_WORKERS = 4
#: Sub-folder of the cache folder where export reads download their parts.
READS_FOLDER = "reads"
#: Download folders of reads untouched for this long are removed (a failed read keeps its
#: folder so that the same read resumes it).
STALE_READ_SECONDS = 24 * 3600
ENGINES = ("pandas", "dask")
#: How many reads remember their explicit credentials for ``df.ods.refresh()``.
_REMEMBERED_READS = 256

GeometryArg = str | bool | None


# --------------------------------------------------------------------------------------------
# Arguments


def _check_geometry(geometry: Any) -> None:
    if geometry is None or isinstance(geometry, bool):
        return
    if isinstance(geometry, str) and geometry.strip():
        return
    raise InvalidQueryArgument(
        f"geometry: expected 'auto', None, True/False or a geo field name, got {geometry!r}"
    )


def _check_labels(labels: Any) -> None:
    if not isinstance(labels, bool):
        raise InvalidQueryArgument(f"labels: expected True or False, got {labels!r}")


def _check_chunk_rows(chunk_rows: Any) -> None:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidQueryArgument(f"chunk_rows: expected a whole number >= 1, got {chunk_rows!r}")


def _check_engine(engine: Any) -> str:
    if engine not in ENGINES:
        raise InvalidQueryArgument(
            f"engine: expected one of {', '.join(map(repr, ENGINES))}, got {engine!r}"
        )
    return str(engine)


def build_query(
    dataset: str,
    *,
    select: Any = None,
    where: Any = None,
    bbox: Any = None,
    mask: Any = None,
    distance: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: Any = None,
    limit: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
) -> Query:
    """The :class:`~odsframe.query.Query` of ``read_ods`` arguments (validated, no request)."""
    return Query(
        dataset,
        select=select,
        where=where,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        limit=limit,
        timezone=timezone,
        lang=lang,
        bbox=bbox,
        mask=mask,
        distance=distance,
    )


def query_record(query: Query, *, geometry: GeometryArg, labels: bool) -> dict[str, Any]:
    """The normalised arguments of a read, as stored in ``attrs["ods"]["query"]``.

    Plain JSON values only; :func:`read_kwargs` turns them back into ``read_ods`` keywords.
    """
    distance = None
    if query.distance is not None:
        (lon, lat), metres = query.distance
        distance = [[lon, lat], metres]
    return {
        "select": list(query.select),
        "where": list(query.where),
        "refine": list(query.refine),
        "exclude": list(query.exclude),
        "order_by": list(query.order_by),
        "limit": query.limit,
        "timezone": query.timezone,
        "lang": query.lang,
        "bbox": list(query.bbox) if query.bbox is not None else None,
        "mask": json.loads(query.mask) if query.mask is not None else None,
        "distance": distance,
        "geo_field": query.geo_field,
        "geometry": geometry,
        "labels": labels,
        "params": [list(pair) for pair in query.params()],
    }


def read_kwargs(record: Mapping[str, Any]) -> dict[str, Any]:
    """``read_ods`` keywords that repeat the read described by :func:`query_record`."""
    kwargs: dict[str, Any] = {}
    for name in ("select", "where", "refine", "exclude", "order_by"):
        value = record.get(name)
        kwargs[name] = list(value) if value else None
    for name in ("limit", "timezone", "lang", "bbox", "mask"):
        kwargs[name] = record.get(name)
    distance = record.get("distance")
    kwargs["distance"] = (tuple(distance[0]), distance[1]) if distance else None
    kwargs["geometry"] = record.get("geometry", "auto")
    kwargs["labels"] = bool(record.get("labels", False))
    return kwargs


# --------------------------------------------------------------------------------------------
# Credentials of past reads, for df.ods.refresh()


_remembered: OrderedDict[str, tuple[ApiKey | None, Callable[[], Any] | None]] = OrderedDict()


def _remember(api_key: ApiKey | None, session: Any) -> str:
    """A fresh read id; keeps an explicit key and the session so ``refresh()`` can reuse them.

    Only keys given as arguments are kept (keys from the environment or the keyring are
    looked up again), in this process only, and never in the frame.
    """
    read_id = uuid.uuid4().hex
    explicit = api_key if api_key is not None and api_key.source == "argument" else None
    session_ref = weakref.ref(session) if session is not None else None
    if explicit is not None or session_ref is not None:
        _remembered[read_id] = (explicit, session_ref)
        while len(_remembered) > _REMEMBERED_READS:
            _remembered.popitem(last=False)
    return read_id


def remembered_credentials(read_id: Any) -> tuple[ApiKey | None, Any]:
    """The explicit key and the session of the read ``read_id`` (``(None, None)`` if unknown)."""
    entry = _remembered.get(read_id) if isinstance(read_id, str) else None
    if entry is None:
        return None, None
    api_key, session_ref = entry
    return api_key, session_ref() if session_ref is not None else None


# --------------------------------------------------------------------------------------------
# Cache keys


@functools.lru_cache(maxsize=8)
def _digest(secret: str) -> str:
    # PBKDF2 with many rounds: worth remembering within a process.
    return cache_store.credential_digest(secret)


def _key_params(query: Query) -> list[tuple[str, str]]:
    """The query's parameters, spatial filters written independently of the geo field.

    The geo field they apply to comes from the schema, which may not be readable when the
    portal is down; the key must not depend on it.
    """
    plain = query.replace(bbox=None, mask=None, distance=None, geo_field=None)
    pairs = plain.params()
    if query.limit is not None:
        pairs.append(("limit", str(query.limit)))
    if query.bbox is not None:
        pairs.append(("odsframe:bbox", json.dumps(list(query.bbox))))
    if query.mask is not None:
        pairs.append(("odsframe:mask", query.mask))
    if query.distance is not None:
        pairs.append(("odsframe:distance", json.dumps(query.distance)))
    return pairs


def _cache_key(
    adapter: ExploreAdapter,
    query: Query,
    *,
    geometry: GeometryArg,
    labels: bool,
    api_key: ApiKey | None,
) -> str:
    params = [
        *_key_params(query),
        ("odsframe:geometry", json.dumps(geometry)),
        ("odsframe:labels", json.dumps(labels)),
        ("odsframe:reader", READER_VERSION),
    ]
    return cache_store.cache_key(
        portal=adapter.base_url,
        dataset=query.dataset,
        params=params,
        api_version=f"v{adapter.version}",
        kind="records",
        credential_digest=_digest(api_key.reveal()) if api_key is not None else None,
    )


# --------------------------------------------------------------------------------------------
# Schema helpers


def _geo_specs(specs: Sequence[FieldSpec]) -> list[FieldSpec]:
    return [spec for spec in specs if spec.is_geo]


def with_geo_field(query: Query, specs: Sequence[FieldSpec], geometry: GeometryArg) -> Query:
    """Point the spatial filters at a geo field: the one named by ``geometry``, else the first.

    Also checks that ``geometry`` names a geo field of the schema.
    """
    geo = _geo_specs(specs)
    names = [spec.name for spec in geo]
    if isinstance(geometry, str) and geometry != "auto" and geometry not in names:
        if not any(spec.name == geometry for spec in specs):
            raise InvalidQueryArgument(
                f"geometry={geometry!r}: dataset {query.dataset!r} has no field of that name "
                f"(geo fields: {names or 'none'})"
            )
        raise InvalidQueryArgument(
            f"geometry={geometry!r}: that field of dataset {query.dataset!r} is not a geo field "
            f"(geo fields: {names or 'none'})"
        )
    if geometry is True and not names:
        raise InvalidQueryArgument(
            f"geometry=True: dataset {query.dataset!r} has no geo_point_2d or geo_shape field"
        )
    if not query.needs_geo_field:
        return query
    if not names:
        raise InvalidQueryArgument(
            f"bbox/mask/distance: dataset {query.dataset!r} has no geo field to filter on"
        )
    field = geometry if isinstance(geometry, str) and geometry != "auto" else names[0]
    return query.with_geo_field(field)


def _selected_specs(query: Query, specs: Sequence[FieldSpec]) -> list[FieldSpec]:
    """The schema fields a query returns (all of them without ``select``)."""
    if not query.select:
        return list(specs)
    wanted = {order_expression(item) for item in query.select}
    return [spec for spec in specs if spec.name in wanted]


def _frame_fields(frame: pd.DataFrame, specs: Sequence[FieldSpec], labels: bool) -> list[FieldSpec]:
    """The schema fields that are columns of ``frame``, in column order."""
    by_column = {(spec.label if labels else spec.name): spec for spec in specs}
    return [by_column[column] for column in frame.columns if column in by_column]


def _metas(metadata: Mapping[str, Any]) -> dict[str, Any]:
    metas = metadata.get("metas")
    default = metas.get("default") if isinstance(metas, Mapping) else None
    return dict(default) if isinstance(default, Mapping) else {}


# --------------------------------------------------------------------------------------------
# Planning


def _export_formats(adapter: ExploreAdapter, dataset: str) -> list[str]:
    """The dataset's export formats; none when the portal has no ``/exports`` listing."""
    try:
        return adapter.export_formats(dataset)
    except DatasetNotFoundError:
        # The dataset exists (its metadata was just read): the portal lists no exports.
        logger.info("the portal lists no exports for %s; reading /records pages", dataset)
        return []


def _needs_formats(
    query: Query, total: int, fields: Sequence[Mapping[str, Any]], records_threshold: int
) -> bool:
    """Whether the route depends on the export formats (more than /records pages can do)."""
    rows = total if query.limit is None else min(total, query.limit)
    if rows <= RECORDS_MAX_LIMIT:
        return False
    pageable = rows <= min(records_threshold, RECORDS_MAX_WINDOW)
    return not (pageable and tiebreak_fields(fields)[0])


def _plan(
    adapter: ExploreAdapter,
    query: Query,
    metadata: Mapping[str, Any],
    *,
    records_threshold: int,
    preferred_formats: Sequence[str] = DEFAULT_PREFERRED_FORMATS,
    made: list[str] | None = None,
) -> Plan:
    """Count, list the export formats when the route depends on them, and plan the read."""
    total = adapter.count(query)
    fields = metadata.get("fields")
    fields = fields if isinstance(fields, list) else []
    formats: list[str] = []
    if _needs_formats(query, total, fields, records_threshold):
        if made is not None:
            made.append(f"{adapter.dataset_url(query.dataset)}/exports")
        formats = _export_formats(adapter, query.dataset)
    return Plan.build(
        query,
        total=total,
        export_formats=formats,
        fields=fields,
        records_threshold=records_threshold,
        preferred_formats=preferred_formats,
    )


# --------------------------------------------------------------------------------------------
# Fetching


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a frame is built.

    A large frame holds millions of new container objects (shapely geometries, JSON
    objects); every full collection while they are created rescans
    them all, which more than doubles the time of a million-row read. None of them is
    cyclic garbage, so collection can wait until the frame is built.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_pages(
    adapter: ExploreAdapter,
    plan: Plan,
    specs: list[FieldSpec],
    *,
    geometry: GeometryArg,
    labels: bool,
    progress: ProgressArg,
) -> pd.DataFrame:
    query = plan.query
    records: list[dict[str, Any]] = []
    with open_progress(progress, total=plan.rows, unit="records", description=query.dataset) as bar:
        for request in plan.requests:
            page = adapter.fetch(request)
            records.extend(page)
            bar.update(len(page))
            if request.limit is not None and len(page) < request.limit:
                break  # the dataset shrank while paging; the row count check says so
    with _gc_paused():
        return frame_from_records(
            records,
            specs,
            timezone=query.timezone,
            geometry=geometry,
            labels=labels,
            file_base_url=f"{adapter.dataset_url(query.dataset)}/files",
            all_fields=not query.select,
        )


def _read_export(
    adapter: ExploreAdapter,
    plan: Plan,
    specs: list[FieldSpec],
    metadata: Mapping[str, Any],
    *,
    geometry: GeometryArg,
    labels: bool,
    progress: ProgressArg,
    api_key: ApiKey | None,
    chunk_rows: int,
) -> pd.DataFrame:
    from odsframe.download import DOWNLOAD_FORMATS

    (request,) = plan.requests
    fmt = request.export_format or "json"
    if fmt not in DOWNLOAD_FORMATS:
        raise InvalidQueryArgument(
            f"preferred_formats: cannot read {fmt} exports; use some of "
            f"{', '.join(DOWNLOAD_FORMATS)}"
        )
    return _read_download(
        adapter,
        plan,
        specs,
        metadata,
        fmt,
        geometry=geometry,
        labels=labels,
        progress=progress,
        api_key=api_key,
        chunk_rows=chunk_rows,
    )


def _read_download(
    adapter: ExploreAdapter,
    plan: Plan,
    specs: list[FieldSpec],
    metadata: Mapping[str, Any],
    fmt: str,
    *,
    geometry: GeometryArg,
    labels: bool,
    progress: ProgressArg,
    api_key: ApiKey | None,
    chunk_rows: int,
) -> pd.DataFrame:
    """The export through the chunked downloader, then one frame of its parts.

    Up to ``chunk_rows`` records are one part (no slicing requests); more are sliced
    (:func:`~odsframe.download.download_parts`). Either way each part's rows are checked
    against the portal's count and a part cut short is fetched again. The parts go to a
    folder under the cache folder, removed once read; a failed read leaves it, and the
    same read then fetches only the missing parts.
    """
    from odsframe.download import download_parts, read_parts

    query = plan.query
    with _download_folder(adapter, query, fmt, api_key) as folder:
        manifest = download_parts(
            adapter,
            query,
            folder,
            format=fmt,
            chunk_rows=chunk_rows,
            workers=READ_WORKERS,
            progress=progress,
            metadata=metadata,
            count=plan.total,
            export_formats=[fmt],
        )
        with _gc_paused():
            return read_parts(
                manifest,
                specs,
                geometry=geometry,
                timezone=query.timezone,
                labels=labels,
                file_base_url=f"{adapter.dataset_url(query.dataset)}/files",
            )


# Download folders of reads in progress in this process (another thread's read of the same
# query must not write into the same folder).
_folders_in_use: set[str] = set()
_folders_guard = threading.Lock()


@contextlib.contextmanager
def _download_folder(
    adapter: ExploreAdapter, query: Query, fmt: str, api_key: ApiKey | None
) -> Iterator[Path]:
    """The folder an export read downloads its parts into; removed once the read is done.

    It is named after the portal, the API generation, the query, the format and the key,
    under ``<cache folder>/reads``, so that a read that failed half-way resumes. When
    another read (thread or process) uses that folder, or the cache folder cannot be
    written, a private temporary folder is used instead (no resume).
    """
    credential = _digest(api_key.reveal()) if api_key is not None else "anonymous"
    identity = "\n".join(
        [adapter.base_url, adapter.version, query.normalised_key(), fmt, credential]
    )
    name = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    root = cache_store.cache_dir() / READS_FOLDER
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        logger.info("cannot write %s (%s); downloading into a temporary folder", root, err)
        with tempfile.TemporaryDirectory(prefix="odsframe-read-") as private:
            yield Path(private)
        return
    _remove_stale_reads(root, keep=name)
    with _claim(root / name) as claimed:
        if claimed:
            folder = root / name
        else:
            logger.info("another read is downloading into %s; using a private folder", name)
            folder = root / f"{name}-{uuid.uuid4().hex[:12]}"
        succeeded = False
        try:
            yield folder
            succeeded = True
        finally:
            if succeeded or not claimed:
                shutil.rmtree(folder, ignore_errors=True)
            if succeeded and claimed:
                with contextlib.suppress(OSError):
                    _lock_path(folder).unlink()  # still locked: see _process_lock


@contextlib.contextmanager
def _claim(folder: Path) -> Iterator[bool]:
    """Whether this read may use ``folder``: no other thread or process holds it."""
    key = str(folder)
    with _folders_guard:
        if key in _folders_in_use:
            claimed = False
        else:
            _folders_in_use.add(key)
            claimed = True
    if not claimed:
        yield False
        return
    try:
        with _process_lock(folder) as locked:
            yield locked
    finally:
        with _folders_guard:
            _folders_in_use.discard(key)


def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")


@contextlib.contextmanager
def _process_lock(folder: Path) -> Iterator[bool]:
    """An advisory lock on ``<folder>.lock`` (POSIX); True when taken or not available.

    Its holder may delete the lock file: whoever locked the deleted file meanwhile sees
    that the path no longer names it, and does not take the folder.
    """
    try:
        import fcntl
    except ImportError:  # Windows: the in-process claim is all there is
        yield True
        return
    lock_path = _lock_path(folder)
    try:
        handle = lock_path.open("a+b")
    except OSError:
        yield True
        return
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            try:
                current = lock_path.stat().st_ino == os.fstat(handle.fileno()).st_ino
            except OSError:
                current = False
            yield current
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_stale_reads(root: Path, *, keep: str) -> None:
    """Remove the download folders (and lock files) of reads untouched for a day."""
    limit = time.time() - STALE_READ_SECONDS
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        is_lock = entry.name.endswith(".lock")
        folder = root / entry.name.removesuffix(".lock")
        if folder.name.startswith(keep) or (is_lock and folder.exists()):
            continue  # this read's own; a lock file goes with its folder
        try:
            if entry.stat().st_mtime >= limit:
                continue
        except OSError:
            continue
        with _claim(folder) as claimed:
            if claimed:
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(OSError):
                    _lock_path(folder).unlink()


def _empty_frame(
    plan: Plan, specs: list[FieldSpec], *, geometry: GeometryArg, labels: bool
) -> pd.DataFrame:
    return frame_from_records(
        [],
        _selected_specs(plan.query, specs),
        timezone=plan.query.timezone,
        geometry=geometry,
        labels=labels,
    )


def _check_count(frame: pd.DataFrame, plan: Plan, url: str) -> None:
    expected = plan.rows if plan.rows is not None else len(frame)
    if len(frame) == expected:
        return
    query = plan.query
    counted = f"the portal counted {plan.total} matching records"
    if query.limit is not None and plan.total is not None and query.limit < plan.total:
        counted += f" (limit={query.limit})"
    raise IncompleteResultError(
        f"Dataset {query.dataset!r}: received {len(frame)} rows but expected {expected}; "
        f"{counted}. The dataset may have changed during the read: try again.",
        dataset=query.dataset,
        url=url,
    )


def _fetch(
    adapter: ExploreAdapter,
    query: Query,
    *,
    metadata: Mapping[str, Any] | None,
    geometry: GeometryArg,
    labels: bool,
    progress: ProgressArg,
    read_id: str,
    records_threshold: int,
    preferred_formats: Sequence[str],
    api_key: ApiKey | None = None,
    chunk_rows: int = READ_CHUNK_ROWS,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read ``query`` from the portal: the typed frame and the provenance for the cache."""
    if metadata is None:
        metadata = adapter.dataset_metadata(query.dataset)
    specs = fields_from_metadata(metadata)
    query = with_geo_field(query, specs, geometry)
    plan = _plan(
        adapter,
        query,
        metadata,
        records_threshold=records_threshold,
        preferred_formats=preferred_formats,
    )
    fetched_at = datetime.now(UTC)
    logger.info("reading %s: %s", query.dataset, plan.reason)
    if plan.route == "records":
        frame = _read_pages(
            adapter, plan, specs, geometry=geometry, labels=labels, progress=progress
        )
    elif plan.route == "export":
        frame = _read_export(
            adapter,
            plan,
            specs,
            metadata,
            geometry=geometry,
            labels=labels,
            progress=progress,
            api_key=api_key,
            chunk_rows=chunk_rows,
        )
    else:
        frame = _empty_frame(plan, specs, geometry=geometry, labels=labels)
    data_request = plan.requests[0] if plan.requests else plan.count
    url = cache_store.scrub_url(adapter.url_for(data_request)) if data_request is not None else ""
    _check_count(frame, plan, url)
    metas = _metas(metadata)
    frame.attrs["ods"] = {
        "portal": adapter.base_url,
        "dataset": query.dataset,
        "query": query_record(query, geometry=geometry, labels=labels),
        "url": url,
        "fetched_at": fetched_at.isoformat(),
        "data_processed": metas.get("data_processed"),
        "records_count": plan.total,
        "api_version": adapter.version,
        "fields": [spec.to_json() for spec in _frame_fields(frame, specs, labels)],
        "route": plan.route,
        "export_format": plan.export_format,
        "cache": "fetched",
        "read_id": read_id,
    }
    provenance = {
        "portal": adapter.base_url,
        "dataset": query.dataset,
        "api_version": f"v{adapter.version}",
        "url": url,
        "fetched_at": fetched_at,
        # Freshness of the whole dataset, which is what decide() compares on the next read.
        "data_processed": metas.get("data_processed"),
        "records_count": metas.get("records_count"),
        "modified": metas.get("modified"),
    }
    return frame, provenance


def _store(key: str, frame: pd.DataFrame, provenance: Mapping[str, Any]) -> None:
    try:
        cache_store.write_entry(key, frame, provenance)
    except CacheError as err:
        warnings.warn(
            f"Could not cache the read of dataset {provenance.get('dataset')!r}: {err}",
            ODSWarning,
            stacklevel=4,
        )


def _cached(key: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    try:
        with _gc_paused():
            return cache_store.read_entry(key)
    except CacheError as err:
        logger.info("cache unreadable (%s); fetching", err)
        return None


def _cached_meta(key: str) -> dict[str, Any] | None:
    try:
        return cache_store.read_meta(key)
    except CacheError as err:
        logger.info("cache unreadable (%s); fetching", err)
        return None


def read_with(
    adapter: ExploreAdapter,
    query: Query,
    *,
    api_key: ApiKey | None,
    session: Any = None,
    geometry: GeometryArg = "auto",
    labels: bool = False,
    progress: ProgressArg = None,
    cache_mode: bool | str = True,
    max_age: timedelta | float | None = None,
    records_threshold: int = DEFAULT_RECORDS_THRESHOLD,
    preferred_formats: Sequence[str] = DEFAULT_PREFERRED_FORMATS,
    chunk_rows: int = READ_CHUNK_ROWS,
) -> pd.DataFrame:
    """:func:`read_ods` on an open adapter (used by :class:`~odsframe.portal.Portal`).

    ``api_key`` is the key the adapter sends (it keeps cache entries of different
    credentials apart); ``session`` is remembered for ``df.ods.refresh()``.
    ``records_threshold`` (most rows read through /records pages),
    ``preferred_formats`` (export formats, best first) and ``chunk_rows`` (most records
    of one export part) tune the plan; they shape only how the frame is fetched, not what
    it holds, so they are not part of the cache key.
    """
    _check_geometry(geometry)
    _check_labels(labels)
    check_progress(progress)
    _check_chunk_rows(chunk_rows)
    mode = cache_store.normalise_mode(cache_mode)
    age = cache_store.normalise_max_age(max_age)
    read_id = _remember(api_key, session)
    key = (
        _cache_key(adapter, query, geometry=geometry, labels=labels, api_key=api_key)
        if mode != "off"
        else None
    )
    metadata: dict[str, Any] | None = None
    if key is not None and mode == "use":
        entry = _cached_meta(key)
        if entry is not None:
            unreachable: Exception | None = None
            try:
                metadata = adapter.dataset_metadata(query.dataset)
            except (PortalConnectionError, ServerError) as err:
                unreachable = err
            current = (
                cache_store.Freshness.from_ods_metas(metadata.get("metas") or {})
                if metadata is not None
                else None
            )
            decision = cache_store.decide(
                entry,
                current=current,
                reachable=unreachable is None,
                max_age=age,
                mode=mode,
                now=datetime.now(UTC),
            )
            logger.info("cache for %s: %s", query.dataset, decision.reason)
            if decision.serves_cache:
                hit = _cached(key)
                if hit is not None:
                    frame = hit[0]
                    stale = decision.action is cache_store.Action.USE_STALE_WITH_WARNING
                    if stale:
                        warnings.warn(
                            f"Dataset {query.dataset!r}: {decision.reason}.",
                            StaleCacheWarning,
                            stacklevel=3,
                        )
                    ods = dict(frame.attrs.get("ods") or {})
                    ods.update(cache="stale" if stale else "hit", read_id=read_id)
                    frame.attrs["ods"] = ods
                    return frame
                if unreachable is not None:
                    raise unreachable
    frame, provenance = _fetch(
        adapter,
        query,
        metadata=metadata,
        geometry=geometry,
        labels=labels,
        progress=progress,
        read_id=read_id,
        records_threshold=records_threshold,
        preferred_formats=preferred_formats,
        api_key=api_key,
        chunk_rows=chunk_rows,
    )
    if key is not None:
        _store(key, frame, provenance)
    return frame


def _open(
    portal: str, api_key: str | ApiKey | None, session: Any, api_version: str = "2.1"
) -> tuple[ExploreAdapter, ApiKey | None]:
    base_url = resolve_portal(portal)
    if api_version not in API_VERSIONS:
        raise InvalidQueryArgument(
            f"api_version: {api_version!r} is not supported (supported: {', '.join(API_VERSIONS)})"
        )
    key = resolve_api_key(api_key, host=portal_host(base_url))
    return open_adapter(base_url, version=api_version, api_key=key, session=session), key


# --------------------------------------------------------------------------------------------
# Public functions


def read_ods(
    portal: str,
    dataset: str,
    *,
    select: str | Sequence[str] | None = None,
    where: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    geometry: GeometryArg = "auto",
    labels: bool = False,
    api_key: str | None = None,
    session: Any = None,
    progress: ProgressArg = None,
    cache: bool | str = True,
    max_age: timedelta | float | None = None,
    api_version: str = "2.1",
    engine: str = "pandas",
    chunk_rows: int | None = None,
) -> pd.DataFrame:
    """Read a dataset of an ODS portal into a typed DataFrame or GeoDataFrame.

    Parameters
    ----------
    portal
        A URL (``https://data.example.org``, a pasted API or dataset URL works), a domain
        (``data.example.org``) or a shorthand (``public`` -> ``public.opendatasoft.com``).
    dataset
        The dataset id (federated ids such as ``prices@public`` are fine).
    select
        ODSQL select: a string or a list of field names / expressions.
    where
        ODSQL text, a ``{field: value}`` mapping (lists mean IN, tuples ranges), or a list
        of these; all ANDed.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``: records in the box.
    mask
        A shapely geometry, an object with ``__geo_interface__``, or GeoJSON: records that
        intersect it.
    distance
        ``((lon, lat), metres)``: records within that distance.
    refine, exclude
        Facet filters: ``{facet: value or [values]}``, ``'facet:value'`` or a list.
    order_by
        A string or list; ``"-field"`` sorts descending.
    limit
        Most records to read (``None``: all).
    timezone
        IANA timezone of datetimes, in the query and in the frame (default UTC).
    lang
        Language of the answer (``en``, ``fr`` ...).
    geometry
        ``"auto"``: a GeoDataFrame (EPSG:4326) when the dataset has a geo field and geopandas
        is installed, the geo_shape field preferred over the geo_point_2d one (the other one
        stays a geometry column); a field name: that field; ``None``/``False``: a plain
        DataFrame with shapely objects; ``True``: a GeoDataFrame or an error. Spatial
        filters apply to the field named here, else to the first geo field.
    labels
        Name columns by field labels instead of field names.
    api_key
        An API key for private data; else ``ODS_APIKEY`` / ``ODS_API_KEY`` /
        ``HUWISE_API_KEY``, else the system keyring. Sent only as a header, never stored.
    session
        Your ``requests.Session`` (proxies, custom adapters).
    progress
        ``None``: a progress bar in interactive sessions when tqdm is installed; ``True`` /
        ``False``; or a callable ``callback(done, total)``.
    cache
        ``True`` (serve an unchanged cached copy; one metadata request checks it),
        ``False`` (no cache), ``"refresh"`` (fetch again and update the cache).
    max_age
        Oldest cached copy to serve (a timedelta or seconds), e.g. for real-time datasets.
    api_version
        The API generation to speak: ``"2.1"`` (Explore API v2.1, the default), ``"2.0"``
        (``/api/v2``) or ``"1.0"`` (Search API v1) for portals that lack the newer ones. The
        frame is the same whatever the generation.
    engine
        ``"pandas"`` (default): a DataFrame / GeoDataFrame. ``"dask"``: a dask DataFrame
        (a dask-geopandas GeoDataFrame with a geo field), one partition per downloaded
        part, as :func:`~odsframe.read_ods_dask` returns; its parts stay in the cache
        folder and are reused while the dataset is unchanged (``cache`` and ``max_age``
        do not apply). ``compute()`` gives the frame the pandas engine gives.
    chunk_rows
        Most records fetched as one export part. Reads past 1 000 records go through one
        export, downloaded with :func:`~odsframe.download.download_parts` into a folder of
        the cache (removed once read; a failed read resumes from it): each part's rows are
        checked against the count and a part cut short is fetched again. Up to
        ``chunk_rows`` records (default 2 000 000 with the pandas engine, 100 000 per
        partition with dask) are one part; larger reads are sliced on a field into
        parts fetched in parallel, and the rows then come slice by slice (ordered by
        ``order_by`` when it starts with the slicing field, else in no particular order,
        as with any export without ``order_by``).

    Returns
    -------
    DataFrame or GeoDataFrame
        Typed columns: int ``Int64``, double ``Float64``, text ``string`` (pyarrow
        backed), boolean ``boolean``, date ``datetime64`` (partial dates allowed), datetime
        tz-aware, json_blob objects, file URLs, geo fields shapely geometries. Multivalued
        text is a ``list<string>[pyarrow]`` column: held by Arrow, each cell read as a
        Python list of ``str`` (``<NA>`` when missing), with ``explode()`` and the ``.list``
        accessor. ``df.attrs["ods"]`` holds the provenance (see ``df.ods.source``).
        With ``engine="dask"``, a dask DataFrame or dask-geopandas GeoDataFrame.

    Raises
    ------
    InvalidQueryArgument
        A bad argument, before any request.
    AuthenticationError, DatasetNotFoundError, QueryError, QuotaExceededError, ServerError,
    PortalConnectionError
        The portal's refusals and failures, naming the dataset.
    IncompleteResultError
        The number of rows received differs from the server's count.

    Examples
    --------
    >>> trees = read_ods("opendata.paris.fr", "les-arbres", where={"arrondissement": "PARIS 7E ARRDT"})  # doctest: +SKIP
    >>> events = read_ods("data.example.org", "big-events", engine="dask")  # doctest: +SKIP
    """
    engine = _check_engine(engine)
    if chunk_rows is not None:
        _check_chunk_rows(chunk_rows)
    if engine == "dask":
        from odsframe._dask import read_ods_dask
        from odsframe.download import DEFAULT_CHUNK_ROWS

        _check_geometry(geometry)
        _check_labels(labels)
        cache_store.normalise_mode(cache)  # checked, although the parts are the cache
        cache_store.normalise_max_age(max_age)
        return cast(
            pd.DataFrame,
            read_ods_dask(
                portal,
                dataset,
                select=select,
                where=where,
                bbox=bbox,
                mask=mask,
                distance=distance,
                refine=refine,
                exclude=exclude,
                order_by=order_by,
                limit=limit,
                timezone=timezone,
                lang=lang,
                geometry=geometry,
                labels=labels,
                chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
                progress=progress,
                api_key=api_key,
                session=session,
                api_version=api_version,
            ),
        )
    query = build_query(
        dataset,
        select=select,
        where=where,
        bbox=bbox,
        mask=mask,
        distance=distance,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        limit=limit,
        timezone=timezone,
        lang=lang,
    )
    _check_geometry(geometry)
    _check_labels(labels)
    adapter, key = _open(portal, api_key, session, api_version)
    with adapter:
        return read_with(
            adapter,
            query,
            api_key=key,
            session=session,
            geometry=geometry,
            labels=labels,
            progress=progress,
            cache_mode=cache,
            max_age=max_age,
            chunk_rows=chunk_rows or READ_CHUNK_ROWS,
        )


def explain_with(
    adapter: ExploreAdapter,
    query: Query,
    *,
    geometry: GeometryArg = "auto",
    offline: bool = False,
    records_threshold: int = DEFAULT_RECORDS_THRESHOLD,
) -> str:
    """:func:`explain` on an open adapter."""
    _check_geometry(geometry)
    if offline:
        return _explain_offline(adapter, query, geometry, records_threshold)
    made = [adapter.dataset_url(query.dataset)]
    metadata = adapter.dataset_metadata(query.dataset)
    query = with_geo_field(query, fields_from_metadata(metadata), geometry)
    plan = _plan(adapter, query, metadata, records_threshold=records_threshold, made=made)
    if plan.count is not None:
        made.insert(1, adapter.url_for(plan.count))
    lines = [
        f"read_ods of dataset {query.dataset!r} on {adapter.base_url} (API v{adapter.version})"
    ]
    lines.append("Made while explaining (small requests read_ods makes first):")
    lines.extend(f"  GET {url}" for url in made)
    lines.append("Not made (what read_ods would request next):")
    lines.extend("  " + line for line in adapter.explain(plan).splitlines())
    lines.extend("  " + line for line in _slicing_note(plan, READ_CHUNK_ROWS))
    return "\n".join(lines)


def _slicing_note(plan: Plan, chunk_rows: int) -> list[str]:
    """How an export read past ``chunk_rows`` records is split (empty when it is not)."""
    if plan.route != "export" or plan.total is None or plan.total <= chunk_rows:
        return []
    if plan.query.limit is not None:
        return []  # a limited export is one part
    parts = math.ceil(plan.total / chunk_rows)
    return [
        f"More than {chunk_rows:,} records: the export is downloaded in about {parts} slices "
        f"of at most {chunk_rows:,} records, {READ_WORKERS} at a time.",
        "Each slice is the request above with one more where condition on a sortable field "
        "(a range of its values, or IS NULL).",
        "The field and its cut points come from one aggregate request and limit=0 counts "
        "(odsframe.download explains the method).",
    ]


def _explain_offline(
    adapter: ExploreAdapter, query: Query, geometry: GeometryArg, records_threshold: int
) -> str:
    if query.needs_geo_field:
        if not isinstance(geometry, str) or geometry == "auto":
            raise InvalidQueryArgument(
                "explain(offline=True): bbox/mask/distance need the geo field they filter on; "
                "pass geometry='<geo field name>' (or explain online)"
            )
        query = query.with_geo_field(geometry)
    dataset = query.dataset
    params = query.params()
    count = PlannedRequest(
        "count",
        dataset,
        tuple(sorted([*(p for p in params if p[0] != "order_by"), ("limit", "0")])),
    )
    order = list(query.order_by)
    first_page = PlannedRequest(
        "records", dataset, tuple(sorted([*params, ("limit", "100"), ("offset", "0")]))
    )
    limit = "-1" if query.limit is None else str(query.limit)
    exports = [
        PlannedRequest("export", dataset, tuple(sorted([*params, ("limit", limit)])), fmt)
        for fmt in DEFAULT_PREFERRED_FORMATS
    ]
    n = "N" if query.limit is None else f"N (at most limit={query.limit})"
    lines = [
        f"read_ods of dataset {dataset!r} on {adapter.base_url} (API v{adapter.version}); "
        "offline: no request made, the route depends on the count",
        "First, the small requests:",
        f"  GET {adapter.dataset_url(dataset)}   (schema: types, id fields, geo fields)",
        f"  GET {adapter.url_for(count)}   (total_count gives {n}, the rows to read)",
        "Then, by N:",
        "  N = 0: nothing more.",
        f"  N <= {RECORDS_MAX_LIMIT}: one /records page with limit=N"
        + (f", ordered by {', '.join(order)}" if order else "")
        + ".",
        f"  N <= {min(records_threshold, RECORDS_MAX_WINDOW)}: ceil(N/{RECORDS_MAX_LIMIT}) "
        "/records pages (offset 0, 100, ...) like this one, with order_by completed by the "
        "dataset's id fields (or every sortable field) so pages neither repeat nor skip:",
        f"    GET {adapter.url_for(first_page)}",
        f"  otherwise: GET {adapter.dataset_url(dataset)}/exports, then one streamed export, "
        "the first format listed of:",
    ]
    lines.extend(f"    GET {adapter.url_for(request)}" for request in exports)
    return "\n".join(lines)


def explain(
    portal: str,
    dataset: str,
    *,
    select: str | Sequence[str] | None = None,
    where: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    geometry: GeometryArg = "auto",
    labels: bool = False,
    api_key: str | None = None,
    session: Any = None,
    cache: bool | str = True,
    max_age: timedelta | float | None = None,
    offline: bool = False,
    api_version: str = "2.1",
) -> str:
    """The exact requests :func:`read_ods` would make with these arguments, as text.

    By default the small requests that decide the route are made (the dataset metadata,
    the ``limit=0`` count, and the export formats list when the route depends on it), and
    the data requests (records pages or the export) are listed, not made. With
    ``offline=True`` nothing is requested: the text lists the first requests and the
    route for each possible count (spatial filters then need ``geometry='<geo field>'``).

    The cache is not consulted: with ``cache=True`` and an unchanged cached copy,
    ``read_ods`` makes only the metadata request. ``labels``, ``cache`` and ``max_age``
    are accepted so that the arguments of a read can be passed unchanged.
    """
    query = build_query(
        dataset,
        select=select,
        where=where,
        bbox=bbox,
        mask=mask,
        distance=distance,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        limit=limit,
        timezone=timezone,
        lang=lang,
    )
    _check_labels(labels)
    cache_store.normalise_mode(cache)
    cache_store.normalise_max_age(max_age)
    if not isinstance(offline, bool):
        raise InvalidQueryArgument(f"offline: expected True or False, got {offline!r}")
    adapter, _key = _open(portal, api_key, session, api_version)
    with adapter:
        return explain_with(adapter, query, geometry=geometry, offline=offline)


# --------------------------------------------------------------------------------------------
# Reads again from a frame's provenance (df.ods)


def _credentials(
    source: Mapping[str, Any], api_key: str | ApiKey | None, session: Any
) -> tuple[str | ApiKey | None, Any]:
    known_key, known_session = remembered_credentials(source.get("read_id"))
    return (
        api_key if api_key is not None else known_key,
        session if session is not None else known_session,
    )


def _source_portal(source: Mapping[str, Any]) -> str:
    portal = source.get("portal")
    if not isinstance(portal, str) or not portal:
        raise InvalidQueryArgument("the frame's provenance names no portal")
    return portal


def _source_version(source: Mapping[str, Any]) -> str:
    version = str(source.get("api_version") or "2.1")
    return version[1:] if version.startswith("v") else version


def refresh_read(
    source: Mapping[str, Any],
    *,
    api_key: str | ApiKey | None = None,
    session: Any = None,
    progress: ProgressArg = None,
) -> pd.DataFrame:
    """Run the read described by ``source`` (``attrs["ods"]``) again, bypassing the cache."""
    portal = _source_portal(source)
    key, chosen_session = _credentials(source, api_key, session)
    if source.get("kind") == "catalog":
        adapter, _resolved = _open(portal, key, chosen_session, _source_version(source))
        with adapter:
            return catalog_with(adapter, **dict(source.get("query") or {}), progress=progress)
    kwargs = read_kwargs(source.get("query") or {})
    geometry, labels = kwargs.pop("geometry"), kwargs.pop("labels")
    query = build_query(str(source.get("dataset")), **kwargs)
    adapter, resolved = _open(portal, key, chosen_session, _source_version(source))
    with adapter:
        return read_with(
            adapter,
            query,
            api_key=resolved,
            session=chosen_session,
            geometry=geometry,
            labels=labels,
            progress=progress,
            cache_mode="refresh",
        )


def explain_read(
    source: Mapping[str, Any],
    *,
    offline: bool = False,
    api_key: str | ApiKey | None = None,
    session: Any = None,
) -> str:
    """:func:`explain` of the read described by ``source`` (``attrs["ods"]``)."""
    if source.get("kind") == "catalog":
        raise InvalidQueryArgument("explain: a catalog read has no plan to explain")
    portal = _source_portal(source)
    key, chosen_session = _credentials(source, api_key, session)
    kwargs = read_kwargs(source.get("query") or {})
    geometry = kwargs.pop("geometry")
    kwargs.pop("labels")
    query = build_query(str(source.get("dataset")), **kwargs)
    adapter, _resolved = _open(portal, key, chosen_session, _source_version(source))
    with adapter:
        return explain_with(adapter, query, geometry=geometry, offline=offline)


# --------------------------------------------------------------------------------------------
# The catalog

#: Catalog columns first in every catalog frame, in this order.
CATALOG_COLUMNS: tuple[str, ...] = (
    "dataset_id",
    "title",
    "publisher",
    "theme",
    "keyword",
    "license",
    "license_url",
    "language",
    "territory",
    "records_count",
    "modified",
    "data_processed",
    "metadata_processed",
    "features",
    "fields",
    "geo",
    "visibility",
    "has_records",
    "description",
)
_CATALOG_DATETIMES = frozenset({"modified", "data_processed", "metadata_processed"})
_CATALOG_LISTS = frozenset({"theme", "keyword", "territory", "features", "fields"})


def _catalog_row(dataset: Mapping[str, Any]) -> dict[str, Any]:
    metas = _metas(dataset)
    raw_fields = dataset.get("fields")
    fields: list[Any] = raw_fields if isinstance(raw_fields, list) else []
    names = [f.get("name") for f in fields if isinstance(f, Mapping)]
    types = {f.get("type") for f in fields if isinstance(f, Mapping)}
    row: dict[str, Any] = {
        "dataset_id": dataset.get("dataset_id"),
        "features": list(dataset.get("features") or []),
        "fields": names,
        "geo": bool(types & {"geo_point_2d", "geo_shape"}),
        "visibility": dataset.get("visibility"),
        "has_records": dataset.get("has_records"),
    }
    for name, value in metas.items():
        row.setdefault(name, value)
    return row


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return value
    return [value]


def _catalog_frame(rows: list[dict[str, Any]], timezone: str | None) -> pd.DataFrame:
    names = list(CATALOG_COLUMNS)
    extra = sorted({key for row in rows for key in row} - set(names))
    columns: dict[str, Any] = {}
    for name in [*names, *extra]:
        values = [row.get(name) for row in rows]
        if name in _CATALOG_LISTS:
            columns[name] = pd.Series([_as_list(v) for v in values], dtype=object)
        elif name == "records_count":
            columns[name] = pd.array(
                [v if isinstance(v, int) and not isinstance(v, bool) else None for v in values],
                dtype="Int64",
            )
        elif name in _CATALOG_DATETIMES:
            stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce")
            columns[name] = stamps.dt.tz_convert(timezone or "UTC").dt.as_unit("us")
        elif name in ("geo", "has_records") or (
            any(isinstance(v, bool) for v in values)
            and all(v is None or isinstance(v, bool) for v in values)
        ):
            columns[name] = pd.array(
                [v if isinstance(v, bool) else None for v in values], dtype="boolean"
            )
        elif all(v is None or isinstance(v, str) for v in values):
            columns[name] = pd.array(values, dtype="string")
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def catalog_with(
    adapter: ExploreAdapter,
    *,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    lang: str | None = None,
    timezone: str | None = None,
    progress: ProgressArg = None,
) -> pd.DataFrame:
    """:func:`read_ods_catalog` on an open adapter."""
    # The same validation and normal form as a dataset query (the catalog's fields are metas).
    filters = Query(
        "catalog",
        where=where,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        lang=lang,
        timezone=timezone,
    )
    order = list(filters.order_by)
    if "dataset_id" not in {order_expression(item) for item in order}:
        order.append("dataset_id ASC")  # a total order: pages neither repeat nor skip
    filters = filters.replace(order_by=order)
    options: dict[str, Any] = {
        "where": list(filters.where),
        "refine": list(filters.refine),
        "exclude": list(filters.exclude),
        "order_by": order,
        "lang": filters.lang,
        "timezone": filters.timezone,
    }
    fetched_at = datetime.now(UTC)
    first = adapter.catalog_page(**options, limit=RECORDS_MAX_LIMIT, offset=0)
    total = first.get("total_count")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ServerError(
            f"The catalog of {adapter.base_url} has no valid total_count ({total!r})."
        )
    url = build_url(f"{adapter.catalog_url}/datasets", filters.params())
    datasets: list[Any] = list(first.get("results") or [])
    with open_progress(progress, total=total, unit="datasets", description="catalog") as bar:
        bar.update(len(datasets))
        if total > RECORDS_MAX_WINDOW:
            export_url = f"{adapter.catalog_url}/exports/json"
            body = adapter.http.get_json(export_url, [*filters.params(), ("limit", "-1")])
            if not isinstance(body, list):
                raise ServerError(
                    f"The catalog export of {adapter.base_url} is not a list of datasets."
                )
            datasets = body
            url = build_url(export_url, filters.params())
            bar.update(len(datasets) - bar.done)
        else:
            pages = math.ceil(total / RECORDS_MAX_LIMIT)
            for page in range(1, pages):
                body = adapter.catalog_page(
                    **options, limit=RECORDS_MAX_LIMIT, offset=page * RECORDS_MAX_LIMIT
                )
                results = list(body.get("results") or [])
                datasets.extend(results)
                bar.update(len(results))
                if len(results) < RECORDS_MAX_LIMIT:
                    break
    if len(datasets) != total:
        raise IncompleteResultError(
            f"The catalog of {adapter.base_url}: received {len(datasets)} datasets but the "
            f"portal counted {total}. The catalog may have changed during the read: try again.",
            url=url,
        )
    rows = [_catalog_row(d) for d in datasets if isinstance(d, Mapping)]
    frame = _catalog_frame(rows, filters.timezone)
    frame.attrs["ods"] = {
        "kind": "catalog",
        "portal": adapter.base_url,
        "dataset": None,
        "query": options,
        "url": url,
        "fetched_at": fetched_at.isoformat(),
        "records_count": total,
        "api_version": adapter.version,
    }
    return frame


def read_ods_catalog(
    portal: str,
    *,
    where: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    lang: str | None = None,
    timezone: str | None = None,
    api_key: str | None = None,
    session: Any = None,
    progress: ProgressArg = None,
    api_version: str = "2.1",
) -> pd.DataFrame:
    """One row per dataset of a portal's catalog, with its metadata.

    Every matching dataset is read, not only the first page: pages of 100 in a total order
    (``order_by`` plus ``dataset_id``), or ``/catalog/exports/json`` past 10 000 datasets.

    Parameters
    ----------
    portal
        URL, domain or shorthand, as for :func:`read_ods`.
    where, refine, exclude
        Catalog filters (ODSQL on dataset metadata: ``where='features="geo"'``,
        ``refine={"theme": "Environnement"}``).
    order_by
        Catalog order (``"-modified"``); ``dataset_id`` breaks ties.
    lang, timezone
        Language of the metadata, timezone of its dates (default UTC).
    api_key, session, progress, api_version
        As for :func:`read_ods`.

    Returns
    -------
    DataFrame
        ``dataset_id``, ``title``, ``publisher``, ``theme``, ``keyword``, ``license``,
        ``license_url``, ``language``, ``territory``, ``records_count`` (Int64),
        ``modified``, ``data_processed``, ``metadata_processed`` (tz-aware), ``features``,
        ``fields`` (names), ``geo`` (has a geo field), ``visibility``, ``has_records``,
        ``description``, then every other ``metas.default`` key.
    """
    adapter, _key = _open(portal, api_key, session, api_version)
    with adapter:
        return catalog_with(
            adapter,
            where=where,
            refine=refine,
            exclude=exclude,
            order_by=order_by,
            lang=lang,
            timezone=timezone,
            progress=progress,
        )
