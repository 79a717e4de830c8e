"""Hostile answers: each affected instance fails or retries with a clear message, the
others go on, and nothing hangs past its timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from batchmig.emulator import EmulatorReply, EmulatorSpec, RequestInfo
from batchmig.plugin import ProviderSpec, hookimpl
from batchmig.sandbox.config import SandboxConfig
from batchmig.testing import make_registry, run_plan
from batchmig.testing.testcloud import DEMO_KEY_ID, DEMO_SECRET, TestcloudEmulator, TestcloudProvider

pytestmark = pytest.mark.slow  # about 30 s of whole sandbox runs: the e2e suite, not latest/oldest

KINDS = ["html", "truncated", "missing", "wrongtype", "enormous", "slowdrip", "unknownstatus", "garbagepoll",
         "htmlonce"]


class HostileEmulator(TestcloudEmulator):
    """testcloud, except for jobs whose name carries a hostile marker."""

    served_once: set[str] = set()

    def markers(self, params: dict[str, Any]) -> set[str]:
        name = params.get("Name", "")
        if not name:
            ids = params.get("JobIds") or [params.get("JobId")]
            jobs = [self.ctx.store.get("job", str(i)) for i in ids if i]
            name = " ".join(j["name"] for j in jobs if j)
        return {kind for kind in KINDS if f"-{kind}-" in name}

    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        params = json.loads(body or b"{}")
        kinds = self.markers(params)
        kind = next(iter(kinds)) if len(kinds) == 1 else ""
        create = info.action == "CreateJob"
        if create and kind == "html":
            return EmulatorReply(web.Response(status=502, text="<html><h1>Bad Gateway</h1></html>",
                                              content_type="text/html"))
        if create and kind == "htmlonce" and kind not in self.served_once:
            self.served_once.add(kind)
            return EmulatorReply(web.Response(status=502, text="<html>oops</html>", content_type="text/html"))
        if create and kind == "truncated":
            return EmulatorReply(web.Response(status=200, body=b'{"result": {"JobI', content_type="application/json"))
        if create and kind == "missing":
            return EmulatorReply(web.json_response({"result": {}, "request_id": "r-missing"}))
        if create and kind == "wrongtype":
            return EmulatorReply(web.json_response({"result": {"JobId": ["not", "a", "string"]}, "request_id": "r"}))
        if create and kind == "enormous":
            return EmulatorReply(web.Response(status=200, body=b"x" * (17 * 1024 * 1024)))
        if create and kind == "slowdrip":
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            for _ in range(30):
                await response.write(b" ")
                await asyncio.sleep(0.5)
            return EmulatorReply(response)  # type: ignore[arg-type]
        if info.action == "DescribeJobs" and "garbagepoll" in kinds:
            return EmulatorReply(web.json_response({"result": {"jobs": "nonsense"}, "request_id": "r"}))
        reply = await super().handle(request, info, body)
        if info.action == "DescribeJobs" and "unknownstatus" in kinds:
            data = json.loads(reply.response.body)  # type: ignore[arg-type]
            for job in data["result"]["jobs"]:
                if "-unknownstatus-" in job["name"]:
                    job["status"] = "QUANTUM_FLUX"
            return EmulatorReply(web.json_response(data))
        return reply


class HostilePlugin:
    @hookimpl
    def batchmig_register_providers(self, registry: Any) -> None:
        registry.add(ProviderSpec("testcloud", TestcloudProvider(), emulator="hostile"))

    @hookimpl
    def batchmig_register_emulators(self, registry: Any) -> None:
        registry.add(EmulatorSpec("hostile", HostileEmulator, {"key_id": DEMO_KEY_ID, "secret": DEMO_SECRET}))


def test_hostile_answers_fail_or_retry_clearly_and_never_hang(plan_file, tmp_path: Path) -> None:
    instances = [f"  - {{id: ok-{i}}}" for i in range(6)] + [f"  - {{id: x-{kind}-1}}" for kind in KINDS]
    plan = plan_file(
        "version: 1\nproviders: {tc: {type: testcloud, region: r}}\n"
        "defaults: {provider: tc, timeouts: {wait-job: 8s}, settings: {testcloud: {duration: 20}}}\n"
        "run: {call_timeout: 2s, retry: {max_attempts: 3, base_delay: 0.05, max_delay: 0.2}}\n"
        "instances:\n" + "\n".join(instances) + "\n"
    )
    started = time.monotonic()
    result = run_plan(plan, make_registry(HostilePlugin()), tmp_path, sandbox_config=SandboxConfig(time_scale=600))
    elapsed = time.monotonic() - started
    by_id = {e["id"]: e for e in result.report["instances"]}
    assert all(by_id[f"ok-{i}"]["status"] == "succeeded" for i in range(6))
    assert by_id["x-htmlonce-1"]["status"] == "succeeded", by_id["x-htmlonce-1"]
    expected_codes = {
        "html": "BadAnswer", "truncated": "BadAnswer", "missing": "MalformedAnswer", "enormous": "ResponseTooLarge",
        "slowdrip": "Timeout", "unknownstatus": "StepTimeout",
    }
    for kind, code in expected_codes.items():
        entry = by_id[f"x-{kind}-1"]
        assert entry["status"] == "failed", (kind, entry)
        assert entry["error"]["code"] == code, (kind, entry["error"])
        assert entry["error"]["message"], kind
    # a job batchmig started but can no longer read the status of is not "failed": nobody knows
    watched = by_id["x-garbagepoll-1"]
    assert watched["status"] == "needs_attention" and watched["error"]["code"] == "MalformedAnswer", watched
    assert "may still be running" in watched["error"]["message"]
    # a status value the provider does not know is named when the wait times out
    assert "QUANTUM_FLUX" in by_id["x-unknownstatus-1"]["error"]["message"], by_id["x-unknownstatus-1"]
    assert by_id["x-wrongtype-1"]["status"] == "failed"
    assert elapsed < 90, f"the run took {elapsed:.0f}s: something waited past its timeouts"
    assert result.duplicates() == {}
