"""The emulator as a FastAPI app: the Graph API parts aisoule uses, plus a control API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from aisoule.whatsapp import media as media_limits
from aisoule.whatsapp.emulator.meta import (
    ERRORS,
    GraphError,
    bsuid,
    envelope,
    json_response,
    messages_value,
    now_ts,
    numeric_id,
    wamid,
)
from aisoule.whatsapp.emulator.settings import EmulatorSettings
from aisoule.whatsapp.emulator.state import (
    MEDIA_TYPES,
    TIMEOUT,
    FaultRule,
    Media,
    Number,
    Sent,
    Template,
    World,
    check_template_send,
    check_template_status,
    new_template,
    validate_message,
)
from aisoule.whatsapp.emulator.webhooks import WebhookSender

_VERSION = re.compile(r"^v\d+\.\d+$")
_NUMBER_FIELDS = (
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "verified_name",
    "app_secret",
)


class Emulator:
    """One emulated Meta: settings (changed live), the in-memory world and webhook delivery."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.world = World()
        self.sync_settings_number()
        self.webhooks = WebhookSender(
            lambda: self.settings, lambda d: self.world.deliveries.append(d)
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reset(self) -> None:
        """Forget everything: the world, pending webhooks and template approvals.

        Returns only once no webhook of the old world can still arrive (a POST already on
        the wire is let finish), so a test that resets and clears its receiver needs no sleep.
        """
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.drain_and_stop()
        self.world = World()
        self.sync_settings_number()

    def sync_settings_number(self, previous_id: str | None = None) -> None:
        """The settings' number is always registered, as the settings say now."""
        s = self.settings
        if previous_id is not None and previous_id != s.phone_number_id:
            self.world.numbers.pop(previous_id, None)
        self.world.numbers[s.phone_number_id] = Number(
            phone_number_id=s.phone_number_id,
            waba_id=s.waba_id,
            display_phone_number=s.display_phone_number,
            verified_name=s.verified_name,
            quality_rating=s.quality_rating,
        )
        self.world.ensure_waba(s.waba_id)

    def register_number(self, body: dict[str, Any]) -> tuple[Number, bool]:
        """Register a number (``ValueError`` on a bad field); answers it and whether it is new."""
        unknown = set(body) - set(_NUMBER_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        for key in ("phone_number_id", "waba_id"):
            value = body.get(key)
            if value is not None and not (
                isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20
            ):
                raise ValueError(f"{key} must be a string of digits")
        display = body.get("display_phone_number")
        if display is not None:
            digits = display.removeprefix("+") if isinstance(display, str) else ""
            if not (digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15):
                raise ValueError("display_phone_number must be 8 to 15 digits")
            display = digits
        name = body.get("verified_name")
        if name is not None and not (isinstance(name, str) and name.strip() and len(name) <= 256):
            raise ValueError("verified_name must be a non-empty string")
        secret = body.get("app_secret")
        if secret is not None and not (isinstance(secret, str) and 1 <= len(secret) <= 256):
            raise ValueError("app_secret must be a string of 1 to 256 characters")
        world = self.world
        phone_id, waba_id = body.get("phone_number_id"), body.get("waba_id")
        if phone_id is not None and phone_id in world.numbers:
            known = world.numbers[phone_id]
            if known.app_secret is None and secret:  # a number's first own secret; never replaced
                known.app_secret = secret
            return known, False
        if phone_id is not None and phone_id in world.waba_ids():
            raise ValueError(f"phone_number_id {phone_id} is already a WABA id")
        if waba_id is not None and waba_id in world.numbers:
            raise ValueError(f"waba_id {waba_id} is already a phone_number_id")
        phone_id = phone_id or world.fresh_id()
        waba_id = waba_id or world.fresh_id()
        number = Number(
            phone_number_id=phone_id,
            waba_id=waba_id,
            display_phone_number=display or world.fresh_display(),
            verified_name=name or "aisoule sandbox",
            app_secret=secret or None,
        )
        world.numbers[phone_id] = number
        world.ensure_waba(waba_id)
        return number, True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.close()

    # -- checks shared by the Graph API routes ------------------------------------------------

    def authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.query_params.get("access_token")
        if not token:
            raise GraphError(190, "An active access token must be used to query information.")
        if token not in self.settings.tokens():
            raise GraphError(190)

    def phone(self, node_id: str, method: str) -> Number:
        """The registered number ``node_id`` names, or Meta's unknown-object error."""
        check_node(node_id, set(self.world.numbers), method)
        return self.world.numbers[node_id]

    def waba(self, node_id: str, method: str) -> str:
        """``node_id`` if it is the WABA of a registered number, or Meta's unknown-object error."""
        check_node(node_id, self.world.waba_ids(), method)
        return node_id

    def secret_of_waba(self, waba_id: str) -> str | None:
        """The app secret of the WABA's first number that has one (template webhooks)."""
        return next(
            (
                n.app_secret
                for n in self.world.numbers.values()
                if n.waba_id == waba_id and n.app_secret
            ),
            None,
        )

    def metadata_value(self, number: Number, **parts: Any) -> dict[str, Any]:
        return messages_value(number.display_phone_number, number.phone_number_id, **parts)

    # -- webhooks ---------------------------------------------------------------------------

    def status_webhooks(
        self, number: Number, sent: Sent, category: str, biz_data: str | None
    ) -> None:
        s = self.settings
        step = s.webhook_latency_ms / 1000
        if sent.error is not None:
            plan = [("failed", step)]
        else:
            names = ["sent", "delivered"] + (["read"] if s.auto_read else [])
            plan = [(name, step * (i + 1)) for i, name in enumerate(names)]
            if s.webhook_out_of_order:
                delays = [d for _, d in plan][::-1]
                plan = [(name, delays[i]) for i, (name, _) in enumerate(plan)]
        for status, delay in plan:
            item: dict[str, Any] = {
                "id": sent.id,
                "status": status,
                "timestamp": now_ts(),
                "recipient_id": sent.to,
                "recipient_user_id": bsuid(number.waba_id, sent.to),
            }
            if biz_data is not None:
                item["biz_opaque_callback_data"] = biz_data
            if sent.error is not None:
                item["errors"] = [sent.error]
            elif status in ("sent", "delivered"):
                item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category}
            sent.statuses.append(status)
            contact = {"wa_id": sent.to, "user_id": bsuid(number.waba_id, sent.to)}
            value = self.metadata_value(number, contacts=[contact], statuses=[item])
            self.webhooks.schedule(
                envelope(number.waba_id, "messages", value),
                delay,
                lane=conversation_lane(number.phone_number_id, sent.to),
                app_secret=number.app_secret,
            )

    async def approve_later(self, tpl: Template) -> None:
        await asyncio.sleep(self.settings.template_approval_seconds)
        if tpl.status != "PENDING" or tpl.id not in self.world.templates:
            return
        rejected = tpl.missing_examples()
        self.set_template_status(
            tpl, "REJECTED" if rejected else "APPROVED", "INVALID_FORMAT" if rejected else "NONE"
        )

    def set_template_status(self, tpl: Template, status: str, reason: str = "NONE") -> None:
        """Change a template's status and tell the app, with the fields Meta's
        ``message_template_status_update`` reference lists (developers.facebook.com/
        documentation/business-messaging/whatsapp/webhooks/reference/
        message_template_status_update)."""
        tpl.status, tpl.rejected_reason = status, reason
        value: dict[str, Any] = {
            "event": status,
            "message_template_id": int(tpl.id),
            "message_template_name": tpl.name,
            "message_template_language": tpl.language,
            "reason": reason,
            "message_template_category": tpl.category,
        }
        if status == "DISABLED":
            value["disable_info"] = {"disable_date": now_ts()}
        elif status == "PAUSED":
            value["other_info"] = {
                "title": "FIRST_PAUSE",
                "description": "Your WhatsApp message template has been paused for 3 hours "
                "because it had issues.",
            }
        elif status == "REJECTED" and reason == "INVALID_FORMAT":
            value["rejection_info"] = {
                "reason": "The template body has variables but no example values.",
                "recommendation": "Add an example for every variable and submit it again.",
            }
        self.webhooks.schedule(
            envelope(tpl.waba_id, "message_template_status_update", value, with_time=True),
            lane=f"waba:{tpl.waba_id}",
            app_secret=self.secret_of_waba(tpl.waba_id),
        )


def conversation_lane(phone_number_id: str, wa_id: str) -> str:
    """Webhooks about one conversation (inbound messages, statuses) arrive in order."""
    return f"{phone_number_id}:{wa_id}"


def check_node(node_id: str, known: Collection[str], method: str) -> None:
    if node_id not in known:
        raise GraphError(
            100,
            f"Unsupported {method} request. Object with ID '{node_id}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation.",
            subcode=33,
        )


def _emu(request: Request) -> Emulator:
    emu: Emulator = request.app.state.emulator
    return emu


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GraphError(100, "The request body is not valid JSON") from None


def _obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _b64(n: int) -> str:
    return base64.b64encode(str(n).encode()).decode()


def create_emulator_app(settings: EmulatorSettings | None = None) -> FastAPI:
    """Build the emulator. State lives in this app object, in memory, and dies with it."""
    emulator = Emulator(settings or EmulatorSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await emulator.close()

    app = FastAPI(title="aisoule WhatsApp Cloud API emulator", lifespan=lifespan, openapi_url=None)
    app.state.emulator = emulator

    @app.exception_handler(GraphError)
    async def graph_error(_: Request, exc: GraphError) -> Response:
        return json_response(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own 404 / 405 / 415 answered as Graph does: code 100 (unsupported
        # method) or 2500 (unknown path), HTTP 400, Meta's error JSON.
        if exc.status_code == 405:
            err = GraphError(100, f"Unsupported {request.method.lower()} request.")
        elif exc.status_code == 404:
            err = GraphError(2500, f"Unknown path components: {request.url.path}")
        else:
            err = GraphError(100, str(exc.detail), status=exc.status_code)
        return json_response(err.body(), err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        err = GraphError(100, f"Param {where} is not valid: {first.get('msg', 'invalid')}")
        return json_response(err.body(), err.status)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        # An emulator bug still answers like Meta does when it fails: code 131000, HTTP 500.
        err = GraphError(131000, f"emulator error: {exc!r}")
        return json_response(err.body(), err.status)

    _control_routes(app)
    _graph_routes(app)
    return app


def _control_routes(app: FastAPI) -> None:
    @app.get("/_emulator/health")
    async def health() -> Response:
        return json_response({"ok": True})

    @app.get("/_emulator/config")
    async def get_config(request: Request) -> Response:
        return json_response(_emu(request).settings.model_dump())

    @app.post("/_emulator/config")
    async def set_config(request: Request) -> Response:
        emu = _emu(request)
        patch = await _body(request)
        if not isinstance(patch, dict):
            return json_response({"error": "a JSON object of settings is expected"}, 422)
        previous_id = emu.settings.phone_number_id
        try:
            emu.settings = emu.settings.patched(patch)
        except KeyError as exc:
            return json_response({"error": f"unknown settings: {exc.args[0]}"}, 422)
        except ValueError as exc:  # pydantic ValidationError
            return json_response({"error": str(exc)}, 422)
        emu.sync_settings_number(previous_id)
        return json_response(emu.settings.model_dump())

    @app.get("/_emulator/numbers")
    async def list_numbers(request: Request) -> Response:
        return json_response({"data": [n.public() for n in _emu(request).world.numbers.values()]})

    @app.post("/_emulator/numbers")
    async def register_number(request: Request) -> Response:
        """Host another business number (and its WABA); idempotent on ``phone_number_id``."""
        body = await _body(request)
        if not isinstance(body, dict):
            return json_response({"error": "a JSON object is expected"}, 422)
        try:
            number, created = _emu(request).register_number(body)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 422)
        return json_response(number.public(), 201 if created else 200)

    @app.post("/_emulator/fail")
    async def fail_next(request: Request) -> Response:
        """The next ``count`` sends answer error ``code`` (e.g. 131000, 131031, 368, 80007)."""
        body = await _body(request)
        code = body.get("code") if isinstance(body, dict) else None
        count = body.get("count", 1) if isinstance(body, dict) else 0
        if code not in ERRORS or not isinstance(count, int) or count < 0:
            return json_response({"error": f"code must be one of {sorted(ERRORS)}"}, 422)
        _emu(request).world.failures.extend([code] * count)
        return json_response({"queued": _emu(request).world.failures})

    @app.post("/_emulator/faults")
    async def plan_faults(request: Request) -> Response:
        """Plan faults for one number's sends (replacing its earlier plan): see FaultRule."""
        emu = _emu(request)
        body = await _body(request)
        if not isinstance(body, dict):
            return json_response({"error": "a JSON object is expected"}, 422)
        unknown = set(body) - {"phone_number_id", "rules"}
        if unknown:
            return json_response({"error": f"unknown fields: {', '.join(sorted(unknown))}"}, 422)
        phone_id = body.get("phone_number_id", emu.settings.phone_number_id)
        if not isinstance(phone_id, str) or phone_id not in emu.world.numbers:
            return json_response({"error": f"phone_number_id: unknown number {phone_id!r}"}, 422)
        raw = body.get("rules")
        if not isinstance(raw, list):
            return json_response({"error": "rules: a list of rules is expected"}, 422)
        try:
            rules = [FaultRule.parse(n, r) for n, r in enumerate(raw)]
        except ValueError as exc:
            return json_response({"error": str(exc)}, 422)
        emu.world.faults[phone_id] = rules
        return json_response({"phone_number_id": phone_id, "rules": [r.public() for r in rules]})

    @app.get("/_emulator/faults")
    async def list_faults(request: Request) -> Response:
        faults = _emu(request).world.faults
        return json_response(
            {"data": {pid: [r.public() for r in rules] for pid, rules in faults.items()}}
        )

    @app.delete("/_emulator/faults")
    async def clear_faults(request: Request) -> Response:
        _emu(request).world.faults.clear()
        return json_response({"ok": True})

    @app.get("/_emulator/attempts")
    async def attempts(request: Request) -> Response:
        """Every send answered, in order: accepted, ``timeout`` or the error code."""
        pid = request.query_params.get("phone_number_id")
        rows = [
            a for a in _emu(request).world.attempts if pid is None or a["phone_number_id"] == pid
        ]
        return json_response({"data": rows})

    @app.get("/_emulator/accepted")
    async def accepted(request: Request) -> Response:
        """What the emulator accepted (timeouts included), and the duplicates among it: more
        than one accepted send to the same recipient with the same biz_opaque_callback_data."""
        q = request.query_params
        pid, to = q.get("phone_number_id"), q.get("to")
        sent = [
            m
            for m in _emu(request).world.sent
            if (pid is None or m.phone_number_id == pid) and (to is None or m.to == to)
        ]
        rows = [
            {
                "id": m.id,
                "phone_number_id": m.phone_number_id,
                "to": m.to,
                "biz_opaque_callback_data": m.biz_opaque_callback_data,
                "at": m.at,
                "timed_out": m.timed_out,
                "error_code": m.error.get("code") if m.error else None,
            }
            for m in sent
        ]
        counts: dict[tuple[str, str, str], int] = {}
        for m in sent:
            if m.biz_opaque_callback_data is not None:
                key = (m.phone_number_id, m.to, m.biz_opaque_callback_data)
                counts[key] = counts.get(key, 0) + 1
        duplicates = [
            {"phone_number_id": p, "to": t, "biz_opaque_callback_data": b, "count": n}
            for (p, t, b), n in counts.items()
            if n > 1
        ]
        return json_response({"data": rows, "duplicates": duplicates})

    @app.get("/_emulator/pairs")
    async def pairs(request: Request) -> Response:
        """Per (number, recipient): when each accepted send arrived and the shortest gap between
        two of them; and how many sends were refused with 131056 (the pair rate)."""
        world = _emu(request).world
        pid = request.query_params.get("phone_number_id")
        times: dict[tuple[str, str], list[float]] = {}
        for m in world.sent:
            if pid is None or m.phone_number_id == pid:
                times.setdefault((m.phone_number_id, m.to), []).append(m.at)
        data = []
        for (p, t), at in times.items():
            gaps = [b - a for a, b in itertools.pairwise(at)]
            data.append(
                {
                    "phone_number_id": p,
                    "to": t,
                    "count": len(at),
                    "times": at,
                    "min_gap_seconds": min(gaps) if gaps else None,
                }
            )
        refused = sum(
            1
            for a in world.attempts
            if a["answer"] == 131056 and (pid is None or a["phone_number_id"] == pid)
        )
        return json_response({"data": data, "pair_rate_refusals": refused})

    @app.post("/_emulator/reset")
    async def reset(request: Request) -> Response:
        await _emu(request).reset()
        return json_response({"ok": True})

    @app.get("/_emulator/messages")
    async def messages(request: Request) -> Response:
        to = request.query_params.get("to")
        sent = [asdict(m) for m in _emu(request).world.sent if to is None or m.to == to]
        return json_response({"data": sent})

    @app.get("/_emulator/reads")
    async def read_marks(request: Request) -> Response:
        """The read marks the business sent (POST /messages with status "read"), oldest first."""
        return json_response({"data": _emu(request).world.read_marks})

    @app.get("/_emulator/inbound")
    async def inbound_log(request: Request) -> Response:
        return json_response({"data": _emu(request).world.inbound})

    @app.get("/_emulator/media/{media_id}")
    async def download_media(media_id: str, request: Request) -> Response:
        """The URL ``GET /{media-id}`` answers: the file, for the same bearer token (as Meta's)."""
        emu = _emu(request)
        emu.authenticate(request)
        media = emu.world.media.get(media_id)
        if media is None:
            check_node(media_id, set(), "get")
        assert media is not None
        return Response(media.data, media_type=media.mime_type)

    @app.get("/_emulator/webhooks")
    async def webhooks(request: Request) -> Response:
        return json_response({"data": _emu(request).world.deliveries})

    @app.post("/_emulator/templates/{template_id}/status")
    async def force_template_status(template_id: str, request: Request) -> Response:
        emu = _emu(request)
        body = await _body(request)
        tpl = emu.world.templates.get(template_id)
        status = str(body.get("status", "")).upper() if isinstance(body, dict) else ""
        if tpl is None or status not in ("APPROVED", "REJECTED", "PAUSED", "DISABLED", "PENDING"):
            return json_response({"error": "unknown template or status"}, 422)
        emu.set_template_status(tpl, status, str(body.get("reason", "NONE")))
        return json_response(tpl.public())

    @app.post("/_emulator/inbound")
    async def inject_inbound(request: Request) -> Response:
        """A customer writes to the business: opens the 24 h window and sends the webhook."""
        emu = _emu(request)
        s = emu.settings
        body = await _body(request)
        sender = str(body.get("from", "")).lstrip("+") if isinstance(body, dict) else ""
        if not isinstance(body, dict) or not (sender.isascii() and sender.isdigit()):
            return json_response({"error": "'from' (the customer's number) is required"}, 422)
        phone_id = body.get("phone_number_id")
        if phone_id is None:
            phone_id = s.phone_number_id
        if not isinstance(phone_id, str) or phone_id not in emu.world.numbers:
            return json_response({"error": f"unknown phone_number_id {phone_id!r}"}, 422)
        number = emu.world.numbers[phone_id]
        wa_id = str(body["from"]).lstrip("+")
        kind = str(body.get("type", "text"))
        msg: dict[str, Any] = {"from": wa_id, "id": wamid(), "timestamp": now_ts()}
        context_id = body.get("context_id")
        if not context_id and kind in ("button_reply", "list_reply", "button"):
            # A reply to a button or list always quotes it: the latest message sent to this customer.
            mine = [m.id for m in emu.world.sent if m.to == wa_id and m.phone_number_id == phone_id]
            context_id = mine[-1] if mine else wamid()
        if context_id:
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        if kind == "text":
            msg |= {"type": "text", "text": {"body": str(body.get("text", ""))}}
        elif kind in ("button_reply", "list_reply"):
            reply = _obj(body, kind)
            if not reply.get("id") or not reply.get("title"):
                return json_response({"error": f"{kind} needs id and title"}, 422)
            msg |= {"type": "interactive", "interactive": {"type": kind, kind: reply}}
        elif kind == "button":
            button = _obj(body, "button")
            msg |= {
                "type": "button",
                "button": {"payload": button.get("payload", ""), "text": button.get("text", "")},
            }
        elif kind in MEDIA_TYPES:
            media = _obj(body, "media")
            # The customer's file is kept, so GET /{media-id} and its URL serve it as Meta does.
            stored = Media(
                id=str(media.get("id") or numeric_id()),
                phone_number_id=phone_id,
                mime_type=str(media.get("mime_type", "image/jpeg")),
                data=f"emulated {kind} {wa_id}".encode(),
            )
            emu.world.media[stored.id] = stored
            obj = {
                "mime_type": stored.mime_type,
                "sha256": media.get("sha256")
                or base64.b64encode(hashlib.sha256(stored.data).digest()).decode(),
                "id": stored.id,
            }
            obj |= {k: media[k] for k in ("caption", "filename") if k in media}
            msg |= {"type": kind, kind: obj}
        else:
            return json_response({"error": f"unsupported inbound type '{kind}'"}, 422)
        world = emu.world
        world.open_window(phone_id, wa_id)
        world.inbound_ids[msg["id"]] = phone_id
        world.inbound.append(msg)
        text = str(body.get("text", "")).strip().upper() if kind == "text" else ""
        if text == "STOP":
            world.opted_out.add((phone_id, wa_id))
        elif text == "START":
            world.opted_out.discard((phone_id, wa_id))
        contact = {
            "profile": {"name": str(body.get("name") or "WhatsApp User")},
            "wa_id": wa_id,
            "user_id": bsuid(number.waba_id, wa_id),
        }
        hook = envelope(
            number.waba_id,
            "messages",
            emu.metadata_value(number, contacts=[contact], messages=[msg]),
        )
        emu.webhooks.schedule(
            hook,
            s.webhook_latency_ms / 1000,
            lane=conversation_lane(phone_id, wa_id),
            app_secret=number.app_secret,
        )
        return json_response({"message": msg, "webhook": hook})


# Media types Meta's media upload accepts (Cloud API "Supported media types"); others: 131053.
UPLOAD_TYPES = frozenset(
    {
        "audio/aac",
        "audio/amr",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
        "text/plain",
        "application/pdf",
        "application/vnd.ms-powerpoint",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "video/3gpp",
    }
)


def _upload_limit(mime: str) -> int:
    """Meta's size limit of an uploaded file by its type: images 5 MB, audio and video 16 MB,
    documents 100 MB, stickers (webp) 500 KB."""
    if mime == "image/webp":
        return 500 * 1024
    for types, limit in media_limits.SUPPORTED.values():
        if mime in types:
            return limit
    return 100 * media_limits.MB


Handler = Callable[[Emulator, str, Request], Awaitable[Response]]


def _graph_routes(app: FastAPI) -> None:
    """Graph API paths, with or without a version prefix, dispatched by hand.

    Graph accepts ``/{node}/{edge}`` without a version (it then uses the oldest version still
    available), so ``/v23.0/123/messages`` and ``/123/messages`` are the same call. FastAPI's
    path parameters cannot tell ``/{version}/{node}`` from ``/{node}/{edge}``, hence one route.
    """
    edges: dict[tuple[str, str], Handler] = {
        ("POST", "messages"): _send_message,
        ("POST", "media"): _upload_media,
        ("GET", "message_templates"): _list_templates,
        ("POST", "message_templates"): _create_template,
        ("DELETE", "message_templates"): _delete_template,
    }
    known_edges = {edge for _, edge in edges}

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def graph(path: str, request: Request) -> Response:
        emu = _emu(request)
        parts = path.strip("/").split("/")
        if parts and _VERSION.match(parts[0]):
            parts = parts[1:]
        if not parts or not all(parts) or len(parts) > 2:
            raise GraphError(2500, f"Unknown path components: /{'/'.join(parts[1:] or parts)}")
        emu.authenticate(request)
        method = request.method
        if len(parts) == 1:
            return await _node(emu, parts[0], request)
        node, edge = parts
        handler = edges.get((method, edge))
        if handler is None:
            if edge in known_edges:
                check_node(node, set(), method.lower())  # Meta: unsupported <method> request
            raise GraphError(2500, f"Unknown path components: /{edge}")
        return await handler(emu, node, request)


async def _node(emu: Emulator, node_id: str, request: Request) -> Response:
    """``GET /{phone-number-id}``, ``GET /{media-id}`` and ``DELETE /{media-id}``."""
    method = request.method
    media = emu.world.media.get(node_id)
    if media is not None and method in ("GET", "DELETE"):
        owner = request.query_params.get("phone_number_id")
        if owner is not None and owner != media.phone_number_id:
            raise GraphError(
                100, f"Param phone_number_id {owner} does not own media {node_id}", subcode=33
            )
        if method == "DELETE":
            del emu.world.media[node_id]
            return json_response({"success": True})
        # root_path: where the emulator is mounted (/emulator inside ``aisoule serve``).
        root = request.scope.get("root_path", "").rstrip("/")
        url = f"{request.url.scheme}://{request.url.netloc}{root}/_emulator/media/{node_id}"
        return json_response(media.public(url))
    if method != "GET":
        check_node(node_id, set(), method.lower())
    number = emu.phone(node_id, "get")
    digits = number.display_phone_number
    node = {
        "verified_name": number.verified_name,
        "code_verification_status": "VERIFIED",
        "display_phone_number": f"+{digits[:-10]} {digits[-10:-7]}-{digits[-7:-4]}-{digits[-4:]}"
        if len(digits) > 10
        else digits,
        "quality_rating": number.quality_rating,
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
        "messaging_limit_tier": "TIER_1K",
        "id": number.phone_number_id,
    }
    fields = request.query_params.get("fields")
    if fields:
        wanted = {f.strip() for f in fields.split(",")} | {"id"}
        node = {k: v for k, v in node.items() if k in wanted}
    return json_response(node)


async def _send_message(emu: Emulator, phone_number_id: str, request: Request) -> Response:
    s = emu.settings
    number = emu.phone(phone_number_id, "post")
    payload = await _body(request)
    if isinstance(payload, dict) and payload.get("status") == "read":
        if payload.get("messaging_product") != "whatsapp":
            raise GraphError(100, "messaging_product must be 'whatsapp'")
        if emu.world.inbound_ids.get(str(payload.get("message_id"))) != phone_number_id:
            raise GraphError(100, "message_id: no such inbound message")
        emu.world.read_marks.append(
            {"phone_number_id": phone_number_id, "message_id": str(payload["message_id"])}
        )
        return json_response({"success": True})
    kind = validate_message(payload)
    to = str(payload["to"])
    wa_id = re.sub(r"\D", "", to)
    biz = payload.get("biz_opaque_callback_data")
    attempt: dict[str, Any] = {
        "phone_number_id": phone_number_id,
        "to": wa_id,
        "biz_opaque_callback_data": str(biz) if biz is not None else None,
        "at": time.time(),
        "answer": "accepted",
    }
    emu.world.attempts.append(attempt)
    try:
        sent, fault = _accept(emu, number, payload, kind, to, wa_id)
    except GraphError as exc:
        attempt["answer"] = exc.code
        raise
    attempt["id"] = sent.id
    message: dict[str, Any] = {"id": sent.id}
    if kind == "template":
        message["message_status"] = "accepted"
    delay = s.api_latency_ms
    if fault is not None and fault.code == TIMEOUT:
        # Accepted (its status webhooks are on their way), answered after the client gave up.
        attempt["answer"] = TIMEOUT
        sent.timed_out = True
        delay = max(delay, fault.delay_ms)
    if delay:
        await asyncio.sleep(delay / 1000)
    return json_response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [message],
        }
    )


def _accept(
    emu: Emulator, number: Number, payload: dict[str, Any], kind: str, to: str, wa_id: str
) -> tuple[Sent, FaultRule | None]:
    """Meta's checks in Meta's order, then the message is taken (or GraphError)."""
    s = emu.settings
    phone_number_id = number.phone_number_id
    if emu.world.failures:
        raise GraphError(emu.world.failures.pop(0))
    category = "service"
    failure: GraphError | None = None
    tpl: Template | None = None
    if kind == "template":
        spec = payload["template"]
        name, language = spec["name"], spec["language"]["code"]
        found = emu.world.find_template(number.waba_id, name, language)
        tpl = check_template_status(found, name, language)
        check_template_send(tpl, spec)
    fault = emu.world.fault_for(phone_number_id, wa_id)
    if fault is not None and fault.code != TIMEOUT and fault.mode == "sync":
        raise GraphError(int(fault.code))
    if not emu.world.take_throughput(phone_number_id, s.throughput_per_second):
        raise GraphError(130429)
    if not emu.world.take_pair(phone_number_id, wa_id, s.pair_burst, s.pair_period_seconds):
        raise GraphError(131056)
    if tpl is not None:
        category = tpl.category.lower()
        if tpl.category == "MARKETING" and (phone_number_id, wa_id) in emu.world.opted_out:
            failure = GraphError(131050)
    elif not emu.world.in_window(phone_number_id, wa_id, s.window_seconds):
        failure = GraphError(131047)
    if wa_id in s.unreachable():
        failure = GraphError(131026)
    if failure is not None and not s.async_failures:
        raise failure
    if fault is not None and fault.code != TIMEOUT:  # a webhook-mode fault: accepted, then failed
        failure = GraphError(int(fault.code))
    biz = payload.get("biz_opaque_callback_data")
    sent = Sent(
        id=wamid(),
        phone_number_id=phone_number_id,
        to=wa_id,
        type=kind,
        payload=payload,
        timestamp=now_ts(),
        error=failure.status_error() if failure else None,
        biz_opaque_callback_data=str(biz) if biz is not None else None,
    )
    emu.world.sent.append(sent)
    emu.status_webhooks(number, sent, category, sent.biz_opaque_callback_data)
    return sent, fault


async def _upload_media(emu: Emulator, phone_number_id: str, request: Request) -> Response:
    """``POST /{phone-number-id}/media``: multipart ``file`` + ``messaging_product``; ``{"id"}``."""
    emu.phone(phone_number_id, "post")
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise GraphError(100, "media upload must be multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + await request.body()
    )
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    product, upload = parts.get("messaging_product"), parts.get("file")
    if product is None or product.get_content().strip() != "whatsapp":
        raise GraphError(100, "messaging_product must be 'whatsapp'")
    if upload is None:
        raise GraphError(100, "The parameter file is required.")
    declared = parts.get("type")
    mime = declared.get_content().strip() if declared is not None else upload.get_content_type()
    if mime not in UPLOAD_TYPES:
        raise GraphError(
            131053,
            f"Param file must be a file with one of the following types: "
            f"{', '.join(sorted(UPLOAD_TYPES))}. Received file of type '{mime}'.",
        )
    data = upload.get_payload(decode=True)
    size, limit = len(data) if isinstance(data, bytes) else 0, _upload_limit(mime)
    if size > limit:
        raise GraphError(
            131053,
            f"Media upload error: a file of type '{mime}' may be at most {limit} bytes; this one "
            f"is {size} bytes.",
        )
    media = Media(
        id=numeric_id(),
        phone_number_id=phone_number_id,
        mime_type=mime,
        data=data if isinstance(data, bytes) else b"",
    )
    emu.world.media[media.id] = media
    return json_response({"id": media.id})


async def _list_templates(emu: Emulator, waba_id: str, request: Request) -> Response:
    emu.waba(waba_id, "get")
    q = request.query_params
    rows = [
        t.public()
        for t in emu.world.waba_templates(waba_id)
        if (not q.get("name") or q["name"] in t.name)
        and (not q.get("status") or t.status == q["status"].upper())
        and (not q.get("language") or t.language == q["language"])
        and (not q.get("category") or t.category == q["category"].upper())
    ]
    try:
        limit = max(1, min(int(q.get("limit", 25)), 1000))
        start = int(base64.b64decode(q["after"]).decode()) + 1 if q.get("after") else 0
    except (ValueError, TypeError):
        raise GraphError(100, "limit or after is not valid") from None
    page = rows[start : start + limit]
    body: dict[str, Any] = {"data": page}
    if page:
        body["paging"] = {"cursors": {"before": _b64(start), "after": _b64(start + len(page) - 1)}}
        if start + limit < len(rows):
            nxt = request.url.include_query_params(after=_b64(start + len(page) - 1))
            body["paging"]["next"] = str(nxt.remove_query_params("access_token"))
    return json_response(body)


async def _create_template(emu: Emulator, waba_id: str, request: Request) -> Response:
    emu.waba(waba_id, "post")
    tpl = new_template(waba_id, await _body(request))
    if emu.world.find_template(waba_id, tpl.name, tpl.language) is not None:
        raise GraphError(
            100, f"Content in this language ({tpl.language}) already exists", subcode=2388024
        )
    emu.world.templates[tpl.id] = tpl
    emu.spawn(emu.approve_later(tpl))
    return json_response({"id": tpl.id, "status": tpl.status, "category": tpl.category})


async def _delete_template(emu: Emulator, waba_id: str, request: Request) -> Response:
    emu.waba(waba_id, "delete")
    name, hsm_id = request.query_params.get("name"), request.query_params.get("hsm_id")
    if not name:
        raise GraphError(100, "name is required")
    doomed = [
        t.id
        for t in emu.world.waba_templates(waba_id)
        if t.name == name and (hsm_id is None or t.id == hsm_id)
    ]
    if not doomed:
        raise GraphError(100, f"Message template '{name}' not found")
    for tid in doomed:
        del emu.world.templates[tid]
    return json_response({"success": True})
