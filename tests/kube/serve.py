"""
Serve the Kubernetes emulator until SIGTERM/SIGINT, for end-to-end runs of ``hookgate up --kubeconfig``.

    python -m tests.kube.serve --port N --kubeconfig PATH [--preload FILE.yaml ...]

Prints ``ready <url>`` (flushed) once serving and the kubeconfig is written. ``--port 0`` picks a free port.
"""

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.kube.emulator import run_emulator


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """All objects of the (multi-document) YAML files, skipping empty documents."""
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m tests.kube.serve', description=__doc__.split('\n\n')[0])
    parser.add_argument('--port', type=int, default=0, help='port on 127.0.0.1 (0: a free one)')
    parser.add_argument('--kubeconfig', type=Path, required=True, help='where to write a kubeconfig for it')
    parser.add_argument('--preload', type=Path, action='append', default=[], help='YAML objects to store first')
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    with run_emulator(load(args.preload), port=args.port) as handle:
        handle.write_kubeconfig(args.kubeconfig)
        print(f'ready {handle.url}', flush=True)
        stop.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
