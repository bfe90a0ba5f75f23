"""What the campaign engine tests share: a Runtime of the test process on a real server's
database (the engine's functions run here as a worker's would, the messages go to that server's
emulator over HTTP), contacts and campaigns written through the services, and polling helpers.

Part A's endpoints (POST /api/campaigns, /start, ...) are not here yet: the tests create the
campaign row and call the engine's start/pause/resume/cancel as A's service will."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from aisoule import queue, runtime
from aisoule.campaigns import engine
from aisoule.campaigns import status as cst
from aisoule.config import Settings
from aisoule.contacts import service as contacts
from aisoule.contacts.schemas import ContactUpsertV1
from aisoule.db.engine import create_engine, create_sessionmaker, writing
from aisoule.kit.time import utcnow
from aisoule.models import Campaign, CampaignRecipient, Message
from tests import waiting
from tests.conftest import ALL_SCOPES, signup
from tests.servers import (
    TEST_SECRET,
    Server,
    make_server,
    pg_url,
    reset_postgres,
    sibling_postgres,
)

TEMPLATE = {
    "name": "diwali_offer",
    "language": "en_US",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{1}}, your code is {{2}}.",
            "example": {"body_text": [["Priya", "DIWALI20"]]},
        }
    ],
}
PARAMETERS = {"body": [{"field": "first_name"}, {"field": "custom_fields.code", "fallback": "X"}]}


def start_campaign_server(backend: str, tmp: Any, suffix: str, **env: str) -> Server:
    """The embedded default on ``backend`` (its own PostgreSQL database ``<test db>_<suffix>``),
    migrated and started: its reconciler every half second (it starts the dispatchers and
    materialisers a test's start asked for), a dead dispatcher's lease out after 2 s, its emulator
    at 1,000 messages a second; ``env`` adds or overrides settings."""
    url: str | None = None
    if backend == "postgresql":
        try:
            url = sibling_postgres(pg_url(), suffix)
            reset_postgres(url)
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    srv = make_server(
        backend,
        tmp,
        database_url=url,
        **{
            "AISOULE_RECONCILE_SECONDS": "0.5",
            "AISOULE_CAMPAIGN_LEASE_SECONDS": "2",
            "AISOULE_EMULATOR_THROUGHPUT_PER_SECOND": "1000",
            "AISOULE_EMULATOR_WEBHOOK_LATENCY_MS": "10",
            **env,
        },
    )
    srv.cli("migrate")
    srv.start()
    return srv


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 180.0) -> Any:
    return waiting.wait_for(fn, what, timeout)


@dataclass
class Shop:
    """A fresh workspace on the server: its API client, sandbox account and approved template."""

    server: Server
    api: httpx.Client
    workspace_id: uuid.UUID
    account_id: uuid.UUID
    phone_number_id: str
    template_id: uuid.UUID
    template_meta_id: str

    def emulator(self, path: str) -> str:
        return f"{self.server.url}/emulator/_emulator/{path}"

    def sent(self, phones: set[str] | None = None) -> list[dict[str, Any]]:
        """Every message the emulator took for these phones (E.164), as it lists them."""
        r = httpx.get(self.emulator("messages"), timeout=60)
        assert r.status_code == 200, r.text
        out = [m for m in r.json()["data"] if m["phone_number_id"] == self.phone_number_id]
        return [m for m in out if phones is None or "+" + m["to"] in phones]


def open_shop(server: Server, throughput: int = 1000) -> Shop:
    client, data, _, _ = signup(server)
    r = client.post("/api/api-keys", json={"name": "k", "scopes": ALL_SCOPES})
    assert r.status_code == 201, r.text
    api = httpx.Client(
        base_url=server.url, headers={"X-API-Key": r.json()["data"]["api_key"]["key"]}, timeout=30
    )
    client.close()
    account = next(
        a
        for a in api.get("/api/accounts").json()["data"]["accounts"]
        if a["provider"] == "emulator"
    )
    r = api.put(f"/api/accounts/{account['id']}", json={"throughput": throughput})
    assert r.status_code == 200, r.text
    r = api.post("/api/templates", json={**TEMPLATE, "account_id": account["id"]})
    assert r.status_code == 201, r.text
    tpl = r.json()["data"]["template"]
    wait_for(
        lambda: (
            api.get(f"/api/templates/{tpl['id']}").json()["data"]["template"]["status"]
            == "APPROVED"
        ),
        "the template's approval",
    )
    tpl = api.get(f"/api/templates/{tpl['id']}").json()["data"]["template"]
    return Shop(
        server,
        api,
        uuid.UUID(data["workspace"]["id"]),
        uuid.UUID(account["id"]),
        account["phone_number_id"],
        uuid.UUID(tpl["id"]),
        str(tpl["meta_id"]),
    )


@asynccontextmanager
async def local_runtime(server: Server, **settings: Any) -> AsyncIterator[runtime.Runtime]:
    """A Runtime of this process on the server's database, its emulator the server's; tasks
    enqueued here are dropped (the server's reconciler, or the test, runs them)."""
    s = Settings(
        env="test",
        database_url=server.database_url,
        data_dir=server.data_dir / "var",
        secret_key=TEST_SECRET,
        emulator=f"{server.url}/emulator",
        log_level="WARNING",
        **settings,
    )
    db = create_engine(s)
    rt = runtime.build(s, create_sessionmaker(db))

    async def drop(task: str, args: tuple[Any, ...]) -> None:
        return None

    previous = runtime.maybe_current()
    runtime.install(rt)
    queue.install(drop)
    try:
        yield rt
    finally:
        queue.install(None)
        runtime.install(previous)
        await rt.providers.close()
        if rt.pacer is not None:
            await rt.pacer.close()
        await db.dispose()


def phones(n: int) -> list[str]:
    base = random.randrange(10**7, 9 * 10**7)
    return [f"+9198{base + i:08d}" for i in range(n)]


async def add_contacts(
    rt: runtime.Runtime, shop: Shop, numbers: list[str], **fields: Any
) -> dict[str, int]:
    """Contacts named after their number's last digits (``first_name`` "P<digits>"), with a
    custom field ``code`` of "C<digits>": phone → contact id."""
    out: dict[str, int] = {}
    async with writing(rt.sessionmaker) as session:
        for p in numbers:
            data = {
                "phone": p,
                "first_name": f"P{p[-6:]}",
                "custom_fields": {"code": f"C{p[-6:]}"},
                **fields,
            }
            row, _ = await contacts.upsert_v1(
                session,
                shop.workspace_id,
                ContactUpsertV1.model_validate(data),
                in_callers_transaction=True,
            )
            out[p] = int(row["id"])
        await session.commit()
    return out


async def new_campaign(
    rt: runtime.Runtime,
    shop: Shop,
    audience: dict[str, Any],
    *,
    start: bool = True,
    scheduled_at: Any = None,
    parameters: dict[str, Any] | None = None,
) -> uuid.UUID:
    """The row A's POST /api/campaigns writes, started (or scheduled) as A's service will."""
    now = utcnow()
    campaign = Campaign(
        id=uuid.uuid4(),
        workspace_id=shop.workspace_id,
        name="Diwali offer",
        status=cst.DRAFT,
        account_id=shop.account_id,
        template_id=shop.template_id,
        template_name=TEMPLATE["name"],
        template_language=TEMPLATE["language"],
        audience=audience,
        parameters=PARAMETERS if parameters is None else parameters,
        force=False,
        scheduled_at=scheduled_at,
        audience_cursor=0,
        materialized=False,
        created_at=now,
        updated_at=now,
    )
    async with writing(rt.sessionmaker) as session:
        session.add(campaign)
        await session.flush()
        if scheduled_at is not None:
            await engine.schedule(session, campaign)
        elif start:
            await engine.start(session, campaign, now=now)
        await session.commit()
    return campaign.id


async def act(rt: runtime.Runtime, campaign_id: uuid.UUID, action: str) -> Any:
    """pause | resume | cancel | resend_unknown, in a unit of work as A's endpoint runs it."""
    async with writing(rt.sessionmaker) as session:
        campaign = (
            await session.execute(select(Campaign).where(Campaign.id == campaign_id))
        ).scalar_one()
        result = await getattr(engine, action)(session, campaign)
        await session.commit()
    return result


async def campaign_of(rt: runtime.Runtime, campaign_id: uuid.UUID) -> Campaign:
    async with rt.sessionmaker() as session:
        return (
            await session.execute(select(Campaign).where(Campaign.id == campaign_id))
        ).scalar_one()


async def stats_of(rt: runtime.Runtime, campaign_id: uuid.UUID) -> dict[str, Any]:
    async with rt.sessionmaker() as session:
        return await engine.stats(session, campaign_id)


async def recipients_of(rt: runtime.Runtime, campaign_id: uuid.UUID) -> list[CampaignRecipient]:
    async with rt.sessionmaker() as session:
        rows = await session.execute(
            select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)
        )
        return list(rows.scalars().all())


async def messages_of(rt: runtime.Runtime, campaign_id: uuid.UUID) -> list[Message]:
    async with rt.sessionmaker() as session:
        rows = await session.execute(select(Message).where(Message.campaign_id == campaign_id))
        return list(rows.scalars().all())


def adds_up(stats: dict[str, Any]) -> bool:
    return sum(stats[b] for b in cst.STAT_BUCKETS) == stats["total"]
