"""WatchMany over real etcd: many watches of one client over one stream, each started, authorized and ended as
its own Watch would be, one's end leaving the others going; and a client against a server without it (the
test-only switch) watches as before."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from api import convert
from api.errors import ApiError, ExpiredError, InvalidError, PermissionDeniedError, TooManyRequestsError
from api.pb import core_pb2, rbac_pb2
from apiserver.overload import OverloadLimits
from client import pki, watches
from client.api import Client, WatchEvent


def _mux(running: RunningApiserver, identity: str = "admin") -> Client:
    return Client(testpki.get().client(running.address, identity), multiplex_watches=True)


async def _next(events: AsyncIterator[WatchEvent], kind: str = "") -> WatchEvent:
    """The next event that is not a BOOKMARK (of `kind`'s type, when given)."""
    async with asyncio.timeout(10):
        async for ev in events:
            if ev.type != "BOOKMARK" and (not kind or ev.type == kind):
                return ev
    raise AssertionError("the watch ended")


async def test_watches_over_one_stream_each_see_what_a_watch_of_its_own_would(apiserver: RunningApiserver) -> None:
    """Pods, ConfigMaps and labelled pods watched at once: each gets its own objects' events, in order, and the
    client holds one stream for all three."""
    async with apiserver.client() as admin, _mux(apiserver) as c:
        pods = c.watch("pods", "default")
        maps = c.watch("configmaps", "default")
        web = c.watch("pods", "default", label_selector="app=web")
        assert c._watches is not None
        first = asyncio.ensure_future(_next(pods))
        first_map = asyncio.ensure_future(_next(maps))
        first_web = asyncio.ensure_future(_next(web))
        await asyncio.sleep(0.3)
        stream = c._watches._call
        await admin.create(core_pb2.Pod(metadata={"name": "db", "namespace": "default"},
                                        spec={"containers": [{"name": "c", "image": "busybox:1.35"}]}))
        await admin.create(core_pb2.ConfigMap(metadata={"name": "settings", "namespace": "default"}))
        await admin.create(core_pb2.Pod(metadata={"name": "web", "namespace": "default", "labels": {"app": "web"}},
                                        spec={"containers": [{"name": "c", "image": "busybox:1.35"}]}))
        assert ((await first).type, (await first).object.metadata.name) == ("ADDED", "db")
        assert (await first_map).object.metadata.name == "settings"
        assert (await first_web).object.metadata.name == "web"  # not db: the selector holds
        assert (await _next(pods)).object.metadata.name == "web"
        assert c._watches._call is stream is not None
        await admin.delete("configmaps", "settings", "default")
        deleted = await _next(maps)
        assert (deleted.type, deleted.object.metadata.name) == ("DELETED", "settings")
        for w in (pods, maps, web):
            await w.aclose()


async def test_one_watch_refused_or_expired_leaves_the_others_going(apiserver: RunningApiserver) -> None:
    """A user who may watch pods but not secrets: the secrets watch ends forbidden, a watch from a version long
    gone ends expired, an unknown resource ends invalid, each as its own Watch would, and the pods watch on the
    same stream goes on."""
    async with apiserver.client() as admin:
        await admin.create(convert.from_dict(rbac_pb2.Role, {
            "metadata": {"name": "pod-watcher", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]}))
        await admin.create(convert.from_dict(rbac_pb2.RoleBinding, {
            "metadata": {"name": "ann-watches-pods", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-watcher"},
            "subjects": [{"kind": "User", "name": "ann", "apiGroup": "rbac.authorization.k8s.io"}]}))
        for i in range(3):  # versions for the expired watch to be older than
            await admin.create(core_pb2.ConfigMap(metadata={"name": f"m{i}", "namespace": "default"}))
        testpki.get().issue("users/ann", pki.Request(pki.Identity("ann", ())))
        async with _mux(apiserver, "users/ann") as ann:
            pods = ann.watch("pods", "default")
            first = asyncio.ensure_future(_next(pods))
            with pytest.raises(PermissionDeniedError, match='cannot watch resource "secrets"'):
                await _next(ann.watch("secrets", "default"))
            with pytest.raises(InvalidError, match='the server doesn\'t have a resource type "widgets"'):
                await _next(ann.watch("widgets", "default"))
            await admin.create(core_pb2.Pod(metadata={"name": "late", "namespace": "default"},
                                            spec={"containers": [{"name": "c", "image": "busybox:1.35"}]}))
            assert (await first).object.metadata.name == "late"
        async with _mux(apiserver) as c:
            with pytest.raises(ExpiredError):
                await _next(c.watch("configmaps", "default", resource_version="1"))
            still = c.watch("configmaps", "default")
            assert (await _next(still)).type == "ADDED"
            await still.aclose()


async def test_a_stopped_watch_is_gone_from_the_server(apiserver: RunningApiserver) -> None:
    """Leaving a watch stops it on the server (its watcher no longer offered changes); the stream stays for the
    next one."""
    cache = apiserver.server.cache

    async with _mux(apiserver) as c:
        before = cache.watchers
        events = c.watch("configmaps", "default")
        waiting = asyncio.ensure_future(_next(events))
        await _until(lambda: cache.watchers == before + 1)
        await _cancel(waiting)
        await events.aclose()
        await _until(lambda: cache.watchers == before)
        again = c.watch("configmaps", "default")
        nxt = asyncio.ensure_future(_next(again))
        await _until(lambda: cache.watchers == before + 1)
        await _cancel(nxt)
        await again.aclose()


async def test_a_slow_reader_is_ended_alone(apiserver: RunningApiserver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch whose reader leaves more than the client's bound unread ends expired (relist), without holding
    up the watch beside it on the stream."""
    monkeypatch.setattr(watches, "MAX_UNREAD", 3)
    async with apiserver.client() as admin, _mux(apiserver) as c:
        slow = c.watch("configmaps", "default")
        fast = c.watch("configmaps", "default")
        slow_first = asyncio.ensure_future(_next(slow))
        got: list[str] = []

        async def read_fast() -> None:
            async for ev in fast:
                if ev.type == "ADDED":
                    got.append(ev.object.metadata.name)
                    if len(got) == 20:
                        return

        reading = asyncio.ensure_future(read_fast())
        await asyncio.sleep(0.3)
        for i in range(20):
            await admin.create(core_pb2.ConfigMap(metadata={"name": f"c{i}", "namespace": "default"}))
            await asyncio.sleep(0.02)  # one message each
        await asyncio.wait_for(reading, 10)
        assert got == [f"c{i}" for i in range(20)]
        assert (await slow_first).object.metadata.name == "c0"
        with pytest.raises(ExpiredError, match="fell too far behind"):
            async with asyncio.timeout(10):
                async for _ in slow:
                    pass
        await fast.aclose()


async def test_each_watch_on_the_stream_counts_against_the_watch_limits(etcd: str) -> None:
    """One stream does not widen the limit on a connection's watches: the stream counts as one and each watch on
    it as one more. With three allowed, a third watch on the stream ends TOO_MANY_REQUESTS as a Watch over the
    limit would, the two go on, and once one stops another may start."""
    server = await start_apiserver(etcd, overload=OverloadLimits(watches_per_connection=3))
    try:
        async with server.client() as admin, _mux(server) as c:
            one, two = c.watch("configmaps", "default"), c.watch("pods", "default")
            first = asyncio.ensure_future(_next(one))
            waiting = asyncio.ensure_future(_next(two))
            await _until(lambda: server.server.cache.watchers == 2)
            with pytest.raises(TooManyRequestsError, match="too many concurrent watches from this connection"):
                await _next(c.watch("secrets", "default"))
            await admin.create(core_pb2.ConfigMap(metadata={"name": "still", "namespace": "default"}))
            assert (await first).object.metadata.name == "still"
            await _cancel(waiting)
            await two.aclose()
            await _until(lambda: server.server.cache.watchers == 1)
            three = c.watch("secrets", "default")
            third = asyncio.ensure_future(_next(three))
            await admin.create(core_pb2.Secret(metadata={"name": "s", "namespace": "default"}))
            assert (await third).object.metadata.name == "s"
            await one.aclose()
            await three.aclose()
    finally:
        await server.stop()


async def test_against_a_server_without_it_each_watch_has_its_own_stream(etcd: str) -> None:
    """With the test-only switch off the server answers WatchMany UNIMPLEMENTED; the client then watches with one
    Watch per watch, as before, and its watches still see their events."""
    server = await start_apiserver(etcd, batch_calls=False)
    try:
        async with server.client() as admin, Client(server.conn, multiplex_watches=True) as c:
            events = c.watch("configmaps", "default")
            first = asyncio.ensure_future(_next(events))
            await asyncio.sleep(0.3)
            await admin.create(core_pb2.ConfigMap(metadata={"name": "old", "namespace": "default"}))
            assert (await first).object.metadata.name == "old"
            assert c._watches is not None and not c._watches.supported
            await events.aclose()
    finally:
        await server.stop()


async def test_a_bad_request_ends_the_stream_naming_its_field(apiserver: RunningApiserver) -> None:
    """Two watches under one id: the stream ends INVALID_ARGUMENT naming the id, and every watch on it ends."""
    async with _mux(apiserver) as c:
        assert c._watches is not None
        call = await c._watches._stream()
        from api.pb import api_pb2

        req = api_pb2.WatchRequest(resource="configmaps", namespace="default")
        await call.write(api_pb2.WatchManyRequest(id=999, start=req))
        await call.write(api_pb2.WatchManyRequest(id=999, start=req))
        with pytest.raises(ApiError, match="id: watch 999 is already going on this stream"):
            async with asyncio.timeout(10):
                async for _ in c.watch("configmaps", "default"):
                    pass


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within 10 s")


async def _cancel(task: asyncio.Future[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
