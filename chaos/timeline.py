"""A run's samples turned into figures: per-second series, success rates, recovery times.

Pure: every function takes the samples a run recorded (times in seconds since the run started) and returns
numbers, so a report can be recomputed from report.json alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WINDOW = 30.0  # the success-rate window that must contain the fault


@dataclass(frozen=True)
class Request:
    """One request of the load client: when it was sent and whether an answer came."""

    t: float
    ok: bool
    ms: float = 0.0
    error: str = ""  # why it failed: timeout, ConnectionRefusedError, status ...


@dataclass(frozen=True)
class Write:
    """One API write: when it was sent, whether it was acknowledged, and how long that took."""

    t: float
    ok: bool
    ms: float = 0.0
    name: str = ""


@dataclass(frozen=True)
class Sample:
    """What the watcher saw at one moment."""

    t: float
    desired: int  # the watched Deployment's replicas (the demo's, or the one a scenario rolls)
    ready_by_node: dict[str, int] = field(default_factory=dict)  # its available pods per node
    nodes_ready: int = 0
    nodes: int = 0
    updated: int = 0  # of its ready pods, those of the template the run's rollout wrote

    @property
    def ready(self) -> int:
        return sum(self.ready_by_node.values())


@dataclass(frozen=True)
class LeaseSample:
    """A leader lease as the watcher read it: who held it, when it was last renewed (seconds since the run started),
    and whether the holder's process was alive then."""

    t: float
    component: str  # scheduler, controller-manager
    holder: str
    renewed: float
    alive: bool


def seconds_to_lease_held(leases: Sequence[LeaseSample], component: str, start: float,
                          horizon: float) -> float | None:
    """Seconds from a fault at `start` until a live `component` renewed its lease after it: a new leader took it
    over, or the old one kept it through the fault."""
    for s in leases:
        if s.component == component and start <= s.t <= horizon and s.alive and s.renewed >= start:
            return round(s.t - start, 2)
    return None


def per_second(requests: Sequence[Request], duration: float) -> list[dict[str, int]]:
    """Requests sent in each whole second of the run, answered and failed (a last partial second is left out)."""
    out = [{"t": s, "ok": 0, "failed": 0} for s in range(max(0, math.floor(duration)))]
    for r in requests:
        s = int(r.t)
        if 0 <= s < len(out):
            out[s]["ok" if r.ok else "failed"] += 1
    return out


def success_rate(requests: Sequence[Request], lo: float = -math.inf, hi: float = math.inf) -> float | None:
    """The fraction answered among requests sent in [lo, hi); None when none was sent."""
    sent = [r for r in requests if lo <= r.t < hi]
    return round(sum(r.ok for r in sent) / len(sent), 4) if sent else None


def worst_window_success(requests: Sequence[Request], fault_start: float, duration: float,
                         window: float = WINDOW) -> float | None:
    """The lowest success rate over every `window`-second span of the run (whole seconds) that contains the
    fault's start: no choice of window hides the fault."""
    if duration <= window:
        return success_rate(requests, 0, duration)
    first = max(0, math.floor(fault_start - window) + 1)
    last = min(math.floor(fault_start), math.floor(duration - window))
    rates = [success_rate(requests, s, s + window) for s in range(first, max(first, last) + 1)]
    known = [r for r in rates if r is not None]
    return min(known) if known else None


def failures_by_error(requests: Sequence[Request]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in requests:
        if not r.ok:
            out[r.error or "unknown"] = out.get(r.error or "unknown", 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def failed_between(requests: Sequence[Request], lo: float, hi: float) -> int:
    return sum(1 for r in requests if lo <= r.t < hi and not r.ok)


def seconds_to_service_back(requests: Sequence[Request], start: float, horizon: float) -> float | None:
    """From `start` until every request succeeds again (up to `horizon`): 0 when none failed, None when the
    last request before the horizon still failed."""
    window = [r for r in requests if start <= r.t < horizon]
    failed = [r for r in window if not r.ok]
    if not failed:
        return 0.0
    last = max(r.t for r in failed)
    after = [r.t for r in window if r.ok and r.t > last]
    return round(min(after) - start, 2) if after else None


def seconds_to_api_writable(writes: Sequence[Write], start: float, horizon: float) -> float | None:
    """From `start` to the first acknowledged write after the last failed one: 0 when none failed, None when
    none was acknowledged after it."""
    window = [w for w in writes if start <= w.t < horizon]
    failed = [w for w in window if not w.ok]
    if not failed:
        return 0.0
    last = max(w.t for w in failed)
    acked = [w.t + w.ms / 1000 for w in window if w.ok and w.t > last]
    return round(min(acked) - start, 2) if acked else None


def seconds_to_replacements(samples: Sequence[Sample], start: float, node: str, horizon: float) -> float | None:
    """From `start` until the Deployment has every replica available on nodes other than `node`."""
    for s in samples:
        if start <= s.t < horizon and s.ready - s.ready_by_node.get(node, 0) >= s.desired:
            return round(s.t - start, 2)
    return None


def seconds_to_ready_back(samples: Sequence[Sample], start: float, horizon: float) -> float | None:
    """From `start` until every replica is available again after the last moment one was not: 0 when none
    went missing."""
    window = [s for s in samples if start <= s.t < horizon]
    short = [s.t for s in window if s.ready < s.desired]
    if not short:
        return 0.0
    back = [s.t for s in window if s.t > max(short) and s.ready >= s.desired]
    return round(min(back) - start, 2) if back else None


def seconds_to_nodes_ready(samples: Sequence[Sample], start: float, end: float, horizon: float) -> float | None:
    """From a fault's undo (`end`) until every node is Ready again: 0 when no node went unready after the fault
    started, None when they were not all Ready again by the horizon."""
    window = [s for s in samples if start <= s.t < horizon and s.nodes]
    short = [s.t for s in window if s.nodes_ready < s.nodes]
    if not short:
        return 0.0
    back = [s.t for s in window if s.t > max(short) and s.nodes_ready == s.nodes]
    return round(max(0.0, min(back) - end), 2) if back else None


def series(samples: Sequence[Sample]) -> dict[str, list[float]]:
    """The watcher's samples as plot-ready columns."""
    return {"t": [s.t for s in samples], "ready": [s.ready for s in samples],
            "desired": [s.desired for s in samples], "nodes_ready": [s.nodes_ready for s in samples],
            "nodes": [s.nodes for s in samples], "updated": [s.updated for s in samples]}


# Fault detection on the lab, and Kubernetes' defaults: a node is NotReady after its lease lapses for the grace
# period (node-monitor-grace-period), its pods are evicted after their toleration of not-ready/unreachable.
LAB_GRACE = 2.0
LAB_TOLERATION = 1.0
K8S_GRACE = 50.0
K8S_TOLERATION = 300.0


def with_kubernetes_defaults(figures: dict[str, float | int | None], *, node_fault: bool, fault_seconds: float,
                             failed_per_second: float) -> dict[str, float | int | None]:
    """The same recovery with Kubernetes' detection defaults, from the lab's figures: a lost node is noticed
    K8S_GRACE - LAB_GRACE seconds later (the Service keeps sending it requests meanwhile, failing at the rate
    measured while it was undetected), and its pods are replaced K8S_TOLERATION - LAB_TOLERATION later still;
    a node back before then never has its pods replaced. Faults that no node-lifecycle timer decides (a killed
    apiserver, scheduler, containerd) recover the same way."""
    out = dict(figures)
    if not node_fault:
        return out
    detect = min(K8S_GRACE, fault_seconds)
    extra_failing = max(0.0, detect - LAB_GRACE)
    out["failed_requests"] = round((figures.get("failed_requests") or 0) + failed_per_second * extra_failing)
    back = figures.get("service_back")
    out["service_back"] = None if back is None else round(back + extra_failing, 2)
    replaced = figures.get("replacements_ready")
    shift = (K8S_GRACE - LAB_GRACE) + (K8S_TOLERATION - LAB_TOLERATION)
    out["replacements_ready"] = (None if replaced is None or fault_seconds < K8S_GRACE + K8S_TOLERATION
                                 else round(replaced + shift, 2))
    return out
