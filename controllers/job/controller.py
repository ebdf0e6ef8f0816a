"""The Job controller: informer events in; pods created, deleted and counted, and the Job's status, out."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

from api import jobs, labels, pods
from api.errors import ConflictError, NotFoundError
from api.pb import batch_pb2, core_pb2, meta_pb2
from api.timestamps import now
from client.api import Client
from client.informer import key_of
from controllers import owners, podcontrol
from controllers.base import QueueController
from controllers.events import Recorder
from controllers.expectations import Expectations
from controllers.informers import CONTROLLER, NAMESPACE, ORPHAN, SharedInformers
from controllers.job.plan import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    BURST,
    backoff_delay,
    plan_job,
    pod_from_template,
    ttl_expires_at,
)


class ReconcileError(Exception):
    """A reconcile that must be retried (with backoff)."""


@dataclass
class _Backoff:
    """Failures since the Job's last success, and when the latest happened (Kubernetes' backoff record)."""

    failures: int = 0
    last_failure: float = 0.0


class JobController(QueueController):
    name = "job-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 4, burst: int = BURST,
                 backoff_base: float = BACKOFF_BASE, backoff_max: float = BACKOFF_MAX) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.burst = burst
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.recorder = Recorder(client, self.name)
        self.expectations = Expectations()
        self._backoff: dict[str, _Backoff] = {}
        # Status writes whose watch events the cache has not shown yet: key -> resourceVersion.
        self._written: dict[str, int] = {}
        self.jobs = informers.get("jobs")
        self.pods = informers.get("pods")
        self.jobs.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self._job_deleted)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    async def ready(self) -> None:
        await self.jobs.synced.wait()
        await self.pods.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _resolve(self, namespace: str, ref: meta_pb2.OwnerReference | None) -> batch_pb2.Job | None:
        return owners.resolve(self.jobs, namespace, ref, "Job")

    def _job_deleted(self, job: batch_pb2.Job) -> None:
        key = key_of(job)
        self.expectations.forget(key)
        self._backoff.pop(key, None)
        self._written.pop(key, None)
        self.enqueue(job)

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        job = self._resolve(pod.metadata.namespace, owners.controller_ref(pod))
        if job is not None:
            self.expectations.creation_observed(key_of(job))
            if pods.is_terminating(pod):
                self.expectations.deletion_observed(key_of(job), key_of(pod))
            self.enqueue(job)
            return
        if owners.controller_ref(pod) is None:
            for j in self.jobs.by_index(NAMESPACE, pod.metadata.namespace):
                if labels.from_label_selector(j.spec.selector).matches(pod.metadata.labels):
                    self.enqueue(j)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        job = self._resolve(new.metadata.namespace, owners.controller_ref(new))
        if job is not None:
            if pods.is_terminating(new):
                self.expectations.deletion_observed(key_of(job), key_of(new))
            self.enqueue(job)
        if owners.controller_uid(old) != owners.controller_uid(new):
            before = self._resolve(old.metadata.namespace, owners.controller_ref(old))
            if before is not None:
                self.enqueue(before)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        job = self._resolve(pod.metadata.namespace, owners.controller_ref(pod))
        if job is not None:
            self.expectations.deletion_observed(key_of(job), key_of(pod))
            self.enqueue(job)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.forget(key)
            return
        want = self._written.get(key)
        if want is not None:
            if int(job.metadata.resource_version or 0) < want:
                return  # our last status write is on its way; its watch event brings this key back
            del self._written[key]
        # Taken before anything is awaited: a pod seen meanwhile must not make a plan from older pods act.
        needs_sync = self.expectations.satisfied(key)
        ns = job.metadata.namespace
        deleting = owners.is_deleting(job)
        selector = labels.from_label_selector(job.spec.selector)
        candidates = list(chain(self.pods.by_index(CONTROLLER, job.metadata.uid), self.pods.by_index(ORPHAN, ns)))
        claims = owners.plan_claims(job.metadata.uid, selector, candidates, owner_deleting=deleting)
        owned = await owners.apply_claims(self.client, job, claims, log=self.log)

        at = now()
        record = self._backoff.setdefault(key, _Backoff())
        until = record.last_failure + backoff_delay(record.failures, base=self.backoff_base, cap=self.backoff_max) \
            if record.failures else 0.0
        plan = plan_job(job, owned, at, backoff_until=until, burst=self.burst)
        if plan.new_successes:
            record.failures = 0
        if plan.new_failures:
            record.failures += plan.new_failures
            record.last_failure = max(record.last_failure, plan.last_failure)

        # The finished pods are recorded in the status before their finalizers go (see plan.py).
        if plan.status != job.status:
            if not await self._write_status(job, plan.status):
                return
        for type_, reason, message in plan.events:
            self.recorder.event(job, type_, reason, message)
        if plan.remove_finalizers:
            errors = await podcontrol.remove_finalizer(self.client, plan.remove_finalizers, jobs.TRACKING_FINALIZER)
            if errors:
                raise errors[0]
        failure = None
        if not deleting and needs_sync:
            if plan.delete:
                failure = await podcontrol.delete_pods(self.client, job, plan.delete, key=key,
                                                       expectations=self.expectations, recorder=self.recorder,
                                                       log=self.log)
            if plan.create and failure is None:
                ref = owners.make_controller_ref(job)
                failure = await podcontrol.create_pods(
                    self.client, job, [pod_from_template(job, i, ref) for i in plan.create], key=key,
                    expectations=self.expectations, recorder=self.recorder, log=self.log)
        if plan.requeue_after is not None:
            self.enqueue_after(key, plan.requeue_after)
        await self._expire(job, key, at)
        if failure is not None:
            raise ReconcileError(failure[1])

    async def _write_status(self, job: batch_pb2.Job, status: batch_pb2.JobStatus) -> bool:
        """A compare-and-swap on the Job as planned from, so counts never move twice; False if it lost."""
        update = batch_pb2.Job()
        update.CopyFrom(job)
        update.status.CopyFrom(status)
        try:
            written = await self.client.update_status(update)
        except NotFoundError:
            return False
        except ConflictError:
            self.enqueue_after(key_of(job), 0.05)
            return False
        self._written[key_of(job)] = int(written.metadata.resource_version or 0)
        finished = [c.type for c in status.conditions if c.type in (jobs.COMPLETE, jobs.FAILED)
                    and c.status == "True" and not jobs.condition_true(job, c.type)]
        if finished:
            self.log.info("job_finished", key=key_of(job), condition=finished[0], succeeded=status.succeeded,
                          failed=status.failed)
        return True

    async def _expire(self, job: batch_pb2.Job, key: str, at: float) -> None:
        """ttlSecondsAfterFinished: a finished Job is deleted (with its pods) that long after it finished."""
        expires = ttl_expires_at(job)
        if expires is None or owners.is_deleting(job):
            return
        if expires > at:
            self.enqueue_after(key, expires - at + 0.05)
            return
        try:
            await self.client.delete("jobs", job.metadata.name, job.metadata.namespace, uid=job.metadata.uid,
                                     propagation_policy="Background")
        except (NotFoundError, ConflictError):
            return
        self.log.info("job_expired", key=key)
