"""The ``alibabacloud`` provider: import a SQL Server backup, then bring the database online.

An instance becomes five steps::

    create-import   CreateImport, idempotent: it carries a client token, so a lost
                    answer is simply sent again (no reconcile needed)
    start-import    StartImport; not idempotent: after a lost answer, ``reconcile``
                    reads the import by id and sees whether it left "created"
    wait-restored   polls until the backup is restored (the database is not online)
    bring-online    BringOnline: the cutover (a plan's ``cutover: manual`` stops here)
    wait-online     polls until the database is online

One poller serves both waits (its ``WaitStep.context`` says which state ends each):
it lists imports newest first, a page for up to a hundred waiting instances, and asks
about the few it did not see by id (batchmig's ``poll_listed``).
"""

from __future__ import annotations

from collections.abc import Sequence

from batchmig.plugin import (
    Answer,
    Call,
    Caller,
    CallStep,
    Connection,
    HttpFetch,
    Instance,
    Listing,
    Outputs,
    Poller,
    Provider,
    ProviderConfig,
    ProviderError,
    Step,
    WaitItem,
    WaitStatus,
    WaitStep,
    poll_listed,
)
from pydantic import BaseModel, ConfigDict, Field

from batchmig_alibabacloud.connection import AlibabacloudConnection

__all__ = ["IMPORTS_POLLER", "AlibabacloudProvider", "AlibabacloudSettings", "imports"]

PAGE = 100
FAILED = frozenset({"failed"})
SYSTEM_DATABASES = frozenset({"master", "model", "msdb", "tempdb"})


class AlibabacloudSettings(BaseModel):
    """``settings:`` of one alibabacloud instance (its JSON Schema is in ``batchmig schema``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="Database to restore.")
    backup_url: str = Field(pattern=r"^https://\S+$", description="Where the full backup (.bak) is.")
    overwrite: bool = Field(default=False, description="Replace a database of the same name.")


def imports(**filters: object) -> Listing:
    """DescribeImports, newest first (optionally filtered by ImportIds)."""

    def page(offset: int) -> Call:
        return Call("DescribeImports", {**filters, "Order": "newest", "Limit": PAGE, "Offset": offset})

    return Listing(page, lambda answer: answer.payload["Imports"], PAGE)


async def _poll(caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    wanted = [str(item.outputs["import_id"]) for item in batch]
    seen = await poll_listed(caller, imports(), wanted, lambda record: record.get("ImportId"),
                             describe=lambda import_id: imports(ImportIds=[import_id]).page(0))
    statuses = []
    for item, import_id in zip(batch, wanted, strict=True):
        found = seen.get(import_id)
        record = found.record if found else None
        state = str(record.get("Status")) if record else "unseen"
        if found is not None and found.gone is not None:
            statuses.append(WaitStatus.failed(f"import {import_id} no longer exists", found.gone.code))
        elif state == item.context["until"]:
            statuses.append(WaitStatus.succeeded())
        elif state in FAILED and record is not None:
            statuses.append(WaitStatus.failed(str(record.get("Message") or "the import failed"), "ImportFailed",
                                              found.request_id if found else None))
        else:
            statuses.append(WaitStatus.running(state))
    return statuses


IMPORTS_POLLER = Poller(
    name="alibabacloud.imports",
    action="DescribeImports",
    poll=_poll,
    max_batch=PAGE,
    min_interval=10.0,
    example=lambda item: imports().page(0),
)


class AlibabacloudProvider(Provider):
    """Alibabacloud SQL Server imports."""

    settings_model = AlibabacloudSettings
    actions = frozenset({"CreateImport", "StartImport", "BringOnline", "DescribeImports"})
    default_rate_limits = {"CreateImport": 10.0, "StartImport": 10.0, "BringOnline": 10.0, "DescribeImports": 20.0}
    credential_env = {"key_id": "ALIBABACLOUD_KEY_ID", "secret": "ALIBABACLOUD_SECRET"}
    required_credentials = ("key_id", "secret")

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        # ``fetch`` is raw HTTP for a connection's own housekeeping (e.g. fetching a
        # token); this API signs every request, so it needs none.
        return AlibabacloudConnection(config)

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        """Rules the settings model cannot express, as (key path, message)."""
        settings: AlibabacloudSettings = instance.settings
        if settings.database.lower() in SYSTEM_DATABASES:
            return [("database", f"{settings.database} is a system database; it cannot be imported")]
        return ()

    async def preflight(self, caller: Caller, instance: Instance) -> Sequence[str]:
        try:
            await caller.read(imports().page(0))
        except ProviderError as error:
            return [f"cannot list imports with these credentials: {error}"]
        return []

    def steps(self, instance: Instance) -> Sequence[Step]:
        settings: AlibabacloudSettings = instance.settings
        name = instance.resource_name("import")
        token = instance.client_token("create-import")
        create = {"Name": name, "Database": settings.database, "BackupUrl": settings.backup_url,
                  "Overwrite": settings.overwrite, "ClientToken": token}

        def read_created(answer: Answer) -> Outputs:
            return {"import_id": answer.payload["ImportId"]}

        def by_id(action: str) -> CallStep:
            def build(outputs: Outputs) -> Call:
                return Call(action, {"ImportId": outputs["import_id"]}, mutating=True,
                            resource=str(outputs["import_id"]))

            async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
                import_id = str(outputs["import_id"])
                seen = await poll_listed(caller, imports(ImportIds=[import_id]), [import_id],
                                         lambda record: record.get("ImportId"))
                record = seen[import_id].record if import_id in seen else None
                before = "created" if action == "StartImport" else "restored"
                return {} if record is not None and record.get("Status") != before else None

            return CallStep(action_label(action), build, reconcile=reconcile, cutover=action == "BringOnline")

        return [
            CallStep(
                "create-import",
                lambda outputs: Call("CreateImport", create, mutating=True, resource=name, client_token=token),
                read_created,
                idempotent=True,
            ),
            by_id("StartImport"),
            WaitStep("wait-restored", IMPORTS_POLLER, {"until": "restored"}),
            by_id("BringOnline"),
            WaitStep("wait-online", IMPORTS_POLLER, {"until": "online"}),
        ]


def action_label(action: str) -> str:
    """``StartImport`` -> ``start-import``, ``BringOnline`` -> ``bring-online``."""
    return "".join(f"-{ch.lower()}" if ch.isupper() else ch for ch in action).lstrip("-")
