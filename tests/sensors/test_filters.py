"""Dependency filters: Argo Events' data / expr / context / time semantics, per filter and combined."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.envelope import CloudEvent
from sensors.filters import FilterCompileError, Verdict, compile_dependency, dotted
from sensors.models import EventDependency

WHEN = datetime(2026, 1, 5, 16, 36, 34, tzinfo=UTC)
FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "gitlab" / "merge_request.open.json"


def event(data: Any, *, when: datetime = WHEN, **context: str) -> CloudEvent:
    attributes = {"id": "1", "source": "webhook-gateway", "subject": "example-1", "type": "webhook", **context}
    return CloudEvent(data=data, time=when, **attributes)


def dependency(filters: dict[str, Any] | None, operator: str = "") -> EventDependency:
    return EventDependency.model_validate({"name": "dep", "eventSourceName": "webhook-gateway",
                                           "eventName": "example-1", "filters": filters,
                                           "filtersLogicalOperator": operator})


def verdict(filters: dict[str, Any] | None, data: Any, operator: str = "", **kwargs: Any) -> Verdict:
    return compile_dependency(dependency(filters, operator)).evaluate(event(data, **kwargs))


def one_data(data_filter: dict[str, Any], data: Any) -> Verdict:
    return verdict({"data": [data_filter]}, data)


def compile_error(filters: dict[str, Any]) -> FilterCompileError:
    with pytest.raises(FilterCompileError) as info:
        compile_dependency(dependency(filters))
    return info.value


# --- one data filter -----------------------------------------------------------------------------

B64 = {"path": "k", "type": "string", "template": "{{ b64dec .Input }}"}

DATA_FILTERS = [
    # string: values are unanchored regexes matched against the found value's text.
    pytest.param({"path": "k", "type": "string", "value": ["v"]}, {"k": "v"}, True, None,
                 'found "v", which matches "v"', id="string-equal"),
    pytest.param({"path": "action", "type": "string", "value": ["labeled"]}, {"action": "unlabeled"}, True, None,
                 "unanchored regex: 'labeled' matches inside 'unlabeled'", id="labeled-matches-unlabeled"),
    pytest.param({"path": "action", "type": "string", "value": ["^labeled$"]}, {"action": "unlabeled"}, False,
                 None, 'which does not match "^labeled$"', id="anchored-regex-does-not"),
    pytest.param({"path": "headers.X-Github-Event", "type": "string", "value": ["pull_request"]},
                 {"headers": {"X-Github-Event": ["pull_request"]}}, True, None,
                 "JSON array, matched as its text '[\"pull_request\"]'", id="header-array-matched-as-text"),
    pytest.param({"path": "k", "type": "string", "value": ["a", "v"]}, {"k": "v"}, True, None, 'matches "v"',
                 id="values-are-or-ed"),
    pytest.param({"path": "k", "type": "string", "value": ["a", "b"]}, {"k": "v"}, False, None,
                 'which matches none of "a", "b"', id="no-value-matches"),
    pytest.param({"path": "k", "type": "string", "value": ["b"], "comparator": "!="}, {"k": "v"}, True, None,
                 'which does not match "b"', id="string-not-equal"),
    pytest.param({"path": "k", "type": "string", "value": ["id1", "id2", "id3"], "comparator": "!="},
                 {"k": "id1"}, True, None, "passes when any one value does not match", id="not-equal-is-any-of"),
    pytest.param({"path": "k", "type": "string", "value": ["id", "1"], "comparator": "!="}, {"k": "id1"}, False,
                 None, "which matches every one of", id="not-equal-fails-when-all-match"),
    pytest.param({"path": "k", "type": "string", "value": ["a"], "comparator": ">"}, {"k": "b"}, False, None,
                 "never matches a string", id="string-greater-never-matches"),
    pytest.param({"path": "k", "type": "string", "value": ["v$"]}, {"k": "v\n"}, False, None, "does not match",
                 id="dollar-is-end-of-text"),
    pytest.param({"path": "k", "type": "string", "value": ["^$"]}, {"k": None}, True, None, 'null, matched as ""',
                 id="null-exists-and-reads-empty"),
    pytest.param({"path": "k", "type": "string", "value": ["^2$"]}, {"k": 2}, True, None, 'matched as "2"',
                 id="number-as-text"),
    pytest.param({"path": "k", "type": "string", "value": ["("]}, {"k": "v"}, False,
                 "error parsing regexp: missing closing ): `(`", "is not a valid regular expression",
                 id="invalid-regex-errors-when-reached"),
    # number: Go ParseFloat for values, gjson Float() for the event.
    pytest.param({"path": "k", "type": "number", "value": ["1.0"]}, {"k": "1.0"}, True, None, "1 = 1.0",
                 id="number-from-numeric-string"),
    pytest.param({"path": "k", "type": "number", "value": ["1.0"], "comparator": ">"}, {"k": "2.0"}, True, None,
                 "2 > 1.0", id="number-greater"),
    pytest.param({"path": "k", "type": "number", "value": ["1.0"], "comparator": "<="}, {"k": 2.0}, False, None,
                 "2 <= 1.0 is false", id="number-less-or-equal-false"),
    pytest.param({"path": "k", "type": "number", "value": ["1.0"], "comparator": "!="}, {"k": 1.0}, False, None,
                 "1 != 1.0 is false", id="number-not-equal-false"),
    pytest.param({"path": "k", "type": "number", "value": ["5.0"], "comparator": "="}, {"k": 5}, True, None,
                 "5 = 5.0", id="int-equals-float-value"),
    pytest.param({"path": "k", "type": "number", "value": ["1.0", "2.0", "3.0"], "comparator": "!="}, {"k": 2},
                 True, None, "differs from any one of them", id="number-not-equal-is-any-of"),
    pytest.param({"path": "k", "type": "number", "value": ["0"]}, {"k": "abc"}, True, None,
                 "not a number: Argo Events reads it as 0", id="non-numeric-string-is-zero"),
    pytest.param({"path": "k", "type": "number", "value": ["1"]}, {"k": True}, True, None, "reads it as 1",
                 id="true-is-one"),
    pytest.param({"path": "k", "type": "number", "value": ["0"], "comparator": ">="}, {"k": None}, True, None,
                 "reads it as 0", id="null-is-zero"),
    pytest.param({"path": "k", "type": "number", "value": ["abc"]}, {"k": 1}, False,
                 'strconv.ParseFloat: parsing "abc": invalid syntax', 'value "abc" is not a number',
                 id="bad-number-value"),
    pytest.param({"path": "k", "type": "number", "value": ["1", "abc"]}, {"k": 1}, True, None, "1 = 1",
                 id="bad-value-not-reached"),
    pytest.param({"path": "k", "type": "number", "value": ["1e400"]}, {"k": 1}, False,
                 'strconv.ParseFloat: parsing "1e400": value out of range', "is not a number",
                 id="number-out-of-range"),
    # bool: Go ParseBool for values, gjson Bool() for the event; the comparator is ignored.
    pytest.param({"path": "k", "type": "bool", "value": ["true"]}, {"k": True}, True, None, "which is true",
                 id="bool-true"),
    pytest.param({"path": "k", "type": "bool", "value": ["T"]}, {"k": True}, True, None, "which is T",
                 id="bool-parse-T"),
    pytest.param({"path": "k", "type": "bool", "value": ["False"]}, {"k": 0}, True, None, "read as false",
                 id="zero-is-false"),
    pytest.param({"path": "k", "type": "bool", "value": ["true"]}, {"k": "True"}, True, None, "read as true",
                 id="string-True-is-true"),
    pytest.param({"path": "k", "type": "bool", "value": ["true"], "comparator": "!="}, {"k": True}, True, None,
                 "comparator '!=' is ignored", id="bool-comparator-ignored"),
    pytest.param({"path": "k", "type": "bool", "value": ["yes"]}, {"k": True}, False,
                 'strconv.ParseBool: parsing "yes": invalid syntax', "is not a bool", id="bad-bool-value"),
    # type, path, template.
    pytest.param({"path": "k", "type": "strng", "value": ["v"]}, {"k": "v"}, False, "unsupported JSON type 'strng'",
                 "is not string, number or bool", id="unsupported-type"),
    pytest.param({"path": "body.object_attributes.state", "type": "string", "value": ["opened"]},
                 {"body": {"state": "opened"}}, False, "path 'body.object_attributes.state' does not exist",
                 "segment `object_attributes` missing under `body`", id="missing-path-names-segment"),
    pytest.param({"path": "nope", "type": "string", "value": ["v"]}, {"k": "v"}, False,
                 "path 'nope' does not exist", "missing at the top of the event data", id="missing-first-segment"),
    pytest.param({**B64, "value": ["HELLO WORLD"], "template": "{{ b64dec .Input | upper }}"},
                 {"k": "aGVsbG8gd29ybGQ="}, True, None, "the template's output", id="template-b64dec-upper"),
    pytest.param({**B64, "type": "number", "value": ["3.13"], "comparator": ">"}, {"k": "My4xNA=="}, True, None,
                 "3.14 > 3.13", id="template-then-number"),
    pytest.param({**B64, "value": ["hello world"], "comparator": "!="}, {"k": "aGVsbG8gd29ybGQ"}, True, None,
                 "illegal base64 data at input byte 12", id="b64dec-error-text-is-the-output"),
    pytest.param({**B64, "value": ["world$"]}, {"k": "aGVsbG8gd29ybGQ="}, True, None, "unanchored regex",
                 id="template-then-regex"),
    pytest.param({**B64, "value": ["x"], "template": "{{ .Input | trimAll \"a\" }}"}, {"k": "aaa"}, False,
                 "template '{{ .Input | trimAll \"a\" }}' evaluated to empty string or no value", "gave ''",
                 id="template-empty-output"),
]


@pytest.mark.parametrize(("data_filter", "data", "passed", "error", "reason"), DATA_FILTERS)
def test_data_filter(data_filter: dict[str, Any], data: Any, passed: bool, error: str | None, reason: str) -> None:
    result = one_data(data_filter, data)
    (only,) = result.filters
    assert (only.passed, result.matched, only.error) == (passed, passed, error)
    assert reason in only.reason
    assert result.error == (None if error is None else f"data filter error ({error})")


def test_gitlab_merge_request_payload() -> None:
    body = json.loads(FIXTURE.read_text())
    data = {"headers": {"X-Gitlab-Event": ["Merge Request Hook"]}, "body": body}
    filters = {"data": [
        {"path": "headers.X-Gitlab-Event", "type": "string", "value": ["Merge Request Hook"]},
        {"path": "body.object_attributes.action", "type": "string", "value": ["open"]},
        {"path": "body.object_attributes.iid", "type": "number", "value": ["1"], "comparator": ">="},
    ]}
    result = verdict(filters, data)
    assert result.matched
    assert [r.passed for r in result.filters] == [True, True, True]


# --- groups of data / expr filters ---------------------------------------------------------------

MISSING_A = {"path": "a", "type": "string", "value": ["x"]}
MISSING_B = {"path": "b", "type": "string", "value": ["x"]}
K_IS_V = {"path": "k", "type": "string", "value": ["v"]}
K_IS_Z = {"path": "k", "type": "string", "value": ["z"]}
EMPTY_TEMPLATE = {"path": "k", "type": "string", "value": ["x"], "template": "{{ .Input | trimAll \"v\" }}"}


@pytest.mark.parametrize(("filters", "matched", "error", "passes"), [
    pytest.param({"data": [K_IS_Z, K_IS_V]}, False, None, [False, False], id="and-stops-at-first-failure"),
    pytest.param({"data": [MISSING_A, K_IS_V]}, False, "data filter error (path 'a' does not exist)", [False, False],
                 id="and-stops-at-first-error"),
    pytest.param({"data": [MISSING_A, K_IS_V], "dataLogicalOperator": "or"}, True, None, [False, True],
                 id="or-pass-drops-earlier-errors"),
    pytest.param({"data": [K_IS_V, MISSING_A], "dataLogicalOperator": "or"}, True, None, [True, False],
                 id="or-stops-at-first-pass"),
    pytest.param({"data": [MISSING_A, MISSING_B], "dataLogicalOperator": "or"}, False,
                 "data filter errors [path 'a' does not exist / path 'b' does not exist]", [False, False],
                 id="or-collects-errors"),
    pytest.param({"data": [EMPTY_TEMPLATE], "dataLogicalOperator": "or"}, False,
                 "data filter errors [template evaluated to empty string or no value: '{{ .Input | trimAll \"v\" }}']",
                 [False], id="or-words-template-error-differently"),
    pytest.param({"data": [K_IS_Z, K_IS_Z], "dataLogicalOperator": "or"}, False, None, [False, False],
                 id="or-none-pass-no-error"),
])
def test_data_group(filters: dict[str, Any], matched: bool, error: str | None, passes: list[bool]) -> None:
    result = verdict(filters, {"k": "v"})
    assert (result.matched, result.error) == (matched, error)
    assert [r.passed for r in result.filters] == passes


def test_short_circuited_filters_say_so() -> None:
    result = verdict({"data": [K_IS_Z, K_IS_V]}, {"k": "v"})
    assert result.filters[1].reason == "not evaluated: an earlier data filter did not pass (dataLogicalOperator and)"


def expr(text: str, **fields: str) -> dict[str, Any]:
    return {"expr": text, "fields": [{"name": name, "path": path} for name, path in fields.items()]}


AB = {"a": {"b": "x", "d": {"e": True}}}


@pytest.mark.parametrize(("exprs", "operator", "matched", "error"), [
    pytest.param([expr('b == "x"', b="a.b"), expr('c == "c"', c="a.c")], "or", True, None,
                 id="or-first-true-wins"),
    pytest.param([expr('b == "b"', b="a.b"), expr('c == "c"', c="a.c")], "or", False,
                 "expr filter errors [path 'a.c' does not exist]", id="or-collects-missing-path"),
    pytest.param([expr('b == "b"', b="a.b"), expr('c == "c"', c="a.c"), expr("e == true", e="a.d.e")], "or",
                 True, None, id="or-later-true-drops-errors"),
    pytest.param([expr('b == "b"', b="a.b"), expr('c == "c"', c="a.c")], "", False, None,
                 id="and-false-stops-before-missing-path"),
    pytest.param([expr('b == "x"', b="a.b"), expr('c == "c"', c="a.c")], "and", False,
                 "expr filter error (path 'a.c' does not exist)", id="and-missing-path-errors"),
    pytest.param([expr('b != "b" && z == true', b="a.b", z="a.z")], "", False,
                 "expr filter error (path 'a.z' does not exist)", id="any-missing-field-errors"),
    pytest.param([expr('b == "x" || (z == true && e == 2)', b="a.b")], "", True, None,
                 id="unbound-variable-short-circuit"),
    pytest.param([expr('b == "y" || (e == true && z == 2)', b="a.b", e="a.d.e")], "", False,
                 "expr filter error (No parameter 'z' found.)", id="unbound-variable-reached"),
])
def test_expr_group(exprs: list[dict[str, Any]], operator: str, matched: bool, error: str | None) -> None:
    result = verdict({"exprs": exprs, "exprLogicalOperator": operator}, AB)
    assert (result.matched, result.error) == (matched, error)


@pytest.mark.parametrize(("expression", "data", "matched"), [
    pytest.param("ref == 2", {"ref": 2}, True, id="json-int-equals-literal"),
    pytest.param("count > 1.5", {"count": 2}, True, id="json-int-greater-than-double"),
    pytest.param("x == 2.0", {"x": 2}, True, id="json-int-equals-double"),
    pytest.param('ref =~ "^refs/heads/"', {"ref": "refs/heads/main"}, True, id="regex-match"),
    pytest.param('ref !~ "^refs/tags/"', {"ref": "refs/heads/main"}, True, id="regex-not-match"),
    pytest.param("ref in ('refs/heads/main', 'refs/heads/dev')", {"ref": "refs/heads/dev"}, True, id="in-tuple"),
    pytest.param("ref == 'refs/heads/main'", {"ref": "refs/heads/main"}, True, id="single-quotes"),
])
def test_expr_forms_used_in_practice(expression: str, data: dict[str, Any], matched: bool) -> None:
    name = next(iter(data))
    assert verdict({"exprs": [expr(expression, **{name: name})]}, data).matched is matched


# --- filtersLogicalOperator ----------------------------------------------------------------------

CONTEXT_OK = {"type": "webhook", "source": "webhook-gateway"}
CONTEXT_BAD = {"type": "webhook", "source": "webhook-fake"}
DATA = {"a": "x", "b": 10, "c": {"d": "hello world", "e": False}}
A_X = {"path": "a", "type": "string", "value": ["x"]}
B_10 = {"path": "b", "type": "number", "value": ["10"]}
B_11 = {"path": "b", "type": "number", "value": ["11"]}
D_HELLO = expr('d == "hello world"', d="c.d")
E_TRUE = expr("e == true", e="c.e")
E_FALSE = expr("e == false", e="c.e")


@pytest.mark.parametrize(("filters", "operator", "matched", "error"), [
    pytest.param({"context": CONTEXT_OK, "data": [{**A_X, "value": ["z"]}]}, "", False, None, id="and-data-false"),
    pytest.param({"context": CONTEXT_BAD, "data": [A_X]}, "and", False, None, id="and-context-false"),
    pytest.param({"context": CONTEXT_OK, "data": [{**A_X, "path": "z"}]}, "and", False,
                 "data filter error (path 'z' does not exist)", id="and-data-error"),
    pytest.param({"context": CONTEXT_OK, "data": [{**A_X, "value": ["z"]}]}, "or", True, None,
                 id="or-context-passes"),
    pytest.param({"context": CONTEXT_OK, "data": [{**A_X, "path": "z"}]}, "or", False,
                 "data filter error (path 'z' does not exist)", id="or-pass-with-error-is-discarded"),
    pytest.param({"data": [A_X, B_10], "exprs": [D_HELLO, E_FALSE]}, "", True, None, id="(A&&B)&&(C&&D)"),
    pytest.param({"data": [A_X, B_10], "exprs": [D_HELLO, E_TRUE]}, "or", True, None, id="(A&&B)||(C&&D)"),
    pytest.param({"data": [A_X, B_11], "dataLogicalOperator": "or", "exprs": [D_HELLO, E_TRUE],
                  "exprLogicalOperator": "or"}, "and", True, None, id="(A||B)&&(C||D)"),
    pytest.param({"data": [A_X, B_11], "exprs": [D_HELLO, E_TRUE], "exprLogicalOperator": "or"}, "and", False,
                 None, id="(A&&B)&&(C||D)-false"),
    pytest.param({"data": [A_X, B_10], "dataLogicalOperator": "or", "exprs": [expr('f == "x"', f="c.f"), E_FALSE]},
                 "and", False, "expr filter error (path 'c.f' does not exist)", id="(A||B)&&(C&&D)-error"),
    pytest.param({}, "or", False, None, id="or-with-nothing-configured"),
    pytest.param({}, "", True, None, id="and-with-nothing-configured"),
    pytest.param({"data": []}, "or", True, None, id="or-with-empty-data-list"),
])
def test_filters_logical_operator(filters: dict[str, Any], operator: str, matched: bool, error: str | None) -> None:
    result = verdict(filters, DATA, operator)
    assert (result.matched, result.error) == (matched, error)


def test_or_mode_shows_the_passing_group_next_to_the_error() -> None:
    result = verdict({"context": CONTEXT_OK, "data": [{**A_X, "path": "z"}]}, DATA, "or")
    assert [(r.kind, r.passed) for r in result.filters] == [("data", False), ("context", True)]


def test_and_mode_error_stops_later_groups() -> None:
    filters = {"exprs": [expr("z == 1", z="nope")], "data": [A_X], "context": CONTEXT_OK}
    result = verdict(filters, DATA)
    assert [r.kind for r in result.filters] == ["expr", "data", "context"]
    assert all(r.reason.startswith("not evaluated: an earlier filter failed") for r in result.filters[1:])


def test_evaluation_order_is_exprs_data_context_time() -> None:
    filters = {"time": {"start": "00:00:00", "stop": "23:59:59"}, "context": CONTEXT_OK, "data": [A_X],
               "exprs": [D_HELLO]}
    assert [r.kind for r in verdict(filters, DATA).filters] == ["expr", "data", "context", "time"]


def test_no_filters_pass_without_evaluation() -> None:
    assert verdict(None, DATA) == Verdict(True, (), None)


def test_event_without_data_passes_data_and_expr_filters() -> None:
    filters = {"data": [{**A_X, "path": "nope"}], "exprs": [expr("z == 1", z="nope")], "context": CONTEXT_OK}
    result = verdict(filters, None)
    assert result.matched
    assert "the event has no data" in result.filters[0].reason


# --- context and time ----------------------------------------------------------------------------


@pytest.mark.parametrize(("context", "matched"), [
    pytest.param({"type": "webhook", "source": "webhook-gateway"}, True, id="type-and-source"),
    pytest.param({"subject": "example-1", "datacontenttype": "application/json"}, True, id="subject-and-content"),
    pytest.param({"type": "Webhook"}, False, id="case-sensitive"),
    pytest.param({"source": "webhook"}, False, id="no-prefix-match"),
    pytest.param({"type": "webhook", "id": "other"}, True, id="id-is-ignored"),
])
def test_context_filter(context: dict[str, str], matched: bool) -> None:
    assert verdict({"context": context}, DATA).matched is matched


@pytest.mark.parametrize(("window", "when", "matched"), [
    pytest.param(("09:00:00", "17:00:00", None), "16:36:34", True, id="inside"),
    pytest.param(("16:36:34", "17:00:00", None), "16:36:34", True, id="start-inclusive"),
    pytest.param(("09:00:00", "16:36:34", None), "16:36:34", False, id="stop-exclusive"),
    pytest.param(("22:00:00", "06:00:00", None), "23:30:00", True, id="wraps-midnight-evening"),
    pytest.param(("22:00:00", "06:00:00", None), "05:59:59", True, id="wraps-midnight-morning"),
    pytest.param(("22:00:00", "06:00:00", None), "12:00:00", False, id="wraps-midnight-outside"),
    pytest.param(("9:00:00", "17:00:00", "Europe/Paris"), "16:36:34", False, id="timezone-paris-is-17h36"),
    pytest.param(("09:00:00", "17:00:00", "America/New_York"), "16:36:34", True, id="timezone-new-york"),
    pytest.param(("00:00:00", "01:00:00", "Asia/Tokyo"), "15:30:00", True, id="timezone-next-calendar-day"),
])
def test_time_filter(window: tuple[str, str, str | None], when: str, matched: bool) -> None:
    start, stop, zone = window
    moment = datetime.fromisoformat(f"2026-01-05T{when}+00:00")
    result = verdict({"time": {"start": start, "stop": stop, "timezone": zone}}, DATA, when=moment)
    assert result.matched is matched
    assert ("inside" if matched else "outside") in result.filters[0].reason


# --- load-time errors and warnings ---------------------------------------------------------------

TODAY = r"\d{4}-\d{2}-\d{2}"


@pytest.mark.parametrize(("filters", "path", "message"), [
    pytest.param({"time": {"start": "09:09:0", "stop": "19:19:19"}}, ("filters", "time", "start"),
                 f'parsing time "{TODAY} 09:09:0" as "2006-01-02 15:04:05": cannot parse "0" as "05"',
                 id="time-short-seconds"),
    pytest.param({"time": {"start": "10:10", "stop": "19:19:19"}}, ("filters", "time", "start"),
                 f'parsing time "{TODAY} 10:10" as "2006-01-02 15:04:05": cannot parse "" as ":"',
                 id="time-no-seconds"),
    pytest.param({"time": {"start": "09:00:00", "stop": "24:00:00"}}, ("filters", "time", "stop"),
                 f'parsing time "{TODAY} 24:00:00": hour out of range', id="time-hour-range"),
    pytest.param({"time": {"start": "10:00:00", "stop": "10:00:00"}}, ("filters", "time"),
                 "invalid event time filter: stop '10:00:00' is equal to start '10:00:00", id="time-empty-window"),
    pytest.param({"time": {"start": "10:00:00", "stop": "11:00:00", "timezone": "Mars/Base"}},
                 ("filters", "time", "timezone"), "invalid timezone 'Mars/Base': unknown time zone Mars/Base",
                 id="time-bad-timezone"),
    pytest.param({"context": {"id": "x"}}, ("filters", "context"),
                 r"no fields specified in ctx filter \(aka all events will be discarded\)", id="context-empty"),
    pytest.param({"data": [{"path": "k", "type": "string", "value": []}]}, ("filters", "data", 0),
                 r"one of data filters is not valid \(type, path and value must be not empty\)", id="data-no-values"),
    pytest.param({"data": [{"path": "k", "type": "string", "value": ["a", ""]}]}, ("filters", "data", 0, "value", 1),
                 r"one of data filters is not valid \(value must be not empty\)", id="data-empty-value"),
    pytest.param({"exprs": [{"expr": "a == 1", "fields": []}]}, ("filters", "exprs", 0),
                 r"one of expr filters is not valid \(expr and fields must be not empty\)", id="expr-no-fields"),
    pytest.param({"exprs": [expr("a == (", a="a")]}, ("filters", "exprs", 0, "expr"), r"cannot translate expr",
                 id="expr-syntax"),
    pytest.param({"exprs": [expr("a == 1 &&", a="a")]}, ("filters", "exprs", 0, "expr"),
                 r"cannot compile expr 'a == 1 &&' \(as CEL: 'a == 1 &&'\)", id="expr-cel-syntax"),
    pytest.param({"data": [{**K_IS_V, "template": "{{ nosuchfunc .Input }}"}]}, ("filters", "data", 0, "template"),
                 r'function "nosuchfunc" not defined', id="template-unknown-function"),
])
def test_compile_errors(filters: dict[str, Any], path: tuple[str | int, ...], message: str) -> None:
    error = compile_error(filters)
    assert error.path == path
    assert re.search(message, error.message), error.message
    assert str(error) == f"{dotted(path)}: {error.message}"


@pytest.mark.parametrize(("filters", "warning"), [
    pytest.param({"data": [{"path": "k", "type": "number", "value": ["1", "x"]}]},
                 'filters.data[0].value[1]: strconv.ParseFloat: parsing "x": invalid syntax', id="bad-number"),
    pytest.param({"data": [{"path": "k", "type": "strng", "value": ["x"]}]},
                 "filters.data[0].type: unsupported JSON type 'strng'", id="unsupported-type"),
    pytest.param({"exprs": [expr('b == "b" || e == 2', b="b")]}, "filters.exprs[0].expr: reads e, which no field binds",
                 id="unbound-expr-variable"),
    pytest.param({"context": {"type": "webhook", "time": "x"}}, "filters.context: ignored field(s) time",
                 id="ignored-context-field"),
])
def test_load_warnings(filters: dict[str, Any], warning: str) -> None:
    warnings = compile_dependency(dependency(filters)).warnings
    assert any(w.startswith(warning) for w in warnings), warnings


def test_dotted_field_paths() -> None:
    assert dotted(("filters", "exprs", 0, "fields", 1, "path")) == "filters.exprs[0].fields[1].path"


def test_go_time_accepts_one_digit_hours_and_fractions() -> None:
    filters = {"time": {"start": "9:00:00.5", "stop": "17:00:00"}}
    assert verdict(filters, DATA, when=datetime(2026, 1, 5, 9, 0, 0, 600000, tzinfo=UTC)).matched
    assert not verdict(filters, DATA, when=datetime(2026, 1, 5, 9, 0, 0, 400000, tzinfo=UTC)).matched


# --- what `hookgate test` prints -----------------------------------------------------------------


@pytest.mark.parametrize(("filters", "spec"), [
    pytest.param({"data": [{"path": "body.object_attributes.state", "type": "string", "value": ["opened"]}]},
                 'body.object_attributes.state matches "opened" (string, unanchored regex)', id="string"),
    pytest.param({"data": [{"path": "k", "type": "string", "value": ["a", "b"], "comparator": "!="}]},
                 'k does not match "a" or does not match "b" (string, unanchored regex)', id="string-not-equal"),
    pytest.param({"data": [{"path": "n", "type": "number", "value": ["1", "2"], "comparator": ">"}]},
                 "n > 1 or > 2 (number)", id="number"),
    pytest.param({"exprs": [expr('ref =~ "main"', ref="body.ref")]},
                 'ref =~ "main" (CEL: ref.matches("main")) with ref = body.ref', id="expr"),
    pytest.param({"context": {"type": "webhook"}}, 'event type is "webhook"', id="context"),
    pytest.param({"time": {"start": "22:00:00", "stop": "06:00:00"}},
                 "event time in [22:00:00, 06:00:00) UTC (wraps past midnight)", id="time"),
])
def test_spec_describes_the_filter(filters: dict[str, Any], spec: str) -> None:
    assert verdict(filters, {"k": "x", "n": 3, "body": {"ref": "main"}}).filters[0].spec == spec
