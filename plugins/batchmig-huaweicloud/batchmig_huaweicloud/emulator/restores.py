"""Emulated backup migration jobs: a lazily timed state machine.

A job is stored once, at create, with its wall-clock start, its durations and its
outcome; its status at any later moment is computed from the cloud seconds elapsed
(``ctx.cloud_seconds_since``), so no background task runs and a sandbox restarted
mid-run finds jobs finished meanwhile::

    [initial_status] -> TRANSFERRING -> SUCCESS
                                     -> FAILED            (restore failed)
                                     -> PRECHECK FAILED   (after the precheck phase)

The outcome is decided at create, from the target database's state: a job restoring
a backup with ``is_last_backup=false`` leaves the database RESTORING, an ``incre``
job needs a RESTORING database (its precheck fails otherwise), and a full restore
onto an existing database needs ``is_cover``. File names containing
``precheck-fail`` or ``restore-fail`` force those outcomes, for demos and tests.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from batchmig.emulator import SandboxContext

from batchmig_huaweicloud.emulator.validation import CreateRequest

__all__ = ["JobBook", "Timings"]

KIND = "job"
Row = tuple[float, int, str, str]
"""A live job in a project's newest-first order: (-created_wall, place, lower-case name, id)."""
DATABASE_KIND = "database"
SUCCESS, FAILED, PRECHECK_FAILED, TRANSFERRING = "SUCCESS", "FAILED", "PRECHECK FAILED", "TRANSFERRING"


@dataclass(frozen=True)
class Timings:
    """Cloud seconds per phase (sandbox options ``precheck_seconds``...)."""

    precheck: float = 20.0
    full_restore: float = 120.0
    incremental_restore: float = 45.0
    initial_status: str | None = None
    initial_seconds: float = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Timings:
        return cls(
            precheck=float(options.get("precheck_seconds", cls.precheck)),
            full_restore=float(options.get("full_restore_seconds", cls.full_restore)),
            incremental_restore=float(options.get("incremental_restore_seconds", cls.incremental_restore)),
            initial_status=options.get("initial_status"),
            initial_seconds=float(options.get("initial_status_seconds", 0.0)),
        )


def _db_key(req: CreateRequest) -> str:
    """Which database a job restores: its new name, the named databases, or all."""
    renamed = list(req.options["reset_db_name_map"].values())
    if renamed:
        return str(renamed[0])
    named = sorted(n for n in req.options["db_names"] if n)
    return ",".join(named) if named else "*"


class JobBook:
    def __init__(self, ctx: SandboxContext) -> None:
        self._ctx = ctx
        self._timings = Timings.from_options(ctx.options)
        self._epoch_ms = ctx.options.get("time_format") == "epoch_ms"
        self._numeric_rate = float(ctx.options.get("numeric_recovery_mode_rate", 0.25))
        self._precheck_failure_rate = float(ctx.options.get("precheck_failure_rate", 0.0))
        self._failure_rate = float(ctx.options.get("failure_rate", 0.0))
        self._check_existing = bool(ctx.options.get("check_existing_databases", True))
        self._newest: dict[str, list[Row]] = {}
        """Project -> its live jobs, newest first (ties in the order the store keeps them),
        kept as jobs come, are renamed and are deleted; built at a project's first list."""
        self._rows: dict[str, Row] = {}
        self._places = itertools.count()

    # --------------------------------------------------------------- create

    def create(self, project_id: str, req: CreateRequest) -> dict[str, Any]:
        ctx, t = self._ctx, self._timings
        jitter = 0.8 + 0.4 * ctx.random()
        restore = t.full_restore if req.options["recovery_mode"] == "full" else t.incremental_restore
        outcome, error_log = self._outcome(project_id, req)
        job: dict[str, Any] = {
            "id": self._new_id(),
            "project_id": project_id,
            "created_wall": ctx.now(),
            "precheck_s": t.precheck if req.options["is_precheck"] else 0.0,
            "restore_s": restore * jitter,
            "outcome": outcome,
            "error_log": error_log,
            "numeric_mode": ctx.random() < self._numeric_rate,
            "db_key": _db_key(req),
            "deleted": False,
            "base_info": req.base_info,
            "target_db_info": req.target_db_info,
            "backup_info": req.backup_info,
            "options": req.options,
        }
        self.save(job)
        # An index by target database keeps the check above cheap in large fleets.
        key = self._database_key(project_id, req.target_db_info["target_instance_id"], job["db_key"])
        index = ctx.store.get(DATABASE_KIND, key) or {"jobs": []}
        ctx.store.put(DATABASE_KIND, key, {"jobs": [*index["jobs"], job["id"]]})
        return job

    def _new_id(self) -> str:
        n = self._ctx.store.next_id(KIND)
        h = hashlib.sha256(f"{n}:{self._ctx.random()}".encode()).hexdigest()
        # Shaped like DRS's ids: a UUID whose last group ends in "jb" + 3 characters.
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:27]}jb{h[27:30]}"

    def _outcome(self, project_id: str, req: CreateRequest) -> tuple[str, str]:
        precheck = bool(req.options["is_precheck"])
        names = " ".join(str(f.get("name", "")) for f in req.backup_info["files"])
        if "precheck-fail" in names:
            return self._fail(
                precheck, f"The backup file {names} cannot be read or is not a SQL Server backup."
            )
        if "restore-fail" in names:
            return FAILED, f"RESTORE DATABASE failed for backup file {names}."
        problem = self._database_problem(project_id, req)
        if problem:
            return self._fail(precheck, problem)
        roll = self._ctx.random()
        if roll < self._precheck_failure_rate:
            return self._fail(
                precheck, "Precheck item 'destination disk space' failed: not enough free space."
            )
        if roll < self._precheck_failure_rate + self._failure_rate:
            return FAILED, "The restore was interrupted: the destination instance became unavailable."
        return SUCCESS, ""

    @staticmethod
    def _fail(precheck: bool, why: str) -> tuple[str, str]:
        # Without a precheck the same problem surfaces when the restore runs.
        return (PRECHECK_FAILED, why) if precheck else (FAILED, why)

    def _database_problem(self, project_id: str, req: CreateRequest) -> str | None:
        target = req.target_db_info["target_instance_id"]
        key = _db_key(req)
        label = "all databases of the backup" if key == "*" else f"database {key}"
        state = "absent"
        for job in self._same_database(project_id, target, key):
            status = self.status(job)
            if status not in (SUCCESS, FAILED, PRECHECK_FAILED):
                return f"Another backup migration task ({job['id']}) is restoring {label} on {target}."
            if status == SUCCESS:
                state = "online" if job["options"]["is_last_backup"] else "restoring"
        mode, cover = req.options["recovery_mode"], req.options["is_cover"]
        if mode == "incre" and state != "restoring":
            return (
                f"No {label} is in RESTORING state on {target}: restore a full backup with "
                "is_last_backup=false before incremental backups."
            )
        if mode == "full" and state != "absent" and not cover and self._check_existing:
            return f"The {label} already exist(s) on {target} ({state.upper()}); set is_cover to overwrite."
        return None

    @staticmethod
    def _database_key(project_id: str, target: str, db_key: str) -> str:
        return json.dumps([project_id, target, db_key])

    def _same_database(self, project_id: str, target: str, key: str) -> list[dict[str, Any]]:
        index = self._ctx.store.get(DATABASE_KIND, self._database_key(project_id, target, key)) or {
            "jobs": []
        }
        jobs = [job for job_id in index["jobs"] if (job := self._ctx.store.get(KIND, job_id)) is not None]
        return sorted(jobs, key=self._finish_wall)

    def _finish_wall(self, job: Mapping[str, Any]) -> float:
        return float(job["created_wall"]) + self._duration(job) / max(self._ctx.time_scale, 1e-9)

    # --------------------------------------------------------------- status

    def _elapsed(self, job: Mapping[str, Any]) -> float:
        return self._ctx.cloud_seconds_since(job["created_wall"])

    def _duration(self, job: Mapping[str, Any]) -> float:
        if job["outcome"] == PRECHECK_FAILED:
            return float(job["precheck_s"])
        return float(job["precheck_s"]) + float(job["restore_s"])

    def status(self, job: Mapping[str, Any]) -> str:
        elapsed = self._elapsed(job)
        t = self._timings
        if t.initial_status and elapsed < t.initial_seconds:
            return t.initial_status
        if elapsed < self._duration(job):
            return TRANSFERRING
        return str(job["outcome"])

    def _time(self, wall: float) -> str:
        if self._epoch_ms:
            return str(int(wall * 1000))
        return (
            datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(wall * 1000) % 1000:03d}Z"
        )

    def _finish_time(self, job: Mapping[str, Any], status: str) -> str:
        if status not in (SUCCESS, FAILED, PRECHECK_FAILED):
            return ""
        return self._time(self._finish_wall(job))

    # --------------------------------------------------------------- lookup

    def get(self, project_id: str, job_id: str) -> dict[str, Any] | None:
        job = self._ctx.store.get(KIND, job_id)
        if job is None or job["deleted"] or job["project_id"] != project_id:
            return None
        return job

    def live(self, project_id: str) -> Iterator[dict[str, Any]]:
        return (j for j in self._ctx.store.where(KIND, "project_id", project_id) if not j["deleted"])

    def save(self, job: dict[str, Any]) -> None:
        self._ctx.store.put(KIND, job["id"], job)
        rows = self._newest.get(job["project_id"])
        if rows is None:
            return
        earlier = self._rows.pop(job["id"], None)
        if earlier is not None:
            del rows[bisect.bisect_left(rows, earlier)]
        if not job["deleted"]:
            self._rows[job["id"]] = row = self._row(job, earlier[1] if earlier else next(self._places))
            bisect.insort(rows, row)

    def newest(self, project_id: str) -> list[Row]:
        """The project's live jobs, newest first: the order of a list by ``created_at``,
        which a stable sort of ``live`` gives (equal times keep the store's order)."""
        rows = self._newest.get(project_id)
        if rows is None:
            made = [self._row(job, next(self._places)) for job in self.live(project_id)]
            self._rows.update((row[3], row) for row in made)
            rows = self._newest[project_id] = sorted(made)
        return rows

    @staticmethod
    def _row(job: Mapping[str, Any], place: int) -> Row:
        return -float(job["created_wall"]), place, str(job["base_info"]["name"]).lower(), str(job["id"])

    def is_terminal(self, job: Mapping[str, Any]) -> bool:
        return self.status(job) in (SUCCESS, FAILED, PRECHECK_FAILED)

    # ---------------------------------------------------------------- views

    def summary(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """A job as List shows it."""
        status = self.status(job)
        base = job["base_info"]
        return {
            "id": job["id"],
            "name": base["name"],
            "status": status,
            "engine_type": base["engine_type"],
            "error_log": job["error_log"] if status in (FAILED, PRECHECK_FAILED) else "",
            "description": base.get("description", ""),
            "create_time": self._time(job["created_wall"]),
            "finish_time": self._finish_time(job, status),
            "enterprise_project_id": base.get("enterprise_project_id", "0"),
        }

    def detail(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """A job as Show describes it (note ``file_info``, not ``files``)."""
        summary = self.summary(job)
        options = {"consistency_check_mode": "", **job["options"]}  # "": no DBCC check asked for
        if job["numeric_mode"]:
            options["recovery_mode"] = "1" if options["recovery_mode"] == "full" else "2"
        backup = job["backup_info"]
        renamed = list(options.get("reset_db_name_map", {}).values())
        detail = {
            "id": job["id"],
            "status": summary["status"],
            "create_time": summary["create_time"],
            "finish_time": summary["finish_time"],
            "backup_info": {
                "file_source": backup["file_source"],
                "bucket_name": backup.get("bucket_name", ""),
                "file_info": [self._file_info(job, f) for f in backup["files"]],
            },
            "base_info": job["base_info"],
            "target_db_info": {
                **job["target_db_info"],
                # FILESTREAM is off on a target unless the create said otherwise.
                "ms_file_stream_status": job["target_db_info"].get("ms_file_stream_status") or "off",
            },
            "options": options,
            "new_db_names": json.dumps(renamed),
            "instance_name": "",
            "error_log": summary["error_log"],
        }
        return detail

    def _file_info(self, job: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, str]:
        name = str(f.get("name") or job["target_db_info"].get("file_id") or "")
        digest = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        modified = int((float(job["created_wall"]) - 3600 - digest % 86400) * 1000)
        return {
            "file_name": name,
            "file_size": f"{100 + digest % 900000}KB",
            "file_last_modify": str(modified),
        }
