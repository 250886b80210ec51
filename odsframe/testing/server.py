"""The local portal's HTTP API: a starlette app answering as ODS Explore API v2.1 does.

Layout of this module (extend it in the same shape):

* parameter parsing (``text_param``, ``int_param``, ``bool_param``, ``lang_param``,
  ``timezone_param``, ``page_window``): each raises ``InvalidRESTParameterError`` with the
  wording ODS uses (ods-api.md sections 1.4 and 4.2);
* :class:`ApiRequest`: what every handler gets (query, dataset lookup with visibility and
  auth checks, a per-request DuckDB cursor, the base URL);
* :func:`api_endpoint`: wraps a handler, runs it on the portal's handler threads, turns
  ``PortalError`` into the ODS error body and any other exception into a logged 500 with an
  ODS body;
* running queries (``compile_request``, ``fetch_arrow``, ``fetch_count``): results come
  through Arrow; DuckDB errors caused by the request become ``ODSQLError`` (400);
* :class:`RateLimitMiddleware`: ``X-RateLimit-*`` headers on every ``/api/`` answer and the
  optional daily quota (429, v1-style body);
* :func:`v21_routes`: the routes table. Exports, facets, attachments, v2.0 and v1 add their
  own :class:`ApiRoute` lists and :func:`create_app` mounts them (``extra_routes``).

Decisions where ODS documents nothing (ods-api.md sections 4.4 and 9):

* ``limit=-1`` means "as many as the window allows": ``min(100, 10000 - offset)`` records
  without ``group_by``, ``20000 - offset`` groups with it.
* A grouped request without ``limit`` returns every group (up to 20 000), as observed on a
  real portal, not 10.
* Unknown dataset or record: 404 ``{"error_code": "NotFound", ...}`` (the real code is not
  documented). A restricted dataset without a valid key: 401 ``Unauthorized``; such datasets
  are left out of the catalog. An API key that is not one of the portal's keys: 401.
* Without a quota the rate-limit headers announce :data:`UNLIMITED_DAILY_CALLS`. Every
  ``/api/`` call counts, errors included; refused (429) calls do not.
* ``include_links=true`` adds ``_links`` to the page and ``_links``, ``_id``, ``_timestamp``
  and ``_size`` (bytes of the record's JSON) to each record (the v2.1 record schema).
* A crash of the ODSQL compiler on odd text (a bug, or nesting beyond the recursion limit)
  is logged as an error and answered 400 ``ODSQLError``: bad input never gets a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pyarrow as pa
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from odsframe import _spec
from odsframe.testing import engine, odsql
from odsframe.testing.errors import (
    InvalidRESTParameterError,
    NotFoundError,
    ODSQLError,
    PortalError,
    QuotaError,
    UnauthorizedError,
)
from odsframe.testing.model import (
    HIDDEN_ID,
    HIDDEN_TIMESTAMP,
    CompiledQuery,
    PortalDataset,
    PortalField,
)
from odsframe.testing.serialize import RecordWriter, SerializeContext, dumps

logger = logging.getLogger("odsframe.testing.server")

JSON_MEDIA_TYPE = "application/json; charset=utf-8"
V21 = _spec.EXPLORE_V21
#: ``X-RateLimit-Limit`` announced when the portal has no quota.
UNLIMITED_DAILY_CALLS = 1_000_000_000
#: Metadata templates ``getDataset`` only returns with ``include_app_metas=true``.
APP_METAS_TEMPLATES = frozenset(
    {"visualization", "explore", "processing", "publishing", "exporters"}
)
ANONYMOUS = "anonymous"


class CatalogLike(Protocol):
    """What the server needs from a catalog (``catalog.Catalog`` satisfies it)."""

    con: duckdb.DuckDBPyConnection
    datasets: dict[str, PortalDataset]

    def catalog_dataset(self, *, include_private: bool = False) -> PortalDataset:
        """The pseudo-dataset (one record per dataset) catalog ODSQL queries run over."""
        ...

    def mark_data_changed(self, dataset: PortalDataset, *, records_count: int) -> None:
        """Note that a dataset's records changed in place (push, delete)."""
        ...

    def drop_enum_twins(self, dataset: PortalDataset) -> None:
        """Remove the dataset's ``__enum__`` filter columns (before in-place writes)."""
        ...


# -- parameters -----------------------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]+")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _shown(value: str) -> str:
    """A parameter value as error messages quote it (long values cut)."""
    return repr(value if len(value) <= 80 else value[:80] + "...")


def _last(query: QueryParams, name: str) -> str | None:
    values = query.getlist(name)
    return values[-1] if values else None


def text_param(query: QueryParams, name: str) -> str | None:
    """The (last) value of ``name``, or ``None`` when absent or blank."""
    value = _last(query, name)
    if value is None or not value.strip():
        return None
    return value


def list_param(query: QueryParams, name: str) -> list[str]:
    """Every non-blank value of a repeatable parameter (``where``, ``refine``, ``exclude``)."""
    return [value for value in query.getlist(name) if value.strip()]


def int_param(query: QueryParams, name: str, default: int) -> int:
    """An integer parameter; anything but an optionally signed run of digits is a 400."""
    value = _last(query, name)
    if value is None or not value.strip():
        return default
    text = value.strip()
    if not _INTEGER.fullmatch(text):
        raise InvalidRESTParameterError(
            f"Invalid value for {name} API parameter: {_shown(value)} was found but an "
            "integer is expected."
        )
    if len(text.lstrip("-")) > 18:
        raise InvalidRESTParameterError(
            f"Invalid value for {name} API parameter: {_shown(value)} was found but a "
            "64-bit integer is expected."
        )
    return int(text)


def bool_param(query: QueryParams, name: str, default: bool = False) -> bool:
    """A boolean parameter: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``)."""
    value = _last(query, name)
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidRESTParameterError(
        f"Invalid value for {name} API parameter: {_shown(value)} was found but a boolean "
        "(true or false) is expected."
    )


def lang_param(query: QueryParams) -> str:
    """The ``lang`` parameter, one of ``_spec.LANGS`` (default ``fr``)."""
    value = _last(query, "lang")
    if value is None or value == "":
        return _spec.DEFAULT_LANG
    if value not in _spec.LANGS:
        raise InvalidRESTParameterError(
            f"Invalid value for lang API parameter: {_shown(value)} was found but one of "
            f"{', '.join(_spec.LANGS)} is expected."
        )
    return value


def timezone_param(query: QueryParams) -> tuple[str, tzinfo]:
    """The ``timezone`` parameter as its name and a ``tzinfo`` (default UTC)."""
    value = _last(query, "timezone")
    if value is None or value == "":
        return "UTC", UTC
    try:
        if not value.isprintable() or value.startswith(("/", ".")):
            raise ValueError(value)
        return value, ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise InvalidRESTParameterError(
            f"Invalid value for timezone API parameter: {_shown(value)} was found but a timezone "
            "identifier such as 'UTC' or 'Europe/Paris' is expected."
        ) from None


def page_window(query: QueryParams, *, grouped: bool) -> tuple[int, int]:
    """Validated ``(limit, offset)`` of a records or catalog page.

    Without ``group_by``: ``-1 <= limit <= 100`` and ``offset + limit <= 10000``; with it,
    ``limit <= 20000`` and ``offset + limit <= 20000``. ``limit=-1`` is resolved to the largest
    page the window allows; a grouped request without ``limit`` gets every group.
    """
    max_limit = _spec.GROUP_BY_MAX_LIMIT if grouped else _spec.RECORDS_MAX_LIMIT
    window = _spec.GROUP_BY_MAX_LIMIT if grouped else _spec.RECORDS_MAX_WINDOW
    default = -1 if grouped else _spec.DEFAULT_LIMIT
    limit = int_param(query, "limit", default)
    offset = int_param(query, "offset", 0)
    if not -1 <= limit <= max_limit:
        raise InvalidRESTParameterError(
            f"Invalid value for limit API parameter: {limit} was found but "
            f"-1 <= limit <= {max_limit} is expected."
        )
    if offset < 0:
        raise InvalidRESTParameterError(
            f"Invalid value for offset API parameter: {offset} was found but "
            "offset >= 0 is expected."
        )
    if offset + max(limit, 0) > window:
        raise InvalidRESTParameterError(
            f"Invalid value for offset API parameter: {offset} was found but "
            f"offset + limit <= {window} is expected (limit is {limit})."
        )
    if limit == -1:
        limit = max(0, min(max_limit, window - offset))
    return limit, offset


@dataclass(frozen=True)
class ODSQLParams:
    """The ODSQL and formatting parameters shared by records, catalog and export requests."""

    select: str | None = None
    where: tuple[str, ...] = ()
    group_by: str | None = None
    order_by: str | None = None
    refine: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    lang: str = _spec.DEFAULT_LANG
    timezone: str = "UTC"
    tz: tzinfo = UTC

    @classmethod
    def from_query(cls, query: QueryParams) -> ODSQLParams:
        """Parse the parameters every ODSQL endpoint takes (validating lang and timezone)."""
        timezone, tz = timezone_param(query)
        return cls(
            select=text_param(query, "select"),
            where=tuple(list_param(query, "where")),
            group_by=text_param(query, "group_by"),
            order_by=text_param(query, "order_by"),
            refine=tuple(list_param(query, "refine")),
            exclude=tuple(list_param(query, "exclude")),
            lang=lang_param(query),
            timezone=timezone,
            tz=tz,
        )

    @property
    def clauses(self) -> list[str]:
        """Names of the ODSQL clauses that were sent (for error messages)."""
        sent = {
            "select": self.select,
            "where": self.where,
            "group_by": self.group_by,
            "order_by": self.order_by,
            "refine": self.refine,
            "exclude": self.exclude,
        }
        return [name for name, value in sent.items() if value]

    def compile(
        self,
        dataset: PortalDataset,
        *,
        limit: int | None,
        offset: int = 0,
        select: str | None = None,
    ) -> CompiledQuery:
        """Compile these parameters over ``dataset`` with the engine."""
        return compile_request(
            dataset,
            self.clauses,
            select=select if select is not None else self.select,
            where=list(self.where),
            group_by=self.group_by,
            order_by=self.order_by,
            refine=list(self.refine),
            exclude=list(self.exclude),
            limit=limit,
            offset=offset,
            timezone=self.timezone,
            lang=self.lang,
        )


#: Exceptions of the ODSQL compiler on text it did not foresee (its bugs, or nesting deeper
#: than Python's recursion limit): logged as errors, answered as a 400 since the request's
#: ODSQL caused them.
_COMPILER_FAILURES = (RecursionError, AssertionError, ValueError, TypeError, IndexError, KeyError)


def compile_request(dataset: PortalDataset, clauses: Sequence[str], **params: Any) -> CompiledQuery:
    """``engine.compile_query(dataset, **params)``; a compiler crash on odd ODSQL is a 400."""
    try:
        return engine.compile_query(dataset, **params)
    except PortalError:
        raise
    except _COMPILER_FAILURES as exc:
        logger.error("The ODSQL compiler failed on %r", params, exc_info=True)
        detail = "expression too deeply nested" if isinstance(exc, RecursionError) else "invalid"
        raise ODSQLError(
            f"The query could not be compiled ({detail}).", ", ".join(clauses) or "where"
        ) from exc


# -- running queries ------------------------------------------------------------------------

#: DuckDB errors that come from what the user sent (a cast of a bad literal, a type mismatch
#: the parser let through): a 400, not a 500.
_USER_DUCKDB_ERRORS: tuple[type[Exception], ...] = (
    duckdb.ConversionException,
    duckdb.OutOfRangeException,
    duckdb.InvalidInputException,
    duckdb.BinderException,
    duckdb.TypeMismatchException,
    duckdb.ParserException,
    duckdb.NotImplementedException,
)


@contextmanager
def query_errors(compiled: CompiledQuery, clauses: Sequence[str]) -> Iterator[None]:
    """Turn DuckDB errors caused by the request into ``ODSQLError`` (400)."""
    try:
        yield
    except _USER_DUCKDB_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        clause = getattr(compiled.prepare, "clauses", None) or ", ".join(clauses) or "where"
        raise ODSQLError(f"The query could not be evaluated: {detail}", clause) from exc


def fetch_arrow(
    cursor: duckdb.DuckDBPyConnection, compiled: CompiledQuery, clauses: Sequence[str] = ()
) -> Any:
    """Run ``compiled.sql`` and return its result as a ``pyarrow.Table``.

    Fetching through Arrow gives ``TIMESTAMPTZ`` values without needing ``pytz``.
    """
    with query_errors(compiled, clauses):
        try:
            if compiled.prepare is not None:
                compiled.prepare(cursor)
            params = list(compiled.params) or None
            return cursor.sql(compiled.sql, params=params).to_arrow_table()
        finally:
            engine.release(cursor, compiled)


def fetch_count(
    cursor: duckdb.DuckDBPyConnection, compiled: CompiledQuery, clauses: Sequence[str] = ()
) -> int | None:
    """The ``total_count`` of ``compiled`` (``None`` for grouped queries)."""
    if compiled.count_sql is None:
        return None
    with query_errors(compiled, clauses):
        try:
            if compiled.prepare is not None:
                compiled.prepare(cursor)
            rows = cursor.execute(compiled.count_sql, list(compiled.params)).fetchall()
        finally:
            engine.release(cursor, compiled)
    return int(rows[0][0]) if rows else 0


def fetch_page(
    cursor: duckdb.DuckDBPyConnection, compiled: CompiledQuery, clauses: Sequence[str] = ()
) -> tuple[int | None, Any]:
    """``(total_count, page)`` of a records request, the page as a ``pyarrow.Table``.

    Uses the two-step plan of :class:`CompiledQuery` when there is one (sort the keys, then
    read the page's rows), else counts and runs ``compiled.sql``.
    """
    if compiled.keys_sql is None or compiled.rows_sql is None:
        total = fetch_count(cursor, compiled, clauses)
        return total, fetch_arrow(cursor, compiled, clauses)
    with query_errors(compiled, clauses):
        try:
            if compiled.prepare is not None:
                compiled.prepare(cursor)
            # One transaction: both statements see the same snapshot, so a push between
            # them cannot take a row of the page away.
            cursor.execute("BEGIN TRANSACTION")
            try:
                row = cursor.execute(compiled.keys_sql, compiled.keys_params).fetchall()[0]
                total, ids = int(row[0]), list(row[1] or ())
                id_list = ", ".join(str(int(i)) for i in ids) or "NULL"  # NULL: an empty page
                rows_sql = compiled.rows_sql.replace(engine.ROWIDS, id_list)
                params = list(compiled.rows_params) or None
                rows = cursor.sql(rows_sql, params=params).to_arrow_table()
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        finally:
            engine.release(cursor, compiled)
    # Sorting the page's few rows here is cheaper than an ORDER BY over them in DuckDB.
    position = {rowid: i for i, rowid in enumerate(ids)}
    rows_ids = rows.column("__r").to_pylist()
    order = sorted(range(rows.num_rows), key=lambda i: position[rows_ids[i]])
    return total, rows.take(pa.array(order, pa.int64())).drop_columns(["__r"])


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the request object handlers get --------------------------------------------------------


#: Threads answering requests (DuckDB work blocks; the event loop must not).
HANDLER_THREADS = 16


@dataclass
class PortalState:
    """Everything the app shares between requests.

    Handlers run on :attr:`executor`, a thread pool the portal owns: :meth:`close` joins its
    threads, so none of them is still unwinding DuckDB state while the interpreter exits
    (which aborts the process).
    """

    catalog: CatalogLike
    api_keys: frozenset[str]
    counter: CallCounter
    cursor_lock: threading.Lock = field(default_factory=threading.Lock)
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(HANDLER_THREADS, "odsframe-portal")
    )

    def close(self) -> None:
        """Wait for running handlers and stop the handler threads."""
        self.executor.shutdown(wait=True)


@dataclass
class ApiRequest:
    """One API call as a handler sees it."""

    request: Request
    state: PortalState
    api_key: str | None
    #: The parameters when they are not just the URL's (a v1 POST adds its form body).
    params: QueryParams | None = None

    @property
    def query(self) -> QueryParams:
        return self.params if self.params is not None else self.request.query_params

    @property
    def path_params(self) -> Mapping[str, Any]:
        return self.request.path_params

    @property
    def catalog(self) -> CatalogLike:
        return self.state.catalog

    @property
    def base_url(self) -> str:
        """``http://host:port`` as the client addressed the portal."""
        return str(self.request.base_url).rstrip("/")

    @property
    def authenticated(self) -> bool:
        return self.api_key is not None

    def can_see(self, dataset: PortalDataset) -> bool:
        return self.authenticated or not dataset.is_private

    def dataset(self, dataset_id: str) -> PortalDataset:
        """The dataset, or 404 if unknown, or 401 if restricted and no valid key was sent."""
        dataset = self.catalog.datasets.get(dataset_id)
        if dataset is None:
            raise NotFoundError(f"Dataset '{dataset_id}' was not found.")
        if not self.can_see(dataset):
            raise UnauthorizedError(
                f"Dataset '{dataset_id}' is restricted: send a valid API key "
                "(Authorization: Apikey <key> header or apikey parameter)."
            )
        return dataset

    def catalog_pseudo_dataset(self) -> PortalDataset:
        """The catalog pseudo-dataset as this caller may see it (restricted ones need a key)."""
        return self.catalog.catalog_dataset(include_private=self.authenticated)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB cursor of its own (connections are not thread-safe), closed afterwards."""
        make_cursor = getattr(self.catalog, "cursor", None) or self.catalog.con.cursor
        with self.state.cursor_lock:
            cursor = make_cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def serialize_context(
        self, tz: tzinfo, dataset_id: str = "", *, datasets_path: str | None = None
    ) -> SerializeContext:
        """How to write values; file URLs use ``datasets_path``'s file route (v2.1's by
        default)."""
        context = SerializeContext(timezone=tz, base_url=self.base_url, dataset_id=dataset_id)
        if datasets_path is not None:
            context = dataclasses.replace(context, datasets_path=datasets_path)
        return context

    def url(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> str:
        """An absolute URL on this portal."""
        query = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")


def request_api_key(headers: Mapping[str, str], query: QueryParams) -> str | None:
    """The API key a request carries: ``Authorization: Apikey KEY`` (any case) or ``apikey=``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "apikey" and credentials.strip():
            return credentials.strip()
    key = _last(query, "apikey")
    return key if key else None


# -- answers --------------------------------------------------------------------------------


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer with ODS's content type."""
    return Response(dumps(payload), status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)


def v2_error_response(error: PortalError) -> Response:
    """The v2 error answer ``{"error_code", "message"}`` (or the error's own body, e.g. 429)."""
    return json_response(error.body(), status=error.status)


ErrorRenderer = Callable[[PortalError], Response]
Handler = Callable[[ApiRequest], Any]


def api_endpoint(
    handler: Handler,
    *,
    error_response: ErrorRenderer = v2_error_response,
    form_posts: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: auth check, threadpool, ODS error bodies, 500 on anything unexpected.

    The handler runs on the portal's handler threads (it may block on DuckDB) and returns a
    ``Response`` or a JSON-ready payload. With ``form_posts``, a POST's form-encoded body
    adds to the URL's parameters (v1); other endpoints leave the body to their handler.
    """

    async def endpoint(request: Request) -> Response:
        state: PortalState = request.app.state.portal
        try:
            post = form_posts and request.method == "POST"
            params = await posted_params(request) if post else None
            query = params if params is not None else request.query_params
            api_key = request_api_key(request.headers, query)
            if api_key is not None and api_key not in state.api_keys:
                raise UnauthorizedError("The API key is not valid for this portal.")
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                state.executor, handler, ApiRequest(request, state, api_key, params)
            )
        except PortalError as error:
            return error_response(error)
        except Exception:
            logger.exception("Unexpected error answering %s", request.url)
            return error_response(
                PortalError(
                    "An unexpected error happened on the server; it was logged.",
                    status=500,
                    error_code="InternalServerError",
                )
            )
        return result if isinstance(result, Response) else json_response(result)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


#: Largest form body a POST may carry (v1 takes POST to get around URL length limits).
MAX_FORM_BYTES = 1 << 20


async def posted_params(request: Request) -> QueryParams:
    """The URL's parameters followed by those of a form-encoded body (a v1 POST)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("", "application/x-www-form-urlencoded"):
        raise InvalidRESTParameterError(
            f"POST parameters must be form-encoded (application/x-www-form-urlencoded), "
            f"not {media_type!r}."
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRESTParameterError(
                f"The POST body is larger than {MAX_FORM_BYTES:,} bytes."
            )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRESTParameterError("The POST body is not UTF-8.") from None
    form = parse_qsl(text, keep_blank_values=True)
    return QueryParams([*request.query_params.multi_items(), *form])


@dataclass(frozen=True)
class ApiRoute:
    """One API path (served with and without a trailing slash, never redirected).

    ``methods`` is ``("GET",)`` except for the v1 routes, which take POST too (the
    parameters then come from the URL and the form body).
    """

    path: str
    handler: Handler
    error_response: ErrorRenderer = v2_error_response
    methods: tuple[str, ...] = ("GET",)

    def routes(self) -> list[Route]:
        endpoint = api_endpoint(
            self.handler, error_response=self.error_response, form_posts="POST" in self.methods
        )
        bare = self.path.rstrip("/")
        return [
            Route(bare, endpoint, methods=list(self.methods)),
            Route(bare + "/", endpoint, methods=list(self.methods)),
        ]


# -- rate limits and quotas -----------------------------------------------------------------


@dataclass(frozen=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset: int
    exceeded: bool

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


def next_utc_midnight(now: float) -> int:
    """Epoch seconds of the next midnight UTC after ``now``."""
    today = datetime.fromtimestamp(now, UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return int(midnight.timestamp())


class CallCounter:
    """Daily API calls per client (an API key, or every anonymous caller together).

    Parameters
    ----------
    daily_limit
        Calls allowed per client and UTC day; ``None`` for no quota.
    clock
        Returns the current time in epoch seconds.
    """

    def __init__(self, daily_limit: int | None = None, clock: Callable[[], float] = time.time):
        if daily_limit is not None and daily_limit < 0:
            raise ValueError(f"quota must be a non-negative number of calls, not {daily_limit}")
        self.daily_limit = daily_limit
        self.clock = clock
        self._reset = -1
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> RateLimitStatus:
        """Count one call by ``client`` (unless over quota) and say where it stands."""
        now = self.clock()
        reset = next_utc_midnight(now)
        limit = UNLIMITED_DAILY_CALLS if self.daily_limit is None else self.daily_limit
        with self._lock:
            if reset != self._reset:  # a new UTC day: every counter starts again
                self._reset, self._calls = reset, {}
            used = self._calls.get(client, 0)
            if used >= limit:
                return RateLimitStatus(limit, 0, reset, exceeded=True)
            self._calls[client] = used + 1
        return RateLimitStatus(limit, limit - used - 1, reset, exceeded=False)


def quota_error(status: RateLimitStatus, client: str) -> QuotaError:
    """The 429 answer for a client over its quota (v1-style body)."""
    reset_time = datetime.fromtimestamp(status.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if client == ANONYMOUS:
        return QuotaError(
            "Too many requests from anonymous users. Please log in or use an API key.",
            reset_time=reset_time,
            call_limit=status.limit,
            errorcode=_spec.QUOTA_ANONYMOUS_LIMIT,
        )
    return QuotaError(
        "Too many requests on the domain. Please contact the domain administrator.",
        reset_time=reset_time,
        call_limit=status.limit,
        errorcode=_spec.QUOTA_DOMAIN_LIMIT,
    )


class RateLimitMiddleware:
    """Counts ``/api/`` calls, adds ``X-RateLimit-*`` headers, answers 429 over quota."""

    def __init__(self, app: ASGIApp, counter: CallCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        key = request_api_key(request.headers, request.query_params)
        client = ANONYMOUS if key is None else f"key:{key}"
        status = self.counter.hit(client)
        if status.exceeded:
            error = quota_error(status, client)
            response = json_response(error.body(), status=error.status)
            response.raw_headers.extend(status.headers())
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *status.headers()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- dataset objects ------------------------------------------------------------------------


def default_dataset_uid(dataset_id: str) -> str:
    return "da_" + hashlib.sha1(dataset_id.encode("utf-8")).hexdigest()[:6]


def dataset_links(api: ApiRequest, dataset_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": api.url(f"{V21}/catalog/datasets/{quote(dataset_id, safe='@')}")},
        {"rel": "catalog", "href": api.url(f"{V21}/catalog/datasets")},
    ]


def dataset_object(
    dataset: PortalDataset,
    *,
    include_app_metas: bool = False,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The v2.1 dataset object (``getDataset`` body, ``getDatasets`` item), key order as ODS."""
    payload: dict[str, Any] = {}
    if links is not None:
        payload["_links"] = links
    payload.update(
        {
            "visibility": dataset.visibility,
            "dataset_id": dataset.dataset_id,
            "dataset_uid": dataset.dataset_uid or default_dataset_uid(dataset.dataset_id),
            "has_records": dataset.records_count > 0,
            "features": list(dataset.features),
            "attachments": [
                {
                    "id": attachment.id,
                    "title": attachment.title,
                    "mimetype": attachment.mimetype,
                    "url": f"odsfile://{attachment.path.name}",
                }
                for attachment in dataset.attachments
            ],
            "alternative_exports": [dict(export) for export in dataset.alternative_exports],
            "data_visible": True,
            "fields": [portal_field.to_json() for portal_field in dataset.fields],
            "metas": {
                name: dict(template)
                for name, template in dataset.metas.items()
                if include_app_metas or name not in APP_METAS_TEMPLATES
            },
        }
    )
    return payload


# -- records --------------------------------------------------------------------------------


def page_links(api: ApiRequest, limit: int, offset: int, total: int) -> list[dict[str, str]]:
    """``self``/``first``/``last``/``next`` links of a records or catalog page."""
    path = api.request.url.path
    kept = [(k, v) for k, v in api.query.multi_items() if k not in ("offset", "limit", "apikey")]

    def href(page_offset: int) -> str:
        return api.url(path, [*kept, ("limit", limit), ("offset", page_offset)])

    links = [{"rel": "self", "href": href(offset)}, {"rel": "first", "href": href(0)}]
    if limit > 0:
        last = max(0, (total - 1) // limit * limit) if total else 0
        last = min(last, max(0, _spec.RECORDS_MAX_WINDOW - limit))
        links.append({"rel": "last", "href": href(last)})
        if offset + limit < total and offset + 2 * limit <= _spec.RECORDS_MAX_WINDOW:
            links.append({"rel": "next", "href": href(offset + limit)})
    return links


def record_links(api: ApiRequest, dataset_id: str, record_id: Any) -> list[dict[str, str]]:
    base = f"{V21}/catalog/datasets/{quote(dataset_id, safe='@')}"
    return [
        {"rel": "self", "href": api.url(f"{base}/records/{quote(str(record_id), safe='')}")},
        {"rel": "dataset", "href": api.url(base)},
    ]


def one_row_dataset(
    cursor: duckdb.DuckDBPyConnection, dataset: PortalDataset, column: str, value: str
) -> PortalDataset:
    """``dataset`` narrowed to the rows where ``column = value``.

    The rows live in a temporary view of this cursor (so of this request only); the engine
    compiles over it as over the dataset's table.
    """
    view = f"__odsframe_{column.strip('_')}_view"
    cursor.execute(
        f"CREATE OR REPLACE TEMP VIEW {_sql_identifier(view)} AS SELECT * FROM "
        f"{_sql_identifier(dataset.table)} WHERE {_sql_identifier(column)} = {_sql_literal(value)}"
    )
    return dataclasses.replace(dataset, table=view)


#: Names under which records queries with ``include_links=true`` fetch ``__id`` and
#: ``__timestamp`` (exposed as fields of a per-request view, removed from the answer).
_RECORD_ID_FIELD = "odsframe_internal_record_id"
_RECORD_TIMESTAMP_FIELD = "odsframe_internal_record_timestamp"


def with_technical_fields(
    cursor: duckdb.DuckDBPyConnection, dataset: PortalDataset, select: str | None
) -> tuple[PortalDataset, str]:
    """``dataset`` seen through a view exposing the record id and timestamp as fields, and
    ``select`` extended to fetch them (for ``_id``/``_timestamp`` with ``include_links``)."""
    view = "__odsframe_technical_view"
    cursor.execute(
        f"CREATE OR REPLACE TEMP VIEW {_sql_identifier(view)} AS SELECT *, "
        f"{_sql_identifier(HIDDEN_ID)} AS {_sql_identifier(_RECORD_ID_FIELD)}, "
        f"{_sql_identifier(HIDDEN_TIMESTAMP)} AS {_sql_identifier(_RECORD_TIMESTAMP_FIELD)} "
        f"FROM {_sql_identifier(dataset.table)}"
    )
    technical = [
        PortalField(_RECORD_ID_FIELD, "text"),
        PortalField(_RECORD_TIMESTAMP_FIELD, "datetime"),
    ]
    extended = dataclasses.replace(dataset, table=view, fields=[*dataset.fields, *technical])
    extra = f"{_RECORD_ID_FIELD}, {_RECORD_TIMESTAMP_FIELD}"
    return extended, "*" if select is None else f"{select}, {extra}"


def add_record_links(api: ApiRequest, dataset_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """``_links``, ``_id``, ``_timestamp`` and ``_size`` in front of a record's fields."""
    record_id = record.pop(_RECORD_ID_FIELD, None)
    timestamp = record.pop(_RECORD_TIMESTAMP_FIELD, None)
    if record_id is None:
        return record
    return {
        "_links": record_links(api, dataset_id, record_id),
        "_id": record_id,
        "_timestamp": timestamp,
        "_size": len(dumps(record)),
        **record,
    }


def get_records(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/records``."""
    dataset = api.dataset(api.path_params["dataset_id"])
    params = ODSQLParams.from_query(api.query)
    limit, offset = page_window(api.query, grouped=params.group_by is not None)
    include_links = bool_param(api.query, "include_links")
    bool_param(api.query, "include_app_metas")
    context = api.serialize_context(params.tz, dataset.dataset_id)

    def run(
        cursor: duckdb.DuckDBPyConnection, target: PortalDataset, select: str | None
    ) -> tuple[CompiledQuery, int | None, Any]:
        compiled = params.compile(target, limit=limit, offset=offset, select=select)
        if not limit:
            return compiled, fetch_count(cursor, compiled, params.clauses), None
        total, table = fetch_page(cursor, compiled, params.clauses)
        return compiled, total, table

    with api.cursor() as cursor:
        result = None
        if include_links and params.group_by is None:
            try:
                result = run(cursor, *with_technical_fields(cursor, dataset, params.select))
            except ODSQLError:  # e.g. an aggregate select: no record ids to add
                result = None
        if result is None:
            result = run(cursor, dataset, params.select)
    compiled, total, table = result
    records = RecordWriter(compiled.columns, context).records(table) if table is not None else []
    payload: dict[str, Any] = {}
    if total is not None:
        payload["total_count"] = total
    if include_links:
        payload["_links"] = page_links(api, limit, offset, total if total is not None else 0)
        records = [add_record_links(api, dataset.dataset_id, record) for record in records]
    payload["results"] = records
    return payload


def get_record(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}/records/{record_id}``: the flat record."""
    dataset = api.dataset(api.path_params["dataset_id"])
    record_id = api.path_params["record_id"]
    params = ODSQLParams.from_query(api.query)
    with api.cursor() as cursor:
        one_record = one_row_dataset(cursor, dataset, HIDDEN_ID, record_id)
        compiled = compile_request(
            one_record,
            params.clauses,
            select=params.select,
            limit=1,
            timezone=params.timezone,
            lang=params.lang,
        )
        table = fetch_arrow(cursor, compiled, params.clauses)
    writer = RecordWriter(compiled.columns, api.serialize_context(params.tz, dataset.dataset_id))
    records = writer.records(table)
    if not records:
        raise NotFoundError(
            f"Record '{record_id}' was not found in dataset '{dataset.dataset_id}'."
        )
    return records[0]


# -- catalog --------------------------------------------------------------------------------


#: Keys of the dataset object that are not columns of the catalog pseudo-dataset; a catalog
#: ``select`` naming them gets them from the dataset object.
STRUCTURAL_DATASET_KEYS = ("fields", "metas", "attachments", "alternative_exports")
#: Alias under which catalog queries fetch the dataset id they need (removed from answers).
_DATASET_ID_ALIAS = "odsframe_internal_dataset_id"


def _split_catalog_select(select: str) -> tuple[list[str], list[str]]:
    """``select`` as (ODSQL items over the pseudo-dataset, dataset-object keys)."""
    items: list[str] = []
    structural: list[str] = []
    for entry in odsql.parse_select(select):
        if (
            isinstance(entry, odsql.SelectItem)
            and entry.alias is None
            and isinstance(entry.expr, odsql.Field)
            and entry.expr.name in STRUCTURAL_DATASET_KEYS
        ):
            structural.append(entry.expr.name)
        else:
            items.append(select[entry.start : entry.end])
    return items, structural


def catalog_results(
    api: ApiRequest,
    params: ODSQLParams,
    pseudo: PortalDataset,
    cursor: duckdb.DuckDBPyConnection,
    *,
    limit: int,
    offset: int,
) -> tuple[int | None, list[dict[str, Any]]]:
    """``(total_count, results)`` of an ODSQL query over the catalog pseudo-dataset.

    Without ``select`` every result is the full dataset object; a ``select`` puts the selected
    metadata at the root of each result (``fields``, ``metas``, ``attachments`` come from the
    dataset object); a ``group_by`` gives the groups as records.
    """
    include_links = bool_param(api.query, "include_links")
    include_app_metas = bool_param(api.query, "include_app_metas")
    structural: list[str] = []
    full_objects = params.select is None and params.group_by is None
    if full_objects:
        select: str | None = f"dataset_id AS {_DATASET_ID_ALIAS}"
    elif params.select is not None and params.group_by is None:
        items, structural = _split_catalog_select(params.select)
        select = ", ".join([*items, f"dataset_id AS {_DATASET_ID_ALIAS}"] if structural else items)
    else:
        select = params.select
    compiled = params.compile(pseudo, limit=limit, offset=offset, select=select)
    if limit:
        total, table = fetch_page(cursor, compiled, params.clauses)
    else:
        total, table = fetch_count(cursor, compiled, params.clauses), None
    writer = RecordWriter(compiled.columns, api.serialize_context(params.tz))
    records = writer.records(table) if table is not None else []
    if not full_objects and not structural:
        return total, records
    results: list[dict[str, Any]] = []
    for record in records:
        dataset = api.catalog.datasets.get(str(record.pop(_DATASET_ID_ALIAS)))
        if dataset is None:  # removed since the query ran
            continue
        links = dataset_links(api, dataset.dataset_id) if include_links else None
        whole = dataset_object(dataset, include_app_metas=include_app_metas, links=links)
        if full_objects:
            results.append(whole)
            continue
        if links is not None:
            record = {"_links": links, **record}
        record.update({key: whole[key] for key in structural})
        results.append(record)
    return total, results


def get_dataset(api: ApiRequest) -> Any:
    """``GET /catalog/datasets/{dataset_id}``: the dataset object (or its ``select``)."""
    dataset = api.dataset(api.path_params["dataset_id"])
    params = ODSQLParams.from_query(api.query)
    include_links = bool_param(api.query, "include_links")
    include_app_metas = bool_param(api.query, "include_app_metas")
    if params.select is None:
        links = dataset_links(api, dataset.dataset_id) if include_links else None
        return dataset_object(dataset, include_app_metas=include_app_metas, links=links)
    select_only = ODSQLParams(
        select=params.select, lang=params.lang, timezone=params.timezone, tz=params.tz
    )
    with api.cursor() as cursor:
        pseudo = one_row_dataset(
            cursor, api.catalog_pseudo_dataset(), "dataset_id", dataset.dataset_id
        )
        _, results = catalog_results(api, select_only, pseudo, cursor, limit=1, offset=0)
    if not results:
        raise NotFoundError(f"Dataset '{dataset.dataset_id}' was not found.")
    return results[0]


def get_datasets(api: ApiRequest) -> Any:
    """``GET /catalog/datasets``: an ODSQL query over the datasets the caller may see."""
    params = ODSQLParams.from_query(api.query)
    limit, offset = page_window(api.query, grouped=params.group_by is not None)
    include_links = bool_param(api.query, "include_links")
    bool_param(api.query, "include_app_metas")
    with api.cursor() as cursor:
        total, results = catalog_results(
            api, params, api.catalog_pseudo_dataset(), cursor, limit=limit, offset=offset
        )
    payload: dict[str, Any] = {}
    if total is not None:
        payload["total_count"] = total
    if include_links and total is not None:
        payload["_links"] = page_links(api, limit, offset, total)
    payload["results"] = results
    return payload


# -- indexes --------------------------------------------------------------------------------


def api_index(api: ApiRequest) -> Any:
    """``GET /api/explore/v2.1/``: links to what this API serves."""
    return {
        "_links": [
            {"rel": "self", "href": api.url(V21)},
            {"rel": "catalog", "href": api.url(f"{V21}/catalog")},
        ]
    }


def catalog_index(api: ApiRequest) -> Any:
    """``GET /api/explore/v2.1/catalog/``: links to the catalog's endpoints."""
    return {
        "_links": [
            {"rel": "self", "href": api.url(f"{V21}/catalog")},
            {"rel": "datasets", "href": api.url(f"{V21}/catalog/datasets")},
        ]
    }


def v21_routes() -> list[ApiRoute]:
    """The Explore API v2.1 routes table."""
    datasets = f"{V21}/catalog/datasets"
    return [
        ApiRoute(V21, api_index),
        ApiRoute(f"{V21}/catalog", catalog_index),
        ApiRoute(datasets, get_datasets),
        ApiRoute(f"{datasets}/{{dataset_id}}", get_dataset),
        ApiRoute(f"{datasets}/{{dataset_id}}/records", get_records),
        ApiRoute(f"{datasets}/{{dataset_id}}/records/{{record_id}}", get_record),
    ]


async def home(request: Request) -> Response:
    """``/``: a tiny index of the portal (HTML for browsers, JSON otherwise)."""
    state: PortalState = request.app.state.portal
    base = str(request.base_url).rstrip("/")
    public = sorted(ds.dataset_id for ds in state.catalog.datasets.values() if not ds.is_private)
    if "text/html" in request.headers.get("accept", ""):
        items = "".join(
            f'<li><a href="{base}{V21}/catalog/datasets/{quote(ds_id, safe="@")}/records">'
            f"{html.escape(ds_id)}</a></li>"
            for ds_id in public
        )
        page = (
            "<!doctype html><meta charset='utf-8'><title>odsframe local portal</title>"
            f"<h1>odsframe local portal</h1><p>Explore API v2.1: "
            f"<a href='{base}{V21}/'>{base}{V21}/</a></p><ul>{items}</ul>"
        )
        return Response(page, media_type="text/html; charset=utf-8")
    return json_response(
        {
            "portal": "odsframe local portal",
            "explore_v2.1": f"{base}{V21}/",
            "datasets": public,
        }
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404) and methods other than GET (405) with an ODS body."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "BadRequest")
    message = {
        404: f"No API endpoint at {request.url.path}.",
        405: f"Method {request.method} is not allowed here: the Explore API only answers GET.",
    }.get(status, str(getattr(exc, "detail", "")) or "Bad request.")
    return json_response({"error_code": code, "message": message}, status=status)


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Under a server that runs the ASGI lifespan: join the handler threads at shutdown."""
    yield
    app.state.portal.close()


def create_app(
    catalog: CatalogLike,
    *,
    api_keys: Sequence[str] = (),
    quota: int | None = None,
    extra_routes: Sequence[ApiRoute] = (),
    clock: Callable[[], float] = time.time,
    faults: Any = None,
    push_keys: Mapping[str, str] | None = None,
) -> Starlette:
    """The portal's ASGI app over ``catalog``.

    Parameters
    ----------
    catalog
        The datasets to serve (``catalog.Catalog`` or anything with ``.con`` and ``.datasets``).
    api_keys
        Keys that open restricted datasets. Any other key sent is refused (401).
    quota
        Calls allowed per client and UTC day (then 429); ``None`` for no quota.
    extra_routes
        More API routes (exports, facets, v1 ...), mounted after the v2.1 ones.
    clock
        Time source of the quota counter (epoch seconds).
    faults
        Faults to inject (``faults.Faults``, a rule, rules or a spec string; see
        :mod:`odsframe.testing.faults`); ``None`` for none.
    push_keys
        ``{dataset_id: push key}``: datasets open to the real-time push API
        (:mod:`odsframe.testing.routes_push`).

    Returns
    -------
    starlette.applications.Starlette
    """
    counter = CallCounter(quota, clock)
    routes: list[BaseRoute] = [Route("/", home, methods=["GET"])]
    from odsframe.testing.routes_exports import export_routes  # imports this module
    from odsframe.testing.routes_v1 import v1_routes  # imports this module
    from odsframe.testing.routes_v20 import v20_routes  # imports this module

    for api_route in [*v21_routes(), *export_routes(), *v20_routes(), *v1_routes(), *extra_routes]:
        routes.extend(api_route.routes())
    from odsframe.testing.routes_push import check_push_keys, push_routes  # imports this module

    routes.extend(push_routes())
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=_lifespan
    )
    app.router.redirect_slashes = False
    app.state.portal = PortalState(catalog=catalog, api_keys=frozenset(api_keys), counter=counter)
    app.state.push_keys = check_push_keys(push_keys)
    app.add_middleware(RateLimitMiddleware, counter=counter)
    if faults is not None:
        from odsframe.testing.faults import FaultMiddleware, as_faults

        app.add_middleware(FaultMiddleware, faults=as_faults(faults))
    return app
