"""The generic `webhook` EventSource, and the request/outcome types every provider shares.

Providers are pure: `Incoming` (method, headers, raw bytes) in, `Accepted` out, or a
`RequestRejected` with the status and a short reason. Only `gateway/server.py` touches aiohttp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.envelope import header_map, json_text
from gateway.errors import RequestRejected
from gateway.models import WebhookEventSource

FORM = "application/x-www-form-urlencoded"
#: Deepest JSON nesting accepted. Real payloads nest under 20 levels; every later walk of the event
#: (json.dumps here, CEL, JMESPath and templates in the sensors) recurses a few Python frames per
#: level, and Python stops at 1000 frames, so 256 keeps all of them far from a RecursionError.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # \uD800-\uDFFF: may decode to a lone surrogate
_SURROGATE = re.compile("[\ud800-\udfff]")


# Built for every delivery and never changed, but not frozen: a frozen dataclass's __init__ sets each
# field through object.__setattr__, 2.5 times the cost (0.6-0.8 us).
@dataclass(slots=True)
class Incoming:
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive lookups (aiohttp's CIMultiDictProxy)
    header_items: Sequence[tuple[str, str]]  # every header line, in order, for the event data
    body: bytes
    query: str = ""

    @property
    def content_type(self) -> str:
        value = self.headers.get("Content-Type", "")
        if value == "application/json":  # what nearly every delivery sends: nothing to normalise
            return value
        return value.split(";", 1)[0].strip().lower()

    def text(self, name: str) -> str:
        """A header's value as JSON-safe text, for ids and event names that end up in the event."""
        return json_text(self.headers.get(name, ""))


class _Unparsed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNPARSED"


#: A body left as the JSON text in `Accepted.raw_body`, read only when something reads `Accepted.data`.
UNPARSED: Any = _Unparsed()


class Accepted:
    """What a provider accepted: the delivery's id and event data, or why it is not published.

    Only an EventSource filter (and `hookgate test`) reads the body's value; the bus message carries
    its text. So a body simdjson vouches for (`read_json(lazy=True)`) stays UNPARSED in `members`
    until `data` is read.
    """

    __slots__ = ("event_id", "members", "note", "publish", "raw_body")

    def __init__(self, event_id: str, data: dict[str, Any], *, publish: bool = True, note: str = "",
                 raw_body: bytes | None = None) -> None:
        self.event_id = event_id  # the provider's delivery id, or a content hash when it sends none
        self.members = data  # the event data as built: its "body" may be UNPARSED
        self.publish = publish
        self.note = note  # why an accepted request is not published (e.g. an event type not subscribed)
        # data["body"] as JSON text, when the request's own bytes can serve: spliced into the envelope
        # instead of re-encoded (the costliest step for a large body), numbers keeping their exact text.
        self.raw_body = raw_body

    @property
    def data(self) -> dict[str, Any]:
        members = self.members
        if members.get("body") is UNPARSED:
            assert self.raw_body is not None
            members["body"] = read_json(self.raw_body)[0]
        return members

    def unpublished(self, note: str) -> Accepted:
        return Accepted(self.event_id, self.members, publish=False, note=note, raw_body=self.raw_body)

    def __repr__(self) -> str:
        return (f"Accepted(event_id={self.event_id!r}, data={self.members!r}, publish={self.publish!r}, "
                f"note={self.note!r}, raw_body={self.raw_body!r})")


def read_json(body: bytes, *, what: str = "body", lazy: bool = False) -> tuple[Any, bytes | None]:
    """The JSON value of `body`, and `body` itself when those bytes can go onto the bus as they are.

    orjson reads the common case: strict UTF-8, no BOM, no lone surrogate escape, every number finite,
    which is also exactly when the bytes can be spliced into the envelope verbatim. Anything it refuses
    is read again by `parse_json`'s standard-library path, which decides between 400 and a value
    (with lone surrogates replaced); that value is re-encoded, never spliced. An integer beyond 64 bits
    is a float in the value, as in Go's encoding/json (and so in Argo's EventSource filter); the bus
    keeps its exact text.

    `lazy`: a JSON object `vouched_object` vouches for is not read at all: its value is UNPARSED.
    """
    if lazy and vouched_object(body):
        return UNPARSED, body
    try:
        return orjson.loads(body), body
    except orjson.JSONDecodeError:
        return _parse_json_stdlib(body, what=what), None


def vouched_object(body: bytes) -> bool:
    """Whether `body` is certainly a JSON object that orjson reads as it is, checked without building
    its value: simdjson takes 0.8 us for a 3 KB push where orjson's read takes 4.7 (timeit), and the
    gateway's CPU per 3 KB delivery under load drops by about 7 % (bench/gateway.py).

    simdjson refuses what orjson refuses, except a leading byte-order mark, which is checked here; it
    also refuses some JSON that orjson reads (integers beyond 64 bits, 1,024 nested objects): False
    then, and the full read decides. tests/gateway/test_json_body.py holds the two parsers to this,
    and pyproject.toml to the pysimdjson release it was tested with.
    """
    if len(body) > OFFLOAD_BYTES or (body[:1] != b"{" and _OBJECT_START.match(body) is None):
        return False
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = _new_parser()
    try:
        # The result is dropped at once: pysimdjson before 8.0 refuses to reuse a parser whose
        # document is still referenced.
        parser.parse(body)
    except Exception:  # whatever a release calls its refusal, the full read decides
        return False
    return True


def _new_parser() -> Any:
    # Imported on first use: the module costs 1.9 MB of RSS, and a sensor process never reads a webhook.
    # The gateway reads a body at start-up (server.Gateway.start), so a missing module stops it there.
    import simdjson

    return simdjson.Parser()


#: A JSON object's first byte after optional JSON whitespace; a BOM (which simdjson skips) fails it.
_OBJECT_START = re.compile(rb"[ \t\r\n]*\{")
#: Bodies above this are verified and read in a worker thread (server.py), not on the event loop. Only
#: the others are vouched for: simdjson keeps buffers for the largest document its parser read.
OFFLOAD_BYTES = 256 * 1024
#: A parser is not thread-safe; bodies are read on the loop and, in tests, on other threads.
_parsers = threading.local()


def with_members(raw_object: bytes, members: dict[str, str]) -> bytes:
    """`raw_object` (a JSON object's text) with `members` added before its closing brace."""
    text = memoryview(raw_object.rstrip())  # a view: the body is copied once, by the join
    # The brace closes an empty object when the byte before it, whitespace aside, is its opening one:
    # a member's value never ends in "{".
    inner = text[:-1]
    end = len(inner)
    while end and inner[end - 1] in _JSON_SPACE:
        end -= 1
    empty = end > 0 and inner[end - 1] == ord("{")
    extra = orjson.dumps(members)[1:-1]  # `"k":"v",...`: the members without their braces
    return b"".join((inner, b"" if empty else b",", extra, b"}"))


_JSON_SPACE = frozenset(b" \t\r\n")


def content_id(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return "sha256-" + digest.hexdigest()[:40]


def hmac_hex(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """HMAC(secret, body) in hex (RFC 2104), from the two hash states the secret keys, made once.

    hmac.digest keys the hash (and OpenSSL 3 looks the digest up by name) on every call: 1.8 of its
    3.9 us for a 3 KB body, where copying two keyed states costs 0.3."""
    pads = _hmac_pads.get((secret, algorithm))
    if pads is None:
        pads = _keyed(secret, algorithm)
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(body)
    outer.update(inner.digest())
    return outer.hexdigest()


def _keyed(secret: str, algorithm: str) -> tuple[Any, Any]:
    key = secret.encode()
    block = hashlib.new(algorithm).block_size
    if len(key) > block:
        key = hashlib.new(algorithm, key).digest()
    key = key.ljust(block, b"\0")
    pads = (hashlib.new(algorithm, key.translate(_IPAD)), hashlib.new(algorithm, key.translate(_OPAD)))
    if len(_hmac_pads) >= 1024:  # configured secrets, and the ones rotated out: the oldest goes
        del _hmac_pads[next(iter(_hmac_pads))]
    _hmac_pads[(secret, algorithm)] = pads
    return pads


_hmac_pads: dict[tuple[str, str], tuple[Any, Any]] = {}
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def raw_bytes(text: str) -> bytes:
    """A header value as sent: aiohttp decodes headers as UTF-8 with `surrogateescape`."""
    return text.encode("utf-8", "surrogateescape")


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(raw_bytes(given), raw_bytes(expected))


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: valid JSON text, but no float holds it and re-encoding would not be JSON
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _not_json(name: str) -> Any:
    # Python reads NaN and Infinity; JSON (and Go, on the other side of the bus) does not.
    raise ValueError(f"{name} is not a JSON value")


def parse_json(body: bytes, *, what: str = "body") -> Any:
    """The JSON value of `body`, every string encodable as UTF-8; 400 for anything else."""
    return read_json(body, what=what)[0]


def _parse_json_stdlib(body: bytes, *, what: str) -> Any:
    try:
        # Decoded here, strictly, rather than by json.loads, which lets UTF-8-encoded surrogates through.
        text = body.decode(json.detect_encoding(body))
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        # The parser's own bound (the interpreter's recursion limit, ~1000 levels) is the depth limit:
        # checking a tighter one walked every parsed body and tripled the cost of a large one.
        raise RequestRejected(400, f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestRejected(400, f"{what} is not valid JSON: {e}") from None
    # A byte search first: the regex over a large body costs as much as parsing it.
    surrogates = (b"\\ud" in body or b"\\uD" in body) and _SURROGATE_ESCAPE.search(text) is not None
    if surrogates and isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if surrogates and isinstance(value, dict | list):
        _replace_all_surrogates(value)
    return value


def _replace_all_surrogates(value: dict[str, Any] | list[Any]) -> None:
    """Lone surrogates (which an escape such as "\\ud800" yields and UTF-8 cannot encode) become
    U+FFFD in place, as Go's encoding/json does. Iterative, so it cannot run out of stack."""
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        _replace_surrogates(node)
        pending.extend(item for item in (node.values() if isinstance(node, dict) else node)
                       if isinstance(item, dict | list))


def _replace_surrogates(node: dict[str, Any] | list[Any]) -> None:
    """The strings directly in `node` (keys too), lone surrogates replaced by U+FFFD."""
    if isinstance(node, dict):
        if any(_SURROGATE.search(k) for k in node):
            items = [(_SURROGATE.sub("\ufffd", k), v) for k, v in node.items()]
            node.clear()
            node.update(items)
        slots: Any = node.items()
    else:
        slots = enumerate(node)
    for key, item in list(slots):
        if isinstance(item, str) and _SURROGATE.search(item):
            node[key] = _SURROGATE.sub("\ufffd", item)


def form_lists(text: str) -> dict[str, list[str]]:
    """Go's url.Values as JSON: every key maps to the list of its values."""
    out: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out


def check_bearer(incoming: Incoming, token: str | None) -> None:
    if token is None:
        return
    auth = incoming.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise RequestRejected(401, "missing bearer token in the Authorization header")
    if not same_secret(auth[len("Bearer "):], token):
        raise RequestRejected(403, "bearer token does not match authSecret")


def webhook_body(incoming: Incoming) -> tuple[Any, bytes | None]:
    """Argo's shapes: GET → query map, form POST → form map, anything else → the JSON body (UNPARSED
    for an object, see `read_json`); with the body's bytes when they can be spliced into the envelope
    as they are."""
    if incoming.method == "GET":
        return form_lists(incoming.query), None
    if incoming.content_type == FORM:
        try:
            return form_lists(incoming.body.decode()), None
        except UnicodeDecodeError:
            raise RequestRejected(400, "form body is not UTF-8") from None
    return read_json(incoming.body, lazy=True)


def accept(spec: WebhookEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    check_bearer(incoming, secret)  # authSecret: a bearer token
    body, raw = webhook_body(incoming)
    data: dict[str, Any] = {"header": header_map(incoming.header_items), "body": body}
    if spec.metadata:
        data["metadata"] = dict(spec.metadata)
    # Only an idempotency key identifies a delivery; tracing ids such as X-Request-Id may be reused.
    key = incoming.text("Idempotency-Key")
    return Accepted(event_id=key or content_id(incoming.path, incoming.query, incoming.body), data=data,
                    raw_body=raw)
