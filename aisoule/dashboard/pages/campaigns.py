"""Campaigns: the list, the create wizard (template, audience with a live count, variable
mapping, the pre-flight, schedule), the same wizard editing a draft, scheduled or paused
campaign, and a campaign's page (live progress, stats, a chart over
time, its recipients, pause / resume / cancel / resend-unknown / retarget). Every number on these
pages comes from aisoule.campaigns.service, as the API's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import FormData, QueryParams
from starlette.responses import Response

from aisoule.accounts import service as accounts_service
from aisoule.campaigns import parameters as campaign_parameters
from aisoule.campaigns import service as campaigns_service
from aisoule.campaigns import status as st
from aisoule.campaigns.schemas import (
    CampaignCreate,
    CampaignPreview,
    CampaignUpdate,
    audience_out,
)
from aisoule.dashboard import web
from aisoule.dashboard.pages.whatsapp import bubble
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.exceptions import AisouleError, Conflict, NotFound
from aisoule.models import Campaign, MessageTemplate
from aisoule.templates import service as templates_service
from aisoule.workspaces import service as workspace_service

router = APIRouter()

PER_PAGE = 25
RECIPIENTS_PER_PAGE = 25
BUCKETS = st.STAT_BUCKETS
LIVE = frozenset({st.RUNNING})
SOURCES = (
    ("first_name", "Contact: first name"),
    ("last_name", "Contact: last name"),
    ("name", "Contact: full name"),
    ("phone", "Contact: phone"),
    ("email", "Contact: email"),
    ("stage", "Contact: stage"),
    ("custom", "Contact: a custom field"),
    ("value", "A fixed value"),
)
_SOURCE_NAMES = {s for s, _ in SOURCES}


def _int(value: str | None, default: int = 1, top: int = 100_000) -> int:
    try:
        return max(1, min(int(value or default), top))
    except ValueError:
        return default


# -- the list ----------------------------------------------------------------------------------


@router.get("/campaigns")
async def campaigns(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    q = request.query_params
    status = (q.get("status") or "").strip()
    status = status if status in st.ALL else ""
    page = _int(q.get("page"))
    rows, total = await campaigns_service.list_page(
        session,
        viewer.workspace_id,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
        status=status or None,
    )
    stats = await campaigns_service.stats_many(session, rows)
    ctx = {
        "rows": rows,
        "stats": stats,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PER_PAGE)),
        "filters": {"status": status},
        "statuses": st.ALL,
        "polling": any(r.status in LIVE for r in rows),
        "progress": _progress,
    }
    template = (
        "campaigns_results.html"
        if web.is_htmx(request) and request.headers.get("hx-target") == "results"
        else "campaigns.html"
    )
    return web.render(request, template, ctx, viewer=viewer)


def _progress(stats: Mapping[str, Any]) -> tuple[int, int]:
    """(settled, total): every recipient no longer pending counts as done."""
    total = int(stats.get("total") or 0)
    return total - int(stats.get("pending") or 0), total


# -- the wizard --------------------------------------------------------------------------------


def _values(data: FormData | QueryParams) -> dict[str, Any]:
    """The wizard's inputs as posted (or in the address, when it re-renders for a new choice)."""
    out: dict[str, Any] = {k: web.form_value(data, k) for k in data if k != web.CSRF_FIELD}
    out["from_statuses"] = [s for s in data.getlist("from_statuses") if s in BUCKETS]
    out["force"] = bool(data.get("force"))
    out.setdefault("when", "draft")
    return out


def _slug(where: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", where).strip("-")


def _slots(template: MessageTemplate | None) -> list[dict[str, Any]]:
    """One row of the mapping per template parameter, named as the service names it."""
    if template is None:
        return []
    named = str(template.parameter_format or "").upper() == "NAMED"
    out = []
    for component, wanted in campaign_parameters.slots(template).items():
        for slot in wanted:
            where = slot.where(named)
            if component == "buttons":
                label = f"Button {int(slot.key) + 1} ({slot.kind.replace('_', ' ')})"
            elif named:
                label = f"{component.capitalize()} variable “{slot.key}”"
            else:
                label = f"{component.capitalize()} variable {int(slot.key) + 1}"
            out.append(
                {
                    "component": component,
                    "key": slot.key,
                    "kind": slot.kind,
                    "where": where,
                    "field": f"parameters.{where}",
                    "slug": _slug(where),
                    "label": label,
                    "media": slot.kind in ("image", "video", "document"),
                }
            )
    return out


def _entry(values: Mapping[str, Any], slot: Mapping[str, Any]) -> dict[str, Any]:
    name = f"p.{slot['where']}"
    source = values.get(f"{name}.source") or ("value" if slot["media"] else "first_name")
    if source not in _SOURCE_NAMES or slot["media"]:
        source = "value"
    if source == "value":
        return {"value": values.get(f"{name}.value", "")}
    field = source if source != "custom" else f"custom_fields.{values.get(f'{name}.custom', '')}"
    entry: dict[str, Any] = {"field": field}
    fallback = values.get(f"{name}.fallback", "")
    if fallback:
        entry["fallback"] = fallback
    return entry


def _parameters(
    values: Mapping[str, Any], template: MessageTemplate, slots: list[dict[str, Any]]
) -> dict[str, Any]:
    named = str(template.parameter_format or "").upper() == "NAMED"
    spec: dict[str, Any] = {}
    for slot in slots:
        entry = _entry(values, slot)
        if slot["component"] == "buttons" or named:
            spec.setdefault(slot["component"], {})[slot["key"]] = entry
        else:
            spec.setdefault(slot["component"], []).append(entry)
    return spec


def _tags(text: str) -> list[str] | None:
    tags = [t.strip() for t in text.split(",") if t.strip()]
    return tags or None


def _audience(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if values.get("audience_all"):
        out["all"] = True
    for name in ("tags", "tags_all", "exclude_tags"):
        tags = _tags(values.get(name, ""))
        if tags:
            out[name] = tags
    if values.get("stage"):
        out["stage"] = values["stage"]
    if values.get("cf_key"):
        out["custom_fields"] = {values["cf_key"]: values.get("cf_value", "")}
    if values.get("from_campaign"):
        ref: dict[str, Any] = {"id": values["from_campaign"]}
        if values.get("from_statuses"):
            ref["statuses"] = values["from_statuses"]
        out["from_campaign"] = ref
    return out


# Where the service's field goes in the form (the rest are shown as they are named).
_FIELD_INPUT = {
    "template": "template_id",
    "template.name": "template_id",
    "template.language": "template_id",
    "audience": "audience_all",
    "audience.all": "audience_all",
    "audience.tags": "tags",
    "audience.tags_all": "tags_all",
    "audience.exclude_tags": "exclude_tags",
    "audience.stage": "stage",
    "audience.custom_fields": "cf_key",
    "audience.from_campaign": "from_campaign",
    "audience.from_campaign.id": "from_campaign",
    "audience.from_campaign.statuses": "from_statuses",
    "start": "when",
    "parameters": "template_id",
}


_PARAM_PART = re.compile(r"^(parameters\.(?:\w+\[\d+\]|\w+\.\w+))\.(?:value|field|fallback)$")


def _to_inputs(errors: Mapping[str, str]) -> web.FieldErrors:
    out: web.FieldErrors = {}
    for field, message in errors.items():
        name = _FIELD_INPUT.get(field)
        if name is None:
            name = field
            for prefix in ("audience.custom_fields", "audience.from_campaign"):
                if field.startswith(prefix + "."):
                    name = _FIELD_INPUT[prefix]
            entry = _PARAM_PART.match(field)
            if entry:  # parameters.body[1].value: the entry's row, parameters.body[1]
                name = entry.group(1)
        out.setdefault(name, message)
    return out


def _pydantic_errors(exc: ValidationError) -> web.FieldErrors:
    out: web.FieldErrors = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith("function-")]
        parts = [p for p in loc if not p.isdigit()]
        name = ".".join(parts[:3]) or "_form"
        msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        out.setdefault(name, "is required" if err.get("type") == "missing" else msg)
    return out


def _scheduled_at(values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The schedule as ISO-8601 in UTC from the local date and time and the reader's zone."""
    local = values.get("scheduled_local", "")
    if not local:
        return None, "choose a date and time"
    try:
        zone: Any = ZoneInfo(values.get("tz") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    try:
        when = datetime.fromisoformat(local).replace(tzinfo=zone)
    except ValueError:
        return None, "is not a date and time"
    return when.astimezone(UTC).isoformat(), None


async def _wizard_context(
    request: Request, viewer: web.Viewer, session: Any, values: dict[str, Any]
) -> dict[str, Any]:
    accounts, _ = await accounts_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0
    )
    account_id = values.get("account_id") or (str(accounts[0].id) if accounts else "")
    values["account_id"] = account_id
    approved: list[MessageTemplate] = []
    if account_id:
        try:
            rows, _ = await templates_service.list_page(
                session,
                viewer.workspace_id,
                limit=200,
                offset=0,
                status="APPROVED",
                account_id=account_id,
            )
            approved = list(rows)
        except AisouleError:
            approved = []
    template = next((t for t in approved if str(t.id) == values.get("template_id")), None)
    if template is None and approved and not values.get("template_id"):
        template = approved[0]
    values["template_id"] = str(template.id) if template else values.get("template_id", "")
    earlier, _ = await campaigns_service.list_page(
        session, viewer.workspace_id, limit=100, offset=0
    )
    stages = await workspace_service.list_stages(session, viewer.workspace_id)
    return {
        "values": values,
        "accounts": accounts,
        "templates": approved,
        "template": template,
        "bubble": _mapped_bubble(template, values) if template else None,
        "mapping": _mapping_script(template) if template else None,
        "slots": _slots(template),
        "sources": SOURCES,
        "earlier": [c for c in earlier if c.started_at is not None],
        "stages": stages,
        "buckets": BUCKETS,
        "errors": {},
        "edit": None,
    }


async def _definition(
    session: Any, viewer: web.Viewer, values: dict[str, Any]
) -> tuple[dict[str, Any], MessageTemplate | None, web.FieldErrors]:
    """The wizard as the API's body: (body, its template, errors found before the service)."""
    errors: web.FieldErrors = {}
    template: MessageTemplate | None = None
    if values.get("template_id"):
        try:
            template = await templates_service.get(
                session, viewer.workspace_id, values["template_id"]
            )
        except NotFound:
            template = None
    if template is None:
        errors["template_id"] = "choose an approved template of this number"
    body: dict[str, Any] = {
        "name": values.get("name", ""),
        "audience": _audience(values),
    }
    if values.get("editing"):
        editing = await campaigns_service.get(session, viewer.workspace_id, values["editing"])
        if _locked(editing)["audience"]:
            # The wizard cannot change it (or show it): the count and the sample use the stored one.
            refs = await campaigns_service.contact_refs(session, viewer.workspace_id, [editing])
            body["audience"] = audience_out(editing.audience or {}, refs, v1=False)
    if values.get("account_id"):
        body["account_id"] = values["account_id"]
    if template is not None:
        body["template"] = {"name": template.name, "language": template.language}
        body["parameters"] = _parameters(values, template, _slots(template))
    return body, template, errors


@router.get("/campaigns/new")
async def new_campaign(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    values = _values(request.query_params)
    retarget = values.get("retarget")
    if retarget and not values.get("template_id"):
        earlier = await campaigns_service.get(session, viewer.workspace_id, retarget)
        values |= _prefill(earlier)
    ctx = await _wizard_context(request, viewer, session, values)
    wizard_only = web.is_htmx(request) and request.headers.get("hx-target") == "wizard"
    return web.render(
        request, "campaign_wizard.html" if wizard_only else "campaign_new.html", ctx, viewer=viewer
    )


def _prefill(earlier: Campaign) -> dict[str, Any]:
    """Retargeting: the earlier campaign's number, template and mapping, its failed and unknown
    recipients as the audience."""
    out: dict[str, Any] = {
        "name": f"{earlier.name} (retarget)"[:200],
        "account_id": str(earlier.account_id or ""),
        "template_id": str(earlier.template_id or ""),
        "from_campaign": str(earlier.id),
        "from_statuses": ["failed", "unknown"],
    }
    return out | _parameter_values(earlier.parameters or {})


def _parameter_values(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign's variable mapping as the wizard's inputs."""
    out: dict[str, Any] = {}
    for component in ("header", "body", "buttons"):
        part = spec.get(component)
        items = part.items() if isinstance(part, dict) else enumerate(part or [])
        for key, entry in items:
            if not isinstance(entry, dict):
                continue
            if component == "buttons":
                where = f"buttons.{key}"
            elif isinstance(part, dict):
                where = f"{component}.{key}"
            else:
                where = f"{component}[{key}]"
            name = f"p.{where}"
            if "value" in entry:
                out[f"{name}.source"], out[f"{name}.value"] = "value", str(entry["value"])
                continue
            field = str(entry.get("field", ""))
            if field.startswith("custom_fields."):
                out[f"{name}.source"], out[f"{name}.custom"] = "custom", field.split(".", 1)[1]
            else:
                out[f"{name}.source"] = field
            out[f"{name}.fallback"] = str(entry.get("fallback") or "")
    return out


_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_SOURCE_LABELS = {v: label.removeprefix("Contact: ") for v, label in SOURCES}


def _text_parts(template: MessageTemplate) -> dict[str, tuple[str, dict[str, str]]]:
    """The header's and body's text with their variables, and each variable's example, by the
    mapping's name for it (``body[0]``, ``body.name``)."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for comp in template.components or []:
        kind = str(comp.get("type", "")).lower()
        if kind not in ("header", "body") or str(comp.get("format", "TEXT")).upper() != "TEXT":
            continue
        example = comp.get("example") or {}
        examples: dict[str, str] = {}
        positional = example.get(f"{kind}_text") or []
        if kind == "body":
            positional = positional[0] if positional and isinstance(positional[0], list) else []
        for i, v in enumerate(positional):
            examples[f"{kind}[{i}]"] = str(v)
        for p in example.get(f"{kind}_text_named_params") or []:
            examples[f"{kind}.{p.get('param_name')}"] = str(p.get("example"))
        out[kind] = (str(comp.get("text") or ""), examples)
    return out


def _where(kind: str, name: str, named: bool) -> str | None:
    if named:
        return f"{kind}.{name}"
    return f"{kind}[{int(name) - 1}]" if name.isdigit() and int(name) > 0 else None


def _shown(values: Mapping[str, Any], where: str, example: str | None) -> str:
    """What the template bubble shows for a variable: the fixed value typed (the template's
    example until one is), or the contact field it is filled from, e.g. [first name]; app.js
    does the same as the inputs change."""
    name = f"p.{where}"
    source = values.get(f"{name}.source") or "first_name"
    if source == "value" or source not in _SOURCE_LABELS:
        typed = str(values.get(f"{name}.value") or "")
        return typed or example or "[value]"
    if source == "custom":
        key = str(values.get(f"{name}.custom") or "").strip()
        return f"[{key}]" if key else "[custom field]"
    return f"[{_SOURCE_LABELS[source]}]"


def _mapped_bubble(template: MessageTemplate, values: Mapping[str, Any]) -> dict[str, Any]:
    """The template's bubble with each text variable as the mapping below fills it (not [1])."""
    parts = bubble(template)
    named = str(template.parameter_format or "").upper() == "NAMED"
    for kind, (text, examples) in _text_parts(template).items():

        def fill(m: re.Match[str], kind: str = kind, examples: dict[str, str] = examples) -> str:
            where = _where(kind, m.group(1), named)
            return _shown(values, where, examples.get(where)) if where else m.group(0)

        parts[kind] = _VARIABLE.sub(fill, text)
    return parts


def _mapping_script(template: MessageTemplate) -> dict[str, Any]:
    """What app.js needs to redo _mapped_bubble in the browser."""
    parts = _text_parts(template)
    return {
        "named": str(template.parameter_format or "").upper() == "NAMED",
        "texts": {kind: text for kind, (text, _) in parts.items()},
        "examples": {k: v for _, (_, examples) in parts.items() for k, v in examples.items()},
        "labels": _SOURCE_LABELS,
    }


def _sample_bubble(template: MessageTemplate, components: list[dict[str, Any]] | None) -> Any:
    """The preview bubble with one contact's values in place of the examples."""
    parts = bubble(template)
    if not components:
        return parts
    given: dict[str, list[dict[str, Any]]] = {
        str(c.get("type")): list(c.get("parameters") or [])
        for c in components
        if c.get("type") in ("header", "body")
    }
    for comp in template.components or []:
        kind = str(comp.get("type", "")).lower()
        if kind not in given or str(comp.get("format", "TEXT")).upper() not in ("TEXT", ""):
            continue
        params = given[kind]
        index = iter(range(len(params)))

        def fill(
            m: re.Match[str], params: list[dict[str, Any]] = params, index: Any = index
        ) -> str:
            name = m.group(1)
            by_name = next((p for p in params if p.get("parameter_name") == name), None)
            if by_name is not None:
                return str(by_name.get("text", ""))
            i = next(index, None)
            return str(params[i].get("text", "")) if i is not None else m.group(0)

        text = re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", fill, str(comp.get("text") or ""))
        parts[kind] = text
    return parts


@router.post("/campaigns/preview")
async def preview_campaign(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    """The live count, a sample contact's message and the pre-flight, for the wizard as it is."""
    values = _values(await request.form())
    body, template, errors = await _definition(session, viewer, values)
    ctx: dict[str, Any] = {
        "preflight": None,
        "sample": [],
        "errors": {},
        "values": values,
        "slot_labels": {s["field"]: s["label"] for s in _slots(template)},
    }
    if not errors:
        try:
            data = CampaignPreview.model_validate(body | {"name": body["name"] or None})
            checked, sample = await campaigns_service.preview(session, viewer.workspace_id, data)
        except ValidationError as exc:
            errors = _to_inputs(_pydantic_errors(exc))
        except AisouleError as exc:
            await web.undo(session)
            errors = _to_inputs(web.errors_of(exc))
        else:
            first = next((s for s in sample if s["components"] is not None), None)
            ctx |= {
                "preflight": checked,
                "sample": sample,
                "sample_bubble": _sample_bubble(template, first["components"])
                if first and template
                else None,
                "sample_contact": first["contact"] if first else None,
            }
    # A new wizard has no audience yet: that is the next step, not a mistake.
    ctx["choose_audience"] = set(errors) == {"audience_all"} and not _audience(values)
    ctx["errors"] = errors
    return web.render(request, "campaign_preview.html", ctx, viewer=viewer)


@router.post("/campaigns")
async def create_campaign(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    values = _values(await request.form())
    body, _, errors = await _definition(session, viewer, values)
    when = values.get("when")
    if when == "now":
        body["start"] = True
        body["force"] = values["force"]
    elif when == "later":
        scheduled, problem = _scheduled_at(values)
        if problem:
            errors["scheduled_local"] = problem
        body["scheduled_at"] = scheduled
    if not errors:
        try:
            data = CampaignCreate.model_validate(body)
            row = await campaigns_service.create(session, viewer.workspace_id, data)
        except ValidationError as exc:
            errors = _to_inputs(_pydantic_errors(exc))
        except AisouleError as exc:
            await web.undo(session)
            errors = _to_inputs(web.errors_of(exc))
            if exc.code == "messaging_limit_exceeded":
                errors.setdefault("force", exc.message)
                errors.pop("_form", None)
        else:
            return web.redirect(request, f"/campaigns/{row.id}")
    if "scheduled_at" in errors:
        errors["scheduled_local"] = errors.pop("scheduled_at")
    ctx = await _wizard_context(request, viewer, session, values)
    ctx["errors"] = errors
    template = "campaign_wizard.html" if web.is_htmx(request) else "campaign_new.html"
    return web.render(request, template, ctx, viewer=viewer, status_code=422)


# -- editing ------------------------------------------------------------------------------------


def _locked(c: Campaign) -> dict[str, bool]:
    """What the edit wizard leaves as it is. A paused campaign has begun: its number and audience
    stay (the service refuses to change them). An audience the wizard's inputs cannot hold
    (chosen contacts, several custom fields, a list of values) is kept, not half-shown."""
    return {
        "account": c.status == st.PAUSED,
        "audience": c.status == st.PAUSED or _audience_values(c.audience or {}) is None,
        "schedule": c.status == st.PAUSED,
    }


def _audience_values(audience: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored audience as the wizard's inputs, or None when they cannot hold it."""
    if set(audience) - {"all", "tags", "tags_all", "exclude_tags", "stage", "custom_fields",
                        "from_campaign"}:  # fmt: skip
        return None
    out: dict[str, Any] = {"from_statuses": []}
    if audience.get("all"):
        out["audience_all"] = "1"
    for key in ("tags", "tags_all", "exclude_tags"):
        if audience.get(key):
            out[key] = ", ".join(str(t) for t in audience[key])
    if audience.get("stage"):
        out["stage"] = str(audience["stage"])
    fields = audience.get("custom_fields") or {}
    if fields:
        if len(fields) > 1:
            return None
        ((key, value),) = fields.items()
        if isinstance(value, (dict, list)):
            return None
        out["cf_key"], out["cf_value"] = str(key), str(value)
    earlier = audience.get("from_campaign")
    if earlier:
        out["from_campaign"] = str(earlier.get("id", ""))
        out["from_statuses"] = [s for s in earlier.get("statuses") or [] if s in BUCKETS]
    return out


def _edit_values(c: Campaign) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": c.name,
        "account_id": str(c.account_id or ""),
        "template_id": str(c.template_id or ""),
        "from_statuses": [],
        "force": False,
        "when": "later" if c.status == st.SCHEDULED else "draft",
        "scheduled_local": "",
    }
    values |= _audience_values(c.audience or {}) or {}
    return values | _parameter_values(c.parameters or {})


async def _edit_context(
    request: Request, viewer: web.Viewer, session: Any, c: Campaign, values: dict[str, Any]
) -> dict[str, Any]:
    values["editing"] = str(c.id)
    ctx = await _wizard_context(request, viewer, session, values)
    refs = await campaigns_service.contact_refs(session, viewer.workspace_id, [c])
    ctx["edit"] = {
        "c": c,
        "locked": _locked(c),
        "audience": audience_out(c.audience or {}, refs, v1=False),
        "scheduled_utc": _utc(c.scheduled_at),
    }
    ctx["earlier"] = [e for e in ctx["earlier"] if e.id != c.id]  # it cannot retarget itself
    return ctx


def _utc(when: datetime | None) -> str:
    """For app.js to show in the reader's time zone (SQLite hands back naive UTC)."""
    if when is None:
        return ""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _editable(c: Campaign) -> None:
    if c.status not in st.EDITABLE:
        raise Conflict(
            f"The campaign is {c.status}: only a draft, scheduled or paused campaign can be "
            "edited",
            code="campaign_status",
        )


@router.get("/campaigns/{campaign_id}/edit")
async def edit_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    c = await campaigns_service.get(session, viewer.workspace_id, campaign_id)
    _editable(c)
    wizard_only = web.is_htmx(request) and request.headers.get("hx-target") == "wizard"
    # A re-render for a new number or template carries the inputs as they are.
    values = _values(request.query_params) if wizard_only else _edit_values(c)
    ctx = await _edit_context(request, viewer, session, c, values)
    return web.render(
        request,
        "campaign_wizard.html" if wizard_only else "campaign_edit.html",
        ctx,
        viewer=viewer,
    )


@router.post("/campaigns/{campaign_id}/edit")
async def update_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    """The wizard as PUT /api/campaigns/{id}'s body, through the same service call."""
    c = await campaigns_service.get(session, viewer.workspace_id, campaign_id)
    _editable(c)
    locked = _locked(c)
    values = _values(await request.form())
    values["editing"] = str(c.id)
    body, _, errors = await _definition(session, viewer, values)
    if locked["account"]:
        body.pop("account_id", None)
    if locked["audience"]:
        body.pop("audience", None)
    if not locked["schedule"]:
        if values.get("when") == "later":
            scheduled, problem = _scheduled_at(values)
            if problem:
                errors["scheduled_local"] = problem
            body["scheduled_at"] = scheduled
        elif c.status == st.SCHEDULED:
            body["scheduled_at"] = None  # back to a draft
    if not errors:
        try:
            data = CampaignUpdate.model_validate(body)
            await campaigns_service.update(session, viewer.workspace_id, campaign_id, data)
        except ValidationError as exc:
            errors = _to_inputs(_pydantic_errors(exc))
        except AisouleError as exc:
            await web.undo(session)
            errors = _to_inputs(web.errors_of(exc))
        else:
            return web.redirect(request, f"/campaigns/{campaign_id}")
    if "scheduled_at" in errors:
        errors["scheduled_local"] = errors.pop("scheduled_at")
    ctx = await _edit_context(request, viewer, session, c, values)
    ctx["errors"] = errors
    template = "campaign_wizard.html" if web.is_htmx(request) else "campaign_edit.html"
    return web.render(request, template, ctx, viewer=viewer, status_code=422)


# -- a campaign --------------------------------------------------------------------------------


def _chart(timeline: Mapping[str, Any]) -> dict[str, Any]:
    """Polylines for an inline SVG: the cumulative series, on one scale."""
    width, height = 600, 160
    points = timeline["points"]
    series = timeline["series"]
    top = max((max(v) for v in series.values() if v), default=0) or 1
    n = len(points)
    lines = {}
    for name, values in series.items():
        coords = []
        for i, v in enumerate([0, *values]):
            x = round(width * i / max(1, n), 1)
            y = round(height - height * v / top, 1)
            coords.append(f"{x},{y}")
        lines[name] = " ".join(coords)
    last = {name: (values[-1] if values else 0) for name, values in series.items()}
    return {
        "width": width,
        "height": height,
        "top": top,
        "lines": lines,
        "last": last,
        "start": timeline["start"],
        "end": points[-1] if points else None,
        "step": _step(int(timeline["width"])),
        "empty": n == 0,
    }


def _step(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}-second"
    if seconds < 3600:
        return f"{seconds // 60}-minute"
    return f"{seconds // 3600}-hour"


async def _campaign_context(session: Any, viewer: web.Viewer, campaign_id: str) -> dict[str, Any]:
    row = await campaigns_service.get(session, viewer.workspace_id, campaign_id)
    stats = await campaigns_service.stats(session, row)
    settled, total = _progress(stats)
    refs = await campaigns_service.contact_refs(session, viewer.workspace_id, [row])
    return {
        "c": row,
        "audience": audience_out(row.audience or {}, refs, v1=False),
        "stats": stats,
        "settled": settled,
        "total": total,
        "live": row.status in LIVE,
        "buckets": BUCKETS,
        "can": {
            "start": row.status in st.STARTABLE,
            "pause": row.status == st.RUNNING,
            "resume": row.status == st.PAUSED,
            "cancel": row.status in st.CANCELLABLE,
            "resend": row.status in campaigns_service.RESENDABLE and stats.get("unknown", 0) > 0,
            "retarget": row.started_at is not None,
            "delete": row.status in st.DELETABLE,
            "edit": row.status in st.EDITABLE,
        },
        "notice": None,
        "problem": None,
    }


async def _recipients_context(
    session: Any, viewer: web.Viewer, campaign_id: str, params: QueryParams
) -> dict[str, Any]:
    status = (params.get("status") or "").strip()
    status = status if status in BUCKETS else ""
    page = _int(params.get("page"))
    rows, total, refs = await campaigns_service.recipients(
        session,
        viewer.workspace_id,
        campaign_id,
        status=status or None,
        limit=RECIPIENTS_PER_PAGE,
        offset=(page - 1) * RECIPIENTS_PER_PAGE,
    )
    return {
        "recipients": rows,
        "refs": refs,
        "r_total": total,
        "r_page": page,
        "r_pages": max(1, -(-total // RECIPIENTS_PER_PAGE)),
        "r_status": status,
        "campaign_id": campaign_id,
    }


@router.get("/campaigns/{campaign_id}")
async def campaign_page(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    ctx = await _campaign_context(session, viewer, campaign_id)
    headers: dict[str, str] = {}
    if web.is_htmx(request) and request.headers.get("hx-target") == "progress":
        if request.query_params.get("was") == st.RUNNING and not ctx["live"]:
            headers["HX-Trigger"] = "campaign-settled"  # the chart and table show the end
        return web.render(request, "campaign_progress.html", ctx, viewer=viewer, headers=headers)
    ctx |= await _recipients_context(session, viewer, campaign_id, request.query_params)
    ctx["chart"] = _chart(await campaigns_service.timeline(session, ctx["c"]))
    return web.render(request, "campaign.html", ctx, viewer=viewer)


@router.get("/campaigns/{campaign_id}/chart")
async def campaign_chart(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    row = await campaigns_service.get(session, viewer.workspace_id, campaign_id)
    ctx = {
        "c": row,
        "live": row.status in LIVE,
        "chart": _chart(await campaigns_service.timeline(session, row)),
    }
    return web.render(request, "campaign_chart.html", ctx, viewer=viewer)


@router.get("/campaigns/{campaign_id}/recipients")
async def campaign_recipients(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    if web.is_htmx(request) and request.headers.get("hx-target") == "recipients":
        await campaigns_service.get(session, viewer.workspace_id, campaign_id)
        ctx = await _recipients_context(session, viewer, campaign_id, request.query_params)
        return web.render(request, "campaign_recipients.html", ctx, viewer=viewer)
    return await campaign_page(campaign_id, request, viewer, session)


async def _act(
    request: Request, viewer: web.Viewer, session: Any, campaign_id: str, action: str
) -> Response:
    form = await request.form()
    notice: str | None = None
    problem: str | None = None
    try:
        if action == "pause":
            await campaigns_service.pause(session, viewer.workspace_id, campaign_id)
            notice = "Paused: nothing more is sent until you resume it."
        elif action == "resume":
            await campaigns_service.resume(session, viewer.workspace_id, campaign_id)
            notice = "Resumed: sending continues where it stopped."
        elif action == "cancel":
            await campaigns_service.cancel(session, viewer.workspace_id, campaign_id)
            notice = "Cancelled: the recipients not yet sent to are skipped."
        elif action == "start":
            await campaigns_service.start(
                session, viewer.workspace_id, campaign_id, force=bool(form.get("force"))
            )
            notice = "Started."
        elif action == "resend-unknown":
            _, n = await campaigns_service.resend_unknown(session, viewer.workspace_id, campaign_id)
            notice = (
                f"Sending again to {n} recipient{'' if n == 1 else 's'} whose outcome was unknown."
            )
        elif action == "delete":
            await campaigns_service.delete(session, viewer.workspace_id, campaign_id)
            return web.redirect(request, "/campaigns")
    except NotFound:
        raise
    except AisouleError as exc:
        await web.undo(session)
        problem = exc.message
    if not web.is_htmx(request):
        return web.redirect(request, f"/campaigns/{campaign_id}")
    ctx = await _campaign_context(session, viewer, campaign_id)
    ctx |= {"notice": notice, "problem": problem}
    return web.render(
        request,
        "campaign_progress.html",
        ctx,
        viewer=viewer,
        status_code=422 if problem else 200,
        headers={} if problem else {"HX-Trigger": "campaign-settled"},
    )


@router.post("/campaigns/{campaign_id}/pause")
async def pause_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    return await _act(request, viewer, session, campaign_id, "pause")


@router.post("/campaigns/{campaign_id}/resume")
async def resume_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    return await _act(request, viewer, session, campaign_id, "resume")


@router.post("/campaigns/{campaign_id}/cancel")
async def cancel_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    return await _act(request, viewer, session, campaign_id, "cancel")


@router.post("/campaigns/{campaign_id}/start")
async def start_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    return await _act(request, viewer, session, campaign_id, "start")


@router.post("/campaigns/{campaign_id}/resend-unknown")
async def resend_unknown(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    return await _act(request, viewer, session, campaign_id, "resend-unknown")


@router.post("/campaigns/{campaign_id}/delete")
async def delete_campaign(
    campaign_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    return await _act(request, viewer, session, campaign_id, "delete")
