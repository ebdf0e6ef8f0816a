"""NodeUnschedulable (cordoned nodes) and NodeReady (nodes whose Ready condition is not True).

Neither can be resolved by evicting pods, so both are UnschedulableAndUnresolvable.
"""

from __future__ import annotations

from api.pb import core_pb2
from scheduler.framework.interface import SUCCESS, Code, CycleState, Status, unresolvable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot
from scheduler.plugins.taints import tolerates

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NOT_READY = "node(s) were not ready"


_NO_CORDONED = Status(Code.SKIP, ("no node is cordoned",))
_TOLERATED = Status(Code.SKIP, ("the pod tolerates node.kubernetes.io/unschedulable",))
_ALL_READY = Status(Code.SKIP, ("every node is Ready",))
_UNSCHEDULABLE = core_pb2.Taint(key=UNSCHEDULABLE_TAINT, effect="NoSchedule")


def tolerates_unschedulable(pod: PodInfo) -> bool:
    """A pod tolerating the unschedulable taint (NoSchedule) may go to a cordoned node, as in Kubernetes."""
    return any(tolerates(t, _UNSCHEDULABLE) for t in pod.tolerations)


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def __init__(self) -> None:
        self._reject = unresolvable(REASON_UNSCHEDULABLE, plugin=self.name)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        if not snapshot.cordoned:
            return _NO_CORDONED
        return _TOLERATED if tolerates_unschedulable(pod) else SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self._reject if node.unschedulable else SUCCESS


class NodeReady:
    name = "NodeReady"

    def __init__(self) -> None:
        self._reject = unresolvable(REASON_NOT_READY, plugin=self.name)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return SUCCESS if snapshot.not_ready else _ALL_READY

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return SUCCESS if node.ready else self._reject
