"""compute_pod_status: a pod's API status from its runtime state, probes and waiting reasons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.pb import core_pb2
from kubelet.actions import Waiting
from kubelet.observed import ObservedPod
from kubelet.podstatus import Probed, compute_phase, compute_pod_status

from .podbuild import CREATED, EXITED, NOW, RUNNING, ctr, make_pod, observed, sandbox

S1 = sandbox("s1", 0, ip="10.244.1.7")


def status_of(pod: core_pb2.Pod, obs: ObservedPod, **kw: object) -> core_pb2.PodStatus:
    kw.setdefault("runtime", "containerd")
    kw.setdefault("host_ip", "192.168.1.10")
    kw.setdefault("now", NOW)
    return compute_pod_status(pod, obs, **kw)  # type: ignore[arg-type]


def cond(status: core_pb2.PodStatus, type_: str) -> core_pb2.PodCondition:
    return next(c for c in status.conditions if c.type == type_)


def test_running_pod() -> None:
    """Running containers give phase Running, Ready, the sandbox's IP, the node's IP and runtime container ids."""
    pod = make_pod("a", "b")
    s = status_of(pod, observed(ctr("a"), ctr("b"), sandboxes=(S1,)))
    assert s.phase == "Running"
    assert (s.pod_ip, [ip.ip for ip in s.pod_ips], s.host_ip) == ("10.244.1.7", ["10.244.1.7"], "192.168.1.10")
    assert [c.container_id for c in s.container_statuses] == ["containerd://a-0", "containerd://b-0"]
    assert all(c.ready and c.started and c.state.HasField("running") for c in s.container_statuses)
    assert {c.type: c.status for c in s.conditions} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    assert s.qos_class == "BestEffort" and s.start_time.seconds == int(NOW)


def test_readiness_and_startup_probes_gate_ready() -> None:
    """A container is ready only once started (startup probe) and ready (readiness probe)."""
    pod = make_pod("a")
    pod.spec.containers[0].readiness_probe.exec.command.append("true")
    pod.spec.containers[0].startup_probe.exec.command.append("true")
    obs = observed(ctr("a"), sandboxes=(S1,))
    s = status_of(pod, obs)
    cs = s.container_statuses[0]
    assert (cs.started, cs.ready) == (False, False)
    assert s.phase == "Running"
    assert cond(s, "Ready").status == "False"
    assert cond(s, "Ready").message == "containers with unready status: [a]"
    s = status_of(pod, obs, probed=Probed(ready={"a-0": True}, started={"a-0": True}))
    assert s.container_statuses[0].ready and cond(s, "Ready").status == "True"
    s = status_of(pod, obs, probed=Probed(ready={"a-0": True}, started={}))
    assert not s.container_statuses[0].ready, "readiness waits for the startup probe"


def test_crash_loop_shows_waiting_with_last_state() -> None:
    """An exited container held back shows waiting CrashLoopBackOff, its exit as lastState, and its restarts."""
    pod = make_pod("a")
    obs = observed(ctr("a", EXITED, attempt=3, exit_code=1, reason="Error"), ctr("a", EXITED, attempt=2, exit_code=1),
                   sandboxes=(S1,))
    s = status_of(pod, obs, waiting={"a": Waiting("CrashLoopBackOff", "back-off 40s restarting failed container")})
    cs = s.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert (cs.last_state.terminated.exit_code, cs.last_state.terminated.reason) == (1, "Error")
    assert cs.restart_count == 3
    assert s.phase == "Running", "restartPolicy Always keeps the pod running through restarts"


def test_restarted_container_has_previous_as_last_state() -> None:
    """After a restart the running container's lastState is the previous attempt's termination."""
    obs = observed(ctr("a", RUNNING, attempt=1), ctr("a", EXITED, attempt=0, exit_code=137, reason="OOMKilled"),
                   sandboxes=(S1,))
    cs = status_of(make_pod("a"), obs).container_statuses[0]
    assert cs.state.HasField("running") and cs.restart_count == 1
    assert cs.last_state.terminated.reason == "OOMKilled"


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        pytest.param("Never", (0, 0), "Succeeded", id="never-all-zero"),
        pytest.param("Never", (0, 1), "Failed", id="never-one-failed"),
        pytest.param("OnFailure", (0, 0), "Succeeded", id="onfailure-all-zero"),
        pytest.param("OnFailure", (0, 1), "Running", id="onfailure-restarting"),
        pytest.param("Always", (0, 0), "Running", id="always-restarting"),
    ],
)
def test_finished_phases(policy: str, codes: tuple[int, int], phase: str) -> None:
    """Exited containers give Succeeded or Failed per restartPolicy, as Kubernetes' getPhase."""
    pod = make_pod("a", "b", policy=policy)
    obs = observed(ctr("a", EXITED, exit_code=codes[0]), ctr("b", EXITED, exit_code=codes[1]), sandboxes=(S1,))
    s = status_of(pod, obs)
    assert s.phase == phase
    if phase == "Succeeded":
        assert cond(s, "Ready").reason == "PodCompleted"


def test_init_containers_pending() -> None:
    """While init containers run the pod is Pending, not Initialized, app containers wait PodInitializing."""
    pod = make_pod("a", init=("i1", "i2"))
    s = status_of(pod, observed(ctr("i1", EXITED), ctr("i2"), sandboxes=(S1,)))
    assert s.phase == "Pending"
    assert cond(s, "Initialized").status == "False"
    assert cond(s, "Initialized").message == "containers with incomplete status: [i2]"
    assert s.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert s.init_container_statuses[0].state.terminated.reason == "Completed"


def test_failed_init_under_never_fails_pod() -> None:
    """An init container that failed under restartPolicy Never fails the pod."""
    pod = make_pod("a", init=("i1",), policy="Never")
    s = status_of(pod, observed(ctr("i1", EXITED, exit_code=2), sandboxes=(S1,)))
    assert s.phase == "Failed"


def test_pruned_init_containers_reported_completed() -> None:
    """Init containers the runtime no longer holds, in a pod whose app containers run, are Completed."""
    pod = make_pod("a", init=("i1",))
    s = status_of(pod, observed(ctr("a"), sandboxes=(S1,)))
    assert s.init_container_statuses[0].state.terminated.reason == "Completed"
    assert cond(s, "Initialized").status == "True" and s.phase == "Running"


def test_waiting_reason_before_any_container() -> None:
    """A container the runtime never created shows the sync's reason (a failed pull) with its message."""
    s = status_of(make_pod("a"), observed(sandboxes=(S1,)),
                  waiting={"a": Waiting("ErrImagePull", 'Failed to pull image "x": not found')})
    assert (s.container_statuses[0].state.waiting.reason, s.phase) == ("ErrImagePull", "Pending")
    s = status_of(make_pod("a"), observed(sandboxes=(S1,)))
    assert s.container_statuses[0].state.waiting.reason == "ContainerCreating"
    created = status_of(make_pod("a"), observed(ctr("a", CREATED), sandboxes=(S1,)))
    assert created.container_statuses[0].state.waiting.reason == "ContainerCreating"


def test_terminal_pod_never_ran_containers() -> None:
    """When a pod is over, containers that never ran are terminated ContainerStatusUnknown and it Failed."""
    pod = make_pod("a", "b")
    s = status_of(pod, observed(ctr("a", EXITED, exit_code=143), sandboxes=(sandbox("s1", ready=False),)),
                  terminal=True)
    assert s.container_statuses[1].state.terminated.reason == "ContainerStatusUnknown"
    assert s.phase == "Failed"
    ok = status_of(make_pod("a"), observed(ctr("a", EXITED), sandboxes=(sandbox("s1", ready=False),)), terminal=True)
    assert ok.phase == "Succeeded"


def test_carries_over_what_kubelet_does_not_own() -> None:
    """PodScheduled, others' conditions, nominatedNodeName and qosClass come from the API; start time and
    transition times from the kubelet's own last status."""
    pod = make_pod("a")
    pod.status.qos_class = "Guaranteed"
    pod.status.nominated_node_name = "n9"
    pod.status.conditions.add(type="PodScheduled", status="True").last_transition_time.seconds = 100
    pod.status.conditions.add(type="DisruptionTarget", status="True", reason="EvictionByEvictionAPI")
    first = status_of(pod, observed(ctr("a"), sandboxes=(S1,)))
    later = status_of(pod, observed(ctr("a"), sandboxes=(S1,)), now=NOW + 50, own=first)
    assert later == first, "an unchanged pod computes the same status later"
    assert later.qos_class == "Guaranteed" and later.nominated_node_name == "n9"
    assert cond(later, "PodScheduled").last_transition_time.seconds == 100
    assert cond(later, "DisruptionTarget").reason == "EvictionByEvictionAPI"
    flipped = status_of(pod, observed(ctr("a", EXITED, exit_code=1), sandboxes=(S1,)), now=NOW + 60, own=first)
    assert cond(flipped, "Ready").last_transition_time.seconds == int(NOW + 60)
    assert flipped.start_time == first.start_time


@pytest.mark.parametrize(("own", "terminal", "expect"), [
    pytest.param(False, False, ("", ""), id="restarted-kubelet-clears-nodelost"),
    pytest.param(True, False, ("", ""), id="returning-node-clears-nodelost"),
    pytest.param(False, True, ("NodeLost", "Node n1 which was running pod a is unresponsive"),
                 id="finished-pod-keeps-its-reason"),
])
def test_reason_set_while_away(own: bool, terminal: bool, expect: tuple[str, str]) -> None:
    """The node-lifecycle controller's NodeLost is gone from the status the kubelet writes for a running pod,
    whether the kubelet restarted (no status of its own yet) or kept running while its node was away."""
    pod = make_pod("a")
    mine = status_of(pod, observed(ctr("a"), sandboxes=(S1,)))
    pod.status.CopyFrom(mine)
    pod.status.reason = "NodeLost"
    pod.status.message = "Node n1 which was running pod a is unresponsive"
    next(c for c in pod.status.conditions if c.type == "Ready").status = "False"
    s = status_of(pod, observed(ctr("a"), sandboxes=(S1,)), own=mine if own else None, terminal=terminal)
    assert (s.reason, s.message) == expect
    if not terminal:
        assert s.phase == "Running" and cond(s, "Ready").status == "True"


def test_terminal_phase_is_sticky_and_keeps_ip() -> None:
    """Once Succeeded or Failed the phase never changes, and the pod keeps its IP after its sandbox stopped."""
    pod = make_pod("a", policy="Never")
    done = status_of(pod, observed(ctr("a", EXITED, exit_code=1), sandboxes=(S1,)))
    assert done.phase == "Failed"
    after = status_of(pod, observed(ctr("a", EXITED, exit_code=1), sandboxes=(sandbox("s1", ready=False),)),
                      own=done)
    assert (after.phase, after.pod_ip) == ("Failed", "10.244.1.7")
    pod.status.phase = "Succeeded"
    assert status_of(pod, observed(ctr("a"), sandboxes=(S1,))).phase == "Succeeded"


def test_finished_pod_keeps_container_statuses_the_runtime_lost() -> None:
    """A finished pod whose containers the runtime no longer has (a rebuilt node) keeps how they ended."""
    pod = make_pod("a", policy="Never")
    done = status_of(pod, observed(ctr("a", EXITED, exit_code=0, reason="Completed"), sandboxes=(S1,)))
    assert done.phase == "Succeeded"
    pod.status.CopyFrom(done)
    again = status_of(pod, observed(), terminal=True)
    assert again.container_statuses[0] == done.container_statuses[0]
    assert again.phase == "Succeeded"


def test_host_network_pod_uses_host_ip() -> None:
    """A host-network pod's IP is the node's."""
    s = status_of(make_pod("a", host_network=True), observed(ctr("a"), sandboxes=(sandbox("s1", ip=""),)))
    assert s.pod_ip == "192.168.1.10"


def _cs(state: str, code: int = 0, last: bool = False) -> core_pb2.ContainerStatus:
    cs = core_pb2.ContainerStatus(name="x")
    if state == "running":
        cs.state.running.SetInParent()
    elif state == "terminated":
        cs.state.terminated.exit_code = code
    else:
        cs.state.waiting.reason = "X"
        if last:
            cs.last_state.terminated.exit_code = code
    return cs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["running", "terminated0", "terminated1", "waiting", "crashloop"]), min_size=1,
                max_size=4), st.sampled_from(["Always", "OnFailure", "Never"]), st.booleans())
def test_phase_properties(states: list[str], policy: str, terminal: bool) -> None:
    """getPhase: any waiting container keeps the pod Pending, a running one makes it Running, Always never
    finishes on its own, and a terminal pod is always Succeeded or Failed."""
    statuses = []
    for s in states:
        if s == "running":
            statuses.append(_cs("running"))
        elif s.startswith("terminated"):
            statuses.append(_cs("terminated", int(s[-1])))
        elif s == "crashloop":
            statuses.append(_cs("waiting", 1, last=True))
        else:
            statuses.append(_cs("waiting"))
    spec = core_pb2.PodSpec(restart_policy=policy)
    phase = compute_phase(spec, [], statuses, terminal=terminal)
    if terminal:
        assert phase in ("Succeeded", "Failed")
        assert (phase == "Succeeded") == all(s == "terminated0" for s in states)
    elif "waiting" in states:
        assert phase == "Pending"
    elif "running" in states or policy == "Always":
        assert phase == "Running"
    else:
        assert phase in ("Succeeded", "Failed", "Running")
