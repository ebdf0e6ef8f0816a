"""Whether a pod may go to a node by its node selector, required node affinity and tolerations.

The DaemonSet controller decides with these which nodes should run a daemon pod (Kubernetes'
NodeShouldRunDaemonPod); the scheduler keeps its own compiled copy of the same rules for speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from api import labels
from api.pb import core_pb2

_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!", "Gt": "gt", "Lt": "lt"}


def _requirement_matches(req: core_pb2.NodeSelectorRequirement, values: Mapping[str, str]) -> bool:
    op = _OPS.get(req.operator)
    if op is None:
        return False
    return labels.Requirement(req.key, op, tuple(req.values)).matches(values)


def term_matches(term: core_pb2.NodeSelectorTerm, node: core_pb2.Node) -> bool:
    """Every expression on the node's labels and every field expression (metadata.name) holds; an empty term
    matches no node."""
    if not term.match_expressions and not term.match_fields:
        return False
    node_labels = node.metadata.labels
    fields = {"metadata.name": node.metadata.name}
    return all(_requirement_matches(r, node_labels) for r in term.match_expressions) and \
        all(r.key == "metadata.name" and _requirement_matches(r, fields) for r in term.match_fields)


def node_matches(spec: core_pb2.PodSpec, node: core_pb2.Node) -> bool:
    """nodeSelector and the required node affinity (any of its terms) both admit the node."""
    node_labels = node.metadata.labels
    if any(node_labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    na = spec.affinity.node_affinity
    if not na.HasField("required_during_scheduling_ignored_during_execution"):
        return True
    return any(term_matches(t, node) for t in na.required_during_scheduling_ignored_during_execution
               .node_selector_terms)


def tolerates(tol: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Kubernetes' ToleratesTaint: effect and key match (empty matches all), then the value by operator."""
    if tol.effect and tol.effect != taint.effect:
        return False
    if tol.key and tol.key != taint.key:
        return False
    if tol.operator in ("", "Equal"):
        return tol.value == taint.value
    return tol.operator == "Exists"


def untolerated(taints: Iterable[core_pb2.Taint], tolerations: Sequence[core_pb2.Toleration],
                effects: tuple[str, ...]) -> list[core_pb2.Taint]:
    """The taints with one of `effects` that no toleration tolerates."""
    return [t for t in taints if t.effect in effects and not any(tolerates(tol, t) for tol in tolerations)]
