"""v1-style parameters of the legacy download route, as ODSQL for the engine.

``/explore/dataset/<id>/download/`` (and the v1 ``/api/records/1.0/download/``) take v1
parameters (ods-api.md sections 2.2, 2.8 and 2.11): ``q`` in the v1 query language,
``refine.<facet>=value``, ``exclude.<facet>=value``, ``disjunctive.<facet>=true``,
``geofilter.distance``, ``geofilter.polygon`` and ``fields``. :func:`legacy_filters`
translates them into the v2.1 ``where``/``refine``/``exclude``/``facet``/``select`` the
engine compiles, so both API generations filter the same way.

The ``q`` subset understood: words (prefix match on every text field, as ``suggest()``),
``"quoted phrases"`` (full-text), ``AND``/``OR``/``NOT`` with parentheses (adjacent terms
are AND-ed), field queries ``field:value`` (also ``==``, ``=``, ``>``, ``<``, ``>=``, ``<=``;
dates as ``YYYY``, ``YYYY/MM``, ``YYYY/MM/DD`` or ISO), ``field:[a TO b]``, and the functions
``#null(f)``, ``#exact(f, "v")``, ``#startswith(f, "v")``, ``#search(f, ..., "text")``,
``#distance(f, "lat, lon", metres)``, ``#polygon(f, "(lat,lon),(lat,lon),...")`` and
``#now(...)`` as a date value (``start >= #now(days=-7)``; ``weeks=`` and ``weekday=MO(2)``
too). A ``name:value`` whose name is not a field is searched as text. Other ``#`` functions
(``#geometry``, ``#attr``) answer 400.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from odsframe.testing import odsql
from odsframe.testing.engine import WEEKDAY_PLURALS
from odsframe.testing.errors import InvalidRESTParameterError
from odsframe.testing.model import PortalDataset, PortalField

_FIELD_QUERY = re.compile(r"([A-Za-z_][\w.\-]*)\s*(==|>=|<=|:|=|>|<)\s*")
_DATE_VALUE = re.compile(r"\d{4}([/-]\d{1,2}([/-]\d{1,2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?)?)?")
_NUMBER_VALUE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SUPPORTED_FUNCTIONS = ("null", "exact", "startswith", "search", "distance", "polygon")
_NOW_VALUE = re.compile(r"#now\s*\((?:[^()]|\([^()]*\))*\)", re.IGNORECASE)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


class V1QueryError(InvalidRESTParameterError):
    """A ``q`` the local portal cannot translate."""


@dataclass
class _Token:
    kind: str  # "(", ")", "and", "or", "not", "word", "phrase", "field", "function"
    text: str = ""
    field: str = ""
    op: str = ""
    value: str = ""
    quoted: bool = False
    args: tuple[str, ...] = ()


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The content of the ``"..."`` starting at ``start`` and the index after it."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise V1QueryError(f"Invalid value for q API parameter: unclosed quote in {text!r}.")


def _split_arguments(text: str) -> tuple[str, ...]:
    """Comma-separated arguments, quotes respected (quoted ones keep their quotes)."""
    arguments: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            content, end = _read_quoted(text, index)
            current.append('"' + content.replace('"', '\\"') + '"')
            index = end
            continue
        if char == ",":
            arguments.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    arguments.append("".join(current).strip())
    return tuple(a for a in arguments if a)


def tokenize_v1(text: str) -> list[_Token]:
    """Tokens of a v1 ``q``."""
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char in "()":
            tokens.append(_Token(char))
            index += 1
            continue
        if char == '"':
            content, index = _read_quoted(text, index)
            tokens.append(_Token("phrase", content))
            continue
        if char == "#":
            match = re.compile(r"#(\w+)\s*\(").match(text, index)
            if match is None:
                raise V1QueryError(f"Invalid value for q API parameter: bad function in {text!r}.")
            depth, end, inside = 1, match.end(), False
            while end < len(text) and depth:
                if text[end] == '"' and text[end - 1] != "\\":
                    inside = not inside
                elif not inside and text[end] == "(":
                    depth += 1
                elif not inside and text[end] == ")":
                    depth -= 1
                end += 1
            if depth:
                raise V1QueryError(
                    f"Invalid value for q API parameter: unclosed parenthesis in {text!r}."
                )
            arguments = _split_arguments(text[match.end() : end - 1])
            tokens.append(_Token("function", match.group(1).lower(), args=arguments))
            index = end
            continue
        match = _FIELD_QUERY.match(text, index)
        if match is not None:
            value_start = match.end()
            if value_start < len(text) and text[value_start] == '"':
                value, index = _read_quoted(text, value_start)
                quoted = True
            elif value_start < len(text) and text[value_start] == "[":
                close = text.find("]", value_start)
                if close < 0:
                    raise V1QueryError(
                        f"Invalid value for q API parameter: unclosed range in {text!r}."
                    )
                value, index, quoted = text[value_start : close + 1], close + 1, False
            elif (now := _NOW_VALUE.match(text, value_start)) is not None:
                value, index, quoted = now.group(0), now.end(), False
            else:
                bare = re.compile(r"[^\s()]*").match(text, value_start)
                assert bare is not None
                value, index, quoted = bare.group(0), bare.end(), False
            tokens.append(
                _Token(
                    "field",
                    text[match.start() : index],
                    field=match.group(1),
                    op=match.group(2),
                    value=value,
                    quoted=quoted,
                )
            )
            continue
        bare = re.compile(r"[^\s()\"]+").match(text, index)
        assert bare is not None
        word = bare.group(0)
        index = bare.end()
        kind = word.lower() if word in ("AND", "OR", "NOT") else "word"
        tokens.append(_Token(kind, word))
    return tokens


class _V1Translator:
    """Recursive descent over v1 ``q`` tokens, writing ODSQL."""

    def __init__(self, tokens: list[_Token], dataset: PortalDataset, text: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.fields = {f.name: f for f in dataset.fields}
        self.text = text

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def error(self, detail: str) -> V1QueryError:
        return V1QueryError(f"Invalid value for q API parameter: {detail} (in {self.text!r}).")

    def translate(self) -> str:
        result = self.disjunction()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().text or self.peek().kind!r}")  # type: ignore[union-attr]
        return result

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while (token := self.peek()) is not None and token.kind not in ("or", ")"):
            if token.kind == "and":
                self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        token = self.peek()
        if token is not None and token.kind == "not":
            self.take()
            return f"NOT ({self.negation()})"
        return self.atom()

    def atom(self) -> str:
        token = self.peek()
        if token is None:
            raise self.error("an expression is missing")
        self.take()
        if token.kind == "(":
            inner = self.disjunction()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise self.error("a closing parenthesis is missing")
            self.take()
            return f"({inner})"
        if token.kind == "phrase":
            return odsql.quote_string(token.text)
        if token.kind == "word":
            return f"suggest({odsql.quote_string(token.text)})"
        if token.kind == "function":
            return self.function(token)
        if token.kind == "field":
            portal_field = self.fields.get(token.field)
            if portal_field is None:
                return f"suggest({odsql.quote_string(token.text)})"
            return self.field_query(portal_field, token)
        raise self.error(f"unexpected {token.text or token.kind!r}")

    def function(self, token: _Token) -> str:
        name, arguments = token.text, token.args
        if name not in _SUPPORTED_FUNCTIONS:
            raise self.error(
                f"#{name}() is not supported by the local portal (supported: "
                + ", ".join(f"#{n}()" for n in _SUPPORTED_FUNCTIONS)
                + ")"
            )
        if name in ("distance", "polygon"):
            return self.geo_function(name, arguments)
        fields = [self.field_name(a) for a in arguments if not a.startswith('"')]
        texts = [a for a in arguments if a.startswith('"')]
        if name == "null":
            if len(fields) != 1 or texts:
                raise self.error("#null() takes one field name")
            return f"{fields[0]} IS NULL"
        if not texts:
            raise self.error(f"#{name}() needs a quoted text")
        if name == "exact":
            if len(fields) != 1:
                raise self.error("#exact() takes a field name and a quoted value")
            return f"{fields[0]} = {texts[-1]}"
        if name == "startswith":
            if len(fields) != 1:
                raise self.error("#startswith() takes a field name and a quoted prefix")
            return f"startswith({fields[0]}, {texts[-1]})"
        return f"search({', '.join([*fields, texts[-1]])})"

    def geo_function(self, name: str, arguments: tuple[str, ...]) -> str:
        """``#distance(f, "lat, lon", metres)`` and ``#polygon(f, "(lat,lon),...")``."""
        expected = 3 if name == "distance" else 2
        if len(arguments) != expected or not arguments[1].startswith('"'):
            usage = (
                '#distance(field, "lat, lon", metres)'
                if name == "distance"
                else '#polygon(field, "(lat,lon),(lat,lon),...")'
            )
            raise self.error(f"#{name}() is written {usage}")
        field = self.fields.get(arguments[0])
        if field is None or field.type not in ("geo_point_2d", "geo_shape"):
            raise self.error(f"#{name}() needs a geo field, not {arguments[0]!r}")
        target = odsql.quote_name(field.name)
        where = f"#{name}"
        if name == "distance":
            lat, lon = _numbers(arguments[1][1:-1], where, 2, self.text)
            (metres,) = _numbers(arguments[2], where, 1, self.text)
            return distance_odsql(target, lat, lon, metres)
        numbers = _numbers(arguments[1][1:-1], where, None, self.text)
        if len(numbers) % 2 or len(numbers) < 6:
            raise self.error("#polygon() needs at least three (lat,lon) points")
        return polygon_odsql(target, numbers)

    def now_value(self, value: str) -> str:
        """A v1 ``#now(...)`` as the ODSQL ``now(...)`` (``weeks`` and ``MO(2)`` rewritten)."""
        inside = value[value.index("(") + 1 : value.rindex(")")]
        named: list[str] = []
        for argument in _split_arguments(inside):
            key, separator, raw = argument.partition("=")
            key, raw = key.strip().lower(), raw.strip()
            if not separator:
                raise self.error(f"#now() takes named arguments, not {argument!r}")
            weekday = re.fullmatch(r"([A-Za-z]{2})\s*(\(\s*([+-]?\d+)\s*\))?", raw)
            if key == "weekday" and weekday and weekday.group(1).upper() in _WEEKDAYS:
                day = _WEEKDAYS.index(weekday.group(1).upper())
                count = int(weekday.group(3) or 0)
                named.append(f"{WEEKDAY_PLURALS[day]}={count}" if count else f"weekday={day}")
                continue
            if not re.fullmatch(r"[+-]?\d+", raw):
                raise self.error(f"#now() argument {key} must be an integer, not {raw!r}")
            if key == "weeks":
                key, raw = "days", str(7 * int(raw))
            named.append(f"{key}={int(raw)}")
        return f"now({', '.join(named)})"

    def field_name(self, name: str) -> str:
        if name == "*":
            return "*"
        if name not in self.fields:
            raise self.error(f"unknown field {name!r}")
        return odsql.quote_name(name)

    def field_query(self, portal_field: PortalField, token: _Token) -> str:
        name = odsql.quote_name(portal_field.name)
        op = "=" if token.op in (":", "==") else token.op
        value = token.value
        if not token.quoted and value.startswith("[") and value.endswith("]"):
            low, separator, high = value[1:-1].partition(" TO ")
            if not separator:
                raise self.error(f"a range is written [low TO high], not {value!r}")
            low_text = self.literal(portal_field, low.strip(), quoted=False)
            high_text = self.literal(portal_field, high.strip(), quoted=False)
            return f"({name} >= {low_text} AND {name} <= {high_text})"
        literal = self.literal(portal_field, value, quoted=token.quoted)
        if portal_field.multivalued and op == "=":
            return f"{literal} IN {name}"
        return f"{name} {op} {literal}"

    def literal(self, portal_field: PortalField, value: str, *, quoted: bool) -> str:
        kind = portal_field.type
        if kind in ("int", "double") and not quoted:
            if not _NUMBER_VALUE.fullmatch(value):
                raise self.error(f"{portal_field.name} is a number, not {value!r}")
            return value
        if kind in ("date", "datetime") and not quoted and _NOW_VALUE.fullmatch(value):
            return self.now_value(value)
        if kind in ("date", "datetime") and _DATE_VALUE.fullmatch(value):
            return "date'" + value.replace("/", "-") + "'"
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower()
        return odsql.quote_string(value)


def v1_query_to_where(texts: Sequence[str], dataset: PortalDataset) -> list[str]:
    """Every non-blank v1 ``q`` as an ODSQL ``where`` (several ``q`` are AND-ed).

    Raises
    ------
    V1QueryError
        For a ``q`` that cannot be translated (400).
    """
    where = []
    for text in texts:
        if not text.strip():
            continue
        tokens = tokenize_v1(text)
        if tokens:
            where.append(_V1Translator(tokens, dataset, text).translate())
    return where


@dataclass
class LegacyFilters:
    """v1 parameters as v2.1 ones."""

    where: list[str]
    refine: list[str]
    exclude: list[str]
    facets: list[str]
    select: str | None


def _geo_field(dataset: PortalDataset, parameter: str) -> str:
    for kind in ("geo_point_2d", "geo_shape"):
        for portal_field in dataset.fields:
            if portal_field.type == kind:
                return odsql.quote_name(portal_field.name)
    raise InvalidRESTParameterError(
        f"Invalid value for {parameter} API parameter: dataset '{dataset.dataset_id}' has no "
        "geo field."
    )


_EXPECTED_NUMBERS = {
    1: "a number of metres is expected",
    2: "lat,lon is expected",
    3: "lat,lon,distance is expected",
    None: "(lat,lon),(lat,lon),... is expected",
}


def _numbers(
    text: str, parameter: str, count: int | None = None, q: str | None = None
) -> list[float]:
    """The comma-separated numbers of a geofilter value (parentheses ignored).

    ``parameter`` names the request parameter (or, with ``q``, the ``#`` function of that
    v1 query) in the error.
    """
    try:
        numbers = [float(part) for part in text.replace("(", " ").replace(")", " ").split(",")]
    except ValueError:
        numbers = []
    if not numbers or (count is not None and len(numbers) != count):
        expected = _EXPECTED_NUMBERS[count]
        if q is not None:
            raise V1QueryError(
                f"Invalid value for q API parameter: {parameter}() got {text!r} but {expected} "
                f"(in {q!r})."
            )
        raise InvalidRESTParameterError(
            f"Invalid value for {parameter} API parameter: {text!r} was found but {expected}."
        )
    return numbers


def distance_odsql(field: str, lat: float, lon: float, metres: float) -> str:
    """ODSQL for "``field`` within ``metres`` of (lat, lon)" (v1 ``geofilter.distance``)."""
    return f"within_distance({field}, geom'POINT({lon!r} {lat!r})', {metres!r}m)"


def polygon_odsql(field: str, numbers: Sequence[float]) -> str:
    """ODSQL for "``field`` intersects the polygon of (lat, lon) pairs" (v1)."""
    if len(numbers) % 2 or len(numbers) < 6:
        raise InvalidRESTParameterError(
            f"Invalid polygon: {list(numbers)!r} was found but at least three (lat,lon) points "
            "are expected."
        )
    points = [(numbers[i + 1], numbers[i]) for i in range(0, len(numbers), 2)]
    if points[0] != points[-1]:
        points.append(points[0])
    ring = ", ".join(f"{lon!r} {lat!r}" for lon, lat in points)
    return f"intersects({field}, geom'POLYGON(({ring}))')"


def legacy_filters(query: QueryParams, dataset: PortalDataset) -> LegacyFilters:
    """The v1 filtering parameters of a request as v2.1 parameters."""
    where = v1_query_to_where(query.getlist("q"), dataset)
    refine: list[str] = []
    exclude: list[str] = []
    facets: list[str] = []
    for key, value in query.multi_items():
        for prefix, target in (("refine.", refine), ("exclude.", exclude)):
            if key.startswith(prefix) and key[len(prefix) :]:
                target.append(f"{odsql.quote_name(key[len(prefix) :])}:{odsql.quote_string(value)}")
        if key.startswith("disjunctive.") and value.strip().lower() in ("true", "1"):
            name = key[len("disjunctive.") :]
            facets.append(f"facet(name={odsql.quote_string(name)}, disjunctive=true)")
    distance = query.get("geofilter.distance")
    if distance:
        lat, lon, metres = _numbers(distance, "geofilter.distance", 3)
        field = _geo_field(dataset, "geofilter.distance")
        where.append(distance_odsql(field, lat, lon, metres))
    polygon = query.get("geofilter.polygon")
    if polygon:
        numbers = _numbers(polygon, "geofilter.polygon")
        if len(numbers) % 2 or len(numbers) < 6:
            raise InvalidRESTParameterError(
                f"Invalid value for geofilter.polygon API parameter: {polygon!r} was found but "
                "at least three (lat,lon) points are expected."
            )
        field = _geo_field(dataset, "geofilter.polygon")
        where.append(polygon_odsql(field, numbers))
    select = None
    fields_param = query.get("fields")
    if fields_param and fields_param.strip():
        names = [name.strip() for name in fields_param.split(",") if name.strip()]
        unknown = [name for name in names if dataset.field(name) is None]
        if unknown:
            raise InvalidRESTParameterError(
                f"Invalid value for fields API parameter: unknown field(s) {', '.join(unknown)}."
            )
        select = ", ".join(odsql.quote_name(name) for name in names)
    return LegacyFilters(where, refine, exclude, facets, select)
