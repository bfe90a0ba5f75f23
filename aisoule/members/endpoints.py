"""/api/members and /api/invitations: who works in the workspace, with which role."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from aisoule.audit.dependencies import request_origin
from aisoule.auth.dependencies import ConversationsRead, ConversationsWrite, WorkspaceManage
from aisoule.db.session import DBSession
from aisoule.exceptions import Forbidden
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import Envelope, ErrorEnvelope, success
from aisoule.kit.responses import ORJSONResponse
from aisoule.members import service
from aisoule.members.schemas import (
    InvitationCreate,
    InvitationCreated,
    InvitationData,
    InvitationList,
    MemberData,
    MemberList,
    MemberRemoved,
    MemberUpdate,
    MyAvailability,
    invitation_out,
    member_out,
)

router = APIRouter(tags=["Members"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such member in this workspace"},
    409: {"model": ErrorEnvelope, "description": "The last owner"},
}


@router.get(
    "/members",
    summary="List the workspace's members",
    response_model=None,
    responses={200: {"model": Envelope[MemberList]}},
)
async def list_members(principal: ConversationsRead, session: DBSession) -> ORJSONResponse:
    rows = await service.list_members(session, principal.workspace_id)
    return success({"members": [member_out(*row) for row in rows]})


@router.put(
    "/members/me",
    summary="Mark yourself available (or not) for automatic assignment",
    response_model=None,
    responses={200: {"model": Envelope[MemberData]}},
)
async def set_my_availability(
    data: MyAvailability, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.set_my_availability(session, principal, data.available)
    return success({"member": member_out(*row)})


@router.delete(
    "/members/me",
    summary="Leave the workspace",
    description="Your sessions in it end; conversations assigned to you become unassigned. "
    "The last owner cannot leave.",
    response_model=None,
    responses={200: {"model": Envelope[MemberRemoved]}, **_ERRORS},
)
async def leave(
    request: Request, principal: ConversationsRead, session: DBSession
) -> ORJSONResponse:
    if principal.user_id is None:
        raise Forbidden("Leaving is a member's: log in", code="session_required")
    removed = await service.remove_member(
        session, principal, str(principal.user_id), request_origin(request)
    )
    return success({"user_id": str(removed), "removed": True})


@router.put(
    "/members/{user_id}",
    summary="Change a member's role, availability or capacity (owners and admins)",
    description="Only an owner makes or unmakes an owner; the last owner stays owner.",
    response_model=None,
    responses={200: {"model": Envelope[MemberData]}, **_ERRORS},
)
async def update_member(
    user_id: str,
    data: MemberUpdate,
    request: Request,
    principal: WorkspaceManage,
    session: DBSession,
) -> ORJSONResponse:
    row = await service.update_member(session, principal, user_id, data, request_origin(request))
    return success({"member": member_out(*row)})


@router.delete(
    "/members/{user_id}",
    summary="Remove a member (owners and admins)",
    description="Their sessions in this workspace end at once and their conversations become "
    "unassigned; their account and other workspaces stay.",
    response_model=None,
    responses={200: {"model": Envelope[MemberRemoved]}, **_ERRORS},
)
async def remove_member(
    user_id: str, request: Request, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    removed = await service.remove_member(session, principal, user_id, request_origin(request))
    return success({"user_id": str(removed), "removed": True})


@router.get(
    "/invitations",
    summary="List invitations (owners and admins)",
    response_model=None,
    responses={200: {"model": Envelope[InvitationList]}},
)
async def list_invitations(principal: WorkspaceManage, session: DBSession) -> ORJSONResponse:
    rows = await service.list_invitations(session, principal.workspace_id)
    return success({"invitations": [invitation_out(r, service.invitation_status(r)) for r in rows]})


@router.post(
    "/invitations",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Invite someone by email (the link is shown once)",
    description="Answers the invitation's token and link once; it is mailed too when the "
    "server has an SMTP host (AISOULE_SMTP_HOST). The invitee accepts with POST "
    "/api/auth/accept-invitation within 7 days. A new invitation to the same address replaces "
    "the pending one.",
    response_model=None,
    responses={
        201: {"model": Envelope[InvitationCreated]},
        409: {"model": ErrorEnvelope, "description": "Already a member"},
    },
)
async def invite(
    data: InvitationCreate, request: Request, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    settings = request.app.state.settings
    invited = await service.invite(
        session,
        principal,
        data,
        base_url=settings.base_url,
        smtp=service.smtp_of(settings),
        origin=request_origin(request),
    )
    row = invited.invitation
    return success(
        {
            "invitation": invitation_out(row, service.invitation_status(row)),
            "token": invited.token,
            "url": invited.url,
            "mailed": invited.mailed,
        },
        201,
    )


@router.delete(
    "/invitations/{invitation_id}",
    summary="Revoke an invitation",
    response_model=None,
    responses={200: {"model": Envelope[InvitationData]}, 404: {"model": ErrorEnvelope}},
)
async def revoke_invitation(
    invitation_id: str, request: Request, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    row = await service.revoke_invitation(
        session, principal, invitation_id, request_origin(request)
    )
    return success({"invitation": invitation_out(row, service.invitation_status(row))})
