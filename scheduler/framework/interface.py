"""The plugin interface: one small Protocol per extension point, one Status per verdict.

Shaped after kube-scheduler's framework/interface.go. Every hook returns a
Status (or plain scores) and never raises: the runner turns an exception into
an Error status naming the plugin, so one broken plugin fails one pod, not the
scheduler.

Scores are computed for a whole list of nodes in one call (not one call per
node as in Go): in Python the per-call overhead would dominate the work.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

MAX_NODE_SCORE = 100


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    # The pod does not fit now; removing pods (preemption) or a cluster change may help.
    UNSCHEDULABLE = 2
    # The pod does not fit and preempting pods on the node would not change that.
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    # From a pre-hook: this plugin has nothing to say about this pod; its per-node hook is not run.
    SKIP = 4


_CODE_NAMES = {
    Code.SUCCESS: "Success",
    Code.ERROR: "Error",
    Code.UNSCHEDULABLE: "Unschedulable",
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable",
    Code.SKIP: "Skip",
}


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def code_name(self) -> str:
        return _CODE_NAMES[self.code]

    @property
    def resolvable(self) -> bool:
        """Whether evicting pods could turn this verdict into a fit."""
        return self.code == Code.UNSCHEDULABLE

    def message(self) -> str:
        return ", ".join(self.reasons)


SUCCESS = Status()
SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str, plugin: str = "") -> Status:
    return Status(Code.UNSCHEDULABLE, reasons, plugin)


def unresolvable(*reasons: str, plugin: str = "") -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)


def error(reason: str, plugin: str = "") -> Status:
    return Status(Code.ERROR, (reason,), plugin)


class CycleState(dict[str, Any]):
    """Data a plugin's pre-hook computes once per pod and its per-node hooks read (keyed by plugin name)."""


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        """Once per pod: precompute, SKIP when irrelevant, or reject the pod for every node."""

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        """Whether the pod fits on this node."""


@runtime_checkable
class FilterExtensions(Protocol):
    """Filters whose pre-filter state depends on other pods: preemption asks them to forget a victim."""

    def remove_pod(self, state: CycleState, pod: PodInfo, victim: PodInfo, node: NodeInfo) -> None: ...

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo]) -> Status:
        """Once per pod before scoring: precompute or SKIP."""

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """One raw score per node, in order."""

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        """Bring raw scores into 0..100 in place (a no-op for plugins that already score in range)."""
