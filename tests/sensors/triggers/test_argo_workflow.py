"""The argoWorkflow trigger: submit, submit-from, and the Workflow control operations, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensors.kube import DryRunCluster, KubeCluster
from sensors.triggers import EVENT_IDS_ANNOTATION, SENSOR_LABEL, PermanentError
from sensors.triggers.argo_workflow import ArgoWorkflowAction
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.factory import build_action
from tests.kube.emulator import Handle
from tests.sensors.triggers import emulator, event, sensor, stored, trigger, workflow

E1 = {"dep": event("e1", {"run": "r1", "who": "ada"})}
E2 = {"dep": event("e2", {"run": "r2", "who": "bob"})}
ARGO = "argoproj.io", "v1alpha1"
TEMPLATE = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
            "metadata": {"name": "build", "namespace": "default"},
            "spec": {"arguments": {"parameters": [{"name": "who"}, {"name": "level", "value": "1"}]}}}
OPTIONAL_TEMPLATE = {**TEMPLATE, "metadata": {"name": "easy", "namespace": "default"}, "spec": {}}
CRON = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {"schedule": "0 0 * * *",
                 "workflowMetadata": {"labels": {"team": "infra"}, "annotations": {"note": "n"}},
                 "workflowSpec": {"entrypoint": "main", "templates": [{"name": "main"}]}}}
WHO = [{"src": {"dependencyName": "dep", "dataKey": "body.who"}, "dest": "spec.arguments.parameters.0.value"}]
RUN_NAME = [{"src": {"dependencyName": "dep", "dataKey": "body.run"}, "dest": "metadata.name"}]


def argo(cluster: KubeCluster | DryRunCluster, operation: str, resource: dict[str, Any], *,
         policy: Any = None, **spec: Any) -> ArgoWorkflowAction:
    s = sensor(trigger("t", argoWorkflow={"operation": operation, "source": {"resource": resource}, **spec},
                       policy=policy))
    action = build_action(s.spec.triggers[0].template, sensor=s, cluster=cluster)
    assert isinstance(action, ArgoWorkflowAction)
    return action


def by_template(name: str) -> dict[str, Any]:
    return workflow(generate=f"{name}-", workflowTemplateRef={"name": name},
                    arguments={"parameters": [{"name": "who", "value": "?"}]})


def workflows(handle: Handle) -> list[dict[str, Any]]:
    return handle.objects(*ARGO, "workflows", "default")


@pytest.fixture
def kube() -> Iterator[Handle]:
    preload = [TEMPLATE, OPTIONAL_TEMPLATE, CRON, workflow("r1", namespace="default"),
               workflow("paused", namespace="default", entrypoint="main", suspend=True)]
    with emulator(preload) as handle:
        yield handle


# --- submit --------------------------------------------------------------------------------------


async def test_submit_is_idempotent_per_event(cluster: KubeCluster, kube: Handle) -> None:
    action = argo(cluster, "submit", by_template("build"), parameters=WHO)
    assert (await action.execute(E1)).created is True
    assert (await action.execute(E1)).created is False
    [wf] = [w for w in workflows(kube) if w["metadata"]["name"].startswith("build-")]
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "who", "value": "ada"}]
    assert wf["metadata"]["labels"][SENSOR_LABEL] == "s"
    assert wf["metadata"]["annotations"][EVENT_IDS_ANNOTATION] == "dep=e1"


async def test_submit_of_a_taken_name_for_other_events_is_permanent(cluster: KubeCluster) -> None:
    with pytest.raises(PermanentError, match="Workflow default/r1 exists but was not created for these events"):
        await argo(cluster, "submit", workflow("r1")).execute(E1)


@pytest.mark.parametrize(("resource", "message"), [
    (by_template("missing"), "WorkflowTemplate 'missing' not found in namespace default"),
    (workflow(generate="x-", workflowTemplateRef={"name": "build"}), "requires parameter.s. who with no default"),
    (workflow(generate="x-", workflowTemplateRef={"name": "g", "clusterScope": True}),
     "ClusterWorkflowTemplate 'g' not found;"),
])
async def test_submit_checks_the_template(cluster: KubeCluster, kube: Handle, resource: dict[str, Any],
                                          message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        await argo(cluster, "submit", resource).execute(E1)
    assert [w["metadata"]["name"] for w in workflows(kube)] == ["paused", "r1"]  # nothing created


# --- submit-from ---------------------------------------------------------------------------------


async def test_submit_from_workflow_template(cluster: KubeCluster, kube: Handle) -> None:
    source = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "easy"}}
    action = argo(cluster, "submit-from", source)
    await action.execute(E1)
    await action.execute(E1)
    [wf] = [w for w in workflows(kube) if w["metadata"]["name"].startswith("easy-")]
    assert len(wf["metadata"]["name"]) == len("easy-") + 16
    assert wf["spec"] == {"workflowTemplateRef": {"name": "easy"}}
    assert wf["metadata"]["labels"]["workflows.argoproj.io/workflow-template"] == "easy"


async def test_submit_from_a_template_with_required_parameters_is_refused(cluster: KubeCluster) -> None:
    source = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "build"}}
    with pytest.raises(PermanentError, match=r"requires parameter\(s\) who"):
        await argo(cluster, "submit-from", source).execute(E1)


async def test_submit_from_cron_workflow_copies_its_spec(cluster: KubeCluster, kube: Handle) -> None:
    cron = stored(kube, *ARGO, "cronworkflows", "nightly") or {}
    source = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "nightly"}}
    await argo(cluster, "submit-from", source).execute(E1)
    [wf] = [w for w in workflows(kube) if w["metadata"]["name"].startswith("nightly-")]
    assert wf["spec"] == CRON["spec"]["workflowSpec"]
    assert wf["metadata"]["labels"] == {"team": "infra", "workflows.argoproj.io/cron-workflow": "nightly",
                                        SENSOR_LABEL: "s", "events.argoproj.io/trigger": "t"}
    assert wf["metadata"]["annotations"] == {"note": "n", EVENT_IDS_ANNOTATION: "dep=e1"}
    assert wf["metadata"]["ownerReferences"] == [{
        "apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "name": "nightly",
        "uid": cron["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]


async def test_submit_from_a_missing_cron_workflow_is_permanent(cluster: KubeCluster) -> None:
    source = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "weekly"}}
    with pytest.raises(PermanentError, match="CronWorkflow default/weekly not found"):
        await argo(cluster, "submit-from", source).execute(E1)


# --- suspend, resume, terminate, stop ------------------------------------------------------------


@pytest.mark.parametrize(("operation", "name", "expected"), [
    ("suspend", "r1", {"entrypoint": "main", "suspend": True}),
    ("resume", "paused", {"entrypoint": "main"}),
    ("terminate", "r1", {"entrypoint": "main", "shutdown": "Terminate"}),
    ("stop", "r1", {"entrypoint": "main", "shutdown": "Stop"}),
])
async def test_control_operations_patch_the_workflow(cluster: KubeCluster, kube: Handle, operation: str, name: str,
                                                     expected: dict[str, Any]) -> None:
    outcome = await argo(cluster, operation, workflow(name)).execute(E1)
    assert outcome.name == f"Workflow default/{name}"
    assert (stored(kube, *ARGO, "workflows", name) or {})["spec"] == expected


async def test_control_operation_names_the_workflow_from_the_event(cluster: KubeCluster, kube: Handle) -> None:
    await argo(cluster, "suspend", workflow("placeholder"), parameters=RUN_NAME).execute(E1)  # body.run = r1
    assert (stored(kube, *ARGO, "workflows", "r1") or {})["spec"]["suspend"] is True


async def test_control_operation_on_a_missing_workflow_is_permanent(cluster: KubeCluster) -> None:
    with pytest.raises(PermanentError, match="cannot terminate Workflow default/r2: no such Workflow"):
        await argo(cluster, "terminate", workflow("x"), parameters=RUN_NAME).execute(E2)


async def test_dry_run_records_a_control_operation(tmp_path: Path) -> None:
    action = argo(DryRunCluster(tmp_path), "stop", workflow("w"))
    assert action.render(E1) == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                 "metadata": {"name": "w", "namespace": "default"}, "spec": {"shutdown": "Stop"}}
    await action.execute(E1)
    assert yaml.safe_load((tmp_path / "w.stop.yaml").read_text()) == {"spec": {"shutdown": "Stop"}}


async def test_policy_applies_to_the_submitted_workflow(cluster: KubeCluster) -> None:
    policy = {"k8s": {"labels": {"never": "set"}, "errorOnBackoffTimeout": True,
                      "backoff": {"duration": "1ms", "jitter": 0, "steps": 2}}}
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    action = argo(cluster, "submit", workflow(generate="p-"), policy=policy)
    action.sleep = sleep
    with pytest.raises(PermanentError, match="did not get the labels never=set within 2 checks"):
        await action.execute(E1)
    assert sleeps == [0.001]


# --- load-time errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "resource", "spec", "path", "message"), [
    ("resubmit", workflow("w"), {}, ("operation",), "needs the Argo Workflows server API; not supported"),
    ("retry", workflow("w"), {}, ("operation",), "needs the Argo Workflows server API"),
    ("submit", workflow("w"), {"args": ["--watch"]}, ("args",), "CLI args are not supported"),
    ("submit", {**workflow("w"), "kind": "Pod"}, {}, ("source", "resource"), "submit needs a Workflow"),
    ("submit-from", workflow("w"), {}, ("source", "resource"), "WorkflowTemplate or CronWorkflow"),
    ("submit", workflow(), {}, ("source", "resource", "metadata"), "name or generateName"),
    ("suspend", workflow(generate="w-"), {}, ("source", "resource", "metadata"), "suspend needs metadata.name"),
    ("submit", workflow("w"), {"parameters": [{"src": {"dependencyName": "dep"}, "dest": "a..b"}]},
     ("parameters",), "dest"),
])
def test_load_errors(operation: str, resource: dict[str, Any], spec: dict[str, Any], path: tuple[str, ...],
                     message: str) -> None:
    with pytest.raises(TriggerCompileError, match=message) as e:
        argo(DryRunCluster(None), operation, resource, **spec)
    assert e.value.path == path


def test_render_shows_the_workflow_that_would_be_created() -> None:
    rendered = argo(DryRunCluster(None), "submit", by_template("build"), parameters=WHO).render(E1)
    assert rendered["metadata"]["name"].startswith("build-") and "generateName" not in rendered["metadata"]
    assert rendered["metadata"]["namespace"] == "default"
    assert rendered["spec"]["arguments"]["parameters"] == [{"name": "who", "value": "ada"}]
