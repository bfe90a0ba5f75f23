"""webhook tenancy: a number belongs to one workspace; each stored webhook event names the account
that proved it; the raw event is kept when it held a NUL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:10:00

A phone_number_id connected in two workspaces cannot be resolved here without choosing which
business loses it (and its messages), so the upgrade stops with the list of duplicates instead:
the operator deletes the wrong accounts (DELETE /api/accounts/{id} in that workspace) and runs
``aisoule migrate`` again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _refuse_duplicates(column: str) -> None:
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                f"SELECT {column}, COUNT(DISTINCT workspace_id) FROM whatsapp_accounts "  # noqa: S608 - a column name of ours
                f"WHERE {column} <> '' GROUP BY {column} HAVING COUNT(DISTINCT workspace_id) > 1"
            )
        )
        .all()
    )
    if rows:
        found = ", ".join(f"{value} ({count} workspaces)" for value, count in rows)
        raise RuntimeError(
            f"whatsapp_accounts: {column} connected in more than one workspace: {found}. A number "
            "and a WABA belong to one workspace: delete the accounts that are not the owner's "
            "(DELETE /api/accounts/{id}) and run `aisoule migrate` again."
        )


def upgrade() -> None:
    _refuse_duplicates("phone_number_id")
    _refuse_duplicates("waba_id")
    with op.batch_alter_table("whatsapp_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_whatsapp_accounts_phone_number_id")
        batch_op.create_index(
            "ux_whatsapp_accounts_phone_number_id",
            ["phone_number_id"],
            unique=True,
            postgresql_where=sa.text("phone_number_id <> ''"),
            sqlite_where=sa.text("phone_number_id <> ''"),
        )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_column("raw")
        batch_op.drop_column("account_id")
    with op.batch_alter_table("whatsapp_accounts", schema=None) as batch_op:
        batch_op.drop_index("ux_whatsapp_accounts_phone_number_id")
        batch_op.create_index(
            "ix_whatsapp_accounts_phone_number_id", ["phone_number_id"], unique=False
        )
