"""Which event loop hookgate's processes run on: uvloop or asyncio's own.

uvloop is a dependency because the gateway spends about 8 % less CPU per 3 KB webhook on it
(bench/gateway.py, see git log). It is the default where webhooks are served (`up`, `gateway`).
`sensor` defaults to asyncio's loop: there uvloop saved about 3 % of the CPU per event and cost
2 MB per process, which took 1,000 loaded Sensors from 79 to 81 MB at rest. The fallback keeps
hookgate running where uvloop is not installed (it has no Windows build).
`HOOKGATE_EVENT_LOOP=uvloop|asyncio` overrides the default of every command, to tell a uvloop
problem from a hookgate one, or to compare the two, without reinstalling anything.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gateway.errors import HookgateError

T = TypeVar("T")

ENV = "HOOKGATE_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")


def loop_factory(default: str = "uvloop") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for asyncio.Runner: uvloop's, or None for asyncio's default loop."""
    choice = os.environ.get(ENV, "").strip().lower() or default
    if choice not in CHOICES:
        raise HookgateError(f"{ENV}={os.environ[ENV]!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # an optional speed-up: asyncio's loop does the same work
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, default: str = "uvloop") -> T:
    """asyncio.run(main) on the chosen loop. asyncio.run takes no loop_factory before 3.12;
    asyncio.Runner (3.11) does, and is what asyncio.run is built on, so the semantics match."""
    try:
        factory = loop_factory(default)
    except HookgateError:
        main.close()  # never to be awaited: close it, or Python warns "coroutine ... was never awaited"
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
