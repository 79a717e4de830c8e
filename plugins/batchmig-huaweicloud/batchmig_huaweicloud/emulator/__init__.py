"""The sandbox emulator of DRS v5 backup migration (and the IAM calls it needs).

Modules: ``routes`` (which operation a request is), ``gateway`` (AK/SK and token
checks as APIGW does them), ``iam`` (tokens, projects), ``validation`` (the create
rules as DRS 400s), ``restores`` (the timed job state machine), ``service`` (the
``Emulator`` the sandbox host drives).
"""

from __future__ import annotations

from batchmig_huaweicloud.emulator.service import DEMO_CREDENTIALS, HuaweiDrsEmulator

__all__ = ["DEMO_CREDENTIALS", "HuaweiDrsEmulator"]
