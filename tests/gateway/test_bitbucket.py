"""Bitbucket Cloud and Bitbucket Server deliveries: signatures, events, identity, data shape.

The pure provider functions are tested table by table; the routes run on real listeners that
publish to a real nats-server, and assertions read the stream back. `running` and `Served` are
shared with the Gitea tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import bitbucket
from gateway.bus import Bus
from gateway.envelope import MASK, CloudEvent
from gateway.errors import RequestRejected
from gateway.metrics import Metrics
from gateway.models import BitbucketEventSource, BitbucketServerEventSource
from gateway.server import Gateway, build_routes
from gateway.webhook import Accepted
from hookgate.embedded import NatsServer
from hookgate.manifests import load
from tests.conftest import free_port
from tests.gateway.test_listener import secret_lookup, stored
from tests.gateway.test_webhook import assert_same_json, incoming

SECRET = "bitbucket-secret-for-tests"
CLOUD_PUSH = json.dumps({
    "push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": "709d658dc5b6"}}}]},
    "repository": {"full_name": "team/app", "uuid": "{f0e0}"}, "actor": {"display_name": "Ann"},
    "size": 12345678901234567890,
}).encode()
SERVER_REFS_CHANGED = json.dumps({
    "eventKey": "repo:refs_changed", "date": "2024-01-01T00:00:00+0000",
    "repository": {"slug": "app", "project": {"key": "PRJ"}},
    "changes": [{"ref": {"id": "refs/heads/main", "type": "BRANCH"}, "type": "UPDATE", "toHash": "a1b2"}],
}).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def cloud_spec(**fields: Any) -> BitbucketEventSource:
    return BitbucketEventSource.model_validate({"webhook": {"endpoint": "/bb", "port": "12000"}, **fields})


def server_spec(**fields: Any) -> BitbucketServerEventSource:
    return BitbucketServerEventSource.model_validate({"webhook": {"endpoint": "/bbs", "port": "12000"}, **fields})


def cloud_headers(body: bytes, *, event: str = "repo:push", uuid: str | None = "req-uuid-1",
                  signature: str | None = "sign") -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/json"), ("User-Agent", "Bitbucket-Webhooks/2.0"),
               ("X-Event-Key", event), ("X-Hook-UUID", "hook-uuid"), ("X-Attempt-Number", "1")]
    if uuid is not None:
        headers.append(("X-Request-UUID", uuid))
    if signature is not None:
        headers.append(("X-Hub-Signature", sign(body) if signature == "sign" else signature))
    return headers


def server_headers(body: bytes, *, event: str = "repo:refs_changed", request_id: str | None = "req-id-1",
                   signature: str | None = "sign") -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/json; charset=utf-8"), ("X-Event-Key", event)]
    if request_id is not None:
        headers.append(("X-Request-Id", request_id))
    if signature is not None:
        headers.append(("X-Hub-Signature", sign(body) if signature == "sign" else signature))
    return headers


def cloud(body: bytes = CLOUD_PUSH, *, secret: str | None = SECRET, **kw: Any) -> Accepted:
    fields = kw.pop("fields", {})
    return bitbucket.accept(cloud_spec(**fields), incoming(path="/bb", headers=cloud_headers(body, **kw), body=body),
                            secret=secret)


def server(body: bytes = SERVER_REFS_CHANGED, *, secret: str | None = SECRET, **kw: Any) -> Accepted:
    fields = kw.pop("fields", {})
    return bitbucket.accept_server(server_spec(**fields),
                                   incoming(path="/bbs", headers=server_headers(body, **kw), body=body), secret=secret)


def rejected(call: Any, *args: Any, **kw: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as err:
        call(*args, **kw)
    return err.value


# --- signatures -----------------------------------------------------------------------------------


def bare_hex(body: bytes) -> str:
    return sign(body).removeprefix("sha256=")


@pytest.mark.parametrize("accept", [pytest.param(cloud, id="cloud"), pytest.param(server, id="server")])
@pytest.mark.parametrize(("signature", "status"), [
    pytest.param(sign, None, id="valid-sha256"),
    pytest.param(lambda b: "sha256=" + bare_hex(b).upper(), None, id="upper-case-hex"),
    pytest.param(lambda b: None, 401, id="missing"),
    pytest.param(lambda b: "", 401, id="empty"),
    pytest.param(lambda b: "sha256=" + "0" * 64, 403, id="wrong-digest"),
    pytest.param(lambda b: sign(b, "another-secret"), 403, id="another-secret"),
    pytest.param(lambda b: "sha1=" + hmac.new(SECRET.encode(), b, hashlib.sha1).hexdigest(), 403,
                 id="sha1-refused"),
    pytest.param(bare_hex, 403, id="bare-hex-refused"),
    pytest.param(lambda b: "sha256=", 403, id="prefix-without-digest"),
    pytest.param(lambda b: "sha256=zz", 403, id="not-hex"),
])
def test_the_x_hub_signature_is_checked_when_a_secret_is_set(accept: Any, signature: Any,
                                                             status: int | None) -> None:
    body = CLOUD_PUSH if accept is cloud else SERVER_REFS_CHANGED
    if status is None:
        assert accept(body, signature=signature(body)).publish is True
    else:
        assert rejected(accept, body, signature=signature(body)).status == status


@pytest.mark.parametrize("accept", [pytest.param(cloud, id="cloud"), pytest.param(server, id="server")])
def test_the_signature_covers_the_raw_bytes(accept: Any) -> None:
    body = CLOUD_PUSH if accept is cloud else SERVER_REFS_CHANGED
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    assert rejected(accept, reformatted, signature=sign(body)).status == 403


@pytest.mark.parametrize("accept", [pytest.param(cloud, id="cloud"), pytest.param(server, id="server")])
def test_without_a_secret_no_signature_is_needed(accept: Any) -> None:
    assert accept(secret=None, signature=None).publish is True


# --- events, identity, body -----------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "events", "event", "publish"), [
    pytest.param(cloud, [], "repo:push", True, id="cloud-no-events-means-all"),
    pytest.param(cloud, ["repo:push"], "repo:push", True, id="cloud-listed"),
    pytest.param(cloud, ["pullrequest:created"], "repo:push", False, id="cloud-not-listed"),
    pytest.param(cloud, ["*"], "issue:created", True, id="cloud-star"),
    pytest.param(server, ["repo:refs_changed"], "repo:refs_changed", True, id="server-listed"),
    pytest.param(server, ["pr:opened"], "repo:refs_changed", False, id="server-not-listed"),
    pytest.param(server, [], bitbucket.PING, False, id="server-test-connection-not-published-by-default"),
    pytest.param(server, [bitbucket.PING], bitbucket.PING, True, id="server-test-connection-when-listed"),
    pytest.param(server, ["*"], bitbucket.PING, True, id="server-test-connection-with-star"),
])
def test_events_are_enforced_on_receipt(accept: Any, events: list[str], event: str, publish: bool) -> None:
    result = accept(event=event, fields={"events": events})
    assert result.publish is publish
    if not publish:
        assert event in result.note
        assert result.data == {}


@pytest.mark.parametrize(("accept", "kw", "expected"), [
    pytest.param(cloud, {"uuid": "u-123"}, "u-123", id="cloud-X-Request-UUID"),
    pytest.param(server, {"request_id": "r-456"}, "r-456", id="server-X-Request-Id"),
])
def test_the_delivery_id_is_the_request_header(accept: Any, kw: dict[str, str], expected: str) -> None:
    assert accept(**kw).event_id == expected


@pytest.mark.parametrize("accept", [pytest.param(cloud, id="cloud"), pytest.param(server, id="server")])
def test_without_a_delivery_id_the_id_is_a_content_hash(accept: Any) -> None:
    none = {"uuid": None} if accept is cloud else {"request_id": None}
    first, again = accept(**none), accept(**none)
    assert first.event_id.startswith("sha256-")
    assert first.event_id == again.event_id
    assert accept(**none, event="repo:other", fields={"events": []}).event_id != first.event_id


@pytest.mark.parametrize("accept", [pytest.param(cloud, id="cloud"), pytest.param(server, id="server")])
def test_the_data_is_argos_plural_headers_and_body_with_secrets_masked(accept: Any) -> None:
    body = CLOUD_PUSH if accept is cloud else SERVER_REFS_CHANGED
    result = accept(fields={"metadata": {"team": "platform"}})
    assert list(result.data) == ["headers", "body", "metadata"]
    assert result.data["headers"]["X-Event-Key"] == ["repo:push" if accept is cloud else "repo:refs_changed"]
    assert result.data["headers"]["X-Hub-Signature"] == [MASK]
    assert_same_json(result.data["body"], json.loads(body))
    assert result.data["metadata"] == {"team": "platform"}
    assert SECRET not in json.dumps(result.data)


def test_without_metadata_there_is_no_metadata_key() -> None:
    assert list(cloud().data) == ["headers", "body"]


@pytest.mark.parametrize(("accept", "headers", "body", "status", "reason"), [
    pytest.param(bitbucket.accept, [("X-Event-Key", "repo:push")], b"{not json", 400, "not valid JSON",
                 id="cloud-invalid-json"),
    pytest.param(bitbucket.accept_server, [("X-Event-Key", "repo:refs_changed")], b"", 400, "not valid JSON",
                 id="server-empty-body"),
    pytest.param(bitbucket.accept, [], b"{}", 400, "X-Event-Key", id="cloud-no-event-header"),
])
def test_a_request_that_cannot_be_read_is_400(accept: Any, headers: list[tuple[str, str]], body: bytes,
                                              status: int, reason: str) -> None:
    spec = cloud_spec() if accept is bitbucket.accept else server_spec()
    err = rejected(accept, spec, incoming(headers=headers, body=body), secret=None)
    assert (err.status, reason in err.reason) == (status, True)


def test_a_json_body_that_is_not_an_object_is_kept_as_json() -> None:
    assert cloud(b"[1, 2]").data["body"] == [1, 2]


# --- manifests ------------------------------------------------------------------------------------


def test_argos_bitbucket_fields_load_with_hookgates_webhook_secret() -> None:
    spec = cloud_spec(auth={"basic": {"username": {"name": "s", "key": "u"}, "password": {"name": "s", "key": "p"}}},
                      owner="o", projectKey="P", repositorySlug="r",
                      repositories=[{"owner": "o", "repositorySlug": "r2"}], events=["repo:push"],
                      deleteHookOnFinish=True, metadata={"a": "b"}, filter={"expression": "true"},
                      webhookSecret={"name": "s", "key": "secret"})
    assert spec.webhookSecret is not None and spec.webhookSecret.key == "secret"
    assert spec.wants_hook_registration() is False  # no webhook.url


def test_argos_bitbucketserver_fields_load() -> None:
    spec = server_spec(projectKey="P", repositorySlug="r", projects=["P2"],
                       repositories=[{"projectKey": "P", "repositorySlug": "r"}], events=["repo:refs_changed"],
                       skipBranchRefsChangedOnOpenPR=False, oneEventPerChange=False,
                       accessToken={"name": "s", "key": "t"}, webhookSecret={"name": "s", "key": "w"},
                       bitbucketserverBaseURL="https://bb.example/rest", deleteHookOnFinish=True,
                       metadata={"a": "b"}, filter={"expression": "true"}, checkInterval="1m",
                       tls={"caCertSecret": {"name": "s", "key": "ca"}, "insecureSkipVerify": False})
    assert spec.repositories[0].projectKey == "P"


@pytest.mark.parametrize("field", ["skipBranchRefsChangedOnOpenPR", "oneEventPerChange"])
def test_bitbucketserver_options_hookgate_does_not_implement_are_refused_when_on(field: str) -> None:
    with pytest.raises(ValueError, match="not supported by hookgate"):
        server_spec(**{field: True})


# --- on real listeners, into a real stream --------------------------------------------------------


@dataclass
class Served:
    nats: NatsServer
    http: aiohttp.ClientSession
    port: int

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | list[tuple[str, str]]
                   ) -> tuple[int, str]:
        async with self.http.post(f"http://127.0.0.1:{self.port}{path}", data=body, headers=list(
                headers.items()) if isinstance(headers, Mapping) else headers) as resp:
            return resp.status, await resp.text()

    async def events(self) -> list[CloudEvent]:
        return [CloudEvent.from_json(m.data or b"") for m in await stored(self.nats.url)]


@asynccontextmanager
async def running(nats_server: NatsServer, tmp_path: Path, manifests: str) -> AsyncIterator[Served]:
    """`manifests` (with `{port}` for the listener port) loaded as `hookgate` loads them, then served."""
    port = free_port()
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(manifests.replace("{port}", str(port)))
    bundle = load([folder])
    bus = Bus(nats_server.url)
    await bus.connect()
    try:
        await bus.ensure_stream()
        routes = build_routes(bundle.eventsources, bus=bus, secret=secret_lookup(bundle))
        gateway = Gateway(routes, bus=bus, metrics=Metrics(), ready=lambda: True)
        await gateway.start("127.0.0.1")
        try:
            async with aiohttp.ClientSession() as http:
                yield Served(nats=nats_server, http=http, port=port)
        finally:
            await gateway.stop()
    finally:
        await bus.close()


MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: bb
data:
  secret: {base64.b64encode(SECRET.encode()).decode()}
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: bitbucket-es
spec:
  bitbucket:
    push:
      repositories:
        - owner: team
          repositorySlug: app
      events: [repo:push]
      webhook:
        endpoint: /bitbucket
        port: "{{port}}"
        method: POST
      webhookSecret:
        name: bb
        key: secret
      metadata:
        team: platform
  bitbucketserver:
    refs:
      repositories:
        - projectKey: PRJ
          repositorySlug: app
      events: [repo:refs_changed]
      webhook:
        endpoint: /bitbucketserver
        port: "{{port}}"
        method: POST
      webhookSecret:
        name: bb
        key: secret
      bitbucketserverBaseURL: https://bitbucket.example.com/rest
"""


@pytest.fixture
async def served(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Served]:
    async with running(nats_server, tmp_path, MANIFESTS) as s:
        yield s


async def test_a_signed_cloud_push_is_stored_once_as_a_bitbucket_cloudevent(served: Served) -> None:
    headers = cloud_headers(CLOUD_PUSH, uuid="cloud-delivery-1")
    first = await served.post("/bitbucket", CLOUD_PUSH, headers)
    again = await served.post("/bitbucket", CLOUD_PUSH, headers)
    assert (first[0], again[0]) == (200, 200)
    assert "duplicate" in again[1]
    (msg,) = await stored(served.nats.url)
    assert msg.subject == "hookgate.default.bitbucket-es.push"
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "default/bitbucket-es/push/cloud-delivery-1"
    event = CloudEvent.from_json(msg.data or b"")
    assert (event.id, event.source, event.subject, event.type) == ("cloud-delivery-1", "bitbucket-es", "push",
                                                                     "bitbucket")
    assert event.data["headers"]["X-Hub-Signature"] == [MASK]
    assert event.data["headers"]["X-Request-Uuid"] == ["cloud-delivery-1"]
    assert event.data["metadata"] == {"team": "platform"}
    assert_same_json(event.data["body"], json.loads(CLOUD_PUSH))


async def test_a_signed_server_refs_changed_is_stored_as_a_bitbucketserver_cloudevent(served: Served) -> None:
    status, _ = await served.post("/bitbucketserver", SERVER_REFS_CHANGED,
                                  server_headers(SERVER_REFS_CHANGED, request_id="srv-1"))
    assert status == 200
    (event,) = await served.events()
    assert (event.id, event.source, event.subject, event.type) == ("srv-1", "bitbucket-es", "refs",
                                                                     "bitbucketserver")
    assert list(event.data) == ["headers", "body"]
    assert event.data["headers"]["X-Event-Key"] == ["repo:refs_changed"]
    assert_same_json(event.data["body"], json.loads(SERVER_REFS_CHANGED))


@pytest.mark.parametrize(("path", "headers", "status"), [
    pytest.param("/bitbucket", cloud_headers(CLOUD_PUSH, signature=None), 401, id="cloud-unsigned"),
    pytest.param("/bitbucket", cloud_headers(CLOUD_PUSH, signature=sign(CLOUD_PUSH, "other")), 403,
                 id="cloud-wrong-secret"),
    pytest.param("/bitbucketserver", server_headers(CLOUD_PUSH, signature=sign(b"x")), 403, id="server-bad"),
    pytest.param("/bitbucketserver", server_headers(CLOUD_PUSH, event=bitbucket.PING), 200, id="server-ping"),
    pytest.param("/bitbucket", cloud_headers(CLOUD_PUSH, event="repo:fork"), 200, id="cloud-not-in-events"),
])
async def test_refused_or_unwanted_deliveries_are_not_stored(served: Served, path: str,
                                                            headers: list[tuple[str, str]], status: int) -> None:
    assert (await served.post(path, CLOUD_PUSH, headers))[0] == status
    assert await stored(served.nats.url) == []


async def test_an_unsigned_body_that_is_not_json_is_refused_before_parsing(served: Served) -> None:
    assert (await served.post("/bitbucket", b"{not json", cloud_headers(b"", signature=None)))[0] == 401
    assert (await served.post("/bitbucket", b"{not json", cloud_headers(b"{not json")))[0] == 400
    assert await stored(served.nats.url) == []
