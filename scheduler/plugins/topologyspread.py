"""PodTopologySpread: DoNotSchedule constraints filter, ScheduleAnyway constraints score.

For each constraint, the pods matching its selector in the pod's namespace are
counted per topology domain, over the nodes the pod could use (its node
selector and required affinity; nodes carrying the constraint's key). A node
fits a hard constraint when placing the pod there keeps
`count(domain) + 1 - min(count over domains) <= maxSkew`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.framework.interface import (
    MAX_NODE_SCORE,
    SKIP,
    SUCCESS,
    Code,
    CycleState,
    Status,
    unresolvable,
    unschedulable,
)
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot, SpreadConstraint
from scheduler.plugins.nodeaffinity import matches_node_selector_and_affinity

REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"
_NO_HARD = Status(Code.SKIP, ("the pod has no DoNotSchedule topology spread constraints",))


@dataclass
class _Counts:
    constraint: SpreadConstraint
    counts: dict[str, int]
    self_match: int
    min_match: int

    def recompute_min(self) -> None:
        if len(self.counts) < self.constraint.min_domains:
            self.min_match = 0
        else:
            self.min_match = min(self.counts.values(), default=0)


def compute_domain_counts(pod: PodInfo, constraints: Sequence[SpreadConstraint],
                          nodes: Sequence[NodeInfo]) -> list[dict[str, int]]:
    """Per constraint: topology value -> matching pods, over nodes the pod may use that carry every key."""
    keys = [c.topology_key for c in constraints]
    out: list[dict[str, int]] = [{} for _ in constraints]
    ns = frozenset((pod.namespace,))
    for node in nodes:
        node_labels = node.labels
        if any(k not in node_labels for k in keys) or not matches_node_selector_and_affinity(pod, node):
            continue
        for c, counts in zip(constraints, out, strict=True):
            value = node_labels[c.topology_key]
            counts[value] = counts.get(value, 0) + (node.count_matching(ns, c.selector, c.pair) if node.pods else 0)
    return out


def _counts(pod: PodInfo, constraints: Sequence[SpreadConstraint], nodes: Sequence[NodeInfo]) -> list[_Counts]:
    out = []
    for c, counts in zip(constraints, compute_domain_counts(pod, constraints, nodes), strict=True):
        cc = _Counts(c, counts, 1 if c.selector.matches(pod.labels) else 0, 0)
        cc.recompute_min()
        out.append(cc)
    return out


class PodTopologySpread:
    name = "PodTopologySpread"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        hard = [c for c in pod.spread if c.hard]
        if not hard:
            return _NO_HARD
        state[self.name] = _counts(pod, hard, snapshot.nodes)
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        node_labels = node.labels
        for cc in state[self.name]:
            value = node_labels.get(cc.constraint.topology_key)
            if value is None:
                return unresolvable(REASON_MISSING, plugin=self.name)
            if cc.counts.get(value, 0) + cc.self_match - cc.min_match > cc.constraint.max_skew:
                return unschedulable(REASON, plugin=self.name)
        return SUCCESS

    def _adjust(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int) -> None:
        ccs: list[_Counts] | None = state.get(self.name)
        if not ccs or other.terminating or other.namespace != pod.namespace:
            return
        for cc in ccs:
            value = node.labels.get(cc.constraint.topology_key)
            if value is not None and value in cc.counts and cc.constraint.selector.matches(other.labels):
                cc.counts[value] += delta
                cc.recompute_min()

    def remove_pod(self, state: CycleState, pod: PodInfo, victim: PodInfo, node: NodeInfo) -> None:
        self._adjust(state, pod, victim, node, -1)

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        self._adjust(state, pod, other, node, 1)

    # ------------------------------------------------------------ score (ScheduleAnyway)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        soft = [c for c in pod.spread if not c.hard]
        if not soft:
            return SKIP
        state[self.name + "/score"] = _counts(pod, soft, snapshot.nodes)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        ccs: list[_Counts] = state[self.name + "/score"]
        out = []
        for node in nodes:
            total = 0
            for cc in ccs:
                value = node.labels.get(cc.constraint.topology_key)
                if value is None:
                    total = -1  # cannot tell: scored lowest
                    break
                total += cc.counts.get(value, 0) + cc.self_match
            out.append(total)
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        # Fewer matching pods in the node's domains is better.
        known = [s for s in scores if s >= 0]
        if not known:
            for i in range(len(scores)):
                scores[i] = 0
            return
        lo, hi = min(known), max(known)
        for i, s in enumerate(scores):
            if s < 0:
                scores[i] = 0
            elif hi == lo:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = (hi - s) * MAX_NODE_SCORE // (hi - lo)
