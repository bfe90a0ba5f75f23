"""GET /api/events: the workspace's live events as Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from aisoule.auth.dependencies import ConversationsRead
from aisoule.exceptions import ValidationFailed
from aisoule.kit.envelope import ErrorEnvelope
from aisoule.live import bus, feed, service
from aisoule.live.schemas import comment, sse

router = APIRouter(tags=["Live events"])

HEARTBEAT_SECONDS = 15.0
BATCH = 200
RETRY_MS = 2000


class EventStreamResponse(StreamingResponse):
    """A stream that ends the moment the client goes away (it watches for http.disconnect
    whatever the server's ASGI version), so no connection lingers until its next heartbeat."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.create_task(self.stream_response(send))
        watching = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                task.cancel()
            for task in (streaming, watching):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task


def _start(header: str | None, query: int | None) -> int | None:
    if query is not None:
        return query
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ValidationFailed(
            "Last-Event-ID: must be an event id this stream sent (a number)", field="Last-Event-ID"
        )
    return int(value)


async def _events(
    maker: async_sessionmaker[AsyncSession], workspace_id: uuid.UUID, start: int | None
) -> AsyncIterator[bytes]:
    current = bus.current()
    hub = current.hub if current is not None else bus.Hub()  # no bus: the feed polls
    shared = feed.join(hub, workspace_id, maker)
    try:
        async with maker() as session:
            last, oldest = await service.bounds(session, workspace_id)
        yield b"retry: %d\n\n" % RETRY_MS
        if start is None or start > last:
            start = last  # a new stream (or an id from before a reset): from now on
        elif start + 1 < oldest:
            # What it missed is no longer kept: the page must reload its lists.
            yield b"event: reset\ndata: {}\n\n"
            start = oldest - 1
        yield comment(f"live from {start}")
        await shared.ready.wait()
        idle = 0.0
        while True:
            changed = shared.changed  # before looking: events added after it set it
            kept = shared.after(start)
            if kept is None:  # further back than the feed keeps: from the database
                async with maker() as session:
                    rows = await service.since(session, workspace_id, start, BATCH)
                if rows:
                    yield b"".join(sse(row) for row in rows)
                    start = rows[-1].seq
                    continue
                kept = [], start
            events, last_sent = kept
            if events:
                yield b"".join(events)
                start = last_sent
                idle = 0.0
                continue
            timeout = HEARTBEAT_SECONDS - idle
            t0 = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(changed.wait(), timeout)
                idle += asyncio.get_running_loop().time() - t0
            except TimeoutError:
                idle = 0.0
                yield comment("keepalive")
    finally:
        feed.leave(hub, shared)


@router.get(
    "/events",
    summary="Live events (Server-Sent Events)",
    description="A `text/event-stream` of the workspace's inbox events: `message.created`, "
    "`message.status`, `conversation.updated`, `note.created`. Each event's `id` is its number "
    "in the workspace; reconnecting with `Last-Event-ID` (or `last_event_id`) replays every "
    "event after it, each once. Without one, the stream starts from now. A `reset` event means "
    "the events missed are no longer kept: reload. Comments (`: keepalive`) every 15 s.",
    response_model=None,
    response_class=EventStreamResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "The stream (never ends by itself)",
        },
        422: {"model": ErrorEnvelope, "description": "Malformed Last-Event-ID"},
    },
)
async def events(
    request: Request,
    principal: ConversationsRead,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=10**18, description="Resume after this event (as Last-Event-ID does)"),
    ] = None,
    last_event_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> EventStreamResponse:
    # The request's session closes when this returns: the stream opens short ones of its own.
    start = _start(last_event_header, last_event_id)
    maker = request.app.state.sessionmaker
    return EventStreamResponse(
        partial(_events, maker, principal.workspace_id, start)(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
