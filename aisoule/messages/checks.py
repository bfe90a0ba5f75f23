"""The pre-send checks: what Meta would refuse, decided from the recipient's state read
beforehand (no I/O here, so a batch checks thousands with the state of one query, and tests need
no database). Each refusal is a ValidationFailed naming the field as the client wrote it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aisoule.conversations import service as conversations
from aisoule.exceptions import ValidationFailed
from aisoule.kit.time import iso_z
from aisoule.messages.payload import send_components
from aisoule.messages.schemas import MessageSend, TemplatePayload
from aisoule.models import MessageTemplate
from aisoule.whatsapp import template_params


@dataclass(frozen=True, slots=True)
class RecipientState:
    """What the checks need to know, read before them: the contact's consent, when they last
    wrote to the sending number, and the rows of the template the request names (any language)."""

    opted_out_at: datetime | None = None
    opt_out_reason: str | None = None
    last_inbound_at: datetime | None = None
    templates: Sequence[MessageTemplate] = ()


def check(data: MessageSend, state: RecipientState, now: datetime) -> MessageTemplate | None:
    """Refuse what Meta would refuse (media links aside: checking them is I/O); the template
    row a template message uses."""
    consent(state)
    if data.type == "template":
        assert data.template is not None
        return template(data.template, state.templates)
    window(data.type, state.last_inbound_at, now)
    return None


def consent(state: RecipientState) -> None:
    if state.opted_out_at is not None:
        raise ValidationFailed(
            f"to: this contact opted out of WhatsApp messages on {iso_z(state.opted_out_at)} "
            f"({state.opt_out_reason or 'opt-out'}); no message can be sent to them until they "
            "reply START",
            field="to",
            code="contact_opted_out",
        )


def window(kind: str, last_inbound_at: datetime | None, now: datetime) -> None:
    if conversations.in_window(last_inbound_at, now):
        return
    since = (
        f"last wrote {iso_z(last_inbound_at)}"
        if last_inbound_at
        else "has never written to this number"
    )
    raise ValidationFailed(
        f"type: a free-form {kind} message can only be sent within 24 hours of the "
        f"customer's last message (this customer {since}); send an approved template "
        "instead (type: template), as Meta would refuse it with error 131047",
        field="type",
        code="outside_24h_window",
    )


def template(t: TemplatePayload, found: Sequence[MessageTemplate]) -> MessageTemplate:
    """The row of ``found`` (the rows named ``t.name``) the message uses: its language, approved,
    the parameters its components take."""
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
        match.components, send_components(t, match), match.parameter_format
    )
    if problems:
        raise ValidationFailed(
            f"template.parameters: {'; '.join(problems)} (Meta would answer error 132000)",
            field="template.parameters",
            code="template_parameters",
        )
    return match
