"""Helpers for the trigger tests: events, sensors, and the Kubernetes emulator with CronWorkflows."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import CustomObjectsApi

from gateway.envelope import CloudEvent
from sensors.kube import KubeCluster
from sensors.models import Sensor
from tests.kube.emulator import Handle, run_emulator

ARGO = ("argoproj.io", "v1alpha1")


def event(event_id: str, body: Any = None, *, source: str = "webhook", subject: str = "example") -> CloudEvent:
    return CloudEvent(id=event_id, source=source, subject=subject, type="webhook",
                      data={"header": {}, "body": body if body is not None else {}})


def sensor(*triggers: Mapping[str, Any], namespace: str = "default", name: str = "s") -> Sensor:
    return Sensor.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"dependencies": [{"name": "dep", "eventSourceName": "webhook", "eventName": "example"}],
                 "triggers": list(triggers)},
    })


def trigger(name: str = "t", **kind: Any) -> dict[str, Any]:
    """A Trigger document; `policy=` goes beside the template, anything else into it."""
    policy = kind.pop("policy", None)
    doc: dict[str, Any] = {"template": {"name": name, **kind}}
    if policy is not None:
        doc["policy"] = policy
    return doc


def emulator(preload: list[Mapping[str, Any]] | tuple[()] = ()) -> contextlib.AbstractContextManager[Handle]:
    """The emulator (it serves CronWorkflows too); faults through `Handle.inject`."""
    return run_emulator(preload)


def kubeconfig(path: Path, server: str, *, cluster: dict[str, Any] | None = None,
               user: dict[str, Any] | None = None) -> str:
    """A one-context kubeconfig for `server` at `path`; returns the path."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def cluster_for(handle: Handle, tmp_path: Path, *, timeout: float = 5.0) -> KubeCluster:
    return KubeCluster(kubeconfig=str(handle.write_kubeconfig(tmp_path / "kubeconfig")), timeout=timeout)


def stored(handle: Handle, group: str, version: str, plural: str, name: str,
           namespace: str | None = "default") -> dict[str, Any] | None:
    return next((o for o in handle.objects(group, version, plural, namespace) if o["metadata"]["name"] == name), None)


def merge_patch_workflow(handle: Handle, name: str, patch: dict[str, Any], namespace: str = "default") -> None:
    """Change a Workflow behind hookgate's back, as its controller would."""
    with handle.api_client() as client:
        CustomObjectsApi(client).patch_namespaced_custom_object(
            *ARGO, namespace, "workflows", name, patch, _content_type="application/merge-patch+json")


def workflow(name: str | None = None, *, generate: str | None = None, namespace: str | None = None,
             **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if name:
        meta["name"] = name
    if generate:
        meta["generateName"] = generate
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta,
            "spec": spec or {"entrypoint": "main"}}
