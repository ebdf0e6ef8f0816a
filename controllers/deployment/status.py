"""Pure Deployment status: replica counts, the Available and Progressing conditions, progress deadlines."""

from __future__ import annotations

from collections.abc import Sequence

from api import conditions
from api.deployments import (  # noqa: F401  (the controller reads them as status.X)
    AVAILABLE,
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    MIN_AVAILABLE,
    MIN_UNAVAILABLE,
    NEW_RS_AVAILABLE,
    NEW_RS_CREATED,
    PAUSED,
    PROGRESSING,
    REPLICA_FAILURE,
    RESUMED,
    RS_UPDATED,
    TIMED_OUT,
)
from api.pb import apps_pb2
from api.timestamps import seconds, timestamp
from controllers.deployment import util


def get_condition(status: apps_pb2.DeploymentStatus, type_: str) -> apps_pb2.DeploymentCondition | None:
    return conditions.get(status.conditions, type_)


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> apps_pb2.DeploymentCondition:
    c = apps_pb2.DeploymentCondition(type=type_, status=status, reason=reason, message=message)
    c.last_update_time.CopyFrom(timestamp(now))
    c.last_transition_time.CopyFrom(timestamp(now))
    return c


def set_condition(status: apps_pb2.DeploymentStatus, cond: apps_pb2.DeploymentCondition) -> None:
    """Kubernetes' SetDeploymentCondition: same status and reason is a no-op; same status keeps the transition time."""
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    if current is not None and current.status == cond.status:
        cond.last_transition_time.CopyFrom(current.last_transition_time)
    remove_condition(status, cond.type)
    status.conditions.add().CopyFrom(cond)


def remove_condition(status: apps_pb2.DeploymentStatus, type_: str) -> None:
    conditions.remove(status.conditions, type_)


def plan_progressing(d: apps_pb2.Deployment, status: str, reason: str, message: str,
                     now: float) -> apps_pb2.DeploymentStatus:
    """The deployment's status with its Progressing condition set (a new ReplicaSet found, created, failed, ...)."""
    out = apps_pb2.DeploymentStatus()
    out.CopyFrom(d.status)
    set_condition(out, new_condition(PROGRESSING, status, reason, message, now))
    return out


def plan_paused_condition(d: apps_pb2.Deployment, now: float) -> apps_pb2.DeploymentStatus | None:
    """Pausing and resuming recorded in Progressing (Unknown), so a resume never counts as a timeout; None if
    there is nothing to record."""
    cond = get_condition(d.status, PROGRESSING)
    if cond is not None and cond.reason == TIMED_OUT:
        return None
    paused_recorded = cond is not None and cond.reason == PAUSED
    if d.spec.paused and not paused_recorded:
        return plan_progressing(d, "Unknown", PAUSED, "Deployment is paused", now)
    if not d.spec.paused and paused_recorded:
        return plan_progressing(d, "Unknown", RESUMED, "Deployment is resumed", now)
    return None


def compute_status(d: apps_pb2.Deployment, all_rs: Sequence[apps_pb2.ReplicaSet],
                   new: apps_pb2.ReplicaSet | None, now: float) -> apps_pb2.DeploymentStatus:
    """Counts from the ReplicaSets' statuses, and the Available condition (calculateStatus)."""
    available = sum(rs.status.available_replicas for rs in all_rs)
    total = sum(rs.spec.replicas for rs in all_rs)
    status = apps_pb2.DeploymentStatus(
        observed_generation=d.metadata.generation,
        replicas=sum(rs.status.replicas for rs in all_rs),
        updated_replicas=new.status.replicas if new is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in all_rs),
        available_replicas=available,
        unavailable_replicas=max(0, total - available),
    )
    if d.status.HasField("collision_count"):
        status.collision_count = d.status.collision_count
    status.conditions.extend(d.status.conditions)
    if available >= d.spec.replicas - util.max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.",
                                            now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def is_complete(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    r = d.spec.replicas
    return (status.updated_replicas == r and status.replicas == r and status.available_replicas == r
            and status.observed_generation >= d.metadata.generation)


def made_progress(old: apps_pb2.DeploymentStatus, new: apps_pb2.DeploymentStatus) -> bool:
    return (new.updated_replicas > old.updated_replicas
            or (new.replicas - new.updated_replicas) < (old.replicas - old.updated_replicas)
            or new.ready_replicas > old.ready_replicas
            or new.available_replicas > old.available_replicas)


def timed_out(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, now: float) -> bool:
    if not util.has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    return seconds(cond.last_update_time) + d.spec.progress_deadline_seconds < now


def plan_rollout_status(d: apps_pb2.Deployment, all_rs: Sequence[apps_pb2.ReplicaSet],
                        new: apps_pb2.ReplicaSet | None, now: float) -> apps_pb2.DeploymentStatus:
    """The status after a rollout step, with Progressing judged against the deadline (syncRolloutStatus)."""
    status = compute_status(d, all_rs, new, now)
    if not util.has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.status, PROGRESSING)
    complete_already = (status.replicas == status.updated_replicas and current is not None
                        and current.reason == NEW_RS_AVAILABLE)
    if util.has_progress_deadline(d) and not complete_already:
        name = f'ReplicaSet "{new.metadata.name}"' if new is not None else f'Deployment "{d.metadata.name}"'
        if is_complete(d, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                f"{name} has successfully progressed.", now))
        elif made_progress(d.status, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{name} is progressing.", now)
            if current is not None:
                if current.status == "True":
                    cond.last_transition_time.CopyFrom(current.last_transition_time)
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif timed_out(d, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT,
                                                f"{name} has timed out progressing.", now))
    failure = replica_failure(all_rs, new)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def replica_failure(all_rs: Sequence[apps_pb2.ReplicaSet],
                    new: apps_pb2.ReplicaSet | None) -> apps_pb2.DeploymentCondition | None:
    """A ReplicaFailure condition of the new ReplicaSet (preferred) or of any other, as a deployment condition."""
    for rs in ([new] if new is not None else []) + list(all_rs):
        for c in rs.status.conditions:
            if c.type == REPLICA_FAILURE:
                out = apps_pb2.DeploymentCondition(type=c.type, status=c.status, reason=c.reason, message=c.message)
                out.last_transition_time.CopyFrom(c.last_transition_time)
                out.last_update_time.CopyFrom(c.last_transition_time)
                return out
    return None


def requeue_after(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, now: float) -> float | None:
    """When to look again so a stuck rollout is noticed at its deadline (None: no need)."""
    cond = get_condition(d.status, PROGRESSING)
    if not util.has_progress_deadline(d) or cond is None:
        return None
    if is_complete(d, status) or cond.reason == TIMED_OUT:
        return None
    after = seconds(cond.last_update_time) + d.spec.progress_deadline_seconds - now
    return max(0.05, after + 0.05)
