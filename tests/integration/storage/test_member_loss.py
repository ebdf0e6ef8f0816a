"""The storage and its watch cache when their etcd member goes away.

Seen on VMs: the etcd leader's machine lost power, and the surviving apiservers' caches, whose watches were on that
member, stayed a few revisions behind for minutes (a vanished machine sends no reset, so the stream stayed open and
silent). Here a member is frozen with SIGSTOP, which leaves its sockets open in the same way, and the writes go
through another member, as another apiserver's would; or it is killed, as a crashed etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import testpki

from api.errors import TimeoutError_, UnavailableError
from apiserver import cache as cache_module
from apiserver.cache import PREFIX, WatchCache
from apiserver.storage import etcd as etcd_module
from apiserver.storage.etcd import EtcdStorage, parse_endpoints
from apiserver.storage.interface import Create, WatchMovedError

from .helpers import Member, connected, leader_of


@contextlib.asynccontextmanager
async def following(storage: EtcdStorage) -> AsyncIterator[WatchCache]:
    cache = WatchCache(storage, replay=0)
    task = asyncio.create_task(cache.run())
    try:
        async with asyncio.timeout(20):
            await cache.ready.wait()
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def frozen(member: Member) -> AsyncIterator[None]:
    member.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        member.proc.send_signal(signal.SIGCONT)


async def write_elsewhere(url: str, key: str) -> int:
    """Commit through another member, retrying while the survivors elect a leader."""
    async with connected(url, group_commit=False) as other:
        deadline = time.monotonic() + 20
        while True:
            try:
                return await other.commit([Create(f"{PREFIX}configmaps/default/{key}", b"")])
            except UnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def storage_on(first: Member, members: list[Member]) -> EtcdStorage:
    """Storage connected to `first` (listed first, as an apiserver that came up before its own member answered)."""
    urls = [first.url, *(m.url for m in members if m is not first)]
    storage = EtcdStorage(parse_endpoints(",".join(urls)), tls_files=testpki.get().etcd_tls())
    for _ in range(20):  # a member just started may not answer yet, and the storage takes the next
        await storage.connect(timeout=10)
        if first.url.endswith(storage.endpoint):
            return storage
        await asyncio.sleep(0.5)
    await storage.close()
    raise AssertionError(f"the storage would not connect to {first.url}")


async def test_a_watch_ends_when_the_storage_moves_to_another_member(etcd: str) -> None:
    async with connected(etcd, group_commit=False) as storage:
        rev = await storage.commit([Create("/moves/a", b"")])
        events = storage.watch("/moves/", from_revision=rev)
        assert (await anext(events))[1] == rev
        await storage.connect(timeout=5)  # as after a call to its member timed out
        with pytest.raises(WatchMovedError):
            async with asyncio.timeout(5):
                await anext(events)
        # Watching again works, through the new connection.
        rev = await storage.commit([Create("/moves/b", b"")])
        again = storage.watch("/moves/", from_revision=rev)
        assert (await anext(again))[1] == rev
        await again.aclose()


async def test_pings_find_a_frozen_member_and_the_cache_catches_up(
        members: list[Member], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_module, "KEEPALIVE_TIMEOUT", 2.0)  # an unanswered ping ends the connection sooner
    leader = await leader_of(members)
    other = next(m for m in members if m is not leader)
    storage = await storage_on(leader, members)
    try:
        async with following(storage) as cache, frozen(leader):
            started = time.monotonic()
            rev = await write_elsewhere(other.url, "after-freeze")
            # Nothing reads through this cache (a read would find the stall itself): only the pings can tell.
            for _ in range(300):
                if cache.revision >= rev:
                    break
                await asyncio.sleep(0.1)
            assert cache.revision >= rev, f"the cache is at {cache.revision} 30s after {rev} was written elsewhere"
            print(f"\nthe cache had a write made elsewhere {time.monotonic() - started:.1f}s after its member froze")
    finally:
        await storage.close()


async def test_a_read_waiting_for_a_write_made_elsewhere_restarts_a_watch_on_a_frozen_member(
        members: list[Member], monkeypatch: pytest.MonkeyPatch) -> None:
    # Pings out of the way: the read alone must find the stall.
    monkeypatch.setattr(etcd_module, "KEEPALIVE_TIME", 3600.0)
    monkeypatch.setattr(etcd_module, "KEEPALIVE_TIMEOUT", 3600.0)
    leader = await leader_of(members)
    other = next(m for m in members if m is not leader)
    storage = await storage_on(leader, members)
    try:
        async with following(storage) as cache, frozen(leader):
            rev = await write_elsewhere(other.url, "seen-by-a-client")
            # A client that saw `rev` through another apiserver asks this one for it.
            with pytest.raises(TimeoutError_, match="too large resource version"):
                await cache.wait_for(rev, timeout=1.0)
            await cache.wait_for(rev, timeout=20.0)
            assert cache.watch_restarts == 1
    finally:
        await storage.close()


async def test_a_revision_nobody_wrote_does_not_restart_the_watch(
        etcd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "STALL_RESTART_EVERY", 0.0)
    async with connected(etcd, group_commit=False) as storage, following(storage) as cache:
        with pytest.raises(TimeoutError_):
            await cache.wait_for(cache.revision + 100, timeout=0.5)
        assert cache.watch_restarts == 0


async def test_calls_that_fail_together_reconnect_once(members: list[Member], monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls in flight when their member dies all fail; one of them reconnects and the others use that (each
    reconnecting in turn, under one lock, would hold every write back by a probe per call)."""
    first = members[0]
    storage = await storage_on(first, members)
    connects = 0
    real_connect = storage.connect

    async def counting(**kw: Any) -> None:
        nonlocal connects
        connects += 1
        await real_connect(**kw)

    monkeypatch.setattr(storage, "connect", counting)
    try:
        await storage.commit([Create("/loss/a", b"")])
        first.proc.kill()
        first.proc.wait()
        outcomes = await asyncio.gather(*(storage.get("/loss/a") for _ in range(8)), return_exceptions=True)
        assert all(isinstance(o, UnavailableError) or o is not None for o in outcomes), outcomes
        assert connects == 1
        assert await storage.get("/loss/a") is not None  # through another member
    finally:
        await storage.close()


async def test_a_write_to_a_silent_member_fails_soon_and_the_next_goes_elsewhere(
        members: list[Member], monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower frozen under a write (a machine cut off: no answer, no reset): the write fails within about
    2.5 s, said to have an unknown outcome, and the next write goes through another member, long before the
    call's 10 s deadline or the pings would tell."""
    monkeypatch.setattr(etcd_module, "KEEPALIVE_TIME", 3600.0)  # pings out of the way: the write alone must tell
    monkeypatch.setattr(etcd_module, "KEEPALIVE_TIMEOUT", 3600.0)
    leader = await leader_of(members)
    follower = next(m for m in members if m is not leader)
    storage = await storage_on(follower, members)
    try:
        await storage.commit([Create("/silent/before", b"")])
        async with frozen(follower):
            started = time.monotonic()
            with pytest.raises(UnavailableError, match=r"stopped answering.*may or may not have been applied"):
                await storage.commit([Create("/silent/during", b"")])
            failed_after = time.monotonic() - started
            await storage.commit([Create("/silent/after", b"")])
            written_after = time.monotonic() - started
        print(f"\nthe write failed {failed_after:.1f}s after its member froze; the next was in at {written_after:.1f}s")
        assert failed_after < 4.0 and written_after < 5.0, (failed_after, written_after)
        assert not follower.url.endswith(storage.endpoint)
        assert await storage.get("/silent/before") is not None and await storage.get("/silent/after") is not None
    finally:
        await storage.close()
