"""A value in etcd that does not decode is skipped, logged once and counted; the apiserver keeps serving."""

from __future__ import annotations

import asyncio

from aetcd import rpc
from conftest import etcd_connection, start_apiserver
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from api.errors import NotFoundError
from client.api import Client

from ..cli.conftest import clean_env, run_kubelite
from .helpers import pod

GARBAGE = {
    "/registry/pods/default/bad": b"\xff\xfe not a protobuf at all",
    "/registry/pods/default/truncated": b"\x0a\x05ab",
    "/registry/services/default/deep": b"\x7b" * 100_000 + b"\x7c" * 100_000,
}


async def _put(etcd_url: str, key: str, value: bytes) -> None:
    raw = etcd_connection(etcd_url)
    try:
        await raw.kvstub.Put(rpc.PutRequest(key=key.encode(), value=value), timeout=10)
    finally:
        await raw.close()


def _undecodable(resource: str) -> float:
    return REGISTRY.get_sample_value("apiserver_storage_undecodable_values_total", {"resource": resource}) or 0.0


async def _names(client: Client) -> list[str]:
    return sorted(p.metadata.name for p in (await client.list("pods", "default")).items)


async def test_garbage_in_etcd_is_skipped_at_start_and_restart(etcd: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Garbage under the registry prefix: the apiserver starts, lists the good pods, logs each bad key once,
    counts it, restarts cleanly, and `kubelite get pods` shows only the good pods."""
    first = await start_apiserver(etcd)
    async with first.client() as client:
        for name in ("good-1", "good-2"):
            await client.create(pod(name))
    await first.stop()
    for key, value in GARBAGE.items():
        await _put(etcd, key, value)

    before = _undecodable("pods")
    with capture_logs() as logs:
        second = await start_apiserver(etcd)
    try:
        skipped = sorted(e["key"] for e in logs if e["event"] == "undecodable_value_skipped")
        assert skipped == sorted(GARBAGE)
        assert _undecodable("pods") - before == 2
        async with second.client() as client:
            assert await _names(client) == ["good-1", "good-2"]
            for name in ("bad", "truncated"):
                try:
                    await client.get("pods", name, "default")
                    raise AssertionError(f"{name} was served")
                except NotFoundError:
                    pass
            await client.create(pod("good-3"))
        result = await run_kubelite("get", "pods", "--server", second.address, env=clean_env(tmp_path))
        assert result.code == 0, result.err
        assert [line.split()[0] for line in result.out.splitlines()[1:]] == ["good-1", "good-2", "good-3"]
    finally:
        await second.stop()

    third = await start_apiserver(etcd)  # and again: nothing was left to trip over
    try:
        async with third.client() as client:
            assert await _names(client) == ["good-1", "good-2", "good-3"]
    finally:
        await third.stop()


async def test_garbage_written_over_an_object_while_serving(etcd: str) -> None:
    """Garbage written over a pod while the apiserver runs: watchers see it deleted, reads no longer find it,
    the key is logged once, and every other request is served as before."""
    running = await start_apiserver(etcd)
    try:
        async with running.client() as client:
            await client.create(pod("keep"))
            await client.create(pod("spoiled"))
            watch = client.watch("pods", "default")
            seen = [await watch.__anext__() for _ in range(2)]
            assert sorted(e.object.metadata.name for e in seen) == ["keep", "spoiled"]
            with capture_logs() as logs:
                await _put(etcd, "/registry/pods/default/spoiled", b"\xff\xfe garbage")
                event = await asyncio.wait_for(watch.__anext__(), 10)
            await watch.aclose()
            assert (event.type, event.object.metadata.name) == ("DELETED", "spoiled")
            assert [e["key"] for e in logs if e["event"] == "undecodable_value_skipped"] == [
                "/registry/pods/default/spoiled"]
            assert await _names(client) == ["keep"]
            await client.create(pod("after"))
            assert await _names(client) == ["after", "keep"]
    finally:
        await running.stop()
