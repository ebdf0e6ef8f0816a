"""Invariants a cluster keeps through any fault, checked on what the watcher sees.

Pure: the watcher feeds snapshots (pods, Ready nodes, the Deployment under rollout) to `Invariants.observe`,
which returns the violations that snapshot shows; `lost_writes` compares acknowledged writes with what is
stored at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PodView:
    uid: str
    name: str
    namespace: str
    node: str
    owner_kind: str = ""
    owner: str = ""
    ready: bool = False
    deleting: bool = False


@dataclass(frozen=True)
class RolloutView:
    """A Deployment while it rolls out: its spec and how many of its pods are available."""

    name: str
    replicas: int
    max_surge: int
    max_unavailable: int
    available: int
    rolling: bool


@dataclass(frozen=True)
class Violation:
    t: float
    invariant: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"t": self.t, "invariant": self.invariant, "detail": self.detail}


def resolve_int_or_percent(value: str | int, total: int, *, round_up: bool) -> int:
    """maxSurge rounds up, maxUnavailable down, as in Kubernetes."""
    text = str(value).strip()
    if text.endswith("%"):
        exact = total * float(text[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text) if text else 0


@dataclass
class Invariants:
    """Remembers what it has seen, so each violation is reported once, when it first shows."""

    bound: dict[str, str] = field(default_factory=dict)  # pod uid -> the node it was first seen bound to
    identities: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (ns, name) -> (uid, node)
    reported: set[tuple[str, str]] = field(default_factory=set)

    def _once(self, out: list[Violation], t: float, invariant: str, key: str, detail: str) -> None:
        if (invariant, key) not in self.reported:
            self.reported.add((invariant, key))
            out.append(Violation(round(t, 2), invariant, detail))

    def observe(self, t: float, pods: Iterable[PodView], ready_nodes: set[str],
                rollout: RolloutView | None = None, *, disrupted: bool = False) -> list[Violation]:
        """`disrupted`: a fault may be taking pods away right now, so the rollout's lower bound (which only
        the Deployment's own choices must keep) is not checked."""
        out: list[Violation] = []
        for p in pods:
            if p.node:
                first = self.bound.setdefault(p.uid, p.node)
                if first != p.node:
                    self._once(out, t, "pod-bound-once", p.uid,
                               f"pod {p.namespace}/{p.name} ({p.uid}) bound to {first}, then to {p.node}")
            if p.owner_kind == "StatefulSet" and not p.deleting:
                key = (p.namespace, p.name)
                before = self.identities.get(key)
                if before is not None and before[0] != p.uid and before[1] and before[1] not in ready_nodes:
                    self._once(out, t, "one-pod-per-identity", p.uid,
                               f"{p.namespace}/{p.name} made again ({p.uid}) while {before[1]}, which ran "
                               f"{before[0]}, is not Ready")
                self.identities[key] = (p.uid, p.node)
        if rollout is not None and rollout.rolling:
            high = rollout.replicas + rollout.max_surge
            low = rollout.replicas - rollout.max_unavailable
            if rollout.available > high:
                self._once(out, t, "rollout-surge", f"{rollout.name}@{t}",
                           f"deployment {rollout.name}: {rollout.available} available > replicas+maxSurge {high}")
            if rollout.available < low and not disrupted:
                self._once(out, t, "rollout-unavailable", f"{rollout.name}@{t}",
                           f"deployment {rollout.name}: {rollout.available} available < "
                           f"replicas-maxUnavailable {low}")
        return out


def lost_writes(acked: Sequence[str], present: Iterable[str]) -> list[str]:
    """Acknowledged writes that are not stored: each one is a lost write."""
    have = set(present)
    return [name for name in acked if name not in have]
