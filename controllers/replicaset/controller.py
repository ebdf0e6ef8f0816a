"""The ReplicaSet controller: informer events in, pod creations and deletions out."""

from __future__ import annotations

import asyncio
from itertools import chain

from api import labels, pods
from api.errors import ApiError, ConflictError, ForbiddenError, NotFoundError
from api.pb import apps_pb2, core_pb2, meta_pb2
from api.timestamps import now
from client.api import Client
from client.informer import key_of
from controllers import owners, podstate
from controllers.base import QueueController
from controllers.events import Recorder
from controllers.expectations import Expectations
from controllers.informers import CONTROLLER, NAMESPACE, ORPHAN, SharedInformers
from controllers.replicaset.plan import (
    BURST,
    compute_status,
    next_availability_check,
    plan_replicas,
    pod_from_template,
    slow_start_batches,
)


class ReconcileError(Exception):
    """A reconcile that must be retried (with backoff)."""


class ReplicaSetController(QueueController):
    name = "replicaset-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 4, burst: int = BURST) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.burst = burst
        self.recorder = Recorder(client, self.name)
        self.expectations = Expectations()
        # key -> (generation, a batch size that succeeded in full): that template is known good, so later syncs
        # need not start their slow start from 1 again.
        self._proven: dict[str, tuple[int, int]] = {}
        self.rs = informers.get("replicasets")
        self.pods = informers.get("pods")
        self.rs.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self._rs_deleted)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    async def ready(self) -> None:
        await self.rs.synced.wait()
        await self.pods.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _resolve(self, namespace: str, ref: meta_pb2.OwnerReference | None) -> apps_pb2.ReplicaSet | None:
        return owners.resolve(self.rs, namespace, ref, "ReplicaSet")

    def _matching(self, pod: core_pb2.Pod) -> list[apps_pb2.ReplicaSet]:
        return [rs for rs in self.rs.by_index(NAMESPACE, pod.metadata.namespace)
                if labels.from_label_selector(rs.spec.selector).matches(pod.metadata.labels)]

    def _rs_deleted(self, rs: apps_pb2.ReplicaSet) -> None:
        self.expectations.forget(key_of(rs))
        self._proven.pop(key_of(rs), None)
        self.enqueue(rs)

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        if pods.is_terminating(pod):
            # Seen for the first time already being deleted (e.g. after a relist): it will not count.
            self._pod_deleted(pod)
            return
        ref = owners.controller_ref(pod)
        if ref is not None:
            rs = self._resolve(pod.metadata.namespace, ref)
            if rs is not None:
                key = key_of(rs)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for rs in self._matching(pod):
            self.enqueue(rs)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        labels_changed = old.metadata.labels != new.metadata.labels
        if pods.is_terminating(new):
            # A graceful delete: the pod stops counting now, not when the kubelet removes it.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = owners.controller_ref(old), owners.controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            rs = self._resolve(old.metadata.namespace, old_ref)
            if rs is not None:
                self.enqueue(rs)
        if new_ref is not None:
            rs = self._resolve(new.metadata.namespace, new_ref)
            if rs is None:
                return
            self.enqueue(rs)
            if rs.spec.min_ready_seconds > 0 and not podstate.is_ready(old) and podstate.is_ready(new):
                self.enqueue_after(key_of(rs), rs.spec.min_ready_seconds + 0.05)
            return
        if labels_changed or old_ref != new_ref:
            for rs in self._matching(new):
                self.enqueue(rs)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        rs = self._resolve(pod.metadata.namespace, owners.controller_ref(pod))
        if rs is None:
            return
        key = key_of(rs)
        self.expectations.deletion_observed(key, key_of(pod))
        self.queue.add(key)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        rs = self.rs.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        ns = rs.metadata.namespace
        deleting = owners.is_deleting(rs)
        selector = labels.from_label_selector(rs.spec.selector)
        candidates = [p for p in chain(self.pods.by_index(CONTROLLER, rs.metadata.uid), self.pods.by_index(ORPHAN, ns))
                      if pods.is_active(p)]
        claims = owners.plan_claims(rs.metadata.uid, selector, candidates, owner_deleting=deleting)
        owned = await owners.apply_claims(self.client, rs, claims, log=self.log)

        failure: tuple[str, str] | None = None
        if needs_sync and not deleting:
            plan = plan_replicas(rs.spec.replicas, owned, burst=self.burst)
            if plan.create:
                failure = await self._create(rs, key, plan.create)
            elif plan.delete:
                failure = await self._delete(rs, key, plan.delete)

        at = now()
        status = compute_status(rs, owned, now=at, failure=failure)
        if status != rs.status:
            update = apps_pb2.ReplicaSet()
            update.CopyFrom(rs)
            update.status.CopyFrom(status)
            update.metadata.resource_version = ""
            try:
                await self.client.update_status(update)
            except NotFoundError:
                return
        delay = next_availability_check(rs, owned, at)
        if delay is not None:
            self.enqueue_after(key, delay)
        if failure is not None:
            raise ReconcileError(failure[1])

    async def _create(self, rs: apps_pb2.ReplicaSet, key: str, count: int) -> tuple[str, str] | None:
        """Create `count` pods in slow-start batches; stop at the first batch with a failure."""
        ref = owners.make_controller_ref(rs)
        attempted = 0
        failure: tuple[str, str] | None = None
        created = 0
        generation, proven = self._proven.get(key, (0, 1))
        start = proven if generation == rs.metadata.generation else 1
        for size in slow_start_batches(count, start):
            attempted += size
            # Expect only the batch in flight: a batch never sent is never awaited.
            self.expectations.expect_creations(key, size)
            results = await self.client.create_all([pod_from_template(rs, ref) for _ in range(size)])
            errors: list[BaseException] = []
            for r in results:
                if isinstance(r, asyncio.CancelledError):
                    raise r
                if isinstance(r, BaseException):
                    errors.append(r)
                else:
                    created += 1
                    self.recorder.normal(rs, "SuccessfulCreate", f"Created pod: {r.metadata.name}")
            if not errors:
                start = max(start, size)
                self._proven[key] = (rs.metadata.generation, start)
            if errors:
                self._proven.pop(key, None)
                self.expectations.lower_creations(key, len(errors))
                err = errors[0]
                message = err.message if isinstance(err, ApiError) else str(err)
                failure = ("FailedCreate", message)
                if not isinstance(err, ForbiddenError):
                    self.recorder.warning(rs, "FailedCreate", f"Error creating: {message}")
                break
        self.log.info("pods_created", key=key, created=created, wanted=count, failed=failure is not None)
        return failure

    async def _delete(self, rs: apps_pb2.ReplicaSet, key: str,
                      victims: tuple[core_pb2.Pod, ...]) -> tuple[str, str] | None:
        self.expectations.expect_deletions(key, [key_of(p) for p in victims])
        results = await asyncio.gather(
            *(self.client.delete("pods", p.metadata.name, p.metadata.namespace, uid=p.metadata.uid) for p in victims),
            return_exceptions=True)
        failure: tuple[str, str] | None = None
        for pod, r in zip(victims, results, strict=True):
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, (NotFoundError, ConflictError)):
                self.expectations.deletion_observed(key, key_of(pod))  # already gone or replaced
            elif isinstance(r, BaseException):
                self.expectations.deletion_observed(key, key_of(pod))
                message = r.message if isinstance(r, ApiError) else str(r)
                failure = ("FailedDelete", message)
                self.recorder.warning(rs, "FailedDelete", f"Error deleting: {message}")
            else:
                self.recorder.normal(rs, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        self.log.info("pods_deleted", key=key, count=len(victims), failed=failure is not None)
        return failure
