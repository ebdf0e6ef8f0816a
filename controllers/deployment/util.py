"""Pure helpers for Deployments: template hashes, revisions, annotations, surge and unavailability."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from api import intstr
from api.deployments import CHANGE_CAUSE, HASH_LABEL, RESTARTED_AT, REVISION, equal_ignore_hash, revision

__all__ = ["CHANGE_CAUSE", "HASH_LABEL", "RESTARTED_AT", "REVISION", "equal_ignore_hash", "revision"]
from api.pb import apps_pb2, core_pb2

REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Deployment annotations that are not copied to its ReplicaSets.
_NOT_COPIED = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
               "deprecated.deployment.rollback.to"}
REVISION_HISTORY_CHARS = 2000

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: core_pb2.PodTemplateSpec, collision_count: int | None = None) -> str:
    """The pod-template-hash: FNV-32a of the template (and collision count), spelled with safe characters."""
    t = core_pb2.PodTemplateSpec()
    t.CopyFrom(template)
    t.metadata.labels.pop(HASH_LABEL, None)
    data = t.SerializeToString(deterministic=True)
    if collision_count is not None:
        data += int(collision_count).to_bytes(4, "little", signed=False)
    return "".join(_SAFE[b % len(_SAFE)] for b in str(fnv32a(data)).encode())


def max_revision(rss: Iterable[apps_pb2.ReplicaSet]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def creation_order(rss: Iterable[apps_pb2.ReplicaSet]) -> list[apps_pb2.ReplicaSet]:
    """Oldest first; ties broken by name, as Kubernetes' ReplicaSetsByCreationTimestamp."""
    return sorted(rss, key=lambda rs: (rs.metadata.creation_timestamp.seconds,
                                       rs.metadata.creation_timestamp.nanos, rs.metadata.name))


def find_new(d: apps_pb2.Deployment, rss: Sequence[apps_pb2.ReplicaSet]) -> apps_pb2.ReplicaSet | None:
    """The ReplicaSet whose template is the deployment's (the oldest, should there be several)."""
    for rs in creation_order(rss):
        if equal_ignore_hash(rs.spec.template, d.spec.template):
            return rs
    return None


def resolve_fenceposts(d: apps_pb2.Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as counts: surge rounds up, unavailable down; both 0 means unavailable 1."""
    if d.spec.strategy.type != "RollingUpdate":
        return 0, 0
    ru = d.spec.strategy.rolling_update
    replicas = d.spec.replicas
    surge = intstr.scaled(ru.max_surge or "25%", replicas, round_up=True)
    unavailable = intstr.scaled(ru.max_unavailable or "25%", replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: apps_pb2.Deployment) -> int:
    return resolve_fenceposts(d)[0]


def max_unavailable(d: apps_pb2.Deployment) -> int:
    """How many of `replicas` may be unavailable (never more than replicas)."""
    if d.spec.strategy.type != "RollingUpdate" or d.spec.replicas == 0:
        return 0
    return min(resolve_fenceposts(d)[1], d.spec.replicas)


def has_progress_deadline(d: apps_pb2.Deployment) -> bool:
    return d.spec.HasField("progress_deadline_seconds") and d.spec.progress_deadline_seconds != 2**31 - 1


def replicas_annotations_changed(rs: apps_pb2.ReplicaSet, desired: int, maximum: int) -> bool:
    """Set desired-replicas and max-replicas on `rs`; True if they changed."""
    ann = rs.metadata.annotations
    want = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(maximum)}
    changed = any(ann.get(k) != v for k, v in want.items())
    ann.update(want)
    return changed


def copy_annotations(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet) -> bool:
    """Copy the deployment's own annotations to `rs`; True if anything changed."""
    changed = False
    for k, v in d.metadata.annotations.items():
        if k in _NOT_COPIED or rs.metadata.annotations.get(k) == v:
            continue
        rs.metadata.annotations[k] = v
        changed = True
    return changed


def set_new_rs_annotations(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet, new_revision: int, *,
                           exists: bool) -> bool:
    """Annotate the new ReplicaSet as Kubernetes does; True if anything changed.

    Its revision only ever grows; a ReplicaSet brought back (a rollback) keeps
    its earlier revisions in revision-history.
    """
    changed = copy_annotations(d, rs)
    ann = rs.metadata.annotations
    old_text = ann.get(REVISION, "")
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return changed
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_text:
            history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
            history.append(old_text)
            while history and len(",".join(history)) > REVISION_HISTORY_CHARS:
                history.pop(0)
            ann[REVISION_HISTORY] = ",".join(history)
    if not exists and replicas_annotations_changed(rs, d.spec.replicas, d.spec.replicas + max_surge(d)):
        changed = True
    return changed


def new_replicaset(d: apps_pb2.Deployment, *, replicas: int, new_revision: int,
                   controller: object) -> apps_pb2.ReplicaSet:
    """The ReplicaSet for the deployment's current template: `<name>-<hash>`, selector and labels with the hash."""
    collision = d.status.collision_count if d.status.HasField("collision_count") else None
    h = compute_hash(d.spec.template, collision)
    rs = apps_pb2.ReplicaSet(metadata={"name": f"{d.metadata.name}-{h}", "namespace": d.metadata.namespace})
    rs.metadata.owner_references.add().CopyFrom(controller)  # type: ignore[arg-type]
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[HASH_LABEL] = h
    rs.metadata.labels.update(rs.spec.template.metadata.labels)
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[HASH_LABEL] = h
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    set_new_rs_annotations(d, rs, new_revision, exists=False)
    return rs
