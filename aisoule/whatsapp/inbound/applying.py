"""The worker's side: apply stored events in batches (messages, statuses, template reviews), each
to the account its signature proved and no other, and hand what was applied to ``handoff``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.accounts import service as accounts
from aisoule.kit.time import utcnow
from aisoule.live import service as live
from aisoule.messages import service as messages
from aisoule.models import WhatsAppAccount
from aisoule.runtime import Runtime
from aisoule.templates import service as templates
from aisoule.whatsapp.inbound import handoff
from aisoule.whatsapp.inbound.parsing import MESSAGE, OTHER, STATUS, TEMPLATE, as_dict, at
from aisoule.whatsapp.inbound.repository import WebhookEventRepository

log = structlog.get_logger(__name__)

BATCH = 500
# A status that arrives before the worker committed Meta's answer (its wamid) waits: tried again by
# later runs (QUICK_ATTEMPTS times), then by the reconciler, and given up (stored with an error)
# after MAX_ATTEMPTS tries or GIVE_UP_AFTER, whichever comes first.
QUICK_ATTEMPTS = 3
MAX_ATTEMPTS = 20
GIVE_UP_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class _Event:
    id: int
    kind: str
    account_id: uuid.UUID | None
    payload: dict[str, Any]
    received_at: datetime
    attempts: int


_WAIT = "wait"
AccountFor = Callable[[uuid.UUID | None], Awaitable[WhatsAppAccount | None]]
_UNPROVEN = "not applied: stored before webhook tenancy, with no account proven by its signature"


async def process_batch(
    session: AsyncSession, rt: Runtime, *, after: int, retry: bool = False
) -> tuple[int, int] | None:
    """Apply one batch of unprocessed events with ids above ``after``: (handled, last id), or
    None when there is none. The caller commits.

    ``retry``: also the events that wait for their message beyond the quick attempts (the
    reconciler's run). The batch's rows are held (SKIP LOCKED on PostgreSQL) and applied in
    Meta's timestamp order; one bad event never blocks the others.

    One process applies at a time (PostgreSQL: an advisory lock for the transaction; another
    process's batch waits for it): two batches applied at once each touch many contacts, counter
    shards and conversations in their own order, and deadlocked every second when measured
    (bench/inbox.py, two servers at 50 new customers a second)."""
    repo = WebhookEventRepository(session)
    await repo.take_applier_turn()
    rows = await repo.claim(
        after_id=after, limit=BATCH, max_quick_attempts=None if retry else QUICK_ATTEMPTS
    )
    if not rows:
        return None
    events = [
        _Event(r.id, r.kind, r.account_id, r.payload, r.received_at, r.attempts) for r in rows
    ]
    # The batch's live events are numbered together at its end: the workspace's event counter
    # is then held only until the commit just after, not for the whole batch (aisoule.live).
    live.defer(session)
    done, waiting = await _apply_batch(session, rt, events)
    await repo.finish(done, waiting, utcnow())
    await live.flush(session)
    return len(done), events[-1].id


async def has_pending(session: AsyncSession) -> bool:
    return await WebhookEventRepository(session).has_pending(
        retry=True, max_quick_attempts=QUICK_ATTEMPTS
    )


async def _apply_batch(
    session: AsyncSession, rt: Runtime, events: list[_Event]
) -> tuple[list[tuple[int, str | None]], list[int]]:
    ordered = sorted(events, key=lambda e: (e.payload.get("ts") or 0, e.id))
    found: dict[uuid.UUID, WhatsAppAccount | None] = {}

    async def account_for(account_id: uuid.UUID | None) -> WhatsAppAccount | None:
        """The account the event was proven for: the only one it is applied to."""
        if account_id is None:
            return None
        if account_id not in found:
            found[account_id] = await accounts.get_by_id(session, account_id)
        return found[account_id]

    now = utcnow()
    outcomes: dict[int, str | None] = {}
    try:
        # The whole batch under one savepoint: two round trips instead of two per event. Plain
        # statuses go in bulk (their order does not matter: a status only moves forward).
        async with session.begin_nested():
            bulk = [e for e in ordered if _bulk_status(e)]
            outcomes.update(await _apply_statuses(session, bulk, account_for, now))
            for event in ordered:
                if event.id not in outcomes:
                    outcomes[event.id] = await _apply(session, event, account_for, now)
    except Exception:
        log.warning("webhook_batch_retried_one_by_one", size=len(ordered), exc_info=True)
        outcomes = {}
        live.drop(session, 0)  # the batch's savepoint rolled back: so did its events
        for event in ordered:
            position = live.mark(session)
            try:
                async with session.begin_nested():
                    outcomes[event.id] = await _apply(session, event, account_for, now)
            except Exception as exc:
                live.drop(session, position)
                log.warning("webhook_event_failed", event_id=event.id, exc_info=True)
                outcomes[event.id] = f"{type(exc).__name__}: {exc}"
    done: list[tuple[int, str | None]] = []
    waiting: list[int] = []
    for event in ordered:
        outcome = outcomes[event.id]
        if outcome == _WAIT:
            waiting.append(event.id)
        else:
            done.append((event.id, outcome))
    return done, waiting


_BULK_STATUSES = frozenset({"sent", "delivered", "read"})


def _bulk_status(event: _Event) -> bool:
    return event.kind == STATUS and event.payload["status"].get("status") in _BULK_STATUSES


def _no_account(event: _Event) -> str:
    if event.account_id is None:
        return _UNPROVEN
    return f"the WhatsApp account {event.account_id} is gone"


async def _apply_statuses(
    session: AsyncSession, events: list[_Event], account_for: AccountFor, now: datetime
) -> dict[int, str | None]:
    groups: dict[uuid.UUID | None, list[_Event]] = {}
    for event in events:
        groups.setdefault(event.account_id, []).append(event)
    outcomes: dict[int, str | None] = {}
    for account_id, group in groups.items():
        account = await account_for(account_id)
        if account is None:
            outcomes.update((e.id, _no_account(e)) for e in group)
            continue
        items = [
            (
                str(e.payload["status"]["id"]),
                str(e.payload["status"]["status"]),
                at(e.payload["status"].get("timestamp"), now),
            )
            for e in group
        ]
        refs = {
            wamid: ref
            for e, (wamid, _, _) in zip(group, items, strict=True)
            if (ref := _ref(e.payload["status"])) is not None
        }
        applied = await messages.apply_statuses(session, [account.id], items, refs=refs)
        handed: list[handoff.StatusChange] = []
        for event, (wamid, status, when) in zip(group, items, strict=True):
            if wamid in applied.missing:
                outcomes[event.id] = _not_found(event, wamid, now)
                continue
            outcomes[event.id] = None
            handed.append(
                handoff.StatusChange(account.workspace_id, account.id, wamid, status, when, None)
            )
        await handoff.on_statuses(session, handed, applied.changes)
    return outcomes


def _ref(status: dict[str, Any]) -> str | None:
    """The status's biz_opaque_callback_data: what we sent as the message's recipient_ref."""
    ref = status.get("biz_opaque_callback_data")
    return ref if isinstance(ref, str) and ref else None


def _not_found(event: _Event, wamid: str, now: datetime) -> str:
    """A status for a wamid we do not know (yet): wait, or give up after long enough."""
    if event.attempts + 1 >= MAX_ATTEMPTS or now - event.received_at >= GIVE_UP_AFTER:
        return f"no message with wamid {wamid} after {event.attempts + 1} attempts"
    return _WAIT


async def _apply(
    session: AsyncSession, event: _Event, account_for: AccountFor, now: datetime
) -> str | None:
    """Apply one event to the account it was proven for, every lookup scoped to that account:
    None when done, an error to store, or ``_WAIT`` to try again later."""
    if event.kind == OTHER:
        return None
    account = await account_for(event.account_id)
    if account is None:
        return _no_account(event)
    if event.kind == TEMPLATE:
        # Only this account's templates: a WABA's review never reaches another account's rows.
        if await templates.apply_status_update(session, [account.id], event.payload["value"]):
            await handoff.on_template_status(session, account.id, event.payload["value"])
        return None
    if event.kind == STATUS:
        return await _apply_status(session, event, account, now)
    if event.kind == MESSAGE:
        await _apply_message(session, event, account, now)
        return None
    return None


async def _apply_status(
    session: AsyncSession, event: _Event, account: WhatsAppAccount, now: datetime
) -> str | None:
    item = event.payload["status"]
    errors = item.get("errors") if isinstance(item.get("errors"), list) else None
    wamid, status, when = str(item["id"]), str(item["status"]), at(item.get("timestamp"), now)
    applied = await messages.apply_status(
        session, [account.id], wamid, status, when, errors, biz_opaque_callback_data=_ref(item)
    )
    if not applied:
        return _not_found(event, wamid, now)
    await handoff.on_status(
        session,
        handoff.StatusChange(account.workspace_id, account.id, wamid, status, when, errors),
        applied.change,
    )
    return None


async def _apply_message(
    session: AsyncSession, event: _Event, account: WhatsAppAccount, now: datetime
) -> None:
    msg = event.payload["message"]
    contact = as_dict(event.payload.get("contact"))
    name = as_dict(contact.get("profile")).get("name")
    kind = str(msg.get("type") or "unknown")[:32]
    when = at(msg.get("timestamp"), now)
    # Records the contact, its wa_id and profile name and the message row.
    recorded = await messages.record_inbound(
        session,
        account,
        wa_id=str(contact.get("wa_id") or msg["from"]),
        profile_name=str(name)[:200] if name else None,
        wamid=str(msg["id"]),
        kind=kind,
        payload=msg,
        at=when,
    )
    if recorded is None or recorded.contact_id is None:  # None: a redelivery, handed off before
        return
    event_out = handoff.InboundMessage(
        workspace_id=account.workspace_id,
        account_id=account.id,
        contact_id=recorded.contact_id,
        message_id=recorded.id,
        wamid=str(msg["id"]),
        kind=kind,
        text=_text(msg),
        payload=msg,
        at=when,
    )
    await handoff.on_inbound_message(session, event_out)


def _text(msg: dict[str, Any]) -> str | None:
    """What the customer typed (a text message), or the quick-reply button's text."""
    if msg.get("type") == "text":
        text = as_dict(msg.get("text")).get("body")
    elif msg.get("type") == "button":
        text = as_dict(msg.get("button")).get("text")
    else:
        return None
    return text if isinstance(text, str) else None
