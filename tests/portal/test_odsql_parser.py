"""The ODSQL lexer and parser (odsframe.testing.odsql): tokens, precedence, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odsframe.testing import odsql as q
from odsframe.testing.errors import ODSQLError


def f(name: str) -> q.Field:
    return q.Field(name)


def lit(value: object) -> q.Literal:
    return q.Literal(value)


# --------------------------------------------------------------------------- tokens


def test_tokens_cover_every_literal_kind() -> None:
    tokens = q.tokenize(
        """a `b c` 12 1.5 2e3 500m 1.5km 1d "x\\"y" 'it\\'s' date'2020' GEOM'POINT(1 2)' <= .."""
    )
    kinds = [(t.kind, t.value) for t in tokens]
    assert kinds == [
        ("ident", "a"),
        ("ident", "b c"),
        ("number", 12),
        ("number", 1.5),
        ("number", 2000.0),
        ("quantity", (500, "m")),
        ("quantity", (1.5, "km")),
        ("quantity", (1, "d")),
        ("string", 'x"y'),
        ("string", "it's"),
        ("date", "2020"),
        ("geom", "POINT(1 2)"),
        ("op", "<="),
        ("op", ".."),
        ("eof", None),
    ]
    assert tokens[1].quoted and not tokens[0].quoted


def test_string_escapes_follow_json() -> None:
    (token, _) = q.tokenize(r'"a\nb\t\u00e9\\\/"')
    assert token.value == "a\nb\té\\/"


def test_backquoted_names_unescape_backquotes() -> None:
    node = q.parse_expression(r"`we\`ird` = 1")
    assert node == q.Compare("=", f("we`ird"), lit(1))


def test_digit_led_words_are_field_names_unless_a_unit_follows() -> None:
    assert q.parse_expression("2g_postcodes > 1") == q.Compare(">", f("2g_postcodes"), lit(1))
    assert q.parse_expression("`12` > 10") == q.Compare(">", f("12"), lit(10))


def test_range_dots_are_not_decimal_points() -> None:
    node = q.parse_expression("x IN [1..10]")
    assert node == q.InRange(f("x"), lit(1), lit(10), True, True)
    node = q.parse_expression("x IN [1.5..2.5[")
    assert node == q.InRange(f("x"), lit(1.5), lit(2.5), True, False)


# --------------------------------------------------------------------------- precedence


def test_and_binds_tighter_than_or() -> None:
    node = q.parse_where("a OR b AND c")
    assert node == q.Or((f("a"), q.And((f("b"), f("c")))))


def test_parentheses_change_precedence() -> None:
    node = q.parse_where("(a OR b) AND c")
    assert node == q.And((q.Or((f("a"), f("b"))), f("c")))


def test_not_applies_to_the_next_predicate_only() -> None:
    node = q.parse_where("NOT x = 1 AND y")
    assert node == q.And((q.Not(q.Compare("=", f("x"), lit(1))), f("y")))


def test_not_as_a_function_call() -> None:
    node = q.parse_where("not(in_bbox(geo, 1, 2, 3, 4))")
    assert isinstance(node, q.Not)
    assert node.operand == q.FuncCall("in_bbox", (f("geo"), lit(1), lit(2), lit(3), lit(4)))


def test_arithmetic_precedence_and_unary_minus() -> None:
    node = q.parse_expression("1 + 2 * -x / 4 - 5")
    product = q.Binary("/", q.Binary("*", lit(2), q.Unary("-", f("x"))), lit(4))
    assert node == q.Binary("-", q.Binary("+", lit(1), product), lit(5))


def test_comparison_operators_including_legacy_colon() -> None:
    for op in ("=", ":", "!=", "<>", "<", ">", "<=", ">="):
        assert q.parse_where(f"x {op} 3") == q.Compare(op, f("x"), lit(3))


# --------------------------------------------------------------------------- case and names


def test_keywords_and_function_names_are_case_insensitive() -> None:
    upper = q.parse_where("COUNT(*) > 1 AnD x Is NoT nUlL oR y IN [1 To 2]")
    lower = q.parse_where("count(*) > 1 and x is not null or y in [1 to 2]")
    assert upper == lower
    assert isinstance(upper, q.Or)


def test_field_names_keep_their_case() -> None:
    assert q.parse_expression("MyField") == f("MyField")


def test_reserved_words_need_backquotes_as_field_names() -> None:
    with pytest.raises(ODSQLError) as error:
        q.parse_where("year > 2000")
    assert error.value.clause == "where"
    assert "`year`" in error.value.detail
    assert q.parse_where("`year` > 2000") == q.Compare(">", f("year"), lit(2000))


def test_date_and_geom_are_field_names_when_no_quote_follows() -> None:
    node = q.parse_where("date >= date'2020-01-01' AND geom IS NULL")
    assert node == q.And(
        (q.Compare(">=", f("date"), q.DateLiteral("2020-01-01")), q.IsNull(f("geom")))
    )


def test_words_used_as_operators_stay_field_names_elsewhere() -> None:
    assert q.parse_where("in = 1") == q.Compare("=", f("in"), lit(1))
    assert q.parse_where("like LIKE 'x'") == q.Like(f("like"), lit("x"))


# --------------------------------------------------------------------------- predicates


@pytest.mark.parametrize(
    ("text", "low_inclusive", "high_inclusive"),
    [
        ("[1..9]", True, True),
        ("]1..9[", False, False),
        ("[1..9[", True, False),
        ("]1 TO 9]", False, True),
    ],
)
def test_in_ranges_with_every_bracket(text: str, low_inclusive: bool, high_inclusive: bool) -> None:
    assert q.parse_where(f"x IN {text}") == q.InRange(
        f("x"), lit(1), lit(9), low_inclusive, high_inclusive
    )


def test_in_list_membership_like_and_null_tests() -> None:
    assert q.parse_where("city IN (\"Paris\", 'Nantes')") == q.InList(
        f("city"), (lit("Paris"), lit("Nantes"))
    )
    assert q.parse_where('"Paris" IN cities') == q.Membership(lit("Paris"), f("cities"))
    assert q.parse_where('name LIKE "star wars"') == q.Like(f("name"), lit("star wars"))
    assert q.parse_where("x IS NULL") == q.IsNull(f("x"))
    assert q.parse_where("x IS NOT NULL") == q.IsNull(f("x"), negated=True)
    assert q.parse_where("flag IS FALSE") == q.IsBool(f("flag"), False)
    assert q.parse_where("flag is not true") == q.IsBool(f("flag"), True, negated=True)
    assert q.parse_where("x NOT IN (1)") == q.Not(q.InList(f("x"), (lit(1),)))


def test_literals() -> None:
    node = q.parse_where('a = TRUE OR b = false OR c = NULL OR d = geom\'{"type": "Point"}\'')
    assert isinstance(node, q.Or)
    rights = [item.right for item in node.items if isinstance(item, q.Compare)]
    assert rights == [lit(True), lit(False), lit(None), q.GeomLiteral('{"type": "Point"}')]


def test_function_arguments_star_distinct_named_and_units() -> None:
    assert q.parse_expression("count(*)") == q.FuncCall("count", (q.Star(),))
    assert q.parse_expression("COUNT(DISTINCT species)") == q.FuncCall(
        "count", (f("species"),), distinct=True
    )
    assert q.parse_expression("now(years=-1, DAY=3)") == q.FuncCall(
        "now", named=(("years", q.Unary("-", lit(1))), ("day", lit(3)))
    )
    spaced = q.parse_expression("range(d, 1 day)")
    assert isinstance(spaced, q.FuncCall)
    assert spaced.args[1] == q.Quantity(1, "day", "1 day")
    assert q.parse_expression("range(f, *, 10, 50, *)") == q.FuncCall(
        "range", (f("f"), q.Star(), lit(10), lit(50), q.Star())
    )
    assert q.parse_expression("within_distance(g, geom'POINT(1 2)', 500m)").args[2] == q.Quantity(
        500, "m", "500m"
    )  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- clauses


def test_select_items_keep_the_text_as_written() -> None:
    entries = q.parse_select(
        "*, include(pop*, area), exclude(x), count(*), RANGE(capacity,15) AS r, a"
    )
    assert isinstance(entries[0], q.SelectAll)
    assert entries[1] == q.IncludeExclude("include", ("pop*", "area"))
    assert entries[2] == q.IncludeExclude("exclude", ("x",))
    items = [e for e in entries if isinstance(e, q.SelectItem)]
    assert [(i.text, i.alias) for i in items] == [
        ("count(*)", None),
        ("RANGE(capacity,15)", "r"),
        ("a", None),
    ]


def test_select_keeps_inner_spacing_and_parentheses() -> None:
    (item,) = q.parse_select("sum( a )  +  (b)")
    assert isinstance(item, q.SelectItem)
    assert item.text == "sum( a )  +  (b)"


def test_group_by_and_order_by_items() -> None:
    groups = q.parse_group_by("city AS c, year(d)")
    assert [(g.expr, g.alias, g.text) for g in groups] == [
        (f("city"), "c", "city"),
        (q.FuncCall("year", (f("d"),)), None, "year(d)"),
    ]
    orders = q.parse_order_by("count(*) DESC, name, x asc")
    assert [(o.text, o.descending) for o in orders] == [
        ("count(*)", True),
        ("name", False),
        ("x", False),
    ]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("parse", "text", "clause", "fragment"),
    [
        (q.parse_where, "x = ", "where", "end of expression"),
        (q.parse_where, "x = 1)", "where", "')'"),
        (q.parse_where, '"unterminated', "where", "Unterminated string"),
        (q.parse_where, "`unterminated", "where", "Unterminated back-quoted name"),
        (q.parse_where, "x IN [1, 2]", "where", "'..' or TO"),
        (q.parse_where, "x # 1", "where", "'#'"),
        (q.parse_where, "x IS 3", "where", "NULL, TRUE or FALSE"),
        (q.parse_select, "a AS", "select", "alias"),
        (q.parse_select, "a b", "select", "'b'"),
        (q.parse_group_by, "range(d, 1 parsec)", "group_by", "unit"),
        (q.parse_order_by, "x DESC DESC", "order_by", "'DESC'"),
        (q.parse_order_by, "   ", "order_by", "Empty expression"),
    ],
)
def test_malformed_text_names_the_clause(
    parse: object, text: str, clause: str, fragment: str
) -> None:
    with pytest.raises(ODSQLError) as error:
        parse(text)  # type: ignore[operator]
    assert error.value.clause == clause
    assert fragment in error.value.detail
    assert error.value.message.endswith(f"Clause(s) containing the error(s): {clause}.")


def test_syntax_errors_give_the_position() -> None:
    with pytest.raises(ODSQLError) as error:
        q.parse_where("a = 1 AND AND b")
    assert "position 10" in error.value.detail


# --------------------------------------------------------------------------- properties

_names = st.text(min_size=1, max_size=8)
_leaves = st.one_of(
    _names.map(q.Field),
    st.integers(min_value=0, max_value=10**6).map(q.Literal),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False).map(q.Literal),
    st.text(max_size=10).map(q.Literal),
    st.booleans().map(q.Literal),
    st.just(q.Literal(None)),
    st.sampled_from(["2020", "2020-05-03", "2020/05/03T10:00:00Z"]).map(q.DateLiteral),
)


def _extend(children: st.SearchStrategy[q.Node]) -> st.SearchStrategy[q.Node]:
    return st.one_of(
        st.tuples(st.sampled_from("+-*/"), children, children).map(lambda t: q.Binary(*t)),
        st.tuples(st.sampled_from(["=", "<", ">=", "!="]), children, children).map(
            lambda t: q.Compare(*t)
        ),
        st.lists(children, min_size=2, max_size=3).map(lambda items: q.And(tuple(items))),
        st.lists(children, min_size=2, max_size=3).map(lambda items: q.Or(tuple(items))),
        children.map(q.Not),
        children.map(lambda c: q.Unary("-", c)),
        st.tuples(children, children).map(lambda t: q.Like(*t)),
        st.tuples(children, st.booleans()).map(lambda t: q.IsNull(*t)),
        st.tuples(children, children, children, st.booleans(), st.booleans()).map(
            lambda t: q.InRange(*t)
        ),
        st.tuples(children, st.lists(children, min_size=1, max_size=3)).map(
            lambda t: q.InList(t[0], tuple(t[1]))
        ),
        st.tuples(st.sampled_from(["lower", "sum", "my_func"]), st.lists(children, max_size=3)).map(
            lambda t: q.FuncCall(t[0], tuple(t[1]))
        ),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_leaves, _extend, max_leaves=12))
def test_written_ast_parses_back_to_the_same_ast(node: q.Node) -> None:
    assert q.parse_where(q.to_odsql(node)) == node


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("ab1 .,()[]*=<>!:-+/'\"``xINOTANDORdategom")), max_size=30
    )
)
def test_any_text_parses_or_raises_an_odsql_error(text: str) -> None:
    for parse in (q.parse_where, q.parse_select, q.parse_group_by, q.parse_order_by):
        try:
            parse(text)
        except ODSQLError as error:
            assert error.clause in ("where", "select", "group_by", "order_by")
