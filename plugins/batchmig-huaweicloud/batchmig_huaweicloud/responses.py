"""Turn a DRS (or API gateway) answer into a payload or the fitting ``ProviderError``.

Huawei errors are HTTP 4xx/5xx with ``{"error_code", "error_msg"}`` (the gateway adds
``request_id``); every answer carries ``X-Request-Id``, which is kept on every error
so an operator can quote it to support. The classification follows what the
reference documents:

=====================================  ==================
429 (``APIGW.0308``/``APIG.0308``)     ThrottleError
400 ``DRS.M01503`` (DRS's own limit)   ThrottleError
5xx                                    TransientError
400 ``DRS.10000010``                   NotFoundError
401 token expired / undecryptable      TransientError (the token is refreshed)
other 4xx                              PermanentError
unreadable body                        TransientError (read) / UnknownOutcomeError (write)
=====================================  ==================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from batchmig.errors import (
    NotFoundError,
    PermanentError,
    ProviderError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)

__all__ = ["ErrorBody", "error_for", "is_token_rejection", "read_error_body", "read_payload"]

THROTTLE_CODES = {"APIGW.0308", "APIG.0308", "DRS.M01503"}
NOT_FOUND_CODES = {"DRS.10000010"}
TOKEN_REJECTIONS = ("token expires", "decrypt token fail")


class ErrorBody(NamedTuple):
    """The cloud's own code and message of an error answer."""

    code: str
    message: str


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body.strip() else None
    except ValueError:  # orjson's JSONDecodeError, also for bytes that are not UTF-8
        return None


def _pick(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    # The SDK accepts all three spellings, at the top level or one level down.
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
        if obj.get(code_key):
            return str(obj[code_key]), str(obj.get(msg_key) or "")
    return None


def read_error_body(status: int, body: bytes) -> ErrorBody | None:
    """The cloud's code and message, or None when the body says nothing readable."""
    data = _loads(body)
    if not isinstance(data, Mapping):
        return None
    found = _pick(data)
    if found is None:
        for value in data.values():
            if isinstance(value, Mapping) and (found := _pick(value)):
                break
    return ErrorBody(*found) if found else None


def is_token_rejection(status: int, err: ErrorBody | None) -> bool:
    return (
        status == 401
        and err is not None
        and err.code.endswith(".0301")
        and any(marker in err.message for marker in TOKEN_REJECTIONS)
    )


def error_for(status: int, body: bytes, request_id: str | None, *, mutating: bool) -> ProviderError:
    """The error an HTTP status >= 300 stands for."""
    err = read_error_body(status, body)
    kw: dict[str, Any] = {"request_id": request_id, "http_status": status}
    if status == 429 or (err is not None and err.code in THROTTLE_CODES):
        code, message = err or (f"HTTP{status}", "too many requests")
        return ThrottleError(code, message, **kw)
    if status >= 500:
        code, message = err or (f"HTTP{status}", _snippet(body))
        return TransientError(code, message, **kw)
    if err is None:
        message = f"HTTP {status} with an unreadable body: {_snippet(body)}"
        if mutating:
            return UnknownOutcomeError(f"HTTP{status}", message, **kw)
        return TransientError(f"HTTP{status}", message, **kw)
    if err.code in NOT_FOUND_CODES:
        return NotFoundError(err.code, err.message, **kw)
    if is_token_rejection(status, err):
        return TransientError(err.code, err.message + " (a new token is fetched)", **kw)
    return PermanentError(err.code, err.message, **kw)


def read_payload(status: int, body: bytes, request_id: str | None, *, mutating: bool) -> dict[str, Any]:
    """The JSON object of a 2xx answer (``{}`` for an empty one)."""
    if not body.strip():
        return {}
    data = _loads(body)
    if isinstance(data, dict):
        return data
    message = f"HTTP {status} with a body that is not a JSON object: {_snippet(body)}"
    if mutating:
        raise UnknownOutcomeError("UnreadableAnswer", message, request_id=request_id, http_status=status)
    raise TransientError("UnreadableAnswer", message, request_id=request_id, http_status=status)


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
