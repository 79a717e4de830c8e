"""Scale-out campaign: three runners on one mixed plan in the PostgreSQL store, with chaos.

Three runner processes (``batchmig run --store``, then ``join``) share a mixed
Tencent/Huawei plan against ``batchmig sandbox serve`` in its own process, while a
second run of a different plan on the same accounts goes on beside them. Meanwhile:

* runners are SIGKILLed at random moments and new ones join;
* one runner is SIGSTOPped for longer than its lease and then SIGCONTed: the zombie
  must find its instances taken over (its writes fail the epoch check) and send
  nothing for them;
* PostgreSQL itself is stopped for a few seconds.

Counted from the sandbox's audit log at the end: instances lost (not succeeded, or
without their resource in the cloud), mutating effects repeated, throttles, and the
most requests per (credential, action) in any sliding second — over the whole run,
during the takeovers and after the zombie woke — against the cloud's cap.

CI mode is bounded (300 instances, a few events); ``BATCHMIG_SOAK=1`` runs more
instances and more rounds of chaos.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from batchmig.registry import load_registry
from batchmig.sandbox.machinery import duplicate_effects, max_per_window
from batchmig.testing.postgres import ThrowawayPostgres, scratch_database

from .cloudstate import missing_remote_ids, sandbox_state
from .conftest import SOAK
from .fleet import fleet_plan

INSTANCES = 600 if SOAK else 300
SIDE_INSTANCES = 120 if SOAK else 60
ROUNDS = 3 if SOAK else 1
LEASE_TTL = 10.0
SEED = 1313
RUN = {"call_timeout": "3s", "retry": {"base_delay": 0.05, "max_delay": 1.0}}


def _plans(tmp_path: Path) -> tuple[Path, Path]:
    main = tmp_path / "scale-main.yaml"
    main.write_text(fleet_plan(INSTANCES, name="scale-main", run=RUN))
    side_doc = yaml.safe_load(fleet_plan(INSTANCES + SIDE_INSTANCES, name="scale-side", run=RUN))
    side_doc["instances"] = side_doc["instances"][INSTANCES:]  # other cloud resources, same accounts
    side = tmp_path / "scale-side.yaml"
    side.write_text(yaml.safe_dump(side_doc, sort_keys=False))
    return main, side


def _caps() -> dict[tuple[str, str], float]:
    caps: dict[tuple[str, str], float] = {}
    for name, spec in load_registry().emulators.items():  # the emulator classes document their caps
        for action, rate in getattr(spec.factory, "rate_limits", {}).items():
            caps[(name, action)] = rate
        caps[(name, "*")] = getattr(spec.factory, "default_rate", 20.0)
    return caps


def _worst(entries: list[dict[str, Any]], since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
    chosen = [e for e in entries if since <= e.get("arrived", 0) <= until]
    return {f"{k[0]}/{k[1]}/{k[2]}": v for k, v in max_per_window(chosen).items()}


def _over_cap(entries: list[dict[str, Any]], caps: dict[tuple[str, str], float]) -> dict[str, tuple[int, float]]:
    over = {}
    for (emulator, credential, action), count in max_per_window(entries).items():
        cap = caps.get((emulator, action), caps.get((emulator, "*"), 20.0))
        if count > cap:
            over[f"{emulator}/{credential}/{action}"] = (count, cap)
    return over


def _status(cli: Any, run: str, dsn: str) -> dict[str, Any]:
    done = cli.run("status", run, "--store", dsn, "--format", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def _wait_runners(cli: Any, run: str, dsn: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = cli.run("runners", run, "--store", dsn, "--format", "json")
        if done.returncode == 0:
            live = [r for r in json.loads(done.stdout)["runners"] if not r["stopped"]]
            if len(live) >= count:
                return
        time.sleep(0.3)
    raise AssertionError(f"{count} runners of {run} did not register")


def test_three_runners_survive_kills_a_zombie_and_a_store_outage(tmp_path: Path, cli, sandbox_process, figures):
    rng = random.Random(SEED)
    caps = _caps()
    main_plan, side_plan = _plans(tmp_path)
    box = sandbox_process({"time_scale": 150, "seed": SEED})
    with ThrowawayPostgres() as server, scratch_database(server.dsn) as dsn:
        assert cli.run("store", "init", "--store", dsn).returncode == 0
        common = ("--store", dsn, "--lease-ttl", str(LEASE_TTL), "--no-progress")
        runners: list[subprocess.Popen[bytes]] = []
        logs: dict[int, Path] = {}

        def start(*args: str) -> None:
            proc, stem = cli.start(*args)
            runners.append(proc)
            logs[proc.pid] = Path(f"{stem}.err")

        start("run", str(main_plan), "--sandbox-at", str(box.directory), *common)
        _wait_runners(cli, "scale-main", dsn, 1)
        for _ in range(2):
            start("join", "scale-main", *common)
        side, _ = cli.start("run", str(side_plan), "--sandbox-at", str(box.directory), *common)
        _wait_runners(cli, "scale-main", dsn, 3)

        events: list[dict[str, Any]] = []

        def alive() -> list[subprocess.Popen[bytes]]:
            return [p for p in runners if p.poll() is None]

        for _ in range(ROUNDS):
            # a runner dies at a random moment; a new one joins
            time.sleep(rng.uniform(1.0, 3.0))
            victim = rng.choice(alive())
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            events.append({"event": "sigkill", "at": time.time()})
            start("join", "scale-main", *common)
            _wait_runners(cli, "scale-main", dsn, 3)
            # a runner that is at work freezes past its lease, then wakes as a zombie
            time.sleep(rng.uniform(0.5, 2.0))
            zombie = rng.choice(alive())
            zombie.send_signal(signal.SIGSTOP)
            stopped_at = time.time()
            time.sleep(LEASE_TTL + 4)
            zombie.send_signal(signal.SIGCONT)
            events.append({"event": "sigstop", "at": stopped_at, "woke": time.time(), "pid": zombie.pid})
            # the store goes away for a few seconds
            time.sleep(rng.uniform(0.5, 1.5))
            server.stop()
            down = time.time()
            time.sleep(3.0)
            server.start()
            events.append({"event": "store_outage", "at": down, "back": time.time()})

        deadline = time.monotonic() + (900 if SOAK else 300)
        for proc in [*runners, side]:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        codes = [p.returncode for p in runners]
        # every runner ended by itself (0) except those killed; none exited on a traceback
        assert all(code in (0, -signal.SIGKILL) for code in codes), codes
        assert side.returncode == 0
        main_status = _status(cli, "scale-main", dsn)
        side_status = _status(cli, "scale-side", dsn)
        listed = json.loads(cli.run("runners", "scale-main", "--store", dsn, "--format", "json").stdout)

    audit = box.audit()
    statuses = {e["id"]: e["status"] for e in main_status["instances"] + side_status["instances"]}
    state = sandbox_state(box.directory)
    lost = [i for i, s in statuses.items() if s != "succeeded"]
    lost += missing_remote_ids(main_status, state) + missing_remote_ids(side_status, state)
    repeated = duplicate_effects(audit)
    kill = next(e for e in events if e["event"] == "sigkill")
    zombie = next(e for e in events if e["event"] == "sigstop")
    zombie_log = logs[zombie["pid"]].read_text(errors="replace")
    figures.update({
        "instances": len(statuses), "runners_started": len(runners), "kills": ROUNDS, "zombies": ROUNDS,
        "store_outages": ROUNDS, "lost_instances": len(lost), "repeated_effects": len(repeated),
        "throttled": sum(1 for e in audit if e.get("outcome") == "throttled"),
        "requests": len(audit), "runners_listed": len(listed["runners"]),
        "worst_second": max(_worst(audit).values()),
        "worst_second_during_takeover": max(_worst(audit, kill["at"], kill["at"] + LEASE_TTL + 5).values(),
                                            default=0),
        "worst_second_after_zombie_woke": max(_worst(audit, zombie["woke"], zombie["woke"] + 5).values(),
                                              default=0),
        "over_cap": _over_cap(audit, caps), "seed": SEED,
        "zombie_leases_lost": zombie_log.count('"lease.lost"'),
        "zombie_exit": next(p.returncode for p in runners if p.pid == zombie["pid"]),
    })
    assert lost == [], lost[:10]
    assert repeated == {}
    assert figures["over_cap"] == {}
    assert figures["throttled"] == 0
    assert len(statuses) == INSTANCES + SIDE_INSTANCES
