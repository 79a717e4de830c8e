"""Alibaba Cloud's V3 request signature, ``ACS3-HMAC-SHA256``, for both ends of the wire.

The client (``connection.py``) signs with it and the emulator verifies with it, so the
two can never drift apart silently: the official SDK, which signs on its own, is the
independent check (``tests/test_official_sdk.py``).

As the signature reference describes it::

    canonical request = METHOD \\n URI \\n sorted query \\n canonical headers \\n signed headers \\n sha256(body)
    string to sign    = "ACS3-HMAC-SHA256\\n" + hex(sha256(canonical request))
    Authorization     = "ACS3-HMAC-SHA256 Credential=<key id>,SignedHeaders=<a;b;c>,Signature=<hex hmac>"

Query keys and values are percent-encoded with only ``A-Z a-z 0-9 - _ . ~`` left as they
are (a space is ``%20``, never ``+``); header names are lower case, values trimmed, the
headers sorted by name. The client signs ``host``, every ``x-acs-*`` header and
``content-type`` when there is one; a verifier signs whichever headers the
``SignedHeaders`` list names, as the cloud does (the SDK also signs ``accept`` and
``user-agent``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from batchmig.plugin import hmac_sha256, percent_encode

__all__ = ["ALGORITHM", "Authorization", "authorization", "canonical_query", "payload_hash", "signature"]

ALGORITHM = "ACS3-HMAC-SHA256"


def payload_hash(body: bytes) -> str:
    """``x-acs-content-sha256``: the hex SHA-256 of the body (of b"" when there is none)."""
    return hashlib.sha256(body).hexdigest()


def canonical_query(query: Mapping[str, str]) -> str:
    """The query parameters, percent-encoded and sorted by encoded name."""
    pairs = sorted((percent_encode(key), percent_encode(value)) for key, value in query.items())
    return "&".join(f"{key}={value}" for key, value in pairs)


def signature(
    secret: str, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
    signed: list[str], content_sha256: str,
) -> str:
    """The hex signature over the ``signed`` headers (lower-case names) of a request."""
    lowered = {name.lower(): value for name, value in headers.items()}
    names = sorted(name.lower() for name in signed)
    canonical_headers = "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in names)
    return _signature(secret, method, path, canonical_query(query), canonical_headers, ";".join(names), content_sha256)


def _signature(secret: str, method: str, path: str, query: str, canonical_headers: str, names: str,
               content_sha256: str) -> str:
    canonical_request = f"{method.upper()}\n{path or '/'}\n{query}\n{canonical_headers}\n{names}\n{content_sha256}"
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return _signer(secret)(to_sign.encode()).hex()


@functools.lru_cache(maxsize=64)
def _signer(secret: str) -> Callable[[bytes], bytes]:
    """HMAC under an AccessKey secret, made once per secret (kept in memory only, as the
    secret is anyway, in the connection that signs with it or the emulator that verifies)."""
    return hmac_sha256(secret.encode())


def authorization(key_id: str, secret: str, method: str, path: str, query: str, headers: Mapping[str, str]) -> str:
    """The ``Authorization`` header for a request carrying ``headers`` (``x-acs-content-sha256`` included)
    and the query string ``query`` (as ``canonical_query`` makes it)."""
    layout = _signed_layout(tuple(headers))
    if layout is None:  # two headers of one name in different cases: sorted by value too
        signed = sorted((lower, value.strip()) for name, value in headers.items()
                        if _signed_name(lower := name.lower()))
        canonical_headers = "".join([f"{name}:{value}\n" for name, value in signed])
        names = ";".join([name for name, _ in signed])
        content = next(value for name, value in signed if name == "x-acs-content-sha256")
    else:
        order, names, content_name = layout
        canonical_headers = "".join([f"{lower}:{headers[name].strip()}\n" for name, lower in order])
        content = headers[content_name].strip()
    value = _signature(secret, method, path, query, canonical_headers, names, content)
    return f"{ALGORITHM} Credential={key_id},SignedHeaders={names},Signature={value}"


def _signed_name(lower: str) -> bool:
    """Whether the client signs a header of this (lower-case) name."""
    return lower in ("host", "content-type") or lower.startswith("x-acs-")


@functools.lru_cache(maxsize=32)
def _signed_layout(names: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], str, str] | None:
    """For a request with these header names (a connection sends the same ones every
    time): the signed ones as (name, lower-case name) in canonical order, the
    ``SignedHeaders`` value and the name ``x-acs-content-sha256`` has; None if two names
    differ only in case (their order then depends on their values)."""
    signed = sorted((lower, name) for name in names if _signed_name(lower := name.lower()))
    lowers = [lower for lower, _ in signed]
    if len(set(lowers)) != len(lowers):
        return None
    content = next(name for lower, name in signed if lower == "x-acs-content-sha256")
    return tuple((name, lower) for lower, name in signed), ";".join(lowers), content


@dataclass(frozen=True)
class Authorization:
    """An ``Authorization`` header taken apart (by the verifier)."""

    key_id: str
    signed_headers: list[str]
    signature: str

    @classmethod
    def parse(cls, header: str) -> Authorization | None:
        """The parts, or None when the header is not a complete ACS3-HMAC-SHA256 one."""
        algorithm, _, rest = header.strip().partition(" ")
        if algorithm != ALGORITHM:
            return None
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields[name] = value
        if not fields.get("Credential") or not fields.get("SignedHeaders") or not fields.get("Signature"):
            return None
        return cls(fields["Credential"], fields["SignedHeaders"].split(";"), fields["Signature"])
