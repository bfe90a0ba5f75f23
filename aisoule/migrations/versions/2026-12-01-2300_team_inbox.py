"""team inbox: members' availability (inbox_members), invitations, teams, the conversation's inbox state,
labels, timeline, reads, canned responses, inbox settings, and the live channel's event log.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import aisoule.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("short_code", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_canned_responses_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
        sa.UniqueConstraint(
            "workspace_id", "short_code", name=op.f("uq_canned_responses_workspace_id_short_code")
        ),
    )
    op.create_table(
        "inbox_settings",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column(
            "only_assignee_replies", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("auto_assign", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("updated_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_inbox_settings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_inbox_settings")),
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["accepted_by"],
            ["users.id"],
            name=op.f("fk_invitations_accepted_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_invitations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    op.create_index(
        "ix_invitations_workspace_email", "invitations", ["workspace_id", "email"], unique=False
    )
    op.create_table(
        "live_event_counters",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_live_event_counters_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_live_event_counters")),
    )
    op.create_table(
        "live_events",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_live_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "seq", name=op.f("pk_live_events")),
    )
    op.create_index(op.f("ix_live_events_created_at"), "live_events", ["created_at"], unique=False)
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_teams_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_teams_workspace_id_name")),
    )
    op.create_table(
        "conversation_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_api_key_id", sa.Uuid(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_events_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_conversation_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_events")),
    )
    op.create_index(
        "ix_conversation_events_conversation",
        "conversation_events",
        ["conversation_id", "id"],
        unique=False,
    )
    op.create_table(
        "conversation_labels",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_labels_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "label", name=op.f("pk_conversation_labels")),
    )
    op.create_index(
        "ix_conversation_labels_workspace_label",
        "conversation_labels",
        ["workspace_id", "label"],
        unique=False,
    )
    op.create_table(
        "conversation_reads",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("seen_inbound_count", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_reads_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_conversation_reads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name=op.f("pk_conversation_reads")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="open", nullable=False)
        )
        batch_op.add_column(
            sa.Column("snoozed_until", aisoule.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("assignee_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("team_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("inbound_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("last_message_preview", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_message_direction", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("read_marked_wamid", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("created_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_conversations_workspace_assignee",
            ["workspace_id", "assignee_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            "ix_conversations_workspace_last_message",
            ["workspace_id", "last_message_at"],
            unique=False,
        )
        batch_op.create_foreign_key(
            op.f("fk_conversations_team_id_teams"),
            "teams",
            ["team_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            op.f("fk_conversations_assignee_id_users"),
            "users",
            ["assignee_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "inbox_members",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("available", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("last_assigned_at", aisoule.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_inbox_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_inbox_members_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "user_id", name=op.f("pk_inbox_members")),
    )


def downgrade() -> None:
    op.drop_table("inbox_members")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_conversations_assignee_id_users"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_conversations_team_id_teams"), type_="foreignkey")
        batch_op.drop_index("ix_conversations_workspace_last_message")
        batch_op.drop_index("ix_conversations_workspace_assignee")
        batch_op.drop_column("created_at")
        batch_op.drop_column("read_marked_wamid")
        batch_op.drop_column("last_message_direction")
        batch_op.drop_column("last_message_preview")
        batch_op.drop_column("inbound_count")
        batch_op.drop_column("team_id")
        batch_op.drop_column("assignee_id")
        batch_op.drop_column("snoozed_until")
        batch_op.drop_column("status")
    op.drop_table("conversation_reads")
    op.drop_index("ix_conversation_labels_workspace_label", table_name="conversation_labels")
    op.drop_table("conversation_labels")
    op.drop_index("ix_conversation_events_conversation", table_name="conversation_events")
    op.drop_table("conversation_events")
    op.drop_table("teams")
    op.drop_index(op.f("ix_live_events_created_at"), table_name="live_events")
    op.drop_table("live_events")
    op.drop_table("live_event_counters")
    op.drop_index("ix_invitations_workspace_email", table_name="invitations")
    op.drop_table("invitations")
    op.drop_table("inbox_settings")
    op.drop_table("canned_responses")
