"""The JetStream publisher over a real nats-server: what each kind of answer (or its absence) becomes."""

from __future__ import annotations

import asyncio
import os
import signal

import nats
import pytest
from nats.js.api import StreamConfig

from gateway.bus import Bus, PublishResult
from gateway.errors import BusError, BusUnavailable
from hookgate.embedded import NatsServer
from tests.conftest import until


async def test_a_publish_returns_the_stored_sequence_and_a_repeated_id_is_a_duplicate(bus: Bus) -> None:
    first = await bus.publish("hookgate.default.es.push", b'{"a":1}', msg_id="default/es/push/1")
    second = await bus.publish("hookgate.default.es.push", b'{"a":2}', msg_id="default/es/push/2")
    again = await bus.publish("hookgate.default.es.push", b'{"a":1}', msg_id="default/es/push/1")
    assert (first, second) == (PublishResult(1, False), PublishResult(2, False))
    assert again == PublishResult(1, True)


async def test_concurrent_publishes_each_get_their_own_ack(bus: Bus) -> None:
    results = await asyncio.gather(*(bus.publish("hookgate.default.es.push", b"{}", msg_id=f"id-{i}")
                                     for i in range(200)))
    assert sorted(r.sequence for r in results) == list(range(1, 201))
    assert not any(r.duplicate for r in results)


async def test_a_subject_no_stream_takes_is_unavailable_not_an_ack(bus: Bus) -> None:
    with pytest.raises(BusUnavailable, match="no stream"):
        await bus.publish("elsewhere.subject", b"{}", msg_id="x")


async def test_a_stream_that_refuses_the_event_is_a_bus_error_with_its_reason(nats_server: NatsServer,
                                                                               bus: Bus) -> None:
    # Another stream owns these subjects: the expected-stream header makes JetStream refuse, not store.
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().add_stream(StreamConfig(name="OTHER", subjects=["other.>"]))
    finally:
        await nc.close()
    with pytest.raises(BusError, match="JetStream refused the event: expected stream does not match"):
        await bus.publish("other.x", b"{}", msg_id="y")


async def test_a_publish_waiting_for_its_ack_is_answered_when_the_connection_drops(
        nats_server: NatsServer, bus: Bus) -> None:
    assert nats_server._proc is not None
    os.kill(nats_server._proc.pid, signal.SIGSTOP)  # the server takes the message but never answers
    try:
        publish = asyncio.ensure_future(bus.publish("hookgate.default.es.push", b"{}", msg_id="z", timeout=120))
        await until(lambda: bool(bus._acks), what="the publish to wait for its ack")
        nats_server.kill()
        # Far inside the 120 s ack timeout: the lost connection answers it.
        with pytest.raises(BusUnavailable, match="connection to NATS lost"):
            await asyncio.wait_for(publish, 30)
    finally:
        nats_server.kill()


async def test_a_publish_whose_ack_never_comes_times_out(nats_server: NatsServer, bus: Bus) -> None:
    assert nats_server._proc is not None
    os.kill(nats_server._proc.pid, signal.SIGSTOP)  # connected, but nothing answers
    try:
        with pytest.raises(BusUnavailable, match="did not acknowledge: TimeoutError"):
            await asyncio.wait_for(bus.publish("hookgate.default.es.push", b"{}", msg_id="t", timeout=1), 20)
        assert bus._acks == {}  # nothing left waiting
    finally:
        os.kill(nats_server._proc.pid, signal.SIGCONT)
