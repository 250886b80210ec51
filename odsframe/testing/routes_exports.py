"""Routes of the local portal for exports, facets, attachments, files and the legacy download.

:func:`export_routes` is mounted by ``server.create_app`` after the v2.1 records routes:

==========================================================  =====================================
path (under ``/api/explore/v2.1``)                          answer
==========================================================  =====================================
``/catalog/exports``                                        ``{"_links": [{href, rel}]}``
``/catalog/exports/{csv,json}``                             the catalog, streamed
``/catalog/facets``                                         facets of the catalog
``/catalog/datasets/{id}/exports``                          ``{"_links": [{href, rel}]}``
``/catalog/datasets/{id}/exports/{format}``                 the records, streamed (``exports.py``)
``/catalog/datasets/{id}/facets``                           facets of the records (``facets.py``)
``/catalog/datasets/{id}/attachments``                      ``{"_links": [], "attachments": [...]}``
``/catalog/datasets/{id}/attachments/{attachment_id}``      the attachment's bytes
``/catalog/datasets/{id}/files/{file_id}``                  a file field's bytes (its media type)
``/catalog/datasets/{id}/files/{file_id}/thumbnail``        its thumbnail (the image itself when
                                                            no thumbnail was registered)
``/explore/dataset/{id}/download/`` (outside the API)       legacy download: csv, json, geojson
==========================================================  =====================================

Exports are streamed: the handler compiles the query, runs the formatting SQL of
``exports.plan_export`` and reads the first Arrow batch and the first chunk of bytes (so a
bad query or parameter is an ODS error answer, not a broken file); the rest is produced by
the portal's handler threads as the client reads. A client that goes away stops the work and
frees the DuckDB cursor. An error after the first bytes (none is expected) is logged and the
answer is cut short, which the client sees as an incomplete body.

Export parameters (ods-api.md 4.1): ``limit`` (default -1, everything, no 10 000 cap) and
``offset``; ``select``, ``where``, ``order_by``, ``group_by``, ``refine``, ``exclude``,
``facet`` (only its ``disjunctive``/``hierarchical`` arguments matter, for refines),
``lang``, ``timezone``; ``use_labels``, ``compressed`` (gzip; ``<id>.<ext>.gzip``,
``application/gzip``), ``epsg`` (4326, or any EPSG code pyproj knows); CSV ``delimiter``
(``;`` ``,`` tab ``|``), ``list_separator``, ``quote_all``, ``with_bom``; parquet
``parquet_compression`` (``snappy``, ``zstd``). A format ODS has but this portal does not
write (gpx, kml, shp ...) is a 400 naming the ones it writes.

File and attachment ids are looked up in the dataset's own tables (``PortalDataset.files``,
``PortalDataset.attachments``), never joined to a path, so ``..``, encoded slashes or
absolute paths can only miss: 404 with the ODS body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import mimetypes
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import duckdb
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from odsframe import _spec
from odsframe.testing import engine
from odsframe.testing.errors import InvalidRESTParameterError, NotFoundError
from odsframe.testing.exports import (
    BATCH_ROWS,
    CATALOG_FORMATS,
    CSV_DELIMITERS,
    EXPORT_FORMATS,
    GZIP_MEDIA_TYPE,
    PARQUET_COMPRESSIONS,
    SPACED,
    XLSX_MAX_RECORDS,
    ExportOptions,
    PreparedExport,
    ascii_json,
    check_epsg,
    dataset_formats,
    gzip_chunks,
    plan_export,
)
from odsframe.testing.facets import (
    FacetFilters,
    compute_facets,
    resolve_facets,
    with_facet_overrides,
)
from odsframe.testing.legacy import legacy_filters
from odsframe.testing.model import CompiledQuery, PortalDataset
from odsframe.testing.sample import THUMBNAIL_SUFFIX
from odsframe.testing.server import (
    V21,
    ApiRequest,
    ApiRoute,
    ODSQLParams,
    PortalState,
    bool_param,
    catalog_results,
    compile_request,
    int_param,
    lang_param,
    list_param,
    query_errors,
    text_param,
    timezone_param,
    with_technical_fields,
)

logger = logging.getLogger("odsframe.testing.exports")

DATASETS = f"{V21}/catalog/datasets"
LEGACY_DOWNLOAD = "/explore/dataset/{dataset_id}/download"
LEGACY_FORMATS: tuple[str, ...] = ("csv", "json", "geojson")


# -- parameters -----------------------------------------------------------------------------


def export_window(api: ApiRequest) -> tuple[int | None, int]:
    """``(limit, offset)`` of an export: ``limit >= -1`` (-1, the default, is everything)."""
    limit = int_param(api.query, "limit", -1)
    offset = int_param(api.query, "offset", 0)
    if limit < -1:
        raise InvalidRESTParameterError(
            f"Invalid value for limit API parameter: {limit} was found but limit >= -1 is "
            "expected (-1 exports every record)."
        )
    if offset < 0:
        raise InvalidRESTParameterError(
            f"Invalid value for offset API parameter: {offset} was found but offset >= 0 is "
            "expected."
        )
    return (None if limit == -1 else limit), offset


def choice_param(api: ApiRequest, name: str, choices: tuple[str, ...], default: str) -> str:
    """A parameter that takes one of ``choices`` (the value exactly, not blank-stripped)."""
    values = api.query.getlist(name)
    if not values or values[-1] == "":
        return default
    value = values[-1]
    if value not in choices:
        shown = ", ".join(repr(choice) for choice in choices)
        raise InvalidRESTParameterError(
            f"Invalid value for {name} API parameter: {value!r} was found but one of {shown} "
            "is expected."
        )
    return value


def epsg_param(api: ApiRequest) -> int:
    epsg = int_param(api.query, "epsg", 4326)
    problem = check_epsg(epsg)
    if problem is not None:
        raise InvalidRESTParameterError(f"Invalid value for epsg API parameter: {problem}.")
    return epsg


def list_separator_param(api: ApiRequest) -> str:
    values = api.query.getlist("list_separator")
    if not values or values[-1] == "":
        return ","
    value = values[-1]
    if len(value) > 16 or any(char in value for char in '"\r\n'):
        raise InvalidRESTParameterError(
            f"Invalid value for list_separator API parameter: {value!r} was found but a short "
            "separator without quotes or line breaks is expected."
        )
    return value


def format_param(api: ApiRequest, available: list[str], known: tuple[str, ...]) -> str:
    """The ``{format}`` path parameter: one this portal writes, else a 400."""
    fmt = str(api.path_params["format"])
    if fmt in available:
        return fmt
    supported = ", ".join(available)
    if fmt in known:
        raise InvalidRESTParameterError(
            f"Invalid value for format API parameter: the local portal does not write {fmt!r} "
            f"exports; it writes {supported}."
        )
    raise InvalidRESTParameterError(
        f"Invalid value for format API parameter: {fmt!r} was found but one of {supported} is "
        "expected."
    )


def export_options(api: ApiRequest, fmt: str, dataset_id: str, timezone: str) -> ExportOptions:
    """The formatting parameters of an export request, validated."""
    return ExportOptions(
        timezone=timezone,
        base_url=api.base_url,
        dataset_id=dataset_id,
        use_labels=bool_param(api.query, "use_labels"),
        epsg=epsg_param(api),
        delimiter=choice_param(api, "delimiter", CSV_DELIMITERS, ";"),
        list_separator=list_separator_param(api),
        quote_all=bool_param(api.query, "quote_all"),
        with_bom=bool_param(api.query, "with_bom", True),
        parquet_compression=choice_param(
            api, "parquet_compression", PARQUET_COMPRESSIONS, "snappy"
        ),
    )


# -- streaming ------------------------------------------------------------------------------


def open_cursor(api: ApiRequest) -> duckdb.DuckDBPyConnection:
    """A cursor of its own for a streamed answer (closed when the stream ends)."""
    make_cursor = getattr(api.catalog, "cursor", None) or api.catalog.con.cursor
    with api.state.cursor_lock:
        cursor: duckdb.DuckDBPyConnection = make_cursor()
    return cursor


@contextlib.contextmanager
def stream_cursor(api: ApiRequest) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`open_cursor` while an answer is prepared: closed if the preparation fails, left
    open (for :func:`stream_export` to close) otherwise."""
    cursor = open_cursor(api)
    try:
        yield cursor
    except BaseException:
        cursor.close()
        raise


class _Stream:
    """The byte chunks of an export and what to free once they are sent or abandoned.

    ``next_chunk`` and ``close`` are serialised: a client that disconnects while a chunk is
    being computed gets its cursor closed only once that chunk is done.
    """

    def __init__(self, chunks: Iterator[bytes], cleanup: Callable[[], None]) -> None:
        self._chunks = chunks
        self._cleanup = cleanup
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the resources were freed."""
        return self._closed

    def next_chunk(self) -> bytes | None:
        with self._lock:
            if self._closed:
                return None
            try:
                return next(self._chunks)
            except StopIteration:
                return None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                close_chunks = getattr(self._chunks, "close", None)
                if close_chunks is not None:
                    close_chunks()
            except Exception:
                logger.exception("Error while abandoning an export")
            finally:
                self._cleanup()


class ExportResponse(StreamingResponse):
    """A streamed answer whose chunks are computed on the portal's handler threads and whose
    resources are freed however the answer ends (sent, failed, or client gone)."""

    def __init__(
        self,
        stream: _Stream,
        state: PortalState,
        *,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        self.stream = stream
        self.state = state
        super().__init__(self._chunks(), media_type=media_type, headers=headers)

    async def _in_thread(self, function: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.state.executor, function)
        except RuntimeError:  # the executor is shut down: the portal is stopping
            return function()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = await self._in_thread(self.stream.next_chunk)
            except Exception:
                logger.exception("Export failed after its first bytes; the answer is cut short")
                raise
            if chunk is None:
                return
            if chunk:
                yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._in_thread(self.stream.close)


def _attachment_headers(filename: str) -> dict[str, str]:
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "")
    return {
        "Content-Disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
        )
    }


def stream_export(
    api: ApiRequest,
    cursor: duckdb.DuckDBPyConnection,
    compiled: CompiledQuery,
    prepared: PreparedExport,
    *,
    clauses: list[str],
    basename: str,
    compressed: bool,
) -> Response:
    """Run an export on ``cursor`` (which it then owns) and answer it, streamed."""
    reader: Any = None

    def cleanup() -> None:
        try:
            if reader is not None:
                reader.close()
            engine.release(cursor, compiled)
        finally:
            cursor.close()

    try:
        with query_errors(compiled, clauses):
            if compiled.prepare is not None:
                compiled.prepare(cursor)
            relation = cursor.sql(prepared.sql(compiled.sql), params=list(compiled.params) or None)
            reader = relation.to_arrow_reader(BATCH_ROWS)
            batches = iter(reader)
            first = list(itertools.islice(batches, 1))
            encoder = prepared.encoder_for(reader.schema)
            chunks = encoder(itertools.chain(first, batches))
            if compressed:
                chunks = gzip_chunks(chunks)
            head = next(chunks, b"")
    except BaseException:
        cleanup()
        raise
    export_format = prepared.format
    filename = f"{basename}.{export_format.extension}" + (".gzip" if compressed else "")
    media_type = GZIP_MEDIA_TYPE if compressed else export_format.media_type
    stream = _Stream(itertools.chain([head], chunks), cleanup)
    return ExportResponse(
        stream, api.state, media_type=media_type, headers=_attachment_headers(filename)
    )


#: The engine's default order (source order) at the end of a records statement.
_SOURCE_ORDER = re.compile(r' ORDER BY "__r" ASC(?=(?: LIMIT \d+)?(?: OFFSET \d+)?$)')


def in_source_order(compiled: CompiledQuery, order_by: str | None) -> CompiledQuery:
    """``compiled`` without its final sort when that sort is only the source order.

    Dataset tables are written in ``__rowid`` order and DuckDB keeps insertion order
    (``preserve_insertion_order``), so a scan already yields the source order: dropping the
    sort saves a full materialisation of the result (a quarter of a gigabyte and a third of a
    second for a million records). A statement of another shape is kept as it is.
    """
    if order_by is not None or compiled.grouped:
        return compiled
    sql, count = _SOURCE_ORDER.subn("", compiled.sql)
    return dataclasses.replace(compiled, sql=sql) if count == 1 else compiled


def _count_rows(
    cursor: duckdb.DuckDBPyConnection, compiled: CompiledQuery, clauses: list[str]
) -> int:
    with query_errors(compiled, clauses):
        try:
            if compiled.prepare is not None:
                compiled.prepare(cursor)
            rows = cursor.execute(
                f"SELECT count(*) FROM ({compiled.sql}) AS __rows", list(compiled.params)
            ).fetchall()
        finally:
            engine.release(cursor, compiled)
    return int(rows[0][0])


# -- dataset exports ------------------------------------------------------------------------


def _format_links(api: ApiRequest, base: str, formats: list[str]) -> dict[str, Any]:
    return {"_links": [{"rel": fmt, "href": api.url(f"{base}/{fmt}")} for fmt in formats]}


def list_dataset_exports(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/exports``."""
    dataset = api.dataset(api.path_params["dataset_id"])
    base = f"{DATASETS}/{quote(dataset.dataset_id, safe='@')}/exports"
    return _format_links(api, base, dataset_formats())


def export_dataset(api: ApiRequest) -> Response:
    """``GET /catalog/datasets/{dataset_id}/exports/{format}``."""
    dataset = api.dataset(api.path_params["dataset_id"])
    fmt = format_param(api, dataset_formats(), _spec.DATASET_EXPORT_FORMATS)
    params = ODSQLParams.from_query(api.query)
    limit, offset = export_window(api)
    options = export_options(api, fmt, dataset.dataset_id, params.timezone)
    compressed = bool_param(api.query, "compressed")
    dataset = with_facet_overrides(dataset, list_param(api.query, "facet"))
    compiled = in_source_order(params.compile(dataset, limit=limit, offset=offset), params.order_by)
    prepared = plan_export(fmt, compiled.columns, options)
    with stream_cursor(api) as cursor:
        if fmt == "xlsx":
            count = _count_rows(cursor, compiled, params.clauses)
            if count > XLSX_MAX_RECORDS:
                raise InvalidRESTParameterError(
                    f"Invalid value for limit API parameter: an xlsx export holds at most "
                    f"{XLSX_MAX_RECORDS} records and this one has {count}; use limit or "
                    "another format."
                )
    return stream_export(
        api,
        cursor,
        compiled,
        prepared,
        clauses=params.clauses,
        basename=dataset.dataset_id,
        compressed=compressed,
    )


# -- catalog exports ------------------------------------------------------------------------


def list_catalog_exports(api: ApiRequest) -> Any:
    """``GET /catalog/exports``."""
    return _format_links(api, f"{V21}/catalog/exports", list(CATALOG_FORMATS))


def export_catalog(api: ApiRequest) -> Response:
    """``GET /catalog/exports/{format}``: ``csv`` (streamed) or ``json`` (dataset objects)."""
    fmt = format_param(api, list(CATALOG_FORMATS), _spec.CATALOG_EXPORT_FORMATS)
    params = ODSQLParams.from_query(api.query)
    limit, offset = export_window(api)
    compressed = bool_param(api.query, "compressed")
    pseudo = api.catalog_pseudo_dataset()
    if fmt == "json":
        with api.cursor() as cursor:
            _, results = catalog_results(
                api, params, pseudo, cursor, limit=-1 if limit is None else limit, offset=offset
            )
        body = ascii_json("[" + ",".join(SPACED.dumps(result) for result in results) + "]")
        if compressed:
            body = b"".join(gzip_chunks([body]))
        export_format = EXPORT_FORMATS["json"]
        filename = "catalog.json" + (".gzip" if compressed else "")
        return Response(
            body,
            media_type=GZIP_MEDIA_TYPE if compressed else export_format.media_type,
            headers=_attachment_headers(filename),
        )
    options = export_options(api, fmt, "", params.timezone)
    compiled = params.compile(pseudo, limit=limit, offset=offset)
    prepared = plan_export(fmt, compiled.columns, options)
    return stream_export(
        api,
        open_cursor(api),
        compiled,
        prepared,
        clauses=params.clauses,
        basename="catalog",
        compressed=compressed,
    )


# -- facets ---------------------------------------------------------------------------------


def _facets_answer(api: ApiRequest, dataset: PortalDataset) -> Any:
    timezone, _ = timezone_param(api.query)
    lang = lang_param(api.query)
    texts = list_param(api.query, "facet")
    dataset = with_facet_overrides(dataset, texts)
    facets = resolve_facets(dataset, texts)
    filters = FacetFilters(
        where=tuple(list_param(api.query, "where")),
        refine=tuple(list_param(api.query, "refine")),
        exclude=tuple(list_param(api.query, "exclude")),
        timezone=timezone,
        lang=lang,
    )
    with api.cursor() as cursor:
        groups = compute_facets(cursor, dataset, facets, filters)
    return {"_links": [], "facets": groups}


def dataset_facets(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/facets``."""
    return _facets_answer(api, api.dataset(api.path_params["dataset_id"]))


def catalog_facets(api: ApiRequest) -> Any:
    """``GET /catalog/facets``: facets of the datasets the caller may see."""
    return _facets_answer(api, api.catalog_pseudo_dataset())


# -- attachments and files ------------------------------------------------------------------


def list_attachments(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/attachments``."""
    dataset = api.dataset(api.path_params["dataset_id"])
    base = f"{DATASETS}/{quote(dataset.dataset_id, safe='@')}/attachments"
    return {
        "_links": [],
        "attachments": [
            {
                "href": api.url(f"{base}/{quote(attachment.id, safe='')}"),
                "metas": {
                    "mime-type": attachment.mimetype,
                    "title": attachment.title,
                    "url": f"odsfile://{attachment.path.name}",
                    "id": attachment.id,
                },
            }
            for attachment in dataset.attachments
        ],
    }


def get_attachment(api: ApiRequest) -> Response:
    """``GET /catalog/datasets/{dataset_id}/attachments/{attachment_id}``: the bytes."""
    dataset = api.dataset(api.path_params["dataset_id"])
    attachment_id = str(api.path_params["attachment_id"])
    attachment = next((a for a in dataset.attachments if a.id == attachment_id), None)
    if attachment is None or not attachment.path.is_file():
        raise NotFoundError(
            f"Attachment '{attachment_id}' was not found in dataset '{dataset.dataset_id}'."
        )
    return FileResponse(
        attachment.path,
        media_type=attachment.mimetype,
        headers=_attachment_headers(attachment.path.name),
    )


def _file_response(api: ApiRequest, thumbnail: bool) -> Response:
    dataset = api.dataset(api.path_params["dataset_id"])
    file_id = str(api.path_params["file_id"])
    path = None
    if THUMBNAIL_SUFFIX not in file_id:
        if thumbnail:
            path = dataset.files.get(file_id + THUMBNAIL_SUFFIX) or dataset.files.get(file_id)
        else:
            path = dataset.files.get(file_id)
    if path is None or not path.is_file():
        raise NotFoundError(f"File '{file_id}' was not found in dataset '{dataset.dataset_id}'.")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type)


def get_file(api: ApiRequest) -> Response:
    """``GET /catalog/datasets/{dataset_id}/files/{file_id}``: a file field's bytes."""
    return _file_response(api, thumbnail=False)


def get_file_thumbnail(api: ApiRequest) -> Response:
    """``GET /catalog/datasets/{dataset_id}/files/{file_id}/thumbnail``."""
    return _file_response(api, thumbnail=True)


# -- the legacy download --------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadRequest:
    """The format and CSV parameters of a v1-style download (``.../download/``)."""

    fmt: str
    separator: str
    use_labels: bool

    def options(
        self,
        api: ApiRequest,
        dataset_id: str,
        timezone: str,
        record_keys: tuple[str | None, str | None],
    ) -> ExportOptions:
        """The export options of the download: v1 values, no BOM."""
        return ExportOptions(
            timezone=timezone,
            base_url=api.base_url,
            dataset_id=dataset_id,
            use_labels=self.use_labels,
            delimiter=self.separator,
            with_bom=False,
            legacy=True,
            record_id_key=record_keys[0],
            record_timestamp_key=record_keys[1],
        )


def download_request(api: ApiRequest) -> DownloadRequest:
    """``format``, ``csv_separator`` and ``use_labels_for_header`` of a download, validated."""
    fmt = (text_param(api.query, "format") or "csv").lower()
    if fmt not in LEGACY_FORMATS:
        raise InvalidRESTParameterError(
            f"Invalid value for format API parameter: {fmt!r} was found but one of "
            f"{', '.join(LEGACY_FORMATS)} is expected."
        )
    values = api.query.getlist("csv_separator")
    separator = values[-1] if values and values[-1] != "" else ";"
    if len(separator) != 1 or separator in '"\r\n' or not separator.isascii():
        raise InvalidRESTParameterError(
            f"Invalid value for csv_separator API parameter: {separator!r} was found but one "
            "ASCII character other than a quote or a line break is expected."
        )
    return DownloadRequest(fmt, separator, bool_param(api.query, "use_labels_for_header"))


def legacy_download(api: ApiRequest) -> Response:
    """``GET /explore/dataset/{dataset_id}/download/?format=csv|json|geojson`` (v1 filters)."""
    dataset = api.dataset(api.path_params["dataset_id"])
    request = download_request(api)
    timezone, _ = timezone_param(api.query)
    lang = lang_param(api.query)
    filters = legacy_filters(api.query, dataset)
    dataset = with_facet_overrides(dataset, filters.facets)
    clauses = [name for name, sent in (("q", filters.where), ("refine", filters.refine)) if sent]
    with stream_cursor(api) as cursor:
        select = filters.select
        record_keys: tuple[str | None, str | None] = (None, None)
        if request.fmt == "json":
            dataset, select = with_technical_fields(cursor, dataset, select)
            record_keys = (dataset.fields[-2].name, dataset.fields[-1].name)
        compiled = compile_request(
            dataset,
            clauses,
            select=select,
            where=filters.where,
            refine=filters.refine,
            exclude=filters.exclude,
            limit=None,
            timezone=timezone,
            lang=lang,
        )
        compiled = in_source_order(compiled, None)
        options = request.options(api, api.path_params["dataset_id"], timezone, record_keys)
        prepared = plan_export(request.fmt, compiled.columns, options)
    return stream_export(
        api,
        cursor,
        compiled,
        prepared,
        clauses=clauses,
        basename=str(api.path_params["dataset_id"]),
        compressed=False,
    )


def export_routes() -> list[ApiRoute]:
    """The routes of this module, for ``server.create_app``."""
    dataset = f"{DATASETS}/{{dataset_id}}"
    return [
        ApiRoute(f"{V21}/catalog/exports", list_catalog_exports),
        ApiRoute(f"{V21}/catalog/exports/{{format}}", export_catalog),
        ApiRoute(f"{V21}/catalog/facets", catalog_facets),
        ApiRoute(f"{dataset}/exports", list_dataset_exports),
        ApiRoute(f"{dataset}/exports/{{format}}", export_dataset),
        ApiRoute(f"{dataset}/facets", dataset_facets),
        ApiRoute(f"{dataset}/attachments", list_attachments),
        ApiRoute(f"{dataset}/attachments/{{attachment_id}}", get_attachment),
        ApiRoute(f"{dataset}/files/{{file_id}}", get_file),
        ApiRoute(f"{dataset}/files/{{file_id}}/thumbnail", get_file_thumbnail),
        ApiRoute(LEGACY_DOWNLOAD, legacy_download),
    ]
