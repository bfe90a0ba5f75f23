"""The request's own driver connection, for the few hottest statements (PostgreSQL only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def driver_connection(session: AsyncSession, *, in_transaction: bool = False) -> Any:
    """The asyncpg connection under ``session``: same transaction state, no SQLAlchemy per call.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement *it* executes; a
    statement sent straight to the driver before that runs in autocommit. Reads do not mind, but
    writes and ``SELECT ... FOR UPDATE`` must run in the session's transaction: with
    ``in_transaction=True`` the adapter's transaction is started first (when it has not been yet,
    and unless the connection is in autocommit), so that the session's commit or rollback covers
    what is sent here.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if in_transaction:
        adapted: Any = raw.dbapi_connection
        if getattr(adapted, "_transaction", False) is None:
            # The adapter's own lazy BEGIN (the one its cursors call before their first statement).
            await adapted._start_transaction()
    driver = raw.driver_connection
    assert driver is not None
    return driver
