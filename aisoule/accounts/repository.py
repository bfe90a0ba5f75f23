from __future__ import annotations

from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import WhatsAppAccount


class WhatsAppAccountRepository(WorkspaceScopedRepository[WhatsAppAccount]):
    model = WhatsAppAccount
