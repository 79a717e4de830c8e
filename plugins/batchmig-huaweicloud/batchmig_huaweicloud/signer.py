"""Huawei Cloud's ``SDK-HMAC-SHA256`` request signature, as pure functions.

The API gateway in front of DRS (and IAM) authenticates AK/SK callers with this
scheme. It is shared by the client (to sign) and the emulator (to verify the way the
gateway does), so both sides build the canonical request from one implementation and
the published test vectors cover both.

Unlike AWS SigV4 there is no key derivation: the secret key signs the string to sign
directly. The canonical request has six lines joined by ``\\n``: method, canonical
URI (segments re-encoded, trailing slash added for signing only), canonical query,
canonical headers (each ending in ``\\n``), signed header names, body SHA-256.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from batchmig.plugin import hmac_sha256, percent_encode

__all__ = [
    "ALGORITHM",
    "ParsedAuthorization",
    "authorization_header",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "format_sdk_date",
    "parse_authorization",
    "parse_sdk_date",
    "percent_encode",
    "sign",
    "signable_header_names",
    "signature",
    "string_to_sign",
]

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256 Access=(?P<ak>[^,]+), SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)


@functools.lru_cache(maxsize=1024)  # a run's calls go to a few paths per project (and one per job)
def canonical_uri(path: str) -> str:
    """The path with each segment decoded then re-encoded, ending in ``/``
    (``percent_encode``: RFC 3986 unreserved characters as they are, every other one as %XX)."""
    uri = "/".join(percent_encode(unquote(segment)) for segment in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """``name=value`` pairs sorted by name then value, encoded, joined by ``&``."""
    return "&".join(f"{percent_encode(name)}={percent_encode(value)}" for name, value in sorted(pairs))


def signable_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-case names of the headers a client signs: all but those with ``_``."""
    return sorted({name.lower() for name in headers if "_" not in name})


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> str:
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    return "".join(f"{name}:{lowered.get(name, '')}\n" for name in signed)


@functools.lru_cache(maxsize=32)
def _client_layout(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str | None]:
    """For a request with these header names (a connection sends the same ones every time):
    the names signed (``signable_header_names``), each with the header its value comes from
    (the last of that name in any case, as ``canonical_headers`` reads them), and the header
    ``sign`` takes the date from (the first named ``X-Sdk-Date`` in any case)."""
    signed = tuple(signable_header_names(dict.fromkeys(names, "")))
    source = {name.lower(): name for name in names}
    date = next((name for name in names if name.lower() == "x-sdk-date"), None)
    return signed, tuple((name, source[name]) for name in signed), date


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: Sequence[str],
    body: bytes,
) -> str:
    return _canonical_request(method, path, query, canonical_headers(headers, signed), signed, body)


def _canonical_request(
    method: str, path: str, query: Iterable[tuple[str, str]], header_lines: str, signed: Sequence[str], body: bytes
) -> str:
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_lines,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    return _signer(secret_key)(to_sign.encode("utf-8")).hex()


@functools.lru_cache(maxsize=64)
def _signer(secret_key: str) -> Callable[[bytes], bytes]:
    """HMAC under a secret key, made once per key (kept in memory only, as the key is
    anyway, in the connection that signs with it or the emulator that verifies)."""
    return hmac_sha256(secret_key.encode("utf-8"))


def authorization_header(access_key: str, signed: Sequence[str], sig: str) -> str:
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed)}, Signature={sig}"


def sign(
    *,
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The ``Authorization`` value for a request whose headers include ``X-Sdk-Date``.

    Every header given is signed (except names containing ``_``, as the SDKs do), so
    pass exactly the headers that will be sent and that the gateway can see.
    """
    signed, sources, date = _client_layout(tuple(headers))
    if date is None:
        raise ValueError("X-Sdk-Date must be set before signing")
    header_lines = "".join([f"{name}:{headers[source].strip()}\n" for name, source in sources])
    canonical = _canonical_request(method, path, query, header_lines, signed, body)
    sdk_date = headers[date]
    return authorization_header(
        access_key, signed, signature(secret_key, string_to_sign(sdk_date, canonical))
    )


@dataclass(frozen=True)
class ParsedAuthorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """Split an ``Authorization`` header the way the gateway reads it, or None."""
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        return None
    signed = tuple(match["signed"].split(";"))
    return ParsedAuthorization(match["ak"], signed, match["sig"])


def format_sdk_date(epoch: float) -> str:
    return _sdk_date(math.floor(epoch))  # as gmtime rounds


@functools.lru_cache(maxsize=2)  # a run signs hundreds of requests in the same second
def _sdk_date(second: int) -> str:
    return time.strftime(SDK_DATE_FORMAT, time.gmtime(second))


def parse_sdk_date(value: str) -> float | None:
    """Seconds since the epoch for an ``X-Sdk-Date`` value, or None if malformed."""
    try:
        parsed = time.strptime(value, SDK_DATE_FORMAT)
    except ValueError:
        return None
    return float(calendar.timegm(parsed))
