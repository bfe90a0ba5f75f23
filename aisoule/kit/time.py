"""The one clock of the application: ``utcnow()``, which tests can stop and move.

Every module calls ``utcnow()`` (never ``datetime.now``), so a test freezes time for all of them
at once with ``clock.freeze(at)`` and moves it with ``clock.advance(seconds)``: an engine's timers
(retries, leases, expiries) are tested without sleeping and without patching modules. Running,
``utcnow()`` costs one attribute lookup more than ``datetime.now(UTC)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class Clock:
    """Real time unless frozen; a frozen clock moves only when told to."""

    __slots__ = ("frozen",)

    def __init__(self) -> None:
        self.frozen: datetime | None = None

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at ``at`` (aware, any zone; default: now) and return that instant."""
        at = datetime.now(UTC) if at is None else at
        if at.tzinfo is None:
            raise ValueError("freeze() needs an aware datetime")
        self.frozen = at.astimezone(UTC)
        return self.frozen

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Move a frozen clock forward by ``seconds`` (and/or ``timedelta`` keywords)."""
        if self.frozen is None:
            raise RuntimeError("advance() needs a frozen clock: call freeze() first")
        self.frozen += timedelta(seconds=seconds, **delta)
        return self.frozen

    def thaw(self) -> None:
        """Back to real time."""
        self.frozen = None

    @contextmanager
    def frozen_at(self, at: datetime | None = None) -> Iterator[Clock]:
        """Frozen inside the block, real time again after it."""
        self.freeze(at)
        try:
            yield self
        finally:
            self.thaw()


clock = Clock()


def utcnow() -> datetime:
    frozen = clock.frozen
    return datetime.now(UTC) if frozen is None else frozen


def iso_z(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` and second precision, as the seeds show (``2026-06-02T08:00:00Z``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
