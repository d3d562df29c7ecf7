"""The `nats` EventSource: messages on a plain NATS subject become CloudEvents in the stream.

Everything runs against real nats-servers: the bus (JetStream) from the `nats_server` fixture and,
where the test needs the two apart (a bus outage, authentication), a second plain server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from gateway import natssource
from gateway.bus import Bus
from gateway.envelope import MASK, CloudEvent
from gateway.errors import BusUnavailable, ManifestError, format_path
from gateway.metrics import Metrics
from gateway.models import Backoff, NATSEventsSource
from gateway.natssource import NatsSource
from hookgate.embedded import NatsServer, find_binary
from hookgate.manifests import Bundle, load
from tests.conftest import until
from tests.gateway.test_listener import secret_lookup, stored

TOKEN = "source-token-for-tests"


class SourceServer(NatsServer):
    """A plain nats-server (no JetStream) with optional authorization, standing for a user's server."""

    def __init__(self, store_dir: Path, *, auth: str = "") -> None:
        super().__init__(store_dir)
        self.auth = auth

    def start(self, *, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "source.conf"
        config.write_text(f'listen: "{self.host}:{self.port}"\n{self.auth}\n')
        log = open(self.store_dir / "source.log", "ab")
        self._proc = subprocess.Popen([find_binary(), "-c", str(config)], stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._wait_listening(timeout)


@pytest.fixture
def source_server(tmp_path: Path) -> Iterator[SourceServer]:
    with SourceServer(tmp_path / "source") as server:
        yield server


def manifests(tmp_path: Path, url: str, entries: dict[str, dict[str, Any]], *, name: str = "nats-es") -> Bundle:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nats-auth"},
              "stringData": {"token": TOKEN, "user": "ann", "password": "pw"}}
    es = {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": name},
          "spec": {"nats": {event: {"url": url, **entry} for event, entry in entries.items()}}}
    folder = tmp_path / f"manifests-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "all.yaml").write_text(yaml.safe_dump_all([secret, es]))
    return load([folder])


async def publish(url: str, subject: str, data: bytes, headers: dict[str, str] | None = None, **opts: Any) -> None:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0, **opts)
    try:
        await nc.publish(subject, data, headers=headers)
        await nc.flush()
    finally:
        await nc.close()


async def events_in_stream(url: str, count: int, *, timeout: float = 15.0) -> list[CloudEvent]:
    """Poll the stream until it holds `count` messages; return them as CloudEvents."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(messages := await stored(url)) < count:
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {count} message(s) in the stream")
        await asyncio.sleep(0.02)
    return [CloudEvent.from_json(m.data or b"") for m in messages]


def received(metrics: Metrics, event: str, eventsource: str = "nats-es") -> float:
    value = metrics.registry.get_sample_value("hookgate_events_received_total",
                                              {"eventsource": eventsource, "event": event})
    return value or 0.0


@pytest.fixture
async def started(tmp_path: Path, nats_server: NatsServer, bus: Bus) -> AsyncIterator[Any]:
    sources: list[NatsSource] = []

    async def start(entries: dict[str, dict[str, Any]], *, url: str | None = None, name: str = "nats-es",
                    metrics: Metrics | None = None) -> NatsSource:
        bundle = manifests(tmp_path, url or nats_server.url, entries, name=name)
        source = NatsSource(bundle.eventsources, secret=secret_lookup(bundle), metrics=metrics,
                            retry_first=0.02, retry_max=0.2, drain_timeout=5)
        await source.start(bus)
        sources.append(source)
        return source

    yield start
    for source in sources:
        await source.stop()


# --- end to end -----------------------------------------------------------------------------------


async def test_a_json_message_on_a_plain_subject_becomes_a_nats_cloudevent_in_the_stream(
        nats_server: NatsServer, started: Any) -> None:
    await started({"orders": {"subject": "shop.orders", "jsonBody": True, "metadata": {"team": "shop"}}})
    await publish(nats_server.url, "shop.orders", b'{"id": 12345678901234567890, "item": "book"}')
    (event,) = await events_in_stream(nats_server.url, 1)
    assert (event.source, event.subject, event.type) == ("nats-es", "orders", "nats")
    assert event.id.startswith("sha256-")
    assert list(event.data) == ["subject", "body", "metadata"]  # no headers, no `header` key (omitempty)
    assert event.data["subject"] == "shop.orders"
    assert event.data["body"] == {"id": 12345678901234567890, "item": "book"}
    assert event.data["metadata"] == {"team": "shop"}
    (msg,) = await stored(nats_server.url)
    assert msg.subject == "hookgate.default.nats-es.orders"


async def test_without_json_body_the_body_is_base64_and_nats_msg_id_is_the_identity(
        nats_server: NatsServer, started: Any) -> None:
    await started({"raw": {"subject": "raw.>"}})
    headers = {"Nats-Msg-Id": "order-1", "X-Trace": "t-1"}
    await publish(nats_server.url, "raw.a", b"\x00\xffnot json", headers)
    await publish(nats_server.url, "raw.a", b"\x00\xffnot json", headers)  # a republish: stored once
    await publish(nats_server.url, "raw.b", b"second", {"Nats-Msg-Id": "order-2"})
    first, second = await events_in_stream(nats_server.url, 2)
    assert first.id == "order-1"
    assert base64.b64decode(first.data["body"]) == b"\x00\xffnot json"
    assert first.data["subject"] == "raw.a"
    assert first.data["header"] == {"Nats-Msg-Id": ["order-1"], "X-Trace": ["t-1"]}
    assert (second.id, second.data["subject"]) == ("order-2", "raw.b")
    assert len(await stored(nats_server.url)) == 2
    msg = (await stored(nats_server.url))[0]
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "default/nats-es/raw/order-1"


async def test_a_json_body_message_that_is_not_json_is_dropped_and_the_next_one_kept(
        nats_server: NatsServer, started: Any) -> None:
    source = await started({"orders": {"subject": "orders", "jsonBody": True}})
    await publish(nats_server.url, "orders", b"{not json")
    await publish(nats_server.url, "orders", b'{"ok": true}')
    (event,) = await events_in_stream(nats_server.url, 1)
    assert event.data["body"] == {"ok": True}
    assert source.lost == 1


async def test_filter_expression_decides_what_is_published(nats_server: NatsServer, started: Any) -> None:
    await started({"big": {"subject": "orders", "jsonBody": True,
                           "filter": {"expression": "body.total > 100 && subject == 'orders'"}}})
    await publish(nats_server.url, "orders", b'{"total": 5}')
    await publish(nats_server.url, "orders", b'{"total": "many"}')  # an evaluation error: not published
    await publish(nats_server.url, "orders", b'{"total": 500}')
    # One subscription handles its messages in order: once the last is stored, the others were judged.
    (event,) = await events_in_stream(nats_server.url, 1)
    assert event.data["body"] == {"total": 500}
    assert len(await stored(nats_server.url)) == 1


async def test_a_queue_group_shares_messages_between_subscribers(nats_server: NatsServer, started: Any) -> None:
    one, two = Metrics(), Metrics()
    entry = {"work": {"subject": "jobs", "jsonBody": True, "queue": "hookgate"}}
    await started(entry, metrics=one)
    await started(entry, metrics=two)
    for n in range(10):
        await publish(nats_server.url, "jobs", json.dumps({"n": n}).encode())
    await events_in_stream(nats_server.url, 10)
    assert received(one, "work") + received(two, "work") == 10  # without a queue it would be 20


async def test_a_message_taken_while_the_bus_is_down_is_kept_once_the_bus_is_back(
        nats_server: NatsServer, source_server: SourceServer, bus: Bus, started: Any) -> None:
    metrics = Metrics()
    await started({"orders": {"subject": "orders", "jsonBody": True}}, url=source_server.url, metrics=metrics)
    await asyncio.to_thread(nats_server.stop)
    await until(lambda: not bus.connected, what="the bus to notice NATS is gone")
    await publish(source_server.url, "orders", b'{"during": "outage"}')
    await until(lambda: received(metrics, "orders") == 1, what="the source to take the message")
    await asyncio.to_thread(nats_server.start)
    await until(lambda: bus.connected, what="the bus to reconnect")
    (event,) = await events_in_stream(nats_server.url, 1)
    assert event.data["body"] == {"during": "outage"}


async def test_with_the_gateways_spool_a_message_is_kept_on_disk_while_the_bus_is_down(
        tmp_path: Path, nats_server: NatsServer, source_server: SourceServer, bus: Bus) -> None:
    from gateway.spool import Spool

    bundle = manifests(tmp_path, source_server.url, {"orders": {"subject": "orders", "jsonBody": True}})
    spool = Spool(tmp_path / "spool", bus, retry_interval=0.05, max_retry_interval=0.2)
    await spool.open()
    source = NatsSource(bundle.eventsources, secret=secret_lookup(bundle), retry_first=0.02, retry_max=0.2)
    try:
        await source.start(bus, spool=spool)
        await asyncio.to_thread(nats_server.stop)
        await until(lambda: not bus.connected, what="the bus to notice NATS is gone")
        await publish(source_server.url, "orders", b'{"kept": "on disk"}')
        await until(lambda: spool.depth()[0] == 1, what="the message to be spooled")
        await source.stop()  # nothing is lost at stop: the spool has it
        assert source.lost == 0
        await asyncio.to_thread(nats_server.start)
        await until(lambda: bus.connected, what="the bus to reconnect")
        (event,) = await events_in_stream(nats_server.url, 1)
        assert event.data["body"] == {"kept": "on disk"}
    finally:
        await source.stop()
        await spool.close()


async def test_at_stop_a_message_the_bus_does_not_take_is_counted_lost(
        nats_server: NatsServer, source_server: SourceServer, bus: Bus, started: Any) -> None:
    metrics = Metrics()
    source = await started({"orders": {"subject": "orders"}}, url=source_server.url, metrics=metrics)
    await asyncio.to_thread(nats_server.stop)
    await until(lambda: not bus.connected, what="the bus to notice NATS is gone")
    await publish(source_server.url, "orders", b"x")
    await until(lambda: received(metrics, "orders") == 1, what="the source to take the message")
    await source.stop()
    assert source.lost == 1


async def test_stop_closes_every_connection_even_when_one_fails_unexpectedly(
        source_server: SourceServer, started: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    source = await started({"a": {"subject": "a"}, "b": {"subject": "b"}}, url=source_server.url)
    first, second = source._conns

    async def broken_drain() -> None:
        raise RuntimeError("a bug in the client")

    monkeypatch.setattr(first, "drain", broken_drain)
    await source.stop()
    assert first.is_closed and second.is_closed


@pytest.mark.parametrize(("auth_block", "auth", "publisher"), [
    pytest.param(f'authorization {{ token: "{TOKEN}" }}', {"token": {"name": "nats-auth", "key": "token"}},
                 {"token": TOKEN}, id="token"),
    pytest.param('authorization { user: "ann", password: "pw" }',
                 {"basic": {"username": {"name": "nats-auth", "key": "user"},
                            "password": {"name": "nats-auth", "key": "password"}}},
                 {"user": "ann", "password": "pw"}, id="basic"),
])
async def test_authenticated_sources(tmp_path: Path, nats_server: NatsServer, started: Any, auth_block: str,
                                     auth: dict[str, Any], publisher: dict[str, str]) -> None:
    with SourceServer(tmp_path / "auth-source", auth=auth_block) as server:
        backoff = {"duration": "10ms", "steps": 1}
        with pytest.raises(BusUnavailable, match="nats EventSource nats-es/refused: cannot connect"):
            await started({"refused": {"subject": "s", "connectionBackoff": backoff}}, url=server.url)
        await started({"ok": {"subject": "s", "jsonBody": True, "auth": auth}}, url=server.url)
        await publish(server.url, "s", b'{"authenticated": true}', **publisher)
        (event,) = await events_in_stream(nats_server.url, 1)
        assert event.data["body"] == {"authenticated": True}


async def test_messages_on_the_bus_subjects_are_not_republished(nats_server: NatsServer, started: Any) -> None:
    source = await started({"everything": {"subject": ">", "jsonBody": True}})
    await publish(nats_server.url, "orders", b'{"n": 1}')
    (event,) = await events_in_stream(nats_server.url, 1)
    assert event.data["subject"] == "orders"
    # The stored event, JetStream's ack and this test's stream reads were delivered to `>` too; they
    # were ignored, not stored again (and again).
    await publish(nats_server.url, "orders", b'{"n": 2}')
    await events_in_stream(nats_server.url, 2)
    assert [e.data["subject"] for e in await events_in_stream(nats_server.url, 2)] == ["orders", "orders"]
    assert source.lost == 0


def test_describe_names_each_subscription(tmp_path: Path) -> None:
    bundle = manifests(tmp_path, "nats://127.0.0.1:4222", {"a": {"subject": "x.>", "queue": "q"}})
    source = NatsSource(bundle.eventsources, secret=secret_lookup(bundle))
    assert source.describe() == ["subscribed: nats://127.0.0.1:4222 subject x.> queue q (nats-es/a)"]


# --- pure parts -----------------------------------------------------------------------------------


def spec(**fields: Any) -> NATSEventsSource:
    return NATSEventsSource.model_validate({"url": "nats://127.0.0.1:4222", "subject": "s", **fields})


@pytest.mark.parametrize(("fields", "payload", "headers", "expected"), [
    pytest.param({"jsonBody": True}, b'{"a": [1, 2.5]}', None, {"subject": "s.x", "body": {"a": [1, 2.5]}},
                 id="json"),
    pytest.param({}, b"hello", None, {"subject": "s.x", "body": "aGVsbG8="}, id="bytes-as-base64"),
    pytest.param({}, b"", {"K": "v"}, {"subject": "s.x", "body": "", "header": {"K": ["v"]}}, id="header-lists"),
    pytest.param({}, b"", {"authorization": "Bearer x"}, {"subject": "s.x", "body": "",
                                                          "header": {"authorization": [MASK]}}, id="secret-masked"),
    pytest.param({"metadata": {"m": "1"}}, b"x", {}, {"subject": "s.x", "body": "eA==", "metadata": {"m": "1"}},
                 id="metadata-and-empty-headers-omitted"),
])
def test_event_data_has_argos_nats_shape(fields: dict[str, Any], payload: bytes, headers: dict[str, str] | None,
                                        expected: dict[str, Any]) -> None:
    assert natssource.event_data(spec(**fields), "s.x", payload, headers) == expected


def test_a_json_body_that_is_not_json_is_an_error() -> None:
    with pytest.raises(natssource.NatsMessageError, match="not JSON"):
        natssource.event_data(spec(jsonBody=True), "s", b"nope", None)


def test_the_message_id_is_nats_msg_id_else_a_hash_of_subject_headers_and_body() -> None:
    assert natssource.message_id("s", b"x", {"Nats-Msg-Id": "m-1"}) == "m-1"
    base = natssource.message_id("s", b"x", None)
    assert base == natssource.message_id("s", b"x", {})
    assert len({base, natssource.message_id("t", b"x", None), natssource.message_id("s", b"y", None),
                natssource.message_id("s", b"x", {"K": "v"})}) == 4


@pytest.mark.parametrize(("value", "seconds"), [
    pytest.param("10s", 10.0, id="seconds"), pytest.param("1m30s", 90.0, id="compound"),
    pytest.param("500ms", 0.5, id="millis"), pytest.param("1.5h", 5400.0, id="fraction"),
    pytest.param(2_000_000_000, 2.0, id="nanoseconds-int"), pytest.param("3000000000", 3.0, id="nanoseconds-str"),
    pytest.param("0", 0.0, id="zero"),
])
def test_go_durations(value: int | str, seconds: float) -> None:
    assert natssource.go_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["10x", "s", "1m 30s", "", "-"])
def test_bad_go_durations(value: str) -> None:
    with pytest.raises(ValueError):
        natssource.go_duration(value)


def test_connection_backoff_follows_argos_steps_and_factor() -> None:
    assert natssource.backoff_delays(Backoff(duration="1s", steps=4, factor=2, jitter=0)) == [1.0, 2.0, 4.0]
    assert natssource.backoff_delays(Backoff(steps=1)) == []
    assert len(natssource.backoff_delays(None)) == 4  # Argo's default: 5 attempts


@pytest.mark.parametrize(("entry", "path", "message"), [
    pytest.param({"auth": {"nkey": {"name": "s", "key": "k"}}}, "auth.nkey", "not supported by hookgate",
                 id="nkey"),
    pytest.param({"auth": {"credential": {"name": "s", "key": "k"}}}, "auth.credential", "not supported",
                 id="credential"),
    pytest.param({"tls": {"caCertSecret": {"name": "s", "key": "ca"}}}, "tls", "not supported", id="tls"),
    pytest.param({"connectionBackoff": {"duration": "10 seconds"}}, "connectionBackoff.duration",
                 "invalid duration", id="bad-duration"),
    pytest.param({"connectionBackoff": {"factor": "two"}}, "connectionBackoff.factor", "not a decimal",
                 id="bad-factor"),
    pytest.param({"subjct": "x"}, "subjct", "unknown field", id="typo"),
])
def test_unsupported_or_invalid_settings_are_load_errors(tmp_path: Path, entry: dict[str, Any], path: str,
                                                         message: str) -> None:
    with pytest.raises(ManifestError) as err:
        manifests(tmp_path, "nats://127.0.0.1:4222", {"ev": {"subject": "s", **entry}})
    assert format_path(err.value.path) == f"spec.nats.ev.{path}"
    assert message in err.value.message


def test_argos_nats_example_loads(tmp_path: Path) -> None:
    bundle = manifests(tmp_path, "nats://nats.argo-events.svc:4222", {"example": {
        "jsonBody": True, "subject": "foo", "queue": "my-queue",
        "connectionBackoff": {"duration": "10s", "steps": 5, "factor": 2, "jitter": 0.2}}})
    (es,) = bundle.eventsources
    assert es.spec.nats["example"].connectionBackoff is not None
