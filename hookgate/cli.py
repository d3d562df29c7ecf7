"""The `hookgate` command. Exit codes: 0 ok, 1 the command ran and something failed, 2 usage."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.bus import safe_url
from gateway.errors import HookgateError
from hookgate import app, eventloop, manifests, workers
from hookgate.embedded import EmbeddedNatsError, NatsServer
from sensors.kube import DryRunCluster


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hookgate", description="Run Argo Events EventSources and Sensors.")
    sub = p.add_subparsers(dest="command", required=True)

    def files(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("-f", dest="files", action="append", required=True, metavar="PATH",
                         help="manifest file or folder (repeatable)")

    def cluster(cmd: argparse.ArgumentParser) -> None:
        group = cmd.add_mutually_exclusive_group()
        group.add_argument("--kubeconfig", metavar="PATH")
        group.add_argument("--dry-run", metavar="DIR", help="write resources to DIR instead of a cluster")

    up = sub.add_parser("up", help="gateway and sensors in one process")
    files(up)
    up.add_argument("--nats", metavar="URL", help="NATS server (default: start an embedded one)")
    cluster(up)
    up.add_argument("--host", default="0.0.0.0")
    up.add_argument("--data-dir", default="hookgate-data", metavar="DIR")

    gw = sub.add_parser("gateway", help="EventSource listeners only")
    files(gw)
    gw.add_argument("--nats", metavar="URL", required=True)
    gw.add_argument("--host", default="0.0.0.0")
    gw.add_argument("--spool-dir", metavar="DIR")
    gw.add_argument("--workers", type=_positive, default=1, metavar="N",
                    help="listener processes sharing the ports (SO_REUSEPORT); default 1")

    sn = sub.add_parser("sensor", help="Sensors only")
    files(sn)
    sn.add_argument("--nats", metavar="URL", required=True)
    cluster(sn)
    sn.add_argument("--metrics-port", type=int, default=7777, metavar="N")
    sn.add_argument("--host", default="0.0.0.0")

    va = sub.add_parser("validate", help="check manifests")
    va.add_argument("paths", nargs="+", metavar="PATH")

    te = sub.add_parser("test", help="run one event through the sensors offline and explain")
    files(te)
    te.add_argument("--event", required=True, metavar="EVENT.json")
    te.add_argument("--dependency", metavar="NAME")
    te.add_argument("--provider", choices=["github", "gitlab"])
    te.add_argument("--header", action="append", default=[], metavar="K:V")
    te.add_argument("--json", action="store_true")
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HookgateError as e:
        print(f"hookgate: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def cmd_validate(args: argparse.Namespace) -> int:
    bundle = manifests.load(args.paths)
    offline = DryRunCluster(None, templates=[t.model_dump(mode="json") for t in bundle.templates])
    app.compile_sensors(bundle, offline, secrets=False)
    print(f"ok: {len(bundle.eventsources)} EventSource(s), {len(bundle.sensors)} Sensor(s), "
          f"{len(bundle.secrets)} Secret(s), {len(bundle.templates)} template(s)")
    return 0


def _serving() -> None:
    """Set up a long-running command: logs, and `kill -USR1 <pid>` printing every thread's stack."""
    eventloop.loop_factory()  # a bad HOOKGATE_EVENT_LOOP is reported first, not after the manifests load
    app.configure_logging()
    with contextlib.suppress(AttributeError, ValueError, OSError):  # no SIGUSR1 or no real stderr
        faulthandler.register(signal.SIGUSR1, all_threads=True)


def cmd_up(args: argparse.Namespace) -> int:
    _serving()
    bundle = manifests.load(args.files)
    cluster = app.cluster_for(bundle, kubeconfig=args.kubeconfig, dry_run=args.dry_run,
                              default_dry_run="hookgate-out")
    server: NatsServer | None = None
    url = args.nats
    if url is None:
        server = NatsServer(Path(args.data_dir) / "nats")
        try:
            server.start()
        except EmbeddedNatsError as e:
            print(f"hookgate: {e}", file=sys.stderr)
            return 1
        url = server.url
        app.say(f"data: {Path(args.data_dir).resolve()}")
    app.say(f"nats: {safe_url(url)}")
    try:
        sensors = app.compile_sensors(bundle, cluster)
        # `up` always spools, under the data dir: it costs nothing while NATS is up (events are
        # published directly) and keeps what a NATS outage would otherwise refuse with 503.
        spool_dir = str(Path(args.data_dir) / "spool")
        options = app.Options(nats_url=url, host=args.host, spool_dir=spool_dir)
        eventloop.run(app.serve(bundle, cluster, options, sensors=sensors))
    finally:
        if server is not None:
            server.stop()
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    _serving()
    bundle = manifests.load(args.files)  # the supervisor too: a manifest error is one message, exit 1
    if args.workers > 1:
        argv = ["gateway", *(a for f in args.files for a in ("-f", f)), "--nats", args.nats, "--host", args.host]
        return workers.supervise(argv + (["--spool-dir", args.spool_dir] if args.spool_dir else []), args.workers)
    worker, count = workers.identity()
    offline = DryRunCluster(None)
    options = app.Options(nats_url=args.nats, host=args.host, spool_dir=args.spool_dir, worker=worker,
                          workers=count)
    eventloop.run(app.serve(bundle, offline, options))
    return 0


def cmd_sensor(args: argparse.Namespace) -> int:
    _serving()
    bundle = manifests.load(args.files)
    cluster = app.cluster_for(bundle, kubeconfig=args.kubeconfig, dry_run=args.dry_run, default_dry_run=None)
    sensors = app.compile_sensors(bundle, cluster)
    options = app.Options(nats_url=args.nats, host=args.host, metrics_port=args.metrics_port, gateway=False)
    eventloop.run(app.serve(bundle, cluster, options, sensors=sensors), default="asyncio")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from hookgate import explain

    return explain.run(args)


COMMANDS = {"validate": cmd_validate, "up": cmd_up, "gateway": cmd_gateway, "sensor": cmd_sensor,
            "test": cmd_test}
