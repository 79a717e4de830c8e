"""The provider conformance suite: what every provider must do against its own emulator.

Subclass ``ProviderConformance`` in a test module of your plugin and say which
provider to test and give a few instance settings that cover its scenarios::

    from batchmig.testing.conformance import ProviderConformance

    class TestAcmeConformance(ProviderConformance):
        provider = "acme-sql"
        region = "eu-1"
        samples = [{"bucket": "b1", "file": "full.bak"}, {"job_id": "j-1"}]

pytest collects the inherited tests: the plan validates; every mutating step can
reconcile; a run against the sandbox succeeds with signatures accepted; a throttle
is answered in the cloud's dialect, honoured by the limiter and survived; a dropped
answer after the server acted is reconciled without a duplicate call; a dry run
lists every step and sends nothing; the settings schema renders.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest

from batchmig.dryrun import dry_run
from batchmig.engine.runner import instance_view
from batchmig.plan.loader import load_plan
from batchmig.plan.schema import plan_schema
from batchmig.plugin import CallStep
from batchmig.registry import Registry, load_registry
from batchmig.sandbox.host import SandboxConfig
from batchmig.testing.cli_process import cli_command
from batchmig.testing.crashes import audit_length, lost_answer_faults, wait_in_window
from batchmig.testing.helpers import SandboxRun, run_plan
from batchmig.testing.sandbox_process import SandboxProcess


class ProviderConformance:
    provider: ClassVar[str]
    samples: ClassVar[list[dict[str, Any]]]
    region: ClassVar[str] = "sandbox-1"
    options: ClassVar[dict[str, Any]] = {}
    time_scale: ClassVar[float] = 600.0
    plugins: ClassVar[tuple[object, ...]] = ()
    """Plugin objects to register instead of the installed entry points."""

    # ------------------------------------------------------------ helpers

    def registry(self) -> Registry:
        return load_registry(self.plugins, entry_points=not self.plugins)

    def write_plan(self, directory: Path, copies: int = 1, rate_limits: dict[str, float] | None = None) -> Path:
        config: dict[str, Any] = {"type": self.provider, "region": self.region}
        if self.options:
            config["options"] = self.options
        if rate_limits:
            config["rate_limits"] = rate_limits
        instances = [
            {"id": f"conf-{copy}-{index}", "provider": "p", "cutover": "auto", "settings": settings}
            for copy in range(copies)
            for index, settings in enumerate(self.samples)
        ]
        plan = {"version": 1, "name": "conformance", "providers": {"p": config}, "instances": instances,
                "run": {"retry": {"base_delay": 0.05, "max_delay": 0.5}}}
        path = directory / "conformance.yaml"
        path.write_text(json.dumps(plan, indent=2), encoding="utf-8")  # JSON is YAML
        return path

    def run(self, directory: Path, plan: Path, **config: Any) -> SandboxRun:
        sandbox = SandboxConfig(time_scale=self.time_scale, **config)
        return run_plan(plan, self.registry(), directory, sandbox_config=sandbox)

    # -------------------------------------------------------------- tests

    def test_plan_validates(self, tmp_path: Path) -> None:
        plan = load_plan(str(self.write_plan(tmp_path)), self.registry())
        assert len(plan.instances) == len(self.samples)

    def test_mutating_steps_can_reconcile(self, tmp_path: Path) -> None:
        registry = self.registry()
        plan = load_plan(str(self.write_plan(tmp_path)), registry)
        listing, _ = dry_run(plan, registry)
        provider = registry.provider(self.provider)
        for inst in plan.instances:
            for step in provider.steps(instance_view(inst, "conformance")):
                if isinstance(step, CallStep) and any(c.step == step.name and c.mutating for c in listing[inst.id]):
                    assert step.reconcile is not None, f"mutating step {step.name} has no reconcile"

    def test_runs_against_its_emulator(self, tmp_path: Path) -> None:
        result = self.run(tmp_path, self.write_plan(tmp_path))
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        rejected = [e for e in result.audit if e.get("outcome") == "rejected"]
        assert not rejected, f"the emulator rejected batchmig's signature: {rejected[:2]}"
        assert result.duplicates() == {}
        called = {e["action"] for e in result.audit if e.get("emulator") == self._emulator() and e.get("action")}
        undeclared = called - self.registry().provider(self.provider).actions
        assert not undeclared, f"called but not declared in Provider.actions: {sorted(undeclared)}"

    def test_throttle_is_answered_in_dialect_and_survived(self, tmp_path: Path) -> None:
        plan = self.write_plan(tmp_path, copies=4, rate_limits={"*": 1000.0})
        result = self.run(tmp_path, plan, rate_limits={self._emulator(): {"*": 2.0}})
        throttled = [e for e in result.audit if e.get("outcome") == "throttled"]
        assert throttled, "the emulator never throttled although the client ignored its caps"
        assert result.report["calls"]["throttled"] >= len(throttled) > 0
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}

    def test_dropped_answers_are_reconciled_without_duplicates(self, tmp_path: Path) -> None:
        drops = [{"kind": "drop", "mutating_only": True, "probability": 0.5}]
        result = self.run(tmp_path, self.write_plan(tmp_path, copies=2), faults=drops, seed=7)
        dropped = [e for e in result.audit if e.get("outcome") == "dropped"]
        assert dropped, "no mutating call was dropped; the test proved nothing"
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}, "a create or start took effect twice"
        assert result.report["calls"]["reconciled"] >= 1

    def test_a_kill_while_a_lost_answer_is_reconciled_repeats_nothing(self, tmp_path: Path) -> None:
        """Every mutating action: the cloud acts, the answer is lost, the runner is
        SIGKILLed while it finds out what happened; the resumed run must look before it
        sends again, end succeeded, and leave exactly one effect in the cloud."""
        cases = self._mutating_actions(tmp_path)
        assert cases, "the samples make no mutating call"
        with SandboxProcess(tmp_path / "sandbox", {"time_scale": self.time_scale}, self.plugins) as box:
            found = {
                action: self._kill_while_reconciling(tmp_path / f"case-{number}", box, number, sample, action)
                for number, (sample, action) in enumerate(cases)
            }
        problems = {action: problem for action, problem in found.items() if problem}
        assert not problems, problems

    def test_dry_run_lists_every_step_and_sends_nothing(self, tmp_path: Path) -> None:
        registry = self.registry()
        plan = load_plan(str(self.write_plan(tmp_path)), registry)
        listing, estimate = dry_run(plan, registry)
        assert estimate.rate_bound > 0 and estimate.makespan >= estimate.rate_bound
        for inst in plan.instances:
            calls = listing[inst.id]
            assert calls and any(call.mutating for call in calls)
            assert all(call.action for call in calls)
            undeclared = {call.action for call in calls} - registry.provider(self.provider).actions
            assert not undeclared, f"not declared in Provider.actions: {sorted(undeclared)}"
        assert not (tmp_path / "runs").exists()

    def test_settings_schema_renders(self) -> None:
        schema = plan_schema(self.registry())
        assert f"settings:{self.provider}" in schema["$defs"]

    def _mutating_actions(self, directory: Path) -> list[tuple[int, str]]:
        """(sample index, action) for the first sample that sends each mutating action."""
        registry = self.registry()
        plan = load_plan(str(self.write_plan(directory)), registry)
        listing, _ = dry_run(plan, registry)
        cases: dict[str, int] = {}
        for sample, inst in enumerate(plan.instances):
            for call in listing[inst.id]:
                if call.mutating:
                    cases.setdefault(call.action, sample)
        return [(sample, action) for action, sample in cases.items()]

    def _kill_while_reconciling(
        self, directory: Path, box: SandboxProcess, number: int, sample: int, action: str
    ) -> str:
        """One case; returns what went wrong ('' if nothing)."""
        directory.mkdir()
        path = self.write_plan(directory, copies=number + 1)  # a copy of its own: fresh targets
        plan = json.loads(path.read_text(encoding="utf-8"))
        plan["instances"] = [i for i in plan["instances"] if i["id"] == f"conf-{number}-{sample}"]
        path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
        run_dir = directory / "run"
        offset = audit_length(box.audit_path)
        box.configure(faults=lost_answer_faults(self._emulator(), action))
        command = cli_command("run", str(path), "--sandbox-at", str(box.directory), "--run-dir", str(run_dir),
                              "--no-progress", plugins=self.plugins)
        with open(directory / "run.log", "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=directory)
            try:
                lost = wait_in_window(proc, run_dir, box.audit_path, offset, action).dropped or {}
            finally:
                proc.kill()
                proc.wait()
                box.configure(faults=[])
            resumed = subprocess.run(cli_command("resume", str(run_dir), "--no-progress", plugins=self.plugins),
                                     stdout=log, stderr=log, cwd=directory, timeout=300)
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        effects = [e for e in box.audit()[offset:] if e.get("changed") and e.get("action") == action
                   and e.get("resource") == lost.get("resource")]
        problems = []
        if len(effects) != 1:
            problems.append(f"{action} took effect {len(effects)} times on {lost.get('resource')}")
        statuses = {entry["status"] for entry in report["instances"]}
        if resumed.returncode != 0 or statuses != {"succeeded"}:
            errors = [entry.get("error") for entry in report["instances"] if entry.get("error")]
            problems.append(f"resume exited {resumed.returncode} with {sorted(statuses)}: {errors}")
        return "; ".join(problems)

    def _emulator(self) -> str:
        emulator = self.registry().providers[self.provider].emulator
        if emulator is None:
            pytest.fail(f"provider {self.provider} registers no emulator")
        return emulator
