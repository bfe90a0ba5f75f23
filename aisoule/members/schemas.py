"""Members and invitations: requests and representations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aisoule.kit.time import iso_z
from aisoule.kit.validation import InputModel
from aisoule.models import InboxMember, Invitation, User, WorkspaceMember

Role = Literal["owner", "admin", "agent"]


class MemberUpdate(InputModel):
    """PUT /api/members/{user_id}: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    available: bool | None = None
    capacity: int | None = Field(
        default=None, ge=1, le=1000, description="Open conversations auto-assigned at most"
    )


class MyAvailability(InputModel):
    """PUT /api/members/me: a member marks themself available (or not) for auto-assignment."""

    model_config = ConfigDict(extra="forbid")
    available: bool


class InvitationCreate(InputModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"email": "ravi@shop.in", "role": "agent"}]}
    )
    email: str = Field(min_length=3, max_length=320)
    role: Role = "agent"


class InvitationAccept(InputModel):
    """POST /api/auth/accept-invitation: a new user gives a name and a password; an existing
    user (the invitation's email has an account) proves it with their password."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=200)
    password: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: str
    available: bool
    capacity: int | None
    joined_at: str


class MemberData(BaseModel):
    member: MemberOut


class MemberList(BaseModel):
    members: list[MemberOut]


class MemberRemoved(BaseModel):
    user_id: str
    removed: bool


class InvitationOut(BaseModel):
    id: str
    email: str
    role: str
    status: str = Field(description="pending, accepted, revoked or expired")
    invited_by: str | None
    created_at: str
    expires_at: str


class InvitationCreated(BaseModel):
    invitation: InvitationOut
    token: str = Field(description="Shown once: the invitee accepts with it")
    url: str = Field(description="The link to send (the token after #, never in server logs)")
    mailed: bool = Field(description="Whether it was handed to the SMTP server")


class InvitationData(BaseModel):
    invitation: InvitationOut


class InvitationList(BaseModel):
    invitations: list[InvitationOut]


def member_out(
    member: WorkspaceMember, user: User, inbox: InboxMember | None = None
) -> dict[str, Any]:
    return {
        "user_id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": member.role,
        "available": inbox.available if inbox is not None else True,
        "capacity": inbox.capacity if inbox is not None else None,
        "joined_at": iso_z(member.created_at),
    }


def invitation_out(row: Invitation, status: str) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "email": row.email,
        "role": row.role,
        "status": status,
        "invited_by": str(row.invited_by) if row.invited_by else None,
        "created_at": iso_z(row.created_at),
        "expires_at": iso_z(row.expires_at),
    }
