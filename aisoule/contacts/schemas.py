"""Contact input validation (both surfaces) and the two representations of one contact row."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoule.kit.phone import InvalidPhone, digits_only, normalize_phone
from aisoule.kit.validation import InputModel

MAX_TAGS = 50
MAX_TAG_LEN = 64
MAX_CUSTOM_FIELDS = 100
MAX_CUSTOM_VALUE_LEN = 2000
_FIELD_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Scalar = str | int | float | bool | None


def check_phone(value: str) -> str:
    try:
        return normalize_phone(value)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


def check_email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None  # an empty string clears the email, as CRMs send it
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def check_tags(value: list[str]) -> list[str]:
    if len(value) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    out: list[str] = []
    for i, tag in enumerate(value):
        tag = tag.strip()
        if not tag:
            raise ValueError(f"tag {i} is empty")
        if len(tag) > MAX_TAG_LEN:
            raise ValueError(f"tag {i} is longer than {MAX_TAG_LEN} characters")
        if tag not in out:
            out.append(tag)
    return out


def check_custom_fields(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"at most {MAX_CUSTOM_FIELDS} custom fields")
    for key, item in value.items():
        if not _FIELD_KEY.match(key):
            raise ValueError(
                f"key {key!r} must be snake_case: a lowercase letter, then lowercase letters, "
                "digits or underscores (at most 64)"
            )
        if isinstance(item, (dict, list)):
            raise ValueError(
                f"{key!r} must be a string, number, boolean or null, not an object or list"
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{key!r} must be a finite number")
        if isinstance(item, str) and len(item) > MAX_CUSTOM_VALUE_LEN:
            raise ValueError(f"{key!r} is longer than {MAX_CUSTOM_VALUE_LEN} characters")
    return value


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


_PLAYGROUND: dict[str, Any] = {
    "phone": "918856879188",
    "first_name": "Priya",
    "last_name": "Sharma",
    "email": "priya@example.com",
    "tags": ["Lead", "High-Priority"],
    "custom_fields": {"shopify_id": "cust_29813a", "acquisition_source": "AdWords"},
}


class _ContactFields(InputModel):
    model_config = ConfigDict(extra="forbid", str_max_length=2000)

    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    tags: list[str] | None = None
    stage: str | None = Field(default=None, max_length=64)
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="snake_case keys; string, number, boolean or null values."
    )

    _names = field_validator("first_name", "last_name")(_clean_name)
    _email = field_validator("email")(check_email)
    _tags = field_validator("tags")(lambda v: None if v is None else check_tags(v))
    _cf = field_validator("custom_fields")(lambda v: None if v is None else check_custom_fields(v))

    @field_validator("tags", "stage", "custom_fields", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        # null is not a way to clear these: send [] for no tags, or a key: null to drop a field.
        if value is None:
            raise ValueError("must not be null")
        return value


class ContactUpsertV1(_ContactFields):
    """POST /v1/contacts: create, or update the contact with this phone."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PLAYGROUND]})

    phone: str = Field(
        max_length=32,
        description="Mobile number with country code, e.g. 918856879188 (+, spaces, dashes accepted).",
    )

    _phone = field_validator("phone")(check_phone)


class ContactCreateApi(_ContactFields):
    """POST /api/contacts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phone_number": "+919876543210",
                    "name": "John Doe",
                    "email": "john@example.com",
                    "tags": ["customer"],
                    "stage": "Customer",
                    "custom_fields": {"city": "Pune"},
                }
            ]
        }
    )

    phone_number: str = Field(max_length=32, description="E.164, e.g. +919876543210.")
    name: str | None = Field(
        default=None, max_length=401, description="Full name; split at the first space."
    )

    _phone = field_validator("phone_number")(check_phone)
    _name = field_validator("name")(_clean_name)


class ContactUpdateApi(_ContactFields):
    """PUT /api/contacts/{id}: only the fields sent change."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"stage": "Customer", "tags": ["customer", "vip"]}]}
    )

    phone_number: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=401)

    _phone = field_validator("phone_number")(lambda v: None if v is None else check_phone(v))
    _name = field_validator("name")(_clean_name)

    @field_validator("phone_number", mode="before")
    @classmethod
    def _phone_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


def split_name(name: str | None) -> tuple[str | None, str | None]:
    if not name:
        return None, None
    first, _, last = name.partition(" ")
    return first.strip() or None, last.strip() or None


def full_name(first: str | None, last: str | None) -> str | None:
    return " ".join(p for p in (first, last) if p) or None


# --- representations (built from a row mapping; no ORM objects on the hot path) ---


def api_contact(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": str(row["uuid"]),
        "phone_number": row["phone"],
        "name": full_name(row["first_name"], row["last_name"]),
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "tags": row["tags"],
        "stage": row["stage"],
        "custom_fields": row["custom_fields"],
        "created_at": row["created_at"],  # datetimes: rendered by ORJSONResponse (UTC, Z)
        "updated_at": row["updated_at"],
    }


_V1_ID = re.compile(r"cnt_([0-9]{1,18})")


def v1_id(number: int) -> str:
    """A contact's /v1 id: its number within its workspace (not the internal, platform-wide id)."""
    return f"cnt_{number}"


def parse_v1_id(value: str) -> int | None:
    """The number in a /v1 id (``cnt_<digits>``), or None when ``value`` is not one."""
    match = _V1_ID.fullmatch(value)
    return None if match is None else int(match.group(1))


@dataclass(frozen=True, slots=True)
class ContactRef:
    """How another domain's representation names a contact: ``uuid`` on /api, ``v1_id(number)``
    on /v1 (contacts.service.refs() looks them up)."""

    uuid: UUID
    number: int


def v1_contact(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": v1_id(row["number"]),
        "phone": digits_only(row["phone"]),
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "tags": row["tags"],
        "custom_fields": row["custom_fields"],
        "stage": row["stage"],
        "created_at": row["created_at"],  # datetimes: rendered by ORJSONResponse (UTC, Z)
        "updated_at": row["updated_at"],
    }


# --- OpenAPI documentation models ---

# Example contacts for the OpenAPI document (the seeds' own values).
API_CONTACT_EXAMPLE: dict[str, Any] = {
    "id": "0b7e2f0e-3c1e-4a57-9f43-1f3c5d7b9a10",
    "phone_number": "+919876543210",
    "name": "John Doe",
    "first_name": "John",
    "last_name": "Doe",
    "email": None,
    "tags": ["customer"],
    "stage": "Customer",
    "custom_fields": {},
    "created_at": "2026-06-02T08:00:00Z",
    "updated_at": "2026-06-02T08:00:00Z",
}
V1_CONTACT_EXAMPLE: dict[str, Any] = {
    "id": "cnt_918856879188",
    "phone": "918856879188",
    "first_name": "Priya",
    "last_name": "Sharma",
    "email": "priya@example.com",
    "tags": ["Lead"],
    "custom_fields": {},
    "stage": "Lead",
    "created_at": "2026-06-02T08:00:00Z",
    "updated_at": "2026-06-02T08:00:00Z",
}


class ContactApi(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [API_CONTACT_EXAMPLE]})

    id: str = Field(description="UUID")
    phone_number: str = Field(description="E.164 with +")
    name: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    tags: list[str]
    stage: str
    custom_fields: dict[str, Scalar]
    created_at: str
    updated_at: str


class ContactListApi(BaseModel):
    contacts: list[ContactApi]
    total: int
    page: int
    per_page: int


class ContactApiData(BaseModel):
    contact: ContactApi


class ContactDeletedApi(BaseModel):
    id: str
    deleted: bool


class ContactV1(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [V1_CONTACT_EXAMPLE]})

    id: str = Field(description="cnt_<digits>: the contact's number within this workspace")
    phone: str = Field(description="Digits with country code, no +")
    first_name: str | None
    last_name: str | None
    email: str | None
    tags: list[str]
    custom_fields: dict[str, Scalar]
    stage: str
    created_at: str
    updated_at: str


class PaginationV1(BaseModel):
    total: int
    limit: int
    offset: int


class ContactListV1(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "contacts": [V1_CONTACT_EXAMPLE],
                    "pagination": {"total": 1, "limit": 20, "offset": 0},
                }
            ]
        }
    )

    success: bool = True
    contacts: list[ContactV1]
    pagination: PaginationV1


class ContactResultV1(BaseModel):
    success: bool = True
    contact: ContactV1
    created: bool


class ContactOneV1(BaseModel):
    success: bool = True
    contact: ContactV1


class ContactDeletedV1(BaseModel):
    success: bool = True
    id: str
    deleted: bool


class ErrorV1Detail(BaseModel):
    field: str | None = None
    message: str


class ErrorV1Body(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: list[ErrorV1Detail] | None = None


class ErrorV1(BaseModel):
    success: bool = False
    error: ErrorV1Body
