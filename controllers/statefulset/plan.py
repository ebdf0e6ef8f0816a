"""Pure planning for a StatefulSet (Kubernetes' stateful_set_control.go): which ordinal to create, which pod to
delete, and the status.

Pods are `<set>-0 .. <set>-N-1`. Under OrderedReady a pod is created only
when every lower ordinal is Running and Ready, one per sync, and pods go from
the highest ordinal down, one at a time; Parallel creates and deletes at
once. A RollingUpdate replaces pods from the highest ordinal down to the
partition, one at a time, each only once the ones above are healthy again.
A pod's name is its identity: a new pod of an ordinal is made only once the
old one is gone from the API, so a pod on a lost node (being deleted, but not
confirmed by its kubelet) is never doubled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from api import pods
from api.pb import apps_pb2, core_pb2
from controllers import podstate
from controllers.history import REVISION_HASH_LABEL

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(set_name: str, pod: core_pb2.Pod) -> int | None:
    m = re.fullmatch(rf"{re.escape(set_name)}-(0|[1-9][0-9]*)", pod.metadata.name)
    return int(m.group(1)) if m else None


def revision_of(pod: core_pb2.Pod) -> str:
    return pod.metadata.labels.get(REVISION_HASH_LABEL, "")


def is_healthy(pod: core_pb2.Pod) -> bool:
    """Running and Ready, and not being deleted."""
    return pod.status.phase == "Running" and podstate.is_ready(pod) and not pods.is_terminating(pod)


@dataclass(frozen=True)
class Create:
    ordinal: int
    revision: str  # the ControllerRevision (name) whose template the pod gets


@dataclass(frozen=True)
class SetPlan:
    create: tuple[Create, ...] = ()
    delete: tuple[core_pb2.Pod, ...] = ()
    status: apps_pb2.StatefulSetStatus = field(default_factory=apps_pb2.StatefulSetStatus)
    requeue_after: float | None = None


def _revision_for(sts: apps_pb2.StatefulSet, ordinal: int, current: str, update: str) -> str:
    """A new pod below the partition keeps the current revision during a RollingUpdate; every other gets the update."""
    if sts.spec.update_strategy.type == "RollingUpdate" and ordinal < sts.spec.update_strategy.rolling_update.partition:
        return current
    return update


def plan_statefulset(sts: apps_pb2.StatefulSet, owned: Sequence[core_pb2.Pod], current: str, update: str,
                     now: float) -> SetPlan:
    """What to do next for `sts` given its pods, its current and update revisions (ControllerRevision names)."""
    count = max(0, sts.spec.replicas)
    replicas: list[core_pb2.Pod | None] = [None] * count
    condemned: list[core_pb2.Pod] = []
    for p in owned:
        i = ordinal_of(sts.metadata.name, p)
        if i is None:
            continue
        if i < count:
            replicas[i] = p
        else:
            condemned.append(p)
    condemned.sort(key=lambda p: ordinal_of(sts.metadata.name, p) or 0)
    status = compute_status(sts, [p for p in replicas if p is not None] + condemned, current, update, now)
    if sts.metadata.HasField("deletion_timestamp"):
        return SetPlan(status=status)
    ordered = sts.spec.pod_management_policy != "Parallel"
    create: list[Create] = []
    delete: list[core_pb2.Pod] = []
    everyone = [p for p in replicas if p is not None] + condemned
    first_unhealthy = next((p for p in everyone if not is_healthy(p)), None)

    def done() -> SetPlan:
        return SetPlan(create=tuple(create), delete=tuple(delete), status=status,
                       requeue_after=_next_available(sts, everyone, now))

    # Scale up, and replace failed pods, in ordinal order.
    for i, pod in enumerate(replicas):
        if pod is None:
            create.append(Create(i, _revision_for(sts, i, current, update)))
            if ordered:
                return done()
            continue
        if pod.status.phase == "Failed" and not pods.is_terminating(pod):
            delete.append(pod)  # its ordinal is made again once it is gone
            if ordered:
                return done()
            continue
        if ordered and not is_healthy(pod):
            return done()  # wait for it: Running and Ready, or gone
    # Scale down from the highest ordinal.
    for pod in reversed(condemned):
        if pods.is_terminating(pod):
            if ordered:
                return done()
            continue
        if ordered and first_unhealthy is not None and first_unhealthy is not pod:
            return done()
        delete.append(pod)
        if ordered:
            return done()
    if create or delete:
        return done()
    # Update: from the highest ordinal down to the partition, one pod at a time.
    if sts.spec.update_strategy.type != "RollingUpdate":
        return done()
    partition = sts.spec.update_strategy.rolling_update.partition
    for i in range(count - 1, partition - 1, -1):
        pod = replicas[i]
        if pod is None:
            return done()
        if revision_of(pod) != update and not pods.is_terminating(pod):
            delete.append(pod)
            return done()
        if not is_healthy(pod):
            return done()
    return done()


def _next_available(sts: apps_pb2.StatefulSet, pods_: Sequence[core_pb2.Pod], now: float) -> float | None:
    min_ready = sts.spec.min_ready_seconds
    if min_ready <= 0:
        return None
    times = [at for p in pods_ if (at := podstate.available_at(p, min_ready)) is not None and at > now]
    return min(times) - now + 0.05 if times else None


def compute_status(sts: apps_pb2.StatefulSet, pods_: Sequence[core_pb2.Pod], current: str, update: str,
                   now: float) -> apps_pb2.StatefulSetStatus:
    st = apps_pb2.StatefulSetStatus()
    st.CopyFrom(sts.status)
    st.observed_generation = sts.metadata.generation
    st.replicas = sum(1 for p in pods_ if p.status.phase)
    st.ready_replicas = sum(1 for p in pods_ if is_healthy(p))
    st.available_replicas = sum(1 for p in pods_ if is_healthy(p)
                               and podstate.is_available(p, sts.spec.min_ready_seconds, now))
    st.current_replicas = sum(1 for p in pods_ if revision_of(p) == current and not pods.is_terminating(p))
    st.updated_replicas = sum(1 for p in pods_ if revision_of(p) == update and not pods.is_terminating(p))
    st.current_revision = current
    st.update_revision = update
    if sts.spec.update_strategy.type == "RollingUpdate" and st.updated_replicas == st.replicas == sts.spec.replicas \
            and st.ready_replicas == st.replicas:
        # The rollout is complete: the update revision becomes the current one.
        st.current_replicas = st.updated_replicas
        st.current_revision = update
    return st


def claim_name(template: str, sts: apps_pb2.StatefulSet, ordinal: int) -> str:
    return f"{template}-{sts.metadata.name}-{ordinal}"


def claims_for(sts: apps_pb2.StatefulSet, ordinal: int) -> list[core_pb2.PersistentVolumeClaim]:
    """The claims of `ordinal`, one per volumeClaimTemplate: `<template>-<set>-<ordinal>`, labelled with the set's
    selector labels."""
    out = []
    for t in sts.spec.volume_claim_templates:
        pvc = core_pb2.PersistentVolumeClaim()
        pvc.metadata.name = claim_name(t.metadata.name, sts, ordinal)
        pvc.metadata.namespace = sts.metadata.namespace
        pvc.metadata.labels.update(t.metadata.labels)
        pvc.metadata.labels.update(sts.spec.selector.match_labels)
        pvc.metadata.annotations.update(t.metadata.annotations)
        pvc.spec.CopyFrom(t.spec)
        out.append(pvc)
    return out


def claim_ordinal(sts: apps_pb2.StatefulSet, pvc: core_pb2.PersistentVolumeClaim) -> int | None:
    """The ordinal a claim of this set belongs to (None: not one of its claims)."""
    for t in sts.spec.volume_claim_templates:
        m = re.fullmatch(rf"{re.escape(t.metadata.name)}-{re.escape(sts.metadata.name)}-(0|[1-9][0-9]*)",
                         pvc.metadata.name)
        if m:
            return int(m.group(1))
    return None


def plan_claim_owners(sts: apps_pb2.StatefulSet, claims: Sequence[core_pb2.PersistentVolumeClaim],
                      condemned: Sequence[core_pb2.Pod]
                      ) -> tuple[list[tuple[core_pb2.PersistentVolumeClaim, list[str]]],
                                 list[core_pb2.PersistentVolumeClaim]]:
    """persistentVolumeClaimRetentionPolicy as owner references, as Kubernetes keeps them: (claims whose references
    to the set or their pod must change, with the uids they should name; claims to delete now).

    whenDeleted Delete makes the set an owner of its claims (the garbage collector deletes them with it); whenScaled
    Delete makes a pod scaled away the only owner of its claims (they go with the pod), and a claim of an ordinal
    scaled away whose pod is gone already is deleted at once.
    """
    policy = sts.spec.persistent_volume_claim_retention_policy
    pods_by_ordinal = {ordinal_of(sts.metadata.name, p): p for p in condemned}
    updates = []
    deletes = []
    for pvc in claims:
        ordinal = claim_ordinal(sts, pvc)
        if ordinal is None or pvc.metadata.HasField("deletion_timestamp"):
            continue
        scaled_away = ordinal >= sts.spec.replicas and policy.when_scaled == "Delete"
        want: set[str] = set()
        if scaled_away:
            pod = pods_by_ordinal.get(ordinal)
            if pod is None:
                deletes.append(pvc)
                continue
            want.add(pod.metadata.uid)
        elif policy.when_deleted == "Delete":
            want.add(sts.metadata.uid)
        pod_name = f"{sts.metadata.name}-{ordinal}"
        have = {r.uid for r in pvc.metadata.owner_references
                if r.uid == sts.metadata.uid or (r.kind == "Pod" and r.name == pod_name)}
        if have != want:
            updates.append((pvc, sorted(want)))
    return updates, deletes


def pod_for(sts: apps_pb2.StatefulSet, ordinal: int, revision: apps_pb2.ControllerRevision,
            controller: object) -> core_pb2.Pod:
    """The pod of `ordinal`, from `revision`'s template: named and hostnamed `<set>-<ordinal>`, in the governing
    Service's subdomain, mounting its own claims."""
    name = f"{sts.metadata.name}-{ordinal}"
    t = revision.data.spec.template
    pod = core_pb2.Pod(metadata={"name": name, "namespace": sts.metadata.namespace})
    pod.metadata.labels.update(t.metadata.labels)
    pod.metadata.labels[POD_NAME_LABEL] = name
    pod.metadata.labels[POD_INDEX_LABEL] = str(ordinal)
    pod.metadata.labels[REVISION_HASH_LABEL] = revision.metadata.name
    pod.metadata.annotations.update(t.metadata.annotations)
    pod.metadata.finalizers.extend(t.metadata.finalizers)
    pod.metadata.owner_references.add().CopyFrom(controller)  # type: ignore[arg-type]
    pod.spec.CopyFrom(t.spec)
    pod.spec.hostname = name
    pod.spec.subdomain = sts.spec.service_name
    claims = {t.metadata.name for t in sts.spec.volume_claim_templates}
    kept = [v for v in pod.spec.volumes if v.name not in claims]
    del pod.spec.volumes[:]
    pod.spec.volumes.extend(kept)
    for t in sts.spec.volume_claim_templates:
        v = pod.spec.volumes.add(name=t.metadata.name)
        v.persistent_volume_claim.claim_name = claim_name(t.metadata.name, sts, ordinal)
    return pod
