"""What a campaign does with Meta's answers beyond "sent": a lost outcome stays ``unknown`` until a
person resends it, replies within 72 h are counted once, account-level errors and a high failure
rate pause the campaign with the reason. Through a real server in the embedded default (its
worker runs the campaign, its emulator is Meta), on SQLite and PostgreSQL; the test process writes
contacts and the campaign row and calls the engine as part A's service will (kit.py).

Time is not waited for: the quiet period before a resend is a setting of the test's own runtime
(as an operator would set it), and "more than 72 h ago" is a recipient whose ``sent_at`` is
moved back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select, update

from aisoule.campaigns import status as cst
from aisoule.db.engine import writing
from aisoule.kit.time import utcnow
from aisoule.models import Campaign, CampaignRecipient, Message, WhatsAppAccount
from tests.campaigns.kit import (
    Shop,
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

T = TypeVar("T")
# The server's read timeout, and how late the emulator answers when a test wants the answer lost.
READ_TIMEOUT = 2
LATE_MS = 4000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The embedded default (kit.start_campaign_server) with a short read timeout (an answer
    later than 2 s is lost: the outcome is unknown), batches of 50 and a failure window of 50
    answers (the failure rate is looked at every 50 recipients)."""
    srv = start_campaign_server(
        request.param,
        tmp_path_factory.mktemp("outcomes"),
        "outcomes",
        AISOULE_WHATSAPP_READ_TIMEOUT=str(READ_TIMEOUT),
        AISOULE_CAMPAIGN_BATCH_SIZE="50",
        AISOULE_CAMPAIGN_FAILURE_WINDOW="50",
    )
    yield srv
    srv.stop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def prepare(
    server: Server, n: int, throughput: int = 1000
) -> tuple[Shop, list[str], dict[str, int]]:
    shop = open_shop(server, throughput=throughput)
    numbers = phones(n)

    async def go() -> dict[str, int]:
        async with local_runtime(server) as rt:
            return await add_contacts(rt, shop, numbers)

    return shop, numbers, run(go())


def start(server: Server, shop: Shop, ids: dict[str, int]) -> Any:
    async def go() -> Any:
        async with local_runtime(server) as rt:
            return await new_campaign(rt, shop, {"contact_pks": sorted(ids.values())})

    return run(go())


def state(server: Server, cid: Any) -> tuple[Campaign, dict[str, Any]]:
    async def go() -> tuple[Campaign, dict[str, Any]]:
        async with local_runtime(server) as rt:
            return await campaign_of(rt, cid), await stats_of(rt, cid)

    return run(go())


def do(server: Server, cid: Any, action: str, **settings: Any) -> Any:
    async def go() -> Any:
        async with local_runtime(server, **settings) as rt:
            return await act(rt, cid, action)

    return run(go())


def until(
    server: Server, cid: Any, what: str, ok: Callable[[Campaign, dict[str, Any]], bool]
) -> tuple[Campaign, dict[str, Any]]:
    """Poll the campaign (and its stats) until ``ok(campaign, stats)``."""

    def check() -> tuple[Campaign, dict[str, Any]] | None:
        found = state(server, cid)
        return found if ok(*found) else None

    found: tuple[Campaign, dict[str, Any]] = wait_for(check, what)
    return found


def emulator(server: Server, path: str, **body: Any) -> dict[str, Any]:
    url = f"{server.url}/emulator/_emulator/{path}"
    r = httpx.post(url, json=body, timeout=30) if body else httpx.get(url, timeout=30)
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


# -- a lost outcome --------------------------------------------------------------------------------


def test_a_lost_outcome_stays_unknown_until_a_person_resends_it(server: Server) -> None:
    shop, numbers, ids = prepare(server, 5)
    webhook_url = emulator(server, "config")["webhook_url"]
    # Meta takes each message, but its answer comes after the read timeout and no status webhook
    # follows: nothing tells us whether the message went.
    emulator(server, "config", webhook_url="", api_latency_ms=LATE_MS)
    try:
        cid = start(server, shop, ids)
        campaign, stats = until(
            server,
            cid,
            "every send to end unknown",
            lambda c, s: c.status == cst.COMPLETED and s["unknown"] == 5,
        )
    finally:
        emulator(server, "config", webhook_url=webhook_url, api_latency_ms=0)
    assert stats["total"] == 5 and adds_up(stats) and stats["resent"] == 0, stats
    assert Counter(m["to"] for m in shop.sent(set(numbers))) == {p[1:]: 1 for p in numbers}

    async def rows() -> tuple[list[CampaignRecipient], list[Message]]:
        async with local_runtime(server) as rt:
            return await recipients_of(rt, cid), await messages_of(rt, cid)

    recipients, msgs = run(rows())
    assert {(r.status, r.sends) for r in recipients} == {(cst.R_UNKNOWN, 1)}
    assert {m.status for m in msgs} == {"unknown"} and len(msgs) == 5

    # Never resent by itself: the reconciler runs every half second, the campaign stays as it is.
    time.sleep(1.5)
    assert len(shop.sent(set(numbers))) == 5
    assert state(server, cid)[0].status == cst.COMPLETED
    # Not yet quiet (30 minutes by default): a resend now would race a late status webhook.
    assert do(server, cid, "resend_unknown") == 0
    assert state(server, cid)[1]["resent"] == 0

    # After the quiet period, one explicit action sends each once more, with a new reference.
    assert do(server, cid, "resend_unknown", campaign_unknown_quiet_minutes=0) == 5
    campaign, stats = until(
        server,
        cid,
        "the resent messages to be read",
        lambda c, s: c.status == cst.COMPLETED and s["read"] == 5,
    )
    assert stats["resent"] == 5 and stats["unknown"] == 0 and adds_up(stats), stats
    assert campaign.completed_at is not None
    sent = shop.sent(set(numbers))
    assert Counter(m["to"] for m in sent) == {p[1:]: 2 for p in numbers}
    refs = Counter(m["payload"]["biz_opaque_callback_data"].split(".")[1] for m in sent)
    assert refs == {"1": 5, "2": 5}, refs
    recipients, msgs = run(rows())
    assert {(r.status, r.sends) for r in recipients} == {(cst.R_READ, 2)}
    assert Counter(m.status for m in msgs) == {"unknown": 5, "read": 5}
    # Once: nothing is unknown any more.
    assert do(server, cid, "resend_unknown", campaign_unknown_quiet_minutes=0) == 0
    assert state(server, cid)[1]["resent"] == 5


# -- replies ---------------------------------------------------------------------------------------


def test_a_reply_within_72_hours_counts_once(server: Server) -> None:
    shop, numbers, ids = prepare(server, 3)
    cid = start(server, shop, ids)
    until(
        server, cid, "every message read", lambda c, s: c.status == cst.COMPLETED and s["read"] == 3
    )
    prompt, twice, late = numbers

    async def age() -> None:  # its message went 73 hours ago
        async with local_runtime(server) as rt, writing(rt.sessionmaker) as session:
            await session.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.campaign_id == cid, CampaignRecipient.phone == late)
                .values(sent_at=utcnow() - timedelta(hours=73))
            )
            await session.commit()

    run(age())
    for phone, text in (
        (prompt, "Thanks!"),
        (twice, "Is it valid online?"),
        (twice, "And in store?"),
        (late, "Hi"),
    ):
        emulator(
            server,
            "inbound",
            **{"from": phone[1:], "phone_number_id": shop.phone_number_id, "text": text},
        )

    async def inbound() -> int:
        async with local_runtime(server) as rt, rt.sessionmaker() as session:
            n = await session.execute(
                select(func.count())
                .select_from(Message)
                .where(Message.workspace_id == shop.workspace_id, Message.direction == "inbound")
            )
            return int(n.scalar_one())

    # A reply is counted in the transaction that records the inbound message.
    wait_for(lambda: run(inbound()) == 4, "the four inbound messages")
    _, stats = state(server, cid)
    assert stats["replied"] == 2 and adds_up(stats) and stats["read"] == 3, stats

    async def replied() -> dict[str, bool]:
        async with local_runtime(server) as rt:
            return {r.phone: r.replied_at is not None for r in await recipients_of(rt, cid)}

    assert run(replied()) == {prompt: True, twice: True, late: False}


# -- the engine's own pauses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "said"),
    [(190, "access token"), (131031, "locked")],
    ids=["token_expired", "account_locked"],
)
def test_an_account_error_pauses_the_campaign(server: Server, code: int, said: str) -> None:
    shop, numbers, ids = prepare(server, 80, throughput=40)
    cid = start(server, shop, ids)
    wait_for(lambda: len(shop.sent(set(numbers))) >= 10, "10 messages")
    emulator(server, "fail", code=code, count=1)  # the next send: Meta refuses the account
    # Paused, and its dispatcher gone (the sends it had in flight answered).
    campaign, stats = until(
        server,
        cid,
        "the campaign to pause",
        lambda c, s: c.status == cst.PAUSED and c.lease_owner is None,
    )
    assert campaign.status_reason == cst.ACCOUNT_ERROR, campaign.status_detail
    detail = campaign.status_detail or ""
    assert said in detail and str(code) in detail and "resume" in detail, detail
    assert stats["failed_codes"] == {str(code): 1} and stats["pending"] > 0 and adds_up(stats), (
        stats
    )
    held = len(shop.sent(set(numbers)))
    assert held < len(numbers)

    # The account is marked as needing a person; resuming before it is fixed pauses again.
    async def account_status() -> str:
        async with local_runtime(server) as rt, rt.sessionmaker() as session:
            found = await session.execute(
                select(WhatsAppAccount.status).where(WhatsAppAccount.id == shop.account_id)
            )
            return str(found.scalar_one())

    assert run(account_status()) == "token_invalid"
    do(server, cid, "resume")
    campaign, _ = until(
        server,
        cid,
        "the campaign to pause again",
        lambda c, s: c.status == cst.PAUSED and c.status_detail != detail and c.lease_owner is None,
    )
    assert campaign.status_reason == cst.ACCOUNT_ERROR and "refused" in (
        campaign.status_detail or ""
    )
    assert len(shop.sent(set(numbers))) == held  # it sent nothing before pausing


def test_a_high_failure_rate_pauses_the_campaign(server: Server) -> None:
    shop, numbers, ids = prepare(server, 300, throughput=100)
    # About four sends in five fail at once with 131026 (undeliverable), from a seeded plan. In
    # the send's answer, not by a later webhook: a webhook could come after the dispatcher has
    # claimed everything (the campaign would complete, nothing left to pause). The dispatcher
    # keeps at most two chunks of 30 unrecorded, so by its 4th batch of 50 it has seen more than
    # the window's 50 answers, with 150 of the 300 still pending.
    rule = {"code": 131026, "mode": "sync", "probability": 0.8, "seed": 7}
    emulator(server, "faults", phone_number_id=shop.phone_number_id, rules=[rule])
    try:
        cid = start(server, shop, ids)
        campaign, stats = until(
            server, cid, "the campaign to pause", lambda c, s: c.status == cst.PAUSED
        )
    finally:
        emulator(server, "faults", phone_number_id=shop.phone_number_id, rules=[])
    assert campaign.status_reason == cst.FAILURE_RATE, campaign.status_detail
    assert "failed" in (campaign.status_detail or "") and "50%" in (campaign.status_detail or "")
    assert stats["pending"] > 0 and adds_up(stats), stats
    assert set(stats["failed_codes"]) == {"131026"} and stats["failed"] >= 26, stats
    sent = {m["to"] for m in shop.sent(set(numbers))}
    assert len(sent) < len(numbers)
