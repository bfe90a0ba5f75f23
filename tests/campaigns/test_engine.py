"""The campaign engine through a real server in the embedded default (its in-process worker and
reconciler run the campaign; its emulator is Meta and posts signed status webhooks back), on
SQLite and PostgreSQL. The test process writes contacts and the campaign row and calls the
engine's start/pause/resume/cancel as part A's service will (tests/campaigns/kit.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from aisoule.campaigns import status as cst
from aisoule.contacts import service as contacts
from aisoule.db.engine import writing
from aisoule.kit.time import utcnow
from tests.campaigns.kit import (
    act,
    add_contacts,
    adds_up,
    campaign_of,
    local_runtime,
    messages_of,
    new_campaign,
    open_shop,
    phones,
    recipients_of,
    stats_of,
    wait_for,
)
from tests.servers import Server, make_server, pg_url, reset_postgres, sibling_postgres


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def campaign_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The embedded default, its reconciler every half second (it starts dispatchers and
    materialisers the test's start asked for) and its emulator at 1,000 messages a second."""
    url: str | None = None
    if request.param == "postgresql":
        try:
            url = sibling_postgres(pg_url(), "campaigns")
            reset_postgres(url)
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    srv = make_server(
        request.param,
        tmp_path_factory.mktemp("campaigns"),
        database_url=url,
        AISOULE_RECONCILE_SECONDS="0.5",
        AISOULE_CAMPAIGN_LEASE_SECONDS="2",
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND="1000",
        AISOULE_EMULATOR_WEBHOOK_LATENCY_MS="10",
    )
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_1000_recipient_campaign_sends_each_eligible_one_exactly_once(
    campaign_server: Server,
) -> None:
    shop = open_shop(campaign_server)
    numbers = phones(1000)
    opted_out, nameless = set(numbers[:20]), set(numbers[20:30])

    async def prepare() -> object:
        async with local_runtime(campaign_server) as rt:
            ids = await add_contacts(rt, shop, numbers[30:])
            ids |= await add_contacts(rt, shop, sorted(nameless), first_name="")
            ids |= await add_contacts(rt, shop, sorted(opted_out))
            async with writing(rt.sessionmaker) as session:
                for p in opted_out:
                    await contacts.opt_out(session, shop.workspace_id, ids[p], "stop_keyword")
                await session.commit()
            return await new_campaign(rt, shop, {"contact_pks": sorted(ids.values())})

    cid = run(prepare())

    async def state() -> tuple[str, dict[str, object]]:
        async with local_runtime(campaign_server) as rt:
            return (await campaign_of(rt, cid)).status, await stats_of(rt, cid)  # type: ignore[arg-type]

    eligible = 1000 - len(opted_out) - len(nameless)
    status, stats = wait_for(
        lambda: (s := run(state()))[0] == cst.COMPLETED and s[1]["read"] == eligible and s,
        "the campaign to complete and every message to be read",
        timeout=90,
    )
    assert stats["total"] == 1000 and adds_up(stats), stats
    assert stats["skipped"] == 30 and stats["pending"] == 0 and stats["failed"] == 0, stats
    assert stats["skipped_reasons"] == {"opted_out": 20, "missing_variable": 10}, stats

    sent = shop.sent(set(numbers))
    assert Counter(m["to"] for m in sent) == {p.lstrip("+"): 1 for p in numbers[30:]}
    for m in sent:  # each with its own variables
        (body,) = m["payload"]["template"]["components"]
        texts = [p["text"] for p in body["parameters"]]
        assert texts == [f"P{m['to'][-6:]}", f"C{m['to'][-6:]}"], m

    async def check_rows() -> None:
        async with local_runtime(campaign_server) as rt:
            rows = await recipients_of(rt, cid)  # type: ignore[arg-type]
            by_status = Counter((r.status, r.reason) for r in rows)
            assert by_status == {
                ("read", None): eligible,
                ("skipped", "opted_out"): 20,
                ("skipped", "missing_variable"): 10,
            }
            assert all(r.sends == 1 and r.message_id and r.sent_at for r in rows if r.status == "read")
            msgs = await messages_of(rt, cid)  # type: ignore[arg-type]
            assert len(msgs) == eligible and {m.status for m in msgs} == {"read"}

    run(check_rows())
