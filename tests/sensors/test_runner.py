"""The runner's per-message heartbeat (the rest of the runner is exercised end to end)."""

from __future__ import annotations

import asyncio

import pytest

from sensors import runner
from tests.conftest import until


class SlowDelivery:
    def __init__(self) -> None:
        self.beats = 0

    async def in_progress(self) -> None:
        self.beats += 1


async def test_heartbeat_beats_every_third_of_ack_wait_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ACK_WAIT", 0.06)  # a beat every 20 ms
    delivery = SlowDelivery()
    beat = runner._Heartbeat(delivery)  # type: ignore[arg-type]
    await asyncio.sleep(0.005)
    assert delivery.beats == 0  # a message done quickly never beats
    await until(lambda: delivery.beats >= 2, what="two beats")
    beat.stop()
    seen = delivery.beats
    await asyncio.sleep(0.05)  # two and a half beat periods: what must not happen has had its time
    assert delivery.beats == seen
