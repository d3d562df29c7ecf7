"""The log trigger: one line per dependency, Argo's intervalSeconds, never failing."""

from __future__ import annotations

import logging

import pytest

from gateway.envelope import CloudEvent
from sensors.models import LogTrigger
from sensors.triggers.log import LogAction
from tests.sensors.triggers import event

EVENTS = {"b": event("e2", {"n": 2}), "a": event("e1", {"text": "<hi>"})}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def action(interval: int, clock: Clock) -> LogAction:
    return LogAction(LogTrigger(intervalSeconds=interval), sensor="s", trigger="t", clock=clock)


async def test_logs_each_dependency_data(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensors.triggers.log")
    outcome = await action(0, Clock()).execute(EVENTS)
    lines = [r.getMessage() for r in caplog.records]
    assert outcome.created and len(lines) == 2
    assert lines[0].startswith("sensor s trigger t dependency a event {'id': 'e1'")
    assert lines[0].endswith(': {"header":{},"body":{"text":"\\u003chi\\u003e"}}')  # Go's JSON, as Argo logs it
    assert lines[1].endswith(': {"header":{},"body":{"n":2}}')


@pytest.mark.parametrize(("interval", "steps", "logged"), [
    (20, [0, 10, 20, 20.5, 30, 41], [True, False, False, True, False, True]),  # strictly after last + interval
    (0, [0, 0, 0], [True, True, True]),  # no interval: every firing
])
async def test_interval_rate_limits(interval: int, steps: list[float], logged: list[bool]) -> None:
    clock = Clock()
    act = action(interval, clock)
    got = []
    for at in steps:
        clock.now = 100.0 + at
        got.append((await act.execute(EVENTS)).created)
    assert got == logged


def test_text_data_is_logged_as_is() -> None:
    raw = CloudEvent(id="r", source="s", subject="x", type="webhook", data="plain", datacontenttype="text/plain")
    assert action(0, Clock()).render({"d": raw})["log"][0]["data"] == "plain"
