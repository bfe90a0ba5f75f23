"""The signature check, as a dependency: the endpoint only ever sees a verified delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.whatsapp.inbound.signature import Delivery, verify


async def verified_delivery(
    request: Request,
    session: DBSession,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> Delivery:
    raw = await request.body()  # the exact bytes Meta signed
    return await verify(session, get_runtime(request), raw, signature)


VerifiedDelivery = Annotated[Delivery, Depends(verified_delivery)]
