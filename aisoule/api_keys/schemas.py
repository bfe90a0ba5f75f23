from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoule.auth.scopes import Scope
from aisoule.kit.time import iso_z, utcnow
from aisoule.kit.validation import InputModel
from aisoule.models import APIKey

STATUS_CLASS_NAMES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class APIKeyCreate(InputModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "CRM Integration",
                    "expires_at": "2027-01-01T00:00:00Z",
                    "scopes": ["contacts:read", "contacts:write"],
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100, description='A name, e.g. "CRM Integration".')
    expires_at: datetime | None = Field(default=None, description="Optional expiry (ISO 8601).")
    scopes: list[Scope] | None = Field(
        default=None,
        description="Permissions. Omitted: every scope except keys:manage.",
    )

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value <= utcnow():
            raise ValueError("must be in the future")
        return value

    @field_validator("scopes")
    @classmethod
    def _non_empty(cls, value: list[Scope] | None) -> list[Scope] | None:
        if value is not None and not value:
            raise ValueError("give at least one scope, or leave scopes out for the defaults")
        return value


class APIKeyCreated(BaseModel):
    id: str
    name: str
    key: str = Field(description="The secret. Shown in this response only: store it now.")
    prefix: str
    last4: str
    scopes: list[str]
    expires_at: str | None
    created_at: str


class RateLimitOut(BaseModel):
    per_minute: int | None = Field(
        description="Override; null: the workspace's or server's default."
    )
    per_second: int | None


class APIKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    last4: str
    scopes: list[str]
    status: Literal["active", "expired", "revoked"]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    rate_limit: RateLimitOut


class APIKeyCreatedData(BaseModel):
    api_key: APIKeyCreated


class APIKeyListData(BaseModel):
    api_keys: list[APIKeyOut]


class APIKeyRevokedData(BaseModel):
    api_key: APIKeyOut


class UsageDay(BaseModel):
    date: str
    total: int
    c1xx: int = Field(alias="1xx")
    c2xx: int = Field(alias="2xx")
    c3xx: int = Field(alias="3xx")
    c4xx: int = Field(alias="4xx")
    c5xx: int = Field(alias="5xx")


class APIKeyUsageData(BaseModel):
    api_key_id: str
    last_used_at: str | None
    days: list[UsageDay]
    totals: dict[str, int]


# --- representations (plain dicts; the models above document them) ---


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's requests per UTC day, oldest first, each by status class (1 to 5; zeros kept)."""

    key: APIKey
    days: list[tuple[date, dict[int, int]]]


def status_of(row: APIKey, now: datetime | None = None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def key_out(row: APIKey) -> dict[str, Any]:
    """A key as lists show it: its prefix and last four characters, never the secret."""
    return {
        "id": str(row.id),
        "name": row.name,
        "prefix": row.prefix,
        "last4": row.last4,
        "scopes": list(row.scopes),
        "status": status_of(row),
        "created_at": iso_z(row.created_at),
        "expires_at": iso_z(row.expires_at),
        "last_used_at": iso_z(row.last_used_at),
        "revoked_at": iso_z(row.revoked_at),
        "rate_limit": {
            "per_minute": row.rate_limit_per_minute,
            "per_second": row.rate_limit_per_second,
        },
    }


def created_out(row: APIKey, secret: str) -> dict[str, Any]:
    """A key just created: the only answer that holds its secret."""
    return {
        "id": str(row.id),
        "name": row.name,
        "key": secret,
        "prefix": row.prefix,
        "last4": row.last4,
        "scopes": list(row.scopes),
        "expires_at": iso_z(row.expires_at),
        "created_at": iso_z(row.created_at),
    }


def usage_out(usage: KeyUsage) -> dict[str, Any]:
    days = []
    totals = dict.fromkeys(STATUS_CLASS_NAMES.values(), 0)
    for day, counts in usage.days:
        classes = {STATUS_CLASS_NAMES[n]: c for n, c in counts.items()}
        for name, c in classes.items():
            totals[name] += c
        days.append({"date": day.isoformat(), "total": sum(classes.values()), **classes})
    return {
        "api_key_id": str(usage.key.id),
        "last_used_at": iso_z(usage.key.last_used_at),
        "days": days,
        "totals": {**totals, "total": sum(totals.values())},
    }
