"""The spool: its files (append, read, commit, reopen, torn tails, CRC damage, bound) and, over a real
nats-server, its hand-off to JetStream (direct when empty, in order through the disk otherwise).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import nats
import pytest

from gateway.bus import Bus, PublishResult, StreamSettings
from gateway.errors import EventTooLarge
from gateway.metrics import Metrics
from gateway.server import Gateway, build_routes
from gateway.spool import Position, Record, Spool, Spooled, SpoolError, SpoolFull, SpoolLog, encode
from hookgate.embedded import NatsServer
from hookgate.manifests import load
from tests.conftest import fixture_bytes, free_port, until
from tests.gateway.test_listener import ReadyFlag, gitlab_headers, secret_lookup, write_manifests

STREAM = "HOOKGATE"


def events(n: int, *, size: int = 10, prefix: str = "d") -> list[tuple[str, str, bytes]]:
    return [(f"hookgate.default.es.ev{i % 3}", f"default/es/ev/{prefix}-{i}", bytes([i % 251]) * (size + i))
            for i in range(n)]


def appended(spool: SpoolLog, batch: list[tuple[str, str, bytes]]) -> list[Position]:
    results = spool.append_many(batch)
    assert all(isinstance(r, Position) for r in results), results
    return [r for r in results if isinstance(r, Position)]


def read_all(spool: SpoolLog) -> list[Record]:
    out: list[Record] = []
    start = spool.start
    for _ in range(10_000):
        batch = spool.read(start, max_records=7)
        if not batch:
            return out
        out += batch
        start = batch[-1].end
    raise AssertionError("read did not come to an end")


def triples(records: list[Record]) -> list[tuple[str, str, bytes]]:
    return [(r.subject, r.msg_id, r.payload) for r in records]


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.seg"))


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def opened(spool_dir: Path) -> Iterator[SpoolLog]:
    spool = SpoolLog.open(spool_dir)
    yield spool
    spool.close()


def reopen(spool: SpoolLog, **limits: int) -> SpoolLog:
    spool.close()
    return SpoolLog.open(spool.directory, **limits)


# --- the files ------------------------------------------------------------------------------------


def test_appended_events_read_back_in_order_with_their_ids_and_bytes(opened: SpoolLog) -> None:
    batch = events(5)
    appended(opened, batch[:2])
    appended(opened, batch[2:])
    assert triples(read_all(opened)) == batch
    assert opened.records == 5
    assert opened.bytes == sum(len(encode(*e)) for e in batch)


def test_a_reopened_spool_has_every_appended_event(opened: SpoolLog) -> None:
    batch = events(4)
    appended(opened, batch)
    again = reopen(opened)
    try:
        assert triples(read_all(again)) == batch
        assert (again.records, again.bytes) == (opened.records, opened.bytes)
    finally:
        again.close()


def test_a_partial_commit_survives_a_reopen(opened: SpoolLog) -> None:
    batch = events(6)
    appended(opened, batch)
    first = opened.read(opened.start, max_records=2)
    opened.commit(first[-1].end, 2, sum(r.size for r in first))
    assert opened.records == 4
    again = reopen(opened)
    try:
        assert triples(read_all(again)) == batch[2:]
        assert again.records == 4
    finally:
        again.close()


def test_committing_everything_removes_every_segment_and_appending_goes_on(opened: SpoolLog) -> None:
    appended(opened, events(3))
    records = read_all(opened)
    opened.commit(records[-1].end, 3, sum(r.size for r in records))
    assert (opened.records, opened.bytes) == (0, 0)
    assert segments(opened.directory) == []
    more = events(2, prefix="after")
    appended(opened, more)
    assert triples(read_all(opened)) == more
    again = reopen(opened)
    try:
        assert triples(read_all(again)) == more
    finally:
        again.close()


def test_segments_rotate_and_a_drain_across_them_keeps_order(spool_dir: Path) -> None:
    spool = SpoolLog.open(spool_dir, segment_bytes=200)
    try:
        batch = events(40)
        for e in batch:
            appended(spool, [e])
        assert len(segments(spool_dir)) > 5
        records = read_all(spool)
        assert triples(records) == batch
        half = records[19]
        spool.commit(half.end, 20, sum(r.size for r in records[:20]))
        assert all(int(p.stem) >= half.end.segment for p in segments(spool_dir))
        spool = reopen(spool, segment_bytes=200)
        assert triples(read_all(spool)) == batch[20:]
    finally:
        spool.close()


@pytest.mark.parametrize("cut", [1, 5, 8, 9, 20, -1], ids=lambda c: f"cut-{c}")
def test_a_torn_last_record_is_discarded_on_open(opened: SpoolLog, cut: int) -> None:
    batch = events(3)
    appended(opened, batch)
    (segment,) = segments(opened.directory)
    good = segment.stat().st_size
    frame = encode("hookgate.default.es.ev", "default/es/ev/torn", b"x" * 40)
    with open(segment, "ab") as f:  # what a crash leaves when the fsync never returned
        f.write(frame[:cut])
    again = reopen(opened)
    try:
        assert segment.stat().st_size == good
        assert triples(read_all(again)) == batch
        appended(again, [("s", "after-the-tear", b"p")])
        assert [r.msg_id for r in read_all(again)][-1] == "after-the-tear"
    finally:
        again.close()


def test_a_zero_filled_tail_is_not_mistaken_for_records(opened: SpoolLog) -> None:
    batch = events(2)
    appended(opened, batch)
    (segment,) = segments(opened.directory)
    with open(segment, "ab") as f:  # some filesystems extend a file with zeros after a crash
        f.write(b"\0" * 64)
    again = reopen(opened)
    try:
        assert triples(read_all(again)) == batch
    finally:
        again.close()


def test_a_crc_mismatch_in_the_last_segment_cuts_it_there(opened: SpoolLog) -> None:
    batch = events(4, size=30)
    positions = appended(opened, batch)
    (segment,) = segments(opened.directory)
    raw = bytearray(segment.read_bytes())
    raw[positions[2].offset - 1] ^= 0xFF  # last payload byte of the third record
    segment.write_bytes(bytes(raw))
    again = reopen(opened)
    try:
        assert triples(read_all(again)) == batch[:2]
        assert segment.stat().st_size == positions[1].offset
    finally:
        again.close()


def test_a_crc_mismatch_in_an_older_segment_keeps_the_bytes_aside_and_the_rest(spool_dir: Path) -> None:
    spool = SpoolLog.open(spool_dir, segment_bytes=150)
    batch = events(12)
    positions = [appended(spool, [e])[0] for e in batch]
    first_segment = positions[0].segment
    in_first = [i for i, p in enumerate(positions) if p.segment == first_segment]
    assert len(in_first) >= 2 and len(segments(spool_dir)) >= 2
    path = segments(spool_dir)[0]
    raw = bytearray(path.read_bytes())
    raw[positions[in_first[1]].offset - 1] ^= 0xFF  # damage the second record of the first segment
    path.write_bytes(bytes(raw))
    spool = reopen(spool, segment_bytes=150)
    try:
        kept = [e for i, e in enumerate(batch) if i not in in_first[1:]]
        assert triples(read_all(spool)) == kept
        (aside,) = spool_dir.glob("*.corrupt-*")
        assert aside.read_bytes() == bytes(raw[positions[in_first[0]].offset:])
    finally:
        spool.close()


def test_a_segment_whose_creation_was_interrupted_is_removed(opened: SpoolLog) -> None:
    batch = events(2)
    appended(opened, batch)
    (segment,) = segments(opened.directory)
    stub = opened.directory / f"{int(segment.stem) + 1:016d}.seg"
    stub.write_bytes(b"HGSP")
    again = reopen(opened)
    try:
        assert not stub.exists()
        assert triples(read_all(again)) == batch
    finally:
        again.close()


def test_a_damaged_cursor_replays_everything_rather_than_losing_anything(opened: SpoolLog) -> None:
    batch = events(5)
    appended(opened, batch)
    first = opened.read(opened.start, max_records=3)
    opened.commit(first[-1].end, 3, sum(r.size for r in first))
    (opened.directory / "cursor").write_bytes(b"\x01" * 20)
    again = reopen(opened)
    try:
        assert triples(read_all(again)) == batch  # JetStream's dedupe absorbs the replayed three
    finally:
        again.close()


def test_the_byte_bound_refuses_with_spool_full_and_frees_up_after_a_commit(spool_dir: Path) -> None:
    one = len(encode(*events(1, size=100)[0]))
    spool = SpoolLog.open(spool_dir, max_bytes=3 * one + 10)
    try:
        batch = events(4, size=100)
        results = spool.append_many([(s, m, p[:100]) for s, m, p in batch])
        assert [type(r) for r in results] == [Position, Position, Position, SpoolFull]
        assert spool.records == 3 and spool.bytes <= spool.max_bytes
        (first, *_) = spool.read(spool.start, max_records=1)
        spool.commit(first.end, 1, first.size)
        assert isinstance(spool.append_many([("s", "again", b"y" * 100)])[0], Position)
    finally:
        spool.close()


def test_a_spool_directory_is_used_by_one_process_at_a_time(opened: SpoolLog) -> None:
    with pytest.raises(SpoolError, match="in use"):
        SpoolLog.open(opened.directory)


@pytest.mark.parametrize("msg_id", ["x" * 70_000, "bad-\udcff"], ids=["too-long", "not-utf8"])
def test_an_id_the_format_cannot_hold_is_an_error_for_that_event_only(opened: SpoolLog, msg_id: str) -> None:
    results = opened.append_many([("s", msg_id, b"p"), ("s", "fine", b"p")])
    assert isinstance(results[0], SpoolError) and isinstance(results[1], Position)
    assert [r.msg_id for r in read_all(opened)] == ["fine"]


def test_a_group_commit_as_large_as_the_writer_makes_reads_back_whole(opened: SpoolLog) -> None:
    batch = events(256, size=1)  # the writer's largest group: 512 buffers in one writev
    appended(opened, batch)
    assert triples(read_all(opened)) == batch


async def test_concurrent_appends_each_get_their_own_place_and_read_back_in_that_order(spool_dir: Path) -> None:
    spool = Spool(spool_dir, Bus("nats://127.0.0.1:1"))  # never connected: every event goes to disk
    await spool.open()
    try:
        ids = [f"c-{i}" for i in range(100)]
        positions = await asyncio.gather(*(spool.append("s", i.encode(), msg_id=i) for i in ids))
        assert len(set(positions)) == 100
        assert spool.depth()[0] == 100 and not spool.empty
    finally:
        await spool.close()
    again = SpoolLog.open(spool_dir)
    try:
        by_position = [i for _, i in sorted(zip(positions, ids, strict=True))]
        assert [r.msg_id for r in read_all(again)] == by_position
    finally:
        again.close()


# --- the hand-off to JetStream (a real nats-server) ----------------------------------------------


async def stream_ids(url: str) -> list[str]:
    """The Nats-Msg-Id of every stored message, in stream order, over a connection of its own."""
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(STREAM)).state
        if not state.messages:
            return []
        msgs = [await js.get_msg(STREAM, seq=s) for s in range(state.first_seq, state.last_seq + 1)]
        return [m.headers["Nats-Msg-Id"] for m in msgs if m.headers]
    finally:
        await nc.close()


async def test_with_the_bus_up_and_the_spool_empty_events_go_straight_to_jetstream(
        bus: Bus, nats_server: NatsServer, spool_dir: Path) -> None:
    spool = Spool(spool_dir, bus)
    await spool.open()
    try:
        result = await spool.publish("hookgate.default.es.ev", b"{}", msg_id="direct-1")
        assert isinstance(result, PublishResult)
        assert segments(spool_dir) == []  # the fast path never writes to the disk
        assert await stream_ids(nats_server.url) == ["direct-1"]
    finally:
        await spool.close()


async def test_events_spooled_while_nats_is_down_are_drained_in_order_when_it_is_back(
        bus: Bus, nats_server: NatsServer, spool_dir: Path) -> None:
    spool = Spool(spool_dir, bus, retry_interval=0.05)
    await spool.open()
    try:
        await asyncio.to_thread(nats_server.stop)
        await until(lambda: not bus.connected, what="the bus to notice NATS is gone")
        ids = [f"down-{i}" for i in range(20)]
        for msg_id in ids:
            assert isinstance(await spool.publish("hookgate.default.es.ev", b"{}", msg_id=msg_id), Spooled)
        assert spool.depth()[0] == 20
        await asyncio.to_thread(nats_server.start)
        await until(lambda: spool.empty, what="the spool to drain")
        assert await stream_ids(nats_server.url) == ids
        assert segments(spool_dir) == []
    finally:
        await spool.close()


async def test_while_the_spool_holds_events_a_new_one_queues_behind_them_even_with_the_bus_up(
        bus: Bus, nats_server: NatsServer, spool_dir: Path) -> None:
    earlier = SpoolLog.open(spool_dir)
    appended(earlier, [("hookgate.default.es.ev", "old-1", b"{}"), ("hookgate.default.es.ev", "old-2", b"{}")])
    earlier.close()
    spool = Spool(spool_dir, bus, retry_interval=0.05)
    await spool.open()
    try:
        assert isinstance(await spool.publish("hookgate.default.es.ev", b"{}", msg_id="new"), Spooled)
        await until(lambda: spool.empty, what="the spool to drain")
        assert await stream_ids(nats_server.url) == ["old-1", "old-2", "new"]
        # Empty again: the next one takes the direct path.
        assert isinstance(await spool.publish("hookgate.default.es.ev", b"{}", msg_id="next"), PublishResult)
    finally:
        await spool.close()


async def test_a_drain_repeated_after_a_crash_stores_each_event_once(
        bus: Bus, nats_server: NatsServer, spool_dir: Path) -> None:
    batch = [("hookgate.default.es.ev", f"crash-{i}", json.dumps({"i": i}).encode()) for i in range(3)]
    earlier = SpoolLog.open(spool_dir)
    appended(earlier, batch)
    earlier.close()
    # A drain that got JetStream's acks for two events and died before recording them.
    for subject, msg_id, payload in batch[:2]:
        await bus.publish(subject, payload, msg_id=msg_id)
    spool = Spool(spool_dir, bus, retry_interval=0.05)
    await spool.open()
    try:
        await until(lambda: spool.empty, what="the spool to drain")
        assert await stream_ids(nats_server.url) == ["crash-0", "crash-1", "crash-2"]
    finally:
        await spool.close()


async def test_a_full_spool_means_503_and_the_depth_is_in_the_metrics(
        bus: Bus, nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    write_manifests(tmp_path / "manifests", shared_port=port, webhook_port=free_port())
    bundle = load([tmp_path / "manifests"])
    raw = fixture_bytes("gitlab", "merge_request.open.json")
    metrics = Metrics()
    # A spooled event takes about its raw body (compacted JSON plus the envelope): room for two.
    spool = Spool(tmp_path / "spool", bus, max_bytes=int(2.5 * len(raw)))
    metrics.watch_spool(spool.depth)
    gateway = Gateway(build_routes(bundle.eventsources, bus=bus, secret=secret_lookup(bundle)), bus=bus,
                      metrics=metrics, ready=ReadyFlag(), spool=spool)
    await gateway.start("127.0.0.1")
    try:
        await asyncio.to_thread(nats_server.stop)
        await until(lambda: not bus.connected, what="the bus to notice NATS is gone")
        async with aiohttp.ClientSession() as http:
            statuses = []
            for key in ("full-1", "full-2", "full-3"):
                async with http.post(f"http://127.0.0.1:{port}/gitlab", data=raw,
                                     headers=gitlab_headers(key=key)) as resp:
                    statuses.append((resp.status, await resp.text()))
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
        assert [s for s, _ in statuses] == [200, 200, 503]
        assert "spool is full" in statuses[2][1]
        assert "hookgate_spool_records 2.0" in text
        assert 'hookgate_events_spooled_total{event="mr",eventsource="gitlab-es"} 2.0' in text
    finally:
        await gateway.stop()


async def test_an_event_the_bus_could_never_take_is_refused_not_spooled(tmp_path: Path) -> None:
    bus = Bus("nats://127.0.0.1:1", StreamSettings(max_msg_size=64 * 1024))  # never connected: NATS "down"
    spool = Spool(tmp_path / "spool", bus)
    await spool.open()
    try:
        with pytest.raises(EventTooLarge):
            await spool.publish("hookgate.x.y.z", b"x" * 65 * 1024, msg_id="big")
        assert spool.depth() == (0, 0)
    finally:
        await spool.close()
