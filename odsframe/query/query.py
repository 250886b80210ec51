"""The :class:`Query`: what to read from one dataset, validated and normalised, with no I/O.

A ``Query`` holds the ODSQL clauses of a records or export request in a canonical form
(tuples of strings, conditions sorted, shorthands expanded), so two queries that mean the
same thing compare equal and give the same :meth:`Query.normalised_key`. It never holds an
API key: keys travel in a header added by the HTTP layer.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from odsframe._spec import (
    EXPLORE_V21,
    GROUP_BY_MAX_LIMIT,
    LANGS,
    RECORDS_MAX_LIMIT,
)
from odsframe.errors import InvalidQueryArgument
from odsframe.query.odsql import (
    geometry_mapping,
    in_bbox,
    intersects,
    lon_lat,
    quote_field,
    split_top_level,
    where_conditions,
    within_distance,
)

__all__ = [
    "Query",
    "facet_filters",
    "normalise_group_by",
    "normalise_order_by",
    "normalise_select",
    "order_expression",
    "order_item",
]

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")
_DIRECTION = re.compile(r"^(?P<expr>.+?)\s+(?P<direction>asc|desc)$", re.IGNORECASE | re.DOTALL)
_RANDOM = re.compile(r"^random\s*\(", re.IGNORECASE)
_FACET_NAME = re.compile(r"[^:\s]+")


def _items(value: str | Iterable[str] | None, argument: str) -> list[str]:
    """Comma-separated ODSQL items from a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return split_top_level(value)
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InvalidQueryArgument(
            f"{argument}: expected a string or a list of strings, got {type(value).__name__}"
        )
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidQueryArgument(f"{argument}: items must be strings, got {item!r}")
        items.extend(split_top_level(item))
    return items


def _field_or_expression(item: str) -> str:
    """Quote a bare field name; leave any other expression as written."""
    return quote_field(item) if _PLAIN_NAME.fullmatch(item) else item


def normalise_select(value: str | Iterable[str] | None) -> tuple[str, ...]:
    items = [_field_or_expression(item) for item in _items(value, "select")]
    return () if items in ([], ["*"]) else tuple(items)


def normalise_group_by(value: str | Iterable[str] | None) -> tuple[str, ...]:
    return tuple(_field_or_expression(item) for item in _items(value, "group_by"))


def order_item(item: str) -> str:
    """One ``order_by`` item with an explicit direction: ``-pop`` -> ``pop DESC``."""
    item = item.strip()
    match = _DIRECTION.match(item)
    if match:
        expression, direction = match["expr"].strip(), match["direction"].upper()
    elif item.startswith("-") and _PLAIN_NAME.fullmatch(item[1:]):
        expression, direction = item[1:], "DESC"
    else:
        expression, direction = item, "ASC"
    if _RANDOM.match(expression):
        # random(seed) takes no direction.
        return expression
    return f"{_field_or_expression(expression)} {direction}"


def order_expression(item: str) -> str:
    """The expression of an ``order_by`` item without direction or back-quotes."""
    match = _DIRECTION.match(item.strip())
    expression = match["expr"] if match else item.strip()
    if expression.startswith("`") and expression.endswith("`"):
        expression = expression[1:-1].replace("\\`", "`").replace("\\\\", "\\")
    return expression


def normalise_order_by(value: str | Iterable[str] | None) -> tuple[str, ...]:
    return tuple(order_item(item) for item in _items(value, "order_by"))


def _facet_value(value: Any, argument: str) -> str:
    if value is None:
        raise InvalidQueryArgument(f"{argument}: a facet value cannot be None")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        # Date facets are hierarchical paths YYYY/MM/DD.
        return value.strftime("%Y/%m/%d")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        if not value:
            raise InvalidQueryArgument(f"{argument}: a facet value cannot be empty")
        return value
    raise InvalidQueryArgument(
        f"{argument}: cannot use a {type(value).__name__} as a facet value "
        "(use str, int, float, bool, date or datetime)"
    )


def _facet_filter(facet: str, value: str) -> str:
    if not isinstance(facet, str) or not _FACET_NAME.fullmatch(facet):
        raise InvalidQueryArgument(f"refine/exclude: {facet!r} is not a facet name")
    return f"{facet}:{json.dumps(value, ensure_ascii=False)}"


def _parse_facet_filter(text: str, argument: str) -> str:
    """``facet:value`` or ``facet:"value"`` -> ``facet:"value"``."""
    facet, sep, value = text.partition(":")
    if not sep or not facet.strip() or not value.strip():
        raise InvalidQueryArgument(
            f'{argument}: {text!r} is not of the form facet:value (e.g. city:"Paris")'
        )
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = value[1:-1]
    return _facet_filter(facet.strip(), value)


def facet_filters(value: Any, argument: str) -> tuple[str, ...]:
    """Refine/exclude arguments -> sorted ``facet:"value"`` strings."""
    if value is None:
        return ()
    filters: set[str] = set()
    if isinstance(value, str):
        filters.add(_parse_facet_filter(value, argument))
    elif isinstance(value, Mapping):
        for facet, spec in value.items():
            values = spec if isinstance(spec, list | tuple | Set) else [spec]
            if not values:
                raise InvalidQueryArgument(f"{argument}[{facet!r}]: the list of values is empty")
            for item in values:
                filters.add(_facet_filter(facet, _facet_value(item, f"{argument}[{facet!r}]")))
    elif isinstance(value, Iterable):
        for item in value:
            if not isinstance(item, str | Mapping):
                raise InvalidQueryArgument(
                    f"{argument}: list items must be 'facet:value' strings or mappings, "
                    f"got {item!r}"
                )
            filters.update(facet_filters(item, argument))
    else:
        raise InvalidQueryArgument(
            f"{argument}: expected a mapping {{facet: value}}, 'facet:value' strings or a list, "
            f"got {type(value).__name__}"
        )
    return tuple(sorted(filters))


def _normalise_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral):
        raise InvalidQueryArgument(f"limit: expected a whole number of records, got {limit!r}")
    limit = int(limit)
    if limit == -1:
        return None
    if limit < 0:
        raise InvalidQueryArgument(f"limit: must be >= 0 (or None / -1 for all), got {limit}")
    return limit


def _normalise_timezone(timezone: Any) -> str | None:
    if timezone is None:
        return None
    if not isinstance(timezone, str) or not timezone.strip():
        raise InvalidQueryArgument(f"timezone: expected an IANA name, got {timezone!r}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidQueryArgument(
            f"timezone: {timezone!r} is not an IANA timezone (e.g. 'UTC', 'Europe/Paris')"
        ) from err
    return timezone.strip()


def _normalise_lang(lang: Any) -> str | None:
    if lang is None:
        return None
    if not isinstance(lang, str) or lang.strip().lower() not in LANGS:
        raise InvalidQueryArgument(f"lang: {lang!r} is not one of {', '.join(LANGS)}")
    return lang.strip().lower()


def _normalise_dataset(dataset: Any) -> str:
    if not isinstance(dataset, str) or not dataset.strip():
        raise InvalidQueryArgument(f"dataset: expected a dataset id, got {dataset!r}")
    dataset = dataset.strip()
    if any(char.isspace() for char in dataset) or dataset in (".", ".."):
        raise InvalidQueryArgument(f"dataset: {dataset!r} is not a valid dataset id")
    return dataset


def _normalise_bbox(bbox: Any) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    in_bbox("geo", bbox)  # validates order, ranges and finiteness
    min_lon, min_lat, max_lon, max_lat = (float(value) for value in bbox)
    return (min_lon, min_lat, max_lon, max_lat)


def _normalise_mask(mask: Any) -> str | None:
    if mask is None:
        return None
    if isinstance(mask, str):
        try:
            mask = json.loads(mask)
        except json.JSONDecodeError as err:
            raise InvalidQueryArgument(
                "mask: a string mask must be GeoJSON geometry text; pass a shapely geometry "
                "or a GeoJSON mapping otherwise"
            ) from err
    geometry = geometry_mapping(mask, "mask")
    try:
        return json.dumps(geometry, separators=(",", ":"), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise InvalidQueryArgument("mask: coordinates must be finite numbers") from err


def _normalise_distance(distance: Any) -> tuple[tuple[float, float], float] | None:
    if distance is None:
        return None
    if (
        not isinstance(distance, Sequence)
        or isinstance(distance, str | bytes)
        or len(distance) != 2
    ):
        raise InvalidQueryArgument(
            f"distance: expected (center, metres) with center (lon, lat) or a Point, "
            f"got {distance!r}"
        )
    center, metres = distance
    within_distance("geo", center, metres)  # validates
    return lon_lat(center, "distance center"), float(metres)


@dataclass(frozen=True, init=False)
class Query:
    """A validated, normalised read of one dataset; makes no request.

    Parameters
    ----------
    dataset
        Dataset id (federated ids such as ``"prices@public"`` are fine).
    select
        ODSQL select: a string (``"name, count(*) as n"``) or a list of items; bare names
        in the list are field names and are quoted when needed. ``"*"`` means all fields.
    where
        An ODSQL string, a ``{field: value}`` mapping (see
        :func:`odsframe.query.odsql.where_from`), or a list of these; all ANDed.
    refine, exclude
        Facet filters: ``{facet: value or [values]}``, ``'facet:value'`` strings or a list.
        Dates become the facet paths ``YYYY/MM/DD``.
    order_by
        A string or list of items; ``"-pop"`` means ``pop DESC``. Every item gets an
        explicit direction.
    group_by
        A string or list of group expressions.
    limit
        Most records to read in total (``None`` or ``-1``: all). Page sizes are the
        plan's business, not this.
    timezone, lang
        IANA timezone for datetimes in the query and the answer; answer language.
    geo_field
        The geo field that ``bbox``, ``mask`` and ``distance`` filter on. May be left
        ``None`` and filled later with :meth:`with_geo_field` (for example from the schema).
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)``: keep records in the box.
    mask
        A geometry (shapely, ``__geo_interface__`` or GeoJSON): keep records intersecting it.
    distance
        ``(center, metres)``, center ``(lon, lat)`` or a Point: keep records within.
    """

    dataset: str
    select: tuple[str, ...]
    where: tuple[str, ...]
    refine: tuple[str, ...]
    exclude: tuple[str, ...]
    order_by: tuple[str, ...]
    group_by: tuple[str, ...]
    limit: int | None
    timezone: str | None
    lang: str | None
    geo_field: str | None
    bbox: tuple[float, float, float, float] | None
    mask: str | None
    distance: tuple[tuple[float, float], float] | None

    def __init__(
        self,
        dataset: str,
        *,
        select: str | Iterable[str] | None = None,
        where: Any = None,
        refine: Any = None,
        exclude: Any = None,
        order_by: str | Iterable[str] | None = None,
        group_by: str | Iterable[str] | None = None,
        limit: int | None = None,
        timezone: str | None = None,
        lang: str | None = None,
        geo_field: str | None = None,
        bbox: Sequence[float] | None = None,
        mask: Any = None,
        distance: Any = None,
    ) -> None:
        if geo_field is not None:
            quote_field(geo_field)  # validates the name
        values = {
            "dataset": _normalise_dataset(dataset),
            "select": normalise_select(select),
            "where": tuple(sorted(set(where_conditions(where)))),
            "refine": facet_filters(refine, "refine"),
            "exclude": facet_filters(exclude, "exclude"),
            "order_by": normalise_order_by(order_by),
            "group_by": normalise_group_by(group_by),
            "limit": _normalise_limit(limit),
            "timezone": _normalise_timezone(timezone),
            "lang": _normalise_lang(lang),
            "geo_field": geo_field,
            "bbox": _normalise_bbox(bbox),
            "mask": _normalise_mask(mask),
            "distance": _normalise_distance(distance),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        shown = [repr(self.dataset)]
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name != "dataset" and value not in (None, ()):
                shown.append(f"{name}={value!r}")
        return f"Query({', '.join(shown)})"

    # -- derived views --------------------------------------------------------------------

    @property
    def grouped(self) -> bool:
        """True when the query has a ``group_by`` (answers are groups, not records)."""
        return bool(self.group_by)

    @property
    def needs_geo_field(self) -> bool:
        """True when a spatial filter is set but no ``geo_field`` says what it applies to."""
        spatial = self.bbox is not None or self.mask is not None or self.distance is not None
        return spatial and self.geo_field is None

    def replace(self, **changes: Any) -> Query:
        """A copy with some arguments changed (validated again)."""
        arguments = {name: getattr(self, name) for name in self.__dataclass_fields__}
        unknown = set(changes) - set(arguments)
        if unknown:
            raise InvalidQueryArgument(f"Query has no argument(s) {', '.join(sorted(unknown))}")
        arguments.update(changes)
        dataset = arguments.pop("dataset")
        return Query(dataset, **arguments)

    def with_geo_field(self, geo_field: str) -> Query:
        """A copy whose spatial filters apply to ``geo_field``."""
        return self.replace(geo_field=geo_field)

    def spatial_conditions(self) -> list[str]:
        """The ODSQL conditions of ``bbox``, ``mask`` and ``distance``."""
        if self.needs_geo_field:
            raise InvalidQueryArgument(
                "geo_field: bbox/mask/distance need the geo field to filter on; pass "
                "geo_field=... (read_ods picks the dataset's first geo field)"
            )
        conditions = []
        if self.geo_field is not None:
            if self.bbox is not None:
                conditions.append(in_bbox(self.geo_field, self.bbox))
            if self.mask is not None:
                conditions.append(intersects(self.geo_field, json.loads(self.mask)))
            if self.distance is not None:
                center, metres = self.distance
                conditions.append(within_distance(self.geo_field, center, metres))
        return conditions

    def params(self) -> list[tuple[str, str]]:
        """The query's request parameters, sorted (no ``limit``/``offset``: see ``Plan``).

        Repeated names (``where``, ``refine``, ``exclude``) appear once per value.
        """
        pairs: list[tuple[str, str]] = []
        if self.select:
            pairs.append(("select", ", ".join(self.select)))
        for condition in sorted(set(self.where) | set(self.spatial_conditions())):
            pairs.append(("where", condition))
        pairs.extend(("refine", item) for item in self.refine)
        pairs.extend(("exclude", item) for item in self.exclude)
        if self.order_by:
            pairs.append(("order_by", ", ".join(self.order_by)))
        if self.group_by:
            pairs.append(("group_by", ", ".join(self.group_by)))
        if self.timezone is not None:
            pairs.append(("timezone", self.timezone))
        if self.lang is not None:
            pairs.append(("lang", self.lang))
        return sorted(pairs)

    def normalised_key(self) -> str:
        """A stable text naming what the query reads (for cache keys); holds no secret."""
        return json.dumps(
            {"dataset": self.dataset, "params": self.params(), "limit": self.limit},
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
        )

    def url_with_parameters(self, portal: str) -> str:
        """The v2.1 ``/records`` URL of this query's first request (never holds a key).

        ``limit`` is the query's limit capped at what one request may ask for (100, or
        20 000 when grouped). ``Plan.explain`` lists every request a read makes.
        """
        from odsframe._portal_url import dataset_path_segment, resolve_portal

        pairs = self.params()
        cap = GROUP_BY_MAX_LIMIT if self.grouped else RECORDS_MAX_LIMIT
        if self.limit is not None:
            pairs.append(("limit", str(min(self.limit, cap))))
        elif self.grouped:
            pairs.append(("limit", str(cap)))
        pairs.sort()
        url = (
            f"{resolve_portal(portal)}{EXPLORE_V21}/catalog/datasets/"
            f"{dataset_path_segment(self.dataset)}/records"
        )
        return f"{url}?{urlencode(pairs)}" if pairs else url
