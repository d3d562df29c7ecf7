"""Gitea and Forgejo deliveries: bare-hex and prefixed signatures, events, identity, form bodies;
then on real listeners into a real stream, with an EventSource-level `filter.expression`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from gateway import gitea
from gateway.envelope import MASK
from gateway.errors import RequestRejected
from gateway.models import GiteaEventSource
from gateway.webhook import Accepted
from hookgate.embedded import NatsServer
from tests.gateway.test_bitbucket import Served, running
from tests.gateway.test_listener import stored
from tests.gateway.test_webhook import assert_same_json, incoming

SECRET = "gitea-secret-for-tests"
DELIVERY = "3b8f2d7e-0d5e-4f5b-9c71-6a1d2c3e4f50"
PUSH = json.dumps({
    "ref": "refs/heads/main", "before": "0" * 40, "after": "a" * 40,
    "commits": [{"id": "a" * 40, "message": "fix: thing\n"}],
    "repository": {"full_name": "team/app", "id": 12345678901234567890}, "pusher": {"login": "ann"},
}).encode()
PR_LABEL = json.dumps({"action": "label_updated", "number": 7, "pull_request": {"title": "x"},
                       "label": {"name": "ci"}}).encode()


def hexsig(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def spec(**fields: Any) -> GiteaEventSource:
    return GiteaEventSource.model_validate({"webhook": {"endpoint": "/gitea", "port": "12000"}, **fields})


def gitea_headers(body: bytes, *, event: str = "push", event_type: str | None = None,
                  delivery: str | None = DELIVERY, signature: str | None = "sign",
                  content_type: str = "application/json") -> list[tuple[str, str]]:
    """What Gitea sends: its own headers plus the GitHub- and Gogs-compatible ones."""
    headers = [("Content-Type", content_type), ("User-Agent", "Go-http-client/1.1"),
               ("X-Gitea-Event", event), ("X-Gitea-Event-Type", event_type or event),
               ("X-Gogs-Event", event), ("X-GitHub-Event", event),
               ("X-Hub-Signature", "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()),
               ("X-Hub-Signature-256", "sha256=" + hexsig(body))]
    if delivery is not None:
        headers += [("X-Gitea-Delivery", delivery), ("X-Gogs-Delivery", delivery), ("X-GitHub-Delivery", delivery)]
    if signature is not None:
        headers += [("X-Gitea-Signature", hexsig(body) if signature == "sign" else signature),
                    ("X-Gogs-Signature", hexsig(body))]
    return headers


def forgejo_headers(body: bytes, *, event: str = "push", delivery: str = "fj-1") -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("X-Forgejo-Event", event), ("X-Forgejo-Event-Type", event),
            ("X-Forgejo-Delivery", delivery), ("X-Forgejo-Signature", hexsig(body)),
            ("X-Gitea-Event", event), ("X-Gitea-Delivery", delivery), ("X-Gitea-Signature", hexsig(body))]


def accept(headers: list[tuple[str, str]], body: bytes = PUSH, *, secret: str | None = SECRET,
           **fields: Any) -> Accepted:
    return gitea.accept(spec(**fields), incoming(path="/gitea", headers=headers, body=body), secret=secret)


def rejection(headers: list[tuple[str, str]], body: bytes = PUSH, **fields: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as err:
        accept(headers, body, **fields)
    return err.value


def only(*names: str, body: bytes = PUSH) -> list[tuple[str, str]]:
    """Gitea's headers reduced to the event header plus the named signature headers."""
    return [(k, v) for k, v in gitea_headers(body) if k in ("X-Gitea-Event", *names)]


# --- signatures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param(gitea_headers(PUSH), None, id="everything-gitea-sends"),
    pytest.param(only("X-Gitea-Signature"), None, id="X-Gitea-Signature-bare-hex"),
    pytest.param(only("X-Hub-Signature-256"), None, id="X-Hub-Signature-256-prefixed"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Forgejo-Signature", hexsig(PUSH))], None,
                 id="X-Forgejo-Signature-bare-hex"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Gitea-Signature", hexsig(PUSH).upper())], None,
                 id="upper-case-hex"),
    pytest.param([("x-gitea-event", "push"), ("x-gitea-signature", hexsig(PUSH))], None,
                 id="header-names-case-insensitive"),
    pytest.param(only(), 401, id="missing"),
    pytest.param(only("X-Hub-Signature"), 401, id="sha1-alone-is-not-a-signature"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Gitea-Signature", "sha256=" + hexsig(PUSH))], 403,
                 id="X-Gitea-Signature-with-a-prefix"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Hub-Signature-256", hexsig(PUSH))], 403,
                 id="X-Hub-Signature-256-without-prefix"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Gitea-Signature", hexsig(PUSH, "other"))], 403,
                 id="wrong-secret"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Gitea-Signature", "0" * 64)], 403, id="wrong-digest"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Gitea-Signature", "zz")], 403, id="not-hex"),
    pytest.param([("X-Gitea-Event", "push"), ("X-Gitea-Signature", hexsig(PUSH + b" "))], 403,
                 id="digest-of-other-bytes"),
])
def test_the_signature_is_checked_over_the_raw_bytes(headers: list[tuple[str, str]], status: int | None) -> None:
    if status is None:
        assert accept(headers).publish is True
    else:
        assert rejection(headers).status == status


def test_the_first_signature_header_present_decides() -> None:
    # A wrong X-Gitea-Signature is not rescued by a right X-Hub-Signature-256.
    headers = [("X-Gitea-Event", "push"), ("X-Gitea-Signature", "0" * 64),
               ("X-Hub-Signature-256", "sha256=" + hexsig(PUSH))]
    assert rejection(headers).status == 403


def test_without_a_secret_no_signature_is_needed() -> None:
    assert accept([("X-Gitea-Event", "push")], secret=None).publish is True


# --- events, identity, bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(("events", "event", "event_type", "publish"), [
    pytest.param([], "push", None, True, id="no-events-means-all"),
    pytest.param(["push"], "push", None, True, id="listed"),
    pytest.param(["push"], "create", None, False, id="not-listed"),
    pytest.param(["*"], "release", None, True, id="star"),
    pytest.param(["pull_request"], "pull_request", "pull_request_label", True, id="group-name-listed"),
    pytest.param(["pull_request_label"], "pull_request", "pull_request_label", True, id="fine-type-listed"),
    pytest.param(["pull_request_sync"], "pull_request", "pull_request_label", False, id="other-fine-type"),
])
def test_events_are_enforced_on_receipt_by_event_or_event_type(events: list[str], event: str,
                                                                 event_type: str | None, publish: bool) -> None:
    result = accept(gitea_headers(PR_LABEL, event=event, event_type=event_type), PR_LABEL, events=events)
    assert result.publish is publish
    if not publish:
        assert event in result.note


@pytest.mark.parametrize(("headers", "expected"), [
    pytest.param(gitea_headers(PUSH, delivery="g-1"), "g-1", id="X-Gitea-Delivery"),
    pytest.param(forgejo_headers(PUSH, delivery="f-1"), "f-1", id="X-Forgejo-Delivery"),
])
def test_the_delivery_id_is_the_delivery_header(headers: list[tuple[str, str]], expected: str) -> None:
    assert accept(headers).event_id == expected


def test_forgejo_headers_name_the_event() -> None:
    headers = [("X-Forgejo-Event", "issues"), ("X-Forgejo-Signature", hexsig(PUSH))]
    assert accept(headers, events=["issues"]).publish is True


def test_without_a_delivery_id_the_id_is_a_content_hash() -> None:
    first = accept(gitea_headers(PUSH, delivery=None))
    assert first.event_id.startswith("sha256-")
    assert accept(gitea_headers(PUSH, delivery=None)).event_id == first.event_id


def test_the_data_is_headers_and_body_with_every_signature_masked() -> None:
    result = accept(gitea_headers(PUSH), metadata={"team": "platform"})
    assert list(result.data) == ["headers", "body", "metadata"]
    headers = result.data["headers"]
    assert headers["X-Gitea-Event"] == ["push"]
    assert headers["X-Gitea-Delivery"] == [DELIVERY]
    for name in ("X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature", "X-Hub-Signature-256"):
        assert headers[name] == [MASK], name
    assert_same_json(result.data["body"], json.loads(PUSH))  # big integers stay exact, no keys added
    assert hexsig(PUSH) not in json.dumps(result.data)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_a_form_payload_is_accepted_whatever_the_content_type_says(content_type: str) -> None:
    form = b"payload=" + quote_plus(PUSH.decode()).encode()
    result = accept(gitea_headers(form, content_type=content_type), form, contentType="form")
    assert_same_json(result.data["body"], json.loads(PUSH))


@pytest.mark.parametrize(("body", "headers"), [
    pytest.param(b"{not json", [("X-Gitea-Event", "push")], id="invalid-json"),
    pytest.param(b"payload=%7Bnot", [("X-Gitea-Event", "push"), ("Content-Type", "application/x-www-form-urlencoded")],
                 id="invalid-json-in-form"),
    pytest.param(b"other=1", [("X-Gitea-Event", "push"), ("Content-Type", "application/x-www-form-urlencoded")],
                 id="form-without-payload"),
    pytest.param(PUSH, [], id="no-event-header"),
])
def test_a_request_that_cannot_be_read_is_400(body: bytes, headers: list[tuple[str, str]]) -> None:
    with pytest.raises(RequestRejected) as err:
        gitea.accept(spec(), incoming(headers=headers, body=body), secret=None)
    assert err.value.status == 400


def test_the_model_takes_githubs_field_names() -> None:
    model = spec(owner="team", repositories=[{"owner": "team", "names": ["app", "lib"]}], events=["push"],
                 webhookSecret={"name": "s", "key": "w"}, apiToken={"name": "s", "key": "t"},
                 giteaBaseURL="https://gitea.example.com", deleteHookOnFinish=True, metadata={"a": "b"},
                 filter={"expression": 'body.ref == "refs/heads/main"'}, contentType="form")
    assert model.repositories[0].names == ["app", "lib"]
    assert model.wants_hook_registration() is False  # no webhook.url


def test_forgejos_headers_win_over_gitea_compatible_ones() -> None:
    headers = [("X-Gitea-Event", "push"), ("X-Forgejo-Event", "create"), ("X-Gitea-Delivery", "g"),
               ("X-Forgejo-Delivery", "f")]
    result = accept(headers, secret=None, events=["create"])
    assert (result.publish, result.event_id) == (True, "f")


# --- on real listeners, into a real stream, through filter.expression -----------------------------


MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: gitea
data:
  secret: {base64.b64encode(SECRET.encode()).decode()}
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: gitea-es
spec:
  gitea:
    push:
      repositories:
        - owner: team
          names: [app]
      events: [push]
      webhook:
        endpoint: /gitea
        port: "{{port}}"
        method: POST
      webhookSecret:
        name: gitea
        key: secret
      metadata:
        team: platform
      filter:
        expression: 'body.ref == "refs/heads/main" && headers["X-Gitea-Event"][0] == "push"'
    anything:
      webhook:
        endpoint: /gitea-any
        port: "{{port}}"
        method: POST
      filter:
        expression: "body.commits[0].message startsWith 'fix'"
  webhook:
    plain:
      endpoint: /plain
      port: "{{port}}"
      method: POST
      filter:
        expression: body.n > 1
"""


@pytest.fixture
async def served(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Served]:
    async with running(nats_server, tmp_path, MANIFESTS) as s:
        yield s


async def test_a_signed_gitea_push_on_main_is_stored_as_a_gitea_cloudevent(served: Served) -> None:
    status, _ = await served.post("/gitea", PUSH, gitea_headers(PUSH, delivery="gitea-1"))
    assert status == 200
    (msg,) = await stored(served.nats.url)
    assert msg.subject == "hookgate.default.gitea-es.push"
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "default/gitea-es/push/gitea-1"
    (event,) = await served.events()
    assert (event.id, event.source, event.subject, event.type) == ("gitea-1", "gitea-es", "push", "gitea")
    assert event.data["headers"]["X-Gitea-Signature"] == [MASK]
    assert event.data["metadata"] == {"team": "platform"}
    assert_same_json(event.data["body"], json.loads(PUSH))
    assert hexsig(PUSH).encode() not in (msg.data or b"")


async def test_a_forgejo_delivery_is_stored_under_its_forgejo_delivery_id(served: Served) -> None:
    assert (await served.post("/gitea", PUSH, forgejo_headers(PUSH, delivery="forgejo-7")))[0] == 200
    (event,) = await served.events()
    assert event.id == "forgejo-7"


async def test_filter_expression_false_is_answered_200_and_not_stored(served: Served) -> None:
    other = PUSH.replace(b"refs/heads/main", b"refs/heads/feature")
    status, text = await served.post("/gitea", other, gitea_headers(other, delivery="feature-1"))
    assert status == 200
    assert "not published" in text and "is false" in text
    assert await stored(served.nats.url) == []


async def test_filter_expression_error_is_answered_200_and_not_stored(served: Served) -> None:
    no_commits = json.dumps({"ref": "refs/heads/main", "commits": []}).encode()
    status, text = await served.post("/gitea-any", no_commits, [("X-Gitea-Event", "push")])
    assert status == 200
    assert "not published" in text and "index out of range" in text
    assert await stored(served.nats.url) == []


async def test_filter_expression_true_on_a_generic_webhook_is_stored(served: Served) -> None:
    assert (await served.post("/plain", b'{"n": 1}', {"Content-Type": "application/json"}))[0] == 200
    assert (await served.post("/plain", b'{"n": 2}', {"Content-Type": "application/json"}))[0] == 200
    (event,) = await served.events()
    assert event.data["body"] == {"n": 2}


async def test_the_signature_is_checked_before_the_filter(served: Served) -> None:
    assert (await served.post("/gitea", PUSH, gitea_headers(PUSH, signature="0" * 64)))[0] == 403
    assert (await served.post("/gitea", PUSH, [("X-Gitea-Event", "push")]))[0] == 401
    assert await stored(served.nats.url) == []


async def test_a_form_delivery_is_stored_with_the_json_payload_as_body(served: Served) -> None:
    form = b"payload=" + quote_plus(PUSH.decode()).encode()
    headers = gitea_headers(form, delivery="form-1", content_type="application/x-www-form-urlencoded")
    assert (await served.post("/gitea", form, headers))[0] == 200
    (event,) = await served.events()
    assert_same_json(event.data["body"], json.loads(PUSH))
