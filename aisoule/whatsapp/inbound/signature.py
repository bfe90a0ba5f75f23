"""Who is calling: Meta's subscription handshake (a verify token we know) and a delivery's
``X-Hub-Signature-256``, checked per event against the app secret of the account it names.

Tenancy: a delivery carries one signature, over its raw bytes, by one app secret. An event is
proven for an account when the event names it (its phone_number_id, or for a WABA-level event
its WABA) and that account's own secret (accounts.proof_secret) verifies the signature. Each
event is stored once per account it is proven for, with that account's id; the worker applies
it to that account only. Events no named account proves are not stored (logged); a delivery
with no proven event is refused (401), unless the server's own app secret signed it.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.accounts import service as accounts
from aisoule.exceptions import AisouleError, Unauthorized
from aisoule.kit.signing import verify_sha256
from aisoule.kit.time import utcnow
from aisoule.runtime import Runtime
from aisoule.whatsapp.inbound import parsing

log = structlog.get_logger(__name__)

SECRET_CACHE_SECONDS = 30.0
# Each (number, WABA) a delivery names costs a lookup before anything is proven: bound it, so an
# unsigned body cannot make one request run thousands of queries. Meta's deliveries name a few.
MAX_NAMED = 100


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery whose signature was checked: rows to store (one per event and account that
    proved it) and the counts Meta is answered with."""

    rows: list[dict[str, Any]]
    received: int
    unproven: int


def _secret_value(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


@dataclass(frozen=True, slots=True)
class _Accounts:
    at: float
    values: tuple[accounts.WebhookAccount, ...]


# (phone_number_id, waba_id) -> the accounts it names, with their proof secrets. A hit none of
# which proves the delivery is looked up again, so a changed secret works at once; a removed one
# stops within the TTL.
_account_cache: dict[tuple[str | None, str | None], _Accounts] = {}


async def _named(
    session: AsyncSession, rt: Runtime, pair: tuple[str | None, str | None], fresh: bool
) -> tuple[tuple[accounts.WebhookAccount, ...], bool]:
    """The accounts ``pair`` names, and whether they were just read from the database."""
    cached = _account_cache.get(pair)
    if cached is not None and not fresh and time.monotonic() - cached.at < SECRET_CACHE_SECONDS:
        return cached.values, False
    found = await accounts.webhook_accounts(session, rt, phone_number_id=pair[0], waba_id=pair[1])
    if len(_account_cache) > 10_000:
        _account_cache.clear()
    _account_cache[pair] = _Accounts(time.monotonic(), tuple(found))
    return _account_cache[pair].values, True


async def verify(session: AsyncSession, rt: Runtime, raw: bytes, signature: str | None) -> Delivery:
    """The delivery's events proven by ``X-Hub-Signature-256`` over the raw bytes, each for the
    accounts it names whose own app secret signed it (see above); 401 when none is proven.

    The body is parsed only to find whose secrets to try; nothing is stored before the check.
    """
    if not signature or not signature.startswith("sha256=") or len(signature.strip()) != 71:
        raise InvalidSignature(
            "X-Hub-Signature-256: missing or malformed; expected sha256=<64 hex digits>"
        )
    body = parsing.parse(raw)
    checked: dict[str, bool] = {}

    def signed_by(secret: str | None) -> bool:
        if not secret:
            return False
        if secret not in checked:
            checked[secret] = verify_sha256(raw, signature, secret)
        return checked[secret]

    events = parsing.events(raw, body, utcnow())
    pairs = {(e["phone_number_id"], e["waba_id"]) for e in events}
    if len(pairs) > MAX_NAMED:
        raise AisouleError(
            f"The delivery names more than {MAX_NAMED} phone numbers or WABAs",
            status_code=400,
            code="too_many_numbers",
        )
    proven: dict[tuple[str | None, str | None], tuple[accounts.WebhookAccount, ...]] = {}
    for pair in pairs:
        found: tuple[accounts.WebhookAccount, ...] = ()
        if pair != (None, None):
            named, from_db = await _named(session, rt, pair, fresh=False)
            found = tuple(a for a in named if signed_by(a.secret))
            if not found and not from_db:  # a stale cache entry: read it again, once
                named, _ = await _named(session, rt, pair, fresh=True)
                found = tuple(a for a in named if signed_by(a.secret))
        proven[pair] = found
    rows: list[dict[str, Any]] = []
    unproven = 0
    for event in events:
        owners = proven[(event["phone_number_id"], event["waba_id"])]
        if not owners:
            unproven += 1
        for owner in owners:
            rows.append(
                {
                    **event,
                    "key": parsing.event_key(f"{owner.account_id}:{event['key']}"),
                    "account_id": owner.account_id,
                }
            )
    server = _secret_value(rt.settings.whatsapp_app_secret)
    if not rows and not signed_by(server):
        raise InvalidSignature(
            "X-Hub-Signature-256: does not match the body under the app secret of any account "
            "its entries name (sign the raw bytes with the Meta app secret)"
        )
    if unproven:
        log.warning(
            "webhook_events_unproven",
            unproven=unproven,
            named=sorted(f"{p or '-'}/{w or '-'}" for (p, w), v in proven.items() if not v)[:20],
        )
    return Delivery(rows, len(events), unproven)


def verify_token_matches(rt: Runtime, token: str) -> bool:
    server = _secret_value(rt.settings.whatsapp_verify_token)
    return server is not None and hmac.compare_digest(server.encode(), token.encode())


async def handshake(
    session: AsyncSession, rt: Runtime, mode: str | None, token: str | None
) -> bool:
    """Meta's subscription check: mode ``subscribe`` and a verify token we know."""
    if mode != "subscribe" or not token:
        return False
    if verify_token_matches(rt, token):
        return True
    return await accounts.by_verify_token(session, rt, token) is not None
