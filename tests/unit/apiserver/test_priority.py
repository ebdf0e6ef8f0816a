"""Priority admission and the PriorityClass rules: pods get their class's value, one default, system classes kept."""

from __future__ import annotations

import pytest

from api import kinds
from api.errors import ForbiddenError
from api.pb import core_pb2, scheduling_pb2
from apiserver import admission, rules
from apiserver.cache import WatchCache, object_key
from apiserver.rules import Config
from apiserver.rules import priorityclass as priorityclass_rules
from apiserver.storage.interface import Event


def _pc(name: str, value: int, *, default: bool = False, policy: str | None = "PreemptLowerPriority"
        ) -> scheduling_pb2.PriorityClass:
    pc = scheduling_pb2.PriorityClass(metadata={"name": name}, value=value, global_default=default)
    if policy is not None:
        pc.preemption_policy = policy
    return pc


def _pod(cls: str = "", *, priority: int | None = None, policy: str | None = None) -> core_pb2.Pod:
    pod = core_pb2.Pod(metadata={"name": "p", "namespace": "default"},
                       spec={"priority_class_name": cls, "containers": [{"name": "c", "image": "busybox"}]})
    if priority is not None:
        pod.spec.priority = priority
    if policy is not None:
        pod.spec.preemption_policy = policy
    return pod


HIGH = _pc("high-priority", 1000000)
NEVER = _pc("high-priority-nonpreempting", 1000000, policy="Never")
LOW_DEFAULT = _pc("low", 100, default=True)
SYSTEM = {pc.metadata.name: pc for pc in priorityclass_rules.system_priority_classes()}


@pytest.mark.parametrize(("classes", "pod", "want"), [
    pytest.param(SYSTEM, _pod("system-node-critical"), ("system-node-critical", 2000001000, "PreemptLowerPriority"),
                 id="system-class"),
    pytest.param({**SYSTEM, "high-priority": HIGH}, _pod("high-priority"),
                 ("high-priority", 1000000, "PreemptLowerPriority"), id="user-class"),
    pytest.param({"x": _pc("x", 1)}, _pod("high-priority-nonpreempting"), None, id="unknown-class"),
    pytest.param({"high-priority-nonpreempting": NEVER}, _pod("high-priority-nonpreempting"),
                 ("high-priority-nonpreempting", 1000000, "Never"), id="never-class-sets-policy"),
    pytest.param(SYSTEM, _pod(), ("", 0, "PreemptLowerPriority"), id="no-class-no-default"),
    pytest.param({"low": LOW_DEFAULT, "high-priority": HIGH}, _pod(), ("low", 100, "PreemptLowerPriority"),
                 id="no-class-gets-the-default"),
    pytest.param({"low": LOW_DEFAULT, "lower": _pc("lower", 50, default=True)}, _pod(),
                 ("lower", 50, "PreemptLowerPriority"), id="two-defaults-lowest-value-wins"),
    pytest.param({"low": LOW_DEFAULT, "high-priority": HIGH}, _pod("high-priority"),
                 ("high-priority", 1000000, "PreemptLowerPriority"), id="named-class-beats-default"),
    pytest.param({"old": _pc("old", 7, policy=None)}, _pod("old"), ("old", 7, None), id="class-without-policy"),
    pytest.param(SYSTEM, _pod(priority=0), ("", 0, "PreemptLowerPriority"), id="priority-equal-to-computed"),
    pytest.param({"high-priority": HIGH}, _pod("high-priority", priority=1000000, policy="PreemptLowerPriority"),
                 ("high-priority", 1000000, "PreemptLowerPriority"), id="same-values-given"),
])
def test_admit_pod_priority(classes: dict[str, scheduling_pb2.PriorityClass], pod: core_pb2.Pod,
                            want: tuple[str, int, str | None] | None) -> None:
    """A pod gets the priority and preemptionPolicy of its class, or of the global default, or 0."""
    if want is None:
        with pytest.raises(ForbiddenError, match=r'^pods "p" is forbidden: no PriorityClass with name '
                                                 r"high-priority-nonpreempting was found \(known: x\)$"):
            admission.admit_pod_priority(pod, classes)
        return
    admission.admit_pod_priority(pod, classes)
    policy = pod.spec.preemption_policy if pod.spec.HasField("preemption_policy") else None
    assert (pod.spec.priority_class_name, pod.spec.priority, policy) == want
    assert pod.spec.HasField("priority")


@pytest.mark.parametrize(("pod", "message"), [
    pytest.param(_pod(priority=5), r"the integer value of priority \(5\) must not be provided in pod spec; priority "
                                   r"admission controller computed 0 from the given PriorityClass name",
                 id="priority-without-class"),
    pytest.param(_pod("high-priority", priority=1), r"the integer value of priority \(1\) must not be provided",
                 id="priority-differs-from-class"),
    pytest.param(_pod("high-priority-nonpreempting", policy="PreemptLowerPriority"),
                 r"the string value of PreemptionPolicy \(PreemptLowerPriority\) must not be provided in pod spec; "
                 r"priority admission controller computed Never from the given PriorityClass name",
                 id="policy-differs-from-class"),
])
def test_admit_pod_priority_refuses_other_values(pod: core_pb2.Pod, message: str) -> None:
    """A priority or preemptionPolicy that differs from what the class gives is forbidden, as in Kubernetes."""
    with pytest.raises(ForbiddenError, match=message):
        admission.admit_pod_priority(pod, {"high-priority": HIGH, "high-priority-nonpreempting": NEVER})


def test_unknown_class_names_at_most_twenty_known_ones() -> None:
    """The error for an unknown class lists the known ones, cut short when there are many."""
    classes = {f"c{i:02}": _pc(f"c{i:02}", i) for i in range(25)}
    with pytest.raises(ForbiddenError) as err:
        admission.admit_pod_priority(_pod("gold"), classes)
    assert err.value.message.endswith("(known: " + ", ".join(f"c{i:02}" for i in range(20)) + ", ...)")


@pytest.mark.parametrize(("new", "old", "want"), [
    pytest.param(_pod("high-priority"), _pod("high-priority", priority=1000000, policy="Never"),
                 (1000000, "Never"), id="left-out-kept"),
    pytest.param(_pod(priority=3, policy="PreemptLowerPriority"), _pod(priority=1000000, policy="Never"),
                 (3, "PreemptLowerPriority"), id="given-kept-for-validation-to-judge"),
])
def test_keep_pod_priority(new: core_pb2.Pod, old: core_pb2.Pod, want: tuple[int, str]) -> None:
    """An update leaving out priority or preemptionPolicy keeps the stored values; given ones are left as given."""
    admission.keep_pod_priority(new, old)
    assert (new.spec.priority, new.spec.preemption_policy) == want


@pytest.mark.parametrize(("pc", "stored", "operation", "error"), [
    pytest.param(_pc("a", 1, default=True), [], admission.CREATE, None, id="first-default"),
    pytest.param(_pc("a", 1), [LOW_DEFAULT], admission.CREATE, None, id="not-a-default"),
    pytest.param(_pc("a", 1, default=True), [LOW_DEFAULT], admission.CREATE,
                 'priorityclasses.scheduling.k8s.io "a" is forbidden: PriorityClass low is already marked as default. '
                 "Only one default can exist", id="second-default"),
    pytest.param(LOW_DEFAULT, [LOW_DEFAULT], admission.UPDATE, None, id="the-default-updated"),
    pytest.param(_pc("a", 1, default=True), [_pc("a", 1), LOW_DEFAULT], admission.UPDATE,
                 "PriorityClass low is already marked as default", id="made-default-while-another-is"),
])
def test_check_one_default(pc: scheduling_pb2.PriorityClass, stored: list[scheduling_pb2.PriorityClass],
                           operation: str, error: str | None) -> None:
    """A class becomes the global default only while no other class is."""
    if error is None:
        admission.check_one_default(pc, stored, operation)
    else:
        with pytest.raises(ForbiddenError, match=error):
            admission.check_one_default(pc, stored, operation)


def _cache(*objs: scheduling_pb2.PriorityClass) -> WatchCache:
    cache = WatchCache(storage=None)  # type: ignore[arg-type]
    for rev, obj in enumerate(objs, start=2):
        key = object_key(kinds.of(obj), "", obj.metadata.name)
        cache._apply([Event("PUT", key, obj.SerializeToString(), rev, rev)], rev)
    return cache


def _attrs(operation: str, obj: object, old: object = None) -> admission.Attributes:
    kind = kinds.of(obj)  # type: ignore[arg-type]
    strategy = rules.build(Config())[kind.kind]
    return admission.Attributes(operation, kind, obj, strategy, old)  # type: ignore[arg-type]


async def test_plugins_read_the_stored_classes() -> None:
    """The chain resolves pods against the classes in the watch cache and keeps a second default out."""
    cache = _cache(*SYSTEM.values(), HIGH, LOW_DEFAULT)
    chain = admission.Chain([admission.Priority(cache, lambda resource: 0),
                             admission.PriorityClassDefault(cache, lambda resource: 0)])
    named, plain = _pod("high-priority"), _pod()
    await chain.admit(_attrs(admission.CREATE, named))
    await chain.admit(_attrs(admission.CREATE, plain))
    assert (named.spec.priority, plain.spec.priority_class_name, plain.spec.priority) == (1000000, "low", 100)
    updated = _pod("high-priority")
    await chain.admit(_attrs(admission.UPDATE, updated, named))
    assert updated.spec.priority == 1000000 and updated.spec.preemption_policy == "PreemptLowerPriority"
    with pytest.raises(ForbiddenError, match="PriorityClass low is already marked as default"):
        await chain.validate(_attrs(admission.CREATE, _pc("other", 5, default=True)))
    await chain.validate(_attrs(admission.CREATE, _pc("other", 5)))


@pytest.mark.parametrize(("name", "refused"), [
    pytest.param("system-cluster-critical", True, id="system-cluster-critical"),
    pytest.param("system-node-critical", True, id="system-node-critical"),
    pytest.param("high-priority", False, id="user-class"),
])
def test_system_classes_are_not_deleted(name: str, refused: bool) -> None:
    """The two system classes refuse deletion, as Kubernetes' registry does; users' classes go."""
    strategy = rules.build(Config())["PriorityClass"]
    obj = _pc(name, 1)
    if refused:
        with pytest.raises(ForbiddenError, match=f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: this is a '
                                                 f"system priority class and cannot be deleted"):
            strategy.check_delete(obj)
    else:
        strategy.check_delete(obj)


def test_system_classes() -> None:
    """The apiserver creates Kubernetes' two system classes with their values, neither the default."""
    got = {(pc.metadata.name, pc.value, pc.global_default) for pc in priorityclass_rules.system_priority_classes()}
    assert got == {("system-cluster-critical", 2000000000, False), ("system-node-critical", 2000001000, False)}
