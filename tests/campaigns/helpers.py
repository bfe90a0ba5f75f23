"""Shared by the campaign definition tests: approved templates on the sandbox number, contacts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from aisoule.config import normalize_database_url
from tests.servers import Server
from tests.waiting import wait_for

ORDER_UPDATE: dict[str, Any] = {
    "name": "order_update",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{1}}, your order {{2}} has shipped.",
            "example": {"body_text": [["Priya", "#1042"]]},
        }
    ],
}
NAMED_OFFER: dict[str, Any] = {
    "name": "named_offer",
    "language": "en",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "HEADER",
            "format": "TEXT",
            "text": "Hello {{first_name}}",
            "example": {"header_text_named_params": [{"param_name": "first_name", "example": "A"}]},
        },
        {
            "type": "BODY",
            "text": "Use {{code}} in {{city}}.",
            "example": {
                "body_text_named_params": [
                    {"param_name": "code", "example": "X1"},
                    {"param_name": "city", "example": "Pune"},
                ]
            },
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "No thanks"},
                {
                    "type": "URL",
                    "text": "Shop",
                    "url": "https://shop.example.com/o/{{1}}",
                    "example": ["https://shop.example.com/o/42"],
                },
            ],
        },
    ],
}


def approved_template(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/api/templates", json=body)
    assert r.status_code == 201, r.text
    tpl_id = r.json()["data"]["template"]["id"]

    def approved() -> dict[str, Any] | None:
        tpl = api.get(f"/api/templates/{tpl_id}").json()["data"]["template"]
        return tpl if tpl["status"] == "APPROVED" else None

    return dict(wait_for(approved, f"{body['name']} to be approved"))


def set_template_status(
    server: Server, api: httpx.Client, template: dict[str, Any], status: str
) -> None:
    """Meta changes the template's status (its webhook tells us)."""
    r = httpx.post(
        f"{server.url}/emulator/_emulator/templates/{template['meta_id']}/status",
        json={"status": status},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    wait_for(
        lambda: (
            api.get(f"/api/templates/{template['id']}").json()["data"]["template"]["status"]
            == status
        ),
        f"the template to be {status}",
    )


def contact(api: httpx.Client, phone: str, **fields: Any) -> dict[str, Any]:
    r = api.post("/api/contacts", json={"phone_number": phone, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"]["contact"])


def run_sql(server: Server, statement: Any) -> None:
    """One write straight into the server's database (what no API does yet)."""

    async def run() -> None:
        engine = create_async_engine(normalize_database_url(server.database_url))
        try:
            async with AsyncSession(engine) as session:
                await session.execute(statement)
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def set_messaging_limit(server: Server, account_id: str, tier: str) -> None:
    from aisoule.models import WhatsAppAccount

    run_sql(
        server,
        update(WhatsAppAccount)
        .where(WhatsAppAccount.id == uuid.UUID(account_id))
        .values(messaging_limit=tier),
    )


def sandbox(api: httpx.Client) -> dict[str, Any]:
    accounts = api.get("/api/accounts").json()["data"]["accounts"]
    return dict(next(a for a in accounts if a["provider"] == "emulator"))


def customer_writes(server: Server, phone_number_id: str, phone: str, text: str) -> None:
    """A customer writes to the sandbox number (the emulator delivers Meta's webhook)."""
    r = httpx.post(
        f"{server.url}/emulator/_emulator/inbound",
        json={"phone_number_id": phone_number_id, "from": phone, "name": "Customer", "text": text},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def add_recipients(server: Server, campaign_id: str, by_contact: dict[str, str]) -> None:
    """Recipients of a campaign as the engine leaves them ({contact uuid: status}): what
    audience.from_campaign retargets."""
    from sqlalchemy import select

    from aisoule.kit.time import utcnow
    from aisoule.models import CampaignRecipient, Contact

    async def run() -> None:
        engine = create_async_engine(normalize_database_url(server.database_url))
        try:
            async with AsyncSession(engine) as session:
                now = utcnow()
                for contact_uuid, status in by_contact.items():
                    row = (
                        await session.execute(
                            select(Contact.id, Contact.phone, Contact.workspace_id).where(
                                Contact.uuid == uuid.UUID(contact_uuid)
                            )
                        )
                    ).one()
                    session.add(
                        CampaignRecipient(
                            campaign_id=uuid.UUID(campaign_id),
                            workspace_id=row.workspace_id,
                            contact_id=row.id,
                            phone=row.phone,
                            status=status,
                            sends=1,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
