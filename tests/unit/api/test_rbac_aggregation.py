"""ClusterRole aggregation: what the aggregation controller writes, and what the apiserver's reconciliation of
its default roles leaves alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api import rbac
from api.errors import PermissionDeniedError
from api.pb import meta_pb2, rbac_pb2
from apiserver.authn import UserInfo
from apiserver.authz import bootstrap, escalation
from apiserver.authz.attributes import Attributes
from apiserver.authz.rbac import RuleIndex


def rule(verbs: str, resources: str, group: str = "") -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=verbs.split(","), api_groups=[group], resources=resources.split(","))


def role(name: str, labels: dict[str, str] | None = None, rules: list[rbac_pb2.PolicyRule] | None = None,
         selects: list[dict[str, str]] | None = None) -> rbac_pb2.ClusterRole:
    r = rbac_pb2.ClusterRole(metadata=meta_pb2.ObjectMeta(name=name, labels=labels or {}), rules=rules or [])
    if selects is not None:
        r.aggregation_rule.cluster_role_selectors.extend(meta_pb2.LabelSelector(match_labels=s) for s in selects)
    return r


PODS, CRONTABS, NODES = rule("get,list", "pods"), rule("get", "crontabs", "stable.example.com"), rule("get", "nodes")
MON = {"rbac.example.com/aggregate-to-monitoring": "true"}


@pytest.mark.parametrize("target,others,expected", [
    pytest.param(role("monitoring", selects=[MON]), [role("b", MON, [PODS]), role("a", MON, [CRONTABS])],
                 [CRONTABS, PODS], id="matching-roles-by-name"),
    pytest.param(role("monitoring", selects=[MON]), [role("a", MON, [PODS]), role("b", MON, [PODS, NODES])],
                 [PODS, NODES], id="each-rule-once"),
    pytest.param(role("monitoring", selects=[MON]), [role("a", {}, [PODS])], [], id="unlabelled-not-taken"),
    pytest.param(role("monitoring", MON, [NODES], selects=[MON]), [], [], id="own-rules-not-kept"),
    pytest.param(role("m", selects=[{"x": "1"}, MON]), [role("a", MON, [PODS]), role("z", {"x": "1"}, [NODES])],
                 [NODES, PODS], id="selector-by-selector"),
    pytest.param(role("m", selects=[{}]), [role("a", {}, [PODS])], [PODS], id="empty-selector-takes-all"),
])
def test_aggregate(target: rbac_pb2.ClusterRole, others: list[rbac_pb2.ClusterRole],
                   expected: list[rbac_pb2.PolicyRule]) -> None:
    """The rules of every other role a selector matches, in selector then name order, each once."""
    assert rbac.aggregate(target, [target, *others]) == expected


def test_reconciling_a_default_aggregated_role_keeps_its_aggregated_rules() -> None:
    """The apiserver's start does not put back `admin` because the controller filled in its rules; a changed
    aggregationRule is put back."""
    wanted = next(r for r in bootstrap.cluster_roles() if r.metadata.name == "admin")
    stored = rbac_pb2.ClusterRole()
    stored.CopyFrom(wanted)
    stored.rules.append(PODS)
    assert bootstrap.reconciled(wanted, stored)
    del stored.aggregation_rule.cluster_role_selectors[1:]
    assert not bootstrap.reconciled(wanted, stored)


CM = UserInfo("system:kube-controller-manager", groups=("system:authenticated",))
ADMIN_PARTS = [role("a", {"rbac.authorization.k8s.io/aggregate-to-admin": "true"},
                    [rule("create", "rolebindings", rbac.GROUP)])]


def _as_controller_manager() -> Callable[[Attributes], bool]:
    index = RuleIndex.build([], [*bootstrap.cluster_roles(), *ADMIN_PARTS], [], bootstrap.cluster_role_bindings())
    return lambda a: index.allowed_by(a) is not None


def _admin(rules: list[rbac_pb2.PolicyRule], selects: str = "admin") -> rbac_pb2.ClusterRole:
    return role("admin", rules=rules, selects=[{f"rbac.authorization.k8s.io/aggregate-to-{selects}": "true"}])


@pytest.mark.parametrize("new,old,refused", [
    pytest.param(_admin([rule("create", "rolebindings", rbac.GROUP)]), _admin([]), "",
                 id="exactly-the-aggregate"),
    pytest.param(_admin([rule("create", "rolebindings", rbac.GROUP), rule("escalate", "clusterroles", rbac.GROUP)]),
                 _admin([]), "attempting to grant RBAC permissions not currently held", id="more-than-the-aggregate"),
    pytest.param(_admin([]), None, "must have cluster-admin privileges to use the aggregationRule",
                 id="create-with-a-selector"),
    pytest.param(_admin([], selects="view"), _admin([]), "must have cluster-admin privileges to use the "
                 "aggregationRule", id="selector-changed"),
])
def test_writing_aggregated_rules_back_is_no_escalation(new: rbac_pb2.ClusterRole, old: rbac_pb2.ClusterRole | None,
                                                        refused: str) -> None:
    """The controller-manager (no `escalate`) may write an aggregated role's rules only as its unchanged
    selectors gather them; setting or changing a selector needs `escalate`, as in Kubernetes."""
    stored = [*ADMIN_PARTS, *([old] if old is not None else [])]
    if refused:
        with pytest.raises(PermissionDeniedError, match=refused):
            escalation.check_role(CM, new, _as_controller_manager(), old=old, cluster_roles=stored)
    else:
        escalation.check_role(CM, new, _as_controller_manager(), old=old, cluster_roles=stored)
