"""The authorizer's decisions, table by table: RBAC rule matching, bindings, aggregation, the node authorizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import convert, kinds
from api.pb import core_pb2, rbac_pb2
from apiserver import audit
from apiserver.authn import AUTHENTICATED, UserInfo
from apiserver.authz import Attributes, forbidden, node, rbac
from apiserver.authz import bootstrap as defaults
from apiserver.authz.attributes import of_request

ALICE = UserInfo("alice", groups=(AUTHENTICATED,))
JANE = UserInfo("jane", groups=(AUTHENTICATED,))
MANAGER = UserInfo("bob", groups=("manager", AUTHENTICATED))
N1 = UserInfo("system:node:n1", groups=("system:nodes", AUTHENTICATED))
DOCS = Path(__file__).parents[2] / "integration" / "authz" / "docs_rbac.yaml"


def _docs() -> list:
    return [kinds.unwrap(convert.manifest_to_object(d.data)) for d in
            convert.load_documents(DOCS.read_text(), str(DOCS))]


def _index(*objs) -> rbac.RuleIndex:
    by = {k: [o for o in objs if type(o) is k] for k in (rbac_pb2.Role, rbac_pb2.ClusterRole, rbac_pb2.RoleBinding,
                                                         rbac_pb2.ClusterRoleBinding)}
    return rbac.RuleIndex.build(by[rbac_pb2.Role], by[rbac_pb2.ClusterRole], by[rbac_pb2.RoleBinding],
                                by[rbac_pb2.ClusterRoleBinding])


def _rule(verbs, groups, resources, names=()):
    return rbac_pb2.PolicyRule(verbs=verbs, api_groups=groups, resources=resources, resource_names=list(names))


@pytest.mark.parametrize("rule, attrs, allowed", [
    pytest.param(_rule(["get"], [""], ["pods"]), Attributes(ALICE, "get", "pods", namespace="d", name="x"), True,
                 id="exact"),
    pytest.param(_rule(["get"], [""], ["pods"]), Attributes(ALICE, "list", "pods", namespace="d"), False,
                 id="other-verb"),
    pytest.param(_rule(["*"], [""], ["pods"]), Attributes(ALICE, "delete", "pods", namespace="d"), True,
                 id="verb-wildcard"),
    pytest.param(_rule(["get"], [""], ["pods"]), Attributes(ALICE, "get", "deployments", api_group="apps"), False,
                 id="other-group"),
    pytest.param(_rule(["get"], ["*"], ["*"]), Attributes(ALICE, "get", "deployments", api_group="apps"), True,
                 id="group-and-resource-wildcards"),
    pytest.param(_rule(["create"], [""], ["pods"]), Attributes(ALICE, "create", "pods", "exec", "d", "x"), False,
                 id="resource-is-not-its-subresource"),
    pytest.param(_rule(["create"], [""], ["pods/exec"]), Attributes(ALICE, "create", "pods", "exec", "d", "x"), True,
                 id="subresource"),
    pytest.param(_rule(["update"], ["apps"], ["*/scale"]),
                 Attributes(ALICE, "update", "deployments", "scale", "d", "x", "apps"), True, id="any-scale"),
    pytest.param(_rule(["get"], [""], ["pods/*"]), Attributes(ALICE, "get", "pods", "log", "d", "x"), True,
                 id="any-subresource"),
    pytest.param(_rule(["get"], [""], ["configmaps"], ["app"]), Attributes(ALICE, "get", "configmaps", name="app"),
                 True, id="resource-name"),
    pytest.param(_rule(["get"], [""], ["configmaps"], ["app"]), Attributes(ALICE, "get", "configmaps", name="db"),
                 False, id="other-resource-name"),
    pytest.param(_rule(["list"], [""], ["configmaps"], ["app"]), Attributes(ALICE, "list", "configmaps"), False,
                 id="resource-names-never-allow-list"),
    pytest.param(rbac_pb2.PolicyRule(verbs=["get"], non_resource_urls=["/apis/*"]),
                 Attributes(ALICE, "get", path="/apis/apps"), True, id="non-resource-prefix"),
    pytest.param(rbac_pb2.PolicyRule(verbs=["get"], non_resource_urls=["/api"]),
                 Attributes(ALICE, "get", path="/apis"), False, id="non-resource-other"),
])
def test_rule_allows(rule: rbac_pb2.PolicyRule, attrs: Attributes, allowed: bool) -> None:
    """A rule matches verb, API group, resource/subresource and resourceNames as Kubernetes' RuleAllows."""
    assert rbac.rule_allows(rule, attrs) is allowed


@pytest.mark.parametrize("attrs, allowed", [
    pytest.param(Attributes(JANE, "list", "pods", namespace="default"), True, id="jane-lists-pods-in-default"),
    pytest.param(Attributes(JANE, "get", "pods", namespace="default", name="web"), True, id="jane-gets-a-pod"),
    pytest.param(Attributes(JANE, "list", "pods", namespace="prod"), False, id="jane-not-in-prod"),
    pytest.param(Attributes(JANE, "list", "pods"), False, id="jane-not-all-namespaces"),
    pytest.param(Attributes(JANE, "create", "pods", namespace="default"), False, id="jane-cannot-create"),
    pytest.param(Attributes(JANE, "create", "pods", "exec", "default", "web"), False, id="jane-cannot-exec"),
    pytest.param(Attributes(JANE, "list", "deployments", namespace="default", api_group="apps"), False,
                 id="jane-not-deployments"),
    pytest.param(Attributes(ALICE, "list", "pods", namespace="default"), False, id="alice-has-nothing"),
    pytest.param(Attributes(MANAGER, "get", "secrets", namespace="prod", name="db"), True, id="managers-read-secrets"),
    pytest.param(Attributes(MANAGER, "list", "secrets"), True, id="managers-list-every-secret"),
    pytest.param(Attributes(MANAGER, "delete", "secrets", namespace="prod", name="db"), False,
                 id="managers-cannot-delete"),
])
def test_documentation_examples(attrs: Attributes, allowed: bool) -> None:
    """The Kubernetes documentation's pod-reader / secret-reader examples grant exactly what it says."""
    assert (_index(*_docs()).allowed_by(attrs) is not None) is allowed


def _sa_binding(namespace: str) -> rbac_pb2.RoleBinding:
    return rbac_pb2.RoleBinding(
        metadata={"name": "b", "namespace": namespace},
        subjects=[rbac_pb2.Subject(kind="ServiceAccount", name="builder", namespace="ci")],
        role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="edit"))


@pytest.mark.parametrize("user, attrs_ns, allowed", [
    pytest.param("system:serviceaccount:ci:builder", "ci", True, id="its-service-account"),
    pytest.param("system:serviceaccount:other:builder", "ci", False, id="same-name-other-namespace"),
    pytest.param("builder", "ci", False, id="a-user-of-that-name"),
    pytest.param("system:serviceaccount:ci:builder", "prod", False, id="outside-the-binding-namespace"),
])
def test_service_account_subjects_and_aggregation(user: str, attrs_ns: str, allowed: bool) -> None:
    """A ServiceAccount subject names system:serviceaccount:<ns>:<name>; `edit` aggregates its labelled parts."""
    index = _index(*defaults.cluster_roles(), _sa_binding("ci"))
    who = UserInfo(user, groups=("system:serviceaccounts", AUTHENTICATED))
    attrs = Attributes(who, "create", "deployments", namespace=attrs_ns, api_group="apps")
    assert (index.allowed_by(attrs) is not None) is allowed


@pytest.mark.parametrize("role, attrs, allowed", [
    pytest.param("view", Attributes(ALICE, "list", "pods", namespace="d"), True, id="view-lists-pods"),
    pytest.param("view", Attributes(ALICE, "get", "secrets", namespace="d", name="s"), False, id="view-no-secrets"),
    pytest.param("view", Attributes(ALICE, "create", "pods", namespace="d"), False, id="view-no-create"),
    pytest.param("edit", Attributes(ALICE, "create", "pods", "exec", "d", "x"), True, id="edit-execs"),
    pytest.param("edit", Attributes(ALICE, "list", "pods", namespace="d"), True, id="edit-has-view"),
    pytest.param("edit", Attributes(ALICE, "create", "rolebindings", namespace="d",
                                    api_group="rbac.authorization.k8s.io"), False, id="edit-no-rbac"),
    pytest.param("admin", Attributes(ALICE, "create", "rolebindings", namespace="d",
                                     api_group="rbac.authorization.k8s.io"), True, id="admin-binds"),
    pytest.param("admin", Attributes(ALICE, "update", "deployments", "scale", "d", "x", "apps"), True,
                 id="admin-has-edit"),
    pytest.param("admin", Attributes(ALICE, "list", "pods", namespace="other"), False, id="only-its-namespace"),
])
def test_default_aggregated_roles(role: str, attrs: Attributes, allowed: bool) -> None:
    """admin ⊇ edit ⊇ view, bound in namespace d by a RoleBinding, as Kubernetes' user-facing roles."""
    binding = rbac_pb2.RoleBinding(metadata={"name": "b", "namespace": "d"}, subjects=[
        rbac_pb2.Subject(kind="User", name="alice", api_group="rbac.authorization.k8s.io")],
        role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role))
    index = _index(*defaults.cluster_roles(), binding)
    assert (index.allowed_by(attrs) is not None) is allowed


@pytest.mark.parametrize("user, attrs", [
    pytest.param("system:kube-scheduler", Attributes(UserInfo("x"), "create", "pods", "binding", "d", "p"),
                 id="scheduler-binds"),
    pytest.param("system:kube-scheduler", Attributes(UserInfo("x"), "update", "leases", namespace="kube-system",
                                                     name="kube-scheduler", api_group="coordination.k8s.io"),
                 id="scheduler-elects"),
    pytest.param("system:kube-controller-manager", Attributes(UserInfo("x"), "delete", "replicasets", namespace="d",
                                                              name="r", api_group="apps"), id="controllers-manage"),
    pytest.param("system:kube-controller-manager", Attributes(UserInfo("x"), "delete", "rolebindings", namespace="d",
                                                              name="r", api_group="rbac.authorization.k8s.io"),
                 id="namespace-controller-empties-a-namespace"),
    pytest.param("system:kube-proxy", Attributes(UserInfo("x"), "watch", "endpointslices",
                                                 api_group="discovery.k8s.io"), id="proxy-watches-slices"),
    pytest.param("system:kubelite-dns", Attributes(UserInfo("x"), "update", "endpoints", namespace="kube-system",
                                                   name="kube-dns"), id="dns-publishes-itself"),
])
def test_component_roles(user: str, attrs: Attributes) -> None:
    """Each component's identity is bound to what it calls."""
    index = _index(*defaults.cluster_roles(), *defaults.cluster_role_bindings())
    who = UserInfo(user, groups=(AUTHENTICATED,))
    assert index.allowed_by(Attributes(who, attrs.verb, attrs.resource, attrs.subresource, attrs.namespace,
                                       attrs.name, attrs.api_group)) is not None


def test_controller_manager_cannot_escalate_or_impersonate() -> None:
    """The controllers' identity manages objects but may not impersonate, bind or escalate."""
    index = _index(*defaults.cluster_roles(), *defaults.cluster_role_bindings())
    cm = UserInfo("system:kube-controller-manager", groups=(AUTHENTICATED,))
    for verb, resource in (("impersonate", "users"), ("bind", "clusterroles"), ("escalate", "clusterroles"),
                           ("create", "clusterrolebindings"), ("update", "roles")):
        group = "" if resource == "users" else "rbac.authorization.k8s.io"
        assert index.allowed_by(Attributes(cm, verb, resource, api_group=group)) is None


class Graph:
    """Pods by node, as the watch cache's index holds them."""

    def __init__(self, *pods: core_pb2.Pod) -> None:
        self.pods = {(p.metadata.namespace, p.metadata.name): p for p in pods}

    def pods_on(self, name: str):
        return [p for p in self.pods.values() if p.spec.node_name == name]

    def pod(self, namespace: str, name: str):
        return self.pods.get((namespace, name))

    def volume(self, name: str):
        return {v.metadata.name: v for v in VOLUMES}.get(name)


def _pv(name: str, node_name: str) -> core_pb2.PersistentVolume:
    return core_pb2.PersistentVolume(metadata={"name": name, "labels": {"kubelite.io/local-path-node": node_name}})


VOLUMES = [_pv("pv-n1", "n1"), _pv("pv-n2", "n2")]


def _pod(name: str, node_name: str, **spec) -> core_pb2.Pod:
    return convert.from_dict(core_pb2.Pod, {"metadata": {"name": name, "namespace": "d", "uid": f"uid-{name}"},
                                            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "i"}],
                                                     **spec}})


GRAPH = Graph(
    _pod("mine", "n1", volumes=[{"name": "v", "secret": {"secretName": "db"}},
                                {"name": "w", "persistentVolumeClaim": {"claimName": "data"}}],
         imagePullSecrets=[{"name": "regcred"}]),
    _pod("theirs", "n2", volumes=[{"name": "v", "configMap": {"name": "cfg2"}}]),
)


def _token_for(service_account: str, pod: str, uid: str) -> Attributes:
    from api.pb import api_pb2

    req = api_pb2.TokenRequest(namespace="d", service_account=service_account, pod_name=pod, pod_uid=uid)
    a = of_request(N1, "CreateToken", req)
    assert a is not None
    return a


@pytest.mark.parametrize("attrs, allowed", [
    pytest.param(Attributes(N1, "get", "pods", namespace="d", name="mine"), True, id="get-own-pod"),
    pytest.param(Attributes(N1, "get", "pods", namespace="d", name="theirs"), False, id="get-other-nodes-pod"),
    pytest.param(Attributes(N1, "list", "pods", field_selector="spec.nodeName=n1"), True, id="list-own-pods"),
    pytest.param(Attributes(N1, "watch", "pods", field_selector="spec.nodeName=n2"), False, id="watch-n2s-pods"),
    pytest.param(Attributes(N1, "list", "pods"), False, id="list-every-pod"),
    pytest.param(Attributes(N1, "update", "pods", "status", "d", "mine"), True, id="own-pod-status"),
    pytest.param(Attributes(N1, "update", "pods", "status", "d", "theirs"), False, id="n2-pod-status"),
    pytest.param(Attributes(N1, "delete", "pods", namespace="d", name="theirs"), False, id="delete-n2s-pod"),
    pytest.param(Attributes(N1, "delete", "pods", namespace="d", name="gone"), True, id="delete-a-gone-pod-not-found"),
    pytest.param(Attributes(N1, "delete", "pods", namespace="d", name="theirs", uid="old-uid"), True,
                 id="delete-an-old-incarnation-conflicts"),
    pytest.param(Attributes(N1, "update", "pods", "status", "d", "theirs", uid="old-uid"), True,
                 id="status-of-an-old-incarnation-not-found"),
    pytest.param(Attributes(N1, "update", "pods", "status", "d", "theirs", uid="uid-theirs"), False,
                 id="status-of-n2s-pod-by-uid"),
    pytest.param(Attributes(N1, "update", "pods", namespace="d", name="mine"), False, id="pod-spec"),
    pytest.param(Attributes(N1, "get", "secrets", namespace="d", name="db"), True, id="secret-of-own-pod"),
    pytest.param(Attributes(N1, "get", "secrets", namespace="d", name="regcred"), True, id="pull-secret"),
    pytest.param(Attributes(N1, "watch", "secrets", namespace="d", field_selector="metadata.name=db"), True,
                 id="watch-one-named-secret"),
    pytest.param(Attributes(N1, "get", "secrets", namespace="d", name="other"), False, id="unreferenced-secret"),
    pytest.param(Attributes(N1, "list", "secrets", namespace="d"), False, id="list-secrets"),
    pytest.param(Attributes(N1, "get", "configmaps", namespace="d", name="cfg2"), False, id="n2s-configmap"),
    pytest.param(Attributes(N1, "get", "persistentvolumeclaims", namespace="d", name="data"), True, id="own-claim"),
    pytest.param(Attributes(N1, "list", "secrets", field_selector="type=kubernetes.io/tls"), True,
                 id="ingress-tls-secrets"),
    pytest.param(Attributes(N1, "update", "nodes", "status", name="n1"), True, id="own-node-status"),
    pytest.param(Attributes(N1, "update", "nodes", name="n2"), False, id="n2s-node"),
    pytest.param(Attributes(N1, "update", "nodes", "status", name="n2"), False, id="n2s-node-status"),
    pytest.param(Attributes(N1, "delete", "nodes", name="n1"), False, id="delete-own-node"),
    pytest.param(Attributes(N1, "update", "leases", namespace="kube-node-lease", name="n1",
                            api_group="coordination.k8s.io"), True, id="own-lease"),
    pytest.param(Attributes(N1, "update", "leases", namespace="kube-node-lease", name="n2",
                            api_group="coordination.k8s.io"), False, id="n2s-lease"),
    pytest.param(Attributes(N1, "update", "leases", namespace="kube-system", name="kube-scheduler",
                            api_group="coordination.k8s.io"), False, id="scheduler-lease"),
    pytest.param(Attributes(N1, "create", "leases", namespace="d", name="kubelite-lb-web",
                            api_group="coordination.k8s.io"), True, id="speaker-lease"),
    pytest.param(Attributes(N1, "update", "services", "status", "d", "web"), True, id="speaker-status"),
    pytest.param(Attributes(N1, "update", "services", namespace="d", name="web"), False, id="service-spec"),
    pytest.param(Attributes(N1, "update", "ingresses", "status", "d", "web", "networking.k8s.io"), True,
                 id="ingress-status"),
    pytest.param(Attributes(N1, "create", "pods", "exec", "d", "mine"), False, id="exec"),
    pytest.param(Attributes(N1, "update", "persistentvolumes", name="pv-n1", obj=_pv("pv-n1", "n1")), True,
                 id="own-local-path-volume"),
    pytest.param(Attributes(N1, "update", "persistentvolumes", name="pv-n2", obj=_pv("pv-n2", "n1")), False,
                 id="n2s-volume-relabelled"),
    pytest.param(Attributes(N1, "update", "persistentvolumes", name="pv-n1", obj=_pv("pv-n1", "n2")), False,
                 id="own-volume-given-away"),
    pytest.param(Attributes(N1, "create", "deployments", namespace="d", api_group="apps"), False, id="deployments"),
    pytest.param(_token_for("default", "mine", "uid-mine"), True, id="token-for-own-pod"),
    pytest.param(_token_for("default", "theirs", "uid-theirs"), False, id="token-for-n2s-pod"),
    pytest.param(_token_for("admin", "mine", "uid-mine"), False, id="token-for-another-service-account"),
    pytest.param(_token_for("default", "mine", "old-uid"), False, id="token-for-an-old-incarnation"),
    pytest.param(_token_for("default", "", ""), False, id="token-bound-to-no-pod"),
])
def test_node_authorizer(attrs: Attributes, allowed: bool) -> None:
    """A kubelet reads its own pods and what they name, writes its own pods' status, Node and Lease, no more."""
    assert (node.authorize(attrs, "n1", GRAPH) is not None) is allowed


@pytest.mark.parametrize("attrs, message", [
    pytest.param(Attributes(ALICE, "create", "pods", namespace="prod"),
                 'pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace '
                 '"prod"', id="create"),
    pytest.param(Attributes(ALICE, "create", "pods", "exec", "default", "web"),
                 'pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the '
                 'namespace "default"', id="exec"),
    pytest.param(Attributes(ALICE, "list", "deployments", namespace="default", api_group="apps"),
                 'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" '
                 'in the namespace "default"', id="group"),
    pytest.param(Attributes(ALICE, "list", "nodes"),
                 'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope',
                 id="cluster-scope"),
])
def test_denial_message(attrs: Attributes, message: str) -> None:
    """A denial reads as Kubernetes' Forbidden, naming user, verb, resource, group and namespace."""
    err = forbidden(attrs)
    assert err.message == message
    assert err.code.name == "PERMISSION_DENIED"


@pytest.mark.parametrize("method, request_, expected", [
    pytest.param("Get", {"resource": "deploy", "name": "web"}, ("get", "deployments", "", "default", "web", "apps"),
                 id="get-defaults-namespace"),
    pytest.param("List", {"resource": "pods"}, ("list", "pods", "", "", "", ""), id="list-all-namespaces"),
    pytest.param("List", {"resource": "nodes", "namespace": "x"}, ("list", "nodes", "", "", "", ""),
                 id="cluster-scoped"),
    pytest.param("Scale", {"resource": "deployments", "namespace": "p", "name": "web", "replicas": 2},
                 ("update", "deployments", "scale", "p", "web", "apps"), id="scale"),
    pytest.param("Exec", {"namespace": "p", "name": "web"}, ("create", "pods", "exec", "p", "web", ""), id="exec"),
    pytest.param("Logs", {"name": "web"}, ("get", "pods", "log", "default", "web", ""), id="logs"),
    pytest.param("Bind", {"name": "web", "node_name": "n1"}, ("create", "pods", "binding", "default", "web", ""),
                 id="bind"),
])
def test_methods_map_to_attributes(method: str, request_: dict, expected: tuple) -> None:
    """Every Api method is one (verb, resource, subresource, namespace, name, group)."""
    from api.pb import api_pb2

    cls = {"Get": api_pb2.GetRequest, "List": api_pb2.ListRequest, "Scale": api_pb2.ScaleRequest,
           "Exec": api_pb2.ExecRequest, "Logs": api_pb2.LogsRequest, "Bind": api_pb2.BindRequest}[method]
    a = of_request(ALICE, method, cls(**request_))
    assert a is not None
    assert (a.verb, a.resource, a.subresource, a.namespace, a.name, a.api_group) == expected


def test_audit_log_lines_and_rotation(tmp_path: Path) -> None:
    """Mutations, execs and denials are logged as JSON lines in a 0600 file; reads are not; the file rotates."""
    path = tmp_path / "audit" / "audit.log"
    log = audit.AuditLog(audit.AuditConfig(str(path), max_size_mb=1, max_backups=2))
    log.record(Attributes(ALICE, "get", "pods", namespace="d", name="x"), "OK", 0.001)
    log.record(Attributes(ALICE, "create", "pods", "exec", "d", "x"), "OK", 0.002)
    log.record(Attributes(ALICE, "list", "secrets", namespace="d"), "PERMISSION_DENIED", 0.0)
    log.record(Attributes(ALICE, "delete", "pods", namespace="d", name="x"), "OK", 0.003)
    assert path.stat().st_mode & 0o777 == 0o600
    lines = audit.read_lines(str(path))
    assert [(e["user"], e["verb"], e["resource"], e["code"]) for e in lines] == [
        ("alice", "create", "pods/exec", "OK"), ("alice", "list", "secrets", "PERMISSION_DENIED"),
        ("alice", "delete", "pods", "OK")]
    big = Attributes(UserInfo("x" * 4000), "create", "pods", namespace="d")
    for _ in range(600):
        log.record(big, "OK", 0.0)
    log.close()
    assert (tmp_path / "audit" / "audit.log.1").exists()
    lines = audit.read_lines(str(path))
    assert lines[0]["resource"] == "pods/exec"
    assert len(lines) == 603
