"""The task queue (Taskiq): an in-process broker in the embedded default, Redis Streams when
``AISOULE_WORKER_MODE=external`` (then ``aisoule worker`` processes run the tasks).

Each worker process also runs the reconciler: the database holds the truth, so whatever a crash
or a lost queue left behind (queued messages, unprocessed webhook events) is found and enqueued
again; claims make a duplicate task a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from taskiq import AsyncBroker, BrokerMessage, InMemoryBroker
from taskiq.exceptions import UnknownTaskError

from aisoule import queue
from aisoule.campaigns import tasks as campaign_tasks
from aisoule.config import Settings
from aisoule.messages import tasks as message_tasks
from aisoule.runtime import Runtime
from aisoule.whatsapp.inbound import tasks as webhook_tasks

log = structlog.get_logger(__name__)

TASKS: dict[str, Callable[..., Awaitable[None]]] = {
    queue.SEND_MESSAGE: message_tasks.send_message,
    queue.SEND_BATCH: message_tasks.send_batch,
    queue.PROCESS_WEBHOOKS: webhook_tasks.process_webhooks,
    queue.CAMPAIGN_MATERIALIZE: campaign_tasks.materialize,
    queue.CAMPAIGN_DISPATCH: campaign_tasks.dispatch,
}

# Each returns the (task, args) pairs to enqueue again.
Reconciler = Callable[[Runtime], Awaitable[list[tuple[str, tuple[Any, ...]]]]]


async def _messages(rt: Runtime) -> list[tuple[str, tuple[Any, ...]]]:
    # One batch task for what is due (at most 500 ids): claims make a second sender harmless.
    due = await message_tasks.due_for_sending(rt)
    return [(queue.SEND_BATCH, (due,))] if due else []


async def _webhooks(rt: Runtime) -> list[tuple[str, tuple[Any, ...]]]:
    # Unprocessed events: a lost queue, or statuses waiting for their message's wamid.
    return [(queue.PROCESS_WEBHOOKS, ("retry",))] if await webhook_tasks.has_pending(rt) else []


async def _campaigns(rt: Runtime) -> list[tuple[str, tuple[Any, ...]]]:
    # Sends a dead worker left "sending" (unknown), scheduled campaigns whose time came,
    # dispatchers whose lease ran out, materialisers that died.
    return await campaign_tasks.due_work(rt)


RECONCILERS: list[Reconciler] = [_messages, _webhooks, _campaigns]


class BoundedInMemoryBroker(InMemoryBroker):
    """Taskiq's in-memory broker runs every kicked task at once (its ``max_async_tasks`` applies
    only to brokers with a listener); this one runs at most ``limit`` at a time."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def kick(self, message: BrokerMessage) -> None:
        if self.find_task(message.task_name) is None:
            raise UnknownTaskError(task_name=message.task_name)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        slots = self._slots

        async def run() -> None:
            async with slots:
                await self.receiver.callback(message=message.message)

        task = asyncio.create_task(run())
        self._running_tasks.add(task)
        task.add_done_callback(self._running_tasks.discard)


def make_broker(settings: Settings) -> AsyncBroker:
    if settings.worker_mode == "external":
        from taskiq_redis import RedisStreamBroker

        url = settings.task_broker_url or settings.redis_url
        if not url:
            raise RuntimeError(
                "AISOULE_WORKER_MODE=external needs AISOULE_TASK_BROKER_URL or AISOULE_REDIS_URL"
            )
        # Acknowledged delivery: a worker reads with XREADGROUP and acknowledges (XACK) only after
        # the task ran (taskiq's default ack, "when saved"); a task whose worker died stays pending
        # and another worker takes it over with XAUTOCLAIM once it has been idle idle_timeout ms.
        # That timeout must exceed the longest task, or a live, slow task is run a second time
        # (harmless, claims make every send once, but wasted). maxlen caps the stream (approximate
        # trimming, XADD MAXLEN ~): sized far above what is ever pending, since trimming drops old
        # entries even if unacknowledged; the database reconciler covers whatever is lost. The
        # autoclaim lock expires on its own, so a worker killed while holding it blocks nobody.
        # Not RedisStreamClusterBroker: it never reclaims a dead worker's tasks.
        broker: AsyncBroker = RedisStreamBroker(
            url,
            queue_name="aisoule:tasks",
            consumer_group_name="aisoule-workers",
            maxlen=settings.task_stream_maxlen,
            approximate=True,
            idle_timeout=settings.task_idle_seconds * 1000,
            unacknowledged_lock_timeout=10.0,
        )
    else:
        # In-process tasks share the server's database pool with its requests: keep them to half
        # of it, so sending never starves the API (measured: 200 concurrent sends exhausted a
        # pool of 20 and requests waited 30 s for a connection).
        broker = BoundedInMemoryBroker(max(2, settings.database_pool_size // 2))
    for name, fn in TASKS.items():
        broker.register_task(fn, task_name=name)
    return broker


def enqueuer(broker: AsyncBroker) -> queue.Enqueue:
    async def enqueue(task: str, args: tuple[Any, ...]) -> None:
        registered = broker.find_task(task)
        if registered is None:
            raise LookupError(f"unknown task {task}")
        await registered.kiq(*args)

    return enqueue


async def reconcile_forever(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.settings.reconcile_seconds)
        for reconciler in RECONCILERS:
            try:
                for task, args in await reconciler(rt):
                    await queue.enqueue(task, *args)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("reconcile_failed", reconciler=reconciler.__name__, exc_info=True)


class Background:
    """What a process runs in the background: the broker, and the reconciler when it executes
    tasks (the server in-process, or `aisoule worker`)."""

    def __init__(self, rt: Runtime, *, executes: bool) -> None:
        self.rt = rt
        self.executes = executes
        self.broker = make_broker(rt.settings)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.executes and not isinstance(self.broker, InMemoryBroker):
            self.broker.is_worker_process = True
        await self.broker.startup()
        queue.install(enqueuer(self.broker))
        if self.executes:
            self._tasks.append(asyncio.create_task(reconcile_forever(self.rt)))
            if not isinstance(self.broker, InMemoryBroker):
                from taskiq.api import run_receiver_task

                self._tasks.append(
                    asyncio.create_task(
                        run_receiver_task(
                            self.broker,
                            max_async_tasks=self.rt.settings.database_pool_size * 2,
                        )
                    )
                )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if isinstance(self.broker, InMemoryBroker):
            running = list(getattr(self.broker, "_running_tasks", ()))
            if running:
                await asyncio.wait(running, timeout=5)
        queue.install(None)
        await self.broker.shutdown()
