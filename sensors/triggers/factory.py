"""Build the `Action` of a trigger template: argoWorkflow, k8s, http or log.

Everything that can be checked without an event is checked here, at load: a problem raises
`TriggerCompileError` with the field path relative to the template's kind (`source.resource.
metadata` for `template.k8s.source.resource.metadata`). The trigger's `policy` lives beside the
template in the Sensor, so it is found there by the template's name (`policy.k8s` for argoWorkflow
and k8s, `policy.status` for http). `retryStrategy`, `rateLimit` and the trigger-level
`parameters` are the runner's (see `sensors.retry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gateway.models import SecretKeySelector
from sensors.kube import Cluster
from sensors.models import Sensor, Trigger, TriggerPolicy, TriggerTemplate
from sensors.triggers import Action
from sensors.triggers.argo_workflow import ArgoWorkflowAction
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.http import HttpAction
from sensors.triggers.k8s import K8sAction
from sensors.triggers.log import LogAction

__all__ = ["TriggerCompileError", "build_action"]

SecretLookup = Callable[[str, SecretKeySelector], str]


def build_action(template: TriggerTemplate, *, sensor: Sensor, cluster: Cluster,
                 secret: SecretLookup | None = None) -> Action:
    """`secret(namespace, selector)` resolves http secureHeaders / basicAuth; without it they fail when sent."""
    policy = policy_of(sensor, template)
    common = {"trigger": template.name}
    if template.argoWorkflow is not None:
        return ArgoWorkflowAction(template.argoWorkflow, sensor=sensor.name, namespace=sensor.namespace,
                                  cluster=cluster, policy=policy.k8s, **common)
    if template.k8s is not None:
        return K8sAction(template.k8s, sensor=sensor.name, namespace=sensor.namespace, cluster=cluster,
                         policy=policy.k8s, **common)
    if template.http is not None:
        return HttpAction(template.http, namespace=sensor.namespace, status=policy.status, secret=secret, **common)
    if template.log is not None:
        return LogAction(template.log, sensor=sensor.name, **common)
    raise TriggerCompileError((), f"{template.kind} triggers are not supported")


def policy_of(sensor: Sensor, template: TriggerTemplate) -> TriggerPolicy:
    """The policy of the trigger holding `template`: the same object first (a dlqTrigger may reuse a
    name), else the same name (the runner rebuilds templates rewritten by trigger parameters)."""
    triggers = list(_all_triggers(sensor.spec.triggers))
    found = next((t for t in triggers if t.template is template), None) \
        or next((t for t in triggers if t.template.name == template.name), None)
    return (found.policy if found is not None else None) or TriggerPolicy()


def _all_triggers(triggers: list[Trigger]) -> Iterator[Trigger]:
    for trigger in triggers:
        yield trigger
        if trigger.dlqTrigger is not None:
            yield from _all_triggers([trigger.dlqTrigger])
