"""Preparing requests: signing, endpoints, project id, IAM tokens, account labels."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from batchmig.errors import PermanentError
from batchmig.plugin import Call, HttpRequest, HttpResponse
from batchmig.testing import provider_config

from batchmig_huaweicloud import api, signer
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsOptions
from batchmig_huaweicloud.status import job_state, normalise_recovery_mode

NOW = 1704067200.0  # 2024-01-01T00:00:00Z


class FakeIam:
    """Answers IAM's token and project calls and records them."""

    def __init__(self, lifetime_hours: float = 24.0) -> None:
        self.requests: list[HttpRequest] = []
        self.lifetime_hours = lifetime_hours
        self.issued = 0

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if "/v3/projects" in request.url:
            projects = {"projects": [{"id": "p-from-iam", "name": "cn-north-4"}]}
            return HttpResponse(200, {"x-request-id": "r"}, json.dumps(projects).encode())
        self.issued += 1
        expires = (
            "2024-01-02T00:00:00.000000Z" if self.lifetime_hours == 24 else "2024-01-01T01:00:00.000000Z"
        )
        body: dict[str, Any] = {
            "token": {
                "issued_at": "2024-01-01T00:00:00.000000Z",
                "expires_at": expires,
                "project": {"id": "p-from-token", "name": "cn-north-4"},
            }
        }
        return HttpResponse(201, {"x-subject-token": f"MIItoken{self.issued}"}, json.dumps(body).encode())


def config(url: str | None, credentials: Any = None, options: DrsOptions | None = None, region: str = "cn-north-4"):  # type: ignore[no-untyped-def]
    """The plan's ``hw`` entry: the sandbox's demo keys unless ``credentials`` says otherwise."""
    creds = DEMO_CREDENTIALS if credentials is None else credentials
    return provider_config("huawei-drs", url, creds, region=region, options=options or DrsOptions(), name="hw")


def connect(fetch: Callable[[HttpRequest], object], clock: list[float], url: str | None, **more: Any):  # type: ignore[no-untyped-def]
    provider = DrsProvider(clock=lambda: clock[0])
    return provider.connect(config(url, **more), fetch)  # type: ignore[arg-type]


def verify(request: HttpRequest, secret_key: str) -> None:
    parts = urlsplit(request.url)
    parsed = signer.parse_authorization(request.headers["Authorization"])
    assert parsed is not None
    canonical = signer.canonical_request(
        request.method,
        parts.path,
        parse_qsl(parts.query),
        request.headers,
        parsed.signed_headers,
        request.body,
    )
    expected = signer.signature(secret_key, signer.string_to_sign(request.headers["X-Sdk-Date"], canonical))
    assert parsed.signature == expected


@pytest.mark.anyio
async def test_prepare_signs_what_it_sends() -> None:
    clock = [NOW]
    conn = connect(FakeIam(), clock, url=None)
    call = Call(
        api.LIST,
        {
            "query": {
                "name": "bm-db",
                "limit": 10,
                "status": "PRECHECK FAILED",
                "dbs_instance_ids": ["i1", "i2"],
                "nothing": None,
            }
        },
    )
    request = await conn.prepare(call)
    assert request.method == "GET"
    assert request.url.startswith(
        f"https://drs.cn-north-4.myhuaweicloud.com/v5/{DEMO_CREDENTIALS['project_id']}/"
    )
    assert "status=PRECHECK%20FAILED" in request.url
    assert "dbs_instance_ids=i1&dbs_instance_ids=i2" in request.url
    assert "nothing" not in request.url
    assert request.headers["X-Sdk-Date"] == "20240101T000000Z"
    assert request.headers["Host"] == "drs.cn-north-4.myhuaweicloud.com"
    assert request.headers["X-Project-Id"] == DEMO_CREDENTIALS["project_id"]
    assert "content-type;host;x-project-id;x-sdk-date" in request.headers["Authorization"]
    verify(request, DEMO_CREDENTIALS["sk"])

    create = await conn.prepare(Call(api.CREATE, {"body": {"base_info": {"name": "ünï"}}}, mutating=True))
    assert create.method == "POST"
    assert json.loads(create.body) == {"base_info": {"name": "ünï"}}
    verify(create, DEMO_CREDENTIALS["sk"])
    clock[0] += 60
    again = await conn.prepare(Call(api.SHOW, {"job_id": "a/b"}))
    assert again.url.endswith("/backup-migration-jobs/a%2Fb")
    assert again.headers["X-Sdk-Date"] == "20240101T000100Z"


@pytest.mark.anyio
async def test_endpoint_override_eu_region_and_sts_token() -> None:
    creds = {**DEMO_CREDENTIALS, "security_token": "sts-token"}
    conn = connect(FakeIam(), [NOW], url="http://127.0.0.1:8080", credentials=creds)
    request = await conn.prepare(Call(api.SHOW, {"job_id": "j"}))
    assert request.url.startswith("http://127.0.0.1:8080/v5/")
    assert request.headers["Host"] == "127.0.0.1:8080"
    assert "x-security-token" in request.headers["Authorization"]
    assert api.drs_endpoint("eu-west-101") == "https://drs.eu-west-101.myhuaweicloud.eu"


@pytest.mark.anyio
async def test_project_id_resolved_once_from_iam_when_not_given() -> None:
    iam = FakeIam()
    creds = {"ak": DEMO_CREDENTIALS["ak"], "sk": DEMO_CREDENTIALS["sk"]}
    conn = connect(iam, [NOW], url="http://127.0.0.1:9", credentials=creds)
    for _ in range(3):
        request = await conn.prepare(Call(api.SHOW, {"job_id": "j"}))
        assert "/v5/p-from-iam/" in request.url
    assert len(iam.requests) == 1
    lookup = iam.requests[0]
    assert lookup.url == "http://127.0.0.1:9/v3/projects?name=cn-north-4"
    verify(lookup, DEMO_CREDENTIALS["sk"])


@pytest.mark.anyio
async def test_plan_project_id_wins() -> None:
    conn = connect(FakeIam(), [NOW], url=None, options=DrsOptions(project_id="p-plan"))
    assert "/v5/p-plan/" in (await conn.prepare(Call(api.SHOW, {"job_id": "j"}))).url


def token_options() -> DrsOptions:
    return DrsOptions(auth="token", iam_user="alice", iam_domain="acme", iam_endpoint="https://iam.example")


@pytest.mark.anyio
async def test_token_auth_caches_refreshes_and_never_shows_the_secret() -> None:
    iam = FakeIam(lifetime_hours=1)
    clock = [NOW]
    creds = {"iam_password": "s3cret-pass"}
    conn = connect(iam, clock, url=None, credentials=creds, options=token_options())
    first = await conn.prepare(Call(api.SHOW, {"job_id": "j"}))
    assert first.headers["X-Auth-Token"] == "MIItoken1"
    assert "Authorization" not in first.headers
    assert "/v5/p-from-token/" in first.url
    token_request = iam.requests[0]
    assert token_request.url == "https://iam.example/v3/auth/tokens?nocatalog=true"
    body = json.loads(token_request.body)
    assert body["auth"]["identity"]["password"]["user"] == {
        "name": "alice",
        "password": "s3cret-pass",
        "domain": {"name": "acme"},
    }
    assert body["auth"]["scope"] == {"project": {"name": "cn-north-4"}}
    scoped = connect(
        FakeIam(), clock, url=None, credentials={**creds, "project_id": "p1"}, options=token_options()
    )
    await scoped.prepare(Call(api.SHOW, {"job_id": "j"}))
    assert json.loads(scoped._token._fetch.requests[0].body)["auth"]["scope"] == {"project": {"id": "p1"}}

    clock[0] += 50 * 60  # within the one-hour lifetime, before the refresh margin
    assert (await conn.prepare(Call(api.SHOW, {"job_id": "j"}))).headers["X-Auth-Token"] == "MIItoken1"
    clock[0] += 5 * 60  # inside the last 10% of its life: fetched again
    assert (await conn.prepare(Call(api.SHOW, {"job_id": "j"}))).headers["X-Auth-Token"] == "MIItoken2"

    # The gateway says it expired: forgotten, and the next attempt gets a new one.
    rejected = HttpResponse(
        401,
        {},
        json.dumps(
            {
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: token expires, expires_at: x",
            }
        ).encode(),
    )
    with pytest.raises(Exception, match="new token"):
        conn.parse(Call(api.SHOW, {"job_id": "j"}), rejected)
    assert (await conn.prepare(Call(api.SHOW, {"job_id": "j"}))).headers["X-Auth-Token"] == "MIItoken3"
    for shown in (repr(conn), repr(conn._token), conn.account):
        assert "s3cret" not in shown and "MIItoken" not in shown


@pytest.mark.anyio
async def test_missing_credentials_fail_permanently_with_a_hint() -> None:
    conn = connect(FakeIam(), [NOW], url=None, credentials={"project_id": "p"})
    with pytest.raises(PermanentError, match="HUAWEICLOUD_SDK_AK"):
        await conn.prepare(Call(api.SHOW, {"job_id": "j"}))
    conn = connect(FakeIam(), [NOW], url=None, credentials={"project_id": "p"}, options=token_options())
    with pytest.raises(PermanentError, match="iam_password"):
        await conn.prepare(Call(api.SHOW, {"job_id": "j"}))


def test_account_is_the_plan_label_or_a_fingerprint() -> None:
    provider = DrsProvider()
    conn = provider.connect(config(None), FakeIam())
    assert conn.account.startswith("ak-") and len(conn.account) == 15
    assert DEMO_CREDENTIALS["ak"] not in conn.account and DEMO_CREDENTIALS["sk"] not in repr(conn)
    labelled = config(None)
    object.__setattr__(labelled, "account", "prod-cn")
    assert provider.connect(labelled, FakeIam()).account == "prod-cn"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("SUCCESS", "succeeded"),
        ("success", "succeeded"),
        ("FAILED", "failed"),
        ("failed", "failed"),
        ("PRECHECK FAILED", "failed"),
        ("precheck  failed", "failed"),
        ("TRANSFERRING", "running"),
        ("CONFIGURATION", "running"),
        ("", "running"),
        (None, "running"),
    ],
)
def test_status_semantics(status: str | None, state: str) -> None:
    assert job_state(status) == state


def test_numeric_recovery_mode() -> None:
    assert [normalise_recovery_mode(v) for v in ("1", "2", "full", "INCRE", 1)] == [
        "full",
        "incre",
        "full",
        "incre",
        "full",
    ]
