"""Pure planning for a Job: which pods to count, create and delete, and the status to write.

Pods are counted as Kubernetes counts them since 1.26: each pod carries the
`batch.kubernetes.io/job-tracking` finalizer; a finished pod's uid is first
written into status.uncountedTerminatedPods, then its finalizer is removed,
then (once the pod shows no finalizer, or is gone) the uid moves into the
succeeded or failed count. A pod deleted early is never lost from the counts,
and none is counted twice, whatever the controller restarts in between.

A Job finishes (Complete or Failed) only once nothing is left uncounted, so
the counts a user reads with the condition are final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from api import conditions, jobs, pods
from api.pb import batch_pb2, core_pb2
from api.timestamps import seconds, timestamp
from controllers import podstate

# At most this many creations or deletions per sync (Kubernetes' burstReplicas).
BURST = 500
# Backoff between failed pods: 10 s, 20 s, 40 s, ... up to 6 minutes, as Kubernetes.
BACKOFF_BASE = 10.0
BACKOFF_MAX = 360.0
# At most this many finished pods are recorded per status write (Kubernetes' MaxUncountedPods).
MAX_UNCOUNTED = 500

FAIL_JOB, IGNORE, COUNT = "FailJob", "Ignore", "Count"


def index_of(pod: core_pb2.Pod) -> int | None:
    """An Indexed Job pod's completion index (None when it has none, or a malformed one)."""
    text = pod.metadata.annotations.get(jobs.COMPLETION_INDEX, "")
    return int(text) if text.isdigit() else None


def is_succeeded(pod: core_pb2.Pod) -> bool:
    return pod.status.phase == "Succeeded"


def is_failed(pod: core_pb2.Pod, *, has_failure_policy: bool) -> bool:
    """Failed; without a pod failure policy, a pod deleted before it succeeded counts as failed too."""
    if pod.status.phase == "Failed":
        return True
    return not has_failure_policy and pods.is_terminating(pod) and pod.status.phase != "Succeeded"


def _exit_codes(pod: core_pb2.Pod, container: str | None) -> list[tuple[str, int]]:
    out = []
    for cs in (*pod.status.init_container_statuses, *pod.status.container_statuses):
        t = cs.state.terminated
        if cs.state.HasField("terminated") and t.exit_code != 0 and (container is None or cs.name == container):
            out.append((cs.name, t.exit_code))
    return out


def match_failure_policy(policy: batch_pb2.PodFailurePolicy, pod: core_pb2.Pod) -> tuple[str, str]:
    """The action the first matching rule takes for a failed pod (Count when none matches), and why."""
    who = f"pod {pod.metadata.namespace}/{pod.metadata.name}"
    for i, rule in enumerate(policy.rules):
        if rule.HasField("on_exit_codes"):
            req = rule.on_exit_codes
            name = req.container_name if req.HasField("container_name") else None
            for cname, code in _exit_codes(pod, name):
                if (code in req.values) == (req.operator == "In"):
                    return rule.action, (f"Container {cname} for {who} failed with exit code {code} matching "
                                         f"{rule.action} rule at index {i}")
        for pattern in rule.on_pod_conditions:
            if any(c.type == pattern.type and c.status == (pattern.status or "True") for c in pod.status.conditions):
                return rule.action, f"{who} has condition {pattern.type} matching {rule.action} rule at index {i}"
    return COUNT, ""


def backoff_delay(failures: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait after the latest of `failures` consecutive failures before the next pod."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** min(failures - 1, 30))


@dataclass(frozen=True)
class JobPlan:
    status: batch_pb2.JobStatus
    remove_finalizers: tuple[core_pb2.Pod, ...] = ()
    create: tuple[int | None, ...] = ()  # one entry per pod to create: its completion index (None: NonIndexed)
    delete: tuple[core_pb2.Pod, ...] = ()
    requeue_after: float | None = None
    new_failures: int = 0  # pods newly recorded as failed in this sync
    new_successes: int = 0
    last_failure: float = 0.0  # when the latest newly recorded failure happened
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)


@dataclass
class _Counts:
    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


def _finished_at(pod: core_pb2.Pod, now: float) -> float:
    ends = [seconds(cs.state.terminated.finished_at) for cs in pod.status.container_statuses
            if cs.state.HasField("terminated")]
    ends = [e for e in ends if e > 0]
    return max(ends) if ends else now


def _set_condition(status: batch_pb2.JobStatus, type_: str, state: str, reason: str, message: str,
                   now: float) -> None:
    conditions.set_(status.conditions, type_, state, reason, message, now=timestamp(now))
    c = conditions.get(status.conditions, type_)
    assert c is not None
    c.last_probe_time.CopyFrom(timestamp(now))


def plan_job(job: batch_pb2.Job, owned: Sequence[core_pb2.Pod], now: float, *, backoff_until: float = 0.0,
             burst: int = BURST) -> JobPlan:
    """What to do next for `job` whose pods (active, finished and terminating) are `owned`."""
    spec = job.spec
    status = batch_pb2.JobStatus()
    status.CopyFrom(job.status)
    events: list[tuple[str, str, str]] = []
    has_policy = spec.HasField("pod_failure_policy")
    indexed = spec.completion_mode == "Indexed"
    completions = spec.completions if spec.HasField("completions") else None
    by_uid = {p.metadata.uid: p for p in owned}
    if jobs.is_finished(job):
        # The counts are final: leftover finalizers go, leftover pods are stopped.
        left = [p for p in owned if pods.is_active(p)]
        status.active = len(left)
        status.ready = sum(1 for p in left if podstate.is_ready(p))
        status.terminating = sum(1 for p in owned if pods.is_terminating(p) and not pods.is_terminal(p))
        stale = tuple(p for p in owned if jobs.TRACKING_FINALIZER in p.metadata.finalizers and not pods.is_active(p))
        return JobPlan(status=status, remove_finalizers=stale, delete=tuple(left[:burst]))

    # 1. Counting: record newly finished pods, strip finalizers of recorded ones, flush those done.
    recorded = _Counts(set(status.uncounted_terminated_pods.succeeded), set(status.uncounted_terminated_pods.failed))
    new = _Counts()
    remove: list[core_pb2.Pod] = []
    fail_message = ""
    last_failure = 0.0
    completed = jobs.parse_indexes(status.completed_indexes, completions or 0) if indexed else set()
    room = MAX_UNCOUNTED - len(recorded.succeeded) - len(recorded.failed)
    # Finished pods past the room, recorded by a later sync. A succeeded one still holds its index (and its
    # completion) for planning, or a second pod would be started for work already done.
    waiting = _Counts()
    waiting_indexes: set[int] = set()
    for pod in owned:
        uid = pod.metadata.uid
        if jobs.TRACKING_FINALIZER not in pod.metadata.finalizers:
            continue
        if uid in recorded.succeeded or uid in recorded.failed:
            remove.append(pod)
            continue
        if is_succeeded(pod):
            index = index_of(pod) if indexed else None
            if index is not None and index >= (completions or 0):
                index = None
            if room <= 0:
                waiting.succeeded.add(uid)
                if index is not None:
                    waiting_indexes.add(index)
                continue
            room -= 1
            new.succeeded.add(uid)
            if index is not None:
                completed.add(index)
        elif is_failed(pod, has_failure_policy=has_policy):
            action, why = match_failure_policy(spec.pod_failure_policy, pod) if has_policy else (COUNT, "")
            if action == IGNORE:
                remove.append(pod)  # not counted, not retried against the backoff limit
                continue
            if room <= 0:
                waiting.failed.add(uid)
                continue
            room -= 1
            new.failed.add(uid)
            last_failure = max(last_failure, _finished_at(pod, now))
            if action == FAIL_JOB and not fail_message:
                fail_message = why
    flushed = _Counts({u for u in recorded.succeeded if u not in by_uid
                       or jobs.TRACKING_FINALIZER not in by_uid[u].metadata.finalizers},
                      {u for u in recorded.failed if u not in by_uid
                       or jobs.TRACKING_FINALIZER not in by_uid[u].metadata.finalizers})
    status.succeeded += len(flushed.succeeded)
    status.failed += len(flushed.failed)
    uncounted = status.uncounted_terminated_pods
    del uncounted.succeeded[:]
    del uncounted.failed[:]
    uncounted.succeeded.extend(sorted((recorded.succeeded - flushed.succeeded) | new.succeeded))
    uncounted.failed.extend(sorted((recorded.failed - flushed.failed) | new.failed))
    if not uncounted.succeeded and not uncounted.failed:
        status.ClearField("uncounted_terminated_pods")
    if indexed:
        status.completed_indexes = jobs.format_indexes(completed)
    succeeded = status.succeeded + len(uncounted.succeeded) + len(waiting.succeeded)
    failed = status.failed + len(uncounted.failed)
    done = completed | waiting_indexes
    settled = not uncounted.succeeded and not uncounted.failed and not waiting.succeeded and not waiting.failed

    active = [p for p in owned if pods.is_active(p)]
    terminating = [p for p in owned if pods.is_terminating(p) and not pods.is_terminal(p)]
    plan_create: list[int | None] = []
    plan_delete: list[core_pb2.Pod] = []
    requeue: float | None = None

    def requeue_at(at: float) -> None:
        nonlocal requeue
        delay = max(0.0, at - now) + 0.05
        requeue = delay if requeue is None else min(requeue, delay)

    suspended = bool(spec.suspend)

    # 2. Suspension.
    was = conditions.get(status.conditions, jobs.SUSPENDED)
    if suspended:
        if was is None or was.status != "True":
            _set_condition(status, jobs.SUSPENDED, "True", jobs.JOB_SUSPENDED, "Job suspended", now)
            events.append(("Normal", "Suspended", "Job suspended"))
        plan_delete.extend(active)
        status.ClearField("start_time")
    elif was is not None and was.status == "True":
        _set_condition(status, jobs.SUSPENDED, "False", jobs.JOB_RESUMED, "Job resumed", now)
        events.append(("Normal", "Resumed", "Job resumed"))
        status.start_time.CopyFrom(timestamp(now))
    if not suspended and not status.HasField("start_time"):
        status.start_time.CopyFrom(timestamp(now))

    # 3. Failure: a FailJob rule, the backoff limit, the deadline.
    failure: tuple[str, str] | None = None
    target = conditions.get(status.conditions, jobs.FAILURE_TARGET)
    if target is not None and target.status == "True":
        failure = (target.reason, target.message)  # decided already; waiting for its pods to stop and be counted
    elif not suspended:
        restarts = sum(cs.restart_count for p in active
                       for cs in (*p.status.init_container_statuses, *p.status.container_statuses))
        limit = spec.backoff_limit
        if fail_message:
            failure = (jobs.POD_FAILURE_POLICY, fail_message)
        elif failed > limit or (spec.template.spec.restart_policy == "OnFailure"
                                and (restarts > 0 if limit == 0 else restarts >= limit)):
            failure = (jobs.BACKOFF_LIMIT_EXCEEDED, "Job has reached the specified backoff limit")
        elif spec.HasField("active_deadline_seconds") and status.HasField("start_time"):
            deadline = seconds(status.start_time) + spec.active_deadline_seconds
            if now >= deadline:
                failure = (jobs.DEADLINE_EXCEEDED, "Job was active longer than specified deadline")
            else:
                requeue_at(deadline)
        if failure is not None:
            # Recorded at once, as Kubernetes' FailureTarget: a decision taken from pods seen now holds later.
            _set_condition(status, jobs.FAILURE_TARGET, "True", *failure, now)

    # 4. Success.
    complete = False
    if not suspended and failure is None:
        if indexed:
            complete = completions is not None and len(done) >= completions
        elif completions is not None:
            complete = succeeded >= completions
        else:
            complete = succeeded > 0 and not active

    # 5. Pods to create and delete.
    if failure is not None or complete:
        plan_delete.extend(active)
    elif not suspended:
        create, delete = _plan_pods(job, active, succeeded, done, indexed, completions)
        plan_delete.extend(delete)
        if create and backoff_until > now:
            requeue_at(backoff_until)
        else:
            plan_create.extend(create)
    plan_create = plan_create[:burst]
    plan_delete = plan_delete[:burst]

    # 6. Finishing waits until every finished pod is counted (and, failing, until its pods are stopped).
    if settled:
        if failure is not None and not active and not terminating:
            reason, message = failure
            _set_condition(status, jobs.FAILED, "True", reason, message, now)
            events.append(("Warning", reason, message))
        elif complete:
            _set_condition(status, jobs.COMPLETE, "True", jobs.COMPLETIONS_REACHED,
                           "Reached expected number of succeeded pods", now)
            status.completion_time.CopyFrom(timestamp(now))
            events.append(("Normal", "Completed", "Job completed"))

    deleting = {p.metadata.uid for p in plan_delete}
    status.active = sum(1 for p in active if p.metadata.uid not in deleting)
    status.ready = sum(1 for p in active if p.metadata.uid not in deleting and podstate.is_ready(p))
    status.terminating = len(terminating) + len(deleting)
    return JobPlan(status=status, remove_finalizers=tuple(remove), create=tuple(plan_create),
                   delete=tuple(plan_delete), requeue_after=requeue, new_failures=len(new.failed),
                   new_successes=len(new.succeeded), last_failure=last_failure, events=tuple(events))


def _plan_pods(job: batch_pb2.Job, active: list[core_pb2.Pod], succeeded: int, completed: set[int], indexed: bool,
               completions: int | None) -> tuple[list[int | None], list[core_pb2.Pod]]:
    """Pods to create (their indexes) and active pods to delete, toward `parallelism` running."""
    parallelism = job.spec.parallelism
    if not indexed:
        if completions is None:
            want = 0 if succeeded > 0 else parallelism
        else:
            want = max(0, min(parallelism, completions - succeeded))
        if len(active) < want:
            return [None] * (want - len(active)), []
        return [], podstate.deletion_order(active)[:len(active) - want]
    assert completions is not None
    delete: list[core_pb2.Pod] = []
    running: dict[int, core_pb2.Pod] = {}
    for p in podstate.deletion_order(active)[::-1]:  # the most valuable pod of an index is kept
        i = index_of(p)
        if i is None or i >= completions or i in completed or i in running:
            delete.append(p)
        else:
            running[i] = p
    want = max(0, min(parallelism, completions - len(completed)))
    if len(running) > want:
        extra = sorted(running, reverse=True)[:len(running) - want]
        delete.extend(running[i] for i in extra)
        return [], delete
    pending = [i for i in range(completions) if i not in completed and i not in running]
    return list(pending[:want - len(running)]), delete


def ttl_expires_at(job: batch_pb2.Job) -> float | None:
    """When a finished Job with ttlSecondsAfterFinished is deleted (None: never)."""
    if not job.spec.HasField("ttl_seconds_after_finished") or not jobs.is_finished(job):
        return None
    finished = [seconds(c.last_transition_time) for c in job.status.conditions
                if c.type in (jobs.COMPLETE, jobs.FAILED) and c.status == "True"]
    at = max(finished, default=0.0) or seconds(job.status.completion_time)
    return at + job.spec.ttl_seconds_after_finished if at > 0 else None


def pod_from_template(job: batch_pb2.Job, index: int | None, controller: object) -> core_pb2.Pod:
    """A new pod for `job`: `<job>-<random>` (Indexed: `<job>-<index>-<random>`), carrying the tracking finalizer;
    an Indexed pod gets its index as an annotation, a label, its hostname and JOB_COMPLETION_INDEX."""
    t = job.spec.template
    prefix = f"{job.metadata.name}-" if index is None else f"{job.metadata.name}-{index}-"
    pod = core_pb2.Pod(metadata={"generate_name": prefix, "namespace": job.metadata.namespace})
    pod.metadata.labels.update(t.metadata.labels)
    pod.metadata.annotations.update(t.metadata.annotations)
    pod.metadata.finalizers.extend([*t.metadata.finalizers, jobs.TRACKING_FINALIZER])
    pod.metadata.owner_references.add().CopyFrom(controller)  # type: ignore[arg-type]
    pod.spec.CopyFrom(t.spec)
    if index is not None:
        pod.metadata.annotations[jobs.COMPLETION_INDEX] = str(index)
        pod.metadata.labels[jobs.COMPLETION_INDEX] = str(index)
        if not pod.spec.hostname:
            pod.spec.hostname = f"{job.metadata.name}-{index}"
        ref = f"metadata.annotations['{jobs.COMPLETION_INDEX}']"
        for c in (*pod.spec.init_containers, *pod.spec.containers):
            if not any(e.name == jobs.COMPLETION_INDEX_ENV for e in c.env):
                env = c.env.add(name=jobs.COMPLETION_INDEX_ENV)
                env.value_from.field_ref.api_version = "v1"
                env.value_from.field_ref.field_path = ref
    return pod
