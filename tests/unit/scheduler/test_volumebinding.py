"""VolumeBinding and VolumeRestrictions: node verdicts for pods with claims, in Kubernetes' words."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert, volumes
from api.pb import core_pb2, storage_pb2
from scheduler.framework.types import PodInfo, VolumeState, compute_snapshot
from scheduler.plugins import new_framework


def _node(name: str, capacity: str = "") -> core_pb2.Node:
    node = convert.from_dict(core_pb2.Node, {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name},
                     "annotations": {volumes.LOCAL_PATH_DIR: f"/lp/{name}"}},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110",
                                   **({volumes.LOCAL_PATH_CAPACITY: capacity} if capacity else {})},
                   "conditions": [{"type": "Ready", "status": "True"}]}})
    return node  # type: ignore[return-value]


def _pod(*claims: str) -> core_pb2.Pod:
    return convert.from_dict(core_pb2.Pod, {"metadata": {"name": "p", "namespace": "ns"}, "spec": {
        "containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]}})


def _claim(name: str, cls: str, size: str = "1Gi", volume: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",)
           ) -> core_pb2.PersistentVolumeClaim:
    return convert.from_dict(core_pb2.PersistentVolumeClaim, {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"storageClassName": cls, "accessModes": list(modes), "volumeName": volume,
                 "resources": {"requests": {"storage": size}}}})  # type: ignore[return-value]


def _pv(name: str, node: str, size: str = "1Gi", cls: str = "local-path") -> core_pb2.PersistentVolume:
    return convert.from_dict(core_pb2.PersistentVolume, {
        "metadata": {"name": name, "labels": {volumes.LOCAL_PATH_NODE: node}},
        "spec": {"storageClassName": cls, "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": f"/lp/{node}/{name}"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})


CLASSES = {
    "local-path": convert.from_dict(storage_pb2.StorageClass, {"metadata": {"name": "local-path"},
                                                               "provisioner": volumes.LOCAL_PATH,
                                                               "volumeBindingMode": "WaitForFirstConsumer"}),
    "fast": convert.from_dict(storage_pb2.StorageClass, {"metadata": {"name": "fast"}, "provisioner": "x/y"}),
}


def _explain(pod: core_pb2.Pod, claims: list[Any], pvs: list[Any], nodes: list[core_pb2.Node]) -> dict[str, str]:
    storage = VolumeState({f"ns/{c.metadata.name}": c for c in claims}, {p.metadata.name: p for p in pvs}, CLASSES)
    ex = new_framework().explain(PodInfo(pod), compute_snapshot(nodes, [], storage=storage))
    out = {}
    for n in ex.nodes:
        verdict = dict(n.filters)["VolumeBinding"]
        out[n.node] = verdict.message() if not verdict.ok and verdict.code_name != "Skip" else verdict.code_name
    return out


@pytest.mark.parametrize(("claims", "pvs", "nodes", "want"), [
    pytest.param([_claim("d", "local-path", volume="pv1")], [_pv("pv1", "n2")], [_node("n1"), _node("n2")],
                 {"n1": volumes.REASON_NODE_CONFLICT, "n2": "Success"}, id="bound-local-volume-pins-the-node"),
    pytest.param([_claim("d", "fast")], [], [_node("n1")],
                 {"n1": volumes.REASON_UNBOUND_IMMEDIATE}, id="unbound-immediate"),
    pytest.param([_claim("d", "local-path", size="6Gi")], [_pv("old", "n1", size="5Gi")],
                 [_node("n1", "10Gi"), _node("n2", "10Gi")],
                 {"n1": volumes.REASON_NOT_ENOUGH_SPACE, "n2": "Success"}, id="local-path-capacity"),
    pytest.param([_claim("d", "local-path")], [], [_node("n1")], {"n1": "Success"}, id="provisionable"),
])
def test_volume_binding_verdicts(claims: list[Any], pvs: list[Any], nodes: list[core_pb2.Node],
                                 want: dict[str, str]) -> None:
    """Each node's VolumeBinding verdict, with Kubernetes' reasons."""
    assert _explain(_pod("d"), claims, pvs, nodes) == want


def test_pending_message_counts_nodes_with_the_reason() -> None:
    """A claim bound to a volume on no node of the cluster: `0/2 nodes are available: 2 node(s) had volume node
    affinity conflict.`"""
    claims = [_claim("d", "local-path", volume="pv1")]
    storage = VolumeState({"ns/d": claims[0]}, {"pv1": _pv("pv1", "elsewhere")}, CLASSES)
    result = new_framework().schedule(PodInfo(_pod("d")), compute_snapshot([_node("n1"), _node("n2")], [],
                                                                           storage=storage))
    assert result.node == ""
    assert result.message() == "0/2 nodes are available: 2 node(s) had volume node affinity conflict."


def test_read_write_once_pod_claims_serve_one_pod() -> None:
    """A second pod using a ReadWriteOncePod claim is refused by VolumeRestrictions."""
    c = _claim("d", "local-path", volume="pv1", modes=("ReadWriteOncePod",))
    user = _pod("d")
    user.metadata.name = "first"
    user.spec.node_name = "n1"
    storage = VolumeState({"ns/d": c}, {"pv1": _pv("pv1", "n1")}, CLASSES)
    result = new_framework().schedule(PodInfo(_pod("d")), compute_snapshot([_node("n1")], [user], storage=storage))
    assert result.message() == f"0/1 nodes are available: {volumes.REASON_RWOP_CONFLICT}."
