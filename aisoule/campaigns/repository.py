"""Campaign SQL: the campaign rows, and the audience as WHERE conditions over contacts.

The audience conditions are what the engine materialises recipients with
(``INSERT INTO campaign_recipients ... SELECT ... FROM contacts WHERE <conditions>``) and what the
pre-flight counts with, so both see exactly the same people.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    and_,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.campaigns import status as st
from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import Campaign, CampaignRecipient, Contact, ContactTag

# A stats bucket as recipient statuses ("pending" is shown for queued recipients too).
BUCKET_STATUSES: dict[str, tuple[str, ...]] = {
    "skipped": (st.R_SKIPPED,),
    "pending": (st.R_PENDING, st.R_QUEUED),
    "sent": (st.R_SENT,),
    "delivered": (st.R_DELIVERED,),
    "read": (st.R_READ,),
    "failed": (st.R_FAILED,),
    "unknown": (st.R_UNKNOWN,),
}


class CampaignRepository(WorkspaceScopedRepository[Campaign]):
    model = Campaign

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        bind = session.bind
        self.dialect = bind.dialect.name if bind is not None else "sqlite"

    # --- campaign rows ---

    async def get(
        self, workspace_id: uuid.UUID, campaign_id: uuid.UUID, *, for_update: bool = False
    ) -> Campaign | None:
        stmt = select(Campaign).where(
            Campaign.workspace_id == workspace_id, Campaign.id == campaign_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def exists(self, workspace_id: uuid.UUID, campaign_id: uuid.UUID) -> bool:
        stmt = select(Campaign.id).where(
            Campaign.workspace_id == workspace_id, Campaign.id == campaign_id
        )
        return (await self.session.execute(stmt)).first() is not None

    async def search(
        self, workspace_id: uuid.UUID, *, status: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Campaign], int]:
        where: list[ColumnElement[bool]] = [Campaign.workspace_id == workspace_id]
        if status is not None:
            where.append(Campaign.status == status)
        rows = (
            (
                await self.session.execute(
                    select(Campaign)
                    .where(*where)
                    .order_by(Campaign.created_at.desc(), Campaign.id)
                    .limit(limit)
                    .offset(offset)
                )
            )
            .scalars()
            .all()
        )
        total = (
            await self.session.execute(select(func.count()).select_from(Campaign).where(*where))
        ).scalar_one()
        return rows, int(total)

    async def add(self, campaign: Campaign) -> Campaign:
        self.session.add(campaign)
        await self.session.flush()
        return campaign

    async def delete(self, campaign: Campaign) -> None:
        await self.session.delete(campaign)
        await self.session.flush()

    # --- the audience ---

    def audience_conditions(
        self, workspace_id: uuid.UUID, audience: dict[str, Any]
    ) -> list[ColumnElement[bool]]:
        """WHERE conditions over ``contacts`` for a stored audience (see audience.normalize):
        every criterion given must hold (AND); ``tags`` is any of them, ``tags_all`` all of them.
        Always scoped to the workspace."""
        c: list[ColumnElement[bool]] = [Contact.workspace_id == workspace_id]
        tags = audience.get("tags")
        if tags:
            c.append(_tagged(workspace_id, tags))
        for tag in audience.get("tags_all") or ():
            c.append(_tagged(workspace_id, [tag]))
        excluded = audience.get("exclude_tags")
        if excluded:
            c.append(not_(_tagged(workspace_id, excluded)))
        stage = audience.get("stage")
        if stage is not None:
            c.append(Contact.stage == stage)
        for key, condition in (audience.get("custom_fields") or {}).items():
            values = condition["in"] if isinstance(condition, dict) else [condition]
            c.append(or_(*(self._custom_field_is(key, v) for v in values)))
        pks = audience.get("contact_pks")
        if pks is not None:
            c.append(Contact.id.in_(pks) if pks else false())
        source = audience.get("from_campaign")
        if source is not None:
            c.append(self._from_campaign(workspace_id, source))
        return c

    def _custom_field_is(self, key: str, value: Any) -> ColumnElement[bool]:
        """custom_fields[key] equals ``value`` as JSON (the string "10" is not the number 10)."""
        if self.dialect == "postgresql":
            # jsonb containment: numbers compare as numbers (10 = 10.0), types otherwise apart.
            contains = Contact.custom_fields.op("@>", return_type=Boolean)
            return contains(type_coerce({key: value}, JSONB))
        # SQLite: ``->`` gives the value's JSON text ('"Pune"', '10', 'true'), NULL when absent.
        path = '$."' + key + '"'  # keys are snake_case (contacts.schemas): nothing to escape
        extracted = Contact.custom_fields.op("->")(literal(path, String))
        return type_coerce(extracted, String) == _json_text(value)

    def _from_campaign(
        self, workspace_id: uuid.UUID, source: dict[str, Any]
    ) -> ColumnElement[bool]:
        statuses = [s for bucket in source["statuses"] for s in BUCKET_STATUSES[bucket]]
        return exists().where(
            CampaignRecipient.campaign_id == uuid.UUID(source["id"]),
            CampaignRecipient.workspace_id == workspace_id,
            CampaignRecipient.contact_id == Contact.id,
            CampaignRecipient.status.in_(statuses),
        )

    def empty_field(self, field: str) -> ColumnElement[bool] | None:
        """The contact's ``field`` (as parameters.render reads it) is empty: absent, null, or
        only spaces. None for phone and stage, which are never empty."""
        if field == "name":
            return and_(_blank(Contact.first_name), _blank(Contact.last_name))
        if field in ("first_name", "last_name", "email"):
            return _blank(getattr(Contact, field))
        if field.startswith("custom_fields."):
            key = field.split(".", 1)[1]
            if self.dialect == "postgresql":
                value: Any = Contact.custom_fields.op("->>")(literal(key, String))
            else:
                value = func.json_extract(Contact.custom_fields, literal('$."' + key + '"', String))
            return _blank(type_coerce(value, String))
        return None

    def missing_condition(self, fields: Iterable[str]) -> ColumnElement[bool] | None:
        """Any of ``fields`` (those used without a fallback) is empty; None when none can be."""
        parts = [p for f in sorted(set(fields)) if (p := self.empty_field(f)) is not None]
        return or_(*parts) if parts else None

    async def recipients_exist(self, campaign_id: uuid.UUID) -> bool:
        stmt = select(CampaignRecipient.id).where(CampaignRecipient.campaign_id == campaign_id)
        return (await self.session.execute(stmt.limit(1))).first() is not None


def _tagged(workspace_id: uuid.UUID, tags: Sequence[str]) -> ColumnElement[bool]:
    """The contact has any of ``tags`` (one EXISTS over contact_tags' primary key)."""
    return exists().where(
        ContactTag.contact_id == Contact.id,
        ContactTag.workspace_id == workspace_id,
        ContactTag.tag.in_(list(tags)) if len(tags) > 1 else ContactTag.tag == tags[0],
    )


def _blank(column: Any) -> ColumnElement[bool]:
    return func.coalesce(func.trim(cast(column, String)), literal("")) == literal("")


def _json_text(value: Any) -> str:
    """The JSON text SQLite's ``->`` gives for a scalar."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
