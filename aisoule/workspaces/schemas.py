from __future__ import annotations

from pydantic import BaseModel


class StageOut(BaseModel):
    name: str
    position: int


class StagesData(BaseModel):
    stages: list[StageOut]


class WorkspaceOut(BaseModel):
    id: str
    name: str
    created_at: str
