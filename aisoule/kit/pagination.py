from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel


class PageParams(BaseModel):
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


async def _page_params(  # async: FastAPI runs a plain def in its thread pool
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    per_page: Annotated[int, Query(ge=1, le=100, description="Page size (max 100).")] = 20,
) -> PageParams:
    return PageParams(page=page, per_page=per_page)


Page = Annotated[PageParams, Depends(_page_params)]
