"""``batchmig run PLAN --dry-run``, printed: the change-window plan.

Text (the default) is for the person planning the window and fits a terminal: one
row per instance (provider, wave, calls, mutating calls, waits, its cutover gate, when
it starts and ends in the window) as far as the screen allows — then how many more —
followed by the totals per wave and per action with each action's bound at its cap,
and the estimated makespan with what it assumes. Off a terminal every row is printed.
``--format json`` streams every instance with its full call list, then the totals;
``--format csv`` streams one row per instance.
"""

from __future__ import annotations

import heapq
import itertools
import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from typing import IO, Any

from batchmig.dryrun import ChangeWindow, ScheduledInstance
from batchmig.estimate import PlanEstimate, Timing
from batchmig.listing import Column, Format, emit, table
from batchmig.plan.model import Plan
from batchmig.redaction import REDACTOR
from batchmig.registry import Registry
from batchmig.report.tables import human_seconds

INSTANCE_COLUMNS = (
    Column("id", "instance"), Column("provider", "provider"), Column("wave", "wave"),
    Column("calls", "calls", "right"), Column("mutating", "mutating", "right"), Column("waits", "waits", "right"),
    Column("gate", "cutover gate"), Column("start", "starts", "right"), Column("end", "ends", "right"),
)
WAVE_COLUMNS = (
    Column("wave", "wave"), Column("instances", "instances", "right"), Column("calls", "calls", "right"),
    Column("mutating", "mutating", "right"), Column("manual", "manual gates", "right"),
    Column("start", "starts", "right"), Column("end", "ends", "right"), Column("busiest", "busiest action at its cap"),
)
ACTION_COLUMNS = (
    Column("action", "action (provider/account/region/action)"), Column("calls", "calls", "right"),
    Column("mutating", "mutating", "right"), Column("cap", "cap/s", "right"), Column("at_cap", "at the cap", "right"),
)


def print_change_window(
    plan: Plan, registry: Registry, fmt: Format, timing: Timing, run_id: str, *, show_all: bool = False,
    out: IO[str] | None = None,
) -> PlanEstimate:
    """Print the change window of run ``run_id`` (whose names the calls use)."""
    out = out or sys.stdout
    window = ChangeWindow(plan, registry, run_id, timing)
    if fmt == "json":
        _json(window, out)
    elif fmt == "csv":
        emit("", INSTANCE_COLUMNS, (item.row() for item in window), "csv", out=out)
    else:
        _text(plan, window, show_all, out)
    return window.estimate


def _text(plan: Plan, window: ChangeWindow, show_all: bool, out: IO[str]) -> None:
    title = f"change window of plan {plan.name}: {len(plan.instances)} instances — a dry run, nothing is sent"
    if show_all or not out.isatty():
        table(title, INSTANCE_COLUMNS, (item.row() for item in window), out=out)
    else:  # the first instances of the plan as far as the screen has room beside the totals
        lines = shutil.get_terminal_size().lines
        first, hidden = _first_in_plan_order(window, lines)
        estimate = window.estimate
        summary_lines = len(summary(estimate, plan)) + 1
        room = max(5, lines - 6 - (5 + len(estimate.waves)) - (5 + len(estimate.actions)) - 3 - summary_lines)
        hidden.update(item.instance.wave for item in first[room:])
        rows = itertools.chain((item.row() for item in first[:room]),
                               ({"wave": wave} for wave, count in hidden.items() for _ in range(count)))
        table(title, INSTANCE_COLUMNS, rows, limit=min(room, len(first)),
              hidden_kind=lambda row: f"in wave {row['wave']}", out=out)
    estimate = window.estimate
    print(file=out)
    table("per wave", WAVE_COLUMNS, (_wave_row(w) for w in estimate.waves), out=out)
    print(file=out)
    table("per action (the plan's calls; polls come on top, paced by each poller)", ACTION_COLUMNS,
          (_action_row(a) for a in estimate.actions), out=out)
    print(file=out)
    for line in summary(estimate, plan):
        print(REDACTOR(line), file=out)
    print(f"names (and so calls) are those of run {window.run_id}: `batchmig run {plan.path} --run-id "
          f"{window.run_id}` makes exactly these calls", file=out)


def summary(estimate: PlanEstimate, plan: Plan) -> list[str]:
    timing = estimate.timing
    manual = sum(w.manual_gates for w in estimate.waves)
    where = (f"the sandbox at time scale {timing.time_scale:g}" if timing.time_scale != 1
             else "the cloud")
    lines = [
        f"estimated makespan: {human_seconds(estimate.makespan)} in {where} "
        f"(the rate caps alone: {human_seconds(estimate.rate_bound)})",
        "  cloud work per step from the providers' estimates"
        + (" and the plan's defaults.estimates" if plan.document.defaults.estimates else
           " (set defaults.estimates in the plan for your databases' sizes)"),
    ]
    if manual:
        lines.append(f"  {manual} instance(s) stop at a manual cutover gate: counted as released at once — "
                     "add the time your operators take")
    lines.append("  no failure, retry or throttle counted; canaries first in each wave")
    return lines


def _first_in_plan_order(
    window: Iterable[ScheduledInstance], room: int
) -> tuple[list[ScheduledInstance], Counter[str]]:
    """The ``room`` instances that come first in the plan (kept in bounded memory), and
    how many others each wave has."""
    kept: list[tuple[int, int, ScheduledInstance]] = []  # max-heap on plan position
    rest: Counter[str] = Counter()
    for count, item in enumerate(window):
        heapq.heappush(kept, (-item.instance.position, count, item))
        if len(kept) > room:
            rest[heapq.heappop(kept)[2].instance.wave] += 1
    return [entry[2] for entry in sorted(kept, key=lambda e: -e[0])], rest


def _wave_row(wave: Any) -> dict[str, Any]:
    busiest = wave.busiest
    at_cap = ""
    if busiest is not None:
        at_cap = f"{busiest.key[3]}: {busiest.calls} calls at {busiest.rate:g}/s = {human_seconds(busiest.seconds)}"
    return {"wave": wave.name, "instances": wave.instances, "calls": wave.calls, "mutating": wave.mutating,
            "manual": wave.manual_gates, "start": _at(wave.start), "end": _at(wave.end), "busiest": at_cap}


def _action_row(action: Any) -> dict[str, Any]:
    return {"action": action.name, "calls": action.calls, "mutating": action.mutating, "cap": action.rate,
            "at_cap": human_seconds(action.seconds)}


def _at(seconds: float) -> str:
    return "+" + human_seconds(seconds)


def _json(window: ChangeWindow, out: IO[str]) -> None:
    """``{"instances": [...], "waves": [...], "actions": [...], "estimate": {...}}``, streamed."""
    out.write('{\n  "instances": [')
    first = True
    for item in window:
        out.write("\n    " if first else ",\n    ")
        out.write(REDACTOR(json.dumps(item.as_json(), default=str, separators=(",", ":"))))
        first = False
    estimate = window.estimate
    tail = {
        "run_id": window.run_id,
        "waves": [{**_wave_row(w), "start_seconds": round(w.start, 1), "end_seconds": round(w.end, 1),
                   "busiest_action": w.busiest.name if w.busiest else None} for w in estimate.waves],
        "actions": [{"action": a.name, "calls": a.calls, "mutating": a.mutating, "cap": a.rate,
                     "seconds_at_cap": round(a.seconds, 2)} for a in estimate.actions],
        "estimate": {"makespan_seconds": round(estimate.makespan, 1), "rate_bound_seconds":
                     round(estimate.rate_bound, 2), "time_scale": estimate.timing.time_scale,
                     "call_seconds": estimate.timing.call_seconds},
    }
    out.write("\n  ],\n" if not first else "],\n")
    out.write(REDACTOR(json.dumps(tail, indent=2)[2:]))
    out.write("\n")
