"""Condition state in a real JetStream KV bucket: CAS under a race, restore, reset bounds, TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.bus import Bus
from gateway.envelope import CloudEvent
from hookgate.embedded import NatsServer
from sensors.state import ConditionState, bucket_name


def event(n: int) -> CloudEvent:
    return CloudEvent(id=f"e{n}", source="s", subject="x", type="webhook", data={"n": n})


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    b = Bus(nats_server.url)
    await b.connect()
    yield b
    await b.close()


async def replica(bus: Bus, **kwargs: float) -> ConditionState:
    state = ConditionState(bus, namespace="team-a", sensor="ci.main", **kwargs)
    await state.open()
    return state


async def test_two_replicas_racing_lose_no_update(nats_server: NatsServer, bus: Bus) -> None:
    other_bus = Bus(nats_server.url)  # a second replica has its own connection
    await other_bus.connect()
    one, two = await replica(bus), await replica(other_bus)

    def add(dep: str, n: int):  # type: ignore[no-untyped-def]
        return lambda saved: (False, {**saved, dep: event(n)})

    await asyncio.gather(*(state.update("t", add(f"d{n}", n)) for n in range(40)
                           for state in [(one, two)[n % 2]]))
    _, saved = await one.update("t", lambda saved: (False, saved))
    await other_bus.close()
    assert sorted(saved) == sorted(f"d{n}" for n in range(40))


async def test_firing_clears_and_restore_puts_back_without_overwriting_newer(bus: Bus) -> None:
    state = await replica(bus)
    await state.update("t", lambda saved: (False, {"a": event(1)}))
    fired, events = await state.update("t", lambda saved: (True, {**saved, "b": event(2)}), event_id="e2")
    assert fired and sorted(events) == ["a", "b"]
    _, after = await state.update("t", lambda saved: (False, saved))
    assert after == {}
    await state.update("t", lambda saved: (False, {"a": event(3)}))
    await state.restore("t", {"a": event(1), "c": event(4), "b": event(2)}, current="b")
    _, restored = await state.update("t", lambda saved: (False, saved))
    assert {dep: ev.id for dep, ev in restored.items()} == {"a": "e3", "c": "e4"}


async def test_a_redelivered_event_that_already_fired_does_not_pair_again(bus: Bus) -> None:
    state = await replica(bus)
    await state.update("t", lambda saved: (False, {"a": event(1)}), event_id="e1")
    fired, _ = await state.update("t", lambda saved: (True, {**saved, "b": event(2)}), event_id="e2")
    assert fired
    # The ack of e2 was lost: it comes back. It must neither fire nor wait as a half.
    again, events = await state.update("t", lambda saved: (False, {**saved, "b": event(2)}), event_id="e2")
    assert (again, events) == (False, {})
    fired_again, _ = await state.update("t", lambda saved: ("b" in saved, {**saved, "a": event(3)}),
                                        event_id="e3")
    assert not fired_again  # a new a finds no b to pair with


async def test_a_fire_that_did_not_complete_can_fire_again_on_redelivery(bus: Bus) -> None:
    state = await replica(bus)
    await state.update("t", lambda saved: (False, {"a": event(1)}), event_id="e1")
    _, events = await state.update("t", lambda saved: (True, {**saved, "b": event(2)}), event_id="e2")
    await state.restore("t", events, current="b")
    fired, again = await state.update("t", lambda saved: ("a" in saved, {**saved, "b": event(2)}), event_id="e2")
    assert fired and {dep: ev.id for dep, ev in again.items()} == {"a": "e1", "b": "e2"}


async def test_halves_saved_before_a_reset_no_longer_count(bus: Bus) -> None:
    state = await replica(bus)
    await state.update("t", lambda saved: (False, {"a": event(1)}))
    _, seen = await state.update("t", lambda saved: (False, saved), not_before=time.time() + 60)
    assert seen == {}


async def test_ttl_expires_saved_halves(bus: Bus) -> None:
    state = await replica(bus, ttl=0.001)
    await state.update("t", lambda saved: (False, {"a": event(1)}))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the TTL is a millisecond: the next read is already past it
        _, seen = await state.update("t", lambda saved: (False, saved))
        if not seen:
            break
    assert seen == {}


def test_bucket_names_are_per_namespace_and_sensor_and_valid() -> None:
    assert bucket_name("team-a", "ci.main") == "hookgate_team-a_ci_main"
    assert bucket_name("team-a", "x") != bucket_name("team-b", "x")
