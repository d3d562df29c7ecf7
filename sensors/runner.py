"""One Sensor at run time: its consumer, and each message through filters, conditions and triggers.

The decisions (which dependency an event is for, whether it passes, whether a trigger fires, what
it creates) are made by the pure modules; this module does the I/O around them and the ack
discipline: a message is acked only after its triggers succeeded or finally failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.bus import Bus, Consumer, Delivery, token
from gateway.envelope import CloudEvent, EnvelopeError
from gateway.errors import BusError, ManifestError
from gateway.metrics import Metrics
from sensors import conditions, filters
from sensors.kube import Cluster
from sensors.models import Sensor, Trigger
from sensors.state import ConditionState
from sensors.triggers import Action, PermanentError, TemporaryError, TriggerError
from sensors.triggers.argo_workflow import SubmitWorkflow, TriggerCompileError

log = logging.getLogger(__name__)

FETCH_BATCH = 64
NAK_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class CompiledTrigger:
    spec: Trigger
    condition: conditions.Condition
    action: Action

    @property
    def name(self) -> str:
        return self.spec.template.name


@dataclass(frozen=True)
class CompiledSensor:
    """Everything about a Sensor that can be decided before the first event arrives."""

    sensor: Sensor
    dependencies: dict[str, filters.DependencyFilter]
    by_origin: dict[tuple[str, str], list[str]]  # (eventSourceName, eventName) → dependency names
    triggers: list[CompiledTrigger]

    @property
    def name(self) -> str:
        return self.sensor.name

    def subjects(self, bus: Bus) -> list[str]:
        ns = self.sensor.namespace
        return sorted({bus.settings.subject(ns, es, ev) for es, ev in self.by_origin})

    def passing(self, event: CloudEvent) -> dict[str, filters.Verdict]:
        names = self.by_origin.get((event.source, event.subject), [])
        return {name: self.dependencies[name].evaluate(event) for name in names}


def compile_sensor(sensor: Sensor, *, cluster: Cluster) -> CompiledSensor:
    deps: dict[str, filters.DependencyFilter] = {}
    by_origin: dict[tuple[str, str], list[str]] = {}
    for i, dep in enumerate(sensor.spec.dependencies):
        try:
            deps[dep.name] = filters.compile_dependency(dep)
        except filters.FilterCompileError as e:
            raise _error(sensor, ("spec", "dependencies", i, *e.path), e.message) from None
        by_origin.setdefault((dep.eventSourceName, dep.eventName), []).append(dep.name)
    names = [d.name for d in sensor.spec.dependencies]
    triggers = [_compile_trigger(sensor, i, t, names, cluster) for i, t in enumerate(sensor.spec.triggers)]
    return CompiledSensor(sensor=sensor, dependencies=deps, by_origin=by_origin, triggers=triggers)


def _compile_trigger(sensor: Sensor, index: int, trigger: Trigger, names: list[str],
                     cluster: Cluster) -> CompiledTrigger:
    where = ("spec", "triggers", index, "template")
    try:
        condition = conditions.compile_condition(trigger.template.conditions, names)
    except conditions.ConditionError as e:
        raise _error(sensor, (*where, "conditions"), str(e)) from None
    if trigger.parameters:
        raise _error(sensor, ("spec", "triggers", index, "parameters"),
                     "trigger-level parameters are not implemented yet; put them on the resource")
    if trigger.template.argoWorkflow is None:
        raise _error(sensor, (*where, trigger.template.kind), "this trigger type is not implemented yet")
    try:
        action = SubmitWorkflow(trigger.template.argoWorkflow, sensor=sensor.name, namespace=sensor.namespace,
                                trigger=trigger.template.name, cluster=cluster)
    except TriggerCompileError as e:
        raise _error(sensor, (*where, "argoWorkflow", *e.path), e.message) from None
    return CompiledTrigger(spec=trigger, condition=condition, action=action)


def _error(sensor: Sensor, path: tuple[str | int, ...], message: str) -> ManifestError:
    return ManifestError(message, kind="Sensor", name=sensor.name, path=path)


class SensorRunner:
    def __init__(self, compiled: CompiledSensor, *, bus: Bus, metrics: Metrics) -> None:
        self.compiled = compiled
        self.bus = bus
        self.metrics = metrics
        self.state = ConditionState(bus, namespace=compiled.sensor.namespace, sensor=compiled.name)
        self.consumer: Consumer | None = None
        self.consuming = False

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def consumer_name(self) -> str:
        return f"sensor_{token(self.compiled.sensor.namespace)}_{token(self.name)}"

    async def prepare(self) -> None:
        """Create the durable consumer (and the state bucket): from here on no event is missed."""
        self.consumer = await self.bus.ensure_consumer(self.consumer_name, self.compiled.subjects(self.bus))
        if any(t.condition.needs_state for t in self.compiled.triggers):
            await self.state.open()
        self.consuming = True
        self.metrics.consuming(self.name, True)

    async def run(self) -> None:
        assert self.consumer is not None, "prepare() first"
        while True:
            try:
                deliveries = await self.consumer.fetch(FETCH_BATCH, timeout=1.0)
            except BusError as e:
                self.consuming = False
                log.warning("sensor %s: cannot fetch (%s); retrying", self.name, e)
                await asyncio.sleep(0.5)  # back off while NATS reconnects; nothing to wait on
                continue
            self.consuming = True
            if deliveries:
                await asyncio.gather(*(self.handle(d) for d in deliveries))

    async def handle(self, delivery: Delivery) -> None:
        try:
            event = CloudEvent.from_json(delivery.data)
        except EnvelopeError as e:
            log.error("sensor %s: dropping message %d on %s: not a CloudEvent (%s)", self.name,
                      delivery.stream_sequence, delivery.subject, e)
            await _settle(delivery.ack())
            return
        try:
            await self.process(event)
        except TemporaryError as e:
            delay = NAK_DELAYS[min(delivery.attempt, len(NAK_DELAYS)) - 1]
            log.warning("sensor %s event %s: %s; retrying in %.0fs", self.name, event.id, e, delay)
            await _settle(delivery.nak(delay=delay))
            return
        await _settle(delivery.ack())

    async def process(self, event: CloudEvent) -> None:
        verdicts = self.compiled.passing(event)
        for dep, verdict in verdicts.items():
            if verdict.error:
                log.warning("sensor %s event %s dependency %s: %s", self.name, event.id, dep, verdict.error)
            if not verdict.matched:
                self.metrics.discarded(self.name, dep)
                log.debug("sensor %s event %s discarded by dependency %s", self.name, event.id, dep)
                continue
            for trigger in self.compiled.triggers:
                if dep in trigger.condition.dependencies:
                    await self._offer(trigger, dep, event)

    async def _offer(self, trigger: CompiledTrigger, dep: str, event: CloudEvent) -> None:
        if not trigger.condition.needs_state:
            await self._fire(trigger, {dep: event})
            return

        def decide(saved: dict[str, CloudEvent]) -> tuple[bool, dict[str, CloudEvent]]:
            decision = conditions.correlate(trigger.condition, saved, dep, event)
            return decision.fire, dict(decision.events)

        fire, events = await self.state.update(trigger.name, decide)
        if fire:
            await self._fire(trigger, events)

    async def _fire(self, trigger: CompiledTrigger, events: Mapping[str, CloudEvent]) -> None:
        try:
            outcome = await trigger.action.execute(events)
        except PermanentError as e:
            self.metrics.failed(self.name, trigger.name, "permanent")
            log.error("sensor %s trigger %s gave up on event(s) %s: %s", self.name, trigger.name,
                      ",".join(ev.id for ev in events.values()), e)
            return
        except TriggerError:
            raise
        self.metrics.fired(self.name, trigger.name)
        log.info("sensor %s trigger %s %s %s", self.name, trigger.name,
                 "created" if outcome.created else "found existing", outcome.name)


async def _settle(op: Any) -> None:
    # A lost ack means a redelivery, which the idempotent triggers absorb; never crash the loop on it.
    with contextlib.suppress(BusError):
        await op
