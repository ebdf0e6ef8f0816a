"""The CronJob controller: Jobs created when their schedule comes, replaced or skipped by concurrency policy,
finished ones cleaned up past the history limits."""

from __future__ import annotations

from api import jobs
from api.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from api.pb import batch_pb2
from api.timestamps import now, timestamp
from client.api import Client
from client.informer import key_of
from controllers import owners
from controllers.base import QueueController, gather_limited
from controllers.cronjob.plan import active_ref, plan_cronjob
from controllers.events import Recorder
from controllers.informers import CONTROLLER, SharedInformers


class CronJobController(QueueController):
    name = "cronjob-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.cronjobs = informers.get("cronjobs")
        self.jobs = informers.get("jobs")
        self._written: dict[str, int] = {}
        self.cronjobs.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self._deleted)
        self.jobs.add_handlers(self._job_changed, lambda old, new: self._job_changed(new), self._job_changed)

    async def ready(self) -> None:
        await self.cronjobs.synced.wait()
        await self.jobs.synced.wait()

    def _deleted(self, cj: batch_pb2.CronJob) -> None:
        self._written.pop(key_of(cj), None)

    def _job_changed(self, job: batch_pb2.Job) -> None:
        cj = owners.resolve(self.cronjobs, job.metadata.namespace, owners.controller_ref(job), "CronJob")
        if cj is not None:
            self.enqueue(cj)

    async def reconcile(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return
        want = self._written.get(key)
        if want is not None:
            if int(cj.metadata.resource_version or 0) < want:
                return  # our status write is on its way back through the watch
            del self._written[key]
        owned = self.jobs.by_index(CONTROLLER, cj.metadata.uid)
        at = now()
        plan = plan_cronjob(cj, owned, at)
        for type_, reason, message in plan.events:
            self.recorder.event(cj, type_, reason, message)
        status = batch_pb2.CronJobStatus()
        status.CopyFrom(plan.status)
        if plan.replace:
            await self._delete(cj, plan.replace, "SuccessfulDelete")
            replaced = {j.metadata.uid for j in plan.replace}
            kept = [r for r in status.active if r.uid not in replaced]
            del status.active[:]
            status.active.extend(kept)
        if plan.create_for is not None:
            job = jobs.job_from_template(cj, plan.create_for, owners.make_controller_ref(cj))
            try:
                created = await self.client.create(job)
            except AlreadyExistsError:
                created = None  # made already (a previous sync whose status write was lost): the next sync sees it
            except ApiError as e:
                self.recorder.warning(cj, "FailedCreate", f"Error creating job: {e.message}")
                raise
            if created is not None:
                status.active.append(active_ref(created))
                self.recorder.normal(cj, "SuccessfulCreate", f"Created job {created.metadata.name}")
                self.log.info("job_scheduled", key=key, job=created.metadata.name)
            status.last_schedule_time.CopyFrom(timestamp(plan.create_for))
        if status != cj.status:
            update = batch_pb2.CronJob()
            update.CopyFrom(cj)
            update.status.CopyFrom(status)
            try:
                written = await self.client.update_status(update)
            except NotFoundError:
                return
            except ConflictError:
                self.enqueue_after(key, 0.05)
                return
            self._written[key] = int(written.metadata.resource_version or 0)
        if plan.cleanup:
            await self._delete(cj, plan.cleanup, "SuccessfulDelete")
        if plan.requeue_after is not None:
            self.enqueue_after(key, plan.requeue_after)

    async def _delete(self, cj: batch_pb2.CronJob, victims: tuple[batch_pb2.Job, ...], reason: str) -> None:
        results = await gather_limited([self.client.delete("jobs", j.metadata.name, j.metadata.namespace,
                                                           uid=j.metadata.uid, propagation_policy="Background")
                                        for j in victims])
        for job, r in zip(victims, results, strict=True):
            if isinstance(r, (NotFoundError, ConflictError)):
                continue
            if isinstance(r, BaseException):
                raise r
            self.recorder.normal(cj, reason, f"Deleted job {job.metadata.name}")
