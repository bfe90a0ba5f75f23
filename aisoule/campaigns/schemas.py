"""Campaign requests (both surfaces) and the representations of a campaign and its recipients.

The surfaces differ only in how they name contacts: ``/api`` by UUID, ``/v1`` by ``cnt_<n>``
(``audience.contact_ids``, a recipient's ``contact_id``); campaign ids are UUIDs on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from aisoule.campaigns import status as st
from aisoule.contacts.schemas import ContactRef, check_tags, v1_id
from aisoule.kit.validation import InputModel
from aisoule.models import Campaign

MAX_CONTACT_IDS = 10_000

Bucket = Literal["skipped", "pending", "sent", "delivered", "read", "failed", "unknown"]

_EXAMPLE: dict[str, Any] = {
    "name": "Diwali offer",
    "template": {"name": "order_update", "language": "en_US"},
    "audience": {"tags": ["VIP"]},
    "parameters": {"body": [{"field": "first_name", "fallback": "there"}, {"value": "DIWALI20"}]},
    "start": False,
}
_PARAMETERS_DOC = (
    "Per component (`header`, `body`, `buttons`): a list in {{1}}, {{2}} order for positional "
    "templates, an object by variable name for named ones; `buttons` by the button's index "
    '(`{"0": entry}`). Each entry is a contact field with an optional fallback, '
    '`{"field": "first_name" | "last_name" | "name" | "phone" | "email" | "stage" | '
    '"custom_fields.<key>", "fallback": "there"}`, or a constant, `{"value": "DIWALI20"}`.'
)


def _tag_list(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("must not be empty (leave it out instead)")
    return check_tags(value)


class TemplateRef(InputModel):
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=1, max_length=15, description="e.g. en_US")


class FromCampaign(InputModel):
    id: str = Field(max_length=64, description="An earlier campaign of this workspace.")
    statuses: list[Bucket] | None = Field(
        default=None,
        min_length=1,
        description="Its recipients in these outcomes (any when left out).",
    )


class AudienceIn(InputModel):
    """Who gets the campaign: every criterion given must hold."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tags": ["VIP"], "exclude_tags": ["unsubscribed"]}]}
    )

    all: bool | None = Field(default=None, description="true: every contact of the workspace.")
    tags: list[str] | None = Field(default=None, description="Any of these tags.")
    tags_all: list[str] | None = Field(default=None, description="All of these tags.")
    exclude_tags: list[str] | None = Field(default=None, description="None of these tags.")
    stage: str | None = Field(default=None, min_length=1, max_length=64)
    custom_fields: dict[str, Any] | None = Field(
        default=None,
        description='Equals (`{"city": "Pune"}`) or one of (`{"city": {"in": ["Pune", "Mumbai"]}}`).',
    )
    contact_ids: list[str] | None = Field(
        default=None,
        max_length=MAX_CONTACT_IDS,
        description="These contacts (UUIDs on /api, cnt_<n> on /v1).",
    )
    from_campaign: FromCampaign | None = Field(
        default=None, description="The recipients of an earlier campaign, by their outcome."
    )

    _tags = field_validator("tags", "tags_all", "exclude_tags")(_tag_list)


class _Definition(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    account_id: str | None = Field(
        default=None, max_length=64, description="The sending number; default: the default one."
    )
    template: TemplateRef
    audience: AudienceIn
    parameters: dict[str, Any] | None = Field(default=None, description=_PARAMETERS_DOC)


class CampaignCreate(_Definition):
    """POST /campaigns: a draft; ``scheduled_at`` schedules it, ``start`` starts it now."""

    name: str = Field(min_length=1, max_length=200)
    scheduled_at: AwareDatetime | None = Field(
        default=None, description="ISO-8601 with a zone, in the future."
    )
    start: bool = False
    force: bool = Field(
        default=False, description="Start even over the number's messaging limit left."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value


class CampaignPreview(_Definition):
    """POST /campaigns/preview: what a definition would reach, before creating it. Takes the
    body of POST /campaigns as it is (``name``, ``scheduled_at``, ``start``, ``force`` are
    accepted and change nothing here)."""

    name: str | None = Field(default=None, max_length=200)
    scheduled_at: AwareDatetime | None = None
    start: bool = False
    force: bool = False


class CampaignUpdate(InputModel):
    """PUT /campaigns/{id}: only the fields sent change (draft, scheduled or paused)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Diwali offer (final)"}]})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    account_id: str | None = Field(default=None, max_length=64)
    template: TemplateRef | None = None
    audience: AudienceIn | None = None
    parameters: dict[str, Any] | None = Field(default=None, description=_PARAMETERS_DOC)
    scheduled_at: AwareDatetime | None = Field(
        default=None, description="A new time; null takes a scheduled campaign back to draft."
    )

    @field_validator("name", "template", "audience", "parameters", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


class StartIn(InputModel):
    force: bool = Field(
        default=False, description="Start even over the number's messaging limit left."
    )


# --- representations ---


def campaign_out(
    row: Campaign,
    stats: Mapping[str, Any],
    refs: Mapping[int, ContactRef],
    *,
    v1: bool = False,
) -> dict[str, Any]:
    """A campaign as either surface shows it (``refs``: contacts.service.refs of its
    ``audience.contact_pks``)."""
    return {
        "id": str(row.id),
        "name": row.name,
        "status": row.status,
        "status_reason": row.status_reason,
        "status_detail": row.status_detail,
        "account_id": str(row.account_id) if row.account_id else None,
        "template": {
            "id": str(row.template_id) if row.template_id else None,
            "name": row.template_name,
            "language": row.template_language,
        },
        "audience": audience_out(row.audience or {}, refs, v1=v1),
        "parameters": row.parameters or {},
        "scheduled_at": row.scheduled_at,
        "started_at": row.started_at,
        "completed_at": row.completed_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "stats": dict(stats),
    }


def audience_out(
    audience: Mapping[str, Any], refs: Mapping[int, ContactRef], *, v1: bool
) -> dict[str, Any]:
    out = {k: v for k, v in audience.items() if k != "contact_pks"}
    pks = audience.get("contact_pks")
    if pks is not None:
        # A contact deleted since is left out.
        out["contact_ids"] = [
            v1_id(refs[pk].number) if v1 else str(refs[pk].uuid) for pk in pks if pk in refs
        ]
    return out


def _get(row: Any, key: str) -> Any:
    return row[key] if isinstance(row, Mapping) else getattr(row, key)


def recipient_out(row: Any, refs: Mapping[int, ContactRef], *, v1: bool = False) -> dict[str, Any]:
    contact_pk = _get(row, "contact_id")
    ref = refs.get(contact_pk) if contact_pk is not None else None
    contact_id = None if ref is None else (v1_id(ref.number) if v1 else str(ref.uuid))
    error = _get(row, "error")
    message_id = _get(row, "message_id")
    status = _get(row, "status")
    return {
        "id": str(_get(row, "id")),
        "contact_id": contact_id,
        "phone": _get(row, "phone"),
        "status": st.R_PENDING if status == st.R_QUEUED else status,
        "reason": _get(row, "reason"),
        "error": None
        if not error
        else {
            "code": error.get("code"),
            "title": error.get("title"),
            "details": error.get("details"),
        },
        "message_id": str(message_id) if message_id else None,
        "sent_at": _get(row, "sent_at"),
        "replied_at": _get(row, "replied_at"),
        "updated_at": _get(row, "updated_at"),
    }


# --- OpenAPI documentation models ---


class TemplateOut(BaseModel):
    id: str | None
    name: str
    language: str


class Stats(BaseModel):
    total: int
    skipped: int
    pending: int
    sent: int
    delivered: int
    read: int
    failed: int
    unknown: int
    replied: int
    resent: int
    skipped_reasons: dict[str, int]
    failed_codes: dict[str, int]


class CampaignOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
                    "name": "Diwali offer",
                    "status": "draft",
                    "status_reason": None,
                    "status_detail": None,
                    "account_id": "0b7e2f0e-3c1e-4a57-9f43-1f3c5d7b9a10",
                    "template": {"id": None, "name": "order_update", "language": "en_US"},
                    "audience": {"tags": ["VIP"]},
                    "parameters": _EXAMPLE["parameters"],
                    "scheduled_at": None,
                    "started_at": None,
                    "completed_at": None,
                    "created_at": "2026-10-20T08:00:00Z",
                    "updated_at": "2026-10-20T08:00:00Z",
                    "stats": {
                        "total": 0,
                        "skipped": 0,
                        "pending": 0,
                        "sent": 0,
                        "delivered": 0,
                        "read": 0,
                        "failed": 0,
                        "unknown": 0,
                        "replied": 0,
                        "resent": 0,
                        "skipped_reasons": {},
                        "failed_codes": {},
                    },
                }
            ]
        }
    )

    id: str
    name: str
    status: str = Field(description=" | ".join(st.ALL))
    status_reason: str | None
    status_detail: str | None
    account_id: str | None
    template: TemplateOut
    audience: dict[str, Any]
    parameters: dict[str, Any]
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    stats: Stats


class CampaignData(BaseModel):
    campaign: CampaignOut


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]
    total: int
    page: int
    per_page: int


class CampaignDeleted(BaseModel):
    id: str
    deleted: bool


class StatsData(BaseModel):
    stats: Stats


class RecipientError(BaseModel):
    code: Any
    title: str | None
    details: str | None


class RecipientOut(BaseModel):
    id: str
    contact_id: str | None
    phone: str
    status: str
    reason: str | None
    error: RecipientError | None
    message_id: str | None
    sent_at: datetime | None
    replied_at: datetime | None
    updated_at: datetime


class RecipientList(BaseModel):
    recipients: list[RecipientOut]
    total: int
    page: int
    per_page: int


class Problem(BaseModel):
    code: str
    message: str
    blocking: bool = Field(description="Whether it stops a start (forced or not, as said).")


class MessagingLimit(BaseModel):
    tier: str | None
    limit: int | None
    used_24h: int
    left: int | None


class TemplateCheck(BaseModel):
    status: str | None
    quality: str | None


class PreflightOut(BaseModel):
    audience: int
    eligible: int
    opted_out: int
    missing_variable: int
    template: TemplateCheck
    messaging_limit: MessagingLimit
    estimated_seconds: int
    problems: list[Problem]


class SampleContact(BaseModel):
    id: str
    phone: str
    name: str | None


class SampleOut(BaseModel):
    contact: SampleContact
    text: str | None
    components: list[dict[str, Any]] | None
    skip_reason: str | None
    missing: str | None


class PreviewData(BaseModel):
    preflight: PreflightOut
    sample: list[SampleOut]


class ResentData(BaseModel):
    campaign: CampaignOut
    resent: int


# /v1 bodies


class CampaignOneV1(BaseModel):
    success: bool = True
    campaign: CampaignOut


class PaginationV1(BaseModel):
    total: int
    limit: int
    offset: int


class CampaignListV1(BaseModel):
    success: bool = True
    campaigns: list[CampaignOut]
    pagination: PaginationV1


class CampaignDeletedV1(BaseModel):
    success: bool = True
    id: str
    deleted: bool


class StatsV1(BaseModel):
    success: bool = True
    stats: Stats


class RecipientListV1(BaseModel):
    success: bool = True
    recipients: list[RecipientOut]
    pagination: PaginationV1


class PreviewV1(BaseModel):
    success: bool = True
    preflight: PreflightOut
    sample: list[SampleOut]


class ResentV1(BaseModel):
    success: bool = True
    campaign: CampaignOut
    resent: int
