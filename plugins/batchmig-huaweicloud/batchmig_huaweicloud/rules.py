"""The field rules of DRS ``CreateBackupMigrationJob``, as plain functions.

Each function returns a problem message or None. They live apart from the pydantic
settings model because two sides need the very same rules: the provider (to refuse a
bad plan before any call) and the emulator (to answer HTTP 400 the way DRS does), and
a rule that drifts between them would make the sandbox lie.

Where the sources disagree the stricter rule wins, so a plan that passes here is
accepted by every documented variant of the API (see the README for each choice).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "DESCRIPTION_FORBIDDEN",
    "ENGINE_TYPE",
    "FILE_SOURCES",
    "RECOVERY_MODES",
    "bucket_name_problem",
    "description_problem",
    "engine_type_problem",
    "file_source_problem",
    "recovery_mode_problem",
    "tag_key_problem",
    "tag_value_problem",
    "task_name_problem",
]

ENGINE_TYPE = "sqlserver"
FILE_SOURCES = ("OBS", "RDS")
RECOVERY_MODES = ("full", "incre")
DESCRIPTION_MAX = 256
# DRS v3 forbids !<>&'" in descriptions; the v5 create example sends "miao'shu", so
# the apostrophe is allowed here.
DESCRIPTION_FORBIDDEN = '!<>&"'

# The create page says 4-50 letters, digits, '-' and '_'; the name-validation page
# says the name must start with a letter (and allows up to 80). Both at once:
_TASK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{3,49}")
_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
_TAG_KEY = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fff]{1,36}")
# "letters, digits, spaces and _ . : / = + - @" (letters of any language).
_TAG_VALUE = re.compile(r"[\w .:/=+\-@]*")


def task_name_problem(name: str) -> str | None:
    if not 4 <= len(name) <= 50:
        return f"task name must be 4 to 50 characters long, not {len(name)}"
    if not name[0].isascii() or not name[0].isalpha():
        return "task name must start with a letter"
    if not _TASK_NAME.fullmatch(name):
        return "task name may contain only letters, digits, '-' and '_'"
    return None


def engine_type_problem(engine: str) -> str | None:
    if engine != ENGINE_TYPE:
        return f"engine_type must be {ENGINE_TYPE!r} (RDS for SQL Server), not {engine!r}"
    return None


def file_source_problem(source: str) -> str | None:
    if source in FILE_SOURCES:
        return None
    if source.upper() in FILE_SOURCES:
        return f"file_source must be upper case: {source.upper()!r}, not {source!r}"
    return f"file_source must be one of {', '.join(FILE_SOURCES)}, not {source!r}"


def recovery_mode_problem(mode: str) -> str | None:
    if mode not in RECOVERY_MODES:
        return f"recovery_mode must be 'full' or 'incre', not {mode!r}"
    return None


def _looks_like_ip(name: str) -> bool:
    if not name.replace(".", "").isdigit():  # bucket names cannot hold ':', so only IPv4 is possible
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def bucket_name_problem(name: str) -> str | None:
    if not 3 <= len(name) <= 63:
        return f"OBS bucket name must be 3 to 63 characters long, not {len(name)}"
    if not _BUCKET_CHARS.fullmatch(name):
        return "OBS bucket name may contain only lowercase letters, digits, '-' and '.'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "OBS bucket name must start and end with a lowercase letter or a digit"
    if _looks_like_ip(name):
        return "OBS bucket name must not be an IP address"
    return None


def tag_key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= 36:
        return f"tag key must be 1 to 36 characters long, not {len(key)}"
    if not _TAG_KEY.fullmatch(key):
        return "tag key may contain only letters, digits, '_' and '-'"
    return None


def tag_value_problem(value: str) -> str | None:
    if not _TAG_VALUE.fullmatch(value):
        return "tag value may contain only letters, digits, spaces and _ . : / = + - @"
    return None


def description_problem(description: str) -> str | None:
    # Not documented for v5; DRS v3's limits, less the apostrophe (see above).
    if len(description) > DESCRIPTION_MAX:
        return f"description must be at most {DESCRIPTION_MAX} characters, not {len(description)}"
    bad = sorted({ch for ch in description if ch in DESCRIPTION_FORBIDDEN})
    if bad:
        return f"description must not contain {' '.join(bad)}"
    return None
