"""The CloudEvent envelope: JSON round trip, parse errors, canonical header names and masking."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import envelope
from gateway.envelope import (
    MASK,
    SECRET_HEADERS,
    CloudEvent,
    Envelope,
    EnvelopeError,
    canonical_header,
    header_key,
    header_map,
    parse_time,
)
from tests.gateway.test_webhook import assert_same_json

DATA = {"headers": {"X-Gitlab-Event": ["Push Hook"]},
        "body": {"n": 12345678901234567890, "f": 0.1, "t": True, "z": None, "s": "caf\u00e9 \u2603", "l": [1, 1.0]}}


def event(**changes: Any) -> CloudEvent:
    fields: dict[str, Any] = {"id": "abc-1", "source": "gitlab-es", "subject": "mr", "type": "gitlab", "data": DATA,
                              "time": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)}
    return CloudEvent(**{**fields, **changes})


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"specversion": "1.0", "id": "1", "source": "es", "type": "webhook", "subject": "ev",
                           "time": "2024-01-02T03:04:05Z", "data": {"body": {}}}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


# --- round trip -----------------------------------------------------------------------------------


def test_a_cloudevent_survives_a_json_round_trip_unchanged() -> None:
    original = event()
    parsed = CloudEvent.from_json(original.to_json())
    assert parsed == original
    assert_same_json(parsed.data, DATA)


def test_the_json_form_is_cloudevents_structured_mode_with_data_embedded() -> None:
    doc = json.loads(event().to_json())
    assert doc == {"id": "abc-1", "source": "gitlab-es", "specversion": "1.0", "type": "gitlab",
                   "datacontenttype": "application/json", "subject": "mr", "time": "2024-05-06T07:08:09.123456Z",
                   "data": DATA}


def test_non_ascii_text_is_written_as_utf8_not_escaped() -> None:
    assert "caf\u00e9 \u2603".encode() in event().to_json()


def test_the_context_has_exactly_argos_keys_with_utc_time() -> None:
    context = event(time=datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))).context()
    assert set(context) == {"id", "source", "specversion", "type", "datacontenttype", "subject", "time"}
    assert context["time"] == "2024-05-06T07:08:09Z"


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), id="Z-suffix"),
    pytest.param("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), id="offset"),
    pytest.param("2024-01-02T03:04:05.5Z", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC), id="fraction"),
    pytest.param("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), id="naive-is-UTC"),
])
def test_the_time_attribute_is_read_as_rfc3339(raw: str, expected: datetime) -> None:
    assert CloudEvent.from_dict(minimal(time=raw)).time == expected


def test_a_missing_time_means_now() -> None:
    before = datetime.now(UTC)
    parsed = CloudEvent.from_dict(minimal(time=...))
    assert before <= parsed.time <= datetime.now(UTC)


def test_optional_attributes_take_their_defaults() -> None:
    parsed = CloudEvent.from_dict(minimal(subject=..., data=...))
    assert parsed.subject == ""
    assert parsed.data is None
    assert parsed.datacontenttype == "application/json"


def test_data_base64_carrying_json_is_decoded() -> None:
    encoded = base64.b64encode(json.dumps({"body": {"a": 1}}).encode()).decode()
    assert CloudEvent.from_dict(minimal(data=..., data_base64=encoded)).data == {"body": {"a": 1}}


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "message"), [
    pytest.param([1, 2], "JSON object", id="not-an-object"),
    pytest.param("text", "JSON object", id="a-string"),
    pytest.param(minimal(id=...), "id", id="id-missing"),
    pytest.param(minimal(id=7), "id", id="id-not-a-string"),
    pytest.param(minimal(source=...), "source", id="source-missing"),
    pytest.param(minimal(type=None), "type", id="type-null"),
    pytest.param(minimal(specversion=...), "specversion", id="specversion-missing"),
    pytest.param(minimal(time="yesterday"), "RFC 3339", id="time-not-rfc3339"),
    pytest.param(minimal(time=1714979289), "RFC 3339", id="time-a-number"),
    pytest.param(minimal(data=..., data_base64="***"), "data_base64", id="data-base64-not-base64"),
    pytest.param(minimal(data=..., data_base64=base64.b64encode(b"not json").decode()), "data_base64",
                 id="data-base64-not-JSON"),
    pytest.param(minimal(data=..., data_base64=base64.b64encode(b"\xff\xfe").decode()), "data_base64",
                 id="data-base64-not-UTF-8"),
])
def test_from_dict_refuses_what_is_not_a_readable_cloudevent(doc: Any, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        CloudEvent.from_dict(doc)


def test_from_dict_names_every_missing_attribute_at_once() -> None:
    with pytest.raises(EnvelopeError) as err:
        CloudEvent.from_dict({"subject": "x"})
    for name in ("id", "source", "specversion", "type"):
        assert name in str(err.value)


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff", b"not json"])
def test_from_json_refuses_bytes_that_are_not_json(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        CloudEvent.from_json(raw)


@pytest.mark.parametrize("data", [
    pytest.param(b'{"n": 18446744073709551616, "m": -9223372036854775809}', id="beyond-64-bits"),
    pytest.param(b'{"n": 123456789012345678901234567890}', id="long-integer"),
    pytest.param(b'{"l":[1,18446744073709551616],"t":\t18446744073709551617,"r":\r\n-18446744073709551618}',
                 id="beyond-64-bits-after-every-delimiter"),
    pytest.param(b'{"before": "0000000000000000000000000000000000000000", "n": 18446744073709551616}',
                 id="digit-string-and-big-integer"),
    pytest.param(b'{"n": 1.5, "big": 1e400}', id="float-overflow"),
    pytest.param(b'{"n": NaN, "i": -Infinity}', id="non-finite-literals"),
    pytest.param(b'{"s": "\\ud800 lone surrogate"}', id="lone-surrogate"),
    pytest.param(b'{"a": 1, "a": 2}', id="duplicate-key"),
    pytest.param('{"s": "caf\u00e9 \u65e5\u672c"}'.encode(), id="non-ascii"),
])
def test_from_json_reads_values_as_the_standard_library_does(data: bytes) -> None:
    raw = b'{"id":"1","source":"s","specversion":"1.0","type":"t","data":' + data + b"}"
    event = CloudEvent.from_json(raw)
    assert repr(event.data) == repr(json.loads(raw)["data"])  # repr: NaN is not equal to itself


_NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(lambda m, e: f"{m}e{e}", st.decimals(allow_nan=False, allow_infinity=False, places=20),
              st.integers(min_value=-400, max_value=400)),
)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.lists(_NUMBER_TEXT, min_size=1, max_size=8))
def test_numbers_read_as_the_standard_library_reads_them(numbers: list[str]) -> None:
    raw = ('{"id":"1","source":"s","specversion":"1.0","type":"t","data":[' + ", ".join(numbers) + "]}").encode()
    try:
        expected = json.loads(raw)["data"]
    except ValueError:
        return  # not JSON (a decimal's text can be "1E+2e3"): nothing to compare
    assert repr(CloudEvent.from_json(raw).data) == repr(expected)


# --- headers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "canonical"), [
    pytest.param("x-github-event", "X-Github-Event", id="lower"),
    pytest.param("X-GitHub-Event", "X-Github-Event", id="GitHub-spelling"),
    pytest.param("X-GITHUB-DELIVERY", "X-Github-Delivery", id="upper"),
    pytest.param("x-gitlab-token", "X-Gitlab-Token", id="gitlab-token"),
    pytest.param("X-Gitlab-Event-UUID", "X-Gitlab-Event-Uuid", id="acronym-segment"),
    pytest.param("X-Hub-Signature-256", "X-Hub-Signature-256", id="numeric-segment"),
    pytest.param("content-type", "Content-Type", id="content-type"),
    pytest.param("idempotency-key", "Idempotency-Key", id="idempotency-key"),
    pytest.param("authorization", "Authorization", id="single-word"),
    pytest.param("ETag", "Etag", id="camel-case-single-word"),
])
def test_canonical_header_matches_gos_canonical_mime_header_key(name: str, canonical: str) -> None:
    assert canonical_header(name) == canonical


@pytest.mark.parametrize("name", ["authorization", "X-GITLAB-TOKEN", "x-hub-signature", "x-hub-signature-256",
                                  "X-Gitea-Signature", "x-forgejo-signature", "X-Gogs-Signature"])
def test_secret_bearing_headers_are_masked_whatever_their_spelling(name: str) -> None:
    mapped = header_map([(name, "s3cret-value")])
    assert mapped == {canonical_header(name): [MASK]}
    assert canonical_header(name) in SECRET_HEADERS


def test_header_map_keeps_every_value_in_order_under_one_canonical_key() -> None:
    mapped = header_map([("Accept", "a"), ("x-trace", "1"), ("X-Trace", "2"), ("X-TRACE", "3"),
                         ("X-Gitlab-Token", "t1"), ("x-gitlab-token", "t2")])
    assert mapped == {"Accept": ["a"], "X-Trace": ["1", "2", "3"], "X-Gitlab-Token": [MASK, MASK]}


def test_ordinary_headers_are_not_masked() -> None:
    mapped = header_map([("X-Gitlab-Event", "Push Hook"), ("X-Signature-Note", "plain")])
    assert mapped == {"X-Gitlab-Event": ["Push Hook"], "X-Signature-Note": ["plain"]}


def test_header_bytes_that_are_not_utf8_become_replacement_characters_as_go_json_does() -> None:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape; such strings cannot be encoded as they are.
    mapped = header_map([("X-Note", b"caf\xe9".decode("utf-8", "surrogateescape"))])
    assert mapped == {"X-Note": ["caf\ufffd"]}
    assert "caf\ufffd".encode() in event(data={"header": mapped}).to_json()


def test_a_message_nested_too_deeply_is_an_envelope_error_not_a_crash() -> None:
    with pytest.raises(EnvelopeError, match="nested too deeply"):
        CloudEvent.from_json(b"[" * 100_000 + b"]" * 100_000)


_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # any text UTF-8 can carry


@settings(max_examples=300, deadline=None, derandomize=True)
@given(event_id=_texts, source=_texts, subject=_texts, type_=_texts,
       headers=st.dictionaries(_texts, st.lists(_texts, min_size=1, max_size=2), max_size=4),
       metadata=st.none() | st.dictionaries(_texts, _texts, max_size=2),
       body=st.recursive(st.none() | st.booleans() | st.integers() | _texts,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
                         max_leaves=8))
def test_the_gateways_envelope_writes_what_json_dumps_writes(event_id: str, source: str, subject: str, type_: str,
                                                              headers: dict[str, list[str]],
                                                              metadata: dict[str, str] | None, body: Any) -> None:
    when = datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC)
    data: dict[str, Any] = {"headers": headers, "body": body}
    if metadata is not None:
        data["metadata"] = metadata
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    raw = json.dumps(body, **compact).encode()
    event = CloudEvent(id=event_id, source=source, subject=subject, type=type_, data=data, time=when)
    expected = json.dumps({**event.context(), "data": data}, **compact).encode()
    assert Envelope(source, subject, type_).spliced(event_id, data, raw, time=when) == expected
    assert event.to_json(raw_body=raw) == expected


def test_the_gateways_envelope_is_stamped_now_in_utc() -> None:
    before = datetime.now(UTC)
    doc = json.loads(Envelope("es", "push", "github").spliced("id-1", {"body": None}, b'{"a":1}'))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["time"]), doc["time"]
    assert before <= parse_time(doc["time"]) <= datetime.now(UTC)
    assert doc["data"] == {"body": {"a": 1}}
    assert CloudEvent.from_dict(doc).context()["subject"] == "push"


def test_header_keys_stay_right_after_a_flood_of_junk_names() -> None:
    for i in range(3000):
        header_key(f"x-junk-{i}")
    assert header_key("x-github-event") == ("X-Github-Event", False)
    assert header_key("authorization") == ("Authorization", True)
    assert len(envelope._header_keys) <= 1024
