"""plan_budget: a PodDisruptionBudget's expected, desired and healthy pods, allowed disruptions, disrupted pods."""

from __future__ import annotations

import pytest

from api.pb import core_pb2, policy_pb2
from api.timestamps import timestamp
from controllers.disruption.plan import plan_budget

T0 = 1_700_000_000.0


def pdb(*, min_available: str = "", max_unavailable: str = "", disrupted: dict[str, float] | None = None
        ) -> policy_pb2.PodDisruptionBudget:
    p = policy_pb2.PodDisruptionBudget(metadata={"name": "b", "namespace": "default", "generation": 3})
    p.spec.min_available = min_available
    p.spec.max_unavailable = max_unavailable
    p.spec.selector.match_labels["app"] = "web"
    for name, at in (disrupted or {}).items():
        p.status.disrupted_pods[name].CopyFrom(timestamp(at))
    return p


def pod(name: str, *, ready: bool = True, deleting: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": name, "namespace": "default", "uid": f"uid-{name}"})
    if deleting:
        p.metadata.deletion_timestamp.CopyFrom(timestamp(T0))
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    return p


def by_deployment(replicas: int):  # type: ignore[no-untyped-def]
    return lambda _pod: ("deploy-uid", replicas)


@pytest.mark.parametrize(("budget", "pods", "replicas", "want"), [
    pytest.param(pdb(min_available="2"), [pod("a"), pod("b"), pod("c")], 3, (3, 2, 3, 1), id="min-2-of-3"),
    pytest.param(pdb(min_available="2"), [pod("a"), pod("b", ready=False), pod("c")], 3, (3, 2, 2, 0),
                 id="one-unready"),
    pytest.param(pdb(min_available="2"), [pod("a"), pod("b", deleting=True), pod("c")], 3, (3, 2, 2, 0),
                 id="one-terminating"),
    pytest.param(pdb(min_available="50%"), [pod("a"), pod("b"), pod("c")], 4, (4, 2, 3, 1), id="percent-of-scale"),
    pytest.param(pdb(max_unavailable="1"), [pod("a"), pod("b"), pod("c")], 3, (3, 2, 3, 1), id="max-unavailable"),
    pytest.param(pdb(max_unavailable="34%"), [pod("a"), pod("b"), pod("c")], 3, (3, 1, 3, 2),
                 id="max-unavailable-percent-rounds-up"),
    pytest.param(pdb(min_available="3"), [pod("a"), pod("b")], 3, (2, 3, 2, 0), id="never-negative"),
])
def test_counts(budget: policy_pb2.PodDisruptionBudget, pods: list[core_pb2.Pod], replicas: int,
                want: tuple[int, int, int, int]) -> None:
    """(expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed) as Kubernetes computes them."""
    st = plan_budget(budget, pods, by_deployment(replicas), T0).status
    assert (st.expected_pods, st.desired_healthy, st.current_healthy, st.disruptions_allowed) == want
    assert st.observed_generation == 3
    cond = next(c for c in st.conditions if c.type == "DisruptionAllowed")
    assert (cond.status, cond.reason) == (("True", "SufficientPods") if want[3] else ("False", "InsufficientPods"))


def test_disrupted_pods() -> None:
    """A pod just evicted but not yet seen deleting does not count as healthy; once deleting, or after two
    minutes, it leaves disruptedPods; the plan asks to look again when the entry expires."""
    pods = [pod("a"), pod("b"), pod("c")]
    fresh = plan_budget(pdb(min_available="2", disrupted={"a": T0}), pods, by_deployment(3), T0 + 30)
    assert fresh.status.current_healthy == 2 and list(fresh.status.disrupted_pods) == ["a"]
    assert fresh.requeue_after == pytest.approx(90.05)
    expired = plan_budget(pdb(min_available="2", disrupted={"a": T0}), pods, by_deployment(3), T0 + 121)
    assert expired.status.current_healthy == 3 and not expired.status.disrupted_pods
    deleting = [pod("a", deleting=True), pod("b"), pod("c")]
    seen = plan_budget(pdb(min_available="2", disrupted={"a": T0}), deleting, by_deployment(3), T0 + 30)
    assert not seen.status.disrupted_pods and seen.status.current_healthy == 2


def test_no_controller_scale() -> None:
    """A percentage needs the pods' controllers' scale: without one, no disruption is allowed and the condition
    says why."""
    st = plan_budget(pdb(max_unavailable="1"), [pod("a")], lambda _p: None, T0).status
    cond = next(c for c in st.conditions if c.type == "DisruptionAllowed")
    assert st.disruptions_allowed == 0 and cond.reason == "SyncFailed" and "found no controllers" in cond.message
