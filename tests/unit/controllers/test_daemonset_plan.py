"""plan_daemonset: which nodes should run the daemon pod, pods created and deleted, rolling updates within
maxUnavailable and maxSurge, and the status counts."""

from __future__ import annotations

import pytest

from api.pb import apps_pb2, core_pb2
from api.timestamps import timestamp
from controllers.daemonset.plan import daemon_pod, node_should_run, plan_daemonset, target_node
from controllers.history import REVISION_HASH_LABEL

T0 = 1_700_000_000.0
NEW, OLD = "new", "old"


def ds(*, selector: dict[str, str] | None = None, tolerations: list[dict] | None = None, surge: str = "0",
       unavailable: str = "1", strategy: str = "RollingUpdate") -> apps_pb2.DaemonSet:
    d = apps_pb2.DaemonSet(metadata={"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2})
    d.spec.selector.match_labels["app"] = "agent"
    d.spec.template.metadata.labels["app"] = "agent"
    d.spec.template.spec.node_selector.update(selector or {})
    for t in tolerations or []:
        d.spec.template.spec.tolerations.add(**t)
    d.spec.template.spec.containers.add(name="c", image="busybox")
    d.spec.update_strategy.type = strategy
    if strategy == "RollingUpdate":
        d.spec.update_strategy.rolling_update.max_surge = surge
        d.spec.update_strategy.rolling_update.max_unavailable = unavailable
    return d


def node(name: str, *, labels: dict[str, str] | None = None, taints: list[tuple[str, str]] | None = None,
         unschedulable: bool = False) -> core_pb2.Node:
    n = core_pb2.Node(metadata={"name": name, "labels": labels or {}})
    for key, effect in taints or []:
        n.spec.taints.add(key=key, effect=effect)
    n.spec.unschedulable = unschedulable
    return n


def pod(name: str, on: str, *, rev: str = NEW, ready: bool = True, phase: str = "Running",
        deleting: bool = False, created: float = T0) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": name, "namespace": "default", "uid": f"uid-{name}"})
    p.metadata.labels[REVISION_HASH_LABEL] = rev
    p.metadata.creation_timestamp.CopyFrom(timestamp(created))
    if deleting:
        p.metadata.deletion_timestamp.CopyFrom(timestamp(T0))
    p.spec.node_name = on
    p.status.phase = phase
    if ready:
        p.status.conditions.add(type="Ready", status="True", last_transition_time=timestamp(T0))
    return p


@pytest.mark.parametrize(("spec", "n", "want"), [
    pytest.param({}, node("a"), (True, True), id="plain-node"),
    pytest.param({}, node("a", unschedulable=True), (True, True), id="cordoned-node-still-runs-daemons"),
    pytest.param({"selector": {"disk": "ssd"}}, node("a"), (False, False), id="selector-misses"),
    pytest.param({"selector": {"disk": "ssd"}}, node("a", labels={"disk": "ssd"}), (True, True),
                 id="selector-matches"),
    pytest.param({}, node("a", taints=[("dedicated", "NoSchedule")]), (False, True), id="noschedule-keeps-old"),
    pytest.param({}, node("a", taints=[("dedicated", "NoExecute")]), (False, False), id="noexecute-evicts"),
    pytest.param({"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
                 node("a", taints=[("dedicated", "NoExecute")]), (True, True), id="tolerated"),
    pytest.param({}, node("a", taints=[("node.kubernetes.io/unreachable", "NoExecute"),
                                       ("node.kubernetes.io/not-ready", "NoExecute")]), (True, True),
                 id="node-trouble-tolerated-by-every-daemon"),
])
def test_node_should_run(spec: dict, n: core_pb2.Node, want: tuple[bool, bool]) -> None:
    """(should start, may keep running) as Kubernetes' NodeShouldRunDaemonPod decides."""
    assert node_should_run(ds(**spec), n) == want


def test_daemon_pod_is_pinned_to_its_node() -> None:
    """A daemon pod replaces required node affinity with its node's name and carries the daemon tolerations."""
    d = ds()
    d.spec.template.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
        .node_selector_terms.add().match_expressions.add(key="zone", operator="In", values=["a"])
    p = daemon_pod(d, "n7", NEW, d.metadata.owner_references.add(kind="DaemonSet", name="agent", uid="ds-uid"))
    assert target_node(p) == "n7" and p.metadata.labels[REVISION_HASH_LABEL] == NEW
    terms = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    assert len(terms) == 1 and not terms[0].match_expressions
    assert {(t.key, t.effect) for t in p.spec.tolerations} >= {("node.kubernetes.io/not-ready", "NoExecute"),
                                                               ("node.kubernetes.io/unschedulable", "NoSchedule")}


def test_manage_creates_and_deletes() -> None:
    """A pod for each eligible node without one; a failed pod replaced; extras beyond one per node and pods on
    ineligible nodes deleted."""
    nodes = [node("a"), node("b"), node("c"), node("d", taints=[("x", "NoExecute")])]
    pods = [pod("pa", "a"), pod("pb1", "b", created=T0), pod("pb2", "b", created=T0 + 1),
            pod("pc", "c", phase="Failed"), pod("pd", "d")]
    plan = plan_daemonset(ds(), nodes, pods, NEW, T0 + 10)
    assert sorted(p.metadata.name for p in plan.delete) == ["pb2", "pc", "pd"]
    assert list(plan.create_on) == []  # c's failed pod goes first; its replacement comes next sync
    plan = plan_daemonset(ds(), nodes, [pod("pa", "a")], NEW, T0 + 10)
    assert list(plan.create_on) == ["b", "c"]


def test_rolling_update_within_max_unavailable() -> None:
    """maxUnavailable 1 over 4 nodes of old pods: one is deleted at a time; an unready old pod is replaced at once
    besides; a node whose new pod is not ready yet uses up the budget."""
    nodes = [node(n) for n in "abcd"]
    old = [pod(f"p{n}", n, rev=OLD) for n in "abcd"]
    first = plan_daemonset(ds(), nodes, old, NEW, T0 + 10)
    assert len(first.delete) == 1 and not first.create_on
    broken = [pod("pa", "a", rev=OLD, ready=False), *old[1:]]
    assert len(plan_daemonset(ds(), nodes, broken, NEW, T0 + 10).delete) == 2
    busy = [pod("pa", "a", rev=NEW, ready=False), *old[1:]]
    assert plan_daemonset(ds(), nodes, busy, NEW, T0 + 10).delete == ()
    going = [pod("pa", "a", rev=OLD, deleting=True), *old[1:]]
    assert plan_daemonset(ds(), nodes, going, NEW, T0 + 10).delete == ()


def test_rolling_update_with_surge() -> None:
    """maxSurge 1, maxUnavailable 0: a new pod starts beside an old one; the old goes once the new is available."""
    nodes = [node("a"), node("b")]
    d = ds(surge="1", unavailable="0")
    start = plan_daemonset(d, nodes, [pod("pa", "a", rev=OLD), pod("pb", "b", rev=OLD)], NEW, T0 + 10)
    assert len(start.create_on) == 1 and not start.delete
    both = [pod("pa", "a", rev=OLD), pod("na", "a", rev=NEW), pod("pb", "b", rev=OLD)]
    swap = plan_daemonset(d, nodes, both, NEW, T0 + 10)
    assert [p.metadata.name for p in swap.delete] == ["pa"]


def test_on_delete_never_replaces() -> None:
    """OnDelete: old pods stay until someone deletes them."""
    nodes = [node("a")]
    plan = plan_daemonset(ds(strategy="OnDelete"), nodes, [pod("pa", "a", rev=OLD)], NEW, T0 + 10)
    assert not plan.delete and not plan.create_on


def test_status_counts() -> None:
    """desired, current, ready, available, updated and misscheduled, from the oldest live pod of each node."""
    nodes = [node("a"), node("b"), node("c", labels={"x": "y"})]
    d = ds(selector={})
    d.spec.template.spec.node_selector["role"] = "worker"
    for n in nodes[:2]:
        n.metadata.labels["role"] = "worker"
    pods = [pod("pa", "a"), pod("pb", "b", rev=OLD, ready=False), pod("pc", "c")]
    st = plan_daemonset(d, nodes, pods, NEW, T0 + 10).status
    assert st is not None
    assert (st.desired_number_scheduled, st.current_number_scheduled, st.number_ready, st.number_available,
            st.updated_number_scheduled, st.number_misscheduled, st.number_unavailable, st.observed_generation) == \
        (2, 2, 1, 1, 1, 1, 1, 2)
