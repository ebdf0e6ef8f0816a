"""What every component asks of a pod's phase and lifecycle."""

from __future__ import annotations

from api.pb import core_pb2

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def phase_is_terminal(status: core_pb2.PodStatus) -> bool:
    """Succeeded or Failed: the pod's containers will not run again."""
    return status.phase in TERMINAL_PHASES


def is_terminal(pod: core_pb2.Pod) -> bool:
    return pod.status.phase in TERMINAL_PHASES


def is_terminating(pod: core_pb2.Pod) -> bool:
    """Marked for deletion (its kubelet is stopping it)."""
    return pod.metadata.HasField("deletion_timestamp")


def is_active(pod: core_pb2.Pod) -> bool:
    """Counts toward a controller's replicas: neither finished nor being deleted."""
    return not is_terminating(pod) and not is_terminal(pod)
