"""Team: the workspace's members (roles, availability, capacity), invitations (the link shown
once) and the inbox settings. Owners and admins manage; an agent sees the members and sets
their own availability. The services enforce the roles; these routes refuse what the role
cannot use before calling them, and the nav hides it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from aisoule.audit.dependencies import request_origin
from aisoule.conversations import service as conversations
from aisoule.conversations.schemas import SettingsUpdate
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.exceptions import AisouleError, NotFound
from aisoule.members import service as members_service
from aisoule.members.schemas import InvitationCreate, MemberUpdate

router = APIRouter()
ROLES = ("agent", "admin", "owner")
MANAGE = "workspace:manage"


async def _page(
    request: Request,
    session: Any,
    viewer: web.Viewer,
    *,
    invite_errors: web.FieldErrors | None = None,
    invite_values: dict[str, str] | None = None,
    member_errors: dict[str, web.FieldErrors] | None = None,
    created: dict[str, Any] | None = None,
    notice: str = "",
    status_code: int = 200,
) -> Response:
    rows = await members_service.list_members(session, viewer.workspace_id)
    members = [
        {
            "id": str(user.id),
            "name": user.name,
            "email": user.email,
            "role": member.role,
            "available": inbox.available if inbox is not None else True,
            "capacity": inbox.capacity if inbox is not None else None,
            "joined_at": member.created_at,
            "me": user.id == viewer.principal.user_id,
        }
        for member, user, inbox in rows
    ]
    invitations = []
    if viewer.manages:
        for row in await members_service.list_invitations(session, viewer.workspace_id):
            invitations.append({"row": row, "status": members_service.invitation_status(row)})
    settings = await conversations.inbox_settings(session, viewer.workspace_id)
    me = next((m for m in members if m["me"]), None)
    return web.render(
        request,
        "team.html",
        {
            "members": members,
            "me": me,
            "invitations": invitations,
            "roles": ROLES if viewer.is_owner else ROLES[:2],
            "settings": settings,
            "invite_errors": invite_errors or {},
            "invite_values": invite_values or {},
            "member_errors": member_errors or {},
            "created": created,
            "notice": notice,
        },
        viewer=viewer,
        status_code=status_code,
    )


@router.get("/team")
async def team_page(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    return await _page(request, session, viewer)


@router.post("/team/invitations")
async def invite(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, MANAGE, "Inviting members")
    form = await request.form()
    values = {"email": web.form_value(form, "email"), "role": web.form_value(form, "role")}
    data, errors = web.parse(
        InvitationCreate, {"email": values["email"], "role": values["role"] or "agent"}
    )
    created = None
    if data is not None:
        settings = request.app.state.settings
        try:
            invited = await members_service.invite(
                session,
                viewer.principal,
                data,
                base_url=settings.base_url,
                smtp=members_service.smtp_of(settings),
                origin=request_origin(request),
            )
        except AisouleError as exc:
            await web.undo(session, viewer)
            errors = web.errors_of(exc)
        else:
            created = {
                "email": invited.invitation.email,
                "url": invited.url,
                "mailed": invited.mailed,
            }
    return await _page(
        request,
        session,
        viewer,
        invite_errors=errors,
        invite_values=values if errors else {},
        created=created,
        status_code=422 if errors else 201,
    )


@router.post("/team/invitations/{invitation_id}/revoke")
async def revoke(
    invitation_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    web.require(viewer, MANAGE, "Revoking invitations")
    await members_service.revoke_invitation(
        session, viewer.principal, invitation_id, request_origin(request)
    )
    return web.redirect(request, "/team")


def _bool(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


@router.post("/team/members/{user_id}")
async def update_member(
    user_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    web.require(viewer, MANAGE, "Changing members")
    form = await request.form()
    fields: dict[str, Any] = {}
    if web.form_value(form, "role"):
        fields["role"] = web.form_value(form, "role")
    if _bool(web.form_value(form, "available")) is not None:
        fields["available"] = _bool(web.form_value(form, "available"))
    capacity = web.form_value(form, "capacity")
    if capacity:
        fields["capacity"] = capacity
    data, errors = web.parse(MemberUpdate, fields)
    if data is not None:
        try:
            await members_service.update_member(
                session, viewer.principal, user_id, data, request_origin(request)
            )
        except NotFound:
            await web.undo(session, viewer)
            raise
        except AisouleError as exc:
            await web.undo(session, viewer)
            errors = web.errors_of(exc)
    if errors:
        return await _page(
            request, session, viewer, member_errors={user_id: errors}, status_code=422
        )
    return web.redirect(request, "/team")


@router.post("/team/members/{user_id}/remove")
async def remove_member(
    user_id: str, request: Request, viewer: ViewerDep, session: DBSession
) -> Response:
    web.require(viewer, MANAGE, "Removing members")
    try:
        await members_service.remove_member(
            session, viewer.principal, user_id, request_origin(request)
        )
    except NotFound:
        await web.undo(session, viewer)
        raise
    except AisouleError as exc:
        await web.undo(session, viewer)
        return await _page(
            request, session, viewer, member_errors={user_id: web.errors_of(exc)}, status_code=422
        )
    return web.redirect(request, "/team")


@router.post("/team/me")
async def my_availability(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    """Anyone: available (or not) for the inbox's automatic assignment."""
    form = await request.form()
    available = _bool(web.form_value(form, "available"))
    if available is None:
        return await _page(
            request,
            session,
            viewer,
            member_errors={str(viewer.principal.user_id): {"available": "choose yes or no"}},
            status_code=422,
        )
    await members_service.set_my_availability(session, viewer.principal, available)
    return web.redirect(request, "/team")


@router.post("/team/settings")
async def inbox_settings(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    web.require(viewer, MANAGE, "Changing the inbox settings")
    form = await request.form()
    data = SettingsUpdate(
        only_assignee_replies=web.form_value(form, "only_assignee_replies") == "on",
        auto_assign=web.form_value(form, "auto_assign") == "on",
    )
    await conversations.update_settings(session, viewer.workspace_id, data)
    return await _page(request, session, viewer, notice="Inbox settings saved.")
