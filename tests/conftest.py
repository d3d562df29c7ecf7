"""Shared fixtures: a real nats-server per test, signed fixture payloads, hookgate as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.bus import Bus
from hookgate.embedded import NatsServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
SEED = SHARED / "examples" / "seed"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    """hookgate's bus, connected to `nats_server`, with its stream."""
    b = Bus(nats_server.url)
    await b.connect()
    try:
        await b.ensure_stream()
        yield b
    finally:
        await b.close()


@contextlib.asynccontextmanager
async def serving(app: web.Application | web.Server, *, ssl_context: ssl.SSLContext | None = None,
                  port: int = 0) -> AsyncIterator[int]:
    """`app` on a loopback port (free unless given; HTTPS with `ssl_context`) for the duration of the
    block; yields the port."""
    runner = web.AppRunner(app) if isinstance(app, web.Application) else web.ServerRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a test client's connection; the server may have closed it first, which is no failure."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def fixture_bytes(provider: str, name: str) -> bytes:
    path = FIXTURES / provider / name
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared fixtures sit beside the repository)")
    return path.read_bytes()


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for(predicate: Any, *, timeout: float = 10.0, what: str = "condition", interval: float = 0.02,
             diagnose: Any = None) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline, with
    `diagnose()` (if given) appended to say what the state was."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)  # polling another process's state: nothing to await


async def until(predicate: Any, *, what: str, timeout: float = 15.0) -> None:
    """`wait_for` for async tests: poll `predicate` on the loop until truthy; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class HookgateProcess:
    """`hookgate <args>` as a child process, its stdout lines collected as they come."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hookgate", *args], cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, start_new_session=True)
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_line(self, prefix: str, *, timeout: float = 20.0) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None and not any(x.startswith(prefix) for x in self.lines):
                raise AssertionError(f"hookgate exited {self.proc.returncode}:\n" + "\n".join(self.stderr[-30:]))
            return next((x for x in self.lines if x.startswith(prefix)), None)

        return str(wait_for(found, timeout=timeout, what=f"a line starting {prefix!r}"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        return int(self.proc.returncode)


@pytest.fixture
def hookgate_process() -> Iterator[Any]:
    started: list[HookgateProcess] = []

    def start(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> HookgateProcess:
        p = HookgateProcess(args, cwd=cwd, env=env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


__all__ = ["EXAMPLES", "SEED", "fixture_bytes", "free_port", "github_signature", "wait_for"]
