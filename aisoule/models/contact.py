from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from aisoule.db.base import BigIntPK, JSONType, Model, UTCDateTime


class Contact(Model):
    """One customer. ``id`` (internal, platform-wide) orders lists; ``number`` is the ``cnt_<number>``
    of /v1, counted per workspace (docs/decisions.md); ``uuid`` is the id of /api."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "phone"),
        UniqueConstraint("workspace_id", "number"),
        Index("ix_contacts_workspace_id_id", "workspace_id", "id"),
        # Without AUTOINCREMENT SQLite reuses the highest rowid after a delete: ids must never repeat.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Given by the insert itself (ContactRepository.insert_counted); never changes, never reused.
    number: Mapped[int] = mapped_column(BigInteger)
    uuid: Mapped[UUID] = mapped_column(Uuid, unique=True)
    workspace_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    phone: Mapped[str] = mapped_column(String(20))  # E.164 with +
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    stage: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSONType)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactTag(Model):
    """Tag membership, for filtering: ``(workspace_id, tag, contact_id)`` walks a tag in id order."""

    __tablename__ = "contact_tags"
    __table_args__ = (
        Index("ix_contact_tags_workspace_tag_contact", "workspace_id", "tag", "contact_id"),
    )

    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[UUID] = mapped_column(Uuid)


class ContactCount(Model):
    """Exact contact totals kept in step with every write, so a list's ``total`` needs no COUNT(*).

    ``kind`` is ``all`` (key ''), ``tag`` or ``stage``. Each count is spread over a few ``shard`` rows
    so that concurrent writers rarely wait on the same row; a read sums the shards.
    """

    __tablename__ = "contact_counts"

    workspace_id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class ContactNumber(Model):
    """Where a workspace's contact numbers continue: ``last`` is the highest one it was given.

    On SQLite this is the live counter (its writers are serialised anyway). On PostgreSQL each
    workspace draws from its own sequence instead (``contact_number_next()``, migration 0005), so
    that concurrent creates never wait on one row; there the row only says where that sequence
    starts (workspaces older than per-workspace numbers continue above every number issued then).
    """

    __tablename__ = "contact_numbers"

    workspace_id: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    last: Mapped[int] = mapped_column(BigInteger)
