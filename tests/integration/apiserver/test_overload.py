"""A flood of calls from one client gets RESOURCE_EXHAUSTED with a clear message, never CANCELLED, and the
server goes on serving everyone else."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
import pytest
import testpki
from conftest import start_apiserver

from api.errors import AlreadyExistsError, ApiError, TooManyRequestsError
from apiserver.overload import OverloadLimits
from client.api import Client

from .helpers import pod


async def test_concurrent_creates_of_one_name_on_one_channel(client: Client) -> None:
    """2,000 concurrent creates of one name on one channel: exactly one wins; every other call gets
    ALREADY_EXISTS or a clear RESOURCE_EXHAUSTED; none is CANCELLED."""
    results = await asyncio.gather(*(client.create(pod("same")) for _ in range(2000)), return_exceptions=True)
    outcome = collections.Counter(type(r).__name__ for r in results)
    assert outcome["Pod"] == 1, outcome
    assert outcome["AlreadyExistsError"] + outcome["TooManyRequestsError"] == 1999, outcome
    for r in results:
        if isinstance(r, TooManyRequestsError):
            assert r.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert r.message.startswith("too many concurrent requests from this connection (limit 1000)")
        elif isinstance(r, ApiError):
            assert isinstance(r, AlreadyExistsError), r
    assert len((await client.list("pods", "default")).items) == 1


async def _watch_once(client: Client, opened: asyncio.Event | None = None) -> None:
    """Open a watch and hold it until cancelled."""
    async for _ in client.watch("pods", "default"):
        if opened is not None:
            opened.set()


async def test_watch_flood_is_refused_per_connection_and_per_client(etcd: str, tmp_path: Path) -> None:
    """Past its connection's and its host's watch limits a watch gets RESOURCE_EXHAUSTED naming the limit;
    the watches within the limits, and plain requests, keep working; a closed watch frees its slot."""
    limits = OverloadLimits(watches_per_connection=20, watches_per_client=30)
    server = await start_apiserver(etcd, overload=limits)
    first, second = server.client(), server.client()
    try:
        await first.create(pod("seed"))  # every watch starts with one ADDED event
        held = []
        for c, n in ((first, 20), (second, 10)):
            for _ in range(n):
                opened = asyncio.Event()
                held.append(asyncio.ensure_future(_watch_once(c, opened)))
                await asyncio.wait_for(opened.wait(), 10)
        with pytest.raises(TooManyRequestsError, match=r"watches from this connection \(limit 20\)"):
            await asyncio.wait_for(_watch_once(first), 10)
        with pytest.raises(TooManyRequestsError, match=r"watches from this client \(limit 30\)"):
            await asyncio.wait_for(_watch_once(second), 10)
        assert (await first.create(pod("still-served"))).metadata.name == "still-served"
        held.pop().cancel()
        await asyncio.sleep(0.5)  # the server notices the closed watch
        opened = asyncio.Event()
        held.append(asyncio.ensure_future(_watch_once(second, opened)))
        await asyncio.wait_for(opened.wait(), 10)
        assert not [t for t in held if t.done()], "no watch within the limits was cut off"
        for t in held:
            t.cancel()
        await asyncio.gather(*held, return_exceptions=True)
    finally:
        await first.close()
        await second.close()
        await server.stop()


async def test_unix_socket_clients_share_the_client_limit(etcd: str, tmp_path: Path) -> None:
    """Over a unix socket, where connections cannot be told apart, the per-client limits apply."""
    sock = tmp_path / "api.sock"
    server = await start_apiserver(etcd, listen=["127.0.0.1:0", f"unix://{sock}"],
                                   overload=OverloadLimits(watches_per_connection=1, watches_per_client=3))
    clients = [Client(testpki.get().client(f"unix://{sock}")) for _ in range(2)]
    held = []
    try:
        await clients[0].create(pod("seed"))
        for c in (*clients, clients[0]):
            opened = asyncio.Event()
            held.append(asyncio.ensure_future(_watch_once(c, opened)))
            await asyncio.wait_for(opened.wait(), 10)
        with pytest.raises(TooManyRequestsError, match=r"watches from this client \(limit 3\)"):
            await asyncio.wait_for(_watch_once(clients[1]), 10)
    finally:
        for t in held:
            t.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        for c in clients:
            await c.close()
        await server.stop()
