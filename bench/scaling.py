"""Sensor scaling: 1, 10, 100, 1,000 Sensors loaded in one `hookgate sensor` process, one of them matching.

    .venv/bin/python bench/scaling.py [--sensors 1,10,100,1000] [--events 3000]

Sensor i depends on (eventSourceName `es-<i>`, eventName `ci`), so each reads its own subject
`hookgate.default.es-<i>.ci`; only sensor 0's subject gets events, and its filters (push to main)
pass them, so each event submits one Workflow (dry-run into a directory). Events are CloudEvents
published straight to JetStream as the README's bus contract says, which leaves the gateway out.

For each N, on a fresh nats-server: start the sensor process (its durable consumers are created:
the startup time), let it idle (CPU used while idle over --idle-window, long enough for every idle
Sensor to renew its pull request twice; then RSS at rest), stop it, publish --events events,
start it again and time how long sensor 0's consumer takes to have every event acknowledged
(JetStream consumer info, polled every 20 ms; from the first acknowledged event to the last).
Cost per event should not depend on N: routing is by subject, one consumer per Sensor.
`ms/event` is wall time (what the target is about; it moves with whatever else the machine runs);
`CPU ms/event` is the sensor process's CPU from ready to the last ack over the events, so it also
carries what the idle Sensors cost meanwhile (their pull requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DOCS,
    EXAMPLES,
    ROOT,
    Service,
    exit_on_sigterm,
    free_port,
    hookgate_argv,
    load_average,
    machine,
    nats_server,
    push_payload,
    render_profile,
    run_id,
    save_chart,
    table,
    verdict,
    workdir,
)

STREAM = "HOOKGATE"


@dataclass
class Result:
    sensors: int
    startup: float  # seconds from process start to `ready` (every consumer created)
    restart: float
    rest_rss: float
    idle_cpu: float  # % of one core while idle
    events: int
    acked: int
    processed: int  # events acked between the first and the last poll, over `seconds`
    seconds: float
    peak_rss: float
    after_rss: float
    workflows: int
    cpu_ms: float  # sensor process CPU from ready to the last ack, per event acked

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0

    @property
    def ms_per_event(self) -> float:
        return self.seconds * 1000 / self.processed if self.processed else float("nan")


def sensors_yaml(n: int) -> str:
    """N Sensors like examples/github's push trigger, each on its own (eventSourceName, eventName)."""
    docs = []
    for i in range(n):
        docs.append(f"""\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: scale-{i:04d}
  namespace: default
spec:
  dependencies:
    - name: push
      eventSourceName: es-{i:04d}
      eventName: ci
      filters:
        data:
          - path: headers.X-Github-Event
            type: string
            value: ["push"]
          - path: body.ref
            type: string
            value: ["^refs/heads/main$"]
  triggers:
    - template:
        name: push-ci
        conditions: push
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: scale-{i:04d}-
              spec:
                arguments:
                  parameters:
                    - name: repo
                    - name: revision
                workflowTemplateRef:
                  name: github-ci
          parameters:
            - src:
                dependencyName: push
                dataKey: body.repository.full_name
              dest: spec.arguments.parameters.0.value
            - src:
                dependencyName: push
                dataKey: body.after
              dest: spec.arguments.parameters.1.value
""")
    return "---\n".join(docs)


def cloudevent(event_id: str, body: dict[str, Any]) -> bytes:
    """A GitHub push as the gateway would publish it (bus contract: CloudEvents 1.0, structured)."""
    data = {"headers": {"Content-Type": ["application/json"], "X-Github-Event": ["push"],
                        "X-Github-Delivery": [event_id], "X-Hub-Signature-256": ["*** masked ***"]},
            "body": {**body, "X-GitHub-Event": "push", "X-GitHub-Delivery": event_id}}
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "es-0000", "subject": "ci", "type": "github",
                       "datacontenttype": "application/json", "time": datetime.now(UTC).isoformat(),
                       "data": data}, separators=(",", ":")).encode()


async def publish(url: str, count: int, body: dict[str, Any], run: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30)
        subject = "hookgate.default.es-0000.ci"
        for start in range(0, count, 256):
            await asyncio.gather(*(js.publish(subject, cloudevent(f"{run}-{i}", body), stream=STREAM,
                                              headers={"Nats-Msg-Id": f"{run}-{i}"})
                                   for i in range(start, min(count, start + 256))))
    finally:
        await nc.close()


async def wait_acked(url: str, consumer: str, count: int, timeout: float) -> tuple[int, int, float]:
    """Poll the consumer until `count` messages are acked.

    Returns (acked in all, acked after the first poll that saw any, seconds between that poll and
    the one that saw the last ack): the rate is measured over the second count and the seconds.
    """
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=5)
        first_t: float | None = None
        first_n = 0
        acked = 0
        last_t = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = await js.consumer_info(STREAM, consumer)
            now = time.monotonic()
            acked = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
            if acked and first_t is None:
                first_t, first_n = now, acked
            if acked > (first_n if first_t is not None else 0) or acked >= count:
                last_t = now
            if acked >= count and not info.num_ack_pending and not info.num_pending:
                break
            await asyncio.sleep(0.02)
        if first_t is None:
            return 0, 0, 0.0
        return acked, acked - first_n, max(1e-9, last_t - first_t)
    finally:
        await nc.close()


def measure(n: int, work: Path, args: argparse.Namespace, body: dict[str, Any]) -> Result:
    here = work / f"n{n}"
    here.mkdir()
    manifest = here / "sensors.yaml"
    manifest.write_text(sensors_yaml(n))
    out = here / "out"
    with nats_server(here) as nats:
        argv = ["sensor", "-f", str(manifest), "-f", str(EXAMPLES / "workflowtemplate.yaml"), "--nats", nats.url,
                "--dry-run", str(out), "--metrics-port", str(free_port()), "--host", "127.0.0.1"]
        first = Service("sensor-setup", hookgate_argv(*argv), log_dir=here)
        with first.start(timeout=args.start_timeout):
            startup = first.ready_after
            time.sleep(args.idle)  # settle (first fetches, imports done) before measuring rest
            cpu0, t0 = first.cpu(), time.monotonic()
            time.sleep(args.idle_window)
            idle_cpu = (first.cpu() - cpu0) / (time.monotonic() - t0) * 100
            rest = first.rss_mb()  # after the idle Sensors' pull requests expired and were renewed
        run = run_id(f"n{n}")
        asyncio.run(publish(nats.url, args.events, body, run))
        profile = args.profile / f"scaling-{n}.pyisession" if args.profile else None
        second = Service("sensor", hookgate_argv(*argv, profile=profile), log_dir=here)
        with second.start(timeout=args.start_timeout):
            cpu0 = second.cpu()
            acked, processed, seconds = asyncio.run(wait_acked(nats.url, "sensor_default_scale-0000", args.events,
                                                               timeout=args.timeout))
            cpu_ms = (second.cpu() - cpu0) * 1000 / max(1, acked)
            peak, after = second.peak_rss_mb(), second.rss_mb()
        if profile is not None:
            render_profile(profile)
    workflows = sum(1 for _ in out.glob("*.yaml")) if out.exists() else 0
    return Result(sensors=n, startup=startup, restart=second.ready_after, rest_rss=rest, idle_cpu=idle_cpu,
                  events=args.events, acked=acked, processed=processed, seconds=seconds, peak_rss=peak, after_rss=after,
                  workflows=workflows, cpu_ms=cpu_ms)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sensors", default="1,10,100,1000")
    p.add_argument("--events", type=int, default=3000, help="events published for the matching sensor")
    p.add_argument("--idle", type=float, default=2.0, help="seconds to settle before measuring idle CPU")
    p.add_argument("--idle-window", type=float, default=12.0,
                   help="seconds to measure idle CPU over, then RSS at rest (an idle Sensor renews its pull "
                        "request every 5 s: sensors.runner.FETCH_WAIT)")
    p.add_argument("--timeout", type=float, default=120.0, help="give up processing after this long")
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--size", type=int, default=3072, help="push body size in bytes")
    p.add_argument("--profile", type=Path, metavar="DIR", help="run the measured sensor under pyinstrument")
    p.add_argument("--chart", type=Path, default=DOCS / "bench-scaling.png")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    exit_on_sigterm()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    counts = [int(x) for x in args.sensors.split(",") if x]
    body = json.loads(push_payload(args.size))
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"{args.events} events for 1 matching Sensor, {args.size} B push bodies, dry-run Workflows", flush=True)
    results: list[Result] = []
    with workdir(args.keep) as work:
        for n in counts:
            print(f"  {n} sensors ...", end="", flush=True)
            r = measure(n, work, args, body)
            results.append(r)
            print(f" startup {r.startup:.1f} s, {r.rate:,.0f} events/s, RSS rest {r.rest_rss:.0f} MB", flush=True)
    print(f"load average after: {load_average()}")
    report(results, args)
    return 0


def report(results: list[Result], args: argparse.Namespace) -> None:
    base = next((r for r in results if r.sensors == 1), results[0] if results else None)
    print()
    print(table(["sensors loaded", "matching", "startup s", "RSS rest MB", "idle CPU %", "events/s", "ms/event",
                 "x 1 sensor", "CPU ms/event", "CPU x 1 sensor", "peak RSS MB", "Workflows"],
                [[r.sensors, 1, r.startup, r.rest_rss, r.idle_cpu, r.rate, r.ms_per_event,
                  r.ms_per_event / base.ms_per_event if base else float("nan"), r.cpu_ms,
                  r.cpu_ms / base.cpu_ms if base and base.cpu_ms else float("nan"), r.peak_rss,
                  f"{r.workflows}/{r.events}"] for r in results]))
    print()
    for r in results:
        if base is not None and r is not base:
            x = r.ms_per_event / base.ms_per_event
            c = r.cpu_ms / base.cpu_ms if base.cpu_ms else float("nan")
            print(f"- {r.sensors} sensors: time per event {x:.2f} x that of 1 sensor (target <= 1.5): "
                  f"{verdict(x <= 1.5)}; CPU per event {c:.2f} x")
        print(f"- {r.sensors} sensors: RSS at rest {r.rest_rss:.0f} MB (target <= 80): {verdict(r.rest_rss <= 80)}; "
              f"peak while processing {r.peak_rss:.0f} MB")
        if r.acked < r.events or r.workflows != r.events:
            print(f"- {r.sensors} sensors: only {r.acked} of {r.events} events acked, {r.workflows} Workflows "
                  f"within {args.timeout:g} s")
    if args.profile:
        print(f"- the measured sensor ran under pyinstrument (slower): reports in {args.profile}")
    chart = save_chart(lambda fig: draw(fig, results), args.chart)
    if chart:
        print(f"chart: {chart.relative_to(ROOT) if chart.is_relative_to(ROOT) else chart}")


def draw(fig: Any, results: list[Result]) -> None:
    xs = [r.sensors for r in results]
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(xs, [r.ms_per_event for r in results], "o-", color="#2b6cb0", label="ms per matching event")
    if results:
        ax.axhline(results[0].ms_per_event * 1.5, color="#c53030", lw=0.8, ls=":", label="target: 1.5 x 1 sensor")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Sensors loaded (1 matching)")
    ax.set_ylabel("ms per event")
    ax.legend(fontsize=7)
    ax.set_title("cost per event", fontsize=10)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(xs, [r.rest_rss for r in results], "o-", color="#38a169", label="RSS at rest")
    ax.plot(xs, [r.peak_rss for r in results], "s--", color="#dd6b20", label="peak RSS while processing")
    ax.axhline(80, color="#c53030", lw=0.8, ls=":", label="target at rest: 80 MB")
    ax.set_xscale("log")
    ax.set_xlabel("Sensors loaded")
    ax.set_ylabel("MB")
    ax.legend(fontsize=7)
    ax.set_title("sensor process memory", fontsize=10)
    fig.suptitle("One `hookgate sensor` process, N Sensors, each on its own subject", fontsize=9)


if __name__ == "__main__":
    sys.exit(main())
