"""Canned responses: short codes an agent types (/shipping) or picks in the composer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from aisoule.conversations import service as conversations
from aisoule.conversations.schemas import CannedCreate, CannedUpdate
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.exceptions import AisouleError, NotFound

router = APIRouter()


async def _page(
    request: Request,
    session: Any,
    viewer: web.Viewer,
    *,
    errors: web.FieldErrors | None = None,
    values: dict[str, str] | None = None,
    row_errors: dict[str, web.FieldErrors] | None = None,
    notice: str = "",
    status_code: int = 200,
) -> Response:
    rows = await conversations.list_canned(session, viewer.workspace_id, None)
    return web.render(
        request,
        "canned.html",
        {
            "rows": rows,
            "errors": errors or {},
            "values": values or {},
            "row_errors": row_errors or {},
            "notice": notice,
        },
        viewer=viewer,
        status_code=status_code,
    )


def _answer(request: Request) -> Response:
    return web.redirect(request, "/canned-responses")


@router.get("/canned-responses")
async def canned_page(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    return await _page(request, session, viewer)


@router.post("/canned-responses")
async def create_canned(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    form = await request.form()
    values = {
        "short_code": web.form_value(form, "short_code"),
        "content": web.form_value(form, "content"),
    }
    data, errors = web.parse(CannedCreate, values)
    if data is not None:
        try:
            await conversations.create_canned(session, viewer.workspace_id, data)
        except AisouleError as exc:
            await web.undo(session, viewer)
            errors = web.errors_of(exc)
    if errors:
        return await _page(request, session, viewer, errors=errors, values=values, status_code=422)
    return _answer(request)


@router.post("/canned-responses/{canned_id}")
async def update_canned(
    canned_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    form = await request.form()
    values = {
        "short_code": web.form_value(form, "short_code"),
        "content": web.form_value(form, "content"),
    }
    data, errors = web.parse(CannedUpdate, {k: v for k, v in values.items() if v})
    if data is not None:
        try:
            await conversations.update_canned(session, viewer.workspace_id, canned_id, data)
        except NotFound:
            await web.undo(session, viewer)
            raise
        except AisouleError as exc:
            await web.undo(session, viewer)
            errors = web.errors_of(exc)
    if errors:
        return await _page(
            request, session, viewer, row_errors={canned_id: errors}, status_code=422
        )
    return _answer(request)


@router.post("/canned-responses/{canned_id}/delete")
async def delete_canned(
    canned_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    await conversations.delete_canned(session, viewer.workspace_id, canned_id)
    return _answer(request)
