"""The generic `webhook` EventSource, and the request/outcome types every provider shares.

Providers are pure: `Incoming` (method, headers, raw bytes) in, `Accepted` out, or a
`RequestRejected` with the status and a short reason. Only `gateway/server.py` touches aiohttp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from gateway.envelope import header_map, json_text
from gateway.errors import RequestRejected
from gateway.models import WebhookEventSource

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Incoming:
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive lookups (aiohttp's CIMultiDictProxy)
    header_items: Sequence[tuple[str, str]]  # every header line, in order, for the event data
    body: bytes
    query: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def text(self, name: str) -> str:
        """A header's value as JSON-safe text, for ids and event names that end up in the event."""
        return json_text(self.headers.get(name, ""))


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str  # the provider's delivery id, or a content hash when it sends none
    data: dict[str, Any]
    publish: bool = True
    note: str = ""  # why an accepted request is not published (e.g. an event type not subscribed)
    labels: dict[str, str] = field(default_factory=dict)


def content_id(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return "sha256-" + digest.hexdigest()[:40]


def raw_bytes(text: str) -> bytes:
    """A header value as sent: aiohttp decodes headers as UTF-8 with `surrogateescape`."""
    return text.encode("utf-8", "surrogateescape")


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(raw_bytes(given), raw_bytes(expected))


def parse_json(body: bytes, *, what: str = "body") -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestRejected(400, f"{what} is not valid JSON: {e}") from None


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


def webhook_body(incoming: Incoming) -> Any:
    """Argo's shapes: GET → query map, form POST → form map, anything else → the JSON body."""
    if incoming.method == "GET":
        return form_lists(incoming.query)
    if incoming.content_type == FORM:
        try:
            return form_lists(incoming.body.decode())
        except UnicodeDecodeError:
            raise RequestRejected(400, "form body is not UTF-8") from None
    return parse_json(incoming.body)


def accept(spec: WebhookEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    check_bearer(incoming, secret)  # authSecret: a bearer token
    body = webhook_body(incoming)
    data: dict[str, Any] = {"header": header_map(incoming.header_items), "body": body}
    if spec.metadata:
        data["metadata"] = dict(spec.metadata)
    # Only an idempotency key identifies a delivery; tracing ids such as X-Request-Id may be reused.
    key = incoming.text("Idempotency-Key")
    return Accepted(event_id=key or content_id(incoming.path, incoming.query, incoming.body), data=data)
