"""The JetStream publisher over a real nats-server: what each kind of answer (or its absence) becomes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StreamConfig

from gateway.bus import Bus, Consumer, Delivery, PublishResult, leading_acks, safe_url
from gateway.errors import BusError, BusUnavailable, EventTooLarge
from hookgate.embedded import NatsServer
from tests.conftest import until


@pytest.fixture(params=["lean", "nats-py"])
async def bus(request: pytest.FixtureRequest, nats_server: NatsServer) -> Any:
    """Every test here runs on both publish paths: hookgate's lean one and nats-py's own."""
    b = Bus(nats_server.url, lean=request.param == "lean")
    await b.connect()
    assert b._lean == (request.param == "lean")  # the lean path must not silently be off
    try:
        await b.ensure_stream()
        yield b
    finally:
        await b.close()


async def stored(nats_server: NatsServer, seq: int) -> tuple[bytes, bytes]:
    """The header block and the data of stored message `seq`, byte for byte as the server keeps them."""
    nc = await nats.connect(nats_server.url)
    try:
        reply = await nc.request("$JS.API.STREAM.MSG.GET.HOOKGATE", json.dumps({"seq": seq}).encode(), timeout=5)
    finally:
        await nc.close()
    message = json.loads(reply.data)["message"]
    return base64.b64decode(message["hdrs"]), base64.b64decode(message["data"])


@pytest.mark.parametrize("msg_id", ["default/es/push/é-{n}", "  padded-{n}\t", "line\r\nbreak-{n}", "\x7fdel-{n}"])
async def test_both_publish_paths_store_the_same_message(nats_server: NatsServer, bus: Bus, msg_id: str) -> None:
    other = Bus(nats_server.url, lean=not bus._lean)
    await other.connect()
    try:
        payload = bytes(range(256)) * 40  # any bytes, CR and LF included
        a = await bus.publish("hookgate.default.es.push", payload, msg_id=msg_id.format(n=1))
        b = await other.publish("hookgate.default.es.push", payload, msg_id=msg_id.format(n=2))
    finally:
        await other.close()
    (headers_a, data_a), (headers_b, data_b) = [await stored(nats_server, r.sequence) for r in (a, b)]
    assert data_a == data_b == payload
    assert headers_a.replace(b"-1", b"-2") == headers_b  # byte for byte, whichever path sent it
    if msg_id.startswith("default"):
        expected = "NATS/1.0\r\nNats-Msg-Id: default/es/push/é-1\r\nNats-Expected-Stream: HOOKGATE\r\n\r\n"
        assert headers_a == expected.encode()


@pytest.mark.parametrize("msg_id", ["  padded\t", "line\r\nbreak", "tab\tinside", "\x7fdel"])
async def test_an_id_nats_py_rewrites_is_the_same_id_on_both_paths(nats_server: NatsServer, bus: Bus,
                                                                   msg_id: str) -> None:
    other = Bus(nats_server.url, lean=not bus._lean)
    await other.connect()
    try:
        first = await bus.publish("hookgate.default.es.push", b"{}", msg_id=msg_id)
        again = await other.publish("hookgate.default.es.push", b"{}", msg_id=msg_id)
    finally:
        await other.close()
    assert again == PublishResult(first.sequence, True)  # the same id reached the server both times


@pytest.mark.parametrize("release", ["2.9.0", "3.0.0", "unknown"])
async def test_a_nats_py_release_the_lean_path_was_not_tested_with_gets_nats_pys_path(
        nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, release: str) -> None:
    monkeypatch.setattr("nats.aio.client.__version__", release)
    other = Bus(nats_server.url)
    await other.connect()
    try:
        assert other._lean is False
        await other.ensure_stream()
        assert await other.publish(PUSH, b"{}", msg_id="old") == PublishResult(1, False)
    finally:
        await other.close()


async def test_an_ack_that_cannot_be_matched_costs_that_publish_only(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    if not bus._lean:
        pytest.skip("acks are matched in nats-py's own subscription task on its path")
    acked = bus._acked
    failures = []

    def broken_for_the_first(token: str, data: bytes, status: str | None) -> None:
        if token == "1":  # the first publish's ack, wherever it is read: ahead of nats-py's parser, then in it
            failures.append(token)
            raise RuntimeError("a bug in matching acks")
        acked(token, data, status)

    monkeypatch.setattr(bus, "_acked", broken_for_the_first)
    with pytest.raises(BusUnavailable, match="TimeoutError"):
        await bus.publish(PUSH, b"{}", msg_id="lost-ack", timeout=1)
    assert failures == ["1", "1"]  # read ahead of nats-py's parser, failed, then read by it and failed again
    assert bus._nc is not None and bus._nc._reading_task is not None and not bus._nc._reading_task.done()
    assert await bus.publish(PUSH, b"{}", msg_id="next") == PublishResult(2, False)


INBOX = b"_INBOX.abc."
ACK1 = b'{"stream":"HOOKGATE","seq":1}'
ACK2 = b'{"stream":"HOOKGATE","seq":2,"duplicate":true}'


def ack_msg(token: bytes, payload: bytes, *, sid: int = 7, subject: bytes | None = None) -> bytes:
    return b"MSG %s %d %d\r\n%s\r\n" % (subject or INBOX + token, sid, len(payload), payload)


@pytest.mark.parametrize(("data", "acks", "rest"), [
    pytest.param(b"", [], b"", id="nothing"),
    pytest.param(ack_msg(b"1", ACK1) + ack_msg(b"22", ACK2), [("1", ACK1), ("22", ACK2)], b"", id="two-whole-acks"),
    pytest.param(ack_msg(b"1", ACK1) + ack_msg(b"2", ACK2)[:-3], [("1", ACK1)], ack_msg(b"2", ACK2)[:-3],
                 id="the-read-cut-the-second"),
    pytest.param(ack_msg(b"1", ACK1) + b"PING\r\n" + ack_msg(b"2", ACK2), [("1", ACK1)],
                 b"PING\r\n" + ack_msg(b"2", ACK2), id="a-ping-ends-them"),
    pytest.param(ack_msg(b"1", ACK1, sid=8), [], ack_msg(b"1", ACK1, sid=8), id="another-subscription"),
    pytest.param(ack_msg(b"1", ACK1, subject=b"_INBOX.other.1"), [], ack_msg(b"1", ACK1, subject=b"_INBOX.other.1"),
                 id="another-inbox"),
    pytest.param(b"MSG _INBOX.abc.1 7 reply.to 2\r\n{}\r\n", [], b"MSG _INBOX.abc.1 7 reply.to 2\r\n{}\r\n",
                 id="with-a-reply-subject"),
    pytest.param(b"HMSG _INBOX.abc.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n", [],
                 b"HMSG _INBOX.abc.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n", id="a-status-with-headers"),
    pytest.param(ack_msg(b"1", b'{"a":"\r\nMSG x 7 1\r\n"}'), [("1", b'{"a":"\r\nMSG x 7 1\r\n"}')], b"",
                 id="framed-by-size-not-by-content"),
    pytest.param(b"MSG _INBOX.abc.1 7 2\r\n{}xx", [], b"MSG _INBOX.abc.1 7 2\r\n{}xx", id="no-CRLF-after-the-payload"),
    pytest.param(b"MSG  _INBOX.abc.1 7 2\r\n{}\r\n", [], b"MSG  _INBOX.abc.1 7 2\r\n{}\r\n", id="odd-spacing"),
])
def test_leading_acks_takes_whole_acks_of_the_inbox_and_nothing_else(data: bytes, acks: list[tuple[str, bytes]],
                                                                      rest: bytes) -> None:
    found, taken = leading_acks(data, 7, INBOX)
    assert found == acks
    assert data[taken:] == rest


async def test_a_publish_is_stored_when_nats_pys_buffer_is_over_its_limit(bus: Bus) -> None:
    assert bus._nc is not None
    # As if connected with pending_size=1: every publish goes over the limit, which nats-py's own path
    # handles (it waits for its flusher), on either Bus.
    bus._nc._max_pending_size = 1
    # A 1 s ack timeout: the server's own first PING, ~2 s after connecting, would also flush them.
    results = await asyncio.gather(*(bus.publish(PUSH, b"{}", msg_id=f"f-{i}", timeout=1) for i in range(20)))
    assert sorted(r.sequence for r in results) == list(range(1, 21))


async def test_a_publish_is_written_when_nats_pys_flusher_is_gone(bus: Bus) -> None:
    assert bus._nc is not None and bus._nc._flusher_task is not None
    bus._nc._flusher_task.cancel()  # what Python < 3.11's SIGINT handling could do, as nats-py notes
    with pytest.raises(asyncio.CancelledError):
        await bus._nc._flusher_task
    results = await asyncio.gather(*(bus.publish(PUSH, b"{}", msg_id=f"g-{i}", timeout=1) for i in range(20)))
    assert sorted(r.sequence for r in results) == list(range(1, 21))


@pytest.mark.parametrize("lean", [True, False])
async def test_a_payload_over_the_servers_max_payload_is_too_large_and_the_bus_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lean: bool) -> None:
    monkeypatch.setattr("hookgate.embedded.MAX_PAYLOAD", 64 * 1024)  # the server's setting, as an operator's
    with NatsServer(tmp_path) as server:
        small = Bus(server.url, lean=lean)
        await small.connect()
        try:
            await small.ensure_stream()
            with pytest.raises(EventTooLarge, match=r"over the NATS server's max_payload \(65536\)"):
                await small.publish("hookgate.default.es.push", b"x" * (64 * 1024 + 1), msg_id="big")
            # Under the limit alone, over it with the headers: sent, the server would close the
            # connection and fail every publish in flight with it.
            with pytest.raises(EventTooLarge, match=r"with its headers over the NATS server's max_payload"):
                await small.publish("hookgate.default.es.push", b"x" * (64 * 1024 - 10), msg_id="almost")
            fits = await small.publish("hookgate.default.es.push", b"x" * (60 * 1024), msg_id="fits")
            assert small._nc is not None and small._nc.stats["reconnects"] == 0  # never dropped
        finally:
            await small.close()
    assert fits == PublishResult(1, False)


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


# Fetching: every consumer's pull requests share one reply inbox per connection.

PUSH = "hookgate.default.es.push"


async def publish(bus: Bus, count: int, subject: str = PUSH, *, first: int = 0) -> None:
    for i in range(first, first + count):
        await bus.publish(subject, b"%d" % i, msg_id=f"{subject}/{i}")


async def fetch_all(consumer: Consumer, count: int, *, timeout: float = 15) -> list[Delivery]:
    """Fetch until `count` deliveries came: the server may split what it has over several answers."""
    got: list[Delivery] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        got += await consumer.fetch(count - len(got), timeout=1)
    return got


async def server_waiting(bus: Bus, consumer: Consumer) -> None:
    """Until JetStream itself holds the consumer's pull request, not only this process."""
    deadline = asyncio.get_running_loop().time() + 15
    while not (await bus.js.consumer_info(bus.settings.name, consumer.name)).num_waiting:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"JetStream never had a pull request of {consumer.name}")
        await asyncio.sleep(0.01)


def stopped(server: NatsServer) -> bool:
    """Whether every thread of a SIGSTOPped server has stopped: one on another core may still read."""
    assert server._proc is not None
    tasks = Path(f"/proc/{server._proc.pid}/task")
    return all((t / "stat").read_text().rsplit(") ", 1)[1].startswith("T") for t in tasks.iterdir())


async def test_a_fetch_returns_what_is_there_up_to_its_batch_without_waiting_for_more(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    await publish(bus, 5)
    loop = asyncio.get_running_loop()
    first = await consumer.fetch(3, timeout=10)
    started = loop.time()
    rest = await consumer.fetch(10, timeout=10)
    assert loop.time() - started < 5  # the 404 after the last message ends it, not the 10 s
    assert [d.data for d in first] == [b"0", b"1", b"2"]
    assert [d.data for d in first + rest] == [b"%d" % i for i in range(5)]  # a fetch may get fewer
    assert {d.subject for d in first + rest} == {PUSH}
    assert bus._pulls == {}


async def test_a_waiting_fetch_returns_as_soon_as_a_message_comes(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=60))
    await server_waiting(bus, consumer)
    await publish(bus, 1)
    assert [d.data for d in await asyncio.wait_for(fetch, 10)] == [b"0"]


async def test_a_fetch_with_nothing_to_deliver_returns_nothing_at_its_timeout(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await consumer.fetch(10, timeout=0.5) == []
    assert 0.5 <= loop.time() - started < 3
    assert bus._pulls == {} and consumer._held == []


async def test_concurrent_fetches_of_two_consumers_each_get_only_their_own(bus: Bus) -> None:
    a_subject, b_subject = "hookgate.default.es.a", "hookgate.default.es.b"
    a = await bus.ensure_consumer("a", [a_subject])
    b = await bus.ensure_consumer("b", [b_subject])
    fetch_a = asyncio.ensure_future(a.fetch(10, timeout=60))
    fetch_b = asyncio.ensure_future(b.fetch(10, timeout=60))
    await server_waiting(bus, a)
    await server_waiting(bus, b)
    await publish(bus, 1, b_subject)
    assert [(d.subject, d.data) for d in await asyncio.wait_for(fetch_b, 10)] == [(b_subject, b"0")]
    assert not fetch_a.done()
    await publish(bus, 1, a_subject)
    assert [(d.subject, d.data) for d in await asyncio.wait_for(fetch_a, 10)] == [(a_subject, b"0")]

    await publish(bus, 30, a_subject, first=1)
    await publish(bus, 20, b_subject, first=1)
    got_a, got_b = await asyncio.gather(fetch_all(a, 30), fetch_all(b, 20))
    assert [d.data for d in got_a] == [b"%d" % i for i in range(1, 31)] and {d.subject for d in got_a} == {a_subject}
    assert [d.data for d in got_b] == [b"%d" % i for i in range(1, 21)] and {d.subject for d in got_b} == {b_subject}


async def test_fetched_messages_ack_nak_and_report_progress(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    await publish(bus, 2)
    kept, refused = await fetch_all(consumer, 2)
    assert (kept.attempt, refused.attempt) == (1, 1)
    await kept.in_progress()
    await kept.ack()
    await refused.nak()
    [again] = await fetch_all(consumer, 1)
    assert (again.data, again.attempt, again.stream_sequence) == (refused.data, 2, refused.stream_sequence)
    await again.ack()
    assert await consumer.fetch(10, timeout=0.5) == []
    info = await bus.js.consumer_info(bus.settings.name, consumer.name)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)


async def test_a_message_delivered_after_its_fetch_was_cancelled_goes_to_the_next_fetch(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=60))
    await server_waiting(bus, consumer)
    fetch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetch
    await publish(bus, 1)  # JetStream still holds the request: it delivers to it
    await until(lambda: bool(consumer._held), what="the message to reach the ended fetch's inbox")
    loop = asyncio.get_running_loop()
    started = loop.time()
    [delivery] = await consumer.fetch(10, timeout=60)
    assert loop.time() - started < 1 and delivery.data == b"0"
    await delivery.ack()
    assert await consumer.fetch(10, timeout=0.5) == []


async def test_messages_of_a_fetch_cancelled_just_after_its_answer_go_to_the_next_fetch(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    await publish(bus, 2)
    fetch = asyncio.ensure_future(consumer.fetch(2, timeout=60))
    end_pull = bus._end_pull

    def answer_then_cancel(pull: Any, error: Exception | None = None) -> None:
        end_pull(pull, error)  # the fetch's answer is set...
        fetch.cancel()  # ...and the task is cancelled before it can resume with it

    monkeypatch.setattr(bus, "_end_pull", answer_then_cancel)
    with pytest.raises(asyncio.CancelledError):
        await fetch
    monkeypatch.undo()
    got = await consumer.fetch(10, timeout=5)
    assert [d.data for d in got] == [b"0", b"1"]


async def test_messages_held_at_close_are_handed_back_at_once_not_after_ack_wait(
        nats_server: NatsServer, bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH], ack_wait=60)
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=60))
    await server_waiting(bus, consumer)
    fetch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetch
    await publish(bus, 1)
    await until(lambda: bool(consumer._held), what="the message to be held for a next fetch")
    await bus.close()  # a sensor stopping, or scaled down, with a message in hand

    other = Bus(nats_server.url)  # a replica, or the same sensor restarted
    await other.connect()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        [delivery] = await (await other.ensure_consumer("c", [PUSH], ack_wait=60)).fetch(10, timeout=30)
        assert loop.time() - started < 10 and (delivery.data, delivery.attempt) == (b"0", 2)
    finally:
        await other.close()


async def test_a_message_delivered_after_its_fetch_timed_out_goes_to_the_next_fetch(
        nats_server: NatsServer, bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    assert nats_server._proc is not None
    os.kill(nats_server._proc.pid, signal.SIGSTOP)  # the request waits in the socket, unread
    await until(lambda: stopped(nats_server), what="every nats-server thread to stop")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(consumer.fetch(10, timeout=0.5), 10) == []
        assert loop.time() - started >= 0.5 and bus._pulls == {}  # ended here: the server never answered
    finally:
        os.kill(nats_server._proc.pid, signal.SIGCONT)
    # The server now reads the request, and its 0.5 s start from there: this message goes to it.
    await publish(bus, 1)
    await until(lambda: bool(consumer._held), what="the message to reach the timed-out fetch's inbox")
    [delivery] = await consumer.fetch(10, timeout=60)
    assert delivery.data == b"0" and delivery.attempt == 1
    await delivery.ack()


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_a_server_restart_ends_a_waiting_fetch_and_later_fetches_work_again(
        nats_server: NatsServer, bus: Bus, how: str) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=120))
    await server_waiting(bus, consumer)
    getattr(nats_server, how)()  # a stopping server says so (409 Server Shutdown); a killed one is gone
    with pytest.raises(BusUnavailable, match=r"Server Shutdown|connection to NATS lost"):
        await asyncio.wait_for(fetch, 30)  # far inside its 120 s
    await until(lambda: not bus.connected, what="the bus to see the connection gone")
    with pytest.raises(BusUnavailable, match="not connected"):
        await consumer.fetch(10, timeout=1)
    nats_server.start()
    await until(lambda: bus.connected, what="the bus to reconnect")
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=60))
    await server_waiting(bus, consumer)  # a new request, on the new server
    await publish(bus, 1)
    assert [d.data for d in await asyncio.wait_for(fetch, 10)] == [b"0"]


async def test_closing_the_bus_ends_a_waiting_fetch_at_once(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=120))
    await server_waiting(bus, consumer)
    await asyncio.wait_for(bus.close(), 5)
    with pytest.raises(BusUnavailable, match="closed"):
        await asyncio.wait_for(fetch, 1)
    assert bus._pulls == {}
    with pytest.raises(BusUnavailable):
        await consumer.fetch(10, timeout=1)


async def test_a_fetch_of_a_deleted_consumer_is_a_bus_error(bus: Bus) -> None:
    consumer = await bus.ensure_consumer("c", [PUSH])
    fetch = asyncio.ensure_future(consumer.fetch(10, timeout=120))
    await server_waiting(bus, consumer)
    await bus.js.delete_consumer(bus.settings.name, consumer.name)
    with pytest.raises(BusError, match="409 Consumer Deleted"):
        await asyncio.wait_for(fetch, 10)
    with pytest.raises(BusError, match="no such consumer"):
        await asyncio.wait_for(consumer.fetch(10, timeout=60), 10)


@pytest.mark.parametrize(("url", "shown"), [
    ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
    ("nats://alice:s3cret@nats:4222", "nats://alice:***@nats:4222"),
    ("nats://s3cret-token@nats:4222", "nats://***@nats:4222"),
    ("nats://alice:pa,ss@nats:4222", "nats://alice:***@nats:4222"),  # nats-py reads one URL, comma and all
    ("nats://tok,en@nats:4222", "nats://***@nats:4222"),
    ("tls://u:p@s@host:4222", "tls://u:***@host:4222"),
    ("127.0.0.1:4222", "127.0.0.1:4222"),
])
def test_urls_in_logs_never_show_a_password_or_token(url: str, shown: str) -> None:
    assert safe_url(url) == shown


async def test_a_failed_connect_names_the_server_but_not_its_password() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = Bus(f"nats://alice:s3cret@127.0.0.1:{port}")
    with pytest.raises(BusUnavailable) as err:
        await bus.connect(timeout=0.5)
    assert f"nats://alice:***@127.0.0.1:{port}" in str(err.value)
    assert "s3cret" not in str(err.value)
    assert not str(err.value).endswith(": ")  # the reason is named, even when nats-py gives none
