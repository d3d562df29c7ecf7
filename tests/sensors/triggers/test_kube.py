"""KubeCluster (dynamic client, over real HTTP to the emulator) and DryRunCluster: operations and errors."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensors.kube import AlreadyExists, DryRunCluster, KubeCluster, NotFound
from sensors.triggers import PermanentError, TemporaryError
from tests.conftest import serving
from tests.kube.emulator import Handle
from tests.sensors.triggers import cluster_for, emulator, kubeconfig, stored, workflow

CM = "v1", "ConfigMap"


def configmap(name: str, namespace: str | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.fixture
def kube() -> Any:
    with emulator() as handle:
        yield handle


async def test_core_apps_and_custom_kinds_round_trip(cluster: KubeCluster, kube: Handle) -> None:
    await cluster.create(configmap("c", a="1"), "default")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "other"},
                  "spec": {"replicas": 1}}
    await cluster.create(deployment, "other")
    created = await cluster.create(workflow(generate="wf-"), "default")
    assert created["metadata"]["name"].startswith("wf-") and created["metadata"]["uid"]
    assert (await cluster.get(*CM, "c", "default") or {})["data"] == {"a": "1"}
    assert stored(kube, "apps", "v1", "deployments", "d", "other") is not None
    assert await cluster.get("apps/v1", "Deployment", "d", "default") is None  # namespaces are kept apart


async def test_cluster_scoped_kind_is_sent_without_namespace(cluster: KubeCluster, kube: Handle) -> None:
    cwt = {"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterWorkflowTemplate",
           "metadata": {"name": "global", "namespace": "default"}, "spec": {}}
    created = await cluster.create(cwt, "default")
    assert "namespace" not in created["metadata"]
    assert stored(kube, "argoproj.io", "v1alpha1", "clusterworkflowtemplates", "global", None) is not None
    assert await cluster.get("argoproj.io/v1alpha1", "ClusterWorkflowTemplate", "global", "ignored") is not None


async def test_create_twice_answers_already_exists_with_the_stored_object(cluster: KubeCluster) -> None:
    await cluster.create(configmap("c", a="1"), "default")
    with pytest.raises(AlreadyExists) as e:
        await cluster.create(configmap("c", a="2"), "default")
    assert e.value.existing["data"] == {"a": "1"} and e.value.existing["metadata"]["uid"]


async def test_replace_patch_delete(cluster: KubeCluster, kube: Handle) -> None:
    live = await cluster.create(configmap("c", a="1"), "default")
    live["data"]["b"] = "2"
    replaced = await cluster.replace(live, "default")
    assert replaced["data"] == {"a": "1", "b": "2"}
    await cluster.patch(*CM, "c", "default", {"data": {"a": None, "c": "3"}},
                        content_type="application/merge-patch+json")
    await cluster.patch(*CM, "c", "default", [{"op": "add", "path": "/data/d", "value": "4"}],
                        content_type="application/json-patch+json")
    assert (stored(kube, "", "v1", "configmaps", "c") or {})["data"] == {"b": "2", "c": "3", "d": "4"}
    assert await cluster.delete(*CM, "c", "default") is True
    assert stored(kube, "", "v1", "configmaps", "c") is None
    assert await cluster.delete(*CM, "c", "default") is False  # already gone: nothing to do


async def test_stale_replace_is_temporary(cluster: KubeCluster) -> None:
    old = await cluster.create(configmap("c", a="1"), "default")
    await cluster.patch(*CM, "c", "default", {"data": {"a": "2"}}, content_type="application/merge-patch+json")
    with pytest.raises(TemporaryError, match="modified concurrently"):
        await cluster.replace(old, "default")  # carries the resourceVersion before the patch


@pytest.mark.parametrize("operation", ["replace", "patch"])
async def test_writes_to_missing_objects_are_not_found(cluster: KubeCluster, operation: str) -> None:
    with pytest.raises(NotFound, match="ConfigMap default/nope"):
        if operation == "replace":
            await cluster.replace(configmap("nope"), "default")
        else:
            await cluster.patch(*CM, "nope", "default", {}, content_type="application/merge-patch+json")


async def test_unserved_kind_is_permanent(cluster: KubeCluster) -> None:
    with pytest.raises(PermanentError, match="serves no Job in batch/v1"):
        await cluster.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}, "default")


async def test_discovery_stays_in_memory(cluster: KubeCluster) -> None:
    await cluster.get(*CM, "x", "default")
    # The client's default cache file, named after the host, would be shared by every process.
    default_cache = Path(tempfile.gettempdir()) / f"osrcp-{hashlib.md5(cluster.host.encode()).hexdigest()}.json"
    assert not default_cache.exists()


@pytest.mark.parametrize(("method", "status", "error"), [
    ("POST", 503, TemporaryError), ("POST", 500, TemporaryError), ("POST", 429, TemporaryError),
    ("POST", 403, PermanentError), ("POST", 422, PermanentError), ("POST", 400, PermanentError),
    ("GET", 504, TemporaryError), ("GET", 401, PermanentError),
    ("PUT", 502, TemporaryError), ("PATCH", 415, PermanentError), ("DELETE", 503, TemporaryError),
])
async def test_api_errors_are_classified(cluster: KubeCluster, kube: Handle, method: str, status: int,
                                         error: type[Exception]) -> None:
    live = await cluster.create(configmap("c", "default", a="1"), "default")
    call = {
        "POST": lambda: cluster.create(configmap("new"), "default"),
        "GET": lambda: cluster.get(*CM, "c", "default"),
        "PUT": lambda: cluster.replace(live, "default"),
        "PATCH": lambda: cluster.patch(*CM, "c", "default", {}, content_type="application/merge-patch+json"),
        "DELETE": lambda: cluster.delete(*CM, "c", "default"),
    }[method]
    fault = kube.inject(method=method, plural="configmaps", status=status)
    with pytest.raises(error, match=f"answered {status} injected fault: {status}"):
        await call()
    assert fault.hits == 1


async def test_connection_refused_is_temporary(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = cluster_for(Handle(f"http://127.0.0.1:{port}"), tmp_path, timeout=1.0)
    try:
        with pytest.raises(TemporaryError, match="unreachable"):
            await cluster.get(*CM, "c", "default")
    finally:
        await cluster.close()


async def test_a_stalled_api_times_out_off_the_event_loop(kube: Handle, tmp_path: Path) -> None:
    cluster = cluster_for(kube, tmp_path, timeout=0.5)
    try:
        await cluster.get(*CM, "warm-up", "default")  # discovery first, so only the create stalls
        kube.inject(method="POST", plural="configmaps", stall=2.0)
        started = time.monotonic()
        call = asyncio.ensure_future(cluster.create(configmap("c"), "default"))
        await asyncio.sleep(0)  # the loop gets control back while the call waits in a thread
        assert not call.done()
        with pytest.raises(TemporaryError, match="unreachable"):
            await call
        assert time.monotonic() - started < 2.0  # the client timeout, not the server's stall
    finally:
        await cluster.close()


# --- Argo's kinds: created without the generated API layer ------------------------------------------


@pytest.mark.parametrize(("status", "error"), [
    (503, TemporaryError), (500, TemporaryError), (429, TemporaryError),
    (403, PermanentError), (422, PermanentError), (400, PermanentError),
])
async def test_workflow_create_errors_are_classified(cluster: KubeCluster, kube: Handle, status: int,
                                                     error: type[Exception]) -> None:
    fault = kube.inject(method="POST", plural="workflows", status=status)
    with pytest.raises(error, match=f"create Workflow default/wf-: Kubernetes API answered {status} "
                                    f"injected fault: {status}"):
        await cluster.create(workflow(generate="wf-"), "default")
    assert fault.hits == 1


async def test_workflow_create_twice_answers_already_exists(cluster: KubeCluster, kube: Handle) -> None:
    created = await cluster.create(workflow("w", namespace="other", entrypoint="a"), "other")
    assert created["metadata"]["namespace"] == "other" and created["metadata"]["uid"]
    with pytest.raises(AlreadyExists) as e:
        await cluster.create(workflow("w", namespace="other", entrypoint="b"), "other")
    assert e.value.existing == stored(kube, "argoproj.io", "v1alpha1", "workflows", "w", "other")
    assert e.value.existing["spec"] == {"entrypoint": "a"}


async def test_workflow_body_is_the_clients_json(cluster: KubeCluster, kube: Handle) -> None:
    """Non-string keys and dates, as YAML gives them, are sent as the official client sends them."""
    import datetime

    wf = workflow("dated", entrypoint="main", arguments={"parameters": [
        {"name": "day", "value": datetime.date(2024, 5, 1)},
        {"name": "at", "value": datetime.datetime(2024, 5, 1, 12, 30)},
        {"name": "big", "value": 2**70}]})  # beyond 64 bits: the standard library writes it
    wf["metadata"]["labels"] = {1: "one"}
    await cluster.create(wf, "default")
    live = stored(kube, "argoproj.io", "v1alpha1", "workflows", "dated") or {}
    assert live["metadata"]["labels"] == {"1": "one"}
    assert [p["value"] for p in live["spec"]["arguments"]["parameters"]] == [
        "2024-05-01", "2024-05-01T12:30:00", 2**70]


async def test_a_stalled_workflow_create_times_out_off_the_event_loop(kube: Handle, tmp_path: Path) -> None:
    cluster = cluster_for(kube, tmp_path, timeout=0.5)
    try:
        kube.inject(method="POST", plural="workflows", stall=2.0)
        started = time.monotonic()
        call = asyncio.ensure_future(cluster.create(workflow("w"), "default"))
        await asyncio.sleep(0)
        assert not call.done()
        with pytest.raises(TemporaryError, match="unreachable"):
            await call
        assert time.monotonic() - started < 2.0
    finally:
        await cluster.close()


async def test_workflow_create_sends_the_kubeconfig_token(tmp_path: Path) -> None:
    """The credentials are the client's: its bearer token (refreshed by its hook), its user agent."""
    from aiohttp import web

    seen: list[dict[str, str]] = []

    async def create(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        obj = await request.json()
        obj["metadata"]["uid"] = "u1"
        return web.json_response(obj, status=201)

    app = web.Application()
    app.router.add_post("/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows", create)
    async with serving(app) as port:
        path = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}", user={"token": "s3cret"})
        cluster = KubeCluster(kubeconfig=path, timeout=5.0)
        try:
            created = await cluster.create(workflow("w"), "team-a")
        finally:
            await cluster.close()
    assert created["metadata"]["uid"] == "u1"
    assert seen[0]["Authorization"] == "Bearer s3cret"
    assert seen[0]["Content-Type"] == "application/json"
    assert seen[0]["User-Agent"].startswith("OpenAPI-Generator/")


# --- dry run -------------------------------------------------------------------------------------


async def test_dry_run_create_writes_the_object_once(tmp_path: Path) -> None:
    dry = DryRunCluster(tmp_path)
    obj = configmap("c", "default", a="1")
    assert await dry.create(obj, "default") == obj
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == obj
    with pytest.raises(AlreadyExists) as e:
        await dry.create(configmap("c", "default", a="2"), "default")
    assert e.value.existing == obj
    assert list(files(tmp_path)) == ["c.yaml"]  # no staging file left behind
    assert yaml.safe_load(files(tmp_path)["c.yaml"]) == obj


async def test_dry_run_files_are_utf8_and_read_back_as_written(tmp_path: Path) -> None:
    dry = DryRunCluster(tmp_path)
    obj = configmap("c", "default", title="café ☕ 日本", line="a\u2028b")
    await dry.create(obj, "default")
    assert "café ☕ 日本".encode() in (tmp_path / "c.yaml").read_bytes()  # UTF-8, whatever the locale
    with pytest.raises(AlreadyExists) as e:
        await dry.create(obj, "default")
    assert e.value.existing == obj
    assert await dry.get("v1", "ConfigMap", "c", "default") == obj


async def test_dry_run_records_other_writes_as_requests(tmp_path: Path) -> None:
    dry = DryRunCluster(tmp_path)
    await dry.replace(configmap("c", "ns", a="1"), "ns")
    await dry.patch(*CM, "c", "ns", {"data": {"b": "2"}}, content_type="application/merge-patch+json")
    await dry.patch("argoproj.io/v1alpha1", "Workflow", "w", "ns", {"spec": {"suspend": True}},
                    content_type="application/merge-patch+json", operation="suspend")
    assert await dry.delete(*CM, "c", "ns") is True
    texts = files(tmp_path)
    assert sorted(texts) == ["c.delete.yaml", "c.patch.yaml", "c.update.yaml", "w.suspend.yaml"]
    assert texts["c.patch.yaml"].startswith("# patch ConfigMap ns/c (v1) with application/merge-patch+json\n")
    assert yaml.safe_load(texts["c.patch.yaml"]) == {"data": {"b": "2"}}
    assert yaml.safe_load(texts["c.update.yaml"])["data"] == {"a": "1"}
    assert yaml.safe_load(texts["c.delete.yaml"]) == {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "c", "namespace": "ns"}}
    assert yaml.safe_load(texts["w.suspend.yaml"]) == {"spec": {"suspend": True}}


async def test_dry_run_reads_templates_and_what_it_created(tmp_path: Path) -> None:
    template = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
                "metadata": {"name": "t", "namespace": "default"}}
    dry = DryRunCluster(tmp_path, templates=[template])
    await dry.create(configmap("c", "default"), "default")
    assert await dry.get("argoproj.io/v1alpha1", "WorkflowTemplate", "t", "default") == template
    assert await dry.get("argoproj.io/v1alpha1", "WorkflowTemplate", "t", "elsewhere") is None
    assert await dry.get(*CM, "c", "default") is not None
    assert await dry.get("v1", "Secret", "c", "default") is None  # same name, other kind


@pytest.mark.parametrize("operation", ["create", "replace", "patch", "delete"])
async def test_offline_cluster_refuses_writes(operation: str) -> None:
    offline = DryRunCluster(None)
    call = {
        "create": lambda: offline.create(configmap("c"), "default"),
        "replace": lambda: offline.replace(configmap("c"), "default"),
        "patch": lambda: offline.patch(*CM, "c", "default", {}, content_type="application/merge-patch+json"),
        "delete": lambda: offline.delete(*CM, "c", "default"),
    }[operation]
    with pytest.raises(PermanentError, match="offline"):
        await call()


async def test_discovery_requests_have_the_timeout_too(kube: Handle, tmp_path: Path) -> None:
    cluster = cluster_for(kube, tmp_path, timeout=0.5)
    stall = kube.inject(method="GET", stall=3.0)  # the first request of a new client is discovery's
    started = time.monotonic()
    try:
        # urllib3 retries an idempotent GET that timed out; the retry is answered at once.
        assert await cluster.get(*CM, "c", "default") is None
    finally:
        await cluster.close()
    assert stall.hits == 1
    assert time.monotonic() - started < 2.5  # cut at the client timeout, not after the 3s stall
