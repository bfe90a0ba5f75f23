"""The surfaces' success envelopes: /api's ``{"data": ..., "status": "success"}`` (its models
document it in OpenAPI) and /v1's ``{"success": true, ...}``, and the one shape of a list page on
each, so no list endpoint spells its envelope out."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from aisoule.kit.pagination import PageParams
from aisoule.kit.responses import ORJSONResponse

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    data: T
    status: Literal["success"] = "success"


class ErrorDetail(BaseModel):
    field: str | None = None
    message: str


class ErrorEnvelope(BaseModel):
    message: str
    status: Literal["error"] = "error"
    code: str
    errors: list[ErrorDetail] | None = None


def success(data: Any, status_code: int = 200) -> ORJSONResponse:
    return ORJSONResponse({"data": data, "status": "success"}, status_code=status_code)


def api_page(key: str, items: list[Any], total: int, params: PageParams) -> ORJSONResponse:
    """An /api list page: ``{"data": {key: [...], "total", "page", "per_page"}, "status": ...}``."""
    return success({key: items, "total": total, "page": params.page, "per_page": params.per_page})


def v1_page(key: str, items: list[Any], total: int, *, limit: int, offset: int) -> ORJSONResponse:
    """A /v1 list page: ``{"success": true, key: [...], "pagination": {total, limit, offset}}``."""
    return ORJSONResponse(
        {
            "success": True,
            key: items,
            "pagination": {"total": total, "limit": limit, "offset": offset},
        }
    )
