"""Contact SQL, in SQLAlchemy Core: rows come back as mappings, never as ORM objects (hot path)."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from aisoule.db.raw import driver_connection
from aisoule.models import Contact, ContactCount, ContactTag

T = cast(Table, Contact.__table__)
CT = cast(Table, ContactTag.__table__)
CC = cast(Table, ContactCount.__table__)

COLUMNS = (
    T.c.id,
    T.c.uuid,
    T.c.phone,
    T.c.first_name,
    T.c.last_name,
    T.c.email,
    T.c.stage,
    T.c.tags,
    T.c.custom_fields,
    T.c.created_at,
    T.c.updated_at,
)
COUNTER_SHARDS = 8
_PHONE_LIKE = re.compile(r"[0-9+\-(). ]+")

Row = RowMapping
CountKey = tuple[str, str]

# The hot lists, built once: a page and its counter total in one statement and one round trip.
# The total is an uncorrelated scalar subquery, which the database evaluates once per query.
_ws = bindparam("ws", type_=Uuid())
_TOTAL = (
    select(func.coalesce(func.sum(CC.c.n), 0))
    .where(CC.c.workspace_id == _ws, CC.c.kind == bindparam("kind"), CC.c.key == bindparam("key"))
    .scalar_subquery()
    .label("total")
)
# The same statements as _PAGE_* below, for PostgreSQL's driver directly ($1 ws, $2 limit,
# $3 offset, $4 the tag or stage).
_PG_PAGES = {
    "all": (
        "SELECT "
        "c.id, c.uuid, c.phone, c.first_name, c.last_name, c.email, c.stage, c.tags, c.custom_fields, c.created_at, c.updated_at, (SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = $1 "
        "AND kind = 'all' AND key = '') AS total FROM contacts c WHERE c.workspace_id = $1 "
        "ORDER BY c.id LIMIT $2 OFFSET $3"
    ),
    "stage": (
        "SELECT "
        "c.id, c.uuid, c.phone, c.first_name, c.last_name, c.email, c.stage, c.tags, c.custom_fields, c.created_at, c.updated_at, (SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = $1 "
        "AND kind = 'stage' AND key = $4) AS total FROM contacts c WHERE c.workspace_id = $1 "
        "AND c.stage = $4 ORDER BY c.id LIMIT $2 OFFSET $3"
    ),
    "tag": (
        "SELECT "
        "c.id, c.uuid, c.phone, c.first_name, c.last_name, c.email, c.stage, c.tags, c.custom_fields, c.created_at, c.updated_at, (SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = $1 "
        "AND kind = 'tag' AND key = $4) AS total FROM contacts c JOIN contact_tags t "
        "ON t.contact_id = c.id WHERE t.workspace_id = $1 AND t.tag = $4 AND c.workspace_id = $1 "
        "ORDER BY t.contact_id LIMIT $2 OFFSET $3"
    ),
}
_LIMIT: BindParameter[int] = bindparam("limit")
_OFFSET: BindParameter[int] = bindparam("offset")
_PAGE_ALL = (
    select(*COLUMNS, _TOTAL)
    .where(T.c.workspace_id == _ws)
    .order_by(T.c.id)
    .limit(_LIMIT)
    .offset(_OFFSET)
)
_PAGE_STAGE = (
    select(*COLUMNS, _TOTAL)
    .where(T.c.workspace_id == _ws, T.c.stage == bindparam("key"))
    .order_by(T.c.id)
    .limit(_LIMIT)
    .offset(_OFFSET)
)
_PAGE_TAG = (
    select(*COLUMNS, _TOTAL)
    .join(CT, CT.c.contact_id == T.c.id)
    .where(CT.c.workspace_id == _ws, CT.c.tag == bindparam("key"), T.c.workspace_id == _ws)
    .order_by(CT.c.contact_id)
    .limit(_LIMIT)
    .offset(_OFFSET)
)


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        bind = session.bind
        self.dialect = bind.dialect.name if bind is not None else "sqlite"

    def _insert(self, table: Any) -> Any:
        module = postgresql if self.dialect == "postgresql" else sqlite
        return module.insert(table)

    # --- reads ---

    def _filtered(
        self, workspace_id: uuid.UUID, tag: str | None, stage: str | None, q: str | None
    ) -> tuple[Select[Any], Any]:
        stmt = select(*COLUMNS).where(T.c.workspace_id == workspace_id)
        order = T.c.id
        if tag is not None:
            # Walk the (workspace_id, tag, contact_id) index in id order and join each contact.
            stmt = stmt.join(CT, CT.c.contact_id == T.c.id).where(
                CT.c.workspace_id == workspace_id, CT.c.tag == tag
            )
            order = CT.c.contact_id
        if stage is not None:
            stmt = stmt.where(T.c.stage == stage)
        if q is not None:
            stmt = stmt.where(_search(q))
        return stmt, order

    async def list_page(
        self,
        workspace_id: uuid.UUID,
        *,
        limit: int,
        offset: int,
        tag: str | None = None,
        stage: str | None = None,
        q: str | None = None,
    ) -> Sequence[Row]:
        stmt, order = self._filtered(workspace_id, tag, stage, q)
        result = await self.session.execute(stmt.order_by(order).limit(limit).offset(offset))
        return result.mappings().all()

    async def page_with_total(
        self,
        workspace_id: uuid.UUID,
        *,
        limit: int,
        offset: int,
        tag: str | None = None,
        stage: str | None = None,
    ) -> tuple[Sequence[Row], int]:
        """A page and its exact total from the counters (at most one filter: a tag or a stage)."""
        if tag is not None:
            stmt, kind, key = _PAGE_TAG, "tag", tag
        elif stage is not None:
            stmt, kind, key = _PAGE_STAGE, "stage", stage
        else:
            stmt, kind, key = _PAGE_ALL, "all", ""
        rows: Sequence[Row]
        if self.dialect == "postgresql":
            # The hottest read: raw asyncpg skips statement building, caching and row processing.
            args = (
                (workspace_id, limit, offset)
                if kind == "all"
                else (workspace_id, limit, offset, key)
            )
            rows = await (await driver_connection(self.session)).fetch(_PG_PAGES[kind], *args)
        else:
            params = {
                "ws": workspace_id,
                "kind": kind,
                "key": key,
                "limit": limit,
                "offset": offset,
            }
            rows = (await self.session.execute(stmt, params)).mappings().all()
        if rows:
            return rows, int(rows[0]["total"])
        return rows, await self.counted(workspace_id, kind, key)  # past the end: no row carries it

    async def count_exact(
        self, workspace_id: uuid.UUID, *, tag: str | None, stage: str | None, q: str | None
    ) -> int:
        stmt, _ = self._filtered(workspace_id, tag, stage, q)
        count = select(func.count()).select_from(stmt.with_only_columns(T.c.id).subquery())
        return int((await self.session.execute(count)).scalar_one())

    async def counted(self, workspace_id: uuid.UUID, kind: str, key: str) -> int:
        stmt = select(func.coalesce(func.sum(CC.c.n), 0)).where(
            CC.c.workspace_id == workspace_id, CC.c.kind == kind, CC.c.key == key
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def _one(self, *where: Any, for_update: bool = False) -> Row | None:
        stmt = select(*COLUMNS).where(*where)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).mappings().one_or_none()

    async def get_by_uuid(
        self, workspace_id: uuid.UUID, contact_uuid: uuid.UUID, *, for_update: bool = False
    ) -> Row | None:
        return await self._one(
            T.c.workspace_id == workspace_id, T.c.uuid == contact_uuid, for_update=for_update
        )

    async def get_by_id(
        self, workspace_id: uuid.UUID, contact_id: int, *, for_update: bool = False
    ) -> Row | None:
        return await self._one(
            T.c.workspace_id == workspace_id, T.c.id == contact_id, for_update=for_update
        )

    async def get_by_phone(
        self, workspace_id: uuid.UUID, phone: str, *, for_update: bool = False
    ) -> Row | None:
        return await self._one(
            T.c.workspace_id == workspace_id, T.c.phone == phone, for_update=for_update
        )

    # --- writes ---

    async def insert(self, values: dict[str, Any]) -> Row | None:
        """Insert; None when the workspace already has a contact with this phone."""
        stmt = (
            self._insert(T)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["workspace_id", "phone"])
            .returning(*COLUMNS)
        )
        return (await self.session.execute(stmt)).mappings().one_or_none()

    async def update(self, contact_id: int, values: dict[str, Any]) -> Row:
        stmt = update(T).where(T.c.id == contact_id).values(**values).returning(*COLUMNS)
        return (await self.session.execute(stmt)).mappings().one()

    async def delete(self, contact_id: int) -> None:
        await self.session.execute(delete(T).where(T.c.id == contact_id))

    async def set_tags(
        self, workspace_id: uuid.UUID, contact_id: int, removed: Iterable[str], added: Iterable[str]
    ) -> None:
        removed = list(removed)
        added = list(added)
        if removed:
            await self.session.execute(
                delete(CT).where(CT.c.contact_id == contact_id, CT.c.tag.in_(removed))
            )
        if added:
            await self.session.execute(
                CT.insert(),
                [{"contact_id": contact_id, "tag": t, "workspace_id": workspace_id} for t in added],
            )

    async def adjust_counts(self, workspace_id: uuid.UUID, deltas: Mapping[CountKey, int]) -> None:
        """Add the deltas to the counters in one statement (sorted keys: no lock-order deadlocks)."""
        items = sorted((k, d) for k, d in deltas.items() if d)
        if not items:
            return
        shard = random.randrange(COUNTER_SHARDS)  # noqa: S311 - spreading writers, not security
        stmt = self._insert(CC).values(
            [
                {"workspace_id": workspace_id, "kind": kind, "key": key, "shard": shard, "n": d}
                for (kind, key), d in items
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["workspace_id", "kind", "key", "shard"],
            set_={"n": CC.c.n + stmt.excluded.n},
        )
        await self.session.execute(stmt)


def _search(q: str) -> Any:
    pattern = f"%{_escape_like(q.strip())}%"
    name = (
        func.coalesce(T.c.first_name, literal(""))
        + literal(" ")
        + func.coalesce(T.c.last_name, literal(""))
    )
    clauses = [
        name.ilike(pattern, escape="\\"),
        T.c.email.ilike(pattern, escape="\\"),
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 3 and _PHONE_LIKE.fullmatch(q.strip()):
        # Only a query that looks like a phone number searches phones ("Person 1" does not).
        clauses.append(T.c.phone.like(f"%{digits}%"))
    return or_(*clauses) if len(clauses) > 1 else and_(*clauses)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
