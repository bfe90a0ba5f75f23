"""The ``aisoule`` command: serve, migrate, emulator, user create, apikey create."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import Any

import click

from aisoule.config import get_settings

# uvicorn keeps an idle connection open this long (its default, 5 s, is shorter than the idle
# timeout of many clients and proxies: a request written as the server closes is lost to them).
KEEP_ALIVE_SECONDS = 75


@click.group()
def cli() -> None:
    """aisoule: WhatsApp Business messaging platform."""


@cli.command()
@click.option("--host", default=None, help="Bind address (default AISOULE_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default AISOULE_PORT or 8000).")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--migrate/--no-migrate", default=False, help="Run migrations before serving.")
@click.option("--ssl-certfile", default=None, help="Serve HTTPS with this certificate (PEM).")
@click.option("--ssl-keyfile", default=None, help="The certificate's private key (PEM).")
def serve(
    host: str | None,
    port: int | None,
    workers: int,
    migrate: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Start the HTTP server."""
    import uvicorn

    settings = get_settings()
    try:
        settings.secret()  # fail fast (production without a secret) before binding a port
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    if migrate:
        _migrate()
    certfile = ssl_certfile or settings.ssl_certfile
    keyfile = ssl_keyfile or settings.ssl_keyfile
    if bool(certfile) != bool(keyfile):
        raise click.ClickException("--ssl-certfile and --ssl-keyfile go together")
    proxies = settings.trusted_proxies.strip()
    # The app reads host/port from the settings (the embedded emulator calls back here).
    if host:
        os.environ["AISOULE_HOST"] = host
    if port:
        os.environ["AISOULE_PORT"] = str(port)
    if certfile:
        os.environ["AISOULE_SSL_CERTFILE"] = certfile
        os.environ["AISOULE_SSL_KEYFILE"] = keyfile or ""
    get_settings.cache_clear()
    if workers > 1 and get_settings().emulator_mode == "embedded":
        raise click.ClickException(
            "the embedded emulator keeps its state in one process: use --workers 1, or run "
            "`aisoule emulator` apart and set AISOULE_EMULATOR=http://host:port (or off)"
        )
    uvicorn.run(
        "aisoule.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # uvicorn formats each access line before its logger drops it: above INFO nothing would
        # be printed, so do not pay for it (measured: about 2% of a list request's CPU).
        access_log=settings.log_level.upper() in ("DEBUG", "INFO"),
        # X-Forwarded-For/-Proto are believed only from the configured proxies.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        server_header=False,
        # Longer than the idle timeout of the proxies and clients in front (60 s is common), so a
        # client never writes a request onto a connection this server is closing.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


@cli.command()
def worker() -> None:
    """Run background tasks from the broker (AISOULE_WORKER_MODE=external) and the reconciler."""
    settings = get_settings()
    if settings.worker_mode != "external":
        raise click.ClickException(
            "AISOULE_WORKER_MODE is inprocess: the server runs the tasks itself; set it to "
            "external (with AISOULE_REDIS_URL) on the servers and the workers"
        )
    asyncio.run(_worker(settings))


async def _worker(settings: Any) -> None:
    import signal

    from aisoule import runtime
    from aisoule.db.engine import create_engine, create_sessionmaker
    from aisoule.kit.logging import configure_logging
    from aisoule.live import bus as live_bus
    from aisoule.worker.broker import Background

    configure_logging(settings.log_level, settings.log_json)
    engine = create_engine(settings)
    rt = runtime.build(settings, create_sessionmaker(engine))
    runtime.install(rt)
    # Live events written here are announced to the servers (NOTIFY or Redis; not listened to).
    bus = live_bus.Bus(live_bus.choose(settings.redis_url, engine.dialect.name), settings.redis_url)
    live_bus.install(bus)
    background = Background(rt, executes=True)
    await background.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    click.echo("aisoule worker: running tasks (Ctrl+C to stop)")
    try:
        await stop.wait()
    finally:
        await background.stop()
        await bus.close()
        await rt.providers.close()
        if rt.pacer is not None:
            await rt.pacer.close()
        await engine.dispose()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", default=8090, show_default=True, type=int, help="Port.")
@click.option("--webhook-url", default=None, help="Where to POST Meta-shaped webhooks.")
@click.option("--app-secret", default=None, help="Signs the webhooks (X-Hub-Signature-256).")
def emulator(host: str, port: int, webhook_url: str | None, app_secret: str | None) -> None:
    """Run the WhatsApp Cloud API emulator (settings: AISOULE_EMULATOR_*; state in memory)."""
    import uvicorn

    from aisoule.whatsapp.emulator import EmulatorSettings, create_emulator_app

    overrides = {"webhook_url": webhook_url, "app_secret": app_secret}
    settings = EmulatorSettings().patched({k: v for k, v in overrides.items() if v is not None})
    uvicorn.run(
        create_emulator_app(settings),
        host=host,
        port=port,
        log_level=get_settings().log_level.lower(),
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _migrate() -> None:
    from aisoule.migrations.runner import upgrade_head

    upgrade_head(get_settings().effective_database_url)


@cli.command()
def migrate() -> None:
    """Apply database migrations (idempotent)."""
    _migrate()
    click.echo("database is up to date")


@cli.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", required=True)
@click.option("--workspace", "workspace_name", required=True, help="Name of the new workspace.")
def user_create(email: str, password: str, name: str, workspace_name: str) -> None:
    """Create a user who owns a new workspace."""
    from aisoule import runtime
    from aisoule.users import service as user_service

    async def run(session: Any) -> str:
        user_row, workspace, _ = await user_service.create_user_with_workspace(
            session,
            runtime.current(),
            email=email,
            password=password,
            name=name,
            workspace_name=workspace_name,
        )
        return f"created user {user_row.email} ({user_row.id}) in workspace {workspace.id}"

    click.echo(_run(run))


@user.command("reset-password")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def user_reset_password(email: str, password: str) -> None:
    """Set a new password (a forgotten one: this server sends no email) and log the user out
    everywhere."""
    from aisoule.auth import service as auth_service

    async def run(session: Any) -> str:
        user_row = await auth_service.reset_password(session, email, password)
        return f"new password set for {user_row.email}; their sessions are logged out"

    click.echo(_run(run))


@cli.group()
def apikey() -> None:
    """Manage API keys."""


@apikey.command("create")
@click.option("--email", required=True, help="The user whose workspace gets the key.")
@click.option("--name", required=True, help='Key name, e.g. "CRM Integration".')
@click.option(
    "--scope", "scopes", multiple=True, help="A scope; repeat. Default: all but keys:manage."
)
@click.option("--expires-at", default=None, help="ISO 8601 expiry.")
def apikey_create(email: str, name: str, scopes: tuple[str, ...], expires_at: str | None) -> None:
    """Create an API key and print it (shown once)."""
    from pydantic import ValidationError

    from aisoule.api_keys import service as key_service
    from aisoule.api_keys.schemas import APIKeyCreate
    from aisoule.users import service as user_service

    try:
        data = APIKeyCreate(
            name=name,
            scopes=list(scopes) or None,
            expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
        )
    except (ValidationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    pepper = key_service.pepper(get_settings().secret())

    async def run(session: Any) -> str:
        user_row = await user_service.find_by_email(session, email)
        if user_row is None:
            raise click.ClickException(f"no user with email {email}")
        member = await user_service.first_membership(session, user_row.id)
        if member is None:
            raise click.ClickException(f"{email} belongs to no workspace")
        _, secret = await key_service.create_key(
            session, pepper, workspace_id=member.workspace_id, data=data, created_by=user_row.id
        )
        return secret

    click.echo(_run(run))


@cli.group()
def limits() -> None:
    """Operator controls: raise or lower rate limits (a plan may raise them)."""


@limits.command("set")
@click.option("--workspace", "workspace_id", default=None, help="Workspace id.")
@click.option("--key", "key_id", default=None, help="API key id (overrides its workspace).")
@click.option("--per-minute", type=click.IntRange(1), default=None, help="Empty: inherit.")
@click.option("--per-second", type=click.IntRange(1), default=None, help="Empty: inherit.")
def limits_set(
    workspace_id: str | None, key_id: str | None, per_minute: int | None, per_second: int | None
) -> None:
    """Set the rate limits of one workspace or one API key."""
    import uuid as uuid_mod

    from aisoule.api_keys import service as key_service
    from aisoule.workspaces import service as workspace_service

    if (workspace_id is None) == (key_id is None):
        raise click.ClickException("give exactly one of --workspace and --key")
    try:
        target = uuid_mod.UUID(workspace_id or key_id or "")
    except ValueError as exc:
        raise click.ClickException("not a valid id") from exc

    async def run(session: Any) -> str:
        if key_id is not None:
            await key_service.set_limits(session, target, per_minute, per_second)
        else:
            await workspace_service.set_limits(session, target, per_minute, per_second)
            await key_service.announce_change(session)  # its keys' effective limits changed
        return f"limits set: {per_minute or 'default'}/min, {per_second or 'default'}/s"

    click.echo(_run(run))


def _run(fn: Any) -> Any:
    from aisoule.db.engine import create_engine, create_sessionmaker
    from aisoule.exceptions import AisouleError

    async def main() -> Any:
        from aisoule import runtime

        engine = create_engine(get_settings())
        maker = create_sessionmaker(engine)
        runtime.install(runtime.build(get_settings(), maker))
        try:
            async with maker() as session:
                result = await fn(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except AisouleError as exc:
        raise click.ClickException(exc.message) from exc


def main() -> None:
    cli(prog_name="aisoule")


if __name__ == "__main__":
    main()
