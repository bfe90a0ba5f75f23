"""Messages: refuse what Meta would refuse, queue the rest, send from a worker, and move each
message forward from Meta's answers and status webhooks (never backwards)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue, runtime
from aisoule.accounts import service as accounts
from aisoule.config import get_settings
from aisoule.contacts import service as contacts
from aisoule.conversations import service as conversations
from aisoule.db.engine import outside_transaction
from aisoule.exceptions import Conflict, NotFound, ValidationFailed
from aisoule.kit import http
from aisoule.kit.ids import parse_uuid
from aisoule.kit.phone import InvalidPhone, normalize_phone
from aisoule.kit.time import iso_z, utcnow
from aisoule.messages import checks, payload
from aisoule.messages import status as st
from aisoule.messages.repository import MessageRepository, text_match
from aisoule.messages.schemas import MEDIA_TYPES, MessageSend
from aisoule.models import Message, MessageStatusEvent, MessageTemplate, WhatsAppAccount
from aisoule.runtime import Runtime
from aisoule.templates import service as templates
from aisoule.whatsapp import media
from aisoule.whatsapp.pacing import Slot, wait_for_slot
from aisoule.whatsapp.provider import (
    ErrorClass,
    MetaAPIError,
    ProviderUnavailable,
    SendOutcomeUnknown,
    SentMessage,
    classify,
)

log = structlog.get_logger(__name__)

MESSAGE_NOT_FOUND = "Message not found"


# -- sending: checks and queueing ---------------------------------------------------------------


async def send(
    session: AsyncSession,
    rt: Runtime,
    workspace_id: uuid.UUID,
    data: MessageSend,
    idempotency_key: str | None = None,
    *,
    context_wamid: str | None = None,
) -> tuple[Message, bool]:
    """Check, write the message ``queued`` and enqueue it after commit: (message, created).
    ``context_wamid``: the message it replies to (Meta shows it quoted)."""
    repo = MessageRepository(session)
    if idempotency_key:
        earlier = await repo.by_idempotency_key(workspace_id, idempotency_key)
        if earlier is not None:
            return earlier, False
    account = await accounts.for_sending(session, workspace_id, data.account_id)
    # A free-form message needs a customer who wrote in, so it never creates a contact: nothing
    # is written before its media check (network I/O, outside any write transaction).
    contact = await _recipient(session, workspace_id, account.id, data)
    state = checks.RecipientState()
    if contact is not None:
        state = checks.RecipientState(
            opted_out_at=contact.get("opted_out_at"),
            opt_out_reason=contact.get("opt_out_reason"),
            last_inbound_at=contact.get("last_inbound_at"),
        )
    checks.consent(state)  # before the template lookup: an opted-out contact costs no more
    if data.type == "template":
        assert data.template is not None
        found = await templates.named_for_sending(
            session, workspace_id, account.id, data.template.name
        )
        state = dataclasses.replace(state, templates=found)
    template = checks.check(data, state, utcnow())
    if data.type in MEDIA_TYPES:
        async with outside_transaction(session):
            await _check_media(rt.http_policy, data)
    assert contact is not None  # checks.window refused a free-form message to a stranger
    body, preview = payload.build(data, contact["phone"], template)
    if context_wamid is not None:
        body = {**body, "context": {"message_id": context_wamid}}
    now = utcnow()
    message_id = uuid.uuid4()
    # Meta echoes biz_opaque_callback_data in the status webhooks: a send whose answer is lost
    # (a timeout after the request left) is settled by them (see apply_status).
    body = {**body, "biz_opaque_callback_data": str(message_id)}
    message = Message(
        id=message_id,
        workspace_id=workspace_id,
        account_id=account.id,
        contact_id=contact["id"],
        direction="outbound",
        type=data.type,
        phone=contact["phone"],
        payload=body,
        preview=preview,
        status=st.QUEUED,
        status_rank=st.RANK[st.QUEUED],
        idempotency_key=idempotency_key,
        template_id=template.id if template else None,
        recipient_ref=str(message_id),
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    try:
        # No savepoint: a duplicate key fails the whole request, which is rolled back anyway.
        # The "queued" history entry is the row's created_at (see history()).
        await repo.add(message)
    except IntegrityError as exc:
        raise Conflict(
            "Idempotency-Key: a message with this key is being created; retry",
            code="idempotency_conflict",
        ) from exc
    queue.after_commit(session, queue.SEND_MESSAGE, str(message.id))
    return message, True


async def _recipient(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID, data: MessageSend
) -> Any:
    """The contact ``data.to`` names, with its consent and (free-form messages) when it last
    wrote to this account, in one statement. A phone number with no contact yet: created for a
    template, None for a free-form message."""
    extra: contacts.Extra | None = None
    if data.type != "template":

        def extra(contact_id: Any) -> dict[str, Any]:
            return {"last_inbound_at": conversations.last_inbound_column(account_id, contact_id)}

    to = data.to
    if to.startswith("cnt_") or parse_uuid(to) is not None:
        row = await contacts.find_recipient(session, workspace_id, reference=to, extra=extra)
        if row is None:
            raise ValidationFailed("to: no such contact in this workspace", field="to")
        return row
    try:
        phone = normalize_phone(to)
    except InvalidPhone as exc:
        raise ValidationFailed(
            f"to: {exc} (give a phone number with country code or a contact id)", field="to"
        ) from None
    row = await contacts.find_recipient(session, workspace_id, phone=phone, extra=extra)
    if row is None and data.type == "template":
        row, _ = await contacts.ensure_by_phone(session, workspace_id, phone)
    return row


async def _check_media(policy: http.Policy, data: MessageSend) -> None:
    """Refuse what Meta would refuse to fetch, from the link and a HEAD of it through kit/http
    (never a private address; the refusal never repeats what the link's server answered)."""
    obj = getattr(data, data.type)
    field = f"{data.type}.link"
    mime = obj.mime_type
    size: int | None = None
    told = False  # the type or size came from the link's server
    if obj.link is not None:
        mime = mime or media.guess_type(obj.link)
        try:
            answer = await http.fetch(policy, "HEAD", obj.link)
        except http.FetchError as exc:
            raise ValidationFailed(
                f"{field}: the URL could not be checked: {exc.reason}",
                field=field,
                code="media_link_unreachable",
            ) from None
        # An error status is no verdict: many stores (S3 presigned GET URLs) refuse HEAD only.
        if answer.status < 400:
            if mime is None and answer.headers.get("Content-Type"):
                mime, told = answer.headers["Content-Type"], True
            length = answer.headers.get("Content-Length", "")
            if length.isascii() and length.isdigit():
                size, told = int(length), True
    why = media.problem(data.type, mime, size, echo=not told)
    if why:
        raise ValidationFailed(f"{field}: {why}", field=field, code="unsupported_media")


# -- sending many: one statement, one task --------------------------------------------------------

BATCH_MAX = 1000  # rows in one INSERT: well under both databases' limit of bound parameters


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One message of a batch, already checked by the caller (checks.py, consent, its own rules):
    ``payload`` is Meta's message JSON (payload.build, or a campaign's rendering of a template).
    ``recipient_ref`` names the caller's recipient (e.g. a campaign recipient's id): stored on the
    message and sent to Meta as ``biz_opaque_callback_data``, which its status webhooks echo."""

    contact_id: int | None
    phone: str  # E.164 with +
    payload: dict[str, Any]
    preview: str | None = None
    template_id: uuid.UUID | None = None
    recipient_ref: str | None = None


async def enqueue_batch(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    account: WhatsAppAccount,
    items: Sequence[BatchItem],
    *,
    campaign_id: uuid.UUID | None = None,
    send: bool = True,
) -> list[uuid.UUID]:
    """Write ``items`` as ``queued`` messages in one statement, and one task that sends them all,
    enqueued after the caller's commit (whoever commits the session flushes it): the message ids,
    in the order of ``items``. The reconciler sends whatever a lost task leaves behind.

    ``send=False``: no task; the caller sends them itself (claim, send_to_meta, record_outcomes),
    as a campaign's dispatcher does. A campaign's messages (``campaign_id``) are its dispatcher's
    alone: the messages reconciler neither sends nor settles them (campaigns/engine.py does)."""
    if account.workspace_id != workspace_id:
        raise ValueError("enqueue_batch: the account is not this workspace's")
    if len(items) > BATCH_MAX:
        raise ValueError(f"enqueue_batch: at most {BATCH_MAX} messages at a time")
    if not items:
        return []
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for item in items:
        body = item.payload
        if item.recipient_ref is not None and "biz_opaque_callback_data" not in body:
            body = {**body, "biz_opaque_callback_data": item.recipient_ref}
        rows.append(
            {
                "id": uuid.uuid4(),
                "workspace_id": workspace_id,
                "account_id": account.id,
                "contact_id": item.contact_id,
                "direction": "outbound",
                "type": str(body.get("type") or "text"),
                "phone": item.phone,
                "payload": body,
                "preview": item.preview,
                "status": st.QUEUED,
                "status_rank": st.RANK[st.QUEUED],
                "template_id": item.template_id,
                "campaign_id": campaign_id,
                "recipient_ref": item.recipient_ref,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    await MessageRepository(session).add_many(rows)
    ids = [r["id"] for r in rows]
    if send:
        queue.after_commit(session, queue.SEND_BATCH, [str(i) for i in ids])
    return ids


# -- what changed: returned to callers that keep their own state in step (a campaign) ----------


@dataclass(frozen=True, slots=True)
class Change:
    """One message moved from ``previous`` to ``status`` (by Meta's answer, a status webhook, a
    crash sweep or a refusal before sending), with what the caller needs to follow it without
    reading the message again: its campaign and recipient reference, and Meta's error."""

    message_id: uuid.UUID
    campaign_id: uuid.UUID | None
    recipient_ref: str | None
    previous: str
    status: str
    error: dict[str, Any] | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Applied:
    """What ``apply_status`` did: ``found`` (truthy) when a message has the wamid; ``change`` when
    the status moved it forward."""

    found: bool
    change: Change | None = None

    def __bool__(self) -> bool:
        return self.found


@dataclass(frozen=True, slots=True)
class AppliedMany:
    """What ``apply_statuses`` did: the wamids with no message (yet), and what moved."""

    missing: set[str]
    changes: list[Change]


# -- the worker's side: one path for one message and for a batch --------------------------------


async def claim(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> list[tuple[Message, WhatsAppAccount]]:
    """Queued → sending, once, in one statement: the messages claimed here (two workers given the
    same ids never both claim one), with their accounts, in the order of ``message_ids``."""
    claimed = await MessageRepository(session).claim(message_ids, utcnow())
    found: dict[uuid.UUID, WhatsAppAccount | None] = {}
    for m in claimed:
        if m.account_id not in found:
            found[m.account_id] = await accounts.get_by_id(session, m.account_id)
    order = {mid: i for i, mid in enumerate(message_ids)}
    out = [(m, a) for m in claimed if (a := found[m.account_id]) is not None]
    return sorted(out, key=lambda pair: order[pair[0].id])


@dataclass(frozen=True, slots=True)
class Deferred:
    """Not sent, on purpose: our own pacing says wait ``seconds`` (e.g. Meta's pair rate to this
    recipient). Nothing reached Meta, so it costs no attempt."""

    seconds: float
    reason: str


SendOutcome = SentMessage | MetaAPIError | SendOutcomeUnknown | ProviderUnavailable | Deferred

# Meta: after 131049 (per-user marketing limit) "wait at least 24 hours before resending".
MARKETING_LIMIT_WAIT = timedelta(hours=24)
MARKETING_LIMIT = 131049
PAIR_RATE = 131056


async def send_to_meta(rt: Runtime, message: Message, account: WhatsAppAccount) -> SendOutcome:
    """The one call to Meta for one claimed message (``send_many`` of one)."""
    return (await send_many(rt, [(message, account)]))[0]


async def send_many(
    rt: Runtime, claimed: Sequence[tuple[Message, WhatsAppAccount]]
) -> list[SendOutcome]:
    """The calls to Meta for claimed messages (as ``claim`` returned them), concurrently, each at
    its number's pace and Meta's pair rate (deferred rather than provoke 131056): per account,
    one sender and one pacing reservation for all its messages. The outcomes in the order of
    ``claimed``. No database work here: no transaction stays open while Meta answers."""
    outcomes: list[SendOutcome | None] = [None] * len(claimed)
    groups: dict[uuid.UUID, list[int]] = {}
    for i, (_, account) in enumerate(claimed):
        groups.setdefault(account.id, []).append(i)
    calls = []
    for indexes in groups.values():
        account = claimed[indexes[0]][1]
        try:
            # Nothing has left for Meta yet: any failure here is a send to try again later,
            # never a stray exception that would strand the rest of its chunk in "sending".
            sender = await accounts.sender(rt, account)
            if rt.pacer is not None:
                slots = await rt.pacer.slots(
                    account.phone_number_id,
                    account.throughput,
                    [claimed[i][0].phone for i in indexes],
                    period=rt.settings.pair_period_seconds,
                    burst=rt.settings.pair_burst,
                )
            else:
                slots = [Slot(0.0)] * len(indexes)
        except (MetaAPIError, ProviderUnavailable) as exc:
            for i in indexes:
                outcomes[i] = exc
            continue
        except Exception as exc:
            log.warning("send_setup_failed", account_id=str(account.id), exc_info=True)
            for i in indexes:
                outcomes[i] = ProviderUnavailable(f"before sending: {type(exc).__name__}")
            continue
        for i, slot in zip(indexes, slots, strict=True):
            if slot.defer > 0:
                outcomes[i] = Deferred(slot.defer, "pair_rate")
            else:
                calls.append((i, _send_one(sender, claimed[i][0], slot)))
    if calls:
        answers = await asyncio.gather(*(call for _, call in calls))
        for (i, _), answer in zip(calls, answers, strict=True):
            outcomes[i] = answer
    return [o if o is not None else ProviderUnavailable("not sent") for o in outcomes]


async def _send_one(sender: accounts.Sender, message: Message, slot: Slot) -> SendOutcome:
    await wait_for_slot(slot)
    try:
        return await sender.provider.send_message(
            sender.phone_number_id, message.payload, access_token=sender.access_token
        )
    except (MetaAPIError, SendOutcomeUnknown, ProviderUnavailable) as exc:
        return exc


async def record_outcomes(
    session: AsyncSession, rt: Runtime, outcomes: Sequence[tuple[Message, SendOutcome]]
) -> list[Change]:
    """Meta's answers onto the claimed messages (as ``claim`` returned them): accepted (wamid),
    failed, retried later, or unknown; one statement for the messages and one for their history,
    however many there are. Returns what changed, message by message (``queued``: a retry
    later).

    A message a status webhook settled while its send was in flight (its wamid taken from the
    webhook's biz_opaque_callback_data, or already queued again by a 131049) is left as the
    webhook left it, and is not among the changes: whoever follows it (a campaign recipient) has
    already moved with the webhook, and moving it again by the now stale answer would undo that
    (a recipient ``sent`` while its message waits a day for Meta's 131049 retry)."""
    now = utcnow()
    changes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    moved: list[Change] = []
    repo = MessageRepository(session)
    waiting = await repo.awaiting_outcome([m.id for m, _ in outcomes])
    for message, outcome in outcomes:
        if message.id not in waiting:
            log.info("send_outcome_already_settled", message_id=str(message.id))
            continue
        change = await _outcome(session, rt, message, outcome, now)
        changes.append(change)
        moved.append(
            Change(
                message.id,
                message.campaign_id,
                message.recipient_ref,
                message.status,
                change["status"],
                change["error"] if change["status"] in (st.FAILED, st.QUEUED) else None,
                now,
            )
        )
        if change["status"] != st.QUEUED:  # a retry later is no new status
            events.append(
                {
                    "message_id": message.id,
                    "status": change["status"],
                    "at": now,
                    "error": change["error"] if change["status"] == st.FAILED else None,
                }
            )
    await repo.apply_outcomes(changes)
    await repo.add_status_events(events)
    return moved


async def _outcome(
    session: AsyncSession, rt: Runtime, message: Message, outcome: SendOutcome, now: datetime
) -> dict[str, Any]:
    """The message's columns after ``outcome`` (and its side effects on the account or consent)."""
    change: dict[str, Any] = {
        "id": message.id,
        "status": st.ACCEPTED,
        "wamid": message.wamid,
        "error": message.error,
        "next_attempt_at": message.next_attempt_at,
        "attempts": message.attempts,
        "updated_at": now,
    }
    if isinstance(outcome, Deferred):
        # Never reached Meta: the claim's attempt is given back, the earlier error kept.
        return change | {
            "status": st.QUEUED,
            "next_attempt_at": now + timedelta(seconds=outcome.seconds),
            "attempts": max(0, message.attempts - 1),
        }
    if isinstance(outcome, MetaAPIError):
        error = _error(
            outcome.code, outcome.title or outcome.message, outcome.details, outcome.retryable
        )
        if outcome.code == MARKETING_LIMIT:
            return _retry_later(
                rt,
                message,
                error,
                change,
                now,
                delay=MARKETING_LIMIT_WAIT.total_seconds(),
                limit=rt.settings.marketing_limit_retries,
            )
        if outcome.code == PAIR_RATE:
            return _retry_later(
                rt, message, error, change, now, delay=max(1.0, rt.settings.pair_period_seconds)
            )
        if outcome.classification is ErrorClass.retryable:
            return _retry_later(rt, message, error, change, now)
        if outcome.classification is ErrorClass.account:
            await accounts.mark_token_invalid(
                session, message.account_id, f"({outcome.code}) {outcome.message}"
            )
        if outcome.code == 131050 and message.contact_id is not None:
            await contacts.opt_out(session, message.workspace_id, message.contact_id, "meta_131050")
        return change | {"status": st.FAILED, "error": error}
    if isinstance(outcome, SendOutcomeUnknown):
        log.warning("send_outcome_unknown", message_id=str(message.id), error=str(outcome))
        return change | {"status": st.UNKNOWN}
    if isinstance(outcome, ProviderUnavailable):
        return _retry_later(
            rt, message, _error("unreachable", str(outcome), None, True), change, now
        )
    # An earlier attempt's retryable error is history now; except a 131049 retry's, which Meta
    # may answer with another 131049 in a status webhook: it holds the count of that budget.
    kept = (
        message.error
        if ((message.error or {}).get("retried") or {}).get(str(MARKETING_LIMIT))
        else None
    )
    return change | {"wamid": outcome.message_id, "error": kept}


def _retry_later(
    rt: Runtime,
    message: Message,
    error: dict[str, Any],
    change: dict[str, Any],
    now: datetime,
    *,
    delay: float | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Queued again for later, or failed with Meta's code once the budget is spent.

    ``delay``: a fixed wait (131049's 24 h, the pair period); otherwise exponential backoff with
    jitter, so many messages refused together do not all come back in the same instant.
    ``limit``: how many times this code may be retried (131049), apart from the attempt budget.
    The count per code travels in the error (``retried``), across other errors in between.
    """
    retried = dict((message.error or {}).get("retried") or {})
    code = str(error.get("code"))
    spent = message.attempts >= rt.settings.send_max_attempts
    if limit is not None and retried.get(code, 0) >= limit:
        spent = True
    if spent:
        return change | {
            "status": st.FAILED,
            "error": {
                **error,
                "retryable": False,
                "attempts": message.attempts,
                "retried": retried,
            },
        }
    retried[code] = retried.get(code, 0) + 1
    if delay is not None:  # "no sooner than": jitter only ever adds (at most 10%, 5 minutes)
        delay += random.uniform(0, min(300.0, delay / 10))  # noqa: S311 - jitter, not a secret
    else:
        s = rt.settings
        ceiling = min(
            s.send_backoff_max_seconds,
            s.send_backoff_base_seconds * 2.0 ** max(0, message.attempts - 1),
        )
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
    return change | {
        "status": st.QUEUED,
        "next_attempt_at": now + timedelta(seconds=delay),
        "error": {**error, "retryable": True, "attempts": message.attempts, "retried": retried},
    }


def _marketing_retry(message: Message, error: dict[str, Any]) -> bool:
    """A ``failed`` status with 131049 (how Meta usually reports its per-user marketing limit):
    while the budget lasts, the message is queued again for no sooner than 24 h (its wamid
    forgotten: the resend gets a new one) instead of failing. False when the budget is spent."""
    if message.direction != "outbound" or not st.moves_forward(message.status, st.FAILED):
        return False
    rt = runtime.maybe_current()
    limit = (rt.settings if rt is not None else get_settings()).marketing_limit_retries
    retried = dict((message.error or {}).get("retried") or {})
    key = str(MARKETING_LIMIT)
    if retried.get(key, 0) >= limit:
        return False
    retried[key] = retried.get(key, 0) + 1
    wait = MARKETING_LIMIT_WAIT.total_seconds()
    wait += random.uniform(0, 300.0)  # noqa: S311 - jitter, not a secret
    now = utcnow()
    message.status, message.status_rank = st.QUEUED, st.RANK[st.QUEUED]
    message.wamid = None
    message.next_attempt_at = now + timedelta(seconds=wait)
    message.error = {**error, "retryable": True, "attempts": message.attempts, "retried": retried}
    message.updated_at = now
    log.info("marketing_limit_retry_later", message_id=str(message.id), retried=retried[key])
    return True


def _error(code: Any, title: str | None, details: str | None, retryable: bool) -> dict[str, Any]:
    return {"code": code, "title": title, "details": details, "retryable": retryable}


# -- webhooks' side -----------------------------------------------------------------------------


async def apply_status(
    session: AsyncSession,
    account_ids: Sequence[uuid.UUID],
    wamid: str,
    status: str,
    at: datetime,
    errors: list[dict[str, Any]] | None = None,
    *,
    biz_opaque_callback_data: str | None = None,
) -> Applied:
    """A status webhook: record it in the history, and move the message forward if it is ahead.

    A wamid we do not know, whose ``biz_opaque_callback_data`` is the ``recipient_ref`` of a
    message whose send outcome was lost (``unknown``/``sending``), settles that message: it takes
    the wamid, then the status applies as usual.

    Falsy when no message has this wamid (yet): the caller keeps the event and tries later, as the
    webhook can overtake the worker's commit of Meta's answer. Its ``change`` says what moved.
    """
    if status not in st.WEBHOOK_STATUSES:
        return Applied(True)  # e.g. "deleted", "warning": kept in webhook_events, nothing to apply
    repo = MessageRepository(session)
    message = await repo.by_wamid(account_ids, wamid)
    if message is None and biz_opaque_callback_data:
        message = await repo.settle_by_ref(account_ids, biz_opaque_callback_data, wamid)
        if message is not None:
            log.info("send_outcome_settled", message_id=str(message.id), status=status)
    if message is None:
        return Applied(False)
    error = None
    if status == st.FAILED:
        first = (errors or [{}])[0]
        code = first.get("code")
        details = (first.get("error_data") or {}).get("details") or first.get("message")
        error = _error(
            code,
            first.get("title"),
            details,
            classify(code if isinstance(code, int) else None, 400) is ErrorClass.retryable,
        )
        if code == 131050 and message.contact_id is not None:
            await contacts.opt_out(session, message.workspace_id, message.contact_id, "meta_131050")
        if code == MARKETING_LIMIT:
            previous = message.status
            if _marketing_retry(message, error):
                await session.flush()
                # Back in the queue, not failed: whoever follows the message (a campaign's
                # recipient) goes back to waiting for it.
                return Applied(
                    True,
                    Change(
                        message.id,
                        message.campaign_id,
                        message.recipient_ref,
                        previous,
                        st.QUEUED,
                        message.error,
                        at,
                    ),
                )
            error = {**error, "retryable": False}  # its budget is spent: this one is final
    await repo.add_status_event(message.id, status, at, error)
    if not st.moves_forward(message.status, status):
        return Applied(True)
    change = Change(
        message.id, message.campaign_id, message.recipient_ref, message.status, status, error, at
    )
    message.status, message.status_rank = status, st.RANK[status]
    if error is not None:
        message.error = error
    message.updated_at = utcnow()
    await session.flush()
    return Applied(True, change)


class Head(NamedTuple):
    """A message as a status webhook needs it (what ``heads_by_wamids`` reads)."""

    id: uuid.UUID
    status: str
    campaign_id: uuid.UUID | None
    recipient_ref: str | None


async def apply_statuses(
    session: AsyncSession,
    account_ids: Sequence[uuid.UUID],
    items: Sequence[tuple[str, str, datetime]],
    *,
    refs: Mapping[str, str] | None = None,
) -> AppliedMany:
    """Many ``sent``/``delivered``/``read`` webhooks (wamid, status, at) in a few statements, with
    the same outcome as ``apply_status`` one by one (``failed`` goes through ``apply_status``, for
    its error). ``refs``: wamid -> the status's biz_opaque_callback_data, which settles a message
    whose send outcome was lost (see ``apply_status``). Returns the wamids with no message (yet)
    and what moved (from the one read of the messages that finds them: no query per event)."""
    repo = MessageRepository(session)
    heads = await repo.heads_by_wamids(account_ids, list({w for w, _, _ in items}))
    for wamid, ref in (refs or {}).items():
        if wamid not in heads and ref:
            settled = await repo.settle_by_ref(account_ids, ref, wamid)
            if settled is not None:
                log.info("send_outcome_settled", message_id=str(settled.id))
                heads[wamid] = Head(
                    settled.id, settled.status, settled.campaign_id, settled.recipient_ref
                )
    best: dict[uuid.UUID, tuple[str, datetime]] = {}
    events: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for wamid, status, at in items:
        head = heads.get(wamid)
        if head is None or status not in st.WEBHOOK_STATUSES or status == st.FAILED:
            continue
        mid = head.id
        events.setdefault(
            (mid, status), {"message_id": mid, "status": status, "at": at, "error": None}
        )
        if st.RANK[status] > st.RANK[best.get(mid, (st.QUEUED, at))[0]]:
            best[mid] = (status, at)
    await repo.add_status_events(list(events.values()))
    now = utcnow()
    for status in (st.SENT, st.DELIVERED, st.READ):
        await repo.advance([m for m, (s, _) in best.items() if s == status], status, now)
    by_id = {h.id: h for h in heads.values()}
    changes = [
        Change(mid, h.campaign_id, h.recipient_ref, h.status, status, None, at)
        for mid, (status, at) in best.items()
        if st.moves_forward((h := by_id[mid]).status, status)
    ]
    return AppliedMany({w for w, _, _ in items if w not in heads}, changes)


async def record_inbound(
    session: AsyncSession,
    account: WhatsAppAccount,
    *,
    wa_id: str,
    profile_name: str | None,
    wamid: str,
    kind: str,
    payload: dict[str, Any],
    at: datetime,
) -> Message | None:
    """A customer's message: their contact (created if new, with its wa_id), the row. What
    reacts to it (the 24-hour window, consent) is aisoule.whatsapp.inbound.handoff's.

    None when this wamid was already recorded (a redelivered webhook).
    """
    repo = MessageRepository(session)
    if await repo.by_wamid([account.id], wamid) is not None:
        return None
    try:
        phone = normalize_phone("+" + wa_id.lstrip("+"))
    except InvalidPhone:
        phone = "+" + wa_id.lstrip("+")
    contact, _ = await contacts.ensure_by_phone(session, account.workspace_id, phone, profile_name)
    now = utcnow()
    await contacts.record_whatsapp_identity(
        session, account.workspace_id, contact["id"], wa_id=wa_id, profile_name=profile_name
    )
    message = Message(
        id=uuid.uuid4(),
        workspace_id=account.workspace_id,
        account_id=account.id,
        contact_id=contact["id"],
        direction="inbound",
        type=kind,
        phone=phone,
        payload=payload,
        preview=inbound_preview(kind, payload),
        status=st.RECEIVED,
        status_rank=st.RANK[st.RECEIVED],
        wamid=wamid,
        attempts=0,
        created_at=at,
        updated_at=now,
    )
    await repo.add(message)
    await repo.add_status_event(message.id, st.RECEIVED, at)
    return message


def inbound_preview(kind: str, payload: dict[str, Any]) -> str:
    obj = payload.get(kind)
    if kind == "text" and isinstance(obj, dict):
        return str(obj.get("body", ""))
    if kind == "interactive" and isinstance(obj, dict):
        reply = obj.get("button_reply") or obj.get("list_reply") or {}
        return str(reply.get("title", "[interactive]"))
    if kind == "button" and isinstance(obj, dict):
        return str(obj.get("text", "[button]"))
    if isinstance(obj, dict) and obj.get("caption"):
        return str(obj["caption"])
    return f"[{kind}]"


# -- a campaign's messages (its dispatcher sends them: campaigns/engine.py) ---------------------


def template_preview(template: MessageTemplate, components: list[dict[str, Any]]) -> str | None:
    """The text lists show for a template message with these send components."""
    return payload.template_text(template, components)


async def campaign_due(
    session: AsyncSession, campaign_id: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, str | None]]:
    """The campaign's queued messages that may be sent now (a retry whose time came, or what a
    dispatcher that died left unsent): (id, recipient_ref), oldest first."""
    return await MessageRepository(session).campaign_due(campaign_id, utcnow(), limit)


async def campaign_next_attempt(session: AsyncSession, campaign_id: uuid.UUID) -> datetime | None:
    """When the campaign's next retry is due, if one waits."""
    return await MessageRepository(session).campaign_next_attempt(campaign_id)


async def refuse_unsent(
    session: AsyncSession,
    message_ids: Sequence[uuid.UUID],
    code: str,
    title: str,
) -> list[Change]:
    """Queued messages that must never go (the contact opted out, the campaign was cancelled):
    failed with ``code`` (ours, not Meta's), in one statement; what a worker already claimed is
    left to its outcome."""
    if not message_ids:
        return []
    now = utcnow()
    error = _error(code, title, None, False)
    repo = MessageRepository(session)
    refused = await repo.fail_queued(message_ids, error, now)
    await repo.add_status_events(
        [
            {"message_id": mid, "status": st.FAILED, "at": now, "error": error}
            for mid, _, _ in refused
        ]
    )
    return [Change(mid, cid, ref, st.QUEUED, st.FAILED, error, now) for mid, cid, ref in refused]


async def campaign_queued(
    session: AsyncSession, campaign_id: uuid.UUID, limit: int
) -> list[uuid.UUID]:
    """Ids of the campaign's queued messages (due or not)."""
    return await MessageRepository(session).campaign_queued(campaign_id, limit)


async def settle_stale_campaign_sends(session: AsyncSession, before: datetime) -> list[Change]:
    """Campaign messages a dead worker left ``sending`` since before ``before``: unknown (never
    resent blindly; a status webhook may settle them yet)."""
    now = utcnow()
    stale = await MessageRepository(session).stale_campaign_sending(before, now)
    if stale:
        log.warning("campaign_sends_outcome_unknown_after_crash", count=len(stale))
    return [Change(mid, cid, ref, st.SENDING, st.UNKNOWN, None, now) for mid, cid, ref in stale]


# -- reading ------------------------------------------------------------------------------------


async def get(session: AsyncSession, workspace_id: uuid.UUID, message_id: str) -> Message:
    parsed = parse_uuid(message_id)
    message = await MessageRepository(session).get(workspace_id, parsed) if parsed else None
    if message is None:
        raise NotFound(MESSAGE_NOT_FOUND, code="message_not_found")
    return message


async def history(session: AsyncSession, message: Message) -> list[dict[str, Any]]:
    events = list(await MessageRepository(session).status_events(message.id))
    if message.direction == "outbound" and all(e.status != st.QUEUED for e in events):
        events.append(MessageStatusEvent(status=st.QUEUED, at=message.created_at, error=None))
    return [
        {"status": e.status, "at": iso_z(e.at), "error": e.error}
        # Lifecycle order: Meta stamps statuses to the second, so time alone can put "sent"
        # before our own "queued" of the same second.
        for e in sorted(events, key=lambda e: (st.RANK.get(e.status, 0), e.at))
    ]


async def list_page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    contact: str | None,
    status: str | None,
    direction: str | None,
) -> tuple[Sequence[Message], int]:
    contact_id: int | None = None
    if contact is not None:
        row = await contacts.find_for_message(session, workspace_id, contact)
        if row is None:
            try:
                row = await contacts.find_by_phone(session, workspace_id, normalize_phone(contact))
            except InvalidPhone:
                row = None
        if row is None:
            return [], 0
        contact_id = row["id"]
    return await MessageRepository(session).list_page(
        workspace_id,
        limit=limit,
        offset=offset,
        contact_id=contact_id,
        status=status,
        direction=direction,
    )


async def reconcile(
    session: AsyncSession, lease_seconds: float = 120.0, now: datetime | None = None
) -> list[str]:
    """Ids of queued messages to (re)enqueue; sends stuck in ``sending`` become ``unknown``."""
    now = now or utcnow()
    repo = MessageRepository(session)
    stale = await repo.stale_sending(now - timedelta(seconds=lease_seconds), now)
    due = await repo.due(now, now - timedelta(seconds=10), limit=500)
    if stale:
        log.warning("sends_outcome_unknown_after_crash", count=stale)
    return [str(i) for i in due]


async def campaign_status_counts(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    start: datetime,
    width_seconds: int,
    buckets: int,
) -> list[tuple[int, str, int]]:
    """How many of a campaign's messages reached sent, delivered, read or failed in each time
    bucket after ``start`` (their status history, as Meta timed it): (bucket, status, count)."""
    return await MessageRepository(session).campaign_status_counts(
        workspace_id,
        campaign_id,
        start,
        max(1, width_seconds),
        max(1, buckets),
        (st.SENT, st.DELIVERED, st.READ, st.FAILED),
    )


async def template_recipients_24h(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID, now: datetime
) -> int:
    """How many distinct people this account sent (or is sending) template messages to in the
    24 hours before ``now``: what Meta's messaging limit counts in its moving window."""
    return await MessageRepository(session).template_recipients_since(
        workspace_id, account_id, now - timedelta(hours=24)
    )


# -- the inbox's reads (aisoule/conversations) --------------------------------------------------


async def of_thread(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contact_id: int,
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[Message], int]:
    return await MessageRepository(session).of_thread(
        workspace_id, account_id, contact_id, limit=limit, offset=offset
    )


async def latest_inbound(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID, contact_id: int
) -> Message | None:
    return await MessageRepository(session).latest_inbound(workspace_id, account_id, contact_id)


async def by_wamid(session: AsyncSession, account_id: uuid.UUID, wamid: str) -> Message | None:
    return await MessageRepository(session).by_wamid([account_id], wamid)


def text_match_clause(account_id: Any, contact_id: Any, q: str) -> Any:
    """For the inbox's search: a thread (correlated columns) with a message containing ``q``."""
    return text_match(account_id, contact_id, q)
