"""retryStrategy arithmetic (Argo's Backoff through wait.ExponentialBackoff) and the rateLimit bucket."""

from __future__ import annotations

import asyncio
import random

import pytest

from sensors.models import Backoff, RateLimit
from sensors.retry import (
    DEFAULT_BACKOFF,
    BackoffError,
    RateLimiter,
    ResolvedBackoff,
    delays,
    parse_go_duration,
    resolve_backoff,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("300ms", 0.3), ("1m30s", 90.0), ("1h15m30.5s", 4530.5), ("-1.5h", -5400.0),
    ("2us", 2e-6), ("2µs", 2e-6), ("7ns", 7e-9), ("0", 0.0), (".5s", 0.5), ("1.s", 1.0), ("+3m", 180.0),
    ("1h1ms", 3600.001),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "10", "1d", "s", ".s", "1s2", "1 s", "--1s", "1.5.5s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(("backoff", "resolved"), [
    (Backoff(), ResolvedBackoff(1.0, 1.0, 1.0, 5)),  # every default, steps 5 when unset
    (Backoff(steps=0), ResolvedBackoff(1.0, 1.0, 1.0, 5)),  # Go: steps > 0 or the default
    (Backoff(duration=2_000_000_000, steps=3), ResolvedBackoff(2.0, 1.0, 1.0, 3)),  # int = nanoseconds
    (Backoff(duration="3s", factor="2", jitter=0.1, steps=4), ResolvedBackoff(3.0, 2.0, 0.1, 4)),
    (DEFAULT_BACKOFF, ResolvedBackoff(1.0, 1.0, 1.0, 5)),
])
def test_resolve_defaults(backoff: Backoff, resolved: ResolvedBackoff) -> None:
    assert resolve_backoff(backoff) == resolved


@pytest.mark.parametrize(("backoff", "field"), [
    (Backoff(duration="soon"), "duration"), (Backoff(factor="x2"), "factor"), (Backoff(jitter="lots"), "jitter"),
])
def test_bad_backoff_names_the_field(backoff: Backoff, field: str) -> None:
    with pytest.raises(BackoffError, match=f"^{field}: "):
        resolve_backoff(backoff)


def test_no_retry_strategy_is_one_attempt() -> None:
    assert delays(None) == []


@pytest.mark.parametrize(("backoff", "expected"), [
    (Backoff(duration="1s", factor=2, jitter=0, steps=5), [1.0, 2.0, 4.0, 8.0]),
    (Backoff(duration="1s", factor=0, jitter=0, steps=3), [1.0, 1.0]),  # factor 0 keeps the duration
    (Backoff(duration="500ms", jitter=0, steps=1), []),  # one attempt, nothing to wait for
    (Backoff(duration="-1s", jitter=0, steps=2), [0.0]),  # a negative sleep returns at once
])
def test_delays_without_jitter(backoff: Backoff, expected: list[float]) -> None:
    assert delays(backoff) == pytest.approx(expected)


def test_jitter_scales_the_current_step() -> None:
    # The same seed drives the expected values: U(0, jitter * d_n) added to d_n = 1s * 3^n.
    backoff = Backoff(duration="1s", factor=3, jitter=0.5, steps=4)
    draws = random.Random(7)
    expected = [d + draws.random() * 0.5 * d for d in (1.0, 3.0, 9.0)]
    assert delays(backoff, rng=random.Random(7)) == pytest.approx(expected)


def test_default_jitter_stays_within_one_duration() -> None:
    got = delays(Backoff(duration="2s", steps=50), rng=random.Random(1))
    assert len(got) == 49
    assert all(2.0 <= d <= 4.0 for d in got)
    assert len(set(got)) > 1  # jittered, not constant


class FakeTime:
    """A clock that only moves when the limiter sleeps (or, with `frozen`, never)."""

    def __init__(self, start: float = 1000.0, *, frozen: bool = False) -> None:
        self.now = start
        self.frozen = frozen
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.frozen:
            self.now += seconds


def limiter(per_unit: int, unit: str = "Second", slack: int = 10) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    limit = RateLimit(unit=unit, requestsPerUnit=per_unit)  # type: ignore[arg-type]
    return RateLimiter(limit, clock=fake.clock, sleep=fake.sleep, slack=slack), fake


async def test_requests_are_spaced_by_unit_over_rate() -> None:
    rl, fake = limiter(2, "Minute")  # one every 30s
    for _ in range(4):
        await rl.wait()
    assert fake.sleeps == [30.0, 30.0, 30.0]


async def test_quiet_period_earns_at_most_slack_requests() -> None:
    rl, fake = limiter(1, "Second", slack=3)
    await rl.wait()
    fake.now += 100.0  # idle far longer than the slack
    for _ in range(4):
        await rl.wait()  # this one, and 3 banked spacings, go at once
    assert fake.sleeps == []
    await rl.wait()
    await rl.wait()
    assert fake.sleeps == [1.0, 1.0]


async def test_without_slack_requests_never_burst() -> None:
    rl, fake = limiter(1, "Second", slack=0)
    await rl.wait()
    fake.now += 50.0
    await rl.wait()
    await rl.wait()
    assert fake.sleeps == [1.0]


async def test_concurrent_waiters_get_distinct_slots() -> None:
    rl, fake = limiter(1, "Hour")
    fake.frozen = True  # all three ask at the same instant
    await asyncio.gather(*(rl.wait() for _ in range(3)))
    assert sorted(fake.sleeps) == [3600.0, 7200.0]


@pytest.mark.parametrize("per_unit", [0, -1])
async def test_zero_rate_is_unlimited(per_unit: int) -> None:
    rl, fake = limiter(per_unit)
    for _ in range(5):
        await rl.wait()
    assert fake.sleeps == []
