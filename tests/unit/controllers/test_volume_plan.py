"""The PV controller's decisions: binding, phases, reclaim and protection (pure plans)."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert, volumes
from api.pb import core_pb2, storage_pb2
from controllers.volume import plan

WFFC = convert.from_dict(storage_pb2.StorageClass, {"metadata": {"name": "local-path"},
                                                    "provisioner": "kubelite.io/local-path",
                                                    "volumeBindingMode": "WaitForFirstConsumer",
                                                    "reclaimPolicy": "Delete"})
MANUAL = convert.from_dict(storage_pb2.StorageClass, {"metadata": {"name": "manual"}, "provisioner": "x/none"})
CLASSES = {"local-path": WFFC, "manual": MANUAL}
NODES = {"n1": {"kubernetes.io/hostname": "n1"}, "n2": {"kubernetes.io/hostname": "n2"}}


def claim(name: str = "c", cls: str = "manual", size: str = "1Gi", **extra: Any) -> core_pb2.PersistentVolumeClaim:
    data: dict[str, Any] = {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
                            "spec": {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                                     "resources": {"requests": {"storage": size}}}}
    for k, v in extra.items():
        data.setdefault(k.split(".")[0], {})[k.split(".")[1]] = v
    return convert.from_dict(core_pb2.PersistentVolumeClaim, data)  # type: ignore[return-value]


def volume(name: str, size: str = "5Gi", cls: str = "manual", node: str = "", ref: tuple[str, str] | None = None,
           **spec: Any) -> core_pb2.PersistentVolume:
    data: dict[str, Any] = {"metadata": {"name": name}, "spec": {
        "storageClassName": cls, "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": f"/v/{name}"}, **spec}, "status": {"phase": "Available"}}
    if node:
        data["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    if ref:
        data["spec"]["claimRef"] = {"namespace": "ns", "name": ref[0], "uid": ref[1]}
    return convert.from_dict(core_pb2.PersistentVolume, data)  # type: ignore[return-value]


@pytest.mark.parametrize(("pvc", "pvs", "bind", "phase", "provision"), [
    pytest.param(claim(), [volume("big", "10Gi"), volume("small", "2Gi")], "small", "", False,
                 id="smallest-fitting"),
    pytest.param(claim(size="20Gi"), [volume("big", "10Gi")], "", "", False, id="too-small"),
    pytest.param(claim(), [volume("taken", ref=("other", "uid-other"))], "", "", False, id="held-by-another"),
    pytest.param(claim(), [volume("prebound", "9Gi", ref=("c", "")), volume("small", "1Gi")], "prebound", "", False,
                 id="pre-bound-wins"),
    pytest.param(claim(cls="local-path"), [], "", "", False, id="wait-for-first-consumer"),
    pytest.param(claim(cls="local-path", **{"metadata.annotations": {volumes.SELECTED_NODE: "n1"}}), [], "", "",
                 True, id="provision-on-selected-node"),
    pytest.param(claim(cls="local-path", **{"metadata.annotations": {volumes.SELECTED_NODE: "n1"}}),
                 [volume("on-n2", cls="local-path", node="n2"), volume("on-n1", cls="local-path", node="n1")],
                 "on-n1", "", False, id="static-volume-on-selected-node"),
])
def test_plan_claim_binding(pvc: core_pb2.PersistentVolumeClaim, pvs: list[core_pb2.PersistentVolume], bind: str,
                            phase: str, provision: bool) -> None:
    """An unbound claim binds to the right volume, waits for its first consumer, or goes to the provisioner."""
    pvc.status.phase = "Pending"
    act = plan.plan_claim(pvc, pvs, CLASSES, [], NODES)
    assert (act.bind_to, act.phase, act.provision) == (bind, phase, provision)


def test_a_claim_in_use_keeps_its_protection() -> None:
    """A deleted claim loses pvc-protection only when no unfinished pod uses it."""
    pvc = claim()
    pvc.metadata.finalizers.append(volumes.PVC_PROTECTION)
    pvc.metadata.deletion_timestamp.seconds = 1
    user = convert.from_dict(core_pb2.Pod, {"metadata": {"name": "p"}, "spec": {"volumes": [
        {"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}, "status": {"phase": "Running"}})
    assert plan.plan_claim(pvc, [], CLASSES, [user], NODES).remove_finalizer is False  # type: ignore[list-item]
    user.status.phase = "Succeeded"  # type: ignore[attr-defined]
    assert plan.plan_claim(pvc, [], CLASSES, [user], NODES).remove_finalizer is True  # type: ignore[list-item]
    assert plan.plan_claim(pvc, [], CLASSES, [], NODES).remove_finalizer is True


def test_a_bound_claim_whose_volume_vanished_is_lost() -> None:
    """Bound to a volume that no longer exists: Lost, with Kubernetes' event."""
    pvc = claim(**{"spec.volumeName": "gone"})
    pvc.status.phase = "Bound"
    act = plan.plan_claim(pvc, [], CLASSES, [], NODES)
    assert act.phase == "Lost" and act.event is not None and act.event[1] == "ClaimLost"


@pytest.mark.parametrize(("pv", "claim_there", "phase", "delete"), [
    pytest.param(volume("free"), False, "", False, id="available-stays"),
    pytest.param(volume("bound", ref=("c", "uid-c")), True, "Bound", False, id="bound"),
    pytest.param(volume("retained", ref=("c", "uid-c"), persistentVolumeReclaimPolicy="Retain"), False,
                 "Released", False, id="retain-released"),
    pytest.param(volume("provisioned", ref=("c", "uid-c"), persistentVolumeReclaimPolicy="Delete"), False,
                 "Released", True, id="delete-provisioned"),
    pytest.param(volume("manual-delete", ref=("c", "uid-c"), persistentVolumeReclaimPolicy="Delete"), False,
                 "Failed", False, id="delete-without-deleter-fails"),
])
def test_plan_volume_phases_and_reclaim(pv: core_pb2.PersistentVolume, claim_there: bool, phase: str,
                                        delete: bool) -> None:
    """Bound while its claim exists; Released when it is gone; then Retain keeps, Delete deletes (or Failed)."""
    if pv.metadata.name == "provisioned":
        pv.metadata.annotations[volumes.PROVISIONED_BY] = volumes.LOCAL_PATH
    c = claim(**{"spec.volumeName": pv.metadata.name}) if claim_there else None
    if pv.metadata.name == "bound":
        pv.status.phase = "Available"
    act = plan.plan_volume(pv, c)
    assert (act.phase, act.delete) == (phase, delete)


def test_a_volume_keeps_its_protection_while_bound() -> None:
    """A deleted volume still bound to a live claim keeps pv-protection; once the claim is gone it goes."""
    pv = volume("v", ref=("c", "uid-c"))
    pv.metadata.finalizers.append(volumes.PV_PROTECTION)
    pv.metadata.deletion_timestamp.seconds = 1
    assert plan.plan_volume(pv, claim()).remove_finalizer is False
    assert plan.plan_volume(pv, None).remove_finalizer is True


def test_the_provisioned_volume_is_pinned_to_the_node_and_pre_bound() -> None:
    """A local-path volume: a directory under the node's root, node affinity to it, claimRef with the uid."""
    pv = plan.plan_provisioned_volume(claim(cls="local-path", size="3Gi"), WFFC, "n2", "/var/lib/x/local-path")
    assert pv.metadata.name == "pvc-uid-c"
    assert pv.spec.host_path.path == "/var/lib/x/local-path/pvc-uid-c_ns_c"
    assert volumes.node_of(pv) == "n2" and pv.metadata.labels[volumes.LOCAL_PATH_NODE] == "n2"
    assert pv.spec.claim_ref.uid == "uid-c" and pv.spec.capacity["storage"] == "3Gi"
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"
    assert volumes.LOCAL_PATH_FINALIZER in pv.metadata.finalizers
