"""The DaemonSet controller against a real apiserver, scheduler and hollow kubelets: one pod per eligible node,
nodes joining and leaving, taints, node selectors, rolling updates and revisions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.pb import apps_pb2, core_pb2
from client.api import Client
from controllers.history import REVISION_HASH_LABEL
from kubelet.hollow import HollowCluster

from .conftest import (
    Running,
    change,
    create,
    eventually,
    is_ready,
    owned_by,
    start_hollow,
    start_manager,
    start_scheduler,
)


@pytest.fixture
async def nodes(apiserver: Any, running: Running) -> HollowCluster:
    await start_manager(running, apiserver.address)
    await start_scheduler(running, apiserver.address)
    return await start_hollow(running, apiserver.address, 3)


def ds_yaml(name: str = "agent", *, image: str = "busybox:1", extra_spec: str = "", pod_spec: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}{extra_spec}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1{pod_spec}
      containers: [{{name: c, image: "{image}"}}]
"""


async def live_pods(client: Client, ds: apps_pb2.DaemonSet) -> list[core_pb2.Pod]:
    return [p for p in await client.list_all("pods", "default") if owned_by(p, ds.metadata.uid)
            and not p.metadata.HasField("deletion_timestamp")]


async def nodes_with_ready_pod(client: Client, ds: apps_pb2.DaemonSet) -> list[str]:
    return sorted(p.spec.node_name for p in await live_pods(client, ds) if is_ready(p))


async def test_one_pod_per_node_and_status(client: Client, nodes: HollowCluster) -> None:
    """Every node runs exactly one daemon pod, pinned by node affinity, tolerating node trouble; the status counts
    3 desired, current, ready, available and updated."""
    ds = await create(client, ds_yaml())
    await eventually(lambda: _is(nodes_with_ready_pod(client, ds), ["hollow-0", "hollow-1", "hollow-2"]),
                     timeout=30, what="a ready pod on each node")

    async def status_ok() -> bool:
        s = (await client.get("daemonsets", "agent", "default")).status
        return (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.number_available,
                s.updated_number_scheduled, s.number_misscheduled, s.number_unavailable) == (3, 3, 3, 3, 3, 0, 0)

    await eventually(status_ok, what="status")
    pod = (await live_pods(client, ds))[0]
    term = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
    assert (term.match_fields[0].key, list(term.match_fields[0].values)) == ("metadata.name", [pod.spec.node_name])
    tolerated = {(t.key, t.effect) for t in pod.spec.tolerations if not t.HasField("toleration_seconds")}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerated
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
    assert pod.metadata.labels[REVISION_HASH_LABEL]


async def _is(coro: Any, want: Any) -> bool:
    return await coro == want


async def test_nodes_joining_and_leaving(client: Client, nodes: HollowCluster, apiserver: Any,
                                         running: Running) -> None:
    """A node that joins later gets a daemon pod; a deleted node's pod goes with it."""
    ds = await create(client, ds_yaml())
    await eventually(lambda: _count(nodes_with_ready_pod(client, ds), 3), timeout=30, what="3 pods")
    await start_hollow(running, apiserver.address, 1, start_index=3)
    await eventually(lambda: _is(nodes_with_ready_pod(client, ds), ["hollow-0", "hollow-1", "hollow-2", "hollow-3"]),
                     timeout=30, what="a pod on the new node")
    nodes.stop_node("hollow-1")
    await client.delete("nodes", "hollow-1")

    async def gone() -> bool:
        return "hollow-1" not in [p.spec.node_name for p in await client.list_all("pods", "default")
                                  if owned_by(p, ds.metadata.uid)]

    await eventually(gone, timeout=30, what="the pod of the deleted node gone")
    await asyncio.sleep(0.5)
    assert await nodes_with_ready_pod(client, ds) == ["hollow-0", "hollow-2", "hollow-3"]


async def _count(coro: Any, n: int) -> bool:
    return len(await coro) == n


async def test_node_selector_and_taints(client: Client, nodes: HollowCluster) -> None:
    """A nodeSelector limits the daemon to labelled nodes (labelling one later adds a pod); an untolerated
    NoExecute taint removes the pod, and removing the taint brings it back."""
    for name in ("hollow-0", "hollow-1"):
        n = await client.get("nodes", name)
        n.metadata.labels["disk"] = "ssd"
        await client.update(n)
    ds = await create(client, ds_yaml(pod_spec="\n      nodeSelector: {disk: ssd}"))
    await eventually(lambda: _is(nodes_with_ready_pod(client, ds), ["hollow-0", "hollow-1"]), timeout=30,
                     what="pods on ssd nodes")
    n = await client.get("nodes", "hollow-2")
    n.metadata.labels["disk"] = "ssd"
    await client.update(n)
    await eventually(lambda: _count(nodes_with_ready_pod(client, ds), 3), timeout=30, what="pod on newly labelled")
    n = await client.get("nodes", "hollow-0")
    n.spec.taints.add(key="maintenance", value="now", effect="NoExecute")
    await client.update(n)
    await eventually(lambda: _is(nodes_with_ready_pod(client, ds), ["hollow-1", "hollow-2"]), timeout=30,
                     what="pod evicted by the taint")
    n = await client.get("nodes", "hollow-0")
    del n.spec.taints[:]
    await client.update(n)
    await eventually(lambda: _count(nodes_with_ready_pod(client, ds), 3), timeout=30, what="pod back")


async def test_rolling_update_keeps_within_max_unavailable(client: Client, nodes: HollowCluster) -> None:
    """A new image rolls out node by node: never more than maxUnavailable (1) node without a ready daemon pod;
    every pod ends on the new revision, and the old revision is kept as history."""
    ds = await create(client, ds_yaml())
    await eventually(lambda: _count(nodes_with_ready_pod(client, ds), 3), timeout=30, what="3 pods")
    worst = 3
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal worst
        while not stop.is_set():
            worst = min(worst, len(await nodes_with_ready_pod(client, ds)))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    await change(client, "daemonsets", "agent", lambda d: setattr(d.spec.template.spec.containers[0], "image",
                                                                  "busybox:2"))

    async def rolled() -> bool:
        pods = await live_pods(client, ds)
        return len(pods) == 3 and all(p.spec.containers[0].image == "busybox:2" and is_ready(p) for p in pods)

    await eventually(rolled, timeout=60, what="all pods on busybox:2")
    stop.set()
    await watcher
    assert worst >= 2
    revisions = [r for r in await client.list_all("controllerrevisions", "default") if owned_by(r, ds.metadata.uid)]
    assert sorted(r.revision for r in revisions) == [1, 2]
