"""GitHub deliveries through `gateway.github.accept`: signatures, event selection, Argo's data shape."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from gateway import github
from gateway.envelope import MASK, CloudEvent
from gateway.errors import RequestRejected
from gateway.models import GithubEventSource
from gateway.webhook import Accepted, Incoming
from tests.conftest import FIXTURES, fixture_bytes, github_signature
from tests.gateway.test_webhook import assert_same_json, incoming

SECRET = "It's a Secret to Everybody"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
BODY = b'{"ref": "refs/heads/main", "after": "0d1a26e6", "size": 12345678901234567890, "ratio": 0.1}'
GITHUB_FIXTURES = sorted(json.loads((FIXTURES / "HEADERS.json").read_text())["github"].items())


def sign(body: bytes, *, secret: str = SECRET, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def spec(**fields: Any) -> GithubEventSource:
    return GithubEventSource.model_validate({"webhook": {"endpoint": "/github", "port": "12000"}, **fields})


def delivery(body: bytes = BODY, *, event: str = "push", signature: str | None = "sign",
             extra: list[tuple[str, str]] | None = None, delivery_id: str | None = DELIVERY,
             content_type: str = "application/json") -> Incoming:
    headers = [("Content-Type", content_type), ("User-Agent", "GitHub-Hookshot/044aadd"),
               ("X-GitHub-Event", event), ("X-GitHub-Hook-ID", "292430182")]
    if delivery_id is not None:
        headers.append(("X-GitHub-Delivery", delivery_id))
    if signature == "sign":
        headers.append(("X-Hub-Signature-256", sign(body)))
    elif signature is not None:
        headers.append(("X-Hub-Signature-256", signature))
    return incoming(path="/github", headers=[*headers, *(extra or [])], body=body)


def accept(inc: Incoming, *, secret: str | None = SECRET, **fields: Any) -> Accepted:
    return github.accept(spec(**fields), inc, secret=secret)


def rejection(inc: Incoming, *, secret: str | None = SECRET, **fields: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as err:
        accept(inc, secret=secret, **fields)
    return err.value


# --- signatures -----------------------------------------------------------------------------------


def test_githubs_documented_test_vector_verifies() -> None:
    # docs.github.com "Validating webhook deliveries": this secret and payload give this signature.
    vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    inc = incoming(headers=[("X-Hub-Signature-256", vector)], body=b"Hello, World!")
    github.verify_signature(inc, SECRET)
    assert github_signature(SECRET, b"Hello, World!") == vector


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param([("X-Hub-Signature-256", sign(BODY))], None, id="valid-sha256"),
    pytest.param([("X-Hub-Signature", sign(BODY, algorithm="sha1"))], None, id="legacy-sha1-header"),
    pytest.param([("X-Hub-Signature", sign(BODY))], None, id="sha256-in-the-legacy-header-Bitbucket-style"),
    pytest.param([("X-Hub-Signature-256", sign(BODY, algorithm="sha512"))], None, id="sha512-prefix"),
    pytest.param([("X-Hub-Signature-256", sign(BODY).upper().replace("SHA256=", "sha256="))], None,
                 id="upper-case-hex"),
    pytest.param([("x-hub-signature-256", sign(BODY))], None, id="header-name-case-insensitive"),
    pytest.param([], 401, id="missing-signature"),
    pytest.param([("X-Hub-Signature-256", "")], 401, id="empty-signature-header"),
    pytest.param([("X-Hub-Signature-256", "sha256=" + "0" * 64)], 403, id="wrong-digest"),
    pytest.param([("X-Hub-Signature-256", sign(BODY, secret="another secret"))], 403, id="other-secret"),
    pytest.param([("X-Hub-Signature-256", "md5=" + hashlib.md5(BODY).hexdigest())], 403, id="unknown-prefix"),
    pytest.param([("X-Hub-Signature-256", sign(BODY).removeprefix("sha256="))], 403, id="bare-hex-no-prefix"),
    pytest.param([("X-Hub-Signature-256", "sha256=")], 403, id="prefix-without-digest"),
    pytest.param([("X-Hub-Signature-256", "sha256=" + "\u00e9" * 64)], 403, id="non-ASCII-digest"),
    pytest.param([("X-Hub-Signature-256", b"sha256=\xff\xfe".decode("utf-8", "surrogateescape"))], 403,
                 id="digest-bytes-not-UTF-8"),
    pytest.param([("X-Hub-Signature-256", "sha256=" + "0" * 64), ("X-Hub-Signature", sign(BODY, algorithm="sha1"))],
                 403, id="a-wrong-sha256-is-not-rescued-by-a-right-sha1"),
])
def test_the_signature_is_checked_with_the_webhook_secret(headers: list[tuple[str, str]], status: int | None) -> None:
    inc = delivery(signature=None, extra=headers)
    if status is None:
        assert accept(inc).data["body"]["ref"] == "refs/heads/main"
    else:
        assert rejection(inc).status == status


def test_the_signature_covers_the_exact_raw_bytes_so_a_reserialised_body_fails() -> None:
    reserialised = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert json.loads(reserialised) == json.loads(BODY)
    assert rejection(delivery(reserialised, signature=sign(BODY))).status == 403


def test_the_signature_is_checked_before_the_body_is_parsed() -> None:
    assert rejection(delivery(b"{not json", signature="sha256=" + "0" * 64)).status == 403


def test_without_a_webhook_secret_an_unsigned_delivery_is_accepted() -> None:
    assert accept(delivery(signature=None), secret=None).publish is True


# --- form-encoded deliveries ----------------------------------------------------------------------


FORM_BODY = b"payload=" + quote_plus(BODY.decode()).encode()


@pytest.mark.parametrize(("content_type_header", "content_type_setting"), [
    pytest.param("application/x-www-form-urlencoded", "form", id="form-header-form-setting"),
    pytest.param("application/x-www-form-urlencoded", "json", id="form-header-json-setting"),
    pytest.param("application/json", "json", id="json-header-but-form-body"),
    pytest.param("application/x-www-form-urlencoded; charset=utf-8", "json", id="form-header-with-charset"),
])
def test_a_form_encoded_payload_is_accepted_whatever_content_type_says(
        content_type_header: str, content_type_setting: str) -> None:
    inc = delivery(FORM_BODY, content_type=content_type_header)
    accepted = accept(inc, contentType=content_type_setting)
    assert_same_json(accepted.data["body"], {**json.loads(BODY), "X-GitHub-Event": "push",
                                             "X-GitHub-Delivery": DELIVERY})


def test_a_form_delivery_is_signed_over_the_raw_form_bytes_not_the_inner_json() -> None:
    inc = delivery(FORM_BODY, content_type="application/x-www-form-urlencoded", signature=sign(BODY))
    assert rejection(inc).status == 403


@pytest.mark.parametrize("body", [
    pytest.param(b"other=1", id="no-payload-field"),
    pytest.param(b"payload=%7Bnot+json", id="payload-not-JSON"),
    pytest.param(b"payload=%FF%FE", id="payload-not-UTF-8"),
])
def test_a_broken_form_delivery_is_rejected_with_400(body: bytes) -> None:
    assert rejection(delivery(body, content_type="application/x-www-form-urlencoded")).status == 400


@pytest.mark.parametrize("body", [
    pytest.param(b"{not json", id="broken-JSON"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b'{"a": "\xff"}', id="not-UTF-8"),
])
def test_a_body_that_is_not_json_is_rejected_with_400(body: bytes) -> None:
    assert rejection(delivery(body)).status == 400


def test_a_delivery_without_an_event_header_is_rejected_with_400() -> None:
    inc = incoming(headers=[("X-Hub-Signature-256", sign(BODY)), ("X-GitHub-Delivery", DELIVERY)], body=BODY)
    assert rejection(inc).status == 400


# --- event selection ------------------------------------------------------------------------------


@pytest.mark.parametrize(("events", "published"), [
    pytest.param([], False, id="no-events-list"),
    pytest.param(["push"], False, id="other-events-only"),
    pytest.param(["ping"], True, id="ping-listed"),
    pytest.param(["*"], True, id="star"),
    pytest.param(["push", "*"], True, id="star-among-others"),
])
def test_ping_is_accepted_and_published_only_when_events_lists_it(events: list[str], published: bool) -> None:
    ping = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    accepted = accept(delivery(ping, event="ping"), events=events)
    assert accepted.publish is published
    assert accepted.event_id == DELIVERY
    if published:
        assert accepted.data["body"]["zen"] == "Keep it logically awesome."
    else:
        assert "ping" in accepted.note


@pytest.mark.parametrize(("events", "published"), [
    pytest.param([], True, id="empty-means-all"),
    pytest.param(["*"], True, id="star"),
    pytest.param(["pull_request"], True, id="listed"),
    pytest.param(["push", "pull_request"], True, id="listed-among-others"),
    pytest.param(["push"], False, id="not-listed"),
    pytest.param(["pull_request_review"], False, id="prefix-of-another-name-does-not-match"),
])
def test_events_are_enforced_on_receipt_without_rejecting_the_delivery(events: list[str], published: bool) -> None:
    accepted = accept(delivery(event="pull_request"), events=events)
    assert accepted.publish is published
    if not published:
        assert accepted.data == {}
        assert "pull_request" in accepted.note


# --- identity and data shape ----------------------------------------------------------------------


def test_the_delivery_id_becomes_the_event_id() -> None:
    assert accept(delivery()).event_id == DELIVERY


def test_without_a_delivery_id_the_event_id_is_a_content_hash_stable_for_the_same_bytes() -> None:
    first = accept(delivery(delivery_id=None)).event_id
    again = accept(delivery(delivery_id=None)).event_id
    other_bytes = accept(delivery(BODY.replace(b"main", b"next"), delivery_id=None)).event_id
    other_event = accept(delivery(event="create", delivery_id=None)).event_id
    assert first == again
    assert first.startswith("sha256-")
    assert len({first, other_bytes, other_event}) == 3


def test_the_body_gains_the_two_top_level_keys_argo_adds() -> None:
    body = accept(delivery()).data["body"]
    assert body["X-GitHub-Event"] == "push"
    assert body["X-GitHub-Delivery"] == DELIVERY


def test_github_data_uses_the_plural_headers_key_with_canonical_names_and_list_values() -> None:
    data = accept(delivery(extra=[("X-Custom", "a"), ("x-custom", "b")])).data
    assert set(data) == {"headers", "body"}
    headers = data["headers"]
    assert headers["X-Github-Event"] == ["push"]
    assert headers["X-Github-Delivery"] == [DELIVERY]
    assert headers["X-Github-Hook-Id"] == ["292430182"]
    assert headers["Content-Type"] == ["application/json"]
    assert headers["X-Custom"] == ["a", "b"]
    assert "X-GitHub-Event" not in headers


def test_signature_and_authorization_headers_are_masked_and_never_reach_the_event_data() -> None:
    sha1 = sign(BODY, algorithm="sha1")
    inc = delivery(extra=[("X-Hub-Signature", sha1), ("Authorization", "token ghp_supersecret")])
    data = accept(inc).data
    assert data["headers"]["X-Hub-Signature-256"] == [MASK]
    assert data["headers"]["X-Hub-Signature"] == [MASK]
    assert data["headers"]["Authorization"] == [MASK]
    text = json.dumps(data)
    for secret_value in (sign(BODY), sha1, "ghp_supersecret", SECRET):
        assert secret_value not in text


def test_numbers_keep_their_exact_value() -> None:
    body = accept(delivery()).data["body"]
    assert_same_json(body["size"], 12345678901234567890)
    assert_same_json(body["ratio"], 0.1)


def test_metadata_is_included_only_when_set() -> None:
    assert accept(delivery(), metadata={"owner": "team-a"}).data["metadata"] == {"owner": "team-a"}
    assert "metadata" not in accept(delivery()).data


# --- every real payload ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "headers"), [pytest.param(n, h, id=n) for n, h in GITHUB_FIXTURES])
def test_every_github_fixture_is_accepted_and_shaped_as_argo_shapes_it(name: str, headers: dict[str, str]) -> None:
    raw = fixture_bytes("github", name)
    event = headers["X-GitHub-Event"]
    delivery_id = f"delivery-{name}"
    inc = incoming(path="/github", body=raw, headers=[
        ("Content-Type", "application/json"), ("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery_id),
        ("X-Hub-Signature-256", github_signature(SECRET, raw))])
    accepted = accept(inc, events=["*"], metadata={"k": "v"})
    assert accepted.publish is True
    assert accepted.event_id == delivery_id
    data = accepted.data
    assert list(data) == ["headers", "body", "metadata"]
    assert data["headers"]["X-Github-Event"] == [event]
    assert data["headers"]["X-Github-Delivery"] == [delivery_id]
    assert data["headers"]["X-Hub-Signature-256"] == [MASK]
    assert data["metadata"] == {"k": "v"}
    expected = {**json.loads(raw), "X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id}
    assert_same_json(data["body"], expected)
    # ... and the same values come out of the bus envelope.
    event_json = CloudEvent(id=accepted.event_id, source="github", subject="example", type="github",
                            data=data).to_json()
    assert_same_json(CloudEvent.from_json(event_json).data, data)
