"""WhatsApp numbers (the sandbox, connecting a real one), templates (with a live preview) and
the messages log."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from aisoule.accounts import service as accounts_service
from aisoule.accounts.schemas import AccountCreate
from aisoule.contacts import service as contacts_service
from aisoule.contacts.schemas import full_name
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.exceptions import AisouleError
from aisoule.kit.phone import InvalidPhone, normalize_phone
from aisoule.messages import service as messages_service
from aisoule.templates import service as templates_service
from aisoule.templates.schemas import TemplateCreate

router = APIRouter()

# -- numbers -----------------------------------------------------------------------------------

CONNECT_FIELDS = (
    "name",
    "phone_number_id",
    "waba_id",
    "access_token",
    "app_secret",
    "verify_token",
    "throughput",
)


async def _numbers_context(request: Request, viewer: web.Viewer, session: Any) -> dict[str, Any]:
    rows, total = await accounts_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0
    )
    return {
        "accounts": rows,
        "total": total,
        "webhook_url": f"{request.app.state.settings.base_url}/webhooks/whatsapp",
        "errors": {},
        "values": {"throughput": "80"},
        "inbound_errors": {},
        "inbound_sent": None,
    }


@router.get("/numbers")
async def numbers(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    ctx = await _numbers_context(request, viewer, session)
    return web.render(request, "numbers.html", ctx, viewer=viewer)


@router.post("/numbers")
async def connect_number(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, "accounts:write", "Connecting a number")
    form = await request.form()
    values = {k: web.form_value(form, k) for k in CONNECT_FIELDS}
    data: dict[str, Any] = {k: v for k, v in values.items() if v}
    data.setdefault("name", "")
    body, errors = web.parse(AccountCreate, data)
    if body is not None:
        try:
            await accounts_service.connect(session, get_runtime(request), viewer.workspace_id, body)
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
        else:
            return web.redirect(request, "/numbers")
    ctx = await _numbers_context(request, viewer, session)
    values["access_token"] = values["app_secret"] = values["verify_token"] = ""  # never echoed
    ctx |= {"errors": errors, "values": values}
    return web.render(request, "numbers.html", ctx, viewer=viewer, status_code=422)


@router.get("/numbers/{account_id}")
async def number_page(
    account_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    account = await accounts_service.get(session, viewer.workspace_id, account_id)
    return web.render(
        request,
        "number.html",
        {
            "a": account,
            "webhook_url": f"{request.app.state.settings.base_url}/webhooks/whatsapp",
            "inbound_errors": {},
            "inbound_sent": None,
            "values": {},
        },
        viewer=viewer,
    )


@router.post("/numbers/{account_id}/simulate")
async def simulate_inbound(
    account_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    """The sandbox: a customer (any number) writes to it; then answer them from their page."""
    form = await request.form()
    account = await accounts_service.get(session, viewer.workspace_id, account_id)
    values = {k: web.form_value(form, k) for k in ("phone", "customer_name", "text")}
    errors: web.FieldErrors = {}
    phone = ""
    try:
        phone = normalize_phone(values["phone"])
    except InvalidPhone as exc:
        errors["phone"] = str(exc) or "is not a valid phone number"
    if not errors:
        try:
            await accounts_service.simulate_customer_message(
                session,
                get_runtime(request),
                viewer.workspace_id,
                account_id,
                phone=phone,
                name=values["customer_name"] or "Customer",
                text=values["text"],
            )
        except AisouleError as exc:
            errors = web.errors_of(exc)
    return web.render(
        request,
        "number_simulate.html",
        {
            "a": account,
            "inbound_errors": errors,
            "inbound_sent": None if errors else phone,
            "values": values if errors else {},
        },
        viewer=viewer,
        status_code=422 if errors else 200,
    )


# -- templates ---------------------------------------------------------------------------------


@router.get("/templates")
async def templates(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    status = (request.query_params.get("status") or "").strip()[:32]
    name = (request.query_params.get("name") or "").strip()[:200]
    rows, total = await templates_service.list_page(
        session,
        viewer.workspace_id,
        limit=100,
        offset=0,
        status=status or None,
        name=name or None,
    )
    ctx = {
        "rows": rows,
        "total": total,
        "filters": {"status": status, "name": name},
        "polling": any(r.status == "PENDING" for r in rows),
        "notice": None,
    }
    template = (
        "templates_results.html"
        if web.is_htmx(request) and request.headers.get("hx-target") == "results"
        else "templates.html"
    )
    return web.render(request, template, ctx, viewer=viewer)


@router.post("/templates/sync")
async def sync_templates(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, "templates:write", "Syncing templates")
    try:
        counts = await templates_service.sync(
            session, get_runtime(request), viewer.workspace_id, None
        )
        notice = (
            f"Synced with Meta: {counts['created']} new, {counts['updated']} updated, "
            f"{counts['deleted']} removed."
        )
    except AisouleError as exc:
        await web.undo(session)
        notice = exc.message
    rows, total = await templates_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0
    )
    ctx = {
        "rows": rows,
        "total": total,
        "filters": {"status": "", "name": ""},
        "polling": any(r.status == "PENDING" for r in rows),
        "notice": notice,
    }
    return web.render(request, "templates_results.html", ctx, viewer=viewer)


TEMPLATE_FIELDS = (
    "account_id",
    "name",
    "language",
    "category",
    "parameter_format",
    "header_text",
    "header_example",
    "body",
    "body_examples",
    "footer",
    "buttons",
)
_SECTION = {"HEADER": "header_text", "BODY": "body", "FOOTER": "footer", "BUTTONS": "buttons"}
_EXAMPLES = {"HEADER": "header_example", "BODY": "body_examples"}
_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def _named(lines: list[str]) -> list[dict[str, str]]:
    out = []
    for line in lines:
        key, _, value = line.partition(":") if ":" in line else line.partition("=")
        out.append({"param_name": key.strip(), "example": value.strip()})
    return out


def _components(v: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The form as Meta's components, and which form section each one came from."""
    named = v["parameter_format"] == "NAMED"
    comps: list[dict[str, Any]] = []
    kinds: list[str] = []
    if v["header_text"]:
        header: dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": v["header_text"]}
        if _VAR.search(v["header_text"]) and v["header_example"]:
            if named:
                header["example"] = {"header_text_named_params": _named([v["header_example"]])}
            else:
                header["example"] = {"header_text": [v["header_example"]]}
        comps.append(header)
        kinds.append("HEADER")
    body: dict[str, Any] = {"type": "BODY", "text": v["body"]}
    lines = [ln.strip() for ln in v["body_examples"].splitlines() if ln.strip()]
    if lines:
        body["example"] = (
            {"body_text_named_params": _named(lines)} if named else {"body_text": [lines]}
        )
    comps.append(body)
    kinds.append("BODY")
    if v["footer"]:
        comps.append({"type": "FOOTER", "text": v["footer"]})
        kinds.append("FOOTER")
    buttons = [b.strip() for b in v["buttons"].splitlines() if b.strip()]
    if buttons:
        comps.append(
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": b} for b in buttons]}
        )
        kinds.append("BUTTONS")
    return comps, kinds


def _template_errors(errors: web.FieldErrors, kinds: list[str]) -> web.FieldErrors:
    """The service names Meta's structure (``components[1].example.body_text``); the form has
    one input per part: each error goes next to the input it is about."""
    out: web.FieldErrors = {}
    for field, message in errors.items():
        m = re.match(r"components\[(\d+)\](?:\.(\w+))?", field)
        if m and int(m.group(1)) < len(kinds):
            kind = kinds[int(m.group(1))]
            name = (
                _EXAMPLES[kind] if m.group(2) == "example" and kind in _EXAMPLES else _SECTION[kind]
            )
            out.setdefault(name, message)
        elif field == "components":
            out.setdefault("body", message)
        else:
            out.setdefault(field, message)
    return out


async def _template_form(
    request: Request,
    viewer: web.Viewer,
    session: Any,
    values: dict[str, str],
    errors: web.FieldErrors,
    status_code: int = 200,
) -> Response:
    accounts, _ = await accounts_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0
    )
    return web.render(
        request,
        "template_new.html",
        {
            "values": values,
            "errors": errors,
            "account_options": [("", "Default number")]
            + [(str(a.id), f"{a.display_name or a.name} {a.phone_number}") for a in accounts],
        },
        viewer=viewer,
        status_code=status_code,
    )


@router.get("/templates/new")
async def new_template(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, "templates:write", "Creating templates")
    values = {k: "" for k in TEMPLATE_FIELDS} | {
        "language": "en_US",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
    }
    return await _template_form(request, viewer, session, values, {})


@router.post("/templates")
async def create_template(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, "templates:write", "Creating templates")
    form: FormData = await request.form()
    values = {k: web.form_value(form, k) for k in TEMPLATE_FIELDS}
    comps, kinds = _components(values)
    data: dict[str, Any] = {
        "name": values["name"],
        "language": values["language"],
        "category": values["category"] or "UTILITY",
        "parameter_format": values["parameter_format"] or "POSITIONAL",
        "components": comps,
    }
    if values["account_id"]:
        data["account_id"] = values["account_id"]
    body, errors = web.parse(TemplateCreate, data)
    if body is not None:
        try:
            row = await templates_service.create(
                session, get_runtime(request), viewer.workspace_id, body
            )
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
        else:
            return web.redirect(request, f"/templates/{row.id}")
    return await _template_form(
        request, viewer, session, values, _template_errors(errors, kinds), status_code=422
    )


def _fill(text: str, values: dict[str, str]) -> str:
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def bubble(row: Any) -> dict[str, Any]:
    """The template as the preview bubble shows it: variables filled from its examples."""
    parts: dict[str, Any] = {"header": None, "body": "", "footer": None, "buttons": []}
    for comp in row.components or []:
        kind = str(comp.get("type", "")).upper()
        text = str(comp.get("text") or "")
        example = comp.get("example") or {}
        values: dict[str, str] = {}
        if kind == "BODY":
            positional = (example.get("body_text") or [[]])[0]
            values = {str(i + 1): str(v) for i, v in enumerate(positional)}
            for p in example.get("body_text_named_params") or []:
                values[str(p.get("param_name"))] = str(p.get("example"))
        elif kind == "HEADER":
            for i, v in enumerate(example.get("header_text") or []):
                values[str(i + 1)] = str(v)
            for p in example.get("header_text_named_params") or []:
                values[str(p.get("param_name"))] = str(p.get("example"))
        filled = _fill(text, values)
        if kind == "HEADER":
            parts["header"] = filled or f"[{comp.get('format', 'media')}]"
        elif kind == "BODY":
            parts["body"] = filled
        elif kind == "FOOTER":
            parts["footer"] = filled
        elif kind == "BUTTONS":
            parts["buttons"] = [str(b.get("text", "")) for b in comp.get("buttons") or []]
    return parts


@router.get("/templates/{template_id}")
async def template_page(
    template_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    row = await templates_service.get(session, viewer.workspace_id, template_id)
    ctx = {"t": row, "bubble": bubble(row), "polling": row.status == "PENDING"}
    template = (
        "template_status.html"
        if web.is_htmx(request) and request.headers.get("hx-target") == "status"
        else "template.html"
    )
    return web.render(request, template, ctx, viewer=viewer)


@router.post("/templates/{template_id}/delete")
async def delete_template(
    template_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    web.require(viewer, "templates:write", "Deleting templates")
    await templates_service.delete(session, get_runtime(request), viewer.workspace_id, template_id)
    return web.redirect(request, "/templates")


# -- messages ----------------------------------------------------------------------------------

STATUSES = ("queued", "sending", "accepted", "sent", "delivered", "read", "failed", "received")
PER_PAGE = 50


@router.get("/messages")
async def messages(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    q = request.query_params
    search = (q.get("q") or "").strip()[:64]
    status = (q.get("status") or "").strip()
    status = status if status in STATUSES else ""
    direction = q.get("direction") if q.get("direction") in ("inbound", "outbound") else None
    try:
        page = max(1, min(int(q.get("page") or 1), 100_000))
    except ValueError:
        page = 1
    rows, total = await messages_service.list_page(
        session,
        viewer.workspace_id,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
        contact=search or None,
        status=status or None,
        direction=direction,
    )
    refs = await contacts_service.refs(session, viewer.workspace_id, (r.contact_id for r in rows))
    ctx = {
        "rows": rows,
        "refs": refs,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PER_PAGE)),
        "filters": {"q": search, "status": status, "direction": direction or ""},
        "statuses": STATUSES,
        "full_name": full_name,
        "polling": any(r.status not in ("read", "failed", "received") for r in rows),
    }
    template = (
        "messages_results.html"
        if web.is_htmx(request) and request.headers.get("hx-target") == "results"
        else "messages.html"
    )
    return web.render(request, template, ctx, viewer=viewer)
