"""Start the dashboard for ``batchmig serve`` and say, once, how to open it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
from aiohttp import web

from batchmig.errors import UsageError
from batchmig.redaction import REDACTOR
from batchmig.runsource import RunSource
from batchmig.web.app import make_app
from batchmig.web.security import Guard, is_loopback, load_or_create_token


async def serve(source: RunSource, *, bind: str, port: int, token_file: Path, new_token: bool,
                say: Callable[[str], None]) -> None:
    """Serve until cancelled. Prints the URL (with the token only when it was just made)."""
    token, created = load_or_create_token(token_file, renew=new_token)
    REDACTOR.add(token)  # never in a log line, whatever logs a URL
    loopback = is_loopback(bind)
    runner = web.AppRunner(make_app(source, Guard(token, loopback)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, bind, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}",
                             "choose another --port (0: any free port)") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        host = f"[{bind}]" if ":" in bind else bind
        url = f"http://{host}:{bound}/"
        say(f"batchmig dashboard on {url}")
        if not loopback:
            say("listening beyond loopback: anyone who can reach it needs the token; it is plain http, "
                "so put it behind TLS (a reverse proxy) on an untrusted network")
        if created:
            say(f"open: {url}?token={token}")
            say(f"(the token is shown only now; it is kept in {token_file}, readable by you only)")
        else:
            say(f"the access token is in {token_file}: open {url}?token=$(cat {token_file})")
        await anyio.sleep_forever()
    finally:
        await runner.cleanup()
