"""What the PV controller does for one claim or one volume: pure functions of the cached objects.

The shape of Kubernetes' persistentvolume controller (syncClaim, syncVolume)
and its pvc-protection and pv-protection controllers:

- an unbound claim binds to the best volume for it (api/volumes.py), at once
  for Immediate classes, once the scheduler has chosen a node for a
  WaitForFirstConsumer class (the `selected-node` annotation); with no volume
  and a class whose provisioner is kubelite's, the claim is handed to the
  provisioner (the `storage-provisioner` annotation);
- a bound claim is Bound; one whose volume vanished is Lost;
- a volume is Available, Bound to its claim, or Released once the claim is
  gone; a Released volume is kept (Retain) or deleted (Delete), and a
  volume no plugin can delete is Failed;
- a claim being deleted loses pvc-protection once no running pod uses it; a
  volume being deleted loses pv-protection once no claim holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from api import volumes
from api.pb import core_pb2, storage_pb2

LOCAL_PATH = volumes.LOCAL_PATH
LOCAL_PATH_FINALIZER = volumes.LOCAL_PATH_FINALIZER
LOCAL_PATH_NODE = volumes.LOCAL_PATH_NODE


@dataclass
class ClaimActions:
    bind_to: str = ""  # volume to bind the claim to
    phase: str = ""  # claim phase to set ("" keeps it)
    provision: bool = False  # hand the claim to the provisioner
    remove_finalizer: bool = False  # pvc-protection may go
    event: tuple[str, str, str] | None = None  # type, reason, message


@dataclass
class VolumeActions:
    phase: str = ""
    message: str = ""
    delete: bool = False  # reclaim policy Delete: remove the volume object
    remove_finalizer: bool = False  # pv-protection may go
    clear_claim_uid: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)


def pod_uses_claim(pod: core_pb2.Pod, claim: str) -> bool:
    return any(v.persistent_volume_claim.claim_name == claim for v in pod.spec.volumes
               if v.HasField("persistent_volume_claim"))


def pod_blocks_claim_removal(pod: core_pb2.Pod) -> bool:
    """A pod holds its claims until it is gone or has finished (Kubernetes' pvc-protection rule)."""
    return pod.status.phase not in ("Succeeded", "Failed")


def plan_claim(pvc: core_pb2.PersistentVolumeClaim, pvs: Iterable[core_pb2.PersistentVolume],
               classes: Mapping[str, storage_pb2.StorageClass], users: Iterable[core_pb2.Pod],
               node_labels: Mapping[str, Mapping[str, str]]) -> ClaimActions:
    """One claim's next step. `users`: pods in its namespace naming it; `node_labels`: nodes' labels by name."""
    act = ClaimActions()
    meta = pvc.metadata
    if meta.HasField("deletion_timestamp"):
        if volumes.PVC_PROTECTION in meta.finalizers and not any(pod_blocks_claim_removal(p) for p in users):
            act.remove_finalizer = True
        return act
    pvs = list(pvs)
    by_name = {pv.metadata.name: pv for pv in pvs}
    if pvc.spec.volume_name:
        pv = by_name.get(pvc.spec.volume_name)
        if pv is None:
            if pvc.status.phase == "Bound":
                act.phase = "Lost"
                act.event = ("Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume "
                             "is lost!")
            return act
        ref = pv.spec.claim_ref
        if ref.name == meta.name and ref.namespace == meta.namespace and ref.uid in ("", meta.uid):
            if not ref.uid or pvc.status.phase != "Bound":
                act.bind_to = pv.metadata.name  # finish a bind (either side still to write)
            return act
        if pvc.status.phase != "Lost" and ref.name:
            act.phase = "Lost"
            act.event = ("Warning", "ClaimMisbound", "Two claims are bound to the same volume, this one is bound "
                         "incorrectly")
        elif not ref.name:
            act.bind_to = pv.metadata.name  # the user named the volume: bind it to this claim
        return act
    sc = classes.get(volumes.claim_class(pvc))
    mode = volumes.binding_mode(sc)
    selected = meta.annotations.get(volumes.SELECTED_NODE, "")
    if mode == "WaitForFirstConsumer" and not selected:
        if pvc.status.phase != "Pending":
            act.phase = "Pending"
        act.event = ("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
        return act
    labels = node_labels.get(selected) if selected else None
    if selected and labels is None:
        labels = {}
    best = volumes.find_best_volume(pvc, pvs, node_labels=labels, node_name=selected)
    if best is not None:
        act.bind_to = best.metadata.name
        return act
    if pvc.status.phase != "Pending":
        act.phase = "Pending"
    if sc is not None and sc.provisioner == LOCAL_PATH:
        if mode != "WaitForFirstConsumer":
            act.event = ("Warning", "ProvisioningFailed", f"{LOCAL_PATH} provisions only for volumeBindingMode "
                         f"WaitForFirstConsumer (the node decides where the directory is)")
        elif meta.annotations.get(volumes.STORAGE_PROVISIONER) != LOCAL_PATH:
            act.provision = True
            act.event = ("Normal", "ExternalProvisioning", f"Waiting for a volume to be created by the "
                         f"{LOCAL_PATH} provisioner")
        return act
    if sc is None and volumes.claim_class(pvc):
        act.event = ("Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{volumes.claim_class(pvc)}" '
                     f"not found")
    elif sc is not None:
        act.event = ("Normal", "ExternalProvisioning", f"Waiting for a volume to be created by the "
                     f"{sc.provisioner} provisioner; no provisioner of that name runs in kubelite")
    else:
        act.event = ("Normal", "FailedBinding", "no persistent volumes available for this claim and no storage "
                     "class is set")
    return act


def plan_volume(pv: core_pb2.PersistentVolume, claim: core_pb2.PersistentVolumeClaim | None) -> VolumeActions:
    """One volume's phase, reclaim and protection. `claim`: the claim its claimRef names, if it exists."""
    act = VolumeActions()
    meta = pv.metadata
    ref = pv.spec.claim_ref
    claim_there = claim is not None and (not ref.uid or claim.metadata.uid == ref.uid)
    if meta.HasField("deletion_timestamp"):
        bound = ref.name and claim_there and claim is not None and not claim.metadata.HasField("deletion_timestamp")
        if volumes.PV_PROTECTION in meta.finalizers and not bound:
            act.remove_finalizer = True
        return act
    if not ref.name:
        if pv.status.phase != "Available":
            act.phase = "Available"
        return act
    if claim_there:
        if claim is not None and claim.spec.volume_name == meta.name and pv.status.phase != "Bound" and ref.uid:
            act.phase = "Bound"
        elif not ref.uid and pv.status.phase not in ("Available", "Bound"):
            act.phase = "Available"  # pre-bound by the user, waiting for its claim to bind
        return act
    if not ref.uid:
        if pv.status.phase != "Available":
            act.phase = "Available"  # pre-bound to a claim that does not exist yet
        return act
    # The claim it was bound to is gone.
    policy = pv.spec.persistent_volume_reclaim_policy or "Retain"
    if pv.status.phase in ("", "Pending", "Available", "Bound"):
        act.phase = "Released"
        act.events.append(("Normal", "VolumeReleased", f"claim {ref.namespace}/{ref.name} is gone"))
    if policy == "Delete":
        if meta.annotations.get(volumes.PROVISIONED_BY) == LOCAL_PATH:
            act.delete = True
        elif pv.status.phase != "Failed":
            act.phase = "Failed"
            act.message = "error getting deleter volume plugin for volume: no deletable volume plugin matched"
            act.events.append(("Warning", "VolumeFailedDelete", act.message))
    return act


def bound_claim(pvc: core_pb2.PersistentVolumeClaim, pv: core_pb2.PersistentVolume) -> core_pb2.PersistentVolumeClaim:
    """The claim with its volume named (spec and the bind annotations)."""
    new = core_pb2.PersistentVolumeClaim()
    new.CopyFrom(pvc)
    new.spec.volume_name = pv.metadata.name
    new.metadata.annotations[volumes.BIND_COMPLETED] = "yes"
    if not pv.spec.claim_ref.uid or pv.metadata.annotations.get(volumes.PROVISIONED_BY):
        new.metadata.annotations[volumes.BOUND_BY_CONTROLLER] = "yes"
    return new


def bound_claim_status(pvc: core_pb2.PersistentVolumeClaim,
                       pv: core_pb2.PersistentVolume) -> core_pb2.PersistentVolumeClaim:
    new = core_pb2.PersistentVolumeClaim()
    new.CopyFrom(pvc)
    new.status.phase = "Bound"
    del new.status.access_modes[:]
    new.status.access_modes.extend(pv.spec.access_modes)
    new.status.capacity.clear()
    new.status.capacity.update(pv.spec.capacity)
    return new


def claimed_volume(pv: core_pb2.PersistentVolume, pvc: core_pb2.PersistentVolumeClaim) -> core_pb2.PersistentVolume:
    """The volume with its claimRef naming the claim (namespace, name, uid)."""
    new = core_pb2.PersistentVolume()
    new.CopyFrom(pv)
    ref = new.spec.claim_ref
    ref.kind, ref.api_version = "PersistentVolumeClaim", "v1"
    ref.namespace, ref.name, ref.uid = pvc.metadata.namespace, pvc.metadata.name, pvc.metadata.uid
    ref.resource_version = ""
    if not pv.spec.claim_ref.name:
        new.metadata.annotations[volumes.BOUND_BY_CONTROLLER] = "yes"
    return new


def plan_provisioned_volume(pvc: core_pb2.PersistentVolumeClaim, sc: storage_pb2.StorageClass, node: str,
                            root: str) -> core_pb2.PersistentVolume:
    """The local-path volume for a claim: a directory under the node's local-path root, pinned to the node,
    pre-bound to the claim."""
    name = f"pvc-{pvc.metadata.uid}"
    pv = core_pb2.PersistentVolume()
    pv.metadata.name = name
    pv.metadata.labels[LOCAL_PATH_NODE] = node
    pv.metadata.annotations[volumes.PROVISIONED_BY] = LOCAL_PATH
    pv.metadata.finalizers.append(LOCAL_PATH_FINALIZER)
    spec = pv.spec
    spec.capacity["storage"] = pvc.spec.resources.requests.get("storage", "0")
    spec.access_modes.extend(pvc.spec.access_modes)
    spec.host_path.path = f"{root.rstrip('/')}/{name}_{pvc.metadata.namespace}_{pvc.metadata.name}"
    spec.host_path.type = "DirectoryOrCreate"
    spec.persistent_volume_reclaim_policy = sc.reclaim_policy if sc.HasField("reclaim_policy") else "Delete"
    spec.storage_class_name = sc.metadata.name
    spec.volume_mode = "Filesystem"
    spec.node_affinity.CopyFrom(volumes.node_affinity_for(node))
    ref = spec.claim_ref
    ref.kind, ref.api_version = "PersistentVolumeClaim", "v1"
    ref.namespace, ref.name, ref.uid = pvc.metadata.namespace, pvc.metadata.name, pvc.metadata.uid
    return pv


def local_path_used(pvs: Iterable[core_pb2.PersistentVolume], node: str) -> int:
    """Bytes of local-path volumes on a node (every one that exists, Released ones too: their data is there)."""
    return sum(volumes.volume_size(pv) for pv in pvs if pv.metadata.labels.get(LOCAL_PATH_NODE) == node)
