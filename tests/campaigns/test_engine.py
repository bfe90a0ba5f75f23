"""The campaign engine through a real server in the embedded default (its in-process worker and
reconciler run the campaign; its emulator is Meta and posts signed status webhooks back), on
SQLite and PostgreSQL. The test process writes contacts and the campaign row and calls the
engine's start/pause/resume/cancel as part A's service will (tests/campaigns/kit.py)."""

from __future__ import annotations

import asyncio
import time
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
    start_campaign_server,
    stats_of,
    wait_for,
)
from tests.servers import Server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def campaign_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The embedded default, its reconciler every half second and its emulator at 1,000
    messages a second (kit.start_campaign_server)."""
    srv = start_campaign_server(request.param, tmp_path_factory.mktemp("campaigns"), "campaigns")
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
    _, stats = wait_for(
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
            assert all(
                r.sends == 1 and r.message_id and r.sent_at for r in rows if r.status == "read"
            )
            msgs = await messages_of(rt, cid)  # type: ignore[arg-type]
            assert len(msgs) == eligible and {m.status for m in msgs} == {"read"}

    run(check_rows())


# -- the campaign's life: a person's actions, its schedule, the engine's own pauses -------------

SLOW = 25  # messages a second: time to act while it runs


def _setup(
    server: Server, n: int, throughput: int = SLOW
) -> tuple[object, list[str], dict[str, int]]:
    shop = open_shop(server, throughput=throughput)
    numbers = phones(n)

    async def go() -> dict[str, int]:
        async with local_runtime(server) as rt:
            return await add_contacts(rt, shop, numbers)

    return shop, numbers, run(go())  # type: ignore[return-value]


def _start(server: Server, shop: object, ids: dict[str, int], **kw: object) -> object:
    async def go() -> object:
        async with local_runtime(server) as rt:
            return await new_campaign(rt, shop, {"contact_pks": sorted(ids.values())}, **kw)  # type: ignore[arg-type]

    return run(go())


def _do(server: Server, cid: object, action: str) -> object:
    async def go() -> object:
        async with local_runtime(server) as rt:
            return await act(rt, cid, action)  # type: ignore[arg-type]

    return run(go())


def _state(server: Server, cid: object) -> tuple[object, dict[str, object]]:
    async def go() -> tuple[object, dict[str, object]]:
        async with local_runtime(server) as rt:
            return await campaign_of(rt, cid), await stats_of(rt, cid)  # type: ignore[arg-type]

    return run(go())  # type: ignore[return-value]


def _stops_within_a_second(shop: object, numbers: list[str]) -> int:
    """The emulator's count for these numbers a second after the action, and that it then
    stays (polled for another 1.5 s)."""
    time.sleep(1.0)  # the engine's promise: within 1 s
    settled = len(shop.sent(set(numbers)))  # type: ignore[attr-defined]
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert len(shop.sent(set(numbers))) == settled  # type: ignore[attr-defined]
        time.sleep(0.25)
    return settled


def test_pause_then_resume(campaign_server: Server) -> None:
    shop, numbers, ids = _setup(campaign_server, 150)
    cid = _start(campaign_server, shop, ids)
    wait_for(lambda: len(shop.sent(set(numbers))) >= 20, "20 messages")  # type: ignore[attr-defined]
    _do(campaign_server, cid, "pause")
    held = _stops_within_a_second(shop, numbers)
    assert held < len(numbers)
    campaign, stats = _state(campaign_server, cid)
    assert campaign.status == cst.PAUSED and campaign.status_reason is None  # type: ignore[attr-defined]
    assert stats["pending"] == len(numbers) - held or stats["pending"] >= len(numbers) - held - 50
    _do(campaign_server, cid, "resume")
    wait_for(
        lambda: (
            (c := _state(campaign_server, cid))[0].status == cst.COMPLETED  # type: ignore[attr-defined]
            and c[1]["read"] == len(numbers)
        ),
        "the resumed campaign to complete",
    )
    sent = Counter(m["to"] for m in shop.sent(set(numbers)))  # type: ignore[attr-defined]
    assert sent == {p.lstrip("+"): 1 for p in numbers}


def test_cancel(campaign_server: Server) -> None:
    shop, numbers, ids = _setup(campaign_server, 150)
    cid = _start(campaign_server, shop, ids)
    wait_for(lambda: len(shop.sent(set(numbers))) >= 20, "20 messages")  # type: ignore[attr-defined]
    _do(campaign_server, cid, "cancel")
    got = _stops_within_a_second(shop, numbers)
    campaign, stats = wait_for(
        lambda: (
            (c := _state(campaign_server, cid))[0].completed_at is not None  # type: ignore[attr-defined]
            and c[1]["pending"] == 0
            and c
        ),
        "the cancelled campaign to wind up",
    )
    assert campaign.status == cst.CANCELLED and adds_up(stats), stats  # type: ignore[attr-defined]
    assert stats["skipped_reasons"]["cancelled"] == len(numbers) - got, stats
    assert stats["skipped"] == len(numbers) - got
    sent = Counter(m["to"] for m in shop.sent(set(numbers)))  # type: ignore[attr-defined]
    assert len(sent) == got and set(sent.values()) == {1}


def test_scheduled_start_and_stale_schedule(campaign_server: Server) -> None:
    shop, numbers, ids = _setup(campaign_server, 20, throughput=1000)
    soon = _start(campaign_server, shop, ids, scheduled_at=utcnow() + timedelta(seconds=1))
    stale = _start(campaign_server, shop, ids, scheduled_at=utcnow() - timedelta(hours=7))
    assert _state(campaign_server, soon)[0].status == cst.SCHEDULED  # type: ignore[attr-defined]
    campaign, _ = wait_for(
        lambda: (c := _state(campaign_server, stale))[0].status == cst.FAILED and c,  # type: ignore[attr-defined]
        "the stale schedule to fail",
    )
    assert campaign.status_reason == cst.STALE_SCHEDULE and campaign.started_at is None  # type: ignore[attr-defined]
    campaign, stats = wait_for(
        lambda: (c := _state(campaign_server, soon))[0].status == cst.COMPLETED and c,  # type: ignore[attr-defined]
        "the scheduled campaign to start and complete",
    )
    assert campaign.started_at >= campaign.scheduled_at  # type: ignore[attr-defined]
    assert stats["total"] == 20 and stats["skipped"] == 0 and adds_up(stats)
    assert len(shop.sent(set(numbers))) == 20  # type: ignore[attr-defined]
    assert _state(campaign_server, stale)[1]["total"] == 0


def test_opt_out_mid_campaign(campaign_server: Server) -> None:
    shop, numbers, ids = _setup(campaign_server, 120)
    cid = _start(campaign_server, shop, ids)
    wait_for(lambda: len(shop.sent(set(numbers))) >= 10, "10 messages")  # type: ignore[attr-defined]
    late = numbers[-10:]  # the highest contact ids: sent last

    async def stop() -> None:
        async with local_runtime(campaign_server) as rt, writing(rt.sessionmaker) as session:
            for p in late:
                await contacts.opt_out(session, shop.workspace_id, ids[p], "stop_keyword")  # type: ignore[attr-defined]
            await session.commit()

    run(stop())
    _, stats = wait_for(
        lambda: (c := _state(campaign_server, cid))[0].status == cst.COMPLETED and c,  # type: ignore[attr-defined]
        "the campaign to complete",
    )
    assert stats["skipped_reasons"] == {"opted_out": 10}, stats
    sent = {m["to"] for m in shop.sent(set(numbers))}  # type: ignore[attr-defined]
    assert not sent & {p.lstrip("+") for p in late}
    assert len(sent) == len(numbers) - 10


def test_retarget_the_failed_recipients_of_a_finished_campaign(campaign_server: Server) -> None:
    shop, numbers, ids = _setup(campaign_server, 40, throughput=1000)
    unreachable = numbers[:8]
    config = f"{campaign_server.url}/emulator/_emulator/config"
    r = httpx.post(config, json={"not_on_whatsapp": ",".join(p.lstrip("+") for p in unreachable)})
    assert r.status_code == 200, r.text
    try:
        first = _start(campaign_server, shop, ids)
        _, stats = wait_for(
            lambda: (
                (c := _state(campaign_server, first))[0].status == cst.COMPLETED  # type: ignore[attr-defined]
                and c[1]["failed"] == 8
                and c
            ),
            "the first campaign to complete with its failures",
        )
        assert stats["failed_codes"] == {"131026": 8}, stats

        async def retarget() -> object:
            async with local_runtime(campaign_server) as rt:
                audience = {"from_campaign": {"id": str(first), "statuses": ["failed"]}}
                return await new_campaign(rt, shop, audience)  # type: ignore[arg-type]

        second = run(retarget())
        wait_for(
            lambda: _state(campaign_server, second)[0].status == cst.COMPLETED,  # type: ignore[attr-defined]
            "the retargeted campaign to complete",
        )

        async def phones_of() -> set[str]:
            async with local_runtime(campaign_server) as rt:
                return {r.phone for r in await recipients_of(rt, second)}  # type: ignore[arg-type]

        assert run(phones_of()) == set(unreachable)
    finally:
        httpx.post(config, json={"not_on_whatsapp": ""})


def test_a_template_paused_by_meta_pauses_the_campaign(campaign_server: Server) -> None:
    shop, numbers, ids = _setup(campaign_server, 150)
    cid = _start(campaign_server, shop, ids)
    wait_for(lambda: len(shop.sent(set(numbers))) >= 10, "10 messages")  # type: ignore[attr-defined]
    r = httpx.post(
        f"{campaign_server.url}/emulator/_emulator/templates/{shop.template_meta_id}/status",  # type: ignore[attr-defined]
        json={"status": "PAUSED", "reason": "LOW_QUALITY"},
    )
    assert r.status_code == 200, r.text
    campaign, stats = wait_for(
        lambda: (c := _state(campaign_server, cid))[0].status == cst.PAUSED and c,  # type: ignore[attr-defined]
        "the campaign to pause",
    )
    assert campaign.status_reason == cst.TEMPLATE_NOT_APPROVED, campaign.status_detail  # type: ignore[attr-defined]
    assert stats["pending"] > 0 and adds_up(stats)
