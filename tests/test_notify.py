"""Webhooks: every event once with a valid signature; a failing receiver never fails the run."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from batchmig.errors import PlanError, UsageError
from batchmig.notify import Notifier, Webhook
from batchmig.plan.loader import load_plan
from batchmig.registry import Registry
from batchmig.report import NotificationRecord
from batchmig.testing import run_plan

SECRET = "webhook-signing-secret-4242"


@dataclass
class Receiver:
    """A webhook receiver on loopback that checks each signature and keeps what arrived."""

    mode: str = "ok"  # ok, error (500) or hang
    received: list[dict] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    bad_signatures: int = 0
    deliveries: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers["Content-Length"]))
        if self.mode == "hang":
            time.sleep(5)
            return
        stamp = handler.headers.get("X-Batchmig-Timestamp", "")
        expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(handler.headers.get("X-Batchmig-Signature", ""), expected):
            self.bad_signatures += 1
        self.deliveries[handler.headers.get("X-Batchmig-Delivery", "")] += 1
        self.bodies.append(body)
        self.received.append(json.loads(body))
        status = 500 if self.mode == "error" else 204
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


def notify_plan(url: str, instances: str, waves: str, extra: str = "") -> str:
    return f"""\
version: 1
providers:
  tc: {{type: testcloud, region: eu-1}}
defaults: {{provider: tc, settings: {{testcloud: {{duration: 20}}}}}}
waves: {waves}
instances: {instances}
notify:
  - {{name: ops, url: '{url}', secret: '${{env:BM_HOOK_SECRET}}', timeout: 0.5s, attempts: 2}}
{extra}"""


BUDGET_RUN = ("[{id: c-ok, wave: first}, {id: waits, wave: first, cutover: manual, settings: {incremental: true}},"
              " {id: f1, wave: first, settings: {fail: true}}, {id: x1, wave: first}, {id: later, wave: second}]",
              "[{name: first, canary: 1, max_concurrency: 1, failure_budget: 0}, {name: second}]")
CANARY_RUN = ("[{id: bad-canary, wave: only, settings: {fail: true}}, {id: rest, wave: only}]",
              "[{name: only, canary: 1}]")


def test_every_event_arrives_once_signed(plan_file, registry: Registry, tmp_path: Path, receiver: Receiver,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BM_HOOK_SECRET", SECRET)
    first = run_plan(plan_file(notify_plan(receiver.url, *BUDGET_RUN), "budget.yaml"), registry, tmp_path)
    assert first.statuses == {"c-ok": "succeeded", "waits": "awaiting_cutover", "f1": "failed", "x1": "skipped",
                              "later": "skipped"}
    second = run_plan(plan_file(notify_plan(receiver.url, *CANARY_RUN), "canary.yaml"), registry, tmp_path)
    assert second.statuses == {"bad-canary": "failed", "rest": "skipped"}

    assert receiver.bad_signatures == 0
    assert all(count == 1 for count in receiver.deliveries.values()), "a delivery arrived twice"
    events = Counter((e["run"] == first.outcome.run_id, e["event"]) for e in receiver.received)
    assert events == Counter({
        (True, "run.started"): 1, (True, "cutover.awaiting"): 1, (True, "instance.failed"): 1,
        (True, "wave.budget_exhausted"): 1, (True, "wave.finished"): 1, (True, "run.finished"): 1,
        (False, "run.started"): 1, (False, "instance.failed"): 1, (False, "wave.canary_failed"): 1,
        (False, "wave.finished"): 1, (False, "run.finished"): 1,
    })
    by_event = {(e["run"], e["event"]): e for e in receiver.received}
    failed = by_event[(first.outcome.run_id, "instance.failed")]
    assert failed["version"] == 1 and failed["sandbox"] is True and failed["data"]["instance"] == "f1"
    assert failed["data"]["error"]["code"] == "JobFailed" and "f1" in failed["text"]
    assert by_event[(first.outcome.run_id, "cutover.awaiting")]["data"]["instances"] == ["waits"]
    finished = by_event[(first.outcome.run_id, "run.finished")]
    assert finished["data"]["state"] == "failed" and finished["data"]["counts"]["skipped"] == 2
    assert all(SECRET.encode() not in body for body in receiver.bodies)
    record = _record(first.report)
    assert (record.events, record.delivered, record.failed, record.dropped) == (6, 6, 0, 0)


def _record(report: dict) -> NotificationRecord:
    (record,) = report["notifications"]
    return NotificationRecord(**record)


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_failing_receiver_never_fails_the_run(plan_file, registry: Registry, tmp_path: Path, receiver: Receiver,
                                                monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv("BM_HOOK_SECRET", SECRET)
    receiver.mode = mode
    result = run_plan(plan_file(notify_plan(receiver.url, *CANARY_RUN)), registry, tmp_path)
    assert result.statuses == {"bad-canary": "failed", "rest": "skipped"}
    assert result.outcome.exit_code == 1
    record = _record(result.report)
    assert record.events == 5 and record.delivered == 0 and record.failed + record.dropped == 5
    assert record.last_error and ("HTTP 500" in record.last_error or "no answer" in record.last_error)
    for path in result.outcome.run_dir.glob("report*"):  # webhooks are named, never shown by URL
        assert receiver.url not in path.read_text(encoding="utf-8"), path.name


def test_slack_format_sends_text(plan_file, registry: Registry, tmp_path: Path, receiver: Receiver,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BM_HOOK_SECRET", SECRET)
    monkeypatch.setenv("BM_HOOK_URL", receiver.url)
    plan = notify_plan("${env:BM_HOOK_URL}", *CANARY_RUN).replace("attempts: 2}", "attempts: 2, format: slack, "
                                                                  "events: [run.finished]}")
    result = run_plan(plan_file(plan), registry, tmp_path)
    assert [set(body) for body in receiver.received] == [{"text"}]
    assert receiver.received[0]["text"].startswith(f"batchmig run {result.outcome.run_id}: finished (failed)")


def test_secrets_are_references_only(plan_file, registry: Registry, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    literal = notify_plan("http://127.0.0.1:9/x", *CANARY_RUN).replace("'${env:BM_HOOK_SECRET}'", "hunter2-literal")
    with pytest.raises(PlanError) as error:
        load_plan(str(plan_file(literal)), registry)
    (problem,) = error.value.problems
    assert problem.path == "notify.0.secret" and "by reference only" in problem.message
    assert "hunter2" not in str(problem)
    monkeypatch.delenv("BM_HOOK_SECRET", raising=False)
    with pytest.raises(UsageError, match=r"notify\.0\.secret: \$\{env:BM_HOOK_SECRET\} is not set"):
        run_plan(plan_file(notify_plan("http://127.0.0.1:9/x", *CANARY_RUN)), registry, tmp_path)


@pytest.mark.anyio
async def test_the_end_of_a_run_waits_for_no_worker_that_missed_its_cancellation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery can miss the cancellation that ends the run's webhooks (it came just as
    the delivery's own timeout fired, and ended as that timeout): its worker then waits
    for a next event that never comes, and the end of the run must not wait for it."""
    in_flight = anyio.Event()

    async def deliver(self: Notifier, delivery: object, delivery_id: str, event: object) -> None:
        in_flight.set()
        try:
            await anyio.sleep(3600)
        except anyio.get_cancelled_exc_class():
            return  # the cancellation is lost, as it was in a delivery's timeout

    monkeypatch.setattr(Notifier, "_deliver", deliver)
    hook = Webhook("ops", "http://127.0.0.1:9/hook", None, "json", frozenset({"run.started"}), 0.5, 1)
    notifier = Notifier([hook], run="r", plan="p", sandbox=True, flush_seconds=0)
    with anyio.fail_after(60):  # only against a hang: the end takes a fraction of a second
        async with notifier:
            notifier.run_started("r", 1)
            await in_flight.wait()
            workers = list(notifier._tasks)
    assert all(task.done() for task in workers)
