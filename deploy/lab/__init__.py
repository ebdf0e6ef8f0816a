"""The local lab: a whole cluster on one machine, in network namespaces joined by a bridge."""

from deploy.lab.network import (
    NetworkError,
    all_lab_namespaces,
    apply_link_state,
    apply_service_route,
    apply_topology,
    destroy_topology,
    lab_namespaces,
    netns_path,
)
from deploy.lab.plan import LabPlan, LabPlanError, Member, Node, Paths, Route, plan_lab
from deploy.lab.procs import ProcError, ProcRecord, Supervisor, is_alive

__all__ = [
    "LabPlan",
    "LabPlanError",
    "Member",
    "NetworkError",
    "Node",
    "Paths",
    "ProcError",
    "ProcRecord",
    "Route",
    "Supervisor",
    "all_lab_namespaces",
    "apply_link_state",
    "apply_service_route",
    "apply_topology",
    "destroy_topology",
    "is_alive",
    "lab_namespaces",
    "netns_path",
    "plan_lab",
]
