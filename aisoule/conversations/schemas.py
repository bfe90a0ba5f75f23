"""The inbox: request models and representations of conversations and what hangs on them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aisoule.kit.time import iso_z
from aisoule.kit.validation import InputModel
from aisoule.messages.schemas import MediaPayload, MessageOut, TemplatePayload
from aisoule.models import CannedResponse, Conversation, ConversationEvent, InboxSettings, Team

Status = Literal["open", "pending", "snoozed", "resolved"]
View = Literal["all", "mine", "unassigned"]
WINDOW = timedelta(hours=24)
_LABEL = re.compile(r"^[\w][\w .:/-]{0,63}$", re.UNICODE)
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _short_code(value: str) -> str:
    value = value.strip().lstrip("/").lower()
    if not _CODE.match(value):
        raise ValueError("1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit")
    return value


def _label(value: str) -> str:
    value = value.strip().lower()
    if not _LABEL.match(value):
        raise ValueError(
            "a label is 1 to 64 letters, digits, spaces or . : / - _, starting with a letter or digit"
        )
    return value


class StatusChange(InputModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"status": "snoozed", "snoozed_until": "2026-12-24T09:00:00Z"}]
        },
    )
    status: Status
    snoozed_until: datetime | None = Field(
        default=None, description="Required for snoozed: when it opens again"
    )
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _until(self) -> StatusChange:
        if self.status == "snoozed" and self.snoozed_until is None:
            raise ValueError("snoozed_until: required when status is snoozed")
        if self.status != "snoozed" and self.snoozed_until is not None:
            raise ValueError("snoozed_until: only for status snoozed")
        if self.snoozed_until is not None and self.snoozed_until.tzinfo is None:
            raise ValueError("snoozed_until: give a time zone (e.g. Z)")
        return self


class Assign(InputModel):
    """PUT .../assignee: a member's user id, or null to unassign."""

    model_config = ConfigDict(extra="forbid")
    assignee_id: str | None = Field(max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class ClaimRequest(InputModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


class TeamAssign(InputModel):
    model_config = ConfigDict(extra="forbid")
    team_id: str | None = Field(max_length=64)


class LabelsChange(InputModel):
    """POST .../labels: labels to add and to remove (lower-cased)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"add": ["refund"]}]})
    add: list[str] = Field(default_factory=list, max_length=20)
    remove: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("add", "remove")
    @classmethod
    def _check(cls, value: list[str]) -> list[str]:
        return [_label(x) for x in value]


class NoteCreate(InputModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=10_000)

    @field_validator("body")
    @classmethod
    def _blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Reply(InputModel):
    """POST .../reply: text (or a canned response's short code), a template, or media — as
    POST /api/messages/send takes them, to this conversation's customer from its number."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "text", "text": "Your order ships today 🚚"},
                {"type": "text", "canned": "shipping"},
                {"type": "template", "template": {"name": "order_update", "parameters": ["Priya"]}},
            ]
        },
    )
    type: Literal["text", "template", "image", "document", "audio", "video"] = "text"
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    canned: str | None = Field(default=None, max_length=64, description="A canned response's code")
    template: TemplatePayload | None = None
    image: MediaPayload | None = None
    document: MediaPayload | None = None
    audio: MediaPayload | None = None
    video: MediaPayload | None = None
    reply_to: str | None = Field(
        default=None, max_length=64, description="The id of a message of this conversation to quote"
    )

    @model_validator(mode="after")
    def _one(self) -> Reply:
        if self.type == "text":
            if (self.text is None) == (self.canned is None):
                raise ValueError("text: give text or canned (a short code), one of them")
        elif getattr(self, self.type) is None:
            raise ValueError(f"{self.type}: a {self.type} reply needs a '{self.type}' object")
        for other in ("text", "canned", "template", "image", "document", "audio", "video"):
            if (
                other != self.type
                and getattr(self, other) is not None
                and not (self.type == "text" and other == "canned")
            ):
                raise ValueError(f"{other}: not allowed in a {self.type} reply")
        return self


class CannedCreate(InputModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"short_code": "shipping", "content": "It ships today."}]},
    )
    short_code: str = Field(min_length=1, max_length=64)
    content: str = Field(min_length=1, max_length=4096)

    _code = field_validator("short_code")(_short_code)


class CannedUpdate(InputModel):
    model_config = ConfigDict(extra="forbid")
    short_code: str | None = Field(default=None, min_length=1, max_length=64)
    content: str | None = Field(default=None, min_length=1, max_length=4096)

    @field_validator("short_code")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        return None if value is None else _short_code(value)


class SettingsUpdate(InputModel):
    model_config = ConfigDict(extra="forbid")
    only_assignee_replies: bool | None = None
    auto_assign: bool | None = None


class TeamCreate(InputModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


# --- representations ---


class ContactCard(BaseModel):
    id: str
    name: str | None
    phone: str
    opted_out: bool
    opted_out_at: str | None


class MemberRef(BaseModel):
    id: str
    name: str
    email: str


class ConversationOut(BaseModel):
    id: str
    account_id: str
    contact: ContactCard | None
    status: Status
    snoozed_until: str | None
    assignee: MemberRef | None
    team_id: str | None
    labels: list[str]
    unread: int | None = Field(description="For the calling member; null for an API key")
    last_message_at: str | None
    last_message_preview: str | None
    last_message_direction: str | None
    last_inbound_at: str | None
    window_expires_at: str | None = Field(description="When free text stops being allowed")
    window_open: bool
    created_at: str | None


class ConversationData(BaseModel):
    conversation: ConversationOut


class ConversationList(BaseModel):
    conversations: list[ConversationOut]
    total: int
    page: int
    per_page: int


class ConversationMessages(BaseModel):
    messages: list[MessageOut]
    total: int
    page: int
    per_page: int


class EventOut(BaseModel):
    id: int
    kind: str = Field(description="assigned, status, labels, team or note")
    actor_user_id: str | None
    actor_api_key_id: str | None
    data: dict[str, Any]
    created_at: str


class EventData(BaseModel):
    event: EventOut


class EventList(BaseModel):
    events: list[EventOut]
    total: int
    page: int
    per_page: int


class ReplyQueued(BaseModel):
    message: MessageOut


class CannedOut(BaseModel):
    id: str
    short_code: str
    content: str
    created_at: str
    updated_at: str


class CannedData(BaseModel):
    canned_response: CannedOut


class CannedList(BaseModel):
    canned_responses: list[CannedOut]


class Deleted(BaseModel):
    id: str
    deleted: bool


class SettingsOut(BaseModel):
    only_assignee_replies: bool
    auto_assign: bool


class SettingsData(BaseModel):
    settings: SettingsOut


class TeamOut(BaseModel):
    id: str
    name: str
    created_at: str
    member_ids: list[str]  # round robin of the team's conversations picks among them


class TeamMembers(InputModel):
    """PUT /api/teams/{id}/members: the team's members, replacing the current ones."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"user_ids": ["<a member's id>"]}]}
    )
    user_ids: list[str] = Field(max_length=500)


class TeamData(BaseModel):
    team: TeamOut


class TeamList(BaseModel):
    teams: list[TeamOut]


class LabelCount(BaseModel):
    label: str
    conversations: int


class LabelList(BaseModel):
    labels: list[LabelCount]


def effective_status(c: Conversation, now: datetime) -> str:
    if c.status == "snoozed" and c.snoozed_until is not None and c.snoozed_until <= now:
        return "open"
    return c.status


def contact_card(row: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or row["profile_name"]
    return {
        "id": str(row["uuid"]),
        "name": name,
        "phone": row["phone"],
        "opted_out": row["opted_out_at"] is not None,
        "opted_out_at": iso_z(row["opted_out_at"]) if row["opted_out_at"] else None,
    }


def conversation_out(
    c: Conversation,
    *,
    now: datetime,
    contact: Mapping[Any, Any] | None,
    labels: list[str],
    unread: int | None,
    assignee: Mapping[str, str] | None,
) -> dict[str, Any]:
    expires = c.last_inbound_at + WINDOW if c.last_inbound_at else None
    status = effective_status(c, now)
    return {
        "id": str(c.id),
        "account_id": str(c.account_id),
        "contact": contact_card(contact),
        "status": status,
        "snoozed_until": iso_z(c.snoozed_until)
        if status == "snoozed" and c.snoozed_until
        else None,
        "assignee": dict(assignee) if assignee else None,
        "team_id": str(c.team_id) if c.team_id else None,
        "labels": labels,
        "unread": None if unread is None else max(0, int(unread)),
        "last_message_at": iso_z(c.last_message_at) if c.last_message_at else None,
        "last_message_preview": c.last_message_preview,
        "last_message_direction": c.last_message_direction,
        "last_inbound_at": iso_z(c.last_inbound_at) if c.last_inbound_at else None,
        "window_expires_at": iso_z(expires) if expires else None,
        "window_open": expires is not None and now <= expires,
        "created_at": iso_z(c.created_at) if c.created_at else None,
    }


def event_out(e: ConversationEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "actor_user_id": str(e.actor_user_id) if e.actor_user_id else None,
        "actor_api_key_id": str(e.actor_api_key_id) if e.actor_api_key_id else None,
        "data": e.data,
        "created_at": iso_z(e.created_at),
    }


def canned_out(c: CannedResponse) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "short_code": c.short_code,
        "content": c.content,
        "created_at": iso_z(c.created_at),
        "updated_at": iso_z(c.updated_at),
    }


def settings_out(s: InboxSettings | None) -> dict[str, Any]:
    return {
        "only_assignee_replies": bool(s and s.only_assignee_replies),
        "auto_assign": bool(s and s.auto_assign),
    }


def team_out(t: Team, members: Sequence[uuid.UUID] = ()) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "name": t.name,
        "created_at": iso_z(t.created_at),
        "member_ids": [str(u) for u in members],
    }


class MediaUploadedOut(BaseModel):
    id: str  # Meta's media id
    type: str  # image | video | audio | document
    mime_type: str
    size: int
    filename: str


class MediaUploaded(BaseModel):
    media: MediaUploadedOut
