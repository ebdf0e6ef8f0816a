"""Event handlers shared by the controllers whose objects own pods and ControllerRevisions (DaemonSet,
StatefulSet): each pod or revision event is mapped to its owner and enqueued, and pod creations and deletions are
counted against the expectations that keep a sync from acting twice on what it already asked for."""

from __future__ import annotations

from typing import Any

from api import labels, pods
from api.pb import apps_pb2, core_pb2
from client.informer import Informer, key_of
from controllers import owners
from controllers.base import QueueController
from controllers.expectations import Expectations
from controllers.informers import NAMESPACE


class OwnedPodsController(QueueController):
    owner_kind: str  # "DaemonSet" or "StatefulSet": the kind a controller reference must name

    def __init__(self) -> None:
        super().__init__()
        self.expectations = Expectations()

    def watch_owned(self, owners_informer: Informer, pods_informer: Informer, revisions: Informer) -> None:
        self._owners = owners_informer
        owners_informer.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self._owner_deleted)
        pods_informer.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        revisions.add_handlers(self._revision_changed, None, self._revision_changed)

    def _owner(self, obj: Any) -> Any:
        return owners.resolve(self._owners, obj.metadata.namespace, owners.controller_ref(obj), self.owner_kind)

    def _owner_deleted(self, owner: Any) -> None:
        self.expectations.forget(key_of(owner))
        self.enqueue(owner)

    def _revision_changed(self, rev: apps_pb2.ControllerRevision) -> None:
        owner = self._owner(rev)
        if owner is not None:
            self.enqueue(owner)

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        owner = self._owner(pod)
        if owner is not None:
            self.expectations.creation_observed(key_of(owner))
            if pods.is_terminating(pod):
                self.expectations.deletion_observed(key_of(owner), key_of(pod))
            self.enqueue(owner)
        elif owners.controller_ref(pod) is None:
            # An orphan: whichever owner selects it may adopt it.
            for o in self._owners.by_index(NAMESPACE, pod.metadata.namespace):
                if labels.from_label_selector(o.spec.selector).matches(pod.metadata.labels):
                    self.enqueue(o)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        owner = self._owner(new)
        if owner is not None:
            if pods.is_terminating(new):
                self.expectations.deletion_observed(key_of(owner), key_of(new))
            self.enqueue(owner)
            if owner.spec.min_ready_seconds > 0:
                self.enqueue_after(key_of(owner), owner.spec.min_ready_seconds + 0.05)
        if owners.controller_uid(old) != owners.controller_uid(new):
            before = self._owner(old)
            if before is not None:
                self.enqueue(before)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        owner = self._owner(pod)
        if owner is not None:
            self.expectations.deletion_observed(key_of(owner), key_of(pod))
            self.enqueue(owner)
