"""The `argoWorkflow` trigger: submit a Workflow (usually from a WorkflowTemplateRef) via the API.

Argo Events shells out to the `argo` CLI; hookgate creates the Workflow object itself, named
idempotently, so a redelivered event finds its Workflow already there instead of starting another.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import yaml

from gateway.envelope import CloudEvent
from sensors import params
from sensors.kube import AlreadyExists, Cluster
from sensors.models import ArgoWorkflowTrigger, ArtifactLocation
from sensors.triggers import (
    EVENT_IDS_ANNOTATION,
    SENSOR_LABEL,
    TRIGGER_LABEL,
    Outcome,
    PermanentError,
    event_ids,
    idempotent_name,
)

log = logging.getLogger(__name__)


class TriggerCompileError(ValueError):
    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(message)


def load_source(source: ArtifactLocation) -> dict[str, Any]:
    if source.resource is not None:
        return copy.deepcopy(source.resource)
    try:
        doc = yaml.safe_load(source.inline or "")
    except yaml.YAMLError as e:
        raise TriggerCompileError(("source", "inline"), f"not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise TriggerCompileError(("source", "inline"), "must be a YAML mapping (a Kubernetes object)")
    return doc


class SubmitWorkflow:
    kind = "argoWorkflow"

    def __init__(self, spec: ArgoWorkflowTrigger, *, sensor: str, namespace: str, trigger: str,
                 cluster: Cluster) -> None:
        if spec.operation != "submit":
            raise TriggerCompileError(("operation",), f"operation {spec.operation!r} is not implemented yet "
                                                      "(supported: submit)")
        self.resource = load_source(spec.source)
        if self.resource.get("kind") != "Workflow":
            raise TriggerCompileError(("source",), f"submit needs a Workflow, got kind {self.resource.get('kind')!r}")
        meta = self.resource.get("metadata") or {}
        if not (meta.get("name") or meta.get("generateName")):
            raise TriggerCompileError(("source", "resource", "metadata"), "a Workflow needs name or generateName")
        if spec.args:
            raise TriggerCompileError(("args",), "argo CLI args are not supported (hookgate uses the API, not the CLI)")
        try:
            self.parameters = params.compile_parameters(spec.parameters, where="parameters", require_dest=True)
        except params.ParamError as e:
            raise TriggerCompileError(("parameters",), str(e)) from None
        self.sensor = sensor
        self.namespace = namespace
        self.trigger = trigger
        self.cluster = cluster

    def render(self, events: Mapping[str, CloudEvent]) -> dict[str, Any]:
        obj = params.apply_parameters(self.resource, self.parameters, events)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = idempotent_name(meta.pop("generateName", ""), namespace=self.namespace,
                                           sensor=self.sensor, trigger=self.trigger, events=events)
        meta.pop("generateName", None)
        meta.setdefault("namespace", self.namespace)
        meta.setdefault("labels", {}).update({SENSOR_LABEL: self.sensor, TRIGGER_LABEL: self.trigger})
        meta.setdefault("annotations", {})[EVENT_IDS_ANNOTATION] = event_ids(events)
        return obj

    async def execute(self, events: Mapping[str, CloudEvent]) -> Outcome:
        obj = self.render(events)
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        await self._check_template(obj, namespace)
        try:
            created = await self.cluster.create(obj, namespace)
        except AlreadyExists as e:
            theirs = (e.existing.get("metadata") or {}).get("annotations", {}).get(EVENT_IDS_ANNOTATION)
            if theirs != event_ids(events):
                raise PermanentError(f"Workflow {namespace}/{name} exists but was not created for these events "
                                     f"(its {EVENT_IDS_ANNOTATION} is {theirs!r})") from None
            return Outcome(name=f"{namespace}/{name}", created=False, resource=e.existing)
        return Outcome(name=f"{namespace}/{name}", created=True, resource=created)

    async def _check_template(self, obj: dict[str, Any], namespace: str) -> None:
        ref = (obj.get("spec") or {}).get("workflowTemplateRef")
        if not isinstance(ref, dict) or not ref.get("name"):
            return
        kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
        found = await self.cluster.get("argoproj.io/v1alpha1", kind, ref["name"],
                                       None if kind == "ClusterWorkflowTemplate" else namespace)
        if found is None:
            where = "" if kind == "ClusterWorkflowTemplate" else f" in namespace {namespace}"
            raise PermanentError(f"{kind} {ref['name']!r} not found{where}; no Workflow was created")
        missing = _missing_parameters(found, obj)
        if missing:
            raise PermanentError(f"{kind} {ref['name']!r} requires parameter(s) {', '.join(missing)} "
                                 "with no default, and the Workflow does not supply them")


def _missing_parameters(template: dict[str, Any], workflow: dict[str, Any]) -> list[str]:
    declared = ((template.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    given = ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    supplied = {p.get("name") for p in given if isinstance(p, dict) and ("value" in p or "valueFrom" in p)}
    return [p["name"] for p in declared
            if isinstance(p, dict) and "value" not in p and "valueFrom" not in p and p.get("name") not in supplied]
