"""VolumeBinding: a pod's claims must be bound to volumes its node can reach, or bindable on that node.

As kube-scheduler's plugin: a claim bound to a volume with node affinity
(a local volume, a local-path directory) admits only the nodes that affinity
admits ("node(s) had volume node affinity conflict"); an unbound claim of an
Immediate class means the PV controller has not bound it yet, so the pod
waits ("pod has unbound immediate PersistentVolumeClaims"); an unbound claim
of a WaitForFirstConsumer class needs, on the node, either a free volume
that fits it or a class whose provisioner can make one there: for kubelite's
local-path provisioner, a node with room left in its reported local-path
capacity ("node(s) did not have enough free storage"). The scheduler then
writes the chosen node on the claim (`volume.kubernetes.io/selected-node`)
and binds the pod only once the claim is bound (the PreBind step, in
daemon.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from api import quantity, volumes
from api.pb import core_pb2
from scheduler.framework.interface import SKIP, SUCCESS, Code, CycleState, Status, unresolvable, unschedulable
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

NAME = "VolumeBinding"
_NO_CLAIMS = Status(Code.SKIP, ("the pod uses no PersistentVolumeClaims",))


@dataclass
class _State:
    bound: list[core_pb2.PersistentVolume] = field(default_factory=list)
    # Unbound WaitForFirstConsumer claims, each with its class's provisioner ("" if none).
    unbound: list[tuple[core_pb2.PersistentVolumeClaim, str]] = field(default_factory=list)
    snapshot: Snapshot | None = None


def unbound_delayed_claims(pod: PodInfo, snapshot: Snapshot) -> list[core_pb2.PersistentVolumeClaim]:
    """The pod's claims still to bind once a node is chosen (WaitForFirstConsumer, not bound yet)."""
    st = snapshot.storage
    out = []
    for name in pod.claims:
        pvc = st.claims.get(f"{pod.namespace}/{name}")
        if pvc is None or pvc.spec.volume_name:
            continue
        if volumes.binding_mode(st.classes.get(volumes.claim_class(pvc))) == "WaitForFirstConsumer":
            out.append(pvc)
    return out


def local_path_free(node: NodeInfo, snapshot: Snapshot) -> int | None:
    """Bytes of local-path storage left on a node (None when the node reports no capacity)."""
    if node.node is None:
        return None
    text = node.node.status.allocatable.get(volumes.LOCAL_PATH_CAPACITY) or \
        node.node.status.capacity.get(volumes.LOCAL_PATH_CAPACITY)
    if not text or not quantity.is_valid(text):
        return None
    st = snapshot.storage
    used = sum(volumes.volume_size(pv) for pv in st.volumes.values()
               if pv.metadata.labels.get(volumes.LOCAL_PATH_NODE) == node.name)
    provisioned = {volumes.bound_to(pv) for pv in st.volumes.values()}
    for key, where in st.assumed.items():
        pvc = st.claims.get(key)
        if where == node.name and pvc is not None and key not in provisioned:
            used += volumes.claim_request(pvc)
    return quantity.value(text) - used


class VolumeBinding:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        if not pod.claims:
            return _NO_CLAIMS
        st = snapshot.storage
        s = _State(snapshot=snapshot)
        for name in pod.claims:
            pvc = st.claims.get(f"{pod.namespace}/{name}")
            if pvc is None:
                return unresolvable(f'persistentvolumeclaim "{name}" not found', plugin=NAME)
            if pvc.metadata.HasField("deletion_timestamp"):
                return unresolvable(f'persistentvolumeclaim "{name}" is being deleted', plugin=NAME)
            if pvc.spec.volume_name:
                pv = st.volumes.get(pvc.spec.volume_name)
                if pv is None:
                    return unresolvable(f'persistentvolume "{pvc.spec.volume_name}" not found', plugin=NAME)
                s.bound.append(pv)
                continue
            sc = st.classes.get(volumes.claim_class(pvc))
            if volumes.binding_mode(sc) != "WaitForFirstConsumer":
                return unresolvable(volumes.REASON_UNBOUND_IMMEDIATE, plugin=NAME)
            s.unbound.append((pvc, sc.provisioner if sc is not None else ""))
        state[NAME] = s
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        s: _State = state[NAME]
        node_labels = node.labels
        for pv in s.bound:
            if not volumes.volume_fits_node(pv, node_labels, node.name):
                return unresolvable(volumes.REASON_NODE_CONFLICT, plugin=NAME)
        if not s.unbound:
            return SUCCESS
        assert s.snapshot is not None
        st = s.snapshot.storage
        need_space = 0
        for pvc, provisioner in s.unbound:
            key = volumes.claim_key(pvc)
            chosen = pvc.metadata.annotations.get(volumes.SELECTED_NODE) or st.assumed.get(key)
            if chosen and chosen != node.name:
                return unresolvable(volumes.REASON_NODE_CONFLICT, plugin=NAME)
            if volumes.find_best_volume(pvc, st.volumes.values(), node_labels=node_labels,
                                        node_name=node.name) is not None:
                continue
            if provisioner != volumes.LOCAL_PATH:
                return unresolvable(volumes.REASON_BIND_CONFLICT, plugin=NAME)
            if node.node is None or not node.node.metadata.annotations.get(volumes.LOCAL_PATH_DIR):
                return unresolvable(volumes.REASON_BIND_CONFLICT, plugin=NAME)
            if not chosen:
                need_space += volumes.claim_request(pvc)
        if need_space:
            free = local_path_free(node, s.snapshot)
            if free is not None and need_space > free:
                return unschedulable(volumes.REASON_NOT_ENOUGH_SPACE, plugin=NAME)
        return SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: object) -> Status:
        return SKIP


class VolumeRestrictions:
    """A ReadWriteOncePod claim serves one pod in the whole cluster (kube-scheduler's VolumeRestrictions)."""

    name = "VolumeRestrictions"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status:
        st = snapshot.storage
        rwop = set()
        for name in pod.claims:
            pvc = st.claims.get(f"{pod.namespace}/{name}")
            if pvc is not None and volumes.RWOP in pvc.spec.access_modes:
                rwop.add(name)
        if not rwop:
            return Status(Code.SKIP, ("the pod uses no ReadWriteOncePod claim",))
        for info in snapshot.infos.values():
            for other in info.pods.values():
                if other.key != pod.key and other.namespace == pod.namespace and rwop & set(other.claims):
                    return unresolvable(volumes.REASON_RWOP_CONFLICT, plugin=self.name)
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        return SUCCESS
