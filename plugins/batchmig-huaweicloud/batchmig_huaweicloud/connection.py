"""One ``huawei-drs`` provider configuration made ready to talk to DRS.

``prepare`` turns a ``Call`` into a signed ``HttpRequest`` (fresh ``X-Sdk-Date`` on
every attempt); ``parse`` turns the answer into a payload or a classified error (see
``responses``). The project id is taken from the plan, the credentials or, once and
for all, from IAM; it is the first path segment of every DRS URL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import orjson
from batchmig.errors import PermanentError, TransientError, UnknownOutcomeError
from batchmig.plugin import Answer, Call, Connection, Credentials, HttpFetch, HttpRequest, HttpResponse

from batchmig_huaweicloud import api
from batchmig_huaweicloud.auth import AkSk, IamToken, host_of, resolve_project_id, sdk_headers
from batchmig_huaweicloud.responses import error_for, is_token_rejection, read_error_body, read_payload
from batchmig_huaweicloud.settings import DrsOptions
from batchmig_huaweicloud.signer import percent_encode

__all__ = ["DrsConnection", "account_label", "query_pairs"]


def account_label(account: str | None, access_key: str | None, user: str | None) -> str:
    """The rate-limit account: the plan's label, else a fingerprint (never a secret)."""
    if account:
        return account
    seed = access_key or user
    if not seed:
        return "anonymous"
    return "ak-" + hashlib.sha256(seed.encode()).hexdigest()[:12]


def query_pairs(query: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters as wire pairs: lists repeat the key, booleans are true/false."""
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((name, text))
    return pairs


class DrsConnection(Connection):
    def __init__(
        self,
        *,
        region: str,
        account: str | None,
        endpoint: str,
        iam_url: str,
        options: DrsOptions,
        credentials: Credentials,
        fetch: HttpFetch,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.endpoint = endpoint.rstrip("/")
        self._host = host_of(self.endpoint)
        self._iam_url = iam_url
        self._options = options
        self._fetch = fetch
        self._clock = clock
        self._project_id = options.project_id or credentials.secret("project_id")
        self._project_lock = anyio.Lock()
        ak, sk = credentials.secret("ak"), credentials.secret("sk")
        self._keys = AkSk(ak, sk, credentials.secret("security_token")) if ak and sk else None
        self._token: IamToken | None = None
        password = credentials.secret("iam_password")
        if options.auth == "token" and options.iam_user and options.iam_domain and password:
            self._token = IamToken(
                fetch=fetch,
                iam_url=iam_url,
                user=options.iam_user,
                password=password,
                domain=options.iam_domain,
                region=region,
                project_id=self._project_id,
                clock=clock,
            )
        self.account = account_label(
            account, ak, options.iam_user and f"{options.iam_domain}/{options.iam_user}"
        )

    def __repr__(self) -> str:
        return f"DrsConnection(region={self.region!r}, account={self.account!r}, endpoint={self.endpoint!r})"

    # ----------------------------------------------------------------- prepare

    async def prepare(self, call: Call) -> HttpRequest:
        operation = api.ACTIONS.get(call.action)
        if operation is None:
            raise PermanentError("batchmig.UnknownAction", f"huawei-drs has no action {call.action!r}")
        project_id = self._project_id or await self.project_id()
        path = operation.path.format(
            project_id=percent_encode(project_id), job_id=percent_encode(str(call.params.get("job_id", "")))
        )
        query = query_pairs(call.params.get("query") or {})
        url = self.endpoint + path
        if query:
            url += "?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in query)
        body = b""
        if "body" in call.params:
            body = orjson.dumps(call.params["body"])
        headers = sdk_headers(self._host, self._clock)
        headers["X-Project-Id"] = project_id
        if self._options.language:
            headers["X-Language"] = self._options.language
        if self._options.auth == "token":
            return await self._with_token(HttpRequest(operation.method, url, headers, body))
        if self._keys is None:
            raise PermanentError(
                "batchmig.MissingCredentials",
                "AK/SK auth needs the ak and sk credentials (HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK)",
            )
        self._keys.add_signature(headers, operation.method, path, query, body)
        return HttpRequest(operation.method, url, headers, body)

    async def _with_token(self, request: HttpRequest) -> HttpRequest:
        if self._token is None:
            raise PermanentError(
                "batchmig.MissingCredentials",
                "token auth needs options.iam_user, options.iam_domain and the iam_password credential",
            )
        headers = dict(request.headers)
        headers["X-Auth-Token"] = await self._token.get()
        return HttpRequest(request.method, request.url, headers, request.body)

    async def project_id(self) -> str:
        """The region's project id, resolved at most once per connection."""
        if self._project_id:
            return self._project_id
        async with self._project_lock:
            if not self._project_id:
                if self._options.auth == "token" and self._token is not None:
                    await self._token.get()
                    self._project_id = self._token.project_id
                elif self._keys is not None:
                    self._project_id = await resolve_project_id(
                        self._fetch, self._iam_url, self.region, self._keys, self._clock
                    )
            if not self._project_id:
                raise PermanentError(
                    "batchmig.NoProject",
                    "no project id: set options.project_id or HUAWEICLOUD_SDK_PROJECT_ID",
                )
            return self._project_id

    # ------------------------------------------------------------------- parse

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        # DRS carries the request id in a header only: it goes into the Answer, where
        # the journal and the report take it from.
        request_id = response.headers.get("x-request-id")
        operation = api.ACTIONS.get(call.action)
        mutating = call.mutating or (operation is not None and operation.mutating)
        if not 200 <= response.status < 300:
            if self._token is not None and is_token_rejection(
                response.status, read_error_body(response.status, response.body)
            ):
                self._token.invalidate()
            raise error_for(response.status, response.body, request_id, mutating=mutating)
        payload = read_payload(response.status, response.body, request_id, mutating=mutating)
        if call.action == api.CREATE and not payload.get("job_id"):
            raise UnknownOutcomeError(
                "UnreadableAnswer", "create answered without job_id", request_id=request_id, http_status=200
            )
        # An empty or cut-off 200 is not "no jobs": a reconcile that read it so would
        # create a second job. Retried like any unreadable answer.
        if (call.action == api.LIST and not isinstance(payload.get("jobs"), list)) or (
            call.action == api.SHOW and not payload.get("id")
        ):
            what = "a jobs list" if call.action == api.LIST else "a job id"
            raise TransientError(
                "UnreadableAnswer", f"HTTP {response.status} without {what}", request_id=request_id,
                http_status=response.status,
            )
        return Answer(payload, request_id)
