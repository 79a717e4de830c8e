"""Which batchmig error class a Tencent Cloud error code becomes.

The core's retry policy acts on the class, so this table *is* the retry policy for
Tencent: it follows the reference's retry advice (common error codes, the SDKs' and
Tencent's Terraform provider's choices). Codes are matched exactly first, then by
dotted prefix, so product sub-codes such as
``RequestLimitExceeded.RequestLimitExceededError`` (DTS) or ``InternalError.DBError``
inherit their family's treatment. The message is never parsed: it is localized and
its wording changes.
"""

from __future__ import annotations

from batchmig.errors import (
    NotFoundError,
    PermanentError,
    ProviderError,
    ThrottleError,
    TransientError,
)

__all__ = ["classify", "error_for"]

# Exact codes whose treatment differs from their family's.
_EXACT: dict[str, type[ProviderError]] = {
    # The timestamp was too old: the core calls prepare() again, which re-signs.
    "AuthFailure.SignatureExpire": TransientError,
    # Lock conflicts on a migration task clear by themselves.
    "FailedOperation.MigrationLockError": TransientError,
    # A FULL task takes no incrementals; no retry changes that.
    "ResourceUnavailable.BackupMigrationRecoveryTypeErr": PermanentError,
    "ResourceUnavailable.VpcNotExist": PermanentError,
}

# Families, matched by prefix (``RequestLimitExceeded*`` is any throttle); first hit wins.
_PREFIXES: tuple[tuple[str, type[ProviderError]], ...] = (
    ("RequestLimitExceeded", ThrottleError),
    ("InternalError", TransientError),
    ("ServiceUnavailable", TransientError),
    ("ResourceInUse", TransientError),
    ("ResourceUnavailable", TransientError),
    ("ResourceNotFound", NotFoundError),
)


def classify(code: str) -> type[ProviderError]:
    """The error class for ``code``; unknown codes are permanent."""
    if code in _EXACT:
        return _EXACT[code]
    for prefix, kind in _PREFIXES:
        if code.startswith(prefix):
            return kind
    return PermanentError


def error_for(
    code: str, message: str, request_id: str | None, http_status: int | None = None
) -> ProviderError:
    """An instance of the fitting error class, carrying the request id."""
    kind = classify(code)
    return kind(code, message, request_id=request_id, http_status=http_status)
