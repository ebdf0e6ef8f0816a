"""Authorization: may this user do this? Asked for every request right after authentication.

attributes  a request as (user, verb, resource, subresource, namespace, name); every Api method mapped in one place
rbac        Roles, ClusterRoles and their bindings: rule matching and an in-memory index by subject
node        the node authorizer: a kubelet's own pods, the objects they name, its own Node and Lease
noderestriction  admission: a kubelet creates only mirror pods, never sets node-restriction labels
escalation  no escalation through RBAC: grant only what you hold (or `escalate`, `bind`)
bootstrap   the default roles and bindings, created and reconciled at every apiserver start

`Authorizer.authorize` is the one entry: system:masters may do anything; a kubelet is asked of the node
authorizer, then of RBAC; everyone else of RBAC. Deny by default, with Kubernetes' message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from api import kinds
from api.errors import PermissionDeniedError
from api.pb import core_pb2, rbac_pb2
from apiserver.authn import AUTHENTICATED, UserInfo
from apiserver.authz import attributes, escalation, rbac
from apiserver.authz import node as node_authz
from apiserver.authz.attributes import Attributes, of_request
from apiserver.authz.rbac import RuleIndex

__all__ = ["Attributes", "Authorizer", "Decision", "DeniedError", "attributes", "forbidden", "impersonate",
           "of_request"]

MASTERS = "system:masters"
_RBAC_KINDS = tuple(kinds.lookup(k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"))
_PODS = kinds.lookup("pods")
_PVS = kinds.lookup("persistentvolumes")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def forbidden_message(a: Attributes) -> str:
    """Kubernetes' words for a denial (what kubectl prints after "Error from server (Forbidden): ")."""
    user = a.user.name
    if not a.is_resource:
        return f'User "{user}" cannot {a.verb} path "{a.path}"'
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{user}" cannot {a.verb} resource "{a.full_resource}" in API group "{a.api_group}" {where}'


class DeniedError(PermissionDeniedError):
    """A denial, with the attributes that were denied (for the audit log)."""

    def __init__(self, message: str, attrs: Attributes) -> None:
        super().__init__(message)
        self.attrs = attrs


def forbidden(a: Attributes) -> DeniedError:
    """The PERMISSION_DENIED error for a denied request: `pods "x" is forbidden: User "alice" cannot ...`."""
    if not a.is_resource:
        return DeniedError(f"forbidden: {forbidden_message(a)}", a)
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    named = f'{qualified} "{a.name}"' if a.name else qualified
    return DeniedError(f"{named} is forbidden: {forbidden_message(a)}", a)


class CacheGraph:
    """The node authorizer's view of pods, read from the watch cache's by-node index."""

    def __init__(self, cache: object) -> None:
        self.cache = cache

    def pods_on(self, node: str) -> Iterable[core_pb2.Pod]:
        store = self.cache.store(_PODS)  # type: ignore[attr-defined]
        for key in list(store.by_index.get(node, ())):
            entry = store.objects.get(key)
            if entry is not None:
                yield entry.obj

    def pod(self, namespace: str, name: str) -> core_pb2.Pod | None:
        entry = self.cache.get(_PODS, namespace, name)  # type: ignore[attr-defined]
        return entry.obj if entry is not None else None

    def volume(self, name: str) -> core_pb2.PersistentVolume | None:
        entry = self.cache.get(_PVS, "", name)  # type: ignore[attr-defined]
        return entry.obj if entry is not None else None


class Authorizer:
    """RBAC over the watch cache, with the node authorizer in front for kubelets. `enabled=False` allows
    everything (benchmarks' baseline only)."""

    def __init__(self, cache: object, *, enabled: bool = True) -> None:
        self.cache = cache
        self.enabled = enabled
        self.graph = CacheGraph(cache)
        self._index = RuleIndex()
        self._versions: tuple[int, ...] = ()

    def index(self) -> RuleIndex:
        """The rule index, rebuilt when a Role, ClusterRole or binding changed since the last call."""
        stores = [self.cache.store(k) for k in _RBAC_KINDS]  # type: ignore[attr-defined]
        versions = tuple(s.version for s in stores)
        if versions != self._versions:
            objs: list[list[rbac_pb2.Role]] = [[e.obj for e in s.objects.values()] for s in stores]
            self._index = RuleIndex.build(*objs)  # type: ignore[arg-type]
            self._versions = versions
        return self._index

    def authorize(self, a: Attributes) -> Decision:
        if not self.enabled:
            return Decision(True, "authorization is off")
        if MASTERS in a.user.groups:
            return Decision(True, "system:masters")
        node = node_authz.node_of(a.user)
        if node is not None:
            why = node_authz.authorize(a, node, self.graph)
            if why is not None:
                return Decision(True, f"node authorizer: {why}")
        why = self.index().allowed_by(a)
        if why is not None:
            return Decision(True, f"RBAC: allowed by {why}")
        return Decision(False, forbidden_message(a))

    def rules(self, user: UserInfo, namespace: str) -> tuple[list[rbac_pb2.PolicyRule], bool]:
        """The RBAC rules `user` holds in `namespace` (cluster-wide ones too), and whether they are incomplete: a
        node's authorizer, or system:masters, allows what no rule lists."""
        incomplete = node_authz.node_of(user) is not None or MASTERS in user.groups or not self.enabled
        return self.index().rules_for(user, namespace), incomplete

    def check(self, a: Attributes) -> None:
        """Raise PermissionDeniedError unless the request is allowed (and, for a write of an RBAC object, grants
        nothing its author does not hold)."""
        if not self.authorize(a).allowed:
            raise forbidden(a)
        if a.obj is not None and a.verb in ("create", "update", "patch") and not a.subresource and self.enabled \
                and MASTERS not in a.user.groups:
            self._check_escalation(a)

    def _check_escalation(self, a: Attributes) -> None:
        obj = a.obj
        allowed = lambda x: self.authorize(x).allowed  # noqa: E731
        if isinstance(obj, rbac_pb2.ClusterRole):
            roles = self._cluster_roles()
            escalation.check_role(a.user, obj, allowed, old=roles.get(obj.metadata.name) if a.verb != "create"
                                  else None, cluster_roles=roles.values())
        elif isinstance(obj, rbac_pb2.Role):
            escalation.check_role(a.user, obj, allowed)
        elif isinstance(obj, rbac_pb2.RoleBinding | rbac_pb2.ClusterRoleBinding):
            escalation.check_binding(a.user, obj, self._role_rules(obj), allowed)

    def _cluster_roles(self) -> dict[str, rbac_pb2.ClusterRole]:
        store = self.cache.store(_RBAC_KINDS[1])  # type: ignore[attr-defined]
        return {e.obj.metadata.name: e.obj for e in store.objects.values()}

    def _role_rules(self, binding: rbac_pb2.RoleBinding | rbac_pb2.ClusterRoleBinding) -> list[rbac_pb2.PolicyRule]:
        """The rules the binding's role grants (aggregated for a ClusterRole); none for a missing role."""
        ref = binding.role_ref
        if ref.kind == rbac.CLUSTER_ROLE:
            return rbac.aggregated_rules(self._cluster_roles()).get(ref.name, [])
        entry = self.cache.get(_RBAC_KINDS[0], binding.metadata.namespace or "default", ref.name)  # type: ignore[attr-defined]
        return list(entry.obj.rules) if entry is not None else []


IMPERSONATE_USER = "impersonate-user"
IMPERSONATE_GROUP = "impersonate-group"


def impersonate(authorizer: Authorizer, user: UserInfo, metadata: Iterable[tuple[str, object]]) -> UserInfo:
    """The user a request acts as: the caller, or the user (and groups) it impersonates, which it may only with
    the `impersonate` verb on users (and groups), as an admin has (`--as`, `--as-group`)."""
    as_user = ""
    as_groups: list[str] = []
    for key, value in metadata:
        if key == IMPERSONATE_USER and isinstance(value, str):
            as_user = value
        elif key == IMPERSONATE_GROUP and isinstance(value, str):
            as_groups.append(value)
    if not as_user and not as_groups:
        return user
    if not as_user:
        raise PermissionDeniedError("impersonating groups needs a user to impersonate too (--as)")
    wanted = [Attributes(user, "impersonate", "users", name=as_user),
              *(Attributes(user, "impersonate", "groups", name=g) for g in as_groups)]
    for a in wanted:
        if not authorizer.authorize(a).allowed:
            raise forbidden(a)
    groups = tuple(dict.fromkeys([*as_groups, AUTHENTICATED]))
    return UserInfo(as_user, groups=groups)
