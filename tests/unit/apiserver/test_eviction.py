"""plan_eviction: which pods a disruption budget lets go, and the budget written when one does."""

from __future__ import annotations

import pytest

from api.errors import ForbiddenError, InternalError, TooManyRequestsError
from api.pb import core_pb2, policy_pb2
from apiserver.eviction import plan_eviction

T0 = 1_700_000_000.0


def pod(*, phase: str = "Running", ready: bool = True, deleting: bool = False, app: str = "web") -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": "web-1", "namespace": "default", "labels": {"app": app}})
    if deleting:
        p.metadata.deletion_timestamp.seconds = int(T0)
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    return p


def pdb(name: str = "b", *, allowed: int = 1, healthy: int = 3, desired: int = 2, observed: int = 1,
        app: str = "web", policy: str = "") -> policy_pb2.PodDisruptionBudget:
    b = policy_pb2.PodDisruptionBudget(metadata={"name": name, "namespace": "default", "generation": 1})
    b.spec.selector.match_labels["app"] = app
    if policy:
        b.spec.unhealthy_pod_eviction_policy = policy
    b.status.observed_generation = observed
    b.status.disruptions_allowed = allowed
    b.status.current_healthy = healthy
    b.status.desired_healthy = desired
    return b


@pytest.mark.parametrize(("p", "budgets"), [
    pytest.param(pod(), [], id="no-budget"),
    pytest.param(pod(app="other"), [pdb(allowed=0)], id="budget-selects-others"),
    pytest.param(pod(phase="Pending"), [pdb(allowed=0)], id="pending-is-not-counted"),
    pytest.param(pod(phase="Succeeded"), [pdb(allowed=0)], id="finished"),
    pytest.param(pod(deleting=True), [pdb(allowed=0)], id="already-going"),
    pytest.param(pod(ready=False), [pdb(allowed=0, healthy=2, desired=2)], id="unready-while-budget-met"),
    pytest.param(pod(ready=False), [pdb(allowed=0, healthy=1, desired=2, policy="AlwaysAllow")],
                 id="unready-always-allow"),
])
def test_allowed_without_spending_a_disruption(p: core_pb2.Pod, budgets: list) -> None:
    """These evictions touch no budget."""
    assert plan_eviction(p, budgets, T0).budget is None


def test_allowed_spends_one_disruption() -> None:
    """An allowed eviction takes one disruption and records the pod in disruptedPods."""
    plan = plan_eviction(pod(), [pdb(allowed=1)], T0)
    assert plan.budget is not None
    assert plan.budget.status.disruptions_allowed == 0 and list(plan.budget.status.disrupted_pods) == ["web-1"]
    cond = next(c for c in plan.budget.status.conditions if c.type == "DisruptionAllowed")
    assert (cond.status, cond.reason) == ("False", "InsufficientPods")


@pytest.mark.parametrize(("budgets", "error", "message"), [
    pytest.param([pdb(allowed=0)], TooManyRequestsError,
                 "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget b needs 2 "
                 "healthy pods and has 3 currently", id="no-disruption-left"),
    pytest.param([pdb(observed=0)], TooManyRequestsError, "still being processed", id="budget-not-observed"),
    pytest.param([pdb(allowed=-1)], ForbiddenError, "negative",
                 id="negative"),
    pytest.param([pdb("a"), pdb("b")], InternalError, "more than one PodDisruptionBudget", id="two-budgets"),
    pytest.param([pdb(allowed=0, healthy=1, desired=2)], TooManyRequestsError, "disruption budget",
                 id="unready-below-budget"),
])
def test_refused(budgets: list, error: type, message: str) -> None:
    """Refusals carry Kubernetes' codes and messages (TooManyRequests while a budget forbids the eviction)."""
    p = pod(ready=budgets[0].status.current_healthy >= budgets[0].status.desired_healthy)
    with pytest.raises(error, match=message):
        plan_eviction(p, budgets, T0)
