"""Two schedulers against one cluster: never a double bind; killing the leader mid-stream loses no pod."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import testpki
from conftest import RunningApiserver
from unit.scheduler.objects import node, pod

from api.pb import core_pb2
from client.api import Client
from integration.scheduler.conftest import KUBELITE, eventually, start_scheduler
from scheduler.overcommit import compute_overcommit


class BindLog:
    """Every node each pod was ever seen on, from a watch that starts before anything is created."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nodes: dict[str, list[str]] = {}
        self.first_bind_after: dict[str, float] = {}

    async def run(self) -> None:
        async for ev in self.client.watch("pods", "default", bookmarks=False):
            p: core_pb2.Pod = ev.object  # type: ignore[assignment]
            seen = self.nodes.setdefault(p.metadata.name, [])
            if p.spec.node_name and (not seen or seen[-1] != p.spec.node_name):
                seen.append(p.spec.node_name)
                self.first_bind_after.setdefault(p.metadata.name, time.monotonic())

    def bound(self) -> int:
        return sum(1 for v in self.nodes.values() if v)


async def create_pods(client: Client, n: int, *, pace: float = 0.0) -> None:
    for i in range(n):
        await client.create(pod(f"p{i:04d}", cpu="100m", memory="64Mi"))
        if pace:
            await asyncio.sleep(pace)


async def test_two_active_schedulers_never_double_bind(client: Client, apiserver: RunningApiserver) -> None:
    """Two schedulers without leader election race for every pod; each pod is still bound exactly once."""
    for i in range(10):
        await client.create(node(f"n{i}", cpu="64", memory="128Gi", pods=200))
    other = apiserver.client()
    a = await start_scheduler(client, identity="a")
    b = await start_scheduler(other, identity="b")
    log = BindLog(client)
    watch = asyncio.create_task(log.run())
    try:
        await create_pods(client, 100)
        await eventually(lambda: _all_bound(log, 100), timeout=60)
        await asyncio.sleep(0.5)
        assert all(len(v) == 1 for v in log.nodes.values()), {k: v for k, v in log.nodes.items() if len(v) != 1}
        counters = (a.term.counters, b.term.counters)
        assert sum(c.bound for c in counters) == 100
    finally:
        watch.cancel()
        await a.stop()
        await b.stop()
        await other.close()


async def _all_bound(log: BindLog, n: int) -> bool:
    return log.bound() >= n


async def _holder(client: Client) -> str:
    try:
        lease = await client.get("leases", "kube-scheduler", "kube-system")
    except Exception:
        return ""
    return lease.spec.holder_identity


async def test_killing_the_leader_loses_no_pod(client: Client, apiserver: RunningApiserver, tmp_path: Path) -> None:
    """With two `kubelite scheduler` processes, SIGKILL of the leader mid-stream: the other takes over in seconds,
    every pod ends bound exactly once, and no node is overcommitted."""
    for i in range(8):
        await client.create(node(f"n{i}", cpu="4", memory="8Gi", pods=60))
    config = tmp_path / "scheduler.yaml"
    config.write_text("leaseDurationSeconds: 2\nrenewIntervalSeconds: 0.5\nbackoffInitialSeconds: 0.2\n"
                      "backoffMaxSeconds: 1\n")
    procs: dict[str, asyncio.subprocess.Process] = {}
    log = BindLog(client)
    watch = asyncio.create_task(log.run())
    try:
        for ident in ("sched-a", "sched-b"):
            procs[ident] = await asyncio.create_subprocess_exec(
                KUBELITE, "scheduler", "--server", apiserver.address, *testpki.get().component_flags("scheduler"),
                "--config", str(config), "--identity", ident,
                "--log-level", "warning", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await eventually(lambda: _has_holder(client), timeout=30)
        leader = await _holder(client)
        creating = asyncio.create_task(create_pods(client, 240, pace=0.005))
        await eventually(lambda: _all_bound(log, 60), timeout=60)
        procs[leader].kill()
        await procs[leader].wait()
        killed_at = time.monotonic()
        await creating
        await eventually(lambda: _all_bound(log, 240), timeout=90)
        assert await _holder(client) != leader
        assert all(len(v) == 1 for v in log.nodes.values())
        after = [t for t in log.first_bind_after.values() if t > killed_at]
        assert after, "nothing was bound after the leader died"
        assert min(after) - killed_at < 10.0
        nodes = await client.list_all("nodes")
        pods = await client.list_all("pods", "default")
        assert all(p.spec.node_name for p in pods)
        assert compute_overcommit(nodes, pods) == []
    finally:
        watch.cancel()
        for proc in procs.values():
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def _has_holder(client: Client) -> bool:
    return bool(await _holder(client))
