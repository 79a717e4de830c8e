"""The raw HTTP client's floor: the CPU one API-like call costs a client that does nothing else.

    .venv/bin/python benchmarks/floor.py [--calls N] [--rounds R]

Issue 16 states the runner's CPU target as a multiple of this floor ("<= 3x the raw
aiohttp client floor"), and a floor measured on another machine or on another day says
nothing about this one, so ``run.py`` measures it in the same run as the overhead
scenario. The call is the overhead run's most common kind: a POST of a small JSON body
with a Tencent-like signed head (eight headers, the signature precomputed: signing is
the runner's cost, not the client's) answered by 232 bytes of JSON, from an
aiohttp server in a process of its own on loopback, one call at a time. Two clients
make the same N calls on the event loop the runner uses (uvloop when installed):
aiohttp's ``ClientSession`` (the floor) and batchmig's ``HttpTransport`` (for
reference). They alternate for R rounds and each figure is its best round's process CPU
per call: a floor is what a client cannot go below, and neighbours on a shared machine
only ever make a round dearer. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ANSWER = json.dumps({"Response": {"RequestId": "9f3c2a1e-5b7d-4e8a-a0c6-2d1f8b4e7a93", "JobId": "mssql-import-4f8a2c",
                                  "Status": 1, "Progress": 100, "BackupMigrationId": "mssql-backup-migrate-7n3k9x",
                                  "TaskId": 1234567, "Message": "", "ErrorCode": ""}}).encode()
BODY = b'{"InstanceId": "mssqlsrv-0123abcd", "BackupMigrationId": "mssql-backup-migrate-7n3k9x"}'


def headers(host: str) -> dict[str, str]:
    """The head of a Tencent API call as the provider signs it (a fixed, well-formed signature)."""
    return {
        "Content-Type": "application/json",
        "Host": host,
        "X-TC-Action": "DescribeBackupMigration",
        "X-TC-Version": "2018-03-28",
        "X-TC-Timestamp": "1796200000",
        "X-TC-Region": "ap-guangzhou",
        "X-TC-Language": "en-US",
        "Authorization": "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2026-12-02/sqlserver/"
                         "tc3_request, SignedHeaders=content-type;host, Signature="
                         "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c",
    }


def serve() -> None:
    """The server process: prints its port, then answers every POST with ``ANSWER``."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        listener = socket.create_server(("127.0.0.1", 0))
        await web.SockSite(runner, listener).start()
        print(listener.getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


Client = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
"""One call, and closing the client."""


async def aiohttp_client(url: str) -> Client:
    import aiohttp

    session = aiohttp.ClientSession()
    head = headers(url.split("/")[2])

    async def call() -> None:
        async with session.post(url, data=BODY, headers=head) as response:
            body = await response.read()
        if response.status != 200 or body != ANSWER:
            raise RuntimeError(f"aiohttp got HTTP {response.status}: {body[:100]!r}")

    return call, session.close


async def transport_client(url: str) -> Client:
    from batchmig.engine.transport import HttpTransport
    from batchmig.plugin import HttpRequest

    transport = HttpTransport(timeout=30.0)
    await transport.__aenter__()
    request = HttpRequest("POST", url, headers(url.split("/")[2]), BODY)

    async def call() -> None:
        response = await transport.send(request)
        if response.status != 200 or response.body != ANSWER:
            raise RuntimeError(f"HttpTransport got HTTP {response.status}: {response.body[:100]!r}")

    async def close() -> None:
        await transport.__aexit__(None, None, None)

    return call, close


async def measure(url: str, calls: int, rounds: int) -> dict[str, list[float]]:
    """Each client's CPU per call (µs) in each round, the two alternated."""
    clients = {"aiohttp": await aiohttp_client(url), "batchmig": await transport_client(url)}
    for call, _ in clients.values():
        await call()  # the connection made and every lazy import done before any clock starts
    per_call: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, (call, _) in clients.items():
            cpu = time.process_time()
            for _ in range(calls):
                await call()
            per_call[name].append((time.process_time() - cpu) * 1e6 / calls)
    for _, close in clients.values():
        await close()
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000, help="calls per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    from batchmig.eventloop import HAS_UVLOOP, run

    load = round(os.getloadavg()[0], 2)
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/"
        per_call = run(measure, url, args.calls, args.rounds)
    finally:
        server.terminate()
        server.wait()
    figures: dict[str, Any] = {
        "scenario": "floor", "calls": args.calls, "rounds": args.rounds, "loop": "uvloop" if HAS_UVLOOP else "asyncio",
        "load_average": load, "answer_bytes": len(ANSWER), "headers": len(headers("")),
        "aiohttp_us_per_call": round(min(per_call["aiohttp"]), 1),
        "transport_us_per_call": round(min(per_call["batchmig"]), 1),
        "rounds_us_per_call": {name: [round(x, 1) for x in xs] for name, xs in per_call.items()},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
