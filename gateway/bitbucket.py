"""Bitbucket Cloud (`bitbucket`) and Bitbucket Data Center / Server (`bitbucketserver`) deliveries.

Both sign with `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>` when a secret is set
(on GitHub that header name means SHA-1; here only `sha256=` is valid), name the event in
`X-Event-Key` and identify the delivery in `X-Request-UUID` (Cloud) / `X-Request-Id` (Server).
The event data is Argo's `{"headers", "body", "metadata"?}`.

Differences from Argo Events, on purpose:
- Argo has no secret for Bitbucket Cloud; hookgate adds `webhookSecret`, checked when set.
- Argo checks the Server's `webhookSecret` only when it also manages the hook; hookgate checks it
  whenever it is set, in constant time.
- `events` is enforced on receipt: an event not listed is answered 200 and not published. The
  Server's "Test connection" (`diagnostics:ping`) is published only when `events` lists it.
"""

from __future__ import annotations

import hmac
from typing import Any

from gateway.envelope import header_map
from gateway.errors import RequestRejected
from gateway.models import BitbucketEventSource, BitbucketServerEventSource
from gateway.webhook import Accepted, Incoming, content_id, hmac_hex, parse_json, raw_bytes

PING = "diagnostics:ping"


def verify_signature(incoming: Incoming, secret: str) -> None:
    signature = incoming.headers.get("X-Hub-Signature")
    if not signature:
        raise RequestRejected(401, "missing signature (X-Hub-Signature)")
    algorithm, sep, given = signature.partition("=")
    if algorithm.strip().lower() != "sha256" or not sep or not given.strip():
        raise RequestRejected(403, "unknown signature format (expected X-Hub-Signature: sha256=<hex>)")
    expected = hmac_hex(secret, incoming.body)
    if not hmac.compare_digest(expected.encode(), raw_bytes(given.strip().lower())):
        raise RequestRejected(403, "signature does not match webhookSecret")


def subscribed(events: list[str], event: str) -> bool:
    if event == PING:
        return PING in events or "*" in events
    return not events or "*" in events or event in events


def _accept(incoming: Incoming, *, events: list[str], metadata: dict[str, str], secret: str | None,
            delivery_header: str) -> Accepted:
    if secret:
        verify_signature(incoming, secret)
    event = incoming.text("X-Event-Key")
    if not event:
        raise RequestRejected(400, "missing X-Event-Key header")
    body = parse_json(incoming.body)
    event_id = incoming.text(delivery_header) or content_id(event, incoming.body)
    if not subscribed(events, event):
        return Accepted(event_id=event_id, data={}, publish=False,
                        note=f"event {event!r} is not in this EventSource's events")
    data: dict[str, Any] = {"headers": header_map(incoming.header_items), "body": body}
    if metadata:
        data["metadata"] = dict(metadata)
    return Accepted(event_id=event_id, data=data)


def accept(spec: BitbucketEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    """Bitbucket Cloud."""
    return _accept(incoming, events=spec.events, metadata=spec.metadata, secret=secret,
                   delivery_header="X-Request-UUID")


def accept_server(spec: BitbucketServerEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    """Bitbucket Data Center / Server."""
    return _accept(incoming, events=spec.events, metadata=spec.metadata, secret=secret,
                   delivery_header="X-Request-Id")
