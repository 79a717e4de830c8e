"""Every answer of the DRS emulator, and of the two IAM calls it serves, has exactly the
fields Huawei's official SDK models declare.

Huawei's SDK models are generated from the API definitions: ``openapi_types`` gives
each field's type (``str``, ``int``, ``bool``, ``object``, ``dict(str, str)``,
``list[X]`` or a model's name) and ``attribute_map`` its JSON key, or the response
header it comes in (``X-Subject-Token``). A scenario drives every operation through
the states that fill an answer's optional parts, over loopback, and each answer is
compared recursively with the operation's response model: a missing field, an
undeclared one, a wrong type or a null fails, and so does a nested model that no
answer ever filled. The few documented exceptions are listed with their reasons.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from types import ModuleType
from typing import Any

import pytest
from batchmig.plugin import Call, HttpFetch, HttpRequest
from batchmig.testing import EmulatorHost, StepDriver

from batchmig_huaweicloud import api, signer
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS, DEMO_REGION
from batchmig_huaweicloud.emulator.routes import IAM_PROJECTS, IAM_TOKENS, MUTATING

pytest.importorskip("huaweicloudsdkdrs")
pytest.importorskip("huaweicloudsdkiam")

from huaweicloudsdkdrs.v5 import model as drs_models
from huaweicloudsdkiam.v3 import model as iam_models
from test_huawei_emulator import RDS_EXAMPLE, body

pytestmark = pytest.mark.anyio

PROJECT = DEMO_CREDENTIALS["project_id"]
MAY_BE_ABSENT = {
    ("TokenResult", "domain"): "IAM puts it only in domain-scoped tokens; DRS calls need project-scoped ones",
    ("TokenResult", "catalog"): "left out when the token request asks ?nocatalog=true (provider does)",
}
MAY_BE_NULL = {
    ("Links", "previous"): "Keystone sends null when there is no previous page",
    ("Links", "next"): "Keystone sends null when there is no next page",
}
NEVER_FILLED = {"TokenDomainResult"}
"""Only domain-scoped tokens carry it (see MAY_BE_ABSENT)."""
COMPARED_WITH = (3, 1, 219)
"""The SDK version the answers were last compared with: fields an older SDK does not
declare yet (``consistency_check_mode``...) count as undeclared only from it on."""
_LIST = re.compile(r"^list\[(.+)\]$")
_SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


@dataclass
class Answer:
    action: str
    headers: Mapping[str, str]
    payload: Any


@dataclass
class Coverage:
    strict: bool = True
    """Report undeclared fields (an SDK older than COMPARED_WITH declares fewer)."""
    models: set[str] = field(default_factory=set)
    paths: dict[str, set[str]] = field(default_factory=dict)


def model_of(action: str) -> tuple[type, ModuleType]:
    module = iam_models if action in (IAM_TOKENS, IAM_PROJECTS) else drs_models
    return getattr(module, f"{action}Response"), module


def compare(value: Any, model: type, module: ModuleType, coverage: Coverage, action: str, prefix: str = "",
            headers: Mapping[str, str] | None = None) -> list[str]:  # fmt: skip
    if model.openapi_types == {"body": "object"}:  # an empty answer: the body is any object
        return [] if isinstance(value, dict) else [f"{action}: expected an object, got {value!r}"]
    if not isinstance(value, Mapping):
        return [f"{prefix or action}: expected an object for {model.__name__}, got {value!r}"]
    coverage.models.add(model.__name__)
    answered = coverage.paths.setdefault(action, set())
    keys = {model.attribute_map[name]: type_name for name, type_name in model.openapi_types.items()}
    in_header = {key for key in keys if key.startswith("X-")}
    problems = [
        f"{prefix}{key}: not declared by {model.__name__}" for key in value if key not in keys and coverage.strict
    ]
    for key, type_name in keys.items():
        path = f"{prefix}{key}"
        if key in in_header:
            if headers is None or key not in headers:
                problems.append(f"{path}: header missing")
            continue
        if key not in value:
            if (model.__name__, key) not in MAY_BE_ABSENT:
                problems.append(f"{path}: missing ({model.__name__} declares it)")
            continue
        answered.add(path)
        item = value[key]
        if item is None:
            if (model.__name__, key) not in MAY_BE_NULL:
                problems.append(f"{path}: null")
            continue
        problems += _compare_typed(item, type_name, module, coverage, action, path)
    return problems


def _compare_typed(item: Any, type_name: str, module: ModuleType, coverage: Coverage, action: str,
                   path: str) -> list[str]:  # fmt: skip
    if found := _LIST.match(type_name):
        if not isinstance(item, list):
            return [f"{path}: expected a list, got {item!r}"]
        return [p for element in item for p in _compare_typed(element, found[1], module, coverage, action, path)]
    if type_name == "dict(str, str)":
        ok = isinstance(item, dict) and all(isinstance(v, str) for v in item.values())
        return [] if ok else [f"{path}: expected a map of strings, got {item!r}"]
    if type_name == "object":
        return []
    scalar = _SCALARS.get(type_name)
    if scalar is None:
        return compare(item, getattr(module, type_name), module, coverage, action, f"{path}.")
    if isinstance(item, bool) != (type_name == "bool") or not isinstance(item, scalar):
        return [f"{path}: expected {type_name}, got {item!r}"]
    return []


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def reachable(model: type, module: ModuleType) -> set[str]:
    found: set[str] = set()
    for type_name in model.openapi_types.values():
        inner = _LIST.match(type_name)
        name = inner[1] if inner else type_name
        nested = getattr(module, name, None)
        if isinstance(nested, type) and name not in _SCALARS:
            found |= {name} | reachable(nested, module)
    return found


# ------------------------------------------------------------------------- scenario


class Recorder:
    def __init__(self, client: StepDriver, sandbox: EmulatorHost, send: HttpFetch) -> None:
        self.client, self.sandbox, self.send = client, sandbox, send
        self.answers: list[Answer] = []

    async def drs(self, action: str, **params: Any) -> Any:
        request = await self.client.connection.prepare(Call(action, params, mutating=action in MUTATING))
        return await self._record(action, request)

    async def _record(self, action: str, request: HttpRequest) -> Any:
        response = await self.send(request)
        assert 200 <= response.status < 300, (action, response.status, response.body[:300])
        payload = json.loads(response.body)
        self.answers.append(Answer(action, {k.title(): v for k, v in response.headers.items()}, payload))
        return payload

    async def token(self, query: str) -> Any:
        auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "sandbox-user", "password": DEMO_CREDENTIALS["iam_password"],
            "domain": {"name": "sandbox-domain"}}}}, "scope": {"project": {"name": DEMO_REGION}}}}  # fmt: skip
        url = f"{self.sandbox.url}/v3/auth/tokens{query}"
        request = HttpRequest("POST", url, {"Content-Type": "application/json"}, json.dumps(auth).encode())
        return await self._record(IAM_TOKENS, request)

    async def projects(self, query: list[tuple[str, str]]) -> Any:
        path = "/v3/projects"
        headers = {"Host": self.sandbox.url.split("/")[2], "X-Sdk-Date": signer.format_sdk_date(time.time()),
                   "Content-Type": "application/json"}  # fmt: skip
        headers["Authorization"] = signer.sign(
            access_key=DEMO_CREDENTIALS["ak"], secret_key=DEMO_CREDENTIALS["sk"], method="GET", path=path,
            query=query, headers=headers, body=b"",
        )  # fmt: skip
        url = self.sandbox.url + path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        return await self._record(IAM_PROJECTS, HttpRequest("GET", url, headers))


async def until_terminal(ask: Recorder, job_id: str) -> dict[str, Any]:
    for _ in range(1000):
        detail: dict[str, Any] = await ask.drs(api.SHOW, job_id=job_id)
        if detail["status"] in ("SUCCESS", "FAILED", "PRECHECK FAILED"):
            return detail
        await ask.client.sleep(0.01)  # ten cloud seconds at the sandbox's time scale
    raise AssertionError(f"{job_id} never finished")


async def drs_answers(ask: Recorder) -> list[Answer]:
    await ask.token("?nocatalog=true")
    await ask.token("")
    await ask.projects([("name", DEMO_REGION)])
    await ask.projects([])
    tagged = body("sdk-tagged", db_names=["sales"], is_default_restore=False)
    tagged["base_info"]["tags"] = [{"key": "team", "value": "dba"}]
    ids = [(await ask.drs(api.CREATE, body=payload))["job_id"] for payload in (
        tagged, RDS_EXAMPLE, body("sdk-restore-fail", is_cover=True),
        {**body("sdk-precheck"), "backup_info": {"file_source": "OBS", "bucket_name": "b-1",
                                                  "files": [{"name": "precheck-fail.bak", "obs_path": ""}]}},
    )]  # fmt: skip
    await ask.drs(api.SHOW, job_id=ids[0])  # transferring
    await ask.drs(api.LIST, query={"limit": 50})
    for job_id in ids:
        await until_terminal(ask, job_id)
    await ask.drs(api.UPDATE, job_id=ids[0], body={"name": "sdk-renamed", "description": "wave 1"})
    await ask.drs(api.LIST, query={"name": "sdk", "sort_dir": "asc"})
    await ask.drs(api.DELETE, job_id=ids[2])
    return ask.answers


async def test_every_answer_matches_the_sdk_model(client: StepDriver, sandbox: EmulatorHost, http_send: HttpFetch):
    answers = await drs_answers(Recorder(client, sandbox, http_send))
    installed = min(version("huaweicloudsdkdrs"), version("huaweicloudsdkiam"), key=_numbers)
    coverage, problems = Coverage(strict=_numbers(installed) >= COMPARED_WITH), []
    by_action: dict[str, int] = defaultdict(int)
    for answer in answers:
        model, module = model_of(answer.action)
        by_action[answer.action] += 1
        problems += [f"{answer.action}: {p}" for p in compare(
            answer.payload, model, module, coverage, answer.action, headers=answer.headers)]  # fmt: skip
    assert set(by_action) == {*api.ACTIONS, IAM_TOKENS, IAM_PROJECTS}, "every operation must be driven"
    assert problems == []
    models = set().union(*(reachable(*model_of(action)) for action in by_action))
    assert models - coverage.models <= NEVER_FILLED, "a nested model no answer filled hides its fields"
