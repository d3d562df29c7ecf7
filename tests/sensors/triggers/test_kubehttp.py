"""Argo's kinds over aiohttp (sensors/kubehttp.py): TLS, credentials and the fallback, as a real client sees them.

The API server here is a small aiohttp app, not the emulator, because these tests are about the
connection itself (certificates, tokens), which the emulator does not serve over TLS.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from sensors import kubehttp
from sensors.kube import AlreadyExists, KubeCluster
from sensors.triggers import PermanentError, TemporaryError
from tests.conftest import serving, until
from tests.sensors.triggers import kubeconfig, workflow

WORKFLOWS = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows"


class Api:
    """Workflows by name; every request's headers and client certificate; tokens it refuses."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.seen: list[dict[str, Any]] = []
        self.refused_tokens: set[str] = set()
        self.delay = 0.0  # a slow API server: each create answers after this many seconds
        self.app = web.Application()
        self.app.router.add_post(WORKFLOWS, self.create)
        self.app.router.add_get(WORKFLOWS + "/{name}", self.get)

    def _refuse(self, request: web.Request) -> web.Response | None:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        self.seen.append({"headers": dict(request.headers), "peer": peer})
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.refused_tokens:
            return web.json_response({"kind": "Status", "code": 401, "message": "Unauthorized"}, status=401)
        return None

    async def create(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        refused = self._refuse(request)
        if refused is not None:
            return refused
        obj = await request.json()
        name = obj["metadata"]["name"]
        if name in self.objects:
            return web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists",
                                      "message": f'workflows.argoproj.io "{name}" already exists'}, status=409)
        obj["metadata"].update(uid=f"u{len(self.objects)}", namespace=request.match_info["ns"])
        self.objects[name] = obj
        return web.json_response(obj, status=201)

    async def get(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        obj = self.objects.get(request.match_info["name"])
        if obj is None:
            return web.json_response({"kind": "Status", "code": 404, "message": "not found"}, status=404)
        return web.json_response(obj)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, *, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if client_ca is not None:  # mutual TLS: no client certificate, no connection
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
async def cluster_over(tmp_path: Path) -> AsyncIterator[Any]:
    """`open(server, cluster=..., user=...)` → a KubeCluster for that kubeconfig, closed afterwards."""
    opened: list[KubeCluster] = []

    def open_(server: str, *, timeout: float = 5.0, workers: int = 8, **config: Any) -> KubeCluster:
        path = kubeconfig(tmp_path / f"kubeconfig-{len(opened)}", server, **config)
        opened.append(KubeCluster(kubeconfig=path, timeout=timeout, workers=workers))
        return opened[-1]

    yield open_
    for cluster in opened:
        await cluster.close()


# --- TLS ------------------------------------------------------------------------------------------


async def test_the_cluster_ca_is_trusted_and_the_request_goes_over_aiohttp(ca: trustme.CA, cluster_over: Any) -> None:
    api = Api()
    async with serving(api.app, ssl_context=server_tls(ca)) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}",
                               cluster={"certificate-authority-data": b64(ca.cert_pem.bytes())},
                               user={"token": "s3cret"})
        assert cluster._http is not None  # the configuration is one kubehttp reproduces
        created = await cluster.create(workflow("w"), "team-a")
        assert await cluster.get("argoproj.io/v1alpha1", "Workflow", "w", "team-a") == created
    assert created["metadata"] == {"name": "w", "uid": "u0", "namespace": "team-a"}
    headers = api.seen[0]["headers"]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["User-Agent"].startswith("OpenAPI-Generator/")
    assert headers["Content-Type"] == headers["Accept"] == "application/json"


async def test_a_server_certificate_from_another_ca_is_refused(ca: trustme.CA, cluster_over: Any) -> None:
    api = Api()
    async with serving(api.app, ssl_context=server_tls(trustme.CA())) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}",
                               cluster={"certificate-authority-data": b64(ca.cert_pem.bytes())})
        assert cluster._http is not None
        with pytest.raises(TemporaryError, match=r"Kubernetes API unreachable: .*[Cc]ertificate"):
            await cluster.create(workflow("w"), "default")
    assert api.seen == [] and api.objects == {}


async def test_insecure_skip_tls_verify_is_honoured(cluster_over: Any) -> None:
    api = Api()
    async with serving(api.app, ssl_context=server_tls(trustme.CA())) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}", cluster={"insecure-skip-tls-verify": True})
        assert cluster._http is not None
        await cluster.create(workflow("w"), "default")
    assert list(api.objects) == ["w"]


async def test_the_client_certificate_is_presented(ca: trustme.CA, cluster_over: Any) -> None:
    api = Api()
    client = ca.issue_cert("hookgate-sensor@example.com")
    async with serving(api.app, ssl_context=server_tls(ca, client_ca=ca)) as port:
        server = f"https://127.0.0.1:{port}"
        trusted = {"certificate-authority-data": b64(ca.cert_pem.bytes())}
        with_cert = cluster_over(server, cluster=trusted, user={
            "client-certificate-data": b64(client.cert_chain_pems[0].bytes()),
            "client-key-data": b64(client.private_key_pem.bytes())})
        assert with_cert._http is not None
        await with_cert.create(workflow("w"), "default")
        without = cluster_over(server, cluster=trusted)
        with pytest.raises(TemporaryError, match="unreachable"):
            await without.create(workflow("x"), "default")
    assert list(api.objects) == ["w"]
    assert api.seen[0]["peer"]["subjectAltName"] == (("email", "hookgate-sensor@example.com"),)


async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, cluster_over: Any) -> None:
    api = Api()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.cluster.internal").configure_cert(context)  # trusted, but not for 127.0.0.1
    async with serving(api.app, ssl_context=context) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}",
                               cluster={"certificate-authority-data": b64(ca.cert_pem.bytes())})
        assert cluster._http is not None
        with pytest.raises(TemporaryError, match=r"unreachable: .*(hostname|IP address mismatch)"):
            await cluster.create(workflow("w"), "default")
    assert api.seen == []


async def test_a_rotated_ca_file_is_read_again(ca: trustme.CA, tmp_path: Path, cluster_over: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA file is read again once changed (a rotated in-cluster ca.crt), as urllib3 does."""
    monkeypatch.setattr(kubehttp, "SETTINGS_TTL", 0.0)  # every request reads the settings again
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem.bytes())
    api, new_ca = Api(), trustme.CA()
    async with serving(api.app, ssl_context=server_tls(ca)) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}", cluster={"certificate-authority": str(ca_file)})
        await cluster.create(workflow("a"), "default")
    ca_file.write_bytes(new_ca.cert_pem.bytes())
    rotated = Api()  # the same API, restarted with a certificate from the new CA
    async with serving(rotated.app, ssl_context=server_tls(new_ca), port=port):
        await cluster.create(workflow("b"), "default")
    assert list(api.objects) == ["a"] and list(rotated.objects) == ["b"]


async def test_waiting_for_a_connection_is_not_part_of_the_timeout(cluster_over: Any) -> None:
    """As in the thread pool: `workers` requests at once, each timed from when it is sent."""
    api = Api()
    api.delay = 0.3
    async with serving(api.app) as port:
        cluster = cluster_over(f"http://127.0.0.1:{port}", timeout=0.5, workers=2)
        await asyncio.gather(*(cluster.create(workflow(f"w{i}"), "default") for i in range(6)))  # 3 rounds: 0.9 s
    assert sorted(api.objects) == [f"w{i}" for i in range(6)]


async def test_a_slow_api_is_temporary_and_says_how_long_it_waited(cluster_over: Any) -> None:
    api = Api()
    api.delay = 1.0
    async with serving(api.app) as port:
        cluster = cluster_over(f"http://127.0.0.1:{port}", timeout=0.2)
        with pytest.raises(TemporaryError, match=r"unreachable: no answer within 0\.2 s"):
            await cluster.create(workflow("w"), "default")


async def test_tls_server_name_goes_through_the_clients_own_pool(ca: trustme.CA, cluster_over: Any,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A setting kubehttp does not reproduce: the generated API in the pool threads, same answers."""
    caplog.set_level("INFO", logger="sensors.kube")
    api = Api()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.cluster.internal").configure_cert(context)  # not the address dialled
    async with serving(api.app, ssl_context=context) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}", cluster={
            "certificate-authority-data": b64(ca.cert_pem.bytes()), "tls-server-name": "api.cluster.internal"})
        assert cluster._http is None
        assert "because of the kubeconfig's tls_server_name" in caplog.text
        await cluster.create(workflow("w", entrypoint="a"), "default")
        with pytest.raises(AlreadyExists) as e:
            await cluster.create(workflow("w", entrypoint="b"), "default")
    assert e.value.existing["spec"] == {"entrypoint": "a"}


def test_what_kubehttp_leaves_to_the_client(tmp_path: Path) -> None:
    from kubernetes import config

    def reason(**cluster: Any) -> str | None:
        path = kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443", cluster=cluster)
        return kubehttp.unsupported(config.new_client_from_config(config_file=path))

    assert reason() is None
    assert reason(**{"insecure-skip-tls-verify": True}) is None
    assert reason(**{"proxy-url": "http://127.0.0.1:3128"}) == "a proxy"
    assert reason(**{"tls-server-name": "api"}) == "tls_server_name"


# --- credentials ---------------------------------------------------------------------------------


def exec_plugin(tmp_path: Path, *, slow_run: int = 0) -> dict[str, Any]:
    """An exec credential plugin whose every run issues the next token, already expired, so that the
    client's refresh hook runs it again whenever asked. Run number `slow_run` takes half a second."""
    counter = tmp_path / "issued"
    counter.write_text("0")
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1; p.write_text(str(n))\n"
        f"if n == {slow_run}: import time; time.sleep(0.5)\n"
        "json.dump({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential',\n"
        "           'status': {'token': f't{n}', 'expirationTimestamp': '2000-01-01T00:00:00Z'}}, sys.stdout)\n")
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": [str(script)]}}


def tokens(api: Api) -> list[str]:
    return [s["headers"]["Authorization"] for s in api.seen]


async def test_a_token_is_reused_then_read_again_when_refused(tmp_path: Path, cluster_over: Any) -> None:
    api = Api()
    async with serving(api.app) as port:
        cluster = cluster_over(f"http://127.0.0.1:{port}", user=exec_plugin(tmp_path))  # loading runs it: t1
        await cluster.create(workflow("a"), "default")  # the hook runs the expired plugin again: t2
        await cluster.create(workflow("b"), "default")  # within SETTINGS_TTL: t2, no plugin run
        api.refused_tokens.add("t2")  # revoked: the next request is refused once, then sent with t3
        await cluster.create(workflow("c"), "default")
        api.refused_tokens.add("t3")
        api.refused_tokens.add("t4")  # still refused after the fresh read: the caller is told
        with pytest.raises(PermanentError, match="create Workflow default/d: Kubernetes API answered 401"):
            await cluster.create(workflow("d"), "default")
    assert tokens(api) == ["Bearer t2", "Bearer t2", "Bearer t2", "Bearer t3", "Bearer t3", "Bearer t4"]
    assert sorted(api.objects) == ["a", "b", "c"]
    assert (tmp_path / "issued").read_text() == "4"


async def test_a_failed_read_that_nobody_waited_for_is_not_handed_on(ca: trustme.CA, tmp_path: Path,
                                                                    cluster_over: Any) -> None:
    """The first request is cancelled while its settings are read, and that read then fails (the CA
    file is gone): the next request reads them again instead of getting that failure."""
    plugin = exec_plugin(tmp_path, slow_run=2)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem.bytes())
    api = Api()
    async with serving(api.app, ssl_context=server_tls(ca)) as port:
        cluster = cluster_over(f"https://127.0.0.1:{port}", cluster={"certificate-authority": str(ca_file)},
                               user=plugin)  # the plugin's run 1: at load
        first = asyncio.ensure_future(cluster.create(workflow("a"), "default"))  # run 2, slow
        await until(lambda: (tmp_path / "issued").read_text() == "2", what="the plugin's second run")
        ca_file.unlink()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await until(lambda: cluster._http._reading is None, what="the orphaned read to end")  # the CA read failed
        ca_file.write_bytes(ca.cert_pem.bytes())
        await cluster.create(workflow("b"), "default")  # run 3
    assert list(api.objects) == ["b"]
    assert tokens(api) == ["Bearer t3"]


async def test_concurrent_requests_share_one_credential_read(tmp_path: Path, cluster_over: Any) -> None:
    api = Api()
    async with serving(api.app) as port:
        cluster = cluster_over(f"http://127.0.0.1:{port}", user=exec_plugin(tmp_path))
        await asyncio.gather(*(cluster.create(workflow(f"w{i}"), "default") for i in range(8)))
    assert set(tokens(api)) == {"Bearer t2"}
    assert (tmp_path / "issued").read_text() == "2"
    assert sorted(api.objects) == sorted(f"w{i}" for i in range(8))
