"""Facets of the local portal (``/catalog/facets`` and ``/catalog/datasets/{id}/facets``).

The ``facet`` parameter is a field name or ``facet(name="f", disjunctive=true,
hierarchical=true, separator="/", sort="-count", limit=10)``; without it every field with the
``facet`` annotation is a facet, in schema order. Each facet answers
``{"name": <field>, "facets": [{"name", "count", "state", "value"}, ...]}`` where ``value`` is
what ``refine``/``exclude`` take and ``name`` the value shown (ods-api.md sections 2.12, 4.3
and 8.3):

* counts come from one DuckDB ``GROUP BY`` per facet over the request's filter (``where``,
  ``refine``, ``exclude``); a disjunctive facet's counts ignore its own refines, so the other
  values stay visible, ``displayed``;
* date and datetime facets are trees ``YYYY`` -> ``YYYY/MM`` -> ``YYYY/MM/DD`` (datetimes go
  on to hours and minutes) in the request timezone; hierarchical text facets are path trees
  on their separator. Only the nodes on the path of a refine are expanded (a refined year
  lists its months); ``name`` is the last path component (``"08"``), ``value`` the path;
* ``state`` is ``refined`` for a refined value and the nodes above it, ``excluded`` for an
  excluded one (which comes without a count), else ``displayed``;
* sort: the request's ``sort``, else the field's ``facetsort`` annotation, else
  ``alphanum`` for dates and ``-count`` otherwise; ties go by value. Excluded values come
  last;
* a facet with no value at all is left out, so a dataset without records answers
  ``{"facets": []}`` (as the real attachment-only fantoir dataset does).

Choices where ODS documents nothing: no default ``limit`` (every value; ``limit`` applies to
every level of a tree); a multivalued record counts once per distinct value; facets can be
asked on any text, number, boolean or date field, annotated or not (the annotation only sets
the default list).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from odsframe import _spec
from odsframe.testing import engine, odsql
from odsframe.testing.errors import ODSQLError
from odsframe.testing.model import PortalDataset, PortalField

FACET_CLAUSE = "facet"
#: Field types a facet can be built on.
FACETABLE_TYPES = frozenset({"text", "int", "double", "boolean", "date", "datetime"})
SORTS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "text": ("count", "-count", "alphanum", "-alphanum"),
    "date": ("count", "-count", "alphanum", "-alphanum"),
    "datetime": ("count", "-count", "alphanum", "-alphanum"),
    "int": ("count", "-count", "num", "-num"),
    "double": ("count", "-count", "num", "-num"),
    "boolean": ("count", "-count"),
}
_FACET_ARGUMENTS = ("name", "disjunctive", "hierarchical", "separator", "sort", "limit")
#: strftime patterns of the date tree levels (years, months, days, hours, minutes).
_DATE_LEVELS = ("%Y", "%Y/%m", "%Y/%m/%d", "%Y/%m/%d/%H", "%Y/%m/%d/%H/%M")


@dataclass(frozen=True)
class FacetRequest:
    """One ``facet`` parameter, as sent (``None`` where the request said nothing)."""

    name: str
    disjunctive: bool | None = None
    hierarchical: bool | None = None
    separator: str | None = None
    sort: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Facet:
    """A facet resolved against the dataset schema."""

    field: PortalField
    disjunctive: bool
    separator: str | None
    sort: str
    limit: int | None

    @property
    def is_date(self) -> bool:
        return self.field.type in _spec.TEMPORAL_TYPES


def parse_facet(text: str) -> FacetRequest:
    """A ``facet`` parameter: a field name or a ``facet(...)`` call.

    Raises
    ------
    ODSQLError
        Malformed text, unknown argument, or an argument of the wrong kind.
    """
    node = odsql.parse_expression(text, FACET_CLAUSE)
    if isinstance(node, odsql.Field):
        return FacetRequest(node.name)
    if not isinstance(node, odsql.FuncCall) or node.name != "facet":
        raise ODSQLError(
            f"Invalid facet {text!r}: expected a field name or "
            'facet(name="<field>", disjunctive=..., sort=..., limit=...).',
            FACET_CLAUSE,
        )
    arguments: dict[str, Any] = {}
    if node.args:
        first = node.args[0]
        if len(node.args) > 1 or not isinstance(first, odsql.Field | odsql.Literal):
            raise ODSQLError(
                "facet() takes named arguments: name, disjunctive, hierarchical, separator, "
                "sort, limit.",
                FACET_CLAUSE,
            )
        arguments["name"] = first.name if isinstance(first, odsql.Field) else first.value
    for key, value in node.named:
        key = key.lower()
        if key not in _FACET_ARGUMENTS:
            raise ODSQLError(
                f"Unknown facet() argument {key!r}: expected one of {', '.join(_FACET_ARGUMENTS)}.",
                FACET_CLAUSE,
            )
        if isinstance(value, odsql.Field) and key == "name":
            arguments[key] = value.name
        elif isinstance(value, odsql.Literal):
            arguments[key] = value.value
        else:
            raise ODSQLError(f"facet() argument {key} must be a literal value.", FACET_CLAUSE)
    name = arguments.get("name")
    if not isinstance(name, str) or not name:
        raise ODSQLError('facet() needs name="<field>".', FACET_CLAUSE)
    for key in ("disjunctive", "hierarchical"):
        if key in arguments and not isinstance(arguments[key], bool):
            raise ODSQLError(f"facet() argument {key} must be true or false.", FACET_CLAUSE)
    separator = arguments.get("separator")
    if separator is not None and (not isinstance(separator, str) or not separator):
        raise ODSQLError("facet() argument separator must be a non-empty string.", FACET_CLAUSE)
    sort = arguments.get("sort")
    if sort is not None and not isinstance(sort, str):
        raise ODSQLError("facet() argument sort must be a string.", FACET_CLAUSE)
    limit = arguments.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ODSQLError("facet() argument limit must be a positive integer.", FACET_CLAUSE)
    return FacetRequest(
        name=name,
        disjunctive=arguments.get("disjunctive"),
        hierarchical=arguments.get("hierarchical"),
        separator=separator,
        sort=sort,
        limit=limit,
    )


def resolve_facets(dataset: PortalDataset, texts: Sequence[str]) -> list[Facet]:
    """The facets of a request: the ``facet`` parameters, else every annotated facet field."""
    requests = [parse_facet(text) for text in texts] or [
        FacetRequest(f.name) for f in dataset.fields if f.is_facet
    ]
    facets: list[Facet] = []
    seen: set[str] = set()
    for request in requests:
        portal_field = dataset.field(request.name)
        if portal_field is None:
            raise ODSQLError(f"Unknown field: {request.name}.", FACET_CLAUSE)
        if portal_field.type not in FACETABLE_TYPES:
            raise ODSQLError(
                f"Field {request.name} ({portal_field.type}) cannot be a facet: facets are "
                "text, number, boolean, date or datetime fields.",
                FACET_CLAUSE,
            )
        if request.name in seen:
            continue
        seen.add(request.name)
        facets.append(_resolve(portal_field, request))
    return facets


def _resolve(portal_field: PortalField, request: FacetRequest) -> Facet:
    separator: str | None = None
    if portal_field.type == "text":
        if request.hierarchical is None:
            separator = request.separator or portal_field.hierarchical_separator
        elif request.hierarchical:
            separator = request.separator or portal_field.hierarchical_separator or "/"
    elif request.hierarchical:
        raise ODSQLError(
            f"Facet {portal_field.name}: only text facets can be hierarchical.", FACET_CLAUSE
        )
    allowed = SORTS_BY_TYPE[portal_field.type]
    annotated = portal_field.annotations.get("facetsort") or []
    default = "alphanum" if portal_field.type in _spec.TEMPORAL_TYPES else "-count"
    if annotated and str(annotated[0]) in allowed:
        default = str(annotated[0])
    sort = request.sort if request.sort is not None else default
    if sort not in allowed:
        raise ODSQLError(
            f"Invalid sort {sort!r} for facet {portal_field.name} ({portal_field.type}): "
            f"expected one of {', '.join(allowed)}.",
            FACET_CLAUSE,
        )
    disjunctive = portal_field.disjunctive if request.disjunctive is None else request.disjunctive
    return Facet(portal_field, disjunctive, separator, sort, request.limit)


def with_facet_overrides(dataset: PortalDataset, texts: Sequence[str]) -> PortalDataset:
    """``dataset`` with the ``facet(...)`` parameters applied to its field annotations.

    ``refine``/``exclude`` then follow them (a ``facet(name="f", disjunctive=true)`` makes
    several refines on ``f`` OR-ed, as the widgets expect). Unknown names are left to the
    caller's validation.
    """
    requests = {request.name: request for request in (parse_facet(t) for t in texts)}
    if not requests:
        return dataset
    fields = []
    for portal_field in dataset.fields:
        request = requests.get(portal_field.name)
        if request is None or portal_field.type not in FACETABLE_TYPES:
            fields.append(portal_field)
            continue
        annotations = dict(portal_field.annotations)
        annotations.setdefault("facet", [])
        if request.disjunctive is True:
            annotations["disjunctive"] = []
        elif request.disjunctive is False:
            annotations.pop("disjunctive", None)
        if portal_field.type == "text" and request.hierarchical is True:
            annotations["hierarchical"] = [request.separator or "/"]
        elif request.hierarchical is False:
            annotations.pop("hierarchical", None)
        fields.append(dataclasses.replace(portal_field, annotations=annotations))
    return dataclasses.replace(dataset, fields=fields)


def refine_field(raw: str) -> str:
    """The field a ``refine``/``exclude`` value (``field:value``) is about."""
    name = raw.partition(":")[0].strip()
    if len(name) > 1 and name.startswith("`") and name.endswith("`"):
        name = name[1:-1]
    return name


def refine_value(raw: str) -> str:
    """The value of a ``refine``/``exclude`` parameter, quotes removed."""
    value = raw.partition(":")[2].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        try:
            token = odsql.tokenize(value, "refine")[0]
            return str(token.value)
        except ODSQLError:
            return value[1:-1]
    return value


@dataclass(frozen=True)
class FacetFilters:
    """The filtering parameters facets are counted under."""

    where: tuple[str, ...] = ()
    refine: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    timezone: str = "UTC"
    lang: str = _spec.DEFAULT_LANG


def compute_facets(
    cursor: duckdb.DuckDBPyConnection,
    dataset: PortalDataset,
    facets: Sequence[Facet],
    filters: FacetFilters,
) -> list[dict[str, Any]]:
    """The ``facets`` list of a facets answer (empty facets left out)."""
    groups = []
    for facet in facets:
        own = [r for r in filters.refine if refine_field(r) == facet.field.name]
        refines = (
            [r for r in filters.refine if r not in own] if facet.disjunctive else filters.refine
        )
        compiled = engine.compile_query(
            dataset,
            select=None,
            where=list(filters.where),
            refine=list(refines),
            exclude=list(filters.exclude),
            limit=0,
            timezone=filters.timezone,
            lang=filters.lang,
        )
        refined = [refine_value(r) for r in own]
        excluded = [refine_value(e) for e in filters.exclude if refine_field(e) == facet.field.name]
        counts = _counts(cursor, dataset, facet, compiled, refined, filters.timezone)
        items = _items(facet, counts, refined, excluded)
        if items:
            groups.append({"name": facet.field.name, "facets": items})
    return groups


def _depth(facet: Facet, refined: Sequence[str]) -> int:
    """How many date-tree levels to count: one below the deepest refine."""
    deepest = max((len(value.split("/")) for value in refined), default=0)
    levels = 3 if facet.field.type == "date" else len(_DATE_LEVELS)
    return min(deepest + 1, levels)


def _counts(
    cursor: duckdb.DuckDBPyConnection,
    dataset: PortalDataset,
    facet: Facet,
    compiled: Any,
    refined: Sequence[str],
    timezone: str,
) -> dict[Any, int]:
    """Records per facet key (date keys are ``/`` paths at the depth the refines need)."""
    column = _ident(facet.field.name)
    table = _ident(dataset.table)
    where = compiled.where_sql
    if facet.is_date:
        local = column
        if facet.field.type == "datetime":
            local = f"timezone('{timezone.replace(chr(39), chr(39) * 2)}', {column})"
        key = f"strftime({local}, '{_DATE_LEVELS[_depth(facet, refined) - 1]}')"
    else:
        key = column
    if facet.field.multivalued:
        statement = (
            f"SELECT __k, count(*) FROM (SELECT unnest(list_distinct({column})) AS __k "
            f"FROM {table} WHERE {where}) WHERE __k IS NOT NULL GROUP BY __k"
        )
    else:
        statement = (
            f"SELECT {key} AS __k, count(*) FROM {table} WHERE ({where}) "
            f"AND {column} IS NOT NULL GROUP BY __k"
        )
    try:
        if compiled.prepare is not None:
            compiled.prepare(cursor)
        rows = engine.execute(cursor, statement, compiled.where_params).fetchall()
    finally:
        engine.release(cursor, compiled)
    counts: dict[Any, int] = {}
    for key_value, count in rows:
        if key_value is None or (isinstance(key_value, str) and not key_value):
            continue
        counts[key_value] = counts.get(key_value, 0) + int(count)
    return counts


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def facet_text(value: Any) -> str:
    """A facet value as the text ``refine`` takes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class _Node:
    name: str
    value: str
    count: int = 0
    children: dict[str, _Node] = dataclasses.field(default_factory=dict)
    number: float | None = None


def _items(
    facet: Facet, counts: dict[Any, int], refined: Sequence[str], excluded: Sequence[str]
) -> list[dict[str, Any]]:
    separator = "/" if facet.is_date else facet.separator
    root = _Node("", "")
    for key, count in counts.items():
        text = facet_text(key)
        if separator is None:
            node = root.children.setdefault(text, _Node(text, text))
            node.count += count
            if isinstance(key, int | float) and not isinstance(key, bool):
                node.number = float(key)
            continue
        parent, path = root, ""
        for part in text.split(separator):
            path = part if not path else path + separator + part
            parent = parent.children.setdefault(part, _Node(part, path))
            parent.count += count
    refined_paths = _with_ancestors(refined, separator)
    excluded_set = set(excluded)
    return _level(facet, root, refined_paths, excluded_set, separator)


def _with_ancestors(values: Sequence[str], separator: str | None) -> set[str]:
    paths = set(values)
    if separator is None:
        return paths
    for value in values:
        parts = value.split(separator)
        for end in range(1, len(parts)):
            paths.add(separator.join(parts[:end]))
    return paths


def _level(
    facet: Facet,
    parent: _Node,
    refined: set[str],
    excluded: set[str],
    separator: str | None,
) -> list[dict[str, Any]]:
    nodes = _sorted(facet, list(parent.children.values()))
    if facet.limit is not None:
        nodes = nodes[: facet.limit]
    items: list[dict[str, Any]] = []
    for node in nodes:
        if node.value in excluded:
            continue
        state = "refined" if node.value in refined else "displayed"
        item: dict[str, Any] = {
            "name": node.name,
            "count": node.count,
            "state": state,
            "value": node.value,
        }
        if state == "refined" and separator is not None and node.children:
            children = _level(facet, node, refined, excluded, separator)
            if children:
                item["facets"] = children
        items.append(item)
    for value in sorted(excluded):
        if _parent_path(value, separator) == parent.value:
            name = value.rsplit(separator, 1)[-1] if separator else value
            items.append({"name": name, "state": "excluded", "value": value})
    return items


def _parent_path(value: str, separator: str | None) -> str:
    if separator is None or separator not in value:
        return ""
    return value.rsplit(separator, 1)[0]


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _sorted(facet: Facet, nodes: list[_Node]) -> list[_Node]:
    by_value = sorted(nodes, key=lambda node: node.name)
    sort = facet.sort
    if sort in ("count", "-count"):
        return sorted(by_value, key=lambda node: node.count, reverse=sort == "-count")
    if sort in ("num", "-num"):

        def number(node: _Node) -> float:
            if node.number is not None:
                return node.number
            return float(node.name) if _NUMBER.fullmatch(node.name) else float("inf")

        return sorted(by_value, key=number, reverse=sort == "-num")
    return sorted(by_value, key=lambda node: node.name, reverse=sort == "-alphanum")
