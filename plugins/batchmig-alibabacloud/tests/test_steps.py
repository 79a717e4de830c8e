"""The provider's steps against its emulator, with batchmig's kit (no engine, no plan).

``EmulatorHost`` runs the emulator inside batchmig's sandbox host on loopback (audit
log, per-call faults); ``FakeSandboxContext`` is its clock, moved by the driver between
polls; ``StepDriver`` runs an instance's steps as the engine would, reconciling or
repeating calls whose answer was lost and checking what it recovers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from batchmig.plugin import CallStep, Instance
from batchmig.testing import (
    EmulatorHost,
    FakeSandboxContext,
    StepDriver,
    call_step,
    http_client,
    make_instance,
    provider_config,
)

from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS, AlibabacloudEmulator
from batchmig_alibabacloud.provider import AlibabacloudProvider

pytestmark = pytest.mark.anyio

PROVIDER = AlibabacloudProvider()
Host = EmulatorHost[FakeSandboxContext]
SALES = {"database": "sales", "backup_url": "https://backups.example/sales.bak"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    async with EmulatorHost(AlibabacloudEmulator, FakeSandboxContext(time_scale=60)) as running:
        yield running


@pytest.fixture
async def driver(host: Host) -> AsyncIterator[StepDriver]:
    async with http_client() as send:
        connection = PROVIDER.connect(provider_config("alibabacloud", host.url, DEMO_CREDENTIALS, region="eu-1"), send)
        yield StepDriver(connection, send, provider=PROVIDER, clock=host.context)


def instance(settings: Mapping[str, object], token: str = "a1b2c3d4") -> Instance:
    return make_instance(PROVIDER, "alibabacloud", settings, token=token)


async def test_an_import_goes_online(driver: StepDriver, host: Host) -> None:
    run = await driver.run(instance(SALES))
    assert run.state == "succeeded", run
    assert set(run.outputs) == {"import_id"}  # remote ids only: the plan's settings stay in the plan
    assert host.resources("CreateImport") == [instance(SALES).resource_name("import")]


async def test_every_lost_answer_is_recovered_without_a_second_effect(driver: StepDriver, host: Host) -> None:
    steps = PROVIDER.steps(instance(SALES))
    mutating = [step.name for step in steps if isinstance(step, CallStep)]
    run = await driver.run(instance(SALES), lose=mutating)
    assert run.state == "succeeded", run
    for action in ("CreateImport", "StartImport", "BringOnline"):
        assert len(host.effects(action)) == 1, action


async def test_a_dropped_create_is_repeated_with_the_same_token(driver: StepDriver, host: Host) -> None:
    host.inject("drop", action="CreateImport")  # the server creates it, the answer is lost
    run = await driver.run(instance(SALES))
    assert run.state == "succeeded"
    assert len(host.calls("CreateImport")) == 2 and len(host.effects("CreateImport")) == 1


async def test_start_reconcile_says_not_started_before_the_start(driver: StepDriver) -> None:
    inst = instance(SALES)
    run = await driver.run(inst, stop_before="start-import")
    assert await driver.reconcile(call_step(run.steps, "start-import"), run.outputs) is None


async def test_a_manual_cutover_stops_before_bring_online(driver: StepDriver, host: Host) -> None:
    paused = await driver.run(instance(SALES), approve_cutover=False)
    assert paused.state == "awaiting_cutover" and paused.step == "bring-online"
    assert not host.calls("BringOnline")
    assert (await driver.run(instance(SALES), resume=paused)).state == "succeeded"


async def test_a_failed_restore_fails_the_wait(driver: StepDriver) -> None:
    run = await driver.run(instance({**SALES, "backup_url": "https://backups.example/fail.bak"}))
    assert run.state == "failed" and run.step == "wait-restored"
    assert run.status is not None and "cannot be restored" in run.status.message


def test_system_databases_are_refused() -> None:
    assert PROVIDER.check(instance({**SALES, "database": "msdb"})) == [
        ("database", "msdb is a system database; it cannot be imported")
    ]
