"""Pure computation of a PodDisruptionBudget's status (Kubernetes' disruption controller).

Healthy pods are Ready ones not being deleted and not recently evicted (an
eviction the controller has not yet seen become a deletion stays in
disruptedPods for up to two minutes). desiredHealthy comes from minAvailable
(a count, or a percentage of the expected pods) or maxUnavailable; the
expected pods are the matching pods for an integer minAvailable, otherwise
the replicas their controllers (Deployment, ReplicaSet, StatefulSet) ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from api import conditions, intstr, pods
from api.pb import core_pb2, policy_pb2
from api.timestamps import seconds, timestamp
from controllers import podstate

# An eviction not followed by the pod's deletion within this long is forgotten (Kubernetes' DeletionTimeout).
DELETION_TIMEOUT = 120.0
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"

# A pod's controller that has a scale: (its uid, the replicas it wants); None when it has none.
ScaleOf = Callable[[core_pb2.Pod], tuple[str, int] | None]


class NoScaleError(Exception):
    pass


@dataclass(frozen=True)
class BudgetPlan:
    status: policy_pb2.PodDisruptionBudgetStatus
    requeue_after: float | None = None


def expected_and_desired(pdb: policy_pb2.PodDisruptionBudget, matching: Sequence[core_pb2.Pod],
                         scale_of: ScaleOf) -> tuple[int, int]:
    """(expected pods, desired healthy pods); NoScaleError when a percentage or maxUnavailable needs a scale no
    controller of the pods has."""
    spec = pdb.spec

    def expected_from_controllers() -> int:
        scales: dict[str, int] = {}
        for p in matching:
            found = scale_of(p)
            if found is None:
                raise NoScaleError(f"found no controllers for pod {p.metadata.name!r}")
            scales[found[0]] = found[1]
        return sum(scales.values())

    if spec.max_unavailable:
        expected = expected_from_controllers()
        return expected, max(0, expected - intstr.scaled(spec.max_unavailable, expected, round_up=True))
    if spec.min_available:
        if spec.min_available.endswith("%"):
            expected = expected_from_controllers()
            return expected, intstr.scaled(spec.min_available, expected, round_up=True)
        return len(matching), int(spec.min_available)
    return len(matching), 0


def plan_budget(pdb: policy_pb2.PodDisruptionBudget, matching: Sequence[core_pb2.Pod], scale_of: ScaleOf,
                now: float) -> BudgetPlan:
    """The status `pdb` should have, given the pods its selector matches."""
    st = policy_pb2.PodDisruptionBudgetStatus()
    st.CopyFrom(pdb.status)
    st.observed_generation = pdb.metadata.generation
    by_name = {p.metadata.name: p for p in matching}
    disrupted: dict[str, float] = {}
    requeue: float | None = None
    for name, ts in pdb.status.disrupted_pods.items():
        pod = by_name.get(name)
        if pod is None or pods.is_terminating(pod):
            continue  # the eviction went through: the pod is being deleted or gone
        expires = seconds(ts) + DELETION_TIMEOUT
        if expires <= now:
            continue
        disrupted[name] = seconds(ts)
        requeue = expires - now if requeue is None else min(requeue, expires - now)
    st.disrupted_pods.clear()
    for name, at in disrupted.items():
        st.disrupted_pods[name].CopyFrom(timestamp(at))
    try:
        expected, desired = expected_and_desired(pdb, matching, scale_of)
    except NoScaleError as e:
        st.disruptions_allowed = 0
        conditions.set_(st.conditions, DISRUPTION_ALLOWED, "False", SYNC_FAILED, str(e), now=timestamp(now))
        return BudgetPlan(status=st, requeue_after=requeue)
    healthy = sum(1 for p in matching if not pods.is_terminating(p) and podstate.is_ready(p)
                  and p.metadata.name not in disrupted)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    st.expected_pods = expected
    st.desired_healthy = desired
    st.current_healthy = healthy
    st.disruptions_allowed = allowed
    if allowed > 0:
        conditions.set_(st.conditions, DISRUPTION_ALLOWED, "True", SUFFICIENT_PODS, "", now=timestamp(now))
    else:
        conditions.set_(st.conditions, DISRUPTION_ALLOWED, "False", INSUFFICIENT_PODS, "", now=timestamp(now))
    for c in st.conditions:
        if c.type == DISRUPTION_ALLOWED:
            c.observed_generation = pdb.metadata.generation
    return BudgetPlan(status=st, requeue_after=None if requeue is None else requeue + 0.05)
