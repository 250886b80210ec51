"""Adapters, one per ODS API generation: v2.1, v2.0 and Search API v1.

Use :func:`open_adapter` to get one for a portal.
"""

from __future__ import annotations

from typing import Any

from odsframe.api.base import ExploreAdapter
from odsframe.api.v1 import SearchV1
from odsframe.api.v20 import ExploreV20
from odsframe.api.v21 import ExploreV21
from odsframe.errors import InvalidQueryArgument

__all__ = ["ADAPTERS", "ExploreAdapter", "ExploreV20", "ExploreV21", "SearchV1", "open_adapter"]

#: Adapter class per API generation.
ADAPTERS: dict[str, type[ExploreAdapter]] = {
    adapter.version: adapter for adapter in (ExploreV21, ExploreV20, SearchV1)
}


def open_adapter(portal: str, *, version: str = "2.1", **options: Any) -> ExploreAdapter:
    """An adapter for ``portal`` speaking API ``version``.

    ``options`` go to :meth:`ExploreAdapter.open` (``api_key``, ``session``, ``timeout``,
    ``retry``, ``use_keyring``).
    """
    try:
        adapter = ADAPTERS[version]
    except KeyError:
        raise InvalidQueryArgument(
            f"version: API {version!r} is not supported (supported: {', '.join(ADAPTERS)})"
        ) from None
    return adapter.open(portal, **options)
