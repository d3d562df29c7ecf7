"""Putting the parts together for `up`, `gateway` and `sensor`: start, report, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import logs
from gateway.bus import DEFAULT_PREFIX, DEFAULT_STREAM, Bus, StreamSettings, safe_url
from gateway.errors import BusError, BusUnavailable, ManifestError
from gateway.hooks import HookRegistrar
from gateway.metrics import Metrics
from gateway.models import SecretKeySelector
from gateway.natssource import NatsSource
from gateway.server import Gateway, Listener, build_routes, ready_all
from gateway.spool import DEFAULT_MAX_BYTES, Spool
from hookgate import workers
from hookgate.manifests import Bundle
from sensors.kube import Cluster, DryRunCluster, KubeCluster
from sensors.models import Sensor
from sensors.runner import CompiledSensor, SensorRunner, compile_sensor, consumer_name

log = logging.getLogger("hookgate")

STREAM_ANNOTATION = "hookgate.dev/stream"
PREFIX_ANNOTATION = "hookgate.dev/subject-prefix"


def say(line: str) -> None:
    """The lines of the command-line contract go to stdout, one at a time, flushed."""
    print(line, flush=True)


def stream_settings(bundle: Bundle) -> StreamSettings:
    if not bundle.eventbuses:
        return StreamSettings()
    meta = bundle.eventbuses[0].metadata
    return StreamSettings(name=meta.annotations.get(STREAM_ANNOTATION, DEFAULT_STREAM),
                          prefix=meta.annotations.get(PREFIX_ANNOTATION, DEFAULT_PREFIX))


def secret_lookup(bundle: Bundle, cluster_reader: Callable[[str, str], dict[str, str] | None] | None = None
                  ) -> Callable[[str, SecretKeySelector], str]:
    def lookup(namespace: str, selector: SecretKeySelector) -> str:
        secret = bundle.secret(namespace, selector.name)
        if secret is not None:
            value = secret.value(selector.key)
        else:
            data = cluster_reader(namespace, selector.name) if cluster_reader else None
            value = data.get(selector.key) if data is not None else None
            if data is None:
                raise ManifestError(f"Secret {namespace}/{selector.name} not found (give it with -f, or run "
                                    "with a cluster that has it)", kind="Secret", name=selector.name)
        if value is None:
            raise ManifestError(f"Secret {namespace}/{selector.name} has no key {selector.key!r}",
                                kind="Secret", name=selector.name)
        return value

    return lookup


def cluster_for(bundle: Bundle, *, kubeconfig: str | None, dry_run: str | None, default_dry_run: str | None
                ) -> Cluster:
    templates = [t.model_dump(mode="json") for t in bundle.templates]
    if dry_run:
        return DryRunCluster(dry_run, templates=templates)
    if kubeconfig:
        return KubeCluster(kubeconfig=kubeconfig, timeout=kube_timeout())
    try:
        return KubeCluster(timeout=kube_timeout())
    except Exception as e:  # no KUBECONFIG, no ~/.kube/config, not in a pod
        if default_dry_run is None:
            raise ManifestError(f"no Kubernetes cluster configured ({e}); pass --kubeconfig or --dry-run DIR") \
                from None
        say(f"no cluster configured: dry-run, writing resources to {Path(default_dry_run).resolve()}/")
        return DryRunCluster(default_dry_run, templates=templates)


def kube_timeout() -> float:
    """Seconds a Kubernetes API call may take before it counts as a temporary failure."""
    text = os.environ.get("HOOKGATE_KUBE_TIMEOUT", "10")
    try:
        value = float(text)
    except ValueError:
        raise ManifestError(f"HOOKGATE_KUBE_TIMEOUT must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise ManifestError(f"HOOKGATE_KUBE_TIMEOUT must be positive, got {text!r}")
    return value


@dataclass
class Options:
    nats_url: str
    host: str = "0.0.0.0"
    metrics_port: int | None = None
    gateway: bool = True
    spool_dir: str | None = None  # keep events on disk while NATS is down (gateway side only)
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    worker: int = 0  # this gateway worker's index, of `workers` (hookgate/workers.py)
    workers: int = 1


def compile_sensors(bundle: Bundle, cluster: Cluster, *, secrets: bool = True) -> list[CompiledSensor]:
    """Every Sensor, compiled once; an error names the file and document the Sensor came from."""
    lookup = secret_lookup(bundle) if secrets else None
    compiled = []
    consumers: dict[str, Sensor] = {}
    for sensor in bundle.sensors:
        other = consumers.setdefault(consumer_name(sensor), sensor)
        if other is not sensor:
            # `.` and `_` read alike in NATS names: two such Sensors would share one consumer and
            # each take the other's events.
            file, document = bundle.origin(sensor)
            raise ManifestError(f"its NATS consumer name {consumer_name(sensor)} is also that of Sensor "
                                f"{other.namespace}/{other.name} ({bundle.origin(other)[0]}); rename one of them",
                                file=file, document=document, path=("metadata", "name"), kind="Sensor",
                                name=sensor.name)
        try:
            compiled.append(compile_sensor(sensor, cluster=cluster, secret=lookup))
        except ManifestError as e:
            file, document = bundle.origin(sensor)
            raise ManifestError(e.message, file=file, document=document, path=e.path, kind=e.kind,
                                name=e.name) from None
    return compiled


async def serve(bundle: Bundle, cluster: Cluster, options: Options, *, sensors: Sequence[CompiledSensor] = (),
                stop: asyncio.Event | None = None) -> None:
    """Run the listeners of `bundle`'s EventSources (when options.gateway) and the given `sensors`."""
    stop = stop or _stop_on_signals()
    metrics = Metrics()
    bus = Bus(options.nats_url, stream_settings(bundle))
    spool = _spool(options, bus, metrics)
    metrics.watch_bus(lambda: bus.connected)
    async with contextlib.AsyncExitStack() as parts:
        parts.push_async_callback(cluster.close)
        parts.push_async_callback(bus.close)
        await _connect(bus, spool, waits=bool(sensors), parts=parts)
        runners = await _sensors(sensors, bus, metrics, parts)
        ready = ready_all(_intake_ready(bus, spool), *(lambda r=r: r.consuming for r in runners))
        if options.gateway:
            await _gateway(bundle, bus, metrics, ready, spool, options, parts)
            await _drain_orphans(bus, options, parts)
        if options.workers > 1:
            refresher = asyncio.create_task(_refresh(metrics), name="metrics refresh")
            parts.push_async_callback(_cancel, [refresher])
        if options.metrics_port is not None:
            side = Listener(options.metrics_port, [], bus=bus, metrics=metrics, ready=ready)
            await side.start(options.host)
            parts.push_async_callback(side.stop)
        tasks = [asyncio.create_task(r.run(), name=f"sensor {r.name}") for r in runners]
        parts.push_async_callback(_cancel, tasks)
        # Everything loaded so far lives as long as the process: keep the collector from walking it
        # again and again (full collections under load were the p99 of the benchmarks).
        gc.collect()
        gc.freeze()
        release_freed_memory()
        say("ready")
        await _until(stop, tasks)


def release_freed_memory() -> bool:
    """Hand the heap pages that start-up freed back to the OS; False where the C library cannot.

    Reading 1,000 Sensors' YAML and validating them leaves freed memory that glibc keeps for reuse:
    trimming it took the sensor's RSS at rest from 79.7-80.1 to 78.3-78.4 MB (bench/scaling.py).
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only: musl and macOS have none
    if trim is None:
        return False
    trim(0)
    return True


async def _connect(bus: Bus, spool: Spool | None, *, waits: bool, parts: contextlib.AsyncExitStack) -> None:
    # With a spool and no sensor in this process (`waits` false), the listeners can take events while
    # NATS is down: connect in the background rather than wait. Sensors need the bus first.
    if spool is not None and not waits:
        connecting = asyncio.create_task(_connect_later(bus, spool))
        parts.push_async_callback(_cancel, [connecting])
        return
    await bus.connect()
    await bus.ensure_stream()


async def _sensors(sensors: Sequence[CompiledSensor], bus: Bus, metrics: Metrics,
                   parts: contextlib.AsyncExitStack) -> list[SensorRunner]:
    runners = [SensorRunner(compiled, bus=bus, metrics=metrics) for compiled in sensors]
    parts.push_async_callback(_close_runners, runners)  # one entry, not one per Sensor: 1,000 add up
    for runner in runners:
        await runner.prepare()  # every consumer exists before any listener takes an event
    return runners


async def _close_runners(runners: list[SensorRunner]) -> None:
    for runner in reversed(runners):
        await runner.close()


async def _gateway(bundle: Bundle, bus: Bus, metrics: Metrics, ready: Callable[[], bool], spool: Spool | None,
                   options: Options, parts: contextlib.AsyncExitStack) -> None:
    secrets = secret_lookup(bundle)
    routes = await asyncio.to_thread(build_routes, bundle.eventsources, bus=bus, secret=secrets)
    hooks = await asyncio.to_thread(HookRegistrar, bundle.eventsources, secret=secrets)
    gateway = Gateway(routes, bus=bus, metrics=metrics, ready=ready, spool=spool)
    await gateway.start(options.host, reuse_port=options.workers > 1)
    parts.push_async_callback(gateway.stop)
    for line in gateway.describe(options.host):
        say(line)
    if options.worker > 0:
        return  # Git hooks and `nats` EventSources are worker 0's: once per gateway, not once per worker
    await hooks.start()  # after the listeners are bound: a Git host pings a new hook at once
    parts.push_async_callback(hooks.stop)  # before gateway.stop: hooks are deleted while we still listen
    sources = await asyncio.to_thread(NatsSource, bundle.eventsources, secret=secrets, metrics=metrics)
    await sources.start(bus, spool=spool)
    parts.push_async_callback(sources.stop)  # stopped before the gateway: last publishes still have the bus
    for line in sources.describe():
        log.info("%s", line)


def _intake_ready(bus: Bus, spool: Spool | None) -> Callable[[], bool]:
    """Ready to take events durably: the bus is up, or the spool still has room to keep them."""
    if spool is None:
        return lambda: bus.connected
    return lambda: bus.connected or spool.depth()[1] < spool.max_bytes * 0.9


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _spool(options: Options, bus: Bus, metrics: Metrics) -> Spool | None:
    if not options.spool_dir or not options.gateway:
        return None
    folder, _ = workers.spool_dirs(options.spool_dir, options.worker, options.workers)
    spool = Spool(folder, bus, max_bytes=options.spool_max_bytes)
    metrics.watch_spool(spool.depth)
    log.info("spool: %s (up to %d bytes kept while JetStream is unreachable)",
             folder.resolve(), options.spool_max_bytes)
    return spool


async def _drain_orphans(bus: Bus, options: Options, parts: contextlib.AsyncExitStack) -> None:
    """Drain the spools of workers a previous run had and this one has not (the spool only drains)."""
    if not options.spool_dir:
        return
    for folder in workers.spool_dirs(options.spool_dir, options.worker, options.workers)[1]:
        leftover = Spool(folder, bus, max_bytes=options.spool_max_bytes)
        await leftover.open()
        parts.push_async_callback(leftover.close)
        log.info("draining the spool %s left by a run with more workers", folder)


async def _refresh(metrics: Metrics) -> None:
    while True:  # gauges read from functions, written to the shared files for the other workers' scrapes
        metrics.refresh()
        await asyncio.sleep(1.0)


async def _connect_later(bus: Bus, spool: Spool) -> None:
    """Connect (nats-py retries for as long as NATS is down), make sure the stream exists, then drain."""
    connected, delay = False, 0.5
    while True:
        try:
            if not connected:
                await bus.connect()
                connected = True
            await bus.ensure_stream()
            break
        except BusUnavailable as e:  # JetStream not up yet after the server came back
            log.warning("NATS not usable yet (%s); events are spooled meanwhile", e)
        except BusError as e:  # the stream exists with other settings: publishing still works
            log.error("%s", e)
            break
        await asyncio.sleep(delay)  # back-off between attempts
        delay = min(delay * 2, 10.0)
    log.info("connected to NATS at %s", safe_url(bus.url))
    spool.wake()


async def _until(stop: asyncio.Event, tasks: list[asyncio.Task[Any]]) -> None:
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is not waiter and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr (`HOOKGATE_LOG_FORMAT=text` for a terminal), each with its event id."""
    handler = logging.StreamHandler(sys.stderr)
    text = os.environ.get("HOOKGATE_LOG_FORMAT", "json") == "text"
    handler.setFormatter(logs.TextFormatter() if text else logs.JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # celpy logs each compiled expression's generated Python at info: noise to anyone reading the log.
    for noisy in ("aiohttp.access", "kubernetes", "urllib3", "nats", "celpy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
