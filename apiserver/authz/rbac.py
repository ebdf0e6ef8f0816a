"""RBAC: Roles and ClusterRoles say what, bindings say who; a request is allowed if any rule bound to its user
(or one of its groups, or its service account) matches it. Deny by default.

`RuleIndex` is built from the four kinds' objects (the watch cache's) and answers in memory: rules by
subject, cluster-wide and per namespace, with ClusterRole aggregation resolved when it is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from api import rbac as api_rbac
from api.pb import rbac_pb2
from apiserver.authn import UserInfo
from apiserver.authz.attributes import Attributes

SA_PREFIX = "system:serviceaccount:"
# Subjects' and roleRefs' kinds.
USER, GROUP, SERVICE_ACCOUNT = "User", "Group", "ServiceAccount"
CLUSTER_ROLE = "ClusterRole"


def _has(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule_resources:
        if r == "*" or r == combined:
            return True
        if subresource and (r == f"*/{subresource}" or r == f"{resource}/*"):
            return True
    return False


def _path_matches(urls: Iterable[str], path: str) -> bool:
    return any(u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in urls)


def rule_allows(rule: rbac_pb2.PolicyRule, a: Attributes) -> bool:
    """Whether one rule allows the request (Kubernetes' RuleAllows)."""
    if not _has(rule.verbs, a.verb):
        return False
    if not a.is_resource:
        return _path_matches(rule.non_resource_urls, a.path)
    if not _has(rule.api_groups, a.api_group) or not _resource_matches(rule.resources, a.resource, a.subresource):
        return False
    return not rule.resource_names or a.name in rule.resource_names


def subject_matches(s: rbac_pb2.Subject, user: UserInfo, binding_namespace: str = "") -> bool:
    """Whether a binding's subject names this user (a User, one of its Groups, or its ServiceAccount)."""
    if s.kind == USER:
        return s.name == user.name
    if s.kind == GROUP:
        return s.name in user.groups
    if s.kind == SERVICE_ACCOUNT:
        return user.name == f"{SA_PREFIX}{s.namespace or binding_namespace}:{s.name}"
    return False


def subject_keys(user: UserInfo) -> list[str]:
    """The index keys a user's bindings are filed under."""
    return [f"User:{user.name}", *(f"Group:{g}" for g in user.groups)]


def _subject_key(s: rbac_pb2.Subject, binding_namespace: str) -> str | None:
    if s.kind in (USER, GROUP):
        return f"{s.kind}:{s.name}"
    if s.kind == SERVICE_ACCOUNT:
        return f"User:{SA_PREFIX}{s.namespace or binding_namespace}:{s.name}"
    return None


def aggregated_rules(roles: dict[str, rbac_pb2.ClusterRole]) -> dict[str, list[rbac_pb2.PolicyRule]]:
    """Each ClusterRole's effective rules: its own, plus, for an aggregated role, those of every ClusterRole its
    selectors match (as the clusterrole-aggregation controller fills them in)."""
    out: dict[str, list[rbac_pb2.PolicyRule]] = {}
    for name, role in roles.items():
        rules = list(role.rules)
        if role.HasField("aggregation_rule"):
            # Until the controller has written them back, the aggregated rules are added here.
            rules += [r for r in api_rbac.aggregate(role, roles.values()) if r not in rules]
        out[name] = rules
    return out


@dataclass
class RuleIndex:
    """Rules by subject key, cluster-wide and per namespace, each with the binding that granted it."""

    cluster: dict[str, list[tuple[str, rbac_pb2.PolicyRule]]] = field(default_factory=dict)
    namespaced: dict[tuple[str, str], list[tuple[str, rbac_pb2.PolicyRule]]] = field(default_factory=dict)

    @classmethod
    def build(cls, roles: Iterable[rbac_pb2.Role], cluster_roles: Iterable[rbac_pb2.ClusterRole],
              bindings: Iterable[rbac_pb2.RoleBinding],
              cluster_bindings: Iterable[rbac_pb2.ClusterRoleBinding]) -> RuleIndex:
        index = cls()
        by_name = {r.metadata.name: r for r in cluster_roles}
        effective = aggregated_rules(by_name)
        ns_roles = {(r.metadata.namespace, r.metadata.name): list(r.rules) for r in roles}
        for b in cluster_bindings:
            if b.role_ref.kind != CLUSTER_ROLE:
                continue
            rules = effective.get(b.role_ref.name, [])
            why = f'ClusterRoleBinding "{b.metadata.name}" of ClusterRole "{b.role_ref.name}"'
            for s in b.subjects:
                key = _subject_key(s, "")
                if key is not None and rules:
                    index.cluster.setdefault(key, []).extend((why, r) for r in rules)
        for rb in bindings:
            ns = rb.metadata.namespace
            if rb.role_ref.kind == CLUSTER_ROLE:
                rules = effective.get(rb.role_ref.name, [])
            else:
                rules = ns_roles.get((ns, rb.role_ref.name), [])
            why = f'RoleBinding "{ns}/{rb.metadata.name}" of {rb.role_ref.kind} "{rb.role_ref.name}"'
            for s in rb.subjects:
                key = _subject_key(s, ns)
                if key is not None and rules:
                    index.namespaced.setdefault((ns, key), []).extend((why, r) for r in rules)
        return index

    def rules_for(self, user: UserInfo, namespace: str) -> list[rbac_pb2.PolicyRule]:
        """Every rule granted to `user`: cluster-wide, and in `namespace` if one is given."""
        keys = subject_keys(user)
        rules = [rule for key in keys for _, rule in self.cluster.get(key, ())]
        if namespace:
            rules += [rule for key in keys for _, rule in self.namespaced.get((namespace, key), ())]
        return rules

    def allowed_by(self, a: Attributes) -> str | None:
        """The binding that allows the request, or None."""
        keys = subject_keys(a.user)
        for key in keys:
            for why, rule in self.cluster.get(key, ()):
                if rule_allows(rule, a):
                    return why
        if a.namespace:
            for key in keys:
                for why, rule in self.namespaced.get((a.namespace, key), ()):
                    if rule_allows(rule, a):
                        return why
        return None
