"""Pure rollout planning: how big each ReplicaSet of a Deployment should be next.

The planner sees each ReplicaSet through an `RSView`: its spec plus what the
pod cache shows about its pods. It counts pods conservatively, so that the
rollout bounds hold for pods, not only for ReplicaSet specs:

- toward maxSurge it counts max(spec.replicas, active pods) per ReplicaSet,
  plus pods still terminating within their grace period (a scaled-down
  ReplicaSet's pods exist until their kubelet stops them);
- toward maxUnavailable it counts min(available pods, spec.replicas) per
  ReplicaSet (a ReplicaSet being scaled down keeps at most spec pods, and it
  deletes unavailable pods first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from api import pods
from api.pb import apps_pb2, core_pb2
from api.timestamps import seconds
from controllers import podstate
from controllers.deployment import util


@dataclass(frozen=True)
class RSView:
    rs: apps_pb2.ReplicaSet
    active: int = 0  # pods neither terminating nor finished
    available: int = 0  # active pods available (ready for minReadySeconds)
    terminating: int = 0  # pods being deleted whose grace period has not run out

    @property
    def name(self) -> str:
        return self.rs.metadata.name

    @property
    def replicas(self) -> int:
        return self.rs.spec.replicas

    @property
    def pods_upper_bound(self) -> int:
        return max(self.replicas, self.active) + self.terminating

    @property
    def available_lower_bound(self) -> int:
        return min(self.available, self.replicas)


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What the rollout plan needs to know about one pod, taken once per watch event."""

    deleting_until: float  # when its grace period ends, if it is being deleted (0.0 otherwise)
    terminal: bool  # Succeeded or Failed
    ready: bool
    ready_since: float


def pod_facts(pod: core_pb2.Pod) -> PodFacts:
    return PodFacts(
        deleting_until=seconds(pod.metadata.deletion_timestamp) if pods.is_terminating(pod) else 0.0,
        terminal=pods.is_terminal(pod),
        ready=podstate.is_ready(pod),
        ready_since=podstate.ready_since(pod),
    )


def view_of(rs: apps_pb2.ReplicaSet, facts: Iterable[PodFacts], *, min_ready_seconds: int,
            now: float) -> tuple[RSView, float | None]:
    """The RSView of `rs` from its pods' facts, and when the next terminating pod's grace runs out (if any)."""
    active = available = terminating = 0
    next_deadline: float | None = None
    for f in facts:
        if f.deleting_until:
            if f.deleting_until > now:
                terminating += 1
                next_deadline = f.deleting_until if next_deadline is None else min(next_deadline, f.deleting_until)
        elif not f.terminal:
            active += 1
            if f.ready and (min_ready_seconds <= 0 or
                            (f.ready_since > 0 and f.ready_since + min_ready_seconds <= now)):
                available += 1
    return RSView(rs, active, available, terminating), next_deadline


def next_available(facts: Iterable[PodFacts], min_ready_seconds: int, now: float) -> float | None:
    """When the next ready pod becomes available under minReadySeconds (None: none pending)."""
    if min_ready_seconds <= 0:
        return None
    pending = [f.ready_since + min_ready_seconds for f in facts
               if f.ready and not f.deleting_until and f.ready_since + min_ready_seconds > now]
    return min(pending, default=None)


def new_rs_replicas(d: apps_pb2.Deployment, views: Sequence[RSView], new: RSView) -> int:
    """How big the new ReplicaSet may be now (Kubernetes' NewRSNewReplicas, counting pods)."""
    if d.spec.strategy.type == "Recreate":
        return d.spec.replicas
    if new.replicas >= d.spec.replicas:
        return new.replicas
    current = sum(v.pods_upper_bound for v in views)
    max_total = d.spec.replicas + util.max_surge(d)
    if current >= max_total:
        return new.replicas
    return new.replicas + max(0, min(max_total - current, d.spec.replicas - new.replicas))


def plan_new_rs(d: apps_pb2.Deployment, views: Sequence[RSView], new: RSView) -> int | None:
    """The new ReplicaSet's next size, or None to leave it (reconcileNewReplicaSet)."""
    if new.replicas == d.spec.replicas:
        return None
    if new.replicas > d.spec.replicas:
        return d.spec.replicas
    size = new_rs_replicas(d, views, new)
    return size if size != new.replicas else None


def plan_old_rs(d: apps_pb2.Deployment, new: RSView | None, olds: Sequence[RSView]) -> dict[str, int]:
    """New sizes for old ReplicaSets during a rolling update (reconcileOldReplicaSets).

    First unhealthy replicas go (they cost no availability), then healthy ones,
    oldest ReplicaSet first, never below replicas - maxUnavailable available.
    """
    old_count = sum(v.replicas for v in olds)
    if old_count == 0:
        return {}
    all_count = old_count + (new.replicas if new else 0)
    min_available = d.spec.replicas - util.max_unavailable(d)
    new_unavailable = (new.replicas - new.available_lower_bound) if new else 0
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    by_age = sorted(olds, key=lambda v: (v.rs.metadata.creation_timestamp.seconds,
                                         v.rs.metadata.creation_timestamp.nanos, v.name))
    sizes = {v.name: v.replicas for v in olds}
    cleaned = 0
    for v in by_age:
        if cleaned >= max_scaled_down:
            break
        unhealthy = v.replicas - v.available_lower_bound
        if v.replicas == 0 or unhealthy <= 0:
            continue
        n = min(max_scaled_down - cleaned, unhealthy)
        sizes[v.name] -= n
        cleaned += n
    available = sum(min(v.available, sizes[v.name]) for v in olds)
    available += new.available_lower_bound if new else 0
    if available > min_available:
        budget = available - min_available
        for v in by_age:
            if budget <= 0:
                break
            n = min(sizes[v.name], budget)
            sizes[v.name] -= n
            budget -= n
    return {name: size for name, size in sizes.items() if size != next(v.replicas for v in olds if v.name == name)}


def old_pods_running(olds: Sequence[RSView], old_pods: Sequence[core_pb2.Pod]) -> bool:
    """For Recreate: does any pod of an old ReplicaSet still exist (other than finished ones)?"""
    if any(v.rs.status.replicas > 0 for v in olds):
        return True
    return any(not pods.is_terminal(p) for p in old_pods)


def is_active(rs: apps_pb2.ReplicaSet | None) -> bool:
    return rs is not None and rs.spec.replicas > 0


def is_scaling_event(d: apps_pb2.Deployment, rss: Sequence[apps_pb2.ReplicaSet]) -> bool:
    """Was the deployment scaled since its active ReplicaSets were last sized?"""
    for rs in rss:
        if not is_active(rs):
            continue
        desired = rs.metadata.annotations.get(util.DESIRED_REPLICAS)
        if desired is not None and desired.isdigit() and int(desired) != d.spec.replicas:
            return True
    return False


def find_active_or_latest(new: apps_pb2.ReplicaSet | None,
                          olds: Sequence[apps_pb2.ReplicaSet]) -> apps_pb2.ReplicaSet | None:
    if new is None and not olds:
        return None
    newest_first = list(reversed(util.creation_order(olds)))
    active = [rs for rs in [*newest_first, new] if is_active(rs)]
    if not active:
        return new if new is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def is_saturated(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet | None) -> bool:
    if rs is None:
        return False
    desired = rs.metadata.annotations.get(util.DESIRED_REPLICAS, "")
    return (rs.spec.replicas == d.spec.replicas and desired == str(d.spec.replicas)
            and rs.status.available_replicas == d.spec.replicas)


def _max_replicas_before(rs: apps_pb2.ReplicaSet, d: apps_pb2.Deployment) -> int:
    text = rs.metadata.annotations.get(util.MAX_REPLICAS, "")
    value = int(text) if text.isdigit() else 0
    return value or d.status.replicas


def plan_scale(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
               olds: Sequence[apps_pb2.ReplicaSet]) -> dict[str, int]:
    """Sizes after the deployment itself was scaled (or while it is paused): Kubernetes' proportional scaling.

    Every ReplicaSet named is to be (re)sized, even to its current size, so
    that its desired-replicas annotation catches up with the deployment.
    """
    target = find_active_or_latest(new, olds)
    if target is not None:
        return {target.metadata.name: d.spec.replicas}
    if is_saturated(d, new):
        return {rs.metadata.name: 0 for rs in olds if is_active(rs)}
    if d.spec.strategy.type != "RollingUpdate":
        return {}
    active = [rs for rs in [*olds, new] if rs is not None and is_active(rs)]
    total = sum(rs.spec.replicas for rs in active)
    allowed = d.spec.replicas + util.max_surge(d) if d.spec.replicas > 0 else 0
    to_add = allowed - total
    sizes = {rs.metadata.name: rs.spec.replicas for rs in active}
    if to_add == 0:
        return sizes

    def created(rs: apps_pb2.ReplicaSet) -> tuple[int, int]:
        return rs.metadata.creation_timestamp.seconds, rs.metadata.creation_timestamp.nanos

    if to_add > 0:  # larger first; among equals the newer first
        active.sort(key=lambda rs: (-rs.spec.replicas, tuple(-x for x in created(rs))))
    else:  # larger first; among equals the older first
        active.sort(key=lambda rs: (-rs.spec.replicas, created(rs)))
    added = 0
    for rs in active:
        if added == to_add:
            break
        if d.spec.replicas == 0:
            fraction = -rs.spec.replicas
        else:
            before = _max_replicas_before(rs, d)
            exact = rs.spec.replicas * (d.spec.replicas + util.max_surge(d)) / before if before else rs.spec.replicas
            fraction = math.floor(exact + 0.5) - rs.spec.replicas
        left = to_add - added
        proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs.metadata.name] += proportion
        added += proportion
    first = active[0].metadata.name
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def plan_cleanup(d: apps_pb2.Deployment, olds: Sequence[apps_pb2.ReplicaSet]) -> list[apps_pb2.ReplicaSet]:
    """Old ReplicaSets beyond revisionHistoryLimit that are scaled to zero and settled: delete these."""
    if not d.spec.HasField("revision_history_limit"):
        return []
    alive = [rs for rs in olds if not rs.metadata.HasField("deletion_timestamp")]
    diff = len(alive) - d.spec.revision_history_limit
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (util.revision(rs), rs.metadata.creation_timestamp.seconds, rs.metadata.name))
    out = []
    for rs in alive[:diff]:
        if rs.status.replicas != 0 or rs.spec.replicas != 0 or \
                rs.metadata.generation > rs.status.observed_generation:
            continue
        out.append(rs)
    return out
