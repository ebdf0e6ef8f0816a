"""The roles and bindings every cluster has, created at bootstrap and reconciled on every apiserver start
(missing ones created, changed ones put back; rules users add to aggregated roles are theirs to keep).

cluster-admin, admin, edit and view as Kubernetes has them (admin, edit and view aggregate the ClusterRoles
labelled `rbac.authorization.k8s.io/aggregate-to-<role>`), system:discovery and system:basic-user for every
authenticated caller, and one role per component identity: system:kube-scheduler,
system:kube-controller-manager, system:kube-proxy and system:kubelite-dns (kubelets are the node authorizer's).
"""

from __future__ import annotations

from api import kinds, rbac
from api.pb import meta_pb2, rbac_pb2

AUTHENTICATED = "system:authenticated"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
AUTOUPDATE = {"rbac.authorization.k8s.io/autoupdate": "true"}
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None
          ) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=verbs, api_groups=groups, resources=resources, resource_names=names or [])


def _meta(name: str, extra: dict[str, str] | None = None) -> meta_pb2.ObjectMeta:
    return meta_pb2.ObjectMeta(name=name, labels={**BOOTSTRAP_LABELS, **(extra or {})}, annotations=AUTOUPDATE)


def _aggregate(name: str, to: list[str]) -> rbac_pb2.ClusterRole:
    return rbac_pb2.ClusterRole(metadata=_meta(name), aggregation_rule=rbac_pb2.AggregationRule(
        cluster_role_selectors=[meta_pb2.LabelSelector(match_labels={f"{rbac.AGGREGATE_TO}{t}": "true"})
                                for t in to]))


def _part(name: str, into: str, rules: list[rbac_pb2.PolicyRule]) -> rbac_pb2.ClusterRole:
    return rbac_pb2.ClusterRole(metadata=_meta(name, {f"{rbac.AGGREGATE_TO}{into}": "true"}), rules=rules)


_WORKLOADS = ["pods", "services", "endpoints", "configmaps", "persistentvolumeclaims", "replicationcontrollers",
              "events"]
_APPS = ["deployments", "replicasets", "statefulsets", "daemonsets", "controllerrevisions"]


def _groups_but_rbac() -> list[str]:
    return sorted({k.group for k in kinds.KINDS} - {rbac.GROUP})


def cluster_roles() -> list[rbac_pb2.ClusterRole]:
    return [
        rbac_pb2.ClusterRole(metadata=_meta("cluster-admin"), rules=[
            _rule(["*"], ["*"], ["*"]), rbac_pb2.PolicyRule(verbs=["*"], non_resource_urls=["*"])]),
        # admin ⊇ edit ⊇ view: each aggregates the parts labelled for it and for the roles below it.
        _aggregate("admin", ["admin", "edit", "view"]),
        _aggregate("edit", ["edit", "view"]),
        _aggregate("view", ["view"]),
        _part("system:aggregate-to-view", "view", [
            _rule(READ, [""], [*_WORKLOADS, "pods/log", "pods/status", "services/status", "namespaces",
                               "namespaces/status", "persistentvolumeclaims/status", "resourcequotas",
                               "serviceaccounts"]),
            _rule(READ, ["apps"], [*_APPS, "deployments/scale", "replicasets/scale", "statefulsets/scale",
                                   "deployments/status", "replicasets/status", "statefulsets/status",
                                   "daemonsets/status"]),
            _rule(READ, ["batch"], ["jobs", "cronjobs", "jobs/status", "cronjobs/status"]),
            _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status"]),
            _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(READ, ["coordination.k8s.io"], ["leases"]),
        ]),
        _part("system:aggregate-to-edit", "edit", [
            _rule(READ, [""], ["secrets"]),
            _rule(WRITE, [""], ["pods", "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims",
                                "replicationcontrollers", "events", "serviceaccounts"]),
            _rule(["create"], [""], ["pods/exec", "pods/eviction", "serviceaccounts/token"]),
            _rule(WRITE, ["apps"], [*_APPS, "deployments/scale", "replicasets/scale", "statefulsets/scale"]),
            _rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
            _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
            _rule(WRITE, ["networking.k8s.io"], ["ingresses"]),
            _rule(WRITE, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(WRITE, ["coordination.k8s.io"], ["leases"]),
        ]),
        _part("system:aggregate-to-admin", "admin", [
            _rule([*READ, *WRITE], ["rbac.authorization.k8s.io"], ["roles", "rolebindings"]),
            _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        ]),
        rbac_pb2.ClusterRole(metadata=_meta("system:discovery"), rules=[rbac_pb2.PolicyRule(
            verbs=["get"], non_resource_urls=["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz",
                                              "/openapi", "/openapi/*", "/version", "/version/"])]),
        rbac_pb2.ClusterRole(metadata=_meta("system:basic-user"), rules=[
            _rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        rbac_pb2.ClusterRole(metadata=_meta("system:kube-scheduler"), rules=[
            _rule([*READ, "delete"], [""], ["pods"]),
            _rule(["create"], [""], ["pods/binding", "bindings"]),
            _rule(["update", "patch"], [""], ["pods/status"]),
            _rule(READ, [""], ["nodes", "namespaces", "services", "replicationcontrollers", "persistentvolumes"]),
            _rule([*READ, "update", "patch"], [""], ["persistentvolumeclaims"]),
            _rule(READ, ["apps"], ["replicasets", "statefulsets"]),
            _rule(READ, ["policy"], ["poddisruptionbudgets"]),
            _rule(READ, ["storage.k8s.io"], ["storageclasses", "csinodes", "csidrivers", "csistoragecapacities"]),
            _rule(READ, ["scheduling.k8s.io"], ["priorityclasses"]),
            _rule([*READ, "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]),
            _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"]),
        ]),
        # One identity runs every controller (Kubernetes gives each its service account): it manages every
        # kind but RBAC's own, which it only reads and deletes (a deleted namespace's, the garbage collector's),
        # and may not grant, escalate or impersonate. It writes aggregated ClusterRoles' rules: an update the
        # escalation check allows only when the rules are exactly what the role's selectors gather.
        rbac_pb2.ClusterRole(metadata=_meta("system:kube-controller-manager"), rules=[
            _rule([*READ, *WRITE], _groups_but_rbac(), ["*"]),
            _rule([*READ, "delete", "deletecollection"], [rbac.GROUP], ["*"]),
            _rule(["update"], [rbac.GROUP], ["clusterroles"])]),
        rbac_pb2.ClusterRole(metadata=_meta("system:node-proxier"), rules=[
            _rule(READ, [""], ["services", "endpoints", "nodes"]),
            _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"]),
        ]),
        rbac_pb2.ClusterRole(metadata=_meta("system:kubelite-dns"), rules=[
            _rule(READ, [""], ["services", "endpoints", "namespaces", "pods"]),
            _rule(["create", "update", "patch"], [""], ["endpoints"]),
            _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"]),
        ]),
    ]


def _subject(kind: str, name: str) -> rbac_pb2.Subject:
    return rbac_pb2.Subject(kind=kind, name=name, api_group=rbac.GROUP)


def _binding(name: str, role: str, *subjects: rbac_pb2.Subject) -> rbac_pb2.ClusterRoleBinding:
    return rbac_pb2.ClusterRoleBinding(metadata=_meta(name), subjects=list(subjects), role_ref=rbac_pb2.RoleRef(
        api_group=rbac.GROUP, kind="ClusterRole", name=role))


def cluster_role_bindings() -> list[rbac_pb2.ClusterRoleBinding]:
    return [
        _binding("cluster-admin", "cluster-admin", _subject("Group", "system:masters")),
        _binding("system:discovery", "system:discovery", _subject("Group", AUTHENTICATED)),
        _binding("system:basic-user", "system:basic-user", _subject("Group", AUTHENTICATED)),
        _binding("system:kube-scheduler", "system:kube-scheduler", _subject("User", "system:kube-scheduler")),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 _subject("User", "system:kube-controller-manager")),
        _binding("system:node-proxier", "system:node-proxier", _subject("User", "system:kube-proxy")),
        _binding("system:kubelite-dns", "system:kubelite-dns", _subject("User", "system:kubelite-dns")),
    ]


def reconciled(wanted: rbac_pb2.ClusterRole | rbac_pb2.ClusterRoleBinding,
               stored: rbac_pb2.ClusterRole | rbac_pb2.ClusterRoleBinding) -> bool:
    """Whether a stored default object still says what the default says (an object whose
    `rbac.authorization.k8s.io/autoupdate` annotation is "false" is the administrator's and always is)."""
    if stored.metadata.annotations.get("rbac.authorization.k8s.io/autoupdate") == "false":
        return True
    if isinstance(wanted, rbac_pb2.ClusterRole) and wanted.HasField("aggregation_rule"):
        # An aggregated role's rules are the clusterrole-aggregation controller's to write.
        return stored.aggregation_rule == wanted.aggregation_rule  # type: ignore[union-attr]
    if isinstance(wanted, rbac_pb2.ClusterRole):
        return (list(stored.rules) == list(wanted.rules)  # type: ignore[union-attr]
                and stored.aggregation_rule == wanted.aggregation_rule)  # type: ignore[union-attr]
    return (stored.role_ref == wanted.role_ref  # type: ignore[union-attr]
            and all(s in stored.subjects for s in wanted.subjects))  # type: ignore[union-attr]
