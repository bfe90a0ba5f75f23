"""Mounts the two API surfaces: /api (seed 000) and /v1 (seed 003)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from aisoule.accounts.endpoints import router as accounts_router
from aisoule.api_keys.endpoints import router as api_keys_router
from aisoule.audit.endpoints import router as audit_router
from aisoule.auth.endpoints import router as auth_router
from aisoule.campaigns.endpoints import router as campaigns_router
from aisoule.contacts.endpoints import router as contacts_router
from aisoule.contacts.endpoints_v1 import router as contacts_v1_router
from aisoule.idempotency.dependencies import idempotency_guard
from aisoule.messages.endpoints import router as messages_router
from aisoule.messages.endpoints_v1 import router as messages_v1_router
from aisoule.templates.endpoints import router as templates_router
from aisoule.webhooks.endpoints import router as meta_webhooks_router
from aisoule.workspaces.endpoints import router as workspaces_router

API_PREFIX = "/api"
V1_PREFIX = "/v1"

# Every POST of both surfaces honours Idempotency-Key, except sign-up and login (no workspace yet).
IDEMPOTENT = [Depends(idempotency_guard)]

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(auth_router)
for router in (
    api_keys_router,
    contacts_router,
    workspaces_router,
    templates_router,
    campaigns_router,
    accounts_router,
    messages_router,
    audit_router,
):
    api_router.include_router(router, dependencies=IDEMPOTENT)

v1_router = APIRouter(prefix=V1_PREFIX)
v1_router.include_router(contacts_v1_router, dependencies=IDEMPOTENT)
v1_router.include_router(messages_v1_router, dependencies=IDEMPOTENT)

# Meta's webhooks: authenticated by their signature, not by a key (see aisoule/webhooks).
webhooks_router = APIRouter()
webhooks_router.include_router(meta_webhooks_router)
