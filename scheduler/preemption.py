"""Preemption: when a pod fits nowhere, find the node where evicting the fewest, least important pods makes it fit.

kube-scheduler's DefaultPreemption, simplified: only nodes whose verdict was
resolvable (Unschedulable, not UnschedulableAndUnresolvable) are tried; on
each, every lower-priority pod is removed, and if the pod then fits, victims
are reprieved one by one, most important first, as long as the pod still
fits. Among the nodes that work, the one whose most important victim has the
lowest priority wins, then the lowest sum of victim priorities, then the
fewest victims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.framework.interface import Code, CycleState, FilterExtensions, FilterPlugin
from scheduler.framework.runner import Framework, ScheduleResult
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

MAX_CANDIDATES = 100


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]

    def rank(self) -> tuple[int, int, int]:
        return (max((v.priority for v in self.victims), default=-(2**31)),
                sum(v.priority for v in self.victims), len(self.victims))


def _more_important_first(p: PodInfo) -> tuple[int, float]:
    return (-p.priority, p.created)


def _extensions(active: Sequence[FilterPlugin]) -> list[FilterExtensions]:
    return [f for f in active if isinstance(f, FilterExtensions)]


def compute_victims(framework: Framework, state: CycleState, active: Sequence[FilterPlugin], pod: PodInfo,
                    node: NodeInfo, snapshot: Snapshot) -> list[PodInfo] | None:
    """The pods to evict from `node` so that `pod` fits, or None if evicting cannot make it fit."""
    lower = sorted((p for p in node.pods.values() if p.priority < pod.priority), key=_more_important_first)
    if not lower:
        return None
    exts = _extensions(active)
    trial = node.clone()
    for v in lower:
        trial.remove_pod(v)
        for e in exts:
            e.remove_pod(state, pod, v, node)
    victims: list[PodInfo] = []
    try:
        if not framework.run_filters(state, pod, trial, active, snapshot).ok:
            for v in lower:
                for e in exts:
                    e.add_pod(state, pod, v, node)
            return None
        for v in lower:
            trial.add_pod(v)
            for e in exts:
                e.add_pod(state, pod, v, node)
            if not framework.run_filters(state, pod, trial, active, snapshot).ok:
                trial.remove_pod(v)
                for e in exts:
                    e.remove_pod(state, pod, v, node)
                victims.append(v)
    finally:
        # Leave the pre-filter state as it was for the next node.
        for v in victims:
            for e in exts:
                e.add_pod(state, pod, v, node)
    return victims


def plan_preemption(framework: Framework, pod: PodInfo, snapshot: Snapshot, result: ScheduleResult, *,
                    max_candidates: int = MAX_CANDIDATES) -> Candidate | None:
    """The node and victims for `pod`, from a failed scheduling result; None when preemption cannot help."""
    if pod.preemption_policy == "Never" or result.pre_filter is not None or result.error is not None:
        return None
    state = CycleState()
    active, rejected = framework.run_pre_filters(state, pod, snapshot)
    if rejected is not None:
        return None
    best: Candidate | None = None
    tried = 0
    for name, st in result.statuses.items():
        if st.code != Code.UNSCHEDULABLE:
            continue
        node = snapshot.infos.get(name)
        if node is None or node.node is None:
            continue
        victims = compute_victims(framework, state, active, pod, node, snapshot)
        if not victims:
            continue
        c = Candidate(name, victims)
        if best is None or c.rank() < best.rank():
            best = c
        tried += 1
        if tried >= max_candidates:
            break
    return best
