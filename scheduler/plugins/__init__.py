"""The in-tree plugins and the order the filters run in.

The order follows kube-scheduler's default profile: cheap, node-local checks
that most often reject a node come first, so a misfit node costs one or two
checks; checks that look at other pods (spreading, inter-pod affinity) come
last. A node's reported reason is the first filter that rejects it.
"""

from __future__ import annotations

from scheduler.framework.config import DEFAULT_SCORE_WEIGHTS, SchedulerConfig
from scheduler.framework.interface import FilterPlugin, ScorePlugin
from scheduler.framework.runner import Framework
from scheduler.plugins.interpodaffinity import InterPodAffinity
from scheduler.plugins.nodeaffinity import NodeAffinity
from scheduler.plugins.nodeports import NodePorts
from scheduler.plugins.nodestate import NodeReady, NodeUnschedulable
from scheduler.plugins.resources import NodeResourcesBalancedAllocation, NodeResourcesFit
from scheduler.plugins.selectorspread import SelectorSpread
from scheduler.plugins.taints import TaintToleration
from scheduler.plugins.topologyspread import PodTopologySpread
from scheduler.plugins.volumebinding import VolumeBinding, VolumeRestrictions

FILTER_ORDER = ("NodeUnschedulable", "NodeReady", "TaintToleration", "NodeAffinity", "NodePorts",
                "NodeResourcesFit", "VolumeRestrictions", "VolumeBinding", "PodTopologySpread", "InterPodAffinity")



def build(strategy: str) -> tuple[list[FilterPlugin], dict[str, ScorePlugin]]:
    """Fresh plugin instances: the filters in order, and every score plugin by name."""
    fit = NodeResourcesFit(strategy)
    affinity = NodeAffinity()
    taints = TaintToleration()
    spread = PodTopologySpread()
    by_name: dict[str, object] = {
        "NodeUnschedulable": NodeUnschedulable(), "NodeReady": NodeReady(), "TaintToleration": taints,
        "NodeAffinity": affinity, "NodePorts": NodePorts(), "NodeResourcesFit": fit, "PodTopologySpread": spread,
        "InterPodAffinity": InterPodAffinity(), "VolumeRestrictions": VolumeRestrictions(),
        "VolumeBinding": VolumeBinding(),
    }
    filters = [by_name[n] for n in FILTER_ORDER]
    scores: dict[str, object] = {
        "NodeResourcesFit": fit, "NodeResourcesBalancedAllocation": NodeResourcesBalancedAllocation(),
        "SelectorSpread": SelectorSpread(), "PodTopologySpread": spread, "NodeAffinity": affinity,
        "TaintToleration": taints,
    }
    return filters, scores  # type: ignore[return-value]


def new_framework(config: SchedulerConfig | None = None) -> Framework:
    """The scheduling profile: every filter in order, and the score plugins with a weight above 0."""
    config = config or SchedulerConfig()
    filters, scores = build(config.scoring_strategy)
    weighted = [(scores[name], w) for name, w in config.score_weights.items() if w > 0]
    return Framework(filters, weighted, percentage_of_nodes_to_score=config.percentage_of_nodes_to_score)


__all__ = ["DEFAULT_SCORE_WEIGHTS", "FILTER_ORDER", "build", "new_framework"]
