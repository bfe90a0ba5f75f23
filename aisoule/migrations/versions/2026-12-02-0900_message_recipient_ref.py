"""messages: find a message by its recipient_ref (what Meta echoes as biz_opaque_callback_data).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00

A send whose outcome was lost (``unknown``) is settled by a status webhook for a wamid we do not
know, through the biz_opaque_callback_data it echoes: the lookup is (account_id, recipient_ref).
Partial: most messages (single sends, inbound) have no recipient_ref.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_account_recipient_ref",
        "messages",
        ["account_id", "recipient_ref"],
        postgresql_where=sa.text("recipient_ref IS NOT NULL"),
        sqlite_where=sa.text("recipient_ref IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_account_recipient_ref", table_name="messages")
