"""message batches: a message may belong to a campaign and name its recipient there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:00:00

``messages.enqueue_batch`` writes a campaign's next recipients as ``queued`` messages in one
statement; ``campaign_id`` and ``recipient_ref`` let the campaign find its messages again (stats,
pause and cancel by status) and match Meta's status webhooks to its recipients. Both nullable:
single sends have neither. The index is partial, so the single sends' rows do not grow it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("campaign_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("recipient_ref", sa.String(length=128), nullable=True))
    op.create_index(
        "ix_messages_campaign_status",
        "messages",
        ["campaign_id", "status"],
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
        sqlite_where=sa.text("campaign_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_campaign_status", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("recipient_ref")
        batch_op.drop_column("campaign_id")
