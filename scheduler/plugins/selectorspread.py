"""SelectorSpread: spread the pods of one owner (ReplicaSet, ...) across nodes and, where labelled, zones.

kube-scheduler's legacy plugin: a node scores higher the fewer pods of the
same owner it holds; when nodes carry zone labels, two thirds of the score
come from the zone's count instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.framework.interface import MAX_NODE_SCORE, SKIP, SUCCESS, CycleState, Status
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot


class SelectorSpread:
    name = "SelectorSpread"

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS if pod.owner else SKIP

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        owner = pod.owner
        state[self.name] = nodes
        return [n.owner_counts.get(owner, 0) if n.owner_counts else 0 for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        top = max(scores, default=0)
        if top == 0:  # no pod of this owner on any scored node (a new ReplicaSet): all equal
            scores[:] = [MAX_NODE_SCORE] * len(scores)
            return
        nodes: Sequence[NodeInfo] = state[self.name]
        zones = [n.zone for n in nodes]
        by_zone: dict[str, int] = {}
        for z, s in zip(zones, scores, strict=True):
            if s and z is not None:
                by_zone[z] = by_zone.get(z, 0) + s
        top_zone = max(by_zone.values(), default=0)
        if not top_zone:
            scores[:] = [(top - s) * MAX_NODE_SCORE // top for s in scores]
            return
        # One third from the node's count, two thirds from its zone's.
        zone_score = {z: (top_zone - c) * MAX_NODE_SCORE // top_zone for z, c in by_zone.items()}
        scores[:] = [((top - s) * MAX_NODE_SCORE // top + 2 * zone_score.get(z, MAX_NODE_SCORE)) // 3
                     if z is not None else (top - s) * MAX_NODE_SCORE // top
                     for s, z in zip(scores, zones, strict=True)]
