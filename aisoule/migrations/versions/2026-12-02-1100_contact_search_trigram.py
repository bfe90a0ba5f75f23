"""contacts: trigram indexes for the search (name, email, phone) on PostgreSQL.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00

The contact search is a substring match (``ILIKE '%...%'``) on the full name, the email and the
phone. Without an index a search that finds one contact, or none, reads every contact of the
table: 0.8 to 1.3 s at 1,000,000 contacts (docs/benchmarks.md, the dashboard's section). pg_trgm's
GIN indexes answer the same ``ILIKE``/``LIKE`` in milliseconds. pg_trgm ships with PostgreSQL and
is a trusted extension (PostgreSQL 13+): the database's owner may create it. The name index is on
the very expression the repository searches (aisoule/contacts/repository.py, SEARCH_NAME).

SQLite: nothing (an embedded workspace is small; its LIKE scans are fast enough).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_contacts_name_trgm": "(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))",
    "ix_contacts_email_trgm": "email",
    "ix_contacts_phone_trgm": "phone",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON contacts USING gin ({expression} gin_trgm_ops)")
    # An expression index has statistics only after ANALYZE; until then the planner guesses how
    # many names match and may keep walking the primary key.
    op.execute("ANALYZE contacts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
