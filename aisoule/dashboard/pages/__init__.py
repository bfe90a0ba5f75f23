"""The dashboard's pages, one router per area (mounted by aisoule.dashboard.site)."""

from __future__ import annotations

from fastapi import APIRouter

from aisoule.dashboard.pages import (
    auth,
    campaigns,
    canned,
    contacts,
    inbox,
    settings,
    team,
    whatsapp,
)

ROUTERS: list[APIRouter] = [
    auth.router,
    settings.router,
    contacts.router,
    whatsapp.router,
    campaigns.router,
    inbox.router,
    team.router,
    canned.router,
]
