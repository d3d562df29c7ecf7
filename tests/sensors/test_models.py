"""Sensors are stored compactly (sensors.models.compact) and stay equal to what was validated."""

from __future__ import annotations

import copy
from typing import Any

from sensors.models import DataFilter, Sensor


def sensor_doc(name: str, source: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": {"name": name, "namespace": "default", "labels": {"team": "ci"}},
        "spec": {
            "dependencies": [{"name": "push", "eventSourceName": source, "eventName": "ci", "filters": {
                "data": [{"path": "body.ref", "type": "string", "value": ["^refs/heads/main$"]},
                         {"path": "body.n", "type": "number", "value": [2], "comparator": ">"}]}}],
            "triggers": [{"template": {"name": "ci", "argoWorkflow": {
                "operation": "submit",
                "source": {"resource": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                        "metadata": {"generateName": f"{name}-"}, "spec": {"entrypoint": "a"}}},
                "parameters": [{"src": {"dependencyName": "push", "dataKey": "body.after"},
                                "dest": "spec.arguments.parameters.0.value"}]}},
                "retryStrategy": {"steps": 3}}],
        },
    }


def test_a_compacted_sensor_dumps_what_was_given() -> None:
    doc = sensor_doc("a", "es-a")
    compacted = Sensor.model_validate(copy.deepcopy(doc))
    assert compacted.model_dump(exclude_unset=True) == {
        **doc, "spec": {**doc["spec"], "dependencies": [{**doc["spec"]["dependencies"][0], "filters": {"data": [
            {"path": "body.ref", "type": "string", "value": ["^refs/heads/main$"]},
            {"path": "body.n", "type": "number", "value": ["2"], "comparator": ">"}]}}]}}


def test_alike_sensors_share_their_value_objects() -> None:
    one, two = (Sensor.model_validate(sensor_doc(n, f"es-{n}")) for n in ("one", "two"))
    f1, f2 = one.spec.dependencies[0].filters, two.spec.dependencies[0].filters
    assert f1 is f2 and f1 is not None  # the same filters: stored once
    p1, p2 = one.spec.triggers[0].template.argoWorkflow, two.spec.triggers[0].template.argoWorkflow
    assert p1 is not None and p2 is not None and p1.parameters[0] is p2.parameters[0]
    assert one.spec.triggers[0].template is not two.spec.triggers[0].template  # templates keep their identity
    assert one.spec.dependencies[0] is not two.spec.dependencies[0]
    # fields given are part of a value: an explicit default is not the same filter as an omitted one
    explicit = DataFilter.model_validate({"path": "p", "type": "string", "comparator": ""})
    omitted = DataFilter.model_validate({"path": "p", "type": "string"})
    assert explicit == omitted and explicit.model_fields_set != omitted.model_fields_set


def test_a_shared_model_still_copies_with_updates() -> None:
    one, two = (Sensor.model_validate(sensor_doc(n, "es")) for n in ("one", "two"))
    shared = one.spec.dependencies[0].filters
    assert shared is not None and shared is two.spec.dependencies[0].filters
    changed = shared.model_copy(update={"exprLogicalOperator": "or"})
    assert changed.exprLogicalOperator == "or" and "exprLogicalOperator" in changed.model_fields_set
    assert shared.exprLogicalOperator == "" and "exprLogicalOperator" not in shared.model_fields_set
    assert "exprLogicalOperator" not in (two.spec.dependencies[0].filters or shared).model_fields_set
