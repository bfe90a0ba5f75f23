from __future__ import annotations

from pydantic import BaseModel


class TemplateOut(BaseModel):
    id: str
    name: str
    language: str
    category: str
    status: str
    created_at: str
    updated_at: str


class TemplateList(BaseModel):
    templates: list[TemplateOut]
    total: int
    page: int
    per_page: int
