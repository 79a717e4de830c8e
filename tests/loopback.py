"""A throw-away HTTP server on loopback that notes when each request arrived.

Tests of the limiter and the fence look at when bytes really reached a server; this is
that server, so each test does not set up its own aiohttp application.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


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
