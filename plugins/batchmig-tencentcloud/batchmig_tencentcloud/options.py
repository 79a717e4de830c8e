"""Provider options and credential names shared by both Tencent providers.

Both providers talk API 3.0 with the same credentials and endpoint rules, so an
operator configures them the same way; only the service and version differ.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CREDENTIAL_ENV", "REQUIRED_CREDENTIALS", "TencentOptions"]

CREDENTIAL_ENV = {
    "secret_id": "TENCENTCLOUD_SECRET_ID",
    "secret_key": "TENCENTCLOUD_SECRET_KEY",
    "session_token": "TENCENTCLOUD_SESSION_TOKEN",
}
REQUIRED_CREDENTIALS = ("secret_id", "secret_key")


class TencentOptions(BaseModel):
    """``options:`` of a Tencent provider configuration in the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pin_region: bool = Field(
        default=False,
        description="Send requests to the region's own host (<service>.<region>.tencentcloudapi.com) "
        "instead of the nearest-region host (<service>.tencentcloudapi.com).",
    )
    root_domain: str = Field(
        default="tencentcloudapi.com",
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
        description="Domain after the service name; 'intl.tencentcloudapi.com' for the international site.",
    )
