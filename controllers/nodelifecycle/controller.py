"""The node lifecycle controller: lease heartbeats in; Ready=Unknown, NotReady pods and taints out."""

from __future__ import annotations

import asyncio
import time

from api.errors import ConflictError, NotFoundError
from api.pb import apps_pb2, core_pb2
from api.timestamps import now
from client.api import Client
from controllers.base import QueueController, gather_limited
from controllers.events import Recorder
from controllers.informers import NODE, SharedInformers
from controllers.nodelifecycle import plan

LEASE_NAMESPACE = "kube-node-lease"
# Four of the kubelet's 0.5 s lease renewals may be missed (Kubernetes: 40 s, four of its 10 s renewals) before a
# node is marked Ready=Unknown, and the Lease itself is read before that; leases are checked every half renewal.
DEFAULT_GRACE = 2.0
DEFAULT_MONITOR_PERIOD = 0.25


class NodeLifecycleController(QueueController):
    """Keyed by node name. A monitor loop enqueues nodes whose lease lapsed and tracks zone disruption."""

    name = "node-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, grace: float = DEFAULT_GRACE,
                 monitor_period: float = DEFAULT_MONITOR_PERIOD, workers: int = 4) -> None:
        super().__init__()
        self.client = client
        self.grace = grace
        self.monitor_period = monitor_period
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.nodes = informers.get("nodes")
        self.leases = informers.get("leases", LEASE_NAMESPACE)
        self.pods = informers.get("pods")
        self.observed: dict[str, plan.LeaseObservation] = {}
        self.zone_states: dict[str, str] = {}
        self.nodes.add_handlers(self.enqueue, self._node_updated, self._node_deleted)
        self.leases.add_handlers(self._lease_seen, lambda old, new: self._lease_seen(new))

    async def ready(self) -> None:
        for informer in (self.nodes, self.leases, self.pods):
            await informer.synced.wait()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._monitor())
            await super().run()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        name = new.metadata.name
        previous = self.observed.get(name)
        if previous is not None and plan.status_heartbeat(old, new):
            # A kubelet posting status is alive even if its lease renewal has not reached us yet.
            self.observed[name] = plan.LeaseObservation(previous.renewed, time.monotonic())
        if old.status.conditions != new.status.conditions or old.spec.taints != new.spec.taints or \
                old.metadata.labels != new.metadata.labels:
            self.enqueue(new)

    def _node_deleted(self, node: core_pb2.Node) -> None:
        self.observed.pop(node.metadata.name, None)

    def _lease_seen(self, lease: apps_pb2.Lease) -> None:
        name = lease.metadata.name
        previous = self.observed.get(name)
        current = plan.observe(previous, plan.renewal_of(lease), time.monotonic())
        self.observed[name] = current
        if current is not previous:
            node = self.nodes.get(name)
            if node is not None and plan.ready_status(node) != "True":
                self.enqueue_key(name)

    # ------------------------------------------------------------ monitor

    def unreachable(self, mono: float) -> set[str]:
        return {name for name, obs in self.observed.items() if plan.lease_expired(obs, mono, self.grace)}

    async def _monitor(self) -> None:
        while True:
            self.monitor_once()
            await asyncio.sleep(self.monitor_period)

    def monitor_once(self) -> None:
        gone = self.unreachable(time.monotonic())
        for name in gone:
            if self.nodes.get(name) is not None:
                self.enqueue_key(name)
        states = plan.compute_zone_states(self.nodes.list(), gone)
        changed = plan.changed_zones(self.zone_states, states)
        self.zone_states = states
        for zone, state in changed.items():
            nodes = [n for n in self.nodes.list() if plan.zone_of(n) == zone]
            self.log.warning("zone_disrupted" if state == plan.FULL_DISRUPTION else "zone_recovered",
                             zone=zone or "<default>", nodes=len(nodes))
            for n in nodes:
                self.enqueue(n)
                if n.metadata.name in gone or plan.ready_status(n) != "True":
                    if state == plan.FULL_DISRUPTION:
                        self.recorder.warning(n, "EvictionHalted",
                                              f"More than half of the nodes in zone {zone or '<default>'} are not "
                                              f"ready: pods are not evicted until it recovers")
                    else:
                        self.recorder.normal(n, "EvictionResumed",
                                             f"Zone {zone or '<default>'} recovered: evicting pods again")

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            return
        at = now()
        unreachable = plan.lease_expired(self.observed.get(key), time.monotonic(), self.grace)
        if unreachable and plan.ready_status(node) != "Unknown" and await self._renewed_meanwhile(key):
            unreachable = False
        if unreachable:
            status = plan.plan_unknown_status(node, at)
            if status is not None:
                update = core_pb2.Node()
                update.CopyFrom(node)
                update.status.CopyFrom(status)
                node = await self.client.update_status(update)  # compare-and-swap on the cached version
                self.log.warning("node_marked_unknown", node=key, grace_seconds=self.grace)
                self.recorder.normal(node, "NodeNotReady", f"Node {key} status is now: NodeNotReady")
        # Taints first: the NoExecute taint starts the pods' toleration clocks.
        disrupted = self.zone_states.get(plan.zone_of(node)) == plan.FULL_DISRUPTION
        taints = plan.plan_taints(node, evict=not disrupted, now=at)
        if plan.taints_differ(node.spec.taints, taints):
            update = core_pb2.Node()
            update.CopyFrom(node)
            del update.spec.taints[:]
            update.spec.taints.extend(taints)
            await self.client.update(update)  # compare-and-swap: a kubelet's concurrent write wins, then we retry
            self.log.info("node_taints_updated", node=key, taints=[f"{t.key}:{t.effect}" for t in taints])
        if unreachable and plan.ready_status(node) == "Unknown":
            await self._mark_pods_not_ready(node)

    async def _renewed_meanwhile(self, name: str) -> bool:
        """Read the Lease itself before declaring its node lost: when this process, not the node, fell behind
        (its watch or its loop starved of CPU for the grace period), the renewals it missed are there."""
        try:
            lease = await self.client.get("leases", name, LEASE_NAMESPACE)
        except NotFoundError:
            return False
        self._lease_seen(lease)
        obs = self.observed.get(name)
        return obs is not None and not plan.lease_expired(obs, time.monotonic(), self.grace)

    async def _mark_pods_not_ready(self, node: core_pb2.Node) -> None:
        """Pods on an unreachable node stop being Ready at once, so Services drop them before eviction."""
        victims = plan.pods_to_mark_not_ready(self.pods.by_index(NODE, node.metadata.name))
        if not victims:
            return
        at = now()

        async def mark(pod: core_pb2.Pod) -> None:
            update = core_pb2.Pod()
            update.CopyFrom(pod)
            update.status.CopyFrom(plan.pod_not_ready_status(pod, at))
            try:
                await self.client.update_status(update)
            except NotFoundError:
                return
            self.recorder.warning(pod, "NodeNotReady", "Node is not ready")

        results = await gather_limited([mark(p) for p in victims])
        failed = [r for r in results if isinstance(r, BaseException)]
        self.log.info("pods_marked_not_ready", node=node.metadata.name, pods=len(victims), failed=len(failed))
        for r in failed:
            if isinstance(r, asyncio.CancelledError):
                raise r
        if failed:
            raise failed[0] if isinstance(failed[0], ConflictError) else RuntimeError(str(failed[0]))
