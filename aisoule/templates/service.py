"""Message templates: created here and submitted to Meta for review, kept in step with Meta by
sync and by Meta's ``message_template_status_update`` webhook. Sends read these rows (only an
APPROVED template can be sent), so a row mirrors what Meta holds for the account's WABA."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.accounts import service as accounts
from aisoule.db.engine import commit_now, outside_transaction
from aisoule.exceptions import Conflict, NotFound, UpstreamFailed, ValidationFailed
from aisoule.kit.ids import parse_uuid
from aisoule.kit.time import utcnow
from aisoule.models import MessageTemplate, WhatsAppAccount
from aisoule.runtime import Runtime
from aisoule.templates.repository import TemplateRepository
from aisoule.templates.schemas import TemplateCreate
from aisoule.whatsapp import template_params
from aisoule.whatsapp.provider import (
    MetaAPIError,
    ProviderUnavailable,
    SendOutcomeUnknown,
    WhatsAppError,
)

log = structlog.get_logger(__name__)

STATUSES = frozenset(
    {
        "APPROVED",
        "PENDING",
        "REJECTED",
        "PAUSED",
        "DISABLED",
        "IN_APPEAL",
        "PENDING_DELETION",
        "DELETED",
        "LIMIT_EXCEEDED",
        "ARCHIVED",
        "FLAGGED",
    }
)
# Webhook events that are not a status of their own.
_EVENT_STATUS = {"REINSTATED": "APPROVED", "UNPAUSED": "APPROVED"}
_KINDS = ("HEADER", "BODY", "FOOTER", "BUTTONS")
_HEADER_FORMATS = ("TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION")
_BUTTON_TYPES = (
    "QUICK_REPLY",
    "URL",
    "PHONE_NUMBER",
    "COPY_CODE",
    "OTP",
    "FLOW",
    "MPM",
    "CATALOG",
    "VOICE_CALL",
)
_NAMED = re.compile(r"^[a-z_][a-z0-9_]*$")
_ANY_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_META_FIELDS = "id,name,language,status,category,components,parameter_format,rejected_reason"


# -- reading ------------------------------------------------------------------------------------


async def list_page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
    name: str | None = None,
    account_id: str | None = None,
) -> tuple[Sequence[MessageTemplate], int]:
    account: uuid.UUID | None = None
    if account_id is not None:
        account = parse_uuid(account_id)
        if account is None:
            raise ValidationFailed("account_id: is not a valid id", field="account_id")
    return await TemplateRepository(session).search(
        workspace_id,
        limit=limit,
        offset=offset,
        status=status.upper() if status else None,
        name=name or None,
        account_id=account,
    )


async def get(session: AsyncSession, workspace_id: uuid.UUID, template_id: str) -> MessageTemplate:
    parsed = parse_uuid(template_id)
    row = await TemplateRepository(session).get(workspace_id, parsed) if parsed else None
    if row is None:
        raise NotFound("Template not found", code="template_not_found")
    return row


async def named_for_sending(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID, name: str
) -> Sequence[MessageTemplate]:
    """The rows (one per language) a message through this account may use for ``name``; the
    sender checks language, status and parameters (messages/checks.py)."""
    return await TemplateRepository(session).named(workspace_id, account_id, name)


# -- validation (before Meta sees it) -----------------------------------------------------------


def check_components(
    components: list[dict[str, Any]], parameter_format: str, category: str
) -> list[dict[str, Any]]:
    """Meta's rules that are cheap to check here; Meta's own answer takes seconds and names no
    field. Answers the components with each ``type`` (and header ``format``) in upper case."""
    if not components:
        raise ValidationFailed("components: needs at least a BODY component", field="components")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, comp in enumerate(components):
        where = f"components[{i}]"
        kind = str(comp.get("type", "")).upper()
        if kind not in _KINDS:
            raise ValidationFailed(
                f"{where}.type: must be one of {', '.join(_KINDS)}", field=f"{where}.type"
            )
        if kind in seen:
            raise ValidationFailed(
                f"{where}.type: a template has at most one {kind} component"
                + (" (exactly one BODY)" if kind == "BODY" else ""),
                field=f"{where}.type",
            )
        seen.add(kind)
        comp = {**comp, "type": kind}
        if kind == "HEADER":
            comp = _check_header(where, comp, parameter_format)
        elif kind == "BODY":
            _check_body(where, comp, parameter_format, category)
        elif kind == "FOOTER":
            _check_footer(where, comp)
        else:
            _check_buttons(where, comp)
        out.append(comp)
    if "BODY" not in seen:
        raise ValidationFailed(
            "components: exactly one BODY component is required", field="components"
        )
    return out


def _text(where: str, comp: dict[str, Any], limit: int, *, required: bool = True) -> str:
    text = comp.get("text")
    if text is None and not required:
        return ""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed(f"{where}.text: is required", field=f"{where}.text")
    if len(text) > limit:
        raise ValidationFailed(
            f"{where}.text: at most {limit} characters ({len(text)} given)", field=f"{where}.text"
        )
    return text


def _variables(where: str, text: str, parameter_format: str) -> list[str]:
    """The distinct variables of a text, checked against the parameter format."""
    field = f"{where}.text"
    for raw in _ANY_PLACEHOLDER.findall(text):
        if not re.fullmatch(r"\s*[A-Za-z0-9_]+\s*", raw):
            raise ValidationFailed(
                f"{field}: '{{{{{raw}}}}}' is not a valid variable (use {{{{1}}}} or "
                "{{first_name}})",
                field=field,
            )
    names = template_params.placeholders(text)
    if not names:
        return names
    if parameter_format == "POSITIONAL":
        named = [n for n in names if not n.isdigit()]
        if named:
            raise ValidationFailed(
                f"{field}: {{{{{named[0]}}}}} is a named variable but parameter_format is "
                "POSITIONAL; use {{1}}, {{2}}, ... or set parameter_format to NAMED",
                field=field,
            )
        numbers = sorted(int(n) for n in names)
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValidationFailed(
                f"{field}: positional variables must be numbered {{{{1}}}} to "
                f"{{{{{len(numbers)}}}}} without gaps (found "
                + ", ".join("{{" + str(n) + "}}" for n in numbers)
                + ")",
                field=field,
            )
    else:
        for n in names:
            if not _NAMED.match(n):
                raise ValidationFailed(
                    f"{field}: {{{{{n}}}}} is not a valid named variable with parameter_format "
                    "NAMED (lowercase letters, digits and underscores, not starting with a digit)",
                    field=field,
                )
    return names


def _example(comp: dict[str, Any]) -> dict[str, Any]:
    example = comp.get("example")
    return example if isinstance(example, dict) else {}


def _check_positional_example(field: str, values: Any, count: int, nested: bool) -> None:
    row = values[0] if nested and isinstance(values, list) and values else values
    if (
        not isinstance(row, list)
        or len(row) != count
        or not all(isinstance(v, str) and v.strip() for v in row)
    ):
        shape = "[[" + ", ".join(f'"example {i}"' for i in range(1, count + 1)) + "]]"
        if not nested:
            shape = shape[1:-1]
        raise ValidationFailed(
            f"{field}: every variable needs an example: give {count} non-empty example "
            f"value(s), as {shape}",
            field=field,
        )


def _check_named_example(field: str, values: Any, names: list[str]) -> None:
    given: dict[str, Any] = {}
    if isinstance(values, list):
        for item in values:
            if isinstance(item, dict):
                given[str(item.get("param_name", ""))] = item.get("example")
    missing = [n for n in names if not (isinstance(given.get(n), str) and given[n].strip())]
    if missing:
        raise ValidationFailed(
            f"{field}: every variable needs an example; missing for "
            + ", ".join("{{" + n + "}}" for n in missing)
            + ' (give [{"param_name": "'
            + missing[0]
            + '", "example": "..."}])',
            field=field,
        )
    extra = sorted(set(given) - set(names))
    if extra:
        raise ValidationFailed(
            f"{field}: examples for variables the text does not have: {', '.join(extra)}",
            field=field,
        )


def _check_header(where: str, comp: dict[str, Any], parameter_format: str) -> dict[str, Any]:
    fmt = str(comp.get("format", "")).upper()
    if fmt not in _HEADER_FORMATS:
        raise ValidationFailed(
            f"{where}.format: must be one of {', '.join(_HEADER_FORMATS)}",
            field=f"{where}.format",
        )
    comp = {**comp, "format": fmt}
    example = _example(comp)
    if fmt == "TEXT":
        text = _text(where, comp, 60)
        names = _variables(where, text, parameter_format)
        if len(names) > 1:
            raise ValidationFailed(
                f"{where}.text: a header has at most one variable ({len(names)} given)",
                field=f"{where}.text",
            )
        if names and parameter_format == "POSITIONAL":
            _check_positional_example(
                f"{where}.example.header_text", example.get("header_text"), 1, nested=False
            )
        elif names:
            _check_named_example(
                f"{where}.example.header_text_named_params",
                example.get("header_text_named_params"),
                names,
            )
    elif fmt != "LOCATION" and not _nonempty_strings(example.get("header_handle")):
        raise ValidationFailed(
            f"{where}.example.header_handle: a {fmt} header needs a sample media handle "
            '(from the Resumable Upload API), as ["4::aW..."]',
            field=f"{where}.example.header_handle",
        )
    return comp


def _check_body(where: str, comp: dict[str, Any], parameter_format: str, category: str) -> None:
    # Authentication templates carry Meta's fixed text: their BODY may have no text at all.
    text = _text(where, comp, 1024, required=category != "AUTHENTICATION")
    names = _variables(where, text, parameter_format)
    if not names:
        return
    example = _example(comp)
    if parameter_format == "POSITIONAL":
        _check_positional_example(
            f"{where}.example.body_text", example.get("body_text"), len(names), nested=True
        )
    else:
        _check_named_example(
            f"{where}.example.body_text_named_params",
            example.get("body_text_named_params"),
            names,
        )


def _check_footer(where: str, comp: dict[str, Any]) -> None:
    text = _text(where, comp, 60)
    if template_params.placeholders(text):
        raise ValidationFailed(
            f"{where}.text: a footer cannot have variables", field=f"{where}.text"
        )


def _check_buttons(where: str, comp: dict[str, Any]) -> None:
    buttons = comp.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 10:
        raise ValidationFailed(f"{where}.buttons: give 1 to 10 buttons", field=f"{where}.buttons")
    for j, button in enumerate(buttons):
        at = f"{where}.buttons[{j}]"
        if not isinstance(button, dict):
            raise ValidationFailed(f"{at}: must be an object", field=at)
        kind = str(button.get("type", "")).upper()
        if kind not in _BUTTON_TYPES:
            raise ValidationFailed(
                f"{at}.type: must be one of {', '.join(_BUTTON_TYPES)}", field=f"{at}.type"
            )
        if kind in ("QUICK_REPLY", "URL", "PHONE_NUMBER", "FLOW", "VOICE_CALL"):
            _text(at, button, 25)
        if kind == "PHONE_NUMBER" and not str(button.get("phone_number") or "").strip():
            raise ValidationFailed(
                f"{at}.phone_number: is required for a PHONE_NUMBER button",
                field=f"{at}.phone_number",
            )
        if kind == "URL":
            url = button.get("url")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise ValidationFailed(f"{at}.url: an http(s) URL is required", field=f"{at}.url")
            names = template_params.placeholders(url)
            if names:
                if names != ["1"] or not url.rstrip().endswith("}}"):
                    raise ValidationFailed(
                        f"{at}.url: a URL can have one variable, {{{{1}}}}, at its end",
                        field=f"{at}.url",
                    )
                if not _nonempty_strings(button.get("example")):
                    raise ValidationFailed(
                        f"{at}.example: every variable needs an example: give the full URL, as "
                        '["https://example.com/order/123"]',
                        field=f"{at}.example",
                    )


# -- talking to Meta ----------------------------------------------------------------------------


def _meta_failed(exc: WhatsAppError, doing: str) -> Exception:
    """Meta's refusal is the caller's to fix (422 with Meta's code); no answer is a 502."""
    if isinstance(exc, MetaAPIError):
        if exc.http_status >= 500:
            return UpstreamFailed(f"Meta failed while {doing}: ({exc.code}) {exc.message}")
        extra = "; ".join(x for x in (exc.title, exc.details) if x)
        return ValidationFailed(
            f"Meta refused {doing}: ({exc.code}"
            + (f"/{exc.error_subcode}" if exc.error_subcode else "")
            + f") {exc.message}"
            + (f" — {extra}" if extra else ""),
            code="meta_rejected",
            details=[
                {
                    "field": None,
                    "message": exc.message,
                    "meta": {
                        "code": exc.code,
                        "error_subcode": exc.error_subcode,
                        "title": exc.title,
                        "details": exc.details,
                    },
                }
            ],
        )
    if isinstance(exc, SendOutcomeUnknown):
        return UpstreamFailed(
            f"Meta did not answer while {doing}; it may have been done: run "
            "POST /api/templates/sync to see"
        )
    return UpstreamFailed(f"Meta could not be reached while {doing}: {exc}")


async def _sender(rt: Runtime, account: WhatsAppAccount) -> accounts.Sender:
    try:
        return await accounts.sender(rt, account)
    except ProviderUnavailable as exc:
        raise UpstreamFailed(str(exc)) from exc


def _says_missing(exc: MetaAPIError) -> bool:
    """Meta's answer to deleting a template it no longer has (not: an unknown WABA, subcode 33)."""
    if exc.error_subcode == 33:
        return False
    text = " ".join(x for x in (exc.message, exc.title, exc.details) if x).lower()
    return "not found" in text or "does not exist" in text


def _reason(value: Any) -> str | None:
    if value is None:
        return None
    text = _CONTROL.sub("", str(value)).strip()
    return None if not text or text.upper() == "NONE" else text[:200]


# -- writing ------------------------------------------------------------------------------------


async def create(
    session: AsyncSession, rt: Runtime, workspace_id: uuid.UUID, data: TemplateCreate
) -> MessageTemplate:
    """Stored PENDING and committed first, then submitted to Meta outside any transaction, then
    Meta's id written in a new one. If Meta refuses, the row is removed again (committed before
    the error is answered); if this process dies meanwhile, the row is PENDING without a Meta id
    and the next sync adopts it (Meta has it) or removes it (Meta does not)."""
    components = check_components(data.components, data.parameter_format, data.category)
    account = await accounts.for_sending(session, workspace_id, data.account_id)
    repo = TemplateRepository(session)
    if await repo.find(workspace_id, account.id, data.name, data.language) is not None:
        raise _duplicate(data.name, data.language)
    now = utcnow()
    row = MessageTemplate(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        account_id=account.id,
        meta_id=None,
        name=data.name,
        language=data.language,
        category=data.category,
        status="PENDING",
        parameter_format=data.parameter_format,
        components=components,
        rejected_reason=None,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            await repo.add(row)
    except IntegrityError as exc:
        raise _duplicate(data.name, data.language) from exc
    payload = {
        "name": data.name,
        "language": data.language,
        "category": data.category,
        "parameter_format": data.parameter_format,
        "components": components,
    }
    answer: dict[str, Any] = {}
    failure: Exception | None = None
    async with outside_transaction(session):
        try:
            sender = await _sender(rt, account)
            answer = await sender.provider.create_template(
                sender.waba_id, payload, access_token=sender.access_token
            )
        except WhatsAppError as exc:
            if isinstance(exc, MetaAPIError) and exc.error_subcode == 2388024:
                failure = _duplicate(data.name, data.language, at_meta=True)
            else:
                failure = _meta_failed(exc, "the template")
            failure.__cause__ = exc
        except UpstreamFailed as exc:
            failure = exc
    current = await repo.get(workspace_id, row.id)
    if failure is not None:
        if current is not None:
            await repo.delete(current)
            await commit_now(session)  # the error answer must not roll the removal back
        raise failure
    if current is None:  # removed meanwhile (a sync that ran before Meta listed it)
        current = await repo.add(
            MessageTemplate(**{**_columns(row), "id": uuid.uuid4(), "updated_at": utcnow()})
        )
    current.meta_id = _meta_id(answer.get("id"))
    current.category = _word(answer.get("category"), 32) or data.category
    current.status = _word(answer.get("status"), 32) or "PENDING"
    current.updated_at = utcnow()
    await session.flush()
    log.info(
        "template_created", template_id=str(current.id), meta_id=current.meta_id, name=data.name
    )
    return current


def _columns(row: MessageTemplate) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in MessageTemplate.__table__.columns}


def _duplicate(name: str, language: str, *, at_meta: bool = False) -> Conflict:
    where = (
        "at Meta for this account's WABA (pull it with POST /api/templates/sync)"
        if at_meta
        else "on this account"
    )
    return Conflict(
        f"name: a template '{name}' in {language} already exists {where}",
        field="name",
        code="template_exists",
    )


async def delete(
    session: AsyncSession, rt: Runtime, workspace_id: uuid.UUID, template_id: str
) -> uuid.UUID:
    """At Meta first (this language's template only, by its id), then here."""
    row = await get(session, workspace_id, template_id)
    account = await accounts.get_by_id(session, row.account_id) if row.account_id else None
    if account is not None:
        async with outside_transaction(session):  # nothing written yet: Meta answers first
            await _delete_at_meta(rt, account, row)
        row = await get(session, workspace_id, template_id)
    await TemplateRepository(session).delete(row)
    return row.id


async def _delete_at_meta(rt: Runtime, account: WhatsAppAccount, row: MessageTemplate) -> None:
    sender = await _sender(rt, account)
    try:
        await sender.provider.delete_template(
            sender.waba_id, row.name, hsm_id=row.meta_id, access_token=sender.access_token
        )
    except MetaAPIError as exc:
        # Already gone at Meta (deleted in WhatsApp Manager): nothing left to undo there.
        if not (exc.code == 100 and _says_missing(exc)):
            raise _meta_failed(exc, "deleting the template") from exc
    except WhatsAppError as exc:
        raise _meta_failed(exc, "deleting the template") from exc


async def sync(
    session: AsyncSession, rt: Runtime, workspace_id: uuid.UUID, account_id: str | None
) -> dict[str, Any]:
    """Make this account's rows what Meta holds for its WABA: every page, upsert by
    (name, language), remove the rows Meta no longer has. Meta is read before anything is
    written, outside any transaction. Whatever Meta holds is taken as it is (our own create
    rules do not apply); a template that cannot be stored at all (a name or language longer
    than our columns or with control characters) is left out and reported in ``skipped``."""
    account = await accounts.for_sending(session, workspace_id, account_id)
    async with outside_transaction(session):
        sender = await _sender(rt, account)
        try:
            remote = await sender.provider.list_templates(
                sender.waba_id, access_token=sender.access_token, fields=_META_FIELDS, limit=100
            )
        except WhatsAppError as exc:
            raise _meta_failed(exc, "listing the templates") from exc
    repo = TemplateRepository(session)
    local = {(r.name, r.language): r for r in await repo.of_account(workspace_id, account.id)}
    created = updated = 0
    skipped: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    now = utcnow()
    for item in remote:
        if not isinstance(item, dict):
            skipped.append({"name": "", "language": "", "reason": "not a template object"})
            continue
        name, language = item.get("name"), item.get("language")
        why = _key_problem(name, 512) or _key_problem(language, 15)
        if why is not None:
            skipped.append({"name": _shown(name), "language": _shown(language), "reason": f"{why}"})
            continue
        assert isinstance(name, str) and isinstance(language, str)
        if (name, language) in seen:
            continue
        seen.add((name, language))
        components = _storable_json(item.get("components"))
        if components is None:
            skipped.append(
                {"name": name, "language": language, "reason": "components nested too deeply"}
            )
            continue  # in ``seen``: a row we have is kept as it is
        fmt = _word(item.get("parameter_format"), 16)
        values: dict[str, Any] = {
            "meta_id": _meta_id(item.get("id")),
            "category": _word(item.get("category"), 32) or "UTILITY",
            "status": _word(item.get("status"), 32) or "PENDING",
            "parameter_format": fmt if fmt in ("POSITIONAL", "NAMED") else "POSITIONAL",
            "components": [c for c in components if isinstance(c, dict)]
            if isinstance(components, list)
            else [],
            "rejected_reason": _reason(item.get("rejected_reason")),
        }
        row = local.get((name, language))
        if row is None:
            await repo.add(
                MessageTemplate(
                    id=uuid.uuid4(),
                    workspace_id=workspace_id,
                    account_id=account.id,
                    name=name,
                    language=language,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            created += 1
            continue
        changed = False
        for key, value in values.items():
            if key == "rejected_reason" and value is None and values["status"] == "REJECTED":
                continue  # Meta's list leaves the reason out unless asked: keep the webhook's
            if getattr(row, key) != value:
                setattr(row, key, value)
                changed = True
        if changed:
            row.updated_at = now
            updated += 1
    deleted = 0
    for pair, row in local.items():
        if pair not in seen:
            await repo.delete(row)
            deleted += 1
    await session.flush()
    if skipped:
        log.warning("template_sync_skipped", account_id=str(account.id), skipped=skipped[:20])
    return {"created": created, "updated": updated, "deleted": deleted, "skipped": skipped}


# -- Meta's values as our columns take them -----------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")  # NUL (PostgreSQL) and lone surrogates (UTF-8)
_MAX_DEPTH = 32


def _key_problem(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return "no name or language"
    if len(value) > limit:
        return f"name or language longer than {limit} characters"
    if _CONTROL.search(value):
        return "control characters in the name or language"
    return None


def _shown(value: Any) -> str:
    """A name Meta gave, fit for our JSON answer and logs."""
    return _CONTROL.sub("\ufffd", value)[:100] if isinstance(value, str) else ""


def _word(value: Any, limit: int) -> str | None:
    """A short upper-case value (status, category) or None when it does not fit its column."""
    if value is None:
        return None
    text = _CONTROL.sub("", str(value)).strip().upper()
    return text if 0 < len(text) <= limit else None


def _meta_id(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if 0 < len(text) <= 64 and not _CONTROL.search(text) else None


class _TooDeep(Exception):
    pass


def _storable_json(value: Any) -> Any:
    """``value`` with NUL and lone surrogates removed from every string; None when nested
    deeper than any template is (orjson refuses 255 levels)."""
    try:
        return _clean_json(value, 0)
    except _TooDeep:
        return None


def _clean_json(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        return _UNSTORABLE.sub("", value)
    if isinstance(value, list):
        return [_clean_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_UNSTORABLE.sub("", str(k)): _clean_json(v, depth + 1) for k, v in value.items()}
    return value


async def apply_status_update(
    session: AsyncSession, account_ids: Sequence[uuid.UUID], value: dict[str, Any]
) -> bool:
    """Meta's ``message_template_status_update`` webhook (``value`` as Meta sends it): set the
    status (and reason) of the matching rows of ``account_ids`` (the accounts the delivery's
    signature proved), never another account's. False when no row matches. The caller commits."""
    event = str(value.get("event") or "").upper()
    if not event:
        return False
    status = _EVENT_STATUS.get(event, event)
    repo = TemplateRepository(session)
    meta_id = value.get("message_template_id")
    rows: Sequence[MessageTemplate] = (
        await repo.by_meta_id(account_ids, str(meta_id)) if meta_id else []
    )
    if not rows:
        name = value.get("message_template_name")
        language = value.get("message_template_language")
        if not name or not language:
            return False
        rows = await repo.by_name_language(account_ids, str(name), str(language))
    if not rows:
        return False
    reason = _reason(value.get("reason"))
    info = value.get("other_info")
    if reason is None and isinstance(info, dict):
        reason = _reason(info.get("title") or info.get("description"))
    now = utcnow()
    for row in rows:
        row.status = status
        row.rejected_reason = reason if status != "APPROVED" else None
        if meta_id and not row.meta_id:
            row.meta_id = str(meta_id)
        row.updated_at = now
    await session.flush()
    log.info("template_status", meta_id=meta_id, status=status, rows=len(rows))
    return True


def _nonempty_strings(value: Any) -> bool:
    """A non-empty list of non-empty strings (Meta's sample handles and URL examples)."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
