"""Service-level harness, beside the HTTP one: services, tasks and engines called in-process.

Registered for every test folder by tests/conftest.py (``pytest_plugins``). A test asks for
``harness`` and runs once on SQLite and once on PostgreSQL, on a database migrated once per
session (PostgreSQL: ``<test database>_harness``, one per xdist worker, apart from the one the
HTTP servers use), in a workspace of its own. ``clock`` freezes aisoule's clock
(aisoule.kit.time) for the test, so timers, leases and expiries move only when told to::

    @pytest.mark.anyio
    async def test_expiry(harness: Harness, clock: Clock) -> None:
        async with harness.session() as session:
            ...  # call services as an endpoint would; committed at the end of the block
        clock.advance(hours=25)

No server process, no mocks of our own database: the same engine, migrations and Runtime as
``aisoule serve`` builds. Tasks a service enqueues after commit are recorded in
``harness.enqueued`` instead of running; a test runs the task function itself when it wants to.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisoule import queue, runtime
from aisoule.config import Settings
from aisoule.db.engine import create_engine, create_sessionmaker, writing
from aisoule.kit.time import Clock
from aisoule.kit.time import clock as aisoule_clock
from aisoule.migrations.runner import upgrade_head
from aisoule.runtime import Runtime
from aisoule.workspaces import service as workspaces
from tests.servers import TEST_SECRET, pg_url, sibling_postgres

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Harness:
    backend: str
    runtime: Runtime
    workspace_id: uuid.UUID  # a fresh workspace for this test
    enqueued: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.runtime.sessionmaker

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work as a request runs it: opened for writing, committed when the block
        ends (then its after-commit tasks are enqueued), rolled back if the block raises."""
        async with writing(self.sessionmaker) as session:
            try:
                yield session
            except BaseException:
                queue.discard_pending(session)
                await session.rollback()
                raise
            await session.commit()
            await queue.flush_after_commit(session)


@pytest.fixture(scope="session", params=BACKENDS)
def harness_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """(backend, URL) of a database migrated to head, once per session and backend."""
    backend: str = request.param
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('harness') / 'aisoule.db'}"
    else:
        try:
            url = sibling_postgres(pg_url(), "harness")
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    upgrade_head(url)
    return backend, url


@pytest.fixture
async def harness(
    anyio_backend: str, harness_database: tuple[str, str], tmp_path: Path
) -> AsyncIterator[Harness]:
    backend, url = harness_database
    settings = Settings(
        env="test",
        database_url=url,
        data_dir=tmp_path / "var",
        secret_key=TEST_SECRET,
        redis_url=None,
        log_level="WARNING",
    )
    engine = create_engine(settings)
    rt = runtime.build(settings, create_sessionmaker(engine))
    enqueued: list[tuple[str, tuple[Any, ...]]] = []

    async def record(task: str, args: tuple[Any, ...]) -> None:
        enqueued.append((task, args))

    previous = runtime.maybe_current()
    runtime.install(rt)
    queue.install(record)
    try:
        async with writing(rt.sessionmaker) as session:
            workspace = await workspaces.create_workspace(session, f"harness {uuid.uuid4().hex}")
            await session.commit()
        yield Harness(backend, rt, workspace.id, enqueued)
    finally:
        queue.install(None)
        runtime.install(previous)
        aisoule_clock.thaw()
        await rt.providers.close()
        if rt.pacer is not None:
            await rt.pacer.close()
        await engine.dispose()


@pytest.fixture
def clock() -> Iterator[Clock]:
    """aisoule's clock, frozen at the real time the test starts; real again after it."""
    aisoule_clock.freeze()
    try:
        yield aisoule_clock
    finally:
        aisoule_clock.thaw()
