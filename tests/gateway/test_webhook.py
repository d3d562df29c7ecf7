"""The generic `webhook` EventSource: Argo's `{"header", "body"}` data, bearer auth, event identity.

Also home of the small helpers the provider tests share (`incoming`, `assert_same_json`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from gateway import webhook
from gateway.envelope import MASK, CloudEvent
from gateway.errors import RequestRejected
from gateway.models import WebhookEventSource
from gateway.webhook import Incoming

TOKEN = "bearer-secret-value-1234"


def incoming(*, method: str = "POST", path: str = "/hook", headers: Sequence[tuple[str, str]] = (),
             body: bytes = b"", query: str = "") -> Incoming:
    """An `Incoming` as the server builds it: case-insensitive lookups plus every header line in order."""
    items = list(headers)
    return Incoming(method=method, path=path, headers=CIMultiDictProxy(CIMultiDict(items)), header_items=items,
                    body=body, query=query)


def assert_same_json(actual: Any, expected: Any, where: str = "$") -> None:
    """Equal values with equal JSON types: `1` is not `1.0`, `True` is not `1`, big integers stay exact."""
    assert type(actual) is type(expected), f"{where}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys differ"
        for key in expected:
            assert_same_json(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: lengths differ"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def spec(**fields: Any) -> WebhookEventSource:
    return WebhookEventSource.model_validate({"endpoint": "/hook", "port": "12000", **fields})


def accept(inc: Incoming, *, token: str | None = None, **fields: Any) -> webhook.Accepted:
    return webhook.accept(spec(**fields), inc, secret=token)


# --- body shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "headers", "body", "query", "expected"), [
    pytest.param("GET", [], b"", "a=1&b=x&a=2", {"a": ["1", "2"], "b": ["x"]}, id="GET-query-map-of-lists"),
    pytest.param("GET", [], b"", "", {}, id="GET-without-query-is-empty-map"),
    pytest.param("GET", [("Content-Type", "application/json")], b'{"ignored": true}', "k=v", {"k": ["v"]},
                 id="GET-ignores-body-uses-query"),
    pytest.param("POST", [("Content-Type", "application/x-www-form-urlencoded")], b"name=a+b&name=c&empty=",
                 "", {"name": ["a b", "c"], "empty": [""]}, id="form-POST-form-map-of-lists"),
    pytest.param("POST", [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                 b"x=%C3%A9", "", {"x": ["\u00e9"]}, id="form-with-charset-parameter"),
    pytest.param("POST", [("Content-Type", "application/json")], b'{"a": {"b": [1, 2.5, null]}}', "",
                 {"a": {"b": [1, 2.5, None]}}, id="JSON-body"),
    pytest.param("POST", [], b'["x", 1]', "", ["x", 1], id="JSON-without-content-type"),
    pytest.param("POST", [("Content-Type", "text/plain")], b'"just a string"', "", "just a string",
                 id="any-other-content-type-is-read-as-JSON"),
    pytest.param("PUT", [("Content-Type", "application/json")], b'{"n": 12345678901234567890123}', "",
                 {"n": 12345678901234567890123}, id="big-integer-kept-exact"),
])
def test_the_body_is_shaped_as_argo_shapes_it_for_each_method_and_content_type(
        method: str, headers: list[tuple[str, str]], body: bytes, query: str, expected: Any) -> None:
    accepted = accept(incoming(method=method, headers=headers, body=body, query=query), method=method)
    assert accepted.publish is True
    # What the sensors read: the bus message, where a JSON body's own text is kept (big integers exact).
    on_bus = CloudEvent(id="1", source="es", subject="e", type="webhook", data=accepted.data)
    assert_same_json(json.loads(on_bus.to_json(raw_body=accepted.raw_body))["data"]["body"], expected)


@pytest.mark.parametrize(("headers", "body"), [
    pytest.param([("Content-Type", "application/json")], b"{not json", id="broken-JSON"),
    pytest.param([("Content-Type", "application/json")], b"", id="empty-body"),
    pytest.param([("Content-Type", "text/plain")], b"hello", id="plain-text"),
    pytest.param([("Content-Type", "application/json")], b'{"a": "\xff"}', id="not-UTF-8"),
    pytest.param([("Content-Type", "application/x-www-form-urlencoded")], b"a=\xff\xfe", id="form-not-UTF-8"),
])
def test_a_body_that_cannot_be_parsed_is_rejected_with_400(headers: list[tuple[str, str]], body: bytes) -> None:
    with pytest.raises(RequestRejected) as err:
        accept(incoming(headers=headers, body=body))
    assert err.value.status == 400


# --- data shape -----------------------------------------------------------------------------------


def test_webhook_data_uses_the_singular_header_key_with_canonical_names_and_list_values() -> None:
    inc = incoming(headers=[("content-type", "application/json"), ("x-custom-thing", "one"),
                            ("X-CUSTOM-THING", "two"), ("User-Agent", "curl/8")], body=b'{"a": 1}')
    data = accept(inc).data
    assert set(data) == {"header", "body"}
    assert data["header"] == {"Content-Type": ["application/json"], "X-Custom-Thing": ["one", "two"],
                              "User-Agent": ["curl/8"]}


def test_the_authorization_header_is_masked_and_its_value_never_reaches_the_event_data() -> None:
    inc = incoming(headers=[("Authorization", f"Bearer {TOKEN}")], body=b"{}")
    data = accept(inc, token=TOKEN).data
    assert data["header"]["Authorization"] == [MASK]
    assert TOKEN not in json.dumps(data)


def test_metadata_is_included_when_the_event_source_sets_it() -> None:
    data = accept(incoming(body=b"{}"), metadata={"team": "platform", "env": "prod"}).data
    assert data["metadata"] == {"team": "platform", "env": "prod"}


def test_metadata_is_omitted_when_the_event_source_sets_none() -> None:
    assert "metadata" not in accept(incoming(body=b"{}")).data


# --- bearer authSecret ----------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param([("Authorization", f"Bearer {TOKEN}")], None, id="right-token"),
    pytest.param([("authorization", f"Bearer {TOKEN}")], None, id="header-name-is-case-insensitive"),
    pytest.param([], 401, id="no-Authorization-header"),
    pytest.param([("Authorization", TOKEN)], 401, id="no-Bearer-scheme"),
    pytest.param([("Authorization", f"Basic {TOKEN}")], 401, id="Basic-scheme"),
    pytest.param([("Authorization", "Bearer wrong")], 403, id="wrong-token"),
    pytest.param([("Authorization", "Bearer ")], 403, id="empty-token"),
    pytest.param([("Authorization", f"Bearer {TOKEN} ")], 403, id="token-with-trailing-space"),
    pytest.param([("Authorization", f"Bearer {TOKEN}\u00e9")], 403, id="non-ASCII-token"),
    pytest.param([("Authorization", b"Bearer \xff".decode("utf-8", "surrogateescape"))], 403,
                 id="token-bytes-not-UTF-8"),
])
def test_the_bearer_auth_secret_is_enforced(headers: list[tuple[str, str]], status: int | None) -> None:
    inc = incoming(headers=headers, body=b'{"ok": true}')
    if status is None:
        assert accept(inc, token=TOKEN).data["body"] == {"ok": True}
    else:
        with pytest.raises(RequestRejected) as err:
            accept(inc, token=TOKEN)
        assert err.value.status == status


def test_auth_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(RequestRejected) as err:
        accept(incoming(body=b"{not json"), token=TOKEN)
    assert err.value.status == 401


def test_without_an_auth_secret_any_authorization_header_is_accepted() -> None:
    accepted = accept(incoming(headers=[("Authorization", "Bearer anything")], body=b"{}"), token=None)
    assert accepted.publish is True


# --- event identity -------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "expected"), [
    pytest.param([("Idempotency-Key", "key-1"), ("X-Request-Id", "req-1")], "key-1", id="Idempotency-Key-first"),
    pytest.param([("Idempotency-Key", "key-2")], "key-2", id="Idempotency-Key-alone"),
])
def test_a_sender_supplied_id_becomes_the_event_id(headers: list[tuple[str, str]], expected: str) -> None:
    assert accept(incoming(headers=headers, body=b"{}")).event_id == expected


def test_a_tracing_id_is_not_taken_for_an_idempotency_key() -> None:
    event_id = accept(incoming(headers=[("X-Request-Id", "req-1")], body=b"{}")).event_id
    assert event_id.startswith("sha256-")


def test_without_a_sender_id_the_event_id_is_a_content_hash_stable_for_the_same_request() -> None:
    first = accept(incoming(body=b'{"a": 1}', query="x=1")).event_id
    again = accept(incoming(body=b'{"a": 1}', query="x=1")).event_id
    other_body = accept(incoming(body=b'{"a": 2}', query="x=1")).event_id
    other_query = accept(incoming(body=b'{"a": 1}', query="x=2")).event_id
    other_path = accept(incoming(path="/other", body=b'{"a": 1}', query="x=1")).event_id
    assert first == again
    assert first.startswith("sha256-")
    assert len({first, other_body, other_query, other_path}) == 4


# --- HMAC from keyed hash states ------------------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(secret=st.text(max_size=200), body=st.binary(max_size=5000), algorithm=st.sampled_from(["sha1", "sha256",
                                                                                                 "sha512"]))
def test_hmac_hex_is_the_standard_hmac(secret: str, body: bytes, algorithm: str) -> None:
    assert webhook.hmac_hex(secret, body, algorithm) == hmac.new(secret.encode(), body, algorithm).hexdigest()


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 127, 128, 129, 1000])
def test_hmac_hex_with_keys_around_the_block_size(length: int) -> None:
    """Keys longer than the hash's block are hashed first; shorter ones padded (64 bytes for SHA-256, 128 for
    SHA-512)."""
    for algorithm in ("sha256", "sha512"):
        secret = "k" * length
        assert webhook.hmac_hex(secret, b"body", algorithm) == hmac.new(secret.encode(), b"body",
                                                                        algorithm).hexdigest()
        # The keyed states are copied, never updated: the same call again gives the same answer.
        assert webhook.hmac_hex(secret, b"body", algorithm) == webhook.hmac_hex(secret, b"body", algorithm)


def test_hmac_hex_with_more_secrets_than_it_keeps_keyed() -> None:
    secrets = [f"secret-{i}" for i in range(1100)]
    for _ in range(2):
        for secret in secrets:
            assert webhook.hmac_hex(secret, b"body") == hmac.new(secret.encode(), b"body", "sha256").hexdigest()
    assert len(webhook._hmac_pads) <= 1024
