"""The request's database session: whoever opens it commits it (here), services only flush."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.db.engine import WRITE_OPTION

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit before the response is sent (scope="function"), roll back on any error.

    Reads (GET, HEAD, OPTIONS) write nothing, so on PostgreSQL they run in autocommit: no BEGIN
    and COMMIT round trips on the hottest paths.
    """
    maker = request.app.state.sessionmaker
    async with maker() as session:
        autocommit = False
        if request.method not in SAFE_METHODS:
            await session.connection(execution_options={WRITE_OPTION: True})
        elif request.app.state.read_autocommit:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            autocommit = True
        try:
            yield session
        except BaseException:
            queue.discard_pending(session)
            await session.rollback()
            raise
        else:
            if not autocommit:  # in autocommit every statement committed itself
                await session.commit()
            await queue.flush_after_commit(session)  # tasks only ever see committed rows


DBSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
