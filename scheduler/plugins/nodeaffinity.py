"""NodeAffinity: nodeSelector and required node affinity filter; preferred node affinity scores."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.framework.interface import MAX_NODE_SCORE, SKIP, SUCCESS, Code, CycleState, Status, unresolvable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

REASON = "node(s) didn't match Pod's node affinity/selector"
_NOTHING_REQUIRED = Status(Code.SKIP, ("the pod has no nodeSelector and no required node affinity",))


def matches_node_selector_and_affinity(pod: PodInfo, node: NodeInfo) -> bool:
    """nodeSelector (every label equal) and required terms (any term matches)."""
    node_labels = node.labels
    for k, v in pod.node_selector.items():
        if node_labels.get(k) != v:
            return False
    terms = pod.required_terms
    if terms is not None:
        return any(t.matches(node_labels, node.name) for t in terms)
    return True


class NodeAffinity:
    name = "NodeAffinity"

    def __init__(self) -> None:
        self._reject = unresolvable(REASON, plugin=self.name)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        if not pod.node_selector and pod.required_terms is None:
            return _NOTHING_REQUIRED
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return SUCCESS if matches_node_selector_and_affinity(pod, node) else self._reject

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS if pod.preferred_terms else SKIP

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        terms = pod.preferred_terms
        return [sum(w for w, t in terms if t.matches(n.labels, n.name)) for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        top = max(scores, default=0)
        if top <= 0:
            return
        for i, s in enumerate(scores):
            scores[i] = max(0, s) * MAX_NODE_SCORE // top
