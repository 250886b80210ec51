"""The :class:`Plan`: which requests a read makes, decided from the count, before any data.

Routes:

``records``
    ``/records`` pages of 100 (``offset`` += 100) when the rows to read are at most
    ``records_threshold`` (1 000 by default) and inside the 10 000-record window. Pages
    follow a **total order**: the user's ``order_by`` plus a tie-break on the dataset's
    ``id`` fields (or, without any, on every sortable field), so no record is returned
    twice or skipped between pages.
``export``
    One streamed ``/exports/<format>`` request otherwise (no row cap): ``parquet`` when the
    portal lists it, else ``csv``, else ``json`` (see ``preferred_formats``).
``grouped``
    One ``/records`` request with ``group_by`` and an explicit ``limit`` (at most 20 000);
    a grouped export when the user asks for more groups than that.
``empty``
    Nothing to fetch: the count is 0 or ``limit=0``.

A plan never builds a request past the records window: that is what makes the 10 000 cap
impossible to hit. Plans are API-neutral: an adapter turns each :class:`PlannedRequest`
into a URL (``url_for``), which :meth:`Plan.explain` uses to show the exact requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from odsframe._spec import GROUP_BY_MAX_LIMIT, RECORDS_MAX_LIMIT, RECORDS_MAX_WINDOW
from odsframe.errors import InvalidQueryArgument
from odsframe.query.odsql import quote_field
from odsframe.query.query import Query, order_expression

__all__ = [
    "DEFAULT_PREFERRED_FORMATS",
    "DEFAULT_RECORDS_THRESHOLD",
    "Plan",
    "PlannedRequest",
    "count_request",
    "tiebreak_fields",
]

DEFAULT_RECORDS_THRESHOLD = 1_000
DEFAULT_PREFERRED_FORMATS: tuple[str, ...] = ("parquet", "csv", "json")
#: Field types a tie-break may sort on (geo, file and JSON values do not sort).
_SORTABLE_TYPES = frozenset({"text", "int", "double", "boolean", "date", "datetime"})

RequestKind = Literal["count", "records", "grouped", "export"]
Route = Literal["records", "export", "grouped", "empty"]


@dataclass(frozen=True)
class PlannedRequest:
    """One GET a plan will make: its kind, its parameters, and the export format if any."""

    kind: RequestKind
    dataset: str
    params: tuple[tuple[str, str], ...]
    export_format: str | None = None
    method: str = "GET"

    def param(self, name: str) -> str | None:
        """The (first) value of parameter ``name``."""
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def limit(self) -> int | None:
        value = self.param("limit")
        return None if value is None else int(value)

    @property
    def offset(self) -> int:
        value = self.param("offset")
        return 0 if value is None else int(value)

    def describe(self) -> str:
        """``records?limit=100&offset=0&...``, for plans shown without a portal."""
        path = "records" if self.kind != "export" else f"exports/{self.export_format}"
        return f"{path}?{urlencode(self.params)}" if self.params else path


def count_request(query: Query) -> PlannedRequest:
    """The ``limit=0`` records request whose ``total_count`` a plan is built from."""
    pairs = [(name, value) for name, value in query.params() if name != "order_by"]
    return PlannedRequest("count", query.dataset, tuple(sorted([*pairs, ("limit", "0")])))


def _annotation_names(annotations: Any) -> set[str]:
    if isinstance(annotations, Mapping):  # v2.1: {"id": [], "facet": []}
        return {str(name) for name in annotations}
    if isinstance(annotations, Iterable) and not isinstance(annotations, str):
        names = set()  # v1 / v2.0: [{"name": "id", "args": [...]}]
        for item in annotations:
            if isinstance(item, Mapping) and "name" in item:
                names.add(str(item["name"]))
        return names
    return set()


def tiebreak_fields(fields: Sequence[Mapping[str, Any]]) -> tuple[list[str], bool]:
    """Field names that make an order total, and whether they are the declared id fields.

    The ``id``-annotated fields identify a record (ODS derives record ids from them);
    without any, every sortable, single-valued field is used, so only rows equal on all
    of them (indistinguishable but for geometry or files) can tie.
    """
    ids, sortable = [], []
    for item in fields:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            continue
        annotations = _annotation_names(item.get("annotations"))
        if "id" in annotations:
            ids.append(name)
        if item.get("type") in _SORTABLE_TYPES and "multivalued" not in annotations:
            sortable.append(name)
    return (ids, True) if ids else (sortable, False)


def _effective_order(
    order_by: tuple[str, ...], fields: Sequence[Mapping[str, Any]] | None
) -> tuple[tuple[str, ...], str | None]:
    """(order for paging, description of the tie-break) or (order, None) without a schema."""
    if fields is None:
        return order_by, None
    names, are_ids = tiebreak_fields(fields)
    if not names:
        return order_by, None
    present = {order_expression(item) for item in order_by}
    extra = tuple(f"{quote_field(name)} ASC" for name in names if name not in present)
    kind = "the dataset's id fields" if are_ids else "every sortable field"
    return order_by + extra, f"tie-break on {kind}"


def _with(params: Sequence[tuple[str, str]], **values: str | None) -> tuple[tuple[str, str], ...]:
    kept = [(name, value) for name, value in params if name not in values]
    kept.extend((name, value) for name, value in values.items() if value is not None)
    return tuple(sorted(kept))


@dataclass(frozen=True)
class Plan:
    """The requests one read makes, and why this route.

    Build it with :meth:`Plan.build`; show it with :meth:`explain`.
    """

    query: Query
    route: Route
    reason: str
    total: int | None
    rows: int | None
    requests: tuple[PlannedRequest, ...]
    order_by: tuple[str, ...] = ()
    export_format: str | None = None
    count: PlannedRequest | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        query: Query,
        *,
        total: int | None,
        export_formats: Iterable[str] = (),
        fields: Sequence[Mapping[str, Any]] | None = None,
        records_threshold: int = DEFAULT_RECORDS_THRESHOLD,
        preferred_formats: Sequence[str] = DEFAULT_PREFERRED_FORMATS,
    ) -> Plan:
        """Choose the route for ``query``.

        Parameters
        ----------
        query
            What to read.
        total
            The portal's ``total_count`` for the query (``None`` for grouped queries,
            which have none).
        export_formats
            The formats the dataset's ``/exports`` lists.
        fields
            The dataset's ``fields`` (v2.1 dicts with ``name``, ``type``, ``annotations``),
            used for the paging tie-break. Without them, only a single page is read from
            ``/records``; more rows go to an export.
        records_threshold
            Most rows read through ``/records`` pages (0 to 10 000).
        preferred_formats
            Export formats to use, best first.
        """
        if isinstance(records_threshold, bool) or not 0 <= records_threshold <= RECORDS_MAX_WINDOW:
            raise InvalidQueryArgument(
                f"records_threshold: must be between 0 and {RECORDS_MAX_WINDOW}, "
                f"got {records_threshold!r}"
            )
        listed = [fmt.lower() for fmt in export_formats]
        export_format = next((fmt for fmt in preferred_formats if fmt in listed), None)
        if query.grouped:
            return cls._grouped(query, export_format)
        if total is None or isinstance(total, bool) or total < 0:
            raise InvalidQueryArgument(
                f"total: a records plan needs the portal's count (>= 0), got {total!r}"
            )
        rows = total if query.limit is None else min(total, query.limit)
        count = count_request(query)
        params = query.params()
        if rows == 0:
            why = "limit=0" if query.limit == 0 else "the portal counts 0 matching records"
            return cls(query, "empty", f"nothing to fetch: {why}", total, 0, (), count=count)

        order, tiebreak = _effective_order(query.order_by, fields)
        one_page = rows <= RECORDS_MAX_LIMIT
        ordered = one_page or tiebreak is not None
        small = rows <= records_threshold
        if one_page or (small and ordered) or (export_format is None and ordered):
            if rows > RECORDS_MAX_WINDOW:
                raise InvalidQueryArgument(
                    f"{rows} records are past the {RECORDS_MAX_WINDOW:,}-record window of "
                    "/records and the dataset lists no export format "
                    f"({', '.join(preferred_formats)}); narrow the query or set limit="
                )
            page_order = query.order_by if one_page else order
            requests = []
            for offset in range(0, rows, RECORDS_MAX_LIMIT):
                limit = min(RECORDS_MAX_LIMIT, rows - offset)
                requests.append(
                    PlannedRequest(
                        "records",
                        query.dataset,
                        _with(
                            params,
                            order_by=", ".join(page_order) or None,
                            limit=str(limit),
                            offset=str(offset),
                        ),
                    )
                )
            if one_page:
                reason = f"{rows} records fit in one /records page of {RECORDS_MAX_LIMIT}"
            elif small:
                reason = (
                    f"{rows} records <= records_threshold {records_threshold} and within the "
                    f"{RECORDS_MAX_WINDOW:,}-record window; pages ordered with a {tiebreak}"
                )
            else:
                reason = (
                    f"{rows} records > records_threshold {records_threshold}, but the dataset "
                    "lists no usable export format; paging /records within the "
                    f"{RECORDS_MAX_WINDOW:,}-record window with a {tiebreak}"
                )
            return cls(
                query,
                "records",
                reason,
                total,
                rows,
                tuple(requests),
                order_by=tuple(page_order),
                count=count,
            )

        if export_format is None:
            raise InvalidQueryArgument(
                f"cannot page {rows} records without a total order (pass the dataset's fields) "
                f"and the dataset lists none of the export formats {', '.join(preferred_formats)}"
            )
        if rows > RECORDS_MAX_WINDOW:
            why = f"{rows} records are past the {RECORDS_MAX_WINDOW:,}-record window of /records"
        elif not small:
            why = f"{rows} records > records_threshold {records_threshold}"
        else:
            why = f"{rows} records need several pages but no schema gives a total order"
        export_limit = str(rows) if query.limit is not None else "-1"
        request = PlannedRequest(
            "export",
            query.dataset,
            _with(params, limit=export_limit),
            export_format=export_format,
        )
        return cls(
            query,
            "export",
            f"{why}; one streamed {export_format} export (no row cap)",
            total,
            rows,
            (request,),
            order_by=query.order_by,
            export_format=export_format,
            count=count,
        )

    @classmethod
    def _grouped(cls, query: Query, export_format: str | None) -> Plan:
        params = query.params()
        if query.limit is not None and query.limit > GROUP_BY_MAX_LIMIT:
            if export_format is None:
                raise InvalidQueryArgument(
                    f"limit: a grouped /records request returns at most {GROUP_BY_MAX_LIMIT} "
                    f"groups and the dataset lists no export format; got limit={query.limit}"
                )
            request = PlannedRequest(
                "export",
                query.dataset,
                _with(params, limit=str(query.limit)),
                export_format=export_format,
            )
            reason = (
                f"limit={query.limit} groups > {GROUP_BY_MAX_LIMIT} (the grouped /records cap); "
                f"one grouped {export_format} export"
            )
            return cls(
                query,
                "export",
                reason,
                None,
                None,
                (request,),
                order_by=query.order_by,
                export_format=export_format,
            )
        if query.limit == 0:
            return cls(query, "empty", "nothing to fetch: limit=0", None, 0, ())
        limit = GROUP_BY_MAX_LIMIT if query.limit is None else query.limit
        request = PlannedRequest("grouped", query.dataset, _with(params, limit=str(limit)))
        reason = (
            f"group_by: one /records request with an explicit limit={limit} "
            f"(grouped answers have no total_count; at most {GROUP_BY_MAX_LIMIT} groups)"
        )
        return cls(query, "grouped", reason, None, None, (request,), order_by=query.order_by)

    def explain(self, url_for: Callable[[PlannedRequest], str] | None = None) -> str:
        """A readable account of the route, the reason and every request (no key ever).

        Parameters
        ----------
        url_for
            Turns a request into its full URL (an adapter's ``url_for``); without it the
            requests are shown relative to the dataset.
        """
        show = url_for or PlannedRequest.describe
        lines = [
            f"Plan for dataset {self.query.dataset!r}: route = {self.route}",
            f"Why: {self.reason}",
        ]
        if self.total is not None:
            lines.append(f"Matching records: {self.total}; rows to read: {self.rows}")
        if self.order_by:
            lines.append(f"Order: {', '.join(self.order_by)}")
        if self.requests:
            shared = [
                (name, value)
                for name, value in self.requests[0].params
                if name not in ("limit", "offset")
            ]
            if shared:
                lines.append("Parameters of every request (decoded):")
                lines.extend(f"  {name} = {value}" for name, value in shared)
        if self.count is not None:
            lines.append(f"Counted with: GET {show(self.count)}")
        lines.append(f"Requests ({len(self.requests)}):")
        lines.extend(f"  {request.method} {show(request)}" for request in self.requests)
        return "\n".join(lines)
