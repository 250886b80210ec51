"""Facet answers as one long DataFrame (pure, no I/O).

Reads (ods-api.md sections 2.12, 4.3 and 8.3):

* v2.0 / v2.1 ``/facets`` answers: ``{"facets": [{"name": <facet>, "facets": [{"name",
  "value", "count", "state", "facets"?: [...]}]}]}``;
* v1 ``facet_groups`` (in ``/api/records/1.0/search/`` answers): the same tree with ``path``
  where v2 has ``value``.

Hierarchical and date facets (``2020`` -> ``2020/11`` -> ``2020/11/05``) are flattened
depth-first, parents before their children, in the server's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from odsframe.errors import ServerError

__all__ = ["FACET_COLUMNS", "frame_from_facets"]

#: Columns of :func:`frame_from_facets`, in order.
FACET_COLUMNS: tuple[str, ...] = (
    "facet",
    "value",
    "name",
    "path",
    "count",
    "state",
    "depth",
    "parent",
)


def frame_from_facets(payload: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Flatten a facets answer (v2 ``facets`` or v1 ``facet_groups``) into a long DataFrame.

    Parameters
    ----------
    payload
        A v2.0/v2.1 ``/facets`` answer, a v1 records search answer (its ``facet_groups``; an
        answer without any, like a v1 zero-hit search, gives an empty frame), or the bare list
        of facet groups of either generation.

    Returns
    -------
    pandas.DataFrame
        One row per facet value, with columns:

        * ``facet``: the facet (field) name;
        * ``value``: the refine value as the server gave it (v2 ``value``, v1 ``path``;
          the display name when neither is sent);
        * ``name``: the display name;
        * ``path``: the full ``/`` path from the top of the tree (``value`` itself when the
          server already sends full paths, as ODS does; otherwise built from the parents);
        * ``count``: Int64, ``<NA>`` for values sent without a count (excluded values);
        * ``state``: ``displayed``, ``refined`` or ``excluded``;
        * ``depth``: Int64, 0 for top-level values;
        * ``parent``: the parent's ``path`` (missing at depth 0).

    Raises
    ------
    ServerError
        The payload is not a facets answer.
    """
    groups = _facet_groups(payload)
    rows: list[dict[str, Any]] = []
    for position, group in enumerate(groups):
        if not isinstance(group, Mapping) or "name" not in group:
            raise ServerError(f"facet group {position} is not an object with a 'name': {group!r}")
        _flatten(str(group["name"]), group.get("facets") or [], 0, None, rows)
    columns = {column: [row[column] for row in rows] for column in FACET_COLUMNS}
    return pd.DataFrame(
        {
            "facet": pd.array(columns["facet"], dtype="str"),
            "value": pd.array(columns["value"], dtype="str"),
            "name": pd.array(columns["name"], dtype="str"),
            "path": pd.array(columns["path"], dtype="str"),
            "count": pd.array(columns["count"], dtype="Int64"),
            "state": pd.array(columns["state"], dtype="str"),
            "depth": pd.array(columns["depth"], dtype="Int64"),
            "parent": pd.array(columns["parent"], dtype="str"),
        },
        index=pd.RangeIndex(len(rows)),
    )


def _facet_groups(payload: Any) -> Sequence[Any]:
    if isinstance(payload, Mapping):
        if "facets" in payload:
            groups = payload["facets"]
        elif "facet_groups" in payload:
            groups = payload["facet_groups"]
        elif "nhits" in payload or "records" in payload:
            groups = []  # v1 search answers leave facet_groups out when nothing matched
        else:
            raise ServerError(
                "a facets answer must hold 'facets' (v2) or 'facet_groups' (v1); got keys "
                f"{sorted(payload)}"
            )
    else:
        groups = payload
    if isinstance(groups, str | bytes) or not isinstance(groups, Sequence):
        raise ServerError(f"facet groups must be a list, not {type(groups).__name__}")
    return groups


def _flatten(
    facet: str,
    items: Any,
    depth: int,
    parent_path: str | None,
    rows: list[dict[str, Any]],
) -> None:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise ServerError(f"facet {facet!r}: 'facets' must be a list, not {type(items).__name__}")
    for item in items:
        if not isinstance(item, Mapping):
            raise ServerError(f"facet {facet!r}: a value is a {type(item).__name__}, not an object")
        name = item.get("name")
        value = item.get("value", item.get("path", name))
        if value is None:
            raise ServerError(f"facet {facet!r}: a value has no name, value or path: {item!r}")
        value = str(value)
        if parent_path is None or value.startswith(parent_path + "/"):
            path = value
        else:
            path = f"{parent_path}/{value}"
        count = item.get("count")
        rows.append(
            {
                "facet": facet,
                "value": value,
                "name": None if name is None else str(name),
                "path": path,
                "count": None if count is None else int(count),
                "state": item.get("state"),
                "depth": depth,
                "parent": parent_path,
            }
        )
        children = item.get("facets")
        if children:
            _flatten(facet, children, depth + 1, path, rows)
