"""The pre-flight of a campaign (on preview and start): whom it reaches, whom it will skip, whether
the template can be sent, and whether the number's messaging limit has room, all counted in the
database (a million-contact audience is a few aggregate queries, never a million rows here).

Meta's messaging limit caps how many distinct people a number may reach with business-initiated
(template) messages in a moving 24 hours: TIER_250, TIER_1K, TIER_10K, TIER_100K or unlimited.
What is left is the tier minus the distinct people this number sent templates to in the last
24 hours (failed sends left out), from our own messages table (docs/decisions.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.accounts import service as accounts
from aisoule.campaigns import parameters
from aisoule.campaigns.repository import CampaignRepository
from aisoule.contacts import service as contacts
from aisoule.exceptions import NotFound, ValidationFailed
from aisoule.messages import service as messages
from aisoule.models import Campaign, MessageTemplate, WhatsAppAccount
from aisoule.templates import service as templates

_TIER = re.compile(r"^TIER_([0-9]+)(K?)$")
# The problems that a forced start goes past (every other blocking one stops a start).
FORCEABLE = frozenset({"messaging_limit_exceeded"})


def tier_limit(tier: str | None) -> int | None:
    """People per 24 h for Meta's tier name (None: unlimited or not known)."""
    if not tier:
        return None
    match = _TIER.match(tier.strip().upper())
    if match is None:
        return None
    return int(match.group(1)) * (1000 if match.group(2) else 1)


@dataclass
class Preflight:
    audience: int = 0
    eligible: int = 0
    opted_out: int = 0
    missing_variable: int = 0
    template_status: str | None = None
    template_quality: str | None = None
    tier: str | None = None
    limit: int | None = None
    used_24h: int = 0
    left: int | None = None
    estimated_seconds: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, code: str, message: str, *, blocking: bool) -> None:
        self.problems.append({"code": code, "message": message, "blocking": blocking})

    def refusals(self, *, force: bool) -> list[dict[str, Any]]:
        """The problems that stop a start (``force`` goes past the messaging limit only)."""
        return [
            p for p in self.problems if p["blocking"] and not (force and p["code"] in FORCEABLE)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "audience": self.audience,
            "eligible": self.eligible,
            "opted_out": self.opted_out,
            "missing_variable": self.missing_variable,
            "template": {"status": self.template_status, "quality": self.template_quality},
            "messaging_limit": {
                "tier": self.tier,
                "limit": self.limit,
                "used_24h": self.used_24h,
                "left": self.left,
            },
            "estimated_seconds": self.estimated_seconds,
            "problems": list(self.problems),
        }


async def _template(session: AsyncSession, campaign: Campaign) -> MessageTemplate | None:
    if campaign.template_id is None:
        return None
    try:
        return await templates.get(session, campaign.workspace_id, str(campaign.template_id))
    except NotFound:
        return None


async def _account(session: AsyncSession, campaign: Campaign) -> WhatsAppAccount | None:
    if campaign.account_id is None:
        return None
    account = await accounts.get_by_id(session, campaign.account_id)
    return (
        account if account is not None and account.workspace_id == campaign.workspace_id else None
    )


async def check(
    session: AsyncSession,
    campaign: Campaign,
    *,
    now: datetime,
    template: MessageTemplate | None = None,
    account: WhatsAppAccount | None = None,
) -> Preflight:
    """The pre-flight of ``campaign`` (stored or not yet: preview passes an unsaved one, with
    the template and account it already loaded)."""
    out = Preflight()
    workspace_id = campaign.workspace_id
    template = template or await _template(session, campaign)
    account = account or await _account(session, campaign)
    spec = campaign.parameters or {}

    if template is None:
        out.add(
            "template_not_found",
            f"the template '{campaign.template_name}' ({campaign.template_language}) no longer "
            "exists on this account; choose another with PUT",
            blocking=True,
        )
    else:
        out.template_status = template.status
        if template.status != "APPROVED":
            why = f" ({template.rejected_reason})" if template.rejected_reason else ""
            out.add(
                "template_not_approved",
                f"the template '{template.name}' ({template.language}) is {template.status}{why}; "
                "only APPROVED templates can be sent",
                blocking=True,
            )
        try:
            parameters.check(template, spec)
        except ValidationFailed as exc:
            out.add("template_parameters", exc.message, blocking=True)

    if account is None:
        out.add(
            "account_not_found", "the campaign's WhatsApp account no longer exists", blocking=True
        )
    elif account.status == "token_invalid":
        out.add(
            "account_token_invalid",
            f"Meta rejected this account's access token (code 190); update it with "
            f"PUT /api/accounts/{account.id}",
            blocking=True,
        )

    repo = CampaignRepository(session)
    conditions = repo.audience_conditions(workspace_id, campaign.audience or {})
    missing = repo.missing_condition(parameters.fields_without_fallback(spec))
    out.audience, out.opted_out, out.missing_variable = await contacts.audience_counts(
        session, workspace_id, conditions, missing
    )
    out.eligible = out.audience - out.opted_out - out.missing_variable
    if out.audience == 0:
        out.add("audience_empty", "no contact matches the audience", blocking=True)
    elif out.eligible == 0:
        out.add(
            "no_eligible_recipients",
            "every contact of the audience would be skipped (opted out or missing a variable)",
            blocking=True,
        )
    if out.opted_out:
        out.add(
            "opted_out",
            f"{out.opted_out} contact(s) opted out of WhatsApp messages and will be skipped",
            blocking=False,
        )
    if out.missing_variable:
        fields = ", ".join(sorted(parameters.fields_without_fallback(spec)))
        out.add(
            "missing_variable",
            f"{out.missing_variable} contact(s) have no value for {fields} (no fallback given) "
            "and will be skipped",
            blocking=False,
        )

    if account is not None:
        out.tier = account.messaging_limit
        out.limit = tier_limit(account.messaging_limit)
        out.used_24h = await messages.template_recipients_24h(
            session, workspace_id, account.id, now
        )
        if out.limit is not None:
            out.left = max(0, out.limit - out.used_24h)
            if out.eligible > out.left:
                out.add(
                    "messaging_limit_exceeded",
                    f"{out.eligible} eligible recipients but the number's messaging limit "
                    f"({account.messaging_limit}) has {out.left} left in the moving 24 hours; "
                    "Meta would not deliver the rest. Narrow the audience, wait, "
                    'or start with {"force": true}',
                    blocking=True,
                )
        elif (account.messaging_limit or "").upper() != "TIER_UNLIMITED":
            out.add(
                "messaging_limit_unknown",
                "the number's messaging limit is not known (sync the account to read it)",
                blocking=False,
            )
        if (account.quality_rating or "").upper() == "RED":
            out.add(
                "number_quality_low",
                "the number's quality rating is RED: Meta may lower its messaging limit",
                blocking=False,
            )
        out.estimated_seconds = math.ceil(out.eligible / max(1, account.throughput or 1))
    return out
