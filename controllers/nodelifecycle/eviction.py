"""Pure NoExecute taint semantics: which pods must leave a tainted node, and when."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from api.pb import core_pb2
from api.timestamps import seconds


def tolerates(tol: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Kubernetes' ToleratesTaint: effect and key match (empty matches all), then value by operator."""
    if tol.effect and tol.effect != taint.effect:
        return False
    if tol.key and tol.key != taint.key:
        return False
    if tol.operator in ("", "Equal"):
        return tol.value == taint.value
    return tol.operator == "Exists"


TaintKey = tuple[str, str]  # (key, effect): what identifies a taint on a node, as in Kubernetes


def observe_taints(seen: Mapping[TaintKey, float], taints: Iterable[core_pb2.Taint], now: float
                   ) -> dict[TaintKey, float]:
    """When each of a node's NoExecute taints was first seen: kept for taints still there, `now` for new ones.

    A taint without timeAdded (any but the node-lifecycle controller's own) counts from this moment, as
    Kubernetes' taint manager counts from when it first saw the taint; a taint removed and added again
    starts afresh.
    """
    return {(t.key, t.effect): seen.get((t.key, t.effect), now) for t in taints if t.effect == "NoExecute"}


def plan_eviction(pod: core_pb2.Pod, taints: Iterable[core_pb2.Taint], now: float,
                  first_seen: Mapping[TaintKey, float] | None = None) -> float | None:
    """When the pod must be deleted because of the node's NoExecute taints (<= now: at once; None: never).

    A taint no toleration matches evicts at once. Otherwise the pod may stay
    for the smallest tolerationSeconds among the tolerations used, counted
    from when the first of the NoExecute taints was added (its timeAdded, else when it was first
    seen, else now); tolerations without tolerationSeconds tolerate forever.
    """
    no_execute = [t for t in taints if t.effect == "NoExecute"]
    if not no_execute:
        return None
    used: list[core_pb2.Toleration] = []
    start = math.inf
    for taint in no_execute:
        matching = [tol for tol in pod.spec.tolerations if tolerates(tol, taint)]
        if not matching:
            return now
        used.extend(matching)
        added = seconds(taint.time_added) or (first_seen or {}).get((taint.key, taint.effect), now)
        start = min(start, added)
    limits = [max(0, tol.toleration_seconds) for tol in used if tol.HasField("toleration_seconds")]
    if not limits:
        return None
    at = start + min(limits)
    return at if math.isfinite(at) else None
