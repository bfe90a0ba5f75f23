from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import exists, select, text, update

from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import WhatsAppAccount


class WhatsAppAccountRepository(WorkspaceScopedRepository[WhatsAppAccount]):
    model = WhatsAppAccount

    async def get(self, workspace_id: uuid.UUID, account_id: uuid.UUID) -> WhatsAppAccount | None:
        result = await self.session.execute(
            select(WhatsAppAccount).where(
                WhatsAppAccount.workspace_id == workspace_id, WhatsAppAccount.id == account_id
            )
        )
        return result.scalar_one_or_none()

    async def get_any(self, account_id: uuid.UUID) -> WhatsAppAccount | None:
        """By id alone: for workers, which act on ids they were given."""
        return await self.session.get(WhatsAppAccount, account_id)

    async def default(self, workspace_id: uuid.UUID) -> WhatsAppAccount | None:
        result = await self.session.execute(
            select(WhatsAppAccount)
            .where(WhatsAppAccount.workspace_id == workspace_id)
            .order_by(WhatsAppAccount.is_default.desc(), WhatsAppAccount.created_at)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def by_phone_number_id(
        self, workspace_id: uuid.UUID, phone_number_id: str
    ) -> WhatsAppAccount | None:
        result = await self.session.execute(
            select(WhatsAppAccount).where(
                WhatsAppAccount.workspace_id == workspace_id,
                WhatsAppAccount.phone_number_id == phone_number_id,
            )
        )
        return result.scalar_one_or_none()

    async def by_phone_number_id_any(self, phone_number_id: str) -> WhatsAppAccount | None:
        """The one account of a number, whichever workspace holds it (a unique index)."""
        result = await self.session.execute(
            select(WhatsAppAccount).where(WhatsAppAccount.phone_number_id == phone_number_id)
        )
        return result.scalar_one_or_none()

    async def waba_held_elsewhere(self, workspace_id: uuid.UUID, waba_id: str) -> bool:
        result = await self.session.execute(
            select(
                exists().where(
                    WhatsAppAccount.waba_id == waba_id,
                    WhatsAppAccount.workspace_id != workspace_id,
                )
            )
        )
        return bool(result.scalar())

    async def lock_waba(self, waba_id: str) -> None:
        """Serialise connecting numbers of one WABA until the transaction ends: on PostgreSQL a
        transaction-scoped advisory lock (SQLite's single writer already serialises)."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:w, 8))"), {"w": waba_id}
            )

    async def all_by_waba_id(self, waba_id: str) -> Sequence[WhatsAppAccount]:
        result = await self.session.execute(
            select(WhatsAppAccount).where(WhatsAppAccount.waba_id == waba_id)
        )
        return result.scalars().all()

    async def by_verify_token_hash(self, digest: str) -> WhatsAppAccount | None:
        result = await self.session.execute(
            select(WhatsAppAccount).where(WhatsAppAccount.verify_token_hash == digest).limit(1)
        )
        return result.scalar_one_or_none()

    async def by_provider(self, provider: str) -> Sequence[WhatsAppAccount]:
        result = await self.session.execute(
            select(WhatsAppAccount).where(WhatsAppAccount.provider == provider)
        )
        return result.scalars().all()

    async def clear_default(self, workspace_id: uuid.UUID, keep: uuid.UUID) -> None:
        await self.session.execute(
            update(WhatsAppAccount)
            .where(WhatsAppAccount.workspace_id == workspace_id, WhatsAppAccount.id != keep)
            .values(is_default=False)
        )

    async def add(self, account: WhatsAppAccount) -> WhatsAppAccount:
        self.session.add(account)
        await self.session.flush()
        return account

    async def delete(self, account: WhatsAppAccount) -> None:
        await self.session.delete(account)
        await self.session.flush()
