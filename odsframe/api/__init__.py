"""Adapters, one per ODS API generation: v2.1, v2.0 and Search API v1.

Use :func:`open_adapter` to get one for a portal. Only the v2.1 adapter is imported with
this package; the v2.0 and v1 ones load when first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from odsframe.api.base import ExploreAdapter
from odsframe.api.v21 import ExploreV21
from odsframe.errors import InvalidQueryArgument

if TYPE_CHECKING:
    from odsframe.api.v1 import SearchV1
    from odsframe.api.v20 import ExploreV20

__all__ = [
    "API_VERSIONS",
    "ExploreAdapter",
    "ExploreV20",
    "ExploreV21",
    "SearchV1",
    "adapter_class",
    "open_adapter",
]

#: Where the adapter of each API generation lives (module, class).
_ADAPTER_PATHS: dict[str, tuple[str, str]] = {
    "2.1": ("odsframe.api.v21", "ExploreV21"),
    "2.0": ("odsframe.api.v20", "ExploreV20"),
    "1.0": ("odsframe.api.v1", "SearchV1"),
}
#: The API versions odsframe speaks, newest first.
API_VERSIONS: tuple[str, ...] = tuple(_ADAPTER_PATHS)


def adapter_class(version: str) -> type[ExploreAdapter]:
    """The adapter class of API ``version`` (``"2.1"``, ``"2.0"`` or ``"1.0"``)."""
    try:
        module, name = _ADAPTER_PATHS[version]
    except (KeyError, TypeError):
        raise InvalidQueryArgument(
            f"version: API {version!r} is not supported (supported: {', '.join(API_VERSIONS)})"
        ) from None
    adapter: type[ExploreAdapter] = getattr(importlib.import_module(module), name)
    return adapter


def open_adapter(portal: str, *, version: str = "2.1", **options: Any) -> ExploreAdapter:
    """An adapter for ``portal`` speaking API ``version``.

    ``options`` go to :meth:`ExploreAdapter.open` (``api_key``, ``session``, ``timeout``,
    ``retry``, ``use_keyring``).
    """
    return adapter_class(version).open(portal, **options)


def __getattr__(name: str) -> Any:
    for module, class_name in _ADAPTER_PATHS.values():
        if name == class_name:
            return getattr(importlib.import_module(module), class_name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
