"""per-workspace contact numbers: /v1 ids (cnt_<number>) counted per workspace

Until now a /v1 id was cnt_<contacts.id>, one sequence for the whole platform, so a workspace
saw every other workspace's volume. Now each contact has a ``number`` counted per workspace.

- Existing contacts keep their id: ``number = id`` (unique within each workspace, since it was
  unique everywhere).
- Existing workspaces continue above the highest contact id ever issued (deleted ones included),
  so that no workspace is ever given a number one of its deleted contacts had: a client that
  stored that id must never find a different contact behind it. New workspaces start at 1.
- PostgreSQL: ``contact_number_next(workspace)`` draws from the workspace's own sequence,
  created by its first call (starting after ``contact_numbers.last``). A sequence never waits on
  a lock, whatever the number of concurrent creates; a counter row would serialise every
  create of a workspace, commit included (measured 3-4x fewer inserts/s at 32 clients).
- SQLite: ``contact_numbers.last`` is the counter itself, advanced by the insert's transaction
  (SQLite serialises writers, so the row costs no waiting there).

Downgrading drops the numbers: /v1 ids go back to cnt_<contacts.id>, which changes the ids of
contacts created after this upgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sequence of a workspace is contact_number_<its uuid as 32 hex digits>, in the schema the
# caller's search_path resolves (the one the tables are in). The first call for a workspace
# creates it, under an advisory lock so that concurrent first calls create it once; the catalog
# is then read with a fresh snapshot (a volatile function's query), so a waiter sees the sequence
# its predecessor committed. The common case is one cached catalog lookup and nextval.
_NEXT = """
CREATE FUNCTION contact_number_next(ws uuid) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  seq_name text := 'contact_number_' || replace(ws::text, '-', '');
  seq regclass := to_regclass(quote_ident(seq_name));
BEGIN
  IF seq IS NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext(seq_name));
    SELECT c.oid::regclass INTO seq FROM pg_class c
     WHERE c.relname = seq_name AND c.relnamespace = current_schema()::regnamespace;
    IF seq IS NULL THEN
      EXECUTE format('CREATE SEQUENCE %I START WITH %s', seq_name,
        coalesce((SELECT n.last FROM contact_numbers n WHERE n.workspace_id = ws), 0) + 1);
      seq := to_regclass(quote_ident(seq_name));
    END IF;
  END IF;
  RETURN nextval(seq);
END
$fn$
"""
_DROP_SEQUENCES = """
DO $do$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname FROM pg_class c
            WHERE c.relkind = 'S' AND c.relname LIKE 'contact\\_number\\_%'
              AND c.relnamespace = current_schema()::regnamespace LOOP
    EXECUTE format('DROP SEQUENCE %I', r.relname);
  END LOOP;
END
$do$
"""


# SQLite rebuilds the table: keep AUTOINCREMENT (internal ids must not repeat either).
_KEEP_AUTOINCREMENT = {"sqlite_autoincrement": True}


def _highest_contact_id(bind: sa.Connection) -> int:
    """The highest contacts.id ever issued, including contacts deleted since."""
    highest = int(bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM contacts")).scalar_one())
    if bind.dialect.name == "postgresql":
        seq = bind.execute(sa.text("SELECT pg_get_serial_sequence('contacts', 'id')")).scalar()
        if seq:
            last, called = bind.execute(
                sa.text(f"SELECT last_value, is_called FROM {seq}")  # noqa: S608 - a catalog name
            ).one()
            highest = max(highest, int(last) if called else 0)
    else:
        seq = bind.execute(
            sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'contacts'")
        ).scalar()
        highest = max(highest, int(seq or 0))
    return highest


def upgrade() -> None:
    bind = op.get_bind()
    highest = _highest_contact_id(bind)
    op.create_table(
        "contact_numbers",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_contact_numbers_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_contact_numbers")),
    )
    op.execute(
        sa.text(
            "INSERT INTO contact_numbers (workspace_id, last) SELECT id, :last FROM workspaces"
        ).bindparams(last=highest)
    )
    with op.batch_alter_table(
        "contacts", schema=None, table_kwargs=_KEEP_AUTOINCREMENT
    ) as batch_op:
        batch_op.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
    op.execute("UPDATE contacts SET number = id")
    with op.batch_alter_table(
        "contacts", schema=None, table_kwargs=_KEEP_AUTOINCREMENT
    ) as batch_op:
        batch_op.alter_column("number", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_contacts_workspace_id_number"), ["workspace_id", "number"]
        )
    if bind.dialect.name == "postgresql":
        op.execute(_NEXT)
    else:
        # The rebuilt table's AUTOINCREMENT starts after the highest id it was copied with: put
        # back the one before (a deleted contact may have had a higher id; an emptied table has
        # no row there at all).
        op.execute(
            sa.text(
                "UPDATE sqlite_sequence SET seq = max(seq, :last) WHERE name = 'contacts'"
            ).bindparams(last=highest)
        )
        op.execute(
            sa.text(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'contacts', :last WHERE :last > 0"
                " AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'contacts')"
            ).bindparams(last=highest)
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION contact_number_next(uuid)")
        op.execute(_DROP_SEQUENCES)
    with op.batch_alter_table(
        "contacts", schema=None, table_kwargs=_KEEP_AUTOINCREMENT
    ) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_contacts_workspace_id_number"), type_="unique")
        batch_op.drop_column("number")
    op.drop_table("contact_numbers")
