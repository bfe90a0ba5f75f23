"""What a template expects ({{1}} positional or {{name}} named placeholders) against what a send
gives. Meta answers a mismatch with error 132000 after the message was queued; we refuse first."""

from __future__ import annotations

import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def placeholders(text: str | None) -> list[str]:
    """Placeholder names in order of first appearance (``["1", "2"]`` or ``["first_name"]``)."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return seen


def expected(components: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per component kind (``header``, ``body``): the placeholders its text holds."""
    out: dict[str, list[str]] = {}
    for comp in components or []:
        if not isinstance(comp, dict):
            continue
        kind = str(comp.get("type", "")).lower()
        if kind == "header" and str(comp.get("format", "TEXT")).upper() != "TEXT":
            out["header_media"] = [str(comp.get("format", "")).lower()]
            continue
        if kind in ("header", "body"):
            names = placeholders(comp.get("text"))
            if names:
                out[kind] = names
    return out


def given(components: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per component kind: the parameters a send supplies (Meta's send ``components``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for comp in components or []:
        if not isinstance(comp, dict):
            continue
        kind = str(comp.get("type", "")).lower()
        params = comp.get("parameters") or []
        if kind in ("header", "body") and isinstance(params, list):
            out[kind] = [p for p in params if isinstance(p, dict)]
    return out


def mismatches(
    template_components: list[dict[str, Any]],
    send_components: list[dict[str, Any]],
    parameter_format: str,
) -> list[str]:
    """Human sentences for every mismatch; empty when the send fits the template."""
    want = expected(template_components)
    have = given(send_components)
    problems: list[str] = []
    media = want.pop("header_media", None)
    if media:
        params = have.pop("header", [])
        if not params or params[0].get("type") != media[0]:
            problems.append(f"the header needs one {media[0]} parameter")
    for kind in ("header", "body"):
        names = want.get(kind, [])
        params = have.get(kind, [])
        if len(params) != len(names):
            problems.append(
                f"the {kind} has {len(names)} variable(s) {_show(names)} but {len(params)} "
                f"parameter(s) were given"
            )
            continue
        if parameter_format.upper() == "NAMED":
            sent = [str(p.get("parameter_name", "")) for p in params]
            if sorted(sent) != sorted(names):
                problems.append(
                    f"the {kind}'s named parameters must be {_show(names)}, got {_show(sent)}"
                )
        for p in params:
            if p.get("type", "text") == "text" and not str(p.get("text", "")).strip():
                problems.append(f"a {kind} parameter has an empty text")
                break
    return problems


def _show(names: list[str]) -> str:
    return "(" + ", ".join("{{" + n + "}}" for n in names) + ")" if names else "(none)"
