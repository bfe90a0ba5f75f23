"""A campaign's template parameters: checked against the template when the campaign is defined,
rendered per contact when the engine sends (no I/O here: the engine renders thousands a second).

The spec, as the client writes it (``parameters`` of POST /campaigns), per component:

    {"header": [entry],                       # a text header's one variable, or a media header's
     "body": [entry, entry],                  # positional templates: a list, in {{1}}, {{2}} order
     "body": {"first_name": entry},           # named templates: an object by variable name
     "buttons": {"1": entry}}                 # by the button's index (URL {{1}}, COPY_CODE)

    entry: {"field": "first_name" | "last_name" | "name" | "phone" | "email" | "stage"
                     | "custom_fields.<key>", "fallback": "there"}   (fallback optional)
         | {"value": "DIWALI20"}

A field that is empty for a contact takes its fallback; without one the contact is skipped
(``missing_variable``), never sent a message with a hole Meta would refuse (132000) or, worse,
send as an empty greeting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aisoule.exceptions import ValidationFailed
from aisoule.models import MessageTemplate
from aisoule.whatsapp import template_params

FIELDS = ("first_name", "last_name", "name", "phone", "email", "stage")
_CUSTOM = re.compile(r"^custom_fields\.([a-z][a-z0-9_]{0,63})$")
_MEDIA = ("image", "video", "document")
# Buttons whose send takes one parameter: a URL's {{1}} suffix, a coupon code, an OTP code.
_BUTTON_PARAM = {"URL": "url", "COPY_CODE": "copy_code", "OTP": "url"}
MAX_TEXT = 1024
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Rendered:
    """Meta's send ``components`` for one contact, or the first parameter that came out empty
    with no fallback (then ``components`` is None and the contact is skipped)."""

    components: list[dict[str, Any]] | None
    missing: str | None = None


@dataclass(frozen=True, slots=True)
class _Slot:
    """One parameter a template's send needs."""

    component: str  # header | body | buttons
    key: str  # "0", "1" (positional / button index) or the variable's name (named)
    kind: str  # text | image | video | document | url | copy_code

    def where(self, named: bool) -> str:
        if self.component == "buttons":
            return f"buttons.{self.key}"
        return f"{self.component}.{self.key}" if named else f"{self.component}[{self.key}]"


def _components(template: MessageTemplate) -> dict[str, dict[str, Any]]:
    return {
        str(c.get("type", "")).upper(): c
        for c in (template.components or [])
        if isinstance(c, dict)
    }


def _named(template: MessageTemplate) -> bool:
    return str(template.parameter_format or "").upper() == "NAMED"


def slots(template: MessageTemplate) -> dict[str, list[_Slot]]:
    """What the template's send needs, per component, in the template's order."""
    comps = _components(template)
    named = _named(template)
    out: dict[str, list[_Slot]] = {}
    header = comps.get("HEADER")
    if header is not None:
        fmt = str(header.get("format", "TEXT")).upper()
        if fmt.lower() in _MEDIA:
            out["header"] = [_Slot("header", "0", fmt.lower())]
        elif fmt == "TEXT":
            names = template_params.placeholders(header.get("text"))
            if names:
                out["header"] = [
                    _Slot("header", n if named else str(i), "text") for i, n in enumerate(names)
                ]
        else:
            out["header"] = [_Slot("header", "0", fmt.lower())]  # LOCATION: not supported
    body = comps.get("BODY")
    if body is not None:
        names = template_params.placeholders(body.get("text"))
        if names:
            out["body"] = [
                _Slot("body", n if named else str(i), "text") for i, n in enumerate(names)
            ]
    buttons = (comps.get("BUTTONS") or {}).get("buttons") or []
    wanted = []
    for i, button in enumerate(buttons):
        if not isinstance(button, dict):
            continue
        kind_of = str(button.get("type", "")).upper()
        kind = _BUTTON_PARAM.get(kind_of)
        if kind_of == "URL" and not template_params.placeholders(str(button.get("url", ""))):
            kind = None  # a static URL takes nothing
        if kind is not None:
            wanted.append(_Slot("buttons", str(i), kind))
    if wanted:
        out["buttons"] = wanted
    return out


# -- checking the spec (create and update) ------------------------------------------------------


def _fail(path: str, message: str, code: str = "invalid_parameters") -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", field=path, code=code)


def _show(slots_: list[_Slot], named: bool) -> str:
    if named:
        return ", ".join("{{" + s.key + "}}" for s in slots_)
    return ", ".join("{{" + str(int(s.key) + 1) + "}}" for s in slots_)


def _clean_constant(path: str, value: Any, kind: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(path, "must be a string")
    text = str(value)
    if not text.strip():
        raise _fail(path, "must not be empty")
    if len(text) > MAX_TEXT:
        raise _fail(path, f"must be at most {MAX_TEXT} characters")
    if kind == "text" and ("\n" in text or "\t" in text or "     " in text):
        raise _fail(
            path,
            "must not contain new lines, tabs or more than 4 consecutive spaces "
            "(Meta refuses such parameters, error 132018)",
        )
    if kind in _MEDIA and not text.startswith(("https://", "http://")):
        raise _fail(path, f"a {kind} header takes the media's http(s) link")
    return text


def _entry(path: str, raw: Any, kind: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(
            path,
            'must be an object: {"field": "first_name", "fallback": "there"} or '
            '{"value": "DIWALI20"}',
        )
    for key in raw:
        if key not in ("field", "fallback", "value"):
            raise _fail(f"{path}.{key}", "is not a known field (use field, fallback or value)")
    if ("field" in raw) == ("value" in raw):
        raise _fail(path, "give either field (a contact field) or value (a constant)")
    if "value" in raw:
        if "fallback" in raw:
            raise _fail(f"{path}.fallback", "a constant value needs no fallback")
        return {"value": _clean_constant(f"{path}.value", raw["value"], kind)}
    field = raw["field"]
    if not isinstance(field, str) or not (field in FIELDS or _CUSTOM.match(field)):
        raise _fail(
            f"{path}.field",
            "must be one of " + ", ".join(FIELDS) + " or custom_fields.<key>",
        )
    out: dict[str, Any] = {"field": field}
    if raw.get("fallback") is not None:
        out["fallback"] = _clean_constant(f"{path}.fallback", raw["fallback"], kind)
    return out


def _one(path: str, raw: Any, kind: str) -> dict[str, Any]:
    """A button's or media header's single entry; a list of one is taken too."""
    if isinstance(raw, list):
        if len(raw) != 1:
            raise _fail(path, f"takes exactly one parameter ({len(raw)} given)")
        return _entry(f"{path}[0]", raw[0], kind)
    return _entry(path, raw, kind)


def check(template: MessageTemplate, spec: Any) -> dict[str, Any]:
    """``spec`` (the request's ``parameters``) against ``template``: the spec as stored, or a
    ValidationFailed naming the parameter as the client wrote it (``parameters.body[1]``)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise _fail("parameters", "must be an object with header, body and/or buttons")
    named = _named(template)
    need = slots(template)
    for key in spec:
        if key not in ("header", "body", "buttons"):
            raise _fail(f"parameters.{key}", "is not a component (use header, body or buttons)")
    out: dict[str, Any] = {}
    for component in ("header", "body"):
        want = need.get(component, [])
        given = spec.get(component)
        path = f"parameters.{component}"
        if want and want[0].kind == "location":
            raise _fail("template", "templates with a LOCATION header cannot be broadcast yet")
        if given is None:
            if want:
                raise _fail(
                    path,
                    f"is required: the template's {component} has {len(want)} variable(s) "
                    f"({_show(want, named)})",
                    code="template_parameters",
                )
            continue
        if not want:
            raise _fail(
                path, f"the template's {component} has no variables", code="template_parameters"
            )
        kind = want[0].kind
        if kind in _MEDIA:
            out[component] = [_one(path, given, kind)]
        elif named:
            out[component] = _check_named(path, given, want)
        else:
            out[component] = _check_positional(path, given, want)
    buttons = _check_buttons(spec.get("buttons"), need.get("buttons", []))
    if buttons:
        out["buttons"] = buttons
    return out


def _check_positional(path: str, given: Any, want: list[_Slot]) -> list[dict[str, Any]]:
    if not isinstance(given, list):
        raise _fail(path, "must be a list: the template's variables are positional ({{1}}, ...)")
    if len(given) < len(want):
        raise _fail(
            f"{path}[{len(given)}]",
            f"is missing: the template has {len(want)} variable(s) ({_show(want, False)}), "
            f"{len(given)} given",
            code="template_parameters",
        )
    if len(given) > len(want):
        raise _fail(
            f"{path}[{len(want)}]",
            f"is one too many: the template has {len(want)} variable(s) ({_show(want, False)})",
            code="template_parameters",
        )
    return [_entry(f"{path}[{i}]", raw, "text") for i, raw in enumerate(given)]


def _check_named(path: str, given: Any, want: list[_Slot]) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise _fail(path, "must be an object by variable name: the template's variables are named")
    names = [s.key for s in want]
    for name in given:
        if name not in names:
            raise _fail(
                f"{path}.{name}",
                f"is not a variable of the template (it has {_show(want, True)})",
                code="template_parameters",
            )
    for name in names:
        if name not in given:
            raise _fail(f"{path}.{name}", "is required", code="template_parameters")
    return {name: _entry(f"{path}.{name}", given[name], "text") for name in names}


def _check_buttons(given: Any, want: list[_Slot]) -> dict[str, Any]:
    path = "parameters.buttons"
    if given is None:
        given = {}
    if isinstance(given, list):  # by position: null for buttons that take nothing
        items = {str(i): v for i, v in enumerate(given) if v is not None}
        at = {str(i): f"{path}[{i}]" for i in range(len(given))}
    elif isinstance(given, dict):
        items = dict(given)
        at = {k: f"{path}.{k}" for k in given}
    else:
        raise _fail(path, 'must be an object by button index, e.g. {"0": {"value": "SAVE20"}}')
    by_index = {s.key: s for s in want}
    for key in items:
        if key not in by_index:
            raise _fail(
                at[key],
                "this button takes no parameter"
                + (f" (buttons with a parameter: {', '.join(by_index)})" if by_index else ""),
                code="template_parameters",
            )
    out: dict[str, Any] = {}
    for key, slot in by_index.items():
        if key not in items:
            raise _fail(
                at.get(key, f"{path}.{key}"),
                f"is required: button {key} takes one parameter ({slot.kind})",
                code="template_parameters",
            )
        out[key] = _one(at[key], items[key], "text")
    return out


def fields_without_fallback(spec: Mapping[str, Any]) -> set[str]:
    """The contact fields the spec uses with no fallback: a contact empty in one is skipped."""
    out: set[str] = set()
    for entry in _entries(spec):
        if "field" in entry and "fallback" not in entry:
            out.add(entry["field"])
    return out


def _entries(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in ("header", "body", "buttons"):
        part = spec.get(component)
        values = part.values() if isinstance(part, dict) else part or []
        found += [e for e in values if isinstance(e, dict)]
    return found


# -- rendering (the engine, per contact) --------------------------------------------------------


def _field_value(contact: Mapping[str, Any], field: str) -> str:
    if field.startswith("custom_fields."):
        value = (contact.get("custom_fields") or {}).get(field.split(".", 1)[1])
    elif field == "name":
        value = contact.get("name")
        if value is None:
            value = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
    else:
        value = contact.get(field)
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    # Meta refuses new lines, tabs and runs of spaces in a parameter (132018): one space each.
    return _SPACES.sub(" ", str(value)).strip()[:MAX_TEXT]


def _resolve(entry: Any, contact: Mapping[str, Any]) -> str:
    if not isinstance(entry, dict):
        return ""
    if "value" in entry:
        return str(entry["value"])
    text = _field_value(contact, str(entry.get("field", "")))
    return text or str(entry.get("fallback") or "")


def _parameter(slot: _Slot, text: str, named: bool) -> dict[str, Any]:
    if slot.kind in _MEDIA:
        return {"type": slot.kind, slot.kind: {"link": text}}
    if slot.kind == "copy_code":
        return {"type": "coupon_code", "coupon_code": text}
    param: dict[str, Any] = {"type": "text", "text": text}
    if named and slot.component != "buttons":
        param["parameter_name"] = slot.key
    return param


def render(
    template: MessageTemplate, spec: Mapping[str, Any], contact: Mapping[str, Any]
) -> Rendered:
    """Meta's send components for ``contact`` (keys: first_name, last_name, name, phone, email,
    stage, custom_fields), or which parameter came out empty with no fallback. Follows the
    template as it is now: a variable the spec does not fill (the template changed since) is
    missing too."""
    named = _named(template)
    components: list[dict[str, Any]] = []
    for component, wanted in slots(template).items():
        part = spec.get(component)
        params: list[dict[str, Any]] = []
        for i, slot in enumerate(wanted):
            if component == "buttons" or named:
                entry = part.get(slot.key) if isinstance(part, dict) else None
            else:
                entry = part[i] if isinstance(part, list) and i < len(part) else None
            if component == "header" and slot.kind in _MEDIA and isinstance(part, list) and part:
                entry = part[0]
            text = _resolve(entry, contact)
            if not text:
                what = entry.get("field") if isinstance(entry, dict) else "not set"
                return Rendered(None, f"{slot.where(named)} ({what})")
            param = _parameter(slot, text, named)
            if component == "buttons":
                components.append(
                    {
                        "type": "button",
                        "sub_type": slot.kind if slot.kind != "text" else "url",
                        "index": slot.key,
                        "parameters": [param],
                    }
                )
            else:
                params.append(param)
        if params:
            components.append({"type": component, "parameters": params})
    return Rendered(components)


def text(template: MessageTemplate, components: list[dict[str, Any]] | None) -> str:
    """The message as the contact reads it: the header, body and footer with the parameters in."""
    comps = _components(template)
    given = template_params.given(components or [])
    parts: list[str] = []
    for kind in ("HEADER", "BODY", "FOOTER"):
        comp = comps.get(kind)
        if comp is None:
            continue
        if kind == "HEADER" and str(comp.get("format", "TEXT")).upper() != "TEXT":
            parts.append(f"[{str(comp.get('format')).lower()}]")
            continue
        body = str(comp.get("text") or "")
        params = given.get(kind.lower(), [])
        for i, name in enumerate(template_params.placeholders(body)):
            by_name = next((p for p in params if p.get("parameter_name") == name), None)
            p = by_name or (params[i] if i < len(params) else None)
            if p is not None:
                body = re.sub(
                    r"\{\{\s*" + re.escape(name) + r"\s*\}\}", str(p.get("text", "")), body
                )
        if body:
            parts.append(body)
    return "\n\n".join(parts)


def contact_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A contact row (its mapping: first_name, last_name, phone, email, stage, custom_fields) as
    ``render`` reads it; ``name`` is the first and last names joined, or None."""
    first, last = row["first_name"], row["last_name"]
    return {
        "first_name": first,
        "last_name": last,
        "name": " ".join(p for p in (first, last) if p) or None,
        "phone": row["phone"],
        "email": row["email"],
        "stage": row["stage"],
        "custom_fields": row["custom_fields"] or {},
    }
