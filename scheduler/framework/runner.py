"""The framework runner: pre-filter, filter (with sampling), pre-score, score, normalize, weigh, pick a node.

Sampling (kube-scheduler's percentageOfNodesToScore): filtering stops once
enough feasible nodes were found, and only those are scored. The walk starts
where the previous decision stopped, so every node gets its turn. With
percentage 0 the share adapts to the cluster size as in kube-scheduler
(50% minus 1% per 125 nodes, at least 5%, at least 100 nodes), and is capped
at MAX_ADAPTIVE_FEASIBLE (100) nodes, kube-scheduler's own minimum: filtering
and scoring a node costs about two microseconds in Python, so 250 candidates
per decision (what kube-scheduler's formula gives at 5,000 nodes) would cost
more than the bind itself, while a random-start sample of 100 feasible nodes
already finds a near-best placement for spreading and fit. An explicit
percentage is not capped.

Pods nominated to a node (by preemption) hold their resources there against
pods of lower or equal priority: such a node is filtered as if those pods were
already on it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.framework.interface import (
    SUCCESS,
    Code,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
    error,
)
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5
BASE_PERCENTAGE = 50
MAX_ADAPTIVE_FEASIBLE = 100


def compute_num_feasible_to_find(num_all: int, percentage: int) -> int:
    """How many feasible nodes to find before scoring (all of them for small clusters)."""
    if num_all < MIN_FEASIBLE_NODES:
        return num_all
    adaptive = percentage <= 0
    if adaptive:
        percentage = max(MIN_FEASIBLE_PERCENTAGE, BASE_PERCENTAGE - num_all // 125)
    n = num_all * percentage // 100
    if adaptive:
        n = min(n, MAX_ADAPTIVE_FEASIBLE)
    return min(num_all, max(n, MIN_FEASIBLE_NODES))


def render_fit_error(num_all: int, statuses: dict[str, Status], *, pre_filter: Status | None = None) -> str:
    """Kubernetes' message: `0/5 nodes are available: 3 Insufficient cpu, 2 node(s) didn't match ...`."""
    if pre_filter is not None:
        return f"0/{num_all} nodes are available: {pre_filter.message()}."
    counts: dict[str, int] = {}
    for st in statuses.values():
        for r in st.reasons:
            counts[r] = counts.get(r, 0) + 1
    parts = ", ".join(f"{counts[r]} {r}" for r in sorted(counts))
    if not parts:
        return f"0/{num_all} nodes are available."
    return f"0/{num_all} nodes are available: {parts}."


@dataclass
class ScheduleResult:
    node: str  # "" when the pod fits nowhere
    num_all_nodes: int
    evaluated: int = 0
    feasible: int = 0
    # Every rejected node's verdict (for the message and for preemption).
    statuses: dict[str, Status] = field(default_factory=dict)
    pre_filter: Status | None = None  # set when a pre-filter rejected the pod outright
    state: CycleState | None = None
    error: Status | None = None

    def message(self) -> str:
        if self.error is not None:
            return f"scheduling failed: {self.error.message()}"
        return render_fit_error(self.num_all_nodes, self.statuses, pre_filter=self.pre_filter)

    def rejecting_plugins(self) -> set[str]:
        out = {st.plugin for st in self.statuses.values()}
        if self.pre_filter is not None:
            out.add(self.pre_filter.plugin)
        return out


@dataclass
class NodeExplanation:
    node: str
    filters: list[tuple[str, Status]]  # every filter's verdict, in order (Skip when not relevant)
    scores: list[tuple[str, int, int, int]] = field(default_factory=list)  # plugin, normalized, weight, weighted
    total: int | None = None

    @property
    def feasible(self) -> bool:
        return all(st.code in (Code.SUCCESS, Code.SKIP) for _, st in self.filters)


@dataclass
class Explanation:
    pod: str
    nodes: list[NodeExplanation]
    chosen: list[str]  # the best-scoring nodes (ties included)
    message: str


class Framework:
    """One scheduling profile: filters in order, weighted scores. Not safe to share between event loops."""

    def __init__(self, filters: Sequence[FilterPlugin], scores: Sequence[tuple[ScorePlugin, int]], *,
                 percentage_of_nodes_to_score: int = 0, rng: random.Random | None = None) -> None:
        self.filters = list(filters)
        self.scores = [(p, w) for p, w in scores if w > 0]
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.next_start = 0

    # ------------------------------------------------------------ filter

    def run_pre_filters(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> \
            tuple[list[FilterPlugin], Status | None]:
        """The filters to run for this pod; or the status of a pre-filter that rejected it."""
        active = []
        for f in self.filters:
            try:
                st = f.pre_filter(state, pod, snapshot)
            except Exception as e:
                return [], error(f"{f.name}: {type(e).__name__}: {e}", plugin=f.name)
            if st.code == Code.SKIP:
                continue
            if not st.ok:
                return [], st
            active.append(f)
        return active, None

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo, active: Sequence[FilterPlugin],
                    snapshot: Snapshot) -> Status:
        """The first rejecting filter's status, or SUCCESS."""
        nominated = snapshot.nominated.get(node.name)
        if nominated:
            held = [p for k, p in nominated.items() if k != pod.key and p.priority >= pod.priority]
            if held:
                with_held = node.clone()
                for p in held:
                    with_held.add_pod(p)
                st = self._filters(state, pod, with_held, active)
                if not st.ok:
                    return st
        return self._filters(state, pod, node, active)

    @staticmethod
    def _filters(state: CycleState, pod: PodInfo, node: NodeInfo, active: Sequence[FilterPlugin]) -> Status:
        f = None
        try:
            for f in active:
                st = f.filter(state, pod, node)
                if st is not SUCCESS and not st.ok:
                    return st
        except Exception as e:
            name = f.name if f is not None else ""
            return error(f"{name}: {type(e).__name__}: {e}", plugin=name)
        return SUCCESS

    # ------------------------------------------------------------ schedule

    def schedule(self, pod: PodInfo, snapshot: Snapshot) -> ScheduleResult:
        nodes = snapshot.nodes
        n_all = len(nodes)
        result = ScheduleResult("", n_all)
        state = CycleState()
        result.state = state
        if n_all == 0:
            return result
        active, rejected = self.run_pre_filters(state, pod, snapshot)
        if rejected is not None:
            if rejected.code == Code.ERROR:
                result.error = rejected
            else:
                result.pre_filter = rejected
            return result
        # A pod nominated by preemption goes back to its node if it fits there now.
        if pod.nominated_node:
            nominated = snapshot.infos.get(pod.nominated_node)
            if nominated is not None and nominated.node is not None and \
                    self.run_filters(state, pod, nominated, active, snapshot).ok:
                result.node, result.evaluated, result.feasible = nominated.name, 1, 1
                return result
        want = compute_num_feasible_to_find(n_all, self.percentage)
        feasible: list[NodeInfo] = []
        statuses = result.statuses
        start = self.next_start % n_all
        i = 0
        if snapshot.nominated:
            for i in range(n_all):
                node = nodes[(start + i) % n_all]
                st = self.run_filters(state, pod, node, active, snapshot)
                if st.ok:
                    feasible.append(node)
                    if len(feasible) >= want:
                        break
                elif st.code == Code.ERROR:
                    result.error = st
                    return result
                else:
                    statuses[node.name] = st
        else:
            # The hot loop, inlined: one pass over the sampled nodes, filters in order, first rejection wins.
            f = None
            try:
                if len(active) == 1:  # the common case: only NodeResourcesFit has anything to check
                    f = active[0]
                    check = f.filter
                    for i in range(n_all):
                        node = nodes[(start + i) % n_all]
                        st = check(state, pod, node)
                        if st is SUCCESS or not st.code:
                            feasible.append(node)
                            if len(feasible) >= want:
                                break
                        else:
                            statuses[node.name] = st
                else:
                    for i in range(n_all):
                        node = nodes[(start + i) % n_all]
                        for f in active:
                            st = f.filter(state, pod, node)
                            if st is not SUCCESS and st.code:
                                statuses[node.name] = st
                                break
                        else:
                            feasible.append(node)
                            if len(feasible) >= want:
                                break
            except Exception as e:
                name = f.name if f is not None else ""
                result.error = error(f"{name}: {type(e).__name__}: {e}", plugin=name)
                return result
            for st in statuses.values():
                if st.code == Code.ERROR:
                    result.error = st
                    return result
        processed = i + 1
        self.next_start = (start + processed) % n_all
        result.evaluated = processed
        result.feasible = len(feasible)
        if not feasible:
            return result
        if len(feasible) == 1:
            result.node = feasible[0].name
            return result
        totals, err = self.run_scores(state, pod, snapshot, feasible)
        if err is not None:
            result.error = err
            return result
        result.node = feasible[self._select(totals)].name
        return result

    def run_scores(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                   nodes: Sequence[NodeInfo], *, detail: list[list[tuple[str, int, int, int]]] | None = None) -> \
            tuple[list[int], Status | None]:
        totals = [0] * len(nodes)
        for plugin, weight in self.scores:
            try:
                st = plugin.pre_score(state, pod, snapshot, nodes)
                if st.code == Code.SKIP:
                    continue
                if not st.ok:
                    return totals, st
                scores = plugin.score(state, pod, nodes)
                plugin.normalize(state, pod, scores)
            except Exception as e:
                return totals, error(f"{plugin.name}: {type(e).__name__}: {e}", plugin=plugin.name)
            totals = [t + s * weight for t, s in zip(totals, scores, strict=True)]
            if detail is not None:
                for j, s in enumerate(scores):
                    detail[j].append((plugin.name, s, weight, s * weight))
        return totals, None

    def _select(self, totals: list[int]) -> int:
        """The best score; ties broken uniformly at random."""
        best = max(totals)
        ties = [j for j, t in enumerate(totals) if t == best]
        return ties[0] if len(ties) == 1 else ties[self.rng.randrange(len(ties))]

    # ------------------------------------------------------------ explain

    def explain(self, pod: PodInfo, snapshot: Snapshot) -> Explanation:
        """Every node's verdict from every filter, and every feasible node's scores (no sampling)."""
        state = CycleState()
        skipped: dict[str, Status] = {}
        pre_rejected: Status | None = None
        for f in self.filters:
            try:
                st = f.pre_filter(state, pod, snapshot)
            except Exception as e:
                st = error(f"{type(e).__name__}: {e}", plugin=f.name)
            if st.code == Code.SKIP:
                skipped[f.name] = Status(Code.SKIP, st.reasons or ("not relevant for this pod",), f.name)
            elif not st.ok and pre_rejected is None:
                pre_rejected = Status(st.code, st.reasons, f.name)
        out: list[NodeExplanation] = []
        for node in snapshot.nodes:
            verdicts: list[tuple[str, Status]] = []
            for f in self.filters:
                if f.name in skipped:
                    verdicts.append((f.name, skipped[f.name]))
                    continue
                if pre_rejected is not None:
                    verdicts.append((f.name, pre_rejected if pre_rejected.plugin == f.name else
                                     Status(Code.SKIP, ("not run",), f.name)))
                    continue
                st = self.run_filters(state, pod, node, [f], snapshot)
                verdicts.append((f.name, st if st.plugin or st.ok else Status(st.code, st.reasons, f.name)))
            out.append(NodeExplanation(node.name, verdicts))
        feasible = [e for e in out if e.feasible and pre_rejected is None]
        chosen: list[str] = []
        if feasible:
            infos = [snapshot.infos[e.node] for e in feasible]
            detail: list[list[tuple[str, int, int, int]]] = [[] for _ in infos]
            totals, _ = self.run_scores(state, pod, snapshot, infos, detail=detail)
            for e, d, t in zip(feasible, detail, totals, strict=True):
                e.scores, e.total = d, t
            best = max(totals)
            chosen = [e.node for e, t in zip(feasible, totals, strict=True) if t == best]
        statuses = {e.node: next(st for _, st in e.filters if st.code not in (Code.SUCCESS, Code.SKIP))
                    for e in out if not e.feasible}
        message = "" if feasible else render_fit_error(len(out), statuses, pre_filter=pre_rejected)
        return Explanation(pod.key, out, chosen, message)
