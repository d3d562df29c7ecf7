"""GitHub deliveries: signature, event selection, and Argo's `{"headers", "body"}` event data.

The signature is checked over the raw bytes before anything is parsed. Unlike Argo Events, a
configured `events` list is enforced on receipt: an event not listed is answered 200 and not
published, because GitHub counts any other status as a failed delivery.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs

from gateway.envelope import header_map
from gateway.errors import RequestRejected
from gateway.models import GithubEventSource
from gateway.webhook import (
    FORM,
    UNPARSED,
    Accepted,
    Incoming,
    content_id,
    hmac_hex,
    parse_json,
    raw_bytes,
    read_json,
    with_members,
)

_HASHES = frozenset({"sha256", "sha1", "sha512"})


def verify_signature(incoming: Incoming, secret: str) -> None:
    signature = incoming.headers.get("X-Hub-Signature-256") or incoming.headers.get("X-Hub-Signature")
    if not signature:
        raise RequestRejected(401, "missing signature (X-Hub-Signature-256)")
    algorithm, _, given = signature.partition("=")
    if algorithm not in _HASHES or not given:
        raise RequestRejected(403, "unknown signature format (expected sha256=<hex>)")
    expected = hmac_hex(secret, incoming.body, algorithm)
    given = given.strip().lower()
    # compare_digest takes ASCII text as it is; anything else (which cannot match) as the bytes sent.
    same = (hmac.compare_digest(expected, given) if given.isascii()
            else hmac.compare_digest(expected.encode(), raw_bytes(given)))
    if not same:
        raise RequestRejected(403, "signature does not match webhookSecret")


def parse_body(incoming: Incoming) -> tuple[Any, bytes | None]:
    """The payload, JSON or form-encoded, and its JSON text when it can be spliced as it is (a JSON
    object's value may be UNPARSED: see read_json)."""
    if incoming.content_type == FORM or incoming.body.startswith(b"payload="):
        try:
            form = parse_qs(incoming.body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            raise RequestRejected(400, "form body is not UTF-8") from None
        if "payload" not in form:
            raise RequestRejected(400, "form body has no 'payload' field")
        return parse_json(form["payload"][0].encode(), what="form field 'payload'"), None
    return read_json(incoming.body, lazy=True)


def subscribed(events: list[str], event: str) -> bool:
    if event == "ping":
        return "ping" in events or "*" in events
    return not events or "*" in events or event in events


def accept(spec: GithubEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    if secret:
        verify_signature(incoming, secret)
    event = incoming.text("X-GitHub-Event")
    if not event:
        raise RequestRejected(400, "missing X-GitHub-Event header")
    delivery = incoming.text("X-GitHub-Delivery")
    body, raw = parse_body(incoming)
    event_id = delivery or content_id(event, incoming.body)
    if not subscribed(spec.events, event):
        return Accepted(event_id=event_id, data={}, publish=False,
                        note=f"event {event!r} is not in this EventSource's events")
    if body is not UNPARSED and not isinstance(body, dict):
        raise RequestRejected(400, "a GitHub payload must be a JSON object")
    # Argo Events adds these two keys to the body; sensors written for it filter on them.
    added = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    raw_body = with_members(raw, added) if raw is not None else None
    # An UNPARSED body is read from raw_body, which has the added keys.
    data: dict[str, Any] = {"headers": header_map(incoming.header_items),
                            "body": body if body is UNPARSED else {**body, **added}}
    if spec.metadata:
        data["metadata"] = dict(spec.metadata)
    return Accepted(event_id=event_id, data=data, raw_body=raw_body)
