"""How RDS answers: a JSON body with ``RequestId``; errors with ``HostId``, ``Code``, ``Message``, ``Recommend``."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

__all__ = ["answer", "error_answer"]

HOST_ID = "rds.aliyuncs.com"


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def answer(payload: dict[str, Any]) -> web.Response:
    return web.json_response({"RequestId": _request_id(), **payload})


def error_answer(status: int, code: str, message: str) -> web.Response:
    body = {"RequestId": _request_id(), "HostId": HOST_ID, "Code": code, "Message": message,
            "Recommend": f"https://api.alibabacloud.com/troubleshoot?q={code}&product=Rds"}
    return web.json_response(body, status=status)
