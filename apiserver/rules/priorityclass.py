"""PriorityClasses: the system's two classes, created by the apiserver at start and never deleted."""

from __future__ import annotations

from google.protobuf.message import Message

from api import validation
from api.errors import ForbiddenError
from api.pb import scheduling_pb2
from apiserver.rules.strategy import Strategy

_DESCRIPTIONS = {
    "system-cluster-critical": "Used for system critical pods that must run in the cluster, but can be moved to "
                               "another node if necessary.",
    "system-node-critical": "Used for system critical pods that must not be moved from their current node.",
}


class Rules(Strategy):
    kind = "PriorityClass"

    def check_delete(self, obj: Message) -> None:
        name = obj.metadata.name  # type: ignore[attr-defined]
        if name in validation.SYSTEM_PRIORITY_CLASSES:
            raise ForbiddenError(f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: this is a system priority '
                                 f"class and cannot be deleted")


def system_priority_classes() -> list[scheduling_pb2.PriorityClass]:
    """The classes every cluster has (Kubernetes' system-cluster-critical and system-node-critical)."""
    return [scheduling_pb2.PriorityClass(metadata={"name": name}, value=value, description=_DESCRIPTIONS[name],
                                         preemption_policy="PreemptLowerPriority")
            for name, value in validation.SYSTEM_PRIORITY_CLASSES.items()]
