"""A NATS outage over real processes: `hookgate gateway` with and without a spool, a real nats-server
stopped and restarted on the same store, signed GitHub deliveries, and a SIGKILL in the middle.

What JetStream stored is read over a connection of its own, so the assertions are about the stream,
not about what the gateway believes it sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest

from gateway.envelope import CloudEvent
from hookgate.embedded import NatsServer
from tests.conftest import HookgateProcess, fixture_bytes, free_port, github_signature, wait_for

STREAM = "HOOKGATE"
SECRET = "outage-secret"
DELIVERIES = 200

MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata:
  name: github-secret
data:
  token: {secret_b64}
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: github
spec:
  github:
    push:
      repositories:
        - owner: example
          names: [app]
      webhook:
        endpoint: /push
        port: "{port}"
        method: POST
      events: [push]
      webhookSecret:
        name: github-secret
        key: token
"""


def request(url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def deliver(url: str, body: bytes, delivery: str) -> int:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
               "X-Hub-Signature-256": github_signature(SECRET, body)}
    return request(url, body=body, headers=headers)[0]


async def _stored(url: str) -> tuple[int, list[str]]:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(STREAM)).state
        if not state.messages:
            return 0, []
        msgs = [await js.get_msg(STREAM, seq=s) for s in range(state.first_seq, state.last_seq + 1)]
        return int(state.messages), [CloudEvent.from_json(m.data or b"").id for m in msgs]
    finally:
        await nc.close()


def stream_exists(url: str) -> bool:
    async def probe() -> bool:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
        try:
            await nc.jetstream(timeout=5).stream_info(STREAM)
            return True
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()

    return asyncio.run(probe())


def stored(url: str) -> tuple[int, list[str]]:
    """(the stream's message count, the CloudEvent ids in stream order)."""
    return asyncio.run(_stored(url))


def metric(base: str, name: str) -> float | None:
    _, text = request(f"{base}/metrics")
    line = next((x for x in text.splitlines() if x.startswith(name + " ")), None)
    return float(line.split()[1]) if line else None


class Setup:
    def __init__(self, tmp_path: Path, start: Any) -> None:
        self.port = free_port()
        self.folder = tmp_path / "manifests"
        self.folder.mkdir()
        (self.folder / "github.yaml").write_text(MANIFESTS.format(
            port=self.port, secret_b64=base64.b64encode(SECRET.encode()).decode()))
        self.nats = NatsServer(tmp_path / "nats")
        self.spool = tmp_path / "spool"
        self.cwd = tmp_path
        self._start = start

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gateway(self, *, spool: bool) -> HookgateProcess:
        args = ["gateway", "-f", str(self.folder), "--nats", self.nats.url, "--host", "127.0.0.1"]
        proc = self._start([*args, "--spool-dir", str(self.spool)] if spool else args, cwd=self.cwd)
        proc.wait_line("ready", timeout=30)
        return proc

    def readyz(self) -> int:
        return request(f"{self.base}/readyz")[0]


@pytest.fixture
def setup(tmp_path: Path, hookgate_process: Any) -> Iterator[Setup]:
    s = Setup(tmp_path, hookgate_process)
    s.nats.start()
    yield s
    s.nats.stop()


def test_deliveries_spooled_during_an_outage_survive_a_sigkill_and_are_stored_exactly_once(setup: Setup) -> None:
    body = fixture_bytes("github", "push.1.json")
    first = setup.gateway(spool=True)
    wait_for(lambda: stream_exists(setup.nats.url), timeout=15, what="the gateway to create the stream")
    setup.nats.stop()
    wait_for(lambda: metric(setup.base, "hookgate_bus_connected") == 0, timeout=15, what="the bus to be seen down")

    ids = [f"outage-{i:03d}" for i in range(DELIVERIES)]
    statuses = [deliver(f"{setup.base}/push", body, d) for d in ids]
    assert statuses == [200] * DELIVERIES  # kept on disk, so honestly 200
    assert metric(setup.base, "hookgate_spool_records") == DELIVERIES

    first.stop(signal.SIGKILL)
    # NATS still down: with a spool the gateway starts and serves anyway.
    second = setup.gateway(spool=True)
    assert metric(setup.base, "hookgate_bus_connected") == 0
    assert setup.readyz() == 200  # ready to take events: the spool has room
    assert metric(setup.base, "hookgate_spool_records") == DELIVERIES

    setup.nats.start()  # same port, same store: the stream is still there
    wait_for(lambda: metric(setup.base, "hookgate_spool_records") == 0, timeout=60, what="the spool to drain")
    count, stored_ids = stored(setup.nats.url)
    assert count == DELIVERIES
    assert stored_ids == ids  # each once, in the order the senders were answered
    assert list(setup.spool.glob("*.seg")) == []
    assert setup.readyz() == 200
    assert second.stop() == 0


def test_a_second_gateway_on_the_same_spool_dir_refuses_to_start(setup: Setup, hookgate_process: Any) -> None:
    setup.gateway(spool=True)
    other = hookgate_process(["gateway", "-f", str(setup.folder), "--nats", setup.nats.url, "--host", "127.0.0.1",
                              "--spool-dir", str(setup.spool)], cwd=setup.cwd)
    assert other.proc.wait(timeout=30) == 1
    other.stop()
    assert any("in use by another process" in line for line in other.stderr)


def test_without_a_spool_an_outage_means_503_and_nothing_is_stored_afterwards(setup: Setup) -> None:
    body = fixture_bytes("github", "push.1.json")
    setup.gateway(spool=False)
    setup.nats.stop()
    wait_for(lambda: metric(setup.base, "hookgate_bus_connected") == 0, timeout=15, what="the bus to be seen down")

    assert [deliver(f"{setup.base}/push", body, f"lost-{i}") for i in range(5)] == [503] * 5

    setup.nats.start()
    wait_for(lambda: setup.readyz() == 200, timeout=30, what="the gateway to reconnect")
    assert stored(setup.nats.url) == (0, [])
    # The senders' retries after the outage are stored.
    assert deliver(f"{setup.base}/push", body, "lost-0") == 200
    assert stored(setup.nats.url) == (1, ["lost-0"])


def test_a_spooled_event_is_stored_as_the_direct_path_would_store_it(setup: Setup) -> None:
    """The spooled path stores the same CloudEvent the direct path would (same data, same id)."""
    body = fixture_bytes("github", "push.1.json")
    setup.gateway(spool=True)
    assert deliver(f"{setup.base}/push", body, "direct") == 200
    setup.nats.stop()
    wait_for(lambda: metric(setup.base, "hookgate_bus_connected") == 0, timeout=15, what="the bus to be seen down")
    assert deliver(f"{setup.base}/push", body, "spooled") == 200
    setup.nats.start()
    wait_for(lambda: metric(setup.base, "hookgate_spool_records") == 0, timeout=30, what="the spool to drain")
    msgs = asyncio.run(_raw(setup.nats.url))
    direct, spooled = (json.loads(m) for m in msgs)
    for event in (direct, spooled):
        event.pop("time")
    assert direct.pop("id") == "direct" and spooled.pop("id") == "spooled"
    direct["data"]["body"].pop("X-GitHub-Delivery")
    spooled["data"]["body"].pop("X-GitHub-Delivery")
    direct["data"]["headers"].pop("X-Github-Delivery")
    spooled["data"]["headers"].pop("X-Github-Delivery")
    assert direct == spooled


async def _raw(url: str) -> list[bytes]:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(STREAM)).state
        return [(await js.get_msg(STREAM, seq=s)).data or b"" for s in range(state.first_seq, state.last_seq + 1)]
    finally:
        await nc.close()
