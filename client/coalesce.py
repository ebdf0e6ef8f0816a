"""Concurrent calls of one kind sent together, in one batch call.

A unary call costs the apiserver about 200 us of CPU in gRPC alone before its
handler runs (bench/api.py, the `floor` phase), more than the create it
carries. So a client's creates go as the storage's writes do (apiserver/storage/
groupcommit.py): the first goes alone at once; while `limit` calls are in
flight the next ones wait, and go in one batch call as soon as one returns.
Sparse calls keep their latency; a burst pays the per-call cost once per batch.
Each item still gets its own answer: a result, or the error its call alone
would have raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from api.errors import InternalError, UnimplementedError

I = TypeVar("I")  # noqa: E741
E = TypeVar("E")
R = TypeVar("R")


class Coalescer(Generic[I, R]):
    """`await coalescer(item)` answers as `one(item)` would; `many(items)` answers each item in order, with its
    result or its exception. A server without the batch call (UnimplementedError) turns batching off for good."""

    def __init__(self, one: Callable[[I], Awaitable[R]], many: Callable[[Sequence[I]], Awaitable[list[R | Exception]]],
                 *, limit: int = 1, max_items: int = 250, max_bytes: int = 1024 * 1024,
                 size: Callable[[I], int] = lambda _: 0) -> None:
        self.one, self.many, self.limit = one, many, limit
        self.max_items, self.max_bytes, self.size = max_items, max_bytes, size
        self.batching = True
        self.calls = 0  # calls sent, single or batch: what the server pays its per-call cost for
        self._in_flight = 0
        self._queue: deque[tuple[I, asyncio.Future[R]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: I) -> R:
        if not self.batching or (self._in_flight < self.limit and not self._queue):
            self._in_flight += 1
            self.calls += 1
            try:
                return await self.one(item)
            finally:
                self._in_flight -= 1
                self._send_queued()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._queue.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._queue.remove(entry)  # not sent yet: it never will be
            raise

    async def send_all(self, items: Sequence[I]) -> list[R | BaseException]:
        """Items known together (a controller's slow-start batch): split within the bounds and sent at once, beside
        whatever is in flight; per item, in order, its result or its exception."""
        queue = deque(items)
        batches = []
        while queue:
            batches.append(self._take(queue, lambda item: item))
        self.calls += len(batches)
        answers = await asyncio.gather(*(self._call(batch) for batch in batches))
        return [answer for batch in answers for answer in batch]

    def _take(self, queue: deque[E], item_of: Callable[[E], I]) -> list[E]:
        """One batch off the front of `queue`, within the bounds."""
        batch = [queue.popleft()]
        size = self.size(item_of(batch[0]))
        while queue and len(batch) < self.max_items:
            size += self.size(item_of(queue[0]))
            if size > self.max_bytes:
                break
            batch.append(queue.popleft())
        return batch

    async def _call(self, batch: list[I]) -> list[R | BaseException]:
        """One call for the batch (a plain one for a single item); per item its answer."""
        answers: list[R | BaseException]
        try:
            if len(batch) == 1 or not self.batching:
                return await asyncio.gather(*(self.one(item) for item in batch), return_exceptions=True)
            try:
                answers = list(await self.many(batch))
            except UnimplementedError:
                self.batching = False  # an older server: one call per item from now on
                return await asyncio.gather(*(self.one(item) for item in batch), return_exceptions=True)
        except Exception as e:  # the whole call failed: every item's call would have
            return [e] * len(batch)
        if len(answers) != len(batch):  # a server that broke the contract: no item can be told its own answer
            return [InternalError(f"a batch of {len(batch)} was answered with {len(answers)} results")] * len(batch)
        return answers

    def _send_queued(self) -> None:
        while self._queue and self._in_flight < self.limit:
            batch = self._take(self._queue, lambda entry: entry[0])
            self._in_flight += 1
            self.calls += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._call([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        finally:
            self._in_flight -= 1
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue  # its caller gave up waiting
            if isinstance(answer, asyncio.CancelledError):
                future.cancel()
            elif isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
        self._send_queued()

    async def close(self) -> None:
        """Cancel the batches in flight (their callers see CancelledError) and whatever still waits."""
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
