"""plan_cronjob: when a Job is due, the concurrency policies, the starting deadline, history limits, time zones."""

from __future__ import annotations

import datetime as dt

import pytest

from api import jobs
from api.pb import batch_pb2
from api.timestamps import timestamp
from controllers.cronjob.plan import plan_cronjob, schedule_times

# 2026-01-01 00:00:00 UTC, a Thursday.
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


def cronjob(schedule: str = "* * * * *", *, policy: str = "Allow", created: float = T0, last: float = 0.0,
            deadline: int | None = None, tz: str = "", suspend: bool = False,
            active: list[batch_pb2.Job] | None = None) -> batch_pb2.CronJob:
    cj = batch_pb2.CronJob(metadata={"name": "hello", "namespace": "default", "uid": "cj-uid"})
    cj.metadata.creation_timestamp.CopyFrom(timestamp(created))
    cj.spec.schedule = schedule
    cj.spec.concurrency_policy = policy
    cj.spec.suspend = suspend
    cj.spec.successful_jobs_history_limit = 2
    cj.spec.failed_jobs_history_limit = 1
    if deadline is not None:
        cj.spec.starting_deadline_seconds = deadline
    if tz:
        cj.spec.time_zone = tz
    if last:
        cj.status.last_schedule_time.CopyFrom(timestamp(last))
    for j in active or []:
        cj.status.active.add(kind="Job", name=j.metadata.name, uid=j.metadata.uid)
    return cj


def job(name: str, *, state: str = "", started: float = T0) -> batch_pb2.Job:
    j = batch_pb2.Job(metadata={"name": name, "namespace": "default", "uid": f"uid-{name}"})
    j.status.start_time.CopyFrom(timestamp(started))
    if state:
        j.status.conditions.add(type=state, status="True")
        if state == jobs.COMPLETE:
            j.status.completion_time.CopyFrom(timestamp(started + 5))
    return j


@pytest.mark.parametrize(("schedule", "after", "now", "latest", "missed", "upcoming"), [
    pytest.param("* * * * *", T0, T0 + 30, None, 0, T0 + 60, id="not-yet"),
    pytest.param("* * * * *", T0, T0 + 61, T0 + 60, 1, T0 + 120, id="one-due"),
    pytest.param("*/5 * * * *", T0, T0 + 1000, T0 + 900, 3, T0 + 1200, id="several-missed-latest-wins"),
    pytest.param("@hourly", T0, T0 + 3601, T0 + 3600, 1, T0 + 7200, id="macro"),
    pytest.param("* * * * *", T0, T0 + 86400, T0 + 86400 - 60 + 60, 101, T0 + 86460, id="too-many-missed"),
])
def test_schedule_times(schedule: str, after: float, now: float, latest: float | None, missed: int,
                        upcoming: float) -> None:
    """The latest scheduled time in (after, now], how many were missed (counting stops past 100), and the next."""
    got = schedule_times(cronjob(schedule), after, now)
    assert got == (latest, missed, upcoming)


def test_time_zone() -> None:
    """A schedule reads in its timeZone: 9:00 in Tokyo is 0:00 UTC."""
    cj = cronjob("0 9 * * *", tz="Asia/Tokyo")
    latest, _, _ = schedule_times(cj, T0 - 60, T0 + 1)
    assert latest == T0


def test_due_job_is_created_for_its_time() -> None:
    """When a time is due and nothing runs, the plan creates the Job for that time and asks to wake at the next."""
    plan = plan_cronjob(cronjob(), [], T0 + 61)
    assert plan.create_for == T0 + 60 and plan.requeue_after == pytest.approx(59.05)
    assert jobs.job_name(cronjob(), T0 + 60) == f"hello-{int(T0 + 60) // 60}"


@pytest.mark.parametrize(("policy", "create", "replace"), [
    pytest.param("Allow", True, False, id="allow-runs-beside"),
    pytest.param("Forbid", False, False, id="forbid-skips"),
    pytest.param("Replace", True, True, id="replace-deletes-the-running-one"),
])
def test_concurrency_policy(policy: str, create: bool, replace: bool) -> None:
    """With a Job still running at the next time: Allow starts another, Forbid skips, Replace replaces it."""
    running = job("hello-1")
    plan = plan_cronjob(cronjob(policy=policy, last=T0, active=[running]), [running], T0 + 61)
    assert (plan.create_for is not None) == create
    assert [j.metadata.name for j in plan.replace] == (["hello-1"] if replace else [])


def test_starting_deadline_skips_a_late_start() -> None:
    """A time more than startingDeadlineSeconds in the past is skipped with a MissSchedule event."""
    plan = plan_cronjob(cronjob(deadline=10), [], T0 + 90)
    assert plan.create_for is None and any(e[1] == "MissSchedule" for e in plan.events)
    assert plan_cronjob(cronjob(deadline=60), [], T0 + 90).create_for == T0 + 60


def test_finished_jobs_leave_active_and_history_is_cut() -> None:
    """A finished active Job leaves status.active (a complete one sets lastSuccessfulTime); finished Jobs beyond
    the history limits are cleaned up, oldest first."""
    done = job("hello-3", state=jobs.COMPLETE, started=T0 + 3)
    owned = [job("hello-1", state=jobs.COMPLETE, started=T0 + 1), job("hello-2", state=jobs.COMPLETE, started=T0 + 2),
             done, job("hello-4", state=jobs.FAILED, started=T0 + 4), job("hello-5", state=jobs.FAILED, started=T0 + 5)]
    plan = plan_cronjob(cronjob(last=T0 + 5, active=[done]), owned, T0 + 30)
    assert not plan.status.active
    assert plan.status.last_successful_time.seconds == int(T0 + 8)
    assert sorted(j.metadata.name for j in plan.cleanup) == ["hello-1", "hello-4"]


def test_suspended_and_already_made() -> None:
    """A suspended CronJob starts nothing; a Job of the due time that exists already is not made twice."""
    assert plan_cronjob(cronjob(suspend=True), [], T0 + 61).create_for is None
    cj = cronjob()
    made = job(jobs.job_name(cj, T0 + 60))
    assert plan_cronjob(cj, [made], T0 + 61).create_for is None
