"""The `argoWorkflow` trigger, through the Kubernetes API instead of Argo's `argo` CLI.

* `submit`: create the Workflow of the source, named idempotently (see `k8s.stamp`), after
  checking that a referenced WorkflowTemplate exists and that its required parameters are given.
  A redelivered event finds its Workflow already there (409 with the same event ids) and is done.
* `submit-from`: the source names a WorkflowTemplate or a CronWorkflow. A WorkflowTemplate gives
  `{kind: Workflow, metadata: {generateName: <name>-}, spec: {workflowTemplateRef: {name}}}`; a
  CronWorkflow is read from the cluster and its `spec.workflowSpec` (and `workflowMetadata`
  labels and annotations) copied, with a controller ownerReference to it, as the CLI does. Argo's
  labels `workflows.argoproj.io/workflow-template` / `cron-workflow` are set; the CLI's
  scheduled-time annotation is not (the object must be the same on every redelivery). Then as
  `submit`.
* `suspend`, `resume`, `terminate`, `stop`: a merge patch of the Workflow named by the source's
  `metadata.name` (after parameters), as the CLI's API calls do: `spec.suspend` true / removed,
  `spec.shutdown` `Terminate` / `Stop`. `resume` does not resume `suspend` template nodes (that
  needs the Argo server). A missing Workflow is a PermanentError naming it.
* `resubmit`, `retry`: refused at load (they need the Argo Workflows server API).
* `args` (extra CLI arguments) are refused at load: there is no CLI.
* `policy.k8s` waits for labels on the resulting Workflow (see `k8s.wait_for_labels`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from gateway.envelope import CloudEvent
from sensors.kube import Cluster, NotFound, describe
from sensors.models import ArgoWorkflowTrigger, K8sResourcePolicy
from sensors.triggers import Outcome, PermanentError
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.k8s import (
    MERGE_PATCH,
    Sleep,
    apply,
    check_policy,
    compile_resource_parameters,
    create_once,
    label,
    load_source,
    place,
    ref,
    sets_name,
    source_path,
    stamp,
    wait_for_labels,
)

__all__ = ["ArgoWorkflowAction", "TriggerCompileError", "load_source"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ARGO = "argoproj.io/v1alpha1"
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
TEMPLATE_TTL = 30.0  # seconds a WorkflowTemplate found stays trusted without asking the API again
CRON_LABEL = "workflows.argoproj.io/cron-workflow"

#: The Workflow change each control operation makes (a JSON merge patch of `spec`).
CONTROL: dict[str, dict[str, Any]] = {
    "suspend": {"suspend": True},
    "resume": {"suspend": None},  # null removes the field in a merge patch
    "terminate": {"shutdown": "Terminate"},
    "stop": {"shutdown": "Stop"},
}
SOURCE_KINDS = {"submit": ("Workflow",), "submit-from": ("WorkflowTemplate", "CronWorkflow"),
                **{op: ("Workflow",) for op in CONTROL}}
SUPPORTED = ", ".join(SOURCE_KINDS)


class ArgoWorkflowAction:
    kind = "argoWorkflow"

    def __init__(self, spec: ArgoWorkflowTrigger, *, sensor: str, namespace: str, trigger: str,
                 cluster: Cluster, policy: K8sResourcePolicy | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.operation = spec.operation
        if self.operation not in SOURCE_KINDS:
            raise TriggerCompileError(("operation",), f"operation {self.operation!r} needs the Argo Workflows "
                                                      f"server API; not supported (supported: {SUPPORTED})")
        if spec.args:
            raise TriggerCompileError(("args",), "argo CLI args are not supported (hookgate uses the API, not the CLI)")
        self.resource = load_source(spec.source)
        self.parameters = compile_resource_parameters(spec.parameters)
        self.sensor, self.namespace, self.trigger = sensor, namespace, trigger
        self.cluster = cluster
        self.policy = policy
        self._templates: dict[tuple[str, str, str | None], tuple[float, Obj]] = {}
        self.sleep = sleep  # between policy.k8s checks; tests pass a fake clock's
        check_policy(policy)
        self._check(spec)

    def _check(self, spec: ArgoWorkflowTrigger) -> None:
        kinds = SOURCE_KINDS[self.operation]
        if self.resource.get("kind") not in kinds:
            raise TriggerCompileError(source_path(spec.source), f"{self.operation} needs a {' or '.join(kinds)}, "
                                                                f"got kind {self.resource.get('kind')!r}")
        meta = self.resource.get("metadata")
        if not isinstance(meta, dict):
            raise TriggerCompileError(source_path(spec.source), "the resource needs metadata")
        if self.operation == "submit":
            if not (meta.get("name") or meta.get("generateName") or sets_name(self.parameters, "name", "generateName")):
                raise TriggerCompileError(source_path(spec.source, "metadata"), "a Workflow needs name or generateName")
        elif not (meta.get("name") or sets_name(self.parameters, "name")):
            raise TriggerCompileError(source_path(spec.source, "metadata"),
                                      f"{self.operation} needs metadata.name: the {kinds[0]} to act on")

    # --- what would be sent ------------------------------------------------------------------

    def render(self, events: Mapping[str, CloudEvent]) -> Obj:
        source = apply(self.resource, self.parameters, events)
        if self.operation in CONTROL:
            return self._control_patch(source)
        if self.operation == "submit-from":
            # A CronWorkflow's spec is read from the cluster at execution; offline it shows empty.
            source = from_template(source) if source["kind"] == "WorkflowTemplate" else from_cron(source, {})
        return self._stamp(source, events)

    def _stamp(self, workflow: Obj, events: Mapping[str, CloudEvent]) -> Obj:
        return stamp(workflow, namespace=self.namespace, sensor=self.sensor, trigger=self.trigger, events=events)

    def _control_patch(self, source: Obj) -> Obj:
        namespace = source["metadata"].get("namespace") or self.namespace
        return {"apiVersion": source.get("apiVersion", ARGO), "kind": "Workflow",
                "metadata": {"name": source["metadata"].get("name"), "namespace": namespace},
                "spec": dict(CONTROL[self.operation])}

    # --- doing it ------------------------------------------------------------------------------

    async def execute(self, events: Mapping[str, CloudEvent]) -> Outcome:
        if self.operation in CONTROL:
            outcome = await self._control(events)
        else:
            outcome = await self._submit(await self._workflow(events), events)
        if outcome.resource:
            await wait_for_labels(self.cluster, outcome.resource, self.policy, self.sleep)
        return outcome

    async def _workflow(self, events: Mapping[str, CloudEvent]) -> Obj:
        if self.operation == "submit":
            return self.render(events)
        source = apply(self.resource, self.parameters, events)
        if source["kind"] == "WorkflowTemplate":
            return self._stamp(from_template(source), events)
        place(source, self.namespace)
        cron = await self.cluster.get(*ref(source))
        if cron is None:
            raise PermanentError(f"{label(source)} not found; no Workflow was created")
        return self._stamp(from_cron(source, cron), events)

    async def _submit(self, workflow: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
        await self._check_template(workflow, workflow["metadata"]["namespace"])
        return await create_once(self.cluster, workflow, events)

    async def _control(self, events: Mapping[str, CloudEvent]) -> Outcome:
        patch = self.render(events)
        api_version, kind, name, namespace = ref(patch)
        if not name:
            raise PermanentError(f"{self.operation}: the parameters left the Workflow without metadata.name")
        try:
            result = await self.cluster.patch(api_version, kind, name, namespace, {"spec": patch["spec"]},
                                              content_type=MERGE_PATCH, operation=self.operation)
        except NotFound:
            raise PermanentError(f"cannot {self.operation} {describe(kind, name, namespace)}: "
                                 "no such Workflow") from None
        return Outcome(name=describe(kind, name, namespace), created=True, resource=result)

    async def _template(self, kind: str, name: str, namespace: str | None) -> Obj | None:
        """The referenced template; one found stays trusted for TEMPLATE_TTL, halving the API calls per event.

        A missing one is asked again every time, so a template created after an error is seen at once.
        """
        key = (kind, name, namespace)
        cached = self._templates.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < TEMPLATE_TTL:
            return cached[1]
        found = await self.cluster.get(ARGO, kind, name, namespace)
        if found is not None:
            self._templates[key] = (now, found)
        return found

    async def _check_template(self, workflow: Obj, namespace: str) -> None:
        template_ref = (workflow.get("spec") or {}).get("workflowTemplateRef")
        if not isinstance(template_ref, dict) or not template_ref.get("name"):
            return
        kind = "ClusterWorkflowTemplate" if template_ref.get("clusterScope") else "WorkflowTemplate"
        scope = None if kind == "ClusterWorkflowTemplate" else namespace
        found = await self._template(kind, template_ref["name"], scope)
        if found is None:
            where = f" in namespace {namespace}" if scope else ""
            raise PermanentError(f"{kind} {template_ref['name']!r} not found{where}; no Workflow was created")
        missing = _missing_parameters(found, workflow)
        if missing:
            raise PermanentError(f"{kind} {template_ref['name']!r} requires parameter(s) {', '.join(missing)} "
                                 "with no default, and the Workflow does not supply them")


def from_template(source: Obj) -> Obj:
    """`argo submit --from workflowtemplate/<name>`: a Workflow that references the template."""
    name = source["metadata"]["name"]
    meta: Obj = {"generateName": f"{name}-", "labels": {TEMPLATE_LABEL: name}}
    if source["metadata"].get("namespace"):
        meta["namespace"] = source["metadata"]["namespace"]
    return {"apiVersion": ARGO, "kind": "Workflow", "metadata": meta, "spec": {"workflowTemplateRef": {"name": name}}}


def from_cron(source: Obj, cron: Obj) -> Obj:
    """`argo submit --from cronwf/<name>`: the CronWorkflow's workflowSpec, owned by the CronWorkflow."""
    name = source["metadata"]["name"]
    cron_spec = cron.get("spec") or {}
    extra = cron_spec.get("workflowMetadata") or {}
    meta: Obj = {"generateName": f"{name}-", "labels": {**(extra.get("labels") or {}), CRON_LABEL: name}}
    if extra.get("annotations"):
        meta["annotations"] = dict(extra["annotations"])
    if source["metadata"].get("namespace"):
        meta["namespace"] = source["metadata"]["namespace"]
    uid = (cron.get("metadata") or {}).get("uid")
    if uid:
        meta["ownerReferences"] = [{"apiVersion": ARGO, "kind": "CronWorkflow", "name": name, "uid": uid,
                                    "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": ARGO, "kind": "Workflow", "metadata": meta,
            "spec": copy.deepcopy(cron_spec.get("workflowSpec") or {})}


def _missing_parameters(template: Obj, workflow: Obj) -> list[str]:
    declared = ((template.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    given = ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    supplied = {p.get("name") for p in given if isinstance(p, dict) and ("value" in p or "valueFrom" in p)}
    return [p["name"] for p in declared
            if isinstance(p, dict) and "value" not in p and "valueFrom" not in p and p.get("name") not in supplied]
