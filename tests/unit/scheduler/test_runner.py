"""The framework runner: sampling, scoring strategies, spreading, nominated pods, and the pending message."""

from __future__ import annotations

import random

import pytest

from scheduler.framework.config import SchedulerConfig
from scheduler.framework.interface import Status, unresolvable, unschedulable
from scheduler.framework.runner import compute_num_feasible_to_find, render_fit_error
from scheduler.framework.types import PodInfo
from scheduler.plugins import new_framework
from unit.scheduler.objects import node, pod, snapshot


@pytest.mark.parametrize(("nodes", "percentage", "want"), [
    pytest.param(50, 0, 50, id="small-cluster-all"),
    pytest.param(99, 0, 99, id="below-minimum-all"),
    pytest.param(500, 0, 100, id="adaptive-capped"),
    pytest.param(5000, 0, 100, id="adaptive-large"),
    pytest.param(5000, 10, 500, id="explicit-percentage"),
    pytest.param(5000, 1, 100, id="explicit-floor-100"),
    pytest.param(300, 100, 300, id="everything"),
])
def test_number_of_feasible_nodes_to_find(nodes: int, percentage: int, want: int) -> None:
    """kube-scheduler's sampling rule, capped when adaptive."""
    assert compute_num_feasible_to_find(nodes, percentage) == want


def test_message_counts_and_sorts_reasons() -> None:
    """Reasons are counted over nodes (a node may give several) and listed in order."""
    statuses: dict[str, Status] = {
        "a": unschedulable("Insufficient cpu"),
        "b": unschedulable("Insufficient cpu", "Insufficient memory"),
        "c": unresolvable("node(s) didn't match Pod's node affinity/selector"),
        "d": unschedulable("Insufficient cpu"),
    }
    assert render_fit_error(4, statuses) == ("0/4 nodes are available: 3 Insufficient cpu, 1 Insufficient memory, "
                                             "1 node(s) didn't match Pod's node affinity/selector.")
    assert render_fit_error(0, {}) == "0/0 nodes are available."


def test_sampling_rotates_through_nodes() -> None:
    """With sampling, consecutive decisions start where the last stopped, so every node is visited."""
    nodes = [node(f"n{i:03d}") for i in range(300)]
    fw = new_framework(SchedulerConfig(percentage_of_nodes_to_score=0))
    snap = snapshot(nodes)
    r1 = fw.schedule(PodInfo(pod("a")), snap)
    r2 = fw.schedule(PodInfo(pod("b")), snap)
    assert r1.evaluated == 100 and r2.evaluated == 100
    assert fw.next_start == 200


def test_least_allocated_spreads_and_most_allocated_packs() -> None:
    """LeastAllocated picks the emptier node; MostAllocated the fuller one that still fits."""
    nodes = [node("empty", cpu="4", memory="8Gi"), node("busy", cpu="4", memory="8Gi")]
    others = [pod("x", cpu="2", memory="4Gi", node_name="busy")]
    p = PodInfo(pod("p", cpu="1", memory="1Gi"))
    least = new_framework(SchedulerConfig(scoring_strategy="LeastAllocated"))
    most = new_framework(SchedulerConfig(scoring_strategy="MostAllocated"))
    assert least.schedule(p, snapshot(nodes, others)).node == "empty"
    assert most.schedule(p, snapshot(nodes, others)).node == "busy"


def test_pods_of_one_owner_spread_across_nodes() -> None:
    """With only the spreading score, a ReplicaSet's pods go to the node holding fewest of them."""
    nodes = [node("a"), node("b"), node("c")]
    others = [pod("r1", owner="rs", node_name="a"), pod("r2", owner="rs", node_name="b"),
              pod("z1", owner="other", node_name="c"), pod("z2", owner="other", node_name="c")]
    fw = new_framework(SchedulerConfig(score_weights={"SelectorSpread": 1, "NodeResourcesFit": 0,
                                                      "NodeResourcesBalancedAllocation": 0}))
    assert fw.schedule(PodInfo(pod("r3", owner="rs")), snapshot(nodes, others)).node == "c"


def test_preferred_node_affinity_wins_when_weighted() -> None:
    """A preferred term steers the pod to the matching node."""
    p = pod("p")
    pref = p.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution.add(weight=50)
    pref.preference.match_expressions.add(key="disk", operator="In", values=["ssd"])
    nodes = [node(f"hdd{i}", labels={"disk": "hdd"}) for i in range(5)] + [node("fast", labels={"disk": "ssd"})]
    assert new_framework().schedule(PodInfo(p), snapshot(nodes)).node == "fast"


def test_soft_topology_spread_prefers_the_emptier_zone() -> None:
    """ScheduleAnyway constraints score: the zone with fewer matching pods is preferred."""
    p = pod("w", labels={"app": "web"})
    c = p.spec.topology_spread_constraints.add(max_skew=1, topology_key="zone", when_unsatisfiable="ScheduleAnyway")
    c.label_selector.match_labels["app"] = "web"
    nodes = [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}), node("b1", labels={"zone": "b"})]
    others = [pod("w0", labels={"app": "web"}, node_name="b1")]
    fw = new_framework(SchedulerConfig(score_weights={"PodTopologySpread": 1, "NodeResourcesFit": 0,
                                                      "NodeResourcesBalancedAllocation": 0, "SelectorSpread": 0}))
    assert fw.schedule(PodInfo(p), snapshot(nodes, others)).node in ("a1", "a2")


def test_prefer_no_schedule_taint_lowers_the_score() -> None:
    """A PreferNoSchedule taint is avoided when an untainted node fits."""
    nodes = [node("soft", taints=[("k", "v", "PreferNoSchedule")]), node("clean")]
    for _ in range(5):
        assert new_framework().schedule(PodInfo(pod("p")), snapshot(nodes)).node == "clean"


def test_nominated_pods_hold_resources_for_lower_priority_pods() -> None:
    """A node's nominated higher-priority pod keeps its room against lower, not higher, priority pods."""
    snap = snapshot([node("n", cpu="2")])
    snap.nominated["n"] = {"default/vip": PodInfo(pod("vip", cpu="1500m", priority=100))}
    fw = new_framework()
    low = fw.schedule(PodInfo(pod("low", cpu="1", priority=1)), snap)
    assert low.node == "" and low.message() == "0/1 nodes are available: 1 Insufficient cpu."
    assert fw.schedule(PodInfo(pod("high", cpu="1", priority=1000)), snap).node == "n"


def test_nominated_pod_returns_to_its_node() -> None:
    """A pod carrying a nominated node goes there when it fits, whatever the scores say."""
    p = pod("p")
    p.status.nominated_node_name = "n7"
    nodes = [node(f"n{i}") for i in range(10)]
    assert new_framework().schedule(PodInfo(p), snapshot(nodes)).node == "n7"


def test_ties_are_broken_at_random() -> None:
    """Equally good nodes are chosen uniformly, not always the first."""
    fw = new_framework()
    fw.rng = random.Random(3)
    snap = snapshot([node(f"n{i}") for i in range(4)])
    seen = {fw.schedule(PodInfo(pod("p")), snap).node for _ in range(40)}
    assert seen == {"n0", "n1", "n2", "n3"}


def test_explain_gives_every_filter_and_score_for_every_node() -> None:
    """explain reports each filter's verdict per node and the weighted scores of feasible nodes."""
    nodes = [node("small", cpu="1"), node("big", cpu="8"), node("cordoned", unschedulable=True)]
    ex = new_framework().explain(PodInfo(pod("p", cpu="2")), snapshot(nodes))
    by = {n.node: n for n in ex.nodes}
    assert dict((name, st.code_name) for name, st in by["small"].filters)["NodeResourcesFit"] == "Unschedulable"
    assert dict((name, st.code_name) for name, st in by["cordoned"].filters)["NodeUnschedulable"] == \
        "UnschedulableAndUnresolvable"
    assert by["big"].feasible and by["big"].total is not None
    assert {s[0] for s in by["big"].scores} == {"NodeResourcesFit", "NodeResourcesBalancedAllocation"}
    assert ex.chosen == ["big"]
