"""The Tencent Cloud API 3.0 client side: sign a described call, read the answer.

``TencentConnection`` is the only place that knows the wire format for the
providers: POST ``/`` with a JSON body and the common parameters in ``X-TC-*``
headers, signed with TC3-HMAC-SHA256 afresh on every attempt (so a retry after
``AuthFailure.SignatureExpire`` carries a new timestamp). Answers are judged by the
presence of ``Response.Error`` whatever the Content-Type — unlike the Python SDK,
which silently returns an empty result when a charset is appended. An action whose
answers are big and mostly unread (a list of jobs) may name a lean decoder in its
``ApiInfo``: it reads only the fields batchmig uses, and an answer it does not expect
is decoded in full instead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson
from batchmig.errors import PermanentError, ProviderError, ThrottleError, TransientError, UnknownOutcomeError
from batchmig.plugin import Answer, Call, Connection, HttpRequest, HttpResponse, ProviderConfig

from batchmig_tencentcloud import secret_refs
from batchmig_tencentcloud.codes import error_for
from batchmig_tencentcloud.options import TencentOptions
from batchmig_tencentcloud.signing import Signer

__all__ = ["ApiInfo", "TencentConnection", "account_label", "endpoint_for"]

USER_AGENT = "batchmig-tencentcloud/0.1.0"


@dataclass(frozen=True)
class ApiInfo:
    """One Tencent API: its signing service name, version, for each action the
    output fields a well-formed success answer must carry, and for some the lean
    decoder of their answers (see ``_envelope``)."""

    service: str
    version: str
    outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lean: Mapping[str, msgspec.json.Decoder[Any]] = field(default_factory=dict)


def endpoint_for(service: str, region: str, endpoint: str | None, options: TencentOptions) -> tuple[str, str]:
    """(URL, Host header) for a service: the override, else the public host."""
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}", parts.netloc
    host = f"{service}.{region}." if options.pin_region else f"{service}."
    host += options.root_domain
    return f"https://{host}/", host


def account_label(config: ProviderConfig) -> str:
    """The plan's account label, or a short fingerprint of the SecretId."""
    if config.account:
        return config.account
    secret_id = config.credentials.secret("secret_id")
    if not secret_id:
        return "anonymous"
    return "akid-" + hashlib.sha256(secret_id.encode("utf-8")).hexdigest()[:12]


class TencentConnection(Connection):
    """A signed, region-bound conversation with one Tencent API."""

    def __init__(self, config: ProviderConfig, api: ApiInfo, clock: Callable[[], float] = time.time) -> None:
        options = config.options if isinstance(config.options, TencentOptions) else TencentOptions()
        self.api = api
        self.region = config.region
        self.account = account_label(config)
        self._credentials = config.credentials
        self._clock = clock
        self.url, self.host = endpoint_for(api.service, config.region, config.endpoint, options)
        self._signer: Signer | None = None  # made for the first call (and again if the keys change)

    async def prepare(self, call: Call) -> HttpRequest:
        secret_id = self._credentials.secret("secret_id")
        secret_key = self._credentials.secret("secret_key")
        if not secret_id or not secret_key:
            raise PermanentError(
                "MissingCredentials",
                "no SecretId/SecretKey: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY "
                "or the provider's credentials",
            )
        body = secret_refs.json_body(call.params, self._credentials.secret)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Host": self.host,
            "X-TC-Action": call.action,
            "X-TC-Version": self.api.version,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
            "X-TC-Language": "en-US",
            "X-TC-RequestClient": USER_AGENT,
        }
        token = self._credentials.secret("session_token")
        if token:
            headers["X-TC-Token"] = token
        signer = self._signer
        if signer is None or not signer.signs_with(secret_id, secret_key):
            signer = self._signer = Signer(secret_id=secret_id, secret_key=secret_key, service=self.api.service,
                                           headers={"content-type": "application/json", "host": self.host})
        headers["Authorization"] = signer.authorization(timestamp, body)
        return HttpRequest("POST", self.url, headers, body)

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        answer = _envelope(response.body, self.api.lean.get(call.action))
        if answer is None:
            raise self._unreadable(call, response, "the body is not a Tencent Cloud API answer")
        request_id = answer.get("RequestId") if isinstance(answer.get("RequestId"), str) else None
        error = answer.get("Error")
        if error is not None:
            code = error.get("Code") if isinstance(error, Mapping) else None
            message = error.get("Message") if isinstance(error, Mapping) else None
            if not isinstance(code, str) or not code:
                raise self._unreadable(call, response, "Response.Error has no Code", request_id)
            raise error_for(code, str(message or ""), request_id, response.status)
        if response.status != 200:
            raise self._unreadable(call, response, f"HTTP {response.status} without an error", request_id)
        missing = [name for name in self.api.outputs.get(call.action, ()) if name not in answer]
        if request_id is None:
            missing.insert(0, "RequestId")
        if missing:
            raise self._unreadable(call, response, f"the answer lacks {', '.join(missing)}", request_id)
        return Answer(answer, request_id)

    @staticmethod
    def _unreadable(
        call: Call, response: HttpResponse, why: str, request_id: str | None = None
    ) -> ProviderError:
        if response.status == 429:
            return ThrottleError("HTTP429", why, request_id=request_id, http_status=429)
        kind = UnknownOutcomeError if call.mutating else TransientError
        snippet = response.body[:200].decode("utf-8", "replace")
        return kind(
            "InvalidResponse",
            f"{why} (HTTP {response.status}): {snippet!r}",
            request_id=request_id,
            http_status=response.status,
        )


def _envelope(body: bytes, lean: msgspec.json.Decoder[Any] | None = None) -> Mapping[str, Any] | None:
    """``Response`` of the answer, or None; through ``lean`` first, if given, and in full
    if that fails (an answer of another shape is judged as any other)."""
    document: Any = None
    if lean is not None:
        try:
            document = lean.decode(body)
        except msgspec.DecodeError:  # a validation error too
            document = None
    if document is None:
        try:
            document = orjson.loads(body)
        except ValueError:  # orjson's JSONDecodeError, also for bytes that are not UTF-8
            return None
    answer = document.get("Response") if isinstance(document, dict) else None
    return answer if isinstance(answer, dict) else None
