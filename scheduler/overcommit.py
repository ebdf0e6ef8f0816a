"""An independent overcommit checker: do the pods bound to each node fit its allocatable cpu, memory and pods?

Deliberately written apart from the scheduler's own accounting (it imports
only api/): tests and the benchmark use it to judge the scheduler's results
from the final Node and Pod objects, as an outside observer would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from api import quantity
from api.pb import core_pb2


@dataclass(frozen=True)
class Overcommit:
    node: str
    resource: str  # cpu (milli), memory (bytes) or pods
    requested: int
    allocatable: int

    def __str__(self) -> str:
        return f"node {self.node}: {self.resource} requested {self.requested} > allocatable {self.allocatable}"


def _request(pod: core_pb2.Pod, resource: str, parse) -> int:  # type: ignore[no-untyped-def]
    def of(c: core_pb2.Container) -> int:
        r = c.resources.requests
        return parse(r[resource]) if resource in r else 0

    regular = sum(of(c) for c in pod.spec.containers)
    init = max((of(c) for c in pod.spec.init_containers), default=0)
    return max(regular, init)


def pod_requests(pod: core_pb2.Pod) -> dict[str, int]:
    """cpu in millicores, memory in bytes: max(sum of containers, largest init container), per resource."""
    return {"cpu": _request(pod, "cpu", quantity.milli), "memory": _request(pod, "memory", quantity.value)}


def node_allocatable(node: core_pb2.Node) -> dict[str, int]:
    alloc = dict(node.status.allocatable) or dict(node.status.capacity)
    return {
        "cpu": quantity.milli(alloc["cpu"]) if "cpu" in alloc else 0,
        "memory": quantity.value(alloc["memory"]) if "memory" in alloc else 0,
        "pods": quantity.value(alloc["pods"]) if "pods" in alloc else 0,
    }


def compute_overcommit(nodes: Iterable[core_pb2.Node], pods: Iterable[core_pb2.Pod]) -> list[Overcommit]:
    """Every (node, resource) whose bound, unfinished pods request more than the node's allocatable."""
    used: dict[str, dict[str, int]] = {}
    for pod in pods:
        node = pod.spec.node_name
        if not node or pod.status.phase in ("Succeeded", "Failed"):
            continue
        u = used.setdefault(node, {"cpu": 0, "memory": 0, "pods": 0})
        req = pod_requests(pod)
        u["cpu"] += req["cpu"]
        u["memory"] += req["memory"]
        u["pods"] += 1
    out = []
    allocs = {n.metadata.name: node_allocatable(n) for n in nodes}
    for name, u in sorted(used.items()):
        alloc = allocs.get(name)
        if alloc is None:
            continue  # a node that is gone: nothing left to overcommit
        for resource in ("cpu", "memory", "pods"):
            if u[resource] > alloc[resource]:
                out.append(Overcommit(name, resource, u[resource], alloc[resource]))
    return out
