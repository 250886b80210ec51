"""ODSQL lexer and parser for the local portal: clause text -> AST dataclasses.

The grammar follows the v2.1 reference (ods-api.md section 5). It is a hand-written recursive
descent parser; precedence from loosest to tightest::

    OR  <  AND  <  NOT  <  predicate (= : != <> < > <= >= IN LIKE IS)  <  + -  <  * /  <  unary -

Every node records ``start``/``end`` offsets into the clause text, so that a result key can be
the expression exactly as the user wrote it (``text[node.start:node.end]``). Node equality
ignores positions, which is how the engine matches a select expression with a group key.
Keywords and function names are case-insensitive (function names are stored lower-cased);
field names are case-sensitive. Every malformed input raises :class:`ODSQLError` naming the
clause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from odsframe._spec import RESERVED_WORDS_V21
from odsframe.testing.errors import ODSQLError

#: Metres per distance unit (``within_distance(f, geom'...', 500m)``).
DISTANCE_UNITS: dict[str, float] = {
    "mi": 1609.344,
    "yd": 0.9144,
    "ft": 0.3048,
    "m": 1.0,
    "cm": 0.01,
    "km": 1000.0,
    "mm": 0.001,
}
#: Interval units of date histograms (``range(d, 1d)``), case-sensitive, to a canonical name.
INTERVAL_UNITS: dict[str, str] = {
    "ms": "millisecond",
    "millisecond": "millisecond",
    "milliseconds": "millisecond",
    "s": "second",
    "second": "second",
    "seconds": "second",
    "m": "minute",
    "minute": "minute",
    "minutes": "minute",
    "h": "hour",
    "hour": "hour",
    "hours": "hour",
    "d": "day",
    "day": "day",
    "days": "day",
    "w": "week",
    "week": "week",
    "weeks": "week",
    "M": "month",
    "month": "month",
    "months": "month",
    "q": "quarter",
    "quarter": "quarter",
    "quarters": "quarter",
    "y": "year",
    "year": "year",
    "years": "year",
}
_UNITS = frozenset(DISTANCE_UNITS) | frozenset(INTERVAL_UNITS)

#: Words that are operators or literals wherever they appear unquoted.
_GRAMMAR_KEYWORDS = frozenset(
    {"and", "or", "not", "as", "asc", "desc", "null", "true", "false", "distinct", "by"}
)


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    """One lexical token; ``start``/``end`` are offsets in the clause text."""

    kind: str  # ident, number, quantity, string, date, geom, op, eof
    text: str
    value: Any
    start: int
    end: int
    quoted: bool = False

    def is_word(self, *words: str) -> bool:
        """Whether this is an unquoted identifier equal to one of ``words`` (any case)."""
        return self.kind == "ident" and not self.quoted and self.value.lower() in words


_OPERATORS = (
    "<=",
    ">=",
    "!=",
    "<>",
    "..",
    "=",
    "<",
    ">",
    ":",
    "(",
    ")",
    "[",
    "]",
    ",",
    "*",
    "+",
    "-",
    "/",
)
#: Deepest parenthesis nesting accepted (deeper input would exhaust the recursive parser).
MAX_NESTING = 64
_T = TypeVar("_T")

_WORD = re.compile(r"[A-Za-z0-9_]+")
_DECIMAL = re.compile(r"\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+")
_LETTERS = re.compile(r"[A-Za-z]+")
_JSON_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def tokenize(text: str, clause: str = "where") -> list[Token]:
    """Split ODSQL ``text`` into tokens (the last one has kind ``eof``)."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "\"'":
            value, end = _read_quoted(text, i, clause)
            tokens.append(Token("string", text[i:end], value, i, end))
            i = end
            continue
        if ch == "`":
            value, end = _read_quoted(text, i, clause)
            tokens.append(Token("ident", text[i:end], value, i, end, quoted=True))
            i = end
            continue
        if "0" <= ch <= "9":
            token = _read_number(text, i, clause)
            tokens.append(token)
            i = token.end
            continue
        word = _WORD.match(text, i)
        if word:
            end = word.end()
            lowered = word.group().lower()
            if lowered in ("date", "geom") and end < n and text[end] in "\"'":
                value, qend = _read_quoted(text, end, clause)
                tokens.append(Token(lowered, text[i:qend], value, i, qend))
                i = qend
                continue
            tokens.append(Token("ident", word.group(), word.group(), i, end))
            i = end
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, op, i, i + len(op)))
                i += len(op)
                break
        else:
            raise ODSQLError(f"Unexpected character {ch!r} at position {i}.", clause)
    tokens.append(Token("eof", "", None, n, n))
    return tokens


def _read_quoted(text: str, start: int, clause: str) -> tuple[str, int]:
    """Read a quoted string or back-quoted name from ``text[start]``; return (value, end)."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_JSON_ESCAPES.get(nxt, nxt) if quote != "`" else nxt)
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    what = "back-quoted name" if quote == "`" else "string"
    raise ODSQLError(f"Unterminated {what} starting at position {start}.", clause)


def _read_number(text: str, start: int, clause: str) -> Token:
    """Read a number, a number with a unit (``500m``, ``1d``) or a digit-led field name."""
    decimal = _DECIMAL.match(text, start)
    word = _WORD.match(text, start)
    if word is None:
        raise ODSQLError(f"Unexpected character {text[start]!r} at position {start}.", clause)
    if decimal and decimal.end() >= word.end():
        end = decimal.end()
        value: int | float = float(decimal.group())
        unit = _LETTERS.match(text, end)
        if unit and unit.group() in _UNITS and not _WORD.match(text, unit.end()):
            return Token(
                "quantity", text[start : unit.end()], (value, unit.group()), start, unit.end()
            )
        if _WORD.match(text, end):
            raise ODSQLError(
                f"Invalid number {text[start : end + 1]!r} at position {start}.", clause
            )
        return Token("number", text[start:end], value, start, end)
    raw = word.group()
    if raw.isdigit():
        return Token("number", raw, int(raw), start, word.end())
    quantity = re.fullmatch(r"(\d+)([A-Za-z]+)", raw)
    if quantity and quantity.group(2) in _UNITS:
        return Token(
            "quantity", raw, (int(quantity.group(1)), quantity.group(2)), start, word.end()
        )
    return Token("ident", raw, raw, start, word.end())


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Node:
    """Base of AST nodes; positions never take part in equality."""

    start: int = field(default=0, compare=False, repr=False, kw_only=True)
    end: int = field(default=0, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Node):
    """A string, number, boolean or null literal (``value`` is the Python value)."""

    value: Any


@dataclass(frozen=True)
class DateLiteral(Node):
    """``date'...'``; ``text`` is the quoted content."""

    text: str


@dataclass(frozen=True)
class GeomLiteral(Node):
    """``geom'...'``: WKT, hex WKB or a GeoJSON geometry."""

    text: str


@dataclass(frozen=True)
class Quantity(Node):
    """A number with a unit: a distance (``500m``) or an interval (``1d``, ``1 day``)."""

    value: float
    unit: str
    text: str = field(compare=False)


@dataclass(frozen=True)
class Field(Node):
    """A field name or alias (back-quotes removed)."""

    name: str


@dataclass(frozen=True)
class Star(Node):
    """``*`` as an argument (``count(*)``, ``search(*, ...)``, ``range(f, *, 10)``)."""


@dataclass(frozen=True)
class FuncCall(Node):
    """A function call; ``name`` is lower-cased, ``named`` holds ``name=value`` arguments."""

    name: str
    args: tuple[Node, ...] = ()
    named: tuple[tuple[str, Node], ...] = ()
    distinct: bool = False


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """Arithmetic ``+ - * /``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    """``= : != <> < > <= >=`` (``:`` is the legacy spelling of ``=``)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class And(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class InRange(Node):
    """``operand IN [low..high]`` with ``[``/``]`` inclusive or exclusive bounds."""

    operand: Node
    low: Node
    high: Node
    low_inclusive: bool
    high_inclusive: bool


@dataclass(frozen=True)
class InList(Node):
    """``operand IN (v1, v2, ...)``."""

    operand: Node
    values: tuple[Node, ...]


@dataclass(frozen=True)
class Membership(Node):
    """``value IN container`` (a literal in a multivalued field)."""

    value: Node
    container: Node


@dataclass(frozen=True)
class Like(Node):
    operand: Node
    pattern: Node


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool = False


@dataclass(frozen=True)
class IsBool(Node):
    """``operand IS [NOT] TRUE|FALSE``."""

    operand: Node
    value: bool
    negated: bool = False


@dataclass(frozen=True)
class SelectItem(Node):
    """``expr [AS alias]``; ``text`` is the expression as written."""

    expr: Node
    alias: str | None
    text: str


@dataclass(frozen=True)
class IncludeExclude(Node):
    """``include(p1, p2*)`` or ``exclude(...)``: field-name patterns, ``*`` suffix = prefix."""

    kind: str
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class SelectAll(Node):
    """``*`` in a select list."""


@dataclass(frozen=True)
class GroupItem(Node):
    expr: Node
    alias: str | None
    text: str


@dataclass(frozen=True)
class OrderItem(Node):
    expr: Node
    descending: bool
    text: str


SelectEntry = SelectItem | IncludeExclude | SelectAll


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, clause: str):
        self.text = text
        self.clause = clause
        self.tokens = tokenize(text, clause)
        self.pos = 0

    # token helpers --------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "eof":
            self.pos += 1
        return token

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.value in ops

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            self.fail(f"expected {op!r}")
        return self.advance()

    def fail(self, expected: str | None = None, token: Token | None = None) -> None:
        token = token or self.peek()
        found = "end of expression" if token.kind == "eof" else repr(token.text)
        detail = f"Unexpected {found} at position {token.start}"
        if expected:
            detail += f" ({expected})"
        raise ODSQLError(detail + ".", self.clause)

    def expect_end(self) -> None:
        if self.peek().kind != "eof":
            self.fail()

    # expressions ----------------------------------------------------------------
    def expression(self) -> Node:
        return self.or_expr()

    def or_expr(self) -> Node:
        first = self.and_expr()
        items = [first]
        while self.peek().is_word("or"):
            self.advance()
            items.append(self.and_expr())
        if len(items) == 1:
            return first
        return Or(tuple(items), start=first.start, end=items[-1].end)

    def and_expr(self) -> Node:
        first = self.not_expr()
        items = [first]
        while self.peek().is_word("and"):
            self.advance()
            items.append(self.not_expr())
        if len(items) == 1:
            return first
        return And(tuple(items), start=first.start, end=items[-1].end)

    def not_expr(self) -> Node:
        token = self.peek()
        if token.is_word("not"):
            self.advance()
            operand = self.not_expr()
            return Not(operand, start=token.start, end=operand.end)
        return self.predicate()

    def predicate(self) -> Node:
        left = self.additive()
        token = self.peek()
        if token.kind == "op" and token.value in ("=", ":", "!=", "<>", "<", ">", "<=", ">="):
            self.advance()
            right = self.additive()
            return Compare(token.value, left, right, start=left.start, end=right.end)
        negate = False
        if token.is_word("not") and self.peek(1).is_word("in", "like"):
            self.advance()
            negate = True
            token = self.peek()
        node: Node
        if token.is_word("in"):
            self.advance()
            node = self.in_tail(left)
        elif token.is_word("like"):
            self.advance()
            pattern = self.additive()
            node = Like(left, pattern, start=left.start, end=pattern.end)
        elif token.is_word("is") and not negate:
            self.advance()
            negated = False
            if self.peek().is_word("not"):
                self.advance()
                negated = True
            word = self.advance()
            if word.is_word("null"):
                return IsNull(left, negated, start=left.start, end=word.end)
            if word.is_word("true", "false"):
                return IsBool(
                    left, word.value.lower() == "true", negated, start=left.start, end=word.end
                )
            self.fail("expected NULL, TRUE or FALSE after IS", word)
            raise AssertionError  # pragma: no cover
        else:
            return left
        if negate:
            return Not(node, start=left.start, end=node.end)
        return node

    def in_tail(self, left: Node) -> Node:
        token = self.peek()
        if self.at_op("[", "]"):
            self.advance()
            low = self.bound()
            if self.at_op("..") or self.peek().is_word("to"):
                self.advance()
            else:
                self.fail("expected '..' or TO in a range")
            high = self.bound()
            close = self.peek()
            if not self.at_op("[", "]"):
                self.fail("expected ']' or '[' to close the range")
            self.advance()
            return InRange(
                left,
                low,
                high,
                low_inclusive=token.value == "[",
                high_inclusive=close.value == "]",
                start=left.start,
                end=close.end,
            )
        if self.at_op("("):
            self.advance()
            values = [self.additive()]
            while self.at_op(","):
                self.advance()
                values.append(self.additive())
            close = self.expect_op(")")
            return InList(left, tuple(values), start=left.start, end=close.end)
        container = self.additive()
        return Membership(left, container, start=left.start, end=container.end)

    def bound(self) -> Node:
        if self.at_op("*"):
            token = self.advance()
            return Star(start=token.start, end=token.end)
        return self.additive()

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            op = self.advance().value
            right = self.multiplicative()
            left = Binary(op, left, right, start=left.start, end=right.end)
        return left

    def multiplicative(self) -> Node:
        left = self.unary()
        while self.at_op("*", "/"):
            op = self.advance().value
            right = self.unary()
            left = Binary(op, left, right, start=left.start, end=right.end)
        return left

    def unary(self) -> Node:
        if self.at_op("-", "+"):
            token = self.advance()
            operand = self.unary()
            if token.value == "+":
                return operand
            return Unary("-", operand, start=token.start, end=operand.end)
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        kind = token.kind
        if kind in ("number", "string"):
            self.advance()
            return Literal(token.value, start=token.start, end=token.end)
        if kind == "quantity":
            self.advance()
            value, unit = token.value
            return Quantity(value, unit, token.text, start=token.start, end=token.end)
        if kind == "date":
            self.advance()
            return DateLiteral(token.value, start=token.start, end=token.end)
        if kind == "geom":
            self.advance()
            return GeomLiteral(token.value, start=token.start, end=token.end)
        if kind == "op" and token.value == "(":
            self.advance()
            inner = self.expression()
            close = self.expect_op(")")
            # keep the parentheses in the written text of the node
            return _with_span(inner, token.start, close.end)
        if kind == "ident":
            return self.identifier()
        self.fail()
        raise AssertionError  # pragma: no cover

    def identifier(self) -> Node:
        token = self.advance()
        if token.quoted:
            return Field(token.value, start=token.start, end=token.end)
        lowered = token.value.lower()
        if lowered in ("true", "false"):
            return Literal(lowered == "true", start=token.start, end=token.end)
        if lowered == "null":
            return Literal(None, start=token.start, end=token.end)
        if self.at_op("(") and lowered not in _GRAMMAR_KEYWORDS:
            return self.call(token)
        if lowered in _GRAMMAR_KEYWORDS:
            self.fail(token=token)
        if lowered in RESERVED_WORDS_V21:
            raise ODSQLError(
                f"{token.value!r} is a reserved keyword: write `{token.value}` (back-quoted) "
                "to use it as a field name.",
                self.clause,
            )
        return Field(token.value, start=token.start, end=token.end)

    def call(self, name: Token) -> Node:
        self.expect_op("(")
        args: list[Node] = []
        named: list[tuple[str, Node]] = []
        distinct = False
        if self.peek().is_word("distinct"):
            self.advance()
            distinct = True
        if not self.at_op(")"):
            while True:
                self.argument(args, named)
                if self.at_op(","):
                    self.advance()
                    continue
                break
        close = self.expect_op(")")
        return FuncCall(
            name.value.lower(),
            tuple(args),
            tuple(named),
            distinct,
            start=name.start,
            end=close.end,
        )

    def argument(self, args: list[Node], named: list[tuple[str, Node]]) -> None:
        token = self.peek()
        if (
            token.kind == "op"
            and token.value == "*"
            and self.peek(1).kind == "op"
            and self.peek(1).value in (",", ")")
        ):
            self.advance()
            args.append(Star(start=token.start, end=token.end))
            return
        if token.kind == "ident" and self.peek(1).kind == "op" and self.peek(1).value == "=":
            self.advance()
            self.advance()
            named.append(
                (token.value.lower() if not token.quoted else token.value, self.expression())
            )
            return
        value = self.expression()
        unit = self.peek()
        if (
            isinstance(value, Literal)
            and isinstance(value.value, int | float)
            and unit.kind == "ident"
            and not unit.quoted
        ):
            if unit.value not in _UNITS:
                self.fail("expected a unit", unit)
            self.advance()
            value = Quantity(
                value.value,
                unit.value,
                self.text[value.start : unit.end],
                start=value.start,
                end=unit.end,
            )
        args.append(value)

    # clause entry points -------------------------------------------------------
    def alias(self) -> str | None:
        if not self.peek().is_word("as"):
            return None
        self.advance()
        token = self.advance()
        if token.kind != "ident":
            self.fail("expected an alias after AS", token)
        return str(token.value)

    def comma_list(self, item: Callable[[], _T]) -> list[_T]:
        """``item (, item)*`` up to the end of the clause."""
        items = [item()]
        while self.at_op(","):
            self.advance()
            items.append(item())
        self.expect_end()
        return items

    def item_of(self, kind: Callable[..., _T], expr: Node, detail: Any) -> _T:
        """``kind(expr, detail, text)``: ``text`` is the expression as written; the item
        spans up to the next token."""
        text = self.text[expr.start : expr.end]
        return kind(expr, detail, text, start=expr.start, end=self.peek().start)

    def select_list(self) -> list[SelectEntry]:
        return self.comma_list(self.select_entry)

    def select_entry(self) -> SelectEntry:
        token = self.peek()
        nxt = self.peek(1)
        if (
            token.kind == "op"
            and token.value == "*"
            and (nxt.kind == "eof" or (nxt.kind == "op" and nxt.value == ","))
        ):
            self.advance()
            return SelectAll(start=token.start, end=token.end)
        if token.is_word("include", "exclude") and nxt.kind == "op" and nxt.value == "(":
            return self.include_exclude()
        expr = self.expression()
        return self.item_of(SelectItem, expr, self.alias())

    def include_exclude(self) -> IncludeExclude:
        name = self.advance()
        self.expect_op("(")
        patterns: list[str] = []
        while True:
            token = self.advance()
            if token.kind == "ident":
                pattern = str(token.value)
            elif token.kind == "number" and isinstance(token.value, int):
                pattern = token.text
            elif token.kind == "op" and token.value == "*":
                pattern = ""
                self.pos -= 1
            else:
                self.fail("expected a field name pattern", token)
                raise AssertionError  # pragma: no cover
            if self.at_op("*"):
                self.advance()
                pattern += "*"
            patterns.append(pattern)
            if self.at_op(","):
                self.advance()
                continue
            close = self.expect_op(")")
            return IncludeExclude(
                name.value.lower(), tuple(patterns), start=name.start, end=close.end
            )

    def group_list(self) -> list[GroupItem]:
        return self.comma_list(self.group_item)

    def group_item(self) -> GroupItem:
        expr = self.expression()
        return self.item_of(GroupItem, expr, self.alias())

    def order_list(self) -> list[OrderItem]:
        return self.comma_list(self.order_item)

    def order_item(self) -> OrderItem:
        expr = self.expression()
        descending = False
        if self.peek().is_word("asc", "desc"):
            descending = self.advance().value.lower() == "desc"
        return self.item_of(OrderItem, expr, descending)


def _with_span(node: Node, start: int, end: int) -> Node:
    """A copy of ``node`` whose span includes the parentheses around it."""
    import dataclasses

    return dataclasses.replace(node, start=start, end=end)


def _require_text(text: str, clause: str) -> str:
    if not text or not text.strip():
        raise ODSQLError("Empty expression.", clause)
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    if deepest > MAX_NESTING:
        raise ODSQLError(f"Expression nested too deeply (more than {MAX_NESTING} levels).", clause)
    return text


@contextmanager
def _depth_guard(clause: str) -> Iterator[None]:
    """Turn a parser recursion overflow (absurdly nested input) into an ODSQLError."""
    try:
        yield
    except RecursionError:
        raise ODSQLError("Expression nested too deeply.", clause) from None


def parse_expression(text: str, clause: str = "where") -> Node:
    """Parse one expression (a ``where`` filter, or any single value expression)."""
    parser = _Parser(_require_text(text, clause), clause)
    with _depth_guard(clause):
        node = parser.expression()
    parser.expect_end()
    return node


def parse_where(text: str) -> Node:
    """Parse a ``where`` clause."""
    return parse_expression(text, "where")


def parse_select(text: str) -> list[SelectEntry]:
    """Parse a ``select`` clause into ``SelectAll`` / ``IncludeExclude`` / ``SelectItem``."""
    with _depth_guard("select"):
        return _Parser(_require_text(text, "select"), "select").select_list()


def parse_group_by(text: str) -> list[GroupItem]:
    """Parse a ``group_by`` clause."""
    with _depth_guard("group_by"):
        return _Parser(_require_text(text, "group_by"), "group_by").group_list()


def parse_order_by(text: str) -> list[OrderItem]:
    """Parse an ``order_by`` clause."""
    with _depth_guard("order_by"):
        return _Parser(_require_text(text, "order_by"), "order_by").order_list()


# --------------------------------------------------------------------------- unparse


def quote_name(name: str) -> str:
    """``name`` as ODSQL: bare when it is a plain non-reserved identifier, else back-quoted."""
    if re.fullmatch(
        r"[A-Za-z_][A-Za-z0-9_]*", name
    ) and name.lower() not in RESERVED_WORDS_V21 | _GRAMMAR_KEYWORDS | {"in", "like", "is", "to"}:
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """``value`` as an ODSQL string literal (JSON escapes, double quotes)."""
    return json.dumps(value, ensure_ascii=False)


def to_odsql(node: Node) -> str:
    """Write ``node`` back as ODSQL text (fully parenthesised; parses back to an equal node)."""
    if isinstance(node, Literal):
        value = node.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return quote_string(value)
        return repr(value)
    if isinstance(node, DateLiteral):
        return "date" + quote_string(node.text)
    if isinstance(node, GeomLiteral):
        return "geom" + quote_string(node.text)
    if isinstance(node, Quantity):
        return f"{node.value!r}{node.unit}" if node.unit.isalpha() else node.text
    if isinstance(node, Field):
        return quote_name(node.name)
    if isinstance(node, Star):
        return "*"
    if isinstance(node, FuncCall):
        parts = [to_odsql(arg) for arg in node.args]
        parts += [f"{name}={to_odsql(value)}" for name, value in node.named]
        prefix = "distinct " if node.distinct else ""
        return f"{node.name}({prefix}{', '.join(parts)})"
    if isinstance(node, Unary):
        return f"(-{to_odsql(node.operand)})"
    if isinstance(node, Binary | Compare):
        return f"({to_odsql(node.left)} {node.op} {to_odsql(node.right)})"
    if isinstance(node, And):
        return "(" + " AND ".join(to_odsql(item) for item in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(to_odsql(item) for item in node.items) + ")"
    if isinstance(node, Not):
        return f"(NOT {to_odsql(node.operand)})"
    if isinstance(node, InRange):
        opening = "[" if node.low_inclusive else "]"
        closing = "]" if node.high_inclusive else "["
        return f"({to_odsql(node.operand)} IN {opening}{to_odsql(node.low)}..{to_odsql(node.high)}{closing})"
    if isinstance(node, InList):
        return f"({to_odsql(node.operand)} IN ({', '.join(to_odsql(v) for v in node.values)}))"
    if isinstance(node, Membership):
        return f"({to_odsql(node.value)} IN {to_odsql(node.container)})"
    if isinstance(node, Like):
        return f"({to_odsql(node.operand)} LIKE {to_odsql(node.pattern)})"
    if isinstance(node, IsNull):
        return f"({to_odsql(node.operand)} IS {'NOT ' if node.negated else ''}NULL)"
    if isinstance(node, IsBool):
        return f"({to_odsql(node.operand)} IS {'NOT ' if node.negated else ''}{'TRUE' if node.value else 'FALSE'})"
    raise TypeError(f"cannot write {type(node).__name__} as ODSQL")
