"""PriorityClass validation as Kubernetes': bounded user values, the reserved `system-` prefix, fixed values."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert, defaults, validation
from api.pb import scheduling_pb2

RESERVED = ("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
            "error: ")


def _pc(**fields: Any) -> scheduling_pb2.PriorityClass:
    data = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high-priority"},
            "value": 1000000, **fields}
    pc = convert.from_dict(scheduling_pb2.PriorityClass, data)
    defaults.apply(pc)
    return pc  # type: ignore[return-value]


@pytest.mark.parametrize(("fields", "errors"), [
    pytest.param({}, [], id="docs-example"),
    pytest.param({"value": 1_000_000_000, "globalDefault": True, "preemptionPolicy": "Never"}, [],
                 id="highest-user-value"),
    pytest.param({"value": -5}, [], id="negative-value"),
    pytest.param({"value": 1_000_000_001},
                 ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
                 id="above-user-range"),
    pytest.param({"metadata": {"name": "system-node-critical"}, "value": 2000001000}, [], id="system-class"),
    pytest.param({"metadata": {"name": "system-mine"}, "value": 10},
                 [RESERVED + "system-mine is not a known system priority class"], id="system-prefix-reserved"),
    pytest.param({"metadata": {"name": "system-node-critical"}, "value": 10},
                 [RESERVED + "value of system-node-critical PriorityClass must be 2000001000"],
                 id="system-class-value"),
    pytest.param({"metadata": {"name": "system-cluster-critical"}, "value": 2000000000, "globalDefault": True},
                 [RESERVED + "globalDefault of system-cluster-critical PriorityClass must be false"],
                 id="system-class-not-default"),
    pytest.param({"preemptionPolicy": "Sometimes"},
                 ["preemptionPolicy: Unsupported value: 'Sometimes': supported values: \"PreemptLowerPriority\", "
                  "\"Never\""], id="bad-policy"),
    pytest.param({"metadata": {"name": "High_Priority"}},
                 ["metadata.name: Invalid value: 'High_Priority': a lowercase RFC 1123 subdomain must consist of lower "
                  "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"],
                 id="name-not-subdomain"),
    pytest.param({"metadata": {"name": "x", "namespace": "default"}},
                 ["metadata.namespace: Forbidden: not allowed on this type"], id="cluster-scoped"),
])
def test_priority_class_validation(fields: dict[str, Any], errors: list[str]) -> None:
    """Each class gives exactly the expected field errors."""
    assert [str(e) for e in validation.validate(_pc(**fields))] == errors


@pytest.mark.parametrize(("new", "errors"), [
    pytest.param({"description": "changed", "globalDefault": True}, [], id="description-and-default-may-change"),
    pytest.param({"value": 5}, ["value: Forbidden: may not be changed in an update."], id="value-fixed"),
    pytest.param({"preemptionPolicy": "Never"},
                 ["preemptionPolicy: Invalid value: 'Never': field is immutable"], id="policy-fixed"),
])
def test_priority_class_update(new: dict[str, Any], errors: list[str]) -> None:
    """A class's value and preemptionPolicy may not change; a left-out policy defaults to the stored one's default."""
    assert [str(e) for e in validation.validate_update(_pc(**new), _pc())] == errors


def test_default_policy() -> None:
    """A class without preemptionPolicy gets PreemptLowerPriority, as Kubernetes defaults it."""
    assert _pc().preemption_policy == "PreemptLowerPriority"
