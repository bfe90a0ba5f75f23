"""The team inbox: the conversation list (views, filters, search, unread counts) and a
conversation's pane (messages with ticks, the timeline, assignee, status, labels, notes, the
composer). The page keeps itself current through GET /api/events (static/inbox.js); every
fragment here is also what it fetches when an event says something changed."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from aisoule.accounts import service as accounts_service
from aisoule.contacts import service as contacts_service
from aisoule.conversations import service as conversations
from aisoule.conversations.schemas import LabelsChange, Reply, StatusChange
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.exceptions import AisouleError, NotFound
from aisoule.inbox import service as inbox
from aisoule.live import service as live
from aisoule.members import service as members_service
from aisoule.templates import service as templates_service
from aisoule.users import service as users

router = APIRouter()

VIEWS = (("mine", "Mine"), ("unassigned", "Unassigned"), ("all", "All"))
STATUSES = ("open", "pending", "snoozed", "resolved")
FILTERS = ("view", "status", "label", "account_id", "assignee_id", "q")
PER_PAGE = 50
THREAD = 100
_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_KEY = re.compile(r"^[A-Za-z0-9_-]{8,100}$")


# -- the list ----------------------------------------------------------------------------------


def _filters(params: Any) -> dict[str, str]:
    out = {k: str(params.get(k) or "").strip()[:200] for k in FILTERS}
    if out["view"] not in {v for v, _ in VIEWS}:
        out["view"] = "all"
    if out["status"] not in STATUSES:
        out["status"] = ""
    return out


def _query(filters: dict[str, str], **extra: str) -> str:
    values = {k: v for k, v in (filters | extra).items() if v and not (k == "view" and v == "all")}
    return urlencode(values)


async def _members(session: Any, viewer: web.Viewer) -> list[dict[str, Any]]:
    rows = await members_service.list_members(session, viewer.workspace_id)
    return [
        {
            "id": str(user.id),
            "name": user.name or user.email,
            "email": user.email,
            "role": member.role,
        }
        for member, user, _ in rows
    ]


async def _list_context(session: Any, viewer: web.Viewer, params: Any) -> dict[str, Any]:
    filters = _filters(params)
    listing = conversations.Listing(
        view=filters["view"],
        status=filters["status"] or None,
        label=filters["label"] or None,
        account_id=filters["account_id"] or None,
        assignee_id=filters["assignee_id"] or None,
    )
    errors: web.FieldErrors = {}
    try:
        rows, total = await inbox.list_page(
            session, viewer.principal, listing, filters["q"] or None, limit=PER_PAGE, offset=0
        )
    except AisouleError as exc:  # a filter that is not an id: say which, list nothing
        errors = web.errors_of(exc)
        rows, total = [], 0
    accounts, _ = await accounts_service.list_page(session, viewer.workspace_id, limit=50, offset=0)
    return {
        "conversations": rows,
        "total": total,
        "filters": filters,
        "filter_errors": errors,
        "list_query": _query(filters),
        "views": [(v, label, _query(filters, view=v)) for v, label in VIEWS],
        "statuses": STATUSES,
        "labels": await conversations.labels(session, viewer.workspace_id),
        "accounts": accounts,
        "members": await _members(session, viewer),
    }


@router.get("/inbox")
async def inbox_page(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    ctx = await _list_context(session, viewer, request.query_params)
    last, _ = await live.bounds(session, viewer.workspace_id)
    ctx |= {"open": None, "last_event_id": last}
    return web.render(request, "inbox.html", ctx, viewer=viewer)


@router.get("/inbox/list")
async def inbox_list(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    """The list alone: what the page fetches when a live event (or the poll) says so."""
    ctx = await _list_context(session, viewer, request.query_params)
    ctx["open_id"] = request.query_params.get("open", "")
    return web.render(request, "inbox_list.html", ctx, viewer=viewer)


# -- one conversation --------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _event_text(kind: str, data: dict[str, Any], actor: str, name: Any) -> str:
    if kind == "assigned":
        to, was, reason = data.get("to"), data.get("from"), data.get("reason") or ""
        if reason == "member_removed":
            return f"{name(was)} left the workspace: the conversation is unassigned"
        if reason == "auto":
            return f"Assigned to {name(to)} automatically (round robin)"
        if to is None:
            return f"{actor} unassigned it (was {name(was)})"
        if reason == "claim":
            return f"{actor} took it"
        if reason == "replied":
            return f"{actor} took it by replying"
        why = "" if reason in ("manual", "takeover") else f" (why: {reason})"
        if was:
            return f"{actor} reassigned it from {name(was)} to {name(to)}{why}"
        return f"{actor} assigned it to {name(to)}{why}"
    if kind == "status":
        text = f"{actor} changed the status from {data.get('from')} to {data.get('to')}"
        if data.get("until"):
            text += f" until {data['until'].replace('T', ' ').replace('Z', ' UTC')}"
        if data.get("reason"):
            text += f" (why: {data['reason']})"
        return text
    if kind == "labels":
        parts = []
        if data.get("added"):
            parts.append("added " + ", ".join(data["added"]))
        if data.get("removed"):
            parts.append("removed " + ", ".join(data["removed"]))
        return f"{actor} {' and '.join(parts) or 'changed the labels'}"
    if kind == "team":
        return f"{actor} changed the team"
    return f"{actor}: {kind}"


def _variables(template: Any) -> list[str]:
    for comp in template.components or []:
        if str(comp.get("type", "")).upper() == "BODY":
            seen: list[str] = []
            for name in _VAR.findall(str(comp.get("text", ""))):
                if name not in seen:
                    seen.append(name)
            return seen
    return []


def _body_text(template: Any) -> str:
    for comp in template.components or []:
        if str(comp.get("type", "")).upper() == "BODY":
            return str(comp.get("text", ""))
    return ""


def _prefill(name: str, positional: bool, index: int, contact: Any) -> str:
    """A template variable's value from the contact: a named variable by the field of that name
    (first_name, last_name, name, phone, email, or a custom field); {{1}} is the first name."""
    if contact is None:
        return ""
    first = contact["first_name"] or contact["profile_name"] or ""
    fields: dict[str, Any] = {
        "first_name": first,
        "last_name": contact["last_name"] or "",
        "name": " ".join(p for p in (contact["first_name"], contact["last_name"]) if p)
        or contact["profile_name"]
        or "",
        "phone": contact["phone"],
        "email": contact["email"] or "",
    }
    if positional:
        return str(first) if index == 0 else ""
    custom = contact["custom_fields"] or {}
    value = fields.get(name, custom.get(name, ""))
    return "" if value is None else str(value)


async def _templates(session: Any, viewer: web.Viewer, conv: dict[str, Any]) -> list[Any]:
    rows, _ = await templates_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0, status="APPROVED"
    )
    contact = None
    if conv["contact"]:
        try:
            contact = await contacts_service.get_by_uuid(
                session, viewer.workspace_id, conv["contact"]["id"]
            )
        except NotFound:
            contact = None
    out = []
    for t in rows:
        if t.account_id is not None and str(t.account_id) != conv["account_id"]:
            continue
        positional = t.parameter_format != "NAMED"
        names = _variables(t)
        out.append(
            {
                "key": f"{t.name}|{t.language}",
                "name": t.name,
                "language": t.language,
                # Shown with [1] / [first_name] for the variables (no braces in the page).
                "body": _VAR.sub(lambda m: f"[{m.group(1)}]", _body_text(t)),
                "positional": positional,
                "variables": [
                    {"name": n, "value": _prefill(n, positional, i, contact)}
                    for i, n in enumerate(names)
                ],
            }
        )
    return out


async def _conversation(session: Any, viewer: web.Viewer, cid: str) -> dict[str, Any]:
    return await conversations.get(session, viewer.principal, cid)


async def _may_reply(session: Any, viewer: web.Viewer, conv: dict[str, Any]) -> bool:
    settings = await conversations.inbox_settings(session, viewer.workspace_id)
    held = conv["assignee"]
    return not (
        settings is not None
        and settings.only_assignee_replies
        and held is not None
        and held["id"] != str(viewer.principal.user_id)
    )


def _media_of(cid: str, m: Any) -> dict[str, str] | None:
    """A media message's file as the pane shows it (fetched from Meta through the API's
    GET …/messages/{id}/media when the browser asks), or None."""
    payload = m.payload if isinstance(m.payload, dict) else {}
    kind = payload.get("type")
    obj = payload.get(kind) if kind in inbox.MEDIA_KINDS else None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    return {
        "kind": str(kind),
        "url": f"/api/conversations/{cid}/messages/{m.id}/media",
        "caption": str(obj.get("caption") or ""),
        "filename": str(obj.get("filename") or ""),
    }


async def _pane_context(session: Any, viewer: web.Viewer, cid: str) -> dict[str, Any]:
    conv = await _conversation(session, viewer, cid)
    messages, _ = await inbox.messages_page(session, viewer.principal, cid, limit=THREAD, offset=0)
    events, _ = await conversations.events_page(
        session, viewer.principal, cid, limit=THREAD, offset=0
    )
    members = await _members(session, viewer)
    names = {m["id"]: m["name"] for m in members}
    missing = [
        e.actor_user_id
        for e in events
        if e.actor_user_id is not None and str(e.actor_user_id) not in names
    ]
    for e in events:
        for key in ("from", "to"):
            value = (e.data or {}).get(key) if e.kind == "assigned" else None
            if value and value not in names:
                with contextlib.suppress(ValueError):
                    missing.append(uuid.UUID(str(value)))
    if missing:
        for person in (await users.users_by_id(session, missing)).values():
            names[str(person.id)] = person.name or person.email

    def name(user_id: Any) -> str:
        if not user_id:
            return "nobody"
        return (
            "you"
            if str(user_id) == str(viewer.principal.user_id)
            else names.get(str(user_id), "a former member")
        )

    by_wamid = {m.wamid: m for m in messages if m.wamid}
    items: list[dict[str, Any]] = []
    for m in messages:
        context = (m.payload or {}).get("context") or {}
        quoted = by_wamid.get(context.get("id") or context.get("message_id") or "")
        items.append(
            {
                "kind": "message",
                "at": _aware(m.created_at),
                "m": m,
                "quoted": quoted,
                "media": _media_of(cid, m),
            }
        )
    for e in events:
        if e.actor_user_id is not None:
            actor = name(e.actor_user_id)
            actor = "You" if actor == "you" else actor
        elif e.actor_api_key_id is not None:
            actor = "An API key"
        else:
            actor = "aisoule"
        entry: dict[str, Any] = {"kind": "event", "at": _aware(e.created_at), "e": e}
        entry["actor"] = actor
        entry["text"] = "" if e.kind == "note" else _event_text(e.kind, e.data or {}, actor, name)
        items.append(entry)
    items.sort(key=lambda i: i["at"])
    held = conv["assignee"]
    return {
        "c": conv,
        "items": items,
        "members": members,
        "mine": held is not None and held["id"] == str(viewer.principal.user_id),
        "statuses": STATUSES,
        "pane_errors": {},
    }


async def _composer_context(
    session: Any, viewer: web.Viewer, cid: str, conv: dict[str, Any] | None = None
) -> dict[str, Any]:
    conv = conv or await _conversation(session, viewer, cid)
    return {
        "c": conv,
        "may_reply": await _may_reply(session, viewer, conv),
        "templates": [] if conv["window_open"] else await _templates(session, viewer, conv),
        "canned": await conversations.list_canned(session, viewer.workspace_id, None),
        "idempotency_key": str(uuid.uuid4()),
        "compose_errors": {},
        "note_errors": {},
        "values": {},
        "sent": False,
    }


@router.get("/inbox/{conversation_id}")
async def conversation_page(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    pane = await _pane_context(session, viewer, conversation_id)
    ctx = await _list_context(session, viewer, request.query_params)
    last, _ = await live.bounds(session, viewer.workspace_id)
    ctx |= pane | await _composer_context(session, viewer, conversation_id, pane["c"])
    ctx |= {"open": pane["c"], "open_id": pane["c"]["id"], "last_event_id": last}
    return web.render(request, "inbox.html", ctx, viewer=viewer)


@router.get("/inbox/{conversation_id}/pane")
async def conversation_pane(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    ctx = await _pane_context(session, viewer, conversation_id)
    return web.render(request, "inbox_pane.html", ctx, viewer=viewer)


@router.get("/inbox/{conversation_id}/composer")
async def conversation_composer(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    ctx = await _composer_context(session, viewer, conversation_id)
    return web.render(request, "inbox_composer.html", ctx, viewer=viewer)


async def _pane_answer(
    request: Request,
    session: Any,
    viewer: web.Viewer,
    cid: str,
    errors: web.FieldErrors,
) -> Response:
    """After an action on the conversation: the pane again (with the refusal, if any)."""
    if not web.is_htmx(request):
        if errors:
            ctx = await _list_context(session, viewer, {})
            pane = await _pane_context(session, viewer, cid)
            ctx |= pane | await _composer_context(session, viewer, cid, pane["c"])
            ctx |= {"open": pane["c"], "open_id": cid, "pane_errors": errors}
            ctx["last_event_id"] = (await live.bounds(session, viewer.workspace_id))[0]
            return web.render(request, "inbox.html", ctx, viewer=viewer, status_code=422)
        return web.redirect(request, f"/inbox/{cid}")
    ctx = await _pane_context(session, viewer, cid)
    ctx["pane_errors"] = errors
    return web.render(
        request,
        "inbox_pane.html",
        ctx,
        viewer=viewer,
        status_code=422 if errors else 200,
        headers={} if errors else {"HX-Trigger": "inbox-composer, inbox-refresh"},
    )


async def _act(session: Any, viewer: web.Viewer, action: Any) -> web.FieldErrors:
    """Run a service call; a refusal is shown next to the form (a foreign id stays a 404)."""
    try:
        await action
    except NotFound:
        await web.undo(session, viewer)
        raise
    except AisouleError as exc:
        await web.undo(session, viewer)
        if exc.code == "already_assigned":  # its details hold the holder's id; say who
            return {"assignee_id": exc.message}
        return web.errors_of(exc)
    return {}


@router.post("/inbox/{conversation_id}/read")
async def mark_read(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    """The member has the conversation open: their unread count drops to 0 and the customer's
    newest message is marked read at WhatsApp (the service does that after commit)."""
    await inbox.mark_read(session, get_runtime(request), viewer.principal, conversation_id)
    if not web.is_htmx(request):
        return web.redirect(request, f"/inbox/{conversation_id}")
    return Response(status_code=204, headers={"HX-Trigger": "inbox-refresh"})


@router.post("/inbox/{conversation_id}/claim")
async def claim(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    errors = await _act(
        session, viewer, conversations.claim(session, viewer.principal, conversation_id)
    )
    return await _pane_answer(request, session, viewer, conversation_id, errors)


@router.post("/inbox/{conversation_id}/assign")
async def assign(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    target = web.form_value(form, "assignee_id") or None
    reason = web.form_value(form, "reason")[:500] or None
    errors = await _act(
        session,
        viewer,
        conversations.assign(session, viewer.principal, conversation_id, target, reason),
    )
    return await _pane_answer(request, session, viewer, conversation_id, errors)


def _until(value: str, tz_name: str) -> tuple[datetime | None, str | None]:
    if not value:
        return None, None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return None, "must be a date and time"
    if local.tzinfo is None:
        try:
            zone: Any = ZoneInfo(tz_name) if tz_name else UTC
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC), None


@router.post("/inbox/{conversation_id}/status")
async def set_status(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    await _conversation(session, viewer, conversation_id)  # 404 before reading the form
    status = web.form_value(form, "status")
    until, problem = _until(web.form_value(form, "snoozed_until"), web.form_value(form, "tz"))
    data, errors = web.parse(
        StatusChange,
        {
            "status": status,
            "snoozed_until": until if status == "snoozed" else None,
            "reason": web.form_value(form, "reason") or None,
        },
    )
    if problem:
        errors["snoozed_until"] = problem
    if "_form" in errors and "snoozed_until" in errors["_form"]:
        errors["snoozed_until"] = errors.pop("_form").split(": ", 1)[-1]
    if data is not None and not errors:
        errors = await _act(
            session,
            viewer,
            conversations.set_status(session, viewer.principal, conversation_id, data),
        )
    return await _pane_answer(request, session, viewer, conversation_id, errors)


@router.post("/inbox/{conversation_id}/labels")
async def change_labels(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    await _conversation(session, viewer, conversation_id)
    add = [p.strip() for p in web.form_value(form, "add").split(",") if p.strip()]
    remove = [v for v in form.getlist("remove") if isinstance(v, str) and v.strip()]
    data, errors = web.parse(LabelsChange, {"add": add, "remove": remove})
    errors = {("add" if k in ("add", "remove") else k): v for k, v in errors.items()}
    if data is not None and not errors:
        errors = await _act(
            session,
            viewer,
            conversations.change_labels(session, viewer.principal, conversation_id, data),
        )
    return await _pane_answer(request, session, viewer, conversation_id, errors)


async def _composer_answer(
    request: Request,
    session: Any,
    viewer: web.Viewer,
    cid: str,
    *,
    compose_errors: web.FieldErrors | None = None,
    note_errors: web.FieldErrors | None = None,
    values: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Response:
    failed = bool(compose_errors or note_errors)
    if not web.is_htmx(request) and not failed:
        return web.redirect(request, f"/inbox/{cid}")
    ctx = await _composer_context(session, viewer, cid)
    ctx |= {
        "compose_errors": compose_errors or {},
        "note_errors": note_errors or {},
        "values": values or {},
        "sent": not failed,
    }
    if failed and idempotency_key:
        # Nothing was sent: the same composed message may be sent again under its key.
        ctx["idempotency_key"] = idempotency_key
    if not web.is_htmx(request):
        full = await _list_context(session, viewer, {})
        pane = await _pane_context(session, viewer, cid)
        full |= pane | ctx | {"open": pane["c"], "open_id": cid}
        full["last_event_id"] = (await live.bounds(session, viewer.workspace_id))[0]
        return web.render(request, "inbox.html", full, viewer=viewer, status_code=422)
    return web.render(
        request,
        "inbox_composer.html",
        ctx,
        viewer=viewer,
        status_code=422 if failed else 200,
        headers={} if failed else {"HX-Trigger": "inbox-pane, inbox-refresh"},
    )


def _reply_body(form: FormData) -> dict[str, Any]:
    reply_to = web.form_value(form, "reply_to") or None
    if web.form_value(form, "mode") == "template":
        name, _, language = web.form_value(form, "template").partition("|")
        named = {
            k[len("param.") :]: v.strip()
            for k, v in form.multi_items()
            if k.startswith("param.") and isinstance(v, str)
        }
        positional = [v.strip() for v in form.getlist("param") if isinstance(v, str)]
        template: dict[str, Any] = {"name": name, "language": language or "en_US"}
        if named:
            template["parameters"] = named
        elif positional:
            template["parameters"] = positional
        return {"type": "template", "template": template, "reply_to": reply_to}
    text = form.get("text")
    text = text.strip() if isinstance(text, str) else ""
    canned = web.form_value(form, "canned")
    if not canned and re.fullmatch(r"/[A-Za-z0-9_-]{1,64}", text):
        canned, text = text[1:], ""  # "/shipping": the canned response of that short code
    return {
        "type": "text",
        "text": text or None,
        "canned": canned or None,
        "reply_to": reply_to,
    }


@router.post("/inbox/{conversation_id}/reply")
async def reply(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    await _conversation(session, viewer, conversation_id)
    sent_key = web.form_value(form, "idempotency_key")
    key = sent_key if _KEY.match(sent_key) else None
    body = _reply_body(form)
    data, errors = web.parse(Reply, body)
    if "_form" in errors:
        message = errors.pop("_form")
        field, _, rest = message.partition(": ")
        errors[field if field in ("text", "canned", "template") else "text"] = rest or message
    if data is not None and not errors:
        errors = await _act(
            session,
            viewer,
            inbox.reply(
                session,
                get_runtime(request),
                viewer.principal,
                conversation_id,
                data,
                f"dash:{viewer.principal.user_id}:{key}" if key else None,
            ),
        )
        errors = {("text" if k.startswith("text") else k): v for k, v in errors.items()}
    values = {"text": form.get("text") if isinstance(form.get("text"), str) else ""}
    return await _composer_answer(
        request,
        session,
        viewer,
        conversation_id,
        compose_errors=errors,
        values=values if errors else {},
        idempotency_key=key,
    )


@router.post("/inbox/{conversation_id}/notes")
async def add_note(
    conversation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    await _conversation(session, viewer, conversation_id)
    note = form.get("note")
    note = note if isinstance(note, str) else ""
    errors: web.FieldErrors = {}
    if not note.strip():
        errors["note"] = "Write the note first"
    elif len(note) > 10_000:
        errors["note"] = "A note has at most 10,000 characters"
    else:
        errors = await _act(
            session,
            viewer,
            conversations.add_note(session, viewer.principal, conversation_id, note),
        )
        if errors:
            errors = {"note": next(iter(errors.values()))}
    return await _composer_answer(
        request,
        session,
        viewer,
        conversation_id,
        note_errors=errors,
        values={"note": note} if errors else {},
    )
