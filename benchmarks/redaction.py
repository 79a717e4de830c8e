"""What masking secrets costs per log line: ``python benchmarks/redaction.py``.

Every log event passes through the redactor (``batchmig.redaction``) before it is
rendered, so its cost is paid on every line. Measured here, in one process:

* the redactor alone on a typical 350-character line, clean and with a secret in it;
* a whole ``log.info(...)`` through the configured structlog pipeline (JSON renderer
  to /dev/null, events.jsonl in a temporary directory), and the redaction step of
  it alone (12 fields), with and without secrets;
* compiling: a typical credential set at once, and 300 passwords learnt one by one.

Secret sets: none; "credentials" (Tencent SecretId/SecretKey, Huawei AK/SK/project
id, two database passwords); "hostile" (the same plus two passwords made of every
character that encodes differently: quotes, backslash, slash, <>&, +, space, %, =,
non-ASCII and an emoji). Prints one JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from batchmig import logs
from batchmig.redaction import REDACTOR, Redactor

CREDENTIALS = ["AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "HPUAQ1BZKF3EXAMPLE",
               "sk3ExampleLongSecretKeyValue0000000001", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "Db#Passw0rd!src",
               "Db#Passw0rd!tgt"]
HOSTILE = [*CREDENTIALS, 'pa"ss/w\\rd&é<€>+ =%', "tgt pw 'x'+y/z=é€😀"]
LINE = ('{"event":"call.retry","level":"info","timestamp":"2024-01-01T00:00:00Z","run":"demo-20240101-000000-abcd",'
        '"instance":"inst-0042","provider":"tencent-dts","action":"DescribeMigrateJobs","attempt":2,"delay":0.25,'
        '"code":"InternalError","message":"An internal error occurred while processing the request",'
        '"request_id":"5f1c2b3a-1111-2222-3333-444455556666"}')


def per_call_us(function: Any, *args: Any, repeat: int = 20000) -> float:
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(repeat // 5):
            function(*args)
        best = min(best, (time.perf_counter() - began) / (repeat // 5))
    return round(best * 1e6, 2)


def redactor_with(secrets: list[str]) -> tuple[Redactor, float]:
    redactor = Redactor()
    began = time.perf_counter()
    for secret in secrets:
        redactor.add(secret)
    redactor("compile now")
    return redactor, time.perf_counter() - began


def log_line_us(directory: Path) -> dict[str, float]:
    """One ``log.info`` through the configured pipeline, as the process's redactor learns more secrets."""
    logs.configure(json_output=True, console_level=logging.INFO)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))  # noqa: SIM115
    logs.open_event_file(directory / "events.jsonl")
    log = structlog.get_logger("bench")

    def one_line() -> None:
        log.info("call.retry", instance="inst-0042", provider="tencent-dts", action="DescribeMigrateJobs",
                 attempt=2, delay=0.25, code="InternalError", message="An internal error occurred",
                 request_id="5f1c2b3a-1111-2222-3333-444455556666")

    event = {"event": "call.retry", "level": "info", "timestamp": "2024-01-01T00:00:00.000000Z",
             "run": "demo-20240101-000000-abcd", "instance": "inst-0042", "provider": "tencent-dts",
             "action": "DescribeMigrateJobs", "attempt": 2, "delay": 0.25, "code": "InternalError",
             "message": "An internal error occurred", "request_id": "5f1c2b3a-1111-2222-3333-444455556666"}
    per_call_us(one_line, repeat=2000)  # warm up
    figures = {}
    for name, secrets in (("no secrets", []), ("credentials", CREDENTIALS), ("hostile", HOSTILE)):
        for secret in secrets:
            REDACTOR.add(secret)
        figures[f"whole line, {name}"] = per_call_us(one_line, repeat=5000)
        figures[f"redaction step, {name}"] = per_call_us(lambda: logs._redact(None, "info", dict(event)))
    logs.close_event_file()
    return figures


def main() -> None:
    figures: dict[str, Any] = {}
    for name, secrets in (("credentials", CREDENTIALS), ("hostile", HOSTILE)):
        redactor, seconds = redactor_with(secrets)
        dirty = LINE.replace("the request", json.dumps(json.dumps(secrets[-1]))[1:-1])
        figures[name] = {
            "secrets": len(secrets),
            "forms": sum(len(redactor.forms(s)) for s in secrets),
            "compile_ms": round(seconds * 1000, 1),
            "clean_line_us": per_call_us(redactor, LINE),
            "line_with_secret_us": per_call_us(redactor, dirty),
        }
    many = [f"password-{n:04d}-Xy7#kP9!" for n in range(300)]
    redactor = Redactor()
    began = time.perf_counter()
    for secret in many:
        redactor.add(secret)
        redactor("x")  # each new secret is in use at once: compile before the next
    figures["300_one_by_one"] = {"compile_s": round(time.perf_counter() - began, 2),
                                 "clean_line_us": per_call_us(redactor, LINE)}
    with tempfile.TemporaryDirectory() as tmp:
        figures["log_line_us"] = log_line_us(Path(tmp))
    json.dump(figures, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
