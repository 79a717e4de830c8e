"""ApsaraDB RDS (API 2014-08-15) on loopback, for batchmig's sandbox.

batchmig's sandbox host wraps this emulator in the machinery every emulator shares
(audit log, the sliding-window throttle at ``rate_limits``, fault injection, durable
state); this package only does what is specific to Alibaba Cloud:

``authenticate``
    the V3 signature (``ACS3-HMAC-SHA256``) checked as the cloud checks it: over the
    headers ``SignedHeaders`` names, the query and the hashed body; a stale
    ``x-acs-date`` (15 minutes), a nonce seen before, an unknown key, a wrong
    ``x-acs-version`` or action are refused with the documented codes;
``handle``
    the migration actions and the instance read (``migrations.py``);
``error``
    throttling as Alibaba answers it (HTTP 400 ``Throttling.User``, "Request was
    denied due to user flow control."), internal errors as ``InternalError`` 500 and
    ``ServiceUnavailable`` 503, always ``{"RequestId", "HostId", "Code", "Message",
    "Recommend"}``.
"""

from __future__ import annotations

import calendar
import hmac
import time
from collections import OrderedDict
from typing import Literal
from urllib.parse import parse_qsl

from aiohttp import web
from batchmig.emulator import Emulator, EmulatorReject, EmulatorReply, RequestInfo, SandboxContext

from batchmig_alibabacloud.connection import API_VERSION
from batchmig_alibabacloud.demo import DEMO_CREDENTIALS, DEMO_KEY_ID, DEMO_SECRET
from batchmig_alibabacloud.emulator.answers import error_answer
from batchmig_alibabacloud.emulator.migrations import MUTATING, READS, Migrations
from batchmig_alibabacloud.provider import DEFAULT_RATE_LIMITS
from batchmig_alibabacloud.signing import Authorization, payload_hash, signature

__all__ = ["DEMO_CREDENTIALS", "AlibabaRdsEmulator"]


SKEW_SECONDS = 15 * 60
NONCES_KEPT = 100_000


def _reject(status: int, code: str, message: str) -> EmulatorReject:
    return EmulatorReject(error_answer(status, code, message), code)


class AlibabaRdsEmulator(Emulator):
    """The RDS migration API. Options (sandbox config ``options: {alibaba-rds-sqlserver: ...}``):
    ``restore_seconds`` (FULL, default 900), ``log_seconds`` (UPDF, 120), ``online_seconds``
    (CreateOnlineDatabaseTask, 120), in cloud seconds; ``instances``: DBInstanceId ->
    attributes (``EngineVersion``, ``DBInstanceStatus``, ``Engine``) for instances that
    differ from the default (any ``rm-`` id is a running SQL Server 2019 instance,
    one whose id contains ``2008r2`` runs 2008 R2, ``missing`` does not exist)."""

    # The caps batchmig assumes (none is published); the plan and the sandbox config may differ.
    rate_limits = DEFAULT_RATE_LIMITS

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.secrets = {DEMO_KEY_ID: DEMO_SECRET, **ctx.credentials}
        self.migrations = Migrations(ctx)
        self._nonces: OrderedDict[str, None] = OrderedDict()

    async def authenticate(self, request: web.Request, body: bytes) -> RequestInfo:
        headers = request.headers
        parts = Authorization.parse(headers.get("Authorization", ""))
        if parts is None:
            raise _reject(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        secret = self.secrets.get(parts.key_id)
        if secret is None:
            raise _reject(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signed = [name.lower() for name in parts.signed_headers]
        missing = [name for name in ("host", "x-acs-action", "x-acs-version", "x-acs-date",
                                     "x-acs-signature-nonce", "x-acs-content-sha256") if name not in signed]
        if "x-acs-security-token" in headers and "x-acs-security-token" not in signed:
            missing.append("x-acs-security-token")
        if missing:
            raise _reject(400, "IncompleteSignature", f"The request signature does not sign {', '.join(missing)}.")
        content = headers.get("x-acs-content-sha256", "")
        expected = signature(secret, request.method, request.path, dict(request.query), headers, signed, content)
        if content != payload_hash(body) or not hmac.compare_digest(expected, parts.signature):
            raise _reject(403, "SignatureDoesNotMatch", "Specified signature does not match our calculation.")
        self._check_freshness(headers.get("x-acs-date", ""), headers.get("x-acs-signature-nonce", ""))
        if headers.get("x-acs-version") != API_VERSION:
            raise _reject(400, "NoSuchVersion", f"Specified api version {headers.get('x-acs-version')} is not valid.")
        action = headers.get("x-acs-action", "")
        if action not in MUTATING | READS:
            raise _reject(403, "InvalidAction", f"Specified action {action} is not valid.")
        params = dict(request.query)
        if body and request.content_type == "application/x-www-form-urlencoded":  # RPC parameters may be a form
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return RequestInfo(action, parts.key_id, params.get("RegionId", ""), action in MUTATING, params)

    def _check_freshness(self, date: str, nonce: str) -> None:
        try:
            stamped = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            raise _reject(400, "InvalidTimeStamp.Format",
                          "Specified time stamp or date value is not well formatted.") from None
        if abs(stamped - time.time()) > SKEW_SECONDS:
            raise _reject(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        if not nonce or nonce in self._nonces:
            raise _reject(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces[nonce] = None
        if len(self._nonces) > NONCES_KEPT:
            self._nonces.popitem(last=False)

    def error(self, info: RequestInfo, kind: Literal["throttle", "internal", "unavailable"],
              code: str | None = None) -> web.Response:
        if kind == "throttle":
            return error_answer(400, code or "Throttling.User", "Request was denied due to user flow control.")
        if kind == "unavailable":
            return error_answer(503, code or "ServiceUnavailable",
                                "The request has failed due to a temporary failure of the server.")
        return error_answer(500, code or "InternalError",
                            "The request processing has failed due to some unknown error, exception or failure.")

    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        return self.migrations.answer(info)
