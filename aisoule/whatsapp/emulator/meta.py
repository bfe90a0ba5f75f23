"""Meta's wire formats, as the emulator writes them: error JSON, ids, webhook envelopes."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import orjson
from starlette.responses import Response

ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# code -> (HTTP status, title, details) as Meta documents them.
ERRORS: dict[int, tuple[int, str, str]] = {
    190: (
        401,
        "Invalid OAuth access token",
        "Invalid OAuth access token - Cannot parse access token",
    ),
    100: (400, "Invalid parameter", "Invalid parameter"),
    130429: (
        400,
        "Rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "in a short period of time",
    ),
    131056: (
        400,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time",
    ),
    131047: (
        400,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    131026: (400, "Message undeliverable", "Message Undeliverable."),
    131050: (
        400,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
        "messages on WhatsApp from your business",
        "The recipient has chosen to stop receiving marketing messages from your business.",
    ),
    131000: (500, "Something went wrong", "Message failed to send because of an unknown error."),
    131031: (
        403,
        "Business Account locked",
        "The WhatsApp Business Account associated with the app has been locked.",
    ),
    368: (
        403,
        "Temporarily blocked for policies violations",
        "The WhatsApp Business Account associated with the app has been restricted or disabled "
        "for violating a platform policy.",
    ),
    80007: (400, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
    132000: (
        400,
        "Number of parameters does not match the expected number of params",
        "Number of parameters does not match the expected number of params",
    ),
    132001: (
        404,
        "Template name does not exist in the translation",
        "template name does not exist in the translation",
    ),
    # The rows below follow Meta's error table (developers.facebook.com/documentation/
    # business-messaging/whatsapp/support/error-codes): code, HTTP status, title, description.
    131008: (400, "Required parameter is missing", "The request is missing a required parameter."),
    131009: (400, "Parameter value is not valid", "One or more parameter values are invalid."),
    131051: (400, "Unsupported message type", "Unsupported message type."),
    131053: (400, "Media upload error", "Unable to upload the media used in the message."),
    132005: (400, "Translated text too long", "Translated text is too long."),
    132007: (
        400,
        "Template Format Character Policy Violated",
        "Template content violates a WhatsApp policy.",
    ),
    132012: (
        400,
        "Template Parameter Format Mismatch",
        "Variable parameter values formatted incorrectly.",
    ),
    132015: (
        400,
        "Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
    ),
    132016: (
        400,
        "Template is Disabled",
        "Template has been paused too many times due to low quality and is now permanently "
        "disabled.",
    ),
    # Per-user marketing limit: Meta usually reports it in a "failed" status webhook after
    # accepting the send (wait at least 24 h before sending that template again).
    131049: (
        400,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    ),
    # Meta's transient server errors: "API Service" (HTTP 503) and "Service unavailable".
    2: (503, "API Service", "Temporary due to downtime or due to being overloaded."),
    131016: (500, "Service unavailable", "A service is temporarily unavailable."),
    # Graph API's own: a path the API does not have. Its message has no "(#code)" title.
    2500: (400, "Unknown path components", "Unknown path components"),
}

# Codes whose body is Graph's plain form: the message is the details, no WhatsApp error_data.
_PLAIN = {190, 2500}


class GraphError(Exception):
    """Raised inside the emulator; rendered as Meta's error JSON."""

    def __init__(
        self,
        code: int,
        details: str | None = None,
        *,
        subcode: int | None = None,
        status: int | None = None,
    ) -> None:
        default_status, title, default_details = ERRORS[code]
        super().__init__(f"({code}) {title}")
        self.code = code
        self.status = status or default_status
        self.title = title
        self.details = details or default_details
        self.subcode = subcode

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": f"(#{self.code}) {self.title}",
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
            "fbtrace_id": fbtrace_id(),
        }
        if self.code in _PLAIN:  # token and path errors carry no WhatsApp error_data
            err["message"] = self.details
            del err["error_data"]
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        return {"error": err}

    def status_error(self) -> dict[str, Any]:
        """The ``errors[]`` item of a ``failed`` status webhook."""
        return {
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": ERROR_HREF,
        }


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def wamid() -> str:
    """A WhatsApp message id: ``wamid.`` and base64, as Meta's look."""
    return (
        "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18\x12" + secrets.token_bytes(18)).decode()
    )


def numeric_id() -> str:
    return str(secrets.randbelow(9 * 10**14) + 10**14)


def bsuid(waba_id: str, wa_id: str) -> str:
    """A stable business-scoped user id (``CC.`` + alphanumerics), as Meta sends since 2026."""
    digest = hashlib.sha256(f"{waba_id}:{wa_id}".encode()).hexdigest()
    return "US." + str(int(digest[:16], 16))


def now_ts() -> str:
    return str(int(time.time()))


def envelope(
    waba_id: str, field: str, value: dict[str, Any], *, with_time: bool = False
) -> dict[str, Any]:
    """A webhook body; WABA-level fields (template updates) carry the entry's ``time``."""
    entry: dict[str, Any] = {"id": waba_id}
    if with_time:
        entry["time"] = int(time.time())
    entry["changes"] = [{"value": value, "field": field}]
    return {"object": "whatsapp_business_account", "entry": [entry]}


def messages_value(display_phone_number: str, phone_number_id: str, **parts: Any) -> dict[str, Any]:
    """A ``messages`` field value: metadata plus ``statuses`` or ``contacts`` and ``messages``."""
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
        **parts,
    }
