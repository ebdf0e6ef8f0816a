"""Each kind's rules (apiserver/rules/) and the admission chain, table-tested without etcd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api import kinds
from api.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from api.pb import api_pb2, apps_pb2, core_pb2
from apiserver import admission, allocator, rules
from apiserver.cache import WatchCache, object_key
from apiserver.rules import Config, Strategy
from apiserver.rules import namespace as namespace_rules
from apiserver.rules import pod as pod_rules
from apiserver.storage.interface import Create, Delete, Event

ROOT = Path(__file__).resolve().parents[3]
CONFIG = Config(service_cidr="10.96.0.0/28", node_port_range="30000-30002", lb_pool="192.0.2.0/30",
                toleration_seconds=7)


class _Registry:
    """What the rules read of their registry: the watch cache (filled by hand here) and sync()."""

    def __init__(self) -> None:
        self.cache = WatchCache(storage=None)  # type: ignore[arg-type]
        self.rev = 1

    async def sync(self) -> None:
        return None

    def put(self, obj: object) -> None:
        kind = kinds.of(obj)  # type: ignore[arg-type]
        self.rev += 1
        key = object_key(kind, obj.metadata.namespace, obj.metadata.name)  # type: ignore[attr-defined]
        self.cache._apply([Event("PUT", key, obj.SerializeToString(), self.rev, self.rev)], self.rev)  # type: ignore[attr-defined]


def _strategies() -> tuple[dict[str, Strategy], _Registry]:
    reg = _Registry()
    return rules.build(CONFIG, reg), reg


def _pod(name: str = "p", node: str = "", **spec: object) -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": "default"},
                        spec={"node_name": node, "containers": [{"name": "c", "image": "busybox"}], **spec})


def _deleting(obj, *finalizers: str):  # type: ignore[no-untyped-def]
    obj.metadata.deletion_timestamp.GetCurrentTime()
    obj.metadata.finalizers.extend(finalizers)
    return obj


# ---------------------------------------------------------------- the registry names no kind


def test_every_rules_module_names_a_served_kind() -> None:
    """Each module's Rules class is for a kind api/kinds.py serves, and each kind has at most one module."""
    served = {k.kind for k in kinds.KINDS}
    classes = rules.rules_classes()
    assert set(classes) <= served
    assert {"Pod", "Service", "Namespace", "Node", "Event", "Lease", "ReplicaSet", "Deployment"} <= set(classes)


def test_only_rules_modules_name_kinds() -> None:
    """No apiserver module outside rules/ branches on a kind's name."""
    pattern = re.compile(r"""kind\s*(==|!=|in)\s*\(?["']""")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "apiserver").rglob("*.py")
                 if "rules" not in p.parts and pattern.search(p.read_text())]
    assert offenders == []


def test_a_kind_without_a_module_gets_the_plain_strategy() -> None:
    """Endpoints have no rules module: the plain strategy serves them."""
    strategies, _ = _strategies()
    assert type(strategies["Endpoints"]) is Strategy


# ---------------------------------------------------------------- flags per kind


@pytest.mark.parametrize(("kind", "flag", "value"), [
    pytest.param("Event", "ttl_seconds", 3600, id="events-expire"),
    pytest.param("Pod", "ttl_seconds", 0, id="pods-do-not-expire"),
    pytest.param("Event", "create_in_terminating_namespace", True, id="events-in-terminating-namespace"),
    pytest.param("Pod", "create_in_terminating_namespace", False, id="pods-not-in-terminating-namespace"),
    pytest.param("Lease", "tracks_generation", False, id="lease-renewals-no-generation"),
    pytest.param("Deployment", "tracks_generation", True, id="deployment-generation"),
    pytest.param("ReplicaSet", "scalable", True, id="replicasets-scale"),
    pytest.param("Deployment", "scalable", True, id="deployments-scale"),
    pytest.param("Pod", "scalable", False, id="pods-do-not-scale"),
    pytest.param("Deployment", "orphans_dependents", True, id="deployment-orphans"),
    pytest.param("Service", "orphans_dependents", False, id="service-no-orphan-finalizer"),
    pytest.param("Service", "allocates", True, id="services-allocate"),
    pytest.param("Node", "allocates", False, id="nodes-do-not-allocate"),
])
def test_kind_flags(kind: str, flag: str, value: object) -> None:
    """Each kind's strategy declares what the generic verbs do differently for it."""
    strategies, _ = _strategies()
    assert getattr(strategies[kind], flag) == value


# ---------------------------------------------------------------- pods


def test_pod_create_defaults_and_tolerations() -> None:
    """A new pod gets Pending, a QoS class and the not-ready/unreachable tolerations for the configured time."""
    strategies, _ = _strategies()
    pod = _pod()
    strategies["Pod"].prepare_for_create(pod)
    assert pod.status.phase == "Pending"
    assert pod.status.qos_class == "BestEffort"
    assert {(t.key, t.toleration_seconds) for t in pod.spec.tolerations} == {
        ("node.kubernetes.io/not-ready", 7), ("node.kubernetes.io/unreachable", 7)}
    assert not pod.status.conditions


def test_pod_created_bound_is_scheduled() -> None:
    """A pod created with spec.nodeName has PodScheduled=True at once."""
    strategies, _ = _strategies()
    pod = _pod(node="n1")
    strategies["Pod"].prepare_for_create(pod)
    assert [(c.type, c.status) for c in pod.status.conditions] == [("PodScheduled", "True")]


def test_pod_update_redefaults_the_spec_only() -> None:
    """An update fills spec defaults but leaves the status (the kubelet's) alone."""
    strategies, _ = _strategies()
    old, new = _pod(), _pod()
    strategies["Pod"].prepare_for_update(new, old)
    assert new.spec.restart_policy == "Always"
    assert new.status.phase == ""


@pytest.mark.parametrize(("node", "req", "spec_grace", "want"), [
    pytest.param("n1", api_pb2.DeleteRequest(), 30, (30, True), id="bound-waits-for-kubelet"),
    pytest.param("", api_pb2.DeleteRequest(), 30, (30, False), id="unbound-goes-at-once"),
    pytest.param("n1", api_pb2.DeleteRequest(grace_period_seconds=0), 30, (0, False), id="grace-zero"),
    pytest.param("n1", api_pb2.DeleteRequest(grace_period_seconds=5), 30, (5, True), id="grace-given"),
])
def test_pod_delete_grace(node: str, req: api_pb2.DeleteRequest, spec_grace: int, want: tuple[int, bool]) -> None:
    """A pod's grace period comes from the request, else its spec; only bound pods wait for their kubelet."""
    strategies, _ = _strategies()
    pod = _pod(node=node, termination_grace_period_seconds=spec_grace)
    assert strategies["Pod"].delete_grace(pod, req) == want


@pytest.mark.parametrize(("pod", "ready"), [
    pytest.param(_pod(), False, id="not-deleting"),
    pytest.param(_deleting(_pod()), True, id="unbound-deleting"),
    pytest.param(_deleting(_pod(node="n1")), False, id="bound-waits-for-kubelet"),
    pytest.param(_deleting(_pod(), "x/y"), False, id="finalizer-left"),
])
def test_pod_ready_to_remove(pod: core_pb2.Pod, ready: bool) -> None:
    """A deleting pod goes once its finalizers are gone, and a bound one only when its kubelet removes it."""
    strategies, _ = _strategies()
    assert strategies["Pod"].ready_to_remove(pod) is ready


def test_graceful_delete_marks_and_shortens() -> None:
    """Deleting a bound pod marks it with its grace period; a second delete with less grace shortens it."""
    strategies, _ = _strategies()
    s = strategies["Pod"]
    pod = _pod(node="n1", termination_grace_period_seconds=30)
    marked = s.plan_delete(pod, api_pb2.DeleteRequest(), [])
    assert marked is not None and marked.metadata.deletion_grace_period_seconds == 30
    again = s.plan_delete(marked, api_pb2.DeleteRequest(), [])
    assert again is marked
    shorter = s.plan_delete(marked, api_pb2.DeleteRequest(grace_period_seconds=3), [])
    assert shorter is not None and shorter.metadata.deletion_grace_period_seconds == 3
    assert s.plan_delete(marked, api_pb2.DeleteRequest(grace_period_seconds=0), []) is None


@pytest.mark.parametrize(("pod", "req", "error"), [
    pytest.param(_pod(node="n2"), api_pb2.BindRequest(name="p", node_name="n1"), ConflictError, id="already-bound"),
    pytest.param(_deleting(_pod()), api_pb2.BindRequest(name="p", node_name="n1"), ConflictError, id="deleting"),
    pytest.param(_pod(), api_pb2.BindRequest(name="p", node_name="n1", uid="other"), ConflictError, id="recreated"),
    pytest.param(_pod(), api_pb2.BindRequest(name="p"), InvalidError, id="no-node"),
])
def test_binding_refusals(pod: core_pb2.Pod, req: api_pb2.BindRequest, error: type[Exception]) -> None:
    """A binding is refused for a bound, deleting or recreated pod, or without a node."""
    with pytest.raises(error):
        pod_rules.binding(req)(pod)


def test_binding_sets_node_and_condition() -> None:
    """A binding sets spec.nodeName, clears the nomination and sets PodScheduled=True."""
    pod = _pod()
    pod.status.nominated_node_name = "n9"
    pod.status.conditions.add(type="PodScheduled", status="False", reason="Unschedulable")
    new = pod_rules.binding(api_pb2.BindRequest(name="p", node_name="n1"))(pod)
    assert new.spec.node_name == "n1"
    assert new.status.nominated_node_name == ""
    assert [(c.type, c.status, c.reason) for c in new.status.conditions] == [("PodScheduled", "True", "")]
    assert pod.spec.node_name == ""  # the stored object is never changed


def test_kubelet_status_keeps_nomination_and_checks_uid() -> None:
    """The kubelet's report replaces the status but keeps the scheduler's nominated node; a stale uid is NotFound."""
    pod = _pod(node="n1")
    pod.metadata.uid = "u1"
    pod.status.nominated_node_name = "n1"
    new = pod_rules.kubelet_status("p", "u1", core_pb2.PodStatus(phase="Running"))(pod)
    assert new is not None and new.status.phase == "Running" and new.status.nominated_node_name == "n1"
    assert pod_rules.kubelet_status("p", "u1", pod.status)(pod) is None
    with pytest.raises(NotFoundError):
        pod_rules.kubelet_status("p", "u2", core_pb2.PodStatus())(pod)


# ---------------------------------------------------------------- generic delete


@pytest.mark.parametrize(("finalizers", "removed"), [
    pytest.param([], True, id="no-finalizers-removed-now"),
    pytest.param(["foregroundDeletion"], False, id="foreground-marks"),
])
def test_plain_delete(finalizers: list[str], removed: bool) -> None:
    """A plain kind goes at once unless finalizers hold it; then it is marked with them."""
    strategies, _ = _strategies()
    rs = apps_pb2.ReplicaSet(metadata={"name": "r", "namespace": "default"})
    new = strategies["ReplicaSet"].plan_delete(rs, api_pb2.DeleteRequest(), finalizers)
    if removed:
        assert new is None
    else:
        assert new is not None and list(new.metadata.finalizers) == finalizers
        assert new.metadata.HasField("deletion_timestamp")


# ---------------------------------------------------------------- namespaces


def test_namespace_gets_the_kubernetes_finalizer_on_create() -> None:
    """A new namespace is held by the `kubernetes` finalizer and is Active."""
    strategies, _ = _strategies()
    ns = core_pb2.Namespace(metadata={"name": "team"})
    strategies["Namespace"].prepare_for_create(ns)
    assert list(ns.spec.finalizers) == ["kubernetes"] and ns.status.phase == "Active"


def test_namespace_delete_marks_terminating() -> None:
    """Deleting a namespace marks it Terminating; it goes once spec.finalizers is empty."""
    strategies, _ = _strategies()
    s = strategies["Namespace"]
    ns = core_pb2.Namespace(metadata={"name": "team"}, spec={"finalizers": ["kubernetes"]})
    marked = s.plan_delete(ns, api_pb2.DeleteRequest(), [])
    assert marked is not None and marked.status.phase == "Terminating"
    assert not s.ready_to_remove(marked)
    del marked.spec.finalizers[:]
    assert s.ready_to_remove(marked)


@pytest.mark.parametrize("name", namespace_rules.UNDELETABLE)
def test_system_namespaces_cannot_be_deleted(name: str) -> None:
    """default, kube-system and kube-public refuse deletion."""
    strategies, _ = _strategies()
    with pytest.raises(ForbiddenError):
        strategies["Namespace"].check_delete(core_pb2.Namespace(metadata={"name": name}))


# ---------------------------------------------------------------- nodes: the status strategy


@pytest.mark.parametrize(("capacity", "errors"), [
    pytest.param({"cpu": "2", "memory": "4Gi"}, [], id="quantities"),
    pytest.param({"cpu": "two"}, ["status.capacity[cpu]"], id="not-a-quantity"),
])
def test_node_status_checks_capacity(capacity: dict[str, str], errors: list[str]) -> None:
    """A node status write is checked for its reported quantities only."""
    strategies, _ = _strategies()
    node = core_pb2.Node(metadata={"name": "n1"}, status={"capacity": capacity})
    assert [e.path for e in strategies["Node"].validate_status_update(node, node)] == errors


# ---------------------------------------------------------------- services: allocation hooks


async def test_service_allocates_ip_and_node_ports() -> None:
    """A NodePort Service gets a cluster IP and node ports, claimed by Create ops and reserved until released."""
    strategies, _ = _strategies()
    s = strategies["Service"]
    svc = core_pb2.Service(metadata={"name": "web", "namespace": "default"},
                           spec={"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]})
    await s.before_allocate()
    ops = s.allocate(svc, None)
    assert svc.spec.cluster_ip and svc.spec.ports[0].node_port in (30000, 30001, 30002)
    assert {op.key for op in ops} == s.claims(svc) == allocator.claims(svc)
    assert all(isinstance(op, Create) for op in ops)
    other = core_pb2.Service(metadata={"name": "b", "namespace": "default"}, spec={"type": "ClusterIP"})
    s.allocate(other, None)
    assert other.spec.cluster_ip != svc.spec.cluster_ip  # reserved while in flight
    s.release(ops)


async def test_service_update_releases_dropped_claims() -> None:
    """Turning a NodePort Service into ClusterIP deletes its node-port claims."""
    strategies, _ = _strategies()
    s = strategies["Service"]
    port = {"port": 80, "node_port": 30001, "protocol": "TCP"}
    old = core_pb2.Service(metadata={"name": "web", "namespace": "default"},
                           spec={"type": "NodePort", "cluster_ip": "10.96.0.5", "ports": [port]})
    new = core_pb2.Service()
    new.CopyFrom(old)
    new.spec.type = "ClusterIP"
    ops = s.allocate(new, old)
    assert ops == [Delete(allocator.port_key(30001))]


async def test_service_allocation_skips_taken_addresses() -> None:
    """Addresses held by Services in the cache are not handed out again; a full range is an error."""
    strategies, reg = _strategies()
    s = strategies["Service"]
    for i in range(2, 15):  # 10.96.0.0/28 hands out .2 to .14
        reg.put(core_pb2.Service(metadata={"name": f"s{i}", "namespace": "default"},
                                 spec={"cluster_ip": f"10.96.0.{i}"}))
    with pytest.raises(InvalidError, match="is full"):
        s.allocate(core_pb2.Service(metadata={"name": "x", "namespace": "default"}), None)


# ---------------------------------------------------------------- admission


def _attrs(strategies: dict[str, Strategy], obj: object) -> admission.Attributes:
    kind = kinds.of(obj)  # type: ignore[arg-type]
    return admission.Attributes(admission.CREATE, kind, obj, strategies[kind.kind])  # type: ignore[arg-type]


@pytest.mark.parametrize(("obj", "error"), [
    pytest.param(_pod(), None, id="active-namespace"),
    pytest.param(core_pb2.Pod(metadata={"name": "p", "namespace": "gone"}), NotFoundError, id="missing-namespace"),
    pytest.param(core_pb2.Pod(metadata={"name": "p", "namespace": "ending"}), ForbiddenError, id="terminating"),
    pytest.param(core_pb2.Event(metadata={"name": "e", "namespace": "ending"}), None, id="event-in-terminating"),
    pytest.param(core_pb2.Node(metadata={"name": "n1"}), None, id="cluster-scoped"),
])
async def test_namespace_lifecycle(obj: object, error: type[Exception] | None) -> None:
    """Namespaced objects need a namespace that exists and is not terminating; events may still record its end."""
    strategies, reg = _strategies()
    reg.put(core_pb2.Namespace(metadata={"name": "default"}))
    reg.put(_deleting(core_pb2.Namespace(metadata={"name": "ending"})))
    chain = admission.Chain([admission.NamespaceLifecycle(reg.cache, lambda resource: 0)])
    if error is None:
        await chain.validate(_attrs(strategies, obj))
    else:
        with pytest.raises(error):
            await chain.validate(_attrs(strategies, obj))


def test_chain_gives_each_kind_only_its_plugins() -> None:
    """A kind no plugin names passes through an empty list."""
    strategies, reg = _strategies()
    chain = admission.Chain([admission.Priority(reg.cache, lambda resource: 0)])
    lease = apps_pb2.Lease(metadata={"name": "l", "namespace": "default"})
    assert chain._plugins(_attrs(strategies, lease)) == []
    assert [p.name for p in chain._plugins(_attrs(strategies, _pod()))] == ["Priority"]
