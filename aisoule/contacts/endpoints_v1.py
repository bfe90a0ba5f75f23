"""/v1/contacts: seed 003 (Contacts Management API), {"success": true, ...} bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import ContactsRead, ContactsWrite
from aisoule.contacts import service
from aisoule.contacts.schemas import (
    ContactDeletedV1,
    ContactListV1,
    ContactOneV1,
    ContactResultV1,
    ContactUpsertV1,
    ErrorV1,
    parse_v1_id,
    v1_contact,
    v1_id,
)
from aisoule.db.session import DBSession
from aisoule.exceptions import NotFound
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import v1_page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/contacts", tags=["Contacts (v1)"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorV1, "description": "Missing or invalid API key"},
    403: {"model": ErrorV1, "description": "The key lacks the scope"},
    404: {"model": ErrorV1, "description": "No such contact in this workspace"},
    422: {"model": ErrorV1, "description": "Invalid field (named in error.field)"},
}


def _number(contact_id: str) -> int:
    """The number of a /v1 id; anything else names no contact (404, like a foreign id)."""
    number = parse_v1_id(contact_id)
    if number is None:
        raise NotFound("Contact not found", code="contact_not_found")
    return number


@router.post(
    "",
    dependencies=IDEMPOTENT,
    summary="Create or update contact (by phone)",
    description="Creates the contact (201), or updates the one with this phone (200). Fields sent "
    "overwrite; `tags` replace; `custom_fields` merge key by key, a null value removes a key.",
    response_model=None,
    responses={
        200: {"model": ContactResultV1, "description": "Updated"},
        201: {"model": ContactResultV1, "description": "Created"},
        **_ERRORS,
    },
)
async def upsert_contact(
    body: ContactUpsertV1, principal: ContactsWrite, session: DBSession
) -> ORJSONResponse:
    row, created = await service.upsert_v1(session, principal.workspace_id, body)
    return ORJSONResponse(
        {"success": True, "contact": v1_contact(row), "created": created},
        status_code=201 if created else 200,
    )


@router.get(
    "",
    summary="Retrieve contacts list",
    response_model=None,
    responses={200: {"model": ContactListV1}, **_ERRORS},
)
async def list_contacts(
    principal: ContactsRead,
    session: DBSession,
    limit: Annotated[int, Query(ge=1, le=100, description="Records to return (max 100).")] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000_000, description="Records to skip.")] = 0,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only this tag.")
    ] = None,
) -> ORJSONResponse:
    rows, total = await service.list_contacts(
        session, principal.workspace_id, limit=limit, offset=offset, tag=tag
    )
    return v1_page("contacts", [v1_contact(r) for r in rows], total, limit=limit, offset=offset)


@router.get(
    "/{contact_id}",
    summary="Get contact",
    response_model=None,
    responses={200: {"model": ContactOneV1}, **_ERRORS},
)
async def get_contact(
    contact_id: str, principal: ContactsRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get_by_number(session, principal.workspace_id, _number(contact_id))
    return ORJSONResponse({"success": True, "contact": v1_contact(row)})


@router.delete(
    "/{contact_id}",
    summary="Delete contact",
    response_model=None,
    responses={200: {"model": ContactDeletedV1}, **_ERRORS},
)
async def delete_contact(
    contact_id: str, principal: ContactsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.delete_by_number(session, principal.workspace_id, _number(contact_id))
    return ORJSONResponse({"success": True, "id": v1_id(row["number"]), "deleted": True})
