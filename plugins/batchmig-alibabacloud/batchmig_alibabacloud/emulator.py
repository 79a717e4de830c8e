"""The Alibabacloud import API on loopback, for batchmig's sandbox.

batchmig's sandbox host wraps this emulator in the machinery every emulator shares
(audit log, the sliding-window throttle at ``rate_limits``, fault injection, durable
state); this module only does what is specific to the API: verify the signature
(``authenticate``), answer from the state (``handle``) and speak the API's error
dialect (``error``). Imports restore lazily: a stored wall-clock start and
``ctx.cloud_seconds_since`` say how far along one is, so a restarted runner finds
imports that finished meanwhile. Options (sandbox config ``options: {alibabacloud: ...}``):
``restore_seconds`` (default 600) and ``online_seconds`` (default 60), in cloud seconds.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any, Literal

from aiohttp import web
from batchmig.emulator import Emulator, EmulatorReject, EmulatorReply, RequestInfo, SandboxContext

from batchmig_alibabacloud.connection import sign

__all__ = ["DEMO_CREDENTIALS", "AlibabacloudEmulator"]

DEMO_KEY_ID = "DEMOALIBABACLOUDKEY"
DEMO_SECRET = "alibabacloud-sandbox-secret"
DEMO_CREDENTIALS = {"key_id": DEMO_KEY_ID, "secret": DEMO_SECRET}
"""Accepted by the emulator (and used by ``batchmig run --sandbox``); they grant nothing elsewhere."""

MUTATING = frozenset({"CreateImport", "StartImport", "BringOnline"})
ACTIONS = MUTATING | {"DescribeImports"}
SKEW_SECONDS = 300


def _answer(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status, headers={"X-Request-Id": str(uuid.uuid4())})


def _error(status: int, code: str, message: str) -> web.Response:
    return _answer(status, {"Error": {"Code": code, "Message": message}})


class AlibabacloudEmulator(Emulator):
    rate_limits = {"CreateImport": 10.0, "StartImport": 10.0, "BringOnline": 10.0, "DescribeImports": 20.0}

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.secrets = {DEMO_KEY_ID: DEMO_SECRET, **ctx.credentials}
        self.restore_seconds = float(ctx.options.get("restore_seconds", 600))
        self.online_seconds = float(ctx.options.get("online_seconds", 60))

    async def authenticate(self, request: web.Request, body: bytes) -> RequestInfo:
        headers = request.headers
        action, key, date = headers.get("X-Api-Action", ""), headers.get("X-Api-Key", ""), headers.get("X-Api-Date", "")
        secret = self.secrets.get(key)
        if secret is None:
            raise EmulatorReject(_error(401, "UnknownKey", "the key id is not known"), "UnknownKey")
        if not date.isdigit() or abs(int(date) - time.time()) > SKEW_SECONDS:
            raise EmulatorReject(_error(401, "RequestExpired", "X-Api-Date is too far off"), "RequestExpired")
        if not hmac.compare_digest(sign(secret, action, date, body), headers.get("X-Api-Signature", "")):
            raise EmulatorReject(_error(401, "SignatureMismatch", "the signature does not match"), "SignatureMismatch")
        if action not in ACTIONS:
            raise EmulatorReject(_error(400, "InvalidAction", f"no action {action!r}"), "InvalidAction")
        return RequestInfo(action, key, headers.get("X-Api-Region", ""), action in MUTATING)

    def error(self, info: RequestInfo, kind: Literal["throttle", "internal", "unavailable"],
              code: str | None = None) -> web.Response:
        if kind == "throttle":
            return _error(429, code or "Throttled", "too many requests; slow down")
        status = 503 if kind == "unavailable" else 500
        return _error(status, code or ("ServiceUnavailable" if status == 503 else "InternalError"), "try again")

    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return EmulatorReply(_error(400, "InvalidBody", "the body is not JSON"))
        if info.action == "CreateImport":
            return self._create(params)
        if info.action == "DescribeImports":
            return self._describe(info, params)
        record = self.ctx.store.get("import", str(params.get("ImportId", "")))
        if record is None:
            return EmulatorReply(_error(404, "ImportNotFound", f"no import {params.get('ImportId')!r}"))
        status = self._status(record)
        if info.action == "StartImport":
            if status != "created":
                return EmulatorReply(_error(409, "InvalidState", f"the import is {status}"))
            changed = {"Status": "restoring", "started": self.ctx.now()}
        else:  # BringOnline
            if status != "restored":
                return EmulatorReply(_error(409, "InvalidState", f"the import is {status}"))
            changed = {"Status": "onlining", "onlined": self.ctx.now()}
        self.ctx.store.put("import", record["ImportId"], {**record, **changed})
        return EmulatorReply(_answer(200, {"Result": {}}), resource=record["ImportId"], changed=True)

    def _create(self, params: dict[str, Any]) -> EmulatorReply:
        token = str(params.get("ClientToken") or "")
        if not token or not params.get("Name") or not params.get("Database"):
            return EmulatorReply(_error(400, "MissingParameter", "Name, Database and ClientToken are required"))
        earlier = self.ctx.store.get("token", token)
        if earlier is not None:  # the same request again: the same import, no new effect
            return EmulatorReply(_answer(200, {"Result": {"ImportId": earlier["ImportId"]}}), resource=params["Name"])
        import_id = f"imp-{self.ctx.store.next_id('import'):08d}"
        record = {"ImportId": import_id, "Name": params["Name"], "Database": params["Database"],
                  "BackupUrl": params.get("BackupUrl"), "Status": "created", "created": self.ctx.now()}
        self.ctx.store.put("import", import_id, record)
        self.ctx.store.put("token", token, {"ImportId": import_id})
        return EmulatorReply(_answer(200, {"Result": {"ImportId": import_id}}), resource=params["Name"], changed=True)

    def _describe(self, info: RequestInfo, params: dict[str, Any]) -> EmulatorReply:
        limit, offset = int(params.get("Limit", 100)), int(params.get("Offset", 0))
        if not 1 <= limit <= 100 or offset < 0:
            return EmulatorReply(_error(400, "InvalidParameter", "Limit is 1 to 100, Offset at least 0"))
        now = self.ctx.now()
        if "ImportIds" in params:  # by id: read-after-write consistent
            records = [r for r in (self.ctx.store.get("import", str(i)) for i in params["ImportIds"]) if r]
        else:  # a list: lags behind creates when the sandbox says so (eventual consistency)
            records = [r for r in self.ctx.store.values("import") if info.listed(r["created"], now)]
        records.sort(key=lambda r: (r["created"], r["ImportId"]), reverse=params.get("Order") != "oldest")
        views = [self._view(r) for r in records[offset : offset + limit]]
        return EmulatorReply(_answer(200, {"Result": {"Imports": views, "Total": len(records)}}))

    def _status(self, record: dict[str, Any]) -> str:
        status = str(record["Status"])
        if status == "restoring" and self.ctx.cloud_seconds_since(record["started"]) >= self.restore_seconds:
            return "failed" if "fail" in str(record.get("BackupUrl")) else "restored"
        if status == "onlining" and self.ctx.cloud_seconds_since(record["onlined"]) >= self.online_seconds:
            return "online"
        return status

    def _view(self, record: dict[str, Any]) -> dict[str, Any]:
        status = self._status(record)
        view = {"ImportId": record["ImportId"], "Name": record["Name"], "Database": record["Database"],
                "Status": status}
        if status == "failed":
            view["Message"] = f"the backup {record.get('BackupUrl')} cannot be restored"
        return view
