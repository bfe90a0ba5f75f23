"""Campaign SQL: the campaign rows, and the audience as WHERE conditions over contacts.

The audience conditions are what the engine materialises recipients with
(``INSERT INTO campaign_recipients ... SELECT ... FROM contacts WHERE <conditions>``) and what the
pre-flight counts with, so both see exactly the same people.
"""

from __future__ import annotations

import random
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.campaigns import status as st
from aisoule.db.base import UTCDateTime
from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import (
    Campaign,
    CampaignCounter,
    CampaignRecipient,
    Contact,
    ContactTag,
    ContactWhatsApp,
    MessageTemplate,
)

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


# -- the engine's SQL (part B: campaigns/engine.py) ---------------------------------------------
# Tasks carry a campaign's id only, so these look campaigns up by id; every recipient and counter
# statement is scoped to its campaign.

_R = typing.cast(Table, CampaignRecipient.__table__)
_C = typing.cast(Table, CampaignCounter.__table__)
COUNTER_SHARDS = 8


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _insert(session: AsyncSession, table: Any) -> Any:
    return (postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert)(table)


class CampaignStateRepository:
    """Where a campaign's engine stands: its status as the engine moves it, its dispatcher's
    lease, its audience cursor. Conditional updates: each answers whether it took effect."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, campaign_id: uuid.UUID, *, lock: bool = False) -> Campaign | None:
        """The campaign; ``lock``: held until commit (PostgreSQL) against other writers of the
        row, as FOR NO KEY UPDATE: a plain FOR UPDATE would also block the KEY SHARE locks that
        the foreign key checks of new recipient and counter rows take on it, and a materialiser
        holding it while it waited for a counter row a dispatcher held, while that dispatcher's
        new counter row waited for its KEY SHARE, deadlocked (seen at 1,000,000 recipients)."""
        stmt = select(Campaign).where(Campaign.id == campaign_id)
        if lock and _dialect(self.session) == "postgresql":
            stmt = stmt.with_for_update(key_share=True)
        result = await self.session.execute(stmt.execution_options(populate_existing=True))
        return result.scalar_one_or_none()

    async def set_status(
        self,
        campaign_id: uuid.UUID,
        status: str,
        *,
        among: Iterable[str],
        now: datetime,
        **values: Any,
    ) -> bool:
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status.in_(list(among)))
            .values(status=status, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def acquire_lease(
        self, campaign_id: uuid.UUID, owner: str, until: datetime, now: datetime
    ) -> bool:
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                or_(
                    Campaign.lease_until.is_(None),
                    Campaign.lease_until < now,
                    Campaign.lease_owner == owner,
                ),
            )
            .values(lease_owner=owner, lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def renew_lease(
        self, campaign_id: uuid.UUID, owner: str, until: datetime
    ) -> tuple[str, str | None] | None:
        """Renew the lease if ``owner`` still holds it: (status, status_reason), else None."""
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
            .values(lease_until=until)
            .returning(Campaign.status, Campaign.status_reason)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        return None if row is None else (str(row[0]), row[1])

    async def release_lease(self, campaign_id: uuid.UUID, owner: str) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    async def advance_cursor(self, campaign_id: uuid.UUID, upto: int | None, now: datetime) -> None:
        """The audience is written up to contact id ``upto`` (None: all of it)."""
        values: dict[str, Any] = (
            {"materialized": True} if upto is None else {"audience_cursor": upto}
        )
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )

    async def due_scheduled(self, now: datetime, limit: int) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(Campaign.id)
            .where(Campaign.status == st.SCHEDULED, Campaign.scheduled_at <= now)
            .order_by(Campaign.scheduled_at)
            .limit(limit)
        )
        return list(result.scalars().all())

    async def needing_dispatch(self, now: datetime, limit: int) -> list[uuid.UUID]:
        """Running campaigns no live dispatcher holds, and cancelled ones not yet wound up."""
        result = await self.session.execute(
            select(Campaign.id)
            .where(
                or_(
                    Campaign.status == st.RUNNING,
                    and_(Campaign.status == st.CANCELLED, Campaign.completed_at.is_(None)),
                ),
                or_(Campaign.lease_until.is_(None), Campaign.lease_until < now),
            )
            .limit(limit)
        )
        return list(result.scalars().all())

    async def needing_materialize(self, quiet_since: datetime, limit: int) -> list[uuid.UUID]:
        """Started campaigns whose audience is not fully written and whose materialiser has
        not written for a while (it died)."""
        result = await self.session.execute(
            select(Campaign.id)
            .where(
                Campaign.status.in_([st.RUNNING, st.PAUSED]),
                Campaign.materialized.is_(False),
                Campaign.updated_at < quiet_since,
            )
            .limit(limit)
        )
        return list(result.scalars().all())

    async def running_with_template(
        self, account_id: uuid.UUID, meta_id: str | None, name: str | None, language: str | None
    ) -> list[uuid.UUID]:
        """Running campaigns of this account sending the template Meta named (by its id, or by
        name and language)."""
        conds: list[ColumnElement[bool]] = []
        if meta_id:
            conds.append(
                Campaign.template_id.in_(
                    select(MessageTemplate.id).where(
                        MessageTemplate.account_id == account_id,
                        MessageTemplate.meta_id == meta_id,
                    )
                )
            )
        if name and language:
            conds.append(
                and_(Campaign.template_name == name, Campaign.template_language == language)
            )
        if not conds:
            return []
        result = await self.session.execute(
            select(Campaign.id).where(
                Campaign.account_id == account_id, Campaign.status == st.RUNNING, or_(*conds)
            )
        )
        return list(result.scalars().all())


class RecipientRepository:
    """A campaign's recipients: written from its audience, claimed in id order, moved forward."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- materialising -------------------------------------------------------------------------

    async def audience_upto(
        self, conditions: Sequence[ColumnElement[bool]], after: int, n: int
    ) -> int | None:
        """The highest contact id among the next ``n`` of the audience after ``after``."""
        ids = (
            select(Contact.id)
            .where(*conditions, Contact.id > after)
            .order_by(Contact.id)
            .limit(n)
            .subquery()
        )
        result = await self.session.execute(select(func.max(ids.c.id)))
        value = result.scalar_one_or_none()
        return None if value is None else int(value)

    async def insert_audience(
        self,
        campaign: Campaign,
        conditions: Sequence[ColumnElement[bool]],
        after: int,
        upto: int,
        now: datetime,
    ) -> int:
        """One statement: the audience's contacts in (after, upto] as pending recipients (each
        contact once: a second writer of the same chunk adds nothing). How many were added."""
        source = select(
            literal(campaign.id, Uuid).label("campaign_id"),
            literal(campaign.workspace_id, Uuid).label("workspace_id"),
            Contact.id.label("contact_id"),
            Contact.phone,
            literal(st.R_PENDING).label("status"),
            literal(0).label("sends"),
            literal(now, UTCDateTime()).label("created_at"),
            literal(now, UTCDateTime()).label("updated_at"),
        ).where(*conditions, Contact.id > after, Contact.id <= upto)
        stmt = (
            _insert(self.session, _R)
            .from_select(
                [
                    "campaign_id",
                    "workspace_id",
                    "contact_id",
                    "phone",
                    "status",
                    "sends",
                    "created_at",
                    "updated_at",
                ],
                source,
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    # -- dispatching ---------------------------------------------------------------------------

    async def claim_pending(self, campaign_id: uuid.UUID, limit: int) -> Sequence[Any]:
        """The next pending recipients in id order, held until commit (PostgreSQL: rows another
        dispatcher holds are skipped; SQLite has one writer), with their contact and consent."""
        stmt = (
            select(
                CampaignRecipient.id,
                CampaignRecipient.contact_id,
                CampaignRecipient.phone,
                CampaignRecipient.sends,
                Contact.id.label("contact_exists"),
                Contact.first_name,
                Contact.last_name,
                Contact.email,
                Contact.stage,
                Contact.custom_fields,
                ContactWhatsApp.opted_out_at,
            )
            .select_from(CampaignRecipient)
            .outerjoin(Contact, Contact.id == CampaignRecipient.contact_id)
            .outerjoin(ContactWhatsApp, ContactWhatsApp.contact_id == CampaignRecipient.contact_id)
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.status == st.R_PENDING,
            )
            .order_by(CampaignRecipient.id)
            .limit(limit)
        )
        if _dialect(self.session) == "postgresql":
            stmt = stmt.with_for_update(of=CampaignRecipient, skip_locked=True)
        result = await self.session.execute(stmt)
        return result.all()

    async def set_queued(
        self, campaign_id: uuid.UUID, rows: Sequence[tuple[int, uuid.UUID]], now: datetime
    ) -> None:
        """Pending (claimed by this transaction) → queued with its message, one statement."""
        if not rows:
            return
        stmt = (
            update(_R)
            .where(_R.c.id == bindparam("b_id"), _R.c.campaign_id == campaign_id)
            .values(
                status=st.R_QUEUED,
                sends=_R.c.sends + 1,
                message_id=bindparam("b_message", type_=_R.c.message_id.type),
                updated_at=now,
            )
        )
        await self.session.execute(stmt, [{"b_id": r, "b_message": m} for r, m in rows])

    async def move(
        self,
        campaign_id: uuid.UUID,
        ids: Sequence[int],
        status: str,
        among: Sequence[str],
        now: datetime,
        **values: Any,
    ) -> list[tuple[int, str]]:
        """Recipients ``ids`` whose status is one of ``among`` → ``status`` (with ``values``), in
        one statement: (id, status before) of each moved, so counters follow exactly whatever
        else moved them meanwhile."""
        if not ids:
            return []
        R = CampaignRecipient
        if _dialect(self.session) == "postgresql":
            held = (
                select(R.id.label("rid"), R.status.label("old"))
                .where(R.campaign_id == campaign_id, R.id.in_(ids), R.status.in_(among))
                .order_by(R.id)
                .with_for_update()
                .subquery()
            )
            result = await self.session.execute(
                update(R)
                .where(R.id == held.c.rid)
                .values(status=status, updated_at=now, **values)
                .returning(R.id, held.c.old)
                .execution_options(synchronize_session=False)
            )
            return [(int(i), str(o)) for i, o in result.all()]
        # SQLite: this transaction holds the database's write lock, so what it reads stands.
        found = await self.session.execute(
            select(R.id, R.status).where(
                R.campaign_id == campaign_id, R.id.in_(ids), R.status.in_(among)
            )
        )
        moved = [(int(i), str(o)) for i, o in found.all()]
        if moved:
            await self.session.execute(
                update(R)
                .where(R.id.in_([i for i, _ in moved]))
                .values(status=status, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            )
        return moved

    async def opted_out(self, campaign_id: uuid.UUID, ids: Sequence[int]) -> set[int]:
        """Which of these recipients' contacts opted out (or are gone)."""
        if not ids:
            return set()
        R = CampaignRecipient
        result = await self.session.execute(
            select(R.id)
            .outerjoin(ContactWhatsApp, ContactWhatsApp.contact_id == R.contact_id)
            .where(
                R.campaign_id == campaign_id,
                R.id.in_(ids),
                or_(R.contact_id.is_(None), ContactWhatsApp.opted_out_at.is_not(None)),
            )
        )
        return {int(i) for i in result.scalars().all()}

    async def unsettled(self, campaign_id: uuid.UUID) -> bool:
        """Whether any recipient is still pending or queued."""
        R = CampaignRecipient
        result = await self.session.execute(
            select(R.id)
            .where(R.campaign_id == campaign_id, R.status.in_([st.R_PENDING, st.R_QUEUED]))
            .limit(1)
        )
        return result.first() is not None

    async def pending_ids(self, campaign_id: uuid.UUID, limit: int) -> list[int]:
        R = CampaignRecipient
        result = await self.session.execute(
            select(R.id)
            .where(R.campaign_id == campaign_id, R.status == st.R_PENDING)
            .order_by(R.id)
            .limit(limit)
        )
        return [int(i) for i in result.scalars().all()]

    async def quiet_unknown(
        self, campaign_id: uuid.UUID, before: datetime, limit: int
    ) -> Sequence[Any]:
        """Unknown recipients untouched since ``before``, with their contact, in id order."""
        R = CampaignRecipient
        result = await self.session.execute(
            select(
                R.id,
                R.contact_id,
                R.phone,
                R.sends,
                R.message_id,
                Contact.id.label("contact_exists"),
                ContactWhatsApp.opted_out_at,
            )
            .select_from(R)
            .outerjoin(Contact, Contact.id == R.contact_id)
            .outerjoin(ContactWhatsApp, ContactWhatsApp.contact_id == R.contact_id)
            .where(R.campaign_id == campaign_id, R.status == st.R_UNKNOWN, R.updated_at < before)
            .order_by(R.id)
            .limit(limit)
        )
        return result.all()

    async def last_sent_to(self, workspace_id: uuid.UUID, contact_id: int, since: datetime) -> Any:
        """The workspace's contact's most recent campaign recipient whose message went since
        ``since``."""
        R = CampaignRecipient
        result = await self.session.execute(
            select(R.id, R.campaign_id, R.replied_at)
            .where(R.workspace_id == workspace_id, R.contact_id == contact_id, R.sent_at >= since)
            .order_by(R.sent_at.desc())
            .limit(1)
        )
        return result.first()

    async def set_replied(self, recipient_id: int, at: datetime) -> bool:
        R = CampaignRecipient
        result = await self.session.execute(
            update(R)
            .where(R.id == recipient_id, R.replied_at.is_(None))
            .values(replied_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def page(
        self, campaign_id: uuid.UUID, statuses: Sequence[str] | None, limit: int, offset: int
    ) -> tuple[Sequence[CampaignRecipient], int]:
        R = CampaignRecipient
        conds: list[ColumnElement[bool]] = [R.campaign_id == campaign_id]
        if statuses:
            conds.append(R.status.in_(statuses))
        rows = await self.session.execute(
            select(R).where(*conds).order_by(R.id).limit(limit).offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(R).where(*conds))
        return rows.scalars().all(), int(total.scalar_one())


class CounterRepository:
    """A campaign's stats as sharded counters: a transaction adds its deltas to one shard (so
    concurrent writers rarely meet on a row); a read sums the shards per key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, deltas: Mapping[tuple[uuid.UUID, str], int]) -> None:
        rows = [
            {"campaign_id": cid, "key": key, "n": n}
            for (cid, key), n in sorted(deltas.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
            if n
        ]
        if not rows:
            return
        pg = _dialect(self.session) == "postgresql"
        shard = random.randrange(COUNTER_SHARDS) if pg else 0  # noqa: S311 - spreading, not secrecy
        for row in rows:
            row["shard"] = shard
        stmt = _insert(self.session, _C)
        stmt = stmt.on_conflict_do_update(
            index_elements=["campaign_id", "key", "shard"], set_={"n": _C.c.n + stmt.excluded.n}
        )
        await self.session.execute(stmt, rows)

    async def sums(self, campaign_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
        out: dict[uuid.UUID, dict[str, int]] = {cid: {} for cid in campaign_ids}
        if not campaign_ids:
            return out
        result = await self.session.execute(
            select(_C.c.campaign_id, _C.c.key, func.sum(_C.c.n))
            .where(_C.c.campaign_id.in_(list(campaign_ids)))
            .group_by(_C.c.campaign_id, _C.c.key)
        )
        for cid, key, n in result.all():
            out.setdefault(cid, {})[str(key)] = int(n or 0)
        return out
