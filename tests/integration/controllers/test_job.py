"""The Job controller against a real apiserver, scheduler and hollow kubelets whose containers exit as told:
completions and parallelism, the backoff limit, Indexed jobs, deadlines, suspension, failure policy, TTL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api import jobs
from api.pb import batch_pb2, core_pb2
from client.api import Client
from kubelet.runtime.fake import ImageBehavior

from .conftest import IMAGE, Running, change, create, eventually, start_hollow, start_manager, start_scheduler

OK = "localhost:5000/kubelite/busybox:ok"  # exits 0 after 0.3 s
FAIL = "localhost:5000/kubelite/busybox:fail"  # exits 1 after 0.2 s
FAIL42 = "localhost:5000/kubelite/busybox:fail42"  # exits 42 after 0.2 s
BEHAVIORS = {OK: ImageBehavior(exit_code=0, run_seconds=0.3), FAIL: ImageBehavior(exit_code=1, run_seconds=0.2),
             FAIL42: ImageBehavior(exit_code=42, run_seconds=0.2)}
BACKOFF = 0.3


@pytest.fixture
async def batch(apiserver: Any, running: Running) -> None:
    """Controller-manager (Job backoff 0.3 s), scheduler and three hollow nodes running BEHAVIORS."""
    await start_manager(running, apiserver.address, job_backoff=BACKOFF)
    await start_scheduler(running, apiserver.address)
    await start_hollow(running, apiserver.address, 3, behaviors=BEHAVIORS)


def job_yaml(name: str, image: str, *, spec: str = "", restart: str = "Never") -> str:
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: default}}
spec:
{spec}
  template:
    spec:
      restartPolicy: {restart}
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: {image}}}]
"""


async def job_pods(client: Client, job: batch_pb2.Job) -> list[core_pb2.Pod]:
    return [p for p in await client.list_all("pods", "default", label_selector=f"{jobs.CONTROLLER_UID}="
                                                                                f"{job.metadata.uid}")]


async def condition(client: Client, name: str, type_: str) -> batch_pb2.Job | None:
    job = await client.get("jobs", name, "default")
    return job if jobs.condition_true(job, type_) else None


async def test_completions_and_parallelism(client: Client, batch: None) -> None:
    """completions 4 / parallelism 2: never more than 2 pods run, 4 succeed, the Job is Complete with the counts
    final, and no pod keeps the tracking finalizer."""
    job = await create(client, job_yaml("four", OK, spec="  completions: 4\n  parallelism: 2"))
    most = 0

    async def done() -> batch_pb2.Job | None:
        nonlocal most
        running = [p for p in await job_pods(client, job) if p.status.phase in ("Pending", "Running")]
        most = max(most, len(running))
        return await condition(client, "four", jobs.COMPLETE)

    finished = await eventually(done, timeout=60, what="Complete")
    st = finished.status
    assert (st.succeeded, st.failed, st.active) == (4, 0, 0)
    assert not st.HasField("uncounted_terminated_pods")
    assert st.completion_time.seconds and st.start_time.seconds
    cond = next(c for c in st.conditions if c.type == jobs.COMPLETE)
    assert cond.reason == jobs.COMPLETIONS_REACHED
    assert most <= 2
    pods = await job_pods(client, job)
    assert len(pods) == 4 and all(p.status.phase == "Succeeded" for p in pods)
    await eventually(lambda: _no_finalizers(client, job), what="finalizers removed")


async def _no_finalizers(client: Client, job: batch_pb2.Job) -> bool:
    return all(jobs.TRACKING_FINALIZER not in p.metadata.finalizers for p in await job_pods(client, job))


async def test_backoff_limit_fails_after_limit_plus_one_pods(client: Client, batch: None) -> None:
    """backoffLimit 2, pods exit 1: exactly 3 pods ran, one after the other with growing backoff, and the Job is
    Failed with BackoffLimitExceeded and failed 3."""
    job = await create(client, job_yaml("bad", FAIL, spec="  backoffLimit: 2"))
    failed = await eventually(lambda: condition(client, "bad", jobs.FAILED), timeout=60, what="Failed")
    cond = next(c for c in failed.status.conditions if c.type == jobs.FAILED)
    assert (cond.reason, cond.message) == (jobs.BACKOFF_LIMIT_EXCEEDED, "Job has reached the specified backoff limit")
    assert failed.status.failed == 3 and failed.status.succeeded == 0
    await asyncio.sleep(1.0)
    pods = await job_pods(client, job)
    assert len(pods) == 3, [p.metadata.name for p in pods]
    created = sorted(p.metadata.creation_timestamp.ToNanoseconds() / 1e9 for p in pods)
    assert created[1] - created[0] >= BACKOFF and created[2] - created[1] >= 2 * BACKOFF
    events = await client.list_all("events", "default", field_selector="involvedObject.name=bad")
    assert any(e.reason == jobs.BACKOFF_LIMIT_EXCEEDED and e.type == "Warning" for e in events)


async def test_indexed_job(client: Client, batch: None) -> None:
    """An Indexed Job: one pod per index, named <job>-<index>-..., with the index as annotation, label, hostname and
    JOB_COMPLETION_INDEX; completedIndexes reads 0-4."""
    job = await create(client, job_yaml("idx", OK, spec="  completions: 5\n  parallelism: 3\n"
                                                         "  completionMode: Indexed"))
    finished = await eventually(lambda: condition(client, "idx", jobs.COMPLETE), timeout=60, what="Complete")
    assert finished.status.completed_indexes == "0-4" and finished.status.succeeded == 5
    pods = await job_pods(client, job)
    indexes = sorted(int(p.metadata.annotations[jobs.COMPLETION_INDEX]) for p in pods)
    assert indexes == [0, 1, 2, 3, 4]
    for p in pods:
        i = p.metadata.annotations[jobs.COMPLETION_INDEX]
        assert p.metadata.name.startswith(f"idx-{i}-")
        assert p.metadata.labels[jobs.COMPLETION_INDEX] == i and p.spec.hostname == f"idx-{i}"
        env = p.spec.containers[0].env[0]
        assert env.name == "JOB_COMPLETION_INDEX"
        assert env.value_from.field_ref.field_path == "metadata.annotations['batch.kubernetes.io/job-completion-index']"


async def test_active_deadline(client: Client, batch: None) -> None:
    """activeDeadlineSeconds 1 on pods that never finish: the Job fails with DeadlineExceeded and its pods go."""
    job = await create(client, job_yaml("slow", IMAGE, spec="  activeDeadlineSeconds: 1\n  parallelism: 2\n"
                                                             "  completions: 2"))
    failed = await eventually(lambda: condition(client, "slow", jobs.FAILED), timeout=30, what="Failed")
    cond = next(c for c in failed.status.conditions if c.type == jobs.FAILED)
    assert cond.reason == jobs.DEADLINE_EXCEEDED
    await eventually(lambda: _none_active(client, job), what="pods stopped")


async def _none_active(client: Client, job: batch_pb2.Job) -> bool:
    return all(p.metadata.HasField("deletion_timestamp") or p.status.phase in ("Succeeded", "Failed")
               for p in await job_pods(client, job))


async def test_suspend_and_resume(client: Client, batch: None) -> None:
    """A Job created suspended makes no pod and says Suspended; resumed, it runs to completion."""
    job = await create(client, job_yaml("later", OK, spec="  suspend: true"))
    await eventually(lambda: condition(client, "later", jobs.SUSPENDED), what="Suspended")
    await asyncio.sleep(0.5)
    assert await job_pods(client, job) == []
    await change(client, "jobs", "later", lambda j: setattr(j.spec, "suspend", False))
    finished = await eventually(lambda: condition(client, "later", jobs.COMPLETE), timeout=30, what="Complete")
    resumed = next(c for c in finished.status.conditions if c.type == jobs.SUSPENDED)
    assert (resumed.status, resumed.reason) == ("False", jobs.JOB_RESUMED)


async def test_pod_failure_policy_fails_the_job_at_once(client: Client, batch: None) -> None:
    """A FailJob rule on exit code 42 fails the Job after its first pod, whatever the backoff limit."""
    spec = """  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: c, operator: In, values: [42]}"""
    job = await create(client, job_yaml("policy", FAIL42, spec=spec))
    failed = await eventually(lambda: condition(client, "policy", jobs.FAILED), timeout=30, what="Failed")
    cond = next(c for c in failed.status.conditions if c.type == jobs.FAILED)
    assert cond.reason == jobs.POD_FAILURE_POLICY
    assert "failed with exit code 42 matching FailJob rule at index 0" in cond.message
    assert len(await job_pods(client, job)) == 1


async def test_ttl_after_finished(client: Client, batch: None) -> None:
    """ttlSecondsAfterFinished 1: the finished Job and its pods are deleted about a second after it completed."""
    job = await create(client, job_yaml("brief", OK, spec="  ttlSecondsAfterFinished: 1"))
    await eventually(lambda: condition(client, "brief", jobs.COMPLETE), timeout=30, what="Complete")

    async def gone() -> bool:
        return not [j for j in await client.list_all("jobs", "default") if j.metadata.name == "brief"] \
            and not await job_pods(client, job)

    await eventually(gone, timeout=30, what="Job and pods deleted")
