"""Files and directories only their owner can read: everything batchmig writes.

A run directory holds what a cloud answered — error messages, remote ids, the plan —
and a sandbox directory what an emulated cloud received. Even redacted, none of it is
for other users of the machine, so every file is created 0600 and every directory
0700, whatever the umask; a file from an older version that is found with wider
permissions is narrowed when it is opened again. (SQLite gives a database's ``-wal``
and ``-shm`` files the database file's permissions, so creating the database 0600
first covers them.)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and every missing parent 0700 (existing directories are left as they are)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=DIRECTORY_MODE)


def open_private_fd(path: Path, flags: int) -> int:
    """``os.open`` with 0600 for a new file, and an existing file narrowed to 0600."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 & ~FILE_MODE:
            with contextlib.suppress(PermissionError):  # not ours to change: still usable
                os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_private(path: Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """Like ``open(path, mode)`` for writing ("w", "a", "wb", "ab"), but 0600."""
    flags = os.O_WRONLY | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    return os.fdopen(open_private_fd(path, flags), mode, **kwargs)


def create_private_file(path: Path) -> None:
    """Create ``path`` 0600 if it does not exist (e.g. before SQLite opens it)."""
    os.close(open_private_fd(path, os.O_WRONLY))


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a reader sees the old or the new file, whole), 0600."""
    write_private_chunks(path, (text,))


def write_private_chunks(path: Path, chunks: Iterable[str]) -> None:
    """Replace ``path`` with the text of ``chunks``, written as they come (a large report
    never is one string in memory), atomically and 0600 like ``write_private_file``. If
    making a chunk fails, ``path`` is left as it was and the partial file removed. The
    partial file is this process's and thread's own: two runners of one run (a shared
    store) may write its report at the same time, and each must replace it whole."""
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        with open_private(partial, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    os.replace(partial, path)
