"""The emulator's world, in memory: numbers, templates, customer windows, rate buckets, messages.

In memory on purpose: an emulator restarts clean, and tests reset it through the control API.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aisoule.whatsapp.emulator.meta import GraphError, numeric_id

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
CATEGORIES = {"MARKETING", "UTILITY", "AUTHENTICATION"}
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")


@dataclass
class Number:
    """A business phone number the emulator hosts, and the WhatsApp Business Account it is in."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    verified_name: str = "aisoule sandbox"
    quality_rating: str = "GREEN"
    # The app secret this number's webhooks are signed with (None: the settings' shared one). Never
    # shown: whoever knows it can sign deliveries for this number.
    app_secret: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "display_phone_number": self.display_phone_number,
            "verified_name": self.verified_name,
            "quality_rating": self.quality_rating,
        }


@dataclass
class Template:
    id: str
    waba_id: str  # templates belong to one business account; not part of Meta's template JSON
    name: str
    language: str
    category: str
    components: list[dict[str, Any]]
    parameter_format: str  # "POSITIONAL" ({{1}}) or "NAMED" ({{first_name}})
    status: str = "PENDING"
    rejected_reason: str = "NONE"
    created_at: float = field(default_factory=time.monotonic)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }

    def placeholders(self, kind: str) -> list[str]:
        """The distinct variables of the HEADER (text) or BODY component, in order."""
        out: list[str] = []
        for comp in self.components:
            if str(comp.get("type", "")).upper() == kind:
                for name in _PLACEHOLDER.findall(str(comp.get("text") or "")):
                    if name not in out:
                        out.append(name)
        return out

    def dynamic_url_buttons(self) -> list[int]:
        """Indexes of URL buttons whose URL ends with a variable (needs a parameter when sent)."""
        for comp in self.components:
            if str(comp.get("type", "")).upper() == "BUTTONS":
                return [
                    i
                    for i, b in enumerate(comp.get("buttons") or [])
                    if str(b.get("type", "")).upper() == "URL"
                    and _PLACEHOLDER.search(str(b.get("url") or ""))
                ]
        return []

    def missing_examples(self) -> bool:
        """A BODY with variables but no ``example`` is what Meta rejects (INVALID_FORMAT)."""
        for comp in self.components:
            if str(comp.get("type", "")).upper() == "BODY" and _PLACEHOLDER.search(
                str(comp.get("text") or "")
            ):
                example = comp.get("example") or {}
                if not (example.get("body_text") or example.get("body_text_named_params")):
                    return True
        return False


def new_template(waba_id: str, body: Any) -> Template:
    """Validate a ``POST message_templates`` body as Meta does (code 100 naming the field)."""
    if not isinstance(body, dict):
        raise GraphError(100, "The request body must be a JSON object")
    name, language = body.get("name"), body.get("language")
    category = str(body.get("category") or "").upper()
    components = body.get("components")
    if not isinstance(name, str) or not _TEMPLATE_NAME.match(name):
        raise GraphError(100, "name: lowercase letters, digits and underscores only")
    if not isinstance(language, str) or not language:
        raise GraphError(100, "language is required")
    if category not in CATEGORIES:
        raise GraphError(100, f"category must be one of {', '.join(sorted(CATEGORIES))}")
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise GraphError(100, "components must be a list of objects")
    bodies = [c for c in components if str(c.get("type", "")).upper() == "BODY"]
    if len(bodies) != 1 or not isinstance(bodies[0].get("text"), str):
        raise GraphError(100, "components needs exactly one BODY with text")
    fmt = str(body.get("parameter_format") or "POSITIONAL").upper()
    if fmt not in ("POSITIONAL", "NAMED"):
        raise GraphError(100, "parameter_format must be POSITIONAL or NAMED")
    return Template(
        id=numeric_id(),
        waba_id=waba_id,
        name=name,
        language=language,
        category=category,
        components=components,
        parameter_format=fmt,
    )


def check_template_send(tpl: Template, send: dict[str, Any]) -> None:
    """Parameters given vs the template's variables: code 132000 on any mismatch."""
    given: dict[str, list[dict[str, Any]]] = {"HEADER": [], "BODY": []}
    buttons: dict[int, list[dict[str, Any]]] = {}
    for comp in send.get("components") or []:
        if not isinstance(comp, dict):
            raise GraphError(100, "template.components items must be objects")
        kind = str(comp.get("type", "")).upper()
        params = comp.get("parameters") or []
        if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
            raise GraphError(100, f"template.components[{kind}].parameters must be objects")
        if kind in given:
            given[kind] = params
        elif kind == "BUTTON":
            try:
                buttons[int(comp.get("index", -1))] = params
            except (TypeError, ValueError):
                raise GraphError(100, "template button component needs a numeric index") from None
    for kind in ("HEADER", "BODY"):
        expected = tpl.placeholders(kind)
        params = given[kind]
        if kind == "HEADER":  # a media header takes one image/video/document parameter
            params = [p for p in params if p.get("type") == "text"]
        if len(params) != len(expected):
            raise GraphError(
                132000,
                f"{kind.lower()}: number of localizable_params ({len(params)}) does not match "
                f"the expected number of params ({len(expected)})",
            )
        if tpl.parameter_format == "NAMED":
            names = [p.get("parameter_name") for p in params]
            if sorted(map(str, names)) != sorted(expected):
                raise GraphError(
                    132000, f"{kind.lower()}: parameter_name values {names} do not match {expected}"
                )
    for index in tpl.dynamic_url_buttons():
        if len(buttons.get(index, [])) != 1:
            raise GraphError(132000, f"button {index}: a URL button with a variable needs 1 param")


def validate_message(payload: Any) -> str:
    """Meta's send shapes, checked enough to catch real mistakes; answers the message type."""
    if not isinstance(payload, dict):
        raise GraphError(100, "The request body must be a JSON object")
    if payload.get("messaging_product") != "whatsapp":
        raise GraphError(100, "messaging_product must be 'whatsapp'")
    to = payload.get("to")
    if not isinstance(to, str) or not to.lstrip("+").replace(" ", "").replace("-", "").isdigit():
        raise GraphError(100, "to: a phone number in international format is required")
    kind = payload.get("type", "text")
    obj = payload.get(kind)
    if not isinstance(obj, dict):
        raise GraphError(100, f"{kind}: the '{kind}' object is required")
    if kind == "text":
        if not isinstance(obj.get("body"), str) or not obj["body"].strip():
            raise GraphError(100, "text.body is required")
        if len(obj["body"]) > 4096:
            raise GraphError(100, "text.body is longer than 4096 characters")
    elif kind == "template":
        if not isinstance(obj.get("name"), str):
            raise GraphError(100, "template.name is required")
        lang = obj.get("language")
        if not isinstance(lang, dict) or not isinstance(lang.get("code"), str):
            raise GraphError(100, "template.language.code is required")
    elif kind in MEDIA_TYPES:
        if not (isinstance(obj.get("link"), str) or isinstance(obj.get("id"), str)):
            raise GraphError(100, f"{kind}: either 'link' or 'id' is required")
    elif kind == "interactive":
        _validate_interactive(obj)
    elif kind == "reaction":
        if not isinstance(obj.get("message_id"), str) or not isinstance(obj.get("emoji"), str):
            raise GraphError(100, "reaction: message_id and emoji are required")
    elif kind == "location":
        if "latitude" not in obj or "longitude" not in obj:
            raise GraphError(100, "location: latitude and longitude are required")
    else:
        raise GraphError(100, f"type: unsupported message type '{kind}'")
    return str(kind)


def _validate_interactive(obj: dict[str, Any]) -> None:
    itype = obj.get("type")
    action = obj.get("action")
    body = obj.get("body")
    if not isinstance(action, dict):
        raise GraphError(100, "interactive.action is required")
    if itype in ("button", "list") and not (isinstance(body, dict) and body.get("text")):
        raise GraphError(100, "interactive.body.text is required")
    if itype == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise GraphError(100, "interactive.action.buttons: 1 to 3 buttons")
        for b in buttons:
            reply = b.get("reply") if isinstance(b, dict) else None
            if not isinstance(reply, dict) or not reply.get("id") or not reply.get("title"):
                raise GraphError(100, "interactive.action.buttons[].reply needs id and title")
            if len(str(reply["title"])) > 20:
                raise GraphError(100, "interactive button title is longer than 20 characters")
    elif itype == "list":
        sections = action.get("sections")
        if not action.get("button") or not isinstance(sections, list) or not sections:
            raise GraphError(100, "interactive.action needs button and sections")
        rows = [r for s in sections if isinstance(s, dict) for r in (s.get("rows") or [])]
        if not 1 <= len(rows) <= 10:
            raise GraphError(100, "interactive list: 1 to 10 rows in all sections")
        if not all(isinstance(r, dict) and r.get("id") and r.get("title") for r in rows):
            raise GraphError(100, "interactive list rows need id and title")
    elif itype not in ("cta_url", "product", "product_list", "flow", "location_request_message"):
        raise GraphError(100, f"interactive.type: unsupported '{itype}'")


@dataclass
class Sent:
    """A message the emulator accepted, and what became of it."""

    id: str
    phone_number_id: str
    to: str
    type: str
    payload: dict[str, Any]
    timestamp: str
    statuses: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


class World:
    """Everything the emulator remembers. One instance per app."""

    def __init__(self) -> None:
        self.numbers: dict[str, Number] = {}  # phone_number_id -> the number and its WABA
        self.templates: dict[str, Template] = {}
        self.last_inbound: dict[tuple[str, str], float] = {}  # (phone id, wa_id) -> monotonic
        self.opted_out: set[tuple[str, str]] = set()  # marketing STOP
        self.sent: list[Sent] = []
        self.inbound_ids: dict[str, str] = {}  # inbound wamid -> the phone_number_id it went to
        self.inbound: list[dict[str, Any]] = []
        self.failures: list[int] = []  # error codes the next sends answer (control API)
        self.media: dict[str, dict[str, Any]] = {}  # uploads: id -> mime_type, file_size
        self.deliveries: list[dict[str, Any]] = []  # webhook attempts, for inspection
        self._second: dict[str, deque[float]] = {}
        self._pair: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, at

    def take_throughput(self, phone_id: str, per_second: int) -> bool:
        now = time.monotonic()
        window = self._second.setdefault(phone_id, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= per_second:
            return False
        window.append(now)
        return True

    def take_pair(self, phone_id: str, wa_id: str, burst: int, period: float) -> bool:
        """Token bucket: ``burst`` tokens, one back every ``period`` seconds."""
        now = time.monotonic()
        tokens, at = self._pair.get((phone_id, wa_id), (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) / period) if period > 0 else float(burst)
        if tokens < 1:
            self._pair[(phone_id, wa_id)] = (tokens, now)
            return False
        self._pair[(phone_id, wa_id)] = (tokens - 1, now)
        return True

    def open_window(self, phone_id: str, wa_id: str) -> None:
        self.last_inbound[(phone_id, wa_id)] = time.monotonic()

    def in_window(self, phone_id: str, wa_id: str, window_seconds: float) -> bool:
        at = self.last_inbound.get((phone_id, wa_id))
        return at is not None and time.monotonic() - at < window_seconds

    def waba_ids(self) -> set[str]:
        return {n.waba_id for n in self.numbers.values()}

    def used_ids(self) -> set[str]:
        """Every phone number and WABA id: Graph ids are unique across node types."""
        return set(self.numbers) | self.waba_ids()

    def fresh_id(self) -> str:
        used = self.used_ids()
        while (new := numeric_id()) in used:
            pass
        return new

    def fresh_display(self) -> str:
        """An unused sandbox display number: ``1555`` and 7 digits."""
        taken = {n.display_phone_number for n in self.numbers.values()}
        while (new := f"1555{secrets.randbelow(10**7):07d}") in taken:
            pass
        return new

    def waba_templates(self, waba_id: str) -> list[Template]:
        return [t for t in self.templates.values() if t.waba_id == waba_id]

    def find_template(self, waba_id: str, name: str, language: str) -> Template | None:
        for tpl in self.waba_templates(waba_id):
            if tpl.name == name and tpl.language == language:
                return tpl
        return None
