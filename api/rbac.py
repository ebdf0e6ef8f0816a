"""RBAC objects' validation (Role, ClusterRole, RoleBinding, ClusterRoleBinding), as Kubernetes' rbac validation.

Names may hold colons (`system:kube-scheduler`): any path segment name. A rule needs verbs and either
resources (with apiGroups) or nonResourceURLs (ClusterRoles only); a binding's subjects are Users, Groups or
ServiceAccounts (namespaced), and its roleRef never changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api import labels
from api.errors import FieldError
from api.pb import rbac_pb2

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")
# Aggregated ClusterRoles: `admin`, `edit` and `view` gather every ClusterRole labelled so.
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

Errs = list[FieldError]


def aggregate(role: rbac_pb2.ClusterRole, roles: Iterable[rbac_pb2.ClusterRole]) -> list[rbac_pb2.PolicyRule]:
    """The rules Kubernetes' clusterrole-aggregation controller writes into an aggregated ClusterRole: those of
    every other ClusterRole its selectors match, selector by selector and role by name, each rule once."""
    others = sorted((r for r in roles if r.metadata.name != role.metadata.name), key=lambda r: r.metadata.name)
    out: list[rbac_pb2.PolicyRule] = []
    for selector in role.aggregation_rule.cluster_role_selectors:
        matches = labels.from_label_selector(selector).matches
        for other in others:
            if matches(other.metadata.labels):
                for rule in other.rules:
                    if rule not in out:
                        out.append(rule)
    return out


def name_error(name: str) -> str | None:
    """Kubernetes' path segment name: anything but "." and ".." without "/" or "%"."""
    if name in (".", ".."):
        return f'may not be "{name}"'
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain '{bad}'"
    return None


def _rules(rules: Iterable[rbac_pb2.PolicyRule], path: str, errs: Errs, *, cluster: bool) -> None:
    for i, r in enumerate(rules):
        p = f"{path}[{i}]"
        if not r.verbs:
            errs.append(FieldError(f"{p}.verbs", "Required value", "verbs must contain at least one value"))
        if r.non_resource_urls:
            if not cluster:
                errs.append(FieldError(f"{p}.nonResourceURLs", "Invalid value",
                                       "namespaced rules cannot apply to non-resource URLs", list(r.non_resource_urls)))
            if r.api_groups or r.resources:
                errs.append(FieldError(f"{p}.nonResourceURLs", "Invalid value",
                                       "rules cannot apply to both regular resources and non-resource URLs",
                                       list(r.non_resource_urls)))
            continue
        if not r.api_groups:
            errs.append(FieldError(f"{p}.apiGroups", "Required value",
                                   "resource rules must supply at least one api group"))
        if not r.resources:
            errs.append(FieldError(f"{p}.resources", "Required value",
                                   "resource rules must supply at least one resource"))


def validate_role(role: rbac_pb2.Role, errs: Errs) -> None:
    _rules(role.rules, "rules", errs, cluster=False)


def validate_cluster_role(role: rbac_pb2.ClusterRole, errs: Errs) -> None:
    _rules(role.rules, "rules", errs, cluster=True)
    if role.HasField("aggregation_rule"):
        selectors = role.aggregation_rule.cluster_role_selectors
        if not selectors:
            errs.append(FieldError("aggregationRule.clusterRoleSelectors", "Required value",
                                   "at least one clusterRoleSelector is required if aggregationRule is non-nil"))
        for i, sel in enumerate(selectors):
            errs.extend(labels.label_selector_errors(sel, f"aggregationRule.clusterRoleSelectors[{i}]"))


def _subjects(subjects: Iterable[rbac_pb2.Subject], errs: Errs) -> None:
    for i, s in enumerate(subjects):
        p = f"subjects[{i}]"
        if not s.name:
            errs.append(FieldError(f"{p}.name", "Required value", ""))
        if s.kind == "ServiceAccount":
            if s.api_group:
                errs.append(FieldError(f"{p}.apiGroup", "Unsupported value", 'supported values: ""', s.api_group))
            if not s.namespace:
                errs.append(FieldError(f"{p}.namespace", "Required value", ""))
        elif s.kind in ("User", "Group"):
            if s.api_group != GROUP:
                errs.append(FieldError(f"{p}.apiGroup", "Unsupported value", f'supported values: "{GROUP}"',
                                       s.api_group))
        else:
            choices = ", ".join(f'"{k}"' for k in SUBJECT_KINDS)
            errs.append(FieldError(f"{p}.kind", "Unsupported value", f"supported values: {choices}", s.kind))


def _role_ref(ref: rbac_pb2.RoleRef, errs: Errs, *, cluster: bool) -> None:
    if ref.api_group != GROUP:
        errs.append(FieldError("roleRef.apiGroup", "Unsupported value", f'supported values: "{GROUP}"',
                               ref.api_group))
    allowed = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.kind not in allowed:
        errs.append(FieldError("roleRef.kind", "Unsupported value",
                               "supported values: " + ", ".join(f'"{k}"' for k in allowed), ref.kind))
    if not ref.name:
        errs.append(FieldError("roleRef.name", "Required value", ""))
    elif (why := name_error(ref.name)) is not None:
        errs.append(FieldError("roleRef.name", "Invalid value", why, ref.name))


def validate_role_binding(b: rbac_pb2.RoleBinding, errs: Errs) -> None:
    _role_ref(b.role_ref, errs, cluster=False)
    _subjects(b.subjects, errs)


def validate_cluster_role_binding(b: rbac_pb2.ClusterRoleBinding, errs: Errs) -> None:
    _role_ref(b.role_ref, errs, cluster=True)
    _subjects(b.subjects, errs)


def validate_binding_update(new: Any, old: Any, errs: Errs) -> None:
    """roleRef is immutable: a binding to another role is a new binding."""
    if new.role_ref != old.role_ref:
        errs.append(FieldError("roleRef", "Invalid value", "cannot change roleRef",
                               f"{new.role_ref.kind}/{new.role_ref.name}"))
