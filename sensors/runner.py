"""One Sensor at run time: its consumer, and each message through filters, conditions and triggers.

The decisions (which dependency an event is for, whether it passes, whether a trigger fires, what
it creates) are made by the pure modules; this module does the I/O around them and the ack
discipline: a message is acked only after its triggers succeeded or finally failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from gateway import logs
from gateway.bus import Bus, Consumer, Delivery, token
from gateway.envelope import CloudEvent
from gateway.errors import BusError, EventTooLarge, ManifestError
from gateway.metrics import Metrics
from sensors import conditions, cron, filters, params, retry
from sensors.kube import Cluster
from sensors.models import Sensor, Trigger, TriggerTemplate
from sensors.state import ConditionState
from sensors.triggers import Action, Outcome, PermanentError, TemporaryError, TriggerError, event_ids
from sensors.triggers.errors import TriggerCompileError
from sensors.triggers.factory import SecretLookup, build_action

log = logging.getLogger(__name__)

FETCH_BATCH = 64
# How long a pull request waits on the server for a first message. An idle Sensor asks again this
# often; a message that arrives meanwhile is handed over at once, so this is no added latency. A
# pull request lost with a NATS restart holds consumption up for at most this long.
FETCH_WAIT = 5.0
IN_FLIGHT = 64  # messages handled at once per sensor; JetStream's max_ack_pending is well above it
ACK_WAIT = float(os.environ.get("HOOKGATE_ACK_WAIT", "30"))  # seconds before an unacked message returns
DEFAULT_MAX_DELIVER = 10
DEAD_LETTER_TOKEN = "_deadletter"  # a namespace cannot start with "_", so no event subject collides
TTL_ANNOTATION = "hookgate.dev/condition-ttl"
MAX_DELIVER_ANNOTATION = "hookgate.dev/max-deliver"
NAK_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    spec: Trigger
    condition: conditions.Condition
    action: Action
    build: Callable[[TriggerTemplate], Action]  # for trigger-level parameters and the dlqTrigger
    template_parameters: tuple[params.CompiledParameter, ...] = ()
    resets: tuple[cron.Schedule, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.template.name

    def action_for(self, events: Mapping[str, CloudEvent]) -> Action:
        """Argo applies `trigger.parameters` to the template's JSON before every execution."""
        if not self.template_parameters:
            return self.action
        doc = self.spec.template.model_dump(mode="json", exclude_none=True)
        try:
            doc = params.apply_parameters(doc, self.template_parameters, events)
            return self.build(TriggerTemplate.model_validate(doc))
        except params.ParamError as e:
            raise PermanentError(f"trigger parameters: {e}") from None
        except (ValidationError, TriggerCompileError) as e:
            raise PermanentError(f"trigger parameters made an invalid template: {e}") from None

    def last_reset(self, now: datetime) -> float | None:
        """Saved halves older than the latest `conditionsReset` tick no longer count."""
        if not self.resets:
            return None
        return max(s.prev_before(now) for s in self.resets).timestamp()


@dataclass(frozen=True, slots=True)
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


def compile_sensor(sensor: Sensor, *, cluster: Cluster, secret: SecretLookup | None = None) -> CompiledSensor:
    """Everything checkable at load is checked here; errors name the field. `secret` resolves http headers."""
    deps: dict[str, filters.DependencyFilter] = {}
    by_origin: dict[tuple[str, str], list[str]] = {}
    for i, dep in enumerate(sensor.spec.dependencies):
        try:
            deps[dep.name] = filters.compile_dependency(dep)
        except filters.FilterCompileError as e:
            raise _error(sensor, ("spec", "dependencies", i, *e.path), e.message) from None
        by_origin.setdefault((dep.eventSourceName, dep.eventName), []).append(dep.name)
    names = [d.name for d in sensor.spec.dependencies]
    triggers = [_compile_trigger(sensor, i, t, names, cluster, secret) for i, t in enumerate(sensor.spec.triggers)]
    return CompiledSensor(sensor=sensor, dependencies=deps, by_origin=by_origin, triggers=triggers)


def _compile_trigger(sensor: Sensor, index: int, trigger: Trigger, names: list[str], cluster: Cluster,
                     secret: SecretLookup | None) -> CompiledTrigger:
    where: tuple[str | int, ...] = ("spec", "triggers", index)
    try:
        condition = conditions.compile_condition(trigger.template.conditions, names)
    except conditions.ConditionError as e:
        raise _error(sensor, (*where, "template", "conditions"), str(e)) from None
    try:
        template_parameters = params.compile_parameters(trigger.parameters, where="parameters", require_dest=True)
    except params.ParamError as e:
        raise _error(sensor, (*where, "parameters"), str(e)) from None
    resets = []
    for i, reset in enumerate(trigger.template.conditionsReset):
        if reset.byTime is None:
            continue
        try:
            resets.append(cron.compile_cron(reset.byTime.cron, reset.byTime.timezone))
        except cron.CronError as e:
            raise _error(sensor, (*where, "template", "conditionsReset", i, "byTime"), str(e)) from None

    for path, backoff in ((("retryStrategy",), trigger.retryStrategy),
                          (("dlqTrigger", "retryStrategy"), trigger.dlqTrigger and trigger.dlqTrigger.retryStrategy)):
        if backoff is not None:
            try:
                retry.resolve_backoff(backoff)
            except retry.BackoffError as e:
                raise _error(sensor, (*where, *path), str(e)) from None

    def build(template: TriggerTemplate) -> Action:
        return build_action(template, sensor=sensor, cluster=cluster, secret=secret)

    try:
        action = build(trigger.template)
    except TriggerCompileError as e:
        raise _error(sensor, (*where, "template", trigger.template.kind, *e.path), e.message) from None
    if trigger.dlqTrigger is not None:
        try:
            build(trigger.dlqTrigger.template)
        except TriggerCompileError as e:
            raise _error(sensor, (*where, "dlqTrigger", "template", *e.path), e.message) from None
    return CompiledTrigger(spec=trigger, condition=condition, action=action, build=build,
                           template_parameters=template_parameters, resets=tuple(resets))


def _error(sensor: Sensor, path: tuple[str | int, ...], message: str) -> ManifestError:
    return ManifestError(message, kind="Sensor", name=sensor.name, path=path)


class SensorRunner:
    """Reads one Sensor's consumer; acks a message only once its triggers are done with it."""

    __slots__ = ("_limiters", "bus", "compiled", "consumer", "consuming", "max_deliver", "metrics", "state")

    def __init__(self, compiled: CompiledSensor, *, bus: Bus, metrics: Metrics) -> None:
        self.compiled = compiled
        self.bus = bus
        self.metrics = metrics
        ttl = condition_ttl(compiled.sensor)  # checked for every Sensor, used by those that save halves
        # Only a trigger with a condition over several dependencies keeps state (a KV bucket).
        self.state = ConditionState(bus, namespace=compiled.sensor.namespace, sensor=compiled.name, ttl=ttl) \
            if any(t.condition.needs_state for t in compiled.triggers) else None
        self.max_deliver = max_deliver(compiled.sensor)
        self.consumer: Consumer | None = None
        self.consuming = False
        self._limiters: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def consumer_name(self) -> str:
        return consumer_name(self.compiled.sensor)

    @property
    def dead_letter_subject(self) -> str:
        return ".".join([self.bus.settings.prefix, DEAD_LETTER_TOKEN, token(self.compiled.sensor.namespace),
                         token(self.name)])

    async def prepare(self) -> None:
        """Create the durable consumer (and the state bucket): from here on no event is missed."""
        # The server never stops redelivering (max_deliver -1): giving up is our decision, recorded first.
        self.consumer = await self.bus.ensure_consumer(self.consumer_name, self.compiled.subjects(self.bus),
                                                       ack_wait=ACK_WAIT, max_deliver=-1)
        if self.state is not None:
            await self.state.open()
        self.consuming = True
        self.metrics.consuming(self.name, True)

    async def run(self) -> None:
        """Keep up to IN_FLIGHT messages being handled; fetch more as each one finishes.

        A rolling window rather than batch by batch: one slow API call or retry backoff holds its
        own message, not the 63 others that arrived with it.
        """
        assert self.consumer is not None, "prepare() first"
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                if len(in_flight) >= IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                for delivery in await self._fetch(IN_FLIGHT - len(in_flight)):
                    task = asyncio.create_task(self.handle(delivery))
                    in_flight.add(task)
                    task.add_done_callback(self._finished(in_flight))
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _fetch(self, room: int) -> list[Delivery]:
        assert self.consumer is not None
        try:
            deliveries = await self.consumer.fetch(min(room, FETCH_BATCH), timeout=FETCH_WAIT)
        except BusError as e:
            self.consuming = False
            log.warning("sensor %s: cannot fetch (%s); retrying", self.name, e)
            await asyncio.sleep(0.5)  # back off while NATS reconnects; nothing to wait on
            return []
        self.consuming = True
        return deliveries

    def _finished(self, in_flight: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                # A bug, not an outcome: the message stays unacked and comes back after ack_wait.
                log.error("sensor %s: handling failed", self.name, exc_info=task.exception())

        return done

    async def handle(self, delivery: Delivery) -> None:
        try:
            event = CloudEvent.from_json(delivery.data)
        except Exception as e:  # EnvelopeError, and whatever else an outside publisher's bytes provoke
            await self._dead_letter(delivery, None, f"not a CloudEvent: {e}")
            return
        logs.event_id.set(event.id)
        heartbeat = _Heartbeat(delivery)
        try:
            await self.process(event)
        except Exception as e:  # TemporaryError, and bugs or data no code path expected
            if not isinstance(e, TemporaryError):
                # e.g. an event nested so deep that a recursive step runs out of stack: retried like a
                # temporary failure, so it ends on the dead-letter subject instead of looping forever.
                log.error("sensor %s event %s: unexpected %s", self.name, event.id, type(e).__name__, exc_info=e)
            if delivery.attempt >= self.max_deliver:
                await self._dead_letter(delivery, event, f"gave up after {delivery.attempt} deliveries: {e}")
                return
            delay = NAK_DELAYS[min(delivery.attempt, len(NAK_DELAYS)) - 1]
            log.warning("sensor %s event %s: %s; redelivery %d in %.0fs", self.name, event.id, e,
                        delivery.attempt + 1, delay)
            await _settle(delivery.nak(delay=delay))
            return
        finally:
            heartbeat.stop()
        await _settle(delivery.ack())

    async def process(self, event: CloudEvent) -> None:
        verdicts = self.compiled.passing(event)
        for dep, verdict in verdicts.items():
            if not verdict.matched:
                # Debug, not warning: an event of another type missing a filtered path is routine, and
                # at thousands of events a second Argo's warning lines were the cost (its PR #2964).
                # `hookgate_events_discarded_total` counts them; `hookgate test` explains one.
                self.metrics.discarded(self.name, dep)
                log.debug("sensor %s event %s discarded by dependency %s%s", self.name, event.id, dep,
                          f": {verdict.error}" if verdict.error else "")
                continue
            for trigger in self.compiled.triggers:
                if dep in trigger.condition.dependencies:
                    await self._offer(trigger, dep, event)
            self.metrics.matched(self.name, dep)

    async def _offer(self, trigger: CompiledTrigger, dep: str, event: CloudEvent) -> None:
        if not trigger.condition.needs_state:
            await self._fire(trigger, {dep: event})
            return
        state = self.state
        assert state is not None, "a Sensor with a stateful condition has its state"

        def decide(saved: dict[str, CloudEvent]) -> tuple[bool, dict[str, CloudEvent]]:
            decision = conditions.correlate(trigger.condition, saved, dep, event)
            return decision.fire, dict(decision.events)

        fire, events = await state.update(trigger.name, decide, event_id=event.id,
                                          not_before=trigger.last_reset(datetime.now(UTC)))
        if not fire:
            return
        try:
            await self._fire(trigger, events)
        except BaseException:
            # Temporary failure, bug or shutdown: the saved halves were cleared when the condition
            # held. Put them back (shielded from the cancellation) so that the redelivery of this
            # event finds them and fires the same, idempotently named, action.
            await asyncio.shield(state.restore(trigger.name, dict(events), current=dep))
            raise

    async def _fire(self, trigger: CompiledTrigger, events: Mapping[str, CloudEvent]) -> None:
        await self._rate_limit(trigger)
        try:
            outcome = await self._attempts(trigger, events)
        except PermanentError as e:
            await self._give_up(trigger, events, str(e))
            return
        self.metrics.fired(self.name, trigger.name)
        log.info("sensor %s trigger %s %s %s (event %s)", self.name, trigger.name,
                 "created" if outcome.created else "found existing", outcome.name, event_ids(events))

    async def _attempts(self, trigger: CompiledTrigger, events: Mapping[str, CloudEvent]) -> Outcome:
        """Argo's retryStrategy, in process; when it runs out, the error goes back to the bus (nak)."""
        waits = retry_delays(trigger.spec)
        for attempt in range(len(waits) + 1):
            action = trigger.action_for(events)
            try:
                return await action.execute(events)
            except TemporaryError as e:
                self.metrics.failed(self.name, trigger.name, "temporary")
                if attempt == len(waits):
                    raise
                log.info("sensor %s trigger %s attempt %d failed (%s); retrying in %.1fs", self.name,
                         trigger.name, attempt + 1, e, waits[attempt])
                await asyncio.sleep(waits[attempt])
            finally:
                if action is not trigger.action:  # rebuilt for these events: release what it holds
                    await close_action(action)
        raise AssertionError("unreachable")

    async def _give_up(self, trigger: CompiledTrigger, events: Mapping[str, CloudEvent], error: str) -> None:
        self.metrics.failed(self.name, trigger.name, "permanent")
        log.error("sensor %s trigger %s gave up on event %s: %s", self.name, trigger.name, event_ids(events), error)
        await self._record(trigger.name, events, error)
        dlq = trigger.spec.dlqTrigger
        if dlq is None:
            return
        try:
            action = trigger.build(dlq.template)
            try:
                outcome = await action.execute(events)
            finally:
                await close_action(action)
            log.info("sensor %s dlqTrigger %s ran for event %s: %s", self.name, dlq.template.name,
                     event_ids(events), outcome.name)
        except (TriggerError, TriggerCompileError) as e:
            log.error("sensor %s dlqTrigger %s failed too: %s", self.name, dlq.template.name, e)

    async def _dead_letter(self, delivery: Delivery, event: CloudEvent | None, error: str) -> None:
        """Poison and exhausted messages: recorded on the dead-letter subject, then acked."""
        log.error("sensor %s: message %d on %s dead-lettered: %s", self.name, delivery.stream_sequence,
                  delivery.subject, error)
        self.metrics.failed(self.name, "", "dead-letter")
        events = {"": event} if event is not None else {}
        try:
            await self._record("", events, error, raw=None if event else delivery.data,
                               sequence=delivery.stream_sequence)
        except BusError:
            await _settle(delivery.nak(delay=NAK_DELAYS[-1]))  # cannot record it: keep it instead
            return
        await _settle(delivery.ack())

    async def _record(self, trigger: str, events: Mapping[str, CloudEvent], error: str, *,
                      raw: bytes | None = None, sequence: int | None = None) -> None:
        record: dict[str, Any] = {
            "sensor": self.name, "namespace": self.compiled.sensor.namespace, "trigger": trigger, "error": error,
            "time": datetime.now(UTC).isoformat(), "event_ids": {dep: ev.id for dep, ev in events.items()},
            "events": {dep: json.loads(ev.to_json()) for dep, ev in events.items()}}
        if raw is not None:
            record["raw"] = raw.decode(errors="replace")
        key = event_ids(events) if events else f"seq-{sequence}"
        msg_id = f"dead-letter/{self.consumer_name}/{trigger}/{key}"
        payload = json.dumps(record, ensure_ascii=False).encode()
        try:
            await self.bus.publish(self.dead_letter_subject, payload, msg_id=msg_id)
        except EventTooLarge:
            # The record can never be stored whole: keep what identifies it, so it is still recorded.
            small = {k: v for k, v in record.items() if k not in ("events", "raw")}
            small["truncated"] = f"events and raw message left out: {len(payload)} bytes is over the bus limit"
            await self.bus.publish(self.dead_letter_subject, json.dumps(small).encode(), msg_id=msg_id)

    async def close(self) -> None:
        for trigger in self.compiled.triggers:
            await close_action(trigger.action)

    async def _rate_limit(self, trigger: CompiledTrigger) -> None:
        limit = trigger.spec.rateLimit
        if limit is None or limit.requestsPerUnit <= 0:
            return
        if trigger.name not in self._limiters:
            self._limiters[trigger.name] = retry.RateLimiter(limit)
        await self._limiters[trigger.name].wait()


def retry_delays(trigger: Trigger) -> list[float]:
    if trigger.retryStrategy is None:
        return []  # Argo: no retryStrategy means a single attempt
    return retry.delays(trigger.retryStrategy)


async def close_action(action: Action) -> None:
    close = getattr(action, "close", None)
    if close is not None:
        await close()


def max_deliver(sensor: Sensor) -> int:
    text = sensor.metadata.annotations.get(MAX_DELIVER_ANNOTATION)
    if text is None:
        return DEFAULT_MAX_DELIVER
    if not text.isdigit() or int(text) < 1:
        raise ManifestError(f"not a positive integer: {text!r}", kind="Sensor", name=sensor.name,
                            path=("metadata", "annotations", MAX_DELIVER_ANNOTATION))
    return int(text)


class _Heartbeat:
    """Tell JetStream the message is being worked on, so that long retries are not redelivered meanwhile.

    A timer rather than a task per message: nearly every message is done long before its first beat.
    """

    __slots__ = ("_beat", "_delivery", "_loop", "_timer")

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._loop = asyncio.get_running_loop()
        self._beat: asyncio.Task[None] | None = None
        self._timer = self._loop.call_later(ACK_WAIT / 3, self._tick)

    def _tick(self) -> None:
        if self._beat is None or self._beat.done():  # the previous one may still wait for a slow server
            self._beat = self._loop.create_task(_settle(self._delivery.in_progress()))
        self._timer = self._loop.call_later(ACK_WAIT / 3, self._tick)

    def stop(self) -> None:
        self._timer.cancel()
        if self._beat is not None:
            self._beat.cancel()


def consumer_name(sensor: Sensor) -> str:
    """The Sensor's durable consumer (its condition bucket is named alike): `.` is not allowed in it."""
    return f"sensor_{token(sensor.namespace)}_{token(sensor.name)}"


def condition_ttl(sensor: Sensor) -> float | None:
    """`hookgate.dev/condition-ttl` (e.g. `30m`, `1h30m`): how long a saved half may wait. Unset: forever, as Argo."""
    text = sensor.metadata.annotations.get(TTL_ANNOTATION)
    if not text:
        return None
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise ManifestError(f"not a positive duration: {text!r} (examples: 90s, 30m, 1h30m)", kind="Sensor",
                            name=sensor.name, path=("metadata", "annotations", TTL_ANNOTATION))
    return seconds


def parse_duration(text: str) -> float | None:
    """A Go duration (`1h30m`, `90s`, `250ms`) in seconds, or None when it is not one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * unit[u] for n, u in parts)


async def _settle(op: Any) -> None:
    # A lost ack means a redelivery, which the idempotent triggers absorb; never crash the loop on it.
    with contextlib.suppress(BusError):
        await op
