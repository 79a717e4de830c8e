"""Who may use the dashboard: one access token, a CSRF check, and the Host header.

The dashboard can release a production cutover, so every request needs the access
token — also on loopback, which every user of a shared jump host can reach. The
token is generated once (``secrets.token_urlsafe``), stored in a file readable by its
owner only (0600) and printed once, inside the URL to open; that URL's ``?token=``
is traded for an HttpOnly, SameSite=Strict cookie and removed from the address bar.
Scripts send it as ``Authorization: Bearer <token>``.

A state-changing request (POST) also needs a CSRF check: with the cookie, the
``X-CSRF-Token`` header must carry the page's CSRF token (an HMAC of the access
token, served only inside authenticated pages) and an ``Origin``, when sent, must be
the dashboard's own; with the ``Authorization`` header, that header is the check (a
browser never adds it to a cross-site request). On loopback the ``Host`` header must
name a loopback address, which shuts out DNS-rebinding pages.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from batchmig.errors import UsageError
from batchmig.private_files import make_private_dir

COOKIE = "batchmig_token"
CSRF_HEADER = "X-CSRF-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def load_or_create_token(path: Path, *, renew: bool = False) -> tuple[str, bool]:
    """(token, created now). A new token is written to ``path`` readable by its owner only."""
    if not renew:
        try:
            mode = path.stat().st_mode & 0o077
            token = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            token, mode = "", 0
        except OSError as exc:
            raise UsageError(f"cannot read the dashboard token {path}: {exc.strerror or exc}") from None
        if mode:
            raise UsageError(f"{path} is readable by others; run: chmod 600 {path}")
        if len(token) >= 32:
            return token, False
    token = secrets.token_urlsafe(32)
    try:
        make_private_dir(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write the dashboard token {path}: {exc.strerror or exc}") from None
    return token, True


@dataclass(frozen=True)
class Guard:
    """The checks every request passes."""

    token: str
    loopback: bool

    @property
    def csrf_token(self) -> str:
        return hmac.new(self.token.encode(), b"batchmig dashboard csrf", hashlib.sha256).hexdigest()

    def host_allowed(self, host: str | None) -> bool:
        if not self.loopback:
            return True
        if not host:
            return False
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_NAMES

    def _matches(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())  # type: ignore[union-attr]

    def bearer(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return self._matches(authorization[len("Bearer "):].strip())

    def cookie(self, value: str | None) -> bool:
        return self._matches(value)

    def query(self, value: str | None) -> bool:
        return self._matches(value)

    def csrf(self, header: str | None, origin: str | None, own_origin: str) -> bool:
        if not header or not hmac.compare_digest(header.encode(), self.csrf_token.encode()):
            return False
        return origin is None or origin == own_origin
