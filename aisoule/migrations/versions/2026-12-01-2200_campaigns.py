"""campaigns: what a campaign sends to whom, its recipients, and its stats as counters.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:00:00

The campaigns table existed as a listing stub (nothing wrote it); its new NOT NULL columns get
server defaults so that an existing row, if any, stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import aisoule.db.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_counters",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_counters_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "key", "shard", name=op.f("pk_campaign_counters")),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("error", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("sends", sa.SmallInteger(), nullable=False),
        sa.Column("sent_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replied_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_recipients_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_campaign_recipients_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_recipients")),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", name=op.f("uq_campaign_recipients_campaign_id_contact_id")
        ),
    )
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_campaign_recipients_campaign_status_id",
            ["campaign_id", "status", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_campaign_recipients_contact", ["contact_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_campaign_recipients_message", ["message_id"], unique=False)

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("status_detail", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("template_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("template_name", sa.String(length=512), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("template_language", sa.String(length=15), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "audience",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )
        batch_op.add_column(
            sa.Column(
                "parameters",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )
        batch_op.add_column(
            sa.Column("force", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("scheduled_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("started_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("completed_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("audience_cursor", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("materialized", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("lease_until", aisoule.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_campaigns_status_scheduled", ["status", "scheduled_at"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_campaigns_account_id_whatsapp_accounts"),
            "whatsapp_accounts",
            ["account_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_campaigns_template_id_message_templates"),
            "message_templates",
            ["template_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_campaigns_template_id_message_templates"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_campaigns_account_id_whatsapp_accounts"), type_="foreignkey"
        )
        batch_op.drop_index("ix_campaigns_status_scheduled")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("materialized")
        batch_op.drop_column("audience_cursor")
        batch_op.drop_column("completed_at")
        batch_op.drop_column("started_at")
        batch_op.drop_column("scheduled_at")
        batch_op.drop_column("force")
        batch_op.drop_column("parameters")
        batch_op.drop_column("audience")
        batch_op.drop_column("template_language")
        batch_op.drop_column("template_name")
        batch_op.drop_column("template_id")
        batch_op.drop_column("account_id")
        batch_op.drop_column("status_detail")
        batch_op.drop_column("status_reason")

    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_recipients_message")
        batch_op.drop_index("ix_campaign_recipients_contact")
        batch_op.drop_index("ix_campaign_recipients_campaign_status_id")

    op.drop_table("campaign_recipients")
    op.drop_table("campaign_counters")
