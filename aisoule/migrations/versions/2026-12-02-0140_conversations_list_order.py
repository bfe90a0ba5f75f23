"""conversations: an index in the inbox list's exact order.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:40:00

The list orders by ``last_message_at DESC NULLS LAST, id DESC``; the index on (workspace_id,
last_message_at) could not give that order (NULLS LAST on a descending scan, and the id
tie-break), so PostgreSQL read and sorted every conversation of the workspace for each page:
50 ms at 100,000 (bench/inbox.py). With the order in the index a page is its first rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite sorts NULLs first, so its plain DESC is PostgreSQL's DESC NULLS LAST (and SQLite
    # refuses NULLS LAST in an index).
    postgres = op.get_bind().dialect.name == "postgresql"
    recent = "last_message_at DESC NULLS LAST" if postgres else "last_message_at DESC"
    op.create_index(
        "ix_conversations_workspace_recent",
        "conversations",
        ["workspace_id", sa.text(recent), sa.text("id DESC")],
    )
    op.drop_index("ix_conversations_workspace_last_message", table_name="conversations")


def downgrade() -> None:
    op.create_index(
        "ix_conversations_workspace_last_message",
        "conversations",
        ["workspace_id", "last_message_at"],
    )
    op.drop_index("ix_conversations_workspace_recent", table_name="conversations")
