"""The PodScheduled=False status the scheduler writes for a pod that fits nowhere."""

from __future__ import annotations

from scheduler.daemon import plan_unschedulable_status
from unit.scheduler.objects import pod


def test_sets_condition_and_keeps_the_rest() -> None:
    """PodScheduled becomes False/Unschedulable with the message; other conditions and fields stay."""
    p = pod("p")
    p.status.phase = "Pending"
    p.status.conditions.add(type="example.com/Gate", status="True", reason="Opened")
    new = plan_unschedulable_status(p, "0/1 nodes are available: 1 Insufficient cpu.", "")
    assert new is not None
    cond = {c.type: c for c in new.status.conditions}
    assert (cond["PodScheduled"].status, cond["PodScheduled"].reason, cond["PodScheduled"].message) == \
        ("False", "Unschedulable", "0/1 nodes are available: 1 Insufficient cpu.")
    assert cond["PodScheduled"].HasField("last_transition_time")
    assert cond["example.com/Gate"].reason == "Opened" and new.status.phase == "Pending"


def test_unchanged_status_is_not_rewritten() -> None:
    """The same message twice needs no write; a new message or a nomination does, keeping the transition time."""
    p = pod("p")
    first = plan_unschedulable_status(p, "m1", "")
    assert first is not None
    assert plan_unschedulable_status(first, "m1", "") is None
    second = plan_unschedulable_status(first, "m2", "n1")
    assert second is not None and second.status.nominated_node_name == "n1"
    assert second.status.conditions[0].last_transition_time == first.status.conditions[0].last_transition_time
