"""Pure planning for a CronJob: whether a Job is due now, what to replace or clean up, and the status.

Schedules are read by croniter in the CronJob's timeZone (UTC when it names
none). As Kubernetes does, only the most recent missed time is started; more
than 100 missed times are reported; a start later than startingDeadlineSeconds
after its scheduled time is skipped.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

from croniter import croniter

from api import convert, jobs
from api.pb import batch_pb2, meta_pb2
from api.timestamps import seconds, timestamp

# Past this many missed times, Kubernetes warns (and still starts only the latest).
TOO_MANY_MISSED = 100


@dataclass(frozen=True)
class CronPlan:
    status: batch_pb2.CronJobStatus
    create_for: float | None = None  # the scheduled time (epoch seconds) of the Job to create now
    replace: tuple[batch_pb2.Job, ...] = ()  # active Jobs to delete first (concurrencyPolicy Replace)
    cleanup: tuple[batch_pb2.Job, ...] = ()  # finished Jobs past the history limits
    requeue_after: float | None = None
    events: tuple[tuple[str, str, str], ...] = ()


def zone(cj: batch_pb2.CronJob) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(cj.spec.time_zone) if cj.spec.HasField("time_zone") else dt.UTC


def schedule_times(cj: batch_pb2.CronJob, after: float, now: float) -> tuple[float | None, int, float]:
    """(the latest scheduled time in (after, now], how many there were (capped past 100), the next one after now)."""
    tz = zone(cj)
    start = dt.datetime.fromtimestamp(after, tz)
    it = croniter(cj.spec.schedule, start)
    latest: float | None = None
    missed = 0
    while True:
        t = it.get_next(dt.datetime).timestamp()
        if t > now:
            return latest, missed, t
        latest, missed = t, missed + 1
        if missed > TOO_MANY_MISSED:
            # Jump to the last time at or before now rather than walking every missed minute.
            # From just after now: get_prev is strictly before its start, and `now` itself may be a scheduled time.
            prev = croniter(cj.spec.schedule, dt.datetime.fromtimestamp(now + 0.001, tz)).get_prev(dt.datetime)
            prev = prev.timestamp()
            nxt = croniter(cj.spec.schedule, dt.datetime.fromtimestamp(now, tz)).get_next(dt.datetime).timestamp()
            return max(prev, latest), missed, nxt


def _start(job: batch_pb2.Job) -> float:
    return seconds(job.status.start_time) or seconds(job.metadata.creation_timestamp)


def _ref(job: batch_pb2.Job) -> meta_pb2.ObjectReference:
    return meta_pb2.ObjectReference(kind="Job", namespace=job.metadata.namespace, name=job.metadata.name,
                                    uid=job.metadata.uid, api_version="batch/v1",
                                    resource_version=job.metadata.resource_version)


def plan_cronjob(cj: batch_pb2.CronJob, owned: Sequence[batch_pb2.Job], now: float) -> CronPlan:
    """What to do for `cj`, given the Jobs it controls."""
    status = batch_pb2.CronJobStatus()
    status.CopyFrom(cj.status)
    events: list[tuple[str, str, str]] = []
    by_uid = {j.metadata.uid: j for j in owned}

    # Active Jobs: finished or vanished ones leave the list.
    keep = []
    for ref in status.active:
        job = by_uid.get(ref.uid)
        if job is None:
            events.append(("Normal", "MissingJob", f"Active job went missing: {ref.name}"))
            continue
        if jobs.is_finished(job):
            events.append(("Normal", "SawCompletedJob",
                           f"Saw completed job: {job.metadata.name}, status: "
                           f"{'Complete' if jobs.condition_true(job, jobs.COMPLETE) else 'Failed'}"))
            if jobs.condition_true(job, jobs.COMPLETE) and job.status.completion_time.seconds:
                if seconds(job.status.completion_time) > seconds(status.last_successful_time):
                    status.last_successful_time.CopyFrom(job.status.completion_time)
            continue
        keep.append(ref)
    del status.active[:]
    status.active.extend(keep)
    active_uids = {r.uid for r in keep}

    cleanup = _past_history(cj, [j for j in owned if jobs.is_finished(j)])
    if cj.metadata.HasField("deletion_timestamp"):
        return CronPlan(status=status, events=tuple(events))
    if cj.spec.suspend:
        return CronPlan(status=status, cleanup=cleanup, events=tuple(events))

    after = seconds(status.last_schedule_time) or seconds(cj.metadata.creation_timestamp)
    latest, missed, upcoming = schedule_times(cj, after, now)
    requeue = upcoming - now + 0.05
    if latest is None:
        return CronPlan(status=status, cleanup=cleanup, requeue_after=requeue, events=tuple(events))
    if missed > TOO_MANY_MISSED:
        events.append(("Warning", "TooManyMissedTimes",
                       f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or "
                       f"check clock skew"))
    if cj.spec.HasField("starting_deadline_seconds") and latest + cj.spec.starting_deadline_seconds < now:
        events.append(("Warning", "MissSchedule", f"Missed scheduled time to start a job: "
                                                  f"{convert.format_time(timestamp(latest))}"))
        return CronPlan(status=status, cleanup=cleanup, requeue_after=requeue, events=tuple(events))
    if any(j.metadata.name == jobs.job_name(cj, latest) for j in owned):
        return CronPlan(status=status, cleanup=cleanup, requeue_after=requeue, events=tuple(events))
    active_jobs = [by_uid[u] for u in active_uids]
    policy = cj.spec.concurrency_policy or "Allow"
    if policy == "Forbid" and active_jobs:
        events.append(("Normal", "JobAlreadyActive", "Not starting job because prior execution is running and "
                                                     "concurrency policy is Forbid"))
        return CronPlan(status=status, cleanup=cleanup, requeue_after=requeue, events=tuple(events))
    replace = tuple(active_jobs) if policy == "Replace" else ()
    return CronPlan(status=status, create_for=latest, replace=replace, cleanup=cleanup, requeue_after=requeue,
                    events=tuple(events))


def _past_history(cj: batch_pb2.CronJob, finished: list[batch_pb2.Job]) -> tuple[batch_pb2.Job, ...]:
    """The oldest finished Jobs beyond successfulJobsHistoryLimit and failedJobsHistoryLimit."""
    out: list[batch_pb2.Job] = []
    for complete, limit_field in ((True, "successful_jobs_history_limit"), (False, "failed_jobs_history_limit")):
        if not cj.spec.HasField(limit_field):
            continue
        limit = getattr(cj.spec, limit_field)
        group = sorted((j for j in finished if jobs.condition_true(j, jobs.COMPLETE) == complete),
                       key=lambda j: (_start(j), j.metadata.name))
        out.extend(group[:max(0, len(group) - limit)])
    return tuple(out)


def active_ref(job: batch_pb2.Job) -> meta_pb2.ObjectReference:
    return _ref(job)
