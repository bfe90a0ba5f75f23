"""A campaign through Meta's faults: while the emulator answers 130429, 131049 (as an error answer
and, as Meta usually reports it, as a ``failed`` status webhook after accepting), 131056, 500, 503
and timeouts (the message taken, the answer after our client gave up), every recipient ends
``read``, ``failed`` with Meta's code and details, ``skipped`` with a reason, or ``unknown`` only
where Meta never took the message (an answer we did not hear: nothing will ever settle it); each
timed-out send Meta took is settled by its status webhooks' biz_opaque_callback_data; nothing is
taken twice; the pair rate is never exceeded; the stats add up. Through a real server in the
embedded default (its worker runs the campaign, its emulator is Meta and posts signed status
webhooks back), on SQLite and PostgreSQL, with the status webhooks arriving before our worker
records Meta's answers (10 ms) or after our client's read timeout (3 s).

The faults are planned (``/_emulator/faults``: ``every``, a seeded ``probability``, or every send
to one person), never provoked by load. Every expectation is derived from what the emulator says
it answered (``/_emulator/attempts``, ``/accepted``, ``/pairs``, ``/webhooks``), so the order in
which concurrent sends reach it does not matter, nor does a machine so loaded that one of its
answers comes after our read timeout.

Time: the 24 h a 131049 waits is not waited for. The test checks that the engine queued each
131049 retry for no sooner than 24 h after Meta's answer and sent nothing meanwhile, then moves
those messages' ``next_attempt_at`` into the past in the database (as the day passing would) and
lets the server's own reconciler and dispatcher send them: Meta answers 131049 again, and with
``AISOULE_MARKETING_LIMIT_RETRIES`` at its default (1) the recipients end failed with 131049."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select, update

from aisoule import runtime
from aisoule.campaigns import status as cst
from aisoule.contacts import service as contacts
from aisoule.db.engine import writing
from aisoule.kit.time import utcnow
from aisoule.models import CampaignRecipient, Message, MessageStatusEvent
from tests.campaigns.kit import (
    Shop,
    add_contacts,
    campaign_of,
    local_runtime,
    new_campaign,
    open_shop,
    phones,
    recipients_of,
    start_campaign_server,
    stats_of,
)
from tests.servers import Server

T = TypeVar("T")

READ_TIMEOUT = 2.0  # ours: an answer later than this is lost (the outcome is unknown)
LATE_MS = 4000  # how late the emulator answers a send it "times out"
PAIR_PERIOD = 1.2  # ours (AISOULE_PAIR_PERIOD_SECONDS, no burst)
META_PAIR_PERIOD = 1.0  # the emulator's (one message per second to one person, no burst)
MARKETING_LIMIT = 131049

AUDIENCE = 300  # reachable recipients of the main campaign
OVERLAP = 30  # of them also in a second campaign running at the same time (the pair rate)
SYNC_LIMITED = 4  # answered 131049 on every send
HOOK_LIMITED = 4  # accepted, then failed with 131049 by webhook, on every send


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The embedded default (kit.start_campaign_server) with what keeps a fault-ridden campaign
    quick without changing what is asserted: backoff from 0.2 s (at most 1 s), a 2 s read
    timeout, a 1.2 s pair period of ours against the emulator's 1 s (both without a burst),
    batches of 200 (the account's pace is 500 msg/s: chunks of 50, six in flight; the emulator
    takes 1,000 a second)."""
    srv = start_campaign_server(
        request.param,
        tmp_path_factory.mktemp("faults"),
        "faults",
        AISOULE_WHATSAPP_READ_TIMEOUT=str(READ_TIMEOUT),
        AISOULE_SEND_BACKOFF_BASE_SECONDS="0.2",
        AISOULE_SEND_BACKOFF_MAX_SECONDS="1",
        AISOULE_PAIR_PERIOD_SECONDS=str(PAIR_PERIOD),
        AISOULE_PAIR_BURST="1",
        AISOULE_EMULATOR_PAIR_BURST="1",
        AISOULE_EMULATOR_PAIR_PERIOD_SECONDS=str(META_PAIR_PERIOD),
        AISOULE_CAMPAIGN_BATCH_SIZE="200",
    )
    yield srv
    srv.stop()


async def until(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 90.0) -> Any:
    """Poll ``check`` until it answers something truthy, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class Meta:
    """The emulator's control API for the shop's number."""

    def __init__(self, shop: Shop, client: httpx.AsyncClient) -> None:
        self.shop, self.client = shop, client

    async def get(self, path: str) -> Any:
        r = await self.client.get(
            self.shop.emulator(path), params={"phone_number_id": self.shop.phone_number_id}
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.client.post(self.shop.emulator(path), json=body)
        assert r.status_code == 200, r.text
        return r.json()

    async def taken(self) -> dict[str, list[dict[str, Any]]]:
        """biz_opaque_callback_data → the sends Meta took with it (timeouts included)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in (await self.get("accepted"))["data"]:
            out.setdefault(row["biz_opaque_callback_data"], []).append(row)
        return out

    async def statuses(self) -> list[dict[str, Any]]:
        """The status webhooks posted about the shop's number and answered 2xx."""
        r = await self.client.get(self.shop.emulator("webhooks"))
        assert r.status_code == 200, r.text
        out: list[dict[str, Any]] = []
        for delivery in r.json()["data"]:
            if not (delivery["status"] and 200 <= delivery["status"] < 300):
                continue
            for entry in delivery["body"].get("entry", []):
                for change in entry.get("changes", []):
                    value = change.get("value") or {}
                    number = (value.get("metadata") or {}).get("phone_number_id")
                    if number == self.shop.phone_number_id:
                        out.extend(value.get("statuses") or [])
        return out


@dataclass
class Plan:
    """Who is in which campaign, and what the emulator does to them."""

    audiences: dict[Any, set[str]]
    skipped: dict[str, str]  # phone → skip reason
    sync_limited: set[str]
    hook_limited: set[str]
    rules: list[dict[str, Any]]
    limited: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.limited = self.sync_limited | self.hook_limited


def ref_of(r: CampaignRecipient) -> str:
    return f"{r.id}.1"  # its first (and, without resend-unknown, only) message's reference


def lost(r: CampaignRecipient, taken: dict[str, list[dict[str, Any]]]) -> bool:
    """Unknown, and Meta never took its message: an answer (an error) we did not hear."""
    return r.status == cst.R_UNKNOWN and not taken.get(ref_of(r))


@pytest.mark.parametrize("webhook_latency_ms", [10, 3000], ids=["webhooks_first", "webhooks_late"])
def test_a_campaign_through_metas_faults(server: Server, webhook_latency_ms: int) -> None:
    asyncio.run(_through_faults(server, webhook_latency_ms))


async def _through_faults(server: Server, webhook_latency_ms: int) -> None:
    shop = open_shop(server, throughput=500)
    numbers = phones(AUDIENCE + 12)
    reachable, opted_out, nameless = numbers[:AUDIENCE], numbers[AUDIENCE:-6], numbers[-6:]
    sync_limited = reachable[:SYNC_LIMITED]
    hook_limited = reachable[SYNC_LIMITED : SYNC_LIMITED + HOOK_LIMITED]
    both = reachable[-OVERLAP:]  # in the second campaign too
    rules: list[dict[str, Any]] = [
        *({"code": MARKETING_LIMIT, "mode": "sync", "to": p} for p in sync_limited),
        *({"code": MARKETING_LIMIT, "mode": "webhook", "to": p} for p in hook_limited),
        {"code": 130429, "every": 13},
        {"code": 500, "every": 19},
        {"code": 503, "probability": 0.04, "seed": 7},
        {"code": 131056, "every": 23},
        {"code": "timeout", "every": 29, "times": 8, "delay_ms": LATE_MS},
    ]

    async with local_runtime(server) as rt, httpx.AsyncClient(timeout=60) as client:
        meta = Meta(shop, client)
        await meta.post("config", {"webhook_latency_ms": webhook_latency_ms})
        try:
            await meta.post("faults", {"phone_number_id": shop.phone_number_id, "rules": rules})
            ids = await add_contacts(rt, shop, reachable)
            ids |= await add_contacts(rt, shop, nameless, first_name="")
            ids |= await add_contacts(rt, shop, opted_out)
            async with writing(rt.sessionmaker) as session:
                for p in opted_out:
                    await contacts.opt_out(session, shop.workspace_id, ids[p], "stop_keyword")
                await session.commit()
            main = await new_campaign(rt, shop, {"contact_pks": sorted(ids.values())})
            second = await new_campaign(rt, shop, {"contact_pks": sorted(ids[p] for p in both)})
            plan = Plan(
                {main: set(numbers), second: set(both)},
                {
                    **dict.fromkeys(opted_out, "opted_out"),
                    **dict.fromkeys(nameless, "missing_variable"),
                },
                set(sync_limited),
                set(hook_limited),
                rules,
            )
            await _run(rt, meta, plan, main, second)
            await _check(rt, meta, plan, webhook_latency_ms)
        finally:
            await meta.post("config", {"webhook_latency_ms": 10})
            await meta.post("faults", {"phone_number_id": shop.phone_number_id, "rules": []})


async def _messages(rt: runtime.Runtime, campaign_ids: list[Any]) -> list[Message]:
    async with rt.sessionmaker() as session:
        rows = await session.execute(select(Message).where(Message.campaign_id.in_(campaign_ids)))
        return list(rows.scalars().all())


async def _run(rt: runtime.Runtime, meta: Meta, plan: Plan, main: Any, second: Any) -> None:
    """Until everything but the 131049 retries is settled; check those wait a day, then let the
    day pass (their next_attempt_at moved into the past) and wait for the rest."""
    progress: list[Any] = []

    async def recipients() -> list[CampaignRecipient]:
        return [r for cid in plan.audiences for r in await recipients_of(rt, cid)]

    async def quiet() -> bool:
        """The counters (a cheap read) say nothing is on its way but the retries: nobody between
        Meta's accept and its read, at most the 131049 recipients waiting."""
        for cid in plan.audiences:
            stats = await stats_of(rt, cid)
            if stats["sent"] or stats["delivered"] or stats["pending"] > len(plan.limited):
                progress[:] = [stats]
                return False
        return True

    async def settled_but_the_retries() -> list[str] | None:
        if not await quiet():
            return None
        rows, taken = await recipients(), await meta.taken()
        waiting = [r for r in rows if r.phone in plan.limited and r.status == cst.R_QUEUED]
        open_ = [
            (r.phone, r.status)
            for r in rows
            if r not in waiting and not (_final(r) or lost(r, taken))
        ]
        progress[:] = [Counter(r.status for r in rows), open_[:10]]
        return None if open_ else [r.phone for r in waiting]

    try:
        waiting = set(
            await until(settled_but_the_retries, "everything but the 131049 retries to settle")
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {progress}; {await _explain(rt, meta, plan)}") from None
    assert (await campaign_of(rt, second)).status == cst.COMPLETED
    assert (await campaign_of(rt, main)).status == cst.RUNNING  # it waits for the retries
    # Each kind waits for a retry (a 131049 answer lost to a stalled machine is unknown instead).
    assert waiting & plan.sync_limited and waiting & plan.hook_limited, waiting

    # Each 131049 retry waits no sooner than 24 h after Meta's answer, and nothing was sent to
    # those people meanwhile (the server's reconciler ran every half second all along).
    first_at: dict[str, datetime] = {}
    for a in (await meta.get("attempts"))["data"]:
        if (p := "+" + a["to"]) in plan.limited:
            assert p not in first_at, ("sent again before the day passed", a)
            first_at[p] = datetime.fromtimestamp(a["at"], UTC)
    held = [m for m in await _messages(rt, [main]) if m.status == "queued"]
    assert {m.phone for m in held} == waiting
    for m in held:
        assert m.error is not None and m.error["code"] == MARKETING_LIMIT, m.error
        assert m.next_attempt_at is not None
        day = first_at[m.phone] + timedelta(hours=24)
        assert day <= m.next_attempt_at <= day + timedelta(minutes=10), (m.phone, m.next_attempt_at)

    # The day passes.
    async with writing(rt.sessionmaker) as session:
        await session.execute(
            update(Message)
            .where(Message.id.in_([m.id for m in held]))
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    async def done() -> bool:
        if (await campaign_of(rt, main)).status != cst.COMPLETED or not await quiet():
            return False
        taken = await meta.taken()
        return all(_final(r) or lost(r, taken) for r in await recipients())

    await until(done, "the 131049 retries to settle and the campaign to complete")


def _final(r: CampaignRecipient) -> bool:
    return r.status in (cst.R_READ, cst.R_FAILED, cst.R_SKIPPED)


async def _explain(rt: runtime.Runtime, meta: Meta, plan: Plan) -> list[Any]:
    """What happened to a few recipients still open: their messages, histories, and what Meta
    answered and said about them."""
    attempts = (await meta.get("attempts"))["data"]
    statuses = await meta.statuses()
    taken = await meta.taken()
    out: list[Any] = []
    async with rt.sessionmaker() as session:
        for cid in plan.audiences:
            for r in await recipients_of(rt, cid):
                if _final(r) or lost(r, taken) or r.phone in plan.limited or len(out) >= 5:
                    continue
                m = await session.get(Message, r.message_id) if r.message_id else None
                if m is None:
                    out.append((r.phone, r.status, None))
                    continue
                events = await session.execute(
                    select(MessageStatusEvent.status).where(MessageStatusEvent.message_id == m.id)
                )
                tried = [a for a in attempts if a["biz_opaque_callback_data"] == m.recipient_ref]
                wamids = {a.get("id") for a in tried}
                out.append(
                    {
                        "recipient": (r.phone, r.status, m.recipient_ref),
                        "message": (m.status, m.wamid, m.attempts, m.error),
                        "history": list(events.scalars().all()),
                        "meta": tried,
                        "webhooks": [(s["id"], s["status"]) for s in statuses if s["id"] in wamids],
                    }
                )
    return out


async def _check(rt: runtime.Runtime, meta: Meta, plan: Plan, webhook_latency_ms: int) -> None:
    attempts = (await meta.get("attempts"))["data"]
    accepted = await meta.get("accepted")
    taken = await meta.taken()
    pairs = await meta.get("pairs")
    faults = (await meta.get("faults"))["data"][meta.shop.phone_number_id]
    statuses = await meta.statuses()
    messages = {m.id: m for m in await _messages(rt, list(plan.audiences))}
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        by_ref.setdefault(a["biz_opaque_callback_data"], []).append(a)

    # Every planned fault fired.
    fired: Counter[Any] = Counter()
    for planned, rule in zip(plan.rules, faults, strict=True):
        fired[planned["code"]] += rule["fired"]
    for code in (MARKETING_LIMIT, 130429, 500, 503, 131056, "timeout"):
        assert fired[code] > 0, (code, faults)

    refs: set[str] = set()
    read_per_person: Counter[str] = Counter()
    for cid, audience in plan.audiences.items():
        recipients = await recipients_of(rt, cid)
        assert {r.phone for r in recipients} == audience
        for r in recipients:
            what = (r.phone, r.status, r.reason, r.error)
            if r.phone in plan.skipped:
                assert (r.status, r.reason) == (cst.R_SKIPPED, plan.skipped[r.phone]), what
                assert r.message_id is None, what
                continue
            assert r.sends == 1 and r.message_id is not None, what
            m = messages[r.message_id]
            assert m.recipient_ref == ref_of(r), (what, m.recipient_ref)
            refs.add(ref_of(r))
            tried = by_ref.get(ref_of(r), [])
            answers = [a["answer"] for a in tried]
            # Our attempts are Meta's: a send our pacing deferred never reached it.
            assert tried and m.attempts == len(tried), (what, m.attempts, answers)
            ok = [row for row in taken.get(ref_of(r), []) if row["error_code"] is None]
            # None sent twice: at most one of a message's sends was taken and not failed.
            assert len(ok) <= 1, (what, ok)
            if r.status == cst.R_UNKNOWN:
                # Only where Meta never took it: every answer an error, the last one unheard.
                assert lost(r, taken) and all(isinstance(a, int) for a in answers), (what, answers)
                assert m.status == "unknown" and m.wamid is None, (what, m.status)
            elif r.phone in plan.limited:
                # The first send and its retry a day later, both 131049: failed with Meta's code.
                assert (r.status, r.reason) == (cst.R_FAILED, str(MARKETING_LIMIT)), what
                sync = r.phone in plan.sync_limited
                assert answers == ([MARKETING_LIMIT] * 2 if sync else ["accepted"] * 2), answers
                assert [row["error_code"] for row in taken.get(ref_of(r), [])] == (
                    [] if sync else [MARKETING_LIMIT] * 2
                )
            elif ok:
                # Taken: its status webhooks settled it (a timed-out one by its callback data).
                assert r.status == cst.R_READ and r.sent_at is not None, (what, answers)
                assert (m.status, m.wamid) == ("read", ok[0]["id"]), (what, m.wamid, ok)
                read_per_person[r.phone] += 1
            else:
                # Never taken: each attempt refused with a retryable error, until the budget.
                assert (r.status, r.reason) == (cst.R_FAILED, str(answers[-1])), (what, answers)
                assert all(isinstance(a, int) for a in answers), answers
            if r.status == cst.R_FAILED:
                assert r.error is not None and str(r.error["code"]) == r.reason, what
                assert r.error["title"] and r.error["details"], what
        stats = await stats_of(rt, cid)
        assert {k: v for k, v in stats.items() if k != "replied"} == _expected_stats(recipients), (
            cid
        )

    # Nothing reached Meta that is not one of these recipients' messages.
    assert set(by_ref) == refs, set(by_ref) ^ refs
    # None twice by (to, biz_opaque_callback_data): the only repeats are the 131049 sends Meta
    # took and then failed; by ``to`` alone, each person got one message per campaign that
    # reached them (read), and nothing else that Meta did not fail.
    assert {d["to"] for d in accepted["duplicates"]} <= {p[1:] for p in plan.hook_limited}, (
        accepted["duplicates"]
    )
    delivered = Counter("+" + row["to"] for row in accepted["data"] if row["error_code"] is None)
    assert delivered == read_per_person

    # Every timed-out send was taken; Meta's status webhooks carried its callback data, and they
    # settled its message (unknown, or still sending when they came first) to read.
    timed_out = [row for row in accepted["data"] if row["timed_out"]]
    assert len(timed_out) == fired["timeout"]
    for row in timed_out:
        hooks = [s for s in statuses if s["id"] == row["id"]]
        assert {s["status"] for s in hooks} == {"sent", "delivered", "read"}, hooks
        assert {s.get("biz_opaque_callback_data") for s in hooks} == {
            row["biz_opaque_callback_data"]
        }
    settled = [m for m in messages.values() if m.wamid in {row["id"] for row in timed_out}]
    assert len(settled) == len(timed_out) and {m.status for m in settled} == {"read"}
    if webhook_latency_ms > READ_TIMEOUT * 1000:
        # The webhooks came after our client gave up: the messages were unknown first.
        async with rt.sessionmaker() as session:
            history = await session.execute(
                select(MessageStatusEvent.message_id).where(
                    MessageStatusEvent.message_id.in_([m.id for m in settled]),
                    MessageStatusEvent.status == "unknown",
                )
            )
            assert set(history.scalars().all()), "no timed-out send was ever unknown"

    # Meta's pair rate: no 131056 beyond the ones planned, and wherever one person got more than
    # one message (the two campaigns, a 131049 retry), never closer than Meta's period.
    assert pairs["pair_rate_refusals"] == fired[131056]
    repeated = [p for p in pairs["data"] if p["count"] > 1]
    assert len(repeated) >= OVERLAP // 2, repeated
    for p in repeated:
        assert p["min_gap_seconds"] >= META_PAIR_PERIOD, p
    # Our pace stayed under Meta's throughput: every 130429 was a planned one.
    assert sum(1 for a in attempts if a["answer"] == 130429) == fired[130429]


def _expected_stats(recipients: list[CampaignRecipient]) -> dict[str, Any]:
    """The stats the recipients' rows call for (nobody replied, nobody was resent)."""
    by_status = Counter(cst.R_PENDING if r.status == cst.R_QUEUED else r.status for r in recipients)
    out: dict[str, Any] = {"total": len(recipients), "resent": 0}
    for bucket in cst.STAT_BUCKETS:
        out[bucket] = by_status.get(bucket, 0)
    for key, status in (("skipped_reasons", cst.R_SKIPPED), ("failed_codes", cst.R_FAILED)):
        out[key] = dict(sorted(Counter(r.reason for r in recipients if r.status == status).items()))
    return out
