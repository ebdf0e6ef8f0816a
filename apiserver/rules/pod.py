"""Pods: defaults with the not-ready/unreachable tolerations, graceful delete, binding, the kubelet's status."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from api import conditions, defaults, timestamps
from api.errors import ConflictError, FieldError, InvalidError, NotFoundError
from api.pb import api_pb2, core_pb2
from apiserver.rules.strategy import Index, Strategy, copy


class Rules(Strategy):
    kind = "Pod"
    # Kubelets watch the pods of their node: list and offer changes by spec.nodeName.
    index = Index("spec.nodeName", lambda pod: pod.spec.node_name)

    def prepare_for_create(self, obj: Message) -> None:
        pod: core_pb2.Pod = obj  # type: ignore[assignment]
        if pod.spec.node_name:
            # Created already bound (as a static assignment): the scheduler is bypassed.
            pod.status.conditions.add(type="PodScheduled", status="True", last_transition_time=timestamps.timestamp())
        defaults.pod(pod, toleration_seconds=self.config.toleration_seconds)

    def prepare_for_update(self, new: Message, old: Message) -> None:
        # The status is the kubelet's: an update re-defaults only the spec.
        defaults.pod_spec(new.spec, toleration_seconds=None)  # type: ignore[attr-defined]

    def delete_grace(self, obj: Message, req: api_pb2.DeleteRequest) -> tuple[int, bool] | None:
        pod: core_pb2.Pod = obj  # type: ignore[assignment]
        grace = req.grace_period_seconds if req.HasField("grace_period_seconds") else \
            pod.spec.termination_grace_period_seconds
        # A bound pod is stopped by its kubelet, which then removes it.
        return grace, bool(pod.spec.node_name) and grace > 0

    def ready_to_remove(self, obj: Message) -> bool:
        # A bound pod waits for its kubelet to report it stopped (deleting it with grace 0); one whose finalizers
        # outlived that goes when the last of them does.
        meta = obj.metadata  # type: ignore[attr-defined]
        stopped = meta.HasField("deletion_grace_period_seconds") and meta.deletion_grace_period_seconds == 0
        return super().ready_to_remove(obj) and (not obj.spec.node_name or stopped)  # type: ignore[attr-defined]


def binding(req: api_pb2.BindRequest) -> Callable[[Message], Message]:
    """The Binding subresource: set spec.nodeName, which a plain update may not change."""
    if not req.node_name:
        raise InvalidError([FieldError("target.name", "Required value")])

    def assign(current: Message) -> Message:
        pod: core_pb2.Pod = current  # type: ignore[assignment]
        if req.uid and pod.metadata.uid != req.uid:
            raise ConflictError(f'pod "{req.name}" was recreated (uid {pod.metadata.uid}, binding for {req.uid})')
        if pod.spec.node_name:
            raise ConflictError(f'pod {req.name} is already assigned to node "{pod.spec.node_name}"')
        if pod.metadata.HasField("deletion_timestamp"):
            raise ConflictError(f'pod {req.name} is being deleted, cannot be assigned to a host')
        new: core_pb2.Pod = copy(pod)  # type: ignore[assignment]
        new.spec.node_name = req.node_name
        new.status.nominated_node_name = ""
        conditions.set_(new.status.conditions, "PodScheduled", "True")
        return new

    return assign


def kubelet_status(name: str, uid: str, status: core_pb2.PodStatus) -> Callable[[Message], Message | None]:
    """A kubelet's status report: replaces the status, keeping the scheduler's nominated node."""

    def replace(current: Message) -> Message | None:
        if uid and current.metadata.uid != uid:  # type: ignore[attr-defined]
            raise NotFoundError(f'pod "{name}" with uid {uid} not found')
        if current.status == status:  # type: ignore[attr-defined]
            return None
        new = copy(current)
        new.status.CopyFrom(status)  # type: ignore[attr-defined]
        if not new.status.nominated_node_name:  # type: ignore[attr-defined]
            new.status.nominated_node_name = current.status.nominated_node_name  # type: ignore[attr-defined]
        return new

    return replace
