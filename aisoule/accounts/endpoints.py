"""/api/accounts: connected WhatsApp numbers (seed 000 lists them; the rest is ours)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from aisoule.accounts import service
from aisoule.accounts.schemas import (
    AccountCreate,
    AccountData,
    AccountDeleted,
    AccountList,
    AccountUpdate,
    account_out,
)
from aisoule.auth.dependencies import AccountsRead, AccountsWrite
from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import Envelope, ErrorEnvelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/accounts", tags=["WhatsApp accounts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such account in this workspace"},
    422: {"model": ErrorEnvelope, "description": "Invalid field, or Meta refused the credentials"},
    502: {"model": ErrorEnvelope, "description": "Meta could not be reached"},
}


@router.get(
    "",
    summary="List WhatsApp accounts",
    response_model=None,
    responses={200: {"model": Envelope[AccountList]}},
)
async def list_accounts(
    principal: AccountsRead, session: DBSession, page: Page, request: Request
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=page.per_page, offset=page.offset
    )
    base_url = request.app.state.settings.base_url
    return api_page("accounts", [account_out(r, base_url) for r in rows], total, page)


@router.post(
    "",
    dependencies=IDEMPOTENT,
    summary="Connect a WhatsApp number",
    description="Validated by reading the phone number from Meta with the token given. The "
    "access token and app secret are stored encrypted and never returned.",
    status_code=201,
    response_model=None,
    responses={201: {"model": Envelope[AccountData]}, 409: {"model": ErrorEnvelope}, **_ERRORS},
)
async def connect_account(
    data: AccountCreate, principal: AccountsWrite, session: DBSession, request: Request
) -> ORJSONResponse:
    account = await service.connect(session, get_runtime(request), principal.workspace_id, data)
    return success({"account": account_out(account, request.app.state.settings.base_url)}, 201)


@router.get(
    "/{account_id}",
    summary="Get a WhatsApp account",
    response_model=None,
    responses={200: {"model": Envelope[AccountData]}, **_ERRORS},
)
async def get_account(
    account_id: str, principal: AccountsRead, session: DBSession, request: Request
) -> ORJSONResponse:
    account = await service.get(session, principal.workspace_id, account_id)
    return success({"account": account_out(account, request.app.state.settings.base_url)})


@router.put(
    "/{account_id}",
    summary="Update a WhatsApp account",
    description="Changes only the fields sent; a new access token is validated with Meta first.",
    response_model=None,
    responses={200: {"model": Envelope[AccountData]}, **_ERRORS},
)
async def update_account(
    account_id: str,
    data: AccountUpdate,
    principal: AccountsWrite,
    session: DBSession,
    request: Request,
) -> ORJSONResponse:
    account = await service.update(
        session, get_runtime(request), principal.workspace_id, account_id, data
    )
    return success({"account": account_out(account, request.app.state.settings.base_url)})


@router.delete(
    "/{account_id}",
    summary="Disconnect a WhatsApp account",
    description="Removes the account and its messages and templates from aisoule (not from Meta).",
    response_model=None,
    responses={200: {"model": Envelope[AccountDeleted]}, **_ERRORS},
)
async def delete_account(
    account_id: str, principal: AccountsWrite, session: DBSession
) -> ORJSONResponse:
    deleted = await service.delete(session, principal.workspace_id, account_id)
    return success({"id": str(deleted), "deleted": True})
