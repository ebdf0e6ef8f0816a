"""Each filter plugin's verdict and reason for one pod on one node, table-driven."""

from __future__ import annotations

import pytest

from api.pb import core_pb2
from scheduler.framework.interface import Code, CycleState
from scheduler.framework.types import PodInfo, compute_pod_requests
from scheduler.plugins import new_framework
from unit.scheduler.objects import node, pod, snapshot


def verdict(p: core_pb2.Pod, n: core_pb2.Node, *, others: tuple[core_pb2.Pod, ...] = (),
            extra_nodes: tuple[core_pb2.Node, ...] = ()) -> tuple[str, tuple[str, ...]]:
    """(code name, reasons) of the first filter rejecting the pod on node n, or ('Success', ())."""
    fw = new_framework()
    snap = snapshot([n, *extra_nodes], others)
    info = PodInfo(p)
    state = CycleState()
    active, rejected = fw.run_pre_filters(state, info, snap)
    if rejected is not None:
        return rejected.code_name, rejected.reasons
    st = fw.run_filters(state, info, snap.infos[n.metadata.name], active, snap)
    return st.code_name, st.reasons


def affinity_pod(*terms: list[tuple[str, str, list[str]]], fields: list[tuple[str, str, list[str]]] | None = None
                 ) -> core_pb2.Pod:
    p = pod("p")
    req = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in terms:
        t = req.node_selector_terms.add()
        for key, op, values in term:
            t.match_expressions.add(key=key, operator=op, values=values)
    if fields is not None:
        t = req.node_selector_terms.add()
        for key, op, values in fields:
            t.match_fields.add(key=key, operator=op, values=values)
    return p


OK = ("Success", ())
AFFINITY = ("UnschedulableAndUnresolvable", ("node(s) didn't match Pod's node affinity/selector",))


@pytest.mark.parametrize(("p", "n", "want"), [
    pytest.param(pod("p"), node("n", unschedulable=True),
                 ("UnschedulableAndUnresolvable", ("node(s) were unschedulable",)), id="cordoned"),
    pytest.param(pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                        "effect": "NoSchedule"}]),
                 node("n", unschedulable=True), OK, id="cordoned-but-tolerated"),
    pytest.param(pod("p"), node("n", ready=False),
                 ("UnschedulableAndUnresolvable", ("node(s) were not ready",)), id="not-ready"),
    pytest.param(pod("p"), node("n", taints=[("k", "v", "NoSchedule")]),
                 ("UnschedulableAndUnresolvable", ("node(s) had untolerated taint {k: v}",)), id="taint-noschedule"),
    pytest.param(pod("p"), node("n", taints=[("k", "v", "NoExecute")]),
                 ("UnschedulableAndUnresolvable", ("node(s) had untolerated taint {k: v}",)), id="taint-noexecute"),
    pytest.param(pod("p"), node("n", taints=[("k", "v", "PreferNoSchedule")]), OK, id="taint-prefer-is-a-score"),
    pytest.param(pod("p", tolerations=[{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]),
                 node("n", taints=[("k", "v", "NoSchedule")]), OK, id="toleration-equal"),
    pytest.param(pod("p", tolerations=[{"key": "k", "operator": "Equal", "value": "w", "effect": "NoSchedule"}]),
                 node("n", taints=[("k", "v", "NoSchedule")]),
                 ("UnschedulableAndUnresolvable", ("node(s) had untolerated taint {k: v}",)),
                 id="toleration-equal-other-value"),
    pytest.param(pod("p", tolerations=[{"key": "k", "operator": "Exists"}]),
                 node("n", taints=[("k", "v", "NoSchedule"), ("k", "x", "NoExecute")]), OK,
                 id="toleration-exists-any-effect"),
    pytest.param(pod("p", tolerations=[{"operator": "Exists"}]),
                 node("n", taints=[("a", "1", "NoSchedule"), ("b", "2", "NoExecute")]), OK,
                 id="toleration-exists-everything"),
    pytest.param(pod("p", tolerations=[{"key": "k", "operator": "Exists", "effect": "NoExecute"}]),
                 node("n", taints=[("k", "v", "NoSchedule")]),
                 ("UnschedulableAndUnresolvable", ("node(s) had untolerated taint {k: v}",)),
                 id="toleration-wrong-effect"),
    pytest.param(pod("p", node_selector={"disk": "ssd"}), node("n", labels={"disk": "ssd"}), OK, id="selector-match"),
    pytest.param(pod("p", node_selector={"disk": "ssd"}), node("n", labels={"disk": "hdd"}), AFFINITY,
                 id="selector-mismatch"),
    pytest.param(pod("p", node_selector={"disk": "ssd"}), node("n"), AFFINITY, id="selector-missing-label"),
    pytest.param(affinity_pod([("zone", "In", ["a", "b"])]), node("n", labels={"zone": "b"}), OK, id="in"),
    pytest.param(affinity_pod([("zone", "In", ["a", "b"])]), node("n", labels={"zone": "c"}), AFFINITY,
                 id="in-mismatch"),
    pytest.param(affinity_pod([("zone", "NotIn", ["a"])]), node("n", labels={"zone": "b"}), OK, id="notin"),
    pytest.param(affinity_pod([("zone", "NotIn", ["a"])]), node("n"), OK, id="notin-missing-label"),
    pytest.param(affinity_pod([("zone", "NotIn", ["a"])]), node("n", labels={"zone": "a"}), AFFINITY,
                 id="notin-mismatch"),
    pytest.param(affinity_pod([("gpu", "Exists", [])]), node("n", labels={"gpu": ""}), OK, id="exists"),
    pytest.param(affinity_pod([("gpu", "Exists", [])]), node("n"), AFFINITY, id="exists-mismatch"),
    pytest.param(affinity_pod([("gpu", "DoesNotExist", [])]), node("n"), OK, id="doesnotexist"),
    pytest.param(affinity_pod([("gpu", "DoesNotExist", [])]), node("n", labels={"gpu": "1"}), AFFINITY,
                 id="doesnotexist-mismatch"),
    pytest.param(affinity_pod([("cores", "Gt", ["8"])]), node("n", labels={"cores": "16"}), OK, id="gt"),
    pytest.param(affinity_pod([("cores", "Gt", ["8"])]), node("n", labels={"cores": "8"}), AFFINITY,
                 id="gt-equal"),
    pytest.param(affinity_pod([("cores", "Lt", ["8"])]), node("n", labels={"cores": "4"}), OK, id="lt"),
    pytest.param(affinity_pod([("cores", "Lt", ["8"])]), node("n", labels={"cores": "x"}), AFFINITY,
                 id="lt-not-a-number"),
    pytest.param(affinity_pod([("zone", "In", ["a"])], [("zone", "In", ["b"])]), node("n", labels={"zone": "b"}),
                 OK, id="terms-are-ored"),
    pytest.param(affinity_pod([("zone", "In", ["a"]), ("disk", "In", ["ssd"])]),
                 node("n", labels={"zone": "a", "disk": "hdd"}), AFFINITY, id="expressions-are-anded"),
    pytest.param(affinity_pod(fields=[("metadata.name", "In", ["n"])]), node("n"), OK, id="match-fields-name"),
    pytest.param(affinity_pod(fields=[("metadata.name", "In", ["other"])]), node("n"), AFFINITY,
                 id="match-fields-other-name"),
    pytest.param(affinity_pod(fields=[("metadata.name", "NotIn", ["n"])]), node("n"), AFFINITY,
                 id="match-fields-notin"),
    pytest.param(affinity_pod([]), node("n"), AFFINITY, id="empty-term-matches-nothing"),
    # A term Kubernetes cannot compile matches no node, whatever its operator would say.
    pytest.param(affinity_pod([("zone", "NotIn", ["invalid value: ___@#$%^"])]), node("n", labels={"zone": "a"}),
                 AFFINITY, id="notin-invalid-value"),
    pytest.param(affinity_pod([("zone", "NotIn", ["invalid value: ___@#$%^"])]), node("n"), AFFINITY,
                 id="notin-invalid-value-label-missing"),
    pytest.param(affinity_pod([("zone", "In", ["a", "b\n"])]), node("n", labels={"zone": "a"}), AFFINITY,
                 id="in-one-invalid-value"),
    pytest.param(affinity_pod([("zone", "NotIn", ["x" * 64])]), node("n"), AFFINITY, id="value-too-long"),
    pytest.param(affinity_pod([("bad key!", "DoesNotExist", [])]), node("n"), AFFINITY, id="invalid-key"),
    pytest.param(affinity_pod([("gpu", "Exists", ["1"])]), node("n", labels={"gpu": "1"}), AFFINITY,
                 id="exists-with-values"),
    pytest.param(affinity_pod([("zone", "In", [])]), node("n", labels={"zone": "a"}), AFFINITY, id="in-no-values"),
    pytest.param(affinity_pod([("cores", "Gt", ["eight"])]), node("n", labels={"cores": "16"}), AFFINITY,
                 id="gt-not-an-integer"),
    pytest.param(affinity_pod([("cores", "Lt", ["8", "9"])]), node("n", labels={"cores": "4"}), AFFINITY,
                 id="lt-two-values"),
    pytest.param(affinity_pod(fields=[("metadata.name", "In", ["n", "m"])]), node("n"), AFFINITY,
                 id="match-fields-two-values"),
    pytest.param(affinity_pod([("zone", "NotIn", ["invalid value: ___@#$%^"])], [("zone", "In", ["a"])]),
                 node("n", labels={"zone": "a"}), OK, id="another-term-still-matches"),
    pytest.param(pod("p", cpu="2"), node("n", cpu="1"), ("Unschedulable", ("Insufficient cpu",)), id="cpu"),
    pytest.param(pod("p", memory="2Gi"), node("n", memory="1Gi"), ("Unschedulable", ("Insufficient memory",)),
                 id="memory"),
    pytest.param(pod("p", cpu="2", memory="2Gi"), node("n", cpu="1", memory="1Gi"),
                 ("Unschedulable", ("Insufficient cpu", "Insufficient memory")), id="cpu-and-memory"),
    pytest.param(pod("p", ephemeral="2Gi"), node("n", ephemeral="1Gi"),
                 ("Unschedulable", ("Insufficient ephemeral-storage",)), id="ephemeral"),
    pytest.param(pod("p", ephemeral="1Gi"), node("n", ephemeral="1Gi"), OK, id="ephemeral-exact"),
    pytest.param(pod("p", cpu="1"), node("n", cpu="1"), OK, id="cpu-exact-fit"),
    pytest.param(pod("p"), node("n", pods=0), ("Unschedulable", ("Too many pods",)), id="pod-count"),
    pytest.param(pod("p", init=[("3", "")], cpu="1"), node("n", cpu="2"), ("Unschedulable", ("Insufficient cpu",)),
                 id="init-container-peak"),
    pytest.param(pod("p", host_ports=[8080]), node("n"), OK, id="free-host-port"),
])
def test_filter_verdicts(p: core_pb2.Pod, n: core_pb2.Node, want: tuple[str, tuple[str, ...]]) -> None:
    """The first rejecting filter's code and reasons match Kubernetes' for this pod and node."""
    assert verdict(p, n) == want


def test_pods_already_on_node_count_against_allocatable() -> None:
    """Resources and the pod count of pods already on the node are subtracted from allocatable."""
    n = node("n", cpu="2", pods=2)
    on = [pod("a", cpu="1500m", node_name="n")]
    assert verdict(pod("p", cpu="500m"), n, others=tuple(on)) == OK
    assert verdict(pod("p", cpu="600m"), n, others=tuple(on)) == ("Unschedulable", ("Insufficient cpu",))
    on.append(pod("b", node_name="n"))
    assert verdict(pod("p"), n, others=tuple(on)) == ("Unschedulable", ("Too many pods",))


@pytest.mark.parametrize(("theirs", "ours", "conflict"), [
    pytest.param(("TCP", "", 80), ("TCP", "", 80), True, id="same-port"),
    pytest.param(("TCP", "", 80), ("UDP", "", 80), False, id="other-protocol"),
    pytest.param(("TCP", "10.0.0.1", 80), ("TCP", "10.0.0.2", 80), False, id="other-ips"),
    pytest.param(("TCP", "10.0.0.1", 80), ("TCP", "", 80), True, id="wildcard-vs-ip"),
    pytest.param(("TCP", "", 80), ("TCP", "10.0.0.2", 80), True, id="ip-vs-wildcard"),
    pytest.param(("TCP", "", 80), ("TCP", "", 81), False, id="other-port"),
])
def test_host_ports(theirs: tuple[str, str, int], ours: tuple[str, str, int], conflict: bool) -> None:
    """A host port conflicts on the same protocol and port when either side binds all addresses or both the same."""

    def with_port(name: str, spec: tuple[str, str, int], node_name: str = "") -> core_pb2.Pod:
        p = pod(name, node_name=node_name)
        p.spec.containers[0].ports.add(container_port=spec[2], host_port=spec[2], protocol=spec[0], host_ip=spec[1])
        return p

    got = verdict(with_port("p", ours), node("n"), others=(with_port("other", theirs, "n"),))
    assert got == (("Unschedulable", ("node(s) didn't have free ports for the requested pod ports",)) if conflict
                   else OK)


def anti(p: core_pb2.Pod, labels: dict[str, str], key: str = "kubernetes.io/hostname") -> core_pb2.Pod:
    t = p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add(topology_key=key)
    t.label_selector.match_labels.update(labels)
    return p


def test_anti_affinity_on_hostname() -> None:
    """A pod refusing pods labelled app=web does not go where one runs, but goes to a node without."""
    web = pod("web1", labels={"app": "web"}, node_name="n")
    newcomer = anti(pod("web2", labels={"app": "web"}), {"app": "web"})
    assert verdict(newcomer, node("n"), others=(web,)) == \
        ("Unschedulable", ("node(s) didn't match pod anti-affinity rules",))
    assert verdict(newcomer, node("m"), others=(web,), extra_nodes=(node("n"),)) == OK


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    """A pod is kept off a node whose existing pod refuses it, even if it has no anti-affinity itself."""
    loner = anti(pod("loner", node_name="n"), {"app": "web"})
    assert verdict(pod("web", labels={"app": "web"}), node("n"), others=(loner,)) == \
        ("Unschedulable", ("node(s) didn't satisfy existing pods anti-affinity rules",))
    assert verdict(pod("db", labels={"app": "db"}), node("n"), others=(loner,)) == OK


def test_anti_affinity_other_namespace_does_not_count() -> None:
    """Anti-affinity terms without namespaces look only at the pod's own namespace."""
    web = pod("web1", namespace="other", labels={"app": "web"}, node_name="n")
    assert verdict(anti(pod("web2", labels={"app": "web"}), {"app": "web"}), node("n"), others=(web,)) == OK


def spread_pod(name: str, skew: int, key: str, *, hard: bool = True) -> core_pb2.Pod:
    p = pod(name, labels={"app": "web"})
    c = p.spec.topology_spread_constraints.add(max_skew=skew, topology_key=key,
                                               when_unsatisfiable="DoNotSchedule" if hard else "ScheduleAnyway")
    c.label_selector.match_labels["app"] = "web"
    return p


def test_topology_spread_hard_constraint() -> None:
    """With maxSkew 1 on zones, a zone already one pod ahead is refused; the emptier zone is accepted."""
    a1 = node("a1", labels={"zone": "a"})
    b1 = node("b1", labels={"zone": "b"})
    others = (pod("w1", labels={"app": "web"}, node_name="a1"),)
    p = spread_pod("w2", 1, "zone")
    assert verdict(p, a1, others=others, extra_nodes=(b1,)) == \
        ("Unschedulable", ("node(s) didn't match pod topology spread constraints",))
    assert verdict(p, b1, others=others, extra_nodes=(a1,)) == OK
    assert verdict(p, node("x"), others=others, extra_nodes=(a1, b1)) == \
        ("UnschedulableAndUnresolvable",
         ("node(s) didn't match pod topology spread constraints (missing required label)",))


def test_requests_count_init_containers_as_kubernetes_does() -> None:
    """Effective requests are max(sum of containers, largest init container) per resource."""
    p = pod("p", cpu="500m", memory="100Mi", containers=2, init=[("800m", "50Mi"), ("200m", "300Mi")])
    assert compute_pod_requests(p.spec) == (1000, 300 * 1024 * 1024, 0)
    p2 = pod("p2", cpu="300m", init=[("900m", "")])
    assert compute_pod_requests(p2.spec)[0] == 900


def test_error_in_a_plugin_becomes_an_error_status() -> None:
    """A filter that raises yields an Error status naming it instead of an exception."""
    fw = new_framework()

    class Broken:
        name = "Broken"

        def pre_filter(self, state, pod, snapshot):  # type: ignore[no-untyped-def]
            from scheduler.framework.interface import SUCCESS
            return SUCCESS

        def filter(self, state, pod, node):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    fw.filters.append(Broken())  # type: ignore[arg-type]
    result = fw.schedule(PodInfo(pod("p")), snapshot([node("n")]))
    assert result.node == ""
    assert result.error is not None and result.error.code == Code.ERROR
    assert "Broken: RuntimeError: boom" in result.message()


def test_topology_spread_on_hostname() -> None:
    """With maxSkew 1 per hostname, a node already holding a matching pod is refused while another holds none."""
    n1, n2 = node("n1"), node("n2")
    others = (pod("w1", labels={"app": "web"}, node_name="n1"),)
    p = spread_pod("w2", 1, "kubernetes.io/hostname")
    assert verdict(p, n1, others=others, extra_nodes=(n2,)) == \
        ("Unschedulable", ("node(s) didn't match pod topology spread constraints",))
    assert verdict(p, n2, others=others, extra_nodes=(n1,)) == OK
    relaxed = spread_pod("w2", 2, "kubernetes.io/hostname")
    assert verdict(relaxed, n1, others=others, extra_nodes=(n2,)) == OK
