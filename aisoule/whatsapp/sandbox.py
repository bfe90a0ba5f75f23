"""``SandboxProvider``: the WhatsApp provider for sandbox numbers, served by the bundled emulator.

The emulator speaks Meta's wire format, so this is the Cloud API client pointed at it, plus the
one thing Meta has no API for: the control call (``POST /_emulator/numbers``) that makes the
emulator host a number. It talks to the emulator over HTTP like any client and imports none of
its code; ``whatsapp.emulator`` is the emulator itself.
"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp

from aisoule.whatsapp.cloud.client import CloudAPIClient
from aisoule.whatsapp.provider import MetaAPIError, PhoneNumber, ProviderUnavailable

CONTROL_TIMEOUT = aiohttp.ClientTimeout(total=10)


class SandboxProvider(CloudAPIClient):
    """Implements ``WhatsAppProvider`` against the emulator (one per process, from the pool)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The emulator keeps its numbers in memory; those it learnt from this process.
        self._registered: set[str] = set()

    async def ensure_number(self, number: PhoneNumber) -> None:
        """(Re)register the number once per process, with its own app secret, so that the
        emulator signs its webhooks with it. Idempotent at the emulator, which keeps a number's
        first own secret."""
        if number.phone_number_id in self._registered:
            return
        body: dict[str, Any] = {
            "phone_number_id": number.phone_number_id,
            "waba_id": number.waba_id,
            "display_phone_number": number.display_phone_number,
            "verified_name": number.verified_name,
        }
        if number.app_secret:
            body["app_secret"] = number.app_secret
        url = f"{self.base_url}/_emulator/numbers"
        try:
            async with self.session.post(url, json=body, timeout=CONTROL_TIMEOUT) as resp:
                if 400 <= resp.status < 500:
                    # The number's ids or display number do not fit the emulator: the caller's input.
                    answer: Any = None
                    with contextlib.suppress(ValueError):
                        answer = await resp.json(content_type=None)
                    reason = answer.get("error") if isinstance(answer, dict) else None
                    raise MetaAPIError(
                        http_status=400,
                        code=100,
                        message=f"the emulator refused this number: {reason or resp.status}",
                    )
                if resp.status >= 300:
                    raise ProviderUnavailable(f"the emulator answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(
                f"the emulator at {self.base_url} is unreachable: {exc!r}"
            ) from exc
        self._registered.add(number.phone_number_id)

    async def simulate_inbound(
        self, phone_number_id: str, wa_id: str, name: str, text: str
    ) -> None:
        """The emulator's ``POST /_emulator/inbound``: the customer's message arrives as Meta's
        signed webhook, a moment later."""
        body = {"phone_number_id": phone_number_id, "from": wa_id, "name": name, "text": text}
        url = f"{self.base_url}/_emulator/inbound"
        try:
            async with self.session.post(url, json=body, timeout=CONTROL_TIMEOUT) as resp:
                if resp.status >= 300:
                    raise ProviderUnavailable(f"the emulator answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(
                f"the emulator at {self.base_url} is unreachable: {exc!r}"
            ) from exc
