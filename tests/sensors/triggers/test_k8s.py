"""The k8s trigger through the factory, against the emulator over HTTP; dry-run; policy.k8s; load errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensors.kube import DryRunCluster, KubeCluster
from sensors.models import K8sResourcePolicy
from sensors.triggers import EVENT_IDS_ANNOTATION, SENSOR_LABEL, TRIGGER_LABEL, PermanentError, TemporaryError
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.factory import build_action
from sensors.triggers.k8s import K8sAction, merge_over, wait_for_labels
from tests.kube.emulator import Handle
from tests.sensors.triggers import (
    emulator,
    event,
    merge_patch_workflow,
    sensor,
    stored,
    trigger,
    workflow,
)

Cluster = KubeCluster | DryRunCluster
E1 = {"dep": event("e1", {"value": "one"})}
E2 = {"dep": event("e2", {"value": "two"})}
NAME_FROM_VALUE = [{"src": {"dependencyName": "dep", "value": "n"}, "dest": "metadata.name"}]
FROM_BODY = [{"src": {"dependencyName": "dep", "dataKey": "body.value"}, "dest": "data.value"}]


def configmap(name: str | None = None, *, generate: str | None = None, namespace: str | None = None,
              **data: str) -> dict[str, Any]:
    meta = {k: v for k, v in (("name", name), ("generateName", generate), ("namespace", namespace)) if v}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def k8s(cluster: Cluster, resource: dict[str, Any], *, namespace: str = "default", policy: Any = None,
        **spec: Any) -> K8sAction:
    s = sensor(trigger("t", k8s={"source": {"resource": resource}, **spec}, policy=policy), namespace=namespace)
    action = build_action(s.spec.triggers[0].template, sensor=s, cluster=cluster)
    assert isinstance(action, K8sAction)
    return action


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def configmaps(handle: Handle, namespace: str = "default") -> list[dict[str, Any]]:
    return handle.objects("", "v1", "configmaps", namespace)


@pytest.fixture
def kube() -> Iterator[Handle]:
    with emulator([configmap("live", namespace="default", value="old", keep="kept")]) as handle:
        yield handle


# --- create --------------------------------------------------------------------------------------


async def test_create_names_idempotently_and_stamps(cluster: KubeCluster, kube: Handle) -> None:
    action = k8s(cluster, configmap(generate="cm-"), parameters=FROM_BODY)
    first = await action.execute(E1)
    again = await action.execute(E1)  # the redelivery
    assert (first.created, again.created) == (True, False)
    [cm] = [c for c in configmaps(kube) if c["metadata"]["name"].startswith("cm-")]
    assert len(cm["metadata"]["name"]) == len("cm-") + 16
    assert cm["metadata"]["labels"] == {SENSOR_LABEL: "s", TRIGGER_LABEL: "t"}
    assert cm["metadata"]["annotations"] == {EVENT_IDS_ANNOTATION: "dep=e1"}
    assert cm["data"] == {"value": "one"}
    await action.execute(E2)
    assert len([c for c in configmaps(kube) if c["metadata"]["name"].startswith("cm-")]) == 2


async def test_explicit_name_is_kept_and_a_clash_is_permanent(cluster: KubeCluster, kube: Handle) -> None:
    action = k8s(cluster, configmap("fixed"))
    outcome = await action.execute(E1)
    assert outcome.name == "ConfigMap default/fixed" and stored(kube, "", "v1", "configmaps", "fixed")
    with pytest.raises(PermanentError, match=r"exists but was not created for these events .*'dep=e1'"):
        await action.execute(E2)


@pytest.mark.parametrize(("resource_ns", "sensor_ns", "expected"), [("other", "default", "other"),
                                                                    (None, "team", "team")])
async def test_namespace_from_resource_else_sensor(cluster: KubeCluster, kube: Handle, resource_ns: str | None,
                                                   sensor_ns: str, expected: str) -> None:
    await k8s(cluster, configmap("n", namespace=resource_ns), namespace=sensor_ns).execute(E1)
    assert stored(kube, "", "v1", "configmaps", "n", expected) is not None


def test_cluster_scoped_kind_renders_without_namespace() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"generateName": "team-"}}
    rendered = k8s(DryRunCluster(None), ns).render(E1)
    assert "namespace" not in rendered["metadata"] and rendered["metadata"]["name"].startswith("team-")


async def test_api_failure_on_create_is_temporary(cluster: KubeCluster, kube: Handle) -> None:
    kube.inject(method="POST", plural="configmaps", status=503)
    with pytest.raises(TemporaryError, match="answered 503"):
        await k8s(cluster, configmap(generate="cm-")).execute(E1)


# --- update, patch, delete -----------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "merged"), [
    ({"a": {"b": 1, "c": 2}}, {"a": {"c": 3, "d": 4}}, {"a": {"b": 1, "c": 3, "d": 4}}),  # maps merge
    ({"l": [1, 2, 3]}, {"l": [9]}, {"l": [9]}),  # lists replace
    ({"n": 5, "f": True, "s": "x"}, {"n": 0, "f": False, "s": ""}, {"n": 0, "f": False, "s": ""}),  # unlike mergo
    ({"keep": "me"}, {"keep": None}, {"keep": "me"}),  # null keeps the live value
    ({"a": "scalar"}, {"a": {"now": "map"}}, {"a": {"now": "map"}}),
])
def test_merge_over(old: dict[str, Any], new: dict[str, Any], merged: dict[str, Any]) -> None:
    assert merge_over(old, new) == merged


async def test_update_merges_over_the_live_object(cluster: KubeCluster, kube: Handle) -> None:
    before = stored(kube, "", "v1", "configmaps", "live") or {}
    outcome = await k8s(cluster, configmap("live", value="placeholder"), operation="update",
                        parameters=FROM_BODY).execute(E1)
    after = stored(kube, "", "v1", "configmaps", "live") or {}
    assert outcome.created and after["data"] == {"value": "one", "keep": "kept"}
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # the same object, updated in place
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


@pytest.mark.parametrize("operation", ["update", "patch"])
async def test_update_and_patch_create_a_missing_object(cluster: KubeCluster, kube: Handle, operation: str) -> None:
    await k8s(cluster, configmap("fresh", value="v"), operation=operation).execute(E1)
    fresh = stored(kube, "", "v1", "configmaps", "fresh") or {}
    assert fresh["data"] == {"value": "v"}
    assert fresh["metadata"]["annotations"] == {EVENT_IDS_ANNOTATION: "dep=e1"}


async def test_live_object_is_the_base_of_the_parameters(cluster: KubeCluster, kube: Handle) -> None:
    append = [{"src": {"dependencyName": "dep", "dataKey": "body.value"}, "dest": "data.value",
               "operation": "append"}]
    await k8s(cluster, configmap("live"), operation="update", liveObject=True, parameters=append).execute(E1)
    assert (stored(kube, "", "v1", "configmaps", "live") or {})["data"] == {"value": "oldone", "keep": "kept"}


@pytest.mark.parametrize("strategy", ["application/merge-patch+json", "application/strategic-merge-patch+json"])
async def test_patch_sends_the_resource(cluster: KubeCluster, kube: Handle, strategy: str) -> None:
    await k8s(cluster, configmap("live", extra="x"), operation="patch", patchStrategy=strategy,
              parameters=FROM_BODY).execute(E1)
    assert (stored(kube, "", "v1", "configmaps", "live") or {})["data"] == {"value": "one", "keep": "kept",
                                                                           "extra": "x"}


async def test_json_patch_sends_the_operations(cluster: KubeCluster, kube: Handle) -> None:
    resource = {**configmap("live"), "patch": [{"op": "remove", "path": "/data/keep"},
                                               {"op": "add", "path": "/data/new", "value": "?"}]}
    resource.pop("data")
    action = k8s(cluster, resource, operation="patch", patchStrategy="application/json-patch+json",
                 parameters=[{"src": {"dependencyName": "dep", "dataKey": "body.value"}, "dest": "patch.1.value"}])
    await action.execute(E1)
    assert (stored(kube, "", "v1", "configmaps", "live") or {})["data"] == {"value": "old", "new": "one"}
    resource["metadata"] = {"name": "absent"}
    with pytest.raises(PermanentError, match="ConfigMap default/absent not found: a JSON patch"):
        await k8s(cluster, resource, operation="patch", patchStrategy="application/json-patch+json").execute(E1)


async def test_delete_removes_and_a_missing_object_is_fine(cluster: KubeCluster, kube: Handle) -> None:
    action = k8s(cluster, configmap("live"), operation="delete")
    assert (await action.execute(E1)).created is True
    assert stored(kube, "", "v1", "configmaps", "live") is None
    assert (await action.execute(E1)).created is False  # nothing left to delete: done, not failed


# --- dry run -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "extra", "file", "content"), [
    ("create", {}, "fixed.yaml", {"value": "one"}),
    ("update", {}, "fixed.update.yaml", {"value": "one"}),
    ("patch", {}, "fixed.patch.yaml", {"value": "one"}),
    ("delete", {}, "fixed.delete.yaml", None),
])
async def test_dry_run_writes_what_would_be_sent(tmp_path: Path, operation: str, extra: dict[str, Any], file: str,
                                                 content: dict[str, str] | None) -> None:
    action = k8s(DryRunCluster(tmp_path), configmap("fixed", value="v"), operation=operation,
                 parameters=FROM_BODY, **extra)
    await action.execute(E1)
    assert names(tmp_path) == [file]  # no read of a live object, no fallback create
    doc = yaml.safe_load((tmp_path / file).read_text())
    assert doc.get("data") == content
    assert doc["metadata"]["namespace"] == "default"


# --- policy.k8s ----------------------------------------------------------------------------------


class Controller:
    """A fake sleep that, at its n-th call, labels the Workflow as Argo's controller would."""

    def __init__(self, handle: Handle, name: str, at: int | None) -> None:
        self.handle, self.name, self.at = handle, name, at
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) == self.at:
            patch = {"metadata": {"labels": {"workflows.argoproj.io/phase": "Succeeded"}}}
            await asyncio.to_thread(merge_patch_workflow, self.handle, self.name, patch)


POLICY = {"labels": {"workflows.argoproj.io/phase": "Succeeded"},
          "backoff": {"duration": "1s", "factor": 2, "jitter": 0, "steps": 4}}


async def test_policy_waits_until_the_labels_appear(cluster: KubeCluster, kube: Handle) -> None:
    action = k8s(cluster, workflow(generate="wf-"), policy={"k8s": {**POLICY, "errorOnBackoffTimeout": True}})
    controller = Controller(kube, action.render(E1)["metadata"]["name"], at=2)
    action.sleep = controller.sleep
    await action.execute(E1)
    assert controller.sleeps == [1.0, 2.0]  # labelled during the second wait: found on the third check


@pytest.mark.parametrize(("error_on_timeout", "raises"), [(True, True), (False, False)])
async def test_policy_timeout(cluster: KubeCluster, kube: Handle, error_on_timeout: bool, raises: bool) -> None:
    created = await cluster.create(workflow("w", namespace="default"), "default")
    policy = K8sResourcePolicy.model_validate({**POLICY, "errorOnBackoffTimeout": error_on_timeout})
    controller = Controller(kube, "w", at=None)
    if raises:
        with pytest.raises(PermanentError, match=r"did not get the labels .*phase=Succeeded within 4 checks"):
            await wait_for_labels(cluster, created, policy, controller.sleep)
    else:
        await wait_for_labels(cluster, created, policy, controller.sleep)
    assert controller.sleeps == [1.0, 2.0, 4.0]


async def test_policy_on_a_vanished_object_fails(cluster: KubeCluster, kube: Handle) -> None:
    controller = Controller(kube, "gone", at=None)
    with pytest.raises(PermanentError, match="Workflow default/gone disappeared"):
        await wait_for_labels(cluster, workflow("gone", namespace="default"), K8sResourcePolicy.model_validate(POLICY),
                              controller.sleep)
    assert controller.sleeps == []


async def test_policy_without_backoff_uses_argo_default(cluster: KubeCluster, kube: Handle) -> None:
    created = await cluster.create(workflow("w", namespace="default"), "default")
    controller = Controller(kube, "w", at=None)
    await wait_for_labels(cluster, created, K8sResourcePolicy(labels={"x": "y"}), controller.sleep)
    assert len(controller.sleeps) == 4 and all(1.0 <= s <= 2.0 for s in controller.sleeps)  # 5 checks, 1s + jitter


async def test_policy_is_skipped_in_dry_run(tmp_path: Path) -> None:
    action = k8s(DryRunCluster(tmp_path), workflow(generate="wf-"), policy={"k8s": {**POLICY,
                                                                                   "errorOnBackoffTimeout": True}})
    controller = Controller(Handle("http://unused"), "", at=None)
    action.sleep = controller.sleep
    assert (await action.execute(E1)).created and controller.sleeps == []


# --- load-time errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "spec", "path", "message"), [
    (configmap("x"), {"operation": "patch", "patchStrategy": "application/apply-patch+yaml"}, ("patchStrategy",),
     "server-side apply"),
    (configmap("x"), {"operation": "patch", "patchStrategy": "text/plain"}, ("patchStrategy",), "unknown patch"),
    (configmap("x"), {"operation": "patch", "patchStrategy": "application/json-patch+json"},
     ("source", "resource"), r"list of RFC 6902 operations \(unexpected: data\)"),
    (configmap(generate="x-"), {"operation": "update"}, ("source", "resource", "metadata"), "update needs metadata"),
    (configmap(generate="x-"), {"operation": "delete"}, ("source", "resource", "metadata"), "delete needs"),
    (configmap(), {}, ("source", "resource", "metadata"), "create needs metadata.name or generateName"),
    ({"kind": "ConfigMap", "metadata": {"name": "x"}}, {}, ("source", "resource"), "needs apiVersion"),
    (configmap("x"), {"parameters": [{"src": {"dependencyName": "dep"}}]}, ("parameters",), "dest: required"),
    (configmap(generate="x-"), {"operation": "update", "liveObject": True, "parameters": NAME_FROM_VALUE},
     ("source", "resource", "metadata"), "liveObject needs metadata.name"),
])
def test_load_errors(resource: dict[str, Any], spec: dict[str, Any], path: tuple[str, ...], message: str) -> None:
    with pytest.raises(TriggerCompileError, match=message) as e:
        k8s(DryRunCluster(None), resource, **spec)
    assert e.value.path == path


def test_a_name_from_parameters_is_enough_at_load() -> None:
    name_param = [{"src": {"dependencyName": "dep", "dataKey": "body.value"}, "dest": "metadata.name"}]
    action = k8s(DryRunCluster(None), configmap(), operation="delete", parameters=name_param)
    assert action.render(E1)["metadata"]["name"] == "one"


def test_inline_source_must_be_an_object() -> None:
    s = sensor(trigger("t", k8s={"source": {"inline": "- a list"}}))
    with pytest.raises(TriggerCompileError, match="YAML mapping") as e:
        build_action(s.spec.triggers[0].template, sensor=s, cluster=DryRunCluster(None))
    assert e.value.path == ("source", "inline")
