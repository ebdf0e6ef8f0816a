"""NodePorts: a host port (protocol, port) is free unless another pod holds it on the same or a wildcard IP."""

from __future__ import annotations

from scheduler.framework.interface import SUCCESS, Code, CycleState, Status, unschedulable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

REASON = "node(s) didn't have free ports for the requested pod ports"
_NO_PORTS = Status(Code.SKIP, ("the pod asks for no host ports",))


def port_conflict(pod: PodInfo, node: NodeInfo) -> bool:
    for proto, ip, port in pod.ports:
        used = node.ports.get((proto, port))
        if not used:
            continue
        # "" stands for 0.0.0.0: it collides with every address.
        if ip == "" or "" in used or ip in used:
            return True
    return False


class NodePorts:
    name = "NodePorts"

    def __init__(self) -> None:
        self._reject = unschedulable(REASON, plugin=self.name)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return SUCCESS if pod.ports else _NO_PORTS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return self._reject if port_conflict(pod, node) else SUCCESS
