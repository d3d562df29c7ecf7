"""Trigger conditions: parsing, evaluation, Argo's no-`&&` quirk and the correlation step."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from sensors.conditions import ConditionError, compile_condition, correlate

ABC = ["a", "b", "c"]
HYPHENS = ["dep-1", "dep_2", "dep-3"]


@pytest.mark.parametrize(("text", "deps", "present", "expected"), [
    pytest.param("a && b", ABC, {"a"}, False, id="and-half"),
    pytest.param("a && b", ABC, {"a", "b"}, True, id="and-both"),
    pytest.param("a || b", ABC, {"b"}, True, id="or-one"),
    pytest.param("a || b", ABC, {"c"}, False, id="or-other-dep-only"),
    pytest.param("a && (b || c)", ABC, {"a", "c"}, True, id="parens-satisfied"),
    pytest.param("a && (b || c)", ABC, {"b", "c"}, False, id="parens-missing-a"),
    # && binds tighter than ||: "a || (b && c)", not "(a || b) && c".
    pytest.param("a || b && c", ABC, {"a"}, True, id="precedence-a-alone"),
    pytest.param("a || b && c", ABC, {"b"}, False, id="precedence-b-alone"),
    pytest.param("", ABC, {"a", "b"}, False, id="empty-means-all-and"),
    pytest.param("", ABC, {"a", "b", "c"}, True, id="empty-all-present"),
    pytest.param("   ", ["a", "b"], {"a", "b"}, True, id="whitespace-is-empty"),
    pytest.param("dep-1 && (dep_2 || dep-3)", HYPHENS, {"dep-1", "dep-3"}, True, id="hyphen-names"),
    # Argo compares names with '-' turned into '_', so dep_1 finds the dependency dep-1.
    pytest.param("dep_1 && dep-2", HYPHENS, {"dep-1", "dep_2"}, True, id="hyphen-underscore-match"),
    pytest.param("((a))&&b", ABC, {"a", "b"}, True, id="nested-parens-no-spaces"),
])
def test_evaluate(text: str, deps: list[str], present: set[str], expected: bool) -> None:
    assert compile_condition(text, deps).evaluate(present) is expected


@pytest.mark.parametrize(("text", "deps", "needs_state"), [
    pytest.param("a", ABC, False, id="single-name"),
    pytest.param("a || b", ABC, False, id="or-only"),
    pytest.param("(a || b)", ABC, False, id="parenthesised-or"),
    pytest.param("a && b", ABC, True, id="and"),
    pytest.param("(a || b) && c", ABC, True, id="and-of-or"),
    pytest.param("", ["a"], False, id="empty-one-dependency"),
    pytest.param("", ["a", "b"], True, id="empty-two-dependencies"),
])
def test_needs_state_only_with_and(text: str, deps: list[str], needs_state: bool) -> None:
    assert compile_condition(text, deps).needs_state is needs_state


@pytest.mark.parametrize(("text", "deps", "expression", "names"), [
    pytest.param("a && (b || c)", ABC, "a&&(b||c)", {"a", "b", "c"}, id="canonical"),
    pytest.param("", ["x", "y"], "x&&y", {"x", "y"}, id="generated"),
    pytest.param("dep_1 || dep-3", HYPHENS, "dep-1||dep-3", {"dep-1", "dep-3"}, id="resolved-names"),
    pytest.param("a || a", ABC, "a||a", {"a"}, id="repeated-name"),
])
def test_expression_and_dependencies(text: str, deps: list[str], expression: str, names: set[str]) -> None:
    condition = compile_condition(text, deps)
    assert (condition.expression, condition.dependencies) == (expression, frozenset(names))


@pytest.mark.parametrize(("text", "deps", "message"), [
    pytest.param("a && d", ABC, "'d', which is not a dependency", id="unknown-name"),
    pytest.param("!a", ABC, "unexpected character '!'", id="negation"),
    pytest.param("(a && b", ABC, "missing ')'", id="unbalanced"),
    pytest.param("a &&", ABC, "at the end", id="dangling-and"),
    pytest.param("&& a", ABC, "before '&&'", id="leading-and"),
    pytest.param("()", ABC, "before ')'", id="empty-parens"),
    pytest.param("a b", ABC, "unexpected 'b'", id="two-names"),
    pytest.param("a & b", ABC, "unexpected character '&'", id="single-ampersand"),
    pytest.param("x-z", ["x_y", "x-y"], "not a dependency", id="near-miss"),
    pytest.param("a", [], "no dependencies", id="no-dependencies"),
])
def test_compile_errors(text: str, deps: list[str], message: str) -> None:
    with pytest.raises(ConditionError, match=re.escape(message)):
        compile_condition(text, deps)


def test_ambiguous_loose_match_is_an_error() -> None:
    # Neither dependency is spelled "p-q_r"; both equal it once '-' is read as '_'.
    with pytest.raises(ConditionError, match="ambiguous"):
        compile_condition("p-q_r", ["p_q-r", "p-q-r"])


E1, E2, E3 = {"id": "1"}, {"id": "2"}, {"id": "3"}


@pytest.mark.parametrize(("text", "saved", "dep", "event", "fire", "events"), [
    # No && in the expression: fire at once with only this event, whatever is saved.
    pytest.param("a || b", {"b": E1}, "a", E2, True, {"a": E2}, id="no-state-fires-alone"),
    pytest.param("a && b", {}, "a", E1, False, {"a": E1}, id="first-half-saved"),
    pytest.param("a && b", {"a": E1}, "b", E2, True, {"a": E1, "b": E2}, id="second-half-fires"),
    pytest.param("a && b", {"a": E1}, "a", E3, False, {"a": E3}, id="latest-wins"),
    pytest.param("a && b", {"a": E1, "z": E2}, "b", E3, True, {"a": E1, "b": E3}, id="stale-key-dropped"),
    pytest.param("(a && b) || c", {"a": E1}, "c", E2, True, {"a": E1, "c": E2}, id="or-branch-fires"),
    pytest.param("a && b && c", {"a": E1}, "b", E2, False, {"a": E1, "b": E2}, id="two-of-three"),
])
def test_correlate(text: str, saved: Mapping[str, Any], dep: str, event: Any, fire: bool,
                   events: dict[str, Any]) -> None:
    decision = correlate(compile_condition(text, ABC), saved, dep, event)
    assert (decision.fire, decision.events) == (fire, events)


def test_correlate_does_not_mutate_saved() -> None:
    saved = {"a": E1}
    correlate(compile_condition("a && b", ABC), saved, "a", E2)
    assert saved == {"a": E1}


def test_correlate_rejects_foreign_dependency() -> None:
    with pytest.raises(ValueError, match="'c' is not part of the condition"):
        correlate(compile_condition("a && b", ABC), {}, "c", E1)
