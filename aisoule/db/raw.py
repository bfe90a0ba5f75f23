"""The request's own driver connection, for the few hottest statements (PostgreSQL only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

# session.info key: (the session transaction it was read in, adapted connection, asyncpg's).
_DRIVER = "aisoule.driver_connection"


async def driver_connection(session: AsyncSession, *, in_transaction: bool = False) -> Any:
    """The asyncpg connection under ``session``: same transaction state, no SQLAlchemy per call.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement *it* executes; a
    statement sent straight to the driver before that runs in autocommit. Reads do not mind, but
    writes and ``SELECT ... FOR UPDATE`` must run in the session's transaction: with
    ``in_transaction=True`` the adapter's transaction is started first (when it has not been yet,
    and unless the connection is in autocommit), so that the session's commit or rollback covers
    what is sent here.
    """
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and cached[0] is transaction and transaction.is_active:
        # Same session transaction, same connection: skip asking SQLAlchemy again (two greenlet
        # switches; an upsert asks three times).
        _, adapted, driver = cached
    else:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        adapted = raw.dbapi_connection
        driver = raw.driver_connection
        assert driver is not None
        session.info[_DRIVER] = (session.sync_session.get_transaction(), adapted, driver)
    if in_transaction and getattr(adapted, "_transaction", False) is None:
        # The adapter's own lazy BEGIN (the one its cursors call before their first statement).
        await adapted._start_transaction()
    return driver
