"""The event envelope: one CloudEvents 1.0 shaped value, built and parsed in one place.

The gateway builds it from a provider request; the sensors parse it from a bus message. The JSON
form is the CloudEvents structured mode with ``data`` embedded as a JSON value, which is also what
a NATS publisher outside hookgate sends (see the README's bus contract).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic_core

SPEC_VERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

#: Headers whose values are secrets: replaced before an event leaves the gateway.
SECRET_HEADERS = frozenset({"Authorization", "X-Gitlab-Token", "X-Hub-Signature", "X-Hub-Signature-256",
                            "X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"})
MASK = "*** masked ***"


class EnvelopeError(ValueError):
    """A bus message that is not a CloudEvent hookgate can read."""


@dataclass(frozen=True, slots=True)
class CloudEvent:
    id: str
    source: str  # the EventSource name, as in Argo Events
    subject: str  # the event name (the key under spec.<type>)
    type: str  # the EventSource type: webhook, github, gitlab, ...
    data: Any
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = JSON_CONTENT_TYPE
    specversion: str = SPEC_VERSION

    def context(self) -> dict[str, str]:
        """The event context as Argo Events exposes it to `contextKey` and context filters."""
        return {
            "id": self.id,
            "source": self.source,
            "specversion": self.specversion,
            "type": self.type,
            "datacontenttype": self.datacontenttype,
            "subject": self.subject,
            "time": format_time(self.time),
        }

    def to_json(self, *, raw_body: bytes | None = None) -> bytes:
        """The structured-mode JSON. With `raw_body`, `data["body"]` is that JSON text, spliced in as is."""
        if not splices(self.data, raw_body):
            return json.dumps({**self.context(), "data": self.data}, separators=(",", ":"),
                              ensure_ascii=False).encode()
        envelope = Envelope(self.source, self.subject, self.type, specversion=self.specversion,
                            datacontenttype=self.datacontenttype)
        return envelope.spliced(self.id, self.data, raw_body, time=self.time)

    @classmethod
    def from_json(cls, raw: bytes) -> CloudEvent:
        # pydantic-core's reader (jiter) gives json.loads' values, integers beyond 64 bits, NaN and
        # Infinity included, at 45 % of its cost on 3 KB and 35 % on 64 KB. orjson is faster at 3 KB
        # but reads big integers as floats, and telling where one may be took longer than the read.
        # What jiter refuses (a lone surrogate, a BOM, UTF-16) is read by json.loads, whose values
        # and errors are the standard library's.
        try:
            doc = pydantic_core.from_json(raw, cache_strings=False)
        except ValueError:
            pass
        else:
            return cls.from_dict(doc)
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise EnvelopeError(f"not JSON: {e}") from None
        except RecursionError:
            raise EnvelopeError("nested too deeply to read") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> CloudEvent:
        if not isinstance(doc, dict):
            raise EnvelopeError("a CloudEvent must be a JSON object")
        missing = [k for k in ("id", "source", "specversion", "type") if not isinstance(doc.get(k), str)]
        if missing:
            raise EnvelopeError(f"CloudEvent attribute(s) missing or not strings: {', '.join(missing)}")
        data = doc.get("data")
        if data is None and isinstance(doc.get("data_base64"), str):
            import base64

            try:
                data = json.loads(base64.b64decode(doc["data_base64"]))
            except RecursionError:
                raise EnvelopeError("data_base64 is nested too deeply to read") from None
            except ValueError as e:
                raise EnvelopeError(f"data_base64 is not base64 JSON: {e}") from None
        return cls(
            id=doc["id"],
            source=doc["source"],
            subject=str(doc.get("subject") or ""),
            type=doc["type"],
            data=data,
            time=parse_time(doc.get("time")),
            datacontenttype=str(doc.get("datacontenttype") or JSON_CONTENT_TYPE),
            specversion=doc["specversion"],
        )


def splices(data: Any, raw_body: bytes | None) -> bool:
    """Whether `raw_body` can stand for `data["body"]` in the envelope's JSON."""
    return raw_body is not None and isinstance(data, dict) and "body" in data


class Envelope:
    """The bus messages of one EventSource event: the context members that never change, encoded once.

    The gateway keeps one per route: building a CloudEvent and encoding its whole context cost about
    10 us of the 80 us of CPU a 3 KB delivery takes under load (bench/gateway.py, py-spy).
    """

    __slots__ = ("_middle",)

    def __init__(self, source: str, subject: str, type: str, *, specversion: str = SPEC_VERSION,
                 datacontenttype: str = JSON_CONTENT_TYPE) -> None:
        context = {"source": source, "specversion": specversion, "type": type, "datacontenttype": datacontenttype,
                   "subject": subject}
        self._middle = b"," + orjson.dumps(context)[1:-1] + b',"time":'

    def spliced(self, event_id: str, data: dict[str, Any], raw_body: bytes, *, time: datetime | None = None) -> bytes:
        """CloudEvent(...).to_json(raw_body=raw_body), `time` now unless given: `data["body"]` is
        `raw_body`, and the other members of `data` are strings, lists and maps of them, which orjson
        writes as json.dumps would (compact, UTF-8), at a fifth of the cost."""
        when = format_time(time) if time is not None else _clock.now()
        # One join, so a large body is copied once here rather than once per concatenation.
        parts = [b'{"id":', orjson.dumps(event_id), self._middle, orjson.dumps(when), b',"data":{']
        first = True
        for k, v in data.items():
            parts += (b"" if first else b",", orjson.dumps(k), b":", raw_body if k == "body" else orjson.dumps(v))
            first = False
        parts.append(b"}}")
        return b"".join(parts)


class _Clock:
    """Now as RFC 3339 UTC text with microseconds, the date and time of day formatted once a second:
    datetime.now(UTC).isoformat() took half of what encoding a delivery's envelope costs."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{nanos // 1000:06d}Z"


_clock = _Clock()


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime:
    if not value:
        return datetime.now(UTC)
    if not isinstance(value, str):
        raise EnvelopeError("CloudEvent 'time' must be an RFC 3339 string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(f"CloudEvent 'time' is not RFC 3339: {value!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def canonical_header(name: str) -> str:
    """Go's canonical header form, as in Argo's header maps: `x-github-event` → `X-Github-Event`."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def header_key(name: str) -> tuple[str, bool]:
    """A header name as it arrived → (its canonical, JSON-safe form; whether its value is a secret)."""
    known = _header_keys.get(name)
    if known is None:
        key = canonical_header(json_text(name))
        known = key, key in SECRET_HEADERS
        if len(_header_keys) >= 1024:  # names are the sender's to choose: junk ones do not stay for good
            _header_keys.clear()
        _header_keys[name] = known
    return known


#: The same few dozen header names arrive with every request: a dict looked up in header_map's loop
#: (through an lru_cache, header_map took 1.3 us for a GitHub push's headers; 1.1 this way).
_header_keys: dict[str, tuple[str, bool]] = {}


def header_map(pairs: Any) -> dict[str, list[str]]:
    """Multi-valued, canonical, secret-masked headers: the `header` / `headers` value of event data."""
    out: dict[str, list[str]] = {}
    keys = _header_keys
    for name, value in pairs:
        known = keys.get(name)
        key, secret = known if known is not None else header_key(name)
        text = MASK if secret else value if value.isascii() else json_text(value)
        values = out.get(key)
        if values is None:
            out[key] = [text]
        else:
            values.append(text)
    return out


def json_text(text: str) -> str:
    """aiohttp keeps bytes that are not UTF-8 as lone surrogates, which cannot be encoded; like Go's
    encoding/json, replace them with U+FFFD."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
