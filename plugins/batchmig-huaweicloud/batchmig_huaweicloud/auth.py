"""How a connection proves who it is: AK/SK signatures or an IAM token.

AK/SK is what Huawei's SDKs use and the default here: every request is signed, no
state. Token auth suits accounts that hand out IAM users rather than access keys: one
``POST /v3/auth/tokens`` gives a token (header ``X-Subject-Token``, valid 24 hours)
that is cached and fetched again before it expires, because Huawei warns that a token
close to expiry can fail mid-call. Tokens and the project lookup go through the
connection's raw ``fetch``: they are housekeeping, not API calls, so they neither
spend the rate budget nor enter the journal. Secrets and tokens are never put in a
repr, a message or a log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote, urlsplit

import anyio
from batchmig.errors import PermanentError, TransientError
from batchmig.plugin import HttpFetch, HttpRequest

from batchmig_huaweicloud import signer
from batchmig_huaweicloud.responses import error_for

__all__ = ["AkSk", "IamToken", "resolve_project_id"]

Clock = Callable[[], float]
TOKEN_LIFETIME = 24 * 3600


class AkSk:
    """An access key pair (and, for temporary keys, the STS security token)."""

    def __init__(self, access_key: str, secret_key: str, security_token: str | None = None) -> None:
        self.access_key = access_key
        self._secret_key = secret_key
        self._security_token = security_token

    def __repr__(self) -> str:
        return f"AkSk(access_key={self.access_key!r}, secret_key=***)"

    def sign(self, request: HttpRequest, *, path: str, query: list[tuple[str, str]]) -> HttpRequest:
        """``request`` with ``Authorization`` (and ``X-Security-Token``) added."""
        headers = dict(request.headers)
        self.add_signature(headers, request.method, path, query, request.body)
        return HttpRequest(request.method, request.url, headers, request.body)

    def add_signature(
        self, headers: dict[str, str], method: str, path: str, query: list[tuple[str, str]], body: bytes
    ) -> None:
        """Add ``Authorization`` (and ``X-Security-Token``) to the headers of a request to be made."""
        if self._security_token:
            headers["X-Security-Token"] = self._security_token
        headers["Authorization"] = signer.sign(
            access_key=self.access_key,
            secret_key=self._secret_key,
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
        )


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def sdk_headers(host: str, clock: Clock) -> dict[str, str]:
    """The headers every Huawei request to ``host`` carries and signs."""
    return {
        "Content-Type": "application/json",
        "Host": host,
        "X-Sdk-Date": signer.format_sdk_date(clock()),
    }


class IamToken:
    """A cached, self-refreshing IAM token for one user, scoped to one region's project."""

    def __init__(
        self,
        *,
        fetch: HttpFetch,
        iam_url: str,
        user: str,
        password: str,
        domain: str,
        region: str,
        project_id: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._fetch = fetch
        self._url = iam_url.rstrip("/") + "/v3/auth/tokens?nocatalog=true"
        self._user = user
        self._password = password
        self._domain = domain
        self._region = region
        self._clock = clock
        self._lock = anyio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.project_id = project_id

    def __repr__(self) -> str:
        return f"IamToken(user={self._user!r}, domain={self._domain!r}, token=***)"

    def invalidate(self) -> None:
        """Forget the token (the gateway said it expired or cannot be decrypted)."""
        self._token = None

    async def get(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                await self._issue()
            assert self._token is not None
            return self._token

    async def _issue(self) -> None:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._user,
                            "password": self._password,
                            "domain": {"name": self._domain},
                        }
                    },
                },
                # A known project id scopes the token exactly; else the region's project.
                "scope": {"project": {"id": self.project_id} if self.project_id else {"name": self._region}},
            }
        }
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json;charset=utf8", "Host": host_of(self._url)}
        sent_at = self._clock()
        answer = await self._fetch(HttpRequest("POST", self._url, headers, payload))
        request_id = answer.headers.get("x-request-id")
        if answer.status != 201:
            raise error_for(answer.status, answer.body, request_id, mutating=False)
        token = answer.headers.get("x-subject-token")
        if not token:
            raise TransientError(
                "IAM.NoToken", "IAM answered 201 without X-Subject-Token", request_id=request_id
            )
        project_id, lifetime = _token_facts(answer.body)
        # Refresh well before expiry: at most an hour early, at least 10% of the lifetime.
        self._refresh_at = sent_at + lifetime - min(3600.0, 0.1 * lifetime)
        self._token = token
        self.project_id = project_id or self.project_id


def _token_facts(body: bytes) -> tuple[str | None, float]:
    """(project id, lifetime in seconds) of a token answer; 24 hours if unreadable."""
    lifetime = float(TOKEN_LIFETIME)
    try:
        token = json.loads(body)["token"]
    except (ValueError, KeyError, TypeError):
        return None, lifetime
    project = token.get("project") or {}
    try:
        expires = datetime.fromisoformat(str(token["expires_at"]))
        issued = datetime.fromisoformat(str(token["issued_at"]))
        lifetime = max(60.0, (expires - issued).total_seconds())
    except (KeyError, ValueError):
        pass
    return (str(project["id"]) if project.get("id") else None), lifetime


async def resolve_project_id(
    fetch: HttpFetch, iam_url: str, region: str, keys: AkSk, clock: Clock = time.time
) -> str:
    """The project id of ``region``, as the SDK resolves it (``GET /v3/projects``)."""
    path = "/v3/projects"
    query = [("name", region)]
    url = f"{iam_url.rstrip('/')}{path}?name={quote(region, safe='~')}"
    request = keys.sign(HttpRequest("GET", url, sdk_headers(host_of(url), clock)), path=path, query=query)
    answer = await fetch(request)
    request_id = answer.headers.get("x-request-id")
    if answer.status != 200:
        raise error_for(answer.status, answer.body, request_id, mutating=False)
    try:
        projects = json.loads(answer.body)["projects"]
    except (ValueError, KeyError, TypeError):
        raise TransientError(
            "IAM.Unreadable", "cannot read IAM's project list", request_id=request_id
        ) from None
    if len(projects) != 1:
        raise PermanentError(
            "IAM.ProjectNotFound",
            f"IAM knows {len(projects)} projects named {region!r}; set options.project_id in the plan",
            request_id=request_id,
        )
    return str(projects[0]["id"])
