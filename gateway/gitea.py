"""Gitea and Forgejo deliveries (the `gitea` EventSource, hookgate's own: Argo has none).

Signature, checked over the raw bytes when `webhookSecret` is set: `X-Gitea-Signature` or
`X-Forgejo-Signature` carry the bare hex HMAC-SHA256 of the body; `X-Hub-Signature-256:
sha256=<hex>` (Gitea's GitHub-compatible header) is accepted too. The legacy SHA-1
`X-Hub-Signature` is not. The event is `X-Forgejo-Event` / `X-Gitea-Event` (`pull_request`), with
the finer `X-Gitea-Event-Type` (`pull_request_label`); `events` may list either, and is enforced
on receipt. The delivery id is `X-Forgejo-Delivery` / `X-Gitea-Delivery`. Form deliveries
(`payload=`) are accepted whatever `contentType` says. The event data is `{"headers", "body",
"metadata"?}`, as for Argo's `github` source, without the keys Argo adds to a GitHub body.
"""

from __future__ import annotations

import hmac
from typing import Any

from gateway.envelope import header_map
from gateway.errors import RequestRejected
from gateway.github import parse_body
from gateway.models import GiteaEventSource
from gateway.webhook import Accepted, Incoming, content_id, hmac_hex, raw_bytes

BARE_HEX_HEADERS = ("X-Forgejo-Signature", "X-Gitea-Signature")
PREFIXED_HEADER = "X-Hub-Signature-256"


def verify_signature(incoming: Incoming, secret: str) -> None:
    expected = hmac_hex(secret, incoming.body)
    for name in BARE_HEX_HEADERS:
        given = incoming.headers.get(name)
        if given:
            _compare(expected, given.strip(), name)
            return
    prefixed = incoming.headers.get(PREFIXED_HEADER)
    if not prefixed:
        raise RequestRejected(401, "missing signature (X-Gitea-Signature, X-Forgejo-Signature or "
                                   "X-Hub-Signature-256)")
    algorithm, sep, given = prefixed.partition("=")
    if algorithm.strip().lower() != "sha256" or not sep:
        raise RequestRejected(403, "unknown signature format (expected X-Hub-Signature-256: sha256=<hex>)")
    _compare(expected, given.strip(), PREFIXED_HEADER)


def _compare(expected: str, given: str, header: str) -> None:
    if not hmac.compare_digest(expected.encode(), raw_bytes(given.lower())):
        raise RequestRejected(403, f"{header} does not match webhookSecret")


def first(incoming: Incoming, *names: str) -> str:
    for name in names:
        value = incoming.text(name)
        if value:
            return value
    return ""


def subscribed(events: list[str], event: str, event_type: str) -> bool:
    return not events or "*" in events or event in events or (bool(event_type) and event_type in events)


def accept(spec: GiteaEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    if secret:
        verify_signature(incoming, secret)
    event = first(incoming, "X-Forgejo-Event", "X-Gitea-Event")
    if not event:
        raise RequestRejected(400, "missing X-Gitea-Event (or X-Forgejo-Event) header")
    event_type = first(incoming, "X-Forgejo-Event-Type", "X-Gitea-Event-Type")
    body, raw = parse_body(incoming)
    event_id = first(incoming, "X-Forgejo-Delivery", "X-Gitea-Delivery") or content_id(event, incoming.body)
    if not subscribed(spec.events, event, event_type):
        shown = f"{event}/{event_type}" if event_type and event_type != event else event
        return Accepted(event_id=event_id, data={}, publish=False,
                        note=f"event {shown!r} is not in this EventSource's events")
    data: dict[str, Any] = {"headers": header_map(incoming.header_items), "body": body}
    if spec.metadata:
        data["metadata"] = dict(spec.metadata)
    return Accepted(event_id=event_id, data=data, raw_body=raw)
