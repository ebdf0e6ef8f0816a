"""Pure node-health planning: when a node is unreachable, which taints it carries, which zones are disrupted.

A node is judged only by its heartbeat Lease (namespace kube-node-lease, same
name). A node whose lease this controller has never seen is not tracked: Node
objects registered by hand (hollow nodes for scheduler tests) keep whatever
conditions they were given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from api.defaults import NOT_READY_TAINT, UNREACHABLE_TAINT
from api.pb import core_pb2
from api.timestamps import timestamp

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
# Kubernetes' zone states: Normal; PartialDisruption (more than 2 nodes and at least the unhealthy-zone
# threshold of them not ready); FullDisruption (no node ready).
NORMAL = "Normal"
PARTIAL_DISRUPTION = "PartialDisruption"
FULL_DISRUPTION = "FullDisruption"

UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Kubelet never posted node status."
NODE_LOST = "NodeLost"

MANAGED_TAINTS = frozenset({(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute"),
                            (NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")})


@dataclass(frozen=True)
class LeaseObservation:
    renewed: tuple  # what identifies one renewal: the lease's renewTime (or its resourceVersion)
    observed_at: float  # this controller's monotonic clock when that renewal was first seen


def renewal_of(lease: object) -> tuple:
    spec = lease.spec  # type: ignore[attr-defined]
    if spec.renew_time.seconds or spec.renew_time.nanos:
        return ("renew", spec.renew_time.seconds, spec.renew_time.nanos)
    return ("rv", lease.metadata.resource_version)  # type: ignore[attr-defined]


def observe(previous: LeaseObservation | None, renewed: tuple, mono: float) -> LeaseObservation:
    """The observation after seeing a lease: a new renewal restarts the clock, the same one does not."""
    if previous is not None and previous.renewed == renewed:
        return previous
    return LeaseObservation(renewed, mono)


def status_heartbeat(old: core_pb2.Node, new: core_pb2.Node) -> bool:
    """Did the kubelet post node status (a heartbeat as good as a lease renewal)?

    A Ready condition other than Unknown whose heartbeat time or status changed
    was written by the kubelet (this controller only ever writes Unknown).
    """
    cond = ready_condition(new)
    if cond is None or cond.status == "Unknown":
        return False
    before = ready_condition(old)
    return before is None or before.status != cond.status or before.last_heartbeat_time != cond.last_heartbeat_time


def lease_expired(obs: LeaseObservation | None, mono: float, grace: float) -> bool:
    """Untracked nodes (no lease ever seen) never expire."""
    return obs is not None and mono - obs.observed_at > grace


def ready_condition(node: core_pb2.Node) -> core_pb2.NodeCondition | None:
    for c in node.status.conditions:
        if c.type == "Ready":
            return c
    return None


def ready_status(node: core_pb2.Node) -> str | None:
    c = ready_condition(node)
    return None if c is None else c.status


def zone_of(node: core_pb2.Node) -> str:
    for label in ZONE_LABELS:
        if label in node.metadata.labels:
            return node.metadata.labels[label]
    return ""


def plan_unknown_status(node: core_pb2.Node, now: float) -> core_pb2.NodeStatus | None:
    """The node's status with every condition Unknown, or None if it already says so."""
    status = core_pb2.NodeStatus()
    status.CopyFrom(node.status)
    changed = False
    if ready_condition(node) is None:
        c = status.conditions.add(type="Ready", status="Unknown", reason=NEVER_REASON, message=NEVER_MESSAGE)
        c.last_transition_time.CopyFrom(timestamp(now))
        changed = True
    for c in status.conditions:
        if c.status != "Unknown":
            c.status = "Unknown"
            c.reason = UNKNOWN_REASON
            c.message = UNKNOWN_MESSAGE
            c.last_transition_time.CopyFrom(timestamp(now))
            changed = True
    return status if changed else None


@dataclass(frozen=True)
class EvictionRates:
    """How fast nodes' pods are evicted, with kube-controller-manager's defaults: --node-eviction-rate,
    --secondary-node-eviction-rate, --unhealthy-zone-threshold, --large-cluster-size-threshold."""

    rate: float = 0.1  # nodes a second whose NoExecute taint may be added, per zone
    secondary_rate: float = 0.01  # the same in a partially disrupted zone of a large cluster
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size: int = 50  # a zone of at most this many nodes stops evicting when partially disrupted


@dataclass(frozen=True)
class Zone:
    state: str
    size: int


def zone_state(ready: int, not_ready: int, threshold: float) -> str:
    """Kubernetes' ComputeZoneState."""
    if ready == 0 and not_ready > 0:
        return FULL_DISRUPTION
    if not_ready > 2 and not_ready / (ready + not_ready) >= threshold:
        return PARTIAL_DISRUPTION
    return NORMAL


def compute_zones(nodes: Iterable[core_pb2.Node], unreachable: Iterable[str] = (),
                  threshold: float = EvictionRates.unhealthy_zone_threshold) -> dict[str, Zone]:
    """Each zone's state and size. Only nodes that report a Ready condition (or are known unreachable) count."""
    gone = set(unreachable)
    totals: dict[str, list[int]] = {}
    for n in nodes:
        status = ready_status(n)
        if status is None and n.metadata.name not in gone:
            continue
        counts = totals.setdefault(zone_of(n), [0, 0])
        counts[0 if status == "True" and n.metadata.name not in gone else 1] += 1
    return {zone: Zone(zone_state(ready, not_ready, threshold), ready + not_ready)
            for zone, (ready, not_ready) in totals.items()}


def all_disrupted(zones: Mapping[str, Zone]) -> bool:
    """No node ready anywhere: the fault is more likely the control plane's or the network's than every
    node's, so nothing is evicted and the NoExecute taints come off (Kubernetes' master disruption mode)."""
    return bool(zones) and all(z.state == FULL_DISRUPTION for z in zones.values())


def eviction_rates(zones: Mapping[str, Zone], rates: EvictionRates) -> dict[str, float]:
    """Per zone, how many nodes a second may start evicting (Kubernetes' handleDisruption): the normal rate in a
    Normal zone and in a fully disrupted one while another zone is not; in a partially disrupted zone, the
    secondary rate if the zone is larger than the large-cluster size, else none; none anywhere when all
    zones are fully disrupted."""
    if all_disrupted(zones):
        return {name: 0.0 for name in zones}
    return {name: (rates.secondary_rate if z.size > rates.large_cluster_size else 0.0)
            if z.state == PARTIAL_DISRUPTION else rates.rate for name, z in zones.items()}


@dataclass
class TokenBucket:
    """Kubernetes' eviction limiter: `rate` tokens a second, at most one held (burst 1); rate 0 gives none."""

    rate: float
    tokens: float
    stamp: float  # monotonic seconds of the last refill

    @classmethod
    def full(cls, rate: float, now: float) -> TokenBucket:
        return cls(rate, 1.0 if rate > 0 else 0.0, now)

    def _refill(self, now: float) -> None:
        if self.rate > 0:
            self.tokens = min(1.0, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is there (infinite at rate 0)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else math.inf

    def with_rate(self, rate: float, now: float) -> TokenBucket:
        """The bucket for a new rate; one that had no token left starts without one too (Kubernetes' SwapLimiter),
        so flapping zone states cannot mint tokens."""
        if rate == self.rate:
            return self
        fresh = TokenBucket.full(rate, now)
        if not self.take(now):
            fresh.tokens = 0.0
        return fresh


def plan_taints(node: core_pb2.Node, *, evict: bool, now: float) -> list[core_pb2.Taint]:
    """The node's taints as its Ready condition asks (Kubernetes' TaintNodesByCondition and taint-based eviction).

    Ready=Unknown: unreachable NoSchedule and NoExecute; Ready=False: not-ready
    NoSchedule and NoExecute; Ready=True: neither. NoExecute is withheld when
    `evict` is False (eviction is halted or waits for its rate). Nodes without a Ready condition
    keep their taints. Existing taints keep their timeAdded.
    """
    status = ready_status(node)
    current = list(node.spec.taints)
    if status is None:
        return current
    want: set[tuple[str, str]] = set()
    if status in ("Unknown", "False"):
        key = UNREACHABLE_TAINT if status == "Unknown" else NOT_READY_TAINT
        want.add((key, "NoSchedule"))
        if evict:
            want.add((key, "NoExecute"))
    kept = [t for t in current if (t.key, t.effect) not in MANAGED_TAINTS or (t.key, t.effect) in want]
    present = {(t.key, t.effect) for t in kept}
    for key, effect in sorted(want - present):
        t = core_pb2.Taint(key=key, effect=effect)
        t.time_added.CopyFrom(timestamp(now))
        kept.append(t)
    return kept


def taints_differ(a: Iterable[core_pb2.Taint], b: Iterable[core_pb2.Taint]) -> bool:
    return list(a) != list(b)


def evicting(taints: Iterable[core_pb2.Taint]) -> bool:
    """Does the node carry one of this controller's NoExecute taints?"""
    return any((t.key, t.effect) in MANAGED_TAINTS and t.effect == "NoExecute" for t in taints)


def starts_eviction(current: Iterable[core_pb2.Taint], wanted: Iterable[core_pb2.Taint]) -> bool:
    """Would `wanted` add a NoExecute taint to a node not yet evicting? That takes a token from its zone's
    limiter; swapping unreachable for not-ready (or back) does not, as in Kubernetes."""
    return evicting(wanted) and not evicting(current)


def pods_to_mark_not_ready(pods: Iterable[core_pb2.Pod]) -> list[core_pb2.Pod]:
    """Pods of an unreachable node that still claim to be Ready."""
    out = []
    for p in pods:
        for c in p.status.conditions:
            if c.type == "Ready" and c.status == "True":
                out.append(p)
                break
    return out


def pod_not_ready_status(pod: core_pb2.Pod, now: float) -> core_pb2.PodStatus:
    """The pod's status with Ready=False and why: reason NodeLost, as Kubernetes' node controller wrote it
    (kubectl then shows such pods, once deleted, as Unknown)."""
    status = core_pb2.PodStatus()
    status.CopyFrom(pod.status)
    for c in status.conditions:
        if c.type == "Ready" and c.status != "False":
            c.status = "False"
            c.last_transition_time.CopyFrom(timestamp(now))
    status.reason = NODE_LOST
    status.message = f"Node {pod.spec.node_name} which was running pod {pod.metadata.name} is unresponsive"
    return status


def changed_zones(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    return {zone: state for zone, state in after.items() if before.get(zone, NORMAL) != state}
