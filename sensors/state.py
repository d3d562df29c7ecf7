"""Saved halves of dependency conditions, kept in a JetStream key-value bucket.

One bucket per namespace + sensor, one key per trigger holding `{dependency: event}`. Every change
is a compare-and-set on the key's revision, so two replicas racing on the same trigger cannot lose
an update: the loser re-reads and decides again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nats.js.errors

from gateway.bus import Bus, token
from gateway.envelope import CloudEvent
from sensors.triggers import TemporaryError

Decide = Callable[[dict[str, CloudEvent]], tuple[bool, dict[str, CloudEvent]]]
MAX_RACES = 50
FIRED_KEY = "__fired__"  # not a dependency name: those are DNS-style names
# As long as the stream's duplicate window: older redeliveries are caught by the Workflow's name.
FIRED_TTL = 24 * 3600.0


def bucket_name(namespace: str, sensor: str) -> str:
    return f"hookgate_{token(namespace)}_{token(sensor)}"[:200]


def trigger_key(trigger: str) -> str:
    return "t_" + hashlib.sha256(trigger.encode()).hexdigest()[:24]


@dataclass
class _State:
    """One trigger's key: the saved halves, and the ids of events that already fired (with when)."""

    saved: dict[str, CloudEvent] = field(default_factory=dict)
    fired: dict[str, float] = field(default_factory=dict)
    revision: int = 0


class ConditionState:
    def __init__(self, bus: Bus, *, namespace: str, sensor: str, ttl: float | None = None) -> None:
        self._bus = bus
        self._bucket = bucket_name(namespace, sensor)
        self._ttl = ttl
        self._kv: Any = None
        self._locks: dict[str, asyncio.Lock] = {}

    async def open(self) -> None:
        self._kv = await self._bus.key_value(self._bucket)

    async def update(self, trigger: str, decide: Decide, *, not_before: float | None = None,
                     event_id: str | None = None) -> tuple[bool, dict[str, CloudEvent]]:
        """Run `decide(saved)` → (fire, events) and store the outcome atomically.

        When it fires, the saved halves are cleared and the ids of the events it fired with are
        remembered for FIRED_TTL: a redelivery of one of them (a lost ack) is then recognised and
        does nothing, instead of pairing again into a second Workflow. Otherwise `events` is stored.
        Saved events older than `not_before` (a reset) or than the TTL are treated as absent.
        """
        key = trigger_key(trigger)
        # One writer per key in this process; compare-and-set settles races with other replicas.
        async with self._locks.setdefault(key, asyncio.Lock()):
            for attempt in range(MAX_RACES):
                state = await self._read(key, not_before)
                if event_id is not None and event_id in state.fired:
                    return False, {}  # already fired with this event: a redelivery
                fire, events = decide(state.saved)
                fired = {**state.fired, **{ev.id: time.time() for ev in events.values()}} if fire else state.fired
                if await self._write(key, {} if fire else events, fired, state.revision):
                    return fire, events
                # Another replica changed the key since we read it: decide again, after a jittered pause.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise TemporaryError(f"condition state {key} kept changing under us; will retry")

    async def restore(self, trigger: str, events: dict[str, CloudEvent], *, current: str) -> None:
        """After a fire that did not complete: put the other halves back (a half saved since then is
        newer and wins) and forget that these events fired, so the redelivery of `current` fires again."""
        key = trigger_key(trigger)
        ids = {ev.id for ev in events.values()}
        async with self._locks.setdefault(key, asyncio.Lock()):
            for _ in range(MAX_RACES):
                state = await self._read(key, None)
                saved = {**{d: e for d, e in events.items() if d != current}, **state.saved}
                fired = {i: t for i, t in state.fired.items() if i not in ids}
                if await self._write(key, saved, fired, state.revision):
                    return
        raise TemporaryError(f"condition state {key} kept changing under us; will retry")

    async def _write(self, key: str, saved: dict[str, CloudEvent], fired: dict[str, float], revision: int) -> bool:
        value = _encode(saved, fired)
        try:
            if revision:
                await self._kv.update(key, value, last=revision)
            else:
                await self._kv.create(key, value)  # also takes over a deleted key's tombstone
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError):
            return False
        return True

    async def _read(self, key: str, not_before: float | None) -> _State:
        try:
            entry = await self._kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return _State()
        if not entry.value:
            return _State(revision=int(entry.revision))
        return self._decode(entry.value, not_before, int(entry.revision))

    def _decode(self, raw: bytes, not_before: float | None, revision: int) -> _State:
        doc = json.loads(raw)
        now = time.time()
        fired = {i: t for i, t in doc.pop(FIRED_KEY, {}).items() if t >= now - FIRED_TTL}
        cutoffs = [c for c in (not_before, now - self._ttl if self._ttl else None) if c is not None]
        cutoff = max(cutoffs) if cutoffs else None
        saved = {dep: CloudEvent.from_dict(item["event"]) for dep, item in doc.items()
                 if cutoff is None or item.get("saved", 0) >= cutoff}
        return _State(saved=saved, fired=fired, revision=revision)


def _encode(events: dict[str, CloudEvent], fired: dict[str, float]) -> bytes:
    now = time.time()
    doc: dict[str, Any] = {dep: {"saved": now, "event": json.loads(ev.to_json())} for dep, ev in events.items()}
    if fired:
        doc[FIRED_KEY] = fired
    return json.dumps(doc).encode()
