"""What every controller shares: a work queue, enqueue helpers, and a logged reconcile wrapper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from google.protobuf.message import Message

from client.informer import key_of
from client.workqueue import WorkQueue, run_workers

log = structlog.get_logger()


class QueueController:
    """A controller driven by one work queue of object keys."""

    name = "controller"
    workers = 1
    recorder: Any = None  # an EventRecorder, drained while the controller runs

    def __init__(self) -> None:
        self.queue = WorkQueue()
        self.log = log.bind(controller=self.name)

    def enqueue(self, obj: Message) -> None:
        self.queue.add(key_of(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    async def ready(self) -> None:
        """Wait until the informers this controller reads have synced."""

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self.recorder is not None:
                tg.create_task(self.recorder.run())
            await self.ready()
            self.log.info("controller_started", workers=self.workers)
            try:
                await run_workers(self.queue, self._timed(self.reconcile), workers=self.workers, name=self.name)
            finally:
                self.queue.shutdown()

    def _timed(self, fn: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
        async def timed(key: str) -> None:
            start = time.perf_counter()
            try:
                await fn(key)
            finally:
                self.log.debug("reconciled", key=key, duration_ms=round((time.perf_counter() - start) * 1000, 2))

        return timed


async def gather_limited(coros: list[Awaitable[object]], limit: int = 256) -> list[object]:
    """Run awaitables concurrently, at most `limit` at once; exceptions are returned, not raised."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[object]) -> object:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
