"""Argo Events' retry and rate-limit arithmetic, without I/O: callers do the sleeping.

`retryStrategy` / `policy.k8s.backoff` (`Backoff{duration, factor, jitter, steps}`) follow
`pkg/shared/util/retry.go` and k8s `wait.ExponentialBackoff`:

* `steps` is the number of attempts; unset or 0 in a given Backoff means 5. No `retryStrategy`
  at all means one attempt (`delays(None) == []`).
* `duration`: an integer is nanoseconds, a string a Go duration (`"1s"`, `"1m30s"`); default 1s.
* `factor` default 1.0, `jitter` default 1 (numbers or numeric strings, as Argo's `Amount`).
* The sleep before attempt n+2 is `d_n + U(0, jitter · d_n)` with `d_n = duration · factor^n`
  (the jitter scales the current step, as `wait.Jitter` does; jitter 0 means none; factor 0 keeps
  the duration constant, as `Backoff.Step` does). A negative result sleeps 0.

`rateLimit {unit, requestsPerUnit}` is `go.uber.org/ratelimit` (v0.3, the atomic limiter) with its
default slack of 10: requests are spaced `unit / requestsPerUnit` apart, and up to 10 spacings
unused during a quiet period may be spent at once. `requestsPerUnit` <= 0 means unlimited (Go
would divide by zero).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sensors.models import Backoff, RateLimit

__all__ = ["DEFAULT_BACKOFF", "BackoffError", "RateLimiter", "ResolvedBackoff", "delays", "parse_go_duration",
           "resolve_backoff"]

#: Argo's `DefaultBackoff`, used by `policy.k8s` when it gives no backoff.
DEFAULT_BACKOFF = Backoff(duration="1s", factor="1.0", jitter="1", steps=5)
DEFAULT_STEPS = 5

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_NUMBER = r"(?:\d+\.?\d*|\.\d+)"
_GO_UNIT = r"(?:ns|us|µs|μs|ms|s|m|h)"  # "ms" before "m" and "s", so that 1ms is not 1m + "s"
_GO_DURATION = re.compile(rf"[-+]?(?:{_GO_NUMBER}{_GO_UNIT})+")
_GO_PART = re.compile(rf"({_GO_NUMBER})({_GO_UNIT})")
_UNIT_SECONDS = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}
DEFAULT_SLACK = 10


class BackoffError(ValueError):
    """A Backoff field Argo would reject; the message names the field."""


def parse_go_duration(text: str) -> float:
    """Go's `time.ParseDuration` in seconds: `1h15m30.5s`, `300ms`, `-1.5h`, `0`. ValueError otherwise."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        raise ValueError(f"not a Go duration: {text!r} (examples: 1s, 500ms, 1m30s)")
    seconds = sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_PART.findall(text))
    return -seconds if text.startswith("-") else seconds


@dataclass(frozen=True, slots=True)
class ResolvedBackoff:
    duration: float  # seconds
    factor: float
    jitter: float
    steps: int


def resolve_backoff(backoff: Backoff) -> ResolvedBackoff:
    """A Backoff with Argo's defaults filled in; BackoffError names a bad field (call at load)."""
    return ResolvedBackoff(duration=_duration(backoff.duration), factor=_amount(backoff.factor, "factor", 1.0),
                           jitter=_amount(backoff.jitter, "jitter", 1.0),
                           steps=backoff.steps if backoff.steps and backoff.steps > 0 else DEFAULT_STEPS)


def _duration(value: int | str | None) -> float:
    if value is None:
        return 1.0
    if isinstance(value, int):
        return value * 1e-9  # Argo's Int64OrString: an integer is nanoseconds
    try:
        return parse_go_duration(value)
    except ValueError as e:
        raise BackoffError(f"duration: {e}") from None


def _amount(value: float | str | None, field: str, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise BackoffError(f"{field}: not a number: {value!r}") from None


def delays(backoff: Backoff | None, *, rng: random.Random | None = None) -> list[float]:
    """The sleeps between attempts, in seconds (one fewer than the attempts)."""
    if backoff is None:
        return []
    resolved = resolve_backoff(backoff)
    uniform = (rng or random).random
    step = resolved.duration
    out: list[float] = []
    for _ in range(resolved.steps - 1):
        sleep = step + uniform() * resolved.jitter * step if resolved.jitter > 0 else step
        out.append(max(sleep, 0.0))
        if resolved.factor != 0:
            step *= resolved.factor
    return out


class RateLimiter:
    """A leaky bucket per trigger: `await wait()` before each request."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, slack: int = DEFAULT_SLACK) -> None:
        self._per_request = _UNIT_SECONDS[limit.unit] / limit.requestsPerUnit if limit.requestsPerUnit > 0 else 0.0
        self._max_slack = slack * self._per_request
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None  # when the latest permission was (or will be) issued

    def reserve(self) -> float:
        """Take the next permission now; returns how long its holder must wait before using it."""
        if self._per_request == 0:
            return 0.0
        now = self._clock()
        if self._next is None or (self._max_slack == 0 and now - self._next > self._per_request):
            issue = now
        elif self._max_slack > 0 and now - self._next > self._max_slack + self._per_request:
            issue = now - self._max_slack  # a long quiet period earns at most `slack` immediate requests
        else:
            issue = self._next + self._per_request
        self._next = issue
        return max(issue - now, 0.0)

    async def wait(self) -> None:
        # reserve() runs without awaiting, so concurrent callers get distinct, ordered slots.
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)
