from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from aisoule.kit.time import iso_z
from aisoule.models import AuditEvent


class AuditEventType(StrEnum):
    signup = "signup"
    login = "login"
    login_failed = "login_failed"
    logout = "logout"
    api_key_created = "api_key_created"
    api_key_revoked = "api_key_revoked"
    member_invited = "member_invited"
    invitation_revoked = "invitation_revoked"
    member_joined = "member_joined"
    member_changed = "member_changed"
    member_removed = "member_removed"


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


def event_out(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "event": row.event,
        "actor_user_id": str(row.actor_user_id) if row.actor_user_id else None,
        "actor_api_key_id": str(row.actor_api_key_id) if row.actor_api_key_id else None,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "details": row.details,
        "created_at": iso_z(row.created_at),
    }
