"""Pure planning for a ReplicaSet: how many pods to create, which to delete, and its status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from api import labels
from api.pb import apps_pb2, core_pb2
from api.timestamps import timestamp
from controllers import podstate

# At most this many creations or deletions per sync (Kubernetes' burstReplicas).
BURST = 500
# Creations go out in batches of 1, 2, 4, ... so a template the apiserver refuses fails after one call.
SLOW_START_INITIAL = 1


@dataclass(frozen=True)
class ReplicaPlan:
    create: int = 0
    delete: tuple[core_pb2.Pod, ...] = ()


def plan_replicas(desired: int, pods: Sequence[core_pb2.Pod], *, burst: int = BURST) -> ReplicaPlan:
    """Create or delete (never both) to move the active `pods` toward `desired`, at most `burst` at a time."""
    diff = len(pods) - max(0, desired)
    if diff < 0:
        return ReplicaPlan(create=min(-diff, burst))
    if diff > 0:
        return ReplicaPlan(delete=tuple(podstate.deletion_order(pods)[:min(diff, burst)]))
    return ReplicaPlan()


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL) -> list[int]:
    """Batch sizes 1, 2, 4, ... summing to `count` (the last batch takes what is left)."""
    out: list[int] = []
    size = max(1, initial)
    left = count
    while left > 0:
        n = min(size, left)
        out.append(n)
        left -= n
        size *= 2
    return out


def compute_status(rs: apps_pb2.ReplicaSet, pods: Sequence[core_pb2.Pod], *, now: float,
                   failure: tuple[str, str] | None = None) -> apps_pb2.ReplicaSetStatus:
    """The status a ReplicaSet should report for its active `pods`.

    `failure` is (reason, message) of a failed create or delete, reported as the
    ReplicaFailure condition; without it that condition is removed.
    """
    template = labels.from_map(rs.spec.template.metadata.labels) if rs.spec.template.metadata.labels \
        else labels.EVERYTHING
    min_ready = rs.spec.min_ready_seconds
    labeled = ready = available = 0
    for p in pods:
        if template.matches(p.metadata.labels):
            labeled += 1
        if podstate.is_ready(p):
            ready += 1
            if min_ready <= 0 or podstate.is_available(p, min_ready, now):
                available += 1
    status = apps_pb2.ReplicaSetStatus(replicas=len(pods), fully_labeled_replicas=labeled, ready_replicas=ready,
                                       available_replicas=available, observed_generation=rs.metadata.generation)
    old = next((c for c in rs.status.conditions if c.type == "ReplicaFailure"), None)
    for c in rs.status.conditions:
        if c.type != "ReplicaFailure":
            status.conditions.add().CopyFrom(c)
    if failure is not None:
        reason, message = failure
        cond = status.conditions.add(type="ReplicaFailure", status="True", reason=reason, message=message)
        if old is not None and old.status == "True":
            cond.last_transition_time.CopyFrom(old.last_transition_time)
        else:
            cond.last_transition_time.CopyFrom(timestamp(now))
    return status


def next_availability_check(rs: apps_pb2.ReplicaSet, pods: Sequence[core_pb2.Pod], now: float) -> float | None:
    """Seconds until a ready pod becomes available, so the status can be refreshed then (None: nothing pending)."""
    if rs.spec.min_ready_seconds <= 0:
        return None
    soonest: float | None = None
    for p in pods:
        at = podstate.available_at(p, rs.spec.min_ready_seconds)
        if at is not None and at > now and (soonest is None or at < soonest):
            soonest = at
    return None if soonest is None else soonest - now + 0.05


def pod_from_template(rs: apps_pb2.ReplicaSet, controller: object) -> core_pb2.Pod:
    """A new pod for `rs`: named `<rs>-<5 random chars>` by the apiserver, controlled by `controller`."""
    t = rs.spec.template
    pod = core_pb2.Pod(metadata={"generate_name": f"{rs.metadata.name}-", "namespace": rs.metadata.namespace})
    pod.metadata.labels.update(t.metadata.labels)
    pod.metadata.annotations.update(t.metadata.annotations)
    pod.metadata.finalizers.extend(t.metadata.finalizers)
    pod.metadata.owner_references.add().CopyFrom(controller)  # type: ignore[arg-type]
    pod.spec.CopyFrom(t.spec)
    return pod
