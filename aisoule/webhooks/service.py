"""Meta's webhooks: verify a delivery over its raw bytes, split it into events stored once by key,
and apply the stored events from a worker (messages, statuses, template reviews).

Receiving does the least it can (one lookup, one INSERT ... ON CONFLICT DO NOTHING, a commit), so
Meta gets its 200 fast; everything else happens in ``process``, which may run on any worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.accounts import service as accounts
from aisoule.contacts import service as contacts
from aisoule.exceptions import AisouleError, Unauthorized
from aisoule.kit.signing import verify_sha256
from aisoule.kit.time import utcnow
from aisoule.messages import service as messages
from aisoule.models import WhatsAppAccount
from aisoule.runtime import Runtime
from aisoule.webhooks.repository import WebhookEventRepository

log = structlog.get_logger(__name__)

MESSAGE, STATUS, TEMPLATE, OTHER = "message", "status", "template", "other"
KEY_MAX = 200
BATCH = 500
# A status that arrives before the worker committed Meta's answer (its wamid) waits: tried again by
# later runs (QUICK_ATTEMPTS times), then by the reconciler, and given up (stored with an error)
# after MAX_ATTEMPTS tries or GIVE_UP_AFTER, whichever comes first.
QUICK_ATTEMPTS = 3
MAX_ATTEMPTS = 20
GIVE_UP_AFTER = timedelta(minutes=10)
SECRET_CACHE_SECONDS = 30.0

# Replies that mean "stop messaging me" / "you may again", compared trimmed and case-folded.
STOP_WORDS = frozenset(
    {
        "stop",
        "stop all",
        "stopall",
        "unsubscribe",
        "opt out",
        "opt-out",
        "optout",
        "cancel",
        "end",
        "quit",
        "parar",  # es, pt
        "arrêter",  # fr
        "arreter",
        "stopp",  # de, no, sv
        "रोकें",  # hi
        "रोको",
    }
)
START_WORDS = frozenset({"start", "unstop", "subscribe"})


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


# -- receiving ----------------------------------------------------------------------------------


def _secret_value(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


#
# Tenancy: a delivery carries one signature, over its raw bytes, by one app secret. An event is
# proven for an account when the event names it (its phone_number_id, or for a WABA-level event
# its WABA) and that account's own secret (accounts.proof_secret) verifies the signature. Each
# event is stored once per account it is proven for, with that account's id; the worker applies
# it to that account only. Events no named account proves are not stored (logged); a delivery
# with no proven event is refused (401), unless the server's own app secret signed it.


@dataclass(frozen=True, slots=True)
class _Accounts:
    at: float
    values: tuple[accounts.WebhookAccount, ...]


# (phone_number_id, waba_id) -> the accounts it names, with their proof secrets. A hit none of
# which proves the delivery is looked up again, so a changed secret works at once; a removed one
# stops within the TTL.
_account_cache: dict[tuple[str | None, str | None], _Accounts] = {}


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery whose signature was checked: rows to store (one per event and account that
    proved it) and the counts Meta is answered with."""

    rows: list[dict[str, Any]]
    received: int
    unproven: int


async def _named(
    session: AsyncSession, rt: Runtime, pair: tuple[str | None, str | None], fresh: bool
) -> tuple[accounts.WebhookAccount, ...]:
    cached = _account_cache.get(pair)
    if cached is not None and not fresh and time.monotonic() - cached.at < SECRET_CACHE_SECONDS:
        return cached.values
    found = await accounts.webhook_accounts(session, rt, phone_number_id=pair[0], waba_id=pair[1])
    if len(_account_cache) > 10_000:
        _account_cache.clear()
    _account_cache[pair] = _Accounts(time.monotonic(), tuple(found))
    return _account_cache[pair].values


_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]")


def _clean(value: Any) -> tuple[Any, bool]:
    """``value`` without NUL characters and with lone surrogates replaced (U+FFFD), in keys and
    strings at any depth; and whether anything changed."""
    if isinstance(value, str):
        out = value.replace("\x00", "")
        try:
            out.encode()
        except UnicodeEncodeError:
            out = out.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return out, out != value
    if isinstance(value, list):
        items = [_clean(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        changed = False
        out_d: dict[str, Any] = {}
        for k, v in value.items():
            ck, kc = _clean(k)
            cv, vc = _clean(v)
            out_d[ck] = cv
            changed = changed or kc or vc
        return out_d, changed
    return value, False


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses lone surrogates (\ud800), which Python's own parser reads; the events
        # are cleaned of them before they are stored (see _clean).
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise AisouleError(
                "Body is not valid JSON", status_code=400, code="invalid_json"
            ) from None
    if not isinstance(body, dict):
        raise AisouleError("Body must be a JSON object", status_code=400, code="invalid_json")
    return body


async def verify(session: AsyncSession, rt: Runtime, raw: bytes, signature: str | None) -> Delivery:
    """The delivery's events proven by ``X-Hub-Signature-256`` over the raw bytes, each for the
    accounts it names whose own app secret signed it (see above); 401 when none is proven.

    The body is parsed only to find whose secrets to try; nothing is stored before the check.
    """
    if not signature or not signature.startswith("sha256=") or len(signature.strip()) != 71:
        raise InvalidSignature(
            "X-Hub-Signature-256: missing or malformed; expected sha256=<64 hex digits>"
        )
    body = _parse(raw)
    checked: dict[str, bool] = {}

    def signed_by(secret: str | None) -> bool:
        if not secret:
            return False
        if secret not in checked:
            checked[secret] = verify_sha256(raw, signature, secret)
        return checked[secret]

    events = split(body, utcnow())
    if _SUSPECT.search(raw):
        # NUL, or a lone surrogate: neither PostgreSQL's jsonb and text nor UTF-8 can hold them.
        # The events are stored and applied without them; the signed bytes are kept beside.
        body, changed = _clean(body)
        if changed:
            events = [{**e, "raw": raw} for e in split(body, utcnow())]
    proven: dict[tuple[str | None, str | None], tuple[accounts.WebhookAccount, ...]] = {}
    for pair in {(e["phone_number_id"], e["waba_id"]) for e in events}:
        if pair == (None, None):
            proven[pair] = ()
            continue
        for fresh in (False, True):
            found = tuple(a for a in await _named(session, rt, pair, fresh) if signed_by(a.secret))
            if found:
                break
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
                    "key": _key(f"{owner.account_id}:{event['key']}"),
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


async def receive(session: AsyncSession, delivery: Delivery) -> dict[str, int]:
    """Store the delivery's proven events (each key once) and have them applied after commit:
    events in the delivery, rows new to us, events not proven (not stored)."""
    new = await WebhookEventRepository(session).insert_new(delivery.rows)
    if new:
        queue.after_commit(session, queue.PROCESS_WEBHOOKS)
    return {"received": delivery.received, "new": new, "unproven": delivery.unproven}


# -- splitting a delivery into events ----------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text[:64] if text else None


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _ts(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _key(key: str) -> str:
    if len(key) <= KEY_MAX:
        return key
    return key[: KEY_MAX - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()


def split(body: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One row per event: inbound messages, statuses, template reviews, and anything else whole."""
    rows: dict[str, dict[str, Any]] = {}

    def add(
        key: str,
        kind: str,
        payload: dict[str, Any],
        pnid: str | None = None,
        waba_id: str | None = None,
    ) -> None:
        key = _key(key)
        if key not in rows:
            rows[key] = {
                "key": key,
                "kind": kind,
                "phone_number_id": pnid,
                "waba_id": waba_id,
                "payload": payload,
                "raw": None,
                "received_at": now,
                "attempts": 0,
            }

    def other(value: Any, waba_id: str | None = None, entry_time: Any = None) -> None:
        add(
            f"other:{_digest(value)}",
            OTHER,
            {"value": value, "ts": _ts(entry_time)},
            waba_id=waba_id,
        )

    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        other(body)
    for entry in _list(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            other(entry, _str(entry.get("id")) if isinstance(entry, dict) else None)
            continue
        waba_id = _str(entry.get("id"))
        entry_time = entry.get("time")
        for change in entry["changes"]:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                other(change, waba_id, entry_time)
                continue
            field, value = change.get("field"), change["value"]
            if field == "messages":
                if not _split_messages(value, waba_id, add):
                    other(change, waba_id, entry_time)
            elif field == "message_template_status_update" and value.get("event"):
                when = _str(entry_time) or _digest(value)
                add(
                    f"template:{_str(value.get('message_template_id'))}:{value['event']}:{when}",
                    TEMPLATE,
                    {"field": field, "value": value, "ts": _ts(entry_time)},
                    waba_id=waba_id,
                )
            else:
                other(change, waba_id, entry_time)
    return list(rows.values())


def _split_messages(value: dict[str, Any], waba_id: str | None, add: Callable[..., None]) -> bool:
    metadata = _dict(value.get("metadata"))
    pnid = _str(metadata.get("phone_number_id"))
    contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]
    found = False
    for msg in _list(value.get("messages")):
        if not isinstance(msg, dict) or not _str(msg.get("id")) or not _str(msg.get("from")):
            continue
        contact = next((c for c in contacts if c.get("wa_id") == msg["from"]), None)
        if contact is None and len(contacts) == 1:
            contact = contacts[0]
        payload = {
            "metadata": metadata,
            "contact": contact,
            "message": msg,
            "ts": _ts(msg.get("timestamp")),
        }
        add(f"message:{msg['id']}", MESSAGE, payload, pnid, waba_id)
        found = True
    for item in _list(value.get("statuses")):
        if not isinstance(item, dict) or not _str(item.get("id")) or not _str(item.get("status")):
            continue
        payload = {"metadata": metadata, "status": item, "ts": _ts(item.get("timestamp"))}
        add(f"status:{item['id']}:{item['status']}", STATUS, payload, pnid, waba_id)
        found = True
    return found


# -- applying stored events (worker) -----------------------------------------------------------


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
    """
    repo = WebhookEventRepository(session)
    rows = await repo.claim(
        after_id=after, limit=BATCH, max_quick_attempts=None if retry else QUICK_ATTEMPTS
    )
    if not rows:
        return None
    events = [
        _Event(r.id, r.kind, r.account_id, r.payload, r.received_at, r.attempts) for r in rows
    ]
    done, waiting = await _apply_batch(session, rt, events)
    await repo.finish(done, waiting, utcnow())
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
        for event in ordered:
            try:
                async with session.begin_nested():
                    outcomes[event.id] = await _apply(session, event, account_for, now)
            except Exception as exc:
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
                _at(e.payload["status"].get("timestamp"), now),
            )
            for e in group
        ]
        missing = await messages.apply_statuses(session, [account.id], items)
        for event, (wamid, _, _) in zip(group, items, strict=True):
            outcomes[event.id] = _not_found(event, wamid, now) if wamid in missing else None
    return outcomes


def _not_found(event: _Event, wamid: str, now: datetime) -> str:
    """A status for a wamid we do not know (yet): wait, or give up after long enough."""
    if event.attempts + 1 >= MAX_ATTEMPTS or now - event.received_at >= GIVE_UP_AFTER:
        return f"no message with wamid {wamid} after {event.attempts + 1} attempts"
    return _WAIT


def _at(ts: Any, default: datetime) -> datetime:
    value = _ts(ts)
    if value is None:
        return default
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return default


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
        return await _apply_template(session, account, event)
    if event.kind == STATUS:
        item = event.payload["status"]
        errors = item.get("errors") if isinstance(item.get("errors"), list) else None
        applied = await messages.apply_status(
            session,
            [account.id],
            str(item["id"]),
            str(item["status"]),
            _at(item.get("timestamp"), now),
            errors,
        )
        return None if applied else _not_found(event, str(item["id"]), now)
    if event.kind == MESSAGE:
        await _apply_message(session, event, account, now)
        return None
    return None


async def _apply_message(
    session: AsyncSession, event: _Event, account: WhatsAppAccount, now: datetime
) -> None:
    msg = event.payload["message"]
    contact = _dict(event.payload.get("contact"))
    name = _dict(contact.get("profile")).get("name")
    kind = str(msg.get("type") or "unknown")[:32]
    words = _keyword(msg)
    recorded = await messages.record_inbound(
        session,
        account,
        wa_id=str(contact.get("wa_id") or msg["from"]),
        profile_name=str(name)[:200] if name else None,
        wamid=str(msg["id"]),
        kind=kind,
        payload=msg,
        at=_at(msg.get("timestamp"), now),
    )
    if recorded is None or recorded.contact_id is None or words is None:
        return
    if words in STOP_WORDS:
        await contacts.opt_out(session, account.workspace_id, recorded.contact_id, "stop_keyword")
    elif words in START_WORDS:
        await contacts.opt_in(session, account.workspace_id, recorded.contact_id)


def _keyword(msg: dict[str, Any]) -> str | None:
    """The message's text, normalised for keyword matching (text messages and quick replies)."""
    if msg.get("type") == "text":
        text = _dict(msg.get("text")).get("body")
    elif msg.get("type") == "button":
        text = _dict(msg.get("button")).get("text")
    else:
        return None
    if not isinstance(text, str) or len(text) > 40:
        return None
    words = " ".join(unicodedata.normalize("NFC", text).split()).strip(" .!¡").casefold()
    return words or None


async def _apply_template(
    session: AsyncSession, account: WhatsAppAccount, event: _Event
) -> str | None:
    from aisoule.templates import service as templates

    # Only this account's templates: a WABA's review never reaches another account's rows.
    await templates.apply_status_update(session, [account.id], event.payload["value"])
    return None
