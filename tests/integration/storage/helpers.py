"""Storage as the apiserver runs it, for the storage tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import testpki

from apiserver.storage.etcd import EtcdStorage, parse_endpoints


@contextlib.asynccontextmanager
async def connected(url: str, *, group_commit: bool) -> AsyncIterator[EtcdStorage]:
    """An EtcdStorage connected to `url`, committing directly or through the group committer."""
    store = EtcdStorage(parse_endpoints(url), tls_files=testpki.get().etcd_tls())
    await store.connect(timeout=10)
    task = asyncio.create_task(store.run_group_commit()) if group_commit else None
    if task is not None:
        await asyncio.sleep(0)  # let the committer start
    try:
        yield store
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
