"""Node lifecycle against a real apiserver: lease expiry, Ready=Unknown, taints, eviction, zone disruption.

Node loss with a real kubelet uses hollow kubelets (fake runtime) and the real scheduler. The zone tests drive
plain Node objects by hand: the test renews their Leases and reports Ready, which is what a kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from api.defaults import NOT_READY_TAINT, UNREACHABLE_TAINT
from api.errors import ConflictError
from api.pb import apps_pb2, core_pb2
from api.timestamps import timestamp
from client.api import Client
from controllers.manager import ControllerManager
from controllers.nodelifecycle import plan
from kubelet.hollow import HollowCluster

from .conftest import Running, create, deployment_yaml, eventually, is_ready, start_manager
from .test_deployment import rollout_done

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def taint_set(node: core_pb2.Node) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in node.spec.taints}


def ready_status(node: core_pb2.Node) -> str:
    return next((c.status for c in node.status.conditions if c.type == "Ready"), "")


async def live_pods(client: Client) -> list[core_pb2.Pod]:
    return [p for p in await client.list_all("pods", "default", label_selector="app=web")
            if not p.metadata.HasField("deletion_timestamp")]


async def test_lost_node_pods_replaced_within_10s(client: Client, cluster: HollowCluster,
                                                  manager: ControllerManager) -> None:
    """With default settings, a node whose kubelet stops has its pods replaced elsewhere (Ready) and dropped from
    the Endpoints within 10 s; the node is Ready=Unknown and tainted, and untainted when its kubelet returns."""
    await create(client, deployment_yaml(replicas=6))
    await create(client, SERVICE)
    await eventually(lambda: rollout_done(client), timeout=30)
    pods = await live_pods(client)
    by_node: dict[str, int] = {}
    for p in pods:
        by_node[p.spec.node_name] = by_node.get(p.spec.node_name, 0) + 1
    lost = max(by_node, key=lambda n: by_node[n])
    victims = {p.metadata.name for p in pods if p.spec.node_name == lost}

    start = time.monotonic()
    await cluster.stop_node_and_wait(lost)

    async def recovered() -> bool:
        current = await live_pods(client)
        ready_elsewhere = [p for p in current if p.spec.node_name != lost and is_ready(p)]
        ep = await client.get("endpoints", "web", "default")
        on_lost = [a for s in ep.subsets for a in s.addresses if a.node_name == lost]
        ready_addresses = sum(len(s.addresses) for s in ep.subsets)
        return len(ready_elsewhere) == 6 and not on_lost and ready_addresses == 6

    await eventually(recovered, timeout=12, interval=0.1, what="replacement")
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed
    node = await client.get("nodes", lost, "")
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason, ready.message) == ("Unknown", "NodeStatusUnknown",
                                                           "Kubelet stopped posting node status.")
    assert {(UNREACHABLE_TAINT, "NoExecute"), (UNREACHABLE_TAINT, "NoSchedule")} <= taint_set(node)
    evictions = await client.list_all("events", "default", field_selector="reason=TaintManagerEviction")
    assert {e.involved_object.name for e in evictions} == victims
    lost_pod = await client.get("pods", sorted(victims)[0], "default")
    assert lost_pod.status.reason == "NodeLost"
    assert await client.list_all("events", "default", field_selector=f"involvedObject.name={lost},reason=NodeNotReady")

    cluster.start_node(lost)

    async def untainted() -> bool:
        n = await client.get("nodes", lost, "")
        return ready_status(n) == "True" and not taint_set(n) & {(UNREACHABLE_TAINT, "NoExecute"),
                                                                   (UNREACHABLE_TAINT, "NoSchedule")}

    await eventually(untainted, timeout=15, what="node back and untainted")


# ---------------------------------------------------------------- hand-driven nodes


async def register_node(client: Client, name: str, *, zone: str = "z1", ready: str | None = "True") -> None:
    node = core_pb2.Node(metadata={"name": name, "labels": {"topology.kubernetes.io/zone": zone}})
    await client.create(node)
    if ready is not None:
        await report_ready(client, name, ready)


async def report_ready(client: Client, name: str, status: str) -> None:
    """What a kubelet posts: its node's Ready condition."""
    node = await client.get("nodes", name, "")
    del node.status.conditions[:]
    cond = node.status.conditions.add(type="Ready", status=status, reason="KubeletReady")
    cond.last_heartbeat_time.CopyFrom(timestamp())
    await client.update_status(node)


class LeaseRenewer:
    """Renews nodes' Leases in kube-node-lease the way a kubelet does; `pause(name)` stops one."""

    def __init__(self, client: Client, names: list[str], interval: float = 0.25) -> None:
        self.client = client
        self.active = set(names)
        self.names = names
        self.interval = interval

    async def run(self) -> None:
        for name in self.names:
            lease = apps_pb2.Lease(metadata={"name": name, "namespace": "kube-node-lease"})
            lease.spec.holder_identity = name
            lease.spec.lease_duration_seconds = 4
            lease.spec.renew_time.CopyFrom(timestamp())
            await self.client.create(lease)
        while True:
            await asyncio.sleep(self.interval)
            for name in list(self.active):
                lease = await self.client.get("leases", name, "kube-node-lease")
                lease.spec.renew_time.CopyFrom(timestamp())
                with contextlib.suppress(Exception):
                    await self.client.update(lease)


async def bound_pod(client: Client, name: str, node: str) -> None:
    pod = core_pb2.Pod(metadata={"name": name, "namespace": "default", "labels": {"app": "web"}})
    pod.spec.containers.add(name="c", image="busybox")
    pod.spec.node_name = node
    await client.create(pod)
    pod = await client.get("pods", name, "default")
    pod.status.phase = "Running"
    pod.status.pod_ip = f"10.9.0.{len(name)}"
    pod.status.conditions.add(type="Ready", status="True")
    await client.update_status(pod)  # the kubelet's report


async def fast_manager(running: Running, apiserver: Any) -> ControllerManager:
    return await start_manager(running, apiserver.address, node_monitor_grace_period=1.0, node_monitor_period=0.2)


async def test_nodes_without_lease_are_left_alone(client: Client, apiserver: Any, running: Running) -> None:
    """Node objects registered by hand, with no Lease ever, keep their Ready condition and get no taints."""
    await fast_manager(running, apiserver)
    await register_node(client, "plain")
    await register_node(client, "blank", ready=None)
    await asyncio.sleep(2.0)
    plain, blank = await client.get("nodes", "plain", ""), await client.get("nodes", "blank", "")
    assert ready_status(plain) == "True" and not plain.spec.taints
    assert not blank.status.conditions and not blank.spec.taints


async def test_not_ready_node_is_tainted(client: Client, apiserver: Any, running: Running) -> None:
    """A kubelet reporting Ready=False gets the not-ready taints; Ready=True again removes them."""
    await fast_manager(running, apiserver)
    await register_node(client, "n1")
    renewer = LeaseRenewer(client, ["n1"])
    running.start(renewer.run())
    await report_ready(client, "n1", "False")

    async def tainted(want: set[tuple[str, str]]) -> bool:
        return taint_set(await client.get("nodes", "n1", "")) == want

    await eventually(lambda: tainted({(NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")}))
    await report_ready(client, "n1", "True")
    await eventually(lambda: tainted(set()))


async def zone_of_nodes(client: Client, apiserver: Any, running: Running, names: list[str],
                        rate: float) -> tuple[ControllerManager, LeaseRenewer]:
    """Nodes in one zone, each with a Ready pod and a renewed Lease, under a controller evicting `rate` nodes/s."""
    manager = await start_manager(running, apiserver.address, node_monitor_grace_period=1.0, node_monitor_period=0.2,
                                  eviction_rates=plan.EvictionRates(rate=rate))
    for name in names:
        await register_node(client, name)
    renewer = LeaseRenewer(client, names)
    running.start(renewer.run())
    for name in names:
        await bound_pod(client, f"pod-{name}", name)
    node_controller = manager.controllers["nodelifecycle"]
    await eventually(lambda: _true(set(node_controller.observed) == set(names)), what="leases seen")
    return manager, renewer


async def eviction_started(client: Client, name: str) -> float | None:
    """When the node's NoExecute taint was added (None: not yet)."""
    node = await client.get("nodes", name, "")
    return next((t.time_added.seconds + t.time_added.nanos / 1e9 for t in node.spec.taints
                 if t.effect == "NoExecute"), None)


async def evicted(client: Client, pod: str) -> bool:
    return (await client.get("pods", pod, "default")).metadata.HasField("deletion_timestamp")


async def test_lost_nodes_start_eviction_one_at_a_time(client: Client, apiserver: Any, running: Running) -> None:
    """Two of four nodes lost together: the first one's pods go at once, the second's when its zone's eviction
    limiter has a token again (--node-eviction-rate), so a storm of lost nodes cannot evict everything at once."""
    _, renewer = await zone_of_nodes(client, apiserver, running, ["n1", "n2", "n3", "n4"], rate=0.5)
    renewer.active -= {"n3", "n4"}
    both = await eventually(lambda: _all_of(client, ["n3", "n4"]), timeout=15, what="both nodes evicting")
    assert max(both) - min(both) >= 1.5, both  # 2 s apart at 0.5 nodes/s, less the clocks' resolution
    for name in ("n3", "n4"):
        await eventually(lambda name=name: evicted(client, f"pod-{name}"), timeout=10, what=f"pod-{name} evicted")
    assert not await evicted(client, "pod-n1")


async def _all_of(client: Client, names: list[str]) -> list[float] | None:
    started = [await eviction_started(client, n) for n in names]
    return None if None in started else [t for t in started if t is not None]


async def test_partial_disruption_halts_eviction(client: Client, apiserver: Any, running: Running) -> None:
    """When most nodes of a small zone go unreachable, their pods turn NotReady but are not evicted; when the zone
    recovers, eviction resumes for the nodes still unreachable, at the eviction rate.

    The first lost node spends the zone's token, so the three lost after it cannot be evicted one by one before
    the controller sees them all: what holds them back past the next token (5 s at 0.2 nodes/s) is the halt."""
    names = ["n1", "n2", "n3", "n4", "n5"]
    _, renewer = await zone_of_nodes(client, apiserver, running, names, rate=0.2)
    renewer.active -= {"n5"}
    await eventually(lambda: eviction_started(client, "n5"), timeout=10, what="n5 evicting")
    spent = time.monotonic()
    renewer.active -= {"n2", "n3", "n4"}

    async def unreachable(name: str) -> bool:
        return ready_status(await client.get("nodes", name, "")) == "Unknown"

    for name in ("n2", "n3", "n4"):
        await eventually(lambda name=name: unreachable(name), timeout=10, what=f"{name} unreachable")
    await asyncio.sleep(max(0.0, spent + 7.0 - time.monotonic()))  # past the token a limiter at 0.2/s would give
    for name in ("n2", "n3", "n4"):
        node = await client.get("nodes", name, "")
        assert taint_set(node) == {(UNREACHABLE_TAINT, "NoSchedule")}, name
        pod = await client.get("pods", f"pod-{name}", "default")
        assert not pod.metadata.HasField("deletion_timestamp") and not is_ready(pod)
    halted = await client.list_all("events", "default", field_selector="reason=EvictionHalted")
    assert halted and "PartialDisruption" in halted[0].message, [e.message for e in halted]

    renewer.active |= {"n2", "n3"}
    await report_ready(client, "n2", "True")
    await report_ready(client, "n3", "True")
    await eventually(lambda: evicted(client, "pod-n4"), timeout=15, what="eviction after recovery")
    assert {(UNREACHABLE_TAINT, "NoExecute")} <= taint_set(await client.get("nodes", "n4", ""))
    for name in ("n2", "n3"):
        assert not await evicted(client, f"pod-{name}")
        assert not taint_set(await client.get("nodes", name, ""))


async def test_losing_every_node_evicts_nothing(client: Client, apiserver: Any, running: Running) -> None:
    """No node ready anywhere (a control plane cut off from all of them, more likely than every node dying at
    once): nothing is evicted and no NoExecute taint stays (Kubernetes' master disruption mode). One node, so
    that it is lost all at once."""
    names = ["n1"]
    _, renewer = await zone_of_nodes(client, apiserver, running, names, rate=100.0)
    renewer.active.clear()
    for name in names:
        await eventually(lambda name=name: _unknown_and_calm(client, name), timeout=10, what=f"{name} lost, calm")
    await asyncio.sleep(2.0)  # longer than the pods' 1 s toleration
    for name in names:
        assert await _unknown_and_calm(client, name), name
        assert not await evicted(client, f"pod-{name}")


async def _unknown_and_calm(client: Client, name: str) -> bool:
    node = await client.get("nodes", name, "")
    return ready_status(node) == "Unknown" and taint_set(node) == {(UNREACHABLE_TAINT, "NoSchedule")}


async def _true(value: bool) -> bool:
    return value


async def test_pods_of_deleted_node_are_removed(client: Client, manager: ControllerManager) -> None:
    """Pods bound to a Node that is deleted (so no kubelet will ever finish them) are force-deleted."""
    await register_node(client, "gone")
    await bound_pod(client, "stuck", "gone")
    await client.delete("pods", "stuck", "default")  # graceful: it waits for a kubelet that is not coming
    assert (await client.get("pods", "stuck", "default")).metadata.HasField("deletion_timestamp")
    await bound_pod(client, "running", "gone")
    await client.delete("nodes", "gone", "")

    async def removed() -> bool:
        return not await client.list_all("pods", "default", field_selector="spec.nodeName=gone")

    await eventually(removed, what="orphaned pods removed")


async def test_one_second_lease_pause_evicts_nothing(client: Client, manager: ControllerManager,
                                                     running: Running) -> None:
    """With default settings, a node whose lease renewal (every 0.5 s, as a kubelet's) pauses for one second is
    never marked unready, tainted or evicted."""
    await register_node(client, "n1")
    renewer = LeaseRenewer(client, ["n1"], interval=0.5)
    running.start(renewer.run())
    for i in range(3):
        await bound_pod(client, f"pod-{i}", "n1")
    node_controller = manager.controllers["nodelifecycle"]
    await eventually(lambda: _true("n1" in node_controller.observed), what="lease seen")
    await asyncio.sleep(1.5)
    renewer.active.discard("n1")
    await asyncio.sleep(1.0)
    renewer.active.add("n1")
    await asyncio.sleep(6.5)  # well past the 2 s grace period plus the pods' 1 s toleration
    n = await client.get("nodes", "n1", "")
    assert ready_status(n) == "True" and not n.spec.taints
    for i in range(3):
        pod = await client.get("pods", f"pod-{i}", "default")
        assert is_ready(pod) and not pod.metadata.HasField("deletion_timestamp")
    assert not await client.list_all("events", "default", field_selector="reason=NodeNotReady")
    assert not await client.list_all("events", "default", field_selector="reason=TaintManagerEviction")


async def test_a_controller_behind_reads_the_lease_before_declaring_a_node_lost(
        client: Client, manager: ControllerManager, running: Running) -> None:
    """A node controller whose view of a lease is older than the grace period (its watch or its loop fell behind)
    reads the Lease itself: the node, renewing all along, is not marked unready, tainted or evicted."""
    await register_node(client, "n1")
    renewer = LeaseRenewer(client, ["n1"])
    running.start(renewer.run())
    await bound_pod(client, "pod-0", "n1")
    node_controller = manager.controllers["nodelifecycle"]
    await eventually(lambda: _true("n1" in node_controller.observed), what="lease seen")
    for _ in range(20):
        # What it would hold had it seen no renewal for a minute.
        node_controller.observed["n1"] = plan.LeaseObservation(("renew", 0, 0), time.monotonic() - 60.0)
        try:
            await node_controller.reconcile("n1")
            break
        except ConflictError:
            await asyncio.sleep(0.1)  # its cache was behind a write: retried, as its queue would
    await asyncio.sleep(2.0)  # past the pods' 1 s toleration, had the node been tainted
    n = await client.get("nodes", "n1", "")
    assert ready_status(n) == "True" and not n.spec.taints
    pod = await client.get("pods", "pod-0", "default")
    assert is_ready(pod) and not pod.metadata.HasField("deletion_timestamp")
    assert not await client.list_all("events", "default", field_selector="reason=NodeNotReady")


async def test_toleration_seconds_count_from_a_users_taint(client: Client, manager: ControllerManager) -> None:
    """A NoExecute taint added by a user (no timeAdded): an untolerating pod goes at once, a pod tolerating it for
    5 s goes 5-7 s after the taint was added, a pod tolerating it without a limit stays."""
    await register_node(client, "n1")
    tolerations: dict[str, list[dict[str, Any]]] = {
        "plain": [],
        "five": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
        "forever": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
    }
    for name, tols in tolerations.items():
        pod = core_pb2.Pod(metadata={"name": name, "namespace": "default"})
        pod.spec.containers.add(name="c", image="busybox")
        pod.spec.node_name = "n1"
        for t in tols:
            pod.spec.tolerations.add(**{k: v for k, v in t.items() if k != "tolerationSeconds"})
            if "tolerationSeconds" in t:
                pod.spec.tolerations[-1].toleration_seconds = t["tolerationSeconds"]
        await client.create(pod)
    node = await client.get("nodes", "n1", "")
    node.spec.taints.add(key="dedicated", value="x", effect="NoExecute")
    await client.update(node)
    added = time.monotonic()
    gone_after: dict[str, float] = {}
    while time.monotonic() - added < 9 and len(gone_after) < 2:
        for name in ("plain", "five"):
            if name not in gone_after:
                p = await client.get("pods", name, "default")
                if p.metadata.HasField("deletion_timestamp"):
                    gone_after[name] = time.monotonic() - added
        await asyncio.sleep(0.05)
    assert gone_after.get("plain", 99) < 1.5, gone_after
    assert 5.0 <= gone_after.get("five", 99) <= 7.0, gone_after
    forever = await client.get("pods", "forever", "default")
    assert not forever.metadata.HasField("deletion_timestamp")
