"""TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0.

One pure implementation serves both sides: the client signs with it and the sandbox
emulators verify with it, so the two cannot drift apart — and the official worked
example pins it to what the cloud computes. Nothing here reads a clock: the caller
passes the timestamp, and the credential-scope date is derived from it in UTC (a
local date breaks signatures around midnight in UTC+8).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from batchmig.plugin import hmac_sha256

__all__ = [
    "ALGORITHM",
    "Signature",
    "Signer",
    "canonical_request",
    "credential_date",
    "sign",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "TC3-HMAC-SHA256"
DEFAULT_SIGNED_HEADERS = ("content-type", "host")


@functools.lru_cache(maxsize=4)  # a run signs hundreds of calls in the same second
def credential_date(timestamp: int) -> str:
    """The ``YYYY-MM-DD`` of the credential scope: the UTC date of ``timestamp``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode("utf-8"), "sha256")


def canonical_request(
    method: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: bytes,
) -> str:
    """The six newline-joined fields that get hashed.

    ``headers`` maps lower-case names to the values exactly as sent; the canonical
    header block ends with a newline, hence the blank line before the signed list.
    """
    return _canonical_head(method, query, headers, signed_headers) + _sha256_hex(payload)


def _canonical_head(method: str, query: str, headers: Mapping[str, str], signed_headers: tuple[str, ...]) -> str:
    """The canonical request up to the payload's hash (the same for all of a connection's requests)."""
    canonical_headers = "".join([f"{name}:{headers[name].strip()}\n" for name in signed_headers])
    return f"{method.upper()}\n/\n{query}\n{canonical_headers}\n{';'.join(signed_headers)}\n"


def string_to_sign(timestamp: int, scope: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{_sha256_hex(canonical.encode('utf-8'))}"


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC("TC3" + key, date), service), "tc3_request")."""
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    return _hmac(_hmac(k_date, service), "tc3_request")


@functools.lru_cache(maxsize=64)
def _signer(secret_key: str, date: str, service: str) -> Callable[[bytes], bytes]:
    """HMAC under the signing key, derived once per key, date and service (three HMACs,
    more than signing a request costs) and kept in memory for the rest of the run,
    as the key is anyway, in the connection that signs with it."""
    return hmac_sha256(signing_key(secret_key, date, service))


@dataclass(frozen=True)
class Signature:
    """A computed signature and the pieces that led to it (for tests and debugging)."""

    canonical_request: str
    string_to_sign: str
    scope: str
    signed_headers: tuple[str, ...]
    signature: str
    secret_id: str

    @property
    def authorization(self) -> str:
        return (
            f"{ALGORITHM} Credential={self.secret_id}/{self.scope}, "
            f"SignedHeaders={';'.join(self.signed_headers)}, Signature={self.signature}"
        )


def sign(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    timestamp: int,
    headers: Mapping[str, str],
    payload: bytes,
    method: str = "POST",
    query: str = "",
    signed_headers: tuple[str, ...] = DEFAULT_SIGNED_HEADERS,
    date: str | None = None,
) -> Signature:
    """Sign one request. ``headers`` must hold every name in ``signed_headers``
    (lower case) with the value exactly as it goes on the wire (Host with its port,
    Content-Type with any parameters). ``date`` overrides the scope date; only the
    emulator uses it, to verify a client's claimed scope."""
    ordered, lowered = _signed(headers, signed_headers)
    date = date or credential_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    canonical = canonical_request(method, query, lowered, ordered, payload)
    to_sign = string_to_sign(timestamp, scope, canonical)
    digest = _signer(secret_key, date, service)(to_sign.encode("utf-8")).hex()
    return Signature(canonical, to_sign, scope, ordered, digest, secret_id)


def _signed(headers: Mapping[str, str], signed_headers: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The signed header names in canonical order, and the headers by lower-case name."""
    ordered = signed_headers if signed_headers is DEFAULT_SIGNED_HEADERS else tuple(
        sorted(name.lower() for name in signed_headers))
    return ordered, {name.lower(): value for name, value in headers.items()}


class Signer:
    """``sign``'s ``Signature.authorization`` for the requests of one connection, which all
    have the same key, service, method, query and signed headers: the canonical request's
    head and, per date, the scope and the start of the ``Authorization`` value are laid
    out once, leaving a request its payload's hash, the string to sign and the HMAC."""

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        service: str,
        headers: Mapping[str, str],
        method: str = "POST",
        query: str = "",
        signed_headers: tuple[str, ...] = DEFAULT_SIGNED_HEADERS,
    ) -> None:
        ordered, lowered = _signed(headers, signed_headers)
        self.secret_id = secret_id
        self._secret_key = secret_key
        self._service = service
        self._head = _canonical_head(method, query, lowered, ordered)
        self._signed_headers = ";".join(ordered)
        self._dates: dict[str, tuple[str, str, Callable[[bytes], bytes]]] = {}

    def signs_with(self, secret_id: str, secret_key: str) -> bool:
        return secret_id == self.secret_id and secret_key == self._secret_key

    def authorization(self, timestamp: int, payload: bytes) -> str:
        date = credential_date(timestamp)
        known = self._dates.get(date)
        if known is None:
            if len(self._dates) >= 4:
                self._dates.clear()
            scope = f"{date}/{self._service}/tc3_request"
            credential = f"{ALGORITHM} Credential={self.secret_id}/{scope}, SignedHeaders={self._signed_headers}, "
            known = self._dates[date] = (scope, credential + "Signature=",
                                         _signer(self._secret_key, date, self._service))
        scope, credential, hmac_of = known
        to_sign = string_to_sign(timestamp, scope, self._head + _sha256_hex(payload))
        return credential + hmac_of(to_sign.encode("utf-8")).hex()
