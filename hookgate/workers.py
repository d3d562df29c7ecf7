"""`hookgate gateway --workers N`: N gateway processes serving the same ports.

One Python process uses one core; a gateway's work per webhook is CPU (HMAC, JSON, the publish),
so on a machine with more cores the listeners run in N processes that each bind every port with
SO_REUSEPORT, and the kernel spreads connections among them. Each worker has its own NATS
connection and, with `--spool-dir`, its own spool (see `spool_dirs`). Only worker 0 registers Git
hooks and runs `nats` EventSources, which must not run twice. Metrics are shared through
prometheus_client's multiprocess files, so any worker's /metrics counts for all of them.

This process only supervises: it relays worker 0's stdout lines, says `ready` once every worker
has, stops them all on SIGTERM or Ctrl-C, and stops the rest (exit 1) when one exits on its own,
so that whatever supervises hookgate restarts it whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from prometheus_client import multiprocess

from hookgate import eventloop

log = logging.getLogger(__name__)

#: Set by the supervisor in each worker's environment: "<index>/<count>".
WORKER_ENV = "HOOKGATE_WORKER"
STOP_TIMEOUT = 30.0  # a worker finishing its in-flight requests and closing its spool


def identity() -> tuple[int, int]:
    """(this worker's index, the number of workers); (0, 1) outside a supervisor."""
    raw = os.environ.get(WORKER_ENV, "")
    index, _, count = raw.partition("/")
    if not raw:
        return 0, 1
    return int(index), int(count)


def spool_dirs(base: str | Path, worker: int, workers: int) -> tuple[Path, list[Path]]:
    """This worker's spool folder, and the folders of workers that a previous run had and this one
    has not, which this worker drains so that nothing they kept is stranded.

    Worker 0 uses `base` itself, so a single-process gateway and worker 0 share one layout; worker
    i > 0 uses `base/worker-<i>`. A leftover `worker-<j>` (j >= workers) goes to worker j mod workers.
    """
    root = Path(base)
    own = root if worker == 0 else root / f"worker-{worker}"
    orphans: list[Path] = []
    with contextlib.suppress(OSError):
        for folder in root.glob("worker-*"):
            number = folder.name.removeprefix("worker-")
            if number.isdigit() and int(number) >= workers and int(number) % workers == worker:
                orphans.append(folder)
    return own, sorted(orphans)


def supervise(argv: list[str], workers: int) -> int:
    """Run `hookgate <argv>` as `workers` worker processes until stopped; the exit code for the CLI."""
    with tempfile.TemporaryDirectory(prefix="hookgate-metrics-") as shared:
        return eventloop.run(_supervise(argv, workers, shared))


async def _supervise(argv: list[str], count: int, shared: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": shared}
    procs: list[asyncio.subprocess.Process] = []
    relays: list[asyncio.Task[None]] = []
    failed: list[int] = []
    try:
        for i in range(count):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hookgate", *argv, env={**env, WORKER_ENV: f"{i}/{count}"},
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE))
        ready: set[int] = set()
        relays += [asyncio.create_task(_relay(i, proc, ready, count)) for i, proc in enumerate(procs)]
        exits = {asyncio.create_task(proc.wait()): i for i, proc in enumerate(procs)}
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failed += [exits[task] for task in done if task in exits]
        for i in failed:
            log.error("gateway worker %d exited with code %s; stopping the others", i, procs[i].returncode)
    finally:
        await _stop_all(procs, shared)
    await asyncio.gather(*relays, return_exceptions=True)
    return 1 if failed else 0


async def _relay(index: int, proc: asyncio.subprocess.Process, ready: set[int], count: int) -> None:
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line == "ready":
            ready.add(index)
            if len(ready) == count:
                print("ready", flush=True)
        elif index == 0:  # every worker prints the same listening lines: say them once
            print(line, flush=True)


async def _stop_all(procs: list[asyncio.subprocess.Process], shared: str) -> None:
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), STOP_TIMEOUT)
    except TimeoutError:
        for proc in procs:
            if proc.returncode is None:
                log.error("gateway worker %d did not stop within %.0f s; killing it", proc.pid, STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.gather(*(p.wait() for p in procs))
    for proc in procs:
        multiprocess.mark_process_dead(proc.pid, shared)
