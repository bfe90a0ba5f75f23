"""The emulator's knobs: read from ``AISOULE_EMULATOR_*`` at start, changed live by the control API."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AISOULE_EMULATOR_", extra="ignore")

    # Bearer tokens the emulator accepts (comma-separated); anything else answers code 190.
    access_tokens: str = "emulator-token"
    # The sandbox account: one business account with one phone number.
    waba_id: str = "102290129340398"
    phone_number_id: str = "106540352242922"
    display_phone_number: str = "15550783881"
    verified_name: str = "aisoule sandbox"
    quality_rating: str = "GREEN"

    # Throughput per phone number (code 130429 beyond it), messages per rolling second.
    throughput_per_second: int = Field(default=80, ge=1)
    # Pair rate (code 131056): a burst of pair_burst messages to one recipient, then one per
    # pair_period_seconds, as Meta describes it (a token bucket).
    pair_burst: int = Field(default=45, ge=1)
    pair_period_seconds: float = Field(default=6.0, ge=0)
    # The customer-service window opened by an inbound message (code 131047 outside it).
    window_seconds: float = Field(default=24 * 3600, ge=0)
    # Recipients that are not on WhatsApp (comma-separated digits; code 131026).
    not_on_whatsapp: str = ""
    # Meta reports 131047 / 131026 / 131050 in a "failed" status webhook after accepting the
    # send (the default, as Meta does); false answers them synchronously as error JSON instead.
    async_failures: bool = True

    # Templates: PENDING for this long, then APPROVED (or REJECTED: a variable without example).
    template_approval_seconds: float = Field(default=1.0, ge=0)

    # Webhooks (Meta -> the app): where, signed with which app secret, how fast, how messy.
    webhook_url: str | None = None
    app_secret: str = "emulator-app-secret"  # noqa: S105 - a sandbox default
    webhook_latency_ms: int = Field(default=50, ge=0)  # between sent, delivered and read
    webhook_duplicates: bool = False  # deliver every webhook twice
    webhook_out_of_order: bool = False  # a message's statuses arrive read, delivered, sent
    webhook_retries: int = Field(default=3, ge=0)
    auto_read: bool = True  # recipients read what they get (statuses go on to "read")
    # Delay before the Graph API answers (to provoke client timeouts).
    api_latency_ms: int = Field(default=0, ge=0)

    def tokens(self) -> set[str]:
        return {t.strip() for t in self.access_tokens.split(",") if t.strip()}

    def unreachable(self) -> set[str]:
        return {n.strip().lstrip("+") for n in self.not_on_whatsapp.split(",") if n.strip()}

    def patched(self, patch: dict[str, Any]) -> EmulatorSettings:
        """A copy with ``patch`` applied and validated (unknown keys raise ``KeyError``)."""
        unknown = set(patch) - set(type(self).model_fields)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        # model_validate does not read the environment again; the patch wins.
        return type(self).model_validate({**self.model_dump(), **patch})
