"""The `log` trigger: log each dependency's event data, at most once per `intervalSeconds`.

As Argo (`pkg/sensors/triggers/log/log.go`): a firing logs when the clock is strictly past the
previous logged firing + interval, one line per dependency (the data as text, with the event
context); firings within the interval are skipped, and the trigger never fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.envelope import CloudEvent
from sensors.models import LogTrigger
from sensors.params import go_json
from sensors.triggers import Outcome, event_ids

log = logging.getLogger(__name__)


def data_string(event: CloudEvent) -> str:
    """Argo's `Event.DataString()`: the data bytes as text (JSON for structured data)."""
    if isinstance(event.data, bytes):
        return event.data.decode(errors="replace")
    if isinstance(event.data, str):
        return event.data
    return go_json(event.data)


class LogAction:
    kind = "log"

    def __init__(self, spec: LogTrigger, *, sensor: str, trigger: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = max(spec.intervalSeconds, 0)
        self.sensor = sensor
        self.trigger = trigger
        self._clock = clock
        self._last: float | None = None

    def render(self, events: Mapping[str, CloudEvent]) -> dict[str, Any]:
        return {"log": [{"dependencyName": dep, "eventContext": events[dep].context(),
                         "data": data_string(events[dep])} for dep in sorted(events)]}

    def _due(self) -> bool:
        now = self._clock()
        # Interval 0 always logs (Go's nanosecond clock always moves; a coarse clock might not).
        if self.interval and self._last is not None and not now > self._last + self.interval:
            return False
        self._last = now
        return True

    async def execute(self, events: Mapping[str, CloudEvent]) -> Outcome:
        if not self._due():
            log.debug("sensor %s log trigger %s: within intervalSeconds=%d, not logged", self.sensor,
                      self.trigger, self.interval)
            return Outcome(name=f"log {event_ids(events)}", created=False)
        for dep in sorted(events):
            event = events[dep]
            log.info("sensor %s trigger %s dependency %s event %s: %s", self.sensor, self.trigger, dep,
                     event.context(), data_string(event))
        return Outcome(name=f"log {event_ids(events)}", created=True)
