"""The dry run's YAML writer: any JSON tree reads back equal, in kubectl's layout."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.yaml_dump import dump

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_trees = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), json_trees, min_size=1, max_size=5))
def test_any_json_tree_reads_back_equal(tree: dict[str, Any]) -> None:
    assert yaml.safe_load(dump(tree)) == tree


@pytest.mark.parametrize("text", [
    "yes", "No", "ON", "off", "y", "N", "true", "False", "null", "NULL", "~", "", " ", "a ", " a",
    "123", "0x1F", "1e3", "1_000", "12:30:00", "2024-01-02", ".inf", "-.Inf", ".NaN", "=", "<<",
    "a: b", "a #b", "#c", "- x", "[x]", "{x}", "*x", "&x", "!x", "%x", "@x", "`x", "|", ">", "'q'",
    '"q"', "a\nb", "tab\there", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff", "\x00", "é", "日本",
    "refs/heads/main", "a  b",
])
def test_strings_that_look_like_something_else_stay_strings(text: str) -> None:
    assert yaml.safe_load(dump({"k": text, text: "v"})) == {"k": text, text: "v"}


@pytest.mark.parametrize("number", [0, -1, 2**70, 0.5, -0.0, 1e20, 1e-5, 1.5e300, math.inf, -math.inf])
def test_numbers_keep_their_type_and_value(number: float) -> None:
    back = yaml.safe_load(dump({"n": number}))["n"]
    assert back == number and type(back) is type(number)


def test_nan_reads_back_as_nan() -> None:
    assert math.isnan(yaml.safe_load(dump({"n": math.nan}))["n"])


def test_layout_is_kubectls() -> None:
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "ci-abc", "labels": {"app": "ci"}, "annotations": {}},
        "spec": {"arguments": {"parameters": [{"name": "branch", "value": "main"}, {"name": "count", "value": "42"}]},
                 "nested": [[1, 2], [], {}], "workflowTemplateRef": {"name": "default"}},
    }
    assert dump(workflow) == (
        "apiVersion: argoproj.io/v1alpha1\n"
        "kind: Workflow\n"
        "metadata:\n"
        "  name: ci-abc\n"
        "  labels:\n"
        "    app: ci\n"
        "  annotations: {}\n"
        "spec:\n"
        "  arguments:\n"
        "    parameters:\n"
        "    - name: branch\n"
        "      value: main\n"
        "    - name: count\n"
        '      value: "42"\n'
        "  nested:\n"
        "  - - 1\n"
        "    - 2\n"
        "  - []\n"
        "  - {}\n"
        "  workflowTemplateRef:\n"
        "    name: default\n"
    )


@pytest.mark.parametrize("tree", [
    {"when": datetime.date(2024, 1, 2)},  # what a manifest's unquoted date becomes
    {1: "int key"},
    {"k" * 1200: "a key too long for YAML's implicit form"},
    {"t": ("a", "tuple")},
    {},
])
def test_what_is_not_a_json_tree_goes_to_pyyaml(tree: dict[Any, Any]) -> None:
    assert yaml.safe_load(dump(tree)) == yaml.safe_load(yaml.safe_dump(tree))
