"""The seam between odsframe and one generation of the ODS API.

An adapter knows URLs and envelopes of one API generation (v2.1, v2.0, Search API v1) and
nothing about frames: it returns raw records (flat dicts), raw JSON and bytes on disk.
:class:`ExploreAdapter` implements the public methods once (argument checks, the requests a
query makes, planning, explaining, iterating records along the plan) over a few hooks each
generation provides: URLs, how one answer is fetched and read (``_count_answer``,
``_fetch``, ``_facets``, ``_catalog_page``), where an export is streamed from
(``_export_call``) and, when they differ, how parameters are sent (``_wire_params``) and
which export options are accepted (``_check_export_options``).

To add a generation, subclass :class:`ExploreAdapter`, set :attr:`~ExploreAdapter.version`
and :attr:`~ExploreAdapter.export_format_names`, implement the abstract methods, and
register the class in :mod:`odsframe.api`.
"""

from __future__ import annotations

import json
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Self

from odsframe._auth import ApiKey, resolve_api_key
from odsframe._http import DEFAULT_TIMEOUT, HTTPClient, RetryPolicy
from odsframe._portal_url import portal_host, resolve_portal
from odsframe._spec import GROUP_BY_MAX_LIMIT, RECORDS_MAX_LIMIT, RECORDS_MAX_WINDOW
from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.query.odsql import where_conditions
from odsframe.query.plan import (
    DEFAULT_PREFERRED_FORMATS,
    DEFAULT_RECORDS_THRESHOLD,
    Plan,
    PlannedRequest,
    count_request,
    tiebreak_fields,
)
from odsframe.query.query import Query, facet_filters, normalise_order_by, normalise_select

__all__ = ["CatalogRequest", "ExploreAdapter"]

#: Export formats ``iter_records`` can turn back into records, best first.
RECORD_EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "json")
#: Parameters a Query or a Plan owns; export options may not set them.
QUERY_PARAMS = frozenset(
    {"select", "where", "refine", "exclude", "order_by", "group_by", "timezone", "lang"}
    | {"limit", "offset"}
)
#: Option names that would put a key in the URL.
SECRET_OPTIONS = frozenset({"apikey", "api_key", "access_token"})
#: Parameters of a facets request a query can contribute.
FACETS_PARAMS = frozenset({"where", "refine", "exclude", "lang", "timezone"})
_ALIAS = re.compile(r"(?P<expr>.+?)\s+as\s+(?P<alias>[A-Za-z0-9_]+)", re.IGNORECASE | re.DOTALL)
_PLAIN_NAME = re.compile(r"`?(?P<name>[A-Za-z0-9_]+)`?")


@dataclass(frozen=True)
class CatalogRequest:
    """The validated arguments of one catalog page, for an adapter to put in its terms.

    ``locale`` holds the ``lang`` and ``timezone`` parameters (when given).
    """

    select: tuple[str, ...]
    where: tuple[str, ...]
    refine: tuple[str, ...]
    exclude: tuple[str, ...]
    order_by: tuple[str, ...]
    locale: tuple[tuple[str, str], ...]
    limit: int
    offset: int


class ExploreAdapter(ABC):
    """One API generation of one portal.

    Parameters
    ----------
    portal
        The portal (URL, domain or shorthand; see :func:`odsframe._portal_url.resolve_portal`).
    http
        The HTTP layer (session, key header, retries).
    """

    #: The API generation, e.g. ``"2.1"``.
    version: ClassVar[str]

    def __init__(self, portal: str, http: HTTPClient) -> None:
        self.base_url = resolve_portal(portal)
        self.http = http

    @classmethod
    def open(
        cls,
        portal: str,
        *,
        api_key: ApiKey | str | None = None,
        session: Any = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        use_keyring: bool = True,
    ) -> Self:
        """An adapter with its own :class:`HTTPClient` and the key from the key chain."""
        base_url = resolve_portal(portal)
        key = resolve_api_key(api_key, host=portal_host(base_url), use_keyring=use_keyring)
        http = HTTPClient(api_key=key, session=session, timeout=timeout, retry=retry)
        return cls(base_url, http)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, authenticated={self.http.authenticated})"

    def close(self) -> None:
        """Close the HTTP session (if odsframe created it)."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what each generation provides ----------------------------------------------------

    @property
    @abstractmethod
    def catalog_url(self) -> str:
        """The catalog root URL (e.g. ``<base>/api/explore/v2.1/catalog``)."""

    @abstractmethod
    def dataset_url(self, dataset: str) -> str:
        """The URL of one dataset's metadata."""

    @abstractmethod
    def url_for(self, request: PlannedRequest) -> str:
        """The full URL (with parameters) of a planned request."""

    @abstractmethod
    def dataset_metadata(self, dataset: str) -> dict[str, Any]:
        """The dataset's metadata as the API returns it (fields, metas ...)."""

    @abstractmethod
    def _count_answer(self, request: PlannedRequest) -> tuple[dict[str, Any], str]:
        """``(answer, URL)`` of a planned ``count`` request; the answer holds
        :attr:`count_key`."""

    @abstractmethod
    def _fetch(self, request: PlannedRequest) -> list[dict[str, Any]]:
        """The records of a planned ``records`` or ``grouped`` request (kind checked)."""

    @abstractmethod
    def export_formats(self, dataset: str) -> list[str]:
        """The export formats the dataset lists."""

    @abstractmethod
    def _export_call(self, request: PlannedRequest) -> tuple[str, Any]:
        """``(URL, parameters)`` of a planned ``export`` request (kind checked)."""

    @abstractmethod
    def _facets(
        self, dataset: str, filters: list[tuple[str, str]], names: list[Any] | None
    ) -> dict[str, Any]:
        """The facets answer for a query's ``filters`` and the facets ``names`` (``None``:
        the API's default facets); names are not checked yet."""

    @abstractmethod
    def _catalog_page(self, request: CatalogRequest) -> dict[str, Any]:
        """One catalog page as ``{"total_count", "results": [dataset, ...]}``."""

    @abstractmethod
    def attachments(self, dataset: str) -> list[dict[str, Any]]:
        """The dataset's attachments (``href`` and ``metas`` of each)."""

    # -- hooks with a default -------------------------------------------------------------

    #: The key of the record count in a count answer.
    count_key: ClassVar[str] = "total_count"
    #: Export formats ``stream_export`` accepts, in the order error messages list them.
    export_format_names: ClassVar[tuple[str, ...]]
    #: What error messages call one of them.
    export_format_label: ClassVar[str] = "an export format"
    #: The most groups one grouped request may ask for (``None``: the API sets no cap).
    grouped_max_limit: ClassVar[int | None] = GROUP_BY_MAX_LIMIT

    def _wire_params(self, params: Any) -> Any:
        """Request parameters as this generation sends them (unchanged by default)."""
        return params

    def _json_object(self, url: str, params: Any, dataset: str | None) -> dict[str, Any]:
        """``GET url`` whose answer must be a JSON object."""
        body = self.http.get_json(url, self._wire_params(params), dataset=dataset)
        if not isinstance(body, dict):
            raise ServerError(
                f"{url} answered a JSON {type(body).__name__} where an object was expected.",
                dataset=dataset,
                url=url,
            )
        return body

    def _check_export_options(self, query: Query, options: Mapping[str, Any]) -> None:
        """Refuse export options that would put a key in the URL or override the query."""
        secrets = SECRET_OPTIONS & {name.lower() for name in options}
        if secrets:
            raise InvalidQueryArgument(
                f"options: {', '.join(sorted(secrets))} would put a key in the URL; pass "
                "api_key= to the adapter (it is sent as a header)"
            )
        clash = QUERY_PARAMS & set(options)
        if clash:
            raise InvalidQueryArgument(
                f"options: {', '.join(sorted(clash))} belong in the Query, not in options"
            )

    # -- shared on top of them ------------------------------------------------------------

    def count(self, query: Query) -> int:
        """How many records match ``query`` (a ``limit=0`` request)."""
        if query.grouped:
            raise InvalidQueryArgument(
                f"group_by: grouped answers have no {self.count_key}; use grouped() instead"
            )
        request = count_request(query)
        body, url = self._count_answer(request)
        total = body.get(self.count_key)
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ServerError(
                f"The count of dataset {query.dataset!r} has no valid {self.count_key} "
                f"({total!r}).",
                dataset=query.dataset,
                url=url,
            )
        return total

    def records_page(
        self, query: Query, limit: int, offset: int, *, order_by: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """One page of flat records; ``limit <= 100`` and ``offset + limit <= 10 000``.

        ``order_by`` replaces the query's order (plans pass their total order here).
        """
        if query.grouped:
            raise InvalidQueryArgument("group_by: use grouped() for grouped queries")
        check_page_window(limit, offset)
        order = normalise_order_by(order_by) if order_by is not None else query.order_by
        params = [(name, value) for name, value in query.params() if name != "order_by"]
        if order:
            params.append(("order_by", ", ".join(order)))
        params += [("limit", str(limit)), ("offset", str(offset))]
        return self.fetch(PlannedRequest("records", query.dataset, tuple(sorted(params))))

    def fetch(self, request: PlannedRequest) -> list[dict[str, Any]]:
        """Run one planned ``records`` or ``grouped`` request; return its records."""
        if request.kind not in ("records", "grouped"):
            raise InvalidQueryArgument(
                f"fetch: runs records and grouped requests, not {request.kind!r}"
            )
        return self._fetch(request)

    def grouped(self, query: Query) -> list[dict[str, Any]]:
        """The groups of ``query`` (which must have ``group_by``): one request, explicit
        limit (at most 20 000 where the API caps it)."""
        if not query.grouped:
            raise InvalidQueryArgument("group_by: grouped() needs a query with group_by")
        limit = GROUP_BY_MAX_LIMIT if query.limit is None else query.limit
        if self.grouped_max_limit is not None and limit > self.grouped_max_limit:
            raise InvalidQueryArgument(
                f"limit: one grouped request returns at most {self.grouped_max_limit} groups, "
                f"got {limit}; use a grouped export for more"
            )
        return self.fetch(grouped_request(query, limit))

    def stream_export(
        self, query: Query, fmt: str, dest: str | Path | IO[bytes], **options: Any
    ) -> int:
        """Stream the export of ``query`` in ``fmt`` to ``dest``; return bytes written.

        ``options`` are the format's own parameters (``delimiter=","``, ``with_bom=False``
        ...). ``query.limit`` caps the rows (all rows otherwise).
        """
        fmt = fmt.lower() if isinstance(fmt, str) else fmt
        if fmt not in self.export_format_names:
            raise InvalidQueryArgument(
                f"fmt: {fmt!r} is not {self.export_format_label} "
                f"({', '.join(self.export_format_names)})"
            )
        self._check_export_options(query, options)
        limit = "-1" if query.limit is None else str(query.limit)
        params = [*query.params(), ("limit", limit)]
        params += [(name, option_value(value)) for name, value in options.items()]
        request = PlannedRequest("export", query.dataset, tuple(sorted(params)), fmt)
        return self.stream_planned(request, dest)

    def stream_planned(self, request: PlannedRequest, dest: str | Path | IO[bytes]) -> int:
        """Stream a planned ``export`` request to ``dest``; return bytes written."""
        if request.kind != "export" or not request.export_format:
            raise InvalidQueryArgument("stream_planned: needs an export request with a format")
        url, params = self._export_call(request)
        return self.http.stream_to(dest, url, params, dataset=request.dataset)

    def catalog_page(
        self,
        *,
        select: str | Sequence[str] | None = None,
        where: Any = None,
        order_by: str | Sequence[str] | None = None,
        refine: Any = None,
        exclude: Any = None,
        limit: int = RECORDS_MAX_LIMIT,
        offset: int = 0,
        lang: str | None = None,
        timezone: str | None = None,
    ) -> dict[str, Any]:
        """One page of the dataset catalog: ``{"total_count", "results": [dataset, ...]}``."""
        check_page_window(limit, offset)
        request = CatalogRequest(
            select=normalise_select(select),
            where=tuple(sorted(set(where_conditions(where)))),
            refine=facet_filters(refine, "refine"),
            exclude=facet_filters(exclude, "exclude"),
            order_by=normalise_order_by(order_by),
            # lang/timezone validated the same way as in a Query.
            locale=tuple(Query("catalog", lang=lang, timezone=timezone).params()),
            limit=limit,
            offset=offset,
        )
        return self._catalog_page(request)

    def facets(
        self,
        dataset: str,
        *,
        query: Query | None = None,
        facet: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The dataset's facets as JSON in the v2.1 shape (``{"facets": [...]}``).

        ``query`` contributes its filters (where, refine, exclude, lang, timezone);
        ``facet`` names facets (v2.x also takes ``facet(name=..., ...)`` expressions).
        """
        filters: list[tuple[str, str]] = []
        if query is not None:
            if query.dataset != dataset:
                raise InvalidQueryArgument(
                    f"query: it reads {query.dataset!r}, not the dataset {dataset!r}"
                )
            filters = [(name, value) for name, value in query.params() if name in FACETS_PARAMS]
        names = None if facet is None else [facet] if isinstance(facet, str) else list(facet)
        return self._facets(dataset, filters, names)

    def plan(
        self,
        query: Query,
        *,
        fields: Sequence[Mapping[str, Any]] | None = None,
        export_formats: Sequence[str] | None = None,
        records_threshold: int = DEFAULT_RECORDS_THRESHOLD,
        preferred_formats: Sequence[str] = DEFAULT_PREFERRED_FORMATS,
    ) -> Plan:
        """Count, then choose the route of a read (see :class:`~odsframe.query.plan.Plan`).

        ``fields`` and ``export_formats`` are fetched only when the choice needs them
        (more than one page) and were not given.
        """
        if query.grouped:
            formats: Sequence[str] = export_formats or ()
            if (
                query.limit is not None
                and query.limit > GROUP_BY_MAX_LIMIT
                and export_formats is None
            ):
                formats = self.export_formats(query.dataset)
            return Plan.build(
                query, total=None, export_formats=formats, preferred_formats=preferred_formats
            )
        total = self.count(query)
        rows = total if query.limit is None else min(total, query.limit)
        if rows > RECORDS_MAX_LIMIT:
            # Ask only what the choice needs: the schema for paging, the formats for an
            # export; the other one only when the first cannot serve.
            pages_first = rows <= min(records_threshold, RECORDS_MAX_WINDOW)
            if pages_first and fields is None:
                fields = self._fields(query.dataset)
            if export_formats is None and not (pages_first and tiebreak_fields(fields or [])[0]):
                export_formats = self.export_formats(query.dataset)
            usable = {fmt.lower() for fmt in export_formats or ()} & set(preferred_formats)
            if fields is None and not usable and rows <= RECORDS_MAX_WINDOW:
                fields = self._fields(query.dataset)
        return Plan.build(
            query,
            total=total,
            export_formats=export_formats or (),
            fields=fields,
            records_threshold=records_threshold,
            preferred_formats=preferred_formats,
        )

    def _fields(self, dataset: str) -> list[dict[str, Any]]:
        fields = self.dataset_metadata(dataset).get("fields")
        return fields if isinstance(fields, list) else []

    def explain(self, plan: Plan) -> str:
        """:meth:`Plan.explain` with this portal's full URLs."""
        return plan.explain(self.url_for)

    def iter_records(
        self, query: Query, *, records_threshold: int = DEFAULT_RECORDS_THRESHOLD
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``query`` as a flat dict, along the plan's route.

        Records pages are fetched lazily; past the threshold a ``jsonl`` (or ``json``)
        export is streamed to a temporary file and read back.
        """
        if query.grouped:
            yield from self.grouped(query)
            return
        plan = self.plan(
            query, records_threshold=records_threshold, preferred_formats=RECORD_EXPORT_FORMATS
        )
        if plan.route == "records":
            for request in plan.requests:
                page = self.fetch(request)
                yield from page
                if request.limit is not None and len(page) < request.limit:
                    return  # the dataset shrank while paging
        elif plan.route == "export":
            (request,) = plan.requests
            fmt = request.export_format or "json"
            with tempfile.TemporaryDirectory(prefix="odsframe-") as folder:
                path = Path(folder) / f"export.{fmt}"
                self.stream_planned(request, path)
                yield from _records_from_file(path, fmt, query.dataset)


def _records_from_file(path: Path, fmt: str, dataset: str) -> Iterator[dict[str, Any]]:
    """Records from a ``jsonl`` or ``json`` export file."""
    try:
        if fmt == "jsonl":
            with path.open(encoding="utf-8-sig") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
            return
        with path.open(encoding="utf-8-sig") as handle:
            payload = json.load(handle)
    except json.JSONDecodeError as err:
        raise ServerError(
            f"The {fmt} export of dataset {dataset!r} is not valid JSON ({err}).",
            dataset=dataset,
        ) from err
    if not isinstance(payload, list):
        raise ServerError(
            f"The json export of dataset {dataset!r} is not a list of records.", dataset=dataset
        )
    yield from payload


def grouped_request(query: Query, limit: int | None) -> PlannedRequest:
    """The ``grouped`` request of ``query`` asking for ``limit`` groups (``None``: no
    ``limit`` parameter, as for aggregates over every record)."""
    params = query.params() if limit is None else [*query.params(), ("limit", str(limit))]
    return PlannedRequest("grouped", query.dataset, tuple(sorted(params)))


def option_value(value: Any) -> str:
    """An export option as a URL parameter value (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def item_alias(item: str) -> tuple[str, str | None]:
    """``(expression, alias or None)`` of a ``select`` or ``group_by`` item (``expr AS a``)."""
    match = _ALIAS.fullmatch(item.strip())
    if match:
        return match["expr"].strip(), match["alias"]
    return item.strip(), None


def plain_name(expression: str) -> str | None:
    """The field name of an expression that is only a (back-quoted) name, else ``None``."""
    match = _PLAIN_NAME.fullmatch(expression.strip())
    return match["name"] if match else None


def check_page_window(limit: int, offset: int) -> None:
    """Refuse a ``/records`` page the portal would refuse (before sending it)."""
    for name, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidQueryArgument(f"{name}: expected an integer, got {value!r}")
    if not 0 <= limit <= RECORDS_MAX_LIMIT:
        raise InvalidQueryArgument(
            f"limit: a /records page holds 0 to {RECORDS_MAX_LIMIT} records, got {limit}"
        )
    if offset < 0 or offset + limit > RECORDS_MAX_WINDOW:
        raise InvalidQueryArgument(
            f"offset: offset + limit must stay within {RECORDS_MAX_WINDOW:,} "
            f"(got offset={offset}, limit={limit}); read more through an export"
        )
