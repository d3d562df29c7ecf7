"""Putting the parts together for `up`, `gateway` and `sensor`: start, report, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.bus import DEFAULT_PREFIX, DEFAULT_STREAM, Bus, StreamSettings
from gateway.errors import ManifestError
from gateway.metrics import Metrics
from gateway.models import SecretKeySelector
from gateway.server import Gateway, Listener, build_routes, ready_all
from hookgate.manifests import Bundle
from sensors.kube import Cluster, DryRunCluster, KubeCluster
from sensors.runner import SensorRunner, compile_sensor

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
        return KubeCluster(kubeconfig=kubeconfig)
    try:
        return KubeCluster()
    except Exception as e:  # no KUBECONFIG, no ~/.kube/config, not in a pod
        if default_dry_run is None:
            raise ManifestError(f"no Kubernetes cluster configured ({e}); pass --kubeconfig or --dry-run DIR") \
                from None
        say(f"no cluster configured: dry-run, writing resources to {Path(default_dry_run).resolve()}/")
        return DryRunCluster(default_dry_run, templates=templates)


@dataclass
class Options:
    nats_url: str
    host: str = "0.0.0.0"
    metrics_port: int | None = None
    gateway: bool = True
    sensors: bool = True


async def serve(bundle: Bundle, cluster: Cluster, options: Options, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_on_signals()
    metrics = Metrics()
    bus = Bus(options.nats_url, stream_settings(bundle))
    await bus.connect()
    runners: list[SensorRunner] = []
    gateway: Gateway | None = None
    side: Listener | None = None
    tasks: list[asyncio.Task[Any]] = []
    try:
        await bus.ensure_stream()
        if options.sensors:
            runners = [SensorRunner(compile_sensor(s, cluster=cluster), bus=bus, metrics=metrics)
                       for s in bundle.sensors]
            for runner in runners:
                await runner.prepare()
        ready = ready_all(lambda: bus.connected, *(lambda r=r: r.consuming for r in runners))
        if options.gateway:
            routes = await asyncio.to_thread(build_routes, bundle.eventsources, bus=bus, secret=secret_lookup(bundle))
            gateway = Gateway(routes, bus=bus, metrics=metrics, ready=ready)
            await gateway.start(options.host)
            for line in gateway.describe(options.host):
                say(line)
        if options.metrics_port is not None:
            side = Listener(options.metrics_port, [], bus=bus, metrics=metrics, ready=ready)
            await side.start(options.host)
        tasks = [asyncio.create_task(r.run(), name=f"sensor {r.name}") for r in runners]
        say("ready")
        await _until(stop, tasks)
    finally:
        if gateway is not None:
            await gateway.stop()
        if side is not None:
            await side.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
        await cluster.close()


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
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiohttp.access", "kubernetes", "urllib3", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
