"""The node lifecycle controller: lease heartbeats in; Ready=Unknown, NotReady pods and taints out."""

from __future__ import annotations

import asyncio
import math
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
                 monitor_period: float = DEFAULT_MONITOR_PERIOD, rates: plan.EvictionRates | None = None,
                 workers: int = 4) -> None:
        super().__init__()
        self.client = client
        self.grace = grace
        self.rates = rates or plan.EvictionRates()
        self.monitor_period = monitor_period
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.nodes = informers.get("nodes")
        self.leases = informers.get("leases", LEASE_NAMESPACE)
        self.pods = informers.get("pods")
        self.observed: dict[str, plan.LeaseObservation] = {}
        self.zone_states: dict[str, str] = {}
        self.halted = False  # every zone fully disrupted: no eviction anywhere, NoExecute taints removed
        # Per zone, the limiter of nodes starting eviction: a storm of lost nodes (an overloaded cluster whose
        # kubelets miss renewals) evicts one node's pods at a time, not all at once onto the survivors.
        self.limiters: dict[str, plan.TokenBucket] = {}
        self.held_back: set[str] = set()  # nodes waiting for a token (logged once)
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
        self.held_back.discard(node.metadata.name)

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
        mono = time.monotonic()
        gone = self.unreachable(mono)
        for name in gone:
            if self.nodes.get(name) is not None:
                self.enqueue_key(name)
        zones = plan.compute_zones(self.nodes.list(), gone, self.rates.unhealthy_zone_threshold)
        self.halted = plan.all_disrupted(zones)
        for zone, rate in plan.eviction_rates(zones, self.rates).items():
            before = self.limiters.get(zone)
            self.limiters[zone] = plan.TokenBucket.full(rate, mono) if before is None else before.with_rate(rate, mono)
            if before is not None and (before.rate > 0) != (rate > 0):
                self._eviction_switched(zone, zones[zone], halted=rate == 0, gone=gone)
        states = {zone: z.state for zone, z in zones.items()}
        changed = plan.changed_zones(self.zone_states, states)
        self.zone_states = states
        for zone, state in changed.items():
            nodes = [n for n in self.nodes.list() if plan.zone_of(n) == zone]
            self.log.warning("zone_state_changed", zone=zone or "<default>", state=state, nodes=len(nodes),
                             eviction_rate=self.limiters[zone].rate)
            for n in nodes:
                self.enqueue(n)

    def _eviction_switched(self, zone: str, state: plan.Zone, *, halted: bool, gone: set[str]) -> None:
        name = zone or "<default>"
        why = ("no node in any zone is ready" if self.halted else
               f"{state.state} of zone {name}: at least {self.rates.unhealthy_zone_threshold:.0%} of its "
               f"{state.size} nodes are not ready")
        for n in self.nodes.list():
            if plan.zone_of(n) != zone or (n.metadata.name not in gone and plan.ready_status(n) == "True"):
                continue
            if halted:
                self.recorder.warning(n, "EvictionHalted", f"Pods are not evicted until it recovers: {why}")
            else:
                self.recorder.normal(n, "EvictionResumed", f"Zone {name} recovered: evicting pods again")

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
        taints = plan.plan_taints(node, evict=not self.halted, now=at)
        if plan.starts_eviction(node.spec.taints, taints):
            if not self._may_start_eviction(node):
                taints = plan.plan_taints(node, evict=False, now=at)
        else:
            self.held_back.discard(key)
        if plan.taints_differ(node.spec.taints, taints):
            update = core_pb2.Node()
            update.CopyFrom(node)
            del update.spec.taints[:]
            update.spec.taints.extend(taints)
            await self.client.update(update)  # compare-and-swap: a kubelet's concurrent write wins, then we retry
            self.log.info("node_taints_updated", node=key, taints=[f"{t.key}:{t.effect}" for t in taints])
        if unreachable and plan.ready_status(node) == "Unknown":
            await self._mark_pods_not_ready(node)

    def _may_start_eviction(self, node: core_pb2.Node) -> bool:
        """Take a token from the node's zone limiter; without one, come back when there is one (or when the
        zone's state changes, for a zone that evicts nothing)."""
        zone, mono = plan.zone_of(node), time.monotonic()
        limiter = self.limiters.setdefault(zone, plan.TokenBucket.full(self.rates.rate, mono))
        name = node.metadata.name
        if limiter.take(mono):
            self.held_back.discard(name)
            return True
        wait = limiter.wait(mono)
        if math.isfinite(wait):
            self.enqueue_after(name, wait)
        if name not in self.held_back:  # once per hold, not on every status update meanwhile
            self.held_back.add(name)
            self.log.info("eviction_rate_limited", node=name, zone=zone or "<default>", rate=limiter.rate,
                          wait_seconds=round(wait, 2) if math.isfinite(wait) else None)
        return False

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
