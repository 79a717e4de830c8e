"""A throw-away HTTP server on loopback that notes when each request arrived.

Tests of the limiter and the fence look at when bytes really reached a server; this is
that server, so each test does not set up its own aiohttp application. ``HeldConnection``
is a provider connection whose request waits inside the pipeline's send until a test
lets it go (a stop, a deadline or a lost lease arriving while a call is on the wire).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from aiohttp import web

from batchmig.plugin import Answer, Call, Connection, HttpRequest, HttpResponse


@asynccontextmanager
async def loopback_server(arrived: list[float]) -> AsyncIterator[str]:
    """Serve ``POST /`` with ``{}``, appending each arrival's ``time.monotonic()``; yields the URL."""
    async def handler(request: web.Request) -> web.Response:
        arrived.append(time.monotonic())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


class HeldConnection(Connection):
    """Its request waits inside the pipeline's send (a token to fetch, a pooled
    connection) until ``go`` is set; ``waiting`` is set once it is there."""

    account, region = "acct", "r1"

    def __init__(self, url: str) -> None:
        self.url = url
        self.waiting, self.go = anyio.Event(), anyio.Event()

    async def prepare(self, call: Call) -> HttpRequest:
        self.waiting.set()
        await self.go.wait()
        return HttpRequest("POST", self.url, {"Content-Type": "application/json"}, b"{}")

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        return Answer({"status": response.status})
