"""plan_job: counting through the tracking finalizer, pods to create and delete, backoff, deadlines, suspension,
Indexed jobs, the pod failure policy, and when a Job finishes."""

from __future__ import annotations

import pytest

from api import jobs
from api.pb import batch_pb2, core_pb2, meta_pb2
from api.timestamps import timestamp
from controllers.job.plan import (
    COUNT,
    FAIL_JOB,
    IGNORE,
    backoff_delay,
    match_failure_policy,
    plan_job,
    pod_from_template,
    ttl_expires_at,
)

T0 = 1_700_000_000.0


def job(*, completions: int | None = 1, parallelism: int = 1, backoff: int = 6, indexed: bool = False,
        suspend: bool = False, deadline: int | None = None, status: dict | None = None,
        restart: str = "Never") -> batch_pb2.Job:
    j = batch_pb2.Job(metadata={"name": "j", "namespace": "default", "uid": "job-uid", "generation": 1})
    if completions is not None:
        j.spec.completions = completions
    j.spec.parallelism = parallelism
    j.spec.backoff_limit = backoff
    j.spec.completion_mode = "Indexed" if indexed else "NonIndexed"
    j.spec.suspend = suspend
    if deadline is not None:
        j.spec.active_deadline_seconds = deadline
    j.spec.template.spec.restart_policy = restart
    j.spec.template.spec.containers.add(name="c", image="busybox")
    if status:
        j.status.CopyFrom(batch_pb2.JobStatus(**status))
    j.status.start_time.CopyFrom(timestamp(T0))
    return j


def pod(name: str, phase: str = "Running", *, finalizer: bool = True, deleting: bool = False, index: int | None = None,
        exit_code: int | None = None, ready: bool = True, restarts: int = 0) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": name, "namespace": "default", "uid": f"uid-{name}"})
    p.metadata.creation_timestamp.CopyFrom(timestamp(T0))
    if finalizer:
        p.metadata.finalizers.append(jobs.TRACKING_FINALIZER)
    if deleting:
        p.metadata.deletion_timestamp.CopyFrom(timestamp(T0 + 1))
    if index is not None:
        p.metadata.annotations[jobs.COMPLETION_INDEX] = str(index)
    p.status.phase = phase
    if phase == "Running" and ready:
        p.status.conditions.add(type="Ready", status="True")
    cs = p.status.container_statuses.add(name="c", restart_count=restarts)
    if exit_code is not None:
        cs.state.terminated.exit_code = exit_code
        cs.state.terminated.finished_at.CopyFrom(timestamp(T0 + 5))
    return p


def condition(status: batch_pb2.JobStatus, type_: str) -> batch_pb2.JobCondition | None:
    return next((c for c in status.conditions if c.type == type_ and c.status == "True"), None)


@pytest.mark.parametrize(("spec", "pods", "create"), [
    pytest.param({}, [], [None], id="a-new-job-starts-one-pod"),
    pytest.param({"completions": 5, "parallelism": 2}, [], [None, None], id="parallelism-caps-the-start"),
    pytest.param({"completions": 3, "parallelism": 5}, [], [None] * 3, id="never-more-than-completions-left"),
    pytest.param({"completions": 3, "parallelism": 2}, [pod("a")], [None], id="tops-up-to-parallelism"),
    pytest.param({"completions": None, "parallelism": 2}, [], [None, None], id="work-queue-starts-parallelism"),
    pytest.param({"completions": 4, "parallelism": 4, "indexed": True}, [pod("a", index=1)], [0, 2, 3],
                 id="indexed-starts-the-missing-indexes"),
])
def test_pods_to_create(spec: dict, pods: list[core_pb2.Pod], create: list[int | None]) -> None:
    """Pods are created toward min(parallelism, completions left); Indexed ones get the lowest missing indexes."""
    assert list(plan_job(job(**spec), pods, T0 + 10).create) == create


def test_finished_pods_are_recorded_then_counted() -> None:
    """A succeeded pod goes into uncountedTerminatedPods with its finalizer kept; once its finalizer is gone it moves
    into the count; the Job completes only when nothing is left uncounted."""
    j = job(completions=1)
    first = plan_job(j, [pod("a", "Succeeded")], T0 + 10)
    assert list(first.status.uncounted_terminated_pods.succeeded) == ["uid-a"]
    assert first.status.succeeded == 0 and not first.remove_finalizers and not first.create
    assert condition(first.status, jobs.COMPLETE) is None
    j.status.CopyFrom(first.status)
    second = plan_job(j, [pod("a", "Succeeded")], T0 + 11)
    assert [p.metadata.name for p in second.remove_finalizers] == ["a"]
    j.status.CopyFrom(second.status)
    third = plan_job(j, [pod("a", "Succeeded", finalizer=False)], T0 + 12)
    assert third.status.succeeded == 1 and not third.status.HasField("uncounted_terminated_pods")
    cond = condition(third.status, jobs.COMPLETE)
    assert cond is not None and cond.reason == jobs.COMPLETIONS_REACHED
    assert third.status.completion_time.seconds


def test_a_pod_gone_before_its_count_is_still_counted() -> None:
    """A recorded pod that vanished (deleted with its finalizer force-removed) is still counted, once."""
    j = job(completions=2, parallelism=2, status={"uncounted_terminated_pods": {"succeeded": ["uid-gone"]}})
    plan = plan_job(j, [pod("b")], T0 + 10)
    assert plan.status.succeeded == 1 and not plan.status.HasField("uncounted_terminated_pods")


def test_deleted_running_pod_counts_as_failed_without_a_failure_policy() -> None:
    """A pod deleted before it succeeded is a failure (and is replaced)."""
    plan = plan_job(job(), [pod("a", deleting=True)], T0 + 10)
    assert list(plan.status.uncounted_terminated_pods.failed) == ["uid-a"]
    assert plan.new_failures == 1


@pytest.mark.parametrize(("failed", "limit", "fails"), [
    pytest.param(2, 2, False, id="at-the-limit-retries"),
    pytest.param(3, 2, True, id="past-the-limit-fails"),
    pytest.param(1, 0, True, id="limit-zero-fails-on-the-first"),
])
def test_backoff_limit(failed: int, limit: int, fails: bool) -> None:
    """More failed pods than backoffLimit fails the Job with BackoffLimitExceeded (first as FailureTarget)."""
    plan = plan_job(job(backoff=limit, status={"failed": failed}), [], T0 + 10)
    target = condition(plan.status, jobs.FAILURE_TARGET)
    assert (target is not None) == fails
    if fails:
        assert target.reason == jobs.BACKOFF_LIMIT_EXCEEDED  # type: ignore[union-attr]
        failed_cond = condition(plan.status, jobs.FAILED)
        assert failed_cond is not None and failed_cond.message == "Job has reached the specified backoff limit"
        assert not plan.create


def test_on_failure_restarts_count_toward_the_limit() -> None:
    """With restartPolicy OnFailure, container restarts of active pods count against backoffLimit."""
    plan = plan_job(job(backoff=2, restart="OnFailure"), [pod("a", restarts=2)], T0 + 10)
    assert condition(plan.status, jobs.FAILURE_TARGET).reason == jobs.BACKOFF_LIMIT_EXCEEDED  # type: ignore[union-attr]
    assert [p.metadata.name for p in plan.delete] == ["a"]
    assert condition(plan.status, jobs.FAILED) is None  # not until its pod has stopped


def test_backoff_delays_the_next_pod() -> None:
    """After a failure the next pod waits for the backoff; the plan says when to look again."""
    plan = plan_job(job(status={"failed": 1}), [], T0 + 10, backoff_until=T0 + 20)
    assert not plan.create and plan.requeue_after == pytest.approx(10.05)
    assert [backoff_delay(n) for n in (0, 1, 2, 3, 10)] == [0.0, 10.0, 20.0, 40.0, 360.0]


def test_active_deadline() -> None:
    """Past activeDeadlineSeconds the Job fails with DeadlineExceeded and its pods are deleted; before, the plan
    asks to be woken at the deadline."""
    early = plan_job(job(deadline=30), [pod("a")], T0 + 10)
    assert early.requeue_after == pytest.approx(20.05)
    late = plan_job(job(deadline=30), [pod("a")], T0 + 31)
    assert condition(late.status, jobs.FAILURE_TARGET).reason == jobs.DEADLINE_EXCEEDED  # type: ignore[union-attr]
    assert [p.metadata.name for p in late.delete] == ["a"]


def test_suspend_and_resume() -> None:
    """A suspended Job deletes its active pods and says Suspended; resumed, it says so and starts its clock again."""
    suspended = plan_job(job(suspend=True), [pod("a")], T0 + 10)
    assert [p.metadata.name for p in suspended.delete] == ["a"] and not suspended.create
    assert condition(suspended.status, jobs.SUSPENDED).reason == jobs.JOB_SUSPENDED  # type: ignore[union-attr]
    j = job()
    j.status.CopyFrom(suspended.status)
    resumed = plan_job(j, [], T0 + 20)
    cond = next(c for c in resumed.status.conditions if c.type == jobs.SUSPENDED)
    assert (cond.status, cond.reason) == ("False", jobs.JOB_RESUMED)
    assert resumed.status.start_time.seconds == int(T0 + 20) and resumed.create


def test_indexed_duplicates_and_out_of_range_are_deleted() -> None:
    """Two pods of one index keep one; an index past completions or already completed goes."""
    j = job(completions=3, parallelism=3, indexed=True, status={"completed_indexes": "0"})
    pods = [pod("a", index=1), pod("b", index=1), pod("c", index=7), pod("d", index=0)]
    plan = plan_job(j, pods, T0 + 10)
    assert sorted(p.metadata.name for p in plan.delete) in (["b", "c", "d"], ["a", "c", "d"])
    assert list(plan.create) == [2]


def test_indexed_completes_when_every_index_succeeded() -> None:
    """completedIndexes is written as ranges; the Job completes once every index is in it."""
    j = job(completions=3, parallelism=3, indexed=True)
    plan = plan_job(j, [pod(n, "Succeeded", index=i, finalizer=True) for i, n in enumerate("abc")], T0 + 10)
    assert plan.status.completed_indexes == "0-2"
    assert condition(plan.status, jobs.COMPLETE) is None  # three pods still uncounted
    j.status.CopyFrom(plan.status)
    done = plan_job(j, [pod(n, "Succeeded", index=i, finalizer=False) for i, n in enumerate("abc")], T0 + 11)
    assert done.status.succeeded == 3 and condition(done.status, jobs.COMPLETE) is not None


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "non-indexed"])
def test_succeeded_pods_past_the_record_limit_are_not_started_again(monkeypatch: pytest.MonkeyPatch,
                                                                   indexed: bool) -> None:
    """More pods finish at once than one status write records: those left for the next sync still hold their
    index and completion, so no second pod is started for them (it would be deleted as a duplicate and
    counted as a failure), and the Job completes only once every one of them is counted."""
    monkeypatch.setattr("controllers.job.plan.MAX_UNCOUNTED", 2)
    j = job(completions=4, parallelism=4, indexed=indexed)
    done = [pod(n, "Succeeded", index=i if indexed else None) for i, n in enumerate("abc")]
    first = plan_job(j, [*done, pod("d", index=3 if indexed else None)], T0 + 10)
    assert not first.create and not first.delete
    assert len(first.status.uncounted_terminated_pods.succeeded) == 2
    assert condition(first.status, jobs.COMPLETE) is None
    j.status.CopyFrom(first.status)
    finished = [*done, pod("d", "Succeeded", index=3 if indexed else None)]
    second = plan_job(j, finished, T0 + 11)
    assert not second.create and not second.delete
    assert condition(second.status, jobs.COMPLETE) is None  # two pods are not counted yet


def policy(*rules: dict) -> batch_pb2.PodFailurePolicy:
    return batch_pb2.PodFailurePolicy(rules=list(rules))


@pytest.mark.parametrize(("rules", "code", "action"), [
    pytest.param([{"action": "FailJob", "on_exit_codes": {"operator": "In", "values": [42]}}], 42, FAIL_JOB,
                 id="in-matches"),
    pytest.param([{"action": "FailJob", "on_exit_codes": {"operator": "In", "values": [42]}}], 1, COUNT,
                 id="in-misses"),
    pytest.param([{"action": "Ignore", "on_exit_codes": {"operator": "NotIn", "values": [1, 2]}}], 3, IGNORE,
                 id="not-in-matches"),
    pytest.param([{"action": "Ignore", "on_exit_codes": {"container_name": "other", "operator": "In",
                                                         "values": [3]}}], 3, COUNT, id="other-container"),
    pytest.param([{"action": "Count", "on_exit_codes": {"operator": "In", "values": [3]}},
                  {"action": "FailJob", "on_exit_codes": {"operator": "In", "values": [3]}}], 3, COUNT,
                 id="first-rule-wins"),
])
def test_failure_policy_rules(rules: list[dict], code: int, action: str) -> None:
    """The first rule matching a failed container's exit code decides; none matching counts the failure."""
    p = pod("a", "Failed", exit_code=code)
    assert match_failure_policy(policy(*rules), p)[0] == action


def test_fail_job_rule_and_ignored_failures() -> None:
    """A FailJob match fails the Job with reason PodFailurePolicy; an ignored failure is not counted."""
    j = job(backoff=0)
    j.spec.pod_failure_policy.CopyFrom(policy({"action": "FailJob", "on_exit_codes": {"operator": "In",
                                                                                        "values": [42]}}))
    plan = plan_job(j, [pod("a", "Failed", exit_code=42)], T0 + 10)
    target = condition(plan.status, jobs.FAILURE_TARGET)
    assert target is not None and target.reason == jobs.POD_FAILURE_POLICY
    assert "exit code 42 matching FailJob rule at index 0" in target.message
    j.spec.pod_failure_policy.CopyFrom(policy({"action": "Ignore", "on_exit_codes": {"operator": "In",
                                                                                       "values": [42]}}))
    ignored = plan_job(j, [pod("a", "Failed", exit_code=42)], T0 + 10)
    assert condition(ignored.status, jobs.FAILURE_TARGET) is None and ignored.new_failures == 0
    assert [p.metadata.name for p in ignored.remove_finalizers] == ["a"] and list(ignored.create) == [None]


def test_finished_job_strips_finalizers_and_keeps_counts() -> None:
    """A finished Job changes no count; leftover finalizers of finished pods go."""
    j = job(status={"succeeded": 1})
    j.status.conditions.add(type=jobs.COMPLETE, status="True")
    plan = plan_job(j, [pod("a", "Succeeded"), pod("b", "Failed")], T0 + 10)
    assert plan.status.succeeded == 1 and plan.status.failed == 0
    assert sorted(p.metadata.name for p in plan.remove_finalizers) == ["a", "b"]


def test_ttl_after_finished() -> None:
    """A finished Job with ttlSecondsAfterFinished expires that long after its finishing condition."""
    j = job()
    j.spec.ttl_seconds_after_finished = 30
    assert ttl_expires_at(j) is None
    j.status.conditions.add(type=jobs.COMPLETE, status="True", last_transition_time=timestamp(T0 + 5))
    assert ttl_expires_at(j) == pytest.approx(T0 + 35)


def test_indexed_pod_from_template() -> None:
    """An Indexed pod carries its index as annotation, label, hostname and JOB_COMPLETION_INDEX, plus the finalizer."""
    j = job(completions=3, indexed=True)
    p = pod_from_template(j, 2, meta_pb2.OwnerReference(api_version="batch/v1", kind="Job", name="j", uid="job-uid",
                                                        controller=True))
    assert p.metadata.generate_name == "j-2-" and p.spec.hostname == "j-2"
    assert p.metadata.annotations[jobs.COMPLETION_INDEX] == "2" and p.metadata.labels[jobs.COMPLETION_INDEX] == "2"
    assert jobs.TRACKING_FINALIZER in p.metadata.finalizers
    env = p.spec.containers[0].env[0]
    assert env.name == "JOB_COMPLETION_INDEX" and "job-completion-index" in env.value_from.field_ref.field_path


@pytest.mark.parametrize(("indexes", "text"), [
    pytest.param([], "", id="none"),
    pytest.param([3], "3", id="one"),
    pytest.param([0, 1, 2, 5, 7, 8], "0-2,5,7-8", id="ranges"),
    pytest.param([5, 1, 1, 2], "1-2,5", id="unsorted-duplicates"),
])
def test_completed_indexes_text(indexes: list[int], text: str) -> None:
    """Completed indexes are written as Kubernetes writes them, and read back."""
    assert jobs.format_indexes(indexes) == text
    assert jobs.parse_indexes(text, 100) == set(indexes)
