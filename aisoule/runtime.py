"""What the process holds: settings, database, secrets, WhatsApp providers, pacing.

One ``Runtime`` per process (the server's lifespan, ``aisoule worker`` or a CLI command builds
it). It is reached one way per kind of code:

- request code (endpoints, request dependencies) takes it as ``rt: RuntimeDep``
  (``aisoule.dependencies``: ``request.app.state.runtime``), never ``current()``;
- services take it (or the pieces they need) as an argument, never look it up;
- tasks and the reconciler, which run with no request, use ``current()``/``maybe_current()``
  (the latter is None while the process shuts down);
- ``config.get_settings()`` is called at process start and in CLI commands only; after that
  the settings are ``rt.settings`` (the same object the app keeps as ``app.state.settings``
  beside the request-only pieces its auth and rate-limit dependencies read: limiter,
  throttles, API key cache, sessionmaker).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisoule.config import Settings
from aisoule.kit import http
from aisoule.kit.crypto import derive_key
from aisoule.whatsapp.pacing import Pacer
from aisoule.whatsapp.pool import ProviderPool


@dataclass
class Runtime:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    providers: ProviderPool
    sealing_key: bytes  # encrypts WhatsApp access tokens and app secrets at rest
    lookup_key: bytes  # HMAC key for verify-token lookups
    # Credentials of the emulator's sandbox (AISOULE_EMULATOR_ACCESS_TOKENS / _APP_SECRET).
    sandbox_token: str | None = None
    sandbox_app_secret: str | None = None
    pacer: Pacer | None = None  # per sender number throughput (None: no pacing)
    # What URLs that users supply may reach (kit/http); see outbound_policy.
    http_policy: http.Policy = field(default_factory=http.Policy)


def outbound_policy(settings: Settings) -> http.Policy:
    """Public addresses, the operator's allowed networks, and the emulator's own URL (the
    embedded one is this server on 127.0.0.1: its /emulator paths only, not the rest of it)."""
    emulator = settings.emulator_url
    return http.Policy(
        allow_networks=http.parse_networks(settings.http_allow_private_networks),
        trusted_prefixes=(emulator,) if emulator else (),
        timeout=settings.http_timeout_seconds,
    )


def sealing_key(secret: str) -> bytes:
    return derive_key(secret, "aisoule/whatsapp-secrets/v1")


def lookup_key(secret: str) -> bytes:
    return derive_key(secret, "aisoule/whatsapp-verify-token/v1")


def build(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Runtime:
    from aisoule.whatsapp.emulator.settings import EmulatorSettings

    secret = settings.secret()
    emu = EmulatorSettings()
    tokens = sorted(emu.tokens())
    return Runtime(
        settings=settings,
        sessionmaker=sessionmaker,
        providers=ProviderPool(settings),
        sealing_key=sealing_key(secret),
        lookup_key=lookup_key(secret),
        sandbox_token=tokens[0] if tokens else None,
        sandbox_app_secret=emu.app_secret,
        pacer=Pacer(settings.redis_url),
        http_policy=outbound_policy(settings),
    )


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def maybe_current() -> Runtime | None:
    return _current


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no runtime installed in this process")
    return _current
