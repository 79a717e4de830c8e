"""Webhooks: the plan's ``notify:`` section, told of the events that need a person.

Events: ``run.started``, ``run.finished``, ``wave.finished``, ``wave.canary_failed``,
``wave.budget_exhausted``, ``instance.failed`` and ``cutover.awaiting`` (instances
that reached a manual cutover, gathered for ``GATHER_SECONDS`` into one event).

Payload (``format: json``), version ``PAYLOAD_VERSION``::

    {"version": 1, "id": "<delivery id>", "event": "instance.failed", "at": "2025-…Z",
     "run": "…", "plan": "…", "sandbox": false, "data": {…}, "text": "one line for people"}

``format: slack`` sends ``{"text": …}``, which Slack-style incoming webhooks post as is.
Each request carries ``X-Batchmig-Event``, ``X-Batchmig-Delivery`` (the payload's id,
the same on every retry of one event, so a receiver can drop a repeat), and with a
``secret``, ``X-Batchmig-Timestamp`` and ``X-Batchmig-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``"<timestamp>.<body>"`` under the secret.

A webhook must never slow the run down or stop it. Events wait in a bounded queue
per webhook; a few delivery tasks send them with a timeout per attempt and retries
with backoff (for connection errors, timeouts, 429 and 5xx). Nothing the engine does
waits for a delivery. A webhook that failed ``FAILING_AFTER`` times in a row is
*failing*: each event then gets one attempt, and at the end of the run nothing waits
for it; a healthy webhook gets up to ``FLUSH_SECONDS`` to take the last events (the
``run.finished`` among them). Every failure is logged (``notify.failed``, by the
webhook's name: its URL can hold a token) and counted in the report's
``notifications``; none is fatal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from batchmig import __version__
from batchmig.credentials import is_reference, resolve_secret
from batchmig.engine.observer import RunObserver
from batchmig.errors import Failure
from batchmig.plan.model import NotifyEvent, WebhookDoc
from batchmig.redaction import REDACTOR
from batchmig.report.build import run_state
from batchmig.report.model import NotificationRecord

if TYPE_CHECKING:  # loaded by the first delivery: a run without webhooks never needs aiohttp's client
    import aiohttp

log = structlog.get_logger("batchmig.notify")

PAYLOAD_VERSION = 1
QUEUE_LIMIT = 10_000
WORKERS = 4
FAILING_AFTER = 3
FLUSH_SECONDS = 5.0
GATHER_SECONDS = 2.0


@dataclass(frozen=True)
class Webhook:
    """A ``notify:`` entry with its references resolved."""

    name: str
    url: str
    secret: bytes | None
    format: str
    events: frozenset[str]
    timeout: float
    attempts: int

    @classmethod
    def from_doc(cls, doc: WebhookDoc, where: str) -> Webhook:
        url = resolve_secret(doc.url, f"{where}.url") if is_reference(doc.url) else doc.url
        secret = resolve_secret(doc.secret, f"{where}.secret").encode() if doc.secret else None
        return cls(doc.name, url, secret, doc.format, frozenset(doc.events), doc.timeout, doc.attempts)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (epoch seconds)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Event:
    name: NotifyEvent
    at: datetime
    data: dict[str, Any]
    text: str


class _Delivery:
    def __init__(self, hook: Webhook) -> None:
        self.hook = hook
        self.queue: asyncio.Queue[tuple[str, Event]] = asyncio.Queue(QUEUE_LIMIT)
        self.events = self.delivered = self.failed = self.dropped = self.attempts = 0
        self.failures_in_a_row = 0
        self.in_flight = 0
        self.last_error: str | None = None

    @property
    def failing(self) -> bool:
        return self.failures_in_a_row >= FAILING_AFTER

    def record(self) -> NotificationRecord:
        return NotificationRecord(self.hook.name, self.events, self.delivered, self.failed, self.dropped,
                                  self.attempts, self.last_error)


class Notifier(RunObserver):
    """Turns the engine's moments into webhook deliveries. Use as an async context manager."""

    def __init__(self, hooks: Sequence[Webhook], *, run: str, plan: str, sandbox: bool,
                 gather_seconds: float = GATHER_SECONDS, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._deliveries = [_Delivery(hook) for hook in hooks]
        self._context = {"run": run, "plan": plan, "sandbox": sandbox}
        self._gather_seconds = gather_seconds
        self._flush_seconds = flush_seconds
        self._waiting: set[str] = set()
        self._arrived: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Notifier:
        if self._deliveries:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=WORKERS * len(self._deliveries)),
                headers={"User-Agent": f"batchmig/{__version__}"})
            for delivery in self._deliveries:
                self._tasks += [asyncio.create_task(self._work(delivery)) for _ in range(WORKERS)]
            self._tasks.append(asyncio.create_task(self._gather()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Give healthy webhooks up to ``flush_seconds`` for what is queued, then stop."""
        if not self._tasks:
            return
        self._send_arrivals()
        with anyio.move_on_after(self._flush_seconds):
            while any(not d.failing and (d.queue.qsize() or d.in_flight) for d in self._deliveries):
                await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        pending = set(self._tasks)
        while pending:
            # A worker can miss its cancellation: one that comes just as its delivery's own
            # timeout fires can end as that timeout, and the worker then waits for the next
            # event for ever (a run hung so once in 17 at load 20, receiver not answering).
            # So each is cancelled again until it has ended.
            _, pending = await asyncio.wait(pending, timeout=0.5)
            for task in pending:
                task.cancel()
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:  # never fatal: said, not raised
                log.warning("notify.worker_failed", error=repr(task.exception()))
        self._tasks = []
        for delivery in self._deliveries:
            delivery.dropped += delivery.queue.qsize()
            if delivery.dropped:
                log.warning("notify.dropped", webhook=delivery.hook.name, events=delivery.dropped,
                            reason="the run ended before the webhook took them")
        if self._session is not None:
            await self._session.close()

    def records(self) -> tuple[NotificationRecord, ...]:
        return tuple(d.record() for d in self._deliveries)

    # ------------------------------------------------------------ the engine's moments

    def run_started(self, run_id: str, instances: int) -> None:
        self._emit("run.started", {"instances": instances}, f"started, {instances} instances")

    def instance_changed(self, instance: str, wave: str, old: str | None, new: str,
                         error: Failure | None) -> None:
        if new == "awaiting_cutover":
            self._waiting.add(instance)
            self._arrived.append(instance)
        elif old == "awaiting_cutover":
            self._waiting.discard(instance)
        if new == "failed":
            detail = f"{error.code}: {error.message}" if error else ""
            if error and error.request_id:
                detail += f" (request {error.request_id})"
            self._emit("instance.failed", {"instance": instance, "wave": wave,
                                           "error": error.as_dict() if error else {}},
                       f"instance {instance} (wave {wave}) failed: {detail}")

    def wave_finished(self, wave: str, counts: Mapping[str, int]) -> None:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self._emit("wave.finished", {"wave": wave, "counts": dict(counts)}, f"wave {wave} finished: {summary}")

    def canary_failed(self, wave: str, instance: str, reason: str) -> None:
        self._emit("wave.canary_failed", {"wave": wave, "instance": instance, "reason": reason},
                   f"canary failed: {reason}; the rest of the run is skipped")

    def budget_exhausted(self, wave: str, failed: int, reason: str) -> None:
        self._emit("wave.budget_exhausted", {"wave": wave, "failed": failed, "reason": reason}, reason)

    def run_finished(self, counts: Mapping[str, int], stop_reason: str) -> None:
        self._send_arrivals()
        state = "interrupted" if stop_reason else run_state([s for s, n in counts.items() if n], active=False)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self._emit("run.finished", {"state": state, "counts": dict(counts), "stop_reason": stop_reason or None},
                   f"finished ({state}): {summary}" + (f"; {stop_reason}" if stop_reason else ""))

    # ------------------------------------------------------------ sending

    def _emit(self, name: NotifyEvent, data: dict[str, Any], text: str) -> None:
        subscribed = [d for d in self._deliveries if name in d.hook.events]
        if not subscribed:
            return
        event = Event(name, datetime.now(UTC), data, f"batchmig run {self._context['run']}: {text}")
        for delivery in subscribed:
            delivery.events += 1
            try:
                delivery.queue.put_nowait((uuid.uuid4().hex, event))
            except asyncio.QueueFull:
                delivery.dropped += 1
                delivery.last_error = f"queue full ({QUEUE_LIMIT} events waiting)"

    def _send_arrivals(self) -> None:
        if not self._arrived:
            return
        arrived, self._arrived = self._arrived, []
        self._emit("cutover.awaiting", {"instances": arrived, "waiting": len(self._waiting)},
                   f"{len(arrived)} instance(s) reached a manual cutover ({len(self._waiting)} waiting in all): "
                   + ", ".join(arrived[:10]) + (" …" if len(arrived) > 10 else ""))

    async def _gather(self) -> None:
        while True:
            await asyncio.sleep(self._gather_seconds)
            self._send_arrivals()

    def body(self, hook: Webhook, delivery_id: str, event: Event) -> bytes:
        if hook.format == "slack":
            document: dict[str, Any] = {"text": event.text}
        else:
            document = {"version": PAYLOAD_VERSION, "id": delivery_id, "event": event.name,
                        "at": event.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                        **self._context, "data": event.data, "text": event.text}
        return REDACTOR(json.dumps(document, default=str, ensure_ascii=False)).encode()

    async def _work(self, delivery: _Delivery) -> None:
        while True:
            delivery_id, event = await delivery.queue.get()
            delivery.in_flight += 1
            try:
                await self._deliver(delivery, delivery_id, event)
            except asyncio.CancelledError:  # the run ended before this one got through
                delivery.dropped += 1
                raise
            finally:
                delivery.in_flight -= 1

    async def _deliver(self, delivery: _Delivery, delivery_id: str, event: Event) -> None:
        import aiohttp  # loaded by __aenter__ already

        hook = delivery.hook
        assert self._session is not None
        body = self.body(hook, delivery_id, event)
        attempts = 1 if delivery.failing else hook.attempts
        error = ""
        for attempt in range(1, attempts + 1):
            headers = {"Content-Type": "application/json", "X-Batchmig-Event": event.name,
                       "X-Batchmig-Delivery": delivery_id}
            if hook.secret is not None:
                stamp = str(int(time.time()))
                headers |= {"X-Batchmig-Timestamp": stamp, "X-Batchmig-Signature": sign(hook.secret, stamp, body)}
            delivery.attempts += 1
            retry = True
            try:
                async with self._session.post(hook.url, data=body, headers=headers, allow_redirects=False,
                                              timeout=aiohttp.ClientTimeout(total=hook.timeout)) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        delivery.delivered += 1
                        delivery.failures_in_a_row = 0
                        return
                    error = f"HTTP {response.status}"
                    retry = response.status == 429 or response.status >= 500
            except TimeoutError:
                error = f"no answer within {hook.timeout:g}s"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not retry or attempt == attempts:
                break
            await asyncio.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + self._rng.random() / 2))
        delivery.failed += 1
        delivery.failures_in_a_row += 1
        delivery.last_error = REDACTOR(error)
        log.warning("notify.failed", webhook=hook.name, notify_event=event.name, error=delivery.last_error,
                    attempts=attempts, failing=delivery.failing)


def webhooks(docs: Sequence[WebhookDoc]) -> list[Webhook]:
    """The plan's ``notify:`` entries, resolved (a reference that is not set is an error)."""
    return [Webhook.from_doc(doc, f"notify.{index}") for index, doc in enumerate(docs)]
