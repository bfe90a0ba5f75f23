"""/api/contacts: seed 000, in the {"data": ..., "status": "success"} envelope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import ContactsRead, ContactsWrite
from aisoule.contacts import service
from aisoule.contacts.schemas import (
    API_CONTACT_EXAMPLE,
    ContactApiData,
    ContactCreateApi,
    ContactDeletedApi,
    ContactListApi,
    ContactUpdateApi,
    api_contact,
)
from aisoule.db.session import DBSession
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import Envelope, ErrorEnvelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/contacts", tags=["Contacts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "Missing or invalid credentials"},
    403: {"model": ErrorEnvelope, "description": "Missing scope or CSRF token"},
    404: {"model": ErrorEnvelope, "description": "No such contact in this workspace"},
    422: {"model": ErrorEnvelope, "description": "Invalid field (named in the message)"},
}
_LIST_EXAMPLE = {
    "data": {
        "contacts": [{**API_CONTACT_EXAMPLE, "id": "uuid"}],
        "total": 150,
        "page": 1,
        "per_page": 20,
    },
    "status": "success",
}


@router.get(
    "",
    summary="List contacts",
    response_model=None,
    responses={
        200: {
            "model": Envelope[ContactListApi],
            "content": {"application/json": {"example": _LIST_EXAMPLE}},
        },
        **_ERRORS,
    },
)
async def list_contacts(
    principal: ContactsRead,
    session: DBSession,
    page: Page,
    tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    stage: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Search name, phone, email.")
    ] = None,
) -> ORJSONResponse:
    rows, total = await service.list_contacts(
        session,
        principal.workspace_id,
        limit=page.per_page,
        offset=page.offset,
        tag=tag,
        stage=stage,
        q=q,
    )
    return api_page("contacts", [api_contact(r) for r in rows], total, page)


@router.post(
    "",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Create contact",
    response_model=None,
    responses={201: {"model": Envelope[ContactApiData]}, 409: {"model": ErrorEnvelope}, **_ERRORS},
)
async def create_contact(
    body: ContactCreateApi, principal: ContactsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.create_api(session, principal.workspace_id, body)
    return success({"contact": api_contact(row)}, status_code=201)


@router.get(
    "/{contact_id}",
    summary="Get contact",
    response_model=None,
    responses={200: {"model": Envelope[ContactApiData]}, **_ERRORS},
)
async def get_contact(
    contact_id: str, principal: ContactsRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get_by_uuid(session, principal.workspace_id, contact_id)
    return success({"contact": api_contact(row)})


@router.put(
    "/{contact_id}",
    summary="Update contact (only the fields sent change)",
    response_model=None,
    responses={200: {"model": Envelope[ContactApiData]}, 409: {"model": ErrorEnvelope}, **_ERRORS},
)
async def update_contact(
    contact_id: str, body: ContactUpdateApi, principal: ContactsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.update_api(session, principal.workspace_id, contact_id, body)
    return success({"contact": api_contact(row)})


@router.delete(
    "/{contact_id}",
    summary="Delete contact",
    response_model=None,
    responses={200: {"model": Envelope[ContactDeletedApi]}, **_ERRORS},
)
async def delete_contact(
    contact_id: str, principal: ContactsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.delete_by_uuid(session, principal.workspace_id, contact_id)
    return success({"id": str(row["uuid"]), "deleted": True})
