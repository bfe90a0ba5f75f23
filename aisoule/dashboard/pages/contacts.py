"""Contacts: the table (search, tag, stage and custom-field filters, keyset pages), create, edit,
delete, bulk tag and bulk delete, and the contact page (details, consent, message history)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from aisoule.accounts import service as accounts_service
from aisoule.contacts import service as contacts_service
from aisoule.contacts.schemas import ContactCreateApi, ContactUpdateApi, full_name
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.exceptions import AisouleError, NotFound
from aisoule.inbox import service as inbox_service
from aisoule.messages import service as messages_service
from aisoule.messages.schemas import MessageSend
from aisoule.templates import service as templates_service
from aisoule.workspaces import service as workspace_service

router = APIRouter()
PER_PAGE = 50
FINAL = frozenset({"read", "failed"})


def _int(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


def _filters(params: Any) -> dict[str, str]:
    out = {}
    for k in ("q", "tag", "stage", "field", "value"):
        v = params.get(k)
        out[k] = v.strip()[:200] if isinstance(v, str) else ""
    return out


async def _list_context(
    session: Any, viewer: web.Viewer, params: Any, *, paged: bool = True
) -> dict[str, Any]:
    f = _filters(params)
    errors: web.FieldErrors = {}
    field = (f["field"], f["value"]) if f["field"] else None
    page = None
    try:
        page = await contacts_service.browse(
            session,
            viewer.workspace_id,
            limit=PER_PAGE,
            after=_int(params.get("after")) if paged else None,
            before=_int(params.get("before")) if paged else None,
            tag=f["tag"] or None,
            stage=f["stage"] or None,
            q=f["q"] or None,
            field=field,
        )
    except AisouleError as exc:
        errors = web.errors_of(exc)
    stages = await workspace_service.list_stages(session, viewer.workspace_id)
    return {
        "page": page,
        "filters": f,
        "errors": errors,
        "stages": stages,
        "full_name": full_name,
        "query": {k: v for k, v in f.items() if v},
        "form_errors": {},
        "values": {},
        "notice": None,
    }


def _results(request: Request) -> bool:
    return web.is_htmx(request) and request.headers.get("hx-target") == "results"


@router.get("/contacts")
async def contacts(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    ctx = await _list_context(session, viewer, request.query_params)
    template = "contacts_results.html" if _results(request) else "contacts.html"
    return web.render(request, template, ctx, viewer=viewer)


def _contact_fields(form: FormData, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The form's fields as the API's body: tags comma-separated, custom fields one
    ``key: value`` per line (a key that is no longer listed is removed)."""
    data: dict[str, Any] = {}
    for name in ("phone_number", "name", "email", "stage"):
        value = web.form_value(form, name)
        if value or existing is not None:
            data[name] = value or None
    if existing is not None:
        if data.get("phone_number") is None:
            data.pop("phone_number")
        if data.get("stage") is None:
            data.pop("stage")
    tags = web.form_value(form, "tags")
    data["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    custom: dict[str, Any] = {}
    for line in web.form_value(form, "custom_fields").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        custom[key.strip()] = value.strip() if sep else ""
    if existing is not None:
        for key in existing.get("custom_fields") or {}:
            custom.setdefault(key, None)
    data["custom_fields"] = custom
    return data


def _form_values(form: FormData) -> dict[str, str]:
    names = ("phone_number", "name", "email", "stage", "tags", "custom_fields")
    return {k: web.form_value(form, k) for k in names}


@router.post("/contacts")
async def create_contact(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    form = await request.form()
    body, errors = web.parse(ContactCreateApi, _contact_fields(form))
    if body is not None:
        try:
            row = await contacts_service.create_api(session, viewer.workspace_id, body)
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
        else:
            return web.redirect(request, f"/contacts/{row['uuid']}")
    errors = {
        ("custom_fields" if k.startswith("custom_fields") else k): v for k, v in errors.items()
    }
    stages = await workspace_service.list_stages(session, viewer.workspace_id)
    return web.render(
        request,
        "contact_form.html",
        {"form_errors": errors, "values": _form_values(form), "stages": stages, "contact": None},
        viewer=viewer,
        status_code=422,
    )


def _custom_text(fields: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in fields.items())


async def _contact_context(session: Any, viewer: web.Viewer, contact_id: str) -> dict[str, Any]:
    row = await contacts_service.get_by_uuid(session, viewer.workspace_id, contact_id)
    consent = await contacts_service.find_recipient(
        session, viewer.workspace_id, reference=str(row["uuid"])
    )
    messages, total = await messages_service.list_page(
        session,
        viewer.workspace_id,
        limit=50,
        offset=0,
        contact=str(row["uuid"]),
        status=None,
        direction=None,
    )
    stages = await workspace_service.list_stages(session, viewer.workspace_id)
    accounts, _ = await accounts_service.list_page(session, viewer.workspace_id, limit=50, offset=0)
    approved, _ = await templates_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0, status="APPROVED"
    )
    return {
        "contact": row,
        "name": full_name(row["first_name"], row["last_name"]),
        "consent": consent,
        "messages": messages,
        "messages_total": total,
        "polling": any(m.status not in FINAL for m in messages if m.direction == "outbound"),
        "stages": stages,
        "sandbox": next((a for a in accounts if a.provider == "emulator"), None),
        "templates": approved,
        "values": {
            "phone_number": row["phone"],
            "name": full_name(row["first_name"], row["last_name"]) or "",
            "email": row["email"] or "",
            "stage": row["stage"],
            "tags": ", ".join(row["tags"]),
            "custom_fields": _custom_text(row["custom_fields"]),
        },
        "form_errors": {},
        "send_errors": {},
    }


@router.get("/contacts/{contact_id}")
async def contact_page(
    contact_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    ctx = await _contact_context(session, viewer, contact_id)
    return web.render(request, "contact.html", ctx, viewer=viewer)


@router.get("/contacts/{contact_id}/messages")
async def contact_messages(
    contact_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    """The message history alone: the page polls it while a message is on its way."""
    ctx = await _contact_context(session, viewer, contact_id)
    return web.render(request, "contact_messages.html", ctx, viewer=viewer)


@router.post("/contacts/{contact_id}")
async def update_contact(
    contact_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    existing = await contacts_service.get_by_uuid(session, viewer.workspace_id, contact_id)
    body, errors = web.parse(ContactUpdateApi, _contact_fields(form, dict(existing)))
    if body is not None:
        try:
            await contacts_service.update_api(session, viewer.workspace_id, contact_id, body)
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
    errors = {
        ("custom_fields" if k.startswith("custom_fields") else k): v for k, v in errors.items()
    }
    ctx = await _contact_context(session, viewer, contact_id)
    if errors:
        ctx["values"] = _form_values(form)
        ctx["form_errors"] = errors
    else:
        ctx["saved"] = True
    return web.render(
        request, "contact.html", ctx, viewer=viewer, status_code=422 if errors else 200
    )


@router.post("/contacts/{contact_id}/delete")
async def delete_contact(
    contact_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    await contacts_service.delete_by_uuid(session, viewer.workspace_id, contact_id)
    return web.redirect(request, "/contacts")


@router.post("/contacts-bulk")
async def bulk(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    """Bulk tag or delete the selected contacts, then the list again (same filters, first page)."""
    form = await request.form()
    ids = [v for v in form.getlist("ids") if isinstance(v, str)]
    action = web.form_value(form, "action")
    if action not in ("tag", "delete"):
        raise NotFound("No such bulk action")
    try:
        if action == "tag":
            tag = web.form_value(form, "bulk_tag")
            count = await contacts_service.bulk_tag(session, viewer.workspace_id, ids, tag)
            notice = f"Tagged {count} contact{'s' if count != 1 else ''} “{tag}”."
        else:
            count = await contacts_service.bulk_delete(session, viewer.workspace_id, ids)
            notice = f"Deleted {count} contact{'s' if count != 1 else ''}."
    except NotFound:
        await web.undo(session)
        raise
    except AisouleError as exc:
        await web.undo(session)
        notice = exc.message
    if not web.is_htmx(request):
        return web.redirect(request, "/contacts")
    ctx = await _list_context(session, viewer, form, paged=False)
    ctx["notice"] = notice
    return web.render(request, "contacts_results.html", ctx, viewer=viewer)


@router.post("/contacts/{contact_id}/send")
async def send_message(
    contact_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    row = await contacts_service.get_by_uuid(session, viewer.workspace_id, contact_id)
    template_name = web.form_value(form, "template")
    data: dict[str, Any] = {"to": str(row["uuid"])}
    if template_name:
        name, _, language = template_name.partition("|")
        data |= {"type": "template", "template": {"name": name, "language": language or "en_US"}}
    else:
        data |= {"type": "text", "text": {"body": web.form_value(form, "text")}}
    body, errors = web.parse(MessageSend, data)
    if body is not None:
        try:
            await inbox_service.send(session, get_runtime(request), viewer.principal, body)
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
    errors = {("text" if k.startswith("text") else k): v for k, v in errors.items()}
    ctx = await _contact_context(session, viewer, contact_id)
    ctx["send_errors"] = errors
    return web.render(
        request,
        "contact_messages.html",
        ctx,
        viewer=viewer,
        status_code=422 if errors else 200,
    )


@router.post("/contacts/{contact_id}/simulate")
async def simulate(
    contact_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    """The sandbox: this contact writes to the workspace's sandbox number (opens the window)."""
    form = await request.form()
    row = await contacts_service.get_by_uuid(session, viewer.workspace_id, contact_id)
    accounts, _ = await accounts_service.list_page(session, viewer.workspace_id, limit=50, offset=0)
    sandbox = next((a for a in accounts if a.provider == "emulator"), None)
    errors: web.FieldErrors = {}
    if sandbox is None:
        errors["inbound_text"] = "This workspace has no sandbox number"
    else:
        try:
            await accounts_service.simulate_customer_message(
                session,
                get_runtime(request),
                viewer.workspace_id,
                str(sandbox.id),
                phone=row["phone"],
                name=full_name(row["first_name"], row["last_name"]) or "Customer",
                text=web.form_value(form, "inbound_text") or "Hi!",
            )
        except AisouleError as exc:
            errors = {"inbound_text": exc.message}
    ctx = await _contact_context(session, viewer, contact_id)
    ctx["send_errors"] = errors
    ctx["polling"] = True  # the message arrives as a webhook, a moment later
    return web.render(request, "contact_messages.html", ctx, viewer=viewer)
