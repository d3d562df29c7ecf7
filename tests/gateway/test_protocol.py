"""gateway/protocol.py: which heads are plain, and the lean HTTP/1.1 path end to end.

`parse_head` is pure: its tests build heads as bytes and read them against the routes of real
manifests (tests/gateway/test_hardening.py's), with the listener's own limits. Whatever it accepts is
also read by aiohttp's own request parser, which must see the same request: the lean path may only
serve what aiohttp would have served the same way.

The network tests run a real gateway publishing to a real nats-server and speak raw HTTP/1.1 over
one connection: pipelined deliveries, a connection handed to aiohttp in the middle, a body in pieces,
`Connection: close`, a refused delivery, the response's own headers, the keep-alive deadline and a
graceful stop. A response's `Server` header says which path answered it: `hookgate` for the lean
path, aiohttp's own for a connection handed over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import protocol, server
from gateway.bus import Bus
from gateway.protocol import Limits, PlainProtocol, PlainServer, parse_head
from gateway.server import Route, build_routes
from hookgate.embedded import NatsServer
from hookgate.manifests import load
from tests.conftest import close_quietly, until
from tests.gateway.test_hardening import (
    BODY,
    LIMIT,
    Hard,
    Reply,
    http_request,
    provider_headers,
    read_reply,
    running_gateway,
    write_manifests,
)
from tests.gateway.test_listener import secret_lookup, stored

#: The limits the listener runs with (gateway/server.py's Listener.start).
LIMITS = Limits(max_line_size=server.MAX_LINE_SIZE, max_field_size=server.MAX_FIELD_SIZE,
                max_headers=server.MAX_HEADERS, keepalive_timeout=server.KEEPALIVE_TIMEOUT,
                body_timeout=server.BODY_READ_TIMEOUT, lingering_time=server.LINGERING_TIME)
#: How long a test waits for an answer or a close it expects.
DEADLINE = 10.0


# --- parse_head, pure ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Route]:
    """test_hardening's routes (every provider, maxPayloadSize LIMIT), by endpoint, as a listener keys them."""
    folder = tmp_path_factory.mktemp("manifests")
    write_manifests(folder, 8080)  # never listened on: only parsed
    bundle = load([folder])
    built = build_routes(bundle.eventsources, bus=Bus("nats://127.0.0.1:4222"), secret=secret_lookup(bundle))
    return {r.webhook.endpoint: r for r in built}


def head(*fields: str, line: str = "POST /open HTTP/1.1") -> bytes:
    """A head as `parse_head` gets it: the request line and each header line, each ending in CRLF."""
    return "".join(f"{text}\r\n" for text in (line, *fields)).encode("utf-8")


#: Host and a small Content-Length: what every plain head below starts from.
BASE = ("Host: 127.0.0.1", "Content-Length: 2")


def with_method(route: Route, method: str) -> Route:
    return dataclasses.replace(route, webhook=route.webhook.model_copy(update={"method": method}))


def test_a_plain_head_is_parsed(routes: dict[str, Route]) -> None:
    parsed = parse_head(head("Host: 127.0.0.1", "Content-Type: application/json", "X-GitHub-Event: push",
                             "x-github-event: ping", "content-length: 42", "Connection: keep-alive",
                             line="POST /github?a=1&b=two HTTP/1.1"), routes, LIMITS)
    assert parsed is not None
    assert (parsed.method, parsed.path, parsed.query) == ("POST", "/github", "a=1&b=two")
    assert parsed.content_length == 42
    assert parsed.close is False
    assert parsed.route is routes["/github"]
    # Case-insensitive lookup, every value of a repeated header, and the order of the lines as sent.
    assert parsed.headers["CONTENT-LENGTH"] == "42"
    assert parsed.headers.getall("X-Github-Event") == ["push", "ping"]
    assert [name for name, _ in parsed.headers.items()] == [
        "Host", "Content-Type", "X-GitHub-Event", "x-github-event", "content-length", "Connection"]


@pytest.mark.parametrize(("fields", "close"), [
    pytest.param(("Connection: close",), True, id="close"),
    pytest.param(("Connection: CLOSE",), True, id="close-upper-case"),
    pytest.param(("Connection: keep-alive, close",), True, id="close-in-a-list"),
    pytest.param(("Connection: close", "Connection: keep-alive"), True, id="close-then-another-line"),
    pytest.param(("Connection: keep-alive", "Connection: close"), True, id="close-on-the-second-line"),
    pytest.param(("Connection: keep-alive",), False, id="keep-alive"),
    pytest.param(("Connection: closed",), False, id="not-the-close-token"),
    pytest.param((), False, id="no-connection-header"),
])
def test_the_close_flag_follows_every_connection_header(
        routes: dict[str, Route], fields: tuple[str, ...], close: bool) -> None:
    parsed = parse_head(head(*BASE, *fields), routes, LIMITS)
    assert parsed is not None
    assert parsed.close is close


def test_values_lose_their_surrounding_whitespace_and_may_be_empty(routes: dict[str, Route]) -> None:
    parsed = parse_head(head("Host: 127.0.0.1", "Content-Length:\t 7 \t", "X-Note:  a \tb  ", "X-Empty:"),
                        routes, LIMITS)
    assert parsed is not None
    # "Content-Length: 7 " has trailing OWS, not a non-digit: aiohttp reads it as 7 too (see below).
    assert parsed.content_length == 7
    assert parsed.headers["X-Note"] == "a \tb"
    assert parsed.headers["X-Empty"] == ""


def test_a_body_of_exactly_max_payload_size_is_plain(routes: dict[str, Route]) -> None:
    parsed = parse_head(head("Host: 127.0.0.1", f"Content-Length: {LIMIT}"), routes, LIMITS)
    assert parsed is not None and parsed.content_length == LIMIT


def test_max_headers_lines_are_plain(routes: dict[str, Route]) -> None:
    padding = [f"X-Pad-{i}: v" for i in range(server.MAX_HEADERS - len(BASE))]
    parsed = parse_head(head(*BASE, *padding), routes, LIMITS)
    assert parsed is not None and len(parsed.headers) == server.MAX_HEADERS


def test_a_get_route_takes_a_request_without_content_length(routes: dict[str, Route]) -> None:
    get_routes = {"/open": with_method(routes["/open"], "GET")}
    parsed = parse_head(head("Host: 127.0.0.1", line="GET /open?x=1 HTTP/1.1"), get_routes, LIMITS)
    assert parsed is not None
    assert (parsed.method, parsed.query, parsed.content_length) == ("GET", "x=1", 0)


def test_head_is_never_plain_even_on_a_head_route(routes: dict[str, Route]) -> None:
    # HEAD's answer has no body: aiohttp writes it. The route's method matching is not enough.
    head_routes = {"/open": with_method(routes["/open"], "HEAD")}
    assert parse_head(head("Host: 127.0.0.1", line="HEAD /open HTTP/1.1"), head_routes, LIMITS) is None


#: Heads aiohttp's parser answers 400: the lean path must not serve them, whatever it would make of them.
REFUSED_BY_AIOHTTP = [
    pytest.param(head(*BASE, "Host: 127.0.0.2"), id="duplicate-host"),
    pytest.param(head(*BASE, "Content-Length: 2"), id="duplicate-content-length-same-value"),
    pytest.param(head(*BASE, "Content-Length: 3"), id="duplicate-content-length"),
    pytest.param(head(*BASE, "user-agent: a", "User-Agent: b"), id="duplicate-user-agent"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: +5"), id="content-length-plus"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: -1"), id="content-length-negative"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: 0x5"), id="content-length-hex"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: 5 5"), id="content-length-two-numbers"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: 5,5"), id="content-length-list"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length:"), id="content-length-empty"),
    pytest.param(head(*BASE, "X-Note: a", " folded"), id="obs-fold-space"),
    pytest.param(head(*BASE, "X-Note: a", "\tfolded"), id="obs-fold-tab"),
    pytest.param(head(*BASE, "X-Note: a\nX-Other: b"), id="bare-lf"),
    pytest.param(head(*BASE, "X-Note: a\rb"), id="bare-cr"),
    pytest.param(head(*BASE, "X-Note: a\x01b"), id="control-character-in-a-value"),
    pytest.param(head(*BASE, "X-Note: a\x00b"), id="nul-in-a-value"),
    pytest.param(head(*BASE, "X-Note: a\x7fb"), id="del-in-a-value"),
    pytest.param(head(*BASE, "X-Note : a"), id="space-before-the-colon"),
    pytest.param(head(*BASE, "X Note: a"), id="space-in-a-name"),
    pytest.param(head(*BASE, ": a"), id="empty-name"),
    pytest.param(head(*BASE, "X-Note"), id="line-without-a-colon"),
    pytest.param(head(*BASE, *(f"X-Pad-{i}: v" for i in range(server.MAX_HEADERS - len(BASE) + 1))),
                 id="more-than-max-headers"),
    pytest.param(head(*BASE, "X-Pad: " + "v" * (server.MAX_FIELD_SIZE + 1)), id="value-over-max-field-size"),
    pytest.param(head(*BASE, "X-" + "n" * server.MAX_FIELD_SIZE + ": v"), id="name-over-max-field-size"),
    pytest.param(head(*BASE, line="POST /open?pad=" + "x" * server.MAX_LINE_SIZE + " HTTP/1.1"),
                 id="request-line-over-max-line-size"),
    pytest.param(head(*BASE, line="post /open HTTP/1.1"), id="lower-case-method"),
    pytest.param(head(*BASE, line="POST /op\u00e9n HTTP/1.1"), id="non-ascii-in-the-target"),
    pytest.param(head("Content-Length: 2"), id="http-1.1-without-host"),
    pytest.param(head(*BASE, "Sec-WebSocket-Key1: x"), id="sec-websocket-key1"),
]

#: llhttp reads Proxy-Connection as Connection: with "close" there, aiohttp closes the connection.
PROXY_CONNECTION_CLOSE = head(*BASE, "Proxy-Connection: close")

NOT_PLAIN = [
    pytest.param(head(*BASE, "X-Note: caf\u00e9"), id="non-ascii-byte"),
    pytest.param(head(*BASE, line="POST /open HTTP/1.0"), id="http-1.0"),
    pytest.param(head(*BASE, line="POST /open HTTP/2.0"), id="http-2.0"),
    pytest.param(head(*BASE, line="POST /nowhere HTTP/1.1"), id="unknown-path"),
    pytest.param(head(*BASE, line="POST /open/ HTTP/1.1"), id="path-with-a-trailing-slash"),
    pytest.param(head(*BASE, line="POST /healthz HTTP/1.1"), id="health-path"),
    pytest.param(head(*BASE, line="PUT /open HTTP/1.1"), id="wrong-method"),
    pytest.param(head(*BASE, line="HEAD /open HTTP/1.1"), id="head-method"),
    pytest.param(head(*BASE, line="POST /op%65n HTTP/1.1"), id="percent-in-the-path"),
    pytest.param(head(*BASE, line="POST /open?a=%41 HTTP/1.1"), id="percent-in-the-query"),
    pytest.param(head(*BASE, line="POST /open?a=b+c HTTP/1.1"), id="plus-in-the-query"),
    pytest.param(head(*BASE, line="POST /open#top HTTP/1.1"), id="fragment"),
    pytest.param(head(*BASE, line="POST /open?a=b#top HTTP/1.1"), id="fragment-after-a-query"),
    pytest.param(head(*BASE, line="POST http://127.0.0.1/open HTTP/1.1"), id="absolute-form"),
    pytest.param(head(*BASE, line="POST  /open HTTP/1.1"), id="two-spaces-in-the-request-line"),
    pytest.param(b"\r\n" + head(*BASE), id="empty-line-before-the-request-line"),
    pytest.param(head(*BASE, "Transfer-Encoding: chunked"), id="transfer-encoding"),
    pytest.param(head(*BASE, "Content-Encoding: gzip"), id="content-encoding"),
    pytest.param(head(*BASE, "Expect: 100-continue"), id="expect"),
    pytest.param(head(*BASE, "Upgrade: websocket"), id="upgrade"),
    pytest.param(head(*BASE, "Connection: upgrade"), id="connection-upgrade"),
    pytest.param(head(*BASE, "Connection: keep-alive, Upgrade"), id="connection-upgrade-in-a-list"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: " + "1" * 19), id="content-length-19-digits"),
    pytest.param(head("Host: 127.0.0.1"), id="post-without-content-length"),
    pytest.param(head("Host: 127.0.0.1", f"Content-Length: {LIMIT + 1}"), id="over-max-payload-size"),
    pytest.param(PROXY_CONNECTION_CLOSE, id="proxy-connection"),
    *REFUSED_BY_AIOHTTP,
]


@pytest.mark.parametrize("data", NOT_PLAIN)
def test_a_head_that_is_not_plain_is_left_to_aiohttp(routes: dict[str, Route], data: bytes) -> None:
    assert parse_head(head(*BASE), routes, LIMITS) is not None  # the same routes do serve a plain head
    assert parse_head(data, routes, LIMITS) is None


# --- parse_head against aiohttp's own parser -----------------------------------------------------------

#: A second request, pipelined after the first one's body: aiohttp must find it exactly there.
NEXT = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def parser_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """aiohttp's parser wants a loop for the payload streams it creates; it never needs to run."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def aiohttp_reads(loop: asyncio.AbstractEventLoop, data: bytes) -> list[RawRequestMessage]:
    """The requests aiohttp's server parser (C or Python, as installed) reads from `data`, with the
    listener's limits; raises what it raises for a request it refuses."""
    parser = HttpRequestParser(BaseProtocol(loop), loop, 2 ** 16, max_line_size=server.MAX_LINE_SIZE,
                               max_field_size=server.MAX_FIELD_SIZE, max_headers=server.MAX_HEADERS)
    messages, _, _ = parser.feed_data(data)
    return [message for message, _ in messages]


def assert_read_alike(loop: asyncio.AbstractEventLoop, data: bytes, routes: Mapping[str, Route]) -> bool:
    """When `data` (a head as parse_head gets it) is plain, aiohttp reads the same request from it:
    method, target, headers, body length and whether the connection closes. Returns whether it was plain."""
    parsed = parse_head(data, routes, LIMITS)
    if parsed is None:
        return False
    body = b"b" * parsed.content_length
    # After Connection: close, aiohttp refuses any further byte; otherwise the next request must follow the body.
    messages = aiohttp_reads(loop, data + b"\r\n" + body + (b"" if parsed.close else NEXT))
    first = messages[0]
    assert (first.method, first.path.partition("?")[::2]) == (parsed.method, (parsed.path, parsed.query))
    assert (first.version.major, first.version.minor) == (1, 1)
    assert [(k.lower(), v) for k, v in first.headers.items()] == [(k.lower(), v) for k, v in parsed.headers.items()]
    assert first.should_close is parsed.close
    assert [(m.method, m.path) for m in messages[1:]] == ([] if parsed.close else [("GET", "/healthz")])
    return True


READ_ALIKE = [
    pytest.param(head(*BASE), id="base"),
    pytest.param(head("Host: 127.0.0.1", "Content-Type: application/json", "X-GitHub-Event: push",
                      "X-GitHub-Delivery: d-1", "X-Hub-Signature-256: sha256=" + "f" * 64, "Content-Length: 42",
                      line="POST /github HTTP/1.1"), id="github"),
    pytest.param(head("host:127.0.0.1", "content-length:\t 7 \t", line="POST /open?a=1&b=<2>|\\ HTTP/1.1"),
                 id="lower-case-names-odd-query-ows"),
    pytest.param(head(*BASE, "X-Note:  a \tb  ", "X-Empty:", "X-Empty: again"), id="inner-whitespace-and-empty"),
    pytest.param(head(*BASE, "Connection: close"), id="close"),
    pytest.param(head(*BASE, "Connection: Keep-Alive, CLOSE"), id="close-in-a-list"),
    pytest.param(head(*BASE, "Connection: close", "Connection: keep-alive"), id="close-then-keep-alive"),
    pytest.param(head(*BASE, "Connection: keep-alive"), id="keep-alive"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: 0007"), id="leading-zeros"),
    pytest.param(head("Host: 127.0.0.1", "Content-Length: 0"), id="empty-body"),
    pytest.param(head("Host: 127.0.0.1", f"Content-Length: {LIMIT}"), id="max-payload-size"),
    pytest.param(head(*BASE, *(f"X-Pad-{i}: v" for i in range(server.MAX_HEADERS - len(BASE)))), id="max-headers"),
    pytest.param(head(*BASE, "TE: trailers", "Keep-Alive: timeout=5", "Trailer: X-A"), id="hop-by-hop-headers"),
]


@pytest.mark.parametrize("data", READ_ALIKE)
def test_a_plain_head_reads_the_same_through_aiohttps_parser(
        parser_loop: asyncio.AbstractEventLoop, routes: dict[str, Route], data: bytes) -> None:
    assert assert_read_alike(parser_loop, data, routes)


@pytest.mark.parametrize("data", REFUSED_BY_AIOHTTP)
def test_aiohttp_answers_400_to_what_the_lean_path_leaves_it_for_that_reason(
        parser_loop: asyncio.AbstractEventLoop, data: bytes) -> None:
    with pytest.raises(HttpProcessingError) as refused:
        aiohttp_reads(parser_loop, data + b"\r\nbb")
    assert refused.value.code == 400


def test_aiohttp_closes_after_proxy_connection_close(parser_loop: asyncio.AbstractEventLoop) -> None:
    (message,) = aiohttp_reads(parser_loop, PROXY_CONNECTION_CLOSE + b"\r\nbb")
    assert message.should_close


NAMES = ["Host", "host", "Content-Length", "Connection", "connection", "Content-Type", "User-Agent", "X-A", "x-a",
         "Keep-Alive", "TE", "Trailer", "Proxy-Connection", "Sec-WebSocket-Key1", "Transfer-Encoding", "Expect",
         "Upgrade", "Cookie", "X A", "X:A", ""]
SEPARATORS = [": ", ":", ":\t", ":  ", " : "]
VALUES = ["", " ", "x", "5", " 5", "5 ", "\t5\t", "+5", "05", "close", "Close", "keep-alive", "close, keep-alive",
          "keep-alive,close", "upgrade", "chunked", "100-continue", "a\tb", "a  b", "a\"b", "v" * 60, "1" * 19,
          "127.0.0.1", "\x7f", "\x01", "x\n", "x\r", "\u00e9"]
LINES = ["POST /open HTTP/1.1", "POST /open?a=b HTTP/1.1", "POST /open?a=b?c HTTP/1.1", "POST /github HTTP/1.1",
         "POST /open?a=<b>|{c} HTTP/1.1", "POST /open? HTTP/1.1", "POST /open HTTP/1.0", "GET /open HTTP/1.1",
         "POST /open;x HTTP/1.1", "POST /open?x=%20 HTTP/1.1"]


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """Heads near plain: a request line, odd header lines, usually a Host and a Content-Length among them."""
    fields = [name + sep + value for name, sep, value in draw(st.lists(
        st.tuples(st.sampled_from(NAMES), st.sampled_from(SEPARATORS), st.sampled_from(VALUES)), max_size=6))]
    for line in ("Host: 127.0.0.1", "Content-Length: " + draw(st.sampled_from(["0", "5", "05", "17", "5 "]))):
        if draw(st.integers(0, 9)) > 0:
            fields.insert(draw(st.integers(0, len(fields))), line)
    return head(*fields, line=draw(st.sampled_from(LINES)))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(data=heads())
def test_whatever_parse_head_accepts_aiohttp_reads_alike(parser_loop: asyncio.AbstractEventLoop,
                                                         routes: dict[str, Route], data: bytes) -> None:
    assert_read_alike(parser_loop, data, routes)


def test_the_generated_heads_are_often_plain(parser_loop: asyncio.AbstractEventLoop,
                                            routes: dict[str, Route]) -> None:
    """The property above is not vacuous: a fair share of what `heads` draws is plain."""
    plain: list[bool] = []

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(data=heads())
    def count(data: bytes) -> None:
        plain.append(assert_read_alike(parser_loop, data, routes))

    count()
    assert sum(plain) >= len(plain) // 10, (sum(plain), len(plain))


# --- the lean path over the network ----------------------------------------------------------------


@pytest.fixture
async def stack(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Hard]:
    async with running_gateway(nats_server, tmp_path / "manifests") as running:
        yield running


@pytest.fixture
async def quick(monkeypatch: pytest.MonkeyPatch, nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Hard]:
    """A gateway whose keep-alive and body deadlines are 0.6 s (read by the listener when it starts)."""
    monkeypatch.setattr(server, "KEEPALIVE_TIMEOUT", 0.6)
    monkeypatch.setattr(server, "BODY_READ_TIMEOUT", 0.6)
    async with running_gateway(nats_server, tmp_path / "manifests") as running:
        yield running


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        await close_quietly(writer)


async def reply_to(reader: asyncio.StreamReader) -> Reply:
    async with asyncio.timeout(DEADLINE):
        return await read_reply(reader)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (EOF, nothing more sent) within the deadline."""
    async with asyncio.timeout(DEADLINE):
        return await reader.read() == b""


def plain_server(stack: Hard) -> PlainServer:
    (listener,) = stack.gateway.listeners
    runner = listener._runner
    assert runner is not None and isinstance(runner.server, PlainServer)
    return runner.server


async def only_connection(stack: Hard) -> PlainProtocol:
    """The one connection the lean protocol holds, once the server has seen it."""
    plain = plain_server(stack).plain
    await until(lambda: len(plain) == 1, what="the connection to start on the lean protocol", timeout=DEADLINE)
    (conn,) = plain
    return conn


def delivery(delivery_id: str, *, body: bytes = BODY, close: bool = False, path: str = "/open") -> bytes:
    return http_request("POST", path, provider_headers(path, body, delivery=delivery_id), body, close=close)


def chunked(delivery_id: str, *, body: bytes = BODY) -> bytes:
    """A delivery with a chunked body: never plain, always aiohttp's."""
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
    return (f"POST /open HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {delivery_id}\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"


def lean(reply: Reply) -> bool:
    """Whether the lean path wrote `reply` (aiohttp's responses name aiohttp in Server)."""
    served_by = reply.headers.get("server", "")
    assert served_by == "hookgate" or "aiohttp" in served_by, reply.headers
    return served_by == "hookgate"


async def stored_ids(url: str) -> list[str]:
    """The id of every event in the stream, in the order JetStream stored them."""
    return [json.loads(msg.data or b"{}")["id"] for msg in await stored(url)]


# Scenarios run on the test's loop (asyncio's) and again on uvloop, the gateway's loop in production:
# a hand-over swaps the transport's protocol, which each loop implements on its own.


async def three_pipelined_in_one_write(stack: Hard) -> None:
    ids = ["pipe-1", "pipe-2", "pipe-3"]
    async with connect(stack.port) as (reader, writer):
        writer.write(b"".join(delivery(i) for i in ids))
        replies = [await reply_to(reader) for _ in ids]
        assert [(r.status, r.text) for r in replies] == [(200, "ok\n")] * 3
        assert all(lean(r) for r in replies)
        assert all("connection" not in r.headers for r in replies)  # kept alive
    assert await stored_ids(stack.nats.url) == ids  # each stored, in the order sent


async def plain_then_chunked_then_plain(stack: Hard) -> None:
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        writer.write(delivery("mix-1"))
        first = await reply_to(reader)
        writer.write(chunked("mix-2"))
        second = await reply_to(reader)
        writer.write(delivery("mix-3"))
        third = await reply_to(reader)
    assert [(r.status, r.text) for r in (first, second, third)] == [(200, "ok\n")] * 3
    # The first on the lean path; the chunked one hands the connection to aiohttp, which keeps it.
    assert [lean(r) for r in (first, second, third)] == [True, False, False]
    assert await stack.count() == before + 3
    assert (await stored_ids(stack.nats.url))[-3:] == ["mix-1", "mix-2", "mix-3"]


async def plain_and_chunked_in_one_write(stack: Hard) -> None:
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        writer.write(delivery("one-1") + chunked("one-2") + delivery("one-3"))
        replies = [await reply_to(reader) for _ in range(3)]
    assert [(r.status, r.text) for r in replies] == [(200, "ok\n")] * 3
    assert [lean(r) for r in replies] == [True, False, False]
    assert await stack.count() == before + 3
    assert (await stored_ids(stack.nats.url))[-3:] == ["one-1", "one-2", "one-3"]


SCENARIOS: list[Callable[[Hard], Awaitable[None]]] = [
    three_pipelined_in_one_write, plain_then_chunked_then_plain, plain_and_chunked_in_one_write]


async def test_three_plain_deliveries_pipelined_in_one_write_are_answered_in_order(stack: Hard) -> None:
    await three_pipelined_in_one_write(stack)


async def test_a_connection_is_handed_to_aiohttp_at_its_first_request_that_is_not_plain(stack: Hard) -> None:
    await plain_then_chunked_then_plain(stack)


async def test_a_plain_request_and_one_that_is_not_in_the_same_write(stack: Hard) -> None:
    await plain_and_chunked_in_one_write(stack)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_the_same_on_uvloop(nats_server: NatsServer, tmp_path: Path,
                            scenario: Callable[[Hard], Awaitable[None]]) -> None:
    async def main() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with running_gateway(nats_server, tmp_path / "manifests") as running:
            await scenario(running)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def test_connection_close_is_answered_with_close_and_the_server_closes(stack: Hard) -> None:
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        writer.write(delivery("close-1", close=True))
        reply = await reply_to(reader)
        assert (reply.status, reply.text) == (200, "ok\n")
        assert lean(reply)
        assert reply.headers["connection"] == "close"
        assert await closed_by_server(reader)
    assert await stack.count() == before + 1


async def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(stack: Hard) -> None:
    before = await stack.count()
    reply = await stack.send(delivery("half-1"), eof=True)
    assert (reply.status, reply.text) == (200, "ok\n")
    assert lean(reply)
    assert reply.headers["connection"] == "close"
    assert await stack.count() == before + 1


async def test_a_body_in_several_writes_is_read_on_the_lean_path(stack: Hard) -> None:
    body = json.dumps({"action": "opened", "pad": "p" * 900}).encode()
    data = delivery("split-1", body=body)
    cut = data.index(b"\r\n\r\n") + 4
    pieces = [data[cut:cut + 300], data[cut + 300:cut + 600], data[cut + 600:]]
    assert all(pieces) and len(pieces[-1]) > 1
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        conn = await only_connection(stack)
        writer.write(data[:cut])
        await until(lambda: conn._head is not None, what="the head parsed and the body awaited", timeout=DEADLINE)
        received = cut
        for piece in pieces[:-1]:
            writer.write(piece)
            received += len(piece)
            await until(lambda n=received: len(conn._buffer) == n, what="the piece read", timeout=DEADLINE)
            assert conn.task is None  # nothing served before the whole body is here
        writer.write(pieces[-1])
        reply = await reply_to(reader)
        assert conn in plain_server(stack).plain  # never handed over
    assert (reply.status, reply.text) == (200, "ok\n")
    assert lean(reply)
    assert await stack.count() == before + 1
    assert (await stored_ids(stack.nats.url))[-1] == "split-1"


async def test_a_refused_plain_delivery_keeps_the_connection_for_the_next(stack: Hard) -> None:
    bad = {**provider_headers("/github", BODY, delivery="bad-sig"), "X-Hub-Signature-256": "sha256=" + "0" * 64}
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        writer.write(http_request("POST", "/github", bad, BODY, close=False))
        refused = await reply_to(reader)
        writer.write(delivery("good-sig", path="/github"))
        accepted = await reply_to(reader)
    assert refused.status == 403, refused.text
    assert "connection" not in refused.headers
    assert (accepted.status, accepted.text) == (200, "ok\n")
    assert lean(refused) and lean(accepted)
    assert await stack.count() == before + 1


async def test_a_lean_response_carries_its_content_type_length_and_date(stack: Hard) -> None:
    async with connect(stack.port) as (reader, writer):
        writer.write(delivery("headers-1"))
        reply = await reply_to(reader)
    assert lean(reply)
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["content-length"] == str(len(reply.body)) == str(len(b"ok\n"))
    assert reply.body == b"ok\n"
    date = parsedate_to_datetime(reply.headers["date"])
    assert date.tzinfo is not None
    assert abs(date.timestamp() - time.time()) < 5


async def test_a_kept_alive_plain_connection_is_closed_at_the_keepalive_deadline(quick: Hard) -> None:
    loop = asyncio.get_running_loop()
    async with connect(quick.port) as (reader, writer):
        writer.write(delivery("idle-1"))
        reply = await reply_to(reader)
        answered = loop.time()
        assert (reply.status, lean(reply)) == (200, True)
        assert await closed_by_server(reader)
        idle = loop.time() - answered
    # 0.6 s from the response (the timer set when the connection opened is pushed back by it).
    assert 0.45 <= idle < 2.5, idle


async def test_stop_closes_an_idle_kept_alive_plain_connection_at_once(stack: Hard) -> None:
    loop = asyncio.get_running_loop()
    plain = plain_server(stack).plain
    async with connect(stack.port) as (reader, writer):
        writer.write(delivery("stop-idle"))
        assert (await reply_to(reader)).status == 200
        started = loop.time()
        async with asyncio.timeout(DEADLINE):
            await stack.gateway.stop()
        assert await closed_by_server(reader)
        # Not at the 75 s keep-alive deadline: at once.
        assert loop.time() - started < 5
    assert not plain


async def test_stop_answers_a_delivery_whose_publish_is_in_flight_then_closes(
        stack: Hard, monkeypatch: pytest.MonkeyPatch) -> None:
    (listener,) = stack.gateway.listeners
    publishing, release, shutting_down = asyncio.Event(), asyncio.Event(), asyncio.Event()
    publish = listener.bus.publish

    async def held_publish(subject: str, payload: bytes, *, msg_id: str | None = None) -> Any:
        publishing.set()
        await release.wait()
        return await publish(subject, payload, msg_id=msg_id)

    plain = plain_server(stack)
    pre_shutdown = plain.pre_shutdown

    def noted_pre_shutdown() -> None:
        pre_shutdown()
        shutting_down.set()

    monkeypatch.setattr(listener.bus, "publish", held_publish)
    monkeypatch.setattr(plain, "pre_shutdown", noted_pre_shutdown)
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        writer.write(delivery("stop-busy"))
        async with asyncio.timeout(DEADLINE):
            await publishing.wait()
        stopping = asyncio.ensure_future(stack.gateway.stop())
        try:
            async with asyncio.timeout(DEADLINE):
                await shutting_down.wait()
            assert not stopping.done()  # waiting for the delivery under way
            release.set()
            reply = await reply_to(reader)
            assert (reply.status, reply.text) == (200, "ok\n")
            assert lean(reply)
            assert reply.headers["connection"] == "close"
            assert await closed_by_server(reader)
            async with asyncio.timeout(DEADLINE):
                await stopping
        finally:
            release.set()
            stopping.cancel()
    assert await stack.count() == before + 1


async def test_an_http11_delivery_without_host_is_400_and_not_stored(stack: Hard) -> None:
    data = delivery("no-host").replace(b"Host: 127.0.0.1\r\n", b"")
    assert b"Host" not in data.split(b"\r\n\r\n")[0]
    before = await stack.count()
    reply = await stack.send(data)
    assert reply.status == 400, reply.text
    assert "Host" in reply.text
    assert await stack.count() == before


async def test_proxy_connection_close_closes_the_connection_as_aiohttp_does(stack: Hard) -> None:
    data = delivery("proxy-close").replace(b"\r\n\r\n", b"\r\nProxy-Connection: close\r\n\r\n", 1)
    before = await stack.count()
    async with connect(stack.port) as (reader, writer):
        writer.write(data)
        reply = await reply_to(reader)
        assert (reply.status, reply.text) == (200, "ok\n")
        assert await closed_by_server(reader)
    assert await stack.count() == before + 1


def test_the_answers_to_a_stored_delivery_are_cached_within_the_date_headers_second() -> None:
    for _ in range(3):  # a second boundary between the two reads of the clock: read again
        date = protocol._date.get()
        answer = protocol.response(200, "ok\n", close=False)
        if protocol._date.get() is date:
            break
    assert answer == protocol._response(200, "ok\n", close=False, date=date)
    assert protocol._responses[(200, "ok\n", False)] == (date, answer)
    assert protocol.response(200, "ok\n", close=True).endswith(b"Connection: close\r\n\r\nok\n")
    note = "accepted, not published: event 'made-up-by-a-sender' is not in this EventSource's events\n"
    assert protocol.response(200, note, close=False).endswith(note.encode())
    assert all(text in protocol.CACHED_TEXTS for _, text, _ in protocol._responses)
