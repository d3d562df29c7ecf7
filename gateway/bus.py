"""The bus: the only module that imports `nats`.

One JetStream stream holds every event (subjects `<prefix>.<namespace>.<eventSource>.<event>`);
each sensor reads it through its own durable pull consumer filtered to the subjects of its
dependencies, so a message reaches only the sensors that can use it. NATS errors are turned into
`BusError` / `BusUnavailable` here, so callers never handle a nats exception.

Replies come back on two wildcard inboxes per connection, not one subscription per request or per
consumer: publish acks, and the messages and status answers of every consumer's pull requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.protocol import parser as nats_parser

from gateway.errors import BusError, BusUnavailable, EventTooLarge

log = logging.getLogger(__name__)

DEFAULT_STREAM = "HOOKGATE"
DEFAULT_PREFIX = "hookgate"
DAY = 24 * 3600.0
ACK_SWEEP = 0.5  # seconds between checks for overdue publish acks and pull requests
# JetStream ends a pull request itself when it expires (a 408); the local deadline is later so that
# the sweep only ends requests the server never answered (a stalled server, a lost packet).
PULL_GRACE = 0.5
# Statuses that end a pull request normally: nothing (more) to deliver now, or it expired.
_PULL_DONE = frozenset({"404", "408"})
_HEARTBEAT = "100"
# 409 descriptions that only mean "not now": the server stops, or the stream moves to another one.
_PULL_UNAVAILABLE = frozenset({"Server Shutdown", "Leadership Change"})
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
# What nats-py refuses in a published subject: whitespace (CR and LF would inject protocol lines).
_SUBJECT_UNSAFE = re.compile(r"\s")
#: The header block's bytes besides the id and the stream name (`NATS/1.0`, the two names, CRLFs).
_HEADER_OVERHEAD = len(b"NATS/1.0\r\nNats-Msg-Id: \r\nNats-Expected-Stream: \r\n\r\n")
#: The nats-py releases the lean publish path was tested with: it relies on internals that changed
#: before (a flusher that tolerates a done future came in nats-py 2.10; 2.16.0 is what the tests run).
_LEAN_VERSIONS = ((2, 16), (3, 0))
#: The nats-py client internals the lean publish path uses (see Bus.publish).
_LEAN_INTERNALS = ("_pending", "_pending_data_size", "_max_pending_size", "_flush_queue", "_flusher_task",
                   "_process_msg", "_ps")
#: A JetStream ack as nats-server writes it: MSG <subject> <sid> <size>, no reply subject, no headers.
_ACK_MSG = re.compile(rb"MSG ([!-~]+) (\d+) (\d+)\r\n")


def safe_url(url: str) -> str:
    """`url` fit for a log line: a password or token in it (`nats://user:pass@host`) is masked.

    Everything before the last `@` is credentials, commas included: nats-py reads the string as one URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}:***@{host}" if colon else f"{scheme}{sep}***@{host}"


def transport_closed(e: RuntimeError) -> bool:
    """Whether `e` is uvloop's error for a write to a connection that is already gone.

    asyncio's own loop drops such a write (and the drain after it raises ConnectionResetError);
    uvloop raises RuntimeError("unable to perform operation on <TCPTransport closed=True ...>;
    the handler is closed") from the write itself, out of nats-py. It means the connection was
    lost, nothing more, so it is handled like OSError; any other RuntimeError is a bug and is
    left to propagate.
    """
    return "the handler is closed" in str(e)


@contextlib.contextmanager
def lost_connection() -> Iterator[None]:
    """Around a call that writes to NATS: uvloop's closed-transport RuntimeError becomes the
    ConnectionResetError asyncio's own loop gives, so every caller handles one kind of error."""
    try:
        yield
    except RuntimeError as e:
        if not transport_closed(e):
            raise
        raise ConnectionResetError("the connection to NATS was lost") from e


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Explicit limits: JetStream's defaults (unbounded, 2 min dedupe) fit neither durability nor disk."""

    name: str = DEFAULT_STREAM
    prefix: str = DEFAULT_PREFIX
    max_age: float = 7 * DAY
    max_bytes: int = 8 * 1024**3
    max_msgs: int = -1
    max_msg_size: int = 32 * 1024**2  # GitHub's 25 MiB maximum plus the envelope
    # Manual redelivery by GitHub keeps the delivery id; a day covers the usual redelivery runbook
    # while keeping the dedupe index small. Older redeliveries are still caught by trigger idempotency.
    duplicate_window: float = DAY
    replicas: int = 1

    def subject(self, namespace: str, eventsource: str, event: str) -> str:
        return ".".join([self.prefix, token(namespace), token(eventsource), token(event)])

    def stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name, subjects=[f"{self.prefix}.>"], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.NEW,
            max_age=self.max_age, max_bytes=self.max_bytes, max_msgs=self.max_msgs,
            max_msg_size=self.max_msg_size, duplicate_window=self.duplicate_window,
            num_replicas=self.replicas)


def check_size(payload: bytes, settings: StreamSettings) -> None:
    """Refuse what the stream can never take, before it is spooled or retried (1 KiB for headers)."""
    if len(payload) > settings.max_msg_size - 1024:
        raise EventTooLarge(f"the event is {len(payload)} bytes; the bus takes at most {settings.max_msg_size}")


def token(name: str) -> str:
    """A subject token: Kubernetes names allow `.`, which NATS would read as a separator."""
    return _TOKEN_UNSAFE.sub("_", name)


#: A publish's ack: JetStream's answer (its JSON, and the status of its header block, if any), or
#: TimeoutError at its deadline (the sweep), or BusUnavailable when the connection is lost first.
Ack = asyncio.Future[tuple[bytes, str | None]]


@dataclass(slots=True)  # not frozen: one per delivery, and a frozen __init__ costs twice as much
class PublishResult:
    sequence: int
    duplicate: bool


def publish_result(data: bytes, status: str | None) -> PublishResult:
    """JetStream's answer to a publish: the stored sequence, or why it was not stored."""
    if status == "503":
        raise BusUnavailable("JetStream did not acknowledge: no stream listens on the subject")
    try:
        ack = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BusError(f"JetStream answered a publish with {data[:80]!r}") from None
    error = ack.get("error")
    if error is not None:
        raise BusError(f"JetStream refused the event: {error.get('description') or error}")
    return PublishResult(sequence=int(ack["seq"]), duplicate=bool(ack.get("duplicate")))


def header_status(raw: bytes | None) -> str | None:
    """The status code of a NATS header block (`NATS/1.0 503` on its first line), if it has one."""
    if not raw:
        return None
    parts = raw.split(b"\r\n", 1)[0].split()
    return parts[1].decode() if len(parts) > 1 and parts[1].isdigit() else None


def lean_supported(nc: Client) -> bool:
    """Whether this nats-py client is a tested release with the internals the lean publish path uses."""
    try:
        release = tuple(int(part) for part in nats.aio.client.__version__.split(".")[:2])
    except (AttributeError, ValueError):
        return False
    if not _LEAN_VERSIONS[0] <= release < _LEAN_VERSIONS[1]:
        return False
    return all(hasattr(nc, name) for name in _LEAN_INTERNALS) and isinstance(nc._pending, list) \
        and all(hasattr(nc._ps, name) for name in ("parse", "state", "buf")) \
        and hasattr(nats_parser, "AWAITING_CONTROL_LINE")


def leading_acks(data: bytes, sid: int, inbox: bytes) -> tuple[list[tuple[str, bytes]], int]:
    """The acks that `data` starts with: (token, ack) for each complete MSG of subscription `sid` on
    `inbox` + token, and how many bytes they take. The first thing that is anything else (another
    subscription, a status, PING, INFO, a message cut short by the read) ends them."""
    acks: list[tuple[str, bytes]] = []
    pos, size = 0, len(data)
    while pos < size:
        line = _ACK_MSG.match(data, pos)
        if line is None or int(line[2]) != sid or not line[1].startswith(inbox):
            break
        start = line.end()
        stop = start + int(line[3])
        if data[stop:stop + 2] != b"\r\n":
            break
        acks.append((line[1][len(inbox):].decode(errors="replace"), data[start:stop]))
        pos = stop + 2
    return acks, pos


class Bus:
    def __init__(self, url: str, settings: StreamSettings | None = None, *, name: str = "hookgate",
                 lean: bool = True) -> None:
        self.url = url
        self.settings = settings or StreamSettings()
        self._name = name
        self._lean_wanted = lean
        self._lean = False  # decided at connect(), by lean_supported()
        # A published subject's "HPUB <subject> <ack inbox>." (None: nats-py's path), per connection.
        self._hpub_starts: dict[str, bytes | None] = {}
        self._stream_header = b""
        self._ack_prefix_bytes = b""
        self._kick: asyncio.Future[None]  # a done future, set at connect() for the lean path
        self._nc: Client | None = None
        self._js: Any = None
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        # Publish acks arrive on one wildcard inbox, each matched to its publish by the last token;
        # each waits with its deadline, which one sweep twice a second enforces (a timer per publish
        # cost 5 % of the gateway's CPU).
        self._acks: dict[str, tuple[Ack, float]] = {}
        self._ack_prefix = ""
        self._ack_count = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False
        # Pull requests, like acks: one wildcard inbox, each request's status answers matched by the
        # last token; its messages carry the consumer's name in their ack subject instead.
        self._pulls: dict[str, _Pull] = {}
        self._pull_prefix = ""
        self._pull_count = 0
        self._consumers: dict[str, Consumer] = {}

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect(self, *, timeout: float = 5.0) -> None:
        async def reconnected() -> None:
            log.info("bus reconnected")
            for callback in self.on_reconnect:
                await callback()

        async def disconnected() -> None:
            if not self._closing:
                log.warning("bus disconnected; reconnecting")
            # Their acks would have come on the lost connection: answer now instead of at the timeout.
            self._fail_pending(BusUnavailable("connection to NATS lost before JetStream acknowledged"))
            # A pull request does not outlive a server restart: the next fetch makes a new one.
            self._end_pulls(BusUnavailable("connection to NATS lost during a fetch"))

        async def error(e: Exception) -> None:
            log.debug("bus error: %s", e)

        try:
            # nats-py retries a first connection forever; a bound turns "NATS is down" into an answer.
            self._nc = await asyncio.wait_for(nats.connect(
                self.url, name=self._name, connect_timeout=timeout, max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, allow_reconnect=True, reconnected_cb=reconnected,
                disconnected_cb=disconnected, error_cb=error, pending_size=64 * 1024**2), timeout * 2)
        except TimeoutError:
            raise BusUnavailable(f"cannot connect to NATS at {safe_url(self.url)}: no answer within "
                                 f"{timeout * 2:g} s") from None
        except (OSError, nats.errors.Error) as e:
            raise BusUnavailable(f"cannot connect to NATS at {safe_url(self.url)}: "
                                 f"{str(e) or type(e).__name__}") from e
        self._js = self._nc.jetstream(timeout=timeout)
        self._ack_prefix = self._nc.new_inbox() + "."
        acks = await self._nc.subscribe(self._ack_prefix + "*", cb=self._on_ack)
        # A stream name is an HTTP-style header value here: one that nats-py would rewrite takes its path.
        self._lean = self._lean_wanted and lean_supported(self._nc) and self.settings.name.isprintable()
        if self._lean:
            self._ack_prefix_bytes = self._ack_prefix.encode()
            self._take_acks(acks._id)
            self._stream_header = f"\r\nNats-Expected-Stream: {self.settings.name}\r\n\r\n".encode()
            self._hpub_starts = {}
            self._kick = asyncio.get_running_loop().create_future()  # done: what the flusher is woken with
            self._kick.set_result(None)
        self._pull_prefix = self._nc.new_inbox() + "."
        # No byte limit: what arrives here is bounded by the batches the fetches asked for, and a
        # dropped message would only come back after ack_wait.
        await self._nc.subscribe(self._pull_prefix + "*", cb=self._on_pull, pending_bytes_limit=0)
        self._sweep()

    async def _on_ack(self, msg: Msg) -> None:
        self._acked(msg.subject[len(self._ack_prefix):], msg.data, msg.headers.get("Status") if msg.headers else None)

    def _acked(self, token: str, data: bytes, status: str | None) -> None:
        waiting = self._acks.pop(token, None)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result((data, status))

    def _take_acks(self, sid: int) -> None:
        """Answer publishes straight from nats-py's reader, ahead of its per-message work for the ack inbox.

        nats-py builds a Msg and parses its headers for each ack, then queues it for a task that calls
        the subscription's callback: 3-6 us of a publish's client-side CPU. The server's other
        messages take nats-py's own path unchanged.

        Ahead of that, the acks a read starts with (nearly every read: the acks of the publishes
        flushed together) are taken before nats-py's parser sees them, when it holds nothing of an
        earlier read: its state machine costs 1.5-2 us per message.
        """
        assert self._nc is not None
        process_msg = self._nc._process_msg
        inbox = self._ack_prefix_bytes
        start = len(inbox)
        parser = self._nc._ps
        parse = parser.parse
        between = nats_parser.AWAITING_CONTROL_LINE

        async def parse_acks_first(data: bytes = b"") -> None:
            if data and parser.state == between and not parser.buf:
                try:
                    acks, taken = leading_acks(data, sid, inbox)
                    for token, ack in acks:
                        self._acked(token, ack, None)
                except Exception:  # as in take(): a reader that raised would end, the client unaware
                    log.exception("could not match a JetStream ack to its publish")
                    taken = 0
                data = data[taken:] if taken else data
            if data:
                await parse(data)

        async def take(msg_sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
            if msg_sid != sid:
                await process_msg(msg_sid, subject, reply, data, headers)
                return
            try:
                self._acked(subject[start:].decode(errors="replace"), data, header_status(headers))
            except Exception:
                # Raised from here, it would end nats-py's reader while the client still says
                # connected: every later publish would time out. This one times out instead.
                log.exception("could not match a JetStream ack to its publish")

        self._nc._process_msg = take  # type: ignore[method-assign]
        parser.parse = parse_acks_first  # type: ignore[method-assign]

    def _fail_pending(self, error: Exception) -> None:
        pending, self._acks = self._acks, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    async def _on_pull(self, msg: Msg) -> None:
        if msg.reply:
            # A message: its subject is the stream's, so the consumer is read from the ack subject.
            try:
                consumer = self._consumers.get(msg.metadata.consumer)
            except (nats.errors.Error, ValueError):
                return  # not a JetStream delivery: nothing of ours
            if consumer is not None:
                self._arrived(consumer, msg)
            return
        pull = self._pulls.get(msg.subject[len(self._pull_prefix):])
        status = msg.headers.get("Status") if msg.headers else None
        if pull is None or status == _HEARTBEAT:
            return  # the answer to a request that already ended (or a heartbeat we did not ask for)
        if status in _PULL_DONE:
            self._end_pull(pull)
        else:
            self._end_pull(pull, pull_error(pull.consumer.name, msg))

    def _arrived(self, consumer: Consumer, msg: Msg) -> None:
        pull = consumer._pull
        if pull is None:
            # Its fetch ended first (timed out here, cancelled, or cut by a reconnect): keep it for the
            # next fetch rather than leave it unacked until ack_wait.
            consumer._held.append(msg)
            return
        pull.msgs.append(msg)
        if len(pull.msgs) >= pull.batch:
            self._end_pull(pull)  # the server ends a full request without a status

    def _end_pull(self, pull: _Pull, error: Exception | None = None) -> None:
        """Answer a fetch: with what it has, or with `error` when it has nothing."""
        self._forget_pull(pull)
        if not pull.future.done():
            if error is None or pull.msgs:
                pull.future.set_result(pull.msgs)
            else:
                pull.future.set_exception(error)

    def _forget_pull(self, pull: _Pull) -> None:
        # From here on, its late messages go to the consumer's held list and its statuses are ignored.
        self._pulls.pop(pull.token, None)
        if pull.consumer._pull is pull:
            pull.consumer._pull = None

    def _end_pulls(self, error: Exception) -> None:
        for pull in list(self._pulls.values()):
            self._end_pull(pull, error)

    def _sweep(self) -> None:
        """Time out the publishes and pulls whose deadline has passed (at most ACK_SWEEP seconds late)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for token in [t for t, (_, deadline) in self._acks.items() if deadline <= now]:
            future, _ = self._acks.pop(token)
            if not future.done():
                future.set_exception(TimeoutError())
        for pull in [p for p in self._pulls.values() if p.deadline <= now]:
            self._end_pull(pull)
        self._sweeper = loop.call_later(ACK_SWEEP, self._sweep)

    async def close(self) -> None:
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._end_pulls(BusUnavailable("the bus is closed"))
        # Not drain(): nothing that arrives now can be handled anyway; left unacked, it is redelivered
        # after ack_wait.
        if self._nc is not None and not self._nc.is_closed:
            await self._return_held()
            # Acks buffered during an outage cannot be flushed to a dead connection: their messages
            # are simply redelivered, and the idempotent triggers absorb that.
            # nats-py's close() writes what is still buffered to the old connection first: on a dead
            # one it fails (OSError on asyncio's loop, RuntimeError on uvloop) and skips the rest of
            # its clean-up, which the process exiting or the next connect() makes moot.
            nc = self._nc
            for step in (functools.partial(nc.flush, timeout=1), nc.close):
                try:
                    with lost_connection():
                        await step()
                except (nats.errors.Error, TimeoutError, OSError):
                    pass

    async def _return_held(self) -> None:
        """Nak what consumers hold for a next fetch that will not come (close's flush sends them).

        A replica, or this sensor restarted, gets them at once instead of after ack_wait.
        """
        for consumer in self._consumers.values():
            held, consumer._held = consumer._held, []
            for msg in held:
                try:
                    with lost_connection():
                        await msg.nak()
                except (nats.errors.Error, OSError):
                    return  # the connection is gone: ack_wait brings them back

    @property
    def js(self) -> Any:
        if self._js is None:
            raise BusUnavailable("not connected to NATS")
        return self._js

    async def ensure_stream(self) -> None:
        config = self.settings.stream_config()
        try:
            await self.js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)
            log.info("created stream %s (subjects %s.>)", config.name, self.settings.prefix)
            return
        except (nats.errors.Error, TimeoutError) as e:
            raise BusUnavailable(f"JetStream not available: {e}") from e
        # Apply our limits to an existing stream too: Argo never does (its issue #1793).
        try:
            await self.js.update_stream(config)
        except nats.js.errors.APIError as e:
            raise BusError(f"stream {config.name} exists with settings that cannot be changed: {e}") from e

    async def publish(self, subject: str, payload: bytes, *, msg_id: str, timeout: float = 5.0) -> PublishResult:
        """Return once JetStream has the message on disk; raise BusUnavailable otherwise.

        The same request as nats-py's `js.publish` (headers Nats-Msg-Id and Nats-Expected-Stream, a
        reply inbox, the ack's JSON), with the acks of every publish on one long-lived subscription
        and no wait_for: that halves the client-side cost of a publish, the gateway's hottest call.

        The lean path halves it again (22 -> 9-12 us of CPU per publish and ack, 32 in flight, 3 KB):
        the command is built here and queued on nats-py's own buffer for its own flusher, and the ack
        is taken from its reader (`_take_acks`). Connection, reconnects, TLS, auth and flushing stay
        nats-py's. Where the client is not a release with those internals (`lean_supported`), or
        nats-py must decide (an odd subject or id, its buffer full, its flusher gone), nats-py's
        publish() sends it. An event over the server's max_payload, headers included, is refused
        before either.
        """
        check_size(payload, self.settings)
        if not self.connected:
            # While reconnecting, nats-py would buffer the message and send it after the reconnect,
            # long after this request timed out and the sender was told it was not kept.
            raise BusUnavailable("not connected to NATS")
        assert self._nc is not None
        # The server counts the headers too, and answers a message over its max_payload by closing the
        # connection, failing every publish in flight; nats-py only compares the payload.
        size = len(payload) + len(msg_id.encode(errors="replace")) + len(self.settings.name) + _HEADER_OVERHEAD
        if size > self._nc.max_payload:
            raise EventTooLarge(f"the event is {len(payload)} bytes, and with its headers over the NATS server's "
                                f"max_payload ({self._nc.max_payload})")
        self._ack_count += 1
        token = str(self._ack_count)
        loop = asyncio.get_running_loop()
        ack: Ack = loop.create_future()
        self._acks[token] = (ack, loop.time() + timeout)
        try:
            command = self._hpub(subject, token, payload, msg_id) if self._lean else None
            if command is not None and self._queueable(len(command)):
                self._queue(command)
            else:
                with lost_connection():
                    await self._nc.publish(subject, payload, reply=self._ack_prefix + token,
                                           headers={"Nats-Msg-Id": msg_id, "Nats-Expected-Stream": self.settings.name})
            data, status = await ack
        except (nats.errors.Error, TimeoutError, OSError) as e:
            raise BusUnavailable(f"JetStream did not acknowledge: {type(e).__name__}") from e
        finally:
            self._acks.pop(token, None)
        return publish_result(data, status)

    def _hpub(self, subject: str, token: str, payload: bytes, msg_id: str) -> bytes | None:
        """The HPUB command nats-py would send for this publish, or None where nats-py must decide.

        Built in one join, from a start kept per subject: nats-py checks both subjects with a regex,
        encodes the headers through a regex and a translate per key, and copies the payload twice; with
        the wake-up in `_queue`, about 7 of a publish's 22 us of CPU under load.
        tests/gateway/test_bus.py checks that the server stores the same bytes either way."""
        assert self._nc is not None
        start = self._hpub_starts.get(subject, b"")
        if start == b"":
            start = self._hpub_starts[subject] = None if _SUBJECT_UNSAFE.search(subject) or not subject \
                else b"HPUB %s %s" % (subject.encode(), self._ack_prefix_bytes)
        msg_id = msg_id.strip()
        if start is None or not msg_id.isprintable():
            return None  # nats-py's path: its error for the first, its rewriting of the id for the last
        header = b"NATS/1.0\r\nNats-Msg-Id: " + msg_id.encode() + self._stream_header
        size = len(header)
        return b"".join((start, token.encode(), b" %d %d\r\n" % (size, size + len(payload)), header, payload, b"\r\n"))

    def _queueable(self, size: int) -> bool:
        """Whether `_queue()` can take a command of `size` bytes without nats-py's own flush: its
        buffer stays within its limit, and its flusher is running."""
        nc: Any = self._nc
        if nc._max_pending_size > 0 and nc._pending_data_size + size > nc._max_pending_size:
            return False
        return nc._flusher_task is not None and not nc._flusher_task.done()

    def _queue(self, command: bytes) -> None:
        """Queue `command` on nats-py's buffer as its publish() does, and wake its flusher as its
        _flush_pending() does, without the Future and the Queue.put coroutine that costs there each
        time: the flusher only completes the future it is handed when that is not done already."""
        nc: Any = self._nc
        nc._pending.append(command)
        nc._pending_data_size += len(command)
        if nc._flush_queue is not None and nc._flush_queue.empty():
            nc._flush_queue.put_nowait(self._kick)

    async def ensure_consumer(self, name: str, subjects: Sequence[str], *, ack_wait: float = 60.0,
                              max_deliver: int = 20) -> Consumer:
        config = api.ConsumerConfig(
            durable_name=name, name=name, deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait, max_deliver=max_deliver,
            filter_subjects=sorted(set(subjects)), max_ack_pending=1024)
        try:
            await self.js.add_consumer(self.settings.name, config)
        except nats.js.errors.APIError as e:
            if e.err_code != 10148:  # "consumer already exists" with another config: update it in place
                raise BusError(f"cannot create consumer {name}: {e.description or e}") from e
            await self._update_consumer(config)
        except (nats.errors.Error, TimeoutError) as e:
            raise BusUnavailable(f"cannot create consumer {name}: {e}") from e
        consumer = self._consumers.get(name)
        if consumer is None:
            consumer = self._consumers[name] = Consumer(name, self)
        return consumer

    async def pull(self, consumer: Consumer, batch: int, timeout: float) -> list[Msg]:
        """Ask JetStream for up to `batch` messages of `consumer`, waiting at most `timeout` for the first.

        The request nats-py's fetch makes (no_wait with expires: the server waits for a first message,
        then sends what it has and ends with a 404, or a 408 when it expires), answered on the shared
        pull inbox instead of a subscription per consumer.
        """
        if batch < 1 or timeout <= 0:
            raise ValueError(f"a fetch needs batch >= 1 and timeout > 0, not {batch} and {timeout}")
        if not self.connected:
            # nats-py would buffer the request until the reconnect, by when the server may have
            # forgotten this client's inbox: the caller retries after its back-off instead.
            raise BusUnavailable("not connected to NATS")
        assert self._nc is not None
        pull = self._new_pull(consumer, batch, timeout)
        request = b'{"batch":%d,"expires":%d,"no_wait":true}' % (batch, int(timeout * 1e9))
        returned = False
        try:
            with lost_connection():
                await self._nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.settings.name}.{consumer.name}",
                                       request, reply=self._pull_prefix + pull.token)
            msgs = await pull.future
            returned = True
            return msgs
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.NoServersError, OSError) as e:
            raise BusUnavailable(str(e) or type(e).__name__) from e
        except nats.errors.Error as e:
            raise BusError(str(e) or type(e).__name__) from e
        finally:
            self._forget_pull(pull)
            if not returned:
                # Cancelled, even just after its answer came, or the request never left: what it had
                # already got goes to the next fetch.
                consumer._held[:0] = pull.msgs

    def _new_pull(self, consumer: Consumer, batch: int, timeout: float) -> _Pull:
        if consumer._pull is not None:
            raise RuntimeError(f"consumer {consumer.name} is already fetching")
        self._pull_count += 1
        loop = asyncio.get_running_loop()
        pull = _Pull(consumer, str(self._pull_count), batch, loop.time() + timeout + PULL_GRACE,
                     loop.create_future())
        self._pulls[pull.token] = consumer._pull = pull
        return pull

    async def _update_consumer(self, config: api.ConsumerConfig) -> None:
        # nats-py has no update call; the server keeps the consumer's position across this update.
        subject = f"$JS.API.CONSUMER.CREATE.{self.settings.name}.{config.name}"
        req = {"stream_name": self.settings.name, "config": config.as_dict(), "action": "update"}
        assert self._nc is not None
        resp = json.loads((await self._nc.request(subject, json.dumps(req).encode(), timeout=5)).data)
        if "error" in resp:
            raise BusError(f"cannot update consumer {config.name}: {resp['error'].get('description')}")

    async def key_value(self, bucket: str, *, history: int = 1, ttl: float | None = None) -> Any:
        try:
            return await self.js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            return await self.js.create_key_value(bucket=bucket, history=history, ttl=ttl)


def pull_error(consumer: str, status: Msg) -> BusError:
    """What a status other than "no messages" / "expired" means for a fetch that got nothing."""
    headers = status.headers or {}
    code, description = headers.get("Status", ""), headers.get("Description", "")
    if code == "503":
        return BusError(f"consumer {consumer}: no such consumer, or JetStream is not available")
    if description in _PULL_UNAVAILABLE:
        return BusUnavailable(f"consumer {consumer}: {code} {description}")
    return BusError(f"consumer {consumer}: JetStream ended the fetch: {code} {description}".rstrip())


class _Pull:
    """One pull request in flight: the messages it has brought so far, and when to stop waiting."""

    __slots__ = ("batch", "consumer", "deadline", "future", "msgs", "token")

    def __init__(self, consumer: Consumer, token: str, batch: int, deadline: float,
                 future: asyncio.Future[list[Msg]]) -> None:
        self.consumer = consumer
        self.token = token
        self.batch = batch
        self.deadline = deadline
        self.future = future
        self.msgs: list[Msg] = []


class Consumer:
    """A durable pull consumer; one fetch at a time."""

    __slots__ = ("_bus", "_held", "_pull", "name")

    def __init__(self, name: str, bus: Bus) -> None:
        self.name = name
        self._bus = bus
        self._pull: _Pull | None = None
        self._held: list[Msg] = []  # delivered after their fetch ended: the next fetch's first

    async def fetch(self, batch: int, timeout: float) -> list[Delivery]:
        """Up to `batch` messages, as soon as there is one; [] when none comes within `timeout`."""
        if self._held:
            msgs, self._held = self._held[:batch], self._held[batch:]
        else:
            msgs = await self._bus.pull(self, batch, timeout)
        return [Delivery(m) for m in msgs]


class Delivery:
    """One message as a sensor sees it; acking is the sensor's decision, never this module's."""

    __slots__ = ("_msg",)

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    @property
    def data(self) -> bytes:
        return self._msg.data

    @property
    def subject(self) -> str:
        return self._msg.subject

    @property
    def attempt(self) -> int:
        return int(self._msg.metadata.num_delivered or 1)

    @property
    def stream_sequence(self) -> int:
        return int(self._msg.metadata.sequence.stream)

    async def ack(self) -> None:
        await self._call(self._msg.ack_sync())

    async def nak(self, delay: float | None = None) -> None:
        await self._call(self._msg.nak(delay=delay))

    async def in_progress(self) -> None:
        await self._call(self._msg.in_progress())

    async def _call(self, op: Awaitable[Any]) -> None:
        try:
            with lost_connection():
                await op
        except (nats.errors.Error, TimeoutError, OSError) as e:
            # An ack that does not arrive means redelivery, which idempotent triggers absorb.
            raise BusUnavailable(f"ack not confirmed: {type(e).__name__}") from e

