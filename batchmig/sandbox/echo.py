"""The ``echo`` fault: an error answer that quotes the request it refuses.

Some clouds quote the refused parameter in an InvalidParameter message, and some
gateways and proxies dump the whole request into their error. Whatever the request
carried — the Authorization header's key id, a database password in the body — then
comes back inside the cloud's own answer, in the encodings such echoes use: as
received, URL-encoded, JSON-escaped once and twice, and base64. This is how the
secrets campaign proves that none of it reaches batchmig's outputs in any form.

The emulator renders its usual error (its own dialect, the configured code); the
echo is appended to every message field of that JSON answer, so the provider parses
it exactly as it would parse the real thing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from aiohttp import web

_MESSAGE_KEYS = ("message", "error_msg", "msg")


def echo_of(request: web.Request, body: bytes) -> str:
    return echo_text(request.method, request.path_qs, request.headers.items(), body)


def echo_text(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> str:
    """The request as received, followed by the same text in each encoding."""
    listed = "; ".join(f"{name}: {value}" for name, value in headers)
    received = f"{method} {target} [{listed}] {body.decode('utf-8', 'replace')}"
    return (
        f"request: {received} | url-encoded: {quote(received, safe='')} | json: {json.dumps(received)}"
        f" | json twice: {json.dumps(json.dumps(received))}"
        f" | base64: {base64.b64encode(received.encode()).decode()}"
    )


def with_echo(response: web.Response, echo: str) -> web.Response:
    """``response`` (a JSON error) with ``echo`` appended to each of its message fields."""
    answer = json.loads(response.body or b"{}")  # type: ignore[arg-type]  # json_response bodies are bytes
    _append(answer, echo)
    headers = {key: value for key, value in response.headers.items() if key.lower() != "content-length"}
    return web.Response(status=response.status, body=json.dumps(answer).encode(), headers=headers)


def _append(value: Any, echo: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key.lower() in _MESSAGE_KEYS:
                value[key] = f"{item} {echo}"
            else:
                _append(item, echo)
    elif isinstance(value, list):
        for item in value:
            _append(item, echo)
