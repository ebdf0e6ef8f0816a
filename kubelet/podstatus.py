"""A pod's API status from its runtime state: a pure function.

`compute_pod_status` is the kubelet's generateAPIPodStatus + getPhase: each
container's state (waiting with a reason, running, terminated with its exit
code) and last state from the newest two attempts the runtime still holds,
restart counts from the attempt number, readiness and started from the
probes, the conditions, the phase, and the pod's addresses. What the
kubelet does not own (PodScheduled, other writers' conditions, the QoS
class, nominatedNodeName) is carried over from the previous status, because
the status stream replaces the whole status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from api import conditions, defaults
from api.pb import core_pb2
from api.pods import phase_is_terminal
from api.timestamps import whole_seconds
from kubelet.actions import Waiting, init_progress
from kubelet.observed import ContainerView, ObservedPod

OWN_CONDITIONS = ("Initialized", "ContainersReady", "Ready")
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"


@dataclass(frozen=True)
class Probed:
    """Probe outcomes by container id: readiness, and whether the startup probe passed."""

    ready: Mapping[str, bool] = field(default_factory=dict)
    started: Mapping[str, bool] = field(default_factory=dict)


def _ns_timestamp(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 1_000_000_000)


def _terminated(c: ContainerView, runtime: str) -> core_pb2.ContainerStateTerminated:
    reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    t = core_pb2.ContainerStateTerminated(exit_code=c.exit_code, reason=reason, message=c.message,
                                          container_id=f"{runtime}://{c.id}")
    if c.started_at:
        t.started_at.CopyFrom(_ns_timestamp(c.started_at))
    if c.finished_at:
        t.finished_at.CopyFrom(_ns_timestamp(c.finished_at))
    return t


def _previous_status(previous: core_pb2.PodStatus, name: str, *, init: bool) -> core_pb2.ContainerStatus | None:
    statuses = previous.init_container_statuses if init else previous.container_statuses
    return next((s for s in statuses if s.name == name), None)


def container_status(
    container: core_pb2.Container,
    observed: ObservedPod,
    *,
    runtime: str,
    waiting: Waiting | None,
    default_reason: str,
    probed: Probed,
    previous: core_pb2.ContainerStatus | None,
) -> core_pb2.ContainerStatus:
    """One container's status from its newest two attempts."""
    attempts = observed.of(container.name)
    latest = attempts[0] if attempts else None
    prior = attempts[1] if len(attempts) > 1 else None
    cs = core_pb2.ContainerStatus(name=container.name, image=container.image, started=False)
    if latest is None:
        reason = waiting or Waiting(default_reason, "")
        cs.state.waiting.reason, cs.state.waiting.message = reason.reason, reason.message
        if previous is not None:
            cs.restart_count = previous.restart_count
            cs.last_state.CopyFrom(previous.last_state)
        return cs
    cs.restart_count = latest.attempt
    cs.image_id = latest.image_ref
    cs.container_id = f"{runtime}://{latest.id}"
    if latest.running:
        if latest.started_at:
            cs.state.running.started_at.CopyFrom(_ns_timestamp(latest.started_at))
        else:
            cs.state.running.SetInParent()
        started = probed.started.get(latest.id, False) if container.HasField("startup_probe") else True
        ready = probed.ready.get(latest.id, False) if container.HasField("readiness_probe") else True
        cs.started, cs.ready = started, started and ready
        if prior is not None and prior.exited:
            cs.last_state.terminated.CopyFrom(_terminated(prior, runtime))
    elif latest.exited:
        if waiting is not None:
            # It is about to run again (or held back): waiting, with this exit as the last state.
            cs.state.waiting.reason, cs.state.waiting.message = waiting.reason, waiting.message
            cs.last_state.terminated.CopyFrom(_terminated(latest, runtime))
        else:
            cs.state.terminated.CopyFrom(_terminated(latest, runtime))
            if prior is not None and prior.exited:
                cs.last_state.terminated.CopyFrom(_terminated(prior, runtime))
    else:
        reason = waiting or Waiting(CONTAINER_CREATING, "")
        cs.state.waiting.reason, cs.state.waiting.message = reason.reason, reason.message
        if prior is not None and prior.exited:
            cs.last_state.terminated.CopyFrom(_terminated(prior, runtime))
    return cs


def _unknown_at_termination(cs: core_pb2.ContainerStatus) -> None:
    """A container that never ran in a pod that is over: terminated, as Kubernetes reports it."""
    if cs.state.HasField("waiting"):
        cs.state.ClearField("waiting")
        cs.state.terminated.exit_code = 137
        cs.state.terminated.reason = "ContainerStatusUnknown"
        cs.state.terminated.message = "The container could not be located when the pod was terminated"


def compute_phase(spec: core_pb2.PodSpec, init_statuses: list[core_pb2.ContainerStatus],
                  statuses: list[core_pb2.ContainerStatus], *, terminal: bool) -> str:
    """Kubernetes' getPhase. terminal: the pod is over (deleted and stopped, or finished)."""
    pending_init = failed_init = 0
    for cs in init_statuses:
        st = cs.state
        if st.HasField("running"):
            pending_init += 1
        elif st.HasField("terminated"):
            failed_init += st.terminated.exit_code != 0
        elif st.HasField("waiting"):
            if cs.last_state.HasField("terminated"):
                failed_init += cs.last_state.terminated.exit_code != 0
            else:
                pending_init += 1
        else:
            pending_init += 1
    running = waiting = stopped = succeeded_ = 0
    for cs in statuses:
        st = cs.state
        if st.HasField("running"):
            running += 1
        elif st.HasField("terminated"):
            stopped += 1
            succeeded_ += st.terminated.exit_code == 0
        elif cs.last_state.HasField("terminated"):
            stopped += 1
        else:
            waiting += 1
    if failed_init and spec.restart_policy == "Never":
        return "Failed"
    if terminal:
        if running == 0 and waiting == 0 and stopped > 0 and stopped == succeeded_ and not failed_init:
            return "Succeeded"
        return "Failed"
    if pending_init or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if spec.restart_policy in ("Always", ""):
            return "Running"
        if stopped == succeeded_:
            return "Succeeded"
        if spec.restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(previous: core_pb2.PodStatus, type_: str, ok: bool, reason: str, message: str,
               now: float) -> core_pb2.PodCondition:
    return conditions.carried(previous.conditions, core_pb2.PodCondition, type_, "True" if ok else "False", reason,
                              message, now=whole_seconds(now))


def compute_pod_status(
    pod: core_pb2.Pod,
    observed: ObservedPod,
    *,
    runtime: str,
    host_ip: str,
    now: float,
    waiting: Mapping[str, Waiting] | None = None,
    probed: Probed = Probed(),
    terminal: bool = False,
    reason: str = "",
    message: str = "",
    own: core_pb2.PodStatus | None = None,
) -> core_pb2.PodStatus:
    """The pod's whole status (the stream replaces what the API holds).

    waiting: container name -> why it is not running (a failed pull or start,
    back-off), from the last sync. terminal: the pod is over and its
    containers are stopped, so the phase is Succeeded or Failed. own: the
    status this kubelet last computed (the API's copy may lag it); what the
    kubelet owns carries over from it, the rest from the API's copy. A
    restarted kubelet has no `own`: it reports what it observes, so reasons
    others wrote while it was away are cleared.
    """
    spec, api = pod.spec, pod.status
    previous = own if own is not None else api
    terminal = terminal or phase_is_terminal(previous) or phase_is_terminal(api)
    # Nothing is about to run in a pod that is over.
    waiting = {} if terminal else (waiting or {})
    sandbox_id = observed.sandbox.id if observed.sandbox else ""
    init_done = init_progress(pod, observed, sandbox_id).done if sandbox_id else not spec.init_containers

    # The pod's reason and message are the kubelet's: the API's copy is kept only for a pod that is over.
    # One set while the node was away (the node-lifecycle controller's NodeLost) goes when the kubelet reports.
    said = own if own is not None else api if terminal else core_pb2.PodStatus()
    status = core_pb2.PodStatus(host_ip=host_ip, nominated_node_name=api.nominated_node_name,
                                qos_class=api.qos_class or defaults.qos_class(spec),
                                reason=reason or said.reason, message=message or said.message)
    inits = []
    for c in spec.init_containers:
        old = _previous_status(previous, c.name, init=True)
        cs = container_status(c, observed, runtime=runtime, waiting=waiting.get(c.name),
                              default_reason=POD_INITIALIZING, probed=probed, previous=old)
        if init_done and not observed.of(c.name):
            # Pruned after it succeeded: keep what was reported.
            if old is not None and old.state.HasField("terminated"):
                cs = old
            else:
                cs.ClearField("state")
                cs.state.terminated.reason, cs.state.terminated.exit_code = "Completed", 0
        inits.append(cs)
    apps = []
    for c in spec.containers:
        cs = container_status(c, observed, runtime=runtime, waiting=waiting.get(c.name),
                              default_reason=CONTAINER_CREATING if init_done else POD_INITIALIZING,
                              probed=probed, previous=_previous_status(previous, c.name, init=False))
        apps.append(cs)
    if terminal:
        for i, cs in enumerate(apps):
            old = _previous_status(previous, cs.name, init=False)
            if not observed.of(cs.name) and old is not None and old.state.HasField("terminated"):
                apps[i] = old  # the runtime lost it (a rebuilt node): keep how it ended
        for cs in (*inits, *apps):
            _unknown_at_termination(cs)
    status.init_container_statuses.extend(inits)
    status.container_statuses.extend(apps)

    phase = compute_phase(spec, inits, apps, terminal=terminal)
    sticky = next((p.phase for p in (previous, api) if phase_is_terminal(p)), "")
    status.phase = sticky or phase

    # Conditions: carry others' over, keep PodScheduled true, own the rest.
    for cond in api.conditions:
        if cond.type not in OWN_CONDITIONS:
            status.conditions.append(cond)
    if not any(c.type == "PodScheduled" for c in status.conditions):
        mine = next((c for c in previous.conditions if c.type == "PodScheduled"), None)
        status.conditions.append(mine if mine is not None else core_pb2.PodCondition(
            type="PodScheduled", status="True", last_transition_time=whole_seconds(now)))
    incomplete = [cs.name for cs in inits if not (cs.state.HasField("terminated")
                                                  and cs.state.terminated.exit_code == 0)]
    initialized = not incomplete or init_done
    status.conditions.append(_condition(
        previous, "Initialized", initialized, "" if initialized else "ContainersNotInitialized",
        "" if initialized else f"containers with incomplete status: [{' '.join(incomplete)}]", now))
    unready = [cs.name for cs in apps if not cs.ready]
    done = status.phase == "Succeeded"
    ready_reason = "PodCompleted" if done else "ContainersNotReady"
    ready_message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
    for type_ in ("ContainersReady", "Ready"):
        ok = not unready
        status.conditions.append(_condition(previous, type_, ok, "" if ok else ready_reason,
                                            "" if ok else ready_message, now))

    ip = ""
    if spec.host_network:
        ip = host_ip
    elif observed.sandbox is not None and observed.sandbox.ready:
        ip = observed.sandbox.ip
    if not ip and terminal:
        ip = previous.pod_ip
    if ip:
        status.pod_ip = ip
        status.pod_ips.add(ip=ip)
    if previous.HasField("start_time"):
        status.start_time.CopyFrom(previous.start_time)
    else:
        status.start_time.CopyFrom(whole_seconds(now))
    return status
