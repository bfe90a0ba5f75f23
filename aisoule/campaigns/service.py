"""Campaigns: defining, editing and steering a broadcast (docs/campaigns.md). Every status move
is checked here against campaigns/status.py, then handed to the engine (campaigns/engine.py),
which owns recipients, sending and stats."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.accounts import service as accounts
from aisoule.campaigns import audience as audiences
from aisoule.campaigns import engine, parameters, preflight
from aisoule.campaigns import status as st
from aisoule.campaigns.repository import CampaignRepository
from aisoule.campaigns.schemas import (
    CampaignCreate,
    CampaignPreview,
    CampaignUpdate,
    TemplateRef,
)
from aisoule.contacts import service as contacts
from aisoule.contacts.schemas import ContactRef, full_name, v1_id
from aisoule.exceptions import Conflict, NotFound, ValidationFailed
from aisoule.kit.ids import parse_uuid
from aisoule.kit.time import utcnow
from aisoule.messages import service as messages
from aisoule.models import Campaign, MessageTemplate, WhatsAppAccount
from aisoule.templates import service as templates

CAMPAIGN_NOT_FOUND = "Campaign not found"


# -- reading ------------------------------------------------------------------------------------


async def list_page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
) -> tuple[Sequence[Campaign], int]:
    return await CampaignRepository(session).search(
        workspace_id, status=status, limit=limit, offset=offset
    )


async def get(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str, *, for_update: bool = False
) -> Campaign:
    parsed = parse_uuid(campaign_id)
    row = (
        None
        if parsed is None
        else await CampaignRepository(session).get(workspace_id, parsed, for_update=for_update)
    )
    if row is None:
        raise NotFound(CAMPAIGN_NOT_FOUND, code="campaign_not_found")
    return row


async def stats(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    return await engine.stats(session, campaign.id)


async def stats_many(
    session: AsyncSession, campaigns: Sequence[Campaign]
) -> dict[uuid.UUID, dict[str, Any]]:
    if not campaigns:
        return {}
    return await engine.stats_many(session, [c.id for c in campaigns])


async def contact_refs(
    session: AsyncSession, workspace_id: uuid.UUID, campaigns: Iterable[Campaign]
) -> dict[int, ContactRef]:
    """How the representations name the contacts of these campaigns' ``audience.contact_ids``."""
    pks = [pk for c in campaigns for pk in (c.audience or {}).get("contact_pks") or ()]
    return await contacts.refs(session, workspace_id, pks) if pks else {}


async def recipients(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: str,
    *,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Any], int, dict[int, ContactRef]]:
    """A page of the campaign's recipients (``status``: a stats bucket), its total, and how the
    representation names their contacts."""
    campaign = await get(session, workspace_id, campaign_id)
    rows, total = await engine.list_recipients(session, campaign.id, status, limit, offset)
    refs = await contacts.refs(session, workspace_id, (_field(r, "contact_id") for r in rows))
    return rows, total, refs


def _field(row: Any, key: str) -> Any:
    return row[key] if isinstance(row, Mapping) else getattr(row, key)


TIMELINE_BUCKETS = 60
_WIDTHS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


async def timeline(
    session: AsyncSession, campaign: Campaign, *, now: datetime | None = None
) -> dict[str, Any]:
    """The campaign's sent, delivered, read and failed over time, for a chart: cumulative counts
    at the end of each bucket since it started (5 s per bucket for a short campaign, wider for a
    long one, at most TIMELINE_BUCKETS of them), from its messages' status history in one bounded query."""
    if campaign.started_at is None:
        return {"start": None, "width": 60, "points": [], "series": {}}
    now = now or utcnow()
    start = campaign.started_at.replace(microsecond=0)
    end = campaign.completed_at or now
    span = max(30.0, (end - start).total_seconds())
    width = next((w for w in _WIDTHS if span / w <= TIMELINE_BUCKETS), _WIDTHS[-1])
    buckets = min(TIMELINE_BUCKETS, int(span // width) + 1)
    rows = await messages.campaign_status_counts(
        session,
        campaign.workspace_id,
        campaign.id,
        start=start,
        width_seconds=width,
        buckets=max(buckets, TIMELINE_BUCKETS),
    )
    # Events after the last bucket shown (webhooks of a finished campaign) widen the view.
    if rows:
        buckets = min(TIMELINE_BUCKETS, max(buckets, max(b for b, _, _ in rows) + 1))
    names = ("sent", "delivered", "read", "failed")
    per = {name: [0] * buckets for name in names}
    for bucket, status, count in rows:
        if 0 <= bucket < buckets and status in per:
            per[status][bucket] += count
    series = {}
    for name in names:
        total, out = 0, []
        for n in per[name]:
            total += n
            out.append(total)
        series[name] = out
    points = [start + timedelta(seconds=width * (i + 1)) for i in range(buckets)]
    return {"start": start, "width": width, "points": points, "series": series}


# -- the definition: account, template, parameters, audience -----------------------------------


async def _template(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    account: WhatsAppAccount,
    ref: TemplateRef,
    *,
    approved: bool,
) -> MessageTemplate:
    """The account's template ``ref`` names; APPROVED when ``approved`` (to schedule or start)."""
    found = await templates.named_for_sending(session, workspace_id, account.id, ref.name)
    if not found:
        raise ValidationFailed(
            f"template.name: no template named '{ref.name}' on this account; create it with "
            "POST /api/templates or pull Meta's with POST /api/templates/sync",
            field="template.name",
            code="template_not_found",
        )
    match = next((t for t in found if t.language == ref.language), None)
    if match is None:
        langs = ", ".join(sorted(t.language for t in found))
        raise ValidationFailed(
            f"template.language: '{ref.name}' exists in {langs}, not in {ref.language}",
            field="template.language",
            code="template_language",
        )
    if approved:
        _require_approved(match)
    return match


def _require_approved(template: MessageTemplate) -> None:
    if template.status != "APPROVED":
        why = f" ({template.rejected_reason})" if template.rejected_reason else ""
        raise ValidationFailed(
            f"template.name: '{template.name}' ({template.language}) is {template.status}{why}; "
            "a campaign can be scheduled or started with an APPROVED template only (a draft "
            "may wait for the approval)",
            field="template.name",
            code="template_not_approved",
        )


MAX_SCHEDULE_AHEAD = timedelta(days=366)


def _check_schedule(when: datetime, now: datetime) -> datetime:
    """A time in the future, at most a year ahead, in UTC to the second (as shown)."""
    try:
        when = when.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # 9999-12-31T23:59:59-01:00, or 0001-01-01T00:00:00+01:00
        edge = datetime.max if when.year == datetime.max.year else datetime.min
        when = edge.replace(tzinfo=UTC)
    if when <= now:
        raise ValidationFailed(
            "scheduled_at: must be in the future", field="scheduled_at", code="schedule_in_past"
        )
    if when > now + MAX_SCHEDULE_AHEAD:
        raise ValidationFailed(
            "scheduled_at: must be at most a year ahead",
            field="scheduled_at",
            code="schedule_too_far",
        )
    return when


def _refuse_start(found: list[dict[str, Any]]) -> Conflict:
    first = found[0]
    return Conflict(
        f"the campaign cannot start: {first['message']}",
        code=first["code"],
        details=[{"field": None, "message": p["message"], "code": p["code"]} for p in found],
    )


def _wrong_status(campaign: Campaign, doing: str, allowed: Iterable[str]) -> Conflict:
    return Conflict(
        f"the campaign is {campaign.status}; {doing} needs a campaign that is "
        + " or ".join(a for a in st.ALL if a in set(allowed)),
        code="campaign_status",
        details=[
            {"field": None, "message": f"status is {campaign.status}", "status": campaign.status}
        ],
    )


@dataclass(frozen=True, slots=True)
class _Defined:
    account: WhatsAppAccount
    template: MessageTemplate
    parameters: dict[str, Any]
    audience: dict[str, Any]


async def _define(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    data: CampaignCreate | CampaignPreview,
    *,
    v1: bool,
    approved: bool,
) -> _Defined:
    account = await accounts.for_sending(session, workspace_id, data.account_id)
    template = await _template(session, workspace_id, account, data.template, approved=approved)
    params = parameters.check(template, data.parameters)
    audience = await audiences.normalize(session, workspace_id, data.audience, v1=v1)
    return _Defined(account, template, params, audience)


async def create(
    session: AsyncSession, workspace_id: uuid.UUID, data: CampaignCreate, *, v1: bool = False
) -> Campaign:
    """A draft; scheduled when ``scheduled_at`` is given; started at once with ``start`` (after
    the pre-flight: refused over the messaging limit unless ``force``)."""
    now = utcnow()
    if data.start and data.scheduled_at is not None:
        raise ValidationFailed(
            "start: give either start (now) or scheduled_at (later), not both", field="start"
        )
    when = None if data.scheduled_at is None else _check_schedule(data.scheduled_at, now)
    defined = await _define(
        session,
        workspace_id,
        data,
        v1=v1,
        approved=data.start or when is not None,
    )
    campaign = Campaign(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        name=data.name,
        status=st.DRAFT,
        account_id=defined.account.id,
        template_id=defined.template.id,
        template_name=defined.template.name,
        template_language=defined.template.language,
        audience=defined.audience,
        parameters=defined.parameters,
        force=data.force,
        scheduled_at=None,
        audience_cursor=0,
        materialized=False,
        created_at=now,
        updated_at=now,
    )
    await CampaignRepository(session).add(campaign)
    if when is not None:
        campaign.scheduled_at = when
        await engine.schedule(session, campaign)
    elif data.start:
        await _start(session, campaign, force=data.force, now=now, template=defined.template)
    return campaign


async def update(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: str,
    data: CampaignUpdate,
    *,
    v1: bool = False,
) -> Campaign:
    """Only the fields sent change; a draft, scheduled or paused campaign only. A paused one has
    begun: its audience and account stay (its recipients are being written from them)."""
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status not in st.EDITABLE:
        raise _wrong_status(campaign, "PUT", st.EDITABLE)
    sent = data.model_fields_set
    now = utcnow()
    if campaign.status == st.PAUSED:
        for name in ("audience", "account_id"):
            if name in sent:
                raise Conflict(
                    f"{name}: a paused campaign has begun sending; its {name.replace('_id', '')} "
                    "cannot change (create a new campaign, e.g. retargeting this one with "
                    "audience.from_campaign)",
                    field=name,
                    code="campaign_started",
                )
        if "scheduled_at" in sent and data.scheduled_at is not None:
            raise Conflict(
                "scheduled_at: a paused campaign is resumed, not scheduled",
                field="scheduled_at",
                code="campaign_started",
            )
    if "name" in sent and data.name is not None:
        name = data.name.strip()
        if not name:
            raise ValidationFailed("name: must not be empty", field="name")
        campaign.name = name

    account: WhatsAppAccount | None = None
    if "account_id" in sent:
        account = await accounts.for_sending(session, workspace_id, data.account_id)
        campaign.account_id = account.id
    template: MessageTemplate | None = None
    if "template" in sent or account is not None:
        ref = data.template or TemplateRef(
            name=campaign.template_name, language=campaign.template_language
        )
        account = account or await accounts.for_sending(
            session, workspace_id, str(campaign.account_id) if campaign.account_id else None
        )
        campaign.account_id = account.id  # the default one, if the campaign's was removed
        template = await _template(session, workspace_id, account, ref, approved=False)
        campaign.template_id = template.id
        campaign.template_name = template.name
        campaign.template_language = template.language
    if "parameters" in sent or template is not None:
        template = template or await _current_template(session, campaign)
        spec = data.parameters if "parameters" in sent else campaign.parameters
        campaign.parameters = parameters.check(template, spec)
    if "audience" in sent and data.audience is not None:
        campaign.audience = await audiences.normalize(
            session, workspace_id, data.audience, v1=v1, campaign_id=campaign.id
        )

    if "scheduled_at" in sent:
        if data.scheduled_at is None:
            if campaign.status == st.SCHEDULED:  # back to draft
                campaign.status = st.DRAFT
            campaign.scheduled_at = None
        else:
            campaign.scheduled_at = _check_schedule(data.scheduled_at, now)
            if campaign.status == st.DRAFT:
                _require_approved(template or await _current_template(session, campaign))
                await engine.schedule(session, campaign)
    if campaign.status in (st.SCHEDULED, st.PAUSED) and template is not None:
        _require_approved(template)  # it will be sent without another look
    campaign.updated_at = now
    await session.flush()
    return campaign


async def _current_template(session: AsyncSession, campaign: Campaign) -> MessageTemplate:
    if campaign.template_id is not None:
        try:
            return await templates.get(session, campaign.workspace_id, str(campaign.template_id))
        except NotFound:
            pass
    raise ValidationFailed(
        f"template: the campaign's template '{campaign.template_name}' "
        f"({campaign.template_language}) no longer exists; choose another",
        field="template",
        code="template_not_found",
    )


async def delete(session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str) -> uuid.UUID:
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status not in st.DELETABLE:
        raise Conflict(
            f"the campaign is {campaign.status}; cancel it first (POST "
            f"/campaigns/{campaign.id}/cancel), then delete it",
            code="campaign_status",
        )
    await CampaignRepository(session).delete(campaign)
    return campaign.id


# -- steering -----------------------------------------------------------------------------------


async def _start(
    session: AsyncSession,
    campaign: Campaign,
    *,
    force: bool,
    now: datetime,
    template: MessageTemplate | None = None,
) -> None:
    checked = await preflight.check(session, campaign, now=now, template=template)
    refused = checked.refusals(force=force)
    if refused:
        raise _refuse_start(refused)
    if force:
        campaign.force = True
    await engine.start(session, campaign, now=now)


async def start(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str, *, force: bool = False
) -> Campaign:
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status not in st.STARTABLE:
        raise _wrong_status(campaign, "start", st.STARTABLE)
    await _start(session, campaign, force=force, now=utcnow())
    return campaign


async def pause(session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str) -> Campaign:
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status != st.RUNNING:
        raise _wrong_status(campaign, "pause", {st.RUNNING})
    await engine.pause(session, campaign)
    return campaign


async def resume(session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str) -> Campaign:
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status != st.PAUSED:
        raise _wrong_status(campaign, "resume", {st.PAUSED})
    await engine.resume(session, campaign)
    return campaign


async def cancel(session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str) -> Campaign:
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status not in st.CANCELLABLE:
        raise _wrong_status(campaign, "cancel", st.CANCELLABLE)
    await engine.cancel(session, campaign)
    return campaign


RESENDABLE = frozenset({st.RUNNING, st.PAUSED, st.COMPLETED})


async def resend_unknown(
    session: AsyncSession, workspace_id: uuid.UUID, campaign_id: str
) -> tuple[Campaign, int]:
    """Send again to the recipients whose message's outcome Meta never told (a person's explicit
    choice: they may get it twice): the campaign and how many were queued again."""
    campaign = await get(session, workspace_id, campaign_id, for_update=True)
    if campaign.status not in RESENDABLE:
        raise _wrong_status(campaign, "resend-unknown", RESENDABLE)
    return campaign, await engine.resend_unknown(session, campaign)


# -- preview ------------------------------------------------------------------------------------


async def preview(
    session: AsyncSession, workspace_id: uuid.UUID, data: CampaignPreview, *, v1: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pre-flight of a definition, and its first five contacts with their message."""
    defined = await _define(session, workspace_id, data, v1=v1, approved=False)
    now = utcnow()
    campaign = Campaign(  # never added to the session: nothing is written
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        name=data.name or "",
        status=st.DRAFT,
        account_id=defined.account.id,
        template_id=defined.template.id,
        template_name=defined.template.name,
        template_language=defined.template.language,
        audience=defined.audience,
        parameters=defined.parameters,
        created_at=now,
        updated_at=now,
    )
    checked = await preflight.check(
        session, campaign, now=now, template=defined.template, account=defined.account
    )
    conditions = CampaignRepository(session).audience_conditions(workspace_id, defined.audience)
    sample: list[dict[str, Any]] = []
    for row in await contacts.audience_sample(session, workspace_id, conditions, 5):
        rendered = parameters.render(
            defined.template, defined.parameters, parameters.contact_fields(row)
        )
        skip = (
            st.SKIP_OPTED_OUT
            if row["opted_out_at"] is not None
            else st.SKIP_MISSING_VARIABLE
            if rendered.missing
            else None
        )
        sample.append(
            {
                "contact": {
                    "id": v1_id(row["number"]) if v1 else str(row["uuid"]),
                    "phone": row["phone"],
                    "name": full_name(row["first_name"], row["last_name"]),
                },
                "text": None
                if rendered.components is None
                else parameters.text(defined.template, rendered.components),
                "components": rendered.components,
                "skip_reason": skip,
                "missing": rendered.missing,
            }
        )
    return checked.as_dict(), sample


# -- what the inbound webhook hands to campaigns (aisoule/whatsapp/inbound/handoff.py) ----------
# Other domains reach campaigns through this service; the engine is campaigns' own.

on_reply = engine.on_reply
on_status_changes = engine.on_status_changes
on_template_status = engine.on_template_status
