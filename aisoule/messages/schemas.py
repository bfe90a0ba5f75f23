"""Messages: the send request both surfaces accept, and a message as each surface shows it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aisoule.contacts.schemas import ContactRef, v1_id
from aisoule.kit.time import iso_z
from aisoule.kit.validation import InputModel
from aisoule.models import Message

MessageType = Literal["text", "template", "image", "document", "audio", "video", "interactive"]
MEDIA_TYPES = ("image", "document", "audio", "video")
INTERACTIVE_TYPES = frozenset({"button", "list", "cta_url", "flow", "product", "product_list"})


class TextPayload(InputModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = False


class TemplatePayload(InputModel):
    """A template send. ``components`` is Meta's format; ``parameters`` is a shorthand for the
    body: a list for positional ({{1}}, {{2}}) or an object for named ({{first_name}})."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(default="en_US", min_length=2, max_length=15)
    components: list[dict[str, Any]] | None = None
    parameters: list[str] | dict[str, str] | None = None

    @field_validator("language", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return value.get("code") if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _one(self) -> TemplatePayload:
        if self.components is not None and self.parameters is not None:
            raise ValueError("give components or parameters, not both")
        return self


class MediaPayload(InputModel):
    model_config = ConfigDict(extra="forbid")
    link: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    id: str | None = Field(default=None, max_length=128)
    caption: str | None = Field(default=None, max_length=1024)
    filename: str | None = Field(default=None, max_length=240)
    mime_type: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> MediaPayload:
        if (self.link is None) == (self.id is None):
            raise ValueError("give exactly one of link and id")
        return self


class MessageSend(InputModel):
    """POST /api/messages/send and POST /v1/messages."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"to": "+919876543210", "type": "text", "text": {"body": "Hello from aisoule"}},
                {
                    "to": "+919876543210",
                    "type": "template",
                    "template": {
                        "name": "order_update",
                        "language": "en_US",
                        "parameters": ["Priya", "#1042"],
                    },
                },
            ]
        },
    )

    to: str = Field(
        min_length=1,
        max_length=64,
        description="A phone number with country code, or a contact id (uuid or cnt_…)",
    )
    account_id: str | None = Field(default=None, description="Default: the workspace's default")
    type: MessageType = "text"
    text: TextPayload | str | None = None
    template: TemplatePayload | None = None
    image: MediaPayload | None = None
    document: MediaPayload | None = None
    audio: MediaPayload | None = None
    video: MediaPayload | None = None
    interactive: dict[str, Any] | None = None

    @field_validator("interactive")
    @classmethod
    def _interactive(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """The shape Meta requires of every interactive message (the rest is Meta's to judge)."""
        if value is None:
            return value
        kind = value.get("type")
        if kind not in INTERACTIVE_TYPES:
            raise ValueError(f"type must be one of {', '.join(sorted(INTERACTIVE_TYPES))}")
        body = value.get("body")
        if kind not in ("product",) and not (
            isinstance(body, dict) and isinstance(body.get("text"), str) and body["text"].strip()
        ):
            raise ValueError("body.text is required")
        action = value.get("action")
        if not isinstance(action, dict):
            raise ValueError("action is required")
        if kind == "button":
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                raise ValueError("action.buttons must hold 1 to 3 reply buttons")
        if kind == "list":
            sections = action.get("sections")
            if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
                raise ValueError("action.sections must hold 1 to 10 sections")
        return value

    @model_validator(mode="after")
    def _payload_matches_type(self) -> MessageSend:
        present = [
            k
            for k in ("text", "template", *MEDIA_TYPES, "interactive")
            if getattr(self, k) is not None
        ]
        if self.type not in present:
            raise ValueError(f"{self.type}: a {self.type} message needs a '{self.type}' object")
        extra = [k for k in present if k != self.type]
        if extra:
            raise ValueError(f"{extra[0]}: not allowed in a {self.type} message")
        return self


class ErrorOut(BaseModel):
    code: int | str | None
    title: str | None
    details: str | None
    retryable: bool


class StatusOut(BaseModel):
    status: str
    at: str
    error: ErrorOut | None = None


class MessageOut(BaseModel):
    id: str
    account_id: str
    contact_id: str | None
    direction: str
    type: str
    to: str | None
    from_: str | None = Field(default=None, alias="from")
    status: str
    wamid: str | None
    content: dict[str, Any]
    preview: str | None
    error: ErrorOut | None
    attempts: int = Field(description="Sends to Meta so far (retryable errors are retried)")
    statuses: list[StatusOut] | None = None
    created_at: str
    updated_at: str


class Queued(BaseModel):
    id: str
    status: Literal["queued"]


class QueuedData(BaseModel):
    message: Queued


class MessageData(BaseModel):
    message: MessageOut


class MessageList(BaseModel):
    messages: list[MessageOut]
    total: int
    page: int
    per_page: int


# --- representations (plain dicts, rendered by ORJSONResponse; MessageOut documents them) ---

# Meta's envelope keys, which say nothing a message's own fields do not.
_ENVELOPE_KEYS = frozenset(
    {"messaging_product", "recipient_type", "to", "from", "id", "timestamp"}
    | {"biz_opaque_callback_data"}  # our own reference for Meta's status webhooks
)


def _message(
    message: Message, contact_id: str | None, statuses: list[dict[str, Any]] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(message.id),
        "account_id": str(message.account_id),
        "contact_id": contact_id,
        "direction": message.direction,
        "type": message.type,
        # The customer's number (E.164 with +) on their side of the message; ours is the account's.
        "to": message.phone if message.direction == "outbound" else None,
        "from": message.phone if message.direction == "inbound" else None,
        "status": message.status,
        "wamid": message.wamid,
        "content": {k: v for k, v in message.payload.items() if k not in _ENVELOPE_KEYS},
        "preview": message.preview,
        "error": message.error,
        "attempts": message.attempts,
        "created_at": iso_z(message.created_at),
        "updated_at": iso_z(message.updated_at),
    }
    if statuses is not None:
        out["statuses"] = statuses
    return out


def _ref(message: Message, contacts: Mapping[int, ContactRef]) -> ContactRef | None:
    return contacts.get(message.contact_id) if message.contact_id is not None else None


def api_message(
    message: Message,
    contacts: Mapping[int, ContactRef],
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message on /api: its contact by uuid, as GET /api/contacts/{id} takes it.
    ``contacts`` from contacts.service.refs()."""
    ref = _ref(message, contacts)
    return _message(message, None if ref is None else str(ref.uuid), statuses)


def v1_message(
    message: Message,
    contacts: Mapping[int, ContactRef],
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A message on /v1: its contact by ``cnt_`` id, as GET /v1/contacts/{id} takes it.
    ``contacts`` from contacts.service.refs()."""
    ref = _ref(message, contacts)
    return _message(message, None if ref is None else v1_id(ref.number), statuses)
