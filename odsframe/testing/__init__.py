"""The local ODS-compatible portal.

``LocalPortal`` runs it in a background thread; ``create_app`` builds the starlette app. Both
are imported on first use, so ``import odsframe.testing`` (and the pytest plugin) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from odsframe.testing.portal import LocalPortal
    from odsframe.testing.server import create_app

__all__ = ["LocalPortal", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "LocalPortal":
        from odsframe.testing.portal import LocalPortal

        return LocalPortal
    if name == "create_app":
        from odsframe.testing.server import create_app

        return create_app
    raise AttributeError(f"module 'odsframe.testing' has no attribute {name!r}")
