"""Pure planning for a DaemonSet: which nodes should run its pod, which pods to create and delete (including a
RollingUpdate's replacements), and its status.

A node should run the daemon pod when the pod's node selector and required
node affinity admit it and every NoSchedule/NoExecute taint on it is
tolerated (with the tolerations every daemon pod gets, below); a pod may keep
running on a node while its NoExecute taints are tolerated (Kubernetes'
NodeShouldRunDaemonPod). Daemon pods are placed by the scheduler, pinned to
their node by node affinity on metadata.name, as Kubernetes does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from api import intstr, placement
from api.pb import apps_pb2, core_pb2, meta_pb2
from api.timestamps import seconds
from controllers import podstate
from controllers.history import REVISION_HASH_LABEL

BURST = 500
# Tolerations every daemon pod gets (Kubernetes' AddOrUpdateDaemonPodTolerations): a daemon stays through node
# trouble, and goes to cordoned nodes.
DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def add_daemon_tolerations(spec: core_pb2.PodSpec) -> None:
    wanted = list(DAEMON_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if spec.host_network else [])
    for key, effect in wanted:
        if not any(t.key == key and t.effect == effect and t.operator == "Exists" and
                   not t.HasField("toleration_seconds") for t in spec.tolerations):
            kept = [t for t in spec.tolerations if not (t.key == key and t.effect == effect)]
            del spec.tolerations[:]
            spec.tolerations.extend(kept)
            spec.tolerations.add(key=key, operator="Exists", effect=effect)


def node_should_run(ds: apps_pb2.DaemonSet, node: core_pb2.Node) -> tuple[bool, bool]:
    """(should a daemon pod be started on the node, may one already there keep running)."""
    spec = core_pb2.PodSpec()
    spec.CopyFrom(ds.spec.template.spec)
    add_daemon_tolerations(spec)
    if not placement.node_matches(spec, node):
        return False, False
    if node.metadata.HasField("deletion_timestamp"):
        return False, True
    taints = list(node.spec.taints)
    if placement.untolerated(taints, spec.tolerations, ("NoExecute",)):
        return False, False
    if placement.untolerated(taints, spec.tolerations, ("NoSchedule",)):
        return False, True
    return True, True


def target_node(pod: core_pb2.Pod) -> str:
    """The node a daemon pod is on, or (not scheduled yet) the node its affinity pins it to."""
    if pod.spec.node_name:
        return pod.spec.node_name
    req = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in req.node_selector_terms:
        for f in term.match_fields:
            if f.key == "metadata.name" and f.operator == "In" and len(f.values) == 1:
                return f.values[0]
    return ""


def daemon_pod(ds: apps_pb2.DaemonSet, node: str, revision_hash: str,
               controller: meta_pb2.OwnerReference) -> core_pb2.Pod:
    """A new daemon pod for `node`: `<ds>-<random>`, labelled with the template's revision hash, pinned to the node."""
    t = ds.spec.template
    pod = core_pb2.Pod(metadata={"generate_name": f"{ds.metadata.name}-", "namespace": ds.metadata.namespace})
    pod.metadata.labels.update(t.metadata.labels)
    pod.metadata.labels[REVISION_HASH_LABEL] = revision_hash
    pod.metadata.annotations.update(t.metadata.annotations)
    pod.metadata.finalizers.extend(t.metadata.finalizers)
    pod.metadata.owner_references.add().CopyFrom(controller)
    pod.spec.CopyFrom(t.spec)
    add_daemon_tolerations(pod.spec)
    na = pod.spec.affinity.node_affinity
    # As Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity: the node's name replaces any required terms (the
    # controller checked them already).
    required = na.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    required.node_selector_terms.add().match_fields.add(key="metadata.name", operator="In", values=[node])
    return pod


@dataclass(frozen=True)
class DaemonPlan:
    create_on: tuple[str, ...] = ()  # nodes that get a new daemon pod
    delete: tuple[core_pb2.Pod, ...] = ()
    status: apps_pb2.DaemonSetStatus | None = None
    requeue_after: float | None = None


def _available(pod: core_pb2.Pod, min_ready: int, now: float) -> bool:
    return podstate.is_available(pod, min_ready, now)


def _oldest_first(pods: Sequence[core_pb2.Pod]) -> list[core_pb2.Pod]:
    return sorted(pods, key=lambda p: (seconds(p.metadata.creation_timestamp), p.metadata.name))


def fenceposts(ds: apps_pb2.DaemonSet, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as node counts: both rounded up; both 0 means 1 unavailable."""
    ru = ds.spec.update_strategy.rolling_update
    surge = intstr.scaled(ru.max_surge or "0", desired, round_up=True)
    unavailable = intstr.scaled(ru.max_unavailable or "1", desired, round_up=True)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def plan_daemonset(ds: apps_pb2.DaemonSet, nodes: Sequence[core_pb2.Node], owned: Sequence[core_pb2.Pod],
                   revision_hash: str, now: float, *, burst: int = BURST) -> DaemonPlan:
    """Pods to create (by node) and delete for `ds`, and its status."""
    min_ready = ds.spec.min_ready_seconds
    by_node: dict[str, list[core_pb2.Pod]] = {}
    for p in owned:
        by_node.setdefault(target_node(p), []).append(p)
    node_names = {n.metadata.name for n in nodes}
    create: list[str] = []
    delete: list[core_pb2.Pod] = []
    should: dict[str, bool] = {}
    soonest: float | None = None

    def note_availability(pod: core_pb2.Pod) -> None:
        nonlocal soonest
        at = podstate.available_at(pod, min_ready)
        if at is not None and at > now and (soonest is None or at < soonest):
            soonest = at

    # Manage: one live pod on every node that should run it, none elsewhere.
    for node in nodes:
        name = node.metadata.name
        run, keep = node_should_run(ds, node)
        should[name] = run
        pods = by_node.get(name, [])
        live = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
        if run and not pods:
            create.append(name)
        elif keep:
            running = []
            for p in live:
                if p.status.phase == "Failed":
                    delete.append(p)  # a failed daemon pod is replaced
                else:
                    running.append(p)
            if len(running) > 1:
                if _surge_allowed(ds):
                    delete.extend(_surplus_with_surge(running, revision_hash))
                else:
                    delete.extend(_oldest_first(running)[1:])
        elif live:
            delete.extend(live)
    # Pods pinned to nodes that are gone: nobody will run them.
    for name, pods in by_node.items():
        if name and name not in node_names:
            delete.extend(p for p in pods if not p.spec.node_name and not p.metadata.HasField("deletion_timestamp"))

    # RollingUpdate: replace pods of older templates, within maxUnavailable (and maxSurge). Only once what manage
    # does is seen: a pod it is creating or deleting counts as unavailable then (Kubernetes waits likewise).
    if ds.spec.update_strategy.type == "RollingUpdate" and not create and not delete:
        doomed = {p.metadata.uid for p in delete}
        desired = sum(1 for v in should.values() if v)
        surge, max_unavailable = fenceposts(ds, desired)
        unavailable = 0
        replace_now: list[core_pb2.Pod] = []
        candidates: list[core_pb2.Pod] = []
        surge_now: list[str] = []
        surge_candidates: list[str] = []
        surging = 0
        for node in nodes:
            name = node.metadata.name
            pods = by_node.get(name, [])
            if not should[name] or not pods:
                continue
            live = [p for p in pods if not p.metadata.HasField("deletion_timestamp") and p.metadata.uid not in doomed]
            for p in live:
                note_availability(p)
            new = [p for p in live if p.metadata.labels.get(REVISION_HASH_LABEL) == revision_hash]
            old = [p for p in live if p.metadata.labels.get(REVISION_HASH_LABEL) != revision_hash]
            if len(new) > 1 or len(old) > 1:
                unavailable += 1  # manage removes the extras first
                continue
            new_pod, old_pod = (new[0] if new else None), (old[0] if old else None)
            if surge == 0:
                if (new_pod is None) == (old_pod is None):
                    unavailable += 1  # a pod going or coming: manage settles it
                elif new_pod is not None:
                    if not _available(new_pod, min_ready, now):
                        unavailable += 1
                elif old_pod is not None and not _available(old_pod, min_ready, now):
                    replace_now.append(old_pod)
                elif old_pod is not None and unavailable < max_unavailable:
                    candidates.append(old_pod)
            else:
                if old_pod is None:
                    if new_pod is not None and not _available(new_pod, min_ready, now):
                        surging += 1
                elif new_pod is None:
                    if not _available(old_pod, min_ready, now):
                        surge_now.append(name)
                    else:
                        surge_candidates.append(name)
                elif _available(new_pod, min_ready, now):
                    delete.append(old_pod)  # its replacement is up
                else:
                    surging += 1
        if surge == 0:
            delete.extend(replace_now)
            delete.extend(candidates[:max(0, max_unavailable - unavailable)])
        else:
            create.extend(surge_now)
            create.extend(surge_candidates[:max(0, surge - surging - len(surge_now))])

    status = compute_status(ds, nodes, by_node, should, revision_hash, now)
    requeue = None if soonest is None else soonest - now + 0.05
    return DaemonPlan(create_on=tuple(create[:burst]), delete=tuple(delete[:burst]), status=status,
                      requeue_after=requeue)


def _surge_allowed(ds: apps_pb2.DaemonSet) -> bool:
    ru = ds.spec.update_strategy.rolling_update
    return ds.spec.update_strategy.type == "RollingUpdate" and intstr.scaled(ru.max_surge or "0", 100,
                                                                              round_up=True) > 0


def _surplus_with_surge(running: list[core_pb2.Pod], revision_hash: str) -> list[core_pb2.Pod]:
    """With surge, a node may hold one pod of the current template and one older: the rest go."""
    new = _oldest_first([p for p in running if p.metadata.labels.get(REVISION_HASH_LABEL) == revision_hash])
    old = _oldest_first([p for p in running if p.metadata.labels.get(REVISION_HASH_LABEL) != revision_hash])
    return new[1:] + old[1:]


def compute_status(ds: apps_pb2.DaemonSet, nodes: Sequence[core_pb2.Node], by_node: dict[str, list[core_pb2.Pod]],
                   should: dict[str, bool], revision_hash: str, now: float) -> apps_pb2.DaemonSetStatus:
    """Kubernetes' updateDaemonSetStatus: counts per node, from the oldest live daemon pod on it."""
    st = apps_pb2.DaemonSetStatus()
    st.CopyFrom(ds.status)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        name = node.metadata.name
        live = _oldest_first([p for p in by_node.get(name, []) if not p.metadata.HasField("deletion_timestamp")])
        if should.get(name):
            desired += 1
            if not live:
                continue
            current += 1
            pod = live[0]
            if podstate.is_ready(pod):
                ready += 1
                if _available(pod, ds.spec.min_ready_seconds, now):
                    available += 1
            if any(p.metadata.labels.get(REVISION_HASH_LABEL) == revision_hash for p in live):
                updated += 1
        elif live:
            misscheduled += 1
    st.desired_number_scheduled = desired
    st.current_number_scheduled = current
    st.number_misscheduled = misscheduled
    st.number_ready = ready
    st.number_available = available
    st.number_unavailable = desired - available
    st.updated_number_scheduled = updated
    st.observed_generation = ds.metadata.generation
    return st
