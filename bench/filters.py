"""How fast dependency filters run: `.venv/bin/python bench/filters.py [--count N] [--seconds S]`.

Evaluates three compiled dependencies (data filters only, expr filters only, all four kinds) on a
real GitLab merge-request webhook payload, on one core, and prints evaluations per second. Each
case runs `--count` evaluations or stops after `--seconds`, whichever comes first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs from a plain checkout too

from gateway.envelope import CloudEvent  # noqa: E402
from sensors.filters import DependencyFilter, compile_dependency  # noqa: E402
from sensors.models import EventDependency  # noqa: E402

PAYLOADS = (
    ROOT.parent / "shared" / "fixtures" / "gitlab" / "merge_request.open.json",
    ROOT / "bench" / "data" / "merge_request.open.json",  # trimmed copy for checkouts without shared/
)
BATCH = 1_000

DATA_FILTERS = [
    {"path": "headers.X-Gitlab-Event", "type": "string", "value": ["Merge Request Hook"]},
    {"path": "body.object_attributes.action", "type": "string", "value": ["open", "reopen"]},
    {"path": "body.object_attributes.target_branch", "type": "string", "value": ["^(master|main)$"]},
    {"path": "body.object_attributes.iid", "type": "number", "value": ["1"], "comparator": ">="},
]
EXPR_FILTERS = [
    {"expr": 'kind == "merge_request" && action in ("open", "reopen")',
     "fields": [{"name": "kind", "path": "body.object_kind"},
                {"name": "action", "path": "body.object_attributes.action"}]},
    {"expr": 'branch =~ "^(master|main)$" && iid >= 1',
     "fields": [{"name": "branch", "path": "body.object_attributes.target_branch"},
                {"name": "iid", "path": "body.object_attributes.iid"}]},
]
CASES: dict[str, dict[str, Any]] = {
    "data only": {"data": DATA_FILTERS},
    "expr only": {"exprs": EXPR_FILTERS},
    "mixed": {"data": DATA_FILTERS[:2], "exprs": EXPR_FILTERS[1:], "context": {"type": "gitlab"},
              "time": {"start": "00:00:00", "stop": "23:59:59"}},
}


def load_event() -> tuple[CloudEvent, Path]:
    path = next(p for p in PAYLOADS if p.exists())
    data = {"headers": {"X-Gitlab-Event": ["Merge Request Hook"]}, "body": json.loads(path.read_text())}
    when = datetime.now(UTC).replace(hour=12)
    return CloudEvent(id="bench", source="gitlab", subject="mr", type="gitlab", data=data, time=when), path


def compile_case(filters: dict[str, Any]) -> DependencyFilter:
    dependency = EventDependency.model_validate(
        {"name": "bench", "eventSourceName": "gitlab", "eventName": "mr", "filters": filters})
    return compile_dependency(dependency)


def measure(compiled: DependencyFilter, event: CloudEvent, count: int, seconds: float) -> tuple[int, float]:
    """Evaluations done and time taken, in batches so that the clock is read rarely."""
    done, start = 0, time.perf_counter()
    while done < count and time.perf_counter() - start < seconds:
        for _ in range(min(BATCH, count - done)):
            compiled.evaluate(event)
        done += min(BATCH, count - done)
    return done, time.perf_counter() - start


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "one thread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="evaluations per case (default 100000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time cap per case (default 5)")
    args = parser.parse_args()
    event, source = load_event()
    print(f"payload: {source} ({source.stat().st_size} bytes); pinned to {pin_to_one_core()}")
    print(f"{'case':<10} {'filters':>7} {'matched':>7} {'evals':>8} {'evals/s':>10} {'filters/s':>10} {'µs/eval':>8}")
    for name, filters in CASES.items():
        compiled = compile_case(filters)
        verdict = compiled.evaluate(event)
        done, elapsed = measure(compiled, event, args.count, args.seconds)
        rate, per_filter = done / elapsed, done * len(verdict.filters) / elapsed
        print(f"{name:<10} {len(verdict.filters):>7} {verdict.matched!s:>7} {done:>8} {rate:>10,.0f} "
              f"{per_filter:>10,.0f} {1e6 / rate:>8.1f}")


if __name__ == "__main__":
    main()
