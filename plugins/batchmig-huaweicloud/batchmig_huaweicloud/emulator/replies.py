"""JSON answers in Huawei's shapes, each with the ``X-Request-Id`` header.

DRS and the API gateway both answer errors as ``{"error_code", "error_msg"}``; the
gateway adds ``request_id`` to the body. Every answer carries ``X-Request-Id``, which
clients keep to quote to support.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

__all__ = ["drs_error", "gateway_error", "json_reply", "new_request_id"]


def new_request_id() -> str:
    return uuid.uuid4().hex


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"X-Request-Id": new_request_id()}
    all_headers.update(headers or {})
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False).encode(),
        content_type="application/json",
        charset="utf-8",
        headers=all_headers,
    )


def drs_error(status: int, code: str, message: str) -> web.Response:
    """An error DRS itself answers (validation, not found, wrong state)."""
    return json_reply(status, {"error_code": code, "error_msg": message})


def gateway_error(status: int, code: str, message: str) -> web.Response:
    """An error the API gateway answers before DRS sees the request."""
    request_id = new_request_id()
    return json_reply(
        status,
        {"error_code": code, "error_msg": message, "request_id": request_id},
        headers={"X-Request-Id": request_id},
    )
