"""What controllers ask about a pod: ready, available, and how expendable it is (phases: api.pods)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from api import conditions
from api.pb import core_pb2
from api.timestamps import seconds

# Deletion order by phase: pending pods go before unknown ones, unknown before running.
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_ready(pod: core_pb2.Pod) -> bool:
    c = conditions.get(pod.status.conditions, "Ready")
    return c is not None and c.status == "True"


def ready_since(pod: core_pb2.Pod) -> float:
    c = conditions.get(pod.status.conditions, "Ready")
    return seconds(c.last_transition_time) if c is not None and c.status == "True" else 0.0


def is_available(pod: core_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` (Kubernetes' IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since > 0 and since + min_ready_seconds <= now


def available_at(pod: core_pb2.Pod, min_ready_seconds: int) -> float | None:
    """When a ready pod becomes available (None if not ready)."""
    if not is_ready(pod):
        return None
    return ready_since(pod) + max(0, min_ready_seconds)


def max_restarts(pod: core_pb2.Pod) -> int:
    return max((c.restart_count for c in pod.status.container_statuses), default=0)


def deletion_order(pods: Sequence[core_pb2.Pod]) -> list[core_pb2.Pod]:
    """Pods sorted least valuable first, as Kubernetes' ActivePodsWithRanks orders them.

    Unscheduled before scheduled; Pending before Unknown before Running; not
    ready before ready; pods doubled up on a node with more of their siblings
    first; recently ready before long ready; more restarts first; newest first.
    """
    on_node: dict[str, int] = {}
    for p in pods:
        on_node[p.spec.node_name] = on_node.get(p.spec.node_name, 0) + 1

    def key(p: core_pb2.Pod) -> tuple:
        ready = is_ready(p)
        return (
            1 if p.spec.node_name else 0,
            _PHASE_ORDER.get(p.status.phase, 0),
            1 if ready else 0,
            -on_node[p.spec.node_name] if p.spec.node_name else 0,
            -(ready_since(p) or math.inf) if ready else 0.0,
            -max_restarts(p),
            -(seconds(p.metadata.creation_timestamp) or math.inf),
            p.metadata.name,
        )

    return sorted(pods, key=key)
