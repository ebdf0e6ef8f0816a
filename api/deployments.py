"""The Deployment vocabulary shared by the controller and the CLI: annotations, labels, conditions, revisions."""

from __future__ import annotations

from api.pb import apps_pb2, core_pb2

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Condition types.
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"

# Reasons, as Kubernetes spells them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def equal_ignore_hash(a: core_pb2.PodTemplateSpec, b: core_pb2.PodTemplateSpec) -> bool:
    """Templates equal once the pod-template-hash label is ignored."""
    a2, b2 = core_pb2.PodTemplateSpec(), core_pb2.PodTemplateSpec()
    a2.CopyFrom(a)
    b2.CopyFrom(b)
    a2.metadata.labels.pop(HASH_LABEL, None)
    b2.metadata.labels.pop(HASH_LABEL, None)
    return a2 == b2


def revision(obj: apps_pb2.ReplicaSet | apps_pb2.Deployment) -> int:
    """The revision annotation of a Deployment or ReplicaSet (0 when absent or not a number)."""
    try:
        return int(obj.metadata.annotations.get(REVISION, "0") or "0")
    except ValueError:
        return 0
