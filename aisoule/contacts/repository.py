"""Contact SQL, in SQLAlchemy Core: rows come back as mappings, never as ORM objects (hot path)."""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    Select,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from aisoule.db.raw import driver_connection
from aisoule.models import (
    Contact,
    ContactCount,
    ContactNumber,
    ContactTag,
    ContactWhatsApp,
    Stage,
)

T = cast(Table, Contact.__table__)
CT = cast(Table, ContactTag.__table__)
CC = cast(Table, ContactCount.__table__)
CN = cast(Table, ContactNumber.__table__)
ST = cast(Table, Stage.__table__)
CW = cast(Table, ContactWhatsApp.__table__)

COLUMNS = (
    T.c.id,
    T.c.number,
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
        "c.id, c.number, c.uuid, c.phone, c.first_name, c.last_name, c.email, c.stage, c.tags, c.custom_fields, c.created_at, c.updated_at, (SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = $1 "
        "AND kind = 'all' AND key = '') AS total FROM contacts c WHERE c.workspace_id = $1 "
        "ORDER BY c.id LIMIT $2 OFFSET $3"
    ),
    "stage": (
        "SELECT "
        "c.id, c.number, c.uuid, c.phone, c.first_name, c.last_name, c.email, c.stage, c.tags, c.custom_fields, c.created_at, c.updated_at, (SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = $1 "
        "AND kind = 'stage' AND key = $4) AS total FROM contacts c WHERE c.workspace_id = $1 "
        "AND c.stage = $4 ORDER BY c.id LIMIT $2 OFFSET $3"
    ),
    "tag": (
        "SELECT "
        "c.id, c.number, c.uuid, c.phone, c.first_name, c.last_name, c.email, c.stage, c.tags, c.custom_fields, c.created_at, c.updated_at, (SELECT coalesce(sum(n), 0) FROM contact_counts WHERE workspace_id = $1 "
        "AND kind = 'tag' AND key = $4) AS total FROM contacts c JOIN contact_tags t "
        "ON t.contact_id = c.id WHERE t.workspace_id = $1 AND t.tag = $4 AND c.workspace_id = $1 "
        "ORDER BY t.contact_id LIMIT $2 OFFSET $3"
    ),
}

# The upsert's statements, for PostgreSQL's driver directly (see ContactRepository.insert_counted
# and update_counted). Counter rows are written in (kind, key) order in the "C" collation, which is
# Python's string order: every writer takes the counter rows' locks in the same order (no
# deadlocks), whether it goes through here or through adjust_counts. (The f-strings below only
# join constants: S608 does not apply.)
_PG_COLUMNS = (
    "id, number, uuid, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, "
    "updated_at"
)
_PG_ONE = {
    "phone": f"SELECT {_PG_COLUMNS} FROM contacts WHERE workspace_id = $1 AND phone = $2",  # noqa: S608
    "uuid": f"SELECT {_PG_COLUMNS} FROM contacts WHERE workspace_id = $1 AND uuid = $2",  # noqa: S608
    "number": f"SELECT {_PG_COLUMNS} FROM contacts WHERE workspace_id = $1 AND number = $2",  # noqa: S608
}
_PG_COUNTS_UPSERT = (
    "ON CONFLICT (workspace_id, kind, key, shard) DO UPDATE SET n = contact_counts.n + excluded.n"
)
# Insert the contact (a NULL $7 stage: the workspace's first stage, else $12; its number the
# workspace's next, from the workspace's own sequence, which never waits on a lock), its
# contact_tags rows and +1 on its counters, in one statement. When the phone exists, `ins` is
# empty and so is everything joined to it: nothing is written and no row comes back. A phone seen
# to exist takes no number (NOT EXISTS is checked first); one committed by a concurrent request
# after this statement's snapshot is caught by ON CONFLICT, after the number was drawn: only
# such a race (two creates of one new phone at once) skips a number.
_PG_INSERT = (
    "WITH ins AS ("  # noqa: S608
    " INSERT INTO contacts (uuid, workspace_id, phone, first_name, last_name, email, stage, tags,"
    " custom_fields, created_at, updated_at, number)"
    " SELECT $1, $2, $3, $4, $5, $6, coalesce($7::varchar, (SELECT s.name FROM stages s"
    " WHERE s.workspace_id = $2 ORDER BY s.position LIMIT 1), $12::varchar), $8, $9, $10, $10,"
    " contact_number_next($2)"
    " WHERE NOT EXISTS (SELECT FROM contacts c WHERE c.workspace_id = $2 AND c.phone = $3::varchar)"
    " ON CONFLICT (workspace_id, phone) DO NOTHING"
    f" RETURNING {_PG_COLUMNS}"
    "), tagged AS ("
    " INSERT INTO contact_tags (contact_id, tag, workspace_id)"
    " SELECT ins.id, t.tag, $2 FROM ins CROSS JOIN unnest($11::varchar[]) AS t(tag)"
    "), counted AS ("
    " INSERT INTO contact_counts (workspace_id, kind, key, shard, n)"
    " SELECT $2, d.kind, d.key, $13, 1 FROM ins CROSS JOIN LATERAL ("
    "  SELECT 'all'::varchar AS kind, ''::varchar AS key"
    "  UNION ALL SELECT 'stage', ins.stage"
    "  UNION ALL SELECT 'tag', t.tag FROM unnest($11::varchar[]) AS t(tag)"
    ' ) AS d ORDER BY d.kind COLLATE "C", d.key COLLATE "C"'
    f" {_PG_COUNTS_UPSERT}"
    f") SELECT {_PG_COLUMNS} FROM ins"
)
# The rest of an update after the UPDATE itself: $1 the contact id, $2 the workspace, $3 tags
# removed, $4 tags added, $5 the counter shard, $6/$7/$8 the counter deltas (kind, key, n). Every
# write is joined to `upd`: when the UPDATE matched no row (a version check failed), nothing is
# written and no row comes back.
_PG_UPDATE_REST = (
    "), untagged AS ("  # noqa: S608
    " DELETE FROM contact_tags WHERE contact_id = $1 AND tag = ANY($3::varchar[])"
    " AND EXISTS (SELECT FROM upd)"
    "), tagged AS ("
    " INSERT INTO contact_tags (contact_id, tag, workspace_id)"
    " SELECT $1, t.tag, $2 FROM upd CROSS JOIN unnest($4::varchar[]) AS t(tag)"
    "), counted AS ("
    " INSERT INTO contact_counts (workspace_id, kind, key, shard, n)"
    " SELECT $2, d.kind, d.key, $5, d.n"
    " FROM upd CROSS JOIN unnest($6::varchar[], $7::varchar[], $8::bigint[]) AS d(kind, key, n)"
    ' ORDER BY d.kind COLLATE "C", d.key COLLATE "C"'
    f" {_PG_COUNTS_UPSERT}"
    f") SELECT {_PG_COLUMNS} FROM upd"
)
# The contact by phone with its row version (xmin: every write of the row makes a new version),
# for an update that checks the version instead of holding a lock (ContactRepository.update_counted).
_PG_BY_PHONE_VERSIONED = (
    f"SELECT {_PG_COLUMNS}, xmin AS version FROM contacts "  # noqa: S608
    "WHERE workspace_id = $1 AND phone = $2"
)
_UPDATABLE = (
    "phone",
    "first_name",
    "last_name",
    "email",
    "stage",
    "tags",
    "custom_fields",
    "updated_at",
)
_JSON_COLUMNS = frozenset({"tags", "custom_fields"})


def _pg_update(columns: Sequence[str], *, versioned: bool) -> str:
    """UPDATE of these columns (parameters from $9 on, or $10 after the row version $9) and the
    tag and counter writes with it."""
    first = 10 if versioned else 9
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, first))
    where = "id = $1 AND xmin = $9::xid" if versioned else "id = $1"
    return (
        f"WITH upd AS (UPDATE contacts SET {sets} WHERE {where} RETURNING {_PG_COLUMNS}"  # noqa: S608
        + _PG_UPDATE_REST
    )


def _json(value: Any) -> str:
    # SQLAlchemy's asyncpg JSON/JSONB codecs, set on every pooled connection, take JSON text.
    return orjson.dumps(value).decode()


def counts_of(row: Mapping[Any, Any], sign: int) -> Counter[CountKey]:
    """The counters a contact row counts in (all, its stage, each tag), each by ``sign``."""
    deltas: Counter[CountKey] = Counter({("all", ""): sign, ("stage", row["stage"]): sign})
    for tag in row["tags"]:
        deltas[("tag", tag)] += sign
    return deltas


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

    async def _plan_for_search(self, q: str | None) -> None:
        """A search is planned for its pattern, every time. A prepared statement (asyncpg's
        cache) switches to a generic plan after five runs, and the generic plan, not knowing the
        pattern, walks the primary key and filters every row (1 s at 1,000,000 contacts) where
        the trigram indexes find one contact in milliseconds (docs/benchmarks.md, dashboard)."""
        if q is not None and self.dialect == "postgresql":
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))

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
        await self._plan_for_search(q)
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

    async def browse(
        self,
        workspace_id: uuid.UUID,
        *,
        limit: int,
        after: int | None = None,
        before: int | None = None,
        tag: str | None = None,
        stage: str | None = None,
        q: str | None = None,
        field: tuple[str, str] | None = None,
    ) -> tuple[Sequence[Row], bool]:
        """A keyset page (the dashboard's): ``limit`` rows in id order after ``after`` (or the
        last ``limit`` before ``before``), and whether there are more that way. The cost of a
        page does not grow with its depth, unlike OFFSET's at 1,000,000 contacts."""
        stmt, order = self._filtered(workspace_id, tag, stage, q)
        await self._plan_for_search(q)
        if field is not None:
            key, value = field
            stmt = stmt.where(T.c.custom_fields[key].as_string() == value)
        if before is not None:
            stmt = stmt.where(order < before).order_by(order.desc())
        else:
            if after is not None:
                stmt = stmt.where(order > after)
            stmt = stmt.order_by(order)
        rows = list((await self.session.execute(stmt.limit(limit + 1))).mappings().all())
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        return rows, more

    async def count_exact(
        self, workspace_id: uuid.UUID, *, tag: str | None, stage: str | None, q: str | None
    ) -> int:
        stmt, _ = self._filtered(workspace_id, tag, stage, q)
        await self._plan_for_search(q)
        count = select(func.count()).select_from(stmt.with_only_columns(T.c.id).subquery())
        return int((await self.session.execute(count)).scalar_one())

    async def counted(self, workspace_id: uuid.UUID, kind: str, key: str) -> int:
        stmt = select(func.coalesce(func.sum(CC.c.n), 0)).where(
            CC.c.workspace_id == workspace_id, CC.c.kind == kind, CC.c.key == key
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def _one(
        self, workspace_id: uuid.UUID, by: str, value: Any, *, for_update: bool = False
    ) -> Row | None:
        """The contact whose ``by`` column (phone, number or uuid) is ``value``, in this workspace."""
        if self.dialect == "postgresql":
            # Hot in upserts: the driver directly, in the session's transaction (for the lock).
            sql = _PG_ONE[by] + (" FOR UPDATE" if for_update else "")
            driver = await driver_connection(self.session, in_transaction=True)
            record: Row | None = await driver.fetchrow(sql, workspace_id, value)
            return record
        stmt = select(*COLUMNS).where(T.c.workspace_id == workspace_id, T.c[by] == value)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).mappings().one_or_none()

    async def get_by_uuid(
        self, workspace_id: uuid.UUID, contact_uuid: uuid.UUID, *, for_update: bool = False
    ) -> Row | None:
        return await self._one(workspace_id, "uuid", contact_uuid, for_update=for_update)

    async def get_by_number(
        self, workspace_id: uuid.UUID, number: int, *, for_update: bool = False
    ) -> Row | None:
        return await self._one(workspace_id, "number", number, for_update=for_update)

    async def get_by_phone(
        self, workspace_id: uuid.UUID, phone: str, *, for_update: bool = False
    ) -> Row | None:
        return await self._one(workspace_id, "phone", phone, for_update=for_update)

    async def with_consent(
        self,
        workspace_id: uuid.UUID,
        by: str,
        value: Any,
        extra: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> Row | None:
        """The contact (as ``_one``) with its WhatsApp consent (``opted_out_at``,
        ``opt_out_reason``) and ``extra(contact id column)``'s labelled columns, in one statement:
        a sender's whole recipient state in one round trip."""
        columns = [*COLUMNS, CW.c.opted_out_at, CW.c.opt_out_reason]
        if extra is not None:
            columns += [expr.label(name) for name, expr in extra(T.c.id).items()]
        stmt = (
            select(*columns)
            .select_from(T.outerjoin(CW, CW.c.contact_id == T.c.id))
            .where(T.c.workspace_id == workspace_id, T.c[by] == value)
        )
        return (await self.session.execute(stmt)).mappings().one_or_none()

    async def refs_of(self, workspace_id: uuid.UUID, ids: Iterable[int]) -> list[Row]:
        """(id, uuid, number) of these contacts (by internal id) that are in this workspace."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        stmt = select(T.c.id, T.c.uuid, T.c.number).where(
            T.c.workspace_id == workspace_id, T.c.id.in_(wanted)
        )
        return list((await self.session.execute(stmt)).mappings().all())

    async def ids_of(
        self, workspace_id: uuid.UUID, by: str, values: Iterable[Any]
    ) -> dict[Any, int]:
        """Internal ids of the contacts whose ``by`` column (uuid or number) is one of
        ``values``, in this workspace: {value: id}."""
        wanted = list(set(values))
        found: dict[Any, int] = {}
        for start in range(
            0, len(wanted), 1000
        ):  # well under both databases' bound-parameter limits
            chunk = wanted[start : start + 1000]
            stmt = select(T.c[by], T.c.id).where(
                T.c.workspace_id == workspace_id, T.c[by].in_(chunk)
            )
            found.update({r[0]: r[1] for r in (await self.session.execute(stmt)).all()})
        return found

    async def audience_counts(
        self,
        workspace_id: uuid.UUID,
        conditions: Sequence[Any],
        missing: Any | None,
    ) -> tuple[int, int, int]:
        """Of the contacts matching ``conditions``: how many, how many opted out, and how many
        not opted out for which ``missing`` holds; one statement, counted in the database."""
        opted_out = CW.c.opted_out_at.is_not(None)
        columns: list[Any] = [func.count(), func.count(CW.c.opted_out_at)]
        if missing is not None:
            columns.append(
                func.coalesce(func.sum(case((and_(~opted_out, missing), 1), else_=0)), 0)
            )
        stmt = (
            select(*columns)
            .select_from(T.outerjoin(CW, CW.c.contact_id == T.c.id))
            .where(T.c.workspace_id == workspace_id, *conditions)
        )
        row = (await self.session.execute(stmt)).one()
        return int(row[0]), int(row[1]), int(row[2]) if missing is not None else 0

    async def audience_sample(
        self, workspace_id: uuid.UUID, conditions: Sequence[Any], limit: int
    ) -> list[Row]:
        """The first ``limit`` contacts (in id order) matching ``conditions``, with consent."""
        stmt = (
            select(*COLUMNS, CW.c.opted_out_at, CW.c.opt_out_reason)
            .select_from(T.outerjoin(CW, CW.c.contact_id == T.c.id))
            .where(T.c.workspace_id == workspace_id, *conditions)
            .order_by(T.c.id)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).mappings().all())

    async def cards_of(self, workspace_id: uuid.UUID, ids: Iterable[int]) -> list[Row]:
        """What the inbox shows of these contacts: refs, name, phone and consent."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        stmt = (
            select(
                T.c.id,
                T.c.uuid,
                T.c.number,
                T.c.phone,
                T.c.first_name,
                T.c.last_name,
                T.c.custom_fields,
                CW.c.profile_name,
                CW.c.opted_out_at,
                CW.c.opt_out_reason,
            )
            .select_from(T.outerjoin(CW, CW.c.contact_id == T.c.id))
            .where(T.c.workspace_id == workspace_id, T.c.id.in_(wanted))
        )
        return list((await self.session.execute(stmt)).mappings().all())

    # --- writes ---

    async def insert_counted(
        self, values: dict[str, Any], *, fallback_stage: str, in_transaction: bool = True
    ) -> Row | None:
        """Insert a contact with its contact_tags rows and +1 on its counters, atomically; the
        insert gives it the workspace's next number (its /v1 id).

        A None ``values["stage"]`` is the workspace's first stage (``fallback_stage`` when it has
        none), read by the insert itself. None when the workspace already has a contact with this
        phone: then nothing is written. With ``in_transaction=False`` a PostgreSQL session that has
        no transaction open yet does not open one: the single statement commits by itself.
        """
        if self.dialect == "postgresql":
            # One statement, one round trip (see _PG_INSERT).
            driver = await driver_connection(self.session, in_transaction=in_transaction)
            record: Row | None = await driver.fetchrow(
                _PG_INSERT,
                values["uuid"],
                values["workspace_id"],
                values["phone"],
                values["first_name"],
                values["last_name"],
                values["email"],
                values["stage"],
                _json(values["tags"]),
                _json(values["custom_fields"]),
                values["created_at"],
                values["tags"],
                fallback_stage,
                random.randrange(COUNTER_SHARDS),  # noqa: S311 - spreading writers
            )
            return record
        # The workspace's next number. SQLite serialises writers, so nobody takes the same number
        # between this insert and the counter's update below.
        workspace_id = values["workspace_id"]
        last = select(CN.c.last).where(CN.c.workspace_id == workspace_id).scalar_subquery()
        values = {**values, "number": func.coalesce(last, 0) + 1}
        if values["stage"] is None:
            first = (
                select(ST.c.name)
                .where(ST.c.workspace_id == values["workspace_id"])
                .order_by(ST.c.position)
                .limit(1)
                .scalar_subquery()
            )
            values = {**values, "stage": func.coalesce(first, fallback_stage)}
        stmt = (
            self._insert(T)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["workspace_id", "phone"])
            .returning(*COLUMNS)
        )
        row = (await self.session.execute(stmt)).mappings().one_or_none()
        if row is not None:
            counter = self._insert(CN).values(workspace_id=workspace_id, last=row["number"])
            await self.session.execute(
                counter.on_conflict_do_update(
                    index_elements=["workspace_id"], set_={"last": counter.excluded.last}
                )
            )
            await self.set_tags(workspace_id, row["id"], (), row["tags"])
            await self.adjust_counts(workspace_id, counts_of(row, +1))
        return row

    @property
    def versioned_updates(self) -> bool:
        """Whether get_by_phone_versioned and update_counted(version=...) are available: an update
        checked against the row version read, without a lock or a transaction (PostgreSQL)."""
        return self.dialect == "postgresql"

    async def get_by_phone_versioned(self, workspace_id: uuid.UUID, phone: str) -> Row | None:
        """The contact with this phone and its row version (``version``), without a lock."""
        driver = await driver_connection(self.session)
        record: Row | None = await driver.fetchrow(_PG_BY_PHONE_VERSIONED, workspace_id, phone)
        return record

    async def update_counted(
        self,
        workspace_id: uuid.UUID,
        existing: Row,
        changes: dict[str, Any],
        *,
        version: int | None = None,
    ) -> Row | None:
        """Apply ``changes`` to the contact ``existing``, with its contact_tags rows and counters,
        atomically; the updated row.

        ``existing`` must be locked (get_by_*(for_update=True)), or, on PostgreSQL, be read with
        its ``version`` (get_by_phone_versioned) and that version passed: then nothing is written
        and None comes back when the row changed since (the caller reads it again). A phone taken
        by another contact raises IntegrityError (SQLAlchemy path: the caller changing a phone runs
        this in a savepoint)."""
        old_tags = existing["tags"]
        new_tags = changes.get("tags", old_tags)
        removed = [t for t in old_tags if t not in new_tags]
        added = [t for t in new_tags if t not in old_tags]
        deltas = counts_of({"stage": changes.get("stage", existing["stage"]), "tags": new_tags}, +1)
        deltas.update(counts_of(existing, -1))
        contact_id = existing["id"]
        if self.dialect == "postgresql" and "phone" not in changes:
            # One statement, one round trip (a phone change keeps the path that raises
            # IntegrityError, which the caller turns into a 409). Unversioned, it runs in the
            # session's transaction, which holds the row lock; versioned, it is atomic by itself.
            items = sorted((k, d) for k, d in deltas.items() if d)
            columns = [c for c in _UPDATABLE if c in changes]
            args = [_json(changes[c]) if c in _JSON_COLUMNS else changes[c] for c in columns]
            if version is not None:
                args.insert(0, version)
            driver = await driver_connection(self.session, in_transaction=version is None)
            record: Row | None = await driver.fetchrow(
                _pg_update(columns, versioned=version is not None),
                contact_id,
                workspace_id,
                removed,
                added,
                random.randrange(COUNTER_SHARDS),  # noqa: S311 - spreading writers
                [kind for (kind, _), _ in items],
                [key for (_, key), _ in items],
                [d for _, d in items],
                *args,
            )
            return record
        if version is not None:
            raise ValueError("versioned updates are for PostgreSQL, without a phone change")
        row = await self.update(contact_id, changes)
        await self.set_tags(workspace_id, contact_id, removed, added)
        await self.adjust_counts(workspace_id, deltas)
        return row

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


class ConsentRepository:
    """What WhatsApp told us about contacts (``contact_whatsapp``): wa_id, profile name, opt-out."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(
        self, workspace_id: uuid.UUID, contact_id: int, now: datetime, **values: Any
    ) -> None:
        dialect = self.session.get_bind().dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CW)
        stmt = insert.values(
            contact_id=contact_id, workspace_id=workspace_id, updated_at=now, **values
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["contact_id"], set_={"updated_at": now, **values}
            )
        )


# The searched name, as the trigram index ix_contacts_name_trgm holds it (migration 0012): the
# constants are SQL literals, not bound parameters, so that the statement's expression is the
# index's in every plan.
SEARCH_NAME = (
    func.coalesce(T.c.first_name, literal_column("''"))
    + literal_column("' '")
    + func.coalesce(T.c.last_name, literal_column("''"))
)


def _search(q: str) -> Any:
    pattern = f"%{_escape_like(q.strip())}%"
    clauses = [
        SEARCH_NAME.ilike(pattern, escape="\\"),
        T.c.email.ilike(pattern, escape="\\"),
    ]
    digits = "".join(ch for ch in q if ch.isascii() and ch.isdigit())
    if len(digits) >= 3 and _PHONE_LIKE.fullmatch(q.strip()):
        # Only a query that looks like a phone number searches phones ("Person 1" does not).
        clauses.append(T.c.phone.like(f"%{digits}%"))
    return or_(*clauses) if len(clauses) > 1 else and_(*clauses)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
