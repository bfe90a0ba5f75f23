from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from aisoule.api_keys import service
from aisoule.api_keys.schemas import (
    APIKeyCreate,
    APIKeyCreatedData,
    APIKeyListData,
    APIKeyRevokedData,
    APIKeyUsageData,
    created_out,
    key_out,
    usage_out,
)
from aisoule.audit import service as audit
from aisoule.audit.dependencies import request_origin
from aisoule.audit.schemas import AuditEventType
from aisoule.auth.dependencies import KeysManage
from aisoule.db.session import DBSession
from aisoule.exceptions import NotFound
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import Envelope, ErrorEnvelope, success
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/api-keys", tags=["API keys"])


@router.post(
    "",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Create an API key (the secret is shown once)",
    response_model=None,
    responses={201: {"model": Envelope[APIKeyCreatedData]}, 403: {"model": ErrorEnvelope}},
)
async def create_api_key(
    body: APIKeyCreate, request: Request, principal: KeysManage, session: DBSession
) -> ORJSONResponse:
    row, secret = await service.create_key(
        session,
        request.app.state.api_key_pepper,
        workspace_id=principal.workspace_id,
        data=body,
        creator=principal,
        created_by=principal.user_id,
    )
    await audit.record(
        session,
        principal.workspace_id,
        AuditEventType.api_key_created,
        request_origin(request),
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        details={
            "key_id": str(row.id),
            "name": row.name,
            "scopes": row.scopes,
            "prefix": row.prefix,
        },
    )
    return success({"api_key": created_out(row, secret)}, status_code=201)


@router.get(
    "",
    summary="List API keys (never the secrets)",
    response_model=None,
    responses={200: {"model": Envelope[APIKeyListData]}},
)
async def list_api_keys(principal: KeysManage, session: DBSession) -> ORJSONResponse:
    rows = await service.list_keys(session, principal.workspace_id)
    return success({"api_keys": [key_out(r) for r in rows]})


@router.delete(
    "/{key_id}",
    summary="Revoke an API key (effective at once)",
    response_model=None,
    responses={200: {"model": Envelope[APIKeyRevokedData]}, 404: {"model": ErrorEnvelope}},
)
async def revoke_api_key(
    key_id: str, request: Request, principal: KeysManage, session: DBSession
) -> ORJSONResponse:
    parsed = _parse(key_id)
    row, revoked_now = await service.revoke_key(session, principal.workspace_id, parsed)
    # This process forgets at once; the others when the revocation's NOTIFY arrives.
    request.app.state.key_cache.invalidate()
    if revoked_now:
        await audit.record(
            session,
            principal.workspace_id,
            AuditEventType.api_key_revoked,
            request_origin(request),
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            details={"key_id": str(row.id), "name": row.name, "prefix": row.prefix},
        )
    return success({"api_key": key_out(row)})


@router.get(
    "/{key_id}/usage",
    summary="Requests per day and status class over the last 30 days, and last_used_at",
    response_model=None,
    responses={200: {"model": Envelope[APIKeyUsageData]}, 404: {"model": ErrorEnvelope}},
)
async def api_key_usage(key_id: str, principal: KeysManage, session: DBSession) -> ORJSONResponse:
    usage = await service.usage(session, principal.workspace_id, _parse(key_id))
    return success(usage_out(usage))


def _parse(key_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(key_id)
    except ValueError:
        raise NotFound("API key not found") from None
