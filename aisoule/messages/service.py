"""Messages: refuse what Meta would refuse, queue the rest, send from a worker, and move each
message forward from Meta's answers and status webhooks (never backwards)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.accounts import service as accounts
from aisoule.contacts import service as contacts
from aisoule.db.engine import outside_transaction
from aisoule.exceptions import Conflict, NotFound, ValidationFailed
from aisoule.kit import http
from aisoule.kit.ids import parse_uuid
from aisoule.kit.phone import InvalidPhone, digits_only, normalize_phone
from aisoule.kit.time import iso_z, utcnow
from aisoule.messages import status as st
from aisoule.messages.repository import MessageRepository
from aisoule.messages.schemas import MEDIA_TYPES, MessageSend, TemplatePayload
from aisoule.models import Message, MessageStatusEvent, MessageTemplate, WhatsAppAccount
from aisoule.runtime import Runtime
from aisoule.whatsapp import media, template_params
from aisoule.whatsapp.provider import (
    ErrorClass,
    MetaAPIError,
    ProviderUnavailable,
    SendOutcomeUnknown,
    SentMessage,
    classify,
)

log = structlog.get_logger(__name__)

WINDOW = timedelta(hours=24)
MESSAGE_NOT_FOUND = "Message not found"


# -- sending: checks and queueing ---------------------------------------------------------------


async def send(
    session: AsyncSession,
    rt: Runtime,
    workspace_id: uuid.UUID,
    data: MessageSend,
    idempotency_key: str | None = None,
) -> tuple[Message, bool]:
    """Check, write the message ``queued`` and enqueue it after commit: (message, created)."""
    repo = MessageRepository(session)
    if idempotency_key:
        earlier = await repo.by_idempotency_key(workspace_id, idempotency_key)
        if earlier is not None:
            return earlier, False
    account = await accounts.for_sending(session, workspace_id, data.account_id)
    # A free-form message needs a customer who wrote in, so it never creates a contact: nothing
    # is written before its media check (network I/O, outside any write transaction).
    contact = await _recipient(session, workspace_id, data.to, create=data.type == "template")
    opted_out_at, opt_out_reason, last = (
        await repo.recipient_state(account.id, contact["id"]) if contact else (None, None, None)
    )
    if opted_out_at is not None:
        raise ValidationFailed(
            f"to: this contact opted out of WhatsApp messages on {iso_z(opted_out_at)} "
            f"({opt_out_reason or 'opt-out'}); no message can be sent to them until they reply START",
            field="to",
            code="contact_opted_out",
        )
    template: MessageTemplate | None = None
    if data.type == "template":
        assert data.template is not None
        template = await _check_template(session, workspace_id, account, data.template)
    else:
        if last is None or utcnow() - last > WINDOW:
            since = f"last wrote {iso_z(last)}" if last else "has never written to this number"
            raise ValidationFailed(
                f"type: a free-form {data.type} message can only be sent within 24 hours of the "
                f"customer's last message (this customer {since}); send an approved template "
                "instead (type: template), as Meta would refuse it with error 131047",
                field="type",
                code="outside_24h_window",
            )
    if data.type in MEDIA_TYPES:
        async with outside_transaction(session):
            await _check_media(rt.http_policy, data)
    payload, preview = _payload(data, contact["phone"], template)
    now = utcnow()
    message = Message(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        account_id=account.id,
        contact_id=contact["id"],
        direction="outbound",
        type=data.type,
        phone=contact["phone"],
        payload=payload,
        preview=preview,
        status=st.QUEUED,
        status_rank=st.RANK[st.QUEUED],
        idempotency_key=idempotency_key,
        template_id=template.id if template else None,
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
    session: AsyncSession, workspace_id: uuid.UUID, to: str, *, create: bool
) -> Any:
    """The contact ``to`` names; a phone number with no contact yet is created (``create``) or
    answers None."""
    if to.startswith("cnt_") or parse_uuid(to) is not None:
        row = await contacts.find_for_message(session, workspace_id, to)
        if row is None:
            raise ValidationFailed("to: no such contact in this workspace", field="to")
        return row
    try:
        phone = normalize_phone(to)
    except InvalidPhone as exc:
        raise ValidationFailed(
            f"to: {exc} (give a phone number with country code or a contact id)", field="to"
        ) from None
    if not create:
        return await contacts.find_by_phone(session, workspace_id, phone)
    row, _ = await contacts.ensure_by_phone(session, workspace_id, phone)
    return row


async def _check_template(
    session: AsyncSession, workspace_id: uuid.UUID, account: WhatsAppAccount, t: TemplatePayload
) -> MessageTemplate:
    found = await MessageRepository(session).templates_named(workspace_id, account.id, t.name)
    if not found:
        raise ValidationFailed(
            f"template.name: no template named '{t.name}' on this account; create it with "
            "POST /api/templates or pull Meta's with POST /api/templates/sync",
            field="template.name",
            code="template_not_found",
        )
    match = next((x for x in found if x.language == t.language), None)
    if match is None:
        langs = ", ".join(sorted(x.language for x in found))
        raise ValidationFailed(
            f"template.language: '{t.name}' exists in {langs}, not in {t.language}",
            field="template.language",
            code="template_language",
        )
    if match.status != "APPROVED":
        why = f" ({match.rejected_reason})" if match.rejected_reason else ""
        raise ValidationFailed(
            f"template.name: '{t.name}' ({t.language}) is {match.status}{why}; only APPROVED "
            "templates can be sent",
            field="template.name",
            code="template_not_approved",
        )
    problems = template_params.mismatches(
        match.components, _send_components(t, match), match.parameter_format
    )
    if problems:
        raise ValidationFailed(
            f"template.parameters: {'; '.join(problems)} (Meta would answer error 132000)",
            field="template.parameters",
            code="template_parameters",
        )
    return match


def _send_components(t: TemplatePayload, tpl: MessageTemplate) -> list[dict[str, Any]]:
    if t.components is not None:
        return t.components
    if t.parameters is None:
        return []
    if isinstance(t.parameters, dict):
        params = [{"type": "text", "parameter_name": k, "text": v} for k, v in t.parameters.items()]
    else:
        params = [{"type": "text", "text": v} for v in t.parameters]
    return [{"type": "body", "parameters": params}] if params else []


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
            if length.isdigit():
                size, told = int(length), True
    why = media.problem(data.type, mime, size, echo=not told)
    if why:
        raise ValidationFailed(f"{field}: {why}", field=field, code="unsupported_media")


def _payload(
    data: MessageSend, phone: str, template: MessageTemplate | None
) -> tuple[dict[str, Any], str | None]:
    """Meta's message JSON, and a short text for lists."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits_only(phone),
        "type": data.type,
    }
    preview: str | None = None
    if data.type == "text":
        text = data.text
        assert text is not None
        obj: dict[str, Any] = (
            {"body": text, "preview_url": False} if isinstance(text, str) else text.model_dump()
        )
        body["text"] = obj
        preview = str(obj["body"])
    elif data.type == "template":
        assert data.template is not None and template is not None
        t = data.template
        tpl: dict[str, Any] = {"name": t.name, "language": {"code": t.language}}
        components = _send_components(t, template)
        if components:
            tpl["components"] = components
        body["template"] = tpl
        preview = _template_text(template, components)
    elif data.type in MEDIA_TYPES:
        obj = getattr(data, data.type).model_dump(exclude_none=True)
        obj.pop("mime_type", None)
        body[data.type] = obj
        preview = obj.get("caption") or f"[{data.type}]"
    else:
        body["interactive"] = data.interactive
        inner = data.interactive or {}
        preview = str((inner.get("body") or {}).get("text") or "[interactive]")
    return body, preview


def _template_text(template: MessageTemplate, components: list[dict[str, Any]]) -> str | None:
    text = next(
        (c.get("text") for c in template.components if str(c.get("type", "")).upper() == "BODY"),
        None,
    )
    if not text:
        return f"[template {template.name}]"
    params = template_params.given(components).get("body", [])
    names = template_params.placeholders(text)
    for i, name in enumerate(names):
        by_name = next((p for p in params if p.get("parameter_name") == name), None)
        p = by_name or (params[i] if i < len(params) else None)
        if p is not None:
            text = text.replace("{{" + name + "}}", str(p.get("text", "")))
    return str(text)


# -- the worker's side --------------------------------------------------------------------------


async def claim(session: AsyncSession, message_id: uuid.UUID) -> bool:
    """Queued → sending, once (two workers given the same id cannot both send it)."""
    return await MessageRepository(session).claim(message_id, utcnow())


async def load_for_send(
    session: AsyncSession, message_id: uuid.UUID
) -> tuple[Message, WhatsAppAccount] | None:
    message = await MessageRepository(session).get_any(message_id)
    account = await accounts.get_by_id(session, message.account_id) if message else None
    return None if message is None or account is None else (message, account)


SendOutcome = SentMessage | MetaAPIError | SendOutcomeUnknown | ProviderUnavailable


async def send_to_meta(rt: Runtime, message: Message, account: WhatsAppAccount) -> SendOutcome:
    """The one call to Meta for a claimed message, paced to the number's throughput. No database
    work here: no transaction stays open while Meta answers."""
    if rt.pacer is not None:
        await rt.pacer.acquire(account.phone_number_id, account.throughput)
    try:
        sender = await accounts.sender(rt, account)
        return await sender.provider.send_message(
            sender.phone_number_id, message.payload, access_token=sender.access_token
        )
    except (MetaAPIError, SendOutcomeUnknown, ProviderUnavailable) as exc:
        return exc


async def record_outcome(
    session: AsyncSession, rt: Runtime, message_id: uuid.UUID, outcome: SendOutcome
) -> None:
    """Meta's answer onto the message: accepted (wamid), failed, retried later, or unknown."""
    message = await MessageRepository(session).get_any(message_id)
    if message is None:  # pragma: no cover - deleted meanwhile
        return
    if isinstance(outcome, MetaAPIError):
        await _failed_send(session, rt, message, outcome)
    elif isinstance(outcome, SendOutcomeUnknown):
        log.warning("send_outcome_unknown", message_id=str(message.id), error=str(outcome))
        await _set_status(session, message, st.UNKNOWN, utcnow())
    elif isinstance(outcome, ProviderUnavailable):
        await _retry_later(session, rt, message, _error("unreachable", str(outcome), None, True))
    else:
        message.wamid = outcome.message_id
        message.error = None  # an earlier attempt's retryable error is history now
        await _set_status(session, message, st.ACCEPTED, utcnow())


async def _failed_send(
    session: AsyncSession, rt: Runtime, message: Message, exc: MetaAPIError
) -> None:
    error = _error(exc.code, exc.title or exc.message, exc.details, exc.retryable)
    if exc.classification is ErrorClass.retryable:
        await _retry_later(session, rt, message, error)
        return
    if exc.classification is ErrorClass.account:
        await accounts.mark_token_invalid(
            session, message.account_id, f"({exc.code}) {exc.message}"
        )
    if exc.code == 131050 and message.contact_id is not None:
        await opt_out(session, message.workspace_id, message.contact_id, "meta_131050")
    message.error = error
    await _set_status(session, message, st.FAILED, utcnow(), error)


async def _retry_later(
    session: AsyncSession, rt: Runtime, message: Message, error: dict[str, Any]
) -> None:
    if message.attempts >= rt.settings.send_max_attempts:
        message.error = {**error, "retryable": False, "attempts": message.attempts}
        await _set_status(session, message, st.FAILED, utcnow(), message.error)
        return
    delay = min(300.0, 2.0**message.attempts)
    message.status, message.status_rank = st.QUEUED, st.RANK[st.QUEUED]
    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
    message.error = {**error, "retryable": True, "attempts": message.attempts}
    message.updated_at = utcnow()
    await session.flush()


def _error(code: Any, title: str | None, details: str | None, retryable: bool) -> dict[str, Any]:
    return {"code": code, "title": title, "details": details, "retryable": retryable}


async def _set_status(
    session: AsyncSession,
    message: Message,
    status: str,
    at: datetime,
    error: dict[str, Any] | None = None,
) -> None:
    message.status, message.status_rank = status, st.RANK[status]
    message.updated_at = utcnow()
    await session.flush()
    await MessageRepository(session).add_status_event(message.id, status, at, error)


# -- webhooks' side -----------------------------------------------------------------------------


async def apply_status(
    session: AsyncSession,
    account_ids: Sequence[uuid.UUID],
    wamid: str,
    status: str,
    at: datetime,
    errors: list[dict[str, Any]] | None = None,
) -> bool:
    """A status webhook: record it in the history, and move the message forward if it is ahead.

    False when no message has this wamid (yet): the caller keeps the event and tries later, as the
    webhook can overtake the worker's commit of Meta's answer.
    """
    if status not in st.WEBHOOK_STATUSES:
        return True  # e.g. "deleted", "warning": kept in webhook_events, nothing to apply
    repo = MessageRepository(session)
    message = await repo.by_wamid(account_ids, wamid)
    if message is None:
        return False
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
            await opt_out(session, message.workspace_id, message.contact_id, "meta_131050")
    await repo.add_status_event(message.id, status, at, error)
    if st.moves_forward(message.status, status):
        message.status, message.status_rank = status, st.RANK[status]
        if error is not None:
            message.error = error
        message.updated_at = utcnow()
        await session.flush()
    return True


async def apply_statuses(
    session: AsyncSession,
    account_ids: Sequence[uuid.UUID],
    items: Sequence[tuple[str, str, datetime]],
) -> set[str]:
    """Many ``sent``/``delivered``/``read`` webhooks (wamid, status, at) in a few statements, with
    the same outcome as ``apply_status`` one by one (``failed`` goes through ``apply_status``, for
    its error). Returns the wamids with no message (yet)."""
    repo = MessageRepository(session)
    ids = await repo.ids_by_wamids(account_ids, list({w for w, _, _ in items}))
    best: dict[uuid.UUID, str] = {}
    events: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for wamid, status, at in items:
        mid = ids.get(wamid)
        if mid is None or status not in st.WEBHOOK_STATUSES or status == st.FAILED:
            continue
        events.setdefault(
            (mid, status), {"message_id": mid, "status": status, "at": at, "error": None}
        )
        if st.RANK[status] > st.RANK[best.get(mid, st.QUEUED)]:
            best[mid] = status
    await repo.add_status_events(list(events.values()))
    now = utcnow()
    for status in (st.SENT, st.DELIVERED, st.READ):
        await repo.advance([m for m, s in best.items() if s == status], status, now)
    return {w for w, _, _ in items if w not in ids}


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
    """A customer's message: their contact (created if new), the conversation window, the row.

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
    await repo.upsert_contact_whatsapp(
        account.workspace_id, contact["id"], now, wa_id=wa_id, profile_name=profile_name
    )
    await repo.open_window(account.workspace_id, account.id, contact["id"], at)
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


async def opt_out(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: int, reason: str
) -> None:
    now = utcnow()
    await MessageRepository(session).upsert_contact_whatsapp(
        workspace_id, contact_id, now, opted_out_at=now, opt_out_reason=reason
    )


async def opt_in(session: AsyncSession, workspace_id: uuid.UUID, contact_id: int) -> None:
    await MessageRepository(session).upsert_contact_whatsapp(
        workspace_id, contact_id, utcnow(), opted_out_at=None, opt_out_reason=None
    )


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


async def reconcile(session: AsyncSession, lease_seconds: float = 120.0) -> list[str]:
    """Ids of queued messages to (re)enqueue; sends stuck in ``sending`` become ``unknown``."""
    now = utcnow()
    repo = MessageRepository(session)
    stale = await repo.stale_sending(now - timedelta(seconds=lease_seconds), now)
    due = await repo.due(now, now - timedelta(seconds=10), limit=500)
    if stale:
        log.warning("sends_outcome_unknown_after_crash", count=stale)
    return [str(i) for i in due]
