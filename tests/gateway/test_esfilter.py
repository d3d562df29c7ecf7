"""EventSource-level `filter.expression`: expr-lang forms translated to CEL, true / false / error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import esfilter
from gateway.errors import ManifestError, format_path
from gateway.models import EventSourceFilter, GiteaEventSource
from gateway.webhook import Accepted, Incoming
from hookgate.manifests import load
from tests.gateway.test_webhook import incoming

DATA: dict[str, Any] = {
    "headers": {"X-Gitea-Event": ["pull_request"], "X-Gitea-Event-Type": ["pull_request_label"]},
    "body": {
        "action": "opened",
        "number": 42,
        "ratio": 2.0,
        "id": 4,
        "name": "John",
        "ref": "refs/heads/main",
        "draft": False,
        "labels": [{"name": "bug"}, {"name": "ci"}],
        "package": {"name": "pkg"},
        "nothing": None,
    },
    "metadata": {"team": "platform"},
    "X-Custom-Key": "dashed",
}


def verdict(expression: str, data: dict[str, Any] | None = None) -> esfilter.Verdict:
    return esfilter.compile_filter(expression).evaluate(DATA if data is None else data)


@pytest.mark.parametrize(("expression", "passed"), [
    pytest.param('body.action == "opened"', True, id="equals"),
    pytest.param('body.action == "closed"', False, id="equals-false"),
    pytest.param('body.action != "closed"', True, id="not-equals"),
    pytest.param("(body.id == 4) && (body.name != 'Joe')", True, id="argo-docs-example-single-quotes"),
    pytest.param('body.action == "opened" and body.number > 10', True, id="and-keyword"),
    pytest.param('body.action == "closed" or body.number >= 42', True, id="or-keyword"),
    pytest.param('body.action == "closed" || body.number < 42', False, id="or-symbol-false"),
    pytest.param('not (body.action == "closed")', True, id="not-keyword"),
    pytest.param("!body.draft", True, id="bang"),
    pytest.param('body.action in ["opened", "reopened"]', True, id="in-list"),
    pytest.param('body.action not in ["opened", "reopened"]', False, id="not-in-list"),
    pytest.param('"team" in metadata', True, id="in-map-keys"),
    pytest.param('body.ref matches "^refs/heads/(main|release-.*)$"', True, id="matches"),
    pytest.param('body.ref matches "heads"', True, id="matches-is-unanchored"),
    pytest.param('body.ref not matches "^refs/tags/"', True, id="not-matches"),
    pytest.param('body.ref contains "heads"', True, id="contains"),
    pytest.param('body.ref startsWith "refs/heads/"', True, id="startsWith"),
    pytest.param('body.ref endsWith "/main"', True, id="endsWith"),
    pytest.param('body.ref not startsWith "refs/tags/"', True, id="not-startsWith"),
    pytest.param('headers["X-Gitea-Event"][0] == "pull_request"', True, id="bracket-access-dashed-header"),
    pytest.param('X_Custom_Key == "dashed"', True, id="top-level-dash-becomes-underscore"),
    pytest.param('body.package.name == "pkg"', True, id="field-named-like-a-CEL-reserved-word"),
    pytest.param("body.number == 42.0", True, id="int-equals-float"),
    pytest.param("body.ratio == 2", True, id="float-equals-int"),
    pytest.param("body.number > 41.5", True, id="int-compares-with-float"),
    pytest.param("body.number / 4 == 10.5", True, id="division-is-float"),
    pytest.param("body.number % 5 == 2", True, id="modulo"),
    pytest.param("body.number + 1 == 43 && body.ratio * 2 == 4", True, id="arithmetic"),
    pytest.param("2 ** 3 == 8", True, id="power"),
    pytest.param('body.missing == "x"', False, id="missing-key-is-nil-not-an-error"),
    pytest.param('body.missing != "x"', True, id="missing-key-not-equal"),
    pytest.param("body.missing == nil && body.nothing == nil", True, id="nil"),
    pytest.param("body?.missing?.deeper == nil", True, id="optional-chaining"),
    pytest.param('(body.missing ?? "default") == "default"', True, id="nil-coalescing"),
    pytest.param("len(body.labels) == 2", True, id="len"),
    pytest.param('body.labels[0].name == "bug" && body.labels[-1].name == "ci"', True, id="index-and-negative-index"),
    pytest.param('body.ref[0:4] == "refs"', True, id="slice"),
    pytest.param('any(body.labels, {.name == "ci"})', True, id="any-with-field-closure"),
    pytest.param('all(body.labels, #.name != "wip")', True, id="all-with-pointer"),
    pytest.param('none(body.labels, .name == "wip")', True, id="none-without-braces"),
    pytest.param('one(body.labels, .name startsWith "b")', True, id="one"),
    pytest.param('count(body.labels, .name in ["bug", "ci"]) == 2', True, id="count"),
    pytest.param('map(body.labels, .name) == ["bug", "ci"]', True, id="map"),
    pytest.param('len(filter(body.labels, .name == "bug")) == 1', True, id="filter"),
    pytest.param('lower(upper(body.name)) == "john" && trim("  x ") == "x"', True, id="string-builtins"),
    pytest.param('hasPrefix(body.ref, "refs/") && trimPrefix(body.ref, "refs/heads/") == "main"', True,
                 id="prefix-builtins"),
    pytest.param('split(body.ref, "/")[2] == "main" && join(["a", "b"], "-") == "a-b"', True, id="split-join"),
    pytest.param('string(body.number) == "42" && int("7") == 7 && float("1.5") == 1.5', True, id="conversions"),
    pytest.param("asInt(body.ratio) == 2 && asFloat(body.number) == 42", True, id="argo-aliases"),
    pytest.param('body.number > 40 ? body.action == "opened" : false', True, id="ternary"),
    pytest.param("body.number in 40..45", True, id="range"),
    pytest.param('metadata.team == "platform"', True, id="metadata"),
    pytest.param('body.action == "opened" // a comment', True, id="line-comment"),
    pytest.param('body.action == "op\\u0065ned"', True, id="unicode-escape"),
    pytest.param("body.action == `opened`", True, id="raw-string"),
])
def test_an_expression_is_true_or_false_as_in_expr_lang(expression: str, passed: bool) -> None:
    result = verdict(expression)
    assert result.error is False, result.reason
    assert result.passed is passed
    assert repr(expression) in result.reason


@pytest.mark.parametrize(("expression", "message"), [
    pytest.param("body.missing.deeper == 1", "cannot fetch deeper from nil", id="field-of-nil"),
    pytest.param("body.action", "not a boolean", id="not-a-boolean"),
    pytest.param('body.action < 3', "mismatched types", id="mismatched-comparison"),
    pytest.param("body.labels[5].name == 1", "index out of range", id="index-out-of-range"),
    pytest.param('not body.action == "x"', "", id="not-binds-tighter-than-equals-as-in-expr-lang"),
    pytest.param("unknown.x == 1", "cannot fetch x from nil", id="unknown-top-level-name"),
    pytest.param('body.number matches "4"', "expected a string", id="matches-on-a-number"),
    pytest.param("body.number / 0 > 1 && body.id % 0 == 1", "", id="modulo-by-zero"),
])
def test_an_evaluation_error_is_not_a_pass_and_says_why(expression: str, message: str) -> None:
    result = verdict(expression)
    assert result.passed is False
    assert result.error is True
    assert message in result.reason
    assert repr(expression) in result.reason


def test_cel_absorbs_an_error_on_the_side_that_does_not_decide() -> None:
    # expr-lang short-circuits left to right; both agree when the decisive side comes first.
    assert verdict('body.missing != nil && body.missing.x == 1').passed is False
    assert verdict('body.missing == nil || body.missing.x == 1').passed is True


def test_integers_compare_exactly_within_int64_and_as_go_float64_beyond() -> None:
    assert verdict("body.n == 9007199254740993", {"body": {"n": 9007199254740993}}).passed is True
    assert verdict("body.n == 9007199254740992", {"body": {"n": 9007199254740993}}).passed is False
    # Beyond int64, Go (and so Argo) has only a float64: the value is not an error, it is rounded.
    huge = {"body": {"n": 12345678901234567890}}
    assert verdict("body.n > 12345678901234567000", huge).passed is False
    assert verdict("body.n == 12345678901234567890", huge).passed is True


@pytest.mark.parametrize(("expression", "message"), [
    pytest.param('sprig.trim(body.a) == "x"', "not supported by hookgate: sprig functions", id="sprig"),
    pytest.param('jsonpath(toJson(body), "$.a") == 1', "the jsonpath function", id="jsonpath"),
    pytest.param("let x = 1; x == 1", "`let` bindings", id="let"),
    pytest.param("body.labels | len() > 0", "pipes", id="pipe"),
    pytest.param("nosuch(body) == 1", "the function nosuch()", id="unknown-function"),
    pytest.param("body.name.upper() == 1", "method call", id="method-call"),
    pytest.param("body.a ==", "unexpected 'end of expression'", id="incomplete"),
    pytest.param("body.a === 1", "unexpected", id="bad-operator"),
    pytest.param('body.a == "unterminated', "unexpected character", id="unterminated-string"),
    pytest.param('body.ref matches "(unclosed"', "invalid regular expression '(unclosed'", id="bad-regex"),
    pytest.param("len(1, 2) == 1", "len() takes 1 argument", id="wrong-arity"),
    pytest.param("   ", "empty", id="empty"),
])
def test_an_expression_that_cannot_be_translated_is_an_error_naming_it(expression: str, message: str) -> None:
    with pytest.raises(esfilter.FilterError) as err:
        esfilter.compile_filter(expression)
    assert message in str(err.value)
    if expression.strip():
        assert repr(expression) in str(err.value)


def test_an_expression_compiles_once() -> None:
    assert esfilter.compile_filter('body.a == "x"') is esfilter.compile_filter('body.a == "x"')


# --- applied to accepted deliveries ---------------------------------------------------------------


def accepted(**data: Any) -> Accepted:
    return Accepted(event_id="d-1", data={"headers": {}, "body": data})


@pytest.mark.parametrize(("expression", "publish", "note"), [
    pytest.param('body.action == "opened"', True, "", id="true-published"),
    pytest.param('body.action == "closed"', False, "is false", id="false-not-published"),
    pytest.param("body.action.x == 1", False, "failed", id="error-not-published"),
])
def test_screen_keeps_the_delivery_accepted_and_publishes_only_when_true(expression: str, publish: bool,
                                                                          note: str) -> None:
    result = esfilter.screen(accepted(action="opened"), esfilter.compile_filter(expression), label="es/ev")
    assert result.publish is publish
    assert note in result.note
    assert result.event_id == "d-1"


def test_screen_leaves_an_already_unpublished_delivery_alone() -> None:
    quiet = Accepted(event_id="d-2", data={}, publish=False, note="event 'ping' is not in events")
    assert esfilter.screen(quiet, esfilter.compile_filter("false"), label="es/ev") is quiet


def test_guard_wraps_a_provider_and_without_a_filter_returns_it_unchanged() -> None:
    def provider(inc: Incoming) -> Accepted:
        return accepted(action=inc.body.decode())

    assert esfilter.guard(provider, None, label="es/ev") is provider
    guarded = esfilter.guard(provider, EventSourceFilter(expression='body.action == "yes"'), label="es/ev")
    assert guarded(incoming(body=b"yes")).publish is True
    assert guarded(incoming(body=b"no")).publish is False


# --- load time ------------------------------------------------------------------------------------


def test_a_filter_is_a_field_of_every_webhook_like_source() -> None:
    spec = GiteaEventSource.model_validate({"webhook": {"endpoint": "/g", "port": "12000"},
                                           "filter": {"expression": "body.x == 1"}})
    assert spec.filter is not None and spec.filter.expression == "body.x == 1"


@pytest.mark.parametrize("kind", ["webhook", "github", "gitlab", "bitbucket", "bitbucketserver", "gitea", "nats"])
def test_a_bad_expression_is_a_manifest_error_naming_the_field_and_the_expression(tmp_path: Path,
                                                                                  kind: str) -> None:
    entry: dict[str, Any] = {"filter": {"expression": 'body.a matches "("'}}
    if kind == "webhook":
        entry.update(endpoint="/h", port="12000")
    elif kind == "nats":
        entry.update(url="nats://127.0.0.1:4222", subject="s")
    else:
        entry.update(webhook={"endpoint": "/h", "port": "12000"})
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": "es"},
           "spec": {kind: {"ev": entry}}}
    (tmp_path / "es.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError) as err:
        load([tmp_path / "es.yaml"])
    assert format_path(err.value.path) == f"spec.{kind}.ev.filter.expression"
    assert "body.a matches" in err.value.message
    assert "invalid regular expression" in err.value.message
