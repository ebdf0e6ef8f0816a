"""Group commit packs writes within etcd's limits and keeps each key's writes in order."""

from __future__ import annotations

import asyncio

import pytest
from aetcd import rpc

from apiserver.storage import groupcommit
from apiserver.storage.groupcommit import GroupCommitter, _Write, txn_ops
from apiserver.storage.limits import Limits


def txn(key: str, ops: int = 1, value: bytes = b"v") -> rpc.TxnRequest:
    """A create of `key` plus `ops - 1` claim keys, shaped as EtcdStorage writes it."""
    keys = [key.encode(), *(f"{key}/claim/{i}".encode() for i in range(ops - 1))]
    return rpc.TxnRequest(
        compare=[rpc.Compare(key=k, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, create_revision=0)
                 for k in keys],
        success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value)) for k in keys],
        failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k)) for k in keys])


def write(key: str, ops: int = 1, size: int = 0) -> _Write:
    t = txn(key, ops, b"x" * size)
    return _Write(t, frozenset(k.key for k in t.compare), t.ByteSize(), txn_ops(t))


async def batches(writes: list[_Write], limits: Limits) -> list[list[str]]:
    """The batches `_take` forms from a queue of writes (none in flight), as the keys of their writes."""
    committer = GroupCommitter(lambda _: None, limits)  # type: ignore[arg-type,return-value]
    committer._queue.extend(writes)
    out = []
    while committer._queue:
        batch = committer._take()
        assert batch, "a queue with writes and nothing in flight always yields a batch"
        out.append([w.txn.compare[0].key.decode() for w in batch])
        committer._busy_keys.clear()
    return out


def check_fits(batch_writes: list[_Write], limits: Limits) -> None:
    """What etcd 3.4 checks: an outer transaction of n inner ones fits when n + the widest inner <= max-txn-ops."""
    if len(batch_writes) > 1:
        assert len(batch_writes) + max(w.ops for w in batch_writes) <= limits.max_txn_ops
        assert sum(w.size + groupcommit.WRAP_BYTES for w in batch_writes) <= limits.txn_bytes


# etcd's default --max-txn-ops, and a request limit just above the object limit.
STRICT = Limits(max_txn_ops=128, max_request_bytes=1536 * 1024 + 64 * 1024, max_object_bytes=1536 * 1024)
Spec = tuple[str, int, int]  # key, operations, value bytes


def pods(n: int, start: int = 0) -> list[Spec]:
    return [(f"p{i}", 1, 0) for i in range(start, start + n)]


def names(n: int, start: int = 0) -> list[str]:
    return [f"p{i}" for i in range(start, start + n)]


@pytest.mark.parametrize(("specs", "expected"), [
    pytest.param(pods(10), [names(10)], id="small-writes-share-one-batch"),
    pytest.param(pods(100), [names(64), names(36, 64)], id="batch-size-cap"),
    pytest.param([("p0", 1, 0), ("svc", 72, 0), ("p1", 1, 0)], [["p0", "svc", "p1"]], id="wide-write-fits-with-few"),
    pytest.param([*pods(60), ("svc", 72, 0), ("q", 1, 0)], [[*names(60), "q"], ["svc"]],
                 id="wide-write-waits-for-the-next-batch"),
    pytest.param([*pods(20), ("svc", 100, 0), *pods(20, 20)], [[*names(20), "svc", *names(7, 20)], names(13, 27)],
                 id="wide-write-cuts-batch-short"),
    pytest.param([("a", 127, 0), ("b", 1, 0)], [["a"], ["b"]], id="widest-goes-alone"),
    pytest.param([("a", 1, 900 * 1024), ("b", 1, 900 * 1024), ("c", 1, 0)], [["a", "c"], ["b"]], id="bytes"),
    pytest.param([("a", 3, 0), ("a", 1, 0), ("b", 1, 0)], [["a", "b"], ["a"]], id="one-key-twice-waits"),
    pytest.param([*pods(30), ("svc", 100, 0), ("svc", 1, 0), ("z", 1, 0)],
                 [[*names(30), "z"], ["svc"], ["svc"]], id="left-behind-write-holds-its-key"),
])
async def test_batches_fit_etcd_limits(specs: list[Spec], expected: list[list[str]]) -> None:
    """Writes are packed oldest first, each batch within max-txn-ops and max-request-bytes as etcd counts them,
    and a write left behind holds its keys so that a later write to them cannot overtake it."""
    writes = [write(*spec) for spec in specs]
    got = await batches(writes, STRICT)
    assert got == expected
    sizes = {w.txn.compare[0].key.decode(): w for w in writes}
    for batch in got:
        check_fits([sizes[k] for k in batch], STRICT)


def test_limits_refuse_an_object_limit_above_etcds() -> None:
    """An object limit that leaves no room in etcd's request limit is refused at start, naming both flags."""
    with pytest.raises(ValueError, match=r"--max-object-bytes.*--etcd-max-request-bytes"):
        Limits(max_request_bytes=1024 * 1024, max_object_bytes=1024 * 1024)


class Etcd:
    """A send that records each transaction's write keys and answers when told to (or at once: `hold=False`)."""

    def __init__(self, hold: bool = True) -> None:
        self.sent: list[list[str]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, t: rpc.TxnRequest) -> rpc.TxnResponse:
        inner = [op.request_txn for op in t.success if op.request_txn.compare]
        self.sent.append([x.compare[0].key.decode() for x in inner] or [t.compare[0].key.decode()])
        if b"stuck" in t.SerializeToString():
            await asyncio.Event().wait()
        await self.release.wait()
        responses = [rpc.ResponseOp(response_txn=rpc.TxnResponse(succeeded=True)) for _ in inner]
        return rpc.TxnResponse(succeeded=True, header=rpc.ResponseHeader(revision=7), responses=responses)


async def _submit(tg: asyncio.TaskGroup, committer: GroupCommitter, key: str) -> asyncio.Task[groupcommit.Result]:
    task = tg.create_task(committer.submit(txn(key), frozenset({key.encode()})))
    await asyncio.sleep(0)  # let it reach the queue
    return task


async def test_writes_wait_for_the_batch_in_flight_and_then_go_together() -> None:
    """etcd's CPU goes to raft rounds, not writes: while one batch is in flight the next ones queue, then
    share one transaction."""
    etcd = Etcd()
    committer = GroupCommitter(etcd)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(committer.run())
        first = await _submit(tg, committer, "a")
        await asyncio.sleep(0.01)
        later = [await _submit(tg, committer, k) for k in ("b", "c", "d")]
        await asyncio.sleep(0.01)
        assert etcd.sent == [["a"]]
        etcd.release.set()
        assert all(r.succeeded for r in await asyncio.gather(first, *later))
        assert etcd.sent == [["a"], ["b", "c", "d"]]
        runner.cancel()


async def test_a_full_batch_goes_beside_the_one_in_flight() -> None:
    """Under heavy load batches still overlap: a full batch waiting goes at once, up to MAX_IN_FLIGHT."""
    etcd = Etcd()
    committer = GroupCommitter(etcd)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(committer.run())
        waiting = [await _submit(tg, committer, "first")]
        await asyncio.sleep(0.01)
        waiting += [tg.create_task(committer.submit(txn(f"p{i}"), frozenset({f"p{i}".encode()})))
                    for i in range(groupcommit.MAX_WRITES)]
        await asyncio.sleep(0.01)
        assert etcd.sent == [["first"], names(groupcommit.MAX_WRITES)]
        etcd.release.set()
        assert all(r.succeeded for r in await asyncio.gather(*waiting))
        runner.cancel()


async def test_batches_stuck_on_a_lost_leader_do_not_hold_back_later_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that etcd does not answer (sent to a leader that died) stops counting as in flight after
    STALLED_AFTER: a write submitted later is sent and answered while it still waits."""
    monkeypatch.setattr(groupcommit, "STALLED_AFTER", 0.05)
    committer = GroupCommitter(Etcd(hold=False))  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(committer.run())
        stuck = await _submit(tg, committer, "stuck")
        await asyncio.sleep(0.01)
        assert committer._in_flight == 1
        later = await asyncio.wait_for(committer.submit(txn("later"), frozenset({b"later"})), 2.0)
        assert later.succeeded and not stuck.done()
        assert committer._stalled == 1
        stuck.cancel()
        runner.cancel()
