"""InterPodAffinity (required terms): the pod's anti-affinity and affinity, and existing pods' anti-affinity.

Pre-filter counts, per term, the matching pods in each topology domain once;
the per-node filter is then a few dictionary lookups. Counting uses the
per-node label counters when a term's selector is a single label pair, so it
costs one lookup per node instead of one per pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.framework.interface import SUCCESS, Code, CycleState, Status, unresolvable, unschedulable
from scheduler.framework.types import NodeInfo, PodAffinityTerm, PodInfo, Snapshot

REASON_ANTI = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
_UNINVOLVED = Status(Code.SKIP, ("no required pod affinity or anti-affinity involves this pod",))


@dataclass
class _State:
    # (topology key, value) -> existing pods whose anti-affinity rejects this pod in that domain
    existing: dict[tuple[str, str], int] = field(default_factory=dict)
    # per anti-affinity term of the pod: topology value -> matching pods there
    anti: list[dict[str, int]] = field(default_factory=list)
    # per affinity term of the pod: topology value -> matching pods there
    affinity: list[dict[str, int]] = field(default_factory=list)
    # no pod anywhere matches the pod's affinity terms, but the pod matches them itself (the first of a group)
    affinity_self: bool = False


def _namespaces(term: PodAffinityTerm) -> frozenset[str] | None:
    return None if term.all_namespaces else term.namespaces


def _count_domains(term: PodAffinityTerm, snapshot: Snapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    key, ns = term.topology_key, _namespaces(term)
    for node in snapshot.infos.values():
        if not node.pods:
            continue
        value = node.labels.get(key)
        if value is None:
            continue
        n = node.count_matching(ns, term.selector, term.pair)
        if n:
            out[value] = out.get(value, 0) + n
    return out


class InterPodAffinity:
    name = "InterPodAffinity"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        st = _State()
        for node in snapshot.nodes_with_anti_affinity_pods():
            for other in node.anti_affinity_pods.values():
                if other.key == pod.key:
                    continue
                for term in other.anti_affinity_terms:
                    value = node.labels.get(term.topology_key)
                    if value is not None and term.matches(pod):
                        k = (term.topology_key, value)
                        st.existing[k] = st.existing.get(k, 0) + 1
        if not st.existing and not pod.anti_affinity_terms and not pod.affinity_terms:
            return _UNINVOLVED
        st.anti = [_count_domains(t, snapshot) for t in pod.anti_affinity_terms]
        st.affinity = [_count_domains(t, snapshot) for t in pod.affinity_terms]
        if pod.affinity_terms and not any(st.affinity):
            st.affinity_self = all(t.matches(pod) for t in pod.affinity_terms)
        state[self.name] = st
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        # kube-scheduler's order: the pod's affinity, its anti-affinity, then existing pods' anti-affinity.
        st: _State = state[self.name]
        node_labels = node.labels
        if pod.affinity_terms:
            for term, counts in zip(pod.affinity_terms, st.affinity, strict=True):
                value = node_labels.get(term.topology_key)
                if value is None or (counts.get(value, 0) <= 0 and not st.affinity_self):
                    return unresolvable(REASON_AFFINITY, plugin=self.name)
        for term, counts in zip(pod.anti_affinity_terms, st.anti, strict=True):
            value = node_labels.get(term.topology_key)
            if value is not None and counts.get(value, 0) > 0:
                return unschedulable(REASON_ANTI, plugin=self.name)
        if st.existing:
            for (key, value), n in st.existing.items():
                if n > 0 and node_labels.get(key) == value:
                    return unschedulable(REASON_EXISTING_ANTI, plugin=self.name)
        return SUCCESS

    def _adjust(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int) -> None:
        st: _State | None = state.get(self.name)
        if st is None or other.terminating:
            return
        for term in other.anti_affinity_terms:
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(pod):
                k = (term.topology_key, value)
                st.existing[k] = st.existing.get(k, 0) + delta
        for terms, counts_list in ((pod.anti_affinity_terms, st.anti), (pod.affinity_terms, st.affinity)):
            for term, counts in zip(terms, counts_list, strict=True):
                value = node.labels.get(term.topology_key)
                if value is not None and term.matches(other):
                    counts[value] = counts.get(value, 0) + delta

    def remove_pod(self, state: CycleState, pod: PodInfo, victim: PodInfo, node: NodeInfo) -> None:
        self._adjust(state, pod, victim, node, -1)

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        self._adjust(state, pod, other, node, 1)
