from __future__ import annotations

from pydantic import BaseModel

from aisoule.kit.time import iso_z
from aisoule.models import Workspace


class StageOut(BaseModel):
    name: str
    position: int


class StagesData(BaseModel):
    stages: list[StageOut]


class WorkspaceOut(BaseModel):
    id: str
    name: str
    created_at: str


def workspace_out(workspace: Workspace) -> dict[str, object]:
    return {
        "id": str(workspace.id),
        "name": workspace.name,
        "created_at": iso_z(workspace.created_at),
    }
