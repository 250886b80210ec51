"""The Explore API v2.1 adapter (ods-api.md section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from odsframe._http import build_url
from odsframe._portal_url import dataset_path_segment
from odsframe._spec import (
    DATASET_EXPORT_FORMATS,
    EXPLORE_V21,
    GROUP_BY_MAX_LIMIT,
    RECORDS_MAX_LIMIT,
)
from odsframe.api.base import ExploreAdapter, check_page_window
from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.query.odsql import where_conditions
from odsframe.query.plan import PlannedRequest, count_request
from odsframe.query.query import (
    Query,
    facet_filters,
    normalise_order_by,
    normalise_select,
)

__all__ = ["ExploreV21"]

#: Export formats accepted by ``stream_export`` (the spec's list plus ical and mvt).
EXPORT_FORMATS: frozenset[str] = frozenset(DATASET_EXPORT_FORMATS) | {"ical", "mvt"}
#: ``rel`` values of ``_links`` that are navigation, not formats.
_NAVIGATION_RELS = frozenset({"self", "first", "last", "next", "prev", "dataset", "catalog"})
#: Parameters a Query or a Plan owns; export options may not set them.
_QUERY_PARAMS = frozenset(
    {"select", "where", "refine", "exclude", "order_by", "group_by", "timezone", "lang"}
    | {"limit", "offset"}
)
_SECRET_OPTIONS = frozenset({"apikey", "api_key", "access_token"})
#: Parameters of the facets endpoint a query can contribute.
_FACETS_PARAMS = frozenset({"where", "refine", "exclude", "lang", "timezone"})


def _option_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ExploreV21(ExploreAdapter):
    """Explore API v2.1: ``<portal>/api/explore/v2.1/catalog/...``.

    Examples
    --------
    >>> api = ExploreV21.open("data.example.org")  # doctest: +SKIP
    >>> api.count(Query("my-dataset", where={"city": "Paris"}))  # doctest: +SKIP
    """

    version = "2.1"

    @property
    def catalog_url(self) -> str:
        return f"{self.base_url}{EXPLORE_V21}/catalog"

    def dataset_url(self, dataset: str) -> str:
        return f"{self.catalog_url}/datasets/{dataset_path_segment(dataset)}"

    def url_for(self, request: PlannedRequest) -> str:
        if request.kind == "export":
            path = f"{self.dataset_url(request.dataset)}/exports/{request.export_format}"
        else:
            path = f"{self.dataset_url(request.dataset)}/records"
        return build_url(path, request.params)

    def _json_object(self, url: str, params: Any, dataset: str | None) -> dict[str, Any]:
        body = self.http.get_json(url, params, dataset=dataset)
        if not isinstance(body, dict):
            raise ServerError(
                f"{url} answered a JSON {type(body).__name__} where an object was expected.",
                dataset=dataset,
                url=url,
            )
        return body

    def _results(self, body: dict[str, Any], url: str, dataset: str) -> list[dict[str, Any]]:
        results = body.get("results")
        if not isinstance(results, list):
            raise ServerError(
                f"The answer for dataset {dataset!r} has no 'results' list.",
                dataset=dataset,
                url=url,
            )
        return results

    # -- metadata -------------------------------------------------------------------------

    def dataset_metadata(
        self, dataset: str, *, lang: str | None = None, timezone: str | None = None
    ) -> dict[str, Any]:
        """``GET /catalog/datasets/<id>``: fields, metas, features, attachments ..."""
        params = Query(dataset, lang=lang, timezone=timezone).params()
        return self._json_object(self.dataset_url(dataset), params, dataset)

    def export_formats(self, dataset: str) -> list[str]:
        """``GET /catalog/datasets/<id>/exports``: the format names its links point to."""
        body = self._json_object(f"{self.dataset_url(dataset)}/exports", None, dataset)
        links = body.get("_links", body.get("links")) or []
        formats: list[str] = []
        for link in links:
            if not isinstance(link, dict):
                continue
            rel = str(link.get("rel") or "")
            href = str(link.get("href") or "")
            if rel in _NAVIGATION_RELS:
                continue
            name = urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1] if href else rel
            if name and name not in formats:
                formats.append(name)
        return formats

    def attachments(self, dataset: str) -> list[dict[str, Any]]:
        """``GET /catalog/datasets/<id>/attachments``: ``[{href, metas}, ...]``."""
        url = f"{self.dataset_url(dataset)}/attachments"
        body = self._json_object(url, None, dataset)
        attachments = body.get("attachments", [])
        if not isinstance(attachments, list):
            raise ServerError(
                f"The attachments of dataset {dataset!r} are not a list.", dataset=dataset, url=url
            )
        return attachments

    # -- records --------------------------------------------------------------------------

    def count(self, query: Query) -> int:
        """``total_count`` of a ``limit=0`` records request."""
        if query.grouped:
            raise InvalidQueryArgument(
                "group_by: grouped answers have no total_count; use grouped() instead"
            )
        request = count_request(query)
        url = f"{self.dataset_url(query.dataset)}/records"
        body = self._json_object(url, request.params, query.dataset)
        total = body.get("total_count")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ServerError(
                f"The count of dataset {query.dataset!r} has no valid total_count ({total!r}).",
                dataset=query.dataset,
                url=url,
            )
        return total

    def records_page(
        self, query: Query, limit: int, offset: int, *, order_by: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """One page of flat v2.1 records.

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
        request = PlannedRequest("records", query.dataset, tuple(sorted(params)))
        return self.fetch(request)

    def fetch(self, request: PlannedRequest) -> list[dict[str, Any]]:
        if request.kind not in ("records", "grouped"):
            raise InvalidQueryArgument(
                f"fetch: runs records and grouped requests, not {request.kind!r}"
            )
        if request.kind == "records":
            check_page_window(request.limit or 0, request.offset)
        url = f"{self.dataset_url(request.dataset)}/records"
        body = self._json_object(url, request.params, request.dataset)
        return self._results(body, url, request.dataset)

    def grouped(self, query: Query) -> list[dict[str, Any]]:
        """The groups of ``query`` (which must have ``group_by``), limit <= 20 000."""
        if not query.grouped:
            raise InvalidQueryArgument("group_by: grouped() needs a query with group_by")
        limit = GROUP_BY_MAX_LIMIT if query.limit is None else query.limit
        if limit > GROUP_BY_MAX_LIMIT:
            raise InvalidQueryArgument(
                f"limit: one grouped request returns at most {GROUP_BY_MAX_LIMIT} groups, "
                f"got {limit}; use a grouped export for more"
            )
        params = tuple(sorted([*query.params(), ("limit", str(limit))]))
        return self.fetch(PlannedRequest("grouped", query.dataset, params))

    # -- exports --------------------------------------------------------------------------

    def stream_export(
        self, query: Query, fmt: str, dest: str | Path | IO[bytes], **options: Any
    ) -> int:
        """Stream ``/exports/<fmt>`` of ``query`` to ``dest``; return bytes written.

        ``options`` are the format's own parameters (``parquet_compression="zstd"``,
        ``delimiter=","``, ``with_bom=False``, ``use_labels=True``, ``epsg=2154`` ...).
        ``query.limit`` caps the rows (all rows otherwise).
        """
        fmt = fmt.lower() if isinstance(fmt, str) else fmt
        if fmt not in EXPORT_FORMATS:
            raise InvalidQueryArgument(
                f"fmt: {fmt!r} is not an export format ({', '.join(sorted(EXPORT_FORMATS))})"
            )
        secrets = _SECRET_OPTIONS & {name.lower() for name in options}
        if secrets:
            raise InvalidQueryArgument(
                f"options: {', '.join(sorted(secrets))} would put a key in the URL; pass "
                "api_key= to the adapter (it is sent as a header)"
            )
        clash = _QUERY_PARAMS & set(options)
        if clash:
            raise InvalidQueryArgument(
                f"options: {', '.join(sorted(clash))} belong in the Query, not in options"
            )
        limit = "-1" if query.limit is None else str(query.limit)
        params = [*query.params(), ("limit", limit)]
        params += [(name, _option_value(value)) for name, value in options.items()]
        request = PlannedRequest("export", query.dataset, tuple(sorted(params)), fmt)
        return self.stream_planned(request, dest)

    def stream_planned(self, request: PlannedRequest, dest: str | Path | IO[bytes]) -> int:
        if request.kind != "export" or not request.export_format:
            raise InvalidQueryArgument("stream_planned: needs an export request with a format")
        url = f"{self.dataset_url(request.dataset)}/exports/{request.export_format}"
        return self.http.stream_to(dest, url, request.params, dataset=request.dataset)

    # -- facets and catalog ---------------------------------------------------------------

    def facets(
        self,
        dataset: str,
        *,
        query: Query | None = None,
        facet: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """``GET /catalog/datasets/<id>/facets`` as raw JSON.

        ``query`` contributes its filters (where, refine, exclude, lang, timezone);
        ``facet`` names facets or holds ``facet(name=..., ...)`` expressions.
        """
        params: list[tuple[str, str]] = []
        if query is not None:
            if query.dataset != dataset:
                raise InvalidQueryArgument(
                    f"query: it reads {query.dataset!r}, not the dataset {dataset!r}"
                )
            params = [(name, value) for name, value in query.params() if name in _FACETS_PARAMS]
        if facet is not None:
            names = [facet] if isinstance(facet, str) else list(facet)
            for name in names:
                if not isinstance(name, str) or not name.strip():
                    raise InvalidQueryArgument(f"facet: expected facet names, got {name!r}")
                params.append(("facet", name.strip()))
        url = f"{self.dataset_url(dataset)}/facets"
        return self._json_object(url, sorted(params), dataset)

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
        """``GET /catalog/datasets``: ``{"total_count", "results": [dataset, ...]}``."""
        check_page_window(limit, offset)
        params: list[tuple[str, str]] = []
        selected = normalise_select(select)
        if selected:
            params.append(("select", ", ".join(selected)))
        params += [("where", condition) for condition in sorted(set(where_conditions(where)))]
        params += [("refine", item) for item in facet_filters(refine, "refine")]
        params += [("exclude", item) for item in facet_filters(exclude, "exclude")]
        order = normalise_order_by(order_by)
        if order:
            params.append(("order_by", ", ".join(order)))
        # lang/timezone validated the same way as in a Query.
        params += [pair for pair in Query("catalog", lang=lang, timezone=timezone).params()]
        params += [("limit", str(limit)), ("offset", str(offset))]
        return self._json_object(f"{self.catalog_url}/datasets", sorted(params), None)
