"""odsframe: OpenDataSoft (Huwise) portals as typed pandas and GeoPandas frames.

The public names are imported on first use (module ``__getattr__``), so ``import odsframe``
stays cheap and never pulls in pandas, geopandas, shapely or the local portal.

>>> import odsframe
>>> df = odsframe.read_ods("data.example.org", "my-dataset", where={"city": "Paris"})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from odsframe._version import __version__

# ``download`` is both a function and the module defining it: bind the function eagerly, or the
# first import of the submodule would replace it (the module needs only the standard library).
from odsframe.download import download

# The same for ``push`` (odsframe/push.py imports only the standard library at first).
from odsframe.push import push

if TYPE_CHECKING:
    from odsframe._dask import read_ods_dask
    from odsframe.accessor import OdsAccessor, ProvenanceError
    from odsframe.analysis import (
        choose_zoom,
        read_ods_aggregate,
        read_ods_facets,
        read_ods_geocluster,
    )
    from odsframe.errors import (
        AuthenticationError,
        CacheError,
        DatasetNotFoundError,
        DeprecationNotice,
        IncompleteResultError,
        InvalidQueryArgument,
        ODSError,
        ODSWarning,
        PortalConnectionError,
        QueryError,
        QuotaExceededError,
        ServerError,
        StaleCacheWarning,
    )
    from odsframe.plotting import plot_clusters
    from odsframe.portal import Dataset, Portal
    from odsframe.query import Query
    from odsframe.read import explain, read_ods, read_ods_catalog

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "read_ods": "odsframe.read",
    "read_ods_catalog": "odsframe.read",
    "explain": "odsframe.read",
    "Portal": "odsframe.portal",
    "Dataset": "odsframe.portal",
    "Query": "odsframe.query",
    "OdsAccessor": "odsframe.accessor",
    "read_ods_dask": "odsframe._dask",
    "read_ods_aggregate": "odsframe.analysis",
    "read_ods_facets": "odsframe.analysis",
    "read_ods_geocluster": "odsframe.analysis",
    "choose_zoom": "odsframe.analysis",
    "plot_clusters": "odsframe.plotting",
    "ProvenanceError": "odsframe.accessor",
    **dict.fromkeys(
        (
            "ODSError",
            "InvalidQueryArgument",
            "AuthenticationError",
            "DatasetNotFoundError",
            "QueryError",
            "QuotaExceededError",
            "ServerError",
            "PortalConnectionError",
            "IncompleteResultError",
            "CacheError",
            "ODSWarning",
            "DeprecationNotice",
            "StaleCacheWarning",
        ),
        "odsframe.errors",
    ),
}

__all__ = [
    "AuthenticationError",
    "CacheError",
    "Dataset",
    "DatasetNotFoundError",
    "DeprecationNotice",
    "IncompleteResultError",
    "InvalidQueryArgument",
    "ODSError",
    "ODSWarning",
    "OdsAccessor",
    "Portal",
    "PortalConnectionError",
    "ProvenanceError",
    "Query",
    "QueryError",
    "QuotaExceededError",
    "ServerError",
    "StaleCacheWarning",
    "__version__",
    "choose_zoom",
    "download",
    "explain",
    "plot_clusters",
    "push",
    "read_ods",
    "read_ods_aggregate",
    "read_ods_catalog",
    "read_ods_dask",
    "read_ods_facets",
    "read_ods_geocluster",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'odsframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    # The public names (loaded or not) and the submodules already imported.
    submodules = {
        name
        for name, value in globals().items()
        if type(value) is type(importlib) and not name.startswith("_") and name != "importlib"
    }
    return sorted(set(__all__) | submodules)
