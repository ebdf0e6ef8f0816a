"""A watch cache whose etcd watch stalls (the stream stays open and delivers nothing) starts it again.

Seen on VMs after the etcd leader's machine lost power: the surviving apiservers stored writes, but their caches
stayed a few revisions behind, so every read that waited for this server's own writes timed out ("too large
resource version") and no controller could renew its lease. The stall is made here by withholding the real
watch's events once asked; the writes and the new watch are real etcd's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from api.errors import TimeoutError_
from apiserver import cache as cache_module
from apiserver.cache import PREFIX, WatchCache
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.interface import Create

from .helpers import connected


class StallingStorage:
    """The real storage, except that its first watch stops delivering once `stall` is set."""

    def __init__(self, real: EtcdStorage) -> None:
        self.real = real
        self.stall = asyncio.Event()
        self.watches = 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)

    async def watch(self, prefix: str, *, from_revision: int) -> AsyncIterator:  # type: ignore[type-arg]
        self.watches += 1
        first = self.watches == 1
        async with contextlib.aclosing(self.real.watch(prefix, from_revision=from_revision)) as events:
            async for item in events:
                if first and self.stall.is_set():
                    await asyncio.Event().wait()  # open, silent, until cancelled
                yield item


@pytest.mark.asyncio
async def test_a_stalled_watch_is_started_again_when_this_servers_write_does_not_arrive(
        etcd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No pause between restarts: the last check below must stand on the stall check alone.
    monkeypatch.setattr(cache_module, "STALL_RESTART_EVERY", 0.0)
    async with connected(etcd, group_commit=False) as real:
        storage = StallingStorage(real)
        cache = WatchCache(storage, replay=0)  # type: ignore[arg-type]
        task = asyncio.create_task(cache.run())
        try:
            async with asyncio.timeout(20):
                await cache.ready.wait()
            storage.stall.set()
            rev = await real.commit([Create(f"{PREFIX}configmaps/default/a", b"x")])
            cache.note_written(rev)
            with pytest.raises(TimeoutError_, match="too large resource version"):
                await cache.wait_for(rev, timeout=1.0)  # the stalled watch withholds it: found stalled
            await cache.wait_for(rev, timeout=10.0)  # the new watch delivers it
            assert storage.watches == 2 and cache.watch_restarts == 1
            # A revision nobody wrote (a client's guess) is only an error: the watch is not started again.
            with pytest.raises(TimeoutError_):
                await cache.wait_for(rev + 100, timeout=0.5)
            assert storage.watches == 2 and cache.watch_restarts == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
