"""The clusterrole-aggregation controller on a real apiserver, running as the controller-manager's identity:
the Kubernetes documentation's aggregation examples fill in, follow label changes, and reach admin/edit/view."""

from __future__ import annotations

from typing import Any

import yaml

from api import convert
from api.pb import rbac_pb2
from client.api import Client

from .conftest import Running, eventually, start_manager

# From the Kubernetes documentation ("Aggregated ClusterRoles"), unchanged.
DOCS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring
aggregationRule:
  clusterRoleSelectors:
  - matchLabels:
      rbac.example.com/aggregate-to-monitoring: "true"
rules: [] # The control plane automatically fills in the rules
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring-endpoints
  labels:
    rbac.example.com/aggregate-to-monitoring: "true"
rules:
- apiGroups: [""]
  resources: ["services", "endpointslices", "pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: aggregate-cron-tabs-edit
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
rules:
- apiGroups: ["stable.example.com"]
  resources: ["crontabs"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
"""


def _resources(role: rbac_pb2.ClusterRole) -> set[str]:
    return {f"{g}/{r}" for rule in role.rules for g in rule.api_groups for r in rule.resources}


async def _has(client: Client, name: str, resource: str, present: bool = True) -> Any:
    role = await client.get("clusterroles", name)
    return (resource in _resources(role)) == present and role


async def test_aggregated_roles_are_filled_in_and_follow_their_parts(client: Client, apiserver: Any,
                                                                     running: Running) -> None:
    """`monitoring` gets its part's rules, admin and edit (not view) get the crontabs rule, and a part that loses
    its label is taken out again; admin's defaults are there too, written by the controller-manager itself."""
    await start_manager(running, apiserver.address, controllers=("clusterrole-aggregation",))
    for doc in yaml.safe_load_all(DOCS):
        await client.create(convert.from_dict(rbac_pb2.ClusterRole, doc))
    monitoring = await eventually(lambda: _has(client, "monitoring", "/endpointslices"), what="monitoring filled in")
    assert _resources(monitoring) == {"/services", "/endpointslices", "/pods"}
    for name in ("admin", "edit"):
        await eventually(lambda n=name: _has(client, n, "stable.example.com/crontabs"), what=f"{name} has crontabs")
    admin = await client.get("clusterroles", "admin")
    assert {"/pods", "rbac.authorization.k8s.io/rolebindings"} <= _resources(admin)
    assert "stable.example.com/crontabs" not in _resources(await client.get("clusterroles", "view"))

    part = await client.get("clusterroles", "aggregate-cron-tabs-edit")
    del part.metadata.labels["rbac.authorization.k8s.io/aggregate-to-edit"]
    await client.update(part)
    await eventually(lambda: _has(client, "edit", "stable.example.com/crontabs", present=False), what="edit loses it")
    assert "stable.example.com/crontabs" in _resources(await client.get("clusterroles", "admin"))
