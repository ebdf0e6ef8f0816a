"""TaintToleration: NoSchedule and NoExecute taints must be tolerated; PreferNoSchedule ones lower the score."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from api.pb import core_pb2
from scheduler.framework.interface import MAX_NODE_SCORE, SKIP, SUCCESS, Code, CycleState, Status, unresolvable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

_NO_TAINTS = Status(Code.SKIP, ("no node has NoSchedule or NoExecute taints",))


def tolerates(t: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Kubernetes' ToleratesTaint: effect (if set) and key (if set) match, then Equal compares values."""
    if t.effect and t.effect != taint.effect:
        return False
    if t.key and t.key != taint.key:
        return False
    if t.operator == "Exists":
        return True
    if t.operator in ("", "Equal"):
        return t.value == taint.value
    return False


def untolerated(taints: Iterable[core_pb2.Taint], tolerations: Sequence[core_pb2.Toleration]) -> \
        core_pb2.Taint | None:
    for taint in taints:
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


class TaintToleration:
    name = "TaintToleration"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        return SUCCESS if snapshot.tainted else _NO_TAINTS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.taints:
            return SUCCESS
        taint = untolerated(node.taints, pod.tolerations)
        if taint is None:
            return SUCCESS
        return unresolvable(f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}", plugin=self.name)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        if not snapshot.prefer_tainted:
            return SKIP
        state[self.name] = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        tols = state[self.name]
        return [sum(1 for taint in n.prefer_taints if not any(tolerates(t, taint) for t in tols)) for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        # Fewer intolerable taints is better.
        top = max(scores, default=0)
        for i, s in enumerate(scores):
            scores[i] = MAX_NODE_SCORE if top == 0 else MAX_NODE_SCORE - s * MAX_NODE_SCORE // top
