"""The event loop hookgate's processes run on, and uvloop's closed-transport error that the bus
treats as a lost connection."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop  # a dependency: not importorskip, which would hide a missing install as a skip

from gateway.bus import lost_connection, transport_closed
from gateway.errors import HookgateError
from hookgate import eventloop


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.run(_loop_type()) is uvloop.Loop


def test_a_command_can_default_to_asyncio_and_still_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert not issubclass(eventloop.run(_loop_type(), default="asyncio"), uvloop.Loop)
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    assert eventloop.run(_loop_type(), default="asyncio") is uvloop.Loop


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert not issubclass(eventloop.run(_loop_type()), uvloop.Loop)


def test_an_unknown_loop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "trio")
    coro = _loop_type()
    with pytest.raises(HookgateError, match="HOOKGATE_EVENT_LOOP='trio'"):
        eventloop.run(coro)
    assert coro.cr_frame is None  # closed, so no "never awaited" warning


def test_an_unknown_loop_is_reported_before_the_manifests_are_read(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-manifest.yaml"
    env = {**os.environ, eventloop.ENV: "trio"}
    done = subprocess.run([sys.executable, "-m", "hookgate", "gateway", "-f", str(missing), "--nats",
                           "nats://127.0.0.1:1"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "HOOKGATE_EVENT_LOOP='trio'" in done.stderr
    assert str(missing) not in done.stderr


async def _write_after_close() -> RuntimeError | None:
    """What uvloop raises for a write to a transport that is closed, as nats-py does after an outage."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    server.close()
    try:
        writer.writelines([b"PING\r\n"])
    except RuntimeError as e:
        return e
    return None


def test_uvloops_closed_transport_error_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pins the message that transport_closed matches to the uvloop installed: if a release rewords
    # it, this fails instead of the bus letting the error through in an outage.
    monkeypatch.delenv(eventloop.ENV, raising=False)
    error = eventloop.run(_write_after_close())
    assert error is not None
    assert transport_closed(error)


def test_other_runtime_errors_are_not_taken_for_a_lost_connection() -> None:
    assert not transport_closed(RuntimeError("Event loop is closed"))
    assert not transport_closed(RuntimeError("consumer x is already fetching"))


def test_a_closed_transport_reads_as_a_lost_connection_and_nothing_else_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    error = eventloop.run(_write_after_close())
    assert error is not None
    with pytest.raises(ConnectionResetError), lost_connection():
        raise error
    with pytest.raises(RuntimeError, match="Event loop is closed"), lost_connection():
        raise RuntimeError("Event loop is closed")
