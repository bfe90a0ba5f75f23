from __future__ import annotations

from pydantic import BaseModel


class AccountOut(BaseModel):
    id: str
    phone_number: str
    display_name: str
    status: str
    provider: str
    created_at: str
    updated_at: str


class AccountList(BaseModel):
    accounts: list[AccountOut]
    total: int
    page: int
    per_page: int
