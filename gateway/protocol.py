"""A lean HTTP/1.1 protocol for plain webhook deliveries, beside aiohttp's server on the same port.

aiohttp's request machinery (parser, request and response objects, writer, per-request timers) cost
about 60 % of the gateway's CPU per 3 KB delivery. Nearly every delivery is the same plain shape: one
`POST` to a known endpoint, its whole head in one read, a Content-Length body, no Expect, no
Transfer-Encoding, no Content-Encoding. This protocol serves exactly that shape and nothing else.

Anything it does not recognise with certainty -- an incomplete or odd head, a limit reached, another
path, a health check, chunked or compressed bodies, HTTP/1.0, a body over maxPayloadSize -- is handed,
with every byte of the request as it arrived, to aiohttp's own protocol for the rest of the
connection. aiohttp therefore still decides every error and every edge; this module only decides
"plain or not", before anything of the request was answered.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import RequestRejected
from gateway.webhook import Incoming

if TYPE_CHECKING:
    from gateway.server import Route

log = logging.getLogger(__name__)

#: What the listener does with a plain request: (status, text). Never raises RequestRejected.
Serve = Callable[["Route", Incoming], Awaitable[tuple[int, str]]]
#: How the listener records a refusal this protocol answers itself (a body that never arrives).
Refuse = Callable[["Route", Mapping[str, str], RequestRejected], None]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# One header line: a token name, a colon, then visible characters, spaces and tabs (the value and the
# whitespace around it, which parse_head strips). No obs-fold, no bare CR or LF, no control
# character: any of those, and aiohttp reads the request. No groups: this only checks, in half the
# time of one that captures the value apart from its whitespace.
_FIELDS = re.compile(r"(?:" + _TOKEN + r":[\x20-\x7e\t]*\r\n)*")
_REQUEST_LINE = re.compile(r"(" + _TOKEN + r") (/[\x21-\x7e]*) HTTP/1\.1\r\n")
#: Headers whose presence means the request is not plain: aiohttp handles each of them. (llhttp reads
#: Proxy-Connection as Connection; aiohttp answers Sec-WebSocket-Key1, the old WebSocket draft's, 400.)
_NOT_PLAIN = frozenset({"transfer-encoding", "content-encoding", "expect", "upgrade", "http2-settings",
                        "proxy-connection", "sec-websocket-key1"})
#: Headers RFC 9110 allows once: a request repeating one is aiohttp's to refuse (it answers 400).
_SINGLETONS = frozenset({"content-length", "content-location", "content-range", "content-type", "etag", "host",
                         "max-forwards", "server", "transfer-encoding", "user-agent"})
#: The header names this module looks into.
_WATCHED = _NOT_PLAIN | _SINGLETONS | {"connection"}
#: Bytes a connection may buffer while its request is being handled, before reading pauses.
_BUFFER_CAP = 1024 * 1024


class Limits:
    """The head limits aiohttp enforces; a head beyond any of them is aiohttp's to refuse."""

    def __init__(self, *, max_line_size: int, max_field_size: int, max_headers: int, keepalive_timeout: float,
                 body_timeout: float, lingering_time: float) -> None:
        self.max_line_size = max_line_size
        self.max_field_size = max_field_size
        self.max_headers = max_headers
        self.max_head = max_line_size + max_headers * (2 * max_field_size + 4)
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.lingering_time = lingering_time


class Head:
    """A plain request head, parsed."""

    __slots__ = ("close", "content_length", "fields", "headers", "method", "path", "query", "route")

    def __init__(self, method: str, path: str, query: str, fields: list[tuple[str, str]], content_length: int,
                 close: bool, route: Route) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.fields = fields  # every header line, in order
        self.headers = CIMultiDictProxy(CIMultiDict(fields))
        self.content_length = content_length
        self.close = close
        self.route = route


def parse_head(head: bytes, routes: Mapping[str, Route], limits: Limits) -> Head | None:
    """`head` (request line and header lines, each ending in CRLF) when it is plain, else None."""
    # A head longer than one field may hold a field over the limit: aiohttp measures those.
    if len(head) > limits.max_field_size or not head.isascii():
        return None
    text = head.decode("ascii")
    line = _REQUEST_LINE.match(text)
    if line is None or line.end() > limits.max_line_size:
        return None
    method, target = line.group(1), line.group(2)
    path, _, query = target.partition("?")
    route = routes.get(path)
    # Percent-escapes, '+', fragments and dot segments are for aiohttp (yarl) to decode and normalise.
    if route is None or method != route.webhook.method or method == "HEAD" or "%" in target or "+" in query \
            or "#" in target:
        return None
    block = text[line.end():]
    if _FIELDS.fullmatch(block) is None:
        return None
    lines = block.split("\r\n")
    lines.pop()  # the empty string after the last CRLF
    if len(lines) > limits.max_headers:
        return None
    fields: list[tuple[str, str]] = []
    length: int | None = None
    close = False
    seen: set[str] = set()
    for line in lines:
        name, _, value = line.partition(":")
        value = value.strip(" \t")
        fields.append((name, value))
        lower = name.lower()
        if lower not in _WATCHED:
            continue
        if lower == "connection":
            tokens = {t.strip() for t in value.lower().split(",")}
            if "upgrade" in tokens:
                return None
            close = close or "close" in tokens
            continue
        if lower in _NOT_PLAIN or lower in seen:
            return None
        seen.add(lower)
        if lower == "content-length":
            if not value.isdigit() or len(value) > 18:
                return None
            length = int(value)
    if "host" not in seen:
        return None  # HTTP/1.1 without Host: aiohttp answers 400 (RFC 9112, section 3.2)
    if length is None:
        if method not in ("GET", "DELETE", "OPTIONS"):
            return None  # a body without a length: aiohttp says what that means
        length = 0
    if length > route.webhook.maxPayloadSize:
        return None  # aiohttp's path answers 413 without reading the body
    return Head(method, path, query, fields, length, close, route)


class _DateCache:
    """The Date header, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True).encode()
        return self._value


_date = _DateCache()


def response(status: int, text: str, *, close: bool) -> bytes:
    date = _date.get()
    key = (status, text, close)
    cached = _responses.get(key)
    if cached is not None and cached[0] is date:
        return cached[1]
    answer = _response(status, text, close=close, date=date)
    if text in CACHED_TEXTS:  # other texts vary (refusal reasons, notes naming a sender's event) and are rare
        _responses[key] = (date, answer)
    return answer


#: The answers to a stored delivery: the only ones cached, each valid while the Date header's second lasts.
CACHED_TEXTS = frozenset({"ok\n", "duplicate, already stored\n", "ok, spooled until JetStream takes it\n"})
_responses: dict[tuple[int, str, bool], tuple[bytes, bytes]] = {}


def _response(status: int, text: str, *, close: bool, date: bytes) -> bytes:
    body = text.encode()
    phrase = HTTPStatus(status).phrase
    return b"".join((
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n".encode(),
        b"Date: ", date, b"\r\nServer: hookgate\r\n",
        b"Connection: close\r\n\r\n" if close else b"\r\n",
        body,
    ))


def _bytes(buffer: bytes | bytearray, start: int, stop: int) -> bytes:
    """buffer[start:stop] as bytes, copied once (a bytearray's slice would be copied twice)."""
    return buffer[start:stop] if isinstance(buffer, bytes) else bytes(memoryview(buffer)[start:stop])


class PlainServer(web.Server):
    """aiohttp's low-level server, whose connections start on `PlainProtocol`."""

    def __init__(self, handler: Any, *, routes: Mapping[str, Route], serve: Serve, refuse: Refuse, limits: Limits,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.routes = routes
        self.serve = serve
        self.refuse = refuse
        self.limits = limits
        self.plain: set[PlainProtocol] = set()

    def __call__(self) -> Any:
        return PlainProtocol(self)

    def aiohttp_protocol(self) -> asyncio.Protocol:
        return super().__call__()

    def pre_shutdown(self) -> None:
        super().pre_shutdown()
        for conn in list(self.plain):
            conn.close_when_idle()

    async def shutdown(self, timeout: float | None = None) -> None:
        busy = [conn.task for conn in self.plain if conn.task is not None]
        if busy:
            # As aiohttp does for its own connections: the requests under way get their answer.
            await asyncio.wait(busy, timeout=timeout)
        for conn in list(self.plain):
            conn.close()
        await super().shutdown(timeout)


class PlainProtocol(asyncio.Protocol):
    """One connection, served while its requests are plain; handed to aiohttp at the first that is not."""

    def __init__(self, server: PlainServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        # What arrived and is not yet a request: the read itself while it is all there is (nearly every
        # delivery arrives whole in one read), a bytearray once a second read is added to it.
        self._buffer: bytes | bytearray = b""
        self._head: Head | None = None
        self._body_start = 0
        self._paused = False
        self._closing = False
        self._lingering = False
        self._idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not registered subclasses
        self.server.plain.add(self)
        loop = asyncio.get_running_loop()
        self._idle_since = loop.time()
        self._idle_timer = loop.call_later(self.server.limits.keepalive_timeout, self._idle_check)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.plain.discard(self)
        self._cancel_timers()
        self._closing = True
        # A request being handled goes on: its event is published whether or not anyone hears the 200.

    def data_received(self, data: bytes) -> None:
        if self._lingering or self.transport is None:
            return
        if not self._buffer:
            self._buffer = data  # not copied: the request's head and body are sliced from it
        elif isinstance(self._buffer, bytes):
            self._buffer = bytearray(self._buffer) + data
        else:
            self._buffer += data
        if self.task is not None:
            if len(self._buffer) > _BUFFER_CAP and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            return
        self._advance()

    def eof_received(self) -> bool:
        # The client will send nothing more: finish the request under way, if any, then close.
        self._closing = True
        return self.task is not None

    # --- requests

    def _advance(self) -> None:
        """Start the next complete plain request in the buffer, or hand the connection to aiohttp."""
        assert self.transport is not None
        if self._head is None:
            if not self._buffer:
                if self._closing:
                    self.transport.close()
                return
            limits = self.server.limits
            end = self._buffer.find(b"\r\n\r\n", 0, limits.max_head)
            head = parse_head(_bytes(self._buffer, 0, end + 2), self.server.routes, limits) if end > 0 else None
            if head is None:
                self._hand_over()
                return
            self._head, self._body_start = head, end + 4
        head = self._head
        end = self._body_start + head.content_length
        if len(self._buffer) < end:
            if self._closing:
                self.transport.close()  # cut short by the client: nothing to answer, nothing stored
            elif self._body_timer is None:
                self._body_timer = asyncio.get_running_loop().call_later(self.server.limits.body_timeout,
                                                                         self._body_late)
            return
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        body = _bytes(self._buffer, self._body_start, end)
        if end == len(self._buffer):
            self._buffer = b""
        elif isinstance(self._buffer, bytes):
            # What follows (a pipelined request) is copied once, so that the requests after it are cut
            # off in place rather than copying the rest each time.
            self._buffer = bytearray(memoryview(self._buffer)[end:])
        else:
            del self._buffer[:end]
        self._head = None
        incoming = Incoming(method=head.method, path=head.path, headers=head.headers,
                            header_items=head.fields, body=body, query=head.query)
        self.task = asyncio.get_running_loop().create_task(self._serve(head, incoming))

    async def _serve(self, head: Head, incoming: Incoming) -> None:
        try:
            status, text = await self.server.serve(head.route, incoming)
        except Exception:
            log.exception("error handling a delivery to %s", head.path)
            status, text, head.close = 500, "internal error\n", True
        self.task = None
        self._idle_since = asyncio.get_running_loop().time()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        close = head.close or self._closing
        transport.write(response(status, text, close=close))
        if close:
            transport.close()
            return
        if self._paused:
            self._paused = False
            transport.resume_reading()
        self._advance()

    def _hand_over(self) -> None:
        """Give the connection, with the request as it arrived so far, to aiohttp's protocol."""
        assert self.transport is not None
        self._cancel_timers()
        self.server.plain.discard(self)
        transport, data = self.transport, bytes(self._buffer)
        self.transport, self._buffer = None, b""
        protocol = self.server.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)  # reading is never paused here: it pauses only while a request runs

    def _body_late(self) -> None:
        """The body did not arrive within the body deadline: 408, as aiohttp's path answers it."""
        self._body_timer = None
        head, transport = self._head, self.transport
        if head is None or transport is None or self.task is not None:
            return
        limit = self.server.limits.body_timeout
        error = RequestRejected(408, f"body not received within {limit:g} s")
        self.server.refuse(head.route, head.headers, error)
        transport.write(response(408, error.reason + "\n", close=True))
        # Read and drop what still trickles in for a moment: closing at once could let the kernel's
        # reset destroy the 408 in flight.
        self._lingering = True
        self._buffer = b""
        asyncio.get_running_loop().call_later(self.server.limits.lingering_time, transport.close)

    def _idle_check(self) -> None:
        """Close a connection that has not started a request within the keep-alive time.

        One timer per connection, re-armed for the rest of the time, rather than one per request."""
        self._idle_timer = None
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        due = self._idle_since + self.server.limits.keepalive_timeout
        if self.task is None and self._head is None and not self._buffer and loop.time() >= due:
            self.transport.close()
            return
        self._idle_timer = loop.call_later(max(0.0, due - loop.time()) or self.server.limits.keepalive_timeout,
                                           self._idle_check)

    def close_when_idle(self) -> None:
        self._closing = True
        if self.transport is not None and self.task is None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._idle_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._body_timer = None
