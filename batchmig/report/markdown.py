"""The report as a short Markdown job summary for CI (e.g. a pipeline's summary page).

Counts, waves, calls and a table of every instance that needs a look (failed,
skipped, interrupted...), with the cloud's code, message and request id. Link-free
and short: a summary that lists more than ``MAX_ROWS`` instances says how many it
left out and where to find them, never drops them silently.
"""

from __future__ import annotations

from batchmig.redaction import REDACTOR
from batchmig.report.model import RunReport

MAX_ROWS = 200
ATTENTION = ("needs_attention", "failed", "skipped", "interrupted", "running", "pending", "awaiting_cutover")
STATE_WORDS = {
    "running": "running", "succeeded": "succeeded", "failed": "finished with failures",
    "interrupted": "interrupted (resume continues it)", "awaiting_cutover": "waiting for a manual cutover",
    "needs_attention": "stopped: instances need attention", "not_started": "not started",
}


def cell(value: object) -> str:
    """A table cell: one line, pipes and backticks escaped, no HTML or links."""
    text = " ".join(str(value if value is not None else "").split())
    for char in ("\\", "|", "`", "<", ">", "[", "]", "*", "_"):
        text = text.replace(char, "\\" + char)
    return text


def render_markdown(report: RunReport) -> str:
    total = len(report.instances)
    done = report.counts.get("succeeded", 0)
    lines = [
        f"## batchmig run {cell(report.run)}: {STATE_WORDS.get(report.state, report.state)}",
        "",
        f"**{done} of {total} instances succeeded** · plan {cell(report.plan)} · "
        + ("sandbox rehearsal" if report.sandbox else "live cloud")
        + (f" · {report.duration_seconds:.0f}s of runner time" if report.duration_seconds else ""),
        "",
        "| status | instances |",
        "|---|---:|",
        *(f"| {cell(status)} | {count} |" for status, count in report.counts.items()),
        "",
    ]
    if len(report.waves) > 1:
        lines += ["| wave | instances | " + " | ".join(cell(s) for s in report.counts) + " |",
                  "|---|---:|" + "---:|" * len(report.counts)]
        lines += [f"| {cell(w.name)} | {w.instances} | " + " | ".join(str(w.counts.get(s, 0)) for s in report.counts)
                  + " |" for w in report.waves]
        lines.append("")
    calls = report.calls
    lines += [f"{calls.calls} API calls, {calls.retries} retries, {calls.throttled} throttled, "
              f"{calls.unknown_outcomes} lost answers ({calls.reconciled} reconciled).", ""]
    attention = sorted((i for i in report.instances if i.status in ATTENTION),
                       key=lambda i: ATTENTION.index(i.status))
    if attention:
        lines += [f"### {len(attention)} instance(s) to look at", "",
                  "| instance | wave | status | step | code | message | request id |", "|---|---|---|---|---|---|---|"]
        for instance in attention[:MAX_ROWS]:
            error = instance.error
            lines.append("| " + " | ".join(cell(v) for v in (
                instance.id, instance.wave, instance.status, error.step if error and error.step else instance.step,
                error.code if error else "", error.message if error else "", error.request_id if error else "",
            )) + " |")
        if len(attention) > MAX_ROWS:
            lines += ["", f"{len(attention) - MAX_ROWS} more not shown here: `batchmig status {cell(report.run)} --all`"
                      " or report.csv list every instance."]
        lines.append("")
    if report.notifications:
        failed = [n for n in report.notifications if n.failed or n.dropped]
        if failed:
            lines += ["Webhook deliveries that failed: " + ", ".join(
                f"{cell(n.name)} ({n.failed} failed, {n.dropped} dropped)" for n in failed), ""]
    return REDACTOR("\n".join(lines))
