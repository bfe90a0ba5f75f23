"""Meta's message JSON for a checked request, and the short text lists show (no I/O)."""

from __future__ import annotations

from typing import Any

from aisoule.kit.phone import digits_only
from aisoule.messages.schemas import MEDIA_TYPES, MessageSend, TemplatePayload
from aisoule.models import MessageTemplate
from aisoule.whatsapp import template_params


def send_components(t: TemplatePayload, tpl: MessageTemplate) -> list[dict[str, Any]]:
    """The template's components as Meta takes them, from either way the request gives them."""
    if t.components is not None:
        return t.components
    if t.parameters is None:
        return []
    if isinstance(t.parameters, dict):
        params = [{"type": "text", "parameter_name": k, "text": v} for k, v in t.parameters.items()]
    else:
        params = [{"type": "text", "text": v} for v in t.parameters]
    return [{"type": "body", "parameters": params}] if params else []


def build(
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
        components = send_components(t, template)
        if components:
            tpl["components"] = components
        body["template"] = tpl
        preview = template_text(template, components)
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


def template_text(template: MessageTemplate, components: list[dict[str, Any]]) -> str | None:
    """The template's body with the given parameters filled in."""
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
