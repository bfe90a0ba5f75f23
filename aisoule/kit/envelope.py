"""The /api envelope: ``{"data": ..., "status": "success"}``; its models document it in OpenAPI."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

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
