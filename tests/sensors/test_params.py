"""Trigger parameters: Argo's resolution order, sjson dest paths, apply and payload building."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.envelope import CloudEvent
from sensors.models import TriggerParameter
from sensors.params import (
    CompiledParameter,
    ParamError,
    Resolved,
    apply_parameters,
    compile_parameters,
    construct_payload,
    set_path,
)

WHEN = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)
DATA: dict[str, Any] = {
    "header": {"X-Gitlab-Event": ["Push Hook"]},
    "body": {
        "ref": "refs/heads/main",
        "count": 42,
        "ratio": 1.5,
        "big": 12345678901234567890,
        "merged": True,
        "draft": False,
        "gone": None,
        "repo": {"name": "hookgate", "private": False},
        "labels": [{"name": "bug"}, {"name": "ui"}],
        "a.b": "dotted",
        "html": "<b>&</b>",
    },
}


def event(data: Any = None, *, content_type: str = "application/json") -> CloudEvent:
    return CloudEvent(id="ev1", source="gitlab-es", subject="push", type="gitlab",
                      data=DATA if data is None else data, time=WHEN, datacontenttype=content_type)


EVENTS = {"dep": event()}


def param(dest: str = "x", operation: str = "", **src: Any) -> TriggerParameter:
    return TriggerParameter.model_validate(
        {"src": {"dependencyName": "dep", **src}, "dest": dest, "operation": operation})


def compiled(*params: TriggerParameter, require_dest: bool = False) -> tuple[CompiledParameter, ...]:
    return compile_parameters(params, require_dest=require_dest)


def resolve(events: dict[str, CloudEvent] = EVENTS, **src: Any) -> Resolved | None:
    return compiled(param(**src))[0].resolve(events)


# --- resolution ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "expected"), [
    pytest.param({"dataKey": "body.ref"}, Resolved("refs/heads/main", "String"), id="key-string"),
    pytest.param({"dataKey": "body.count"}, Resolved("42", "Number"), id="key-int"),
    pytest.param({"dataKey": "body.ratio"}, Resolved("1.5", "Number"), id="key-float"),
    pytest.param({"dataKey": "body.big"}, Resolved("12345678901234567890", "Number"), id="key-big-int-exact"),
    pytest.param({"dataKey": "body.merged"}, Resolved("true", "True"), id="key-true"),
    pytest.param({"dataKey": "body.draft"}, Resolved("false", "False"), id="key-false"),
    pytest.param({"dataKey": "body.gone"}, Resolved("null", "Null"), id="key-null"),
    pytest.param({"dataKey": "body.repo"}, Resolved('{"name":"hookgate","private":false}', "JSON"),
                 id="key-object-compact"),
    pytest.param({"dataKey": "body.labels"}, Resolved('[{"name":"bug"},{"name":"ui"}]', "JSON"), id="key-array"),
    pytest.param({"dataKey": "body.labels.1.name"}, Resolved("ui", "String"), id="key-index"),
    pytest.param({"dataKey": "body.labels.#"}, Resolved("2", "Number"), id="key-count"),
    pytest.param({"dataKey": "body.labels.#.name"}, Resolved('["bug","ui"]', "JSON"), id="key-map"),
    pytest.param({"dataKey": "body.a\\.b"}, Resolved("dotted", "String"), id="key-escaped-dot"),
    pytest.param({"dataKey": "header.X-Gitlab-Event.0"}, Resolved("Push Hook", "String"), id="key-hyphen"),
    pytest.param({"dataKey": "body.nope", "value": "dflt"}, Resolved("dflt", "String"), id="key-missing-value"),
    pytest.param({"contextKey": "id"}, Resolved("ev1", "String"), id="context-id"),
    pytest.param({"contextKey": "type"}, Resolved("gitlab", "String"), id="context-type"),
    # metav1.Time marshals whole seconds in UTC; the microseconds are dropped.
    pytest.param({"contextKey": "time"}, Resolved("2024-05-01T12:30:45Z", "String"), id="context-time"),
    pytest.param({"contextKey": "specversion"}, Resolved("1.0", "String"), id="context-specversion"),
    pytest.param({"dataKey": "body.ref", "contextKey": "id"}, Resolved("refs/heads/main", "String"),
                 id="data-key-beats-context-key"),
    # A data selector replaces both context selectors, the template included.
    pytest.param({"dataKey": "body.ref", "contextTemplate": "{{ .Input.id }}"},
                 Resolved("refs/heads/main", "String"), id="data-key-beats-context-template"),
    pytest.param({"dataKey": "", "contextKey": "subject"}, Resolved("push", "String"), id="empty-key-is-unset"),
    pytest.param({"value": "fixed"}, Resolved("fixed", "String"), id="value-only"),
    pytest.param({"value": ""}, Resolved("", "String"), id="empty-value-is-a-value"),
])
def test_resolve_from_key_and_value(src: dict[str, Any], expected: Resolved) -> None:
    assert resolve(**src) == expected


@pytest.mark.parametrize(("src", "expected"), [
    pytest.param({"dataTemplate": "{{ .Input.body.repo.name }}"}, Resolved("hookgate", "String"), id="template"),
    pytest.param({"dataTemplate": "{{ .Input.body.ref }}", "dataKey": "body.count"},
                 Resolved("refs/heads/main", "String"), id="template-before-key"),
    pytest.param({"contextTemplate": "{{ .Input.source }}/{{ .Input.subject }}"},
                 Resolved("gitlab-es/push", "String"), id="context-template"),
    # A template result is a String even when it looks like a number.
    pytest.param({"dataTemplate": "{{ .Input.body.count }}"}, Resolved("42", "String"), id="template-number"),
    # "<no value>" (missing map key) falls back to the key.
    pytest.param({"dataTemplate": "{{ .Input.body.nope }}", "dataKey": "body.count"},
                 Resolved("42", "Number"), id="template-no-value-to-key"),
    # A field of null is an exec error in Go; it falls back to the key too.
    pytest.param({"dataTemplate": "{{ .Input.body.gone.x }}", "dataKey": "body.count"},
                 Resolved("42", "Number"), id="template-exec-error-to-key"),
    pytest.param({"dataTemplate": "{{ if .Input.body.draft }}x{{ end }}", "dataKey": "body.ref"},
                 Resolved("refs/heads/main", "String"), id="template-empty-to-key"),
    pytest.param({"dataTemplate": "{{ .Input.body.nope }}", "value": "dflt"}, Resolved("dflt", "String"),
                 id="template-fails-to-value"),
])
def test_resolve_with_templates(src: dict[str, Any], expected: Resolved) -> None:
    assert resolve(**src) == expected


def test_template_failure_without_fallback_is_an_error() -> None:
    with pytest.raises(ParamError, match=r"parameters\[0\]: unable to resolve 'dep' parameter value"):
        resolve(dataTemplate="{{ .Input.body.nope }}")


def test_missing_key_without_value_is_an_error() -> None:
    with pytest.raises(ParamError, match=r"unable to resolve 'dep' parameter value.*'body\.nope' does not exist"):
        resolve(dataKey="body.nope")


@pytest.mark.parametrize(("src", "expected"), [
    pytest.param({"value": "dflt", "dataKey": "body.ref"}, Resolved("dflt", "String"), id="value"),
    pytest.param({"dataKey": "body.ref"}, None, id="skipped"),
])
def test_absent_dependency(src: dict[str, Any], expected: Resolved | None) -> None:
    assert resolve({"other": event()}, **src) == expected


def test_whole_event_when_no_selector() -> None:
    resolved = resolve()
    assert resolved is not None and resolved.kind == "String"
    doc = json.loads(resolved.value)
    assert list(doc) == ["context", "data"]
    assert doc["context"] == {"id": "ev1", "source": "gitlab-es", "specversion": "1.0", "type": "gitlab",
                              "datacontenttype": "application/json", "subject": "push",
                              "time": "2024-05-01T12:30:45Z"}
    # data is the base64 of the JSON bytes (Go marshals []byte that way).
    assert json.loads(base64.b64decode(doc["data"])) == DATA


def test_whole_event_escapes_html_like_go() -> None:
    resolved = resolve({"dep": event({"t": "<b>&</b>"})})
    assert resolved is not None
    raw = base64.b64decode(json.loads(resolved.value)["data"])
    assert raw == b'{"t":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"}'


@pytest.mark.parametrize(("content_type", "data", "src", "expected"), [
    pytest.param("text/plain", "hello", {"dataKey": "x", "value": "dflt"}, Resolved("dflt", "String"),
                 id="unsupported-type-to-value"),
    pytest.param("application/yaml", "a:\n  b: 7\n", {"dataKey": "a.b"}, Resolved("7", "Number"), id="yaml"),
    pytest.param("application/json; charset=utf-8", {"a": "x"}, {"dataKey": "a"}, Resolved("x", "String"),
                 id="json-with-parameters"),
    # Context selectors do not care about the data's content type.
    pytest.param("text/plain", "hello", {"contextKey": "datacontenttype"}, Resolved("text/plain", "String"),
                 id="context-ignores-type"),
])
def test_content_types(content_type: str, data: Any, src: dict[str, Any], expected: Resolved) -> None:
    assert resolve({"dep": event(data, content_type=content_type)}, **src) == expected


def test_unsupported_content_type_without_value_is_an_error() -> None:
    with pytest.raises(ParamError, match="unsupported event content type: text/plain"):
        resolve({"dep": event("hello", content_type="text/plain")}, dataKey="x")


# --- applying to a resource ----------------------------------------------------------------------

WF: dict[str, Any] = {
    "metadata": {"generateName": "build-", "labels": {"app": "ci"}},
    "spec": {"arguments": {"parameters": [{"name": "message", "value": "old"},
                                          {"name": "count", "value": 5}]}},
}
P0 = "spec.arguments.parameters.0.value"


P1 = "spec.arguments.parameters.1.value"
QUERY = 'spec.arguments.parameters.#(name=="message").value'


def read(doc: dict[str, Any], dest: str) -> Any:
    """The value at one of the dests used below, read without the code under test."""
    if dest == "metadata.name":
        return doc["metadata"]["name"]
    return doc["spec"]["arguments"]["parameters"][1 if dest == P1 else 0]["value"]


@pytest.mark.parametrize(("dest", "op", "src", "expected"), [
    pytest.param(P0, "", {"dataKey": "body.ref"}, "refs/heads/main", id="overwrite-default"),
    pytest.param(P0, "overwrite", {"dataKey": "body.ref"}, "refs/heads/main", id="overwrite"),
    pytest.param(P0, "append", {"value": "-new"}, "old-new", id="append"),
    pytest.param(P0, "prepend", {"value": "new-"}, "new-old", id="prepend"),
    pytest.param(P1, "append", {"value": "x"}, "5x", id="append-to-number"),
    # Append/prepend force a string even for a raw number.
    pytest.param(P0, "append", {"dataKey": "body.count", "useRawData": True}, "old42", id="append-forces-string"),
    pytest.param("metadata.name", "append", {"value": "solo"}, "solo", id="append-missing-is-set"),
    pytest.param(P0, "", {"dataKey": "body.count", "useRawData": True}, 42, id="raw-number"),
    pytest.param(P0, "", {"dataKey": "body.merged", "useRawData": True}, True, id="raw-true"),
    pytest.param(P0, "", {"dataKey": "body.repo", "useRawData": True}, {"name": "hookgate", "private": False},
                 id="raw-object"),
    pytest.param(P0, "", {"dataKey": "body.gone", "useRawData": True}, None, id="raw-null"),
    pytest.param(P0, "", {"dataKey": "body.ref", "useRawData": True}, "refs/heads/main", id="raw-string-stays"),
    pytest.param(P0, "", {"dataKey": "body.count"}, "42", id="number-as-string"),
    pytest.param(P0, "", {"dataKey": "body.gone"}, "null", id="null-as-string"),
    pytest.param(P0, "", {"dataKey": "body.repo"}, '{"name":"hookgate","private":false}', id="object-as-text"),
    pytest.param(P0, "", {"value": "10", "useRawData": True}, "10", id="default-always-string"),
    pytest.param(P0, "", {"dataTemplate": "{{ .Input.body.count }}", "useRawData": True}, "42",
                 id="template-always-string"),
    pytest.param(QUERY, "", {"value": "q"}, "q", id="query-dest"),
    pytest.param(QUERY, "append", {"value": "+q"}, "old+q", id="query-dest-append"),
])
def test_apply_single(dest: str, op: str, src: dict[str, Any], expected: Any) -> None:
    out = apply_parameters(WF, compiled(param(dest, op, **src)), EVENTS)
    assert read(out, dest) == expected


def test_apply_returns_a_copy() -> None:
    before = json.dumps(WF)
    out = apply_parameters(WF, compiled(param(P0, value="new"), param("metadata.labels.x", value="y")), EVENTS)
    assert json.dumps(WF) == before and out is not WF
    assert out["metadata"]["labels"] == {"app": "ci", "x": "y"}


def test_apply_in_order_sees_earlier_results() -> None:
    out = apply_parameters(WF, compiled(param(P0, value="a"), param(P0, "append", value="b")), EVENTS)
    assert read(out, P0) == "ab"


def test_apply_skips_absent_dependency() -> None:
    out = apply_parameters(WF, compiled(param(P0, dataKey="body.ref")), {"other": event()})
    assert out == WF


def test_apply_query_every_match() -> None:
    doc = {"items": [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 3}]}
    out = apply_parameters(doc, compiled(param('items.#(k=="a")#.v', value="z")), EVENTS)
    assert [i["v"] for i in out["items"]] == ["z", 2, "z"]


def test_apply_empty_dest_is_an_error() -> None:
    with pytest.raises(ParamError, match=r"parameters\[0\]\.dest: path cannot be empty"):
        apply_parameters(WF, compiled(param("", value="x")), EVENTS)


def test_apply_resolution_error_names_the_parameter() -> None:
    params = compiled(param(P0, value="ok"), param(P0, dataKey="body.nope"))
    with pytest.raises(ParamError, match=r"parameters\[1\]: unable to resolve 'dep'"):
        apply_parameters(WF, params, EVENTS)


# --- dest paths (sjson) --------------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "dest", "expected"), [
    pytest.param({}, "a", {"a": "V"}, id="new-key"),
    pytest.param({"a": {"x": 1}}, "a.b.c", {"a": {"x": 1, "b": {"c": "V"}}}, id="create-objects"),
    pytest.param({"a": ["p", "q"]}, "a.1", {"a": ["p", "V"]}, id="index-replace"),
    pytest.param({"a": ["p"]}, "a.3", {"a": ["p", None, None, "V"]}, id="index-pads-null"),
    pytest.param({"a": ["p"]}, "a.-1", {"a": ["p", "V"]}, id="minus-one-appends"),
    pytest.param({"a": [{"n": 1}]}, "a.-1.n", {"a": [{"n": 1}, {"n": "V"}]}, id="minus-one-with-rest"),
    pytest.param({}, "a.-1", {"a": ["V"]}, id="minus-one-new-array"),
    pytest.param({}, "a.2", {"a": [None, None, "V"]}, id="numeric-under-missing-is-array"),
    pytest.param({}, "a.0.b", {"a": [{"b": "V"}]}, id="array-of-object"),
    pytest.param({}, "a.:2", {"a": {"2": "V"}}, id="forced-object-key"),
    pytest.param({"a": {"2": 0}}, "a.:2", {"a": {"2": "V"}}, id="forced-existing-key"),
    pytest.param({"a": ["p", "q"]}, "a.:1", {"a": ["p", "V"]}, id="forced-on-existing-element"),
    pytest.param({"a": {"0": "x"}}, "a.0", {"a": {"0": "V"}}, id="numeric-key-on-object"),
    pytest.param({"a": {}}, "a.0", {"a": {"0": "V"}}, id="numeric-new-key-on-object"),
    pytest.param({}, "a\\.b.c", {"a.b": {"c": "V"}}, id="escaped-dot"),
    pytest.param({}, "a\\#b", {"a#b": "V"}, id="escaped-special-is-plain"),
    pytest.param({"a": 5}, "a.b", {"a": {"b": "V"}}, id="scalar-replaced-by-object"),
    pytest.param({"a": "s"}, "a.1", {"a": [None, "V"]}, id="scalar-replaced-by-array"),
    pytest.param(None, "a", {"a": "V"}, id="empty-doc-object"),
    pytest.param(None, "0", ["V"], id="empty-doc-array"),
    pytest.param({"a": {"-1": 0}}, "a.-1", {"a": {"-1": "V"}}, id="minus-one-key-on-object"),
    pytest.param({"b": 1, "a": 2}, "b", {"b": "V", "a": 2}, id="replace-keeps-order"),
    pytest.param({"m": {"lab-x": 1, "lab-y": 2}}, "m.lab*", {"m": {"lab-x": "V", "lab-y": 2}}, id="glob-first"),
    pytest.param({"m": {"ab": 1}}, "m.a?", {"m": {"ab": "V"}}, id="glob-question-mark"),
    pytest.param({"l": [{"n": 1}, {"n": 2}]}, "l.#(n>1).n", {"l": [{"n": 1}, {"n": "V"}]}, id="query-number"),
    pytest.param({"l": [{"s": "feat-1"}, {"s": "fix"}]}, 'l.#(s%"feat*").s', {"l": [{"s": "V"}, {"s": "fix"}]},
                 id="query-like"),
    pytest.param({"l": [{"s": "a"}, {"s": "b"}]}, 'l.#(s!="a").s', {"l": [{"s": "a"}, {"s": "V"}]},
                 id="query-not-equal"),
    pytest.param({"l": [{"b": False}, {"b": True}]}, "l.#(b==true).b", {"l": [{"b": False}, {"b": "V"}]},
                 id="query-bool"),
    pytest.param({"l": [{"x": 1}, {"y": 1}]}, "l.#(y).y", {"l": [{"x": 1}, {"y": "V"}]}, id="query-exists"),
    pytest.param({"l": [{"v": 1}, {"w": 2}, {"v": 3}]}, "l.#.v", {"l": [{"v": "V"}, {"w": 2}, {"v": "V"}]},
                 id="each-element"),
    pytest.param({"a": {"b": 1}}, "a|b", {"a": {"b": "V"}}, id="pipe-as-separator"),
])
def test_set_path(doc: Any, dest: str, expected: Any) -> None:
    assert set_path(doc, dest, "V") == expected


@pytest.mark.parametrize(("doc", "dest", "message"), [
    pytest.param({"a": [1]}, "a.x", "cannot set array element for non-numeric key 'x'", id="key-on-array"),
    pytest.param({"a": [1]}, "a.:3", "non-numeric key '3'", id="forced-missing-on-array"),
    pytest.param({}, "a.@reverse", "modifier", id="modifier"),
    pytest.param({}, "a.#", "array length", id="count"),
    pytest.param({}, "a..b", "empty key", id="empty-key"),
    pytest.param({}, "a.", "empty key", id="trailing-dot"),
    pytest.param({}, "l.#(a.#(b==1))", "nested queries", id="nested-query"),
    pytest.param({}, "l.#[a==1]", "unsupported query", id="old-bracket-query"),
    pytest.param({}, "a.100000", "pad the array", id="huge-padding"),
])
def test_set_path_errors(doc: Any, dest: str, message: str) -> None:
    with pytest.raises(ParamError, match=re.escape(message)):
        set_path(doc, dest, "V")


# sjson's SetBytes swallows its "no change" error: a query that finds nothing leaves the document as it was.
@pytest.mark.parametrize(("doc", "dest"), [
    pytest.param({"m": {"x": 1}}, "m.zz*", id="glob-no-match"),
    pytest.param({"l": []}, 'l.#(n=="a").v', id="query-no-match"),
    pytest.param({"l": [{"n": "a"}]}, 'l.#(n=="a").v', id="query-target-missing"),
    pytest.param(None, 'l.#(n=="a").v', id="query-on-empty"),
    # gjson compares a string field only with a quoted literal.
    pytest.param({"l": [{"n": "a", "v": 1}]}, "l.#(n=a).v", id="query-unquoted-literal"),
])
def test_query_dest_matching_nothing_leaves_the_document_unchanged(doc: Any, dest: str) -> None:
    assert set_path(doc, dest, "V") == doc


def test_set_path_does_not_mutate() -> None:
    doc = {"a": {"b": [1]}}
    set_path(doc, "a.b.0", 2)
    assert doc == {"a": {"b": [1]}}


def test_set_path_raw_values() -> None:
    out = set_path({}, "a", {"k": [1, None, True]})
    assert out == {"a": {"k": [1, None, True]}}


# --- http payloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "body"), [
    pytest.param([param("ref", dataKey="body.ref"), param("n", dataKey="body.count")],
                 b'{"ref":"refs/heads/main","n":"42"}', id="object"),
    pytest.param([param("n", dataKey="body.count", useRawData=True), param("r", dataKey="body.repo",
                                                                          useRawData=True)],
                 b'{"n":42,"r":{"name":"hookgate","private":false}}', id="raw-values"),
    pytest.param([param("", dataKey="body.ref")], b"refs/heads/main", id="empty-dest-whole-body"),
    pytest.param([param("", dataKey="body.repo")], b'{"name":"hookgate","private":false}', id="empty-dest-json"),
    # The empty dest returns at once: later parameters are not applied.
    pytest.param([param("a", value="1"), param("", value="raw"), param("b", value="2")], b"raw",
                 id="empty-dest-stops"),
    pytest.param([param("", dependencyName="gone"), param("a", value="1")], b'{"a":"1"}',
                 id="skipped-empty-dest-continues"),
    pytest.param([param("a", dependencyName="gone")], b"", id="nothing-set"),
    pytest.param([], b"", id="no-parameters"),
    pytest.param([param("0", value="x"), param("1", value="y")], b'["x","y"]', id="top-level-array"),
    pytest.param([param("a", value="x"), param("a", "append", value="y")], b'{"a":"y"}', id="operation-ignored"),
    pytest.param([param("m.n.-1", value="x")], b'{"m":{"n":["x"]}}', id="nested-append"),
])
def test_construct_payload(params: list[TriggerParameter], body: bytes) -> None:
    assert construct_payload(compile_parameters(params), EVENTS) == body


def test_payload_is_utf8_json() -> None:
    body = construct_payload(compiled(param("t", value="é✓")), EVENTS)
    assert body == '{"t":"é✓"}'.encode()


# --- compile-time errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "kwargs", "message"), [
    pytest.param([param(dataKey="body.@reverse")], {}, "parameters[0].src.dataKey:", id="bad-data-key"),
    pytest.param([param(contextKey="a..b")], {}, "parameters[0].src.contextKey:", id="bad-context-key"),
    pytest.param([param(), param(dataTemplate="{{ .Input.body")], {}, "parameters[1].src.dataTemplate:",
                 id="bad-template"),
    pytest.param([param(dataTemplate="{{ nosuchfunc .Input }}")], {}, "parameters[0].src.dataTemplate:",
                 id="unknown-template-function"),
    pytest.param([param("a.@this")], {}, "parameters[0].dest: modifier", id="bad-dest"),
    pytest.param([param("")], {"require_dest": True}, "parameters[0].dest: required", id="required-dest"),
    pytest.param([param("a.#")], {"where": "spec.triggers[0].template.k8s.parameters"},
                 "spec.triggers[0].template.k8s.parameters[0].dest", id="where-prefix"),
])
def test_compile_errors(params: list[TriggerParameter], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamError, match=re.escape(message)):
        compile_parameters(params, **kwargs)


def test_compile_keeps_the_spec() -> None:
    spec = param("a.b", "append", value="v")
    (one,) = compile_parameters([spec])
    assert (one.spec, one.label) == (spec, "parameters[0]")


def test_json_copy_is_deep_and_keeps_other_types() -> None:
    import datetime

    from sensors.params import json_copy

    shared = {"a": [1, {"b": "c"}]}
    doc = {"x": shared, "y": shared, "when": datetime.date(2024, 1, 2), "n": None, "f": 1.5, "t": True}
    copied = json_copy(doc)
    assert copied == doc
    assert copied["x"] is not shared and copied["x"]["a"][1] is not shared["a"][1]
    copied["x"]["a"][1]["b"] = "changed"  # what a YAML alias shared is separate, as after Argo's JSON round trip
    assert copied["y"]["a"][1]["b"] == "c" and shared["a"][1]["b"] == "c"
    assert copied["when"] == datetime.date(2024, 1, 2)
