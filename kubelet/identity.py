"""How pods and containers are named in the runtime: CRI labels and annotations.

The same keys as the Kubernetes kubelet, so a restarted kubelet finds (adopts)
its pods by listing the runtime: sandboxes and containers carry the pod's uid,
name and namespace, containers their name, spec hash and restart count, and
both the grace period to stop them with when the pod is gone from the API.
"""

from __future__ import annotations

import hashlib
import math

from api.pb import core_pb2

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod"
NODE = "kubelite.io/node"

DEFAULT_GRACE = 30


def pod_labels(pod: core_pb2.Pod, node: str) -> dict[str, str]:
    """Labels of a pod's sandbox: the pod's own labels plus who it is."""
    meta = pod.metadata
    labels = dict(meta.labels)
    labels.update({POD_NAME: meta.name, POD_NAMESPACE: meta.namespace, POD_UID: meta.uid, NODE: node})
    return labels


def pod_annotations(pod: core_pb2.Pod) -> dict[str, str]:
    annotations = dict(pod.metadata.annotations)
    annotations[GRACE_PERIOD] = str(grace_period(pod))
    return annotations


def container_labels(pod: core_pb2.Pod, container: core_pb2.Container, node: str) -> dict[str, str]:
    meta = pod.metadata
    return {POD_NAME: meta.name, POD_NAMESPACE: meta.namespace, POD_UID: meta.uid, CONTAINER_NAME: container.name,
            NODE: node}


def container_annotations(pod: core_pb2.Pod, container: core_pb2.Container, attempt: int) -> dict[str, str]:
    return {CONTAINER_HASH: container_hash(container), RESTART_COUNT: str(attempt),
            GRACE_PERIOD: str(grace_period(pod))}


def container_hash(container: core_pb2.Container) -> str:
    """A digest of the container's spec: a running container whose hash differs is restarted.

    Only an image change can alter a running pod's container (the rest of the
    spec is immutable), so hashing the whole message is exact.
    """
    return hashlib.sha256(container.SerializeToString(deterministic=True)).hexdigest()[:16]


def grace_period(pod: core_pb2.Pod) -> int:
    """The seconds a stop waits between SIGTERM and SIGKILL for this pod."""
    meta = pod.metadata
    if meta.HasField("deletion_timestamp") and meta.HasField("deletion_grace_period_seconds"):
        return max(0, meta.deletion_grace_period_seconds)
    if pod.spec.HasField("termination_grace_period_seconds"):
        return max(0, pod.spec.termination_grace_period_seconds)
    return DEFAULT_GRACE


def kill_grace(pod: core_pb2.Pod, now: float) -> int:
    """The grace period to stop a pod with now.

    For a deleted pod, what is left until its deletionTimestamp (deletion time +
    grace): a pod whose deadline passed while the node was cut off is killed
    at once, so its replacement elsewhere does not run next to it for
    another whole grace period.
    """
    grace = grace_period(pod)
    meta = pod.metadata
    if meta.HasField("deletion_timestamp"):
        left = meta.deletion_timestamp.seconds + meta.deletion_timestamp.nanos / 1e9 - now
        grace = min(grace, max(0, math.ceil(left)))
    return grace


def full_name(pod: core_pb2.Pod) -> str:
    """How the kubelet names a pod in messages: name_namespace(uid)."""
    return f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"
