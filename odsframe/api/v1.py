"""The Search API v1 adapter (ods-api.md section 2): ``/api/records/1.0/...``.

v1 has no ODSQL. This adapter translates the parameters of a :class:`~odsframe.query.Query`
(and of the plans built from one) into v1 parameters, and the v1 answers back into the v2.1
shapes, so what follows the adapter is shared:

========================  =========================================================================
v2.1 parameter            v1 parameters
========================  =========================================================================
``where``                 ``q`` in the v1 query language (every condition AND-ed), see below
``in_bbox(...)``          ``geofilter.bbox=latSW,lonSW,latNE,lonNE``
``within_distance(...)``  ``geofilter.distance=lat,lon,metres``
``intersects(f, poly)``   ``geofilter.polygon=(lat,lon),...`` (a Polygon without holes)
``refine``/``exclude``    ``refine.<facet>=value`` / ``exclude.<facet>=value``
``select``                ``fields=a,b`` (field names only)
``order_by``              ``sort=field`` (descending) / ``sort=-field`` (ascending)
``limit``/``offset``      ``rows``/``start`` (search), ``rows`` (download, -1 for all)
``group_by``              ``/analyze/``: ``x`` and ``y.<serie>.func``/``expr`` (see :meth:`grouped`)
``timezone``, ``lang``    unchanged
========================  =========================================================================

``where`` conditions are read with a small ODSQL reader that knows what odsframe writes and
the common hand-written forms: ``AND``/``OR``/``NOT`` and parentheses, full-text strings,
``field = value`` (text: ``#exact(field, "value")``; numbers, dates, booleans:
``field:value``), ``<``, ``>``, ``<=``, ``>=``, ``!=``, ``IN (...)``, ``IN [a..b]``, ``IS [NOT]
NULL``, ``IS [NOT] TRUE/FALSE``, ``"x" IN multivalued``, ``search()``, ``suggest()``,
``startswith()``. Anything else (functions, arithmetic, ``LIKE``) raises
:class:`~odsframe.errors.InvalidQueryArgument` naming the condition: v1 cannot express it.
The geofilters apply to the dataset's geo field on the portal's side.

Answers: v1 records (``fields`` without null values, points ``[lat, lon]``, bare shape
geometries) become flat v2.1 records with every selected schema field (null when absent),
points ``{"lon", "lat"}`` and shapes as ``Feature`` wrappers; dataset metadata gets the v2.1
dict annotations and ``metas.default``; facet groups get ``value`` for ``path``.

v1 sorts text fields only when they carry the ``sortable`` annotation: ``order_by`` items on
other text fields are left out of ``sort`` (records then keep the portal's index order,
which is stable while the dataset does not change), so paging plans that break ties on text
id fields still work.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from odsframe._http import build_url
from odsframe._portal_url import dataset_path_segment
from odsframe._spec import SEARCH_V1_DATASETS, SEARCH_V1_RECORDS
from odsframe.api.base import (
    CatalogRequest,
    ExploreAdapter,
    check_page_window,
    item_alias,
    plain_name,
)
from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames.records import records_from_v1
from odsframe.frames.schema import normalize_annotations
from odsframe.query.odsql import split_top_level
from odsframe.query.plan import DEFAULT_RECORDS_THRESHOLD, PlannedRequest
from odsframe.query.query import Query

__all__ = ["SearchV1", "V1Translation", "translate_where"]

logger = logging.getLogger(__name__)

#: Formats of ``/api/records/1.0/download/``.
DOWNLOAD_FORMATS: tuple[str, ...] = ("csv", "json", "geojson")
#: Export options ``stream_export`` passes on (v1 download parameters).
_DOWNLOAD_OPTIONS = frozenset({"csv_separator", "use_labels_for_header"})
_SORTABLE_TYPES = frozenset({"int", "double", "date", "datetime", "boolean"})
_V1_NAME = re.compile(r"[A-Za-z0-9_]+")
_DATE_PARTS = {
    "year": ("year", "year"),
    "month": ("month", "month"),
    "day": ("day", "day"),
    "hour": ("hour", "hour"),
    "minute": ("minute", "minute"),
    "dayofweek": ("weekday", "day"),
}
_AGGREGATES = {"count": "COUNT", "sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX"}


# ============================================================================================
# A small ODSQL reader for where conditions
# ============================================================================================


@dataclass(frozen=True)
class _Token:
    kind: str  # name, string, number, date, geom, op, punct, end
    text: str
    value: Any = None


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<date>date'[^']*')
  | (?P<geom>geom'[^']*')
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<quoted>`(?:[^`\\]|\\.)*`)
  | (?P<number>-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?(?:m|km|mi|yd|ft|cm|mm)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>|:)
  | (?P<punct>\.\.|[(),\[\]*])
)""",
    re.VERBOSE,
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _tokens(text: str, condition: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _untranslatable(
                condition, f"unexpected text at {text[position : position + 20]!r}"
            )
        position = match.end()
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "string":
            tokens.append(_Token("string", raw, _unescape(raw[1:-1])))
        elif kind == "quoted":
            tokens.append(_Token("name", raw, _unescape(raw[1:-1])))
        elif kind == "name":
            tokens.append(_Token("name", raw, raw))
        elif kind == "date":
            tokens.append(_Token("date", raw, raw[5:-1]))
        elif kind == "geom":
            tokens.append(_Token("geom", raw, raw[5:-1]))
        elif kind == "number":
            tokens.append(_Token("number", raw, raw))
        else:
            tokens.append(_Token(kind, raw, raw))
    tokens.append(_Token("end", ""))
    return tokens


def _untranslatable(condition: str, why: str) -> InvalidQueryArgument:
    return InvalidQueryArgument(
        f"where: {condition!r} cannot be expressed in the v1 query language ({why}); use the "
        "v2.1 API (api_version='2.1') for this filter"
    )


@dataclass
class V1Translation:
    """``where`` conditions in v1 terms: the ``q`` text and the geofilter parameters."""

    q: str | None
    geofilters: list[tuple[str, str]]


class _Reader:
    """Recursive descent over one condition, writing v1 ``q`` text."""

    def __init__(self, condition: str) -> None:
        self.condition = condition
        self.tokens = _tokens(condition, condition)
        self.position = 0

    # -- token helpers
    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.position + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.position += 1
        return token

    def keyword(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "name" and token.text.lower() == word

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.take()
        if token.kind != kind or (text is not None and token.text.lower() != text):
            raise self.error(f"expected {text or kind}, found {token.text or 'the end'!r}")
        return token

    def error(self, why: str) -> InvalidQueryArgument:
        return _untranslatable(self.condition, why)

    # -- grammar
    def read(self) -> str:
        text = self.disjunction()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.peek().text!r}")
        return text

    def disjunction(self) -> str:
        return self.chain("or", self.conjunction)

    def conjunction(self) -> str:
        return self.chain("and", self.negation)

    def chain(self, word: str, operand: Callable[[], str]) -> str:
        """``operand (word operand)*``, parenthesised when there are several."""
        parts = [operand()]
        while self.keyword(word):
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else "(" + f" {word.upper()} ".join(parts) + ")"

    def negation(self) -> str:
        if self.keyword("not"):
            self.take()
            return f"NOT {self.negation()}"
        return self.atom()

    def atom(self) -> str:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.take()
            inner = self.disjunction()
            self.expect("punct", ")")
            return f"({inner})"
        if token.kind == "string":
            self.take()
            if self.keyword("in"):
                self.take()
                return self.membership(_quote(str(token.value)))
            return _phrase(token.value)
        if token.kind in ("number", "date") or (
            token.kind == "name" and token.text.lower() in ("true", "false")
        ):
            self.take()
            if self.keyword("in"):
                self.take()
                return self.membership(self.literal_text(token))
            raise self.error(f"a literal {token.text!r} is no condition")
        if token.kind == "name" and self.peek(1).kind == "punct" and self.peek(1).text == "(":
            return self.function()
        if token.kind == "name":
            return self.comparison()
        raise self.error(f"unexpected {token.text or 'end'!r}")

    def membership(self, value: str) -> str:
        name = self.field_name(self.expect("name"))
        return f"{name}:{value}"

    def function(self) -> str:
        name = self.take().text.lower()
        self.expect("punct", "(")
        args: list[_Token] = []
        while not (self.peek().kind == "punct" and self.peek().text == ")"):
            token = self.take()
            if token.kind == "end":
                raise self.error("a closing parenthesis is missing")
            if not (token.kind == "punct" and token.text == ","):
                args.append(token)
        self.take()
        texts = [arg for arg in args if arg.kind == "string"]
        names = [arg for arg in args if arg.kind == "name" or arg.text == "*"]
        if name in ("search", "suggest") and len(texts) == 1:
            fields = [("*" if arg.text == "*" else self.field_name(arg)) for arg in names]
            words = str(texts[0].value).split()
            if name == "suggest" and not fields and all(_V1_NAME.fullmatch(w) for w in words):
                return " AND ".join(words) if len(words) > 1 else words[0]
            return f"#search({', '.join([*(fields or ['*']), _quote(str(texts[0].value))])})"
        if name == "startswith" and len(names) == 1 and len(texts) == 1:
            return f"#startswith({self.field_name(names[0])}, {_quote(str(texts[0].value))})"
        raise self.error(f"{name}() has no v1 equivalent here")

    def comparison(self) -> str:
        name = self.field_name(self.take())
        if self.keyword("is"):
            self.take()
            negated = False
            if self.keyword("not"):
                self.take()
                negated = True
            word = self.expect("name").text.lower()
            if word == "null":
                return f"NOT #null({name})" if negated else f"#null({name})"
            if word in ("true", "false"):
                value = word if not negated else ("false" if word == "true" else "true")
                return f"{name}:{value}"
            raise self.error(f"IS {word.upper()} is not a test v1 knows")
        if self.keyword("in"):
            self.take()
            return self.in_clause(name)
        if self.keyword("like"):
            raise self.error("LIKE has no exact v1 equivalent")
        op = self.take()
        if op.kind != "op":
            raise self.error(f"expected a comparison after {name!r}, found {op.text!r}")
        operand = self.take()
        text = self.literal_text(operand)
        if op.text in ("=", ":"):
            if operand.kind == "string":
                return f"#exact({name}, {_quote(str(operand.value))})"
            return f"{name}:{text}"
        if op.text in ("!=", "<>"):
            if operand.kind == "string":
                return f"NOT #exact({name}, {_quote(str(operand.value))})"
            return f"NOT {name}:{text}"
        return f"{name}{op.text}{text}"

    def in_clause(self, name: str) -> str:
        opening = self.take()
        if opening.kind == "punct" and opening.text == "(":
            items = []
            while True:
                value = self.take()
                if value.kind == "string":
                    items.append(f"#exact({name}, {_quote(str(value.value))})")
                else:
                    items.append(f"{name}:{self.literal_text(value)}")
                separator = self.take()
                if separator.text == ")":
                    break
                if separator.text != ",":
                    raise self.error(f"unexpected {separator.text!r} in a list")
            return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"
        if opening.kind == "punct" and opening.text in ("[", "]"):
            low = self.literal_text(self.take())
            middle = self.take()
            if middle.text != ".." and middle.text.lower() != "to":
                raise self.error("a range is written [low..high]")
            high = self.literal_text(self.take())
            closing = self.take()
            if closing.text not in ("[", "]"):
                raise self.error("a range ends with ] or [")
            if opening.text == "[" and closing.text == "]":
                return f"{name}:[{low} TO {high}]"
            low_op = ">=" if opening.text == "[" else ">"
            high_op = "<=" if closing.text == "]" else "<"
            return f"({name}{low_op}{low} AND {name}{high_op}{high})"
        raise self.error(f"unexpected {opening.text!r} after IN")

    def field_name(self, token: _Token) -> str:
        name = str(token.value)
        if token.kind != "name" or not _V1_NAME.fullmatch(name):
            raise self.error(f"{token.text!r} is not a field name v1 can write")
        if name.lower() in ("and", "or", "not", "to"):
            raise self.error(f"the field name {name!r} is a word of the v1 query language")
        return name

    def literal_text(self, token: _Token) -> str:
        if token.kind == "number":
            if not re.fullmatch(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", token.text):
                raise self.error(f"{token.text!r} is not a plain number")
            return token.text
        if token.kind == "date":
            return str(token.value).strip().replace(" ", "T")
        if token.kind == "string":
            return _quote(str(token.value))
        if token.kind == "name" and token.text.lower() in ("true", "false"):
            return token.text.lower()
        raise self.error(f"{token.text or 'nothing'!r} is not a literal v1 can write")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(text: str) -> str:
    return _quote(text)


_BBOX = re.compile(
    r"in_bbox\(\s*(?P<field>`[^`]*`|[A-Za-z0-9_]+)\s*,\s*(?P<lat1>[-0-9.eE+]+)\s*,\s*"
    r"(?P<lon1>[-0-9.eE+]+)\s*,\s*(?P<lat2>[-0-9.eE+]+)\s*,\s*(?P<lon2>[-0-9.eE+]+)\s*\)",
    re.IGNORECASE,
)
_DISTANCE = re.compile(
    r"(?:within_distance|distance)\(\s*(?P<field>`[^`]*`|[A-Za-z0-9_]+)\s*,\s*"
    r"geom'POINT\s*\(\s*(?P<lon>[-0-9.eE+]+)\s+(?P<lat>[-0-9.eE+]+)\s*\)'\s*,\s*"
    r"(?P<distance>[0-9.eE+]+)(?P<unit>m|km)?\s*\)",
    re.IGNORECASE,
)
_INTERSECTS = re.compile(
    r"intersects\(\s*(?P<field>`[^`]*`|[A-Za-z0-9_]+)\s*,\s*geom'(?P<geometry>[^']*)'\s*\)",
    re.IGNORECASE,
)


def _geofilter(condition: str) -> tuple[str, str] | None:
    """A whole condition that is a spatial filter, as a v1 geofilter parameter."""
    text = condition.strip()
    match = _BBOX.fullmatch(text)
    if match:
        return "geofilter.bbox", ",".join(match[key] for key in ("lat1", "lon1", "lat2", "lon2"))
    match = _DISTANCE.fullmatch(text)
    if match:
        metres = float(match["distance"]) * (1000 if (match["unit"] or "m").lower() == "km" else 1)
        text_metres = str(int(metres)) if metres.is_integer() else repr(metres)
        return "geofilter.distance", f"{match['lat']},{match['lon']},{text_metres}"
    match = _INTERSECTS.fullmatch(text)
    if match:
        try:
            geometry = json.loads(match["geometry"])
        except json.JSONDecodeError:
            raise _untranslatable(condition, "v1 needs a GeoJSON polygon") from None
        if (
            not isinstance(geometry, Mapping)
            or geometry.get("type") != "Polygon"
            or len(geometry.get("coordinates") or []) != 1
        ):
            raise _untranslatable(condition, "geofilter.polygon takes one Polygon without holes")
        ring = geometry["coordinates"][0]
        return "geofilter.polygon", ",".join(f"({lat},{lon})" for lon, lat, *_ in ring)
    return None


def translate_where(conditions: Sequence[str]) -> V1Translation:
    """ODSQL ``where`` conditions (AND-ed) as a v1 ``q`` and geofilter parameters.

    Raises
    ------
    InvalidQueryArgument
        For a condition v1 cannot express, naming it; or for two spatial filters of one
        kind (v1 takes one of each).
    """
    parts: list[str] = []
    geofilters: dict[str, str] = {}
    for condition in conditions:
        if not condition or not condition.strip():
            continue
        geofilter = _geofilter(condition)
        if geofilter is not None:
            name, value = geofilter
            if name in geofilters and geofilters[name] != value:
                raise _untranslatable(condition, f"v1 takes a single {name}")
            geofilters[name] = value
            continue
        parts.append(_Reader(condition).read())
    if not parts:
        q = None
    elif len(parts) == 1:
        q = parts[0]
    else:
        q = " AND ".join(part if part.startswith("(") else f"({part})" for part in parts)
    return V1Translation(q, sorted(geofilters.items()))


# ============================================================================================
# The adapter
# ============================================================================================


def _facet_pair(item: str, prefix: str) -> tuple[str, str]:
    """``facet:"value"`` (as ``facet_filters`` writes it) -> ``("<prefix>.facet", value)``."""
    facet, _, value = item.partition(":")
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = value[1:-1]
    return f"{prefix}.{facet.strip().strip('`')}", value


def _order_expression(item: str) -> tuple[str, bool]:
    """``(expression, descending)`` of one ``order_by`` item."""
    text = item.strip()
    match = re.fullmatch(r"(?P<expr>.+?)\s+(?P<dir>asc|desc)", text, re.IGNORECASE | re.DOTALL)
    if match:
        return match["expr"].strip(), match["dir"].lower() == "desc"
    return text, False


@dataclass(frozen=True)
class _Serie:
    key: str
    name: str
    func: str
    expr: str | None


@dataclass(frozen=True)
class _AnalyzePlan:
    key: str
    x_field: str
    components: dict[str, str]  # x parameters (precision, periodic)
    kind: str  # "value", "date" or the date part name
    series: tuple[_Serie, ...]


class SearchV1(ExploreAdapter):
    """Search API v1: ``<portal>/api/records/1.0/...`` and ``/api/datasets/1.0/...``.

    Examples
    --------
    >>> api = SearchV1.open("data.example.org")  # doctest: +SKIP
    >>> api.count(Query("my-dataset", where={"city": "Paris"}))  # doctest: +SKIP
    """

    version = "1.0"
    count_key = "nhits"
    export_format_names = DOWNLOAD_FORMATS
    export_format_label = "a v1 download format"
    grouped_max_limit = None

    def __init__(self, portal: str, http: Any) -> None:
        super().__init__(portal, http)
        self._metadata: dict[str, dict[str, Any]] = {}

    # -- URLs -----------------------------------------------------------------------------

    @property
    def catalog_url(self) -> str:
        return f"{self.base_url}{SEARCH_V1_DATASETS}"

    def dataset_url(self, dataset: str) -> str:
        return f"{self.catalog_url}/{dataset_path_segment(dataset)}"

    @property
    def records_url(self) -> str:
        return f"{self.base_url}{SEARCH_V1_RECORDS}"

    def url_for(self, request: PlannedRequest) -> str:
        endpoint, params = self._v1_request(request)
        return build_url(f"{self.records_url}/{endpoint}/", params)

    # -- metadata -------------------------------------------------------------------------

    def _json(self, url: str, params: Any, dataset: str | None) -> Any:
        return self.http.get_json(url, params, dataset=dataset)

    def dataset_metadata(self, dataset: str) -> dict[str, Any]:
        """``GET /api/datasets/1.0/<id>/`` as a v2.1 dataset object."""
        body = self._json(f"{self.dataset_url(dataset)}/", None, dataset)
        metadata = dataset_v21(body, dataset)
        self._metadata[dataset] = metadata
        return metadata

    def _fields(self, dataset: str) -> list[dict[str, Any]]:
        if dataset not in self._metadata:
            self.dataset_metadata(dataset)
        fields = self._metadata[dataset].get("fields")
        return fields if isinstance(fields, list) else []

    def _field_map(self, dataset: str) -> dict[str, dict[str, Any]]:
        return {item["name"]: item for item in self._fields(dataset) if "name" in item}

    def export_formats(self, dataset: str) -> list[str]:
        """The formats of ``/api/records/1.0/download/`` (the same for every dataset)."""
        return list(DOWNLOAD_FORMATS)

    def attachments(self, dataset: str) -> list[dict[str, Any]]:
        """The dataset's attachments as ``[{href, metas}]`` (from the dataset lookup)."""
        metadata = self.dataset_metadata(dataset)
        items = metadata.get("attachments") or []
        out = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping) or not item.get("id"):
                continue
            href = f"{self.dataset_url(dataset)}/attachments/{item['id']}/"
            out.append({"href": href, "metas": dict(item)})
        return out

    # -- parameter translation ------------------------------------------------------------

    def _sort_values(self, dataset: str, order_by: str) -> list[str]:
        fields = self._field_map(dataset)
        sorts = []
        for item in split_top_level(order_by):
            expression, descending = _order_expression(item)
            name = plain_name(expression)
            if name is None:
                raise InvalidQueryArgument(
                    f"order_by: {item!r} cannot be a v1 sort (v1 sorts on field names only)"
                )
            field = fields.get(name)
            if field is not None and field.get("type") not in _SORTABLE_TYPES:
                annotations = normalize_annotations(field.get("annotations"))
                if field.get("type") != "text" or "sortable" not in annotations:
                    logger.info("v1 cannot sort on %s (not sortable); left out of sort", name)
                    continue
            sorts.append(name if descending else f"-{name}")
        return sorts

    def _common(
        self,
        params: Sequence[tuple[str, str]],
        dataset: str,
        *,
        with_order: bool = True,
        with_fields: bool = True,
    ) -> list[tuple[str, str]]:
        """The v1 form of the filtering, field and order parameters."""
        out: list[tuple[str, str]] = [("dataset", dataset)]
        translation = translate_where([value for name, value in params if name == "where"])
        if translation.q is not None:
            out.append(("q", translation.q))
        out += translation.geofilters
        for name, value in params:
            if name in ("refine", "exclude"):
                out.append(_facet_pair(value, name))
            elif name in ("timezone", "lang"):
                out.append((name, value))
            elif name == "select" and with_fields:
                out.append(("fields", self._fields_param(value)))
            elif name == "order_by" and with_order:
                out += [("sort", value) for value in self._sort_values(dataset, value)]
        return out

    @staticmethod
    def _fields_param(select: str) -> str:
        names = []
        for item in split_top_level(select):
            name = plain_name(item)
            if name is None:
                raise InvalidQueryArgument(
                    f"select: {item!r} cannot be asked from v1, which returns fields by name "
                    "only (fields=a,b); use the v2.1 API for expressions"
                )
            names.append(name)
        return ",".join(names)

    def _v1_request(self, request: PlannedRequest) -> tuple[str, list[tuple[str, str]]]:
        """``(endpoint, v1 parameters)`` of a planned (v2.1-style) request."""
        params = list(request.params)
        if request.kind == "grouped" or request.param("group_by"):
            return "analyze", self._analyze_params(request.dataset, params)
        if request.kind == "export":
            out = self._common(params, request.dataset)
            out.append(("format", request.export_format or "csv"))
            limit = request.param("limit")
            out.append(("rows", limit if limit is not None else "-1"))
            out += [(name, value) for name, value in params if name in _DOWNLOAD_OPTIONS]
            return "download", out
        counting = request.kind == "count"
        out = self._common(
            params, request.dataset, with_order=not counting, with_fields=not counting
        )
        limit = request.param("limit")
        out.append(("rows", "0" if request.kind == "count" else (limit or "10")))
        if request.kind != "count":
            out.append(("start", str(request.offset)))
        return "search", out

    # -- records --------------------------------------------------------------------------

    def _count_answer(self, request: PlannedRequest) -> tuple[dict[str, Any], str]:
        return self._search(request), f"{self.records_url}/search/"

    def _search(self, request: PlannedRequest) -> dict[str, Any]:
        _, params = self._v1_request(request)
        url = f"{self.records_url}/search/"
        return self._json_object(url, params, request.dataset)

    def _fetch(self, request: PlannedRequest) -> list[dict[str, Any]]:
        if request.kind == "grouped" or request.param("group_by"):
            return self._analyze(request)
        check_page_window(request.limit or 0, request.offset)
        body = self._search(request)
        return self.flat_records(request.dataset, records_from_v1(body), request.param("select"))

    def flat_records(
        self, dataset: str, records: list[dict[str, Any]], select: str | None = None
    ) -> list[dict[str, Any]]:
        """v1 ``fields`` dicts as v2.1 flat records: every (selected) schema field, in schema
        order, null when absent; points ``{lon, lat}``; shapes as Feature wrappers."""
        fields = self._fields(dataset)
        if select:
            wanted = self._fields_param(select).split(",")
            by_name = {item["name"]: item for item in fields}
            fields = [by_name.get(name, {"name": name, "type": ""}) for name in wanted]
        names = [item["name"] for item in fields]
        types = {item["name"]: item.get("type") for item in fields}
        out = []
        for record in records:
            flat = {name: _v21_value(record.get(name), types.get(name)) for name in names}
            for key, value in record.items():
                if key not in flat:
                    flat[key] = value
            out.append(flat)
        return out

    def iter_records(
        self, query: Query, *, records_threshold: int = DEFAULT_RECORDS_THRESHOLD
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``query`` as a flat v2.1 dict, along the plan's route (a JSON
        download past the threshold, whose v1 records are flattened here)."""
        select = ", ".join(query.select) or None
        for record in super().iter_records(query, records_threshold=records_threshold):
            if isinstance(record.get("fields"), Mapping) and "recordid" in record:
                yield self.flat_records(query.dataset, [dict(record["fields"])], select)[0]
            else:
                yield record

    # -- grouped: /analyze/ ---------------------------------------------------------------

    def grouped(self, query: Query) -> list[dict[str, Any]]:
        """The groups of a ``group_by`` query through ``/analyze/``.

        One group key: a field (text, number, boolean or date; a date field groups by day,
        month or year after its precision), or ``year()``, ``month()``, ``day()``,
        ``hour()``, ``minute()`` or ``dayofweek()`` of a date field. Select items: the key
        and ``count(*)``, ``count(f)``, ``sum()``, ``avg()``, ``min()``, ``max()`` of a
        field or arithmetic. ``order_by`` on the key or an aggregate; ``limit`` caps the
        groups (``maxpoints``).
        """
        return super().grouped(query)

    def _analyze_plan(self, dataset: str, params: Sequence[tuple[str, str]]) -> _AnalyzePlan:
        values = dict(params)
        items = split_top_level(values.get("group_by", ""))
        if len(items) != 1:
            raise InvalidQueryArgument(
                f"group_by: v1 analyze groups on one key, got {len(items)} "
                f"({values.get('group_by')!r}); use the v2.1 API"
            )
        expression, alias = item_alias(items[0])
        fields = self._field_map(dataset)
        name = plain_name(expression)
        components: dict[str, str] = {}
        if name is not None:
            key = alias or name
            field = fields.get(name)
            kind_of = (field or {}).get("type")
            if kind_of == "datetime":
                raise InvalidQueryArgument(
                    f"group_by: v1 analyze cannot group on the exact values of the datetime "
                    f"field {name!r}; group on year({name}), month({name}) ... instead"
                )
            kind = "value"
            if kind_of == "date":
                kind = "date"
                annotations = normalize_annotations((field or {}).get("annotations"))
                precision = str((annotations.get("timeserie_precision") or ["day"])[0])
                components["precision"] = precision if precision in ("year", "month") else "day"
            x_field = name
        else:
            call = re.fullmatch(r"(?P<f>[A-Za-z]+)\s*\(\s*(?P<arg>[^()]+?)\s*\)", expression)
            if call is None or call["f"].lower() not in _DATE_PARTS:
                raise InvalidQueryArgument(
                    f"group_by: {expression!r} cannot be a v1 analyze x (a field, or year(), "
                    "month(), day(), hour(), minute(), dayofweek() of a date field)"
                )
            arg = plain_name(call["arg"])
            if arg is None:
                raise InvalidQueryArgument(
                    f"group_by: {expression!r}: the argument must be a field"
                )
            periodic, precision = _DATE_PARTS[call["f"].lower()]
            components = {"periodic": periodic, "precision": precision}
            kind = call["f"].lower()
            key = alias or expression
            x_field = arg
        series = []
        key_names = {key, expression, *([name] if name else [])}
        for index, item in enumerate(split_top_level(values.get("select", ""))):
            expr, serie_alias = item_alias(item)
            if expr in key_names or plain_name(expr) in key_names:
                continue  # the group key itself
            call = re.fullmatch(r"(?P<f>[A-Za-z]+)\s*\((?P<arg>.*)\)", expr, re.DOTALL)
            if call is None or call["f"].lower() not in _AGGREGATES:
                raise InvalidQueryArgument(
                    f"select: {item!r} is not a v1 analyze serie (count, sum, avg, min, max)"
                )
            func = _AGGREGATES[call["f"].lower()]
            argument = call["arg"].strip()
            serie_expr = None if argument in ("*", "") else argument.replace("`", "")
            if func != "COUNT" and serie_expr is None:
                raise InvalidQueryArgument(f"select: {item!r} needs a field")
            series.append(_Serie(serie_alias or expr, f"s{index}", func, serie_expr))
        return _AnalyzePlan(key, x_field, components, kind, tuple(series))

    def _analyze_params(
        self, dataset: str, params: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        plan = self._analyze_plan(dataset, params)
        out = self._common(params, dataset, with_order=False, with_fields=False)
        out.append(("x", plan.x_field))
        out += sorted(plan.components.items())
        series = plan.series or (_Serie("", "count", "COUNT", None),)
        for serie in series:
            out.append((f"y.{serie.name}.func", serie.func))
            if serie.expr is not None:
                out.append((f"y.{serie.name}.expr", serie.expr))
        order_by = dict(params).get("order_by")
        if order_by:
            items = split_top_level(order_by)
            if len(items) != 1:
                raise InvalidQueryArgument("order_by: v1 analyze sorts on one key or serie")
            expression, descending = _order_expression(items[0])
            target = plain_name(expression) or expression
            by_key = {serie.key: serie.name for serie in series}
            if target in (plan.key, plan.x_field):
                out.append(("sort", "x" if descending else "-x"))
            elif target in by_key:
                out.append(("sort", by_key[target] if descending else f"-{by_key[target]}"))
            else:
                raise InvalidQueryArgument(
                    f"order_by: {items[0]!r} is neither the group key nor a selected aggregate"
                )
        limit = dict(params).get("limit")
        if limit is not None:
            out.append(("maxpoints", limit))
        return out

    def _analyze(self, request: PlannedRequest) -> list[dict[str, Any]]:
        params = list(request.params)
        plan = self._analyze_plan(request.dataset, params)
        url = f"{self.records_url}/analyze/"
        body = self._json(url, self._analyze_params(request.dataset, params), request.dataset)
        if not isinstance(body, list):
            raise ServerError(
                f"The analysis of dataset {request.dataset!r} is not a JSON list.",
                dataset=request.dataset,
                url=url,
            )
        groups = []
        for point in body:
            if not isinstance(point, Mapping) or "x" not in point:
                raise ServerError(f"An analyze point has no 'x': {point!r:.80}", url=url)
            group = {plan.key: _x_value(point["x"], plan)}
            for serie in plan.series:
                group[serie.key] = point.get(serie.name)
            groups.append(group)
        return groups

    # -- exports --------------------------------------------------------------------------

    def _check_export_options(self, query: Query, options: Mapping[str, Any]) -> None:
        """Only ``csv_separator`` and ``use_labels_for_header``; no grouping."""
        unknown = set(options) - _DOWNLOAD_OPTIONS
        if unknown:
            raise InvalidQueryArgument(
                f"options: {', '.join(sorted(unknown))} are not v1 download parameters "
                f"({', '.join(sorted(_DOWNLOAD_OPTIONS))})"
            )
        if query.grouped:
            raise InvalidQueryArgument("group_by: the v1 download has no grouping; use grouped()")

    def _export_call(self, request: PlannedRequest) -> tuple[str, Any]:
        """``/api/records/1.0/download/`` in csv, json or geojson."""
        if request.export_format not in DOWNLOAD_FORMATS:
            raise InvalidQueryArgument(
                f"stream_planned: {request.export_format!r} is not a v1 download format"
            )
        _, params = self._v1_request(request)
        return f"{self.records_url}/download/", params

    # -- facets and catalog ---------------------------------------------------------------

    def _facets(
        self, dataset: str, filters: list[tuple[str, str]], names: list[Any] | None
    ) -> dict[str, Any]:
        """The facets of a ``rows=0`` search (items get ``value``); by default those of
        the dataset's ``facet``-annotated fields."""
        if names is None:
            names = [
                item["name"]
                for item in self._fields(dataset)
                if "facet" in normalize_annotations(item.get("annotations"))
            ]
        for name in names:
            if not isinstance(name, str) or not _V1_NAME.fullmatch(name.strip()):
                raise InvalidQueryArgument(
                    f"facet: v1 takes facet names, got {name!r} (no facet(...) expressions)"
                )
        request = PlannedRequest("count", dataset, tuple(sorted([*filters, ("limit", "0")])))
        _, params = self._v1_request(request)
        params += [("facet", name.strip()) for name in names]
        body = self._json(f"{self.records_url}/search/", params, dataset)
        groups = body.get("facet_groups", []) if isinstance(body, Mapping) else []
        return {"facets": [_facet_group_v21(group) for group in groups]}

    def _catalog_page(self, request: CatalogRequest) -> dict[str, Any]:
        """``GET /api/datasets/1.0/search/`` as ``{"total_count", "results": [...]}``."""
        if request.select:
            raise InvalidQueryArgument(
                "select: the v1 dataset search returns whole dataset objects; drop select"
            )
        params: list[tuple[str, str]] = []
        translation = translate_where(request.where)
        if translation.geofilters:
            raise InvalidQueryArgument("where: the v1 dataset search has no geofilters")
        if translation.q is not None:
            params.append(("q", translation.q))
        params += [_facet_pair(item, "refine") for item in request.refine]
        params += [_facet_pair(item, "exclude") for item in request.exclude]
        for item in request.order_by:
            expression, descending = _order_expression(item)
            name = plain_name(expression)
            if name is None:
                raise InvalidQueryArgument(f"order_by: {item!r} cannot be a v1 sort")
            params.append(("sort", name if descending else f"-{name}"))
        params += request.locale
        params += [("rows", str(request.limit)), ("start", str(request.offset))]
        url = f"{self.catalog_url}/search/"
        body = self._json(url, params, None)
        if not isinstance(body, Mapping) or not isinstance(body.get("datasets"), list):
            raise ServerError(f"{url} answered no 'datasets' list (v1).", url=url)
        results = [dataset_v21(item, None) for item in body["datasets"]]
        return {"total_count": body.get("nhits"), "results": results}


# ============================================================================================
# Answers in the v2.1 shapes
# ============================================================================================


def _v21_value(value: Any, kind: str | None) -> Any:
    if value is None:
        return None
    if kind == "geo_point_2d" and isinstance(value, list | tuple) and len(value) == 2:
        return {"lon": value[1], "lat": value[0]}
    if kind == "geo_shape" and isinstance(value, Mapping) and value.get("type") != "Feature":
        return {"type": "Feature", "geometry": dict(value), "properties": {}}
    return value


def _x_value(x: Any, plan: _AnalyzePlan) -> Any:
    """An analyze ``x`` as the v2.1 group key."""
    if plan.kind == "value":
        return x
    if not isinstance(x, Mapping):
        return x
    if plan.kind == "date":
        year, month, day = x.get("year"), x.get("month"), x.get("day")
        if year is None:
            return None
        text = f"{int(year):04d}"
        if month is not None:
            text += f"-{int(month):02d}"
            if day is not None:
                text += f"-{int(day):02d}"
        return text
    if plan.kind == "dayofweek":
        weekday = x.get("weekday")
        return None if weekday is None else int(weekday) + 1
    return x.get(plan.kind)


def _facet_items_v21(items: Any) -> list[dict[str, Any]]:
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        converted = {key: value for key, value in item.items() if key not in ("path", "facets")}
        converted["value"] = item.get("path", item.get("name"))
        if item.get("facets"):
            converted["facets"] = _facet_items_v21(item["facets"])
        out.append(converted)
    return out


def _facet_group_v21(group: Any) -> dict[str, Any]:
    if not isinstance(group, Mapping):
        raise ServerError(f"A v1 facet group is not an object: {group!r:.80}")
    return {"name": group.get("name"), "facets": _facet_items_v21(group.get("facets"))}


#: Keys of the v1 flat ``metas`` that describe the domain, not the dataset.
_DOMAIN_METAS = frozenset({"domain", "staged", "visibility"})


def dataset_v21(body: Any, dataset: str | None) -> dict[str, Any]:
    """A v1 dataset object as a v2.1 one (``dataset_id``, ``metas.default``, dict
    annotations)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("fields", []), list):
        raise ServerError(
            f"The v1 metadata of dataset {dataset!r} is not a dataset object.", dataset=dataset
        )
    metas = body.get("metas") if isinstance(body.get("metas"), Mapping) else {}
    assert isinstance(metas, Mapping)
    templates: dict[str, Any] = {
        "default": {key: value for key, value in metas.items() if key not in _DOMAIN_METAS}
    }
    interop = body.get("interop_metas")
    if isinstance(interop, Mapping):
        templates.update({str(key): value for key, value in interop.items()})
    fields = []
    for item in body.get("fields") or []:
        if not isinstance(item, Mapping):
            continue
        fields.append(
            {
                "name": item.get("name"),
                "label": item.get("label") or item.get("name"),
                "type": item.get("type"),
                "annotations": normalize_annotations(item.get("annotations")),
                "description": item.get("description"),
            }
        )
    return {
        "visibility": metas.get("visibility", "domain"),
        "dataset_id": body.get("datasetid", dataset),
        "has_records": body.get("has_records"),
        "features": list(body.get("features") or []),
        "attachments": list(body.get("attachments") or []),
        "alternative_exports": list(body.get("alternative_exports") or []),
        "data_visible": body.get("data_visible", True),
        "fields": fields,
        "metas": templates,
    }
