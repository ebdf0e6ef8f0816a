"""The Job vocabulary shared by the apiserver, the job and cronjob controllers and the CLI: labels, conditions,
reasons, the generated selector, and completed indexes written as ranges ("1,3-5,7")."""

from __future__ import annotations

from collections.abc import Iterable

from api import convert, timestamps
from api.pb import batch_pb2, meta_pb2

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
# The labels Kubernetes kept from before batch.kubernetes.io/: set too, as Kubernetes sets them.
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
# Pods carry it until the controller has counted them, so a pod deleted early is never lost from the counts.
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
# CronJob bookkeeping on the Jobs it makes.
CRONJOB_SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
CREATED_BY_MANUAL = "cronjob.kubernetes.io/instantiate"

# Condition types.
COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"

# Reasons, as Kubernetes spells them.
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"
POD_FAILURE_POLICY = "PodFailurePolicy"
COMPLETIONS_REACHED = "CompletionsReached"
JOB_SUSPENDED = "JobSuspended"
JOB_RESUMED = "JobResumed"


def generated_selector(uid: str) -> meta_pb2.LabelSelector:
    return meta_pb2.LabelSelector(match_labels={CONTROLLER_UID: uid})


def generate_selector(job: batch_pb2.Job) -> None:
    """Select the Job's pods by its uid, and label its pod template to match (Kubernetes' generateSelector)."""
    uid, name = job.metadata.uid, job.metadata.name
    labels = job.spec.template.metadata.labels
    labels[CONTROLLER_UID] = uid
    labels[JOB_NAME] = name
    labels[LEGACY_CONTROLLER_UID] = uid
    labels[LEGACY_JOB_NAME] = name
    job.spec.selector.CopyFrom(generated_selector(uid))


def condition_true(job: batch_pb2.Job, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in job.status.conditions)


def is_finished(job: batch_pb2.Job) -> bool:
    """Complete or Failed: no pod of it will run again."""
    return condition_true(job, COMPLETE) or condition_true(job, FAILED)


def format_indexes(indexes: Iterable[int]) -> str:
    """Sorted, distinct indexes as Kubernetes writes completedIndexes: "1,3-5,7"."""
    out: list[str] = []
    start = prev = None
    for i in sorted(set(indexes)):
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)


def parse_indexes(text: str, completions: int) -> set[int]:
    """The indexes in a completedIndexes text below `completions` (anything malformed is skipped)."""
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            continue
        out.update(i for i in range(max(0, lo), min(hi, completions - 1) + 1))
    return out


def job_name(cj: batch_pb2.CronJob, scheduled: float) -> str:
    """Kubernetes' name for the Job a CronJob makes for a scheduled time: <cronjob>-<minutes since the epoch>."""
    return f"{cj.metadata.name}-{int(scheduled) // 60}"


def job_from_template(cj: batch_pb2.CronJob, scheduled: float | None, controller: meta_pb2.OwnerReference, *,
                      name: str = "") -> batch_pb2.Job:
    """A Job from a CronJob's jobTemplate: one it scheduled (named for its time), or one made by hand (`name`,
    as `create job --from=cronjob/NAME`), controlled by the CronJob either way."""
    t = cj.spec.job_template
    job = batch_pb2.Job(metadata={"name": name or job_name(cj, scheduled or 0.0), "namespace": cj.metadata.namespace})
    job.metadata.labels.update(t.metadata.labels)
    job.metadata.annotations.update(t.metadata.annotations)
    if scheduled is not None:
        job.metadata.annotations[CRONJOB_SCHEDULED_TIMESTAMP] = convert.format_time(timestamps.timestamp(scheduled))
    else:
        job.metadata.annotations[CREATED_BY_MANUAL] = "manual"
    job.metadata.owner_references.add().CopyFrom(controller)
    job.spec.CopyFrom(t.spec)
    return job
