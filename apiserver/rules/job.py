"""Jobs: a selector generated from the Job's uid unless spec.manualSelector; the status is the controller's."""

from __future__ import annotations

from google.protobuf.message import Message

from api import jobs
from api.errors import FieldError
from api.pb import batch_pb2
from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "Job"
    orphans_dependents = True

    def prepare_for_create(self, obj: Message) -> None:
        job: batch_pb2.Job = obj  # type: ignore[assignment]
        job.ClearField("status")
        super().prepare_for_create(job)
        if not job.spec.manual_selector and not job.spec.HasField("selector"):
            jobs.generate_selector(job)

    def validate(self, obj: Message) -> list[FieldError]:
        job: batch_pb2.Job = obj  # type: ignore[assignment]
        errs = super().validate(job)
        if not job.spec.manual_selector and job.spec.selector != jobs.generated_selector(job.metadata.uid):
            errs.append(FieldError("spec.selector", "Invalid value", "`selector` not auto-generated (set "
                                                                     "spec.manualSelector: true to choose your own)"))
        return errs
