from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class AuditEventType(StrEnum):
    signup = "signup"
    login = "login"
    login_failed = "login_failed"
    logout = "logout"
    api_key_created = "api_key_created"
    api_key_revoked = "api_key_revoked"


class AuditEventOut(BaseModel):
    id: int
    event: AuditEventType
    actor_user_id: str | None
    actor_api_key_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    created_at: str


class AuditLogData(BaseModel):
    events: list[AuditEventOut]
    total: int
    page: int
    per_page: int
