"""Engine and session factory. SQLite is tuned for a web server: WAL, foreign keys, IMMEDIATE writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from aisoule.config import Settings

# Execution option a session sets on its connection when it will write (see db/session.py).
WRITE_OPTION = "aisoule_write"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    # orjson for JSON columns (tags, custom fields): measurably faster than the stdlib on lists.
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        if ":memory:" not in url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.update(
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=False,
        pool_recycle=3600,
    )
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN so that writes can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when
        # another writer holds the lock; BEGIN IMMEDIATE waits for the lock (busy_timeout) instead.
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Options of SQLAlchemy's asyncpg dialect that asyncpg.connect itself does not take.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")


async def connect_driver(engine: AsyncEngine, application_name: str) -> Any:
    """A new asyncpg connection to the engine's database, outside its pool (PostgreSQL only):
    for a connection that must stay open, such as a LISTEN. ``application_name`` names it in
    pg_stat_activity."""
    import asyncpg

    args, kwargs = engine.dialect.create_connect_args(engine.url)
    for name in _DIALECT_ONLY:
        kwargs.pop(name, None)
    settings = {**kwargs.pop("server_settings", {}), "application_name": application_name}
    return await asyncpg.connect(*args, timeout=10, server_settings=settings, **kwargs)


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database; raises when it does not answer."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def writing(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for background work that writes: on SQLite it takes the write lock up front
    (BEGIN IMMEDIATE), so a read-then-write transaction waits instead of failing with SQLITE_BUSY.
    The caller commits."""
    async with maker() as session:
        await session.connection(execution_options={WRITE_OPTION: True})
        yield session


@asynccontextmanager
async def outside_transaction(session: AsyncSession) -> AsyncIterator[None]:
    """For network I/O in a request (a Meta or emulator call): what the request did so far (its
    reads, an Idempotency-Key reservation) is committed first, so that no lock is held while a
    slow peer answers: SQLite's write lock, which every unsafe request takes up front (see
    db/session.py), and PostgreSQL's locks on written rows. Use it before the request's first
    change of its own; afterwards the write transaction begins again (BEGIN IMMEDIATE on SQLite).
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("outside_transaction: the session holds unflushed changes")
    await session.commit()
    yield
    await session.connection(execution_options={WRITE_OPTION: True})
