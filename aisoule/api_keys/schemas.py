from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoule.auth.scopes import Scope
from aisoule.kit.time import utcnow
from aisoule.kit.validation import InputModel


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
