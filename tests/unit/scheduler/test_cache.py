"""The cache: assumed pods count at once, failed binds are forgotten, finished and deleted pods free resources."""

from __future__ import annotations

from scheduler import cache as ev
from scheduler.cache import Cache, compute_node_events
from scheduler.framework.types import NodeFacts, PodInfo
from unit.scheduler.objects import node, pod


def test_assumed_pod_counts_until_forgotten() -> None:
    """An assumed pod's requests count on its node; forgetting it frees them."""
    c = Cache()
    c.set_node(node("n", cpu="2"))
    info = PodInfo(pod("p", cpu="1500m"))
    c.assume(info, "n")
    assert c.snapshot.infos["n"].req_cpu == 1500 and c.is_assumed("default/p")
    c.forget("default/p")
    assert c.snapshot.infos["n"].req_cpu == 0 and not c.has("default/p")


def test_informer_confirms_assumed_pod() -> None:
    """The bound pod seen from the informer confirms the assumption without double counting."""
    c = Cache()
    c.set_node(node("n", cpu="2"))
    c.assume(PodInfo(pod("p", cpu="1")), "n")
    c.set_pod(pod("p", cpu="1", node_name="n"))
    assert not c.is_assumed("default/p")
    assert c.snapshot.infos["n"].req_cpu == 1000 and len(c.snapshot.infos["n"].pods) == 1
    c.forget("default/p")  # a confirmed pod is not forgotten
    assert c.snapshot.infos["n"].req_cpu == 1000


def test_pod_bound_elsewhere_moves() -> None:
    """If the informer shows the pod on another node than assumed, it is counted there instead."""
    c = Cache()
    c.set_node(node("a"))
    c.set_node(node("b"))
    c.assume(PodInfo(pod("p", cpu="1")), "a")
    c.set_pod(pod("p", cpu="1", node_name="b"))
    assert c.snapshot.infos["a"].req_cpu == 0 and c.snapshot.infos["b"].req_cpu == 1000


def test_finished_and_deleted_pods_free_resources() -> None:
    """A Succeeded pod and a deleted pod no longer count; a terminating one still does."""
    c = Cache()
    c.set_node(node("n"))
    c.set_pod(pod("a", cpu="1", node_name="n"))
    c.set_pod(pod("b", cpu="1", node_name="n"))
    terminating = pod("c", cpu="1", node_name="n")
    terminating.metadata.deletion_timestamp.seconds = 1
    c.set_pod(terminating)
    done = pod("a", cpu="1", node_name="n")
    done.status.phase = "Succeeded"
    assert c.set_pod(done) is True
    assert c.remove_pod("default/b") is True
    assert c.snapshot.infos["n"].req_cpu == 1000


def test_node_removed_keeps_pods_on_a_placeholder() -> None:
    """Deleting a node hides it from scheduling; its pods stay counted until they go; a re-added node sees them."""
    c = Cache()
    c.set_node(node("n"))
    c.set_pod(pod("p", cpu="1", node_name="n"))
    c.remove_node("n")
    assert c.snapshot.nodes == [] and "n" in c.snapshot.infos
    c.set_node(node("n"))
    assert [n.name for n in c.snapshot.nodes] == ["n"] and c.snapshot.infos["n"].req_cpu == 1000
    c.remove_node("n")
    c.remove_pod("default/p")
    assert "n" not in c.snapshot.infos


def test_pods_on_unknown_node_are_not_offered() -> None:
    """A pod bound to a node not yet seen does not make that node schedulable."""
    c = Cache()
    c.set_pod(pod("p", node_name="ghost"))
    assert c.snapshot.nodes == []


def test_heartbeat_raises_no_event() -> None:
    """A node update that changes nothing scheduling reads raises no event."""
    c = Cache()
    assert c.set_node(node("n")) == {ev.NODE_ADDED}
    n = node("n")
    n.status.conditions[0].reason = "KubeletReady"
    assert c.set_node(n) == set()


def test_node_events() -> None:
    """Each relevant change of a node maps to its event."""
    base = NodeFacts.of(node("n", cpu="1", unschedulable=True, ready=False))
    changed = NodeFacts.of(node("n", cpu="2", labels={"a": "b"}, taints=[("k", "v", "NoSchedule")]))
    assert compute_node_events(base, changed) == {ev.NODE_ALLOCATABLE_GREW, ev.NODE_LABELS_CHANGED,
                                                  ev.NODE_TAINTS_CHANGED, ev.NODE_SCHEDULABLE, ev.NODE_READY}
    assert compute_node_events(changed, base) == {ev.NODE_LABELS_CHANGED, ev.NODE_TAINTS_CHANGED}


def test_allocatable_defaults_to_capacity() -> None:
    """A node that reports only capacity is scheduled against its capacity, as Kubernetes defaults it."""
    n = node("n", cpu="3")
    n.status.ClearField("allocatable")
    assert NodeFacts.of(n).alloc[0] == 3000
