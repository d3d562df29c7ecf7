"""HTTP listeners: one aiohttp server per port, routing by exact path to an EventSource event.

This module only moves bytes: it reads the request within limits, hands an `Incoming` to the
provider, publishes what the provider accepted, and maps errors to statuses. A 200 is sent only
after JetStream acknowledged the event, or, with a spool, once the event is fsynced in the spool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway import bitbucket, esfilter, gitea, github, gitlab, logs, webhook
from gateway.bus import Bus, PublishResult
from gateway.envelope import CloudEvent, Envelope, json_text, splices
from gateway.errors import BusError, EventTooLarge, ManifestError, RequestRejected
from gateway.metrics import Metrics
from gateway.models import EventSource, SecretKeySelector, WebhookContext
from gateway.protocol import Limits, PlainServer
from gateway.spool import Spool, Spooled, SpoolError, SpoolFull
from gateway.webhook import OFFLOAD_BYTES, Accepted, Incoming, vouched_object

log = logging.getLogger(__name__)

SecretLookup = Callable[[str, SecretKeySelector], str]
Intake = Callable[[Incoming], Accepted]
ReadyCheck = Callable[[], bool]

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")

# --- limits on what one client can make a listener hold (aiohttp 3.14; measured in
# tests/gateway/test_hardening.py). Over a header limit aiohttp's parser answers 400 itself (it has
# no 431) and closes the connection; none of these reaches a provider.
#: Request line (method, path, query): 8 KiB, nginx's `large_client_header_buffers` size. Webhook
#: senders use short paths; a generic `GET` webhook's query string fits with room to spare.
MAX_LINE_SIZE = 8 * 1024
#: A header's value (and, separately, its name): 16 KiB, twice aiohttp's 8190 default, so that a
#: bearer JWT or a proxy-grown header still fits; a whole head stays under MAX_HEADERS x 32 KiB.
MAX_FIELD_SIZE = 16 * 1024
#: Header lines per request: senders send about 15 (GitHub, Gitea with its compatibility headers
#: ~20); proxies add a handful. 100 leaves room and bounds the per-request header work.
MAX_HEADERS = 100
#: Idle keep-alive AND header-read bound. aiohttp arms this timer when a connection opens and after
#: each response, and closes the connection when it fires while no complete request head has
#: arrived -- the timer is not pushed back by incoming bytes, so headers trickled byte by byte
#: (slowloris) are cut at this deadline too. aiohttp's default is 3630 s. 75 s, not less: it must
#: outlast the idle timeout of the proxy or load balancer in front (nginx upstream keepalive and AWS
#: ALB: 60 s), or the proxy reuses a connection the gateway is closing and the sender gets a 502.
KEEPALIVE_TIMEOUT = 75.0
LINGERING_TIME = 1.0  # after refusing a body, seconds spent draining it so the answer arrives (aiohttp: 10)
#: Body read bound, from the end of the headers to the last body byte, answered 408. 30 s is the
#: longest a sender waits for the whole delivery (GitHub Enterprise Server; github.com, GitLab.com
#: and Bitbucket wait 10 s, Gitea 5 s): a body still trickling after that is no sender's.
BODY_READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class Route:
    eventsource: str
    namespace: str
    event: str
    source_type: str
    webhook: WebhookContext
    provider: Intake
    subject: str

    @property
    def label(self) -> str:
        return f"{self.eventsource}/{self.event}"

    @functools.cached_property
    def envelope(self) -> Envelope:
        return Envelope(self.eventsource, self.event, self.source_type)


@dataclass(frozen=True)
class Provider:
    """How one EventSource type turns requests into events: which map, which secret, which checks."""

    source_type: str
    specs: Callable[[EventSource], dict[str, Any]]
    secret: Callable[[Any], SecretKeySelector | None]
    accept: Callable[..., Accepted]


PROVIDERS = (
    Provider("github", lambda es: es.spec.github, lambda s: s.webhookSecret, github.accept),
    Provider("gitlab", lambda es: es.spec.gitlab, lambda s: s.secretToken, gitlab.accept),
    Provider("bitbucket", lambda es: es.spec.bitbucket, lambda s: s.webhookSecret, bitbucket.accept),
    Provider("bitbucketserver", lambda es: es.spec.bitbucketserver, lambda s: s.webhookSecret,
             bitbucket.accept_server),
    Provider("gitea", lambda es: es.spec.gitea, lambda s: s.webhookSecret, gitea.accept),
    Provider("webhook", lambda es: es.spec.webhook, lambda s: s.authSecret, webhook.accept),
)


def build_routes(eventsources: list[EventSource], *, bus: Bus, secret: SecretLookup) -> list[Route]:
    routes: list[Route] = []
    for es in eventsources:
        for provider in PROVIDERS:
            for event, spec in provider.specs(es).items():
                key = _opt_secret(secret, es.namespace, provider.secret(spec))
                accept = partial(provider.accept, spec, secret=key)
                guarded = esfilter.guard(accept, spec.filter, label=f"{es.name}/{event}")
                ctx = spec if provider.source_type == "webhook" else spec.webhook
                routes.append(_route(es, event, provider.source_type, ctx, bus, guarded))
    _check_conflicts(routes)
    return routes


def _route(es: EventSource, event: str, kind: str, ctx: WebhookContext, bus: Bus, provider: Intake) -> Route:
    return Route(eventsource=es.name, namespace=es.namespace, event=event, source_type=kind, webhook=ctx,
                 provider=provider, subject=bus.settings.subject(es.namespace, es.name, event))


def _opt_secret(secret: SecretLookup, namespace: str, selector: SecretKeySelector | None) -> str | None:
    return secret(namespace, selector) if selector else None


def _check_conflicts(routes: list[Route]) -> None:
    seen: dict[tuple[int, str], Route] = {}
    for r in routes:
        key = (r.webhook.port_number, r.webhook.endpoint)
        if r.webhook.endpoint in HEALTH_PATHS:
            raise ManifestError(f"endpoint {r.webhook.endpoint} is reserved for health and metrics",
                                kind="EventSource", name=r.eventsource, path=("spec", r.source_type, r.event))
        if key in seen:
            raise ManifestError(f"port {key[0]} endpoint {key[1]} is already served by {seen[key].label}",
                                kind="EventSource", name=r.eventsource, path=("spec", r.source_type, r.event))
        seen[key] = r


class _HttpLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger. A request whose HTTP framing or body encoding is bad (answered 400 by
    aiohttp's parser, or found again while aiohttp drains the rest of a refused body) is one INFO line
    naming the error class, not an ERROR with a traceback: any client can send one, and the error
    text quotes up to 100 bytes of the offending line, which may hold a token."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError | web.RequestPayloadError):
            cause = exc_info.__cause__
            self.info("bad HTTP request: %s%s", type(exc_info).__name__,
                      f" ({type(cause).__name__})" if cause is not None else "")
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


_http_log = _HttpLog(logging.getLogger("gateway.http"), {})


class Listener:
    """Every route of one port, plus health, readiness and metrics."""

    def __init__(self, port: int, routes: list[Route], *, bus: Bus, metrics: Metrics, ready: ReadyCheck,
                 spool: Spool | None = None) -> None:
        self.port = port
        self.routes = {r.webhook.endpoint: r for r in routes}
        self.bus = bus
        self.spool = spool
        self.metrics = metrics
        self.ready = ready
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, *, reuse_port: bool = False) -> None:
        """Listen on `host`; with `reuse_port`, beside the other workers of the gateway (SO_REUSEPORT)."""
        # Plain deliveries are read by gateway/protocol.py, everything else by aiohttp's low-level
        # server, where one dict lookup routes a request (an Application's router and handler chain
        # cost ~8 us of every webhook's CPU).
        limits = Limits(max_line_size=MAX_LINE_SIZE, max_field_size=MAX_FIELD_SIZE, max_headers=MAX_HEADERS,
                        keepalive_timeout=KEEPALIVE_TIMEOUT, body_timeout=BODY_READ_TIMEOUT,
                        lingering_time=LINGERING_TIME)
        server = PlainServer(self._dispatch, routes=self.routes, serve=self._serve_plain, refuse=self._refused,
                             limits=limits, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT,
                             max_line_size=MAX_LINE_SIZE, max_field_size=MAX_FIELD_SIZE, max_headers=MAX_HEADERS,
                             logger=_http_log, lingering_time=LINGERING_TIME)
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, self.port, reuse_address=True, reuse_port=reuse_port or None).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self.routes.get(request.path)
        if route is not None:
            return await self._handle(route, request)
        if request.path not in HEALTH_PATHS:
            return web.Response(status=404, text="no EventSource listens on this path\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"}, text="use GET\n")
        if request.path == "/metrics":
            body, content_type = self.metrics.render()
            return web.Response(body=body, headers={"Content-Type": content_type})
        if request.path == "/healthz":
            return web.Response(text="ok\n")
        ok = self.ready()
        return web.Response(status=200 if ok else 503, text="ready\n" if ok else "not ready\n")

    async def _handle(self, route: Route, request: web.BaseRequest) -> web.Response:
        status, text = await self._answer(route, request.headers, _read(route, request))
        response = web.Response(status=status, text=text)
        if status == 408:
            # Connection: close, then aiohttp reads and drops what still trickles in, for at most
            # LINGERING_TIME: closing at once would let the kernel's reset destroy the 408 in flight.
            response.force_close()
        return response

    def _serve_plain(self, route: Route, incoming: Incoming) -> Awaitable[tuple[int, str]]:
        """A delivery read by gateway/protocol.py: the same handling as aiohttp's path."""
        return self._answer(route, incoming.headers, incoming)

    async def _answer(self, route: Route, headers: Mapping[str, str], read: Incoming | Awaitable[Incoming]
                      ) -> tuple[int, str]:
        """(status, text) for a request, read already (the lean path) or still to read (aiohttp's)."""
        started = time.perf_counter()
        try:
            incoming = read if isinstance(read, Incoming) else await read
            status, text = await self._accept(route, incoming)
        except RequestRejected as e:
            self._refused(route, headers, e)
            return e.status, e.reason + "\n"
        self.metrics.observe(route.eventsource, route.event, time.perf_counter() - started)
        return status, text

    def _refused(self, route: Route, headers: Mapping[str, str], e: RequestRejected) -> None:
        if logs.event_id.get() is None:  # refused before the provider named the delivery
            logs.event_id.set(next((json_text(headers[h]) for h in logs.DELIVERY_HEADERS if h in headers), None))
        self.metrics.rejected(route.eventsource, route.event, e.status)
        log.info("%s rejected %s: %s", route.label, e.status, e.reason)

    async def _accept(self, route: Route, incoming: Incoming) -> tuple[int, str]:
        body = incoming.body
        # A large body's HMAC and JSON parse take milliseconds: off the loop, so other requests and
        # the health checks do not wait behind it. Small ones stay inline, where a thread costs more.
        large = len(body) > OFFLOAD_BYTES
        accepted = await asyncio.to_thread(route.provider, incoming) if large else route.provider(incoming)
        event_id = accepted.event_id
        logs.event_id.set(event_id)
        self.metrics.received(route.eventsource, route.event)
        if not accepted.publish:
            log.info("%s delivery %s accepted, not published: %s", route.label, event_id, accepted.note)
            return 200, f"accepted, not published: {accepted.note}\n"
        msg_id = f"{route.namespace}/{route.eventsource}/{route.event}/{event_id}"
        try:
            payload = await asyncio.to_thread(envelope, route, accepted) if large else envelope(route, accepted)
            # What the provider built (the header map, a body read for a filter) is not needed while the
            # publish waits: freed now, while it is still in the CPU's cache, rather than after the ack
            # (about 3 us a 3 KB delivery under load when every body was read, in alternating runs of
            # bench/gateway.py).
            del accepted
            result = await self._publish(route.subject, payload, msg_id)
        except EventTooLarge as e:
            raise RequestRejected(413, str(e)) from None
        except (BusError, SpoolError) as e:
            self.metrics.rejected(route.eventsource, route.event, 503)
            log.warning("%s delivery %s not kept: %s", route.label, event_id, e)
            reason = ("event bus unavailable and the spool is full; the event was not kept" if isinstance(e, SpoolFull)
                      else "event bus unavailable; the event may not have been kept")
            raise RequestRejected(503, reason + ", retry later") from None
        if isinstance(result, Spooled):
            self.metrics.spooled(route.eventsource, route.event)
            log.info("%s delivery %s spooled (%d waiting for JetStream)", route.label, event_id,
                     result.waiting)
            return 200, "ok, spooled until JetStream takes it\n"
        self.metrics.published(route.eventsource, route.event, duplicate=result.duplicate)
        # Debug: a line per event is the cost at thousands a second; the metrics count every one.
        log.debug("%s delivery %s published (seq %d%s)", route.label, event_id, result.sequence,
                  ", duplicate" if result.duplicate else "")
        return 200, "duplicate, already stored\n" if result.duplicate else "ok\n"

    def _publish(self, subject: str, payload: bytes, msg_id: str) -> Awaitable[PublishResult | Spooled]:
        # Without a spool, a bus that is down means 503; with one, the spool decides direct or disk.
        if self.spool is None:
            return self.bus.publish(subject, payload, msg_id=msg_id)
        return self.spool.publish(subject, payload, msg_id=msg_id)


def envelope(route: Route, accepted: Accepted) -> bytes:
    """The bus message for an accepted delivery."""
    if splices(accepted.members, accepted.raw_body):  # members, not data: an UNPARSED body stays unread
        assert accepted.raw_body is not None
        return route.envelope.spliced(accepted.event_id, accepted.members, accepted.raw_body)
    event = CloudEvent(id=accepted.event_id, source=route.eventsource, subject=route.event, type=route.source_type,
                       data=accepted.data)
    return event.to_json()


async def _read(route: Route, request: web.BaseRequest) -> Incoming:
    """What aiohttp's path hands to the providers: the request with its whole body, within limits."""
    if request.method != route.webhook.method:
        raise RequestRejected(405, f"method {request.method} not allowed; this endpoint takes "
                                   f"{route.webhook.method}")
    if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await _continue(request, route.webhook.maxPayloadSize)
    body = await _read_body(request, route.webhook.maxPayloadSize)
    return Incoming(method=request.method, path=request.path, headers=request.headers,
                    header_items=list(request.headers.items()), body=body, query=request.query_string)


async def _continue(request: web.BaseRequest, limit: int) -> None:
    """Answer `Expect: 100-continue` (curl sends it with larger bodies), unless the body is refused anyway."""
    if request.content_length is not None and request.content_length > limit:
        return  # _read_body answers 413 before a byte of the body is sent
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim answer is not part of the response's size


async def _read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The body, read as it comes and refused as soon as it passes `limit` (Content-Length or not)."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestRejected(413, f"body of {request.content_length} bytes is over maxPayloadSize ({limit})")
    if request.content.is_eof() and request.content_length is not None:
        # Already all here (a small body arrives with its headers): no deadline to arm or cancel.
        whole = request.content.read_nowait()
        if len(whole) == request.content_length:
            return whole
        raise RequestRejected(400, "body shorter than its Content-Length")
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > limit:
                    raise RequestRejected(413, f"body is over maxPayloadSize ({limit})")
    except TimeoutError:
        raise RequestRejected(408, f"body not received within {BODY_READ_TIMEOUT:g} s") from None
    except web.RequestPayloadError as e:  # bad chunked framing, short body, bad Content-Encoding
        raise RequestRejected(400, f"body cannot be read: {e}") from None
    except ConnectionResetError:  # the client went away; the answer is for the log
        raise RequestRejected(400, "connection closed before the body was complete") from None
    return bytes(body)


class Gateway:
    def __init__(self, routes: list[Route], *, bus: Bus, metrics: Metrics, ready: ReadyCheck,
                 spool: Spool | None = None) -> None:
        by_port: dict[int, list[Route]] = {}
        for r in routes:
            by_port.setdefault(r.webhook.port_number, []).append(r)
        self.routes = routes
        self.spool = spool
        self.listeners = [Listener(port, rs, bus=bus, metrics=metrics, ready=ready, spool=spool)
                          for port, rs in by_port.items()]

    async def start(self, host: str, *, reuse_port: bool = False) -> None:
        # simdjson is loaded on first use (a sensor never needs it): here, not in the first delivery.
        vouched_object(b"{}")
        if self.spool is not None:
            await self.spool.open()  # before the listeners, so no request finds it closed
        try:
            for listener in self.listeners:
                await listener.start(host, reuse_port=reuse_port)
        except OSError as e:
            await self.stop()
            raise ManifestError(f"cannot listen: {e}") from e

    async def stop(self) -> None:
        await asyncio.gather(*(listener.stop() for listener in self.listeners), return_exceptions=True)
        if self.spool is not None:
            await self.spool.close()  # after the listeners, so no request is left waiting on it

    def describe(self, host: str) -> list[str]:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return [f"listening: http://{shown}:{r.webhook.port_number}{r.webhook.endpoint} ({r.label})"
                for r in self.routes]


def ready_all(*checks: ReadyCheck) -> ReadyCheck:
    return lambda: all(check() for check in checks)

