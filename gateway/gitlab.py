"""GitLab deliveries: the `X-Gitlab-Token` check, event selection, Argo's event data.

Unlike Argo Events, `secretToken` is checked whenever it is configured (Argo only loads it when it
manages the hook), in constant time. `events` uses Argo's names (`MergeRequestsEvents`, ...) and
is enforced on receipt; system hooks (`X-Gitlab-Event: System Hook`) are routed on `object_kind`.
"""

from __future__ import annotations

from typing import Any

from gateway.envelope import header_map
from gateway.errors import RequestRejected
from gateway.models import GitlabEventSource
from gateway.webhook import Accepted, Incoming, content_id, read_json, same_secret

#: Argo's `events` names (fields of the GitLab client's hook options) → `X-Gitlab-Event` values.
EVENT_HEADERS: dict[str, tuple[str, ...]] = {
    "PushEvents": ("Push Hook",),
    "TagPushEvents": ("Tag Push Hook",),
    "IssuesEvents": ("Issue Hook",),
    "ConfidentialIssuesEvents": ("Confidential Issue Hook",),
    "MergeRequestsEvents": ("Merge Request Hook",),
    "NoteEvents": ("Note Hook",),
    "ConfidentialNoteEvents": ("Confidential Note Hook",),
    "JobEvents": ("Job Hook",),
    "PipelineEvents": ("Pipeline Hook",),
    "WikiPageEvents": ("Wiki Page Hook",),
    "DeploymentEvents": ("Deployment Hook",),
    "ReleasesEvents": ("Release Hook",),
    "FeatureFlagEvents": ("Feature Flag Hook",),
    "EmojiEvents": ("Emoji Hook",),
    "ResourceAccessTokenEvents": ("Resource Access Token Hook",),
    "MemberEvents": ("Member Hook",),
    "SubGroupEvents": ("Subgroup Hook",),
    "ProjectEvents": ("Project Hook",),
}

#: A system hook's `object_kind` → the hook it stands for.
SYSTEM_KINDS = {"push": "Push Hook", "tag_push": "Tag Push Hook", "merge_request": "Merge Request Hook",
                "issue": "Issue Hook", "note": "Note Hook", "pipeline": "Pipeline Hook", "build": "Job Hook",
                "wiki_page": "Wiki Page Hook", "deployment": "Deployment Hook", "release": "Release Hook",
                "feature_flag": "Feature Flag Hook", "emoji": "Emoji Hook"}


def unknown_events(events: list[str]) -> list[str]:
    return [e for e in events if e not in EVENT_HEADERS]


def wanted_headers(events: list[str]) -> frozenset[str]:
    return frozenset(h for e in events for h in EVENT_HEADERS.get(e, ()))


def verify_token(incoming: Incoming, secret: str) -> None:
    given = incoming.headers.get("X-Gitlab-Token")
    if given is None:
        raise RequestRejected(401, "missing X-Gitlab-Token header")
    if not same_secret(given, secret):
        raise RequestRejected(403, "X-Gitlab-Token does not match secretToken")


def effective_event(header: str, body: Any) -> str:
    if header == "System Hook" and isinstance(body, dict):
        return SYSTEM_KINDS.get(str(body.get("object_kind", "")), header)
    return header


def delivery_id(incoming: Incoming) -> str:
    key = incoming.text("Idempotency-Key")
    if key:
        return key
    # Recursive hooks share one event UUID, so it alone does not identify a delivery.
    event_uuid = incoming.text("X-Gitlab-Event-UUID")
    return content_id(event_uuid, incoming.body)


def accept(spec: GitlabEventSource, incoming: Incoming, *, secret: str | None) -> Accepted:
    if secret:
        verify_token(incoming, secret)
    header = incoming.text("X-Gitlab-Event")
    if not header:
        raise RequestRejected(400, "missing X-Gitlab-Event header")
    # Only a system hook's body names its event (object_kind): any other stays unread (see read_json).
    body, raw = read_json(incoming.body, lazy=header != "System Hook")
    event = effective_event(header, body)
    event_id = delivery_id(incoming)
    if spec.events and event not in wanted_headers(spec.events):
        return Accepted(event_id=event_id, data={}, publish=False,
                        note=f"{event!r} is not among this EventSource's events")
    data: dict[str, Any] = {"headers": header_map(incoming.header_items), "body": body}
    if spec.metadata:
        data["metadata"] = dict(spec.metadata)
    return Accepted(event_id=event_id, data=data, raw_body=raw)
