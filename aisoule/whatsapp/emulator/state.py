"""The emulator's world, in memory: numbers, templates, customer windows, rate buckets, messages.

In memory on purpose: an emulator restarts clean, and tests reset it through the control API.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aisoule.whatsapp.emulator.meta import ERRORS, GraphError, numeric_id

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
        """Indexes of buttons that take one parameter when sent: a URL button whose URL has a
        variable, and an authentication template's OTP button (the code, sent as Meta's
        sample does: a ``button`` component with ``sub_type: url``)."""
        for comp in self.components:
            if str(comp.get("type", "")).upper() == "BUTTONS":
                return [
                    i
                    for i, b in enumerate(comp.get("buttons") or [])
                    if isinstance(b, dict)
                    and (
                        str(b.get("type", "")).upper() == "OTP"
                        or (
                            str(b.get("type", "")).upper() == "URL"
                            and _PLACEHOLDER.search(str(b.get("url") or ""))
                        )
                    )
                ]
        return []

    def missing_examples(self) -> bool:
        """A BODY with variables but no ``example`` is what Meta rejects (INVALID_FORMAT).

        Authentication templates are exempt: their body is Meta's own fixed text."""
        if self.category == "AUTHENTICATION":
            return False
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
    if category == "AUTHENTICATION":
        components = _authentication_components(components)
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


def _authentication_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Meta writes an authentication template's texts itself: the body is its fixed sentence
    (plus the security recommendation when asked), the footer the code's expiry."""
    out = []
    for comp in components:
        kind = str(comp.get("type", "")).upper()
        comp = dict(comp)
        if kind == "BODY" and not isinstance(comp.get("text"), str):
            text = "*{{1}}* is your verification code."
            if comp.get("add_security_recommendation"):
                text += " For your security, do not share this code."
            comp["text"] = text
        elif kind == "FOOTER" and comp.get("code_expiration_minutes") is not None:
            comp.setdefault(
                "text", f"This code expires in {comp['code_expiration_minutes']} minutes."
            )
        out.append(comp)
    return out


def hello_world(waba_id: str) -> Template:
    """The sample template Meta gives every new WhatsApp Business Account, already APPROVED."""
    return Template(
        id=numeric_id(),
        waba_id=waba_id,
        name="hello_world",
        language="en_US",
        category="UTILITY",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability "
                "to send a WhatsApp message notification from the Cloud API, hosted by Meta. "
                "Thank you for taking the time to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
        parameter_format="POSITIONAL",
        status="APPROVED",
    )


def check_template_status(tpl: Template | None, name: str, language: str) -> Template:
    """The template a send names, if it may be sent: Meta's 132001 / 132015 / 132016 if not."""
    if tpl is not None and tpl.status == "PAUSED":
        raise GraphError(132015, f"template ({name}) is paused")
    if tpl is not None and tpl.status == "DISABLED":
        raise GraphError(132016, f"template ({name}) is disabled")
    if tpl is None or tpl.status != "APPROVED":
        raise GraphError(132001, f"template name ({name}) does not exist in {language}")
    return tpl


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


# Message types of Meta's send API (POST /{phone-number-id}/messages) the emulator accepts.
MESSAGE_TYPES = (
    "text",
    "template",
    *MEDIA_TYPES,
    "interactive",
    "reaction",
    "location",
    "contacts",
)
INTERACTIVE_TYPES = (
    "button",
    "list",
    "cta_url",
    "product",
    "product_list",
    "catalog_message",
    "flow",
    "location_request_message",
    "address_message",
)


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _invalid(details: str) -> GraphError:
    """Meta's answer to a value outside its documented limits: 131009 with the limit."""
    return GraphError(131009, details)


def validate_message(payload: Any) -> str:
    """Meta's send shapes, checked enough to catch real mistakes; answers the message type."""
    if not isinstance(payload, dict):
        raise GraphError(100, "The request body must be a JSON object")
    if payload.get("messaging_product") != "whatsapp":
        raise GraphError(100, "messaging_product must be 'whatsapp'")
    to = payload.get("to")
    digits = to.lstrip("+").replace(" ", "").replace("-", "") if isinstance(to, str) else ""
    if not (digits.isascii() and digits.isdigit()):
        raise GraphError(100, "to: a phone number in international format is required")
    kind = payload.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise GraphError(100, f"type: unsupported message type '{kind}'")
    obj = payload.get(kind)
    if kind == "contacts":
        _validate_contacts(obj)
        return "contacts"
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
    elif kind == "location" and ("latitude" not in obj or "longitude" not in obj):
        raise GraphError(100, "location: latitude and longitude are required")
    return str(kind)


def _validate_contacts(contacts: Any) -> None:
    """A contacts message: a list of contact cards, each with ``name.formatted_name``."""
    if not isinstance(contacts, list) or not contacts:
        raise GraphError(100, "contacts: a non-empty list of contacts is required")
    for n, card in enumerate(contacts):
        name = card.get("name") if isinstance(card, dict) else None
        if not isinstance(name, dict) or not isinstance(name.get("formatted_name"), str):
            raise GraphError(131008, f"contacts[{n}].name.formatted_name is required")


def _validate_interactive(obj: dict[str, Any]) -> None:
    """Interactive messages, with the limits Meta documents for each (131009 beyond them)."""
    itype = obj.get("type")
    action = obj.get("action")
    body = obj.get("body")
    header = obj.get("header")
    footer = obj.get("footer")
    if itype not in INTERACTIVE_TYPES:
        raise GraphError(100, f"interactive.type: unsupported '{itype}'")
    if not isinstance(action, dict):
        raise GraphError(100, "interactive.action is required")
    needs_body = itype in ("button", "list", "cta_url", "product_list", "catalog_message")
    if needs_body and not (isinstance(body, dict) and body.get("text")):
        raise GraphError(100, "interactive.body.text is required")
    if isinstance(body, dict) and _too_long(body.get("text"), 4096 if itype == "list" else 1024):
        raise _invalid("interactive.body.text is too long")
    if isinstance(header, dict) and _too_long(header.get("text"), 60):
        raise _invalid("Header text length invalid. Max length: 60")
    if isinstance(footer, dict) and _too_long(footer.get("text"), 60):
        raise _invalid("Footer text length invalid. Max length: 60")
    if itype == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not buttons:
            raise GraphError(100, "interactive.action.buttons is required")
        if len(buttons) > 3:
            raise _invalid("Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3")
        for b in buttons:
            reply = b.get("reply") if isinstance(b, dict) else None
            if not isinstance(reply, dict) or not reply.get("id") or not reply.get("title"):
                raise GraphError(100, "interactive.action.buttons[].reply needs id and title")
            if _too_long(reply["title"], 20):
                raise _invalid("Button title length invalid. Min length: 1, Max length: 20")
            if _too_long(reply["id"], 256):
                raise _invalid("Button id length invalid. Max length: 256")
    elif itype == "list":
        sections = action.get("sections")
        if not action.get("button") or not isinstance(sections, list) or not sections:
            raise GraphError(100, "interactive.action needs button and sections")
        if _too_long(action["button"], 20):
            raise _invalid("Button text length invalid. Max length: 20")
        if len(sections) > 10:
            raise _invalid("Invalid number of sections. Max allowed: 10")
        rows = [r for s in sections if isinstance(s, dict) for r in (s.get("rows") or [])]
        if not rows:
            raise GraphError(100, "interactive list: at least one row is required")
        if len(rows) > 10:
            raise _invalid("Invalid number of rows. Max allowed rows in all sections: 10")
        if not all(isinstance(r, dict) and r.get("id") and r.get("title") for r in rows):
            raise GraphError(100, "interactive list rows need id and title")
        for r in rows:
            if _too_long(r["title"], 24):
                raise _invalid("Row title length invalid. Max length: 24")
            if _too_long(r.get("description"), 72):
                raise _invalid("Row description length invalid. Max length: 72")
            if _too_long(r["id"], 200):
                raise _invalid("Row id length invalid. Max length: 200")
        for sec in sections:
            if isinstance(sec, dict) and _too_long(sec.get("title"), 24):
                raise _invalid("Section title length invalid. Max length: 24")
    elif itype == "cta_url":
        params = action.get("parameters")
        if not isinstance(params, dict) or not params.get("display_text") or not params.get("url"):
            raise GraphError(100, "interactive.action.parameters needs display_text and url")
        if _too_long(params["display_text"], 20):
            raise _invalid("Button display_text length invalid. Max length: 20")
    elif itype == "product":
        if not action.get("catalog_id") or not action.get("product_retailer_id"):
            raise GraphError(100, "interactive.action needs catalog_id and product_retailer_id")
    elif itype == "product_list":
        if not (isinstance(header, dict) and header.get("type") == "text" and header.get("text")):
            raise GraphError(100, "interactive.header: a text header is required")
        sections = action.get("sections")
        if not action.get("catalog_id") or not isinstance(sections, list) or not sections:
            raise GraphError(100, "interactive.action needs catalog_id and sections")
        if len(sections) > 10:
            raise _invalid("Invalid number of sections. Max allowed: 10")
        items = [i for s in sections if isinstance(s, dict) for i in (s.get("product_items") or [])]
        if not items or not all(
            isinstance(i, dict) and i.get("product_retailer_id") for i in items
        ):
            raise GraphError(100, "interactive product_list sections need product_items")
        if len(items) > 30:
            raise _invalid("Invalid number of products. Max allowed products: 30")
    elif itype == "catalog_message" and action.get("name") != "catalog_message":
        raise GraphError(100, "interactive.action.name must be 'catalog_message'")


@dataclass
class Media:
    """A media file: what ``GET /{media-id}`` describes and its download URL serves."""

    id: str
    phone_number_id: str
    mime_type: str
    data: bytes

    def public(self, url: str) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": self.mime_type,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "file_size": len(self.data),
            "id": self.id,
        }


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
    at: float = field(default_factory=time.time)  # when it was accepted (Unix, sub-second)
    biz_opaque_callback_data: str | None = None
    timed_out: bool = False  # accepted, but answered after the client had given up


# Fault shortcuts: an HTTP status stands for the Meta error Meta answers with it.
FAULT_ALIASES = {500: 131000, 503: 2}
TIMEOUT = "timeout"
# Codes Meta reports in a "failed" status webhook after accepting the send, unless a rule says
# "sync": the per-user marketing limit (and the ones async_failures already covers).
WEBHOOK_BY_DEFAULT = frozenset({131049, 131026, 131047, 131050})
_RULE_FIELDS = {"code", "every", "probability", "seed", "times", "to", "mode", "delay_ms"}


@dataclass
class FaultRule:
    """One planned fault for a number's sends: every ``every``-th send the rule sees (or each with
    ``probability``, from a generator seeded with ``seed``), at most ``times`` times, only to
    ``to`` if given. ``code`` is a Meta error code (500 and 503 stand for 131000 and 2) or
    ``"timeout"``: the send is accepted and answered ``delay_ms`` later, after the client gave up.
    ``mode``: ``sync`` (error JSON on the send call) or ``webhook`` (accepted, then a ``failed``
    status webhook with the error), defaulting to how Meta reports the code."""

    code: int | str
    every: int = 1
    probability: float | None = None
    seed: int = 0
    times: int | None = None
    to: str | None = None
    mode: str = "sync"
    delay_ms: int = 35_000
    seen: int = 0  # sends this rule looked at
    fired: int = 0  # faults it caused
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def parse(cls, n: int, raw: Any) -> FaultRule:
        """A rule from its JSON (``ValueError`` naming the field on anything wrong)."""
        where = f"rules[{n}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: an object is expected")
        unknown = set(raw) - _RULE_FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown fields: {', '.join(sorted(unknown))}")
        code = raw.get("code")
        if code != TIMEOUT:
            if isinstance(code, bool) or not isinstance(code, int):
                raise ValueError(f'{where}.code: a Meta error code, 500, 503 or "timeout"')
            code = FAULT_ALIASES.get(code, code)
            if code not in ERRORS:
                raise ValueError(f"{where}.code: {code} is not in the emulator's error table")
        every, times, seed = raw.get("every", 1), raw.get("times"), raw.get("seed", 0)
        probability, delay = raw.get("probability"), raw.get("delay_ms", 35_000)
        if not _int_at_least(every, 1):
            raise ValueError(f"{where}.every: an integer >= 1")
        if times is not None and not _int_at_least(times, 0):
            raise ValueError(f"{where}.times: an integer >= 0")
        if not _int_at_least(seed, 0):
            raise ValueError(f"{where}.seed: an integer >= 0")
        if not _int_at_least(delay, 0):
            raise ValueError(f"{where}.delay_ms: an integer >= 0")
        if probability is not None and not (
            isinstance(probability, (int, float))
            and not isinstance(probability, bool)
            and 0 <= probability <= 1
        ):
            raise ValueError(f"{where}.probability: a number from 0 to 1")
        to = raw.get("to")
        if to is not None:
            digits = str(to).lstrip("+")
            if not (isinstance(to, str) and digits.isascii() and digits.isdigit()):
                raise ValueError(f"{where}.to: the recipient's digits")
            to = digits
        default_mode = "webhook" if code in WEBHOOK_BY_DEFAULT else "sync"
        mode = raw.get("mode", default_mode)
        if mode not in ("sync", "webhook") or (code == TIMEOUT and mode != "sync"):
            raise ValueError(f"{where}.mode: sync or webhook (a timeout has no mode)")
        return cls(
            code=code,
            every=every,
            probability=float(probability) if probability is not None else None,
            seed=seed,
            times=times,
            to=to,
            mode=mode,
            delay_ms=delay,
            rng=random.Random(seed),  # noqa: S311 - a reproducible plan, not a secret
        )

    def take(self, wa_id: str) -> bool:
        """Whether this send gets the fault (counted: deterministic for a given sequence)."""
        if self.to is not None and self.to != wa_id:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.seen += 1
        if self.probability is not None:
            hit = self.rng.random() < self.probability
        else:
            hit = self.seen % self.every == 0
        if hit:
            self.fired += 1
        return hit

    def public(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "every": self.every,
            "probability": self.probability,
            "seed": self.seed,
            "times": self.times,
            "to": self.to,
            "mode": self.mode,
            "delay_ms": self.delay_ms,
            "seen": self.seen,
            "fired": self.fired,
        }


def _int_at_least(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


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
        self.read_marks: list[dict[str, str]] = []  # {"phone_number_id", "message_id"}, in order
        self.failures: list[int] = []  # error codes the next sends answer (control API)
        self.faults: dict[str, list[FaultRule]] = {}  # phone_number_id -> its planned faults
        # Every send the emulator answered (accepted or not), in order: for tests that count.
        self.attempts: list[dict[str, Any]] = []
        self.media: dict[str, Media] = {}  # uploads (and inbound media): id -> the file
        self.deliveries: list[dict[str, Any]] = []  # webhook attempts, for inspection
        self.wabas_seen: set[str] = set()  # WABAs already given their hello_world
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

    def fault_for(self, phone_id: str, wa_id: str) -> FaultRule | None:
        """The first of the number's rules that fires for this send, tried in order (a send
        one rule faults is not seen by the rules after it)."""
        for rule in self.faults.get(phone_id, []):
            if rule.take(wa_id):
                return rule
        return None

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

    def ensure_waba(self, waba_id: str) -> None:
        """A WABA the world has not seen gets Meta's ``hello_world`` sample template."""
        if waba_id not in self.wabas_seen:
            self.wabas_seen.add(waba_id)
            tpl = hello_world(waba_id)
            self.templates[tpl.id] = tpl

    def waba_templates(self, waba_id: str) -> list[Template]:
        return [t for t in self.templates.values() if t.waba_id == waba_id]

    def find_template(self, waba_id: str, name: str, language: str) -> Template | None:
        for tpl in self.waba_templates(waba_id):
            if tpl.name == name and tpl.language == language:
                return tpl
        return None
