"""The API gateway's authentication, as Huawei's APIGW does it in front of DRS.

AK/SK: the signature is recomputed over the headers the request itself lists in
``SignedHeaders`` (the Python SDK signs many, the Go SDK only ``x-sdk-date``), with
``X-Sdk-Date`` required, signed and within 15 minutes of the gateway clock. Five
failures in a row lock an access key for five minutes. A mismatch answers 401
``APIGW.0301`` with the gateway's own canonical request in the message (newlines as
``|``), which is what makes real signature bugs debuggable.

Tokens: ``X-Auth-Token`` must be one this emulator's IAM issued, not expired, and
scoped to the project in the path.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from batchmig.emulator import EmulatorReject, SandboxContext

from batchmig_huaweicloud import signer
from batchmig_huaweicloud.emulator.replies import gateway_error

__all__ = ["Caller", "Gateway"]

SKEW_SECONDS = 15 * 60
LOCK_AFTER = 5
LOCK_SECONDS = 5 * 60
AUTH_FAILED = "APIGW.0301"
_PREFIX = "Incorrect IAM authentication information: "


@dataclass(frozen=True)
class Caller:
    """Who signed: an access key id, or the user a token was issued to."""

    credential: str
    token_project: str | None = None


def _reject(message: str) -> EmulatorReject:
    return EmulatorReject(gateway_error(401, AUTH_FAILED, _PREFIX + message), AUTH_FAILED)


class Gateway:
    def __init__(self, ctx: SandboxContext, secrets: Mapping[str, str], accept_tokens: bool) -> None:
        self._ctx = ctx
        self._secrets = secrets
        self._accept_tokens = accept_tokens

    def authenticate(self, request: web.Request, body: bytes) -> Caller:
        authorization = request.headers.get("Authorization")
        if authorization:
            return self._aksk(request, body, authorization)
        token = request.headers.get("X-Auth-Token")
        if token and self._accept_tokens:
            return self._token(token)
        raise _reject("x-auth-token not found")

    # ---------------------------------------------------------------- AK/SK

    def _aksk(self, request: web.Request, body: bytes, authorization: str) -> Caller:
        parsed = signer.parse_authorization(authorization)
        if parsed is None:
            raise _reject("verify aksk signature fail, invalid authorization header")
        ak = parsed.access_key
        self._check_lock(ak)
        secret = self._secrets.get(ak)
        if secret is None:
            raise self._failure(ak, f"Get secretKey failed,ak:{ak},err:ak not exist")
        sdk_date = request.headers.get("X-Sdk-Date", "")
        if "x-sdk-date" not in parsed.signed_headers:
            raise self._failure(ak, "verify aksk signature fail, x-sdk-date is not signed")
        signed_at = signer.parse_sdk_date(sdk_date)
        if signed_at is None or abs(self._ctx.now() - signed_at) > SKEW_SECONDS:
            raise self._failure(
                ak, f"verify aksk signature fail, x-sdk-date {sdk_date!r} is not within 15 minutes"
            )
        headers = {name: request.headers.get(name, "") for name in parsed.signed_headers}
        query = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        canonical = signer.canonical_request(
            request.method, request.rel_url.raw_path, query, headers, parsed.signed_headers, body
        )
        expected = signer.signature(secret, signer.string_to_sign(sdk_date, canonical))
        if not hmac.compare_digest(expected, parsed.signature):
            shown = canonical.replace("\n", "|")
            raise self._failure(ak, f"verify aksk signature fail, canonicalRequest:{shown}")
        self._clear_failures(ak)
        return Caller(ak)

    def _check_lock(self, ak: str) -> None:
        state = self._ctx.store.get("ak_lock", ak)
        if state and state.get("locked_until", 0) > self._ctx.now():
            raise _reject("AK access failed to reach the limit,forbidden")

    def _failure(self, ak: str, message: str) -> EmulatorReject:
        state = self._ctx.store.get("ak_lock", ak) or {"failures": 0}
        failures = int(state.get("failures", 0)) + 1
        record: dict[str, Any] = {"failures": failures}
        if failures >= LOCK_AFTER:
            record = {"failures": 0, "locked_until": self._ctx.now() + LOCK_SECONDS}
        self._ctx.store.put("ak_lock", ak, record)
        return _reject(message)

    def _clear_failures(self, ak: str) -> None:
        state = self._ctx.store.get("ak_lock", ak)
        if state and state.get("failures"):
            self._ctx.store.put("ak_lock", ak, {"failures": 0})

    # ---------------------------------------------------------------- tokens

    def _token(self, token: str) -> Caller:
        record = self._ctx.store.get("iam_token", token_key(token))
        if record is None:
            raise _reject("decrypt token fail")
        if record["expires_wall"] <= self._ctx.now():
            raise _reject(f"token expires, expires_at: {record['expires_at']}")
        return Caller(f"{record['domain']}/{record['user']}", token_project=record["project_id"])


def token_key(token: str) -> str:
    """Tokens are stored by digest, so the state file never holds a usable token."""
    return hashlib.sha256(token.encode()).hexdigest()
