"""The two IAM calls a DRS client makes: get a token, find a region's project.

Projects are per region in Huawei Cloud (the project id is the first segment of every
DRS path), so the emulator keeps a small project table: ids come from the sandbox
options (``projects: {region: id}``) or are derived from the region name, and any
project id a client brings is accepted and remembered. The table also tells the
sandbox which region a request is for, since every region shares one loopback port.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from batchmig.emulator import EmulatorReject, SandboxContext

from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.emulator.gateway import token_key
from batchmig_huaweicloud.emulator.replies import json_reply

__all__ = ["DEMO_IAM_USER", "Iam", "iam_time"]

TOKEN_LIFETIME = 24 * 3600
DEMO_IAM_USER = {
    "domain": "sandbox-domain",
    "user": "sandbox-user",
    "password": DEMO_CREDENTIALS["iam_password"],
}


def iam_time(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _links(self_url: str) -> dict[str, str | None]:
    # Keystone's links: no previous or next page here.
    return {"self": self_url, "previous": None, "next": None}


def _catalog(base_url: str, region: str) -> list[dict[str, Any]]:
    """The services a token may call: DRS and IAM, both served by the sandbox's one port."""
    services = (("drs", "drs"), ("identity", "iam"))
    return [
        {
            "type": kind,
            "id": hashlib.sha256(f"service:{name}".encode()).hexdigest()[:32],
            "name": name,
            "endpoints": [
                {
                    "url": base_url,
                    "region": region,
                    "region_id": region,
                    "interface": "public",
                    "id": hashlib.sha256(f"endpoint:{name}:{region}".encode()).hexdigest()[:32],
                }
            ],
        }
        for kind, name in services
    ]


def _keystone_error(status: int, message: str, title: str) -> EmulatorReject:
    # IAM speaks OpenStack Keystone's error shape, not the gateway's.
    payload = {"error": {"code": status, "message": message, "title": title}}
    return EmulatorReject(json_reply(status, payload), str(status))


class Iam:
    def __init__(self, ctx: SandboxContext) -> None:
        self._ctx = ctx
        users = ctx.options.get("iam_users") or [DEMO_IAM_USER]
        self._users = {(u["domain"], u["user"]): u["password"] for u in users}
        self._configured: Mapping[str, str] = ctx.options.get("projects") or {}

    # -------------------------------------------------------------- projects

    def project_for_region(self, region: str) -> str:
        project_id = (
            self._configured.get(region) or hashlib.sha256(f"sandbox:{region}".encode()).hexdigest()[:32]
        )
        self.remember(project_id, region)
        return project_id

    def remember(self, project_id: str, region: str) -> None:
        if self._ctx.store.get("project", project_id) is None:
            self._ctx.store.put("project", project_id, {"id": project_id, "region": region})

    def region_of(self, project_id: str) -> str:
        record = self._ctx.store.get("project", project_id)
        if record is None:
            for region, configured in self._configured.items():
                if configured == project_id:
                    return region
            return f"project-{project_id}"
        return str(record["region"])

    def list_projects(self, request: web.Request) -> web.Response:
        query = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        region = query.get("name")
        here = _base_url(request)
        if not region:
            return json_reply(200, {"projects": [], "links": _links(f"{here}{request.rel_url}")})
        project_id = self.project_for_region(region)
        domain_id = hashlib.sha256(b"sandbox-domain").hexdigest()[:32]
        project = {
            "id": project_id,
            "name": region,
            "domain_id": domain_id,
            "parent_id": domain_id,  # a region's project hangs off the account (domain)
            "enabled": True,
            "is_domain": False,
            "description": "",
            "links": _links(f"{here}/v3/projects/{project_id}"),
        }
        return json_reply(200, {"projects": [project], "links": _links(f"{here}{request.rel_url}")})

    # ---------------------------------------------------------------- tokens

    def requester(self, body: bytes) -> tuple[str, str]:
        """(user, region) named by a token request, for the audit log."""
        try:
            auth = json.loads(body)["auth"]
            user = auth["identity"]["password"]["user"]
            scope = auth.get("scope", {}).get("project", {})
            return f"{user['domain']['name']}/{user['name']}", str(scope.get("name") or scope.get("id") or "")
        except (ValueError, KeyError, TypeError):
            return "anonymous", ""

    def issue_token(self, request: web.Request, body: bytes) -> web.Response:
        try:
            auth: Any = json.loads(body)["auth"]
            user = auth["identity"]["password"]["user"]
            domain, name, password = user["domain"]["name"], user["name"], user["password"]
            scope = auth["scope"]["project"]
        except (ValueError, KeyError, TypeError):
            raise _keystone_error(400, "The request body is invalid.", "Bad Request") from None
        # Any user may sign in with the demo password, so that a plan written for
        # token auth rehearses under `run --sandbox` (which passes the demo credentials).
        if self._users.get((domain, name)) != password and password != DEMO_CREDENTIALS["iam_password"]:
            raise _keystone_error(401, "The username or password is wrong.", "Unauthorized")
        if scope.get("id"):
            project_id = str(scope["id"])
            region = self.region_of(project_id)
        else:
            region = str(scope.get("name") or "")
            project_id = self.project_for_region(region)
        token = "MII" + secrets.token_urlsafe(900)
        now = self._ctx.now()
        # The lifetime is 24 cloud hours, so a time-scaled sandbox expires tokens too.
        expires_wall = now + TOKEN_LIFETIME / max(self._ctx.time_scale, 1e-9)
        expires_at = iam_time(expires_wall)
        self._ctx.store.put(
            "iam_token",
            token_key(token),
            {
                "user": name,
                "domain": domain,
                "project_id": project_id,
                "expires_wall": expires_wall,
                "expires_at": expires_at,
            },
        )
        domain_ref = {"id": hashlib.sha256(domain.encode()).hexdigest()[:32], "name": domain}
        token_body: dict[str, Any] = {
            "expires_at": expires_at,
            "issued_at": iam_time(now),
            "methods": ["password"],
            "project": {"id": project_id, "name": region, "domain": domain_ref},
            "roles": [{"id": "0", "name": "op_service"}],
            "user": {
                "id": hashlib.sha256(name.encode()).hexdigest()[:32],
                "name": name,
                "password_expires_at": "",
                "domain": domain_ref,
            },
        }
        # A project-scoped token has no "domain"; the catalog is left out on ?nocatalog=<anything>.
        if not dict(parse_qsl(request.rel_url.raw_query_string)).get("nocatalog"):
            token_body["catalog"] = _catalog(_base_url(request), region)
        return json_reply(201, {"token": token_body}, headers={"X-Subject-Token": token})
