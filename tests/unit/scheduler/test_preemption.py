"""Preemption picks the node where the fewest, least important pods must go."""

from __future__ import annotations

from scheduler.framework.types import PodInfo
from scheduler.plugins import new_framework
from scheduler.preemption import plan_preemption
from unit.scheduler.objects import node, pod, snapshot


def plan(nodes, others, preemptor):  # type: ignore[no-untyped-def]
    fw = new_framework()
    snap = snapshot(nodes, others)
    info = PodInfo(preemptor)
    result = fw.schedule(info, snap)
    assert result.node == ""
    return plan_preemption(fw, info, snap, result)


def test_fewest_lowest_priority_victims() -> None:
    """Of two nodes, the one needing one low-priority eviction wins over two, and only what is needed goes."""
    nodes = [node("a", cpu="2"), node("b", cpu="2")]
    others = [pod("a1", cpu="1", priority=1, node_name="a"), pod("a2", cpu="1", priority=1, node_name="a"),
              pod("b1", cpu="2", priority=1, node_name="b")]
    c = plan(nodes, others, pod("vip", cpu="2", priority=100))
    assert c is not None and c.node == "b" and [v.name for v in c.victims] == ["b1"]
    c = plan(nodes, others, pod("vip", cpu="1", priority=100))
    assert c is not None and len(c.victims) == 1


def test_lower_priority_victims_preferred() -> None:
    """A node whose victim has priority 1 beats one whose victim has priority 50."""
    nodes = [node("a", cpu="1"), node("b", cpu="1")]
    others = [pod("a1", cpu="1", priority=50, node_name="a"), pod("b1", cpu="1", priority=1, node_name="b")]
    c = plan(nodes, others, pod("vip", cpu="1", priority=100))
    assert c is not None and c.node == "b"


def test_reprieves_pods_that_need_not_go() -> None:
    """Only as many lower-priority pods as needed are evicted; the more important ones are kept."""
    nodes = [node("a", cpu="3")]
    others = [pod("low", cpu="1", priority=1, node_name="a"), pod("mid", cpu="1", priority=5, node_name="a"),
              pod("high", cpu="1", priority=9, node_name="a")]
    c = plan(nodes, others, pod("vip", cpu="1", priority=100))
    assert c is not None and [v.name for v in c.victims] == ["low"]


def test_no_preemption_of_equal_or_higher_priority_or_unresolvable() -> None:
    """Equal-priority pods are not victims; affinity misfits and preemptionPolicy Never get no candidate."""
    assert plan([node("a", cpu="1")], [pod("eq", cpu="1", priority=100, node_name="a")],
                pod("vip", cpu="1", priority=100)) is None
    assert plan([node("a", cpu="1")], [pod("low", cpu="1", priority=1, node_name="a")],
                pod("vip", cpu="1", priority=100, node_selector={"x": "y"})) is None
    never = pod("vip", cpu="1", priority=100)
    never.spec.preemption_policy = "Never"
    assert plan([node("a", cpu="1")], [pod("low", cpu="1", priority=1, node_name="a")], never) is None
