"""Group commit: concurrent writes share one etcd transaction.

Each write stays its own compare-and-swap (an inner transaction with its own
compares), but many of them travel in one outer transaction, so etcd does one
raft round and one fsync for all of them and the apiserver makes one RPC.
Writes in one batch commit at the same revision. etcd refuses a transaction
that touches a key twice, so a batch never holds two writes to one key; and a
key with a write in flight waits, so writes to one key keep their order.

etcd also refuses a transaction over its --max-txn-ops or --max-request-bytes,
and then every write in it would fail. So each write's operations and bytes are
counted, and a batch is packed to fit: etcd allows an outer transaction of n
inner ones when n plus the most operations of any inner one is at most
max-txn-ops (measured on etcd 3.4), and the whole request within max-request-bytes.
A write too large for any transaction never gets here (EtcdStorage.commit
refuses it), and if etcd still refuses a batch for what it holds, each of its
writes is sent again alone, so one write can never fail another.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from aetcd import rpc

from apiserver.storage.limits import Limits

# Batch size that keeps latency low under load; etcd's limits may cut a batch shorter.
MAX_WRITES = 64
MAX_BYTES = 1024 * 1024
# etcd spends 1.3-2 ms of CPU on every raft round (proposal, fsync, apply) however few writes it
# carries, and through the apiserver it got one transaction of about two writes per round. So a batch
# waits while another is in flight and then goes with everything queued meanwhile; a second one goes
# alongside only when a full batch is waiting. 20,000 creates from 64 clients: etcd CPU 14.3 -> 7.6 s,
# creates/s 1,088 -> 1,393 (bench/api.py --only etcd,creates, which reports etcd's rounds per create).
MAX_IN_FLIGHT = 4
# A batch in flight this long no longer holds back the next ones: when etcd loses its leader, what was sent
# to it waits out etcd's request timeout (about 7 s) while writes sent after the election would succeed.
STALLED_AFTER = 1.0
MAX_STALLED = 64
# How far down the queue one batch looks for writes that fit (bounds the cost of a long queue).
MAX_SCAN = 1024
# What nesting one write's transaction in the outer one adds to its size.
WRAP_BYTES = 16
# Refusals of a whole batch a resend cannot mend (etcd is down): every write gets the error.
_SHARED_FAILURES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)

Send = Callable[[rpc.TxnRequest], Awaitable[rpc.TxnResponse]]


@dataclass
class Result:
    succeeded: bool
    responses: list[rpc.ResponseOp]
    revision: int


def txn_ops(txn: rpc.TxnRequest) -> int:
    """The operations etcd counts against --max-txn-ops for this transaction."""
    return max(len(txn.compare), len(txn.success), len(txn.failure))


@dataclass
class _Write:
    txn: rpc.TxnRequest
    keys: frozenset[bytes]
    size: int
    ops: int
    done: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _Batch:
    """Writes chosen for one transaction, and what they add up to."""

    writes: list[_Write] = field(default_factory=list)
    keys: set[bytes] = field(default_factory=set)
    size: int = 0
    widest: int = 0  # the most operations of any one write

    def fits(self, w: _Write, limits: Limits) -> bool:
        if not self.writes:
            return True  # alone, a write is sent as it is; it was checked against the limits before
        n = len(self.writes) + 1
        size = self.size + w.size + WRAP_BYTES * n
        return (n + max(self.widest, w.ops) <= limits.max_txn_ops and size <= limits.txn_bytes
                and size <= MAX_BYTES)

    def add(self, w: _Write) -> None:
        self.writes.append(w)
        self.keys |= w.keys
        self.size += w.size
        self.widest = max(self.widest, w.ops)


class GroupCommitter:
    """Batches transactions submitted concurrently; `run()` sends them until cancelled."""

    def __init__(self, send: Send, limits: Limits | None = None) -> None:
        self._send = send
        self.limits = limits or Limits()
        self._queue: deque[_Write] = deque()
        self._busy_keys: set[bytes] = set()
        self._in_flight = 0
        self._stalled = 0
        self._wake = asyncio.Event()
        self.running = False
        self.batches = 0
        self.writes = 0
        self.resent = 0  # batches etcd refused whose writes were sent again one by one

    async def submit(self, txn: rpc.TxnRequest, keys: frozenset[bytes]) -> Result:
        write = _Write(txn, keys, txn.ByteSize(), txn_ops(txn))
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
                    while self._in_flight == 0 or (self._in_flight < MAX_IN_FLIGHT
                                                   and len(self._queue) >= MAX_WRITES):
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
        """The oldest writes whose keys are free, within the batch and etcd limits. A write left
        behind holds its keys, so a later write to one of them waits too: per-key order is kept."""
        batch = _Batch()
        held: set[bytes] = set()
        kept: deque[_Write] = deque()
        scanned = 0
        while self._queue and len(batch.writes) < MAX_WRITES and scanned < MAX_SCAN:
            w = self._queue.popleft()
            scanned += 1
            if w.done.cancelled():
                continue
            if w.keys & (self._busy_keys | batch.keys | held) or not batch.fits(w, self.limits):
                kept.append(w)
                held |= w.keys
                continue
            batch.add(w)
        kept.extend(self._queue)
        self._queue = kept
        self._busy_keys |= batch.keys
        return batch.writes

    async def _commit(self, batch: list[_Write]) -> None:
        stalled = False

        def stall() -> None:
            nonlocal stalled
            if self._stalled < MAX_STALLED:
                stalled = True
                self._stalled += 1
                self._in_flight -= 1
                self._wake.set()

        timer = asyncio.get_running_loop().call_later(STALLED_AFTER, stall)
        try:
            try:
                results: list[Result | None] = await self._send_batch(batch)
            except grpc.aio.AioRpcError as e:
                if len(batch) == 1 or e.code() in _SHARED_FAILURES:
                    raise
                # etcd refused the batch for what it holds (its limits are lower than this server
                # was told): each write alone gets its own answer.
                self.resent += 1
                results = []
                for w in batch:
                    try:
                        results += await self._send_batch([w])
                    except grpc.aio.AioRpcError as alone:
                        if not w.done.done():
                            w.done.set_exception(alone)
                        results.append(None)
            for w, result in zip(batch, results, strict=True):
                if result is not None and not w.done.done():
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
            timer.cancel()
            for w in batch:
                self._busy_keys -= w.keys
            if stalled:
                self._stalled -= 1
            else:
                self._in_flight -= 1
            if self._queue:
                self._wake.set()

    async def _send_batch(self, batch: list[_Write]) -> list[Result | None]:
        if len(batch) == 1:
            resp = await self._send(batch[0].txn)
            return [Result(resp.succeeded, list(resp.responses), resp.header.revision)]
        outer = rpc.TxnRequest(success=[rpc.RequestOp(request_txn=w.txn) for w in batch])
        resp = await self._send(outer)
        return [Result(r.response_txn.succeeded, list(r.response_txn.responses), resp.header.revision)
                for r in resp.responses]
