"""The Explore API v2.1 adapter (ods-api.md section 4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from odsframe._http import build_url
from odsframe._portal_url import dataset_path_segment
from odsframe._spec import DATASET_EXPORT_FORMATS, EXPLORE_V21
from odsframe.api.base import CatalogRequest, ExploreAdapter, check_page_window
from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.query.plan import PlannedRequest
from odsframe.query.query import Query

__all__ = ["ExploreV21"]

#: Export formats accepted by ``stream_export`` (the spec's list plus ical and mvt).
EXPORT_FORMATS: frozenset[str] = frozenset(DATASET_EXPORT_FORMATS) | {"ical", "mvt"}
#: ``rel`` values of ``_links`` that are navigation, not formats.
_NAVIGATION_RELS = frozenset({"self", "first", "last", "next", "prev", "dataset", "catalog"})


class ExploreV21(ExploreAdapter):
    """Explore API v2.1: ``<portal>/api/explore/v2.1/catalog/...``.

    ``stream_export`` options are the format's own parameters (``parquet_compression="zstd"``,
    ``delimiter=","``, ``with_bom=False``, ``use_labels=True``, ``epsg=2154`` ...).

    Examples
    --------
    >>> api = ExploreV21.open("data.example.org")  # doctest: +SKIP
    >>> api.count(Query("my-dataset", where={"city": "Paris"}))  # doctest: +SKIP
    """

    version = "2.1"
    export_format_names = tuple(sorted(EXPORT_FORMATS))

    @property
    def catalog_url(self) -> str:
        return f"{self.base_url}{EXPLORE_V21}/catalog"

    def dataset_url(self, dataset: str) -> str:
        return f"{self.catalog_url}/datasets/{dataset_path_segment(dataset)}"

    def _request_path(self, request: PlannedRequest) -> str:
        """The URL without parameters of a planned request."""
        if request.kind == "export":
            return f"{self.dataset_url(request.dataset)}/exports/{request.export_format}"
        return f"{self.dataset_url(request.dataset)}/records"

    def url_for(self, request: PlannedRequest) -> str:
        return build_url(self._request_path(request), self._wire_params(request.params))

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

    def _count_answer(self, request: PlannedRequest) -> tuple[dict[str, Any], str]:
        url = self._request_path(request)
        return self._json_object(url, request.params, request.dataset), url

    def _fetch(self, request: PlannedRequest) -> list[dict[str, Any]]:
        if request.kind == "records":
            check_page_window(request.limit or 0, request.offset)
        url = self._request_path(request)
        body = self._json_object(url, request.params, request.dataset)
        return self._records(body, url, request)

    def _records(
        self, body: dict[str, Any], url: str, request: PlannedRequest
    ) -> list[dict[str, Any]]:
        """The records (or groups) of a ``/records`` answer."""
        results = body.get("results")
        if not isinstance(results, list):
            raise ServerError(
                f"The answer for dataset {request.dataset!r} has no 'results' list.",
                dataset=request.dataset,
                url=url,
            )
        return results

    # -- exports --------------------------------------------------------------------------

    def _export_call(self, request: PlannedRequest) -> tuple[str, Any]:
        return self._request_path(request), self._wire_params(request.params)

    # -- facets and catalog ---------------------------------------------------------------

    def _facets(
        self, dataset: str, filters: list[tuple[str, str]], names: list[Any] | None
    ) -> dict[str, Any]:
        """``GET /catalog/datasets/<id>/facets`` as raw JSON."""
        params = list(filters)
        for name in names or []:
            if not isinstance(name, str) or not name.strip():
                raise InvalidQueryArgument(f"facet: expected facet names, got {name!r}")
            params.append(("facet", name.strip()))
        url = f"{self.dataset_url(dataset)}/facets"
        return self._json_object(url, sorted(params), dataset)

    def _catalog_page(self, request: CatalogRequest) -> dict[str, Any]:
        """``GET /catalog/datasets``: ``{"total_count", "results": [dataset, ...]}``."""
        params: list[tuple[str, str]] = []
        if request.select:
            params.append(("select", ", ".join(request.select)))
        params += [("where", condition) for condition in request.where]
        params += [("refine", item) for item in request.refine]
        params += [("exclude", item) for item in request.exclude]
        if request.order_by:
            params.append(("order_by", ", ".join(request.order_by)))
        params += request.locale
        params += [("limit", str(request.limit)), ("offset", str(request.offset))]
        return self._json_object(f"{self.catalog_url}/datasets", sorted(params), None)
