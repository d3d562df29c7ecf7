"""Fuzzing the listeners: 10,000 generated requests, over every provider, against real listeners.

One nats-server and one gateway serve the whole module; the gateway runs on an event loop of its
own in a background thread, and the test (synchronous, driven by hypothesis) sends it batches of
concurrent requests over raw sockets, so that framing no HTTP client would produce gets through.

Each request starts as a delivery a sender could make (the right headers, a valid signature over
the body) and hypothesis then varies everything: the route, the method, the body (JSON of any
shape, binary, nested thousands deep, lone surrogate escapes, form bodies, sizes around the limit,
gzip), the headers (dropped, replaced by odd bytes, added), the signature (right, wrong, garbled,
absent) and the framing (Content-Length, chunked, cut short, bytes flipped, a wrong length).

What must hold for every request: an answer below 500 (a 503 is a failure too, the bus being up),
or, for a request cut short or mangled and then half-closed by the client, possibly no answer at
all; nothing logged at ERROR; no configured secret in any log line. And at the end the listener
still answers /healthz and /readyz, and JetStream holds the deliveries that were valid.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway import server
from hookgate.embedded import NatsServer
from tests.conftest import close_quietly
from tests.gateway.test_hardening import (
    EVENT_HEADER,
    LIMIT,
    PROVIDER_PATHS,
    SECRETS,
    Hard,
    Reply,
    http_request,
    provider_headers,
    read_reply,
    running_gateway,
    stream_count,
)

T = TypeVar("T")

#: 200 examples of 50 concurrent requests: 10,000 requests. (At 100 a batch outgrows hypothesis's
#: per-example budget and generation slows down twentyfold.)
BATCH = 50
EXAMPLES = 200
#: Patched for this module: a request the server must wait on ends within this, as a 408 or a close.
SERVER_DEADLINE = 2.0
#: How long the client waits for an answer: well past SERVER_DEADLINE, so a hang is a failure.
CLIENT_DEADLINE = 15.0

ROUTES = (*PROVIDER_PATHS, "/filtered")
SIGNATURE_HEADERS = ("X-Hub-Signature-256", "X-Hub-Signature", "X-Gitlab-Token", "X-Gitea-Signature",
                     "X-Forgejo-Signature", "Authorization")
HEADER_NAMES = (*SIGNATURE_HEADERS, *EVENT_HEADER.values(), "X-GitHub-Delivery", "Idempotency-Key",
                "X-Gitlab-Event-UUID", "X-Request-UUID", "X-Request-Id", "X-Gitea-Delivery", "X-Forgejo-Event",
                "X-Gitea-Event-Type", "Content-Type", "Content-Encoding", "Transfer-Encoding", "Content-Length",
                "Expect", "Connection", "Upgrade", "Host", "Accept", "User-Agent", "X-Other")
INTERESTING_VALUES = ("", " ", "sha256=", "sha1=", "sha256=" + "0" * 64, "=", "Bearer ", "Bearer x", "chunked",
                      "gzip", "deflate", "br", "identity", "100-continue", "close", "keep-alive", "Upgrade",
                      "websocket", "application/json", "application/x-www-form-urlencoded", "text/plain",
                      "multipart/form-data; boundary=x", "application/json; charset=utf-16", "-1", "0",
                      "99999999999999999999", "System Hook", "Merge Request Hook", "push", "ping",
                      "diagnostics:ping", "\udcff\udcfe", "caf\udce9", "a" * 300)


# --- what is sent ------------------------------------------------------------------------------------


class Wire:
    """One generated request: its bytes, and whether the client half-closes after sending them
    (then the server may rightly close without an answer: the request was cut short or mangled).
    A plain class with a short repr, so that a failing batch prints in a screenful."""

    __slots__ = ("data", "eof", "kind")

    def __init__(self, data: bytes, eof: bool, kind: str) -> None:
        self.data = data
        self.eof = eof
        self.kind = kind

    def __repr__(self) -> str:
        return f"Wire({self.kind}, eof={self.eof}, {self.data[:120]!r}{'...' if len(self.data) > 120 else ''})"


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


def _bodies() -> st.SearchStrategy[bytes]:
    provider_like = st.fixed_dictionaries(
        {"action": st.sampled_from(["opened", "closed", "labeled", ""]),
         "labels": st.lists(st.fixed_dictionaries({"name": st.text(max_size=6)}), max_size=3)},
        optional={"object_kind": st.sampled_from(["push", "merge_request", "note", "x"]), "extra": JSON_VALUES})
    provider_json = provider_like.map(lambda v: json.dumps(v).encode())
    return st.one_of(
        provider_json, provider_json, provider_json, provider_json,  # most deliveries reach a provider
        JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
        st.binary(max_size=600),
        st.text(max_size=200).map(lambda t: t.encode()),
        st.integers(0, 1500).map(lambda n: b"[" * n + b"]" * n),
        st.integers(0, 600).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.sampled_from([b'{"action":"opened","labels":[1],"s":"\\ud800"}', b'"\\udfff"', b'{"\\udc00":1}',
                         b'{"a":"\xed\xa0\x80"}', b"\xef\xbb\xbf{}", '{"a":"é"}'.encode("utf-16"), b"NaN",
                         b'{"n":' + b"9" * 5000 + b"}", b"", b"{}", b"[]", b"null", b"payload="]),
        JSON_VALUES.map(lambda v: b"payload=" + quote_plus(json.dumps(v)).encode()),
        st.binary(max_size=200).map(lambda b: b"payload=" + b),
        st.integers(LIMIT - 40, LIMIT + 40).map(lambda n: b'{"pad":"' + b"x" * max(n - 10, 0) + b'"}'),
    )


def _header_values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(INTERESTING_VALUES),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40),
        st.text(max_size=40),
        st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )


def _odd_paths() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["/", "/nowhere", "/github/", "//gitlab", "/%ff", "/open%00", "/healthz", "/readyz",
                         "/metrics", "*", "/open?x=1", "/github#f", "http://h/open", "/" + "a" * 9000]),
        st.binary(min_size=1, max_size=30).map(lambda b: "/" + b.decode("utf-8", "surrogateescape")),
    )


# Built once: hypothesis validates a strategy when it is built, which is costly for recursive ones.
JSON_VALUES = _json_values()
BODIES = _bodies()
HEADER_VALUES = _header_values()
ODD_PATHS = _odd_paths()
HEADER_NAME_STRATEGY = st.sampled_from(HEADER_NAMES)
ODD_HEADER_NAMES = st.text(min_size=1, max_size=10)
METHODS = st.sampled_from(["POST"] * 12 + ["GET", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "FOO"])
SIGNATURES = st.sampled_from(["valid"] * 6 + ["wrong", "missing", "garbled"])
#: True nine times in ten: the odds of the usual choice over the odd one.
ODDS = st.sampled_from([True] * 9 + [False])
DELIVERIES = st.one_of(*[st.text(alphabet="0123456789abcdef-", min_size=1, max_size=12)] * 4, HEADER_VALUES)
FRAMINGS = st.sampled_from(["length"] * 14 + ["chunked"] * 2 + ["cut", "flip", "wrong-length"])


def chunked(body: bytes, cuts: list[int]) -> bytes:
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    parts = [body[a:b] for a, b in itertools.pairwise(points) if b > a]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@st.composite
def requests(draw: st.DrawFn) -> Wire:
    path = draw(st.sampled_from(ROUTES)) if draw(ODDS) else draw(ODD_PATHS)
    route = path if path in ROUTES else draw(st.sampled_from(ROUTES))
    method = draw(METHODS)
    body = draw(BODIES)
    headers: dict[str, str] = provider_headers(route, body, delivery=draw(DELIVERIES))
    if body.startswith(b"payload=") and draw(st.booleans()):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    signature = draw(SIGNATURES)
    present = [h for h in SIGNATURE_HEADERS if h in headers]
    for name in present:
        if signature == "missing":
            del headers[name]
        elif signature == "wrong":
            headers[name] = headers[name][:-1] + ("0" if headers[name][-1:] != "0" else "1")
        elif signature == "garbled":
            headers[name] = draw(HEADER_VALUES)
    if draw(st.integers(0, 4)) == 0:
        for name in draw(st.lists(st.sampled_from(sorted(headers)), min_size=1, max_size=2, unique=True)):
            del headers[name]  # drop a header the sender always sends
    items = list(headers.items())
    if draw(st.integers(0, 2)) == 0:
        names = HEADER_NAME_STRATEGY if draw(ODDS) else ODD_HEADER_NAMES
        items += draw(st.lists(st.tuples(names, HEADER_VALUES), min_size=1, max_size=4))
    if draw(st.integers(0, 9)) == 0:  # the sender compresses: aiohttp inflates before the signature check
        body = gzip.compress(body)
        items.append(("Content-Encoding", "gzip"))

    framing = draw(FRAMINGS)
    if framing == "chunked":
        items.append(("Transfer-Encoding", "chunked"))
        payload = chunked(body, draw(st.lists(st.integers(0, len(body)), max_size=4)))
        data = http_request(method, path, items, payload, content_length=False)
        return Wire(data, eof=False, kind=framing)
    data = http_request(method, path, items, body)
    if framing == "cut":
        return Wire(data[:draw(st.integers(0, len(data)))], eof=True, kind=framing)
    if framing == "flip":
        mangled = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            mangled[draw(st.integers(0, len(mangled) - 1))] = draw(st.integers(0, 255))
        return Wire(bytes(mangled), eof=True, kind=framing)
    if framing == "wrong-length":
        delta = draw(st.integers(-20, 20).filter(bool))
        length = b"Content-Length: %d\r\n"
        data = data.replace(length % len(body), length % max(len(body) + delta, 0))
        return Wire(data, eof=True, kind=framing)
    return Wire(data, eof=False, kind=framing)


# --- the client --------------------------------------------------------------------------------------


async def send(port: int, wire: Wire) -> Reply:
    """`wire` on a connection of its own; the final answer (past any 100 Continue), or Reply(None)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(CLIENT_DEADLINE):
            try:
                writer.write(wire.data)
                await writer.drain()
                if wire.eof and writer.can_write_eof():
                    writer.write_eof()
            except ConnectionError:  # closed by the server while we were still writing: read what it said
                pass
            reply = await read_reply(reader)
            for _ in range(3):  # bounded: at most a few interim answers
                if reply.status is None or reply.status >= 200:
                    break
                reply = await read_reply(reader)
            return reply
    except TimeoutError:
        raise AssertionError(f"no answer within {CLIENT_DEADLINE}s to {wire.kind} {wire.data[:300]!r}") from None
    finally:
        await close_quietly(writer)


async def send_all(port: int, batch: list[Wire]) -> list[Reply]:
    return list(await asyncio.gather(*(send(port, wire) for wire in batch)))


# --- the gateway, on a loop of its own -----------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Runner(Protocol):
    def __call__(self, coro: Coroutine[Any, Any, T], timeout: float) -> T: ...


@dataclass
class Fuzzed:
    hard: Hard
    run: Runner
    statuses: Counter[int | None] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    sent: int = 0


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    folder = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)

    def run(coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    with pytest.MonkeyPatch.context() as patch, NatsServer(folder / "nats") as nats_server:
        patch.setattr(server, "KEEPALIVE_TIMEOUT", SERVER_DEADLINE)
        patch.setattr(server, "BODY_READ_TIMEOUT", SERVER_DEADLINE)
        thread.start()
        stack = running_gateway(nats_server, folder / "manifests")
        try:
            hard = run(stack.__aenter__(), 30)
            try:
                yield Fuzzed(hard=hard, run=run)
            finally:
                run(stack.__aexit__(None, None, None), 30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def test_ten_thousand_generated_requests_get_no_5xx_and_leave_the_listener_serving(fuzzed: Fuzzed) -> None:
    records = Records()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("gateway", "aiohttp")}
    root.addHandler(records)
    for name in levels:
        logging.getLogger(name).setLevel(logging.INFO)  # INFO too: no secret may be in any line
    started = time.monotonic()
    try:
        # No shrinking: a failure already names the one request (of its batch) that failed, and shrinking
        # a batch over the network would outlast the test's time limit. derandomize: the same 10,000
        # requests on every run, so that a failure in CI reproduces on a laptop.
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(batch=st.lists(requests(), min_size=BATCH, max_size=BATCH))
        def one_batch(batch: list[Wire]) -> None:
            replies = fuzzed.run(send_all(fuzzed.hard.port, batch), 2 * CLIENT_DEADLINE)
            fuzzed.sent += len(batch)
            for wire, reply in zip(batch, replies, strict=True):
                fuzzed.statuses[reply.status] += 1
                fuzzed.kinds[wire.kind] += 1
                if reply.status is None:
                    assert wire.eof, f"closed without an answer: {wire.kind} {wire.data[:300]!r}"
                else:
                    assert reply.status < 500, f"{reply.status} {reply.text!r} for {wire.kind} {wire.data[:300]!r}"
            errors = [r for r in records.records if r.levelno >= logging.ERROR]
            assert not errors, [r.getMessage() for r in errors][:3]

        one_batch()
    finally:
        root.removeHandler(records)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    elapsed = time.monotonic() - started

    hard = fuzzed.hard
    assert fuzzed.sent >= EXAMPLES * BATCH
    health = [fuzzed.run(send(hard.port, Wire(http_request("GET", p, {}, b"", content_length=False), False, "")),
                         CLIENT_DEADLINE) for p in ("/healthz", "/readyz")]
    assert [r.status for r in health] == [200, 200]
    logged = "\n".join(r.getMessage() for r in records.records)
    assert "rejected" in logged
    for secret in SECRETS:
        assert secret not in logged
    stored = fuzzed.run(stream_count(hard.nats.url), 30)
    # Valid deliveries got through: the fuzz reached the providers and the bus, not just the parser.
    assert fuzzed.statuses[200] > 500 and stored > 100, (fuzzed.statuses, stored)
    for status in (400, 401, 403, 404, 405, 413):
        assert fuzzed.statuses[status] > 0, (status, fuzzed.statuses)
    histogram = ", ".join(f"{s}: {n}" for s, n in sorted(fuzzed.statuses.items(), key=lambda kv: kv[0] or 0))
    print(f"\nfuzz: {fuzzed.sent} requests in {elapsed:.1f}s; statuses {histogram}; framing {dict(fuzzed.kinds)}; "
          f"{stored} events stored")
