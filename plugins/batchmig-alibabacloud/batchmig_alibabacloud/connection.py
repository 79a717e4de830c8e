"""The Alibabacloud wire protocol, client side: sign a described call, read the answer.

Every request is ``POST /`` with the parameters as a JSON body and four headers:
``X-Api-Action``, ``X-Api-Key`` (the key id), ``X-Api-Date`` (epoch seconds) and
``X-Api-Signature``, the hex HMAC-SHA256 of ``action\\ndate\\nsha256(body)`` under the
secret. A success is ``200 {"Result": {...}}``, an error ``4xx/5xx {"Error": {"Code",
"Message"}}``; the request id travels in the ``X-Request-Id`` header of both, so it
is put into the ``Answer`` (and onto every error) here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from batchmig.plugin import (
    Answer,
    Call,
    Connection,
    HttpRequest,
    HttpResponse,
    NotFoundError,
    PermanentError,
    ProviderConfig,
    ProviderError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)

__all__ = ["AlibabacloudConnection", "sign"]

THROTTLE_CODES = frozenset({"Throttled"})
NOT_FOUND_CODES = frozenset({"ImportNotFound"})


def sign(secret: str, action: str, date: str, body: bytes) -> str:
    """The request signature (shared with the emulator, which verifies it)."""
    message = "\n".join([action, date, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class AlibabacloudConnection(Connection):
    """One provider configuration of the plan, ready to sign calls."""

    def __init__(self, config: ProviderConfig, clock: Callable[[], float] = time.time) -> None:
        self.region = config.region
        self._key_id = config.credentials.secret("key_id") or ""
        self._secret = config.credentials.secret("secret") or ""
        # The rate-limit account: the plan's label, else a fingerprint (never a secret).
        self.account = config.account or "key-" + hashlib.sha256(self._key_id.encode()).hexdigest()[:10]
        self._url = (config.endpoint or f"https://imports.{config.region}.alibabacloud.example").rstrip("/") + "/"
        self._clock = clock

    async def prepare(self, call: Call) -> HttpRequest:
        if not self._key_id or not self._secret:
            raise PermanentError("MissingCredentials", "set ALIBABACLOUD_KEY_ID and ALIBABACLOUD_SECRET")
        body = json.dumps(dict(call.params), separators=(",", ":")).encode()
        date = str(int(self._clock()))  # fresh on every attempt: a retry is signed anew
        headers = {
            "Content-Type": "application/json",
            "X-Api-Action": call.action,
            "X-Api-Key": self._key_id,
            "X-Api-Date": date,
            "X-Api-Region": self.region,
            "X-Api-Signature": sign(self._secret, call.action, date, body),
        }
        return HttpRequest("POST", self._url, headers, body)

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        request_id = response.headers.get("x-request-id")
        try:
            document: Any = json.loads(response.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise _unreadable(call, response, request_id)
        error = document.get("Error")
        if isinstance(error, dict):
            raise _error(str(error.get("Code", "")), str(error.get("Message", "")), request_id, response.status)
        result = document.get("Result")
        if response.status != 200 or not isinstance(result, dict):
            raise _unreadable(call, response, request_id)
        return Answer(result, request_id)


def _error(code: str, message: str, request_id: str | None, status: int) -> ProviderError:
    """Classify by the cloud's code first, its HTTP status second."""
    if code in THROTTLE_CODES or status == 429:
        return ThrottleError(code, message, request_id=request_id, http_status=status)
    if code in NOT_FOUND_CODES:
        return NotFoundError(code, message, request_id=request_id, http_status=status)
    if status >= 500:
        return TransientError(code, message, request_id=request_id, http_status=status)
    return PermanentError(code, message, request_id=request_id, http_status=status)


def _unreadable(call: Call, response: HttpResponse, request_id: str | None) -> ProviderError:
    # A write whose answer cannot be read may have taken effect; a read is just retried.
    kind = UnknownOutcomeError if call.mutating else TransientError
    return kind("UnreadableAnswer", f"HTTP {response.status}: not a Alibabacloud answer",
                request_id=request_id, http_status=response.status)
