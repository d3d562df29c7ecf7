"""End to end: signed webhook in → Workflow created, at fixed offered rates (open loop).

    .venv/bin/python bench/e2e.py [--rates 100,500,1000] [--seconds 5] [--sinks api,dry-run,emulator]

Processes (each its own): nats-server, `hookgate gateway`, `hookgate sensor` (examples/github: the
Sensor github-ci submits WorkflowTemplate github-ci for each push to main), the load generator, and
where the Workflows go, the sink:

- `api`: a lean Kubernetes API (bench/common.py `api`: discovery, create, get) that the sensor
  reaches through its real client path (`--kubeconfig`: the official client's configuration and
  credentials, Workflows POSTed over aiohttp by sensors/kubehttp.py);
- `dry-run`: the sensor writes each Workflow to a directory (`--dry-run DIR`);
- `emulator`: the test suite's Kubernetes API emulator (tests/kube, kmock), faithful but slow: it
  spends milliseconds of CPU per request, so it runs at low rates only (--emulator-rates) and
  measures the emulator more than hookgate.

How latency is measured: request i (X-GitHub-Delivery `<run>-<i>`) is due at t0 + i/rate; the
generator sends it then, whatever earlier requests are doing. The Workflow carries the annotation
`events.hookgate.dev/event-ids: push=<run>-<i>`, so each one is matched to its request. Its
creation time is when the API stub stored it (api sink), when this process gets the ADDED event
of a watch (emulator sink), or when inotify reports the file (dry-run sink). Latency =
creation time - due time, on the machine-wide monotonic clock. The watch and inotify add a little
delivery delay to the figure, never subtract any.

With --keep, each step also leaves `timeline-<run>.json` in the sink's work folder: for every
request, when it was due (s after the first), its webhook → Workflow latency and its HTTP latency (ms).

Then the highest rate sustained, bracketed from --sustain-start (x1.5 up while sustained, halved
while not, then bisected). A rate is not sustained when some request was not answered 2xx, some
Workflow did not appear, or the backlog (requests due minus Workflows created) grew during the
second half of the step by more than 5 % of the rate (least-squares slope), or did not drain
within 2 s of the last request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DOCS,
    EXAMPLES,
    PYTHON,
    ROOT,
    DirWatcher,
    Service,
    WatchStream,
    exit_on_sigterm,
    free_port,
    github_eventsource_yaml,
    hookgate_argv,
    load_average,
    machine,
    nats_server,
    percentile,
    push_payload,
    render_profile,
    run_id,
    run_loadgen,
    save_chart,
    size_label,
    table,
    verdict,
    workdir,
)

WORKFLOWS = "/apis/argoproj.io/v1alpha1/namespaces/default/workflows"
SINK_COLORS = {"api": "#2b6cb0", "dry-run": "#38a169", "emulator": "#dd6b20"}
_WATCH_ID = re.compile(rb'"events\.hookgate\.dev/event-ids": ?"push=([^"]+)"')
_FILE_ID = re.compile(r"events\.hookgate\.dev/event-ids: ['\"]?push=([^'\"\s]+)")


@dataclass
class Step:
    sink: str
    rate: float
    seconds: float
    sent: int
    accepted: int  # answered 2xx
    created: int
    p50: float = float("nan")
    p99: float = float("nan")
    max: float = float("nan")
    http_p99: float = float("nan")
    slope: float = 0.0  # backlog growth over the second half, events/s
    drain: float = 0.0  # seconds from the last request due to the last Workflow created
    achieved: float = 0.0  # Workflows created per second over the step
    gateway_cpu: float = 0.0  # CPU per request, microseconds
    sensor_cpu: float = 0.0  # CPU per event, microseconds
    sink_cpu: float = float("nan")  # API server (stub or emulator) CPU per Workflow, microseconds
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def sustained(self) -> bool:
        return (self.accepted == self.sent and self.created == self.sent
                and self.slope <= 0.05 * self.rate and self.drain <= 2.0)


class Pipeline:
    """nats-server + sensor (+ emulator) + gateway for one sink, and a watcher of created Workflows."""

    def __init__(self, sink: str, work: Path, stack: contextlib.ExitStack, *, profile: Path | None) -> None:
        self.sink = sink
        self.work = work / sink
        self.work.mkdir()
        self.created: dict[str, float] = {}  # delivery id → creation time seen
        nats = stack.enter_context(nats_server(self.work))
        sensor_args = ["-f", str(EXAMPLES / "sensor.yaml"), "-f", str(EXAMPLES / "workflowtemplate.yaml"),
                       "--nats", nats.url, "--metrics-port", str(free_port()), "--host", "127.0.0.1"]
        self.watch: WatchStream | DirWatcher | None = None
        self.api: Service | None = None
        self.api_url = ""
        if sink in ("api", "emulator"):
            kubeconfig = self.work / "kubeconfig"
            self.api = stack.enter_context(Service(
                sink, [PYTHON, str(ROOT / "bench" / "common.py"), sink, "--kubeconfig", str(kubeconfig),
                       "--preload", str(EXAMPLES / "workflowtemplate.yaml")], log_dir=self.work))
            self.api_url = self.api.lines[-1].split()[1]
            if sink == "emulator":
                self.watch = WatchStream(self.api_url, WORKFLOWS).start()
                stack.callback(self.watch.stop)
            sensor_args += ["--kubeconfig", str(kubeconfig)]
        else:
            out = self.work / "out"
            out.mkdir()
            self.watch = DirWatcher(out).start()
            stack.callback(self.watch.stop)
            sensor_args += ["--dry-run", str(out)]
        self.profiles = [profile / f"e2e-{sink}-{name}.pyisession" for name in ("sensor", "gateway")] \
            if profile else [None, None]
        self.sensor = Service("sensor", hookgate_argv("sensor", *sensor_args, profile=self.profiles[0]),
                              log_dir=self.work)
        stack.enter_context(self.sensor)
        port = free_port()
        manifest = self.work / "eventsource.yaml"
        manifest.write_text(github_eventsource_yaml(port))
        self.gateway = Service("gateway", hookgate_argv("gateway", "-f", str(manifest), "--nats", nats.url,
                                                        "--host", "127.0.0.1", profile=self.profiles[1]),
                               log_dir=self.work)
        stack.enter_context(self.gateway)
        self.url = f"http://127.0.0.1:{port}/github"
        self.rest_rss = {"gateway": self.gateway.rss_mb(), "sensor": self.sensor.rss_mb()}
        self._consumed = 0

    def collect(self) -> None:
        """Turn what the watcher saw since last time into delivery id → time."""
        if self.watch is None:  # the API stub timestamps each create itself
            with urllib.request.urlopen(f"{self.api_url}/bench/created?since={self._consumed}", timeout=10) as r:
                lines = r.read().decode().splitlines()
            self._consumed += len(lines)
            for line in lines:
                t, ids = json.loads(line)
                if ids.startswith("push="):
                    self.created.setdefault(ids[len("push="):], t)
            return
        seen = self.watch.seen
        end = len(seen)
        new, self._consumed = seen[self._consumed:end], end
        if isinstance(self.watch, WatchStream):
            for t, line in new:
                m = _WATCH_ID.search(line)
                if m and b'"ADDED"' in line[:40]:
                    self.created.setdefault(m.group(1).decode(), t)
            return
        assert isinstance(self.watch, DirWatcher)
        for t, name in new:
            text = ""
            for _ in range(50):  # closed after the write, so normally read in one go
                with contextlib.suppress(OSError):
                    text = (self.watch.directory / name).read_text()
                if _FILE_ID.search(text):
                    break
                time.sleep(0.001)
            m = _FILE_ID.search(text)
            if m:
                self.created.setdefault(m.group(1), t)

    def run(self, rate: float, seconds: float, body: Path, *, drain: float) -> Step:
        run = run_id(f"{self.sink[:3]}{int(rate)}")
        procs = [self.gateway, self.sensor, *([self.api] if self.api else [])]
        cpu0 = [p.cpu() for p in procs]
        r = run_loadgen("open", self.url, body, work=self.work, run=run, seconds=seconds, rate=rate)
        t0, total = float(r["t0"]), int(r["total"])
        due = [t0 + i / rate for i in range(total)]
        ok = [200 <= s < 300 for s in r["status"]]
        ids = [f"{run}-{i}" for i in range(total)]
        deadline = time.monotonic() + drain
        while True:
            self.collect()
            created = sum(1 for i in ids if i in self.created)
            if created >= sum(ok) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        cpu = [(p.cpu() - c) * 1e6 for p, c in zip(procs, cpu0, strict=True)]
        when = [self.created.get(i) for i in ids]
        lat = sorted((w - d) * 1000 for w, d in zip(when, due, strict=True) if w is not None)
        http = sorted((a - d) * 1000 for a, d, k in zip(r["done_at"], due, ok, strict=True) if k)
        step = Step(sink=self.sink, rate=rate, seconds=seconds, sent=total, accepted=sum(ok), created=len(lat),
                    latencies=lat)
        if lat:
            step.p50, step.p99, step.max = percentile(lat, 50), percentile(lat, 99), lat[-1]
        if http:
            step.http_p99 = percentile(http, 99)
        times = sorted(w for w in when if w is not None)
        if times:
            step.drain = max(0.0, times[-1] - due[-1])
            step.achieved = len(times) / max(1e-9, times[-1] - t0)
        step.slope = backlog_slope(due, times, t0, seconds)
        # Kept with --keep: per request, [due - t0 s, webhook → Workflow ms, HTTP answer ms], to see
        # whether a tail is one stall or spread over the step.
        (self.work / f"timeline-{run}.json").write_text(json.dumps(
            [[round(d - t0, 4), None if w is None else round((w - d) * 1000, 3),
              round((a - d) * 1000, 3) if k else None]
             for d, w, a, k in zip(due, when, r["done_at"], ok, strict=True)]))
        step.gateway_cpu = cpu[0] / max(1, step.accepted)
        step.sensor_cpu = cpu[1] / max(1, step.created)
        if self.api is not None:
            step.sink_cpu = cpu[2] / max(1, step.created)
        return step

    def settle(self, *, quiet: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until no Workflow has appeared for `quiet` seconds (a failed step's backlog is done)."""
        deadline = time.monotonic() + timeout
        count, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.collect()
            if len(self.created) != count:
                count, since = len(self.created), time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def stop_profiles(self) -> None:
        for svc in (self.gateway, self.sensor):
            svc.stop()
        for p in self.profiles:
            if p is not None:
                render_profile(p)


def backlog_slope(due: list[float], created: list[float], t0: float, seconds: float) -> float:
    """Least-squares slope (events/s) of due-minus-created over the second half of the step."""
    import bisect

    xs: list[float] = []
    ys: list[float] = []
    t = t0 + seconds / 2
    while t <= t0 + seconds:
        xs.append(t)
        ys.append(bisect.bisect_right(due, t) - bisect.bisect_right(created, t))
        t += 0.1
    if len(xs) < 3:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="100,500,1000", help="offered rates, events/s")
    p.add_argument("--emulator-rates", default="20,50", help="offered rates for the emulator sink (it is slow)")
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each fixed rate")
    p.add_argument("--sinks", default="api,dry-run,emulator", help="api, dry-run, emulator (see the module doc)")
    p.add_argument("--sustain-sinks", default="api,dry-run", help="sinks to search the sustained rate on")
    p.add_argument("--sustain-start", type=float, default=1000.0)
    p.add_argument("--sustain-steps", type=int, default=4, help="at most this many rates per search")
    p.add_argument("--step-seconds", type=float, default=4.0)
    p.add_argument("--drain", type=float, default=15.0, help="wait at most this long for late Workflows")
    p.add_argument("--size", type=int, default=3072, help="push body size in bytes")
    p.add_argument("--profile", type=Path, metavar="DIR", help="run gateway and sensor under pyinstrument")
    p.add_argument("--chart", type=Path, default=DOCS / "bench-e2e.png")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    exit_on_sigterm()
    rates = [float(r) for r in args.rates.split(",") if r]
    emulator_rates = [float(r) for r in args.emulator_rates.split(",") if r]
    sinks = [s for s in args.sinks.split(",") if s]
    sustain_sinks = [s for s in args.sustain_sinks.split(",") if s in sinks]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"{size_label(args.size)} signed GitHub pushes, open loop, {args.seconds:g} s per rate", flush=True)
    steps: list[Step] = []
    searches: dict[str, list[Step]] = {}
    rss: dict[str, dict[str, float]] = {}
    with workdir(args.keep) as work:
        body = work / "push.json"
        body.write_bytes(push_payload(args.size))
        for sink in sinks:
            with contextlib.ExitStack() as stack:
                pipe = Pipeline(sink, work, stack, profile=args.profile)
                pipe.run(50, 1.0, body, drain=args.drain)  # warm-up: first connections, first template read
                for rate in (emulator_rates if sink == "emulator" else rates):
                    print(f"  {sink} {rate:g}/s ...", end="", flush=True)
                    step = pipe.run(rate, args.seconds, body, drain=args.drain)
                    steps.append(step)
                    print(f" p50 {step.p50:.1f} ms, p99 {step.p99:.1f} ms, created {step.created}/{step.sent}",
                          flush=True)
                if sink in sustain_sinks:
                    searches[sink] = search(pipe, body, args)
                rss[sink] = {"gateway rest": pipe.rest_rss["gateway"], "sensor rest": pipe.rest_rss["sensor"],
                             "gateway peak": pipe.gateway.peak_rss_mb(), "sensor peak": pipe.sensor.peak_rss_mb(),
                             "gateway now": pipe.gateway.rss_mb(), "sensor now": pipe.sensor.rss_mb()}
                if args.profile:
                    pipe.stop_profiles()
    print(f"load average after: {load_average()}")
    report(steps, searches, rss, args)
    return 0


def search(pipe: Pipeline, body: Path, args: argparse.Namespace) -> list[Step]:
    """Bracket the highest sustained rate: x1.5 up from --sustain-start while sustained, halve down
    while not, then bisect between the best sustained and the lowest failed rate (25/s grid)."""
    done: list[Step] = []
    rate = args.sustain_start
    for _ in range(args.sustain_steps):
        print(f"  {pipe.sink} sustain {rate:g}/s ...", end="", flush=True)
        step = pipe.run(rate, args.step_seconds, body, drain=args.drain)
        done.append(step)
        print(f" {'sustained' if step.sustained else 'not sustained'} (created {step.created}/{step.sent}, "
              f"backlog slope {step.slope:.0f}/s, drain {step.drain:.1f} s)", flush=True)
        if not step.sustained:
            pipe.settle()  # what is left of a failed step's backlog must not count against the next
        ok = [s.rate for s in done if s.sustained]
        bad = [s.rate for s in done if not s.sustained]
        lo, hi = max(ok, default=None), min(bad, default=None)
        if hi is None:
            nxt = lo * 1.5 if lo else rate * 1.5
        elif lo is None:
            nxt = hi / 2
        else:
            nxt = (lo + hi) / 2
        nxt = max(25.0, round(nxt / 25) * 25)
        if nxt in (s.rate for s in done) or (lo is not None and hi is not None and hi - lo <= 50):
            break
        rate = nxt
    return done


def report(steps: list[Step], searches: dict[str, list[Step]], rss: dict[str, dict[str, float]],
           args: argparse.Namespace) -> None:
    print()
    print(table(["sink", "offered/s", "requests", "2xx", "Workflows", "p50 ms", "p99 ms", "max ms",
                 "HTTP p99 ms", "backlog slope/s", "gateway CPU us/ev", "sensor CPU us/ev", "API CPU us/ev"],
                [[s.sink, s.rate, s.sent, s.accepted, s.created, s.p50, s.p99, s.max, s.http_p99, s.slope,
                  s.gateway_cpu, s.sensor_cpu, s.sink_cpu] for s in steps]))
    best: dict[str, float | None] = {}
    if searches:
        print()
        rows = []
        for sink, done in searches.items():
            ok = [s.rate for s in done if s.sustained]
            best[sink] = max(ok) if ok else None
            rows += [[sink, s.rate, s.achieved, s.created, s.sent, s.p99, s.slope, s.drain,
                      "yes" if s.sustained else "no"] for s in done]
        print(table(["sink", "offered/s", "created/s", "Workflows", "requests", "p99 ms", "backlog slope/s",
                     "drain s", "sustained"], rows))
    print()
    for sink, values in rss.items():
        print(f"- RSS {sink}: " + ", ".join(f"{k} {v:.0f} MB" for k, v in values.items()))
    checks = []
    for s in steps:
        if s.rate == 500:
            checks.append(f"{s.sink}: p99 at 500/s {s.p99:.1f} ms (target <= 25 ms): {verdict(s.p99 <= 25)}")
    for sink, value in best.items():
        shown = f"{value:g}/s" if value is not None else f"below {min(x.rate for x in searches[sink]):g}/s"
        tail = "" if value is None or value < max(x.rate for x in searches[sink]) else " (search ceiling)"
        checks.append(f"{sink}: highest rate sustained {shown}{tail} (target >= 1,000/s into dry-run): "
                      f"{verdict(value is not None and value >= 1000)}")
    for sink, values in rss.items():
        for proc in ("gateway", "sensor"):
            rest = values[f"{proc} rest"]
            checks.append(f"{sink}: {proc} RSS at rest {rest:.0f} MB (target <= 80): {verdict(rest <= 80)}")
    for line in checks:
        print(f"- {line}")
    if args.profile:
        print(f"- gateway and sensor ran under pyinstrument (slower): reports in {args.profile}")
    chart = save_chart(lambda fig: draw(fig, steps, searches), args.chart)
    if chart:
        print(f"chart: {chart.relative_to(ROOT) if chart.is_relative_to(ROOT) else chart}")


def draw(fig: Any, steps: list[Step], searches: dict[str, list[Step]]) -> None:
    ax = fig.add_subplot(1, 2, 1)
    for sink, color in SINK_COLORS.items():
        mine = [s for s in steps if s.sink == sink]
        if not mine:
            continue
        xs = [s.rate for s in mine]
        ax.plot(xs, [s.p50 for s in mine], "o--", color=color, label=f"{sink} p50")
        ax.plot(xs, [s.p99 for s in mine], "s-", color=color, label=f"{sink} p99")
    ax.axhline(25, color="#c53030", lw=0.8, ls=":", label="target p99 at 500/s")
    ax.set_xlabel("offered events/s (open loop)")
    ax.set_ylabel("webhook sent → Workflow created, ms")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("latency", fontsize=10)
    ax = fig.add_subplot(1, 2, 2)
    for sink, color in SINK_COLORS.items():
        done = sorted(searches.get(sink, []), key=lambda s: s.rate)
        if not done:
            continue
        ax.plot([s.rate for s in done], [s.achieved for s in done], "-", color=color, label=sink)
        for s in done:
            ax.plot([s.rate], [s.achieved], "o" if s.sustained else "x", color=color, ms=7)
    lim = max([s.rate for d in searches.values() for s in d] or [1000])
    ax.plot([0, lim], [0, lim], color="#a0aec0", lw=0.8, ls=":", label="created = offered")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("Workflows created/s")
    ax.set_title("sustained rate (o sustained, x not)", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle("GitHub push → JetStream → sensor → Workflow, end to end", fontsize=9)


if __name__ == "__main__":
    sys.exit(main())
