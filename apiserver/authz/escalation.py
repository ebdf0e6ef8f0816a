"""No escalation through RBAC itself: a user writes a Role or ClusterRole only with rules it already holds (or
the `escalate` verb on it), and a binding only to a role whose rules it holds (or the `bind` verb on that role),
as Kubernetes' RBAC storage checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from api import rbac
from api.errors import PermissionDeniedError
from api.pb import rbac_pb2
from apiserver.authn import UserInfo
from apiserver.authz.attributes import Attributes
from apiserver.authz.rbac import CLUSTER_ROLE

Allowed = Callable[[Attributes], bool]


def rule_attributes(user: UserInfo, rule: rbac_pb2.PolicyRule, namespace: str) -> Iterator[Attributes]:
    """Every request a rule allows, as attributes (a wildcard stays a wildcard: only a wildcard covers it)."""
    for verb in rule.verbs:
        for url in rule.non_resource_urls:
            yield Attributes(user, verb, path=url)
        for group in rule.api_groups:
            for resource in rule.resources:
                base, _, sub = resource.partition("/")
                for name in rule.resource_names or [""]:
                    yield Attributes(user, verb, base, sub, namespace, name, group)


def _describe(a: Attributes) -> str:
    if not a.is_resource:
        return f'{{NonResourceURLs:["{a.path}"], Verbs:["{a.verb}"]}}'
    names = f', ResourceNames:["{a.name}"]' if a.name else ""
    return f'{{APIGroups:["{a.api_group}"], Resources:["{a.full_resource}"]{names}, Verbs:["{a.verb}"]}}'


def missing(rules: Iterable[rbac_pb2.PolicyRule], user: UserInfo, namespace: str, allowed: Allowed) -> list[str]:
    """The permissions of `rules` the user does not hold (in `namespace`, or cluster-wide for "")."""
    return [_describe(a) for r in rules for a in rule_attributes(user, r, namespace) if not allowed(a)]


def check_role(user: UserInfo, role: rbac_pb2.Role | rbac_pb2.ClusterRole, allowed: Allowed, *,
               old: rbac_pb2.ClusterRole | None = None, cluster_roles: Iterable[rbac_pb2.ClusterRole] = ()) -> None:
    """Raise PermissionDeniedError if writing this role would grant what the user does not hold. For a
    ClusterRole, `old` is the stored one (None on create) and `cluster_roles` every stored ClusterRole."""
    cluster = isinstance(role, rbac_pb2.ClusterRole)
    namespace = "" if cluster else role.metadata.namespace or "default"
    resource = "clusterroles" if cluster else "roles"
    if allowed(Attributes(user, "escalate", resource, namespace=namespace, name=role.metadata.name,
                          api_group=rbac.GROUP)):
        return
    if isinstance(role, rbac_pb2.ClusterRole) and role.HasField("aggregation_rule"):
        # A selector can gather any role's rules, so setting one is escalation, as Kubernetes has it.
        if old is None or old.aggregation_rule != role.aggregation_rule:
            raise PermissionDeniedError(f'{resource}.{rbac.GROUP} "{role.metadata.name}" is forbidden: must have '
                                        "cluster-admin privileges to use the aggregationRule")
        if list(role.rules) == rbac.aggregate(role, cluster_roles):
            return  # exactly what the stored selectors already grant: writing it grants nothing new
    lacking = missing(role.rules, user, namespace, allowed)
    if lacking:
        raise PermissionDeniedError(f'{resource}.{rbac.GROUP} "{role.metadata.name}" is forbidden: user '
                                    f'"{user.name}" is attempting to grant RBAC permissions not currently held: '
                                    + ", ".join(lacking[:10]) + (" ..." if len(lacking) > 10 else ""))


def check_binding(user: UserInfo, binding: rbac_pb2.RoleBinding | rbac_pb2.ClusterRoleBinding,
                  role_rules: list[rbac_pb2.PolicyRule], allowed: Allowed) -> None:
    """Raise PermissionDeniedError unless the user may bind the binding's role (the `bind` verb on it, or every
    permission it grants)."""
    cluster = isinstance(binding, rbac_pb2.ClusterRoleBinding)
    namespace = "" if cluster else binding.metadata.namespace or "default"
    ref = binding.role_ref
    resource = "clusterroles" if ref.kind == CLUSTER_ROLE else "roles"
    if allowed(Attributes(user, "bind", resource, namespace=namespace, name=ref.name, api_group=rbac.GROUP)):
        return
    lacking = missing(role_rules, user, namespace, allowed)
    if lacking:
        kind = "clusterrolebindings" if cluster else "rolebindings"
        raise PermissionDeniedError(f'{kind}.{rbac.GROUP} "{binding.metadata.name}" is forbidden: user '
                                    f'"{user.name}" is attempting to grant RBAC permissions not currently held: '
                                    + ", ".join(lacking[:10]) + (" ..." if len(lacking) > 10 else ""))
