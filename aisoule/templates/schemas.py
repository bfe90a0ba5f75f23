from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoule.kit.time import iso_z
from aisoule.kit.validation import InputModel
from aisoule.models import MessageTemplate

_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
# Meta's template languages: "en", "en_US", "pt_BR", "fil", "zh_CN", ...
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")

Category = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
ParameterFormat = Literal["POSITIONAL", "NAMED"]


class TemplateOut(BaseModel):
    id: str
    account_id: str | None
    meta_id: str | None
    name: str
    language: str
    category: str
    status: str
    parameter_format: str
    components: list[dict[str, Any]]
    rejected_reason: str | None
    created_at: str
    updated_at: str


class TemplateList(BaseModel):
    templates: list[TemplateOut]
    total: int
    page: int
    per_page: int


class TemplateData(BaseModel):
    template: TemplateOut


class TemplateDeleted(BaseModel):
    id: str
    deleted: bool


class TemplateCreate(InputModel):
    """A template in Meta's format, submitted to Meta for review (status PENDING until reviewed)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(
        default=None,
        description="The WhatsApp account whose WABA gets it; default account if unset",
    )
    name: str = Field(description="Lowercase letters, digits and underscores, at most 512")
    language: str = Field(description="Meta's language code, e.g. en_US, en, pt_BR")
    category: Category
    parameter_format: ParameterFormat = Field(
        default="POSITIONAL", description="POSITIONAL ({{1}}, {{2}}) or NAMED ({{first_name}})"
    )
    components: list[dict[str, Any]] = Field(
        description="Meta's components: HEADER, BODY (required), FOOTER, BUTTONS"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1 to 512 lowercase letters, digits and underscores (e.g. order_update)"
            )
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not _LANGUAGE.match(value):
            raise ValueError("must be a language code such as en_US, en or pt_BR")
        return value

    @field_validator("category", "parameter_format", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class TemplateSync(InputModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(default=None, description="Default: the default account")


class SyncSkipped(BaseModel):
    name: str
    language: str
    reason: str


class SyncResult(BaseModel):
    created: int
    updated: int
    deleted: int
    skipped: list[SyncSkipped] = Field(
        description="Templates Meta holds that could not be stored here, and why"
    )


def template_out(row: MessageTemplate) -> dict[str, object]:
    return {
        "id": str(row.id),
        "account_id": str(row.account_id) if row.account_id else None,
        "meta_id": row.meta_id,
        "name": row.name,
        "language": row.language,
        "category": row.category,
        "status": row.status,
        "parameter_format": row.parameter_format,
        "components": row.components,
        "rejected_reason": row.rejected_reason,
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
    }
