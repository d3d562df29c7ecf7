"""build_action: one Action per template kind, the trigger's policy found beside it, load errors with paths."""

from __future__ import annotations

from typing import Any

import pytest

from sensors.kube import DryRunCluster
from sensors.models import TriggerTemplate
from sensors.triggers.argo_workflow import ArgoWorkflowAction
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.factory import build_action
from sensors.triggers.http import HttpAction
from sensors.triggers.k8s import K8sAction
from sensors.triggers.log import LogAction
from tests.sensors.triggers import sensor, trigger, workflow

OFFLINE = DryRunCluster(None)
WF = {"source": {"resource": workflow(generate="w-")}}
LABELS = {"k8s": {"labels": {"phase": "Succeeded"}}}


@pytest.mark.parametrize(("kind", "cls"), [
    ({"argoWorkflow": {"operation": "submit", **WF}}, ArgoWorkflowAction),
    ({"k8s": WF}, K8sAction),
    ({"http": {"url": "http://example.test/"}}, HttpAction),
    ({"log": {}}, LogAction),
])
def test_each_kind_builds_its_action(kind: dict[str, Any], cls: type) -> None:
    s = sensor(trigger("t", **kind))
    action = build_action(s.spec.triggers[0].template, sensor=s, cluster=OFFLINE)
    assert isinstance(action, cls) and action.kind == next(iter(kind))


def test_policy_is_found_beside_the_template() -> None:
    s = sensor(trigger("a", k8s=WF, policy=LABELS),
               trigger("b", http={"url": "http://example.test/"}, policy={"status": {"allow": [202]}}))
    k8s, web = (build_action(t.template, sensor=s, cluster=OFFLINE) for t in s.spec.triggers)
    assert isinstance(k8s, K8sAction) and k8s.policy is not None and k8s.policy.labels == {"phase": "Succeeded"}
    assert isinstance(web, HttpAction) and web.allow == {202}


def test_dlq_trigger_keeps_its_own_policy_and_rebuilt_templates_find_theirs() -> None:
    dlq = trigger("same", k8s=WF, policy={"k8s": {"labels": {"dlq": "yes"}}})
    dlq["atLeastOnce"] = True
    main = {**trigger("same", k8s=WF, policy=LABELS), "atLeastOnce": True, "dlqTrigger": dlq}
    s = sensor(main)
    dlq_action = build_action(s.spec.triggers[0].dlqTrigger.template, sensor=s, cluster=OFFLINE)  # type: ignore[union-attr]
    rebuilt = TriggerTemplate.model_validate(s.spec.triggers[0].template.model_dump(exclude_none=True))
    main_action = build_action(rebuilt, sensor=s, cluster=OFFLINE)
    assert isinstance(dlq_action, K8sAction) and dlq_action.policy is not None
    assert dlq_action.policy.labels == {"dlq": "yes"}
    assert isinstance(main_action, K8sAction) and main_action.policy is not None
    assert main_action.policy.labels == {"phase": "Succeeded"}


def test_bad_policy_backoff_is_a_load_error() -> None:
    s = sensor(trigger("t", k8s=WF, policy={"k8s": {"labels": {"a": "b"}, "backoff": {"duration": "soon"}}}))
    with pytest.raises(TriggerCompileError, match=r"policy\.k8s\.backoff\.duration: not a Go duration"):
        build_action(s.spec.triggers[0].template, sensor=s, cluster=OFFLINE)
