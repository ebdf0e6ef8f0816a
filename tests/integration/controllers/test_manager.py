"""The controller-manager as a whole: leader election, two managers at once, a leader killed mid-reconcile."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

from api.pb import apps_pb2
from client.api import Client

from .conftest import (
    KUBELITE_ENV,
    KUBELITE_PATH,
    FreezableProxy,
    PodCensus,
    Running,
    create,
    eventually,
    start_manager,
    watch_census,
)

RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: busybox}}]
"""


async def holder(client: Client) -> str:
    try:
        lease: apps_pb2.Lease = await client.get("leases", "kube-controller-manager", "kube-system")
    except Exception:
        return ""
    return lease.spec.holder_identity


async def test_only_the_leader_runs(client: Client, apiserver: Any, running: Running) -> None:
    """Of two managers only the lease holder runs controllers; when it stops, the other takes over at once."""
    settings = {"leader_elect": True, "lease_duration": 2.0, "renew_interval": 0.3}
    a = await start_manager(running, apiserver.address, identity="a", **settings)
    await eventually(lambda: _is(holder(client), "a"))
    b = await start_manager(running, apiserver.address, identity="b", **settings)
    await asyncio.sleep(1.0)
    assert a.leading.is_set() and not b.leading.is_set()
    running.tasks[0].cancel()  # a clean stop releases the lease
    await eventually(lambda: _is(holder(client), "b"), timeout=5)
    await asyncio.wait_for(b.leading.wait(), 5)
    await create(client, RS.format(replicas=2))
    await eventually(lambda: _count(client, 2), what="b's controllers at work")


async def test_cut_off_leader_stops_before_another_starts(client: Client, apiserver: Any,
                                                            running: Running) -> None:
    """A leader whose connection to the apiserver stalls stops its controllers before the other manager's
    controllers start: never two leaders at once."""
    proxy = FreezableProxy(apiserver.address)
    address = await proxy.start()
    settings = {"leader_elect": True, "lease_duration": 2.0, "renew_interval": 0.3}
    a = await start_manager(running, address, identity="a", **settings)
    await eventually(lambda: _is(holder(client), "a"))
    await asyncio.wait_for(a.leading.wait(), 5)
    b = await start_manager(running, apiserver.address, identity="b", **settings)
    stopped: list[float] = []
    started: list[float] = []

    async def record() -> None:
        while not (stopped and started):
            now = asyncio.get_running_loop().time()
            if not stopped and not a.leading.is_set():
                stopped.append(now)
            if not started and b.leading.is_set():
                started.append(now)
            await asyncio.sleep(0.005)

    recorder = asyncio.create_task(record())
    proxy.freeze()
    try:
        await asyncio.wait_for(recorder, 15)
    finally:
        proxy.thaw()
        await proxy.close()
    assert stopped[0] <= started[0], (stopped, started)


async def _is(value: Any, want: str) -> bool:
    return await value == want


async def _count(client: Client, n: int) -> bool:
    pods = await client.list_all("pods", "default", label_selector="app=web")
    return len([p for p in pods if not p.metadata.HasField("deletion_timestamp")]) == n


def spawn(address: str, identity: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [KUBELITE_PATH, "controller-manager", "--server", address, "--identity", identity,
         "--leader-elect-lease-duration", "2", "--leader-elect-renew-interval", "0.3", "--log-level", "info"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=KUBELITE_ENV,
    )


async def test_killed_leader_mid_burst_never_overshoots(client: Client, apiserver: Any, tmp_path: Path) -> None:
    """Two controller-manager processes; the leader is SIGKILLed while creating 300 pods. The survivor takes
    over, and the pods settle at exactly 300 without a watcher ever seeing more; deleted pods are replaced 1:1."""
    procs = {name: spawn(apiserver.address, name, tmp_path / f"{name}.log") for name in ("cm-a", "cm-b")}
    census = PodCensus(selector="app=web")
    watcher = asyncio.create_task(watch_census(client, census))
    try:
        leader = await eventually(lambda: holder(client), timeout=15, what="a leader")
        await create(client, RS.format(replicas=300))
        await eventually(lambda: _true(census.active >= 40), timeout=15, what="burst under way")
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(5)
        killed_at = census.active
        survivor = next(n for n in procs if n != leader)
        await eventually(lambda: _is(holder(client), survivor), timeout=15, what="takeover")
        await eventually(lambda: _count(client, 300), timeout=30, what="300 pods")
        await asyncio.sleep(1.0)
        assert await _count(client, 300)
        assert census.max_active <= 300, census.max_active
        assert killed_at < 300  # the kill really happened mid-burst

        victims = [p.metadata.name for p in (await client.list_all("pods", "default"))[:25]]
        await asyncio.gather(*(client.delete("pods", n, "default") for n in victims))
        await eventually(lambda: _count(client, 300), timeout=15, what="replacements")
        await asyncio.sleep(1.0)
        assert await _count(client, 300) and census.max_active <= 300
    finally:
        watcher.cancel()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in procs.items():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
                print((tmp_path / f"{name}.log").read_text()[-4000:])


async def _true(value: bool) -> bool:
    return value
