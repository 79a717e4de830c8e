"""Scale-out campaign: three runners on one mixed plan in the PostgreSQL store, with chaos.

Three runner processes (``batchmig run --store``, then ``join``) share a mixed
Tencent/Huawei plan against ``batchmig sandbox serve`` in its own process, while a
second run of another plan on the same accounts goes on beside them. Meanwhile:

* a runner is SIGKILLed at a random moment and a new one joins;
* a runner at work is SIGSTOPped until the store shows one of its instances taken over
  by another runner (its lease ran out), and then SIGCONTed: the zombie finds its
  instances taken over (its writes fail the epoch check) and sends nothing more for
  them. The stop lasts until that condition, not a fixed time: on a loaded machine a
  takeover can come later than any fixed pause longer than a lease;
* PostgreSQL itself is stopped for a few seconds.

Counted at the end, from the sandbox's audit log and the store, never from the
runners' own bookkeeping: instances lost (not succeeded, a journaled remote id the
cloud does not know, a job the cloud does not report finished), mutating effects
repeated, resources created beyond one per planned create, throttle answers, the most
requests per (credential, action) in any sliding second against the cap the sandbox
judged them by — over both runs, during each takeover, after the zombie woke and after
the store returned — and, in the store, whether two runners ever
acted for one instance at once (a call journaled under an older epoch after one under
a newer epoch).

Every time here is ``time.monotonic()``, the clock the sandbox stamps with (on Linux
one clock for every process). The store is watched through its own SQL, not through
CLI processes: on a 2-core CI machine a Python start-up costs as much CPU as the
emulated cloud needs in a second.

A failed run keeps its evidence (``evidence.py``): the sandbox's audit and state, every
runner's output and events and a dump of the store's tables are copied to a directory
that the failure's message names.

CI mode: 300 + 60 instances, one round of chaos (about a minute and a half), seed 1313.
``BATCHMIG_SOAK=1``: 600 + 120 instances, three rounds, a seed from the clock.
``BATCHMIG_CAMPAIGN_SEED=N`` chooses the seed (chaos moments and the sandbox's draws).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from batchmig.sandbox.machinery import duplicate_effects, max_per_window
from batchmig.store.postgres import PostgresStore
from batchmig.testing.postgres import ThrowawayPostgres, scratch_database

from .cloudstate import expected_counts, missing_remote_ids, resource_counts, sandbox_state, unfinished_in_cloud
from .conftest import SOAK
from .evidence import ACTIVITY, dump_store, kept_on_failure
from .fleet import fleet_plan, kinds_of

pytestmark = pytest.mark.timeout(3600 if SOAK else 1500)
"""Longer than the campaign's own bounds, so that they fail it (keeping its evidence)
before pytest-timeout ends the whole process (which keeps nothing)."""

INSTANCES = 600 if SOAK else 300
SIDE_INSTANCES = 120 if SOAK else 60
ROUNDS = 3 if SOAK else 1
LEASE_TTL = 10.0
SEED = int(os.environ.get("BATCHMIG_CAMPAIGN_SEED") or (int(time.time()) if SOAK else 1313))
TAKEOVER_PATIENCE = 180.0
"""Seconds the zombie is kept stopped at most while waiting for another runner to take one
of its instances over (a lease of 10 s; the bound only keeps a broken run from hanging)."""
RUN = {"call_timeout": "3s", "retry": {"base_delay": 0.05, "max_delay": 1.0}}
GATEWAY_TIMEOUT = 3.0
"""The sandbox gives up on a request it gets to later than the call timeout, as a
cloud's gateway does: batchmig looks for a lost create two call timeouts after
sending it, and at load 22 the starved sandbox carried one out 27 s after it arrived
(after its re-send: a repeat that no batchmig path caused; docs/reliability.md)."""


def _plans(tmp_path: Path) -> tuple[Path, Path]:
    main = tmp_path / "scale-main.yaml"
    main.write_text(fleet_plan(INSTANCES, name="scale-main", run=RUN))
    side_doc = yaml.safe_load(fleet_plan(INSTANCES + SIDE_INSTANCES, name="scale-side", run=RUN))
    side_doc["instances"] = side_doc["instances"][INSTANCES:]  # other cloud resources, same accounts
    side = tmp_path / "scale-side.yaml"
    side.write_text(yaml.safe_dump(side_doc, sort_keys=False))
    return main, side


def _caps(audit: list[dict[str, Any]]) -> dict[str, float]:
    """Each (emulator, credential, action)'s cap, as the sandbox judged its requests (``cap``)."""
    caps: dict[str, float] = {}
    for entry in audit:
        if "cap" in entry:
            key = f"{entry['emulator']}/{entry.get('credential', '')}/{entry['action']}"
            caps[key] = min(caps.get(key, math.inf), entry["cap"])
    return caps


def _busiest(audit: list[dict[str, Any]], caps: dict[str, float], since: float = 0.0,
             until: float = math.inf) -> tuple[str, int, float]:
    """The key closest to its cap in any sliding second of the sandbox's clock (throttled
    requests included), among the requests it received in [since, until]: (key, count, cap)."""
    chosen = [e for e in audit if since <= e.get("decided", e["arrived"]) <= until]
    worst = [("/".join(key), count) for key, count in max_per_window(chosen).items()]
    key, count = max(worst, key=lambda kv: kv[1] / caps.get(kv[0], math.inf), default=("-", 0))
    return key, count, caps.get(key, math.inf)


def _shown(busiest: tuple[str, int, float]) -> str:
    key, count, cap = busiest
    return f"{count}/{cap:g} {key.split('/')[0]}/{key.split('/')[-1]}"


def _holdings(dsn: str, reference: str) -> dict[int, int]:
    """pid -> instances held, for every runner of the run that has not stopped."""
    try:
        with PostgresStore(dsn) as store:
            return {r.pid: len(r.holds) for r in store.runners(store.find_run(reference)) if r.stopped is None}
    except Exception:  # not created yet, or the store is being restarted
        return {}


def _wait_runners(procs: list[subprocess.Popen[bytes]], dsn: str, count: int, timeout: float = 300) -> None:
    """Until ``count`` of these processes are alive and registered as runners of the main run
    (the bound only keeps a broken run from hanging: at a load of 25 on two cores, a
    runner's start-up alone took over 90 s)."""
    deadline = time.monotonic() + timeout
    while sum(1 for p in procs if p.poll() is None and p.pid in _holdings(dsn, "scale-main")) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} runners did not register within {timeout}s")
        time.sleep(0.5)


def _at_work(procs: list[subprocess.Popen[bytes]], dsn: str, rng: random.Random,
             timeout: float = 300) -> subprocess.Popen[bytes]:
    """A random runner among those holding instances now (waiting for one, if none does)."""
    deadline = time.monotonic() + timeout
    while True:
        held = _holdings(dsn, "scale-main")
        working = [p for p in procs if p.poll() is None and held.get(p.pid, 0) > 0]
        if working:
            return rng.choice(working)
        if time.monotonic() > deadline:
            raise AssertionError(f"no runner held an instance within {timeout}s")
        time.sleep(0.2)


def _leases_of(dsn: str, pid: int) -> dict[str, int]:
    """instance -> epoch, for the instances whose lease the runner with this pid holds now."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT i.id, i.epoch FROM batchmig_instances i JOIN batchmig_runners r ON r.run = i.run AND r.id = i.owner"
            " WHERE r.pid = %s AND i.lease_until >= now()", (pid,)).fetchall()
    return {iid: int(epoch) for iid, epoch in rows}


def _taken_over(dsn: str, held: dict[str, int]) -> bool:
    """Whether another runner has claimed one of ``held`` (its epoch moved on)."""
    try:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT id, epoch FROM batchmig_instances WHERE id = ANY(%s)", (list(held),))
            return any(int(epoch) > held[iid] for iid, epoch in rows)
    except psycopg.OperationalError:  # the store is restarting: not yet
        return False


def _freeze_until_taken_over(zombie: subprocess.Popen[bytes], dsn: str, workdir: Path) -> None:
    """SIGSTOP ``zombie`` and keep it stopped until another runner has taken over one of
    the instances it held: waking sooner (a takeover that came late on a loaded machine)
    would test nothing. If none comes, who waits for whom in the store is kept (in
    ``store-while-frozen/``) before the zombie wakes and the picture goes."""
    zombie.send_signal(signal.SIGSTOP)
    held = _leases_of(dsn, zombie.pid)
    assert held, f"the runner chosen as the zombie (pid {zombie.pid}) held no instance"
    deadline = time.monotonic() + TAKEOVER_PATIENCE
    while not _taken_over(dsn, held):
        if time.monotonic() > deadline:
            dump_store(dsn, workdir / "store-while-frozen", ACTIVITY)
            dump_store(dsn, workdir / "store-while-frozen")
            zombie.send_signal(signal.SIGCONT)
            raise AssertionError(f"no runner took over any of the zombie's {len(held)} instances "
                                 f"within {TAKEOVER_PATIENCE:g}s")
        time.sleep(0.5)
    zombie.send_signal(signal.SIGCONT)


def _epochs_going_back(dsn: str) -> list[tuple[Any, ...]]:
    """Calls journaled under an older epoch after a call under a newer one, per instance:
    two runners acting for one instance at once (must be none)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT run, instance, runner, epoch, sent FROM ("
            "  SELECT *, max(epoch) OVER (PARTITION BY run, instance ORDER BY sent, id"
            "                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS newest"
            "  FROM batchmig_calls) c WHERE epoch < newest").fetchall()


def _status(cli: Any, run: str, dsn: str) -> dict[str, Any]:
    done = cli.run("status", run, "--store", dsn, "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def test_three_runners_survive_a_kill_a_zombie_and_a_store_outage(tmp_path: Path, cli, sandbox_process, figures):
    with kept_on_failure(tmp_path, "scale-out", before_copy=cli.cleanup):
        _campaign(tmp_path, cli, sandbox_process, figures)


def _campaign(tmp_path: Path, cli: Any, sandbox_process: Any, figures: dict[str, Any]) -> None:
    rng = random.Random(SEED)
    main_plan, side_plan = _plans(tmp_path)
    box = sandbox_process({"time_scale": 150, "seed": SEED, "gateway_timeout": GATEWAY_TIMEOUT})
    events: list[dict[str, Any]] = []
    with ThrowawayPostgres() as server, scratch_database(server.dsn) as dsn:
        try:
            assert cli.run("store", "init", "--store", dsn).returncode == 0
            common = ("--store", dsn, "--lease-ttl", str(LEASE_TTL), "--no-progress")
            runners: list[subprocess.Popen[bytes]] = []
            logs: dict[int, Path] = {}

            def start(*args: str) -> None:
                proc, stem = cli.start(*args)
                runners.append(proc)
                logs[proc.pid] = Path(f"{stem}.err")

            start("run", str(main_plan), "--sandbox-at", str(box.directory), *common)
            _wait_runners(runners, dsn, 1)
            for _ in range(2):
                start("join", "scale-main", *common)
            side, side_stem = cli.start("run", str(side_plan), "--sandbox-at", str(box.directory), *common)
            _wait_runners(runners, dsn, 3)

            for _ in range(ROUNDS):
                # a runner dies at a random moment; a new one joins
                time.sleep(rng.uniform(1.0, 3.0))
                victim = _at_work(runners, dsn, rng)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                events.append({"event": "sigkill", "at": time.monotonic(), "pid": victim.pid})
                start("join", "scale-main", *common)
                _wait_runners(runners, dsn, 3)
                # a runner at work freezes past its lease, then wakes as a zombie
                time.sleep(rng.uniform(0.5, 2.0))
                zombie = _at_work(runners, dsn, rng)
                stopped_at = time.monotonic()
                _freeze_until_taken_over(zombie, dsn, tmp_path)
                events.append({"event": "sigstop", "at": stopped_at, "woke": time.monotonic(), "pid": zombie.pid})
                # the store goes away for a few seconds
                time.sleep(rng.uniform(0.5, 1.5))
                server.stop()
                down = time.monotonic()
                time.sleep(3.0)
                server.start()
                events.append({"event": "store_outage", "at": down, "back": time.monotonic()})

            deadline = time.monotonic() + (900 if SOAK else 300)
            for proc in [*runners, side]:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            codes = {p.pid: p.returncode for p in runners}
            killed = {e["pid"] for e in events if e["event"] == "sigkill"}
            # every runner ended by itself (0) except those killed
            assert all(code == (-signal.SIGKILL if pid in killed else 0) for pid, code in codes.items()), codes
            assert side.returncode == 0, Path(f"{side_stem}.err").read_text()[-2000:]
            main_status = _status(cli, "scale-main", dsn)
            side_status = _status(cli, "scale-side", dsn)
            going_back = _epochs_going_back(dsn)
            with PostgresStore(dsn) as store:
                listed = store.runners(store.find_run("scale-main"))
        finally:  # what the store saw, kept with the rest if the campaign fails
            dump_store(dsn, tmp_path / "store")

    audit = box.audit()
    statuses = {e["id"]: e["status"] for e in main_status["instances"] + side_status["instances"]}
    state = sandbox_state(box.directory)
    lost = sorted(i for i, s in statuses.items() if s != "succeeded")
    lost += missing_remote_ids(main_status, state) + missing_remote_ids(side_status, state)
    for plan, status in ((main_plan, main_status), (side_plan, side_status)):
        lost += [f"{i}: {why}" for i, why in unfinished_in_cloud(plan, status, box.directory).items()]
    extra = resource_counts(state) - expected_counts(kinds_of(INSTANCES + SIDE_INSTANCES))
    repeated = duplicate_effects(audit)
    zombies = [e for e in events if e["event"] == "sigstop"]
    caps = _caps(audit)
    windows = {  # seconds after each event that put the budget to the test
        "during_takeovers": [(e["at"], e["at"] + LEASE_TTL + 5) for e in events if e["event"] == "sigkill"],
        "after_zombie_woke": [(e["woke"], e["woke"] + 5) for e in zombies],
        "after_store_returned": [(e["back"], e["back"] + 5) for e in events if e["event"] == "store_outage"],
    }
    busiest = {name: max((_busiest(audit, caps, *span) for span in spans), key=lambda b: b[1] / b[2])
               for name, spans in windows.items()}
    overall = _busiest(audit, caps)
    over_cap = {f"{name}: {_shown(b)}" for name, b in [("whole run", overall), *busiest.items()] if b[1] > b[2]}
    zombie_logs = [logs[e["pid"]].read_text(errors="replace") for e in zombies]
    figures.update({
        "instances": len(statuses), "runners_started": len(runners), "kills": ROUNDS, "zombies": ROUNDS,
        "store_outages": ROUNDS, "seed": SEED, "requests": len(audit),
        "lost_instances": len(lost), "repeated_effects": len(repeated), "extra_resources": sum(extra.values()),
        "throttled": sum(1 for e in audit if e.get("outcome") == "throttled"),
        "calls_under_an_older_epoch": len(going_back),
        "worst_second": _shown(overall),
        **{f"worst_second_{name}": _shown(b) for name, b in busiest.items()},
        "over_cap": sorted(over_cap),
        "zombie_leases_lost": sum(text.count('"lease.lost"') for text in zombie_logs),
        "taken_over": sum(json.loads(line).get("taken_over", 0)
                          for path in logs.values() for line in path.read_text(errors="replace").splitlines()
                          if '"runner.finished"' in line),
        "runners_listed": len(listed),
        "seconds": round(max(e.get("back", e["at"]) for e in events) - events[0]["at"], 1),
    })
    assert len(statuses) == INSTANCES + SIDE_INSTANCES
    assert lost == [], lost[:10]
    assert repeated == {} and not extra, (repeated, extra)
    assert going_back == [], going_back[:5]
    assert over_cap == set() and figures["throttled"] == 0, figures
    assert figures["zombie_leases_lost"] > 0 and figures["taken_over"] > 0, figures
    assert len(listed) == len(runners)
