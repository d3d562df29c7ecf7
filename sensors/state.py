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
from typing import Any

import nats.js.errors

from gateway.bus import Bus, token
from gateway.envelope import CloudEvent
from sensors.triggers import TemporaryError

Decide = Callable[[dict[str, CloudEvent]], tuple[bool, dict[str, CloudEvent]]]
MAX_RACES = 50


def bucket_name(namespace: str, sensor: str) -> str:
    return f"hookgate_{token(namespace)}_{token(sensor)}"[:200]


def trigger_key(trigger: str) -> str:
    return "t_" + hashlib.sha256(trigger.encode()).hexdigest()[:24]


class ConditionState:
    def __init__(self, bus: Bus, *, namespace: str, sensor: str, ttl: float | None = None) -> None:
        self._bus = bus
        self._bucket = bucket_name(namespace, sensor)
        self._ttl = ttl
        self._kv: Any = None
        self._locks: dict[str, asyncio.Lock] = {}

    async def open(self) -> None:
        self._kv = await self._bus.key_value(self._bucket)

    async def update(self, trigger: str, decide: Decide, *, not_before: float | None = None
                     ) -> tuple[bool, dict[str, CloudEvent]]:
        """Run `decide(saved)` → (fire, events) and store the outcome atomically.

        When it fires, the saved events of the trigger are cleared; otherwise `events` is stored.
        Saved events older than `not_before` (a reset) or than the TTL are treated as absent.
        """
        key = trigger_key(trigger)
        # One writer per key in this process; compare-and-set settles races with other replicas.
        async with self._locks.setdefault(key, asyncio.Lock()):
            return await self._update(key, decide, not_before)

    async def _update(self, key: str, decide: Decide, not_before: float | None
                      ) -> tuple[bool, dict[str, CloudEvent]]:
        for attempt in range(MAX_RACES):
            saved, revision = await self._read(key, not_before)
            fire, events = decide(saved)
            try:
                if fire:
                    if revision:
                        await self._kv.delete(key, last=revision)
                elif revision:
                    await self._kv.update(key, _encode(events), last=revision)
                else:
                    await self._kv.create(key, _encode(events))
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError):
                # Another replica changed the key since we read it: decide again, after a jittered pause.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            return fire, events
        raise TemporaryError(f"condition state {key} kept changing under us; will retry")

    async def restore(self, trigger: str, events: dict[str, CloudEvent]) -> None:
        """Put saved halves back after a failed fire; a half saved since then is newer and wins."""
        if events:
            await self.update(trigger, lambda saved: (False, {**events, **saved}))

    async def clear(self, trigger: str) -> None:
        try:
            await self._kv.purge(trigger_key(trigger))
        except nats.js.errors.KeyNotFoundError:
            pass

    async def _read(self, key: str, not_before: float | None) -> tuple[dict[str, CloudEvent], int]:
        try:
            entry = await self._kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return {}, 0  # `create` also takes over a deleted key's tombstone
        if not entry.value:
            return {}, int(entry.revision)
        return self._decode(entry.value, not_before), int(entry.revision)

    def _decode(self, raw: bytes, not_before: float | None) -> dict[str, CloudEvent]:
        doc = json.loads(raw)
        cutoffs = [c for c in (not_before, time.time() - self._ttl if self._ttl else None) if c is not None]
        cutoff = max(cutoffs) if cutoffs else None
        return {dep: CloudEvent.from_dict(item["event"]) for dep, item in doc.items()
                if cutoff is None or item.get("saved", 0) >= cutoff}


def _encode(events: dict[str, CloudEvent]) -> bytes:
    now = time.time()
    return json.dumps({dep: {"saved": now, "event": json.loads(ev.to_json())} for dep, ev in events.items()}).encode()
