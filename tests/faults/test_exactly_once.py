"""
Exactly-once under faults: N distinct GitHub deliveries in, exactly N Workflows out, none twice.

Each scenario runs the GitHub example as separate processes (gateway, sensors) around a real
nats-server and the Kubernetes API emulator, sends 500 signed pushes (16 at a time, 503s and
connection errors redelivered with the same delivery id), breaks something mid-stream, and then
checks, once the sensor's consumer has nothing pending and nothing in flight:

* the stream holds 500 events (the gateway stored each delivery once);
* the emulator holds 500 Workflows whose `events.hookgate.dev/event-ids` annotations are exactly
  the 500 delivery ids (no event lost, none triggered twice);
* every hookgate process still running stops cleanly on SIGTERM.

The faults land mid-stream for certain: the sender holds back the second half of its deliveries
until the fault is in place, and the fault is armed once a share of the first half has become
Workflows. `pytest -rP tests/faults` prints each scenario's timeline (when the fault landed, how
many redeliveries found their Workflow already there, how long creations paused).

Most of the suite's time is the sensor's 30 s ack_wait (sensors/runner.py, not configurable): a
killed sensor's in-flight messages, and acks lost in a NATS outage, come back only after it.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise

import nats

from tests.faults.conftest import EVENT_IDS, SENSOR, STREAM, TRIGGER, Sender, Stack, until

EVENTS = 500
HALF = EVENTS // 2
MID_STREAM = 100  # Workflows that exist when the fault is armed (of the first HALF deliveries)
ACK_WAIT = 30.0  # sensors/runner.py: what a killed sensor's in-flight messages wait before redelivery
SETTLE = ACK_WAIT + 45.0  # deadline for the tail: an ack_wait plus the work, on a busy 2-core machine
# The sensor's Kubernetes API call timeout (default 10 s), lowered so that a stall outlasts it quickly.
KUBE_TIMEOUT = 2.0

MakeStack = Callable[..., Stack]


def delivery_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def mid_stream(stack: Stack) -> int:
    """Wait until MID_STREAM Workflows exist (the fault must not land before the stream flows)."""
    # Polled often (a list of at most HALF objects is cheap): the first half must not run out first.
    n = int(until(lambda: (n := stack.count()) >= MID_STREAM and n, timeout=60, interval=0.05,
                  what=f"{MID_STREAM} Workflows", diagnose=stack.diagnose))
    stack.mark(f"{n} Workflows: fault")
    return n


def assert_exactly_once(stack: Stack, sender: Sender, ids: list[str]) -> None:
    sender.join()
    stack.mark(f"sender done: {sender.summary()}")
    assert not sender.failed and len(sender.accepted) == len(ids), sender.summary()
    until(lambda: stack.count() >= len(ids), timeout=SETTLE, what=f"{len(ids)} Workflows", diagnose=stack.diagnose)
    stack.mark(f"{len(ids)} Workflows")
    until(stack.settled, timeout=SETTLE, what="the consumer to have nothing pending or unacked",
          diagnose=stack.diagnose)
    workflows = stack.workflows()  # read after settling: nothing is in flight that could add one
    _, stream = stack.bus()
    found = sum(f"trigger {TRIGGER} found existing" in line for line in stack.stderr())
    stack.mark(f"settled: {len(workflows)} Workflows, {stream.state.messages} events in the stream; "
               f"{found} redeliveries met their Workflow already there; longest pause in creations "
               f"{longest_pause(stack):.1f}s")
    annotations = [w["metadata"].get("annotations", {}).get(EVENT_IDS) for w in workflows]
    duplicates = {a: n for a in set(annotations) if (n := annotations.count(a)) > 1}
    assert stream.state.messages == len(ids), f"the stream holds {stream.state.messages} events\n{stack.diagnose()}"
    assert not duplicates, f"events triggered more than once: {duplicates}"
    assert len(workflows) == len(ids), stack.diagnose()
    assert set(annotations) == {f"push={d}" for d in ids}
    assert not [line for line in stack.stderr() if "dead-lettered" in line or "gave up" in line]


def assert_clean_stop(stack: Stack) -> None:
    stopped = stack.stop_processes()
    stack.mark(f"stopped (exit code, seconds): {stopped}")
    print("\n".join(stack.timeline))
    assert all(code == 0 for code, _ in stopped.values()), f"exit codes (code, seconds) on SIGTERM: {stopped}"


def test_sensor_killed_mid_stream_and_restarted(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.up()
    ids = delivery_ids(EVENTS)
    sender = stack.send(ids, hold_from=HALF)
    mid_stream(stack)
    stack.sensors[0].stop(signal.SIGKILL)
    stack.mark("sensor SIGKILLed")
    at_kill = stack.count()
    assert at_kill < HALF, f"the sensor was done with the first half already ({at_kill})"
    sender.release()
    # Events keep arriving (and are kept) while no sensor runs; then a new sensor picks up.
    until(lambda: len(sender.accepted) >= HALF + 50, timeout=30, what="deliveries while the sensor is down",
          diagnose=stack.diagnose)
    stack.start_sensor()
    stack.mark("sensor restarted")
    assert_exactly_once(stack, sender, ids)
    assert_clean_stop(stack)


def test_nats_stopped_mid_stream_and_restarted(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.up()
    ids = delivery_ids(EVENTS)
    sender = stack.send(ids, hold_from=HALF)
    mid_stream(stack)

    def outage() -> None:
        sender.release()  # deliveries meet the outage: the gateway answers 503, the sender redelivers
        stopped = time.monotonic()
        until(lambda: sender.retried >= 30 and time.monotonic() - stopped >= 3.0, timeout=30,
              what="deliveries refused while NATS is down", interval=0.1, diagnose=stack.diagnose)
        stack.mark(f"NATS down; {sender.summary()}")

    stack.restart_nats(down=outage)
    stack.mark("NATS restarted")
    assert sender.statuses[503] > 0, sender.summary()
    assert_exactly_once(stack, sender, ids)
    assert_clean_stop(stack)


def test_kubernetes_api_errors_and_stalls_mid_stream(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.up(sensor_env={"HOOKGATE_KUBE_TIMEOUT": str(KUBE_TIMEOUT)})
    ids = delivery_ids(EVENTS)
    sender = stack.send(ids, hold_from=HALF)
    mid_stream(stack)
    # Faults apply in the order armed: the next 50 creates fail, the 3 after them are stored but
    # answered after the sensor's client has given up (it cannot know its create happened).
    errors = stack.kube.inject(method="POST", plural="workflows", status=500, count=50)
    stalls = stack.kube.inject(method="POST", plural="workflows", stall=KUBE_TIMEOUT + 1, count=3)
    sender.release()
    until(lambda: stalls.remaining == 0, timeout=60, what="the injected faults to be met", diagnose=stack.diagnose)
    stack.mark(f"faults met: {errors.hits} errors, {stalls.hits} stalls")
    assert errors.hits == 50
    assert_exactly_once(stack, sender, ids)
    # The stalled creates were stored: their redeliveries met them (409) and took them as done.
    found = [line for line in stack.stderr() if f"trigger {TRIGGER} found existing" in line]
    assert len(found) >= stalls.hits, found
    temporary = metric(stack.metrics(stack.sensors[0]), "hookgate_triggers_failed_total",
                       reason="temporary", sensor=SENSOR)
    assert temporary >= errors.hits + stalls.hits
    assert_clean_stop(stack)


def test_two_replicas_one_killed_mid_stream(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.up(sensors=2)
    ids = delivery_ids(EVENTS)
    sender = stack.send(ids, hold_from=HALF)
    mid_stream(stack)
    stack.sensors[0].stop(signal.SIGKILL)
    stack.mark("replica 0 SIGKILLed")
    at_kill = stack.count()
    assert at_kill < HALF, f"the replicas were done with the first half already ({at_kill})"
    sender.release()
    assert_exactly_once(stack, sender, ids)
    assert_clean_stop(stack)


def test_same_delivery_twice_makes_one_workflow(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.up()
    first, second = delivery_ids(2)
    sender = stack.send([first])
    sender.join()
    until(lambda: stack.count() == 1, timeout=20, what="the first Workflow", diagnose=stack.diagnose)
    # Redelivered after its Workflow exists, and another one twice at once: the gateway stores each once.
    again = stack.send([first, second, second], concurrency=3)
    again.join()
    assert len(again.accepted) == 2 and not again.failed, again.summary()
    assert again.statuses[200] == 3
    until(lambda: stack.count() == 2, timeout=20, what="the second Workflow", diagnose=stack.diagnose)

    # A redelivery older than the stream's duplicate window gets past the gateway's dedupe: the same
    # CloudEvent under another Nats-Msg-Id. The trigger's idempotent name must absorb it.
    async def republish() -> None:
        nc = await nats.connect(stack.nats.url)
        try:
            js = nc.jetstream()
            stored = await js.get_msg(STREAM, seq=1)
            await js.publish(stored.subject, stored.data, stream=STREAM, headers={"Nats-Msg-Id": "late-redelivery"})
        finally:
            await nc.close()

    asyncio.run(republish())
    until(lambda: any(f"trigger {TRIGGER} found existing" in line for line in stack.stderr()), timeout=20,
          what="the late redelivery to find its Workflow", diagnose=stack.diagnose)
    until(stack.settled, timeout=20, what="the consumer to settle", diagnose=stack.diagnose)
    workflows = stack.workflows()
    assert sorted(w["metadata"]["annotations"][EVENT_IDS] for w in workflows) == \
        sorted([f"push={first}", f"push={second}"])
    consumer, stream = stack.bus()
    assert stream.state.messages == 3  # two deliveries, plus the late copy published by hand
    assert consumer.delivered.stream_seq == consumer.ack_floor.stream_seq == 3
    assert_clean_stop(stack)


def test_missing_template_is_given_up_recorded_and_acked(make_stack: MakeStack) -> None:
    stack = make_stack(with_templates=False)
    stack.up()
    [delivery] = delivery_ids(1)
    sender = stack.send([delivery])
    sender.join()
    assert list(sender.accepted) == [delivery], sender.summary()
    errors = until(lambda: [line for line in stack.stderr() if "WorkflowTemplate 'github-ci' not found" in line],
                   timeout=20, what="the error in the sensor's log", diagnose=stack.diagnose)
    assert f"gave up on event push={delivery}" in errors[0]
    until(lambda: metric(stack.metrics(stack.sensors[0]), "hookgate_triggers_failed_total",
                         reason="permanent", sensor=SENSOR) == 1,
          timeout=20, what="the permanent failure in /metrics", diagnose=stack.diagnose)
    until(stack.settled, timeout=20, what="the message to be acked", diagnose=stack.diagnose)
    consumer, _ = stack.bus()
    assert (consumer.num_pending, consumer.num_ack_pending, consumer.num_redelivered) == (0, 0, 0)
    assert consumer.delivered.stream_seq == consumer.ack_floor.stream_seq == 1
    assert stack.workflows() == []
    assert len([line for line in stack.stderr() if "not found" in line]) == 1  # given up once, not retried
    assert_clean_stop(stack)


def test_sensor_stops_cleanly_after_acking_during_an_outage(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.up()
    # The creates are stored at once but answered late: NATS goes down while the sensor waits on them.
    stalls = stack.kube.inject(method="POST", plural="workflows", stall=1.5, count=2)
    stack.send(delivery_ids(2)).join()
    until(lambda: stalls.hits == 2, timeout=20, what="two creates in progress", diagnose=stack.diagnose)
    stack.nats.stop()
    # The sensor finishes both events and acks them with NATS down (acks lost: redelivery would follow).
    until(lambda: sum(f"trigger {TRIGGER} created" in line for line in stack.stderr()) == 2, timeout=20,
          what="the sensor to finish both events", diagnose=stack.diagnose)
    stopped = stack.stop_processes(timeout=10)
    print(stopped, *[line for line in stack.stderr() if "Error" in line][-3:], sep="\n")
    assert all(code == 0 and seconds < 10 for code, seconds in stopped.values()), f"(exit code, seconds): {stopped}"


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter over the series that carry `labels` (label order does not matter)."""
    total = 0.0
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if m and all(f'{k}="{v}"' in m[1].split(",") for k, v in labels.items()):
            total += float(m[2])
    return total


def longest_pause(stack: Stack) -> float:
    """The longest time between two Workflow creations in the sensors' logs (for the timeline)."""
    stamps = sorted(t for line in stack.stderr() if f"trigger {TRIGGER} created" in line and (t := log_time(line)))
    return max(((b - a).total_seconds() for a, b in pairwise(stamps)), default=0.0)


def log_time(line: str) -> datetime | None:
    """When a log line was written: JSON lines (the default) or `HOOKGATE_LOG_FORMAT=text` lines."""
    try:
        if line.startswith("{"):
            return datetime.fromisoformat(json.loads(line)["time"]).replace(tzinfo=None)
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    except (ValueError, KeyError, TypeError):
        return None
