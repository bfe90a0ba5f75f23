"""The one interface aisoule sends WhatsApp through, and Meta's error model.

Two implementations speak the same wire format: ``cloud.client.CloudAPIClient`` against
graph.facebook.com, and ``sandbox.SandboxProvider`` (the same client, plus the control call that
registers a number) against the bundled emulator. ``pool.ProviderPool.resolve`` picks one by an
account's provider kind: callers never choose between them by URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class ErrorClass(StrEnum):
    retryable = "retryable"  # try again later (pacing, transient Meta trouble)
    permanent = "permanent"  # this message will never go; do not retry it
    account = "account"  # the sender account needs a human (token, lock, block)


# Meta's Cloud API error codes -> what a sender should do about them. One table, one place.
ERROR_CLASSES: dict[int, ErrorClass] = {
    130429: ErrorClass.retryable,  # throughput reached for the phone number
    131056: ErrorClass.retryable,  # pair rate: too many messages to the same recipient
    80007: ErrorClass.retryable,  # rate limit hit (WABA)
    131000: ErrorClass.retryable,  # something went wrong
    131001: ErrorClass.retryable,  # generic
    131002: ErrorClass.retryable,  # generic
    2: ErrorClass.retryable,  # API Service: downtime or overload (HTTP 503)
    131016: ErrorClass.retryable,  # service temporarily unavailable
    133004: ErrorClass.retryable,  # server temporarily unavailable
    131049: ErrorClass.retryable,  # per-user marketing limit: no sooner than 24 h, a few times
    131047: ErrorClass.permanent,  # re-engagement: more than 24 h since the customer wrote
    131026: ErrorClass.permanent,  # message undeliverable (not on WhatsApp, old app, ...)
    131050: ErrorClass.permanent,  # user stopped marketing messages
    132000: ErrorClass.permanent,  # template parameter count mismatch
    132001: ErrorClass.permanent,  # template does not exist (name or language)
    100: ErrorClass.permanent,  # invalid parameter
    190: ErrorClass.account,  # access token expired or invalid
    131031: ErrorClass.account,  # business account locked
    368: ErrorClass.account,  # temporarily blocked for policy violations
}


def classify(code: int | None, http_status: int) -> ErrorClass:
    """The table above; an unknown code is retryable on a 5xx answer, permanent otherwise."""
    if code is not None and code in ERROR_CLASSES:
        return ERROR_CLASSES[code]
    return ErrorClass.retryable if http_status >= 500 else ErrorClass.permanent


class ProviderKind(StrEnum):
    """Where an account's number lives (``WhatsAppAccount.provider``)."""

    cloud_api = "cloud_api"  # Meta's Graph API
    emulator = "emulator"  # the bundled emulator: a sandbox number


class WhatsAppError(Exception):
    """Base of the provider errors."""


class ProviderOff(WhatsAppError):
    """This server does not serve that provider kind (the emulator is off, or the kind is unknown)."""


class MetaAPIError(WhatsAppError):
    """An error answer from the Graph API, with Meta's fields kept as sent."""

    def __init__(
        self,
        *,
        http_status: int,
        code: int | None,
        message: str,
        error_subcode: int | None = None,
        title: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(f"({code}) {message}" + (f": {details}" if details else ""))
        self.http_status = http_status
        self.code = code
        self.message = message
        self.error_subcode = error_subcode
        self.title = title
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.type = type
        self.classification = classify(code, http_status)

    @property
    def retryable(self) -> bool:
        return self.classification is ErrorClass.retryable

    @classmethod
    def from_response(cls, http_status: int, body: Any) -> MetaAPIError:
        """Build from Meta's ``{"error": {...}}`` body; any other body keeps the HTTP status only."""
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return cls(http_status=http_status, code=None, message=f"HTTP {http_status}")
        data = err.get("error_data")
        return cls(
            http_status=http_status,
            code=_int(err.get("code")),
            message=str(err.get("message") or f"HTTP {http_status}"),
            error_subcode=_int(err.get("error_subcode")),
            title=err.get("error_user_title"),
            details=data.get("details") if isinstance(data, dict) else None,
            fbtrace_id=err.get("fbtrace_id"),
            type=err.get("type"),
        )


class SendOutcomeUnknown(WhatsAppError):
    """The request left but no answer came: Meta may or may not have accepted the message.

    The send takes no idempotency key, so the caller must not resend blindly; status webhooks
    (or their absence) settle the outcome.
    """


class MediaTooLarge(WhatsAppError):
    """A media file larger than the caller accepts (the download stopped there)."""


class ProviderUnavailable(WhatsAppError):
    """The request never reached Meta (connection refused, DNS): safe to retry."""


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """Meta's answer to a send: the message id (``wamid.``) and the recipient's WhatsApp id."""

    message_id: str
    wa_id: str | None
    input: str | None
    message_status: str | None = None  # e.g. "accepted" / "held_for_quality_assessment"


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A business number as Meta describes it, with the app secret its webhooks are signed with:
    what a provider that keeps its numbers itself (the emulator) needs to serve one."""

    phone_number_id: str
    waba_id: str
    display_phone_number: str  # digits, no "+"
    verified_name: str
    app_secret: str | None = None


class WhatsAppProvider(Protocol):
    """What aisoule needs from WhatsApp. ``payload`` is Meta's message JSON as documented."""

    base_url: str  # where it talks to (named in error messages)

    async def ensure_number(self, number: PhoneNumber) -> None:
        """Make sure the provider serves this number before it is read or sent from. Meta's
        numbers are made in Meta's own tools (a no-op); the emulator keeps them in memory and
        learns them by a control call. ``MetaAPIError`` (code 100) when the number does not fit
        the provider, ``ProviderUnavailable`` when it cannot be reached."""
        ...

    async def send_message(
        self, phone_number_id: str, payload: dict[str, Any], *, access_token: str | None = None
    ) -> SentMessage: ...

    async def simulate_inbound(
        self, phone_number_id: str, wa_id: str, name: str, text: str
    ) -> None:
        """A customer writes to the number: the sandbox's control call (the dashboard's "a
        customer writes" button). Meta has no such call: ``ProviderOff`` there."""
        ...

    async def mark_read(
        self, phone_number_id: str, message_id: str, *, access_token: str | None = None
    ) -> bool: ...

    async def get_phone_number(
        self, phone_number_id: str, *, access_token: str | None = None
    ) -> dict[str, Any]: ...

    async def list_templates(
        self, waba_id: str, *, access_token: str | None = None, **params: Any
    ) -> list[dict[str, Any]]: ...

    async def create_template(
        self, waba_id: str, template: dict[str, Any], *, access_token: str | None = None
    ) -> dict[str, Any]: ...

    async def delete_template(
        self,
        waba_id: str,
        name: str,
        *,
        hsm_id: str | None = None,
        access_token: str | None = None,
    ) -> bool: ...

    async def upload_media(
        self,
        phone_number_id: str,
        data: bytes,
        mime_type: str,
        filename: str = "file",
        *,
        access_token: str | None = None,
    ) -> str:
        """``POST /{phone-number-id}/media``: Meta keeps the file (30 days) and answers its id,
        which a message then names (``image: {"id": ...}``)."""
        ...

    async def download_media(
        self,
        media_id: str,
        *,
        max_bytes: int,
        phone_number_id: str | None = None,
        access_token: str | None = None,
    ) -> tuple[bytes, str]:
        """A media id (an inbound message's, or an upload's): ``GET /{media-id}`` answers a URL
        valid for 5 minutes, whose GET with the same token answers the file; (bytes, MIME
        type). ``MediaTooLarge`` past ``max_bytes``."""
        ...

    async def close(self) -> None: ...
