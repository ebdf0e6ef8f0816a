"""Watch: resuming across apiserver restarts, expiry, bookmarks, and the Informer built on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from conftest import RunningApiserver, etcd_connection, start_apiserver
from structlog.testing import capture_logs

from api.errors import ApiError, ExpiredError, InvalidError
from client.api import Client, WatchEvent
from client.informer import Informer

from .helpers import make, pod, restart_port


async def _take(events: AsyncIterator[WatchEvent], n: int, timeout: float = 10) -> list[WatchEvent]:
    """The next n non-bookmark events."""
    out: list[WatchEvent] = []

    async def go() -> None:
        async for ev in events:
            if ev.type != "BOOKMARK":
                out.append(ev)
            if len(out) >= n:
                return

    await asyncio.wait_for(go(), timeout)
    return out


async def _writes(client: Client, prefix: str, n: int) -> list[tuple[str, str, str]]:
    """Create, update and delete pods; return (type, name, resourceVersion) as acknowledged ("" for deletes)."""
    acks: list[tuple[str, str, str]] = []
    for i in range(n):
        name = f"{prefix}{i}"
        created = await client.create(pod(name))
        acks.append(("ADDED", name, created.metadata.resource_version))
        created.metadata.labels["step"] = "2"
        updated = await client.update(created)
        acks.append(("MODIFIED", name, updated.metadata.resource_version))
        if i % 2:
            await client.delete("pods", name, "default")
            acks.append(("DELETED", name, ""))
    return acks


def _check_exactly_once_in_order(seen: list[WatchEvent], acks: list[tuple[str, str, str]]) -> None:
    assert [(e.type, e.object.metadata.name) for e in seen] == [(t, n) for t, n, _ in acks]
    for ev, (_, _, rv) in zip(seen, acks, strict=True):
        if rv:
            assert ev.resource_version == rv
    revisions = [int(e.resource_version) for e in seen]
    assert revisions == sorted(set(revisions)), "each change once, in revision order"


async def test_watch_resumes_across_apiserver_restart(etcd: str) -> None:
    """Writes made through a second apiserver while the first was down reach a watcher that resumes from its
    last resourceVersion through the restarted first apiserver: every change exactly once, in order."""
    port = restart_port()
    first = await start_apiserver(etcd, replay=1000, listen=[f"127.0.0.1:{port}"])
    async with first.client() as c1:
        start = (await c1.list("pods", "default")).resource_version
        before = await _writes(c1, "before-", 3)
        seen = await _take(c1.watch("pods", "default", resource_version=start), len(before))
        _check_exactly_once_in_order(seen, before)
        last_rv = seen[-1].resource_version
    await first.stop()

    second = await start_apiserver(etcd)
    async with second.client() as c2:
        during = await _writes(c2, "during-", 4)
    await second.stop()

    restarted = await start_apiserver(etcd, replay=1000, listen=[f"127.0.0.1:{port}"])
    try:
        async with restarted.client() as c3:
            watch = c3.watch("pods", "default", resource_version=last_rv)
            resumed = await _take(watch, len(during))
            after = await _writes(c3, "after-", 1)
            resumed += await _take(watch, len(after))
            await watch.aclose()
    finally:
        await restarted.stop()
    _check_exactly_once_in_order(resumed, during + after)


async def test_starts_when_the_newest_writes_are_outside_the_registry(etcd: str) -> None:
    """An apiserver whose etcd's newest revisions belong to other keys still starts (replaying history) and serves
    the registry's current state."""
    from aetcd import rpc

    first = await start_apiserver(etcd)
    async with first.client() as c:
        await c.create(pod("a"))
    await first.stop()
    raw = etcd_connection(etcd)
    try:
        for i in range(5):
            await raw.kvstub.Put(rpc.PutRequest(key=f"/elsewhere/{i}".encode(), value=b"x"), timeout=10)
    finally:
        await raw.close()
    server = await asyncio.wait_for(start_apiserver(etcd, replay=1000), 10)
    try:
        async with server.client() as c:
            assert [p.metadata.name for p in await c.list_all("pods")] == ["a"]
    finally:
        await server.stop()


async def test_replayed_history_is_complete_when_ready(etcd: str) -> None:
    """An apiserver replaying a long etcd history on start serves only once it holds all of it: a List right after
    it is ready sees every object (etcd 3.4 answers progress requests with its current revision before it has sent
    a catching-up watch everything)."""
    from aetcd import rpc

    first = await start_apiserver(etcd)  # creates the system namespaces, so the next start writes nothing
    await first.stop()
    padded = pod("x")
    padded.metadata.annotations["pad"] = "p" * 2000  # big enough that the replay takes a while
    value = padded.SerializeToString()
    count = 15000
    raw = etcd_connection(etcd)
    try:
        for start in range(0, count, 1000):
            await asyncio.gather(*(raw.kvstub.Put(rpc.PutRequest(key=f"/registry/pods/default/p{i:05d}".encode(),
                                                                 value=value), timeout=30)
                                   for i in range(start, start + 1000)))
    finally:
        await raw.close()
    server = await start_apiserver(etcd, replay=20000)
    try:
        async with server.client() as c:
            assert len(await c.list_all("pods", "default")) == count
    finally:
        await server.stop()


async def test_watch_from_a_version_the_server_no_longer_has_expires(etcd: str) -> None:
    """Resuming from a version older than the restarted server's history is ExpiredError: the client must relist."""
    first = await start_apiserver(etcd)
    async with first.client() as c:
        old = (await c.create(pod("a"))).metadata.resource_version
        await _writes(c, "x", 2)
    await first.stop()
    restarted = await start_apiserver(etcd, replay=0)
    try:
        async with restarted.client() as c:
            with pytest.raises(ExpiredError, match=f"too old resource version: {old}"):
                await _take(c.watch("pods", "default", resource_version=old), 1)
    finally:
        await restarted.stop()


async def test_watch_from_the_future_times_out(client: Client) -> None:
    """A resourceVersion ahead of the server is refused rather than waited on forever."""
    from api.errors import TimeoutError_

    rv = int((await client.list("pods")).resource_version)
    with pytest.raises(TimeoutError_, match=f"too large resource version: {rv + 1000}"):
        await _take(client.watch("pods", resource_version=str(rv + 1000)), 1)


async def test_watch_bad_resource_version(client: Client) -> None:
    """A resourceVersion that is not a number is an invalid request."""
    with pytest.raises(InvalidError, match="resourceVersion: Invalid value: 'abc'"):
        await _take(client.watch("pods", resource_version="abc"), 1)


async def test_watch_from_empty_version_lists_first(client: Client) -> None:
    """A watch with no resourceVersion starts with ADDED for every current object, then follows."""
    await client.create(pod("a"))
    await client.create(pod("b"))
    watch = client.watch("pods", "default")
    first = await _take(watch, 2)
    await client.create(pod("c"))
    first += await _take(watch, 1)
    await watch.aclose()
    assert [(e.type, e.object.metadata.name) for e in first] == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]


async def test_bookmarks_carry_the_current_version(client: Client) -> None:
    """A pod watch that asked for bookmarks learns, by a BOOKMARK, that the store moved on through other kinds."""
    rv = (await client.create(pod("a"))).metadata.resource_version
    watch = client.watch("pods", "default", resource_version=rv, bookmarks=True)

    async def first_bookmark() -> WatchEvent:
        async for ev in watch:
            if ev.type == "BOOKMARK":
                return ev
            raise AssertionError(f"unexpected {ev.type}")
        raise AssertionError("watch ended")

    waiting = asyncio.create_task(first_bookmark())
    await asyncio.sleep(0.1)
    other = await client.create(make("Service"))
    ev = await asyncio.wait_for(waiting, 5)
    await watch.aclose()
    assert int(ev.resource_version) >= int(other.metadata.resource_version)
    assert ev.object.metadata.resource_version == ev.resource_version


async def test_many_watchers_share_one_change(client: Client) -> None:
    """Many watchers on one apiserver each get the change (one etcd watch fans out)."""
    rv = (await client.list("pods")).resource_version
    watches = [client.watch("pods", "default", resource_version=rv) for _ in range(200)]
    tasks = [asyncio.create_task(_take(w, 1)) for w in watches]
    await asyncio.sleep(0.2)
    created = await client.create(pod("p"))
    results = await asyncio.gather(*tasks)
    assert {r[0].resource_version for r in results} == {created.metadata.resource_version}
    for w in watches:
        await w.aclose()


# ---------------------------------------------------------------- informer


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def add(self, obj) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("add", obj.metadata.name))
        self.changed.set()

    def update(self, old, new) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("update", new.metadata.name))
        self.changed.set()

    def delete(self, obj) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("delete", obj.metadata.name))
        self.changed.set()


async def _until(predicate, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _informer(server: RunningApiserver) -> AsyncIterator[tuple[Informer, _Recorder]]:
    client = server.client()
    inf: Informer = Informer(client, "pods", namespace="default")
    rec = _Recorder()
    inf.add_handlers(rec.add, rec.update, rec.delete)
    task = asyncio.create_task(inf.run())
    try:
        await inf.wait_synced(10)
        yield inf, rec
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


@pytest.mark.parametrize(("replay", "relists"), [
    pytest.param(1000, 1, id="resumes-from-replayed-history"),
    pytest.param(0, 2, id="relists-when-history-is-gone"),
])
async def test_informer_survives_apiserver_restart(etcd: str, replay: int, relists: int) -> None:
    """An Informer keeps a correct store across an apiserver restart with writes in between: it resumes from its
    resourceVersion when the restarted server still has the history, and relists (reporting the difference) when
    the version is too old."""
    port = restart_port()
    server = await start_apiserver(etcd, listen=[f"127.0.0.1:{port}"])
    restarted: RunningApiserver | None = None
    try:
        async with server.client() as c:
            await c.create(pod("keep"))
            await c.create(pod("change"))
            await c.create(pod("remove"))
        async with _informer(server) as (inf, rec):
            assert sorted(inf.store) == ["default/change", "default/keep", "default/remove"]
            await server.stop()
            helper = await start_apiserver(etcd)
            async with helper.client() as c:
                changed = await c.get("pods", "change", "default")
                changed.metadata.labels["v"] = "2"
                await c.update(changed)
                await c.delete("pods", "remove", "default")
                await c.create(pod("new"))
            await helper.stop()
            restarted = await start_apiserver(etcd, replay=replay, listen=[f"127.0.0.1:{port}"])
            await _until(lambda: sorted(inf.store) == ["default/change", "default/keep", "default/new"]
                         and inf.store["default/change"].metadata.labels.get("v") == "2")
            assert inf.relists == relists
            assert sorted(rec.events[3:]) == [("add", "new"), ("delete", "remove"), ("update", "change")]
            async with restarted.client() as c:
                await c.create(pod("later"))
            await _until(lambda: "default/later" in inf.store)
            assert rec.events[-1] == ("add", "later")
    finally:
        await server.stop()
        if restarted is not None:
            await restarted.stop()


async def test_informer_relists_on_expired_watch(etcd: str) -> None:
    """When its watch is cut off as too far behind, an Informer relists and ends with the right store."""
    import apiserver.cache as cache_module

    server = await start_apiserver(etcd)
    try:
        with capture_logs() as logs:
            async with _informer(server) as (inf, _), server.client() as c:
                old_max = cache_module.MAX_PENDING
                cache_module.MAX_PENDING = 0  # every watcher with anything pending is cut off
                try:
                    await c.create(pod("a"))
                    await _until(lambda: inf.relists >= 2)
                finally:
                    cache_module.MAX_PENDING = old_max
                await c.create(pod("b"))
                await _until(lambda: sorted(inf.store) == ["default/a", "default/b"])
    finally:
        await server.stop()
    expired = [e for e in logs if e["event"] == "informer_expired"]
    assert expired and expired[0]["informer"] == "pods"
    assert "fell too far behind" in expired[0]["error"]


async def test_informer_index(apiserver: RunningApiserver, client: Client) -> None:
    """Informer indexes follow adds, updates and deletes."""
    for i in range(4):
        await client.create(pod(f"p{i}"))
    async with _informer(apiserver) as (inf, _):
        inf.add_index("node", lambda p: [p.spec.node_name] if p.spec.node_name else [])
        await client.bind("default", "p1", "n1")
        await client.bind("default", "p2", "n1")
        await _until(lambda: len(inf.by_index("node", "n1")) == 2)
        await client.delete("pods", "p1", "default", grace_period_seconds=0)
        await _until(lambda: inf.index_keys("node", "n1") == {"default/p2"})


async def test_new_client_connects_at_once_after_a_restart(etcd: str) -> None:
    """A Client made after an apiserver restart works at once, even if an older Client in the same process saw the
    server down (it must not inherit that connection's reconnect backoff)."""
    port = restart_port()
    server = await start_apiserver(etcd, listen=[f"127.0.0.1:{port}"])
    old = server.client()
    await old.list("namespaces")
    await server.stop()
    for _ in range(3):
        with pytest.raises(ApiError):
            await old.list("namespaces")
    restarted = await start_apiserver(etcd, listen=[f"127.0.0.1:{port}"])
    try:
        async with restarted.client() as fresh:
            assert len(await fresh.list_all("namespaces")) == 4
    finally:
        await old.close()
        await restarted.stop()


async def test_watch_stream_ends_with_an_error_when_the_server_stops(etcd: str) -> None:
    """A watcher whose apiserver stops gets an error it can resume from, not a silent end."""
    server = await start_apiserver(etcd)
    async with server.client() as c:
        rv = (await c.list("pods")).resource_version
        watch = c.watch("pods", resource_version=rv)
        task = asyncio.create_task(_take(watch, 1, timeout=20))
        await asyncio.sleep(0.2)
        await server.stop()
        with pytest.raises(ApiError):
            await task
