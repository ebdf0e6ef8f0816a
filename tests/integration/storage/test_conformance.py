"""The storage interface's promises, checked against real etcd: what every Storage must do.

Each test runs twice: with commits sent one by one, and through the group
committer that batches concurrent commits into shared etcd transactions (what
the apiserver runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from apiserver.storage import interface as st
from apiserver.storage.interface import Create, Delete, Storage, Update

from .helpers import connected

P = "/conformance/"


@pytest.fixture(params=["direct", "group-commit"])
async def storage(request: pytest.FixtureRequest, etcd: str) -> AsyncIterator[Storage]:
    """A connected EtcdStorage over an empty etcd, committing directly or through the group committer."""
    async with connected(etcd, group_commit=request.param == "group-commit") as store:
        yield store


async def _watch(store: Storage, from_revision: int, count: int) -> list[st.Event]:
    """The first `count` events of a watch on the prefix from `from_revision`."""
    out: list[st.Event] = []

    async def read() -> None:
        async for events, _ in store.watch(P, from_revision=from_revision):
            out.extend(events)
            if len(out) >= count:
                return

    await asyncio.wait_for(read(), 10)
    return out[:count]


async def test_writes_return_the_store_revision(storage: Storage) -> None:
    """Every write returns the revision it made; reads report it as the key's mod revision."""
    r1 = await storage.commit([Create(P + "a", b"1")])
    r2 = await storage.commit([Update(P + "a", b"2", r1)])
    assert 0 < r1 < r2
    kv = await storage.get(P + "a")
    assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"2", r2, r1)
    items, at = await storage.list(P)
    assert [(i.key, i.value) for i in items] == [(P + "a", b"2")] and at >= r2
    assert await storage.revision() >= r2
    r3 = await storage.commit([Delete(P + "a", r2)])
    assert r3 > r2 and await storage.get(P + "a") is None


async def test_create_if_absent_reports_the_current_value(storage: Storage) -> None:
    """Creating a key that exists fails naming the key, with the value and revision it holds."""
    r1 = await storage.commit([Create(P + "a", b"first")])
    with pytest.raises(st.KeyExistsError) as err:
        await storage.commit([Create(P + "a", b"second")])
    assert err.value.key == P + "a"
    assert err.value.current is not None
    assert (err.value.current.value, err.value.current.mod_revision) == (b"first", r1)


async def test_compare_and_swap_reports_the_current_value(storage: Storage) -> None:
    """An update or delete at a stale revision fails with what the key holds now; a missing key is NotFound."""
    r1 = await storage.commit([Create(P + "a", b"1")])
    r2 = await storage.commit([Update(P + "a", b"2", r1)])
    for stale in (Update(P + "a", b"3", r1), Delete(P + "a", r1)):
        with pytest.raises(st.RevisionMismatchError) as err:
            await storage.commit([stale])
        assert err.value.current is not None
        assert (err.value.current.value, err.value.current.mod_revision) == (b"2", r2)
    with pytest.raises(st.KeyNotFoundError) as missing:
        await storage.commit([Update(P + "nope", b"x", r1)])
    assert missing.value.key == P + "nope"
    await storage.commit([Delete(P + "a")])  # revision 0: whatever it is
    assert await storage.get(P + "a") is None


@pytest.mark.parametrize(("ops", "error", "failed"), [
    pytest.param(lambda r: [Create(P + "new", b"x"), Create(P + "held", b"y")], st.KeyExistsError, "held",
                 id="create-and-existing"),
    pytest.param(lambda r: [Update(P + "held", b"z", r), Delete(P + "missing", 0)], st.KeyNotFoundError, "missing",
                 id="update-and-missing-delete"),
    pytest.param(lambda r: [Create(P + "new", b"x"), Update(P + "held", b"z", r - 1)], st.RevisionMismatchError,
                 "held", id="create-and-stale-update"),
])
async def test_multi_operation_commits_are_atomic(storage: Storage, ops, error: type[Exception],  # type: ignore[no-untyped-def]
                                                  failed: str) -> None:
    """When one operation of a commit fails, none is applied, and the error names the one that failed."""
    await storage.commit([Create(P + "pad", b"")])
    r = await storage.commit([Create(P + "held", b"h")])
    before = await storage.list(P)
    with pytest.raises(error) as err:
        await storage.commit(ops(r))
    assert err.value.key == P + failed  # type: ignore[attr-defined]
    after = await storage.list(P)
    assert [(i.key, i.value, i.mod_revision) for i in after[0]] == [(i.key, i.value, i.mod_revision)
                                                                   for i in before[0]]


async def test_one_commit_shares_one_revision(storage: Storage) -> None:
    """All operations of a commit land at one revision."""
    rev = await storage.commit([Create(P + "a", b"1"), Create(P + "b", b"2")])
    a, b = await storage.get(P + "a"), await storage.get(P + "b")
    assert a is not None and b is not None and a.mod_revision == b.mod_revision == rev


async def test_watch_from_a_revision(storage: Storage) -> None:
    """A watch from revision R replays every change from R on, in order, deletes with their last value."""
    r1 = await storage.commit([Create(P + "a", b"1")])
    r2 = await storage.commit([Update(P + "a", b"2", r1)])
    r3 = await storage.commit([Delete(P + "a", r2)])
    events = await _watch(storage, r2, 2)
    assert [(e.type, e.key, e.value, e.revision) for e in events] == [
        ("PUT", P + "a", b"2", r2), ("DELETE", P + "a", b"2", r3)]
    live = asyncio.create_task(_watch(storage, r3 + 1, 1))
    await asyncio.sleep(0.2)
    r4 = await storage.commit([Create(P + "b", b"new")])
    assert [(e.type, e.key, e.revision) for e in await live] == [("PUT", P + "b", r4)]


async def test_compaction_expires_old_revisions(storage: Storage) -> None:
    """After compaction, reading or watching from an older revision is an Expired (Compacted) error."""
    r1 = await storage.commit([Create(P + "a", b"1")])
    r2 = await storage.commit([Update(P + "a", b"2", r1)])
    await storage.commit([Update(P + "a", b"3", r2)])
    await storage.compact(r2)
    with pytest.raises(st.CompactedError):
        await storage.list(P, revision=r1)
    with pytest.raises(st.CompactedError):
        await _watch(storage, r1, 1)
    items, _ = await storage.list(P, revision=r2)
    assert [i.value for i in items] == [b"2"]


async def test_leased_keys_expire(storage: Storage) -> None:
    """A key written with a lease is removed by the store when the lease runs out."""
    lease = await storage.grant_lease(1)
    await storage.commit([Create(P + "brief", b"x", lease)])
    assert await storage.get(P + "brief") is not None
    for _ in range(50):
        if await storage.get(P + "brief") is None:
            return
        await asyncio.sleep(0.1)
    pytest.fail("a leased key outlived its lease")
