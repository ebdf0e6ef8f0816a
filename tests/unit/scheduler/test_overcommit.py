"""The independent overcommit checker judges final Node and Pod objects."""

from __future__ import annotations

from scheduler.overcommit import compute_overcommit
from unit.scheduler.objects import node, pod


def test_reports_each_overcommitted_resource() -> None:
    """cpu, memory and pod count are each checked against allocatable; finished pods do not count."""
    nodes = [node("n", cpu="1", memory="1Gi", pods=2)]
    pods = [pod("a", cpu="600m", memory="600Mi", node_name="n"), pod("b", cpu="600m", memory="600Mi", node_name="n"),
            pod("c", node_name="n")]
    assert [(o.node, o.resource) for o in compute_overcommit(nodes, pods)] == \
        [("n", "cpu"), ("n", "memory"), ("n", "pods")]
    pods[1].status.phase = "Succeeded"
    pods[2].status.phase = "Failed"
    assert compute_overcommit(nodes, pods) == []


def test_init_containers_counted_by_their_peak() -> None:
    """An init container larger than the containers' sum sets the pod's request."""
    nodes = [node("n", cpu="1")]
    assert compute_overcommit(nodes, [pod("a", cpu="100m", init=[("1500m", "")], node_name="n")]) != []
    assert compute_overcommit(nodes, [pod("a", cpu="100m", init=[("900m", "")], node_name="n")]) == []


def test_unbound_pods_and_missing_nodes_are_ignored() -> None:
    """Pending pods use nothing; pods on a node that no longer exists overcommit nothing."""
    assert compute_overcommit([node("n", cpu="1")], [pod("a", cpu="5"), pod("b", cpu="5", node_name="gone")]) == []
