"""Migration tasks as the provider reads them: the list, the pollers, the reconciles.

``CreateMigrateTask`` takes no client token and its tasks carry no name batchmig
could choose, so a lost answer is reconciled by the *shape* batchmig gives an
instance's work: on one RDS instance, the database ``DBName`` gets exactly one FULL
task per run, then one UPDF task per log file, one at a time. Before creating
anything, the ``survey-tasks`` step notes the ids of the tasks that database already
has (earlier runs, other tools); a reconcile then looks, in ``DescribeMigrateTasks``
of the instance, for a task of the database with the right ``BackupMode`` whose id
is neither one of those nor one the run already knows. Lists may lag behind creates,
so an empty list is asked again within ``find_created``'s window; a list that never
answers usably stops the instance for a person (``OutcomeUnsureError``).

The reference says the list is "supported only for migration tasks created to migrate
full backup files"; its items carry ``BackupMode`` all the same, and the provider
relies on UPDF tasks appearing there too (the emulator lists them). Were they absent,
a lost UPDF answer would be re-sent, and SQL Server refuses a log file that is
already restored (the LSN chain), so the repeat fails instead of restoring twice.

Polls list the instance's tasks a page at a time (one poll serves every instance
waiting on the same RDS instance) and describe the few not seen by id.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from batchmig.plugin import (
    Answer,
    Call,
    Caller,
    Listing,
    Outputs,
    Poller,
    ThrottleError,
    TransientError,
    WaitItem,
    WaitStatus,
    find_created,
    poll_listed,
)

from batchmig_alibabacloud.settings import AlibabaSettings

__all__ = ["TASKS_POLLER", "migrate_tasks", "reconcile_task", "task_by_id"]

Record = Mapping[str, Any]
Reconcile = Callable[[Caller, Outputs], Awaitable[Outputs | None]]

PAGE = 100
DAY = 24 * 3600
WEEK = 7 * DAY
KNOWN_STATUSES = frozenset({"NoStart", "Running", "Waiting", "Success", "Failed"})
SURVEY_PAGES = 20
RELISTS, RELIST_PAUSE = 3, 1.0
"""A task missing from the list is looked for again three times, a second apart. RDS
documents no lag for this list; a lag longer than this window would re-send the create,
which the cloud then refuses (the database exists; the log file is already applied), so
the instance fails loudly rather than restoring anything twice."""


def _minute(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))


@functools.lru_cache(maxsize=2)
def _window(minute: int) -> tuple[str, str]:
    """The listing's StartTime and EndTime for a clock reading in this minute (minutes since
    the epoch): a week back and a day ahead are whole minutes, so every reading of one
    minute gives the same texts. Formatted once a minute, not twice a poll: in the overhead
    run ``strftime`` cost 10 µs a listing (docs/benchmarks.md)."""
    now = minute * 60
    return _minute(now - WEEK), _minute(now + DAY)


def migrate_tasks(instance_id: str, clock: Callable[[], float] = time.time) -> Listing:
    """DescribeMigrateTasks of one RDS instance over the week the cloud keeps them.

    The range ends a day ahead, so a clock a little behind the cloud's still sees the
    newest tasks."""
    start, end = _window(math.floor(clock() / 60))

    def page(offset: int) -> Call:
        return Call("DescribeMigrateTasks", {"DBInstanceId": instance_id, "StartTime": start, "EndTime": end,
                                             "PageSize": PAGE, "PageNumber": offset // PAGE + 1})

    return Listing(page, lambda answer: answer.payload["Items"]["MigrateTask"], PAGE)


def task_by_id(instance_id: str, task_id: str) -> Call:
    return Call("DescribeMigrateTaskById", {"DBInstanceId": instance_id, "MigrateTaskId": task_id})


def _described(answer: Answer, task_id: str) -> Record | None:
    """DescribeMigrateTaskById answers with the task's fields at the top level."""
    return answer.payload if str(answer.payload.get("MigrateTaskId")) == task_id else None


async def _watch(caller: Caller, instance_id: str, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    """The waits on tasks of one RDS instance: a list page or three, then per-id describes."""
    wanted = [str(item.outputs[item.context["task"]]) for item in batch]
    seen = await poll_listed(
        caller, migrate_tasks(instance_id), wanted, lambda record: record.get("MigrateTaskId"),
        describe=lambda task_id: task_by_id(instance_id, task_id), describe_record=_described, max_pages=3,
    )
    statuses = []
    for item, task_id in zip(batch, wanted, strict=True):
        found = seen.get(task_id)
        if found is None:
            statuses.append(WaitStatus.running(f"task {task_id} not seen yet"))
            continue
        if found.gone is not None or found.record is None:
            statuses.append(WaitStatus.failed(f"migration task {task_id} no longer exists", "MigrateTaskGone"))
            continue
        status = str(found.record.get("Status"))
        description = str(found.record.get("Description") or "")
        until = item.context["until"]
        if status == until:
            statuses.append(WaitStatus.succeeded(message=description))
        elif status == "Failed":
            statuses.append(WaitStatus.failed(f"migration task {task_id} failed: {description or 'no reason given'}",
                                              "MigrateTaskFailed", found.request_id))
        elif status == "Success" and until == "Waiting":
            statuses.append(WaitStatus.failed(
                f"migration task {task_id} finished and its database is online: the chain takes no more files",
                "MigrateTaskAlreadyOnline", found.request_id))
        elif status in KNOWN_STATUSES:
            statuses.append(WaitStatus.running(status))
        else:
            statuses.append(WaitStatus.running(status, unrecognised=f"Status {status}"))
    return statuses


async def _survey(caller: Caller, instance_id: str, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    """The ids of the tasks each database already has, before the run creates any."""
    listing = migrate_tasks(instance_id)
    by_database: dict[str, list[str]] = {}
    for number in range(SURVEY_PAGES):
        answer = await caller.read(listing.page(number * PAGE))
        try:
            page = list(listing.items(answer))
        except (KeyError, TypeError) as exc:
            raise TransientError("MalformedAnswer", f"DescribeMigrateTasks without Items.MigrateTask ({exc})",
                                 request_id=answer.request_id) from exc
        for record in page:
            by_database.setdefault(str(record.get("DBName")), []).append(str(record.get("MigrateTaskId")))
        if len(page) < PAGE:
            break
    else:
        return [WaitStatus.failed(f"{instance_id} lists more than {SURVEY_PAGES * PAGE} migration tasks this week; "
                                  "batchmig cannot tell its own tasks from them", "TooManyTasks")] * len(batch)
    return [WaitStatus.succeeded({"earlier_tasks": ",".join(sorted(by_database.get(item.instance.settings.database,
                                                                                   [])))})
            for item in batch]


async def _poll(caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    """One poll for waits on any RDS instances: per instance, a survey and/or a watch."""
    statuses: dict[int, WaitStatus] = {}
    by_instance: dict[tuple[str, bool], list[int]] = {}
    for index, item in enumerate(batch):
        by_instance.setdefault((item.instance.settings.instance_id, "task" in item.context), []).append(index)
    for (instance_id, watching), indexes in by_instance.items():
        items = [batch[index] for index in indexes]
        try:
            found = await (_watch if watching else _survey)(caller, instance_id, items)
        except ThrottleError as exc:
            # Still throttled after the core's retries (the limiter has slowed the key down):
            # the tasks run on regardless, so ask again at the next poll rather than give up.
            found = [WaitStatus.running(f"throttled ({exc.code}): asked again at the next poll")] * len(items)
        statuses.update(zip(indexes, found, strict=True))
    return [statuses[index] for index in range(len(batch))]


TASKS_POLLER = Poller(
    name="alibaba-rds-sqlserver.migrate-tasks",
    action="DescribeMigrateTasks",
    poll=_poll,
    max_batch=PAGE,
    min_interval=15.0,
    group=lambda item: (item.instance.settings.instance_id, "task" in item.context),
    example=lambda item: migrate_tasks(item.instance.settings.instance_id).page(0),
)
"""Every wait of the provider: ``context`` ``{"task": output, "until": status}`` watches a
task; an empty context surveys the database's earlier tasks (``survey-tasks``). A batch
is one RDS instance's watches or its surveys (``group``), so one list answers it: a batch
mixing instances would ask about them one after another, and every member's answer
would wait for the last."""


def reconcile_task(settings: AlibabaSettings, mode: str, output: str,
                   known: Callable[[Outputs], Collection[str]]) -> Reconcile:
    """The reconcile of a CreateMigrateTask of ``mode`` (FULL or UPDF) whose id goes to ``output``."""

    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        earlier = {task for task in str(outputs.get("earlier_tasks") or "").split(",") if task}
        ours = earlier | {str(task) for task in known(outputs)}
        found = await find_created(
            caller, migrate_tasks(settings.instance_id),
            lambda record: (record.get("DBName") == settings.database and record.get("BackupMode") == mode
                            and str(record.get("MigrateTaskId")) not in ours),
            what=f"the {mode} migration task of {settings.database} on {settings.instance_id}",
            relists=RELISTS, pause=RELIST_PAUSE,
        )
        return None if found is None else {output: str(found["MigrateTaskId"])}

    return reconcile
