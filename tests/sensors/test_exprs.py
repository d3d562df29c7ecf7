"""Expr filters: govaluate → CEL translation, govaluate-compatible evaluation, Go regexes."""

from __future__ import annotations

from typing import Any

import pytest

from sensors.exprs import (
    CompiledExpr,
    Engine,
    ExprError,
    RegexError,
    compile_expr,
    compile_go_regex,
    translate,
)

ENGINES = [pytest.param("auto", id="transpiled"), pytest.param("interpreted", id="interpreted")]


def compiled(expr: str, bindings: dict[str, Any], engine: Engine = "auto") -> CompiledExpr:
    return compile_expr(expr, fields=list(bindings), engine=engine)


# --- translation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "fields", "cel"), [
    pytest.param('b =~ "start"', (), 'b.matches("start")', id="regex-match"),
    pytest.param('b !~ "start"', (), '!b.matches("start")', id="regex-not-match"),
    pytest.param("a == 'x'", (), 'a == "x"', id="single-quotes"),
    pytest.param("a == 'say \"hi\"'", (), 'a == "say \\"hi\\""', id="single-quotes-with-double-inside"),
    pytest.param('x in ("a", "b")', (), 'x in ["a", "b"]', id="in-tuple"),
    pytest.param('x IN ("a","b")', (), 'x in ["a","b"]', id="upper-case-in"),
    pytest.param("x in (y)", (), "x in (y)", id="in-parenthesised-value-kept"),
    pytest.param('b == "b" || (d == true && e == 2)', (), 'b == "b" || (d == true && e == 2)',
                 id="logic-unchanged"),
    pytest.param('a + b =~ "x" && c', (), '(a + b).matches("x") && c', id="regex-on-expression"),
    pytest.param('body.ref =~ "^refs/heads/main$"', (), 'body.ref.matches("^refs/heads/main$")',
                 id="regex-on-member"),
    pytest.param('!(a =~ "x")', (), '!(a.matches("x"))', id="negated-group"),
    pytest.param('a.b[0] =~ "x" ? 1 : 2', (), 'a.b[0].matches("x") ? 1 : 2', id="regex-in-ternary"),
    pytest.param("a =~ '\\d+\\.'", (), 'a.matches("d+.")', id="govaluate-escape-drops-backslash"),
    pytest.param('a =~ "v\\\\d+"', (), 'a.matches("v\\\\d+")', id="escaped-backslash-kept"),
    pytest.param("r'\\d+' == x", (), "r'\\d+' == x", id="cel-raw-string-kept"),
    pytest.param('[x-ref] == "v"', ("x-ref",), '_hg_field_0 == "v"', id="escaped-parameter"),
    pytest.param('[ref] == "v"', ("ref",), '[ref] == "v"', id="cel-list-kept-for-identifier"),
    pytest.param('size(labels) > 0 && labels.exists(l, l.matches("bug"))', (),
                 'size(labels) > 0 && labels.exists(l, l.matches("bug"))', id="plain-cel-unchanged"),
    pytest.param("  a == 1  ", (), "  a == 1  ", id="whitespace-kept"),
])
def test_translates_govaluate_to_cel(expr: str, fields: tuple[str, ...], cel: str) -> None:
    assert translate(expr, fields=fields) == cel


@pytest.mark.parametrize(("expr", "message"), [
    pytest.param("a ** 2", "exponent `**` is not supported", id="exponent"),
    pytest.param("a ?? b", "null coalescence `??` is not supported", id="null-coalescence"),
    pytest.param("a & 1", "bitwise `&` is not supported", id="bitwise-and"),
    pytest.param("a = 1", "did you mean `==`", id="single-equals"),
    pytest.param('a == "x', "unclosed string literal", id="unclosed-string"),
    pytest.param("(a == 1", "unclosed '('", id="unclosed-paren"),
    pytest.param("a == 1)", "unbalanced ')'", id="unbalanced-paren"),
    pytest.param("a == #", "unexpected character '#'", id="unknown-character"),
])
def test_rejects_what_has_no_cel_form(expr: str, message: str) -> None:
    with pytest.raises(ExprError, match="cannot translate expr") as info:
        compile_expr(expr, fields=["a"])
    assert message in str(info.value)
    assert repr(expr) in str(info.value)


def test_compile_error_names_expr_and_cel() -> None:
    with pytest.raises(ExprError) as info:
        compile_expr('a =~ "x" &&', fields=["a"])
    assert "'a =~ \"x\" &&'" in str(info.value)
    assert "'a.matches(\"x\") &&'" in str(info.value)


def test_constant_regex_is_checked_at_load_time() -> None:
    with pytest.raises(ExprError, match="error parsing regexp: missing closing \\): `\\(`"):
        compile_expr('a =~ "("', fields=["a"])


def test_compiles_once() -> None:
    assert compile_expr("a == 1", fields=["a"]) is compile_expr("a == 1", fields=["a"])


def test_uses_the_transpiled_engine_by_default() -> None:
    assert compile_expr("a == 1", fields=["a"]).engine == "transpiled"


def test_names_that_clash_with_the_activation_fall_back_to_the_interpreter() -> None:
    expr = compiled("nested_activation == 1", {"nested_activation": 1})
    assert expr.engine == "interpreted"
    assert expr.evaluate({"nested_activation": 1}) is True


def test_reports_variables_no_field_binds() -> None:
    expr = compile_expr('b == "b" || (d && e == 2) || l.exists(x, x == 1)', fields=["b", "d", "l"])
    assert expr.unbound_names() == ("e",)


# --- evaluation ----------------------------------------------------------------------------------

EVALUATIONS = [
    # Argo's TestFilterExpr cases.
    pytest.param('a == "b"', {"a": "b"}, True, id="string-equal"),
    pytest.param('a != "b"', {"a": "c"}, True, id="string-different"),
    pytest.param('b == "b"', {"b": "c"}, False, id="string-not-equal"),
    pytest.param("b == 2", {"b": 2}, True, id="number-equal-int-literal"),
    pytest.param("b < 1", {"b": 2}, False, id="number-less-than"),
    pytest.param('b =~ "start"', {"b": "start long string"}, True, id="regex-contains"),
    pytest.param('b !~ "start"', {"b": "long string"}, True, id="regex-not-contains"),
    pytest.param('b == "b" || d == true', {"b": "b", "d": False}, True, id="or-inside-expr"),
    pytest.param('b != "b" && d == true', {"b": "x", "d": True}, True, id="and-inside-expr"),
    pytest.param('b == "b" || (d == true && e == 2)', {"b": "b", "d": False}, True,
                 id="unbound-variable-on-untaken-side"),
    pytest.param("d == false && e == 2", {"d": True}, False, id="unbound-variable-after-false-and"),
    # govaluate reads every number as float64.
    pytest.param("e == 2", {"e": 2.0}, True, id="double-equals-int-literal"),
    pytest.param("e == 2.0", {"e": 2}, True, id="int-payload-equals-double-literal"),
    pytest.param("count > 1.5", {"count": 2}, True, id="int-payload-greater-than-double"),
    pytest.param("x > 1.0 && x < 3", {"x": 2}, True, id="mixed-literals-range"),
    pytest.param("e in [1, 2]", {"e": 2}, True, id="number-in-int-list"),
    pytest.param("e + 1 == 3", {"e": 2}, True, id="arithmetic-double-plus-int"),
    pytest.param("e / 2 == 1.5", {"e": 3}, True, id="float-division"),
    pytest.param("e % 2 == 1", {"e": 3}, True, id="float-modulus"),
    pytest.param("size(l) > 0 && l[0] == 'a'", {"l": ["a"]}, True, id="cel-ints-still-work"),
    # Equality across types: false, not an error (govaluate reflect.DeepEqual).
    pytest.param("b == 2", {"b": "2"}, False, id="string-is-not-number"),
    pytest.param("b != 2", {"b": "x"}, True, id="string-differs-from-number"),
    pytest.param("n == null", {"n": None}, True, id="json-null"),
    pytest.param("flag", {"flag": True}, True, id="bare-true"),
    pytest.param("name", {"name": "true"}, False, id="non-boolean-result-is-false"),
    pytest.param('x in ("a", "b")', {"x": "b"}, True, id="in-tuple"),
    pytest.param("a == 'x'", {"a": "x"}, True, id="single-quoted"),
    pytest.param('b =~ "^start$"', {"b": "start\n"}, False, id="dollar-is-end-of-text"),
    pytest.param('b =~ "(?i)START"', {"b": "a start"}, True, id="regex-flags"),
    pytest.param('labels.exists(l, l.name == "bug")', {"labels": [{"name": "bug"}]}, True, id="cel-macro"),
    pytest.param("a.b == 2", {"a": {"b": 2}}, True, id="map-member"),
    pytest.param('[x-ref] == "v"', {"x-ref": "v"}, True, id="escaped-parameter"),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expr", "bindings", "expected"), EVALUATIONS)
def test_evaluates_like_govaluate(engine: Engine, expr: str, bindings: dict[str, Any], expected: bool) -> None:
    assert compiled(expr, bindings, engine).evaluate(bindings) is expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expr", "bindings", "message"), [
    pytest.param('b == "x" || (d == true && e == 2)', {"b": "b", "d": True}, "No parameter 'e' found.",
                 id="unbound-variable-reached"),
    pytest.param("b > 2", {"b": "x"}, "cannot compare string with int using >", id="ordering-across-types"),
    pytest.param('b =~ "x"', {"b": 2}, "matches() needs strings", id="regex-on-number"),
    pytest.param("b =~ c", {"b": "x", "c": "("}, "error parsing regexp: missing closing ): `(`",
                 id="bad-dynamic-regex"),
    pytest.param("1 / 0 == 1", {"a": 1}, "divide by zero", id="division-by-zero"),
])
def test_evaluation_errors(engine: Engine, expr: str, bindings: dict[str, Any], message: str) -> None:
    with pytest.raises(ExprError) as info:
        compiled(expr, bindings, engine).evaluate(bindings)
    assert message in str(info.value)


def test_member_of_a_non_map_is_an_error() -> None:
    with pytest.raises(ExprError):
        compiled("a.b.c == 2", {"a": {"b": 2}}).evaluate({"a": {"b": 2}})


# --- Go regular expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    pytest.param("labeled", "unlabeled", True, id="unanchored"),
    pytest.param("^labeled$", "unlabeled", False, id="anchored"),
    pytest.param("opened$", "opened\n", False, id="dollar-is-end-of-text"),
    pytest.param("(?m)opened$", "opened\nnext", True, id="multiline-dollar"),
    pytest.param("end\\z", "the end", True, id="backslash-z"),
    pytest.param("\\Qa.b\\E", "axb a.b", True, id="quoted-literal"),
    pytest.param("\\Qa.b\\E", "axb", False, id="quoted-literal-is-literal"),
    pytest.param("^[[:alpha:]]+$", "abc", True, id="posix-class"),
    pytest.param("^[[:digit:]]+$", "12a", False, id="posix-class-mismatch"),
    pytest.param("\\d", "٣", False, id="digits-are-ascii"),
    pytest.param("\\pL", "é", True, id="unicode-class-via-re2"),
    pytest.param("a{,2}", "a{,2}", True, id="go-literal-brace"),
    pytest.param('pull_request', '["pull_request"]', True, id="header-array-text"),
])
def test_go_regex_semantics(pattern: str, text: str, expected: bool) -> None:
    assert (compile_go_regex(pattern).search(text) is not None) is expected


@pytest.mark.parametrize(("pattern", "message"), [
    pytest.param("(", "error parsing regexp: missing closing ): `(`", id="missing-paren"),
    pytest.param("[a", "error parsing regexp: missing closing ]: `[a`", id="missing-bracket"),
    pytest.param("(?=x)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`", id="lookahead"),
    pytest.param("a**", "error parsing regexp: invalid nested repetition operator: `**`", id="nested-repeat"),
])
def test_go_regex_errors_use_go_words(pattern: str, message: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_go_regex(pattern)
    assert str(info.value) == message
