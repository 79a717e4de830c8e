"""The provider conformance suite: what every provider must do against its own emulator.

Subclass ``ProviderConformance`` in a test module of your plugin and say which
provider to test and give a few instance settings that cover its scenarios::

    from batchmig.testing.conformance import ProviderConformance, Strictness

    class TestAcmeConformance(ProviderConformance):
        provider = "acme-sql"
        region = "eu-1"
        samples = [{"bucket": "b1", "file": "full.bak"}, {"job_id": "j-1"}]
        strictness = Strictness.FULL

pytest collects the inherited tests. Each belongs to a strictness level; a class runs
the tests of its level and below (those above are reported as skipped, naming the
level they need). ``FULL`` is what a published provider should pass.

``BASIC``
    the samples validate; every mutating step survives a lost answer (it has a
    reconcile, or is idempotent); a run against the emulator succeeds with the
    provider's signatures accepted; a dry run lists every step and sends nothing;
    the settings schema renders.
``STANDARD``
    a throttle is answered in the cloud's dialect, honoured by the limiter and
    survived; answers dropped after the server acted are reconciled without a
    duplicate effect.
``FULL``
    a run makes exactly the calls its dry run listed, names included; client tokens
    are the same on every attempt and after a resume, and differ between runs;
    internal errors on mutating calls and lists that lag behind creates
    (eventual consistency) never make a create take effect twice; a run stopped at
    the manual cutover gate resumes to success without repeating a call; a runner
    SIGKILLed while it reconciles a lost answer resumes without a second effect, for
    every mutating action the samples make (runner and sandbox in processes of their
    own, so ``plugins`` objects must be constructible without arguments).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from batchmig.cutover import release_selected
from batchmig.dryrun import Placeholders, dry_run
from batchmig.engine.runner import instance_view
from batchmig.plan.loader import load_plan
from batchmig.plan.schema import plan_schema
from batchmig.plugin import CallStep
from batchmig.registry import Registry, load_registry
from batchmig.sandbox.config import SandboxConfig
from batchmig.selection import Selection
from batchmig.testing.cli_process import cli_command
from batchmig.testing.crashes import audit_length, lost_answer_faults, wait_in_window
from batchmig.testing.helpers import SandboxRun, record_calls, run_plan, unmatched_calls
from batchmig.testing.sandbox_process import SandboxProcess

__all__ = ["ProviderConformance", "Strictness"]

LAG_SECONDS = 1.0
"""How long the lagging-list test keeps new resources out of lists: within the
reconcile window of ``find_created`` (its defaults re-list for 6 s)."""
RESEND_ATTEMPTS = 20
"""Attempts per call in the fault tests' plans. Half the answers to mutating calls are
dropped there, and a call idempotent by its client token is sent again after each drop:
with the default 8 attempts, 8 drops in a row (1 in 256 per call) ended an instance in
needs_attention now and then. 20 attempts make that about 1 in a million per call."""


class Strictness(IntEnum):
    """How much of the conformance suite a provider class runs (see the module docstring)."""

    BASIC = 1
    STANDARD = 2
    FULL = 3


Test = TypeVar("Test", bound=Callable[..., None])


def _level(level: Strictness) -> Callable[[Test], Test]:
    """Mark a test as belonging to ``level``."""

    def mark(test: Test) -> Test:
        test.strictness = level  # type: ignore[attr-defined]
        return test

    return mark


class ProviderConformance:
    provider: ClassVar[str]
    samples: ClassVar[list[dict[str, Any]]]
    region: ClassVar[str] = "sandbox-1"
    options: ClassVar[dict[str, Any]] = {}
    time_scale: ClassVar[float] = 600.0
    strictness: ClassVar[Strictness] = Strictness.FULL
    plugins: ClassVar[tuple[object, ...]] = ()
    """Plugin objects to register instead of the installed entry points."""
    idempotent_steps: ClassVar[bool] = True
    """Whether the samples make an idempotent step (one whose call carries a client
    token). A provider whose cloud takes no token says False: the client-token test is
    then not collected at all (never a skip), and
    ``test_the_declared_idempotency_matches_the_steps`` holds the class to its word."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.idempotent_steps:
            cls.test_client_tokens_are_stable_across_attempts_and_resumes = None  # type: ignore[assignment,method-assign]

    @pytest.fixture(autouse=True)
    def _strictness(self, request: pytest.FixtureRequest) -> None:
        needed = getattr(request.function, "strictness", Strictness.BASIC)
        if needed > self.strictness:
            pytest.skip(f"needs conformance strictness {needed.name}; {type(self).__name__} runs "
                        f"{self.strictness.name}")

    # ------------------------------------------------------------ helpers

    def registry(self) -> Registry:
        return load_registry(self.plugins, entry_points=not self.plugins)

    def copy_sample(self, settings: dict[str, Any], copy: int) -> dict[str, Any]:
        """The settings of copy number ``copy`` of a sample, for the tests that run
        several copies of every sample (and the kill cases, which each need fresh
        targets). Copies are identical by default; override this when your provider
        refuses two instances with one target (e.g. one database restored twice),
        returning settings with a target of their own for every ``copy``."""
        return settings

    def write_plan(
        self, directory: Path, copies: int = 1, rate_limits: dict[str, float] | None = None,
        cutover: str = "auto",
    ) -> Path:
        config: dict[str, Any] = {"type": self.provider, "region": self.region}
        if self.options:
            config["options"] = self.options
        if rate_limits:
            config["rate_limits"] = rate_limits
        instances = [
            {"id": f"conf-{copy}-{index}", "provider": "p", "cutover": cutover,
             "settings": self.copy_sample(dict(settings), copy)}
            for copy in range(copies)
            for index, settings in enumerate(self.samples)
        ]
        plan = {"version": 1, "name": "conformance", "providers": {"p": config}, "instances": instances,
                "run": {"retry": {"base_delay": 0.05, "max_delay": 0.5, "max_attempts": RESEND_ATTEMPTS}}}
        path = directory / "conformance.yaml"
        path.write_text(json.dumps(plan, indent=2), encoding="utf-8")  # JSON is YAML
        return path

    def run(self, directory: Path, plan: Path, registry: Registry | None = None, run_id: str | None = None,
            resume: str | None = None, **config: Any) -> SandboxRun:
        sandbox = SandboxConfig(time_scale=self.time_scale, **config)
        return run_plan(plan, registry or self.registry(), directory, sandbox_config=sandbox, run_id=run_id,
                        resume=resume)

    def _emulator(self) -> str:
        emulator = self.registry().providers[self.provider].emulator
        if emulator is None:
            pytest.fail(f"provider {self.provider} registers no emulator")
        return emulator

    def _mutating_steps(self, registry: Registry, plan_path: Path, run_id: str) -> list[tuple[str, CallStep]]:
        plan = load_plan(str(plan_path), registry)
        listing, _ = dry_run(plan, registry, run_id)
        provider = registry.provider(self.provider)
        found = []
        for inst in plan.instances:
            mutating = {call.step for call in listing[inst.id] if call.mutating}
            for step in provider.steps(instance_view(inst, run_id)):
                if isinstance(step, CallStep) and step.name in mutating:
                    found.append((inst.id, step))
        return found

    # ---------------------------------------------------------------- BASIC

    @_level(Strictness.BASIC)
    def test_plan_validates(self, tmp_path: Path) -> None:
        plan = load_plan(str(self.write_plan(tmp_path)), self.registry())
        assert len(plan.instances) == len(self.samples)

    @_level(Strictness.BASIC)
    def test_mutating_steps_survive_a_lost_answer(self, tmp_path: Path) -> None:
        registry = self.registry()
        for _, step in self._mutating_steps(registry, self.write_plan(tmp_path), "conformance"):
            assert step.reconcile is not None or step.idempotent, (
                f"mutating step {step.name} has neither a reconcile nor idempotent=True"
            )

    @_level(Strictness.BASIC)
    def test_the_declared_idempotency_matches_the_steps(self, tmp_path: Path) -> None:
        steps = self._mutating_steps(self.registry(), self.write_plan(tmp_path), "conformance")
        idempotent = sorted({step.name for _, step in steps if step.idempotent})
        if self.idempotent_steps:
            assert idempotent, f"{self.provider}'s samples make no idempotent step: set idempotent_steps = False"
        else:
            assert not idempotent, f"{self.provider} has idempotent steps {idempotent}: remove idempotent_steps = False"

    @_level(Strictness.BASIC)
    def test_runs_against_its_emulator(self, tmp_path: Path) -> None:
        result = self.run(tmp_path, self.write_plan(tmp_path))
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        rejected = [e for e in result.audit if e.get("outcome") == "rejected"]
        assert not rejected, f"the emulator rejected batchmig's signature: {rejected[:2]}"
        assert result.duplicates() == {}
        called = {e["action"] for e in result.audit if e.get("emulator") == self._emulator() and e.get("action")}
        undeclared = called - self.registry().provider(self.provider).actions
        assert not undeclared, f"called but not declared in Provider.actions: {sorted(undeclared)}"

    @_level(Strictness.BASIC)
    def test_dry_run_lists_every_step_and_sends_nothing(self, tmp_path: Path) -> None:
        registry = self.registry()
        plan = load_plan(str(self.write_plan(tmp_path)), registry)
        listing, estimate = dry_run(plan, registry, "conformance")
        assert estimate.rate_bound > 0 and estimate.makespan >= estimate.rate_bound
        for inst in plan.instances:
            calls = listing[inst.id]
            assert calls and any(call.mutating for call in calls)
            assert all(call.action for call in calls)
            undeclared = {call.action for call in calls} - registry.provider(self.provider).actions
            assert not undeclared, f"not declared in Provider.actions: {sorted(undeclared)}"
        assert not (tmp_path / "runs").exists()

    @_level(Strictness.BASIC)
    def test_settings_schema_renders(self) -> None:
        schema = plan_schema(self.registry())
        assert f"settings:{self.provider}" in schema["$defs"]

    # ------------------------------------------------------------- STANDARD

    @_level(Strictness.STANDARD)
    def test_throttle_is_answered_in_dialect_and_survived(self, tmp_path: Path) -> None:
        plan = self.write_plan(tmp_path, copies=4, rate_limits={"*": 1000.0})
        result = self.run(tmp_path, plan, rate_limits={self._emulator(): {"*": 2.0}})
        throttled = [e for e in result.audit if e.get("outcome") == "throttled"]
        assert throttled, "the emulator never throttled although the client ignored its caps"
        assert result.report["calls"]["throttled"] >= len(throttled) > 0
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}

    @_level(Strictness.STANDARD)
    def test_dropped_answers_are_reconciled_without_duplicates(self, tmp_path: Path) -> None:
        drops = [{"kind": "drop", "mutating_only": True, "probability": 0.5}]
        result = self.run(tmp_path, self.write_plan(tmp_path, copies=2), faults=drops, seed=7)
        dropped = [e for e in result.audit if e.get("outcome") == "dropped"]
        assert dropped, "no mutating call was dropped; the test proved nothing"
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}, "a create or start took effect twice"
        assert result.report["calls"]["reconciled"] >= 1 or self._all_idempotent(tmp_path)

    def _all_idempotent(self, tmp_path: Path) -> bool:
        steps = self._mutating_steps(self.registry(), self.write_plan(tmp_path), "conformance")
        return all(step.idempotent for _, step in steps)

    # ----------------------------------------------------------------- FULL

    @_level(Strictness.FULL)
    def test_a_run_makes_exactly_the_calls_its_dry_run_listed(self, tmp_path: Path) -> None:
        registry = self.registry()
        plan_path = self.write_plan(tmp_path)
        listing, _ = dry_run(load_plan(str(plan_path), registry), registry, "conformance-rehearsed")
        with record_calls(registry) as calls:
            result = self.run(tmp_path, plan_path, registry, run_id="conformance-rehearsed")
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert unmatched_calls(listing, calls) == []

    @_level(Strictness.FULL)
    def test_client_tokens_are_stable_across_attempts_and_resumes(self, tmp_path: Path) -> None:
        registry = self.registry()
        plan_path = self.write_plan(tmp_path)
        first = self._mutating_steps(registry, plan_path, "run-a")
        tokened = [(iid, step) for iid, step in first if step.idempotent]
        assert tokened, f"{self.provider}'s samples make no idempotent step: set idempotent_steps = False"
        rebuilt = dict(((iid, step.name), step) for iid, step in self._mutating_steps(self.registry(), plan_path,
                                                                                       "run-a"))
        other = dict(((iid, step.name), step) for iid, step in self._mutating_steps(registry, plan_path, "run-b"))
        placeholders = Placeholders()
        for iid, step in tokened:
            call = step.build(placeholders)
            assert call.client_token, f"{step.name} is idempotent but its call carries no client_token"
            assert step.build(placeholders).client_token == call.client_token, f"{step.name}: a retry changes it"
            again = rebuilt[(iid, step.name)].build(placeholders)
            assert again.client_token == call.client_token, f"{step.name}: a resume changes the client token"
            assert other[(iid, step.name)].build(placeholders).client_token != call.client_token, (
                f"{step.name}: two runs share a client token, so the second would be a no-op"
            )
        errors = [{"kind": "error", "mutating_only": True, "probability": 0.5}]
        with record_calls(registry) as calls:
            result = self.run(tmp_path, plan_path, registry, faults=errors, seed=3)
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}
        by_resource: dict[tuple[str, str | None], set[str | None]] = {}
        for call, request in zip(calls, calls.requests, strict=True):
            if call.mutating and call.client_token:
                signed = request.body.decode("utf-8", "replace") + request.url + " ".join(request.headers.values())
                assert call.client_token in signed, f"{call.action}: the client token is not in the signed request"
                by_resource.setdefault((call.action, call.resource), set()).add(call.client_token)
        assert by_resource and all(len(tokens) == 1 for tokens in by_resource.values()), by_resource

    @_level(Strictness.FULL)
    def test_internal_errors_on_mutating_calls_never_duplicate(self, tmp_path: Path) -> None:
        errors = [{"kind": "error", "mutating_only": True, "probability": 0.3}]
        result = self.run(tmp_path, self.write_plan(tmp_path, copies=2), faults=errors, seed=11)
        assert any(e.get("outcome", "").startswith("fault:") for e in result.audit), "no fault was injected"
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}

    @_level(Strictness.FULL)
    def test_lagging_lists_never_duplicate_a_create(self, tmp_path: Path) -> None:
        faults = [{"kind": "drop", "mutating_only": True, "probability": 0.5},
                  {"kind": "list_lag", "seconds": LAG_SECONDS}]
        result = self.run(tmp_path, self.write_plan(tmp_path, copies=2), faults=faults, seed=5)
        assert any(e.get("outcome") == "dropped" for e in result.audit), "no answer was dropped"
        assert result.duplicates() == {}, "a lagging list made a create take effect twice"
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]

    @_level(Strictness.FULL)
    def test_a_run_stopped_at_the_cutover_gate_resumes_without_repeating(self, tmp_path: Path) -> None:
        registry = self.registry()
        plan_path = self.write_plan(tmp_path, cutover="manual")
        with record_calls(registry) as calls:
            first = self.run(tmp_path, plan_path, registry)
            gated = [iid for iid, status in first.statuses.items() if status == "awaiting_cutover"]
            release_selected(first.outcome.run_dir, registry, Selection.parse(), select_all=True)
            second = self.run(tmp_path, plan_path, registry, resume=first.outcome.run_id)
        assert set(second.statuses.values()) == {"succeeded"}, second.report["instances"]
        assert second.duplicates() == {}
        sent = [(c.action, c.resource, json.dumps(c.params, sort_keys=True, default=str))
                for c in calls if c.mutating]
        assert len(sent) == len(set(sent)), "a mutating call was sent twice across the resume"
        assert gated or not any(step.cutover for _, step in self._mutating_steps(registry, plan_path, "x"))

    @_level(Strictness.FULL)
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

    def _mutating_actions(self, directory: Path) -> list[tuple[int, str]]:
        """(sample index, action) for the first sample that sends each mutating action."""
        registry = self.registry()
        plan = load_plan(str(self.write_plan(directory)), registry)
        listing, _ = dry_run(plan, registry, "conformance")
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

