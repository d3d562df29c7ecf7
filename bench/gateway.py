"""Webhook intake: hookgate's gateway beside a floor and a peer, in the same run.

    .venv/bin/python bench/gateway.py [--seconds 8] [--sizes 3072,65536] [--connections 32]

Signed GitHub push deliveries (3 KB and 64 KB bodies, each with its own X-GitHub-Delivery) over
loopback, 32 connections, closed loop, for a fixed duration, from a load generator in its own
process (`wrk -t1` when installed, else bench/common.py's asyncio generator). Measured in turn:

- hookgate: `hookgate gateway` with a real nats-server; each 200 follows a JetStream ack;
- hookgate-x2: the same with `--workers 2` (two listener processes on the port, SO_REUSEPORT);
  any `hookgate-xN` in --servers runs N workers;
- floor: bench/floor.py, an aiohttp app that checks the HMAC and publishes with ack, nothing else;
- peer: adnanh/webhook (Debian package `webhook`) with a hook that checks the same signature and
  matches `ref`, and runs no command; skipped with a note when `webhook` is not installed.

Each server gets a fresh nats-server (when it uses one) and a 1 s warm-up before the measured run.
Prints a table and the ratios, and writes docs/bench-gateway.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DOCS,
    KB,
    PYTHON,
    ROOT,
    SECRET,
    LoadResult,
    Service,
    closed_loop,
    cpu_seconds,
    exit_on_sigterm,
    free_port,
    github_eventsource_yaml,
    hookgate_argv,
    load_average,
    machine,
    nats_server,
    push_payload,
    render_profile,
    run_id,
    save_chart,
    size_label,
    table,
    verdict,
    wait_listening,
    workdir,
)

SERVERS = ("hookgate", "hookgate-x2", "floor", "peer")


def workers(server: str) -> int:
    """1 for `hookgate`, N for `hookgate-xN`, 0 for the others."""
    if server == "hookgate":
        return 1
    prefix = "hookgate-x"
    return int(server[len(prefix):]) if server.startswith(prefix) and server[len(prefix):].isdigit() else 0


@dataclass
class Row:
    size: int
    server: str
    load: LoadResult
    rest_rss: float
    peak_rss: float
    cpu_us: float  # server process CPU per request, microseconds
    nats_cpu_us: float  # nats-server CPU per request (hookgate and floor), microseconds
    round: int = 0


def peer_hooks(path: Path) -> None:
    """adnanh/webhook: the same HMAC check and a `ref` match, no command (execute-command is empty)."""
    hooks = [{
        "id": "github", "execute-command": "", "response-message": "ok", "http-methods": ["POST"],
        "trigger-rule-mismatch-http-response-code": 403,
        "trigger-rule": {"and": [
            {"match": {"type": "payload-hmac-sha256", "secret": SECRET,
                       "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}},
            {"match": {"type": "value", "value": "refs/heads/main",
                       "parameter": {"source": "payload", "name": "ref"}}},
        ]},
    }]
    path.write_text(json.dumps(hooks, indent=2))


@contextlib.contextmanager
def serve(server: str, work: Path, *, profile: Path | None) -> Any:
    """Start one server (and its nats-server); yield (url, Service, nats-server pid or None)."""
    port = free_port()
    if server == "peer":
        peer_hooks(work / "hooks.json")
        svc = Service("peer", ["webhook", "-hooks", str(work / "hooks.json"), "-ip", "127.0.0.1",
                               "-port", str(port)], log_dir=work, ready=None)
        with svc:
            wait_listening(port, service=svc)
            yield f"http://127.0.0.1:{port}/hooks/github", svc, None
        return
    with nats_server(work) as nats:
        if workers(server):
            manifest = work / "eventsource.yaml"
            manifest.write_text(github_eventsource_yaml(port))
            argv = hookgate_argv("gateway", "-f", str(manifest), "--nats", nats.url, "--host", "127.0.0.1",
                                 "--workers", str(workers(server)), profile=profile)
        else:
            argv = [PYTHON, str(ROOT / "bench" / "floor.py"), "--port", str(port), "--nats", nats.url]
        nats_proc = getattr(nats, "_proc", None)
        with Service(server, argv, log_dir=work) as svc:
            yield f"http://127.0.0.1:{port}/github", svc, nats_proc.pid if nats_proc else None


def measure(server: str, size: int, body: Path, work: Path, args: argparse.Namespace) -> Row:
    profile = None
    if args.profile and server == "hookgate":  # one process: a profile of the supervisor would say nothing
        args.profile.mkdir(parents=True, exist_ok=True)
        profile = args.profile.resolve() / f"gateway-{size // KB}k.pyisession"
    with serve(server, work, profile=profile) as (url, svc, nats_pid):
        rest = svc.rss_mb()
        if args.warmup > 0:
            closed_loop(url, body, work=work, run=run_id(f"warm-{server}"), seconds=args.warmup,
                        connections=args.connections, prefer_wrk=args.loadgen != "asyncio")
        cpu0, nats0 = svc.cpu(), cpu_seconds(nats_pid) if nats_pid else 0.0
        load = closed_loop(url, body, work=work, run=run_id(server), seconds=args.seconds,
                           connections=args.connections, prefer_wrk=args.loadgen != "asyncio")
        n = max(1, load.requests)
        cpu_us = (svc.cpu() - cpu0) / n * 1e6
        nats_us = (cpu_seconds(nats_pid) - nats0) / n * 1e6 if nats_pid else float("nan")
        peak = svc.peak_rss_mb()
    if profile is not None:
        render_profile(profile)
    return Row(size=size, server=server, load=load, rest_rss=rest, peak_rss=peak, cpu_us=cpu_us,
               nats_cpu_us=nats_us)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=8.0, help="measured duration per server and size")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every server this many times, in turn (each round starting with the next "
                        "server); report the median run and ratio")
    p.add_argument("--sizes", default="3072,65536", help="body sizes in bytes, comma-separated")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--loadgen", choices=["auto", "wrk", "asyncio"], default="auto")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="run hookgate under pyinstrument, text reports in DIR (slows it: not for the table)")
    p.add_argument("--chart", type=Path, default=DOCS / "bench-gateway.png")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    exit_on_sigterm()
    sizes = [int(s) for s in args.sizes.split(",")]
    servers = [s for s in args.servers.split(",") if s]
    notes: list[str] = []
    if "peer" in servers and shutil.which("webhook") is None:
        servers.remove("peer")
        notes.append("peer skipped: `webhook` (adnanh/webhook) is not installed (apt-get install webhook)")
    if args.loadgen == "wrk" and shutil.which("wrk") is None:
        p.error("wrk is not installed")
    tool = "wrk -t1" if args.loadgen != "asyncio" and shutil.which("wrk") else "asyncio generator"
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"load: {tool}, {args.connections} connections, {args.seconds:g} s per run after a "
          f"{args.warmup:g} s warm-up; signed GitHub push, unique X-GitHub-Delivery per request", flush=True)
    rows: list[Row] = []
    with workdir(args.keep) as work:
        for size in sizes:
            body = work / f"push-{size}.json"
            body.write_bytes(push_payload(size))
            for rnd in range(args.rounds):
                # Each round starts with the next server: the first run of a size is often the slowest
                # on this VM (memory and store first touched), and that should not fall on one server.
                for server in servers[rnd % len(servers):] + servers[:rnd % len(servers)]:
                    print(f"  {size_label(size)} {server} ...", end="", flush=True)
                    row = measure(server, size, body, work, args)
                    row.round = rnd
                    rows.append(row)
                    print(f" {row.load.rps:,.0f} req/s, p99 {row.load.p99:.1f} ms", flush=True)
    print(f"load average after: {load_average()}")
    report(rows, servers, sizes, notes, args)
    return 0


def median_runs(rows: list[Row]) -> dict[tuple[int, str], Row]:
    """Per body size and server, the run with the median req/s (the upper one of an even count)."""
    runs: dict[tuple[int, str], list[Row]] = {}
    for r in rows:
        runs.setdefault((r.size, r.server), []).append(r)
    return {key: sorted(rs, key=lambda r: r.load.rps)[len(rs) // 2] for key, rs in runs.items()}


def round_ratios(rows: list[Row], size: int, name: str, other: str, metric: str) -> list[float]:
    """hookgate's `metric` over `other`'s, round by round: servers measured in the same round are
    the closest in machine state, so each ratio pairs them."""
    by = {(r.size, r.server, r.round): r for r in rows}
    rounds = sorted({r.round for r in rows})
    pairs = [(by.get((size, name, k)), by.get((size, other, k))) for k in rounds]
    return [ratio(getattr(a.load, metric), getattr(b.load, metric)) for a, b in pairs if a and b]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(rows: list[Row], servers: list[str], sizes: list[int], notes: list[str],
           args: argparse.Namespace) -> None:
    by = median_runs(rows)
    rounds = len({r.round for r in rows})
    print()
    if rounds > 1:
        print(f"{rounds} rounds; each server's row is its median run by req/s, each ratio the median of the "
              "rounds' ratios")
    print(table(["body", "server", "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx", "errors", "RSS rest MB",
                 "peak RSS MB", "CPU us/req", "nats CPU us/req"],
                [[size_label(r.size), r.server, r.load.rps, r.load.p50, r.load.p99, r.load.max, r.load.non_2xx,
                  r.load.errors, r.rest_rss, r.peak_rss, r.cpu_us, r.nats_cpu_us]
                 for r in (by[(size, server)] for size in sizes for server in servers if (size, server) in by)]))
    ratio_rows: list[list[Any]] = []
    spread_rows: list[list[Any]] = []
    checks: list[str] = []
    for size, name in ((size, name) for size in sizes for name in servers if workers(name)):
        hg, floor, peer = by.get((size, name)), by.get((size, "floor")), by.get((size, "peer"))
        if hg is None:
            continue
        per_round = {key: round_ratios(rows, size, name, other, metric) for key, (other, metric) in {
            "rps/floor": ("floor", "rps"), "rps/peer": ("peer", "rps"),
            "p99/floor": ("floor", "p99"), "p99/peer": ("peer", "p99")}.items()}
        ratio_rows.append([size_label(size), name, *(median(v) for v in per_round.values())])
        spread_rows.append([size_label(size), name, *(" ".join(f"{x:.2f}" for x in v) or "-"
                                                      for v in per_round.values())])
        label = f"{size_label(size)} {name}"
        if floor:
            r = median(per_round["rps/floor"])
            checks.append(f"{label}: req/s /floor {r:.2f} (target >= 0.85): {verdict(r >= 0.85)}")
            q = median(per_round["p99/floor"])
            checks.append(f"{label}: p99 /floor {q:.2f} (target <= 1.5): {verdict(q <= 1.5)}")
        if peer:
            r = median(per_round["rps/peer"])
            checks.append(f"{label}: req/s /peer {r:.2f} (target >= 1.1): {verdict(r >= 1.1)}")
            q = median(per_round["p99/peer"])
            checks.append(f"{label}: p99 {hg.load.p99:.1f} ms vs peer {peer.load.p99:.1f} ms, median ratio {q:.2f} "
                          f"(target below): {verdict(q < 1)}")
        bad = sum(r.load.non_2xx + r.load.errors for r in rows if (r.size, r.server) == (size, name))
        checks.append(f"{label}: non-2xx + errors {bad}: {verdict(bad == 0)}")
        checks.append(f"{label}: RSS at rest {hg.rest_rss:.0f} MB per process (target <= 80): "
                      f"{verdict(hg.rest_rss <= 80)}; peak under load {hg.peak_rss:.0f} MB")
    headers = ["body", "hookgate", "req/s hookgate/floor", "req/s hookgate/peer", "p99 hookgate/floor",
               "p99 hookgate/peer"]
    if ratio_rows:
        print()
        print(table(headers, ratio_rows))
    if ratio_rows and rounds > 1:
        print()
        print("the same ratios, round by round:")
        print(table(headers, spread_rows))
    notes = [*notes, "non-2xx: HTTP >= 400 as wrk counts them; errors: socket errors and timeouts",
             "CPU us/req: CPU time of the server's processes (and of its nats-server) during the measured run "
             "over the requests answered; the load generator runs beside them on the same cores",
             "RSS: the largest process of the server (hookgate-xN: N workers and their supervisor)"]
    print()
    for line in [*checks, *notes]:
        print(f"- {line}")
    if args.profile:
        print(f"- hookgate ran under pyinstrument: its figures are slowed by the profiler; reports in {args.profile}")
    chart = save_chart(lambda fig: draw(fig, list(by.values()), servers, sizes), args.chart)
    if chart:
        print(f"chart: {chart.relative_to(ROOT) if chart.is_relative_to(ROOT) else chart}")


def draw(fig: Any, rows: list[Row], servers: list[str], sizes: list[int]) -> None:
    by = {(r.size, r.server): r for r in rows}
    colors = {"hookgate": "#2b6cb0", "hookgate-x2": "#63b3ed", "floor": "#718096", "peer": "#dd6b20"}
    width = 0.8 / max(1, len(servers))
    for k, (metric, title) in enumerate((("rps", "requests/s (higher is better)"),
                                         ("p99", "p99 latency, ms (lower is better)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for j, server in enumerate(servers):
            xs, ys = [], []
            for i, size in enumerate(sizes):
                row = by.get((size, server))
                if row is not None:
                    xs.append(i + (j - (len(servers) - 1) / 2) * width)
                    ys.append(row.load.rps if metric == "rps" else row.load.p99)
            bars = ax.bar(xs, ys, width, label=server, color=colors.get(server))
            ax.bar_label(bars, fmt="%.0f" if metric == "rps" else "%.1f", fontsize=7)
        ax.set_xticks(range(len(sizes)), [f"{size_label(s)} push" for s in sizes])
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("Signed GitHub webhook intake, 32 connections, loopback (200 = stored in JetStream "
                 "for hookgate and floor)", fontsize=9)


if __name__ == "__main__":
    sys.exit(main())
