"""How answers are classified (``Connection.parse``)."""

from __future__ import annotations

import json

import pytest
from batchmig.errors import (
    NotFoundError,
    PermanentError,
    ProviderError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)
from batchmig.plugin import Answer, Call, HttpResponse
from batchmig.testing import provider_config

from batchmig_huaweicloud import api
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsOptions

SHOW = Call(api.SHOW, {"job_id": "j1"})
LIST = Call(api.LIST, {"query": {"name": "bm-db01-1234abcd-full"}})
CREATE = Call(api.CREATE, {"body": {}}, mutating=True)


def answer(status: int, payload: object, request_id: str | None = "rid-1") -> HttpResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return HttpResponse(status, {"x-request-id": request_id} if request_id else {}, body)


async def _no_fetch(request: object) -> HttpResponse:
    raise AssertionError("no fetch expected")


def parse(call: Call, response: HttpResponse) -> object:
    config = provider_config("huawei-drs", "http://127.0.0.1:1", DEMO_CREDENTIALS, options=DrsOptions())
    connection = DrsProvider().connect(config, _no_fetch)
    return connection.parse(call, response)


@pytest.mark.parametrize(
    ("call", "status", "payload", "kind", "code"),
    [
        (
            SHOW,
            429,
            {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"},
            ThrottleError,
            "APIGW.0308",
        ),
        (SHOW, 429, {"error_code": "APIG.0308", "error_msg": "over ratelimit"}, ThrottleError, "APIG.0308"),
        (CREATE, 429, b"<html>busy</html>", ThrottleError, "HTTP429"),
        (
            CREATE,
            400,
            {"error_code": "DRS.M01503", "error_msg": "Operation too frequent."},
            ThrottleError,
            "DRS.M01503",
        ),
        (
            SHOW,
            500,
            {"error_code": "DRS.M00004", "error_msg": "Service is abnormal."},
            TransientError,
            "DRS.M00004",
        ),
        (CREATE, 503, b"", TransientError, "HTTP503"),
        (
            SHOW,
            400,
            {"error_code": "DRS.10000010", "error_msg": "Job does not exist"},
            NotFoundError,
            "DRS.10000010",
        ),
        (
            CREATE,
            400,
            {"error_code": "DRS.M00202", "error_msg": "The value of name is invalid."},
            PermanentError,
            "DRS.M00202",
        ),
        (
            SHOW,
            403,
            {"error_code": "DRS.M00261", "error_msg": "Invalid project ID."},
            PermanentError,
            "DRS.M00261",
        ),
        (
            SHOW,
            401,
            {
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
            },
            PermanentError,
            "APIGW.0301",
        ),
        (
            SHOW,
            401,
            {
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: token expires, expires_at: x",
            },
            TransientError,
            "APIGW.0301",
        ),
        (
            SHOW,
            404,
            {"error": {"code": "APIGW.0101", "message": "The API does not exist"}},
            PermanentError,
            "APIGW.0101",
        ),
        (SHOW, 400, {"errorCode": "X.1", "errorMsg": "camel"}, PermanentError, "X.1"),
        (SHOW, 400, b"not json", TransientError, "HTTP400"),
        (CREATE, 400, b"not json", UnknownOutcomeError, "HTTP400"),
        (SHOW, 200, b"{broken", TransientError, "UnreadableAnswer"),
        (CREATE, 200, b"{broken", UnknownOutcomeError, "UnreadableAnswer"),
        (CREATE, 200, {"no": "job id"}, UnknownOutcomeError, "UnreadableAnswer"),
        # an empty or cut-off list is not "no jobs": a reconcile would create a second job
        (LIST, 200, b"", TransientError, "UnreadableAnswer"),
        (LIST, 200, {"count": 0}, TransientError, "UnreadableAnswer"),
        (SHOW, 200, b"", TransientError, "UnreadableAnswer"),
    ],
)
def test_classification(
    call: Call, status: int, payload: object, kind: type[ProviderError], code: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        parse(call, answer(status, payload))
    assert type(caught.value) is kind
    assert caught.value.code == code
    assert caught.value.request_id == "rid-1"
    assert caught.value.http_status == status


def test_cloud_message_is_kept() -> None:
    with pytest.raises(PermanentError) as caught:
        parse(CREATE, answer(400, {"error_code": "DRS.M00202", "error_msg": "The value of name is invalid."}))
    assert caught.value.message == "The value of name is invalid."
    assert "rid-1" in str(caught.value)


def test_success_answers_carry_the_header_request_id_beside_the_payload() -> None:
    assert parse(CREATE, answer(200, {"job_id": "j-1"})) == Answer({"job_id": "j-1"}, "rid-1")
    assert parse(Call(api.DELETE, {"job_id": "j"}, mutating=True), answer(200, b"", None)) == Answer({})
    assert parse(LIST, answer(200, {"count": 0, "jobs": []}, None)) == Answer({"count": 0, "jobs": []})
    assert parse(SHOW, answer(200, {"id": "j", "status": "SUCCESS"}, None)) == Answer({"id": "j", "status": "SUCCESS"})
