from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aisoule.kit.time import iso_z
from aisoule.kit.validation import InputModel
from aisoule.models import WhatsAppAccount

_ID = r"^[0-9]{1,32}$"
# Tokens and secrets travel in HTTP headers: printable ASCII without spaces, nothing else.
_SECRET = r"^[\x21-\x7e]+$"  # noqa: S105 - a pattern, not a secret


class AccountOut(BaseModel):
    id: str
    name: str
    phone_number: str
    display_name: str
    phone_number_id: str
    waba_id: str
    quality_rating: str | None
    messaging_limit: str | None
    throughput: int
    status: str
    provider: str
    is_default: bool
    has_app_secret: bool
    has_verify_token: bool
    webhook_url: str
    last_error: str | None
    created_at: str
    updated_at: str


class AccountList(BaseModel):
    accounts: list[AccountOut]
    total: int
    page: int
    per_page: int


class AccountData(BaseModel):
    account: AccountOut


class AccountCreate(InputModel):
    """Connect a WhatsApp Business phone number (Meta: WhatsApp Manager → API Setup)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    phone_number_id: str = Field(pattern=_ID, description="Meta's phone number id")
    waba_id: str = Field(pattern=_ID, description="The WhatsApp Business Account id")
    access_token: str = Field(
        min_length=1, max_length=4096, pattern=_SECRET, description="A system user token"
    )
    app_secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=_SECRET,
        description="Verifies Meta's webhooks",
    )
    verify_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=_SECRET,
        description="For the webhook handshake",
    )
    throughput: int = Field(default=80, ge=1, le=1000, description="Messages per second")
    is_default: bool | None = None
    provider: Literal["cloud_api", "emulator"] = "cloud_api"


class AccountUpdate(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    access_token: str | None = Field(default=None, min_length=1, max_length=4096, pattern=_SECRET)
    app_secret: str | None = Field(default=None, min_length=1, max_length=256, pattern=_SECRET)
    verify_token: str | None = Field(default=None, min_length=1, max_length=256, pattern=_SECRET)
    throughput: int | None = Field(default=None, ge=1, le=1000)
    is_default: Literal[True] | None = None


class AccountDeleted(BaseModel):
    id: str
    deleted: bool


def account_out(row: WhatsAppAccount, base_url: str) -> dict[str, Any]:
    """An account as /api shows it: never its secrets, only whether it has them; ``base_url``
    (this server's) gives the webhook URL to paste into Meta's app settings."""
    return {
        "id": str(row.id),
        "name": row.name,
        "phone_number": row.phone_number,
        "display_name": row.display_name,
        "phone_number_id": row.phone_number_id,
        "waba_id": row.waba_id,
        "quality_rating": row.quality_rating,
        "messaging_limit": row.messaging_limit,
        "throughput": row.throughput,
        "status": row.status,
        "provider": row.provider,
        "is_default": row.is_default,
        "has_app_secret": row.app_secret_sealed is not None,
        "has_verify_token": row.verify_token_hash is not None,
        "webhook_url": f"{base_url}/webhooks/whatsapp",
        "last_error": row.last_error,
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
    }
