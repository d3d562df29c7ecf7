"""Real listeners on free ports, publishing to a real nats-server: the HTTP contract end to end.

Stream contents are read back over a separate NATS connection, so every assertion is about what
JetStream stored, not about what the gateway believes it sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.js.api import RawStreamMsg

from gateway import logs
from gateway.bus import Bus
from gateway.envelope import MASK, CloudEvent
from gateway.errors import ManifestError
from gateway.metrics import Metrics
from gateway.models import EventSource, SecretKeySelector
from gateway.server import Gateway, build_routes
from hookgate.app import secret_lookup
from hookgate.embedded import NatsServer
from hookgate.manifests import load, parse_document
from tests.conftest import fixture_bytes, free_port, github_signature, until
from tests.gateway.test_webhook import assert_same_json

STREAM = "HOOKGATE"
GITLAB_TOKEN = "gitlab-token-for-tests"
GITHUB_SECRET = "github-secret-for-tests"
SMALL_LIMIT = 2048

MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata:
  name: hook-secrets
stringData:
  gitlab: {gitlab_token}
data:
  github: {github_secret_b64}
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: gitlab-es
spec:
  gitlab:
    mr:
      webhook:
        endpoint: /gitlab
        port: "{shared_port}"
        method: POST
      events: [MergeRequestsEvents]
      secretToken:
        name: hook-secrets
        key: gitlab
      metadata:
        team: platform
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: github-es
spec:
  github:
    push:
      repositories:
        - owner: example
          names: [app]
      webhook:
        endpoint: /github
        port: "{shared_port}"
        method: POST
      events: [push]
      webhookSecret:
        name: hook-secrets
        key: github
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: plain
spec:
  webhook:
    small:
      endpoint: /small
      port: "{webhook_port}"
      method: POST
      maxPayloadSize: {small_limit}
    large:
      endpoint: /large
      port: "{webhook_port}"
      method: POST
"""


class ReadyFlag:
    def __init__(self) -> None:
        self.value = True

    def __call__(self) -> bool:
        return self.value


@dataclass
class Stack:
    nats: NatsServer
    bus: Bus
    gateway: Gateway
    metrics: Metrics
    ready: ReadyFlag
    http: aiohttp.ClientSession
    shared_port: int
    webhook_port: int

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.shared_port}{path}"

    async def post(self, path: str, body: bytes, headers: Mapping[str, str], *, port: int | None = None
                   ) -> tuple[int, str]:
        async with self.http.post(self.url(path, port), data=body, headers=dict(headers)) as resp:
            return resp.status, await resp.text()


async def stored(url: str) -> list[RawStreamMsg]:
    """Every message of the stream, read over a connection of its own."""
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(STREAM)).state
        if not state.messages:
            return []
        return [await js.get_msg(STREAM, seq=seq) for seq in range(state.first_seq, state.last_seq + 1)]
    finally:
        await nc.close()


def gitlab_headers(*, token: str = GITLAB_TOKEN, key: str = "idem-key-1",
                   event: str = "Merge Request Hook") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Token": token,
            "X-Gitlab-Event-UUID": "uuid-for-tests", "Idempotency-Key": key}


def github_headers(body: bytes, *, event: str = "push", delivery: str = "gh-delivery-1") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": github_signature(GITHUB_SECRET, body)}


def write_manifests(folder: Path, *, shared_port: int, webhook_port: int) -> None:
    folder.mkdir()
    text = MANIFESTS.format(gitlab_token=GITLAB_TOKEN, shared_port=shared_port, webhook_port=webhook_port,
                            github_secret_b64=base64.b64encode(GITHUB_SECRET.encode()).decode(),
                            small_limit=SMALL_LIMIT)
    (folder / "all.yaml").write_text(text)


@pytest.fixture
async def stack(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Stack]:
    shared_port, webhook_port = free_port(), free_port()
    while webhook_port == shared_port:
        webhook_port = free_port()
    write_manifests(tmp_path / "manifests", shared_port=shared_port, webhook_port=webhook_port)
    bundle = load([tmp_path / "manifests"])
    bus = Bus(nats_server.url)
    await bus.connect()
    try:
        await bus.ensure_stream()
        routes = build_routes(bundle.eventsources, bus=bus, secret=secret_lookup(bundle))
        metrics, ready = Metrics(), ReadyFlag()
        gateway = Gateway(routes, bus=bus, metrics=metrics, ready=ready)
        await gateway.start("127.0.0.1")
        try:
            async with aiohttp.ClientSession() as http:
                yield Stack(nats=nats_server, bus=bus, gateway=gateway, metrics=metrics, ready=ready, http=http,
                            shared_port=shared_port, webhook_port=webhook_port)
        finally:
            await gateway.stop()
    finally:
        await bus.close()


# --- the happy path -------------------------------------------------------------------------------


async def test_a_signed_gitlab_merge_request_is_answered_200_and_stored_once_as_a_cloudevent(stack: Stack) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    status, _ = await stack.post("/gitlab", raw, gitlab_headers(key="mr-open-1"))
    assert status == 200
    # 200 means acknowledged by JetStream: the message is there now, without waiting.
    messages = await stored(stack.nats.url)
    assert len(messages) == 1
    msg = messages[0]
    assert msg.subject == "hookgate.default.gitlab-es.mr"
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "default/gitlab-es/mr/mr-open-1"
    assert msg.data is not None
    event = CloudEvent.from_json(msg.data)
    assert (event.id, event.source, event.subject, event.type) == ("mr-open-1", "gitlab-es", "mr", "gitlab")
    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"
    assert list(event.data) == ["headers", "body", "metadata"]
    assert event.data["headers"]["X-Gitlab-Event"] == ["Merge Request Hook"]
    assert event.data["headers"]["Idempotency-Key"] == ["mr-open-1"]
    assert event.data["headers"]["X-Gitlab-Token"] == [MASK]
    assert event.data["metadata"] == {"team": "platform"}
    assert_same_json(event.data["body"], json.loads(raw))
    assert GITLAB_TOKEN.encode() not in msg.data


async def test_the_same_delivery_twice_is_stored_once(stack: Stack) -> None:
    raw = fixture_bytes("gitlab", "merge_request.update.json")
    first = await stack.post("/gitlab", raw, gitlab_headers(key="same-key"))
    second = await stack.post("/gitlab", raw, gitlab_headers(key="same-key"))
    assert first[0] == second[0] == 200
    assert "duplicate" in second[1]
    assert len(await stored(stack.nats.url)) == 1


async def test_two_event_sources_on_one_port_with_different_endpoints_are_both_served(stack: Stack) -> None:
    mr = fixture_bytes("gitlab", "merge_request.merge.json")
    push = fixture_bytes("github", "push.1.json")
    assert (await stack.post("/gitlab", mr, gitlab_headers(key="mr-merge")))[0] == 200
    assert (await stack.post("/github", push, github_headers(push, delivery="gh-push-1")))[0] == 200
    messages = {m.subject: m for m in await stored(stack.nats.url)}
    assert set(messages) == {"hookgate.default.gitlab-es.mr", "hookgate.default.github-es.push"}
    github_data = messages["hookgate.default.github-es.push"].data
    assert github_data is not None
    event = CloudEvent.from_json(github_data)
    assert (event.id, event.source, event.subject, event.type) == ("gh-push-1", "github-es", "push", "github")
    assert event.data["headers"]["X-Github-Event"] == ["push"]
    assert event.data["headers"]["X-Hub-Signature-256"] == [MASK]
    assert_same_json(event.data["body"], {**json.loads(push), "X-GitHub-Event": "push",
                                          "X-GitHub-Delivery": "gh-push-1"})


async def test_a_github_ping_is_answered_200_and_not_published_when_events_omit_it(stack: Stack) -> None:
    ping = fixture_bytes("github", "ping.1.json")
    status, text = await stack.post("/github", ping, github_headers(ping, event="ping", delivery="gh-ping"))
    assert status == 200
    assert "not published" in text
    assert await stored(stack.nats.url) == []


async def test_a_gitlab_event_not_in_events_is_answered_200_and_not_published(stack: Stack) -> None:
    push = fixture_bytes("gitlab", "push.json")
    status, _ = await stack.post("/gitlab", push, gitlab_headers(event="Push Hook"))
    assert status == 200
    assert await stored(stack.nats.url) == []


async def test_a_generic_webhook_post_is_stored_with_the_singular_header_key(stack: Stack) -> None:
    status, _ = await stack.post("/large", b'{"n": 12345678901234567890}',
                                 {"Idempotency-Key": "req-1", "X-Request-Id": "trace-1"}, port=stack.webhook_port)
    assert status == 200
    (msg,) = await stored(stack.nats.url)
    assert msg.subject == "hookgate.default.plain.large"
    assert msg.data is not None
    event = CloudEvent.from_json(msg.data)
    assert (event.id, event.type) == ("req-1", "webhook")
    assert set(event.data) == {"header", "body"}
    assert event.data["header"]["X-Request-Id"] == ["trace-1"]
    assert_same_json(event.data["body"], {"n": 12345678901234567890})


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param(gitlab_headers(token="wrong-token"), 403, id="wrong-token"),
    pytest.param({k: v for k, v in gitlab_headers().items() if k != "X-Gitlab-Token"}, 401, id="missing-token"),
])
async def test_a_gitlab_delivery_with_a_bad_token_is_refused_and_nothing_is_stored(
        stack: Stack, headers: dict[str, str], status: int) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    assert (await stack.post("/gitlab", raw, headers))[0] == status
    assert await stored(stack.nats.url) == []


async def test_a_github_delivery_with_a_bad_signature_is_refused_with_403(stack: Stack) -> None:
    push = fixture_bytes("github", "push.1.json")
    headers = {**github_headers(push), "X-Hub-Signature-256": github_signature("not the secret", push)}
    assert (await stack.post("/github", push, headers))[0] == 403
    assert await stored(stack.nats.url) == []


async def test_a_wrong_method_is_answered_405(stack: Stack) -> None:
    async with stack.http.get(stack.url("/gitlab"), headers=gitlab_headers()) as resp:
        assert resp.status == 405
    async with stack.http.put(stack.url("/small", stack.webhook_port), data=b"{}") as resp:
        assert resp.status == 405
    assert await stored(stack.nats.url) == []


@pytest.mark.parametrize("path", ["/nowhere", "/gitlab/", "/GITLAB", "/gitlab/extra", "/"])
async def test_an_unknown_path_is_answered_404(stack: Stack, path: str) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    assert (await stack.post(path, raw, gitlab_headers()))[0] == 404
    assert await stored(stack.nats.url) == []


async def test_a_path_served_on_another_port_is_404_on_this_one(stack: Stack) -> None:
    assert (await stack.post("/small", b"{}", {}, port=stack.shared_port))[0] == 404
    assert (await stack.post("/gitlab", b"{}", gitlab_headers(), port=stack.webhook_port))[0] == 404


async def test_a_body_over_max_payload_size_is_answered_413_and_not_stored(stack: Stack) -> None:
    too_big = json.dumps({"pad": "x" * SMALL_LIMIT}).encode()
    assert (await stack.post("/small", too_big, {}, port=stack.webhook_port))[0] == 413
    just_fits = json.dumps({"pad": "x" * (SMALL_LIMIT - 20)}).encode()
    assert len(just_fits) <= SMALL_LIMIT
    assert (await stack.post("/small", just_fits, {}, port=stack.webhook_port))[0] == 200
    assert len(await stored(stack.nats.url)) == 1


async def test_a_chunked_body_over_max_payload_size_is_answered_413_and_not_stored(stack: Stack) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"pad": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}'

    # No Content-Length: the limit is enforced on the bytes actually read.
    async with stack.http.post(stack.url("/small", stack.webhook_port), data=chunks()) as resp:
        assert resp.status == 413
    assert await stored(stack.nats.url) == []


@pytest.mark.parametrize(("path", "port_name", "headers"), [
    pytest.param("/gitlab", "shared_port", gitlab_headers(), id="gitlab"),
    pytest.param("/small", "webhook_port", {"Content-Type": "application/json"}, id="webhook"),
])
async def test_a_body_that_is_not_json_is_answered_400(stack: Stack, path: str, port_name: str,
                                                      headers: dict[str, str]) -> None:
    assert (await stack.post(path, b"{not json", headers, port=getattr(stack, port_name)))[0] == 400
    assert await stored(stack.nats.url) == []


async def raw_http(port: int, request: bytes) -> int:
    """Send bytes aiohttp's client would refuse to send (e.g. a header that is not UTF-8); return the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_header_value_that_is_not_utf8_is_stored_with_replacement_characters(stack: Stack) -> None:
    body = b'{"a": 1}'
    request = (b"POST /large HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Note: caf\xe9\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    assert await raw_http(stack.webhook_port, request) == 200
    (msg,) = await stored(stack.nats.url)
    assert msg.data is not None
    assert CloudEvent.from_json(msg.data).data["header"]["X-Note"] == ["caf\ufffd"]


async def test_an_idempotency_key_that_is_not_utf8_becomes_an_id_with_replacement_characters(stack: Stack) -> None:
    body = b'{"a": 1}'
    request = (b"POST /large HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nIdempotency-Key: id-\xe9\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    assert await raw_http(stack.webhook_port, request) == 200
    (msg,) = await stored(stack.nats.url)
    assert msg.data is not None
    assert CloudEvent.from_json(msg.data).id == "id-\ufffd"


async def test_a_github_event_and_delivery_that_are_not_utf8_are_stored_not_an_error(stack: Stack) -> None:
    push = fixture_bytes("github", "push.1.json")
    request = (b"POST /github HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-GitHub-Event: push\xff\r\n"
               b"X-GitHub-Delivery: d-\xff\r\nX-Hub-Signature-256: %s\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (github_signature(GITHUB_SECRET, push).encode(), len(push))) + push
    # Not in `events: [push]`, so accepted and not published; what matters is that it is not a 500.
    assert await raw_http(stack.shared_port, request) == 200
    assert await stored(stack.nats.url) == []


async def test_a_signature_header_that_is_not_utf8_is_refused_with_403_not_an_error(stack: Stack) -> None:
    push = fixture_bytes("github", "push.1.json")
    request = (b"POST /github HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-GitHub-Event: push\r\n"
               b"X-GitHub-Delivery: d-1\r\nX-Hub-Signature-256: sha256=\xff\xfe\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(push)) + push
    assert await raw_http(stack.shared_port, request) == 403
    assert await stored(stack.nats.url) == []


async def test_a_token_header_that_is_not_utf8_is_refused_with_403_not_an_error(stack: Stack) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    request = (b"POST /gitlab HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
               b"X-Gitlab-Event: Merge Request Hook\r\nX-Gitlab-Token: \xff\xfe\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(raw)) + raw
    assert await raw_http(stack.shared_port, request) == 403
    assert await stored(stack.nats.url) == []


async def test_a_refusal_on_a_keep_alive_connection_is_tagged_with_its_own_delivery(stack: Stack) -> None:
    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), logs.event_id.get()))

    logger, capture = logging.getLogger("gateway.server"), Capture()
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        body = b'{"ref": "refs/heads/main"}'
        ok = await stack.post("/github", body, github_headers(body, delivery="ka-ok"))
        bad = await stack.post("/github", body, {**github_headers(body, delivery="ka-bad"),
                                                 "X-Hub-Signature-256": "sha256=" + "0" * 64})
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    assert (ok[0], bad[0]) == (200, 403)
    assert [event for message, event in seen if "rejected" in message] == ["ka-bad"]


async def expect_continue(port: int, path: str, body: bytes) -> tuple[bytes, bytes]:
    """Send the head with `Expect: 100-continue`; return the interim answer, then the final one after the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if interim.startswith(b"HTTP/1.1 100"):
            writer.write(body)
            final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        else:
            final, interim = interim, b""
        return interim, final
    finally:
        writer.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent(stack: Stack) -> None:
    interim, final = await expect_continue(stack.webhook_port, "/large", b'{"curl": "large body"}')
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert final.startswith(b"HTTP/1.1 200")
    assert [json.loads(m.data)["data"]["body"] for m in await stored(stack.nats.url)] == [{"curl": "large body"}]


async def test_expect_100_continue_with_a_body_over_the_limit_gets_413_and_no_invitation(stack: Stack) -> None:
    interim, final = await expect_continue(stack.webhook_port, "/small", b"x" * (SMALL_LIMIT + 1))
    assert interim == b""
    assert final.startswith(b"HTTP/1.1 413")


# --- health, readiness, metrics -------------------------------------------------------------------


@pytest.mark.parametrize("port_name", ["shared_port", "webhook_port"])
async def test_healthz_and_readyz_are_served_on_every_listener_port(stack: Stack, port_name: str) -> None:
    port = getattr(stack, port_name)
    async with stack.http.get(stack.url("/healthz", port)) as resp:
        assert resp.status == 200
    async with stack.http.get(stack.url("/readyz", port)) as resp:
        assert resp.status == 200


async def test_readyz_reflects_the_ready_check(stack: Stack) -> None:
    stack.ready.value = False
    async with stack.http.get(stack.url("/readyz")) as resp:
        assert resp.status == 503
    async with stack.http.get(stack.url("/healthz")) as resp:
        assert resp.status == 200
    stack.ready.value = True
    async with stack.http.get(stack.url("/readyz")) as resp:
        assert resp.status == 200


def metric_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_count_published_duplicate_and_rejected_events(stack: Stack) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    await stack.post("/gitlab", raw, gitlab_headers(key="m-1"))
    await stack.post("/gitlab", raw, gitlab_headers(key="m-1"))
    await stack.post("/gitlab", raw, gitlab_headers(token="wrong"))
    async with stack.http.get(stack.url("/metrics", stack.webhook_port)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert "# TYPE hookgate_events_published_total counter" in text
    labels = {"eventsource": "gitlab-es", "event": "mr"}
    assert metric_value(text, "hookgate_events_published_total", **labels, duplicate="false") == 1.0
    assert metric_value(text, "hookgate_events_published_total", **labels, duplicate="true") == 1.0
    assert metric_value(text, "hookgate_events_rejected_total", **labels, status="403") == 1.0


async def test_the_health_paths_are_reserved_and_cannot_be_shadowed_by_post(stack: Stack) -> None:
    async with stack.http.post(stack.url("/healthz"), data=b"{}") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, HEAD"
    assert await stored(stack.nats.url) == []


# --- the bus down ---------------------------------------------------------------------------------


async def test_with_the_bus_down_a_delivery_is_answered_503_and_nothing_is_stored_later(stack: Stack) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    await asyncio.to_thread(stack.nats.stop)
    await until(lambda: not stack.bus.connected, what="the gateway to notice NATS is gone")
    status, text = await stack.post("/gitlab", raw, gitlab_headers(key="while-down"))
    assert status == 503
    assert "bus" in text
    await asyncio.to_thread(stack.nats.start)
    await until(lambda: stack.bus.connected, what="the gateway to reconnect")
    assert await stored(stack.nats.url) == []
    # The sender's retry after the outage is kept.
    assert (await stack.post("/gitlab", raw, gitlab_headers(key="while-down")))[0] == 200
    assert len(await stored(stack.nats.url)) == 1


async def test_a_delivery_racing_the_outage_is_never_200_and_its_retry_is_stored_exactly_once(stack: Stack) -> None:
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    await asyncio.to_thread(stack.nats.stop)
    # Sent before the client noticed the outage: the publish may sit in the client's buffer.
    status, _ = await stack.post("/gitlab", raw, gitlab_headers(key="racing"))
    assert status == 503
    await asyncio.to_thread(stack.nats.start)
    await until(lambda: stack.bus.connected, what="the gateway to reconnect")
    assert (await stack.post("/gitlab", raw, gitlab_headers(key="racing")))[0] == 200
    messages = await stored(stack.nats.url)
    assert len(messages) == 1
    assert messages[0].headers is not None and messages[0].headers["Nats-Msg-Id"] == "default/gitlab-es/mr/racing"


# --- route conflicts ------------------------------------------------------------------------------


def eventsource(name: str, port: int, endpoint: str, *, kind: str = "webhook", event: str = "ev") -> EventSource:
    spec: dict[str, Any] = {"endpoint": endpoint, "port": str(port)}
    if kind != "webhook":
        spec = {"webhook": spec}
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": name},
           "spec": {kind: {event: spec}}}
    parsed = parse_document(doc, file=f"{name}.yaml", document=0)
    assert isinstance(parsed, EventSource)
    return parsed


def no_secrets(namespace: str, selector: SecretKeySelector) -> str:
    raise AssertionError("no secret is referenced")


@pytest.mark.parametrize(("second_kind", "second_event"), [
    pytest.param("webhook", "other", id="two-webhooks"),
    pytest.param("github", "gh", id="webhook-then-github"),
    pytest.param("gitlab", "gl", id="webhook-then-gitlab"),
])
def test_the_same_port_and_endpoint_twice_is_a_manifest_error_at_build_routes(second_kind: str,
                                                                              second_event: str) -> None:
    first = eventsource("first", 12000, "/hook")
    second = eventsource("second", 12000, "/hook", kind=second_kind, event=second_event)
    with pytest.raises(ManifestError) as err:
        build_routes([first, second], bus=Bus("nats://127.0.0.1:1"), secret=no_secrets)
    assert "12000" in str(err.value)
    assert "/hook" in str(err.value)
    assert "first/ev" in str(err.value)


def test_the_same_endpoint_on_different_ports_is_allowed() -> None:
    routes = build_routes([eventsource("a", 12000, "/hook"), eventsource("b", 12001, "/hook")],
                          bus=Bus("nats://127.0.0.1:1"), secret=no_secrets)
    assert sorted(r.webhook.port_number for r in routes) == [12000, 12001]


@pytest.mark.parametrize("endpoint", ["/healthz", "/readyz", "/metrics"])
def test_an_endpoint_on_a_health_path_is_a_manifest_error(endpoint: str) -> None:
    with pytest.raises(ManifestError, match="reserved"):
        build_routes([eventsource("a", 12000, endpoint)], bus=Bus("nats://127.0.0.1:1"), secret=no_secrets)

