"""The intake counts kept as plain integers reach Prometheus exactly as observe() and inc() would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from gateway.metrics import LATENCY_BUCKETS, Metrics

NAME = "hookgate_event_intake_seconds"
LABELS = {"eventsource": "github", "event": "ci"}


def reference(values: list[float]) -> CollectorRegistry:
    registry = CollectorRegistry()
    hist = Histogram(NAME, "reference", ["eventsource", "event"], registry=registry, buckets=LATENCY_BUCKETS)
    for v in values:
        hist.labels(**LABELS).observe(v)
    return registry


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for m in registry.collect() if m.name == NAME
            for s in m.samples if not s.name.endswith("_created")}


def test_latency_buckets_sum_and_count_match_observe_including_the_bounds() -> None:
    rng = random.Random(6)
    # Every bound itself (a value equal to a bound belongs to that bucket), around each, and beyond the last.
    values = [*LATENCY_BUCKETS, *(b * 1.0001 for b in LATENCY_BUCKETS), 0.0, 7.5]
    values += [rng.uniform(0, 3) for _ in range(500)]
    metrics = Metrics()
    for v in values[:300]:
        metrics.observe("github", "ci", v)
    metrics.flush()  # a scrape in between: the counts since then are added, not lost or doubled
    for v in values[300:]:
        metrics.observe("github", "ci", v)
    got, want = samples(metrics.registry), samples(reference(values))
    assert got.keys() == want.keys() and len(got) == len(LATENCY_BUCKETS) + 3  # buckets, +Inf, count, sum
    for key in want:
        assert abs(got[key] - want[key]) < 1e-9, key


def test_counters_are_seen_by_any_collection_of_the_registry() -> None:
    metrics = Metrics()
    for _ in range(5):
        metrics.received("github", "ci")
    metrics.published("github", "ci", duplicate=False)
    metrics.published("github", "ci", duplicate=True)
    metrics.published("github", "ci", duplicate=False)
    read = metrics.registry.get_sample_value
    assert read("hookgate_events_received_total", LABELS) == 5
    assert read("hookgate_events_published_total", {**LABELS, "duplicate": "false"}) == 2
    assert read("hookgate_events_published_total", {**LABELS, "duplicate": "true"}) == 1
    metrics.received("github", "ci")
    body, _ = metrics.render()
    assert b'hookgate_events_received_total{event="ci",eventsource="github"} 6.0' in body
