"""PodDisruptionBudgets against a real apiserver, controller-manager, scheduler and hollow kubelets: the
disruption controller's status, the eviction subresource's verdicts, and `kubelite drain` as a user runs it."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from api.errors import InternalError, TooManyRequestsError
from api.pb import core_pb2
from client.api import Client
from kubelet.hollow import HollowCluster

from .conftest import (
    KUBELITE_ENV,
    KUBELITE_PATH,
    PodCensus,
    Running,
    create,
    deployment_yaml,
    eventually,
    is_ready,
    start_hollow,
    start_manager,
    start_scheduler,
    watch_census,
)


@pytest.fixture
async def nodes(apiserver: Any, running: Running) -> HollowCluster:
    await start_manager(running, apiserver.address)
    await start_scheduler(running, apiserver.address)
    return await start_hollow(running, apiserver.address, 3)


def pdb_yaml(name: str = "web", *, min_available: str = "", max_unavailable: str = "", app: str = "web") -> str:
    field = f"minAvailable: {min_available}" if min_available else f"maxUnavailable: {max_unavailable}"
    return f"""
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}, namespace: default}}
spec:
  {field}
  selector: {{matchLabels: {{app: {app}}}}}
"""


async def ready_pods(client: Client, app: str = "web") -> list[core_pb2.Pod]:
    return [p for p in await client.list_all("pods", "default", label_selector=f"app={app}")
            if is_ready(p) and not p.metadata.HasField("deletion_timestamp")]


async def budget(client: Client, allowed: int, name: str = "web") -> Any:
    pdb = await client.get("poddisruptionbudgets", name, "default")
    ok = pdb.status.observed_generation == pdb.metadata.generation and pdb.status.disruptions_allowed == allowed
    return pdb if ok else None


async def test_status_and_evictions(client: Client, nodes: HollowCluster) -> None:
    """minAvailable 2 over 3 ready pods allows one disruption; the first eviction goes through, the second is
    refused with the budget message until the replacement is ready, then allowed again."""
    await create(client, deployment_yaml(replicas=3))
    await eventually(lambda: _count(ready_pods(client), 3), timeout=30, what="3 ready pods")
    await create(client, pdb_yaml(min_available="2"))
    pdb = await eventually(lambda: budget(client, 1), what="1 disruption allowed")
    st = pdb.status
    assert (st.current_healthy, st.desired_healthy, st.expected_pods) == (3, 2, 3)
    assert any(c.type == "DisruptionAllowed" and c.status == "True" and c.reason == "SufficientPods"
               for c in st.conditions)
    first, second, *_ = await ready_pods(client)
    await client.evict("default", first.metadata.name)
    evicted = await client.get("pods", first.metadata.name, "default")
    assert evicted.metadata.HasField("deletion_timestamp") or evicted.metadata.uid != first.metadata.uid
    with pytest.raises(TooManyRequestsError, match=r"^Cannot evict pod as it would violate the pod's disruption "
                                                   r"budget\."):
        await client.evict("default", second.metadata.name)
    await eventually(lambda: budget(client, 1), timeout=30, what="the replacement ready again")
    await client.evict("default", second.metadata.name)


async def _count(coro: Any, n: int) -> bool:
    return len(await coro) == n


async def test_racing_evictions_take_one_disruption_each(client: Client, nodes: HollowCluster) -> None:
    """Five evictions at once under a budget allowing one: exactly one succeeds."""
    await create(client, deployment_yaml(replicas=5))
    await eventually(lambda: _count(ready_pods(client), 5), timeout=30, what="5 ready pods")
    await create(client, pdb_yaml(max_unavailable="1"))
    await eventually(lambda: budget(client, 1), what="1 disruption allowed")
    pods = await ready_pods(client)
    results = await asyncio.gather(*(client.evict("default", p.metadata.name) for p in pods),
                                   return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TooManyRequestsError)]
    assert (len(ok), len(refused)) == (1, 4), results


async def test_unready_and_uncovered_pods(client: Client, nodes: HollowCluster) -> None:
    """A pod no budget covers is evicted freely; a pod covered by two budgets cannot be evicted."""
    await create(client, deployment_yaml("free", replicas=1))
    await eventually(lambda: _count(ready_pods(client, "free"), 1), timeout=30, what="1 ready pod")
    pod = (await ready_pods(client, "free"))[0]
    await client.evict("default", pod.metadata.name)
    await create(client, deployment_yaml("twice", replicas=2))
    await eventually(lambda: _count(ready_pods(client, "twice"), 2), timeout=30, what="2 ready pods")
    await create(client, pdb_yaml("a", min_available="1", app="twice"))
    await create(client, pdb_yaml("b", min_available="1", app="twice"))
    pod = (await ready_pods(client, "twice"))[0]
    with pytest.raises(InternalError, match="more than one PodDisruptionBudget"):
        await client.evict("default", pod.metadata.name)


def kubelite(address: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBELITE_PATH, "--server", address, *args], capture_output=True, text=True,
                          timeout=timeout, env=KUBELITE_ENV, check=False)


async def test_drain_respects_the_budget(client: Client, nodes: HollowCluster, apiserver: Any) -> None:
    """`kubelite drain` of the node holding two of three pods under minAvailable 2: a watcher never sees fewer
    than 2 ready, DaemonSet pods are left with --ignore-daemonsets, the node ends cordoned with only those."""
    for name in ("hollow-0", "hollow-2"):
        n = await client.get("nodes", name)
        n.spec.unschedulable = True
        await client.update(n)
    await create(client, deployment_yaml(replicas=2))
    await eventually(lambda: _count(ready_pods(client), 2), timeout=30, what="2 pods on hollow-1")
    n = await client.get("nodes", "hollow-2")
    n.spec.unschedulable = False
    await client.update(n)
    # Through the scale subresource, as `kubelite scale` does: the controller writes the Deployment's status
    # meanwhile, so a read-modify-write of the whole object may meet a conflict.
    await client.scale("deployments", "web", 3, "default")
    await eventually(lambda: _count(ready_pods(client), 3), timeout=30, what="3 ready pods")
    assert sorted(p.spec.node_name for p in await ready_pods(client)).count("hollow-1") == 2
    await create(client, pdb_yaml(min_available="2"))
    await create(client, """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: c, image: busybox}]
""")
    await eventually(lambda: _count(ready_pods(client, "agent"), 3), timeout=30, what="3 daemon pods")
    await eventually(lambda: budget(client, 1), what="1 disruption allowed")
    census = PodCensus(selector="app=web")
    watcher = asyncio.create_task(watch_census(client, census))
    try:
        refused = await asyncio.to_thread(kubelite, apiserver.address, "drain", "hollow-1")
        assert refused.returncode == 1
        assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" in refused.stderr
        assert len(await ready_pods(client)) == 3
        result = await asyncio.to_thread(kubelite, apiserver.address, "drain", "hollow-1", "--ignore-daemonsets",
                                         "--timeout", "90s")
    finally:
        watcher.cancel()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "node/hollow-1 already cordoned" and lines[-1] == "node/hollow-1 drained"
    assert sum(1 for line in lines if line.startswith("evicting pod default/web-")) == 2
    assert sum(1 for line in lines if line.startswith("pod/web-") and line.endswith(" evicted")) == 2
    assert "Warning: ignoring DaemonSet-managed Pods: default/agent-" in result.stderr
    assert "(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    assert census.min_ready >= 2, census.min_ready
    left = [p for p in await client.list_all("pods", "default") if p.spec.node_name == "hollow-1"
            and not p.metadata.HasField("deletion_timestamp")]
    assert [p.metadata.labels["app"] for p in left] == ["agent"]
    assert len(await ready_pods(client)) == 3
