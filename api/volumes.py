"""PersistentVolumes and claims: which volume fits which claim, and on which nodes (pure, shared).

The PV controller binds claims with these rules and the scheduler's
VolumeBinding plugin checks them per node, so both agree by construction
(Kubernetes shares pkg/controller/volume/persistentvolume/util the same way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from api import labels, quantity
from api.pb import core_pb2, storage_pb2

RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"
ACCESS_MODES = (RWO, ROX, RWX, RWOP)
RECLAIM_POLICIES = ("Retain", "Delete", "Recycle")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
VOLUME_MODES = ("Filesystem", "Block")

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# On a claim: the node the scheduler picked for its first consumer (WaitForFirstConsumer).
SELECTED_NODE = "volume.kubernetes.io/selected-node"
# On a claim: the provisioner asked to make its volume; on a volume: who made it.
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"

# kubelite's dynamic provisioner of directories on the node that runs the claim's first pod.
LOCAL_PATH = "kubelite.io/local-path"
# On volumes it made: kept until their node removed the directory.
LOCAL_PATH_FINALIZER = "kubelite.io/local-path"
# On volumes it made: the node that holds the directory (its kubelet watches by it).
LOCAL_PATH_NODE = "kubelite.io/local-path-node"
# On nodes: the directory their local-path volumes live under (the kubelet sets it).
LOCAL_PATH_DIR = "kubelite.io/local-path-dir"
# In a node's capacity and allocatable: the bytes its local-path volumes may claim in all.
LOCAL_PATH_CAPACITY = "kubelite.io/local-path"

# Kubernetes' scheduler reasons (volumebinding and volumerestrictions plugins).
REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
REASON_NOT_ENOUGH_SPACE = "node(s) did not have enough free storage"
REASON_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
REASON_RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
REASON_DISK_CONFLICT = "node(s) had no available disk"


def claim_class(pvc: core_pb2.PersistentVolumeClaim) -> str:
    return pvc.spec.storage_class_name if pvc.spec.HasField("storage_class_name") else ""


def claim_request(pvc: core_pb2.PersistentVolumeClaim) -> int:
    """The storage a claim asks for, in bytes (0 if it names none)."""
    text = pvc.spec.resources.requests.get("storage", "")
    return quantity.value(text) if text and quantity.is_valid(text) else 0


def volume_size(pv: core_pb2.PersistentVolume) -> int:
    text = pv.spec.capacity.get("storage", "")
    return quantity.value(text) if text and quantity.is_valid(text) else 0


def volume_mode(mode_set: bool, mode: str) -> str:
    return mode if mode_set and mode else "Filesystem"


def is_default_class(sc: storage_pb2.StorageClass) -> bool:
    return sc.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"


def default_class(classes: Iterable[storage_pb2.StorageClass]) -> storage_pb2.StorageClass | None:
    """The default StorageClass; with several, the newest (as Kubernetes picks since 1.28), then by name."""
    found = [sc for sc in classes if is_default_class(sc)]
    if not found:
        return None
    return max(found, key=lambda sc: (sc.metadata.creation_timestamp.ToNanoseconds(), sc.metadata.name))


def binding_mode(sc: storage_pb2.StorageClass | None) -> str:
    if sc is None or not sc.HasField("volume_binding_mode") or not sc.volume_binding_mode:
        return "Immediate"
    return sc.volume_binding_mode


def claim_key(pvc: core_pb2.PersistentVolumeClaim) -> str:
    return f"{pvc.metadata.namespace}/{pvc.metadata.name}"


def bound_to(pv: core_pb2.PersistentVolume) -> str:
    """namespace/name of the claim a volume's claimRef names ("" if none)."""
    ref = pv.spec.claim_ref
    return f"{ref.namespace}/{ref.name}" if ref.name else ""


# ---------------------------------------------------------------- node affinity


_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!", "Gt": "gt", "Lt": "lt"}


def _term_matches(term: core_pb2.NodeSelectorTerm, node_labels: Mapping[str, str], node_name: str) -> bool:
    if not term.match_expressions and not term.match_fields:
        return False
    for e in term.match_expressions:
        op = _OPS.get(e.operator)
        if op is None or not labels.Requirement(e.key, op, tuple(e.values)).matches(node_labels):
            return False
    for e in term.match_fields:
        op = _OPS.get(e.operator)
        if e.key != "metadata.name" or op not in ("in", "notin"):
            return False
        if not labels.Requirement(e.key, op, tuple(e.values)).matches({"metadata.name": node_name}):
            return False
    return True


def node_selector_matches(sel: core_pb2.NodeSelector, node_labels: Mapping[str, str], node_name: str) -> bool:
    """Any term matches (Kubernetes' NodeSelector semantics); no terms match no node."""
    return any(_term_matches(t, node_labels, node_name) for t in sel.node_selector_terms)


def volume_fits_node(pv: core_pb2.PersistentVolume, node_labels: Mapping[str, str], node_name: str) -> bool:
    """Whether a volume's node affinity admits the node (a volume without one fits every node)."""
    if not pv.spec.HasField("node_affinity") or not pv.spec.node_affinity.HasField("required"):
        return True
    return node_selector_matches(pv.spec.node_affinity.required, node_labels, node_name)


def node_of(pv: core_pb2.PersistentVolume) -> str:
    """The one node a volume's affinity pins it to by kubernetes.io/hostname or name ("" if none or several)."""
    req = pv.spec.node_affinity.required
    terms = list(req.node_selector_terms)
    if len(terms) != 1:
        return ""
    for e in (*terms[0].match_expressions, *terms[0].match_fields):
        if e.key in ("kubernetes.io/hostname", "metadata.name") and e.operator == "In" and len(e.values) == 1:
            return e.values[0]
    return ""


def node_affinity_for(node: str) -> core_pb2.VolumeNodeAffinity:
    """A volume's affinity to exactly one node, by its kubernetes.io/hostname label."""
    return core_pb2.VolumeNodeAffinity(required=core_pb2.NodeSelector(node_selector_terms=[
        core_pb2.NodeSelectorTerm(match_expressions=[core_pb2.NodeSelectorRequirement(
            key="kubernetes.io/hostname", operator="In", values=[node])])]))


# ---------------------------------------------------------------- matching


def mismatch(pv: core_pb2.PersistentVolume, pvc: core_pb2.PersistentVolumeClaim) -> str:
    """Why a volume cannot serve a claim ("" when it can), ignoring who else holds it."""
    if pv.spec.storage_class_name != claim_class(pvc):
        return f'storage class "{pv.spec.storage_class_name}" is not the claim\'s "{claim_class(pvc)}"'
    missing = [m for m in pvc.spec.access_modes if m not in pv.spec.access_modes]
    if missing:
        return f"access modes {', '.join(missing)} not offered"
    if volume_size(pv) < claim_request(pvc):
        return f"capacity {pv.spec.capacity.get('storage', '0')} is less than the request " \
               f"{pvc.spec.resources.requests.get('storage', '0')}"
    if volume_mode(pv.spec.HasField("volume_mode"), pv.spec.volume_mode) != \
            volume_mode(pvc.spec.HasField("volume_mode"), pvc.spec.volume_mode):
        return "volume mode differs"
    if pvc.spec.HasField("selector") and not labels.from_label_selector(pvc.spec.selector).matches(
            pv.metadata.labels):
        return "labels do not match the claim's selector"
    return ""


def available_for(pv: core_pb2.PersistentVolume, pvc: core_pb2.PersistentVolumeClaim) -> bool:
    """Whether the volume is free for this claim: unclaimed, or pre-bound to exactly this claim."""
    if pv.metadata.HasField("deletion_timestamp"):
        return False
    ref = pv.spec.claim_ref
    if ref.name:
        if ref.namespace != pvc.metadata.namespace or ref.name != pvc.metadata.name:
            return False
        return not ref.uid or ref.uid == pvc.metadata.uid
    return pv.status.phase in ("", "Available", "Pending")


def find_best_volume(pvc: core_pb2.PersistentVolumeClaim, pvs: Iterable[core_pb2.PersistentVolume], *,
                     node_labels: Mapping[str, str] | None = None, node_name: str = "",
                     taken: frozenset[str] = frozenset()) -> core_pb2.PersistentVolume | None:
    """The volume for a claim: one pre-bound to it, else the smallest that fits (on `node`, if given).

    `taken` names volumes already promised to other claims (the scheduler's assumptions).
    """
    best: core_pb2.PersistentVolume | None = None
    for pv in pvs:
        name = pv.metadata.name
        if name in taken or not available_for(pv, pvc) or mismatch(pv, pvc):
            continue
        if pvc.spec.volume_name and pvc.spec.volume_name != name:
            continue
        if node_labels is not None and not volume_fits_node(pv, node_labels, node_name):
            continue
        if pv.spec.claim_ref.name:
            return pv  # pre-bound to this claim
        if best is None or (volume_size(pv), name) < (volume_size(best), best.metadata.name):
            best = pv
    return best
