"""Triggers: what a sensor does when its conditions are met.

Each trigger type lives in its own module and offers one `Action` with `execute(events)`. Errors
are sorted here: a `PermanentError` is recorded and given up (the message is acked); a
`TemporaryError` asks for the message to come back later (nak with delay).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.envelope import CloudEvent
from gateway.errors import HookgateError

EVENT_IDS_ANNOTATION = "events.hookgate.dev/event-ids"
SENSOR_LABEL = "events.argoproj.io/sensor"
TRIGGER_LABEL = "events.argoproj.io/trigger"
# 16 base32 characters = 80 bits: with a billion objects of one prefix the chance of any collision
# is below 1e-6, and the name still fits the 63 characters Argo needs for its workflow label.
NAME_HASH_LENGTH = 16
MAX_NAME = 63


class TriggerError(HookgateError):
    pass


class PermanentError(TriggerError):
    """Retrying cannot help: a missing template, a 4xx, a name clash."""


class TemporaryError(TriggerError):
    """The same call may succeed later: a 5xx, a timeout, a connection error."""


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str  # what was acted on, for logs and `hookgate test`
    created: bool  # False when an earlier delivery had already done the work
    resource: dict[str, Any] | None = None


class Action(Protocol):
    kind: str

    async def execute(self, events: Mapping[str, CloudEvent]) -> Outcome: ...

    def render(self, events: Mapping[str, CloudEvent]) -> dict[str, Any] | None:
        """The fully resolved resource the action would send, without sending it."""
        ...


def event_ids(events: Mapping[str, CloudEvent]) -> str:
    return ",".join(f"{dep}={events[dep].id}" for dep in sorted(events))


def idempotent_name(prefix: str, *, namespace: str, sensor: str, trigger: str,
                    events: Mapping[str, CloudEvent]) -> str:
    """generateName + a hash of who fires and on which events: a redelivery gets the same name."""
    key = "\0".join([namespace, sensor, trigger, event_ids(events)])
    # base32 turns 5 bytes into 8 characters: the first 10 bytes give exactly the 16 characters kept.
    digest = base64.b32encode(hashlib.sha256(key.encode()).digest()[:NAME_HASH_LENGTH * 5 // 8]).decode().lower()
    return prefix[: MAX_NAME - NAME_HASH_LENGTH] + digest
