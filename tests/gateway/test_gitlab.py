"""GitLab deliveries through `gateway.gitlab.accept`: the token, event selection, Argo's data shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import gitlab
from gateway.envelope import MASK, CloudEvent
from gateway.errors import RequestRejected
from gateway.models import GitlabEventSource
from gateway.webhook import Accepted, Incoming
from tests.conftest import FIXTURES, fixture_bytes
from tests.gateway.test_webhook import assert_same_json, incoming

TOKEN = "gl-webhook-token-0123456789"
UUID = "b7a5b1b5-5a0c-4d7e-9c44-0f3e6f0d7a10"
KEY = "f3a2a0f6-1e1b-4a60-a3f7-7c1fbb3e2c55"
BODY = b'{"object_kind": "merge_request", "project": {"id": 15}, "iid": 9007199254740993, "ratio": 10.40}'
GITLAB_FIXTURES = sorted(json.loads((FIXTURES / "HEADERS.json").read_text())["gitlab"].items())

#: X-Gitlab-Event → the Argo `events` name that subscribes to it (Argo's hook option field names).
ARGO_NAME = {
    "Push Hook": "PushEvents", "Tag Push Hook": "TagPushEvents", "Issue Hook": "IssuesEvents",
    "Confidential Issue Hook": "ConfidentialIssuesEvents", "Merge Request Hook": "MergeRequestsEvents",
    "Note Hook": "NoteEvents", "Confidential Note Hook": "ConfidentialNoteEvents", "Job Hook": "JobEvents",
    "Pipeline Hook": "PipelineEvents", "Wiki Page Hook": "WikiPageEvents", "Deployment Hook": "DeploymentEvents",
    "Release Hook": "ReleasesEvents", "Feature Flag Hook": "FeatureFlagEvents", "Emoji Hook": "EmojiEvents",
}


def spec(**fields: Any) -> GitlabEventSource:
    return GitlabEventSource.model_validate({"webhook": {"endpoint": "/gitlab", "port": "12000"}, **fields})


def delivery(body: bytes = BODY, *, event: str = "Merge Request Hook", token: str | None = TOKEN,
             extra: list[tuple[str, str]] | None = None) -> Incoming:
    headers = [("Content-Type", "application/json"), ("User-Agent", "GitLab/17.5.0"), ("X-Gitlab-Event", event),
               ("X-Gitlab-Event-UUID", UUID), ("X-Gitlab-Instance", "https://gitlab.example.com")]
    if token is not None:
        headers.append(("X-Gitlab-Token", token))
    return incoming(path="/gitlab", headers=[*headers, *(extra or [])], body=body)


def accept(inc: Incoming, *, secret: str | None = TOKEN, **fields: Any) -> Accepted:
    return gitlab.accept(spec(**fields), inc, secret=secret)


def rejection(inc: Incoming, *, secret: str | None = TOKEN, **fields: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as err:
        accept(inc, secret=secret, **fields)
    return err.value


# --- the token ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "extra", "status"), [
    pytest.param(TOKEN, [], None, id="right-token"),
    pytest.param(None, [("x-gitlab-token", TOKEN)], None, id="header-name-case-insensitive"),
    pytest.param(None, [], 401, id="missing-token"),
    pytest.param("wrong", [], 403, id="wrong-token"),
    pytest.param("", [], 403, id="empty-token"),
    pytest.param(TOKEN[:-1], [], 403, id="prefix-of-the-token"),
    pytest.param(TOKEN + " ", [], 403, id="token-with-trailing-space"),
    pytest.param(TOKEN.upper(), [], 403, id="token-in-other-case"),
    pytest.param(TOKEN + "\u00e9", [], 403, id="non-ASCII-token"),
    pytest.param(b"\xff\xfe".decode("utf-8", "surrogateescape"), [], 403, id="token-bytes-not-UTF-8"),
])
def test_the_secret_token_is_enforced(token: str | None, extra: list[tuple[str, str]], status: int | None) -> None:
    inc = delivery(token=token, extra=extra)
    if status is None:
        assert accept(inc).publish is True
    else:
        assert rejection(inc).status == status


def test_the_token_is_checked_before_the_body_is_parsed() -> None:
    assert rejection(delivery(b"{not json", token="wrong")).status == 403


def test_without_a_secret_token_an_unauthenticated_delivery_is_accepted() -> None:
    assert accept(delivery(token=None), secret=None).publish is True


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    pytest.param(b"{not json", id="broken-JSON"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b"object_kind=push", id="form-body"),
    pytest.param(b'{"a": "\xff"}', id="not-UTF-8"),
])
def test_a_body_that_is_not_json_is_rejected_with_400(body: bytes) -> None:
    assert rejection(delivery(body)).status == 400


def test_a_delivery_without_an_event_header_is_rejected_with_400() -> None:
    inc = incoming(headers=[("X-Gitlab-Token", TOKEN)], body=BODY)
    assert rejection(inc).status == 400


# --- event selection ------------------------------------------------------------------------------


@pytest.mark.parametrize(("events", "header", "object_kind", "published"), [
    pytest.param([], "Push Hook", "push", True, id="no-events-list-publishes-all"),
    pytest.param([], "Some Future Hook", "future", True, id="no-events-list-publishes-unknown-hooks"),
    pytest.param(["MergeRequestsEvents"], "Merge Request Hook", "merge_request", True, id="MR-listed"),
    pytest.param(["MergeRequestsEvents"], "Push Hook", "push", False, id="push-not-listed"),
    pytest.param(["PushEvents", "TagPushEvents"], "Tag Push Hook", "tag_push", True, id="tag-push-listed"),
    pytest.param(["PushEvents"], "Tag Push Hook", "tag_push", False, id="push-does-not-cover-tag-push"),
    pytest.param(["IssuesEvents"], "Confidential Issue Hook", "issue", False, id="issues-not-confidential"),
    pytest.param(["ConfidentialIssuesEvents"], "Confidential Issue Hook", "issue", True, id="confidential-issue"),
    pytest.param(["JobEvents"], "Job Hook", "build", True, id="job"),
    pytest.param(["ReleasesEvents"], "Release Hook", "release", True, id="release"),
    pytest.param(["MergeRequestsEvents"], "System Hook", "merge_request", True, id="system-hook-MR-by-object-kind"),
    pytest.param(["MergeRequestsEvents"], "System Hook", "push", False, id="system-hook-push-not-listed"),
    pytest.param(["PushEvents"], "System Hook", "push", True, id="system-hook-push-listed"),
    pytest.param(["TagPushEvents"], "System Hook", "tag_push", True, id="system-hook-tag-push"),
    pytest.param(["JobEvents"], "System Hook", "build", True, id="system-hook-build-is-a-job"),
    pytest.param(["PushEvents"], "System Hook", "repository_update", False, id="system-hook-unmapped-kind"),
    pytest.param([], "System Hook", "repository_update", True, id="system-hook-no-events-list"),
])
def test_events_use_argos_names_and_are_enforced_without_rejecting_the_delivery(
        events: list[str], header: str, object_kind: str, published: bool) -> None:
    body = json.dumps({"object_kind": object_kind, "id": 1}).encode()
    accepted = accept(delivery(body, event=header), events=events)
    assert accepted.publish is published
    if published:
        assert accepted.data["body"]["object_kind"] == object_kind
    else:
        assert accepted.data == {}
        assert accepted.note


def test_a_system_hook_keeps_its_own_event_header_in_the_data() -> None:
    body = json.dumps({"object_kind": "merge_request"}).encode()
    data = accept(delivery(body, event="System Hook"), events=["MergeRequestsEvents"]).data
    assert data["headers"]["X-Gitlab-Event"] == ["System Hook"]


@pytest.mark.parametrize(("header", "argo_name"), sorted(ARGO_NAME.items()))
def test_each_argo_event_name_subscribes_to_its_gitlab_hook(header: str, argo_name: str) -> None:
    assert gitlab.unknown_events([argo_name]) == []
    others = [name for name in ARGO_NAME.values() if name != argo_name]
    assert accept(delivery(event=header), events=[argo_name]).publish is True
    assert accept(delivery(event=header), events=others).publish is False


def test_unknown_argo_event_names_are_reported() -> None:
    assert gitlab.unknown_events(["PushEvents", "MergeRequestEvents", "push"]) == ["MergeRequestEvents", "push"]


# --- identity and data shape ----------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "same_as"), [
    pytest.param([("Idempotency-Key", KEY)], KEY, id="Idempotency-Key-preferred-over-event-UUID"),
    pytest.param([("idempotency-key", KEY)], KEY, id="Idempotency-Key-case-insensitive"),
])
def test_the_idempotency_key_becomes_the_event_id(extra: list[tuple[str, str]], same_as: str) -> None:
    assert accept(delivery(extra=extra)).event_id == same_as


def test_without_an_idempotency_key_the_event_id_hashes_the_event_uuid_and_the_bytes() -> None:
    first = accept(delivery()).event_id
    again = accept(delivery()).event_id
    other_bytes = accept(delivery(BODY.replace(b"15", b"16"))).event_id
    other_uuid = accept(incoming(headers=[("X-Gitlab-Event", "Merge Request Hook"), ("X-Gitlab-Token", TOKEN),
                                          ("X-Gitlab-Event-UUID", "another")], body=BODY)).event_id
    no_uuid = accept(incoming(headers=[("X-Gitlab-Event", "Merge Request Hook"), ("X-Gitlab-Token", TOKEN)],
                              body=BODY)).event_id
    assert first == again
    assert first.startswith("sha256-")
    assert UUID not in first
    assert len({first, other_bytes, other_uuid, no_uuid}) == 4


def test_gitlab_data_uses_the_plural_headers_key_with_canonical_names_and_list_values() -> None:
    data = accept(delivery(extra=[("Idempotency-Key", KEY)])).data
    assert set(data) == {"headers", "body"}
    headers = data["headers"]
    assert headers["X-Gitlab-Event"] == ["Merge Request Hook"]
    assert headers["X-Gitlab-Event-Uuid"] == [UUID]
    assert headers["Idempotency-Key"] == [KEY]
    assert headers["User-Agent"] == ["GitLab/17.5.0"]
    assert "X-Gitlab-Event-UUID" not in headers


def test_the_token_and_authorization_headers_are_masked_and_never_reach_the_event_data() -> None:
    data = accept(delivery(extra=[("Authorization", "Bearer glpat-secret")])).data
    assert data["headers"]["X-Gitlab-Token"] == [MASK]
    assert data["headers"]["Authorization"] == [MASK]
    text = json.dumps(data)
    assert TOKEN not in text
    assert "glpat-secret" not in text


def test_the_body_is_the_raw_gitlab_json_with_exact_numbers_and_no_added_keys() -> None:
    body = accept(delivery()).data["body"]
    assert_same_json(body, {"object_kind": "merge_request", "project": {"id": 15}, "iid": 9007199254740993,
                            "ratio": 10.40})


def test_metadata_is_included_only_when_set() -> None:
    assert accept(delivery(), metadata={"tier": "gold"}).data["metadata"] == {"tier": "gold"}
    assert "metadata" not in accept(delivery()).data


# --- every real payload ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "headers"), [pytest.param(n, h, id=n) for n, h in GITLAB_FIXTURES])
def test_every_gitlab_fixture_is_accepted_and_shaped_as_argo_shapes_it(name: str, headers: dict[str, str]) -> None:
    raw = fixture_bytes("gitlab", name)
    event = headers["X-Gitlab-Event"]
    inc = incoming(path="/gitlab", body=raw, headers=[
        ("Content-Type", "application/json"), ("X-Gitlab-Event", event), ("X-Gitlab-Token", TOKEN),
        ("Idempotency-Key", f"key-{name}")])
    accepted = accept(inc, events=[ARGO_NAME[event]], metadata={"k": "v"})
    assert accepted.publish is True
    assert accepted.event_id == f"key-{name}"
    data = accepted.data
    assert list(data) == ["headers", "body", "metadata"]
    assert data["headers"]["X-Gitlab-Event"] == [event]
    assert data["headers"]["X-Gitlab-Token"] == [MASK]
    assert data["metadata"] == {"k": "v"}
    assert_same_json(data["body"], json.loads(raw))
    event_json = CloudEvent(id=accepted.event_id, source="gitlab", subject="example", type="gitlab",
                            data=data).to_json()
    assert_same_json(CloudEvent.from_json(event_json).data, data)


@pytest.mark.parametrize(("name", "headers"), [pytest.param(n, h, id=n) for n, h in GITLAB_FIXTURES])
def test_every_gitlab_fixture_sent_as_a_system_hook_is_routed_by_its_object_kind(
        name: str, headers: dict[str, str]) -> None:
    raw = fixture_bytes("gitlab", name)
    argo_name = ARGO_NAME[headers["X-Gitlab-Event"]]
    inc = incoming(path="/gitlab", body=raw, headers=[("X-Gitlab-Event", "System Hook"), ("X-Gitlab-Token", TOKEN)])
    assert accept(inc, events=[argo_name]).publish is True
    assert accept(inc, events=[n for n in ARGO_NAME.values() if n != argo_name]).publish is False
