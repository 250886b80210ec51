"""The ``df.ods`` accessor on frames read by odsframe.

Importing this module registers the accessor on :class:`pandas.DataFrame` (GeoDataFrames
inherit it); :mod:`odsframe.read` imports it, so every frame ``read_ods`` returns has it.
Everything it knows comes from ``df.attrs["ods"]``, the provenance ``read_ods`` writes
(portal, dataset, normalised query, request URL, fetch time, server count, schema; never
the API key). A frame without it raises :class:`ProvenanceError` on use.

Methods that query the portal again for the frame's dataset (``aggregate``, ``facets``,
``geocluster``) live in the drill-down section at the end and delegate to
:mod:`odsframe.analysis`. New ones go there too: they get the dataset and the user's
filters from :meth:`read_kwargs` (or ``attrs["ods"]["query"]``), an open
:class:`~odsframe.portal.Portal` with the read's credentials from :meth:`portal`, and
import what they need inside the method (this module stays light).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from odsframe.errors import ODSError

if TYPE_CHECKING:
    from odsframe.portal import Portal
    from odsframe.push import PushResult

__all__ = ["OdsAccessor", "ProvenanceError"]


class ProvenanceError(ODSError, ValueError):
    """The frame carries no odsframe provenance (``df.attrs["ods"]``)."""


@pd.api.extensions.register_dataframe_accessor("ods")
class OdsAccessor:
    """``df.ods``: where a frame comes from, and what can be done with that.

    Examples
    --------
    >>> trees = odsframe.read_ods("opendata.paris.fr", "les-arbres", limit=50)  # doctest: +SKIP
    >>> trees.ods.url  # doctest: +SKIP
    >>> fresh = trees.ods.refresh()  # doctest: +SKIP
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    # -- provenance -----------------------------------------------------------------------

    def _provenance(self) -> Mapping[str, Any]:
        ods = self._frame.attrs.get("ods")
        if not isinstance(ods, Mapping) or not ods.get("portal"):
            raise ProvenanceError(
                "This frame has no odsframe provenance (df.attrs['ods'] is missing or empty): "
                "it was not returned by odsframe.read_ods / read_ods_catalog, or an operation "
                "dropped its attrs. Read it with odsframe.read_ods(...) to use df.ods."
            )
        return ods

    @property
    def source(self) -> dict[str, Any]:
        """A copy of the provenance: portal, dataset, query, url, fetched_at, data_processed,
        records_count (the server's count), api_version, fields, route, cache."""
        return copy.deepcopy(dict(self._provenance()))

    @property
    def portal_url(self) -> str:
        """The portal's base URL."""
        return str(self._provenance()["portal"])

    @property
    def dataset(self) -> str:
        """The dataset id (catalog frames have none and raise)."""
        dataset = self._provenance().get("dataset")
        if not dataset:
            raise ProvenanceError("This frame is a catalog, not the records of one dataset.")
        return str(dataset)

    @property
    def url(self) -> str:
        """The URL of the (first) data request, without any key."""
        return str(self._provenance().get("url") or "")

    @property
    def query(self) -> dict[str, Any]:
        """The normalised query (select, where, refine, exclude, order_by, limit ...)."""
        return copy.deepcopy(dict(self._provenance().get("query") or {}))

    @property
    def fields(self) -> pd.DataFrame:
        """The schema of the frame's columns: name, label, type, unit, description."""
        from odsframe.frames import FieldSpec, fields_frame

        return fields_frame(FieldSpec.from_json(item) for item in self._fields_json())

    def _fields_json(self) -> list[Mapping[str, Any]]:
        ods = self._provenance()
        if ods.get("kind") == "catalog":
            raise ProvenanceError("A catalog frame has no dataset schema; its columns are metas.")
        fields = ods.get("fields")
        return [item for item in fields if isinstance(item, Mapping)] if fields else []

    # -- derived frames -------------------------------------------------------------------

    def labels(self) -> pd.DataFrame:
        """The frame with its schema columns named by field labels."""
        from odsframe.frames import FieldSpec, label_columns

        specs = [FieldSpec.from_json(item) for item in self._fields_json()]
        return label_columns(self._frame, specs)

    # -- the same read again --------------------------------------------------------------

    def read_kwargs(self) -> dict[str, Any]:
        """The ``read_ods`` keywords of this frame's read (no credentials)."""
        from odsframe.read import read_kwargs

        ods = self._provenance()
        if ods.get("kind") == "catalog":
            return dict(ods.get("query") or {})
        return read_kwargs(ods.get("query") or {})

    def refresh(
        self,
        *,
        api_key: str | None = None,
        session: Any = None,
        progress: Any = None,
    ) -> pd.DataFrame:
        """Read the same query again from the portal, bypassing (and updating) the cache.

        The key and session of the original read are reused when they were passed
        explicitly in this process; otherwise give them here (or rely on ``ODS_APIKEY``).
        """
        from odsframe.read import refresh_read

        return refresh_read(
            dict(self._provenance()), api_key=api_key, session=session, progress=progress
        )

    def explain(
        self, *, offline: bool = False, api_key: str | None = None, session: Any = None
    ) -> str:
        """The requests that reading this frame's query again would make (see ``explain``)."""
        from odsframe.read import explain_read

        return explain_read(
            dict(self._provenance()), offline=offline, api_key=api_key, session=session
        )

    def portal(self, *, api_key: str | None = None, session: Any = None) -> Portal:
        """An open :class:`~odsframe.portal.Portal` for the frame's portal and credentials."""
        from odsframe.portal import Portal
        from odsframe.read import remembered_credentials

        ods = self._provenance()
        known_key, known_session = remembered_credentials(ods.get("read_id"))
        return Portal(
            str(ods["portal"]),
            api_key=api_key if api_key is not None else known_key,
            session=session if session is not None else known_session,
        )

    # -- drill-down: the portal computes on the frame's dataset and filters ----------------
    # (odsframe.analysis; the frame's where/refine/exclude/spatial filters/timezone apply,
    # AND-ed with the ones given; its select, order_by and limit do not)

    def aggregate(self, by: Any = None, agg: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Groups and aggregates of the frame's dataset and filters
        (see :func:`odsframe.read_ods_aggregate`)."""
        from odsframe.analysis import aggregate_frame

        self._provenance()
        return aggregate_frame(self._frame, by, agg, **kwargs)

    def facets(self, facets: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Facet values and counts of the frame's dataset and filters
        (see :func:`odsframe.read_ods_facets`)."""
        from odsframe.analysis import facets_frame

        self._provenance()
        return facets_frame(self._frame, facets, **kwargs)

    def geocluster(self, zoom: int | None = None, **kwargs: Any) -> pd.DataFrame:
        """Geo clusters of the frame's dataset and filters
        (see :func:`odsframe.read_ods_geocluster`)."""
        from odsframe.analysis import geocluster_frame

        self._provenance()
        return geocluster_frame(self._frame, zoom, **kwargs)

    # -- writing and files: the frame's own portal and dataset ---------------------------

    def push(self, resource: str, *, pushkey: str, **kwargs: Any) -> PushResult:
        """Push the frame's rows to its dataset's real-time source ``resource``
        (see :func:`odsframe.push`). Columns named by labels (``labels=True``) are pushed
        under their field names."""
        from odsframe.push import push as push_records

        frame = self._frame
        if (self._provenance().get("query") or {}).get("labels"):
            names = {
                str(item.get("label")): str(item.get("name"))
                for item in self._fields_json()
                if item.get("label") and item.get("name")
            }
            frame = frame.rename(columns=lambda column: names.get(column, column))
        return push_records(
            self.portal_url, self.dataset, resource, frame, pushkey=pushkey, **kwargs
        )

    def download_files(self, column: str, folder: Any, **kwargs: Any) -> pd.DataFrame:
        """Download the files of a ``file`` column into ``folder``; the frame with a column of
        local paths (see :func:`odsframe.files.download_files`). The key and session of the
        read are reused when they were given explicitly."""
        from odsframe.files import download_files
        from odsframe.read import remembered_credentials

        ods = self._provenance()
        known_key, known_session = remembered_credentials(ods.get("read_id"))
        kwargs.setdefault("api_key", known_key)
        kwargs.setdefault("session", known_session)
        return download_files(self._frame, column, folder, **kwargs)

    def plot_clusters(self, **kwargs: Any) -> Any:
        """Draw this frame of clusters as a map (see :func:`odsframe.plot_clusters`)."""
        from odsframe.plotting import plot_clusters

        return plot_clusters(self._frame, **kwargs)
