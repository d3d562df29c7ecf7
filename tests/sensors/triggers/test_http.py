"""The http trigger against a real local aiohttp server: request shape, secrets, status policy, timeouts."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from gateway.errors import ManifestError
from gateway.models import SecretKeySelector
from sensors.kube import DryRunCluster
from sensors.triggers import PermanentError, TemporaryError
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.factory import build_action
from sensors.triggers.http import HttpAction
from tests.conftest import serving
from tests.sensors.triggers import event, sensor, trigger

SECRETS = {("default", "api", "token"): "s3cr3t-token", ("default", "api", "user"): "ada",
           ("default", "api", "password"): "pa55"}
E1 = {"dep": event("e1", {"bucket": "photos", "n": 3})}
PAYLOAD = [{"src": {"dependencyName": "dep", "dataKey": "body.bucket"}, "dest": "bucket"},
           {"src": {"dependencyName": "dep", "dataKey": "body.n", "useRawData": True}, "dest": "count"}]


def lookup(namespace: str, selector: SecretKeySelector) -> str:
    try:
        return SECRETS[(namespace, selector.name, selector.key)]
    except KeyError:
        raise ManifestError(f"Secret {namespace}/{selector.name} has no key {selector.key!r}") from None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: Any


class Receiver:
    """A local HTTP server: `/status/<code>` answers that code, `/stall` never answers in time."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers), await request.read(),
                              request.transport.get_extra_info("peername") if request.transport else None))
        if request.path == "/stall":
            await self.release.wait()
        if request.path.startswith("/status/"):
            return web.Response(status=int(request.path.rsplit("/", 1)[1]), text="the reason")
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with serving(web.Server(rec.handle)) as port:
        rec.url = f"http://127.0.0.1:{port}"
        yield rec
        rec.release.set()  # let a stalled handler finish so that the server can stop


def http(url: str, *, policy: Any = None, secret: Any = lookup, **spec: Any) -> HttpAction:
    s = sensor(trigger("t", http={"url": url, **spec}, policy=policy))
    action = build_action(s.spec.triggers[0].template, sensor=s, cluster=DryRunCluster(None), secret=secret)
    assert isinstance(action, HttpAction)
    return action


async def fire(action: HttpAction, events: Any = E1) -> Any:
    try:
        return await action.execute(events)
    finally:
        await action.close()


# --- the request ---------------------------------------------------------------------------------


async def test_post_sends_payload_headers_and_secrets(receiver: Receiver) -> None:
    auth = {"username": {"name": "api", "key": "user"}, "password": {"name": "api", "key": "password"}}
    action = http(f"{receiver.url}/hook?x=1", payload=PAYLOAD, headers={"X-Plain": "p"}, basicAuth=auth,
                  secureHeaders=[{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}])
    outcome = await fire(action)
    [seen] = receiver.seen
    assert (seen.method, seen.path) == ("POST", "/hook?x=1")
    assert json.loads(seen.body) == {"bucket": "photos", "count": 3}
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["X-Plain"] == "p" and seen.headers["X-Token"] == "s3cr3t-token"
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(b"ada:pa55").decode()
    assert outcome.resource == {"status": 200}


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_method_without_payload_sends_an_empty_body(receiver: Receiver, method: str) -> None:
    await fire(http(receiver.url, method=method))
    [seen] = receiver.seen
    assert (seen.method, seen.body) == (method, b"")
    assert "Content-Type" not in seen.headers


async def test_raw_body_and_explicit_content_type(receiver: Receiver) -> None:
    raw = [{"src": {"dependencyName": "dep", "value": "plain words"}}]  # no dest: the whole body
    await fire(http(receiver.url, payload=raw))
    await fire(http(receiver.url, payload=PAYLOAD, headers={"content-type": "application/vnd.x+json"}))
    plain, typed = receiver.seen
    assert plain.body == b"plain words" and "Content-Type" not in plain.headers
    assert typed.headers["Content-Type"] == "application/vnd.x+json"


async def test_template_parameters_rewrite_the_url(receiver: Receiver) -> None:
    to_bucket = [{"src": {"dependencyName": "dep", "dataKey": "body.bucket"}, "dest": "url", "operation": "append"}]
    await fire(http(f"{receiver.url}/b/", parameters=to_bucket))
    assert [s.path for s in receiver.seen] == ["/b/photos"]


async def test_one_session_per_action_closed_by_close(receiver: Receiver) -> None:
    action = http(receiver.url)
    await action.execute(E1)
    await action.execute(E1)
    session = action._session
    await action.close()
    first, second = receiver.seen
    assert first.peer == second.peer  # the same kept-alive connection: one session
    assert session is not None and session.closed


# --- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "allow", "outcome"), [
    (200, None, None), (204, None, None), (404, None, PermanentError), (400, None, PermanentError),
    (408, None, TemporaryError), (429, None, TemporaryError), (500, None, TemporaryError),
    (503, None, TemporaryError),
    (201, [200, 201], None), (202, [200, 201], PermanentError), (503, [200], TemporaryError),
    (404, [404], None),  # the policy decides what success is
])
async def test_status_decides_the_outcome(receiver: Receiver, status: int, allow: list[int] | None,
                                          outcome: type[Exception] | None) -> None:
    action = http(f"{receiver.url}/status/{status}", policy={"status": {"allow": allow}} if allow else None)
    if outcome is None:
        assert (await fire(action)).resource == {"status": status}
        return
    with pytest.raises(outcome, match=f"POST .*/status/{status} answered {status}.*the reason"):
        await fire(action)


async def test_a_stalled_server_times_out_as_temporary(receiver: Receiver) -> None:
    started = time.monotonic()
    with pytest.raises(TemporaryError, match="no answer within 1s"):
        await fire(http(f"{receiver.url}/stall", timeout=1))
    assert time.monotonic() - started < 3.0
    assert len(receiver.seen) == 1


async def test_connection_refused_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TemporaryError, match=f"POST http://127.0.0.1:{port}/"):
        await fire(http(f"http://127.0.0.1:{port}/"))


# --- secrets stay secret -------------------------------------------------------------------------


SECURE = {"secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}],
          "basicAuth": {"password": {"name": "api", "key": "password"}}}


async def test_secret_values_never_reach_logs_errors_or_render(receiver: Receiver,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    action = http(f"http://ada:pw-in-url@127.0.0.1:{receiver.url.rsplit(':', 1)[1]}/status/500", **SECURE)
    with pytest.raises(TemporaryError) as e:
        await fire(action)
    rendered = json.dumps(action.render(E1))
    assert receiver.seen[0].headers["X-Token"] == "s3cr3t-token"  # sent, but nowhere else
    for text in (str(e.value), caplog.text, rendered):
        assert "s3cr3t-token" not in text and "pa55" not in text and "pw-in-url" not in text
    assert "<Secret api key token>" in rendered


async def test_without_a_secret_lookup_secured_requests_fail_loudly(receiver: Receiver) -> None:
    action = http(receiver.url, secret=None, **SECURE)
    assert action.render(E1)["headers"]["X-Token"] == "<Secret api key token>"
    with pytest.raises(PermanentError, match="X-Token comes from Secret api key token, and no Secret lookup"):
        await fire(action)
    assert receiver.seen == []


async def test_optional_secret_that_does_not_resolve_is_left_out(receiver: Receiver) -> None:
    optional = [{"name": "X-Maybe", "valueFrom": {"secretKeyRef": {"name": "api", "key": "nope", "optional": True}}}]
    await fire(http(receiver.url, secureHeaders=optional))
    assert "X-Maybe" not in receiver.seen[0].headers


# --- load-time errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "path", "message"), [
    ({"url": "ftp://host/x"}, ("url",), "needs an http:// or https:// URL"),
    ({"url": "http:///nohost"}, ("url",), "with a host"),
    ({"secureHeaders": [{"name": "H", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
     ("secureHeaders", 0, "valueFrom", "configMapKeyRef"), "only secretKeyRef"),
    ({"secureHeaders": [{"name": "H", "valueFrom": {"secretKeyRef": {"name": "api", "key": "nope"}}}]},
     ("secureHeaders", 0, "valueFrom", "secretKeyRef"), "Secret default/api has no key 'nope'"),
    ({"basicAuth": {"username": {"name": "other", "key": "user"}}}, ("basicAuth", "username"), "Secret default/other"),
    ({"parameters": [{"src": {"dependencyName": "dep", "value": "x"}, "dest": "payload.0.dest"}]},
     ("parameters", 0, "dest"), "may rewrite only url, method, headers, timeout"),
    ({"payload": [{"src": {"dependencyName": "dep"}, "dest": "a..b"}]}, ("payload",), "payload\\[0\\].dest"),
])
def test_load_errors(spec: dict[str, Any], path: tuple[str | int, ...], message: str) -> None:
    with pytest.raises(TriggerCompileError, match=message) as e:
        http(spec.pop("url", "http://127.0.0.1:1/"), **spec)
    assert e.value.path == path


def test_render_shows_the_request() -> None:
    rendered = http("http://example.test/x", method="PUT", payload=PAYLOAD, timeout=0).render(E1)
    assert rendered == {"method": "PUT", "url": "http://example.test/x", "timeout": 60,
                        "headers": {"Content-Type": "application/json"}, "body": {"bucket": "photos", "count": 3}}


async def test_parameters_cannot_point_the_request_elsewhere_than_http(receiver: Receiver) -> None:
    to_ftp = [{"src": {"dependencyName": "dep", "value": "ftp://example.test/"}, "dest": "url"}]
    with pytest.raises(PermanentError, match="made its url invalid: needs an http"):
        await fire(http(receiver.url, parameters=to_ftp))
    assert receiver.seen == []
