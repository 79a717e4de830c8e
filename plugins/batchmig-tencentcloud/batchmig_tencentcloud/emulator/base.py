"""What every Tencent Cloud API 3.0 endpoint does before and after the action.

``TencentEmulator`` verifies TC3-HMAC-SHA256 the way the cloud does (Host with its
port and Content-Type exactly as received, ±5 minutes of clock skew, the
credential-scope date equal to the UTC date of the timestamp), routes on
``X-TC-Action`` + ``X-TC-Version``, checks parameters against the action's schema
and answers in the API 3.0 envelope: always HTTP 200, ``Content-Type:
application/json`` with no charset (the Python SDK ignores ``Response.Error``
otherwise) and a ``RequestId``. Subclasses declare their actions and implement
them against ``ctx.store``.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

from aiohttp import web
from batchmig.emulator import Emulator, EmulatorReject, EmulatorReply, RequestInfo, SandboxContext

from batchmig_tencentcloud.demo import DEMO_SECRET_ID, DEMO_SECRET_KEY
from batchmig_tencentcloud.emulator.params import ApiError, Struct, coerce, unflatten
from batchmig_tencentcloud.signing import ALGORITHM, credential_date, sign

__all__ = [
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "REGIONS",
    "Action",
    "Outcome",
    "TencentEmulator",
    "cloud_time",
    "key",
    "parse_cloud_time",
]

MAX_SKEW = 300

REGIONS = frozenset(
    {
        "ap-guangzhou", "ap-shanghai", "ap-nanjing", "ap-beijing", "ap-chengdu", "ap-chongqing",
        "ap-hongkong", "ap-singapore", "ap-jakarta", "ap-bangkok", "ap-seoul", "ap-tokyo",
        "na-siliconvalley", "na-ashburn", "eu-frankfurt", "sa-saopaulo",
        "ap-shanghai-fsi", "ap-shenzhen-fsi",
    }
)  # fmt: skip

_AUTHORIZATION = re.compile(
    rf"^{ALGORITHM} Credential=(?P<id>[^/\s]+)/(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/"
    r"(?P<service>[^/\s]+)/tc3_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_BEIJING = timezone(timedelta(hours=8))
UNSET_TIME = "0000-00-00 00:00:00"


def cloud_time(wall: float | None) -> str:
    """A wall-clock time as the API prints it (Beijing time), or the unset marker."""
    if wall is None:
        return UNSET_TIME
    return datetime.fromtimestamp(wall, _BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_cloud_time(text: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING).timestamp()
    except ValueError:
        raise ApiError(
            "InvalidParameterValue",
            f"{text!r} is not a time such as 2024-01-31 08:00:00",
            f"{text!r} 不是形如 2024-01-31 08:00:00 的时间",
        ) from None


@dataclass(frozen=True)
class Outcome:
    """What an action handler produced: output fields, and what it did."""

    payload: Mapping[str, Any]
    resource: str | None = None
    changed: bool = False


@dataclass(frozen=True)
class Action:
    """One emulated action: its parameter schema, whether it writes, its handler name."""

    params: Struct
    handler: str
    mutating: bool = False


class TencentEmulator(Emulator):
    """Common API 3.0 behaviour; subclasses set ``service``, ``version``, ``actions``.

    Error messages come in the language of ``X-TC-Language`` (``en-US``; otherwise
    ``zh-CN``, the API's default and the official SDK's).
    """

    service: ClassVar[str]
    version: ClassVar[str]
    actions: ClassVar[Mapping[str, Action]]
    throttle_code: ClassVar[str] = "RequestLimitExceeded"
    """The code a throttled request gets: the common one, unless the product documents its own."""
    default_rate = 20.0

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.credentials = {DEMO_SECRET_ID: DEMO_SECRET_KEY, **dict(ctx.credentials)}
        self.session_tokens: Mapping[str, str] = dict(ctx.options.get("session_tokens", {}))

    # ------------------------------------------------------------------ envelope

    @staticmethod
    def respond(payload: Mapping[str, Any]) -> web.Response:
        body = {"Response": {**payload, "RequestId": str(uuid.uuid4())}}
        # Set the header by hand: aiohttp's content_type= would append "; charset=utf-8".
        return web.Response(
            status=200, body=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
        )

    @classmethod
    def error_response(cls, failure: ApiError, language: str) -> web.Response:
        return cls.respond({"Error": {"Code": failure.code, "Message": failure.message_in(language)}})

    def reject(self, language: str, code: str, message: str, message_zh: str) -> EmulatorReject:
        return EmulatorReject(self.error_response(ApiError(code, message, message_zh), language), code)

    def error(
        self,
        info: RequestInfo,
        kind: Literal["throttle", "internal", "unavailable"],
        code: str | None = None,
    ) -> web.Response:
        default, message, message_zh = {
            "throttle": (
                self.throttle_code,
                "Your current request rate exceeds the per-second limit of this API; retry later.",
                "您当前的请求频率超过了该接口的每秒频率上限，请稍后重试。",
            ),
            "internal": ("InternalError", "An internal error occurred.", "内部错误。"),
            "unavailable": ("ServiceUnavailable", "The service is temporarily unavailable.", "当前服务暂时不可用。"),
        }[kind]
        return self.error_response(ApiError(code or default, message, message_zh), info.language)

    # ---------------------------------------------------------- authentication

    async def authenticate(self, request: web.Request, body: bytes) -> RequestInfo:
        headers = request.headers
        language = headers.get("X-TC-Language", "")
        if request.method not in ("POST", "GET"):
            raise self.reject(
                language,
                "UnsupportedProtocol",
                "Only GET and POST requests are supported.",
                "仅支持 GET 和 POST 请求。",
            )
        action_name = headers.get("X-TC-Action", "")
        if not action_name:
            raise _missing(self, language, "Action")
        credential = self._verify(request, body, language)
        version = headers.get("X-TC-Version", "")
        if not version:
            raise _missing(self, language, "Version")
        if version != self.version:
            raise self.reject(
                language,
                "NoSuchVersion",
                f"The API version `{version}` does not exist.",
                f"接口版本 `{version}` 不存在。",
            )
        action = self.actions.get(action_name)
        if action is None:
            raise self.reject(
                language, "InvalidAction", f"The API `{action_name}` does not exist.", f"接口 `{action_name}` 不存在。"
            )
        region = headers.get("X-TC-Region", "")
        if not region:
            raise _missing(self, language, "Region")
        if region not in REGIONS:
            raise self.reject(
                language,
                "UnsupportedRegion",
                f"The API `{action_name}` is not supported in `{region}`.",
                f"接口 `{action_name}` 不支持地域 `{region}`。",
            )
        params = self._params(request, body, language)
        return RequestInfo(action_name, credential, region, action.mutating, params, language=language)

    def _verify(self, request: web.Request, body: bytes, language: str) -> str:
        headers = request.headers
        match = _AUTHORIZATION.match(headers.get("Authorization", ""))
        if match is None:
            raise self.reject(
                language,
                "AuthFailure.InvalidAuthorization",
                "The Authorization header is malformed.",
                "请求头部 Authorization 不符合腾讯云标准。",
            )
        raw_timestamp = headers.get("X-TC-Timestamp", "")
        if not raw_timestamp.isdigit():
            raise _missing(self, language, "Timestamp")
        timestamp = int(raw_timestamp)
        if abs(self.ctx.now() - timestamp) > MAX_SKEW:
            raise self.reject(
                language,
                "AuthFailure.SignatureExpire",
                "The signature expired: the timestamp differs from server time by more than five minutes.",
                "签名过期：Timestamp 与服务器时间相差超过五分钟。",
            )
        secret_id = match["id"]
        secret_key = self.credentials.get(secret_id)
        if secret_key is None:
            raise self.reject(
                language,
                "AuthFailure.SecretIdNotFound",
                "The SecretId does not exist or is disabled.",
                "密钥不存在或已被禁用。",
            )
        signed = tuple(match["signed"].split(";"))
        if (
            "content-type" not in signed
            or "host" not in signed
            or any(name not in headers for name in signed)
        ):
            raise self.reject(
                language,
                "AuthFailure.InvalidAuthorization",
                "SignedHeaders must cover content-type and host.",
                "SignedHeaders 必须包含 content-type 和 host。",
            )
        if match["service"] != self.service or match["date"] != credential_date(timestamp):
            raise self.reject(
                language,
                "AuthFailure.SignatureFailure",
                "The credential scope does not match the request.",
                "凭证范围与请求不符。",
            )
        expected = sign(
            secret_id=secret_id,
            secret_key=secret_key,
            service=self.service,
            timestamp=timestamp,
            headers={name: headers[name] for name in signed},
            payload=body,
            method=request.method,
            query=request.rel_url.raw_query_string if request.method == "GET" else "",
            signed_headers=signed,
        )
        if not hmac.compare_digest(expected.signature, match["signature"]):
            raise self.reject(
                language,
                "AuthFailure.SignatureFailure",
                "The request signature does not match.",
                "请求签名验证失败，请检查您的签名计算是否正确。",
            )
        token = headers.get("X-TC-Token")
        if token is not None and self.session_tokens.get(secret_id) != token:
            raise self.reject(
                language,
                "AuthFailure.TokenFailure",
                "The token is invalid or expired.",
                "临时证书 Token 无效或已过期。",
            )
        return secret_id

    def _params(self, request: web.Request, body: bytes, language: str) -> Mapping[str, Any]:
        content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        try:
            if request.method == "GET":
                return unflatten(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        except ApiError as failure:
            raise EmulatorReject(self.error_response(failure, language), failure.code) from None
        if content_type != "application/json":
            raise self.reject(
                language,
                "InvalidParameter",
                "With TC3-HMAC-SHA256, POST requests must use Content-Type application/json.",
                "使用 TC3-HMAC-SHA256 签名时，POST 请求的 Content-Type 必须是 application/json。",
            )
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise self.reject(
                language, "InvalidParameter", "The request body is not valid JSON.", "请求体不是合法的 JSON。"
            ) from None
        if not isinstance(params, dict):
            raise self.reject(
                language, "InvalidParameter", "The request body must be a JSON object.", "请求体必须是 JSON 对象。"
            )
        return params

    # ------------------------------------------------------------------ actions

    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        action = self.actions[info.action]
        try:
            params = coerce(dict(info.params), action.params)
            handler: Callable[[dict[str, Any], RequestInfo], Outcome] = getattr(self, action.handler)
            outcome = handler(params, info)
        except ApiError as failure:
            return EmulatorReply(self.error_response(failure, info.language))
        return EmulatorReply(self.respond(outcome.payload), outcome.resource, outcome.changed)

    # ------------------------------------------------------------------ helpers

    def option(self, name: str, default: float) -> float:
        """A duration (cloud seconds) or other number from the sandbox options."""
        value = self.ctx.options.get(name, default)
        return float(value)

    def elapsed(self, since: float | None, duration_option: str, default: float) -> bool:
        """Whether ``duration_option`` cloud seconds have passed since ``since``."""
        return since is not None and self.ctx.cloud_seconds_since(since) >= self.option(
            duration_option, default
        )

    def finished_at(self, since: float, duration_option: str, default: float) -> float:
        """The wall-clock time at which a timed transition from ``since`` happens."""
        scale = self.ctx.time_scale or 1.0
        return since + self.option(duration_option, default) / scale

    def new_id(self, prefix: str, kind: str, region: str) -> str:
        """A fresh ``prefix-xxxxxxxx`` id (lower-case letters and digits), unused in ``kind``."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        while True:
            suffix = "".join(alphabet[int(self.ctx.random() * len(alphabet))] for _ in range(8))
            candidate = f"{prefix}-{suffix}"
            if self.ctx.store.get(kind, key(region, candidate)) is None:
                return candidate


def _missing(emulator: TencentEmulator, language: str, name: str) -> EmulatorReject:
    return emulator.reject(
        language,
        "MissingParameter",
        f"The request is missing a required parameter `{name}`.",
        f"缺少必填参数 `{name}`。",
    )


def key(region: str, resource_id: str) -> str:
    """Store key: resources are regional, as in the cloud."""
    return f"{region}/{resource_id}"
