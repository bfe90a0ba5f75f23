"""/webhooks/whatsapp: Meta's subscription handshake and its signed deliveries.

No API key, rate limit, CSRF or Idempotency-Key here: Meta authenticates by signature, and
redeliveries are harmless because every event is stored once by its key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from aisoule.db.session import DBSession
from aisoule.dependencies import RuntimeDep
from aisoule.exceptions import Forbidden
from aisoule.kit.responses import ORJSONResponse
from aisoule.whatsapp.inbound import service, signature
from aisoule.whatsapp.inbound.dependencies import VerifiedDelivery

router = APIRouter(prefix="/webhooks", tags=["Webhooks"])

PATH = "/whatsapp"


@router.get(
    PATH,
    summary="Meta's webhook verification",
    description="Answers `hub.challenge` as text when `hub.verify_token` is an account's verify "
    "token or the server's AISOULE_WHATSAPP_VERIFY_TOKEN; 403 otherwise.",
    response_class=PlainTextResponse,
    responses={403: {"description": "Unknown verify token"}},
)
async def verify_subscription(
    session: DBSession,
    rt: RuntimeDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=500)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=500)] = None,
) -> PlainTextResponse:
    if challenge is None or not await signature.handshake(session, rt, mode, token):
        raise Forbidden("hub.verify_token does not match this server's or any account's")
    return PlainTextResponse(challenge)


@router.post(
    PATH,
    summary="Receive Meta's webhook deliveries",
    description="Verifies `X-Hub-Signature-256` over the raw body, stores once each event that "
    "the app secret of the account it names signed, and answers 200 with how many events the "
    "delivery held, how many were new and how many no named account's secret proved (not stored).",
    response_model=None,
    responses={
        400: {"description": "Body is not a JSON object"},
        401: {"description": "Missing or wrong X-Hub-Signature-256, or no event proven"},
    },
)
async def receive(delivery: VerifiedDelivery, session: DBSession) -> ORJSONResponse:
    return ORJSONResponse(await service.receive(session, delivery))
