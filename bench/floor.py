"""The floor: the least work any durable GitHub gateway must do. Check the HMAC, publish to
JetStream, answer 200 after the ack. `python bench/floor.py --port N --nats URL [--secret S]`."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac

import nats
from aiohttp import web
from nats.js.api import StorageType, StreamConfig


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--nats", required=True)
    p.add_argument("--secret", default="github-demo-secret")
    a = p.parse_args()
    nc = await nats.connect(a.nats)
    js = nc.jetstream()  # the same guarantees as hookgate's stream: file storage, 24 h dedupe window
    await js.add_stream(StreamConfig(name="FLOOR", subjects=["floor.>"], storage=StorageType.FILE,
                                     duplicate_window=86400, max_msg_size=32 * 1024**2))
    key = a.secret.encode()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        expected = b"sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", "").encode(), expected):
            return web.Response(status=403)
        await js.publish("floor.github", body, headers={"Nats-Msg-Id": request.headers["X-GitHub-Delivery"]})
        return web.Response(text="ok\n")

    app = web.Application(client_max_size=25 * 1024**2)
    app.router.add_post("/github", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", a.port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()  # serve until the benchmark stops the process


if __name__ == "__main__":
    asyncio.run(main())
