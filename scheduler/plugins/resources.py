"""NodeResourcesFit (filter, and LeastAllocated or MostAllocated score) and NodeResourcesBalancedAllocation.

Requests are the pod's effective requests (max of the containers' sum and the
largest init container); a resource the pod does not request is not checked,
as in kube-scheduler's fitsRequest. Scores use non-zero requests, so pods
without requests still spread.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.framework.config import LEAST_ALLOCATED, STRATEGIES
from scheduler.framework.interface import SUCCESS, CycleState, Status, unschedulable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT = {"cpu": "Insufficient cpu", "memory": "Insufficient memory",
                "ephemeral-storage": "Insufficient ephemeral-storage"}



def compute_insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    """The reasons the pod does not fit the node's free allocatable resources (empty when it fits)."""
    out = []
    if len(node.pods) + 1 > node.alloc_pods:
        out.append(TOO_MANY_PODS)
    if pod.cpu and pod.cpu > node.alloc_cpu - node.req_cpu:
        out.append(INSUFFICIENT["cpu"])
    if pod.memory and pod.memory > node.alloc_memory - node.req_memory:
        out.append(INSUFFICIENT["memory"])
    if pod.ephemeral and pod.ephemeral > node.alloc_ephemeral - node.req_ephemeral:
        out.append(INSUFFICIENT["ephemeral-storage"])
    return out


class NodeResourcesFit:
    name = "NodeResourcesFit"

    def __init__(self, strategy: str = LEAST_ALLOCATED) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"scoring strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self._statuses: dict[tuple[str, ...], Status] = {}

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        # The common case in a few comparisons; reasons are built only for a misfit.
        if len(node.pods) < node.alloc_pods and pod.cpu <= node.alloc_cpu - node.req_cpu \
                and pod.memory <= node.alloc_memory - node.req_memory \
                and (not pod.ephemeral or pod.ephemeral <= node.alloc_ephemeral - node.req_ephemeral):
            return SUCCESS
        reasons = tuple(compute_insufficient(pod, node))
        if not reasons:
            return SUCCESS
        st = self._statuses.get(reasons)
        if st is None:
            st = self._statuses[reasons] = unschedulable(*reasons, plugin=self.name)
        return st

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        # Inline arithmetic: this runs for every sampled node of every decision.
        cpu, mem = pod.nz_cpu, pod.nz_memory
        out = []
        append = out.append
        if self.strategy == LEAST_ALLOCATED:
            for n in nodes:
                ac, am = n.alloc_cpu, n.alloc_memory
                rc, rm = n.nz_cpu + cpu, n.nz_memory + mem
                sc = (ac - rc) * 100 // ac if ac > 0 and rc <= ac else 0
                sm = (am - rm) * 100 // am if am > 0 and rm <= am else 0
                append((sc + sm) >> 1)
        else:
            for n in nodes:
                ac, am = n.alloc_cpu, n.alloc_memory
                rc, rm = n.nz_cpu + cpu, n.nz_memory + mem
                sc = (rc if rc < ac else ac) * 100 // ac if ac > 0 else 0
                sm = (rm if rm < am else am) * 100 // am if am > 0 else 0
                append((sc + sm) >> 1)
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        return None


class NodeResourcesBalancedAllocation:
    """Prefers nodes whose cpu and memory would be used in equal fractions."""

    name = "NodeResourcesBalancedAllocation"

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        cpu, mem = pod.nz_cpu, pod.nz_memory
        out = []
        append = out.append
        for n in nodes:
            ac, am = n.alloc_cpu, n.alloc_memory
            fc = (n.nz_cpu + cpu) / ac if ac > 0 else 1.0
            fm = (n.nz_memory + mem) / am if am > 0 else 1.0
            if fc > 1.0:
                fc = 1.0
            if fm > 1.0:
                fm = 1.0
            # The standard deviation of two fractions is half their difference: score = (1 - |fc - fm| / 2) * 100.
            d = fc - fm if fc > fm else fm - fc
            append(int(100.0 - d * 50.0))
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        return None
