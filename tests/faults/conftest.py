"""
The fault suite's harness: one whole hookgate deployment per test, and a sender that redelivers.

* :class:`Stack` — a real nats-server (restartable on the same store and port), the Kubernetes
  API emulator (with fault injection), `hookgate gateway` and any number of `hookgate sensor`
  processes, all for the GitHub example (EventSource copied onto a free port).
* :class:`Sender` — signed GitHub push deliveries from a background thread, a bounded number at
  once; a 503 or a connection error is retried with the same delivery id, as GitHub's redelivery
  does, a bounded number of times within a deadline. It can hold back the second part of its
  deliveries until the test releases them, so that a fault lands mid-stream for certain.
* Probes: the Workflows in the emulator, the sensor's durable consumer and the stream, read over a
  separate NATS connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import yaml

from hookgate.embedded import NatsServer
from tests.conftest import EXAMPLES, HookgateProcess, free_port, github_signature, wait_for
from tests.kube.emulator import Handle, run_emulator

NAMESPACE = "default"
SENSOR = "github-ci"
TRIGGER = "push-ci"
STREAM = "HOOKGATE"
CONSUMER = f"sensor_{NAMESPACE}_{SENSOR}"  # `.` (and other subject-unsafe characters) become `_`
SECRET = "github-demo-secret"
EVENT_IDS = "events.hookgate.dev/event-ids"
GITHUB = EXAMPLES / "github"


def until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2,
          diagnose: Callable[[], str] | None = None) -> Any:
    """`wait_for`, polling gently by default: some probes list 500 objects."""
    return wait_for(predicate, timeout=timeout, what=what, interval=interval, diagnose=diagnose)


def push_body(delivery: str) -> bytes:
    sha = hashlib.sha1(delivery.encode()).hexdigest()
    return json.dumps({
        "ref": "refs/heads/main", "before": "0" * 40, "after": sha,
        "repository": {"name": "octo-repo", "full_name": "octo-org/octo-repo",
                       "owner": {"login": "octo-org", "name": "octo-org"}},
        "pusher": {"name": "octocat"}, "commits": [{"id": sha, "message": f"delivery {delivery}"}],
    }).encode()


def push_headers(delivery: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
            "User-Agent": "GitHub-Hookshot/fault-suite", "X-Hub-Signature-256": github_signature(SECRET, body)}


class Sender:
    """
    Deliver `ids` (one signed push each) to `url` from a thread, `concurrency` at a time.

    Each delivery is retried on 503 and on connection errors, with the same delivery id and a
    capped backoff, at most `attempts` times and never past `deadline` seconds from start; any
    other status ends it. Ids from index `hold_from` on wait until :meth:`release`.
    """

    def __init__(self, url: str, ids: list[str], *, concurrency: int = 16, attempts: int = 60,
                 deadline: float = 90.0, hold_from: int | None = None) -> None:
        self.url, self.ids, self.concurrency, self.attempts, self.deadline = url, ids, concurrency, attempts, deadline
        self.hold_from = len(ids) if hold_from is None else hold_from
        self.accepted: dict[str, int] = {}  # delivery id → the attempt that got 200
        self.failed: dict[str, str] = {}
        self.statuses: Counter[int | str] = Counter()  # every answer (or connection error) seen
        self._released = threading.Event()
        self._cancelled = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="sender", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> Sender:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def release(self) -> None:
        self._released.set()

    def cancel(self) -> None:
        self._cancelled = True
        self._released.set()

    @property
    def retried(self) -> int:
        """Answers other than 200 (503s and connection errors), each followed by a redelivery."""
        with self._lock:
            return sum(n for status, n in self.statuses.items() if status != 200)

    @property
    def done(self) -> int:
        return len(self.accepted) + len(self.failed)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(self.deadline + 15 if timeout is None else timeout)
        if self._thread.is_alive():
            raise AssertionError(f"sender still running: {self.summary()}")
        if self._error is not None:
            raise self._error

    def summary(self) -> str:
        with self._lock:
            statuses = dict(self.statuses)
        return (f"{len(self.accepted)}/{len(self.ids)} accepted, {len(self.failed)} failed "
                f"{dict(list(self.failed.items())[:3])}, answers {statuses}")

    async def _main(self) -> None:
        try:
            connector = aiohttp.TCPConnector(limit=self.concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                queue = iter(enumerate(self.ids))
                await asyncio.gather(*(self._worker(session, queue) for _ in range(self.concurrency)))
        except BaseException as e:  # surfaced by join()
            self._error = e

    async def _worker(self, session: aiohttp.ClientSession, queue: Iterator[tuple[int, str]]) -> None:
        for index, delivery in queue:  # one shared iterator: each id is taken by one worker
            if index >= self.hold_from and not self._released.is_set():
                left = self._started + self.deadline - time.monotonic()
                await asyncio.to_thread(self._released.wait, max(left, 0))
            await self._deliver(session, delivery)

    async def _deliver(self, session: aiohttp.ClientSession, delivery: str) -> None:
        body = push_body(delivery)
        headers = push_headers(delivery, body)
        timeout = aiohttp.ClientTimeout(total=10)
        for attempt in range(1, self.attempts + 1):
            if self._cancelled or time.monotonic() > self._started + self.deadline:
                self.failed[delivery] = f"deadline passed after {attempt - 1} attempts"
                return
            status: int | str
            try:
                async with session.post(self.url, data=body, headers=headers, timeout=timeout) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as e:
                status = type(e).__name__
            with self._lock:
                self.statuses[status] += 1
            if status == 200:
                self.accepted[delivery] = attempt
                return
            if isinstance(status, int) and status != 503:
                self.failed[delivery] = f"HTTP {status}"
                return
            await asyncio.sleep(min(0.05 * 2 ** attempt, 1.0))  # the sender's redelivery backoff
        self.failed[delivery] = f"still refused after {self.attempts} attempts"


async def _bus_state(url: str) -> tuple[Any, Any]:
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=2)
        return await js.consumer_info(STREAM, CONSUMER), await js.stream_info(STREAM)
    finally:
        await nc.close()


class Stack:
    """The GitHub example deployed as separate processes around one NATS and one emulator."""

    def __init__(self, tmp: Path, start: Callable[..., HookgateProcess], kube: Handle) -> None:
        self.tmp, self._start, self.kube = tmp, start, kube
        self.kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
        self.nats = NatsServer(tmp / "nats")
        self.nats.start()
        self.port = free_port()
        self.eventsource = tmp / "eventsource.yaml"
        self.eventsource.write_text((GITHUB / "eventsource.yaml").read_text().replace('"13000"', f'"{self.port}"'))
        self.url = f"http://127.0.0.1:{self.port}/github"
        self.gateway: HookgateProcess | None = None
        self.sensors: list[HookgateProcess] = []
        self.metrics_ports: dict[int, int] = {}  # id(sensor process) → its --metrics-port
        self.senders: list[Sender] = []
        self._t0 = time.monotonic()
        self.timeline: list[str] = []  # what happened when, printed by the tests (pytest -rP shows it)

    def mark(self, what: str) -> None:
        self.timeline.append(f"{time.monotonic() - self._t0:6.1f}s {what}")

    # --- processes ---------------------------------------------------------------------------

    def start_sensor(self, env: dict[str, str] | None = None) -> HookgateProcess:
        port = free_port()
        proc = self._start(["sensor", "-f", str(GITHUB / "sensor.yaml"), "--nats", self.nats.url,
                            "--kubeconfig", str(self.kubeconfig), "--metrics-port", str(port),
                            "--host", "127.0.0.1"], cwd=self.tmp,
                           env={"HOOKGATE_ACK_WAIT": "5", **(env or {})})  # a killed replica's messages return in 5 s
        self.sensors.append(proc)
        self.metrics_ports[id(proc)] = port
        proc.wait_line("ready", timeout=30)
        return proc

    def start_gateway(self) -> HookgateProcess:
        self.gateway = self._start(["gateway", "-f", str(self.eventsource), "-f", str(GITHUB / "secret.yaml"),
                                    "--nats", self.nats.url, "--host", "127.0.0.1"], cwd=self.tmp)
        self.gateway.wait_line("ready", timeout=30)
        return self.gateway

    def up(self, sensors: int = 1, *, sensor_env: dict[str, str] | None = None) -> None:
        """Sensors first: a new consumer starts with the events published after it exists."""
        for _ in range(sensors):
            self.start_sensor(sensor_env)
        self.start_gateway()

    def restart_nats(self, *, down: Callable[[], None], kill: bool = False) -> None:
        """Stop nats-server (SIGTERM, or SIGKILL), run `down` while it is stopped, start it again on the
        same store and port."""
        if kill:
            self.nats.kill()
        else:
            self.nats.stop()
        try:
            down()
        finally:
            self.nats = NatsServer(self.nats.store_dir, port=self.nats.port)
            self.nats.start()

    def stop_processes(self, timeout: float = 15.0) -> dict[str, tuple[int, float]]:
        """SIGTERM every live process; what each answered: (exit code, seconds to exit)."""
        result = {}
        for name, proc in [("gateway", self.gateway), *((f"sensor-{i}", s) for i, s in enumerate(self.sensors))]:
            if proc is None or proc.proc.poll() is not None:
                continue
            started = time.monotonic()
            code = proc.stop(signal.SIGTERM, timeout=timeout)
            result[name] = (code, round(time.monotonic() - started, 1))
        return result

    def send(self, ids: list[str], **options: Any) -> Sender:
        sender = Sender(self.url, ids, **options)
        self.senders.append(sender)
        return sender.start()

    # --- probes ------------------------------------------------------------------------------

    def workflows(self) -> list[dict[str, Any]]:
        return self.kube.objects("argoproj.io", "v1alpha1", "workflows", NAMESPACE)

    def count(self) -> int:
        return len(self.workflows())

    def bus(self) -> tuple[Any, Any]:
        """(consumer info, stream info) of the sensor's durable consumer, over a connection of our own."""
        return asyncio.run(_bus_state(self.nats.url))

    def settled(self) -> bool:
        """Every message of the sensor's consumer delivered and acked: nothing pending, nothing in flight."""
        try:
            consumer, _ = self.bus()
        except Exception:  # NATS restarting: not settled yet
            return False
        return consumer.num_pending == 0 and consumer.num_ack_pending == 0

    def metrics(self, sensor: HookgateProcess) -> str:
        port = self.metrics_ports[id(sensor)]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def stderr(self) -> list[str]:
        return [line for proc in self.sensors for line in proc.stderr]

    def diagnose(self) -> str:
        lines = [*self.timeline, f"workflows: {self.count()}"]
        with contextlib.suppress(Exception):
            consumer, stream = self.bus()
            lines.append(f"consumer: pending={consumer.num_pending} ack_pending={consumer.num_ack_pending} "
                         f"redelivered={consumer.num_redelivered} delivered={consumer.delivered} "
                         f"ack_floor={consumer.ack_floor}; stream messages={stream.state.messages}")
        lines += [f"sender: {s.summary()}" for s in self.senders]
        for i, proc in enumerate(self.sensors):
            lines.append(f"--- sensor-{i} (exit {proc.proc.poll()}) stderr tail:")
            lines += proc.stderr[-15:]
        if self.gateway is not None:
            lines.append(f"--- gateway (exit {self.gateway.proc.poll()}) stderr tail:")
            lines += self.gateway.stderr[-8:]
        return "\n".join(lines)

    def close(self) -> None:
        for sender in self.senders:
            sender.cancel()
        self.stop_processes(timeout=10)
        self.nats.stop()
        for sender in self.senders:
            with contextlib.suppress(AssertionError):
                sender.join(timeout=15)


def templates() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((GITHUB / "workflowtemplate.yaml").read_text()) if d]


@pytest.fixture
def make_stack(tmp_path: Path, hookgate_process: Any) -> Iterator[Callable[..., Stack]]:
    """`make_stack(with_templates=True)`: NATS and the emulator running; call `.up()` to start hookgate."""
    with contextlib.ExitStack() as exits:
        def make(*, with_templates: bool = True) -> Stack:
            # kmock's request log would make each request cost O(requests so far): keep none.
            kube = exits.enter_context(run_emulator(templates() if with_templates else [], request_history=0))
            stack = Stack(tmp_path, hookgate_process, kube)
            exits.callback(stack.close)
            return stack

        yield make
