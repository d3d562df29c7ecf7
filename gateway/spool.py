"""The spool: events kept on local disk while JetStream cannot take them, then drained in order.

Why it exists: GitHub does not retry a failed delivery, so a 503 during a NATS outage loses the
event unless someone redelivers it by hand. With a spool the gateway answers 200 once the event is
fsynced here, and publishes it later with its original `Nats-Msg-Id`: JetStream's duplicate window
turns every replay (say, after a crash between a JetStream ack and the spool's own bookkeeping)
into a no-op, so each event is stored once.

On disk, one directory, held by one process at a time (an `flock` on `lock`):

    <16-digit id>.seg  segments, only ever appended to; each starts with the magic b"HGSPOOL1",
                       then records, big-endian:
                           u32 body length | u32 CRC-32 of (the 4 length bytes + body) | body
                           body = u16 len(subject) | u16 len(msg id) | subject | msg id | payload
    cursor             u64 segment id | u64 offset | u32 CRC-32 of those 16 bytes: every record
                       before that position was acknowledged by JetStream. Replaced atomically.

Segments wholly before the cursor are deleted; once the spool is drained every segment is
deleted, so an idle spool is an empty directory. A process appends only to segments it created;
on open, a record that fails its CRC at the end of the last segment is a write torn by a crash
(its fsync never returned, so it was never answered 200) and is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gateway.bus import Bus, PublishResult, check_size
from gateway.errors import BusError, BusUnavailable, HookgateError

log = logging.getLogger(__name__)

MAGIC = b"HGSPOOL1"
HEADER = len(MAGIC)
_FRAME = struct.Struct(">II")
_LENGTH = struct.Struct(">I")
_NAMES = struct.Struct(">HH")
_CURSOR = struct.Struct(">QQ")
MIN_BODY = _NAMES.size
MAX_RECORD = 64 * 1024**2  # far above any payload the listeners accept: a larger length is garbage
DEFAULT_MAX_BYTES = 1024**3
DEFAULT_SEGMENT_BYTES = 64 * 1024**2
GROUP_RECORDS = 256  # one fsync covers every append queued meanwhile, up to these bounds
GROUP_BYTES = 8 * 1024**2
READ_RECORDS = 256
READ_BYTES = 4 * 1024**2  # keeps a drain batch small next to the gateway's memory limit
_CHUNK = 1024**2


class SpoolError(HookgateError):
    """The spool cannot keep an event (or cannot be opened)."""


class SpoolFull(SpoolError):
    """Keeping the event would take the spool over its byte bound."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    subject: str
    msg_id: str
    payload: bytes
    end: Position  # just past this record: the cursor once JetStream acknowledged it
    size: int  # bytes on disk, framing included


@dataclass(frozen=True, slots=True)
class Spooled:
    """`Spool.publish` kept the event on disk; JetStream gets it when the drain reaches it."""

    position: Position
    waiting: int  # events in the spool right after this one was added


def encode(subject: str, msg_id: str, payload: bytes) -> bytes:
    """One record as it sits on disk."""
    return b"".join(frame_parts(subject, msg_id, payload))


def frame_parts(subject: str, msg_id: str, payload: bytes) -> tuple[bytes, bytes]:
    """(framing + names, payload): written with writev, so a 25 MiB payload is never copied."""
    try:
        s, m = subject.encode(), msg_id.encode()
    except UnicodeEncodeError:
        raise SpoolError("subject or message id is not valid UTF-8") from None
    if len(s) > 0xFFFF or len(m) > 0xFFFF:
        raise SpoolError("subject or message id over 65535 bytes")
    body_len = _NAMES.size + len(s) + len(m) + len(payload)
    if body_len > MAX_RECORD:
        raise SpoolError(f"event of {len(payload)} bytes is over the spool's record limit")
    length = _LENGTH.pack(body_len)
    names = _NAMES.pack(len(s), len(m))
    crc = zlib.crc32(payload, zlib.crc32(m, zlib.crc32(s, zlib.crc32(names, zlib.crc32(length)))))
    return b"".join((length, _LENGTH.pack(crc), names, s, m)), payload


def decode(body: bytes) -> tuple[str, str, bytes]:
    ls, lm = _NAMES.unpack_from(body)
    start = _NAMES.size
    subject = body[start:start + ls].decode()
    msg_id = body[start + ls:start + ls + lm].decode()
    return subject, msg_id, body[start + ls + lm:]


def _read_frame(f: BinaryIO, room: int) -> bytes | None:
    """The body of the frame at the file position, or None if it is torn or fails its CRC."""
    if room < _FRAME.size:
        return None
    length, crc = _FRAME.unpack(f.read(_FRAME.size))
    if length < MIN_BODY or length > MAX_RECORD or length > room - _FRAME.size:
        return None
    body = f.read(length)
    if len(body) != length or zlib.crc32(body, zlib.crc32(_LENGTH.pack(length))) != crc:
        return None
    return body


def _skip_frame(f: BinaryIO, room: int) -> int | None:
    """Like `_read_frame` but in chunks, for the scan on open: returns the frame's size."""
    if room < _FRAME.size:
        return None
    length, crc = _FRAME.unpack(f.read(_FRAME.size))
    if length < MIN_BODY or length > MAX_RECORD or length > room - _FRAME.size:
        return None
    c, left = zlib.crc32(_LENGTH.pack(length)), length
    while left:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            return None
        c, left = zlib.crc32(chunk, c), left - len(chunk)
    return _FRAME.size + length if c == crc else None


def _fsync_dir(directory: Path) -> None:
    # A new or removed file name is durable only once its directory is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolLog:
    """The files. Thread-safe; every method may block on the disk: never call it on the event loop."""

    def __init__(self, directory: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.records = 0  # written, fsynced, not yet acknowledged by JetStream
        self.bytes = 0
        self.start = Position(0, 0)  # the first record not acknowledged
        self._sizes: dict[int, int] = {}  # segment id -> bytes known good (fsynced or verified)
        self._active: int | None = None  # the segment this process appends to
        self._fd: int | None = None
        self._next_id = 1
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._broken: str | None = None

    @classmethod
    def open(cls, directory: str | Path, **limits: int) -> SpoolLog:
        spool = cls(directory, **limits)
        try:
            spool._open()
        except OSError as e:  # permissions, a read-only volume, ...: a clear error, not a traceback
            spool.close()
            raise SpoolError(f"cannot open the spool in {spool.directory}: {e}") from e
        return spool

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:016d}.seg"

    # --- open and recovery ------------------------------------------------------------------------

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        cursor = self._read_cursor()
        ids = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        first: Position | None = None
        for segment in ids:
            if segment < cursor.segment:  # acknowledged; the crash came before its deletion
                self._path(segment).unlink()
                continue
            begin = cursor.offset if segment == cursor.segment else HEADER
            pending = self._recover(segment, last=segment == ids[-1], begin=begin)
            if pending is not None and first is None:
                first = Position(segment, pending)
        self._next_id = max([*ids, cursor.segment]) + 1
        self.start = first or Position(self._next_id, HEADER)
        if self.records == 0:
            self._remove_all()  # nothing waits: start from a clean directory
        _fsync_dir(self.directory)

    def _take_lock(self) -> None:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(f"spool {self.directory} is in use by another process") from None
        self._lock_fd = fd

    def _read_cursor(self) -> Position:
        try:
            raw = (self.directory / "cursor").read_bytes()
        except FileNotFoundError:
            return Position(0, 0)
        if len(raw) == _CURSOR.size + 4 and zlib.crc32(raw[:_CURSOR.size]) == _LENGTH.unpack(raw[_CURSOR.size:])[0]:
            return Position(*_CURSOR.unpack(raw[:_CURSOR.size]))
        # Replaced atomically, so this is damage: drain everything again; JetStream dedupes.
        log.error("spool cursor %s is damaged; every spooled event will be published again",
                  self.directory / "cursor")
        return Position(0, 0)

    def _recover(self, segment: int, *, last: bool, begin: int) -> int | None:
        """Verify a segment, cut a torn tail, count its pending records; return the first one's offset."""
        path = self._path(segment)
        size = path.stat().st_size
        with open(path, "rb") as f:
            magic = f.read(HEADER)
            if magic != MAGIC and last and MAGIC.startswith(magic):
                log.warning("spool %s: removed a segment whose creation a crash interrupted", path)
                path.unlink()
                return None
            if magic != MAGIC:
                self._set_aside(path, 0, "no spool header")
                return None
            end, first, count, nbytes = self._scan(f, size, begin)
        if end < size:
            if last:
                log.warning("spool %s: discarded %d bytes of a record torn by a crash (never acknowledged)",
                            path, size - end)
            else:
                self._set_aside(path, end, f"record at offset {end} fails its CRC")
            self._truncate(path, end)
        self._sizes[segment] = end
        self.records += count
        self.bytes += nbytes
        return first

    @staticmethod
    def _scan(f: BinaryIO, size: int, begin: int) -> tuple[int, int | None, int, int]:
        """(end of the last good record, first pending offset, pending records, pending bytes)."""
        pos, first, count, nbytes = HEADER, None, 0, 0
        while pos < size:
            n = _skip_frame(f, size - pos)
            if n is None:
                break
            if pos + n > begin:  # a cursor inside a record (never written so) re-sends that record
                first = pos if first is None else first
                count, nbytes = count + 1, nbytes + n
            pos += n
        return pos, first, count, nbytes

    def _set_aside(self, path: Path, offset: int, why: str) -> None:
        # Not a torn write (a later segment exists): keep the bytes for an operator, never delete them.
        keep = path.with_name(f"{path.name}.corrupt-{offset}")
        with open(path, "rb") as src, open(keep, "wb") as dst:
            src.seek(offset)
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        log.error("spool %s: %s; the bytes from there on are kept in %s", path, why, keep)
        if offset == 0:
            path.unlink()

    @staticmethod
    def _truncate(path: Path, end: int) -> None:
        if not path.exists():
            return
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())

    # --- append -----------------------------------------------------------------------------------

    def append_many(self, events: list[tuple[str, str, bytes]]) -> list[Position | SpoolError]:
        """Write every event that fits, fsync once, and only then count them: one result per event."""
        with self._lock:
            if self._broken:
                return [SpoolError(self._broken) for _ in events]
            try:
                self._rotate_if_needed()
            except OSError as e:
                return [SpoolError(f"cannot create a spool segment: {e}") for _ in events]
            frames, results = self._frames(events)
            return self._write(frames, results)

    def _frames(self, events: list[tuple[str, str, bytes]]) -> tuple[list[bytes], list[Position | SpoolError]]:
        """The parts to write (head, payload, head, payload, ...) and each event's result."""
        assert self._active is not None
        parts: list[bytes] = []
        results: list[Position | SpoolError] = []
        added, offset = 0, self._sizes[self._active]
        for subject, msg_id, payload in events:
            try:
                head, body = frame_parts(subject, msg_id, payload)
            except SpoolError as e:
                results.append(e)
                continue
            size = len(head) + len(body)
            if self.bytes + added + size > self.max_bytes:
                results.append(SpoolFull(f"spool is full ({self.bytes} of {self.max_bytes} bytes in use)"))
                continue
            added, offset = added + size, offset + size
            parts += (head, body)
            results.append(Position(self._active, offset))
        return parts, results

    def _write(self, parts: list[bytes], results: list[Position | SpoolError]) -> list[Position | SpoolError]:
        assert self._active is not None and self._fd is not None
        if not parts:
            return results
        durable = self._sizes[self._active]
        written = sum(len(p) for p in parts)
        try:
            _write_parts(self._fd, parts)
        except OSError as e:  # e.g. ENOSPC: cut the partial write so the file stays a valid log
            self._undo(durable)
            return [SpoolError(f"cannot write to the spool: {e}") if isinstance(r, Position) else r
                    for r in results]
        try:
            os.fsync(self._fd)
        except OSError as e:
            # After a failed fsync the page cache cannot be trusted (Linux may drop the dirty pages).
            self._broken = f"spool fsync failed ({e}); restart the gateway to use the spool again"
            log.error("%s", self._broken)
            return [SpoolError(self._broken) if isinstance(r, Position) else r for r in results]
        self._sizes[self._active] = durable + written
        self.records += len(parts) // 2
        self.bytes += written
        return results

    def _undo(self, durable: int) -> None:
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, durable)
        except OSError as e:
            self._broken = f"spool cannot undo a failed write ({e}); restart the gateway"
            log.error("%s", self._broken)

    def _rotate_if_needed(self) -> None:
        if self._active is not None and self._sizes[self._active] < self.segment_bytes:
            return
        self._close_active()
        segment, self._next_id = self._next_id, self._next_id + 1
        fd = os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _write_all(fd, MAGIC)
            os.fsync(fd)
            _fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            self._path(segment).unlink(missing_ok=True)
            raise
        self._fd, self._active, self._sizes[segment] = fd, segment, HEADER

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._active = None, None

    # --- drain ------------------------------------------------------------------------------------

    def read(self, start: Position, *, max_records: int = READ_RECORDS, max_bytes: int = READ_BYTES) -> list[Record]:
        """Records from `start` on, in order, up to the limits (at least one when there is one)."""
        with self._lock:
            sizes = sorted(self._sizes.items())
        out: list[Record] = []
        total = 0
        for segment, end in sizes:
            if segment < start.segment:
                continue
            offset = start.offset if segment == start.segment else HEADER
            if offset >= end:
                continue
            with open(self._path(segment), "rb") as f:
                f.seek(offset)
                while offset < end and len(out) < max_records and (total < max_bytes or not out):
                    body = _read_frame(f, end - offset)
                    if body is None:
                        raise SpoolError(f"spool {self._path(segment)}: record at offset {offset} fails its CRC")
                    offset += _FRAME.size + len(body)
                    subject, msg_id, payload = decode(body)
                    out.append(Record(subject, msg_id, payload, Position(segment, offset), _FRAME.size + len(body)))
                    total += out[-1].size
            if len(out) >= max_records or total >= max_bytes:
                break
        return out

    def commit(self, end: Position, records: int, nbytes: int) -> None:
        """Forget the records before `end`: JetStream acknowledged every one of them."""
        with self._lock:
            self.records -= records
            self.bytes -= nbytes
            self.start = end
            if self.records == 0:
                # Drained: drop every segment, the one being appended to as well (under the lock, so
                # no append slips in). The old cursor stays valid: new segments get higher ids.
                self._remove_all()
                _fsync_dir(self.directory)
                return
            done = [s for s in self._sizes if s < end.segment]
            for segment in done:
                del self._sizes[segment]
        self._write_cursor(end)
        for segment in done:  # after the cursor: a crash in between leaves files the next open deletes
            self._path(segment).unlink(missing_ok=True)
        if done:
            _fsync_dir(self.directory)

    def _remove_all(self) -> None:
        self._close_active()
        for segment in list(self._sizes):
            self._path(segment).unlink(missing_ok=True)
        self._sizes.clear()
        self.start = Position(self._next_id, HEADER)

    def _write_cursor(self, end: Position) -> None:
        raw = _CURSOR.pack(end.segment, end.offset)
        tmp = self.directory / "cursor.tmp"
        with open(tmp, "wb") as f:
            f.write(raw + _LENGTH.pack(zlib.crc32(raw)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / "cursor")
        _fsync_dir(self.directory)

    def close(self) -> None:
        with self._lock:
            self._close_active()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_parts(fd: int, parts: list[bytes]) -> None:
    done = os.writev(fd, parts)  # at most 2 * GROUP_RECORDS buffers: under IOV_MAX (1024)
    for part in parts:  # a short write (a signal, a huge batch): finish part by part
        if done >= len(part):
            done -= len(part)
            continue
        _write_all(fd, memoryview(part)[done:])
        done = 0


@dataclass(slots=True)
class _Job:
    subject: str
    msg_id: str
    payload: bytes
    future: asyncio.Future[Position]


class _Writer:
    """One thread owns appends, so a burst of requests shares one fsync (group commit)."""

    def __init__(self, spool: SpoolLog, settle: Callable[[_Job, Position | SpoolError], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._log = spool
        self._settle = settle
        self._loop = loop
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hookgate-spool-writer", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._queue.put(job)

    def stop(self) -> None:
        """Blocking: write what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            batch, stopping = self._gather(job)
            try:
                results = self._log.append_many([(j.subject, j.msg_id, j.payload) for j in batch])
            except Exception as e:  # a dead writer thread would leave every later request hanging
                log.exception("spool append failed")
                results = [SpoolError(f"spool append failed: {e}") for _ in batch]
            for j, result in zip(batch, results, strict=True):
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    self._loop.call_soon_threadsafe(self._settle, j, result)
            if stopping:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        batch, size = [first], len(first.payload)
        while len(batch) < GROUP_RECORDS and size < GROUP_BYTES:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
            size += len(job.payload)
        return batch, False


class Spool:
    """Durable hand-off to JetStream: publish directly while possible, else keep on disk and drain."""

    def __init__(self, directory: str | Path, bus: Bus, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES, retry_interval: float = 1.0,
                 max_retry_interval: float = 15.0) -> None:
        self.directory = Path(directory)
        self.bus = bus
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        self._log: SpoolLog | None = None
        self._writer: _Writer | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._pending = 0  # appends handed to the writer and not yet settled
        self.drained = 0  # events published from the spool since open

    async def open(self) -> None:
        self._log = await asyncio.to_thread(SpoolLog.open, self.directory, max_bytes=self.max_bytes,
                                            segment_bytes=self.segment_bytes)
        self._writer = _Writer(self._log, self._settled, asyncio.get_running_loop())
        self.bus.on_reconnect.append(self._on_reconnect)
        self._drainer = asyncio.create_task(self._drain_forever(), name="spool drain")
        if self._log.records:
            log.info("spool %s holds %d event(s) (%d bytes) kept before; publishing them once JetStream "
                     "is reachable", self.directory, self._log.records, self._log.bytes)
            self.wake()  # the bus may be up already: do not wait for the first periodic retry

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.bus.on_reconnect.remove(self._on_reconnect)
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if self._log is not None:
            await asyncio.to_thread(self._log.close)

    def depth(self) -> tuple[int, int]:
        """(events, bytes) kept and not yet acknowledged by JetStream."""
        return (self._log.records, self._log.bytes) if self._log else (0, 0)

    @property
    def empty(self) -> bool:
        return self._pending == 0 and (self._log is None or self._log.records == 0)

    def wake(self) -> None:
        """Try to drain now (the bus is back) rather than at the next periodic retry."""
        self._wake.set()

    async def publish(self, subject: str, payload: bytes, *, msg_id: str) -> PublishResult | Spooled:
        """Publish, or keep on disk: either way the event is durable when this returns.

        Raises BusError when JetStream is up and refuses the event, SpoolError when the spool cannot
        keep it. While the spool holds anything, new events queue behind it so that events reach
        the stream in the order they were acknowledged to their senders.
        """
        check_size(payload, self.bus.settings)  # never spool what could never be drained
        if self.empty and self.bus.connected:
            try:
                return await self.bus.publish(subject, payload, msg_id=msg_id)
            except BusUnavailable as e:
                log.info("JetStream did not take %s (%s); spooling it", msg_id, e)
        position = await self.append(subject, payload, msg_id=msg_id)
        return Spooled(position, self.depth()[0])

    async def append(self, subject: str, payload: bytes, *, msg_id: str) -> Position:
        """Return once the event is fsynced in the spool."""
        if self._writer is None:
            raise SpoolError("the spool is closed")
        future: asyncio.Future[Position] = asyncio.get_running_loop().create_future()
        self._pending += 1
        self._writer.submit(_Job(subject, msg_id, payload, future))
        return await future

    def _settled(self, job: _Job, result: Position | SpoolError) -> None:
        self._pending -= 1
        self._wake.set()
        if job.future.cancelled():  # the request went away; the event, if written, still drains
            return
        if isinstance(result, Position):
            job.future.set_result(result)
        else:
            job.future.set_exception(result)

    async def _on_reconnect(self) -> None:
        self.wake()

    async def _drain_forever(self) -> None:
        delay = self.retry_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if not self.depth()[0] or not self.bus.connected:
                delay = self.retry_interval
                continue
            try:
                done = await self._drain()
            except (SpoolError, OSError) as e:
                log.error("spool %s cannot be drained: %s", self.directory, e)
                done = False
            # Back off only while JetStream keeps failing, so a refusing stream is not hammered.
            delay = self.retry_interval if done else min(delay * 2, self.max_retry_interval)

    async def _drain(self) -> bool:
        """Publish from the oldest record on; True once the spool is empty, False on a bus failure."""
        assert self._log is not None
        spool, before = self._log, self.drained
        while spool.records:
            batch = await asyncio.to_thread(spool.read, spool.start)
            if not batch:
                break
            if await self._publish_in_order(batch) < len(batch):
                return False
        log.info("spool drained: %d event(s) published to JetStream", self.drained - before)
        return True

    async def _publish_in_order(self, batch: list[Record]) -> int:
        assert self._log is not None
        acked = 0
        try:
            for record in batch:
                await self.bus.publish(record.subject, record.payload, msg_id=record.msg_id)
                acked += 1
        except BusUnavailable as e:
            log.warning("spool drain paused at %s: %s", batch[acked].msg_id, e)
        except BusError as e:  # JetStream refuses: retried with back-off; the events behind it wait
            log.error("spool drain blocked at %s: %s", batch[acked].msg_id, e)
        finally:
            # Also on cancellation: record progress, else those events are re-sent (deduped, but sent).
            if acked:
                self.drained += acked
                await asyncio.to_thread(self._log.commit, batch[acked - 1].end, acked,
                                        sum(r.size for r in batch[:acked]))
        return acked
