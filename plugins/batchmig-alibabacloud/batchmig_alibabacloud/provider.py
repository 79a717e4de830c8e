"""The ``alibaba-rds-sqlserver`` provider: restore SQL Server backups from OSS into ApsaraDB RDS.

One-shot (``mode: one-shot``)::

    survey-tasks   DescribeMigrateTasks: the ids of the database's earlier tasks (see tasks.py)
    create-full    CreateMigrateTask BackupMode=FULL IsOnlineDB=True CheckDBMode=...
    wait-full      until the task is Success (restored, checked and online)

Chain (``mode: chain``), with the plan's cutover policy on ``bring-online``::

    survey-tasks   as above
    create-full    CreateMigrateTask BackupMode=FULL IsOnlineDB=False
    wait-full      until the task is Waiting (restored, waiting for incremental/log files)
    create-log-N   CreateMigrateTask BackupMode=UPDF MigrateTaskId=<full task>, per file in ``logs``
    wait-log-N     until that UPDF task is Success
    bring-online   CreateOnlineDatabaseTask (the cutover): idempotent by its ClientToken
    wait-online    until the FULL task is Success

``CreateMigrateTask`` takes no client token: its steps are reconciled by the
database's task shape (``tasks.reconcile_task``). ``run --check`` reads the instance
(``DescribeDBInstanceAttribute``, read-only): it must exist, run SQL Server, be
``Running``, and its version decides between ``OSSUrls`` (2008 R2) and
``OssObjectPositions`` (later versions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from batchmig.plugin import (
    Answer,
    Call,
    Caller,
    CallStep,
    Connection,
    HttpFetch,
    Instance,
    Outputs,
    Provider,
    ProviderConfig,
    ProviderError,
    Step,
    WaitStep,
)

from batchmig_alibabacloud.connection import AlibabaConnection
from batchmig_alibabacloud.settings import AlibabaSettings, BackupFile, settings_problems, version_problem
from batchmig_alibabacloud.tasks import TASKS_POLLER, reconcile_task

__all__ = ["ACTIONS", "DEFAULT_RATE_LIMITS", "AlibabaRdsProvider"]

ACTIONS = frozenset({"CreateMigrateTask", "CreateOnlineDatabaseTask", "DescribeMigrateTasks",
                     "DescribeMigrateTaskById", "DescribeDBInstanceAttribute"})

DEFAULT_RATE_LIMITS = {
    "CreateMigrateTask": 5.0,
    "CreateOnlineDatabaseTask": 5.0,
    "DescribeMigrateTasks": 10.0,
    "DescribeMigrateTaskById": 10.0,
    "DescribeDBInstanceAttribute": 10.0,
}
"""Alibaba Cloud publishes no rate quota for these RDS actions (Quota Center lists none):
conservative caps, well below the 20/s the other clouds document; a plan raises or
lowers them per action under ``providers.<name>.rate_limits``."""


# The waits that are the same for every instance: made once, not for each instance's steps.
_SURVEY = WaitStep("survey-tasks", TASKS_POLLER)
_WAIT_FULL = {  # by whether the instance restores a chain (then the full task waits for its logs)
    chain: WaitStep("wait-full", TASKS_POLLER, {"task": "full_task_id", "until": "Waiting" if chain else "Success"})
    for chain in (False, True)
}
_WAIT_ONLINE = WaitStep("wait-online", TASKS_POLLER, {"task": "full_task_id", "until": "Success"})


def read_into(output: str) -> Callable[[Answer], Outputs]:
    """Read a CreateMigrateTask answer: the new task's id goes to ``output``."""

    def read(answer: Answer) -> Outputs:
        task = answer.payload.get("MigrateTaskId")
        if not task:
            raise KeyError("the CreateMigrateTask answer names no MigrateTaskId")
        return {output: str(task)}

    return read


def _log_steps(settings: AlibabaSettings, number: int, log: BackupFile) -> list[Step]:
    """``create-log-N`` (an UPDF task on the chain's FULL task) and ``wait-log-N``."""
    output = f"log_{number}_task_id"
    file = log.params()

    def create(outputs: Outputs) -> Call:
        params = {"DBInstanceId": settings.instance_id, "DBName": settings.database, "BackupMode": "UPDF",
                  "IsOnlineDB": False, "MigrateTaskId": outputs["full_task_id"], **file}
        return Call("CreateMigrateTask", params, mutating=True,
                    resource=f"{settings.instance_id}/{settings.database}/UPDF-{number}")

    def known(outputs: Outputs) -> list[str]:
        return [str(outputs["full_task_id"]), *(str(outputs[f"log_{k}_task_id"]) for k in range(1, number))]

    return [
        CallStep(f"create-log-{number}", create, read_into(output),
                 reconcile=reconcile_task(settings, "UPDF", output, known)),
        WaitStep(f"wait-log-{number}", TASKS_POLLER, {"task": output, "until": "Success"}),
    ]


class AlibabaRdsProvider(Provider):
    """ApsaraDB RDS for SQL Server: backup migration from OSS (API 2014-08-15)."""

    settings_model = AlibabaSettings
    actions = ACTIONS
    default_rate_limits = DEFAULT_RATE_LIMITS
    credential_env = {
        "access_key_id": "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "access_key_secret": "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "security_token": "ALIBABA_CLOUD_SECURITY_TOKEN",
    }
    required_credentials = ("access_key_id", "access_key_secret")
    step_estimates = {"wait-full": 1800.0, "wait-log-*": 300.0, "wait-online": 300.0}

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        return AlibabaConnection(config)

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        return settings_problems(instance.settings)

    async def preflight(self, caller: Caller, instance: Instance) -> Sequence[str]:
        settings: AlibabaSettings = instance.settings
        try:
            answer = await caller.read(Call("DescribeDBInstanceAttribute", {"DBInstanceId": settings.instance_id}))
        except ProviderError as error:
            return [f"cannot read RDS instance {settings.instance_id}: {error}"]
        found = answer.payload.get("Items", {}).get("DBInstanceAttribute") or [{}]
        attributes = found[0]
        problems = []
        if attributes.get("Engine") != "SQLServer":
            problems.append(f"{settings.instance_id} runs {attributes.get('Engine')}, not SQL Server")
        if attributes.get("DBInstanceStatus") != "Running":
            problems.append(f"{settings.instance_id} is {attributes.get('DBInstanceStatus')}, not Running")
        version = str(attributes.get("EngineVersion") or "")
        wrong = version_problem(version, settings) if version else None
        if wrong:
            problems.append(f"{settings.instance_id} runs SQL Server {version}: {wrong}")
        return problems

    def steps(self, instance: Instance) -> Sequence[Step]:
        settings: AlibabaSettings = instance.settings
        chain = settings.mode == "chain"
        target = {"DBInstanceId": settings.instance_id, "DBName": settings.database}
        where = f"{settings.instance_id}/{settings.database}"
        full = {**target, "BackupMode": "FULL", "IsOnlineDB": not chain, **settings.full.params()}
        if not chain:
            full["CheckDBMode"] = settings.check_db_mode

        steps: list[Step] = [
            _SURVEY,
            CallStep("create-full",
                     lambda outputs: Call("CreateMigrateTask", full, mutating=True, resource=f"{where}/FULL"),
                     read_into("full_task_id"),
                     reconcile=reconcile_task(settings, "FULL", "full_task_id", lambda outputs: ())),
            _WAIT_FULL[chain],
        ]
        if not chain:
            return steps
        for number, log in enumerate(settings.logs, start=1):
            steps += _log_steps(settings, number, log)
        token = instance.client_token("bring-online")

        def bring_online(outputs: Outputs) -> Call:
            params = {**target, "MigrateTaskId": outputs["full_task_id"], "CheckDBMode": settings.check_db_mode,
                      "ClientToken": token}
            return Call("CreateOnlineDatabaseTask", params, mutating=True, resource=f"{where}/online",
                        client_token=token)

        return [
            *steps,
            CallStep("bring-online", bring_online, idempotent=True, cutover=True),
            _WAIT_ONLINE,
        ]
