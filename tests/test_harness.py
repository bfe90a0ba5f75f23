"""The service-level harness itself (tests/harness.py): the clock, units of work, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from aisoule import queue
from aisoule.kit.time import Clock, utcnow
from aisoule.models import Workspace
from tests.harness import Harness

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_a_frozen_clock_moves_only_when_told_and_thaws_back_to_real_time() -> None:
    clock = Clock()
    with pytest.raises(RuntimeError):
        clock.advance(1)
    with pytest.raises(ValueError):
        clock.freeze(datetime(2026, 12, 1, 9, 30))  # naive: which zone?
    assert clock.freeze(AT.astimezone(timezone(timedelta(hours=5, minutes=30)))) == AT
    assert clock.frozen is not None and clock.frozen.tzinfo is UTC
    assert clock.advance(90) == AT + timedelta(seconds=90)
    assert clock.advance(hours=1) == AT + timedelta(hours=1, seconds=90)
    with clock.frozen_at(AT):
        assert clock.frozen == AT
    assert clock.frozen is None


def test_utcnow_follows_the_clock_fixture(clock: Clock) -> None:
    start = utcnow()
    assert utcnow() == start  # frozen: no time passes by itself
    clock.advance(minutes=5)
    assert utcnow() - start == timedelta(minutes=5)


def test_the_clock_is_real_again_after_a_test() -> None:
    before = datetime.now(UTC)
    assert before <= utcnow() <= datetime.now(UTC)


@pytest.mark.anyio
async def test_a_unit_of_work_commits_then_enqueues_or_rolls_back_and_enqueues_nothing(
    harness: Harness,
) -> None:
    async with harness.session() as session:
        queue.after_commit(session, "harness.kept", str(harness.workspace_id))
        assert harness.enqueued == []  # not before the commit
    assert harness.enqueued == [("harness.kept", (str(harness.workspace_id),))]

    with pytest.raises(LookupError):
        async with harness.session() as session:
            workspace = await session.get(Workspace, harness.workspace_id)
            assert workspace is not None
            workspace.name = "renamed, then rolled back"
            await session.flush()
            queue.after_commit(session, "harness.dropped")
            raise LookupError
    assert harness.enqueued == [("harness.kept", (str(harness.workspace_id),))]
    async with harness.session() as session:
        name = await session.scalar(
            select(Workspace.name).where(Workspace.id == harness.workspace_id)
        )
    assert name is not None and name.startswith("harness ")


@pytest.mark.anyio
async def test_the_harness_runs_on_its_backend_in_a_workspace_of_its_own(harness: Harness) -> None:
    async with harness.session() as session:
        assert session.bind.dialect.name == harness.backend
        workspace = await session.get(Workspace, harness.workspace_id)
    assert workspace is not None and workspace.name.startswith("harness ")
    assert harness.runtime.sessionmaker is harness.sessionmaker
