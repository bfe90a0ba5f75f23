"""WhatsApp accounts: connect a number (validated against Meta), keep its secrets sealed, and give
workers what they need to talk to Meta for it. Every workspace gets a sandbox account on the
bundled emulator when sandboxes are on (the embedded default), so sending works without Meta."""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.accounts.repository import WhatsAppAccountRepository
from aisoule.accounts.schemas import AccountCreate, AccountUpdate
from aisoule.db.engine import outside_transaction, writing
from aisoule.exceptions import Conflict, NotFound, UpstreamFailed, ValidationFailed
from aisoule.kit.crypto import hmac_sha256_hex, seal, unseal
from aisoule.kit.ids import parse_uuid
from aisoule.kit.time import utcnow
from aisoule.models import WhatsAppAccount
from aisoule.runtime import Runtime
from aisoule.whatsapp.provider import (
    ErrorClass,
    MetaAPIError,
    PhoneNumber,
    ProviderKind,
    ProviderOff,
    ProviderUnavailable,
    SendOutcomeUnknown,
    WhatsAppError,
    WhatsAppProvider,
)

log = structlog.get_logger(__name__)

CLOUD_API = ProviderKind.cloud_api.value
EMULATOR = ProviderKind.emulator.value  # a sandbox account
SANDBOX_NAME = "Sandbox (emulator)"


@dataclass(frozen=True, slots=True)
class Sender:
    """What a worker needs to act for one account."""

    account_id: uuid.UUID
    provider: WhatsAppProvider
    phone_number_id: str
    waba_id: str
    access_token: str


# -- reading ------------------------------------------------------------------------------------


async def list_page(
    session: AsyncSession, workspace_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[Sequence[WhatsAppAccount], int]:
    repo = WhatsAppAccountRepository(session)
    rows = await repo.list_page(workspace_id, limit=limit, offset=offset)
    return rows, await repo.count(workspace_id)


async def get(session: AsyncSession, workspace_id: uuid.UUID, account_id: str) -> WhatsAppAccount:
    parsed = parse_uuid(account_id)
    account = await WhatsAppAccountRepository(session).get(workspace_id, parsed) if parsed else None
    if account is None:
        raise NotFound("WhatsApp account not found", code="account_not_found")
    return account


async def get_by_id(session: AsyncSession, account_id: uuid.UUID) -> WhatsAppAccount | None:
    return await WhatsAppAccountRepository(session).get_any(account_id)


async def for_sending(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: str | None
) -> WhatsAppAccount:
    """The account a message goes out through: the one named, or the workspace's default."""
    if account_id is not None:
        parsed = parse_uuid(account_id)
        account = (
            await WhatsAppAccountRepository(session).get(workspace_id, parsed) if parsed else None
        )
        if account is None:
            raise ValidationFailed(
                "account_id: no such WhatsApp account in this workspace", field="account_id"
            )
    else:
        account = await WhatsAppAccountRepository(session).default(workspace_id)
        if account is None:
            raise ValidationFailed(
                "account_id: this workspace has no WhatsApp account; connect one with "
                "POST /api/accounts",
                field="account_id",
                code="no_account",
            )
    if account.status == "token_invalid":
        raise ValidationFailed(
            "account_id: Meta rejected this account's access token (code 190); update it with "
            f"PUT /api/accounts/{account.id}",
            field="account_id",
            code="account_token_invalid",
        )
    return account


@dataclass(frozen=True, slots=True)
class WebhookAccount:
    """An account a webhook event names, and the one app secret that proves a delivery for it."""

    account_id: uuid.UUID
    workspace_id: uuid.UUID
    secret: str | None


def proof_secret(rt: Runtime, account: WhatsAppAccount) -> str | None:
    """The secret Meta signs this account's webhooks with: its own app secret, or (when it has
    none) the server's AISOULE_WHATSAPP_APP_SECRET, which only the operator knows. The emulator's
    shared app secret proves nothing: every user of a sandbox can read it."""
    own = app_secret(rt, account)
    if own is not None:
        return None if own == rt.sandbox_app_secret else own
    server = rt.settings.whatsapp_app_secret
    return server.get_secret_value() if server is not None else None


async def webhook_accounts(
    session: AsyncSession, rt: Runtime, *, phone_number_id: str | None, waba_id: str | None
) -> list[WebhookAccount]:
    """The accounts a webhook event names: the number's one account when it names a number
    (never another account of its WABA), else the WABA's accounts (all of one workspace)."""
    repo = WhatsAppAccountRepository(session)
    if phone_number_id:
        one = await repo.by_phone_number_id_any(phone_number_id)
        rows: Sequence[WhatsAppAccount] = [one] if one is not None else []
    elif waba_id:
        rows = await repo.all_by_waba_id(waba_id)
    else:
        rows = []
    return [WebhookAccount(a.id, a.workspace_id, proof_secret(rt, a)) for a in rows]


async def by_verify_token(session: AsyncSession, rt: Runtime, token: str) -> WhatsAppAccount | None:
    return await WhatsAppAccountRepository(session).by_verify_token_hash(
        hmac_sha256_hex(rt.lookup_key, token)
    )


def app_secret(rt: Runtime, account: WhatsAppAccount) -> str | None:
    if account.app_secret_sealed is None:
        return None
    return unseal(rt.sealing_key, account.app_secret_sealed).decode()


def access_token(rt: Runtime, account: WhatsAppAccount) -> str:
    if account.access_token_sealed is None:
        return ""
    return unseal(rt.sealing_key, account.access_token_sealed).decode()


# -- talking to Meta ----------------------------------------------------------------------------


def provider(rt: Runtime, kind: str, *, field: str = "account_id") -> WhatsAppProvider:
    """The provider an account of this kind talks to (the seam chooses Meta or the emulator);
    a 422 naming ``field`` when this server does not serve it."""
    try:
        return rt.providers.resolve(kind)
    except ProviderOff as exc:
        raise ValidationFailed(f"{field}: {_OFF[field]}", field=field) from exc


_OFF = {
    "provider": "the emulator is off on this server",
    "account_id": "this is a sandbox account and the emulator is off (AISOULE_EMULATOR)",
}


def _number(account: WhatsAppAccount, secret: str | None) -> PhoneNumber:
    return PhoneNumber(
        phone_number_id=account.phone_number_id,
        waba_id=account.waba_id,
        display_phone_number=account.phone_number.lstrip("+"),
        verified_name=account.display_name,
        app_secret=secret,
    )


async def sender(rt: Runtime, account: WhatsAppAccount) -> Sender:
    """What a worker needs to act for the account; its number made known to its provider first
    (with its own app secret, so that a sandbox number's webhooks prove it alone)."""
    client = provider(rt, account.provider)
    await client.ensure_number(_number(account, app_secret(rt, account)))
    return Sender(
        account_id=account.id,
        provider=client,
        phone_number_id=account.phone_number_id,
        waba_id=account.waba_id,
        access_token=access_token(rt, account),
    )


async def register_sandboxes(rt: Runtime) -> None:
    """At start (embedded emulator): register every sandbox number, so webhooks and sends work.

    A sandbox account made before each got its own app secret (they shared the emulator's, which
    every user can read) gets one first, in a short transaction of its own, before any call."""
    async with writing(rt.sessionmaker) as session:
        rows = await WhatsAppAccountRepository(session).by_provider(EMULATOR)
        for account in rows:
            own = app_secret(rt, account)
            if own is None or own == rt.sandbox_app_secret:
                account.app_secret_sealed = seal(rt.sealing_key, _new_secret().encode())
        await session.commit()
    for account in rows:
        await register_sandbox(rt, account)


async def register_sandbox(rt: Runtime, account: WhatsAppAccount) -> None:
    """Register a sandbox number on the emulator; a failure is logged (tried again at first use)."""
    try:
        client = provider(rt, account.provider)
        await client.ensure_number(_number(account, app_secret(rt, account)))
    except Exception as exc:
        log.warning("sandbox_register_failed", account_id=str(account.id), error=repr(exc))


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


async def _read_phone_number(
    client: WhatsAppProvider, phone_number_id: str, token: str
) -> dict[str, Any]:
    try:
        return await client.get_phone_number(phone_number_id, access_token=token)
    except MetaAPIError as exc:
        if exc.code == 190 or exc.classification is ErrorClass.account:
            raise ValidationFailed(
                f"access_token: Meta rejected it ({exc.code}: {exc.message})",
                field="access_token",
                code="meta_rejected",
            ) from exc
        if exc.code == 100:
            raise ValidationFailed(
                f"phone_number_id: Meta does not know it or the token cannot read it "
                f"({exc.code}: {exc.message})",
                field="phone_number_id",
                code="meta_rejected",
            ) from exc
        raise UpstreamFailed(f"Meta answered an error: ({exc.code}) {exc.message}") from exc
    except (ProviderUnavailable, SendOutcomeUnknown) as exc:
        raise UpstreamFailed(f"could not reach the Graph API at {client.base_url}: {exc}") from exc


def _apply_phone_number(account: WhatsAppAccount, node: dict[str, Any]) -> None:
    display = str(node.get("display_phone_number") or "")
    digits = re.sub(r"\D", "", display)
    account.phone_number = f"+{digits}" if digits else account.phone_number
    account.display_name = str(node.get("verified_name") or account.display_name or "")
    account.quality_rating = node.get("quality_rating") or account.quality_rating
    account.messaging_limit = node.get("messaging_limit_tier") or account.messaging_limit


# -- writing ------------------------------------------------------------------------------------


_HELD_ELSEWHERE = (
    "{field}: this {what} is connected to another workspace; a WhatsApp number and its business "
    "account belong to one workspace (disconnect it there first)"
)


async def _refuse_if_held(
    repo: WhatsAppAccountRepository, workspace_id: uuid.UUID, data: AccountCreate
) -> None:
    """409 when the number is already here, or the number or its WABA is another workspace's
    (without saying whose)."""
    held = await repo.by_phone_number_id_any(data.phone_number_id)
    if held is not None and held.workspace_id == workspace_id:
        raise Conflict(
            "phone_number_id: this number is already connected to the workspace",
            field="phone_number_id",
        )
    if held is not None:
        raise Conflict(
            _HELD_ELSEWHERE.format(field="phone_number_id", what="number"),
            field="phone_number_id",
            code="number_held_elsewhere",
        )
    if await repo.waba_held_elsewhere(workspace_id, data.waba_id):
        raise Conflict(
            _HELD_ELSEWHERE.format(field="waba_id", what="WhatsApp Business Account"),
            field="waba_id",
            code="waba_held_elsewhere",
        )


def _refuse_shared_secret(rt: Runtime, secret: str | None) -> None:
    if secret is not None and rt.sandbox_app_secret is not None and secret == rt.sandbox_app_secret:
        raise ValidationFailed(
            "app_secret: this is the emulator's shared app secret, which every user of this "
            "server can read; it proves nothing. Give your Meta app's secret (a sandbox number "
            "gets one of its own when none is given)",
            field="app_secret",
        )


async def connect(
    session: AsyncSession, rt: Runtime, workspace_id: uuid.UUID, data: AccountCreate
) -> WhatsAppAccount:
    """Connect a number: checked here, read from Meta with no transaction open (no lock held
    while Meta answers), then written, checked again under the WABA's lock and a unique index."""
    repo = WhatsAppAccountRepository(session)
    _refuse_shared_secret(rt, data.app_secret)
    await _refuse_if_held(repo, workspace_id, data)
    # An emulator number gets an app secret of its own, so that its webhooks prove it alone.
    secret = data.app_secret or (_new_secret() if data.provider == EMULATOR else None)
    client = provider(rt, data.provider, field="provider")
    async with outside_transaction(session):
        # A number the provider keeps itself (the emulator's) must be there before it is read.
        probe = PhoneNumber(
            phone_number_id=data.phone_number_id,
            waba_id=data.waba_id,
            display_phone_number="1555" + data.phone_number_id[-7:].rjust(7, "0"),
            verified_name=data.name or "aisoule sandbox",
            app_secret=secret,
        )
        try:
            await client.ensure_number(probe)
        except ProviderUnavailable as exc:
            raise UpstreamFailed(str(exc)) from exc
        except MetaAPIError as exc:
            raise ValidationFailed(
                f"phone_number_id: {exc.message}", field="phone_number_id", code="meta_rejected"
            ) from exc
        node = await _read_phone_number(client, data.phone_number_id, data.access_token)
    await repo.lock_waba(data.waba_id)
    await _refuse_if_held(repo, workspace_id, data)  # another request may have connected it
    now = utcnow()
    first = await repo.default(workspace_id) is None
    account = WhatsAppAccount(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        name=data.name,
        phone_number="",
        display_name="",
        status="connected",
        provider=data.provider,
        phone_number_id=data.phone_number_id,
        waba_id=data.waba_id,
        access_token_sealed=seal(rt.sealing_key, data.access_token.encode()),
        app_secret_sealed=seal(rt.sealing_key, secret.encode()) if secret else None,
        verify_token_hash=hmac_sha256_hex(rt.lookup_key, data.verify_token)
        if data.verify_token
        else None,
        throughput=data.throughput,
        is_default=bool(data.is_default) or first,
        created_at=now,
        updated_at=now,
    )
    _apply_phone_number(account, node)
    try:
        await repo.add(account)
    except IntegrityError as exc:
        raise Conflict(
            "phone_number_id: this number is already connected (here or in another workspace)",
            field="phone_number_id",
        ) from exc
    if account.is_default:
        await repo.clear_default(workspace_id, account.id)
    return account


async def update(
    session: AsyncSession,
    rt: Runtime,
    workspace_id: uuid.UUID,
    account_id: str,
    data: AccountUpdate,
) -> WhatsAppAccount:
    account = await get(session, workspace_id, account_id)
    changes = data.model_dump(exclude_unset=True)
    _refuse_shared_secret(rt, changes.get("app_secret"))
    if changes.get("access_token") is not None:
        token = changes["access_token"]
        client = provider(rt, account.provider, field="provider")
        async with outside_transaction(session):  # no lock held while Meta answers
            node = await _read_phone_number(client, account.phone_number_id, token)
        _apply_phone_number(account, node)
        account.access_token_sealed = seal(rt.sealing_key, token.encode())
        account.status, account.last_error = "connected", None
    if changes.get("app_secret") is not None:
        account.app_secret_sealed = seal(rt.sealing_key, changes["app_secret"].encode())
    if changes.get("verify_token") is not None:
        account.verify_token_hash = hmac_sha256_hex(rt.lookup_key, changes["verify_token"])
    if changes.get("name") is not None:
        account.name = changes["name"]
    if changes.get("throughput") is not None:
        account.throughput = changes["throughput"]
    if changes.get("is_default"):
        account.is_default = True
        await WhatsAppAccountRepository(session).clear_default(workspace_id, account.id)
    account.updated_at = utcnow()
    await session.flush()
    return account


async def delete(session: AsyncSession, workspace_id: uuid.UUID, account_id: str) -> uuid.UUID:
    account = await get(session, workspace_id, account_id)
    repo = WhatsAppAccountRepository(session)
    was_default = account.is_default
    await repo.delete(account)
    if was_default:
        nxt = await repo.default(workspace_id)
        if nxt is not None:
            nxt.is_default = True
            await session.flush()
    return account.id


async def mark_token_invalid(session: AsyncSession, account_id: uuid.UUID, reason: str) -> None:
    account = await WhatsAppAccountRepository(session).get_any(account_id)
    if account is not None:
        account.status, account.last_error = "token_invalid", reason[:500]
        account.updated_at = utcnow()
        await session.flush()


async def create_sandbox(
    session: AsyncSession, rt: Runtime, workspace_id: uuid.UUID
) -> WhatsAppAccount | None:
    """A new workspace's own number on the emulator (ids chosen here, registered on first use)."""
    if not rt.settings.sandbox_enabled or rt.sandbox_token is None:
        return None
    phone_number_id = "1" + "".join(secrets.choice("0123456789") for _ in range(14))
    waba_id = "2" + "".join(secrets.choice("0123456789") for _ in range(14))
    now = utcnow()
    account = WhatsAppAccount(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        name=SANDBOX_NAME,
        phone_number="+1555" + phone_number_id[-7:],
        display_name="aisoule sandbox",
        status="connected",
        provider=EMULATOR,
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        access_token_sealed=seal(rt.sealing_key, rt.sandbox_token.encode()),
        # Its own secret: the emulator signs this number's webhooks with it, and only it proves them.
        app_secret_sealed=seal(rt.sealing_key, _new_secret().encode()),
        quality_rating="GREEN",
        messaging_limit="TIER_1K",
        throughput=80,
        is_default=True,
        created_at=now,
        updated_at=now,
    )
    await WhatsAppAccountRepository(session).add(account)
    # Registered on the emulator once committed, before the sign-up answers (never while its
    # transaction holds SQLite's write lock), so a simulated customer can write to it at once;
    # if that fails, at the next start or send.
    queue.after_commit_call(session, functools.partial(register_sandbox, rt, account))
    return account


async def simulate_customer_message(
    session: AsyncSession,
    rt: Runtime,
    workspace_id: uuid.UUID,
    account_id: str,
    *,
    phone: str,
    name: str,
    text: str,
) -> None:
    """Sandbox numbers only: a simulated customer (``phone``, E.164) writes ``text`` to the
    number; the message comes back as Meta's webhook and opens the 24-hour window."""
    account = await get(session, workspace_id, account_id)
    if account.provider != EMULATOR:
        raise ValidationFailed(
            "account_id: only a sandbox number can receive a simulated message", field="account_id"
        )
    text = text.strip()
    if not text or len(text) > 4096:
        raise ValidationFailed("text: write 1 to 4096 characters", field="text")
    client = provider(rt, account.provider)
    number = _number(account, app_secret(rt, account))
    async with outside_transaction(session):
        try:
            await client.ensure_number(number)
            await client.simulate_inbound(
                number.phone_number_id, phone.lstrip("+"), name.strip()[:200] or "Customer", text
            )
        except WhatsAppError as exc:
            raise UpstreamFailed(f"The sandbox could not be reached: {exc}") from exc
