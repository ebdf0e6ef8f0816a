"""The scheduler's cache: nodes and the pods on them, fed by informers, plus pods assumed but not yet bound.

A pod is *assumed* on its node the moment the scheduler decides, so the next
decision already counts it; the bind runs in the background. When the
informer shows the pod bound, the assumption is confirmed; when the bind
fails, the pod is forgotten and its resources freed. Pods that finished
(Succeeded, Failed) no longer count; pods being deleted still do, until they
are gone. A pod on a node the cache does not know (deleted, or not seen yet)
is kept on a placeholder NodeInfo that is not offered for scheduling.

The scheduling cycle runs without awaiting, so nothing changes the cache while
a decision is made: the snapshot is the cache's own NodeInfos, kept current
incrementally (a pod change touches one NodeInfo; the node list is rebuilt
only when a node comes or goes). Nothing per decision is O(all pods).
"""

from __future__ import annotations

from dataclasses import dataclass

from api.pb import core_pb2
from api.pods import is_terminal
from scheduler.framework.types import NodeFacts, NodeInfo, PodInfo, Snapshot

# What a node change may help: keys of the events the queue moves pods on.
NODE_ADDED = "NodeAdded"
NODE_ALLOCATABLE_GREW = "NodeAllocatableGrew"
NODE_LABELS_CHANGED = "NodeLabelsChanged"
NODE_TAINTS_CHANGED = "NodeTaintsChanged"
NODE_SCHEDULABLE = "NodeBecameSchedulable"
NODE_READY = "NodeBecameReady"
POD_DELETED = "AssignedPodDeleted"


@dataclass(slots=True)
class _PodState:
    info: PodInfo
    node: str
    assumed: bool  # decided by this scheduler, not yet seen bound by the informer


def compute_node_events(old: NodeFacts | None, new: NodeFacts) -> set[str]:
    """Which changes between two versions of a node could let a pending pod fit."""
    if old is None:
        return {NODE_ADDED}
    events = set()
    if any(n > o for n, o in zip(new.alloc, old.alloc, strict=True)):
        events.add(NODE_ALLOCATABLE_GREW)
    if new.labels != old.labels:
        events.add(NODE_LABELS_CHANGED)
    if new.taints != old.taints:
        events.add(NODE_TAINTS_CHANGED)
    if old.unschedulable and not new.unschedulable:
        events.add(NODE_SCHEDULABLE)
    if new.ready and not old.ready:
        events.add(NODE_READY)
    return events


class Cache:
    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self._pods: dict[str, _PodState] = {}
        self._nominations: dict[str, str] = {}  # pod key -> node

    # ------------------------------------------------------------ nodes

    def _info(self, name: str) -> NodeInfo:
        info = self.snapshot.infos.get(name)
        if info is None:
            info = self.snapshot.infos[name] = NodeInfo(name)
        return info

    def set_node(self, node: core_pb2.Node) -> set[str]:
        """Add or update a node; returns the events this change raises (empty for a heartbeat)."""
        info = self._info(node.metadata.name)
        facts = NodeFacts.of(node)
        old = info.facts
        if old == facts and info.node is not None:
            info.node = node  # a status heartbeat: nothing scheduling reads changed
            return set()
        was_listed = info.node is not None
        info.set_node(node, facts)
        if not was_listed:
            self.snapshot.nodes.append(info)
        self.snapshot.index_node(info)
        return compute_node_events(old if was_listed else None, facts)

    def remove_node(self, name: str) -> None:
        info = self.snapshot.infos.get(name)
        if info is None or info.node is None:
            return
        info.node = None
        info.facts = None
        self.snapshot.index_node(info)
        self.snapshot.nodes = [n for n in self.snapshot.nodes if n.name != name]
        if not info.pods:
            del self.snapshot.infos[name]

    # ------------------------------------------------------------ pods

    def _place(self, info: PodInfo, node: str) -> None:
        self.snapshot.place(info, node)

    def _unplace(self, info: PodInfo, node: str) -> None:
        ni = self.snapshot.infos.get(node)
        if ni is None:
            return
        ni.remove_pod(info)
        if not ni.anti_affinity_pods:
            self.snapshot.anti_affinity_nodes.discard(node)
        if ni.node is None and not ni.pods:
            del self.snapshot.infos[node]

    def assume(self, info: PodInfo, node: str) -> None:
        """Count the pod on `node` now; the bind follows."""
        old = self._pods.get(info.key)
        if old is not None:
            self._unplace(old.info, old.node)
        self._pods[info.key] = _PodState(info, node, True)
        self._place(info, node)

    def forget(self, key: str) -> None:
        """Drop an assumption whose bind failed."""
        st = self._pods.get(key)
        if st is not None and st.assumed:
            del self._pods[key]
            self._unplace(st.info, st.node)

    def is_assumed(self, key: str) -> bool:
        st = self._pods.get(key)
        return st is not None and st.assumed

    def has(self, key: str) -> bool:
        return key in self._pods

    def node_of(self, key: str) -> str:
        st = self._pods.get(key)
        return st.node if st is not None else ""

    def set_pod(self, pod: core_pb2.Pod) -> bool:
        """An assigned pod from the informer (added or changed). Returns True if resources were freed."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if is_terminal(pod):
            return self.remove_pod(key)
        node = pod.spec.node_name
        st = self._pods.get(key)
        if st is not None and st.assumed and st.node == node and st.info.uid == pod.metadata.uid and \
                st.info.terminating == pod.metadata.HasField("deletion_timestamp") and \
                st.info.labels == dict(pod.metadata.labels):
            # Confirmed as assumed: the spec is immutable, so the facts computed for the decision stand.
            st.assumed = False
            st.info.pod = pod
            st.info.node_name = node
            return False
        info = PodInfo(pod)
        if st is not None:
            self._unplace(st.info, st.node)
        self._pods[key] = _PodState(info, node, False)
        self._place(info, node)
        return False

    def remove_pod(self, key: str) -> bool:
        st = self._pods.pop(key, None)
        if st is None:
            return False
        self._unplace(st.info, st.node)
        return True

    def pods_on(self, node: str) -> list[PodInfo]:
        ni = self.snapshot.infos.get(node)
        return list(ni.pods.values()) if ni is not None else []

    # ------------------------------------------------------------ nominations (preemption)

    def nominate(self, info: PodInfo, node: str) -> None:
        self.clear_nomination(info.key)
        self._nominations[info.key] = node
        self.snapshot.nominated.setdefault(node, {})[info.key] = info

    def clear_nomination(self, key: str) -> None:
        node = self._nominations.pop(key, None)
        if node is None:
            return
        held = self.snapshot.nominated.get(node)
        if held is not None:
            held.pop(key, None)
            if not held:
                del self.snapshot.nominated[node]

    def nominated_node(self, key: str) -> str:
        return self._nominations.get(key, "")

    def nominated_on(self, node: str) -> list[PodInfo]:
        return list(self.snapshot.nominated.get(node, {}).values())

    # ------------------------------------------------------------ reads

    def stats(self) -> dict[str, int]:
        return {"nodes": len(self.snapshot.nodes), "pods": len(self._pods),
                "assumed": sum(1 for s in self._pods.values() if s.assumed)}
