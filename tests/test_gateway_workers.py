"""`hookgate gateway --workers N` over real processes: N workers on one port, one stream, one set of
metrics, stopped together, and no spooled event stranded when the number of workers changes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from gateway.envelope import CloudEvent
from gateway.spool import SpoolLog
from hookgate.workers import spool_dirs
from tests.conftest import HookgateProcess, fixture_bytes, wait_for
from tests.test_spool_outage import Setup, deliver, metric, stored, stream_exists


def workers_of(proc: HookgateProcess) -> list[int]:
    path = Path(f"/proc/{proc.proc.pid}/task/{proc.proc.pid}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(setup: Setup, workers: int) -> HookgateProcess:
    args = ["gateway", "-f", str(setup.folder), "--nats", setup.nats.url, "--host", "127.0.0.1",
            "--spool-dir", str(setup.spool), "--workers", str(workers)]
    proc: HookgateProcess = setup._start(args, cwd=setup.cwd)
    proc.wait_line("ready", timeout=30)
    return proc


@pytest.fixture
def setup(tmp_path: Path, hookgate_process: Any) -> Any:
    s = Setup(tmp_path, hookgate_process)
    s.nats.start()
    yield s
    s.nats.stop()


def test_two_workers_share_the_port_and_store_every_delivery_once(setup: Setup) -> None:
    gateway = start(setup, 2)
    assert len(workers_of(gateway)) == 2
    assert sum(line.startswith("listening: ") for line in gateway.lines) == 1  # said once, not per worker
    body = fixture_bytes("github", "push.1.json")
    ids = [f"w-{i:03d}" for i in range(120)]
    # urllib opens a connection per request: the kernel spreads them over both workers.
    assert [deliver(f"{setup.base}/push", body, d) for d in ids] == [200] * len(ids)
    count, stored_ids = stored(setup.nats.url)
    assert count == len(ids)
    assert sorted(stored_ids) == ids
    # Whichever worker answers the scrape counts every worker's events.
    for _ in range(6):
        assert metric(setup.base, 'hookgate_events_published_total{duplicate="false",event="push",'
                                  'eventsource="github"}') == len(ids)
        assert metric(setup.base, "hookgate_bus_connected") == 1


def test_sigterm_stops_every_worker(setup: Setup) -> None:
    gateway = start(setup, 2)
    children = workers_of(gateway)
    assert len(children) == 2
    assert gateway.stop(signal.SIGTERM) == 0
    assert not any(alive(pid) for pid in children)


def test_a_worker_that_dies_stops_the_others_and_the_gateway_exits_1(setup: Setup) -> None:
    gateway = start(setup, 2)
    first, second = workers_of(gateway)
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: gateway.proc.poll() is not None, timeout=40, what="the supervisor to stop")
    assert gateway.proc.returncode == 1
    assert not alive(first)
    assert any("gateway worker 1 exited" in line for line in gateway.stderr)


def test_events_spooled_by_a_run_with_more_workers_are_drained_by_a_run_with_fewer(setup: Setup) -> None:
    # What worker 3 of a 4-worker run kept on disk while NATS was down, then the gateway restarted with 2.
    leftover = setup.spool / "worker-3"
    log = SpoolLog.open(leftover)
    ids = [f"left-{i:02d}" for i in range(30)]
    events = [CloudEvent(id=d, source="github", subject="push", type="github", data={"body": {"n": i}})
              for i, d in enumerate(ids)]
    log.append_many([("hookgate.default.github.push", f"default/github/push/{e.id}", e.to_json()) for e in events])
    log.close()
    assert list(leftover.glob("*.seg"))

    start(setup, 2)
    wait_for(lambda: stream_exists(setup.nats.url) and stored(setup.nats.url)[0] == len(ids), timeout=60,
             what="the leftover spool to be drained")
    assert stored(setup.nats.url)[1] == ids
    wait_for(lambda: not list(leftover.glob("*.seg")), timeout=15, what="the drained segments to go")


@pytest.mark.parametrize(("worker", "workers", "own", "drains"), [
    (0, 1, "", ["worker-1", "worker-2", "worker-3"]),
    (0, 2, "", ["worker-2"]),
    (1, 2, "worker-1", ["worker-3"]),
    (1, 4, "worker-1", []),
    (3, 4, "worker-3", []),
])
def test_each_worker_has_a_spool_and_drains_the_leftovers_assigned_to_it(
        tmp_path: Path, worker: int, workers: int, own: str, drains: list[str]) -> None:
    for name in ("worker-1", "worker-2", "worker-3", "worker-x", "lock"):
        (tmp_path / name).mkdir()
    folder, orphans = spool_dirs(tmp_path, worker, workers)
    assert folder == tmp_path / own if own else folder == tmp_path
    assert orphans == [tmp_path / d for d in drains]
