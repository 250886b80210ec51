"""Adapters, one per ODS API generation (v2.1 today; v2.0 and v1 slot in beside it).

Use :func:`open_adapter` to get one for a portal.
"""

from __future__ import annotations

from typing import Any

from odsframe.api.base import ExploreAdapter
from odsframe.api.v21 import ExploreV21
from odsframe.errors import InvalidQueryArgument

__all__ = ["ADAPTERS", "ExploreAdapter", "ExploreV21", "open_adapter"]

#: Adapter class per API generation.
ADAPTERS: dict[str, type[ExploreAdapter]] = {ExploreV21.version: ExploreV21}


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
