"""The `k8s` trigger (create / update / patch / delete any resource), and what argoWorkflow shares.

Argo's semantics (`pkg/sensors/triggers/standard-k8s`), with hookgate's delivery guarantees:

* create: `generateName` becomes an idempotent name (a hash of namespace, sensor, trigger and
  event ids); an explicit `metadata.name` is kept. The labels `events.argoproj.io/sensor` and
  `/trigger` and the `events.hookgate.dev/event-ids` annotation are added. A 409 is success when
  the stored object carries the same event ids, else a PermanentError (a name clash). Argo's
  `action-timestamp` label is not added: the object must be the same on every redelivery.
* update: GET; absent → create; else the new object is merged over the live one (maps key by
  key; lists and scalars replace; unlike Go's mergo, `false`, `0` and `""` replace too, and `null`
  keeps the live value) and PUT with the live resourceVersion (a concurrent change → retry).
  `liveObject: true` applies the parameters to the live object instead of the source.
* patch: GET; absent → create; else PATCH with `patchStrategy`: the whole resource is the body of
  a merge or strategic-merge patch. For `application/json-patch+json` the resource is
  `{apiVersion, kind, metadata, patch: [RFC 6902 operations]}` and `patch` is the body (Argo sends
  the object, which the API server rejects, argo-events#3032); an absent object is an error then.
  `application/apply-patch+yaml` is refused at load.
* delete: absent → success, nothing done.
* Namespace: the resource's, else the sensor's; none for cluster-scoped kinds.
* `policy.k8s` (`wait_for_labels`): after the operation, poll the object until it carries the
  labels, with the policy's backoff (Argo's DefaultBackoff when unset: 5 attempts, 1s, jitter 1).
  Never met: an error only with `errorOnBackoffTimeout` (a PermanentError: the object exists, and
  retrying the trigger would only wait again). Skipped in dry-run, where no controller labels
  anything. Not applied to delete.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import yaml

from gateway.envelope import CloudEvent
from sensors import params
from sensors.kube import CLUSTER_SCOPED_KINDS, AlreadyExists, Cluster, NotFound, describe
from sensors.models import ArtifactLocation, K8sResourcePolicy, StandardK8STrigger
from sensors.retry import DEFAULT_BACKOFF, BackoffError, delays, resolve_backoff
from sensors.triggers import (
    EVENT_IDS_ANNOTATION,
    SENSOR_LABEL,
    TRIGGER_LABEL,
    Outcome,
    PermanentError,
    TemporaryError,
    event_ids,
    idempotent_name,
)
from sensors.triggers.errors import TriggerCompileError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_STRATEGIES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH)


# --- shared with argoWorkflow --------------------------------------------------------------------


def load_source(source: ArtifactLocation) -> Obj:
    """The resource of a trigger, read-only: each use copies it first (`apply`, `json_copy`), so the
    Sensor's own (frozen) document is shared rather than kept twice."""
    if source.resource is not None:
        return source.resource
    try:
        doc = yaml.safe_load(source.inline or "")
    except yaml.YAMLError as e:
        raise TriggerCompileError(("source", "inline"), f"not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise TriggerCompileError(("source", "inline"), "must be a YAML mapping (a Kubernetes object)")
    return doc


def source_path(source: ArtifactLocation, *rest: str) -> tuple[str, ...]:
    return ("source", "resource" if source.resource is not None else "inline", *rest)


def compile_resource_parameters(spec_parameters: Any) -> tuple[params.CompiledParameter, ...]:
    try:
        return params.compile_parameters(spec_parameters, where="parameters", require_dest=True)
    except params.ParamError as e:
        raise TriggerCompileError(("parameters",), str(e)) from None


def sets_name(parameters: tuple[params.CompiledParameter, ...], *fields: str) -> bool:
    """Whether a parameter writes metadata.<field> (then the name is only known per event)."""
    return any(p.spec.dest in {f"metadata.{f}" for f in fields} for p in parameters)


def apply(resource: Obj, parameters: tuple[params.CompiledParameter, ...],
          events: Mapping[str, CloudEvent]) -> Obj:
    try:
        obj = params.apply_parameters(resource, parameters, events)
    except params.ParamError as e:
        raise PermanentError(str(e)) from None
    if not isinstance(obj.get("metadata"), dict):
        raise PermanentError("the resource has no metadata after applying the parameters")
    return dict(obj)


def place(obj: Obj, namespace: str) -> str | None:
    """Set the namespace as Argo does (the resource's, else the sensor's); None when cluster-scoped."""
    meta = obj["metadata"]
    if obj.get("kind") in CLUSTER_SCOPED_KINDS:
        meta.pop("namespace", None)
        return None
    meta["namespace"] = meta.get("namespace") or namespace
    return str(meta["namespace"])


def stamp(obj: Obj, *, namespace: str, sensor: str, trigger: str, events: Mapping[str, CloudEvent]) -> Obj:
    """Ready `obj` for an idempotent create: its name, namespace, labels and event-ids annotation."""
    meta = obj["metadata"]
    place(obj, namespace)
    if not meta.get("name"):
        meta["name"] = idempotent_name(meta.get("generateName") or "", namespace=namespace, sensor=sensor,
                                       trigger=trigger, events=events)
    meta.pop("generateName", None)
    meta["labels"] = {**(meta.get("labels") or {}), SENSOR_LABEL: sensor, TRIGGER_LABEL: trigger}
    meta["annotations"] = {**(meta.get("annotations") or {}), EVENT_IDS_ANNOTATION: event_ids(events)}
    return obj


def ref(obj: Obj) -> tuple[str, str, str, str | None]:
    meta = obj["metadata"]
    return str(obj.get("apiVersion", "")), str(obj.get("kind", "")), str(meta.get("name", "")), meta.get("namespace")


def label(obj: Obj) -> str:
    _, kind, name, namespace = ref(obj)
    return describe(kind, name, namespace)


async def create_once(cluster: Cluster, obj: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
    """Create a stamped object; a 409 is success only when the stored one is for the same events."""
    try:
        created = await cluster.create(obj, obj["metadata"].get("namespace"))
    except AlreadyExists as e:
        theirs = ((e.existing.get("metadata") or {}).get("annotations") or {}).get(EVENT_IDS_ANNOTATION)
        if theirs != event_ids(events):
            raise PermanentError(f"{label(obj)} exists but was not created for these events "
                                 f"(its {EVENT_IDS_ANNOTATION} is {theirs!r})") from None
        return Outcome(name=label(obj), created=False, resource=e.existing)
    return Outcome(name=label(obj), created=True, resource=created)


# --- policy.k8s ----------------------------------------------------------------------------------


def check_policy(policy: K8sResourcePolicy | None) -> None:
    """Load-time check of a policy's backoff; the message names the field."""
    if policy is not None and policy.backoff is not None:
        try:
            resolve_backoff(policy.backoff)
        except BackoffError as e:
            raise TriggerCompileError((), f"policy.k8s.backoff.{e}") from None


async def wait_for_labels(cluster: Cluster, obj: Obj, policy: K8sResourcePolicy | None,
                          sleep: Sleep = asyncio.sleep) -> None:
    """Argo's ResourceLabels policy: poll `obj` until it carries every label of the policy."""
    if policy is None or not policy.labels or cluster.dry_run:
        return
    api_version, kind, name, namespace = ref(obj)
    waits = delays(policy.backoff or DEFAULT_BACKOFF)
    for attempt in range(len(waits) + 1):
        live = await cluster.get(api_version, kind, name, namespace)
        if live is None:
            raise PermanentError(f"{describe(kind, name, namespace)} disappeared while waiting for its labels")
        labels = (live.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in policy.labels.items()):
            return
        if attempt < len(waits):
            await sleep(waits[attempt])
    wanted = ", ".join(f"{k}={v}" for k, v in sorted(policy.labels.items()))
    if policy.errorOnBackoffTimeout:
        raise PermanentError(f"{describe(kind, name, namespace)} did not get the labels {wanted} "
                             f"within {len(waits) + 1} checks (policy.k8s.errorOnBackoffTimeout)")
    log.info("%s did not get the labels %s in time; counted as success (errorOnBackoffTimeout is false)",
             describe(kind, name, namespace), wanted)


# --- the k8s trigger -----------------------------------------------------------------------------


def merge_over(old: Any, new: Any) -> Any:
    """The object to PUT for an update: `new` over `old` (see the module docstring)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            if value is not None:
                out[key] = merge_over(old.get(key), value)
        return out
    return copy.deepcopy(new)


class K8sAction:
    kind = "k8s"

    def __init__(self, spec: StandardK8STrigger, *, sensor: str, namespace: str, trigger: str, cluster: Cluster,
                 policy: K8sResourcePolicy | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.spec = spec
        self.operation = spec.operation
        self.resource = load_source(spec.source)
        self.parameters = compile_resource_parameters(spec.parameters)
        self.sensor, self.namespace, self.trigger = sensor, namespace, trigger
        self.cluster = cluster
        self.policy = policy
        self.sleep = sleep  # between policy.k8s checks; tests pass a fake clock's
        check_policy(policy)
        self._check()

    def _check(self) -> None:
        where = source_path(self.spec.source)
        for field in ("apiVersion", "kind"):
            if not isinstance(self.resource.get(field), str) or not self.resource[field]:
                raise TriggerCompileError(where, f"the resource needs {field}")
        meta = self.resource.get("metadata")
        if not isinstance(meta, dict):
            raise TriggerCompileError(where, "the resource needs metadata")
        if self.operation == "create":
            if not (meta.get("name") or meta.get("generateName") or sets_name(self.parameters, "name", "generateName")):
                raise TriggerCompileError((*where, "metadata"), "create needs metadata.name or generateName")
        elif not (meta.get("name") or sets_name(self.parameters, "name")):
            raise TriggerCompileError((*where, "metadata"), f"{self.operation} needs metadata.name "
                                      "(generateName only names new objects)")
        if self.spec.liveObject and self.operation == "update" and not meta.get("name"):
            raise TriggerCompileError((*where, "metadata"), "liveObject needs metadata.name in the source, "
                                      "to read the live object before the parameters apply")
        if self.operation == "patch":
            self._check_patch(where)

    def _check_patch(self, where: tuple[str, ...]) -> None:
        strategy = self.spec.patchStrategy or MERGE_PATCH
        if strategy == APPLY_PATCH:
            raise TriggerCompileError(("patchStrategy",), f"{APPLY_PATCH} (server-side apply) is not supported; "
                                      f"use {MERGE_PATCH} or {STRATEGIC_PATCH}")
        if strategy not in PATCH_STRATEGIES:
            raise TriggerCompileError(("patchStrategy",), f"unknown patch strategy {strategy!r} "
                                      f"(supported: {', '.join(PATCH_STRATEGIES)})")
        if strategy == JSON_PATCH:
            extra = sorted(set(self.resource) - {"apiVersion", "kind", "metadata", "patch"})
            if extra or not isinstance(self.resource.get("patch"), list):
                raise TriggerCompileError(where, "with application/json-patch+json the resource is apiVersion, "
                                          "kind, metadata and `patch`: a list of RFC 6902 operations"
                                          + (f" (unexpected: {', '.join(extra)})" if extra else ""))

    @property
    def strategy(self) -> str:
        return self.spec.patchStrategy or MERGE_PATCH

    def render(self, events: Mapping[str, CloudEvent]) -> Obj:
        """What would be sent: for create the stamped object, for the others the resolved resource
        (with `liveObject`, the parameters apply to the live object at execution instead)."""
        obj = apply(self.resource, self.parameters, events)
        if self.operation == "create":
            return stamp(obj, namespace=self.namespace, sensor=self.sensor, trigger=self.trigger, events=events)
        place(obj, self.namespace)
        return obj

    async def execute(self, events: Mapping[str, CloudEvent]) -> Outcome:
        obj = await self._resolve(events)
        outcome = await getattr(self, f"_{self.operation}")(obj, events)
        if self.operation != "delete" and outcome.resource:
            await wait_for_labels(self.cluster, outcome.resource, self.policy, self.sleep)
        return outcome

    async def _resolve(self, events: Mapping[str, CloudEvent]) -> Obj:
        # Dry-run cannot read the live object: it records the source with the parameters applied.
        if not (self.spec.liveObject and self.operation == "update") or self.cluster.dry_run:
            return self.render(events)
        base = copy.deepcopy(self.resource)
        namespace = place(base, self.namespace)
        live = await self.cluster.get(*ref(base)[:3], namespace)
        if live is None:
            raise PermanentError(f"liveObject: {label(base)} not found")
        obj = apply(live, self.parameters, events)
        place(obj, self.namespace)
        return obj

    async def _create(self, obj: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
        return await create_once(self.cluster, obj, events)

    async def _create_missing(self, obj: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
        """update / patch of an absent object creates it, as Argo does."""
        stamped = stamp(copy.deepcopy(obj), namespace=self.namespace, sensor=self.sensor, trigger=self.trigger,
                        events=events)
        try:
            created = await self.cluster.create(stamped, stamped["metadata"].get("namespace"))
        except AlreadyExists:
            # Created by someone else between our read and our create: the next attempt updates it.
            raise TemporaryError(f"{label(obj)} appeared while hookgate was creating it") from None
        return Outcome(name=label(stamped), created=True, resource=created)

    async def _update(self, obj: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
        api_version, kind, name, namespace = ref(obj)
        if self.cluster.dry_run:
            return Outcome(name=label(obj), created=True, resource=await self.cluster.replace(obj, namespace))
        live = await self.cluster.get(api_version, kind, name, namespace)
        if live is None:
            return await self._create_missing(obj, events)
        try:
            updated = await self.cluster.replace(merge_over(live, obj), namespace)
        except NotFound:
            raise TemporaryError(f"{label(obj)} was deleted while hookgate was updating it") from None
        return Outcome(name=label(obj), created=True, resource=updated)

    async def _patch(self, obj: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
        api_version, kind, name, namespace = ref(obj)
        body = obj["patch"] if self.strategy == JSON_PATCH else obj
        if not self.cluster.dry_run and await self.cluster.get(api_version, kind, name, namespace) is None:
            if self.strategy == JSON_PATCH:
                raise PermanentError(f"{label(obj)} not found: a JSON patch has nothing to apply to")
            return await self._create_missing(obj, events)
        try:
            patched = await self.cluster.patch(api_version, kind, name, namespace, body, content_type=self.strategy)
        except NotFound:
            raise TemporaryError(f"{label(obj)} was deleted while hookgate was patching it") from None
        return Outcome(name=label(obj), created=True, resource=patched)

    async def _delete(self, obj: Obj, events: Mapping[str, CloudEvent]) -> Outcome:
        api_version, kind, name, namespace = ref(obj)
        deleted = await self.cluster.delete(api_version, kind, name, namespace)
        return Outcome(name=label(obj), created=deleted, resource=None)
