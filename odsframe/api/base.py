"""The seam between odsframe and one generation of the ODS API.

An adapter knows URLs and envelopes of one API generation (v2.1 today; v2.0 and v1 later)
and nothing about frames: it returns raw records (flat dicts), raw JSON and bytes on disk.
:class:`ExploreAdapter` lists what every generation must provide, and implements on top of
it what they share: planning a read, explaining it, and iterating records along the plan.

To add a generation, subclass :class:`ExploreAdapter`, set :attr:`~ExploreAdapter.version`,
implement the abstract methods, and register the class in :mod:`odsframe.api`.
"""

from __future__ import annotations

import json
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Self

from odsframe._auth import ApiKey, resolve_api_key
from odsframe._http import DEFAULT_TIMEOUT, HTTPClient, RetryPolicy
from odsframe._portal_url import portal_host, resolve_portal
from odsframe._spec import GROUP_BY_MAX_LIMIT, RECORDS_MAX_LIMIT, RECORDS_MAX_WINDOW
from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.query.plan import (
    DEFAULT_PREFERRED_FORMATS,
    DEFAULT_RECORDS_THRESHOLD,
    Plan,
    PlannedRequest,
    tiebreak_fields,
)
from odsframe.query.query import Query

__all__ = ["ExploreAdapter"]

#: Export formats ``iter_records`` can turn back into records, best first.
RECORD_EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "json")


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
    def count(self, query: Query) -> int:
        """How many records match ``query`` (a ``limit=0`` request)."""

    @abstractmethod
    def records_page(
        self, query: Query, limit: int, offset: int, *, order_by: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """One page of flat records; ``limit <= 100`` and ``offset + limit <= 10 000``."""

    @abstractmethod
    def fetch(self, request: PlannedRequest) -> list[dict[str, Any]]:
        """Run one planned ``records`` or ``grouped`` request; return its records."""

    @abstractmethod
    def export_formats(self, dataset: str) -> list[str]:
        """The export formats the dataset lists."""

    @abstractmethod
    def stream_export(
        self, query: Query, fmt: str, dest: str | Path | IO[bytes], **options: Any
    ) -> int:
        """Stream the export of ``query`` in ``fmt`` to ``dest``; return bytes written."""

    @abstractmethod
    def stream_planned(self, request: PlannedRequest, dest: str | Path | IO[bytes]) -> int:
        """Stream a planned ``export`` request to ``dest``; return bytes written."""

    @abstractmethod
    def grouped(self, query: Query) -> list[dict[str, Any]]:
        """The groups of a ``group_by`` query (one request, explicit limit)."""

    @abstractmethod
    def facets(
        self,
        dataset: str,
        *,
        query: Query | None = None,
        facet: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The dataset's facets as raw JSON."""

    @abstractmethod
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
        """One page of the dataset catalog as raw JSON."""

    @abstractmethod
    def attachments(self, dataset: str) -> list[dict[str, Any]]:
        """The dataset's attachments (``href`` and ``metas`` of each)."""

    # -- shared on top of them ------------------------------------------------------------

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
