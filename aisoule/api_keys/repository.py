from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.api_keys.cache import CHANNEL
from aisoule.db.raw import driver_connection
from aisoule.models import APIKey, APIKeyUsage, Workspace

_PG_KEY_LOOKUP = (
    "SELECT k.id, k.workspace_id, k.key_hash, k.scopes, k.expires_at, k.revoked_at, "
    "k.last_used_at, k.rate_limit_per_minute, k.rate_limit_per_second, "
    "w.rate_limit_per_minute AS ws_per_minute, w.rate_limit_per_second AS ws_per_second "
    "FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id WHERE k.key_hash = $1"
)


class APIKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: APIKey) -> APIKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def get_with_workspace_limits(self, key_hash: str) -> Mapping[Any, Any] | None:
        """The key's columns and its workspace's rate-limit overrides, in one query.

        Every API request runs this, so it returns a plain mapping, never an ORM object; on
        PostgreSQL it goes to the request's asyncpg connection directly.
        """
        bind = self.session.bind
        if bind is not None and bind.dialect.name == "postgresql":
            driver = await driver_connection(self.session)
            record: Mapping[Any, Any] | None = await driver.fetchrow(_PG_KEY_LOOKUP, key_hash)
            return record
        keys = APIKey.__table__.c
        result = await self.session.execute(
            select(
                keys.id,
                keys.workspace_id,
                keys.key_hash,
                keys.scopes,
                keys.expires_at,
                keys.revoked_at,
                keys.last_used_at,
                keys.rate_limit_per_minute,
                keys.rate_limit_per_second,
                Workspace.rate_limit_per_minute.label("ws_per_minute"),
                Workspace.rate_limit_per_second.label("ws_per_second"),
            )
            .join(Workspace, Workspace.id == keys.workspace_id)
            .where(keys.key_hash == key_hash)
        )
        return result.mappings().one_or_none()

    async def announce_change(self) -> None:
        """NOTIFY every server process that keys or their limits changed (on PostgreSQL;
        delivered when this transaction commits, and only then)."""
        bind = self.session.bind
        if bind is not None and bind.dialect.name == "postgresql":
            await self.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    async def add_usage(self, counts: Mapping[tuple[uuid.UUID, date, int], int]) -> None:
        dialect = self.session.bind.dialect.name if self.session.bind is not None else "sqlite"
        module = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(APIKeyUsage).values(
            [
                {"api_key_id": k, "day": d, "status_class": c, "count": n}
                for (k, d, c), n in sorted(counts.items())
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["api_key_id", "day", "status_class"],
            set_={"count": APIKeyUsage.count + stmt.excluded.count},
        )
        await self.session.execute(stmt)

    async def usage_since(self, key_id: uuid.UUID, since: date) -> Sequence[APIKeyUsage]:
        result = await self.session.execute(
            select(APIKeyUsage)
            .where(APIKeyUsage.api_key_id == key_id, APIKeyUsage.day >= since)
            .order_by(APIKeyUsage.day, APIKeyUsage.status_class)
        )
        return result.scalars().all()

    async def get_any(self, key_id: uuid.UUID) -> APIKey | None:
        return await self.session.get(APIKey, key_id)

    async def get(self, workspace_id: uuid.UUID, key_id: uuid.UUID) -> APIKey | None:
        result = await self.session.execute(
            select(APIKey).where(APIKey.workspace_id == workspace_id, APIKey.id == key_id)
        )
        return result.scalar_one_or_none()

    async def list(self, workspace_id: uuid.UUID) -> list[APIKey]:
        result = await self.session.execute(
            select(APIKey)
            .where(APIKey.workspace_id == workspace_id)
            .order_by(APIKey.created_at.desc(), APIKey.id)
        )
        return list(result.scalars())

    async def touch(self, key_id: uuid.UUID, now: datetime, older_than: datetime) -> None:
        """Set last_used_at, but only when the stored one is older than the resolution."""
        await self.session.execute(
            update(APIKey)
            .where(
                APIKey.id == key_id,
                or_(APIKey.last_used_at.is_(None), APIKey.last_used_at < older_than),
            )
            .values(last_used_at=now)
        )
