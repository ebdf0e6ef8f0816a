"""The ReplicaSet planner: how many to create, which to delete, slow start, status."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import labels
from controllers import owners, podstate
from controllers.replicaset.plan import (
    compute_status,
    next_availability_check,
    plan_replicas,
    pod_from_template,
    slow_start_batches,
)

from .builders import T0, pod, replicaset


@pytest.mark.parametrize(("desired", "have", "burst", "create", "delete"), [
    pytest.param(3, 0, 500, 3, 0, id="create-all"),
    pytest.param(3, 3, 500, 0, 0, id="steady"),
    pytest.param(1, 4, 500, 0, 3, id="delete-extra"),
    pytest.param(1000, 0, 500, 500, 0, id="burst-caps-creates"),
    pytest.param(0, 700, 500, 0, 500, id="burst-caps-deletes"),
    pytest.param(-1, 2, 500, 0, 2, id="negative-desired-is-zero"),
])
def test_plan_replicas_table(desired: int, have: int, burst: int, create: int, delete: int) -> None:
    """The plan creates or deletes the difference, never both, at most `burst` at a time."""
    pods = [pod(f"p{i}", node="n1", ready=True) for i in range(have)]
    plan = plan_replicas(desired, pods, burst=burst)
    assert (plan.create, len(plan.delete)) == (create, delete)


@pytest.mark.parametrize(("count", "batches"), [
    pytest.param(0, [], id="none"),
    pytest.param(1, [1], id="one"),
    pytest.param(3, [1, 2], id="three"),
    pytest.param(10, [1, 2, 4, 3], id="ten"),
    pytest.param(500, [1, 2, 4, 8, 16, 32, 64, 128, 245], id="burst"),
])
def test_slow_start_batches(count: int, batches: list[int]) -> None:
    """Creations go out 1, 2, 4, ... so a refused template fails after a single request."""
    assert slow_start_batches(count) == batches


@given(st.integers(min_value=0, max_value=5000))
def test_slow_start_sums_and_doubles(count: int) -> None:
    """Batches add up to the count and each is at most double the previous one."""
    batches = slow_start_batches(count)
    assert sum(batches) == count
    for a, b in itertools.pairwise(batches):
        assert b <= 2 * a


def test_deletion_order_prefers_least_valuable() -> None:
    """Unscheduled, then pending, then not ready, then doubled-up, recently ready, restarting, newest pods go first."""
    pods = [
        pod("running-old", node="n1", ready=True, ready_since=T0, created=T0),
        pod("unscheduled", node="", phase="Pending", ready=False),
        pod("pending", node="n2", phase="Pending", ready=False),
        pod("not-ready", node="n3", ready=False),
        pod("ready-recent", node="n4", ready=True, ready_since=T0 + 100, created=T0),
        pod("restarting", node="n5", ready=True, ready_since=T0, restarts=5, created=T0),
        pod("newest", node="n6", ready=True, ready_since=T0, created=T0 + 50),
        pod("doubled-a", node="n7", ready=True, ready_since=T0, created=T0 - 10),
        pod("doubled-b", node="n7", ready=True, ready_since=T0, created=T0 - 20),
    ]
    order = [p.metadata.name for p in podstate.deletion_order(pods)]
    assert order == ["unscheduled", "pending", "not-ready", "doubled-a", "doubled-b", "ready-recent",
                     "restarting", "newest", "running-old"]


pod_st = st.builds(
    lambda i, node, phase, ready, since, created, restarts: pod(
        f"p{i}", node=node, phase=phase, ready=ready, ready_since=T0 + since, created=T0 + created, restarts=restarts),
    st.integers(0, 10**6), st.sampled_from(["", "n1", "n2", "n3"]), st.sampled_from(["Pending", "Running", "Unknown"]),
    st.booleans(), st.integers(0, 100), st.integers(0, 100), st.integers(0, 5),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(pod_st, max_size=40, unique_by=lambda p: p.metadata.name), st.integers(0, 45),
       st.integers(1, 50))
def test_plan_replicas_properties(pods: list, desired: int, burst: int) -> None:
    """Random pod sets: the plan moves toward `desired` by at most `burst`, deleting only the least valuable pods."""
    plan = plan_replicas(desired, pods, burst=burst)
    assert not (plan.create and plan.delete)
    after = len(pods) + plan.create - len(plan.delete)
    assert abs(after - desired) == max(0, abs(len(pods) - desired) - burst)
    assert len({p.metadata.name for p in plan.delete}) == len(plan.delete)
    doomed = {p.metadata.name for p in plan.delete}
    kept = [p for p in pods if p.metadata.name not in doomed]

    def value(p: object) -> tuple[int, int, int]:  # Kubernetes' first three criteria, written out independently
        phase = {"Pending": 0, "Unknown": 1, "Running": 2}[p.status.phase]  # type: ignore[attr-defined]
        return (1 if p.spec.node_name else 0, phase, 1 if podstate.is_ready(p) else 0)  # type: ignore[attr-defined]

    for d in plan.delete:
        for k in kept:
            assert value(d) <= value(k), (d.metadata.name, k.metadata.name)


@pytest.mark.parametrize(("min_ready", "now", "available"), [
    pytest.param(0, T0 + 1, 2, id="no-min-ready"),
    pytest.param(10, T0 + 5, 0, id="not-yet"),
    pytest.param(10, T0 + 11, 2, id="long-enough"),
])
def test_compute_status_counts(min_ready: int, now: float, available: int) -> None:
    """Status counts replicas, fully labeled, ready and available (minReadySeconds) pods and the generation."""
    rs = replicaset("web-1", 3, min_ready=min_ready, generation=7)
    pods = [pod("a", labels={"app": "web"}, ready=True, ready_since=T0),
            pod("b", labels={"app": "web"}, ready=True, ready_since=T0),
            pod("c", labels={}, ready=False)]
    status = compute_status(rs, pods, now=now)
    assert (status.replicas, status.fully_labeled_replicas, status.ready_replicas, status.available_replicas,
            status.observed_generation) == (3, 2, 2, available, 7)


def test_compute_status_failure_condition() -> None:
    """A failed create sets ReplicaFailure; a clean sync removes it; its transition time is kept while it lasts."""
    rs = replicaset("web-1", 1)
    failed = compute_status(rs, [], now=T0, failure=("FailedCreate", "quota"))
    cond = [c for c in failed.conditions if c.type == "ReplicaFailure"]
    assert len(cond) == 1 and cond[0].reason == "FailedCreate" and cond[0].message == "quota"
    rs.status.CopyFrom(failed)
    again = compute_status(rs, [], now=T0 + 30, failure=("FailedCreate", "quota"))
    assert again.conditions[0].last_transition_time == cond[0].last_transition_time
    rs.status.CopyFrom(again)
    assert not compute_status(rs, [], now=T0 + 60).conditions


def test_next_availability_check() -> None:
    """With minReadySeconds the status is refreshed when the next ready pod becomes available."""
    rs = replicaset("web-1", 2, min_ready=10)
    pods = [pod("a", ready=True, ready_since=T0), pod("b", ready=True, ready_since=T0 + 4)]
    assert next_availability_check(rs, pods, T0 + 5) == pytest.approx(5.05)
    assert next_availability_check(rs, pods, T0 + 20) is None
    assert next_availability_check(replicaset("x", 1), pods, T0) is None


def test_pod_from_template() -> None:
    """New pods are named by generateName `<rs>-` and carry the template plus a blocking controller reference."""
    rs = replicaset("web-abc", 1)
    rs.spec.template.metadata.annotations["a"] = "b"
    p = pod_from_template(rs, owners.make_controller_ref(rs))
    assert p.metadata.generate_name == "web-abc-" and not p.metadata.name
    assert dict(p.metadata.labels) == {"app": "web"} and dict(p.metadata.annotations) == {"a": "b"}
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
        ("ReplicaSet", "web-abc", "uid-web-abc", True, True)
    assert p.spec == rs.spec.template.spec


@pytest.mark.parametrize(("pod_labels", "owner", "deleting_owner", "deleting_pod", "expect"), [
    pytest.param({"app": "web"}, "", False, False, "adopt", id="matching-orphan-adopted"),
    pytest.param({"app": "db"}, "", False, False, "ignore", id="other-orphan-ignored"),
    pytest.param({"app": "web"}, "web-1", False, False, "owned", id="ours-kept"),
    pytest.param({"app": "db"}, "web-1", False, False, "release", id="ours-not-matching-released"),
    pytest.param({"app": "web"}, "other", False, False, "ignore", id="someone-elses"),
    pytest.param({"app": "web"}, "", True, False, "ignore", id="deleting-owner-adopts-nothing"),
    pytest.param({"app": "db"}, "web-1", True, False, "ignore", id="deleting-owner-releases-nothing"),
    pytest.param({"app": "web"}, "", False, True, "ignore", id="deleting-pod-not-adopted"),
])
def test_plan_claims(pod_labels: dict[str, str], owner: str, deleting_owner: bool, deleting_pod: bool,
                     expect: str) -> None:
    """Adoption and release follow Kubernetes' ClaimObject rules."""
    p = pod("p", labels=pod_labels, owner=owner, deleting=T0 if deleting_pod else None)
    claims = owners.plan_claims("uid-web-1", labels.parse("app=web"), [p], owner_deleting=deleting_owner)
    got = ("adopt" if claims.adopt else "release" if claims.release else "owned" if claims.owned else "ignore")
    assert got == expect
