"""The campaign engine: recipients written from the audience while sending has begun, one
dispatcher per campaign claiming the next recipients and sending them through the messages send
path at the number's pace, recipients moved forward by Meta's answers and status webhooks, and
the stats as counters kept in step in the same transactions (docs/campaigns.md).

Exactly once rests on claims, not on the queue: a recipient leaves ``pending`` once (its row held
by the claiming transaction), its message leaves ``queued`` once (messages.claim), and a send
whose answer was lost is ``unknown``, never resent unless a person asks (``resend_unknown``). The
lease keeps one dispatcher per campaign for pace and order; a second one, or a redelivered task,
finds nothing to claim twice. Tasks (tasks.py) carry a campaign id; the reconciler starts them
again for whatever a crash left (``due_work``).

A campaign's messages are its dispatcher's alone: the messages reconciler neither sends nor
settles them. So a paused campaign's queued messages (retries waiting, or a batch written but not
yet claimed) are simply held: nothing sends them until ``resume`` starts a dispatcher again. A
cancelled campaign's queued messages are failed (code ``campaign_cancelled``, never sent) and
their recipients, with those still pending, skipped with the reason ``cancelled``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.accounts import service as accounts
from aisoule.campaigns import parameters
from aisoule.campaigns import status as st
from aisoule.campaigns.repository import (
    CampaignRepository,
    CampaignStateRepository,
    CounterRepository,
    RecipientRepository,
)
from aisoule.db.engine import writing
from aisoule.exceptions import AisouleError
from aisoule.kit.phone import digits_only
from aisoule.kit.time import utcnow
from aisoule.messages import service as messages
from aisoule.models import (
    Campaign,
    CampaignRecipient,
    MessageTemplate,
    WhatsAppAccount,
)
from aisoule.runtime import Runtime
from aisoule.templates import service as templates
from aisoule.whatsapp.provider import ErrorClass, classify

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A recipient moves forward only: the statuses each status may replace. ``pending`` is among the
# sources of sent/delivered/read for a recipient a person asked to resend (unknown → pending)
# whose first message then turned out to have gone: it is not sent again.
_FROM: dict[str, tuple[str, ...]] = {
    st.R_SENT: (st.R_PENDING, st.R_QUEUED, st.R_UNKNOWN),
    st.R_DELIVERED: (st.R_PENDING, st.R_QUEUED, st.R_UNKNOWN, st.R_SENT),
    st.R_READ: (st.R_PENDING, st.R_QUEUED, st.R_UNKNOWN, st.R_SENT, st.R_DELIVERED),
    st.R_FAILED: (st.R_QUEUED, st.R_UNKNOWN, st.R_SENT),
    st.R_UNKNOWN: (st.R_QUEUED,),
    # Meta held the message back after accepting it (131049 reported by a status webhook): its
    # message is queued again for later, and the recipient waits with it.
    st.R_QUEUED: (st.R_SENT, st.R_UNKNOWN),
}
# A message's status → its recipient's (Meta's accept is "sent": the message left us).
_RECIPIENT_STATUS = {
    "accepted": st.R_SENT,
    "sent": st.R_SENT,
    "delivered": st.R_DELIVERED,
    "read": st.R_READ,
    "failed": st.R_FAILED,
    "unknown": st.R_UNKNOWN,
    "queued": st.R_QUEUED,
}
# Meta's send errors that say the template cannot be sent (paused, disabled).
_TEMPLATE_CODES = frozenset({132015, 132016})
# Meta's account-level errors, said for the person who reads a paused campaign's detail.
_ACCOUNT_ERRORS = {
    190: "The account's access token expired or was revoked",
    131031: "Meta locked the WhatsApp Business Account",
    368: "Meta temporarily blocked the account for policy violations",
}
_PAUSING_TEMPLATE_EVENTS = frozenset({"PAUSED", "DISABLED", "PENDING_DELETION", "REJECTED"})
REPLY_WINDOW = timedelta(hours=72)
CANCELLED_CODE = "campaign_cancelled"
OPTED_OUT_CODE = "opted_out"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CHUNK_MAX = 50  # messages claimed, sent and recorded together (as messages/tasks.py)


# -- counters -----------------------------------------------------------------------------------


class Deltas:
    """A transaction's counter changes, added in one statement at its end."""

    def __init__(self) -> None:
        self.d: Counter[tuple[uuid.UUID, str]] = Counter()

    def add(self, campaign_id: uuid.UUID, key: str, n: int = 1) -> None:
        self.d[(campaign_id, key)] += n

    def move(self, campaign_id: uuid.UUID, old: str, new: str, n: int = 1) -> None:
        self.add(campaign_id, f"status:{old}", -n)
        self.add(campaign_id, f"status:{new}", n)

    def moved(self, campaign_id: uuid.UUID, moved: Sequence[tuple[int, str]], new: str) -> None:
        """Recipients (id, status before) moved to ``new``: one move per status before."""
        for old, n in Counter(old for _, old in moved).items():
            self.move(campaign_id, old, new, n)

    async def write(self, session: AsyncSession) -> None:
        if self.d:
            await CounterRepository(session).add(self.d)
            self.d = Counter()


def shape_stats(counts: Mapping[str, int]) -> dict[str, Any]:
    """The ``stats`` object (CAMPAIGNS.md) from a campaign's summed counters."""

    def n(key: str) -> int:
        return max(0, int(counts.get(key, 0)))

    out: dict[str, Any] = {"total": n("total")}
    for bucket in st.STAT_BUCKETS:
        out[bucket] = n(f"status:{bucket}")
    out["pending"] = n(f"status:{st.R_PENDING}") + n(f"status:{st.R_QUEUED}")
    out["replied"] = n("replied")
    out["resent"] = n("resent")
    out["skipped_reasons"] = {
        k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("skipped:") and v
    }
    out["failed_codes"] = {
        k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("failed:") and v
    }
    return out


async def stats(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, Any]:
    return (await stats_many(session, [campaign_id]))[campaign_id]


async def stats_many(
    session: AsyncSession, campaign_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    sums = await CounterRepository(session).sums(campaign_ids)
    return {cid: shape_stats(sums.get(cid, {})) for cid in campaign_ids}


async def list_recipients(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[CampaignRecipient], int]:
    """A campaign's recipients in id order; ``status`` a stat bucket (``pending`` includes
    ``queued``). The caller has checked the campaign is the workspace's."""
    statuses: list[str] | None = None
    if status is not None:
        statuses = [st.R_PENDING, st.R_QUEUED] if status == st.R_PENDING else [status]
    return await RecipientRepository(session).page(campaign_id, statuses, limit, offset)


# -- a person's actions (A's service checks the status first) ------------------------------------


async def start(session: AsyncSession, campaign: Campaign, *, now: datetime) -> None:
    """draft | scheduled → running; its audience is written and its sending begins after commit
    (the first messages go while the rest of the audience is still being written)."""
    campaign.status = st.RUNNING
    campaign.status_reason = None
    campaign.status_detail = None
    campaign.started_at = campaign.started_at or now
    campaign.updated_at = now
    await session.flush()
    queue.after_commit(session, queue.CAMPAIGN_MATERIALIZE, str(campaign.id))
    queue.after_commit(session, queue.CAMPAIGN_DISPATCH, str(campaign.id))


async def schedule(session: AsyncSession, campaign: Campaign) -> None:
    """draft → scheduled: the reconciler starts it when ``scheduled_at`` comes."""
    campaign.status = st.SCHEDULED
    campaign.updated_at = utcnow()
    await session.flush()


async def pause(session: AsyncSession, campaign: Campaign) -> None:
    """running → paused by a person: the dispatcher stops before its next chunk (within a second:
    it claims ahead only ``campaign_in_flight_seconds`` of the number's pace)."""
    await _set_status(session, campaign, st.PAUSED, among=(st.RUNNING,), reason=None, detail=None)


async def resume(session: AsyncSession, campaign: Campaign) -> None:
    """paused → running: a dispatcher continues where it stopped (held messages first)."""
    if await _set_status(
        session, campaign, st.RUNNING, among=(st.PAUSED,), reason=None, detail=None
    ):
        if not campaign.materialized:
            queue.after_commit(session, queue.CAMPAIGN_MATERIALIZE, str(campaign.id))
        queue.after_commit(session, queue.CAMPAIGN_DISPATCH, str(campaign.id))


async def cancel(session: AsyncSession, campaign: Campaign) -> None:
    """→ cancelled: nothing more is sent. Its queued messages are failed and its unsent
    recipients skipped (reason ``cancelled``) by a task, in chunks (``completed_at`` is set when
    that is done); what a worker already handed to Meta keeps its outcome."""
    if await _set_status(
        session, campaign, st.CANCELLED, among=st.CANCELLABLE, reason=None, detail=None
    ):
        queue.after_commit(session, queue.CAMPAIGN_DISPATCH, str(campaign.id))


async def resend_unknown(session: AsyncSession, campaign: Campaign) -> int:
    """Recipients unknown for longer than ``campaign_unknown_quiet_minutes`` go back to pending:
    the dispatcher writes each a new message (its ``sends`` + 1, so a new recipient reference);
    ``resent`` counts them. A finished campaign runs again for them; a paused one sends them on
    resume. One explicit action: nothing resends by itself. How many were queued again."""
    if campaign.status in (st.DRAFT, st.SCHEDULED, st.CANCELLED, st.FAILED):
        return 0
    # The signature (part A's call) carries no runtime: this process's settings, as tasks read them.
    from aisoule import runtime

    rt = runtime.maybe_current()
    quiet = rt.settings.campaign_unknown_quiet_minutes if rt is not None else 30.0
    now = utcnow()
    before = now - timedelta(minutes=quiet)
    repo = RecipientRepository(session)
    deltas = Deltas()
    total = 0
    while True:
        rows = await repo.quiet_unknown(campaign.id, before, 1000)
        if not rows:
            break
        ids = [int(r.id) for r in rows]
        moved = await repo.move(campaign.id, ids, st.R_PENDING, (st.R_UNKNOWN,), now)
        deltas.moved(campaign.id, moved, st.R_PENDING)
        deltas.add(campaign.id, "resent", len(moved))
        total += len(moved)
        if len(rows) < 1000:
            break
    await deltas.write(session)
    if total and campaign.status == st.COMPLETED:
        campaign.status, campaign.completed_at = st.RUNNING, None
        campaign.updated_at = now
        await session.flush()
    if total and campaign.status == st.RUNNING:
        queue.after_commit(session, queue.CAMPAIGN_DISPATCH, str(campaign.id))
    return total


async def _set_status(
    session: AsyncSession,
    campaign: Campaign,
    status: str,
    *,
    among: Sequence[str] | frozenset[str],
    reason: str | None,
    detail: str | None,
) -> bool:
    """A conditional move (another writer may have moved it meanwhile), reflected on the row."""
    now = utcnow()
    done = await CampaignStateRepository(session).set_status(
        campaign.id,
        status,
        among=among,
        now=now,
        status_reason=reason,
        status_detail=detail,
    )
    if done:
        campaign.status, campaign.status_reason, campaign.status_detail = status, reason, detail
        campaign.updated_at = now
    return done


async def pause_for(
    session: AsyncSession, campaign_id: uuid.UUID, reason: str, detail: str
) -> bool:
    """The engine pauses a running campaign by itself, with the reason; a person resumes it."""
    done = await CampaignStateRepository(session).set_status(
        campaign_id,
        st.PAUSED,
        among=(st.RUNNING,),
        now=utcnow(),
        status_reason=reason,
        status_detail=detail[:1000],
    )
    if done:
        log.warning("campaign_paused", campaign_id=str(campaign_id), reason=reason, detail=detail)
    return done


# -- following messages: Meta's answers, status webhooks, crash sweeps ----------------------------


def recipient_id(ref: str | None) -> int | None:
    """The recipient of a message's ``recipient_ref`` (``"<recipient id>.<sends>"``)."""
    if not ref:
        return None
    head = ref.split(".", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else None


async def follow(
    session: AsyncSession, changes: Sequence[messages.Change], deltas: Deltas | None = None
) -> None:
    """Move campaign recipients after their messages, one statement per (campaign, status,
    reason) and one for the counters, however many changes there are."""
    now = utcnow()
    groups: dict[tuple[uuid.UUID, str, str | None], list[tuple[int, dict[str, Any] | None]]] = {}
    for change in changes:
        rid = recipient_id(change.recipient_ref)
        new = _RECIPIENT_STATUS.get(change.status)
        if change.campaign_id is None or rid is None or new is None:
            continue
        reason = None
        if new == st.R_FAILED:
            code = (change.error or {}).get("code")
            reason = str(code)[:64] if code is not None else "unknown_error"
        groups.setdefault((change.campaign_id, new, reason), []).append((rid, change.error))
    own = deltas is None
    deltas = deltas or Deltas()
    repo = RecipientRepository(session)
    for (cid, new, reason), items in groups.items():
        values: dict[str, Any] = {}
        if new in (st.R_SENT, st.R_DELIVERED, st.R_READ):
            values["sent_at"] = func.coalesce(CampaignRecipient.sent_at, now)
        if new == st.R_FAILED:
            values["reason"] = reason
            values["error"] = _public_error(items[0][1])
        ids = sorted({rid for rid, _ in items})
        moved = await repo.move(cid, ids, new, _FROM[new], now, **values)
        deltas.moved(cid, moved, new)
        if new == st.R_QUEUED and moved:
            await _reopen(session, cid, now)
        if new == st.R_FAILED and moved:
            deltas.add(cid, f"failed:{reason}", len(moved))
    if own:
        await deltas.write(session)


async def _reopen(session: AsyncSession, campaign_id: uuid.UUID, now: datetime) -> None:
    """A recipient waits again (a message Meta held back): a campaign that had completed runs
    again until it is settled, and its dispatcher sends the retry when it is due."""
    campaign = await CampaignStateRepository(session).get(campaign_id)
    if campaign is None:
        return
    if campaign.status == st.COMPLETED:
        campaign.status, campaign.completed_at, campaign.updated_at = st.RUNNING, None, now
        await session.flush()
    if campaign.status == st.RUNNING:
        queue.after_commit(session, queue.CAMPAIGN_DISPATCH, str(campaign_id))


def _public_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if not error:
        return None
    return {"code": error.get("code"), "title": error.get("title"), "details": error.get("details")}


async def on_status_changes(session: AsyncSession, changes: Sequence[messages.Change]) -> None:
    """Status webhooks applied to campaign messages (inbound/handoff.py)."""
    await follow(session, [c for c in changes if c.campaign_id is not None])


async def on_reply(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: int, at: datetime
) -> None:
    """A customer wrote: the contact's most recent campaign message, if it went within 72 hours
    and has no reply yet, counts a reply (one per recipient; an earlier campaign's message is
    not credited for a conversation a later one started)."""
    repo = RecipientRepository(session)
    row = await repo.last_sent_to(workspace_id, contact_id, at - REPLY_WINDOW)
    if row is None or row.replied_at is not None:
        return
    if await repo.set_replied(int(row.id), at):
        deltas = Deltas()
        deltas.add(row.campaign_id, "replied")
        await deltas.write(session)


async def on_template_status(
    session: AsyncSession, account_id: uuid.UUID, value: Mapping[str, Any]
) -> None:
    """Meta paused or disabled a template: running campaigns of this account sending it pause
    (reason ``template_not_approved``)."""
    event = str(value.get("event") or "").upper()
    if event not in _PAUSING_TEMPLATE_EVENTS:
        return
    meta_id = value.get("message_template_id")
    name = value.get("message_template_name")
    language = value.get("message_template_language")
    found = await CampaignStateRepository(session).running_with_template(
        account_id,
        str(meta_id) if meta_id is not None else None,
        str(name) if name else None,
        str(language) if language else None,
    )
    reason = value.get("reason")
    detail = f"Meta set the template {name or meta_id} to {event}" + (
        f" ({reason})" if reason and reason != "NONE" else ""
    )
    for cid in found:
        await pause_for(session, cid, st.TEMPLATE_NOT_APPROVED, detail)


# -- materialising the audience -----------------------------------------------------------------


async def materialize(rt: Runtime, campaign_id: uuid.UUID) -> None:
    """Write the audience as pending recipients, ``campaign_materialize_chunk`` contacts per
    statement in contact-id order (the first chunk a batch's worth, so that sending starts at
    once), each chunk committed with the cursor and the counters (a crash resumes after the last
    chunk written; a second materialiser writes nothing twice). A chunk that meets a deadlock
    or a dropped connection is written again (nothing of it was committed)."""
    attempt = 0
    while True:
        try:
            if await _materialize_chunk(rt, campaign_id):
                return
            attempt = 0
        except DBAPIError:
            attempt += 1
            if attempt >= 3:
                raise
            log.warning("campaign_materialize_retried", campaign_id=str(campaign_id), exc_info=True)
            await asyncio.sleep(0.1 * attempt)


async def _materialize_chunk(rt: Runtime, campaign_id: uuid.UUID) -> bool:
    """One chunk of the audience written: True when there is nothing more to write."""
    chunk = rt.settings.campaign_materialize_chunk
    async with writing(rt.sessionmaker) as session:
        state = CampaignStateRepository(session)
        campaign = await state.get(campaign_id, lock=True)
        if (
            campaign is None
            or campaign.materialized
            or campaign.status not in (st.RUNNING, st.PAUSED)
        ):
            await session.commit()
            return True
        now = utcnow()
        conditions = CampaignRepository(session).audience_conditions(
            campaign.workspace_id, campaign.audience or {}
        )
        repo = RecipientRepository(session)
        after = campaign.audience_cursor
        # The first chunk is one batch: the dispatcher waits for it, not for 5,000 rows.
        n = min(chunk, rt.settings.campaign_batch_size) if after == 0 else chunk
        upto = await repo.audience_upto(conditions, after, n)
        if upto is None:
            await state.advance_cursor(campaign_id, None, now)
            await session.commit()
            log.info("campaign_materialized", campaign_id=str(campaign_id))
            return True
        added = await repo.insert_audience(campaign, conditions, after, upto, now)
        await state.advance_cursor(campaign_id, upto, now)
        deltas = Deltas()
        deltas.add(campaign_id, "total", added)
        deltas.add(campaign_id, f"status:{st.R_PENDING}", added)
        await deltas.write(session)
        await session.commit()
    return False


# -- dispatching --------------------------------------------------------------------------------


@dataclass
class _Plan:
    campaign: Campaign
    account: WhatsAppAccount
    template: MessageTemplate
    chunk: int
    in_flight: int


def shape(pace: int, seconds: float) -> tuple[int, int]:
    """(chunk size, chunks in flight) so that what is claimed but not yet sent is about
    ``seconds`` of the number's pace: a pause then stops the sends within about that long."""
    window = max(10.0, pace * seconds)
    chunk = int(min(CHUNK_MAX, max(5.0, window / 2)))
    return chunk, max(2, round(window / chunk))


class _FailureWindow:
    """The share of failures among the answers (sent, delivered, read, failed) since the latest
    counter snapshot at least ``size`` answers back; snapshots are taken between batches."""

    def __init__(self, size: int, share: float, counts: Mapping[str, int]) -> None:
        self.size, self.share = size, share
        self.marks: deque[tuple[int, int]] = deque([self._point(counts)])

    @staticmethod
    def _point(counts: Mapping[str, int]) -> tuple[int, int]:
        failed = counts.get(f"status:{st.R_FAILED}", 0)
        ok = sum(counts.get(f"status:{s}", 0) for s in (st.R_SENT, st.R_DELIVERED, st.R_READ))
        return ok + failed, failed

    def exceeded(self, counts: Mapping[str, int]) -> tuple[int, int] | None:
        """(failed, answered) in the window when over the share, else None."""
        answered, failed = self._point(counts)
        base: tuple[int, int] | None = None
        while self.marks and answered - self.marks[0][0] >= self.size:
            base = self.marks.popleft()
        if base is not None:
            self.marks.appendleft(base)  # the window's start stays until a newer one qualifies
        self.marks.append((answered, failed))
        if base is None:
            return None
        window_answers, window_failed = answered - base[0], failed - base[1]
        if window_answers and window_failed / window_answers > self.share:
            return window_failed, window_answers
        return None


class _Lost(Exception):
    """This dispatcher no longer holds the campaign's lease."""


async def dispatch(rt: Runtime, campaign_id: uuid.UUID) -> None:
    """The campaign's dispatcher: take its lease (a second one exits at once), then claim,
    render, write and send batch after batch until it is paused, cancelled, waits for retries
    far off, or completes. Wind up a cancelled campaign."""
    owner = uuid.uuid4().hex
    lease = timedelta(seconds=rt.settings.campaign_lease_seconds)
    async with writing(rt.sessionmaker) as session:
        now = utcnow()
        held = await CampaignStateRepository(session).acquire_lease(
            campaign_id, owner, now + lease, now
        )
        await session.commit()
    if not held:
        return
    try:
        await _dispatch(rt, campaign_id, owner)
    except _Lost:
        log.info("campaign_lease_lost", campaign_id=str(campaign_id))
    finally:
        async with writing(rt.sessionmaker) as session:
            await CampaignStateRepository(session).release_lease(campaign_id, owner)
            await session.commit()


async def _dispatch(rt: Runtime, campaign_id: uuid.UUID, owner: str) -> None:
    settings = rt.settings
    plan = await _plan(rt, campaign_id)
    if plan is None:
        return
    async with rt.sessionmaker() as session:
        counts = (await CounterRepository(session).sums([campaign_id]))[campaign_id]
    window = _FailureWindow(
        settings.campaign_failure_window, settings.campaign_failure_pause_share, counts
    )
    pipe = _Pipe(rt, plan, owner)
    try:
        await _dispatch_loop(rt, plan, campaign_id, owner, window, pipe)
    finally:
        await pipe.drain()


async def _dispatch_loop(
    rt: Runtime,
    plan: _Plan,
    campaign_id: uuid.UUID,
    owner: str,
    window: _FailureWindow,
    pipe: _Pipe,
) -> None:
    settings = rt.settings
    while True:
        if await _status(rt, campaign_id, owner) != st.RUNNING:
            return
        async with rt.sessionmaker() as session:
            counts = (await CounterRepository(session).sums([campaign_id]))[campaign_id]
        over = window.exceeded(counts)
        if over is not None:
            async with writing(rt.sessionmaker) as session:
                await pause_for(
                    session,
                    campaign_id,
                    st.FAILURE_RATE,
                    f"{over[0]} of the last {over[1]} messages failed "
                    f"(more than {settings.campaign_failure_pause_share:.0%})",
                )
                await session.commit()
            return
        async with rt.sessionmaker() as session:
            batch = await messages.campaign_due(session, campaign_id, settings.campaign_batch_size)
        if not batch:
            batch = await _retrying(lambda: _claim_batch(rt, plan), "claim", campaign_id)
        if batch:
            # Returns once the batch's last chunk is claimed: the next batch is written while
            # its last chunks are still with Meta, so the pace has no gap between batches.
            if await pipe.send(batch):
                return
            continue
        await pipe.drain()  # the answers recorded before deciding whether all is settled
        wait = await _idle(rt, campaign_id)
        if wait is None:
            return
        await asyncio.sleep(wait)


async def _retrying(
    step: Callable[[], Awaitable[T]], what: str, campaign_id: uuid.UUID, attempts: int = 3
) -> T:
    """A transaction done again after a deadlock or a dropped connection (it was rolled back
    whole): a dispatcher that died of one would hold its lease, and the campaign, until the
    lease ran out."""
    for attempt in range(1, attempts + 1):
        try:
            return await step()
        except DBAPIError:
            if attempt == attempts:
                raise
            log.warning(f"campaign_{what}_retried", campaign_id=str(campaign_id), exc_info=True)
            await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


async def _status(rt: Runtime, campaign_id: uuid.UUID, owner: str) -> str:
    async with writing(rt.sessionmaker) as session:
        found = await CampaignStateRepository(session).renew_lease(
            campaign_id, owner, utcnow() + timedelta(seconds=rt.settings.campaign_lease_seconds)
        )
        await session.commit()
    if found is None:
        raise _Lost
    return found[0]


async def _plan(rt: Runtime, campaign_id: uuid.UUID) -> _Plan | None:
    """What the dispatcher sends with: the campaign, its account and approved template. A
    campaign that cannot send pauses with the reason; a cancelled one is wound up."""
    async with writing(rt.sessionmaker) as session:
        campaign = await CampaignStateRepository(session).get(campaign_id)
        if campaign is None:
            return None
        if campaign.status == st.CANCELLED:
            await session.commit()
            await _wind_up(rt, campaign_id)
            return None
        if campaign.status != st.RUNNING:
            return None
        account = (
            await accounts.get_by_id(session, campaign.account_id) if campaign.account_id else None
        )
        template = await _template(session, campaign)
        problem: tuple[str, str] | None = None
        if account is None or account.workspace_id != campaign.workspace_id:
            problem = (st.ACCOUNT_ERROR, "The campaign's WhatsApp account is gone")
        elif account.status == "token_invalid":
            problem = (st.ACCOUNT_ERROR, f"Meta refused the account: {account.last_error or ''}")
        elif template is None:
            problem = (st.TEMPLATE_NOT_APPROVED, "The campaign's template is gone")
        elif template.status != "APPROVED":
            problem = (st.TEMPLATE_NOT_APPROVED, f"The template is {template.status} at Meta")
        if problem is not None:
            await pause_for(session, campaign_id, *problem)
            await session.commit()
            return None
        assert account is not None and template is not None
        chunk, in_flight = shape(account.throughput, rt.settings.campaign_in_flight_seconds)
        return _Plan(campaign, account, template, chunk, in_flight)


async def _template(session: AsyncSession, campaign: Campaign) -> MessageTemplate | None:
    if campaign.template_id is None:
        return None
    try:
        return await templates.get(session, campaign.workspace_id, str(campaign.template_id))
    except AisouleError:
        return None


async def _claim_batch(rt: Runtime, plan: _Plan) -> list[tuple[uuid.UUID, str | None]]:
    """The next pending recipients, held and moved in one transaction: skipped with their
    reason, or rendered and written as queued messages (sent by the caller, not by a task)."""
    campaign, template = plan.campaign, plan.template
    cid = campaign.id
    async with writing(rt.sessionmaker) as session:
        repo = RecipientRepository(session)
        rows = await repo.claim_pending(cid, rt.settings.campaign_batch_size)
        if not rows:
            await session.commit()
            return []
        now = utcnow()
        skipped: dict[str, list[int]] = {}
        items: list[messages.BatchItem] = []
        rids: list[int] = []
        for row in rows:
            reason: str | None = None
            rendered: parameters.Rendered | None = None
            if row.contact_exists is None:
                reason = st.SKIP_CONTACT_DELETED
            elif row.opted_out_at is not None:
                reason = st.SKIP_OPTED_OUT
            elif not _E164.match(row.phone or ""):
                reason = st.SKIP_INVALID_PHONE
            else:
                rendered = parameters.render(
                    template, campaign.parameters or {}, parameters.contact_fields(row._mapping)
                )
                if rendered.missing is not None:
                    reason = st.SKIP_MISSING_VARIABLE
            if reason is not None or rendered is None:
                skipped.setdefault(reason or st.SKIP_MISSING_VARIABLE, []).append(int(row.id))
                continue
            spec: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
            if rendered.components:
                spec["components"] = rendered.components
            items.append(
                messages.BatchItem(
                    contact_id=row.contact_id,
                    phone=row.phone,
                    payload={
                        "messaging_product": "whatsapp",
                        "recipient_type": "individual",
                        "to": digits_only(row.phone),
                        "type": "template",
                        "template": spec,
                    },
                    preview=messages.template_preview(template, rendered.components or []),
                    template_id=template.id,
                    recipient_ref=f"{row.id}.{row.sends + 1}",
                )
            )
            rids.append(int(row.id))
        ids = await messages.enqueue_batch(
            session, campaign.workspace_id, plan.account, items, campaign_id=cid, send=False
        )
        await repo.set_queued(cid, list(zip(rids, ids, strict=True)), now)
        deltas = Deltas()
        deltas.move(cid, st.R_PENDING, st.R_QUEUED, len(ids))
        for reason, skip_ids in skipped.items():
            moved = await repo.move(
                cid, skip_ids, st.R_SKIPPED, (st.R_PENDING,), now, reason=reason
            )
            deltas.move(cid, st.R_PENDING, st.R_SKIPPED, len(moved))
            deltas.add(cid, f"skipped:{reason}", len(moved))
        await deltas.write(session)
        await session.commit()
    return [(mid, item.recipient_ref) for mid, item in zip(ids, items, strict=True)]


class _Pipe:
    """A dispatcher's chunks in flight, across batches: at most ``plan.in_flight`` at once, so
    what is claimed but not yet sent stays about ``campaign_in_flight_seconds`` of the pace (a
    pause stops the sends within about that long), with no gap between one batch and the next."""

    def __init__(self, rt: Runtime, plan: _Plan, owner: str) -> None:
        self.rt, self.plan, self.owner = rt, plan, owner
        self.slots = asyncio.Semaphore(plan.in_flight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = False
        self.error: BaseException | None = None

    async def send(self, batch: Sequence[tuple[uuid.UUID, str | None]]) -> bool:
        """Start the batch's chunks as slots free up; return once each has claimed its messages
        (or was not started): True when the campaign stopped (paused, cancelled) meanwhile; the
        messages not claimed stay queued, held."""
        loop = asyncio.get_running_loop()
        claimed: list[asyncio.Future[None]] = []
        size = self.plan.chunk
        for i in range(0, len(batch), size):
            await self.slots.acquire()
            if self.stopped or self.error is not None:
                self.slots.release()
                break
            done = loop.create_future()
            task = asyncio.create_task(self._run(batch[i : i + size], done))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            claimed.append(done)
        if claimed:
            await asyncio.wait(claimed)
        self._raise()
        return self.stopped

    async def _run(
        self, chunk: Sequence[tuple[uuid.UUID, str | None]], claimed: asyncio.Future[None]
    ) -> None:
        def on_claimed() -> None:
            if not claimed.done():
                claimed.set_result(None)

        try:
            if not await _send_chunk(self.rt, self.plan, self.owner, chunk, on_claimed):
                self.stopped = True
        except Exception as exc:  # _Lost, or the database gone: the loop raises it
            if self.error is None:
                self.error = exc
        finally:
            on_claimed()
            self.slots.release()

    async def drain(self) -> None:
        """Wait for every chunk in flight to be sent and recorded."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            self.stopped = True
            raise error


async def _send_chunk(
    rt: Runtime,
    plan: _Plan,
    owner: str,
    chunk: Sequence[tuple[uuid.UUID, str | None]],
    on_claimed: Callable[[], None] | None = None,
) -> bool:
    """Check the campaign still runs and who opted out since, claim (``on_claimed`` called once
    the claim is committed), send (no transaction open while Meta answers), record: False when
    the campaign no longer runs."""
    cid = plan.campaign.id
    by_recipient = {rid: mid for mid, ref in chunk if (rid := recipient_id(ref)) is not None}
    async with writing(rt.sessionmaker) as session:
        found = await CampaignStateRepository(session).renew_lease(
            cid, owner, utcnow() + timedelta(seconds=rt.settings.campaign_lease_seconds)
        )
        if found is None or found[0] != st.RUNNING:
            await session.commit()
            if found is None:
                raise _Lost
            return False
        out = await RecipientRepository(session).opted_out(cid, sorted(by_recipient))
        if out:
            await _refuse(
                session,
                cid,
                [by_recipient[r] for r in out],
                OPTED_OUT_CODE,
                "The contact opted out before the message was sent",
                st.SKIP_OPTED_OUT,
            )
        ids = [mid for mid, ref in chunk if recipient_id(ref) not in out]
        claimed = await messages.claim(session, ids)
        await session.commit()
    if on_claimed is not None:
        on_claimed()
    if not claimed:
        return True
    outcomes = await messages.send_many(rt, claimed)
    pairs = [(m, o) for (m, _), o in zip(claimed, outcomes, strict=True)]
    for attempt in range(3):
        try:
            async with writing(rt.sessionmaker) as session:
                changes = await messages.record_outcomes(session, rt, pairs)
                await follow(session, changes)
                running = await _pause_on_errors(session, cid, changes)
                await session.commit()
                await queue.flush_after_commit(session)
            return running
        except DBAPIError:  # a deadlock or a dropped connection: the outcomes must be kept
            if attempt == 2:
                raise
            log.warning("campaign_record_retried", campaign_id=str(cid), exc_info=True)
            await asyncio.sleep(0.1 * (attempt + 1))
    return True


async def _pause_on_errors(
    session: AsyncSession, campaign_id: uuid.UUID, changes: Sequence[messages.Change]
) -> bool:
    """Meta's errors that no other recipient would escape (the account, the template) pause the
    campaign: False when it paused."""
    for change in changes:
        code = (change.error or {}).get("code")
        if change.status != "failed" or not isinstance(code, int):
            continue
        title = (change.error or {}).get("title") or ""
        if classify(code, 400) is ErrorClass.account:
            what = _ACCOUNT_ERRORS.get(code, "Meta refused the account")
            await pause_for(
                session,
                campaign_id,
                st.ACCOUNT_ERROR,
                f"{what} (Meta error {code}: {title}). Nothing more is sent until the account "
                "is fixed and the campaign resumed.",
            )
            return False
        if code in _TEMPLATE_CODES:
            await pause_for(
                session, campaign_id, st.TEMPLATE_NOT_APPROVED, f"Meta error {code}: {title}"
            )
            return False
    return True


async def _refuse(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    message_ids: Sequence[uuid.UUID],
    code: str,
    title: str,
    reason: str,
) -> None:
    """Queued messages that must not go: failed (never sent), their recipients skipped."""
    changes = await messages.refuse_unsent(session, message_ids, code, title)
    rids = sorted({r for c in changes if (r := recipient_id(c.recipient_ref)) is not None})
    moved = await RecipientRepository(session).move(
        campaign_id, rids, st.R_SKIPPED, (st.R_QUEUED,), utcnow(), reason=reason
    )
    deltas = Deltas()
    deltas.moved(campaign_id, moved, st.R_SKIPPED)
    deltas.add(campaign_id, f"skipped:{reason}", len(moved))
    await deltas.write(session)


async def _idle(rt: Runtime, campaign_id: uuid.UUID) -> float | None:
    """Nothing to send now: complete the campaign when all is settled, else how long to wait
    before looking again (None: leave it to the reconciler, e.g. a retry far off)."""
    async with writing(rt.sessionmaker) as session:
        campaign = await CampaignStateRepository(session).get(campaign_id)
        if campaign is None or campaign.status != st.RUNNING:
            await session.commit()
            return None
        if not campaign.materialized:
            await session.commit()
            return 0.1  # the materialiser is writing the next chunk
        if not await RecipientRepository(session).unsettled(campaign_id):
            now = utcnow()
            await CampaignStateRepository(session).set_status(
                campaign_id, st.COMPLETED, among=(st.RUNNING,), now=now, completed_at=now
            )
            await session.commit()
            log.info("campaign_completed", campaign_id=str(campaign_id))
            return None
        next_at = await messages.campaign_next_attempt(session, campaign_id)
        await session.commit()
    if next_at is not None:
        wait = (next_at - utcnow()).total_seconds()
        if wait < 2.0:
            return max(0.05, wait)
    return None


async def _wind_up(rt: Runtime, campaign_id: uuid.UUID) -> None:
    """A cancelled campaign: fail its queued messages and skip its unsent recipients, in
    chunks, then mark it done (completed_at)."""
    while True:
        async with writing(rt.sessionmaker) as session:
            queued = await messages.campaign_queued(session, campaign_id, 1000)
            await _refuse(
                session,
                campaign_id,
                queued,
                CANCELLED_CODE,
                "The campaign was cancelled before this message was sent",
                st.SKIP_CANCELLED,
            )
            repo = RecipientRepository(session)
            pending = await repo.pending_ids(campaign_id, 5000)
            now = utcnow()
            moved = await repo.move(
                campaign_id, pending, st.R_SKIPPED, (st.R_PENDING,), now, reason=st.SKIP_CANCELLED
            )
            deltas = Deltas()
            deltas.move(campaign_id, st.R_PENDING, st.R_SKIPPED, len(moved))
            deltas.add(campaign_id, f"skipped:{st.SKIP_CANCELLED}", len(moved))
            await deltas.write(session)
            done = not queued and not pending
            if done:
                await CampaignStateRepository(session).set_status(
                    campaign_id, st.CANCELLED, among=(st.CANCELLED,), now=now, completed_at=now
                )
            await session.commit()
        if done:
            return


# -- the reconciler's part ------------------------------------------------------------------------


async def due_work(rt: Runtime) -> list[tuple[str, uuid.UUID]]:
    """What a crash or a lost queue left behind, as (task, campaign id) to enqueue: sends stuck
    in ``sending`` settled as unknown (with their recipients), scheduled campaigns whose time
    came started (or failed, if it passed too long ago), dispatchers for running campaigns no
    one holds, materialisers that died."""
    settings = rt.settings
    now = utcnow()
    async with writing(rt.sessionmaker) as session:
        stale = await messages.settle_stale_campaign_sends(
            session, now - timedelta(seconds=settings.campaign_sending_stale_seconds)
        )
        await follow(session, stale)
        await session.commit()
    async with writing(rt.sessionmaker) as session:
        state = CampaignStateRepository(session)
        for cid in await state.due_scheduled(now, 100):
            await start_scheduled(session, cid, now, settings.campaign_stale_schedule_hours)
        await session.commit()
        await queue.flush_after_commit(session)
    async with rt.sessionmaker() as session:
        state = CampaignStateRepository(session)
        dispatch_ids = await state.needing_dispatch(now, 100)
        # A materialiser commits a chunk every fraction of a second: one silent for a lease's
        # length died.
        quiet = timedelta(seconds=settings.campaign_lease_seconds)
        materialize_ids = await state.needing_materialize(now - quiet, 100)
    return [(queue.CAMPAIGN_DISPATCH, cid) for cid in dispatch_ids] + [
        (queue.CAMPAIGN_MATERIALIZE, cid) for cid in materialize_ids
    ]


async def start_scheduled(
    session: AsyncSession, campaign_id: uuid.UUID, now: datetime, stale_hours: float
) -> None:
    """A scheduled campaign whose time came: started, or failed (``stale_schedule``) when its
    time passed more than ``stale_hours`` ago (the server was down): a broadcast hours late is
    not what was asked for."""
    campaign = await CampaignStateRepository(session).get(campaign_id, lock=True)
    if campaign is None or campaign.status != st.SCHEDULED or campaign.scheduled_at is None:
        return
    late = now - campaign.scheduled_at
    if late > timedelta(hours=stale_hours):
        await _set_status(
            session,
            campaign,
            st.FAILED,
            among=(st.SCHEDULED,),
            reason=st.STALE_SCHEDULE,
            detail=f"Its time passed {late.total_seconds() / 3600:.1f} hours ago while no server "
            f"ran (more than {stale_hours:g} hours): not started",
        )
        return
    await start(session, campaign, now=now)
