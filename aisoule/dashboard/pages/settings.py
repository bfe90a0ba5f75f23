"""Home (the first-run checklist), Settings → API Keys (seed 000) and the workspace audit log."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from starlette.responses import Response

from aisoule.accounts import service as accounts_service
from aisoule.api_keys import service as key_service
from aisoule.api_keys.schemas import APIKeyCreate, KeyUsage, status_of, usage_out
from aisoule.audit import service as audit
from aisoule.audit.dependencies import request_origin
from aisoule.audit.schemas import AuditEventType
from aisoule.auth.scopes import DEFAULT_KEY_SCOPES, Scope
from aisoule.campaigns import service as campaigns_service
from aisoule.contacts import service as contacts_service
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.exceptions import Forbidden, NotFound
from aisoule.kit.ids import parse_uuid
from aisoule.messages import service as messages_service

router = APIRouter()

SCOPE_HELP = {
    Scope.contacts_read: "Read contacts",
    Scope.contacts_write: "Create, update and delete contacts",
    Scope.messages_send: "Send messages and read the message log",
    Scope.templates_read: "Read message templates",
    Scope.templates_write: "Create, sync and delete templates",
    Scope.campaigns_read: "Read campaigns",
    Scope.campaigns_write: "Create and run campaigns",
    Scope.accounts_read: "Read WhatsApp numbers",
    Scope.accounts_write: "Connect and change WhatsApp numbers",
    Scope.keys_manage: "Manage API keys (powerful: give it rarely)",
    Scope.conversations_read: "Read the inbox: conversations, timelines, live events",
    Scope.conversations_write: "Answer in the inbox: reply, assign, label, notes",
    Scope.workspace_manage: "Manage members, invitations and inbox settings (powerful)",
}


@router.get("/")
async def home(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    ws = viewer.workspace_id
    contacts = await contacts_service.browse(session, ws, limit=1)
    keys = await key_service.list_keys(session, ws)
    _, messages = await messages_service.list_page(
        session, ws, limit=1, offset=0, contact=None, status=None, direction=None
    )
    accounts, _ = await accounts_service.list_page(session, ws, limit=20, offset=0)
    recent, campaigns = await campaigns_service.list_page(session, ws, limit=3, offset=0)
    steps = [
        {
            "done": messages > 0,
            "title": "Send a test message in the sandbox",
            "text": "A simulated customer writes to your sandbox number; you answer. "
            "No Meta account needed.",
            "href": "/numbers",
            "action": "Open the sandbox",
        },
        {
            "done": bool(keys),
            "title": "Create an API key",
            "text": "Connect your CRM or scripts to the REST API.",
            "href": "/settings/api-keys",
            "action": "New API Key",
        },
        {
            "done": (contacts.total or 0) > 0,
            "title": "Add or import contacts",
            "text": "Add them here, or import them in bulk with POST /v1/contacts.",
            "href": "/contacts",
            "action": "Add a contact",
        },
        {
            "done": campaigns > 0,
            "title": "Send a campaign",
            "text": "One approved template to many contacts at once (a tag, a stage, a city), "
            "each with their own values, with live delivery and read stats.",
            "href": "/campaigns/new",
            "action": "New campaign",
        },
    ]
    if not viewer.can("keys:manage"):  # an agent's checklist: what their role can do
        steps = [s for s in steps if s["href"] != "/settings/api-keys"]
    return web.render(
        request,
        "home.html",
        {
            "steps": steps,
            "all_done": all(s["done"] for s in steps),
            "counts": {
                "contacts": contacts.total or 0,
                "messages": messages,
                "keys": len(keys),
                "campaigns": campaigns,
            },
            "recent_campaigns": recent,
            "accounts": accounts,
        },
        viewer=viewer,
    )


# -- API keys ----------------------------------------------------------------------------------


def _expiry(value: str, tz_name: str) -> tuple[datetime | None, str | None]:
    """A date from the form: the key works through that whole day in the user's time zone."""
    if not value:
        return None, None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None, "must be a date (YYYY-MM-DD)"
    try:
        zone: Any = ZoneInfo(tz_name) if tz_name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return end.astimezone(UTC), None


def _keys_context(keys: list[Any]) -> dict[str, Any]:
    return {
        "keys": [{"row": k, "status": status_of(k)} for k in keys],
        "scopes": [(s.value, SCOPE_HELP.get(s, s.value)) for s in Scope],
        "default_scopes": set(DEFAULT_KEY_SCOPES),
    }


@router.get("/settings/api-keys")
async def api_keys(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, "keys:manage", "Managing API keys")
    keys = await key_service.list_keys(session, viewer.workspace_id)
    return web.render(
        request,
        "api_keys.html",
        {**_keys_context(list(keys)), "errors": {}, "values": {}, "created": None},
        viewer=viewer,
    )


@router.post("/settings/api-keys")
async def create_api_key(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, "keys:manage", "Managing API keys")
    form = await request.form()
    values: dict[str, Any] = {
        "name": web.form_value(form, "name"),
        "expires_on": web.form_value(form, "expires_on"),
        "scopes": [v for v in form.getlist("scopes") if isinstance(v, str)],
    }
    expires_at, expiry_error = _expiry(values["expires_on"], web.form_value(form, "tz"))
    data, errors = web.parse(
        APIKeyCreate,
        {
            "name": values["name"],
            "expires_at": expires_at,
            "scopes": values["scopes"],
        },
    )
    if expiry_error:
        errors["expires_on"] = expiry_error
    elif "expires_at" in errors:
        errors["expires_on"] = errors.pop("expires_at")
    created = None
    if data is not None and not errors:
        row, secret = await key_service.create_key(
            session,
            request.app.state.api_key_pepper,
            workspace_id=viewer.workspace_id,
            data=data,
            creator=viewer.principal,
            created_by=viewer.user.id,
        )
        await audit.record(
            session,
            viewer.workspace_id,
            AuditEventType.api_key_created,
            request_origin(request),
            user_id=viewer.user.id,
            details={
                "key_id": str(row.id),
                "name": row.name,
                "scopes": row.scopes,
                "prefix": row.prefix,
            },
        )
        created = {"row": row, "secret": secret}
        values = {}
    keys = await key_service.list_keys(session, viewer.workspace_id)
    ctx = {**_keys_context(list(keys)), "errors": errors, "values": values, "created": created}
    template = "api_keys_result.html" if web.is_htmx(request) else "api_keys.html"
    return web.render(request, template, ctx, viewer=viewer, status_code=201 if created else 422)


def _key_id(key_id: str) -> Any:
    parsed = parse_uuid(key_id)
    if parsed is None:
        raise NotFound("API key not found")
    return parsed


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_api_key(
    key_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    web.require(viewer, "keys:manage", "Managing API keys")
    row, revoked_now = await key_service.revoke_key(session, viewer.workspace_id, _key_id(key_id))
    request.app.state.key_cache.invalidate()
    if revoked_now:
        await audit.record(
            session,
            viewer.workspace_id,
            AuditEventType.api_key_revoked,
            request_origin(request),
            user_id=viewer.user.id,
            details={"key_id": str(row.id), "name": row.name, "prefix": row.prefix},
        )
    form = await request.form()
    if web.form_value(form, "back") == "detail":
        return web.redirect(request, f"/settings/api-keys/{row.id}")
    if web.is_htmx(request):
        return web.render(
            request,
            "api_key_row.html",
            {"k": {"row": row, "status": status_of(row)}},
            viewer=viewer,
        )
    return web.redirect(request, "/settings/api-keys")


def chart(usage: KeyUsage) -> dict[str, Any]:
    """Bars for an inline SVG: requests per day, the last 30 days, errors (4xx, 5xx) apart."""
    out = usage_out(usage)
    days = out["days"]
    peak = max((d["total"] for d in days), default=0) or 1
    width, height, gap = 10, 80, 2
    bars = []
    for i, d in enumerate(days):
        failed = d["4xx"] + d["5xx"]
        ok = d["total"] - failed
        h_ok = round(ok / peak * height)
        h_failed = round(failed / peak * height)
        bars.append(
            {
                "x": i * (width + gap),
                "ok_y": height - h_ok,
                "ok_h": h_ok,
                "failed_y": height - h_ok - h_failed,
                "failed_h": h_failed,
                "date": d["date"],
                "total": d["total"],
                "failed": failed,
            }
        )
    return {
        "bars": bars,
        "width": len(days) * (width + gap) - gap,
        "height": height,
        "bar_width": width,
        "peak": peak if any(d["total"] for d in days) else 0,
        "totals": out["totals"],
        "days": days,
    }


@router.get("/settings/api-keys/{key_id}")
async def api_key_detail(
    key_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    web.require(viewer, "keys:manage", "Managing API keys")
    usage = await key_service.usage(session, viewer.workspace_id, _key_id(key_id))
    return web.render(
        request,
        "api_key.html",
        {"k": {"row": usage.key, "status": status_of(usage.key)}, "chart": chart(usage)},
        viewer=viewer,
    )


# -- the audit log -----------------------------------------------------------------------------

PER_PAGE = 50


@router.get("/settings/audit-log")
async def audit_log(
    request: Request, viewer: ViewerDep, session: DBSession, page: int = 1, event: str = ""
) -> Response:
    if not viewer.is_owner:
        raise Forbidden("The audit log is for workspace owners")
    page = max(1, min(page, 100_000))
    kind = AuditEventType(event) if event in AuditEventType.__members__.values() else None
    rows, total = await audit.list_page(
        session, viewer.workspace_id, limit=PER_PAGE, offset=(page - 1) * PER_PAGE, event=kind
    )
    return web.render(
        request,
        "audit_log.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PER_PAGE)),
            "event": kind.value if kind else "",
            "events": [e.value for e in AuditEventType],
        },
        viewer=viewer,
    )
