"""A pod's eviction subresource: delete the pod unless its PodDisruptionBudget forbids it (Kubernetes' EvictionREST).

`plan_eviction` is pure: given the pod, the budgets of its namespace and the
time, it says whether the pod may go, and which budget (with one disruption
fewer allowed and the pod recorded in disruptedPods) must be written first.
`evict` carries that out: the budget is written with a compare-and-swap on
its revision, so two evictions racing for the last allowed disruption cannot
both win; then the pod is deleted (gracefully, as any delete).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from api import conditions, kinds, labels, timestamps
from api.errors import ConflictError, FieldError, ForbiddenError, InternalError, InvalidError, TooManyRequestsError
from api.pb import api_pb2, core_pb2, policy_pb2
from apiserver.registry import Registry

PODS = kinds.lookup("pods")
BUDGETS = kinds.lookup("poddisruptionbudgets")
# Evictions the disruption controller has not yet confirmed, per budget, before new ones are refused.
MAX_DISRUPTED_PODS = 2000
_RETRIES = 16

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
DISRUPTION_ALLOWED = "DisruptionAllowed"
INSUFFICIENT_PODS = "InsufficientPods"


@dataclass(frozen=True)
class EvictionPlan:
    """Delete the pod (after writing `budget`, when set)."""

    budget: policy_pb2.PodDisruptionBudget | None = None


def _ready(pod: core_pb2.Pod) -> bool:
    return conditions.is_true(pod.status.conditions, "Ready")


def matching_budgets(pod: core_pb2.Pod, budgets: list[policy_pb2.PodDisruptionBudget]
                     ) -> list[policy_pb2.PodDisruptionBudget]:
    """The budgets of the pod's namespace whose selector selects it (an empty selector selects every pod)."""
    out = []
    for b in budgets:
        if b.metadata.namespace != pod.metadata.namespace:
            continue
        selector = labels.from_label_selector(b.spec.selector if b.spec.HasField("selector") else None)
        if selector.matches(pod.metadata.labels):
            out.append(b)
    return out


def plan_eviction(pod: core_pb2.Pod, budgets: list[policy_pb2.PodDisruptionBudget], now: float) -> EvictionPlan:
    """Whether `pod` may be evicted now; raises the refusal (TooManyRequests while a budget forbids it)."""
    if pod.metadata.HasField("deletion_timestamp") or pod.status.phase in ("Succeeded", "Failed", "Pending"):
        return EvictionPlan()  # going already, finished, or never running: no budget counts it
    matching = matching_budgets(pod, budgets)
    if not matching:
        return EvictionPlan()
    if len(matching) > 1:
        raise InternalError("This pod has more than one PodDisruptionBudget, which the eviction subresource does "
                            "not support.")
    pdb = matching[0]
    st = pdb.status
    if not _ready(pod):
        policy = pdb.spec.unhealthy_pod_eviction_policy if pdb.spec.HasField("unhealthy_pod_eviction_policy") \
            else "IfHealthyBudget"
        # An unready pod does not count toward the budget: it may go while the budget is met without it.
        if policy == "AlwaysAllow" or (st.current_healthy >= st.desired_healthy and st.desired_healthy > 0):
            return EvictionPlan()
    name = pdb.metadata.name
    if st.observed_generation < pdb.metadata.generation:
        raise TooManyRequestsError(f"{VIOLATION} The disruption budget {name} is still being processed by the "
                                   f"server.")
    if st.disruptions_allowed < 0:
        raise ForbiddenError("pdb disruptions allowed is negative")
    if len(st.disrupted_pods) > MAX_DISRUPTED_PODS:
        raise ForbiddenError("DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if st.disruptions_allowed == 0:
        raise TooManyRequestsError(f"{VIOLATION} The disruption budget {name} needs {st.desired_healthy} healthy "
                                   f"pods and has {st.current_healthy} currently")
    new = policy_pb2.PodDisruptionBudget()
    new.CopyFrom(pdb)
    new.status.disruptions_allowed -= 1
    if new.status.disruptions_allowed == 0:
        conditions.set_(new.status.conditions, DISRUPTION_ALLOWED, "False", INSUFFICIENT_PODS, "",
                        now=timestamps.timestamp(now))
    new.status.disrupted_pods[pod.metadata.name].CopyFrom(timestamps.timestamp(now))
    return EvictionPlan(budget=new)


async def evict(reg: Registry, req: policy_pb2.Eviction) -> bytes:
    """Evict the pod `req` names; returns the pod as deleted (marked for deletion, or gone)."""
    namespace = req.metadata.namespace or "default"
    name = req.metadata.name
    opts = req.delete_options
    dry_run = list(opts.dry_run) == ["All"]
    if opts.dry_run and not dry_run:
        raise InvalidError([FieldError("deleteOptions.dryRun", "Unsupported value", 'supported values: "All"',
                                       list(opts.dry_run))])
    for _ in range(_RETRIES):
        entry = await reg.current(PODS, namespace, name)
        pod: core_pb2.Pod = entry.obj  # type: ignore[assignment]
        pre = opts.preconditions
        if pre.HasField("uid") and pre.uid != pod.metadata.uid:
            raise ConflictError(f"Precondition failed: UID in precondition: {pre.uid}, UID in object meta: "
                                f"{pod.metadata.uid}")
        if pre.HasField("resource_version") and pre.resource_version != pod.metadata.resource_version:
            raise ConflictError(f"Precondition failed: ResourceVersion in precondition: {pre.resource_version}, "
                                f"ResourceVersion in object meta: {pod.metadata.resource_version}")
        entries = {e.obj.metadata.name: e for e in reg.cache.store(BUDGETS).objects.values()  # type: ignore[attr-defined]
                   if e.obj.metadata.namespace == namespace}  # type: ignore[attr-defined]
        plan = plan_eviction(pod, [e.obj for e in entries.values()], timestamps.now())  # type: ignore[misc]
        if dry_run:
            return entry.item
        if plan.budget is not None:
            budget = plan.budget

            def write(current: Message, budget: policy_pb2.PodDisruptionBudget = budget) -> Message:
                return budget

            try:
                # On the very revision planned from: one more eviction or a controller write in between decides anew.
                await reg.update_status(BUDGETS, namespace, budget.metadata.name, write,
                                        want_rev=entries[budget.metadata.name].rev)
            except ConflictError:
                continue
        delete = api_pb2.DeleteRequest(resource="pods", namespace=namespace, name=name,
                                       preconditions=api_pb2.Preconditions(uid=pod.metadata.uid))
        if opts.HasField("grace_period_seconds"):
            delete.grace_period_seconds = opts.grace_period_seconds
        return await reg.delete(delete)
    raise TooManyRequestsError(f"{VIOLATION} The disruption budget is being changed by others; try again")
