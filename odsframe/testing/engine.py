"""ODSQL evaluation: parameters of a records request -> DuckDB SQL (see ``model.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from odsframe.testing.model import CompiledQuery, PortalDataset


def compile_query(
    dataset: PortalDataset,
    *,
    select: str | None = None,
    where: Sequence[str] = (),
    group_by: str | None = None,
    order_by: str | None = None,
    refine: Sequence[str] = (),
    exclude: Sequence[str] = (),
    limit: int | None = None,
    offset: int = 0,
    timezone: str = "UTC",
    lang: str = "fr",
) -> CompiledQuery:
    """Compile one request over ``dataset`` (placeholder until the engine lands)."""
    raise NotImplementedError
