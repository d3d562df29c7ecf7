"""gjson-style and JMESPath paths: the forms Argo Events users write, and gjson's value rules."""

from __future__ import annotations

import math
from typing import Any

import jmespath
import pytest

from sensors import paths

EVENT: dict[str, Any] = {
    "header": {"X-Gitlab-Event": ["Merge Request Hook"], "Content-Type": ["application/json"]},
    "headers": {"X-Github-Event": ["pull_request"]},
    "body": {
        "object_kind": "merge_request",
        "object_attributes": {"state": "opened", "iid": 7, "draft": False, "description": None,
                              "weight": 2.5, "big": 1e21},
        "labels": [{"title": "bug", "id": 1}, {"title": "ui", "id": 20}, {"id": 30}],
        "commits": [{"id": "abc"}, {"id": "def"}],
        "empty": [],
        "by_index": {"0": "zero-key", "1": {"x": "one"}},
        "a.b": {"c": "dotted"},
        "a": {"b": {"c": "nested"}},
        "Mixed-Case": "mc",
        "nulls": None,
        "#": "hash-key",
        "matrix": [[1, 2], [3]],
        "tags": ["x", "y"],
        "flag": True,
    },
}


@pytest.mark.parametrize(("path", "expected"), [
    pytest.param("body.object_kind", "merge_request", id="dotted"),
    pytest.param("body.object_attributes.state", "opened", id="three-levels"),
    pytest.param("body.object_attributes.iid", 7, id="number"),
    pytest.param("body.object_attributes.draft", False, id="false-is-found"),
    pytest.param("body.object_attributes.description", None, id="null-exists-nested"),
    pytest.param("body.nulls", None, id="null-exists"),
    pytest.param("body.flag", True, id="true"),
    pytest.param("body.object_attributes.big", 1e21, id="big-float"),
    pytest.param("body.commits.0.id", "abc", id="index-0"),
    pytest.param("body.commits.1.id", "def", id="index-1"),
    pytest.param("body.by_index.0", "zero-key", id="numeric-segment-is-object-key"),
    pytest.param("body.by_index.1.x", "one", id="numeric-key-then-field"),
    pytest.param("body.labels.#", 3, id="array-length"),
    pytest.param("body.empty.#", 0, id="empty-array-length"),
    pytest.param("body.labels.#.title", ["bug", "ui"], id="map-skips-missing"),
    pytest.param("body.labels.#.id", [1, 20, 30], id="map-all"),
    pytest.param("body.labels.#.nope", [], id="map-nothing-found-is-empty-list"),
    pytest.param("body.empty.#.x", [], id="map-over-empty"),
    pytest.param("body.matrix.#.#", [2, 1], id="map-of-lengths"),
    pytest.param("body.matrix.#.0", [1, 3], id="map-of-first-elements"),
    pytest.param("body.a\\.b.c", "dotted", id="escaped-dot"),
    pytest.param("body.a.b.c", "nested", id="unescaped-dot-walks"),
    pytest.param("header.X-Gitlab-Event", ["Merge Request Hook"], id="hyphen-header"),
    pytest.param("headers.X-Github-Event.0", "pull_request", id="hyphen-header-index"),
    pytest.param("body.Mixed-Case", "mc", id="mixed-case-key"),
    pytest.param("body.\\#", "hash-key", id="escaped-hash"),
    pytest.param("body.#", "hash-key", id="hash-on-object-is-a-key"),
    pytest.param("body.obj*_kind", "merge_request", id="glob-star"),
    pytest.param("body.object_attribute?.state", "opened", id="glob-question"),
    pytest.param("body.lab*.#", 3, id="glob-then-length"),
    pytest.param('body.labels.#(title=="ui").id', 20, id="query-first"),
    pytest.param("body.labels.#(id<20).title", "bug", id="query-less-than"),
    pytest.param("body.labels.#(id>5)#.title", ["ui"], id="query-all-then-map"),
    pytest.param("body.labels.#(id>=20)#.id", [20, 30], id="query-all-ge"),
    pytest.param("body.labels.#(id!=1)#.id", [20, 30], id="query-not-equal"),
    pytest.param("body.labels.#(title).id", 1, id="query-exists"),
    pytest.param('body.tags.#(=="y")', "y", id="query-on-element-itself"),
    pytest.param("jmespath:body.labels[0].title", "bug", id="jmespath-prefix"),
    pytest.param("body.labels[?title=='ui'].id | [0]", 20, id="jmespath-by-syntax"),
    pytest.param("length(body.labels)", 3, id="jmespath-function"),
    pytest.param('body."a.b".c', "dotted", id="jmespath-quoted-identifier"),
    pytest.param('headers."X-Github-Event"[0]', "pull_request", id="jmespath-quoted-header"),
])
def test_finds_value(path: str, expected: Any) -> None:
    result = paths.compile_path(path).lookup(EVENT)
    assert result == paths.Lookup(found=True, value=expected)


@pytest.mark.parametrize(("path", "missing", "at"), [
    pytest.param("body.object_attributes.nope", "nope", "body.object_attributes", id="missing-leaf"),
    pytest.param("body.nope.deeper", "nope", "body", id="first-missing-segment-named"),
    pytest.param("nope", "nope", "", id="missing-at-root"),
    pytest.param("body.commits.2.id", "2", "body.commits", id="index-out-of-range"),
    pytest.param("body.commits.-1", "-1", "body.commits", id="negative-index"),
    pytest.param("body.commits.x", "x", "body.commits", id="key-on-array"),
    pytest.param("body.object_kind.x", "x", "body.object_kind", id="key-on-string"),
    pytest.param("body.object_attributes.#", "#", "body.object_attributes", id="length-on-object"),
    pytest.param("body.object_kind.#", "#", "body.object_kind", id="length-on-string"),
    pytest.param("body.zz*", "zz*", "body", id="glob-no-match"),
    pytest.param("body.tags.*", "*", "body.tags", id="glob-on-array"),
    pytest.param('body.labels.#(title=="nope").id', '#(title=="nope")', "body.labels", id="query-no-match"),
    pytest.param("body.a\\.b.x", "x", "body.a\\.b", id="escaped-prefix-kept-as-written"),
    pytest.param("jmespath:body.object_attributes.nope", "nope", "body.object_attributes", id="jmespath-chain"),
    pytest.param("jmespath:body.nulls", "nulls", "body", id="jmespath-null-counts-as-missing"),
    pytest.param("body.labels[5].title", "[5]", "body.labels", id="jmespath-index-out-of-range"),
])
def test_reports_missing_segment(path: str, missing: str, at: str) -> None:
    result = paths.compile_path(path).lookup(EVENT)
    assert result == paths.Lookup(found=False, value=None, missing=missing, at=at)


@pytest.mark.parametrize("path", [
    pytest.param("jmespath:body.labels[?title=='zzz'] | [0]", id="filter-without-result"),
    pytest.param("jmespath:abs(body.object_kind)", id="runtime-type-error"),
])
def test_jmespath_unlocatable_missing_names_whole_expression(path: str) -> None:
    result = paths.compile_path(path).lookup(EVENT)
    assert not result.found
    assert result.missing == path.removeprefix("jmespath:")
    assert result.at is None


@pytest.mark.parametrize(("path", "expression"), [
    pytest.param("body.a.b", "body.a.b", id="plain"),
    pytest.param("body.commits.0.id", "body.commits[0].id", id="index"),
    pytest.param("0.id", "[0].id", id="index-at-root"),
    pytest.param("body.labels.#", "length(body.labels)", id="length"),
    pytest.param("#", "length(@)", id="length-of-root"),
    pytest.param("body.labels.#.name", "body.labels[*].name", id="map"),
    pytest.param("#.x", "[*].x", id="map-at-root"),
    pytest.param("body.matrix.#.#", "body.matrix[*].length(@)", id="map-of-lengths"),
    pytest.param("header.X-Gitlab-Event", 'header."X-Gitlab-Event"', id="hyphen-quoted"),
    pytest.param("body.a\\.b.c", 'body."a.b".c', id="escaped-dot-quoted"),
    pytest.param('body.labels.#(name=="bug").id', "body.labels[?name == 'bug'] | [0].id", id="query"),
    pytest.param("body.labels.#(id>5)#.name", "body.labels[?id > `5`].name", id="query-all"),
    pytest.param("body.obj*_kind", 'body."obj*_kind"', id="glob-shown-quoted"),
    pytest.param("jmespath: foo[0]", "foo[0]", id="prefix-stripped"),
    pytest.param("foo[0].bar", "foo[0].bar", id="jmespath-unchanged"),
])
def test_reports_jmespath_expression(path: str, expression: str) -> None:
    compiled = paths.compile_path(path)
    assert compiled.source == path
    assert compiled.expression == expression
    jmespath.compile(expression)  # the explanation text is itself valid JMESPath


def test_star_segment_means_gjson_first_value_not_projection() -> None:
    result = paths.compile_path("body.*").lookup({"body": {"x": 1, "y": 2}})
    assert result == paths.Lookup(found=True, value=1)


def test_plain_dotted_path_reads_the_same_as_jmespath() -> None:
    data = {"a": {"b": [1]}}
    assert paths.compile_path("a.b").lookup(data).value == jmespath.search("a.b", data)


def test_lookup_on_non_container_root_is_missing() -> None:
    assert paths.compile_path("a").lookup("text") == paths.Lookup(False, None, "a", "")


def test_array_root_supports_index_and_length() -> None:
    data = [{"id": 1}, {"id": 2}]
    assert paths.compile_path("1.id").lookup(data).value == 2
    assert paths.compile_path("#").lookup(data).value == 2


@pytest.mark.parametrize("path", [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("body..x", id="empty-segment"),
    pytest.param("body.", id="trailing-dot"),
    pytest.param("body.x\\", id="lone-backslash"),
    pytest.param("body.@reverse", id="modifier"),
    pytest.param("@this", id="modifier-at-root"),
    pytest.param('body.labels.#(name%"b*")', id="query-like-operator"),
    pytest.param("body.labels.#(name==~true)", id="query-tilde"),
    pytest.param('body.labels.#(name=="x"', id="unclosed-query"),
    pytest.param('body.labels.#(name=="x")y', id="junk-after-query"),
    pytest.param("jmespath:body[", id="bad-jmespath-with-prefix"),
    pytest.param("body[?", id="bad-jmespath-by-syntax"),
])
def test_rejects_bad_path_naming_it(path: str) -> None:
    with pytest.raises(paths.PathError) as caught:
        paths.compile_path(path)
    assert repr(path) in str(caught.value)


def test_unknown_query_operator_is_rejected() -> None:
    with pytest.raises(paths.PathError, match="unknown query operator '!'"):
        paths.compile_path("body.a.#(b!c)")


def test_pipe_makes_a_jmespath_expression() -> None:
    assert paths.compile_path("body.labels | [1].id").lookup(EVENT).value == 20


def test_at_sign_inside_jmespath_literal_is_not_a_gjson_modifier() -> None:
    data = {"body": [{"name": "@bob", "id": 3}]}
    assert paths.compile_path("body[?name=='@bob'].id | [0]").lookup(data).value == 3


def test_non_string_path_is_rejected() -> None:
    with pytest.raises(paths.PathError, match="must be a string"):
        paths.compile_path(3)  # type: ignore[arg-type]


def test_path_error_is_a_value_error() -> None:
    assert issubclass(paths.PathError, ValueError)


def test_compile_is_cached() -> None:
    assert paths.compile_path("body.object_kind") is paths.compile_path("body.object_kind")


def test_lookup_is_frozen() -> None:
    result = paths.Lookup(found=True, value=1)
    with pytest.raises(AttributeError):
        result.found = False  # type: ignore[misc]


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("abc", "abc", id="string"),
    pytest.param(True, "true", id="true"),
    pytest.param(False, "false", id="false"),
    pytest.param(7, "7", id="int"),
    pytest.param(-3, "-3", id="negative-int"),
    pytest.param(123456789012345678901234567890, "123456789012345678901234567890", id="huge-int-raw-digits"),
    pytest.param(2.0, "2", id="integral-float"),
    pytest.param(2.5, "2.5", id="float"),
    pytest.param(0.1, "0.1", id="shortest-repr"),
    pytest.param(1e21, "1000000000000000000000", id="no-exponent-large"),
    pytest.param(1e-7, "0.0000001", id="no-exponent-small"),
    pytest.param(None, "", id="null-is-empty"),
    pytest.param(["pull_request"], '["pull_request"]', id="array-raw-json"),
    pytest.param({"a": [1, "é"], "b": None}, '{"a":[1,"é"],"b":null}', id="object-compact-json"),
])
def test_gjson_string(value: Any, expected: str) -> None:
    assert paths.gjson_string(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(3, 3.0, id="int"),
    pytest.param(2.5, 2.5, id="float"),
    pytest.param("12.5", 12.5, id="numeric-string"),
    pytest.param("1e3", 1000.0, id="exponent-string"),
    pytest.param("-.5", -0.5, id="leading-dot"),
    pytest.param("0x1p-2", 0.25, id="hex-float"),
    pytest.param(" 1", 0.0, id="space-not-accepted"),
    pytest.param("1_000", 0.0, id="underscore-not-accepted"),
    pytest.param("abc", 0.0, id="non-numeric-string"),
    pytest.param(True, 1.0, id="true"),
    pytest.param(False, 0.0, id="false"),
    pytest.param(None, 0.0, id="null"),
    pytest.param({"a": 1}, 0.0, id="object"),
])
def test_gjson_float(value: Any, expected: float) -> None:
    assert paths.gjson_float(value) == expected


def test_gjson_float_accepts_infinity_like_go() -> None:
    assert math.isinf(paths.gjson_float("-Inf"))


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(True, True, id="true"),
    pytest.param(False, False, id="false"),
    pytest.param("true", True, id="string-true"),
    pytest.param("TRUE", True, id="upper-case"),
    pytest.param("T", True, id="t"),
    pytest.param("1", True, id="one"),
    pytest.param("yes", False, id="yes-is-not-bool"),
    pytest.param("0", False, id="zero-string"),
    pytest.param(0, False, id="zero"),
    pytest.param(2.5, True, id="non-zero-number"),
    pytest.param(None, False, id="null"),
    pytest.param(["x"], False, id="array"),
])
def test_gjson_bool(value: Any, expected: bool) -> None:
    assert paths.gjson_bool(value) is expected
