"""The `nats` EventSource: subscribe to a subject on a NATS server, publish each message to the bus.

Not a webhook, so no listener: `NatsSource` holds one core-NATS subscription per `spec.nats` entry
and publishes every message it receives as a CloudEvent (type `nats`, source = the EventSource
name, subject = the event name) with Argo's `NATSEventData`:
`{"subject", "body", "header"?, "metadata"?}`. With `jsonBody: true` the body is the message's
JSON (a message that is not JSON is logged and dropped, as Argo drops it); otherwise it is the raw
bytes as Go marshals a `[]byte`: a base64 string. `header` maps each NATS header to a list holding
its value (nats-py keeps the last value of a repeated header); as for webhooks, the values of
secret-bearing headers (`Authorization`, ...) are masked.

Identity: a message's `Nats-Msg-Id` header, else a hash of its subject, headers and body; either
becomes the bus's `Nats-Msg-Id`, so a republished message is stored once within the stream's
duplicate window. As for a webhook without a delivery id, two byte-identical messages are one event.

Delivery, and its limits. A core NATS subscription cannot redeliver: a message is in hookgate's
hands once the server has sent it. So when the bus does not take a message it is retried with
backoff (the subscription's later messages wait behind it, in order) until the bus takes it or
hookgate stops; at stop, the remaining ones are tried once each and those that still fail are
logged as lost. Messages published while hookgate is not subscribed, or beyond nats-py's pending
limits during a long bus outage (a slow consumer: logged), are lost. For end-to-end durability,
publish straight into the hookgate stream instead (the README's bus contract). Messages on the
bus's own subjects (`hookgate.>`) and NATS's system and reply subjects (`$JS.`, `$SYS.`, `_INBOX.`,
...) are ignored: with a wildcard subject on the bus's server, republishing them would loop.

This module imports `nats` itself (elsewhere only `gateway/bus.py` does): the source's server is
a server of its own, not the bus.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway import esfilter
from gateway.bus import Bus, PublishResult, lost_connection, safe_url
from gateway.envelope import MASK, CloudEvent, header_key, json_text
from gateway.errors import BusUnavailable, HookgateError
from gateway.metrics import Metrics
from gateway.models import Backoff, EventSource, NATSEventsSource, SecretKeySelector

log = logging.getLogger(__name__)

SecretLookup = Callable[[str, SecretKeySelector], str]

#: Argo's DefaultBackoff for the first connection: 5 attempts, 1 s apart, jitter 1.
DEFAULT_BACKOFF = (1.0, 5, 1.0, 1.0)
#: Subjects a source never republishes: JetStream's API and acks, system events, request inboxes.
SYSTEM_PREFIXES = ("$", "_INBOX.", "_R_.")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _as_connect_error(e: BaseException | None) -> nats.errors.Error | OSError | TimeoutError:
    if isinstance(e, nats.errors.Error | OSError | TimeoutError):
        return e
    return nats.errors.Error(str(e) if e else "connection failed")


class Publisher(Protocol):
    """The bus, or the gateway's spool in front of it."""

    async def publish(self, subject: str, payload: bytes, *, msg_id: str) -> object: ...


class NatsMessageError(ValueError):
    """A message that cannot become an event (a `jsonBody` message that is not JSON)."""


def go_duration(value: int | str) -> float:
    """Seconds in an Argo duration: an integer of nanoseconds, or a Go duration string (`1m30s`)."""
    if isinstance(value, int):
        return value / 1e9
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text) / 1e9
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = _GO_DURATION.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 10s, 1m30s, 500ms)")
    return sign * sum(float(n) * _UNITS[u] for n, u in parts)


def backoff_delays(spec: Backoff | None) -> list[float]:
    """The waits between connection attempts, as Argo's wait.ExponentialBackoff spaces them."""
    duration, steps, factor, jitter = DEFAULT_BACKOFF
    if spec is not None:
        duration = go_duration(spec.duration) if spec.duration is not None else duration
        steps = spec.steps if spec.steps and spec.steps > 0 else steps
        factor = float(spec.factor) if spec.factor is not None else factor
        jitter = float(spec.jitter) if spec.jitter is not None else jitter
    delays = []
    for _ in range(max(steps - 1, 0)):
        delays.append(duration + (random.random() * jitter * duration if jitter > 0 else 0.0))
        duration *= factor if factor > 0 else 1.0
    return delays


def event_data(spec: NATSEventsSource, subject: str, payload: bytes, headers: dict[str, str] | None
               ) -> dict[str, Any]:
    """Argo's NATSEventData for one message."""
    body: Any
    if spec.jsonBody:
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as e:
            raise NatsMessageError(f"jsonBody is set and the message is not JSON: {e}") from None
    else:
        body = base64.b64encode(payload).decode()
    data: dict[str, Any] = {"subject": json_text(subject), "body": body}
    if headers:
        data["header"] = {json_text(k): [MASK if header_key(k)[1] else json_text(v)]
                          for k, v in headers.items()}
    if spec.metadata:
        data["metadata"] = dict(spec.metadata)
    return data


def message_id(subject: str, payload: bytes, headers: dict[str, str] | None) -> str:
    given = (headers or {}).get("Nats-Msg-Id")
    if given:
        return json_text(given)
    digest = hashlib.sha256(subject.encode())
    for key, value in sorted((headers or {}).items()):
        digest.update(b"\0" + key.encode() + b"\0" + value.encode())
    digest.update(b"\0\0" + payload)
    return "sha256-" + digest.hexdigest()[:40]


@dataclass(frozen=True)
class Subscription:
    """One `spec.nats.<event>` entry with its secrets resolved and its filter compiled."""

    eventsource: str
    namespace: str
    event: str
    spec: NATSEventsSource
    options: dict[str, Any] = field(repr=False)  # user / password / token: never in a repr or a log
    filter: esfilter.EventFilter | None = None

    @property
    def label(self) -> str:
        return f"{self.eventsource}/{self.event}"


def subscriptions(eventsources: list[EventSource], *, secret: SecretLookup) -> list[Subscription]:
    out = []
    for es in eventsources:
        for event, spec in es.spec.nats.items():
            flt = esfilter.compile_filter(spec.filter.expression) if spec.filter else None
            out.append(Subscription(eventsource=es.name, namespace=es.namespace, event=event, spec=spec,
                                    options=_auth_options(spec, es.namespace, secret), filter=flt))
    return out


def _auth_options(spec: NATSEventsSource, namespace: str, secret: SecretLookup) -> dict[str, Any]:
    auth = spec.auth
    if auth is None:
        return {}
    if auth.basic is not None:
        return {"user": secret(namespace, auth.basic.username), "password": secret(namespace, auth.basic.password)}
    if auth.token is not None:
        return {"token": secret(namespace, auth.token)}
    return {}


class NatsSource:
    """Every `nats` EventSource entry of a bundle: `await start(bus)`, later `await stop()`."""

    def __init__(self, eventsources: list[EventSource], *, secret: SecretLookup, metrics: Metrics | None = None,
                 retry_first: float = 0.2, retry_max: float = 10.0, drain_timeout: float = 10.0) -> None:
        self.subscriptions = subscriptions(eventsources, secret=secret)
        self.metrics = metrics
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.drain_timeout = drain_timeout
        self.lost = 0  # messages received and finally not kept (bus down at stop, not JSON, too large)
        self._conns: list[Client] = []
        self._stopping = asyncio.Event()
        self._bus: Bus | None = None
        self._publisher: Publisher | None = None

    def describe(self) -> list[str]:
        return [f"subscribed: {safe_url(s.spec.url)} subject {s.spec.subject}"
                f"{f' queue {s.spec.queue}' if s.spec.queue else ''} ({s.label})" for s in self.subscriptions]

    async def start(self, bus: Bus, *, spool: Publisher | None = None) -> None:
        """Connect and subscribe every entry; raise BusUnavailable naming the one that cannot connect.

        With `spool` (the gateway's disk spool), messages go through it, so that they are kept on
        disk while JetStream is unreachable instead of waiting in memory."""
        self._bus = bus
        self._publisher = spool or bus
        self._stopping.clear()
        try:
            for sub in self.subscriptions:
                await self._subscribe(sub)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop taking messages; those already received get one last publish attempt each."""
        self._stopping.set()
        conns, self._conns = self._conns, []
        for nc in conns:
            try:
                with lost_connection():
                    await nc.drain()
            except (nats.errors.Error, TimeoutError, OSError):
                await _close(nc)
            except Exception:  # a client bug: still close this connection and the ones after it
                log.exception("a NATS EventSource connection could not be drained")
                await _close(nc)

    async def _subscribe(self, sub: Subscription) -> None:
        nc = await self._connect(sub)
        self._conns.append(nc)

        async def handle(msg: Msg) -> None:
            try:
                await self._handle(sub, msg)
            except Exception:  # nats-py would hand it to the error callback, far from its cause
                self.lost += 1
                log.exception("%s: a message on %s could not be handled", sub.label, msg.subject)

        await nc.subscribe(sub.spec.subject, queue=sub.spec.queue or "", cb=handle)
        await nc.flush()
        log.info("%s subscribed to %s on %s", sub.label, sub.spec.subject, safe_url(sub.spec.url))

    async def _connect(self, sub: Subscription) -> Client:
        async def error(e: Exception) -> None:
            if isinstance(e, nats.errors.SlowConsumerError):
                self.lost += 1
                log.error("%s: a message was dropped by the NATS client while the bus was slow or down "
                          "(pending limit reached)", sub.label)
            else:
                log.debug("%s: NATS source error: %s", sub.label, e)

        async def disconnected() -> None:
            if not self._stopping.is_set():
                log.warning("%s: disconnected from %s; reconnecting (messages sent meanwhile are lost)",
                            sub.label, safe_url(sub.spec.url))

        delays = backoff_delays(sub.spec.connectionBackoff)
        for attempt in range(len(delays) + 1):
            try:
                return await self._connect_once(sub, error=error, disconnected=disconnected)
            except (nats.errors.Error, OSError, TimeoutError) as e:
                if attempt == len(delays):
                    raise BusUnavailable(f"nats EventSource {sub.label}: cannot connect to {safe_url(sub.spec.url)}: "
                                         f"{str(e) or type(e).__name__}") from e
                log.warning("%s: cannot connect to %s (%s); retrying in %.1fs", sub.label, safe_url(sub.spec.url), e,
                            delays[attempt])
                await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")

    async def _connect_once(self, sub: Subscription, *, error: Callable[[Exception], Awaitable[None]],
                            disconnected: Callable[[], Awaitable[None]]) -> Client:
        """One connection attempt. nats-py would retry a failed first connection forever (even a refused
        password) when reconnecting is allowed, so the first error ends the attempt here; once connected,
        nats-py reconnects by itself and keeps the subscription."""
        nc = Client()
        first_error: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

        async def on_error(e: Exception) -> None:
            if not first_error.done():
                first_error.set_result(e)
            await error(e)

        connecting = asyncio.ensure_future(nc.connect(
            sub.spec.url, name=f"hookgate {sub.label}", connect_timeout=5, allow_reconnect=True,
            max_reconnect_attempts=-1, reconnect_time_wait=1, error_cb=on_error, disconnected_cb=disconnected,
            drain_timeout=self.drain_timeout, **sub.options))
        await asyncio.wait([connecting, first_error], return_when=asyncio.FIRST_COMPLETED)
        if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
            return nc
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        with contextlib.suppress(Exception):
            await nc.close()
        if first_error.done():
            raise _as_connect_error(first_error.result())
        raise _as_connect_error(connecting.exception() if not connecting.cancelled() else None)

    async def _handle(self, sub: Subscription, msg: Msg) -> None:
        assert self._bus is not None
        if msg.subject.startswith((self._bus.settings.prefix + ".", *SYSTEM_PREFIXES)):
            # hookgate's own events, JetStream's API and acks: republishing them would feed this forever.
            log.debug("%s: message on %s ignored (hookgate's or NATS's own subject)", sub.label, msg.subject)
            return
        event_id = message_id(msg.subject, msg.data, msg.headers)
        try:
            data = event_data(sub.spec, msg.subject, msg.data, msg.headers)
        except NatsMessageError as e:
            self.lost += 1
            log.warning("%s message %s on %s dropped: %s", sub.label, event_id, msg.subject, e)
            return
        if self.metrics is not None:
            self.metrics.received(sub.eventsource, sub.event)
        if sub.filter is not None:
            verdict = sub.filter.evaluate(data)
            if not verdict.passed:
                level = logging.WARNING if verdict.error else logging.INFO
                log.log(level, "%s message %s not published: %s", sub.label, event_id, verdict.reason)
                return
        event = CloudEvent(id=event_id, source=sub.eventsource, subject=sub.event, type="nats", data=data)
        await self._publish(sub, event)

    async def _publish(self, sub: Subscription, event: CloudEvent) -> None:
        assert self._bus is not None and self._publisher is not None
        bus = self._bus
        subject = bus.settings.subject(sub.namespace, sub.eventsource, sub.event)
        payload = event.to_json()
        if len(payload) > bus.settings.max_msg_size:
            self.lost += 1
            log.error("%s message %s dropped: %d bytes is over the stream's message size limit (%d)", sub.label,
                      event.id, len(payload), bus.settings.max_msg_size)
            return
        msg_id = f"{sub.namespace}/{sub.eventsource}/{sub.event}/{event.id}"
        delay = self.retry_first
        while True:
            try:
                result = await self._publisher.publish(subject, payload, msg_id=msg_id)
            except HookgateError as e:  # the bus (or the spool) did not keep it
                if self._stopping.is_set():
                    self.lost += 1
                    log.error("%s message %s lost: hookgate is stopping and the bus does not take it (%s)",
                              sub.label, event.id, e)
                    return
                log.warning("%s message %s not kept yet (%s); retrying in %.1fs", sub.label, event.id, e, delay)
                await self._pause(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            if not isinstance(result, PublishResult):
                log.info("%s message %s spooled until JetStream takes it", sub.label, event.id)
                return
            if self.metrics is not None:
                self.metrics.published(sub.eventsource, sub.event, duplicate=result.duplicate)
            log.info("%s message %s published (seq %d%s)", sub.label, event.id, result.sequence,
                     ", duplicate" if result.duplicate else "")
            return

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass


async def _close(nc: Client) -> None:
    """Close a connection that could not drain: what it still buffers is lost with the connection anyway."""
    try:
        with lost_connection():
            await nc.close()
    except (nats.errors.Error, TimeoutError, OSError):
        pass
