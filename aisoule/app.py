"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from starlette.middleware.cors import CORSMiddleware

from aisoule import __version__, apidocs, errors, openapi, runtime
from aisoule.accounts import service as account_service
from aisoule.api import include_routers
from aisoule.api_keys import cache as key_cache
from aisoule.api_keys import service as key_service
from aisoule.api_keys import usage as key_usage
from aisoule.config import Settings, get_settings
from aisoule.dashboard import site as dashboard_site
from aisoule.db.engine import connect_driver, create_engine, create_sessionmaker, ping
from aisoule.idempotency import service as idempotency
from aisoule.kit import gctuning
from aisoule.kit.crypto import derive_key
from aisoule.kit.logging import configure_logging
from aisoule.kit.responses import ORJSONResponse
from aisoule.live import bus as live_bus
from aisoule.live import service as live
from aisoule.middleware import BodyGuardMiddleware, EdgeMiddleware
from aisoule.ratelimit.limiter import RateLimiter, Throttle, make_storage
from aisoule.worker.broker import Background

log = structlog.get_logger(__name__)

DESCRIPTION = (Path(__file__).parent / "openapi_description.md").read_text()
EXPOSED_HEADERS = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
    "Idempotent-Replayed",
]


@dataclass(frozen=True, slots=True)
class Throttles:
    login_account: Throttle
    login_ip: Throttle
    signup_ip: Throttle


async def _housekeeping(app: FastAPI, settings: Settings) -> None:
    """Flush API key usage every few seconds; purge expired idempotency keys every ten minutes."""
    last_purge = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(settings.usage_flush_seconds)
        await _flush_usage(app)
        if loop.time() - last_purge > 600:
            last_purge = loop.time()
            try:
                async with app.state.sessionmaker() as session:
                    await idempotency.purge_expired(session)
                    await live.purge_old(session)
                    await session.commit()
            except Exception:
                log.warning("idempotency_purge_failed", exc_info=True)


async def _flush_usage(app: FastAPI) -> None:
    counts = app.state.usage.take()
    if not counts:
        return
    try:
        async with app.state.sessionmaker() as session:
            await key_usage.flush(session, counts)
            await session.commit()
    except IntegrityError:
        log.warning("usage_flush_dropped", reason="key deleted")
    except Exception:
        log.warning("usage_flush_failed", exc_info=True)
        app.state.usage.give_back(counts)


async def _register_sandboxes(rt: runtime.Runtime) -> None:
    """Once the server listens: the (in-memory) emulator learns the sandbox numbers again."""
    if rt.settings.emulator_url is None:
        return
    await asyncio.sleep(0.5)
    await account_service.register_sandboxes(rt)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    secret = settings.secret()  # refuses to start in production without a real secret
    emulator_app: FastAPI | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_autocommit = engine.dialect.name == "postgresql"
        rt = runtime.build(settings, app.state.sessionmaker)
        runtime.install(rt)
        app.state.runtime = rt
        # The live channel: how committed events reach this process's SSE connections.
        bus = live_bus.Bus(
            live_bus.choose(settings.redis_url, engine.dialect.name), settings.redis_url
        )
        live_bus.install(bus)
        bus.start_listening(lambda: connect_driver(engine, live_bus.APPLICATION_NAME))
        app.state.live_bus = bus
        background = Background(rt, executes=settings.worker_mode == "inprocess")
        await background.start()
        housekeeping = asyncio.create_task(_housekeeping(app, settings))
        key_listener = (
            asyncio.create_task(
                key_cache.listen(
                    app.state.key_cache, lambda: connect_driver(engine, key_cache.APPLICATION_NAME)
                )
            )
            if engine.dialect.name == "postgresql" and settings.api_key_cache
            else None
        )
        sandboxes = asyncio.create_task(_register_sandboxes(rt))
        gctuning.settle_after_startup()
        try:
            yield
        finally:
            for task in (housekeeping, sandboxes, key_listener):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await background.stop()
            await bus.close()
            live_bus.install(None)
            if emulator_app is not None:
                await emulator_app.state.emulator.close()
            await rt.providers.close()
            if rt.pacer is not None:
                await rt.pacer.close()
            runtime.install(None)
            tasks = list(app.state.background_tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            await _flush_usage(app)
            await engine.dispose()

    app = FastAPI(
        title="aisoule API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        docs_url=None,  # served by apidocs with assets from npm, not a CDN
        redoc_url=None,
        openapi_tags=[
            {"name": "Authentication", "description": "Sign up, log in (cookie sessions)."},
            {"name": "API keys", "description": "Settings → API Keys."},
            {"name": "Contacts", "description": "Seed 000: /api/contacts in the envelope."},
            {"name": "Contacts (v1)", "description": "Seed 003: the Contacts Management API."},
        ],
    )
    app.state.settings = settings
    app.state.api_key_pepper = key_service.pepper(secret)
    app.state.idempotency_key = derive_key(secret, "aisoule/idempotency-body/v1")
    app.state.background_tasks = set()
    app.state.usage = key_usage.UsageRecorder()
    app.state.key_cache = key_cache.KeyCache()
    storage = make_storage(settings.redis_url)
    limiter = RateLimiter(
        storage,
        fail_open=settings.ratelimit_fail_open,
        max_wait=settings.ratelimit_max_wait_ms / 1000,
    )
    app.state.limiter = limiter if settings.ratelimit_enabled else None
    window = settings.login_throttle_window_seconds
    app.state.throttles = Throttles(
        login_account=Throttle(limiter, settings.login_max_failures_per_account, window),
        login_ip=Throttle(limiter, settings.login_max_failures_per_ip, window),
        signup_ip=Throttle(limiter, settings.signup_max_per_ip, window),
    )
    errors.install(app)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "X-CSRF-Token",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=EXPOSED_HEADERS,
        )
    # Last added, outermost: CORS answers (preflights) get the request id and headers too.
    app.add_middleware(EdgeMiddleware, owner=app)
    include_routers(app)
    if settings.emulator_mode == "embedded":
        from aisoule.whatsapp.emulator import EmulatorSettings, create_emulator_app

        emu_settings = EmulatorSettings()
        if not emu_settings.webhook_url:
            emu_settings = emu_settings.patched(
                {"webhook_url": f"{settings.self_url}/webhooks/whatsapp"}
            )
        emulator_app = create_emulator_app(emu_settings)
        app.mount("/emulator", emulator_app)
    openapi.install(app)
    apidocs.install(app, settings)
    dashboard_site.install(app, settings)

    @app.get("/healthz", tags=["Health"], summary="Liveness and database check")
    async def healthz() -> ORJSONResponse:
        try:
            await ping(app.state.engine)
        except Exception as exc:
            log.warning("healthz_database_down", error=str(exc))
            return ORJSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return ORJSONResponse({"status": "ok", "database": "ok", "version": __version__})

    return app
