"""A campaign's audience: the request's criteria checked and stored in the form the engine reads.

Stored (``campaigns.audience``): ``all``, ``tags``, ``tags_all``, ``exclude_tags``, ``stage`` (the
workspace's own spelling), ``custom_fields`` ({key: value | {"in": [values]}}), ``contact_pks``
(the contacts' internal ids, resolved from the surface's ids at create time) and
``from_campaign`` ({"id", "statuses"}). CampaignRepository.audience_conditions turns it into SQL.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.campaigns import status as st
from aisoule.campaigns.repository import CampaignRepository
from aisoule.campaigns.schemas import AudienceIn
from aisoule.contacts import service as contacts
from aisoule.exceptions import ValidationFailed
from aisoule.kit.ids import parse_uuid
from aisoule.workspaces import service as workspaces

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_IN = 100
CRITERIA = (
    "all",
    "tags",
    "tags_all",
    "exclude_tags",
    "stage",
    "custom_fields",
    "contact_ids",
    "from_campaign",
)


def _fail(path: str, message: str, code: str = "invalid_audience") -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", field=path, code=code)


def _scalar(path: str, value: Any) -> Any:
    if value is None or isinstance(value, (dict, list)):
        raise _fail(path, "must be a string, number or boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(path, "must be a finite number")
    return value


def _custom_fields(spec: dict[str, Any]) -> dict[str, Any]:
    if not spec:
        raise _fail("audience.custom_fields", "must not be empty (leave it out instead)")
    out: dict[str, Any] = {}
    for key, condition in spec.items():
        path = f"audience.custom_fields.{key}"
        if not _KEY.match(key):
            raise _fail(path, "is not a custom field key (snake_case, as contacts store them)")
        if isinstance(condition, dict):
            if set(condition) != {"in"}:
                extra = next((k for k in condition if k != "in"), "in")
                raise _fail(
                    f"{path}.{extra}",
                    'is not a known condition: give a value (equals) or {"in": [values]}',
                )
            values = condition["in"]
            if not isinstance(values, list) or not 1 <= len(values) <= MAX_IN:
                raise _fail(f"{path}.in", f"must be a list of 1 to {MAX_IN} values")
            out[key] = {"in": [_scalar(f"{path}.in[{i}]", v) for i, v in enumerate(values)]}
        else:
            out[key] = _scalar(path, condition)
    return out


async def normalize(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    spec: AudienceIn,
    *,
    v1: bool,
    campaign_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The audience as stored, or a ValidationFailed naming the criterion as the client wrote
    it. ``campaign_id``: the campaign being edited (it cannot retarget itself)."""
    given = spec.model_dump(exclude_none=True)
    if not given:
        raise _fail(
            "audience",
            "give at least one criterion (" + ", ".join(CRITERIA) + '); {"all": true} for every '
            "contact",
            code="empty_audience",
        )
    out: dict[str, Any] = {}
    if "all" in given:
        if given["all"] is not True:
            raise _fail("audience.all", "must be true (leave it out otherwise)")
        if len(given) > 1:
            other = next(k for k in given if k != "all")
            raise _fail(f"audience.{other}", "cannot be combined with all: true")
        out["all"] = True
    for key in ("tags", "tags_all", "exclude_tags"):
        if key in given:
            out[key] = given[key]
    if "stage" in given:
        out["stage"] = await workspaces.resolve_stage(
            session, workspace_id, given["stage"], field="audience.stage"
        )
    if "custom_fields" in given:
        out["custom_fields"] = _custom_fields(given["custom_fields"])
    if "contact_ids" in given:
        out["contact_pks"] = await _contact_pks(session, workspace_id, given["contact_ids"], v1=v1)
    if spec.from_campaign is not None:
        out["from_campaign"] = await _from_campaign(
            session, workspace_id, spec.from_campaign.id, spec.from_campaign.statuses, campaign_id
        )
    if not out:  # e.g. only exclude_tags was empty-checked away: never "everyone" by accident
        raise _fail("audience", "give at least one criterion", code="empty_audience")
    if set(out) == {"exclude_tags"}:
        raise _fail(
            "audience.exclude_tags",
            'excludes from whom? add a criterion to include contacts ({"all": true} for every '
            "contact)",
            code="empty_audience",
        )
    return out


async def _contact_pks(
    session: AsyncSession, workspace_id: uuid.UUID, references: list[str], *, v1: bool
) -> list[int]:
    if not references:
        raise _fail("audience.contact_ids", "must not be empty (leave it out instead)")
    found = await contacts.ids_for_references(session, workspace_id, references, v1=v1)
    pks: list[int] = []
    for i, pk in enumerate(found):
        if pk is None:
            kind = "cnt_<n>" if v1 else "UUID"
            raise _fail(
                f"audience.contact_ids[{i}]",
                f"no such contact in this workspace (contacts are named by their {kind} id here)",
                code="contact_not_found",
            )
        pks.append(pk)
    return list(dict.fromkeys(pks))


async def _from_campaign(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    raw_id: str,
    statuses: Sequence[str] | None,
    campaign_id: uuid.UUID | None,
) -> dict[str, Any]:
    parsed = parse_uuid(raw_id)
    if (
        parsed is None
        or parsed == campaign_id
        or not await CampaignRepository(session).exists(workspace_id, parsed)
    ):
        raise _fail(
            "audience.from_campaign.id",
            "no such campaign in this workspace"
            + (" (a campaign cannot retarget itself)" if parsed == campaign_id else ""),
            code="campaign_not_found",
        )
    chosen = list(dict.fromkeys(statuses)) if statuses else list(st.STAT_BUCKETS)
    return {"id": str(parsed), "statuses": chosen}
