"""Workspaces and their stage lists."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.exceptions import NotFound, ValidationFailed
from aisoule.kit.time import utcnow
from aisoule.models import Stage, Workspace
from aisoule.workspaces.repository import WorkspaceRepository

DEFAULT_STAGES = ("Lead", "Prospect", "Customer", "Lost")


async def create_workspace(session: AsyncSession, name: str) -> Workspace:
    workspace = Workspace(id=uuid.uuid4(), name=name, created_at=utcnow())
    stages = [
        Stage(workspace_id=workspace.id, name=stage, position=i)
        for i, stage in enumerate(DEFAULT_STAGES)
    ]
    return await WorkspaceRepository(session).add(workspace, stages)


async def get_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace | None:
    return await WorkspaceRepository(session).get(workspace_id)


async def set_limits(
    session: AsyncSession, workspace_id: uuid.UUID, per_minute: int | None, per_second: int | None
) -> Workspace:
    """Operator action (CLI): the workspace's API key limits; None restores the server default."""
    workspace = await WorkspaceRepository(session).get(workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found")
    workspace.rate_limit_per_minute = per_minute
    workspace.rate_limit_per_second = per_second
    await session.flush()
    return workspace


async def list_stages(session: AsyncSession, workspace_id: uuid.UUID) -> list[str]:
    return await WorkspaceRepository(session).stage_names(workspace_id)


async def resolve_stage(
    session: AsyncSession, workspace_id: uuid.UUID, value: str | None, *, field: str = "stage"
) -> str:
    """The canonical stage name for ``value`` (case-insensitive), or the first stage when None."""
    names = await list_stages(session, workspace_id)
    if value is None:
        return names[0] if names else DEFAULT_STAGES[0]
    for name in names:
        if name.casefold() == value.strip().casefold():
            return name
    raise ValidationFailed(
        f"{field}: {value!r} is not one of this workspace's stages ({', '.join(names)})",
        field=field,
    )
