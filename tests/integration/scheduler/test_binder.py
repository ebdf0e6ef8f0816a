"""The scheduler's binds sent together (scheduler/binder.py) against a real apiserver: binds in flight share
BindMany calls, each bind keeps its own answer, and a server without BindMany gets one Bind per pod."""

from __future__ import annotations

import asyncio

import pytest
from conftest import start_apiserver
from unit.scheduler.objects import node, pod

from api.errors import NotFoundError
from apiserver.server import REQUESTS
from client.api import Client
from integration.scheduler.conftest import start_scheduler, wait_bound
from scheduler.binder import Binder


async def test_a_backlog_is_bound_in_a_few_calls(client: Client) -> None:
    """120 pending pods are all bound, each by its own counted bind, in far fewer BindMany calls than pods."""
    for i in range(4):
        await client.create(node(f"n{i}", cpu="64", memory="64Gi", pods=200))
    names = [f"p{i:03d}" for i in range(120)]
    await asyncio.gather(*(client.create(pod(n, cpu="10m")) for n in names))
    calls, binds = REQUESTS.labels("bind_many", "", "OK"), REQUESTS.labels("bind", "pods", "OK")
    calls_before, binds_before = calls._value.get(), binds._value.get()
    running = await start_scheduler(client)
    try:
        bound = await wait_bound(client, names, timeout=60)
    finally:
        await running.stop()
    assert set(bound) == set(names) and set(bound.values()) <= {f"n{i}" for i in range(4)}
    assert binds._value.get() - binds_before == 120
    assert 1 <= calls._value.get() - calls_before < 60


async def test_each_bind_keeps_its_own_answer(client: Client) -> None:
    """Binds sent in one call: the pod that exists is bound, the missing one's bind raises NotFound."""
    await client.create(pod("real", cpu="10m"))
    binder = Binder(client)
    sender = asyncio.create_task(binder.run())
    try:
        answers = await asyncio.gather(binder.bind("default", "real", "n1"), binder.bind("default", "ghost", "n1"),
                                       return_exceptions=True)
    finally:
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
    assert answers[0] is None
    assert isinstance(answers[1], NotFoundError) and answers[1].message == 'pods "ghost" not found'
    assert (await client.get("pods", "real", "default")).spec.node_name == "n1"


async def test_a_server_without_bind_many_gets_one_bind_per_pod(etcd: str) -> None:
    """Against an apiserver before BindMany, the scheduler binds every pod with one Bind each."""
    old = await start_apiserver(etcd, batch_calls=False)
    try:
        async with old.client() as c:
            await c.create(node("n1", cpu="64", memory="64Gi", pods=200))
            names = [f"q{i:02d}" for i in range(30)]
            await asyncio.gather(*(c.create(pod(n, cpu="10m")) for n in names))
            running = await start_scheduler(c)
            try:
                assert set((await wait_bound(c, names, timeout=60)).values()) == {"n1"}
                assert running.term.binder.batched is False
            finally:
                await running.stop()
    finally:
        await old.stop()
