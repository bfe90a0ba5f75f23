from __future__ import annotations

from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import MessageTemplate


class TemplateRepository(WorkspaceScopedRepository[MessageTemplate]):
    model = MessageTemplate
