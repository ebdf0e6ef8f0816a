"""Group commit: concurrent writes share one etcd transaction.

Each write stays its own compare-and-swap (an inner transaction with its own
compares), but many of them travel in one outer transaction, so etcd does one
raft round and one fsync for all of them and the apiserver makes one RPC.
Writes in one batch commit at the same revision. etcd refuses a transaction
that touches a key twice, so a batch never holds two writes to one key; and a
key with a write in flight waits, so writes to one key keep their order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aetcd import rpc

# etcd's default --max-txn-ops is 128 and --max-request-bytes 1.5 MiB.
MAX_WRITES = 64
MAX_BYTES = 1024 * 1024
MAX_IN_FLIGHT = 4

Send = Callable[[rpc.TxnRequest], Awaitable[rpc.TxnResponse]]


@dataclass
class Result:
    succeeded: bool
    responses: list[rpc.ResponseOp]
    revision: int


@dataclass
class _Write:
    txn: rpc.TxnRequest
    keys: frozenset[bytes]
    size: int
    done: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommitter:
    """Batches transactions submitted concurrently; `run()` sends them until cancelled."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[_Write] = deque()
        self._busy_keys: set[bytes] = set()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self.running = False
        self.batches = 0
        self.writes = 0

    async def submit(self, txn: rpc.TxnRequest, keys: frozenset[bytes]) -> Result:
        write = _Write(txn, keys, txn.ByteSize())
        self._queue.append(write)
        self._wake.set()
        return await write.done

    async def run(self) -> None:
        self.running = True
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    while self._in_flight < MAX_IN_FLIGHT:
                        batch = self._take()
                        if not batch:
                            break
                        self._in_flight += 1
                        tg.create_task(self._commit(batch))
        finally:
            self.running = False
            for w in self._queue:
                if not w.done.done():
                    w.done.cancel()
            self._queue.clear()

    def _take(self) -> list[_Write]:
        """The oldest writes whose keys are free, up to the batch limits; later writes to a
        busy key wait, so per-key order is kept."""
        batch: list[_Write] = []
        keys: set[bytes] = set()
        size = 0
        kept: deque[_Write] = deque()
        while self._queue and len(batch) < MAX_WRITES:
            w = self._queue.popleft()
            if w.done.cancelled():
                continue
            blocked = w.keys & (self._busy_keys | keys) or (batch and size + w.size > MAX_BYTES)
            if blocked:
                kept.append(w)
                continue
            batch.append(w)
            keys |= w.keys
            size += w.size
        kept.extend(self._queue)
        self._queue = kept
        self._busy_keys |= keys
        return batch

    async def _commit(self, batch: list[_Write]) -> None:
        try:
            if len(batch) == 1:
                resp = await self._send(batch[0].txn)
                results = [Result(resp.succeeded, list(resp.responses), resp.header.revision)]
            else:
                outer = rpc.TxnRequest(success=[rpc.RequestOp(request_txn=w.txn) for w in batch])
                resp = await self._send(outer)
                results = [Result(r.response_txn.succeeded, list(r.response_txn.responses), resp.header.revision)
                           for r in resp.responses]
            for w, result in zip(batch, results, strict=True):
                if not w.done.done():
                    w.done.set_result(result)
            self.batches += 1
            self.writes += len(batch)
        except BaseException as e:
            for w in batch:
                if not w.done.done():
                    w.done.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
            if not isinstance(e, Exception):
                raise
        finally:
            for w in batch:
                self._busy_keys -= w.keys
            self._in_flight -= 1
            if self._queue:
                self._wake.set()
