"""The ApsaraDB RDS wire protocol (API 2014-08-15), client side: sign a call, read the answer.

RPC style as the official SDK sends it: ``POST /`` with the action's parameters in the
query string and an empty body, the action and version in ``x-acs-action`` /
``x-acs-version``, and the V3 signature (``signing.py``) in ``Authorization``. An STS
token, when the credentials carry one, travels in ``x-acs-security-token`` (signed).

A success is HTTP 200 with a JSON body holding ``RequestId``; an error is a 4xx/5xx
with ``{"RequestId", "HostId", "Code", "Message", "Recommend"}``. Errors are classified
by ``Code`` first (``ERROR_KINDS``), by HTTP status second: an unknown 4xx is permanent,
an unknown 5xx transient. The request id is on the answer and on every error.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
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

from batchmig_alibabacloud.signing import authorization, canonical_query, payload_hash

__all__ = ["API_VERSION", "ERROR_KINDS", "AlibabaConnection", "classify", "endpoint_for", "wire_value"]

API_VERSION = "2014-08-15"

ERROR_KINDS: dict[str, type[ProviderError]] = {
    # Throttling, documented for every product (HTTP 400; some answer 429).
    "Throttling": ThrottleError,
    "Throttling.User": ThrottleError,
    "Throttling.Api": ThrottleError,
    "Throttling.Concurrent": ThrottleError,
    "ServiceUnavailable": TransientError,
    "InternalError": TransientError,
    "UnknownError": TransientError,
    "ServiceUnavailableTemp": TransientError,
    # The DB instance (or the migration task) named does not exist.
    "Forbidden.InstanceNotFound": NotFoundError,
    "InvalidDBInstanceId.NotFound": NotFoundError,
    "InvalidMigrateTaskId.NotFound": NotFoundError,
    # Everything else that is documented is permanent: a repeat gets the same refusal.
    "MissingParameter": PermanentError,
    "InvalidParameter": PermanentError,
    "UnsupportedOperation": PermanentError,
    "NoSuchVersion": PermanentError,
    "InvalidAccessKeyId.NotFound": PermanentError,
    "IncompleteSignature": PermanentError,
    "SignatureDoesNotMatch": PermanentError,
    "SignatureNonceUsed": TransientError,  # a fresh nonce is drawn on every attempt
    "InvalidTimeStamp.Expired": TransientError,  # re-signed with a fresh date on every attempt
    "Forbidden": PermanentError,
    "Forbidden.RAM": PermanentError,
    "Forbidden.RiskControl": PermanentError,
    "InvalidAction": PermanentError,
    "InvalidAction.NotFound": PermanentError,
    "InsufficientBalance": PermanentError,
    "IncorrectDBInstanceState": PermanentError,
    "IncorrectMigrateTaskStatus": PermanentError,
    "InvalidDBName.Duplicate": PermanentError,
}
"""Documented codes (and the few assumed ones the README lists) by what a repeat would do."""


def classify(code: str, message: str, status: int, request_id: str | None) -> ProviderError:
    """The error an error answer means: by code, then by status (4xx permanent, 5xx transient)."""
    kind = ERROR_KINDS.get(code)
    if kind is None:
        kind = ThrottleError if status == 429 else TransientError if status >= 500 else PermanentError
    return kind(code or f"HTTP{status}", message, request_id=request_id, http_status=status)


CENTRAL_REGIONS = frozenset({"cn-qingdao", "cn-beijing", "cn-hangzhou", "cn-shanghai", "cn-shenzhen", "cn-heyuan",
                             "cn-hongkong", "ap-southeast-1", "us-west-1", "us-east-1"})
"""Regions the central endpoint serves (as the official SDK's endpoint map says)."""


def endpoint_for(region: str) -> str:
    """The public endpoint of a region: the central one, else ``rds.<region>.aliyuncs.com``."""
    return "https://rds.aliyuncs.com" if region in CENTRAL_REGIONS else f"https://rds.{region}.aliyuncs.com"


EMPTY_BODY_SHA256 = payload_hash(b"")
"""``x-acs-content-sha256`` of every call: RPC calls carry their parameters in the query."""


def wire_value(value: object) -> str:
    """A parameter as the query string carries it (booleans as ``True``/``False``)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


@functools.lru_cache(maxsize=2)  # a run signs hundreds of calls in the same second
def _acs_date(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


class AlibabaConnection(Connection):
    """One ``providers:`` entry of the plan, ready to sign calls with its AccessKey."""

    def __init__(self, config: ProviderConfig, clock: Callable[[], float] = time.time) -> None:
        self.region = config.region
        self._key_id = config.credentials.secret("access_key_id") or ""
        self._secret = config.credentials.secret("access_key_secret") or ""
        self._token = config.credentials.secret("security_token") or ""
        # The rate-limit account: the plan's label, else a fingerprint of the key id (never the secret).
        self.account = config.account or "ak-" + hashlib.sha256(self._key_id.encode()).hexdigest()[:10]
        self._url = (config.endpoint or endpoint_for(config.region)).rstrip("/") + "/"
        self._host = urlsplit(self._url).netloc
        self._clock = clock
        # Signature nonces: unique per call, as the cloud wants, without a system call (and a
        # release of the GIL) per call: 64 random bits per connection, then a count.
        self._nonce_prefix = os.urandom(8).hex()
        self._nonces = itertools.count()

    async def prepare(self, call: Call) -> HttpRequest:
        if not self._key_id or not self._secret:
            raise PermanentError("MissingCredentials",
                                 "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        query = canonical_query({name: wire_value(value) for name, value in call.params.items() if value is not None})
        headers = {
            "host": self._host,
            "x-acs-action": call.action,
            "x-acs-version": API_VERSION,
            # Fresh on every attempt: a retry is a new request (the cloud refuses a nonce seen before).
            "x-acs-date": _acs_date(math.floor(self._clock())),
            "x-acs-signature-nonce": f"{self._nonce_prefix}{next(self._nonces):016x}",
            "x-acs-content-sha256": EMPTY_BODY_SHA256,
            "accept": "application/json",
        }
        if self._token:
            headers["x-acs-security-token"] = self._token
        headers["Authorization"] = authorization(self._key_id, self._secret, "POST", "/", query, headers)
        return HttpRequest("POST", f"{self._url}?{query}" if query else self._url, headers)

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        try:
            document: Any = orjson.loads(response.body)
        except ValueError:  # orjson's JSONDecodeError, also for bytes that are not UTF-8
            document = None
        found = document.get("RequestId") if isinstance(document, dict) else None
        request_id = str(found) if found else None
        if isinstance(document, dict) and response.status >= 400 and document.get("Code"):
            raise classify(str(document["Code"]), str(document.get("Message", "")), response.status, request_id)
        if response.status >= 400:  # no error body (a proxy, a gateway): the status says it all
            raise classify("", f"HTTP {response.status} without an RDS error body", response.status, request_id)
        if response.status != 200 or not isinstance(document, dict) or request_id is None:
            # A write whose answer cannot be read may have acted; a read is just asked again.
            kind = UnknownOutcomeError if call.mutating else TransientError
            raise kind("UnreadableAnswer", f"HTTP {response.status}: not an RDS answer",
                       request_id=request_id, http_status=response.status)
        return Answer(document, request_id)
