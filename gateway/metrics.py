"""Prometheus metrics, named after what Argo Events users already chart.

One registry per process, or, for a gateway running several workers (`--workers`), one set of
files shared by the workers through prometheus_client's multiprocess mode: its supervisor sets
PROMETHEUS_MULTIPROC_DIR, and any worker's /metrics answers for all of them.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5)


class _Intake:
    """One event's intake counts since the last flush: plain integers, so that counting a delivery
    costs a few additions rather than prometheus_client's locked value updates (about 2.5 us a
    delivery, 6-8 us under load, measured with bench/gateway.py)."""

    __slots__ = ("buckets", "duplicates", "published", "received", "seconds")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.received = self.published = self.duplicates = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf

    def take(self) -> tuple[int, int, int, float, list[int]]:
        """The counts so far, which start again from zero: taken before they are added anywhere, so
        that a failure part-way cannot add them twice."""
        counts = (self.received, self.published, self.duplicates, self.seconds, self.buckets)
        self.reset()
        return counts


class _Flush(Collector):
    """Registered first in the registry, so that any collection sees the counts of the hot path."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush

    def collect(self) -> Iterable[Metric]:
        self._flush()
        return ()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self._watched: list[tuple[Gauge, Callable[[], float]]] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._intake: dict[tuple[str, str], _Intake] = {}
        self.registry.register(_Flush(self.flush))
        labels = ["eventsource", "event"]
        self._received = Counter("hookgate_events_received_total", "Requests a provider accepted",
                                 labels, registry=self.registry)
        self._rejected = Counter("hookgate_events_rejected_total", "Requests refused, by HTTP status",
                                 [*labels, "status"], registry=self.registry)
        self._published = Counter("hookgate_events_published_total", "Events acknowledged by JetStream",
                                  [*labels, "duplicate"], registry=self.registry)
        self._latency = Histogram("hookgate_event_intake_seconds", "Request received to JetStream ack",
                                  labels, registry=self.registry, buckets=LATENCY_BUCKETS)
        trigger = ["sensor", "trigger"]
        self._fired = Counter("hookgate_triggers_fired_total", "Trigger actions that succeeded",
                              trigger, registry=self.registry)
        self._failed = Counter("hookgate_triggers_failed_total", "Trigger actions finally given up",
                               [*trigger, "reason"], registry=self.registry)
        self._filtered = Counter("hookgate_events_discarded_total", "Events no dependency filter let through",
                                 ["sensor", "dependency"], registry=self.registry)
        self._matched = Counter("hookgate_events_matched_total", "Events a dependency let through, once handled",
                                ["sensor", "dependency"], registry=self.registry)
        # With several workers: connected only while every live worker is; spool depth summed.
        self._bus_connected = Gauge("hookgate_bus_connected", "1 while connected to NATS", registry=self.registry,
                                    multiprocess_mode="livemin")
        self._consumers = Gauge("hookgate_sensor_consuming", "1 while a sensor's consumer is reading",
                                ["sensor"], registry=self.registry)
        self._spooled = Counter("hookgate_events_spooled_total",
                                "Events answered 200 once on the spool's disk, published to JetStream later",
                                labels, registry=self.registry)
        self._spool_records = Gauge("hookgate_spool_records", "Events in the gateway's spool, waiting for JetStream",
                                    registry=self.registry, multiprocess_mode="livesum")
        self._spool_bytes = Gauge("hookgate_spool_bytes", "Bytes on disk of the events in the gateway's spool",
                                  registry=self.registry, multiprocess_mode="livesum")

    def _child(self, metric: Any, *labels: str) -> Any:
        # prometheus_client's labels() hashes and locks on every call; the per-route children are few.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _counts(self, eventsource: str, event: str) -> _Intake:
        counts = self._intake.get((eventsource, event))
        if counts is None:
            counts = self._intake[(eventsource, event)] = _Intake()
        return counts

    def received(self, eventsource: str, event: str) -> None:
        self._counts(eventsource, event).received += 1

    def rejected(self, eventsource: str, event: str, status: int) -> None:
        self._child(self._rejected, eventsource, event, str(status)).inc()

    def published(self, eventsource: str, event: str, *, duplicate: bool) -> None:
        counts = self._counts(eventsource, event)
        counts.published += 1
        counts.duplicates += duplicate

    def observe(self, eventsource: str, event: str, seconds: float) -> None:
        counts = self._counts(eventsource, event)
        counts.seconds += seconds
        counts.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if self._shared:
            try:
                self._move(eventsource, event, counts)
            except Exception:  # the delivery is stored and answered whatever the metrics do
                log.exception("could not write the intake metrics")

    def flush(self) -> None:
        """Move the intake counts into the Prometheus metrics, before any collection.

        A worker of a multiprocess gateway also moves them as each delivery is answered (observe())
        and every second (refresh()): the scrape may be answered by another worker, which reads this
        one's values from the shared files."""
        for (eventsource, event), counts in self._intake.items():
            self._move(eventsource, event, counts)

    def _move(self, eventsource: str, event: str, counts: _Intake) -> None:
        """Add one event's counts to its Prometheus children."""
        received, published, duplicates, seconds, buckets = counts.take()
        if received:
            self._child(self._received, eventsource, event).inc(received)
        if published > duplicates:
            self._child(self._published, eventsource, event, "false").inc(published - duplicates)
        if duplicates:
            self._child(self._published, eventsource, event, "true").inc(duplicates)
        if any(buckets):
            # observe() n times would cost what counting saved. A labelled histogram child keeps a
            # value per bucket (non-cumulative: observe() adds to the first bucket that fits) and one
            # for the sum: add to those. tests/gateway/test_metrics.py compares the result with observe().
            child = self._child(self._latency, eventsource, event)
            child._sum.inc(seconds)
            for value, n in zip(child._buckets, buckets, strict=True):
                if n:
                    value.inc(n)

    def fired(self, sensor: str, trigger: str) -> None:
        self._child(self._fired, sensor, trigger).inc()

    def failed(self, sensor: str, trigger: str, reason: str) -> None:
        self._child(self._failed, sensor, trigger, reason).inc()

    def discarded(self, sensor: str, dependency: str) -> None:
        self._child(self._filtered, sensor, dependency).inc()

    def matched(self, sensor: str, dependency: str) -> None:
        self._child(self._matched, sensor, dependency).inc()

    def consuming(self, sensor: str, on: bool) -> None:
        self._child(self._consumers, sensor).set(1 if on else 0)

    def spooled(self, eventsource: str, event: str) -> None:
        self._child(self._spooled, eventsource, event).inc()

    def watch_spool(self, depth: Callable[[], tuple[int, int]]) -> None:
        """Read the spool's (events, bytes) at scrape time, so the hot path never updates a gauge."""
        self._watch(self._spool_records, lambda: depth()[0])
        self._watch(self._spool_bytes, lambda: depth()[1])

    def watch_bus(self, connected: Callable[[], bool]) -> None:
        self._watch(self._bus_connected, lambda: 1.0 if connected() else 0.0)

    def _watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        if self._shared:
            self._watched.append((gauge, read))  # files hold values, not functions: see refresh()
        else:
            gauge.set_function(read)

    def refresh(self) -> None:
        """Write the intake counts and the watched gauges' current values (multiprocess mode; a worker
        calls this every second)."""
        self.flush()
        for gauge, read in self._watched:
            gauge.set(read())

    def render(self) -> tuple[bytes, str]:
        if not self._shared:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        self.refresh()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._shared)
        return generate_latest(registry), CONTENT_TYPE_LATEST
