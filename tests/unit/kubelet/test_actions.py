"""compute_pod_actions: the pure plan for bringing a pod's runtime state to its spec."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.pb import core_pb2
from kubelet import identity
from kubelet.actions import (
    CRASH_LOOP_BACK_OFF,
    PodActions,
    backoff_key,
    compute_pod_actions,
    format_duration,
    init_progress,
    should_restart,
)
from kubelet.backoff import Backoff
from kubelet.observed import ContainerView, ObservedPod, SandboxView

from .podbuild import CREATED, EXITED, NOW, RUNNING, UNKNOWN, ctr, make_pod, observed, sandbox

S1 = sandbox("s1", 0)


@dataclass(frozen=True)
class Want:
    """The fields of PodActions a case checks (None: not checked)."""

    kill_pod: bool = False
    create_sandbox: bool = False
    attempt: int | None = None
    next_init: str = ""
    start: tuple[str, ...] = ()
    kill: tuple[str, ...] = ()
    backing_off: tuple[str, ...] = ()


def check(actions: PodActions, want: Want) -> None:
    got = Want(
        kill_pod=actions.kill_pod, create_sandbox=actions.create_sandbox,
        attempt=actions.attempt if want.attempt is not None else None,
        next_init=actions.next_init_container, start=actions.containers_to_start,
        kill=tuple(k.id for k in actions.containers_to_kill), backing_off=tuple(actions.backing_off),
    )
    assert got == want


CASES = [
    pytest.param(make_pod("a", "b"), observed(), Want(create_sandbox=True, attempt=0, start=("a", "b")),
                 id="new-pod-creates-sandbox-and-starts-all"),
    pytest.param(make_pod("a", init=("i1", "i2")), observed(), Want(create_sandbox=True, attempt=0, next_init="i1"),
                 id="new-pod-with-init-starts-first-init-only"),
    pytest.param(make_pod("a"), observed(sandboxes=(sandbox("s1", 2, ready=False),)),
                 Want(create_sandbox=True, attempt=3, start=("a",)), id="dead-sandbox-recreated-with-next-attempt"),
    pytest.param(make_pod("a"), observed(ctr("a"), sandboxes=(sandbox("s1", 0, ip=""),)),
                 Want(kill_pod=True, create_sandbox=True, attempt=1, start=("a",)),
                 id="sandbox-without-ip-recreated"),
    pytest.param(make_pod("a", host_network=True), observed(ctr("a"), sandboxes=(sandbox("s1", 0, ip=""),)),
                 Want(), id="host-network-sandbox-needs-no-ip"),
    pytest.param(make_pod("a"), observed(ctr("a", sandbox_id="s2"), sandboxes=(sandbox("s2", 1), S1)),
                 Want(kill_pod=True, create_sandbox=True, attempt=2, start=("a",)),
                 id="two-ready-sandboxes-start-over"),
    pytest.param(make_pod("a", "b"), observed(ctr("a"), ctr("b"), sandboxes=(S1,)), Want(), id="all-running-idle"),
    pytest.param(make_pod("a", "b"), observed(ctr("a"), ctr("b", EXITED, exit_code=1), sandboxes=(S1,)),
                 Want(start=("b",)), id="always-restarts-failed"),
    pytest.param(make_pod("a", "b"), observed(ctr("a"), ctr("b", EXITED), sandboxes=(S1,)),
                 Want(start=("b",)), id="always-restarts-succeeded"),
    pytest.param(make_pod("a", "b", policy="OnFailure"), observed(ctr("a"), ctr("b", EXITED), sandboxes=(S1,)),
                 Want(), id="onfailure-keeps-succeeded-stopped"),
    pytest.param(make_pod("a", "b", policy="OnFailure"),
                 observed(ctr("a"), ctr("b", EXITED, exit_code=2), sandboxes=(S1,)),
                 Want(start=("b",)), id="onfailure-restarts-failed"),
    pytest.param(make_pod("a", policy="OnFailure"), observed(ctr("a", EXITED), sandboxes=(S1,)),
                 Want(kill_pod=True), id="onfailure-all-succeeded-stops-sandbox"),
    pytest.param(make_pod("a", "b", policy="Never"),
                 observed(ctr("a", EXITED, exit_code=1), ctr("b", EXITED), sandboxes=(S1,)),
                 Want(kill_pod=True), id="never-all-exited-stops-sandbox"),
    pytest.param(make_pod("a", policy="Never"), observed(ctr("a", EXITED), sandboxes=(sandbox("s1", 0, ready=False),)),
                 Want(), id="never-finished-pod-not-recreated"),
    pytest.param(make_pod("a", policy="OnFailure"),
                 observed(ctr("a", EXITED), sandboxes=(sandbox("s1", 0, ready=False),)),
                 Want(), id="onfailure-finished-pod-not-recreated"),
    pytest.param(make_pod("a", "b"), observed(ctr("a", CREATED), ctr("b"), sandboxes=(S1,)),
                 Want(start=("a",)), id="created-never-started-is-started"),
    pytest.param(make_pod("a", policy="Never"), observed(ctr("a", CREATED), sandboxes=(S1,)),
                 Want(start=("a",)), id="never-still-starts-created"),
    pytest.param(make_pod("a", "b"), observed(ctr("a", UNKNOWN), ctr("b"), sandboxes=(S1,)),
                 Want(start=("a",), kill=("a-0",)), id="unknown-killed-and-restarted"),
    pytest.param(make_pod("a", init=("i1", "i2")), observed(ctr("i1"), sandboxes=(S1,)),
                 Want(), id="init-running-waits"),
    pytest.param(make_pod("a", init=("i1", "i2")), observed(ctr("i1", EXITED), sandboxes=(S1,)),
                 Want(next_init="i2"), id="init-succeeded-next-init"),
    pytest.param(make_pod("a", init=("i1", "i2")), observed(ctr("i1", EXITED), ctr("i2", EXITED), sandboxes=(S1,)),
                 Want(start=("a",)), id="inits-done-start-app"),
    pytest.param(make_pod("a", init=("i1",), policy="Never"),
                 observed(ctr("i1", EXITED, exit_code=1), sandboxes=(S1,)),
                 Want(kill_pod=True), id="init-failed-never-fails-pod"),
    pytest.param(make_pod("a", init=("i1",)), observed(ctr("i1", EXITED, exit_code=1), sandboxes=(S1,)),
                 Want(next_init="i1"), id="init-failed-always-restarts-it"),
    pytest.param(make_pod("a", init=("i1",)), observed(ctr("a"), sandboxes=(S1,)),
                 Want(), id="app-container-present-means-init-done"),
    pytest.param(make_pod("a", init=("i1",)),
                 observed(ctr("i1", EXITED, sandbox_id="s0"),
                          sandboxes=(sandbox("s1", 1), sandbox("s0", 0, ready=False))),
                 Want(next_init="i1"), id="init-from-old-sandbox-does-not-count"),
    pytest.param(make_pod("a"), observed(ctr("a", sandbox_id="s0", id_="old"), sandboxes=(
                 sandbox("s1", 1), sandbox("s0", 0, ready=False))),
                 Want(kill=("old",), start=("a",)), id="container-outside-current-sandbox-moved"),
]


@pytest.mark.parametrize(("pod", "obs", "want"), CASES)
def test_actions_table(pod: core_pb2.Pod, obs: ObservedPod, want: Want) -> None:
    """Each runtime state leads to the plan the kubelet's rules give."""
    check(compute_pod_actions(pod, obs, backoff=Backoff(), now=NOW), want)


@pytest.mark.parametrize(("policy", "restart"), [("Always", True), ("OnFailure", True), ("Never", False)])
def test_liveness_failure_kills_and_restarts_per_policy(policy: str, restart: bool) -> None:
    """A container whose liveness probe failed is killed, and restarted unless restartPolicy is Never."""
    pod = make_pod("a", "b", policy=policy)
    obs = observed(ctr("a"), ctr("b"), sandboxes=(S1,))
    actions = compute_pod_actions(pod, obs, backoff=Backoff(), now=NOW,
                                  unhealthy={"a-0": "Container a failed liveness probe"})
    assert [k.id for k in actions.containers_to_kill] == ["a-0"]
    assert actions.containers_to_kill[0].message.startswith("Container a failed liveness probe")
    assert actions.containers_to_start == (("a",) if restart else ())
    assert not actions.kill_pod


def test_liveness_failure_of_only_container_under_never_stops_pod() -> None:
    """Under Never, killing the last running container leaves nothing to run, so the pod stops."""
    actions = compute_pod_actions(make_pod("a", policy="Never"), observed(ctr("a"), sandboxes=(S1,)),
                                  backoff=Backoff(), now=NOW, unhealthy={"a-0": "Container a failed liveness probe"})
    assert actions.kill_pod and not actions.containers_to_start


def test_changed_spec_restarts_container() -> None:
    """A running container whose spec hash differs (a new image) is killed and started again."""
    pod = make_pod("a")
    old = ctr("a", hash_="0" * 16)
    actions = compute_pod_actions(pod, observed(old, sandboxes=(S1,)), backoff=Backoff(), now=NOW)
    assert [k.id for k in actions.containers_to_kill] == ["a-0"]
    assert actions.containers_to_start == ("a",)
    same = ctr("a", hash_=identity.container_hash(pod.spec.containers[0]))
    assert compute_pod_actions(pod, observed(same, sandboxes=(S1,)), backoff=Backoff(), now=NOW).idle


def test_crash_loop_back_off_holds_restart() -> None:
    """An exited container in back-off waits with CrashLoopBackOff, and the plan says when to look again."""
    pod = make_pod("a", "b")
    backoff = Backoff(initial=10, max=300)
    backoff.next(backoff_key(pod, pod.spec.containers[1]), NOW - 30)
    obs = observed(ctr("a"), ctr("b", EXITED, exit_code=1, attempt=3, finished=NOW - 4), sandboxes=(S1,))
    actions = compute_pod_actions(pod, obs, backoff=backoff, now=NOW)
    assert actions.containers_to_start == ()
    assert actions.backing_off["b"].reason == CRASH_LOOP_BACK_OFF
    assert actions.backing_off["b"].message == "back-off 10s restarting failed container=b pod=web_default(u1)"
    assert actions.requeue_after == pytest.approx(6)
    assert not actions.kill_pod, "a container in back-off keeps the pod's sandbox"
    later = compute_pod_actions(pod, obs, backoff=backoff, now=NOW + 7)
    assert later.containers_to_start == ("b",) and later.restarts == {"b": NOW - 4}


def test_back_off_alone_keeps_sandbox() -> None:
    """With its only container in back-off, the pod is not stopped."""
    pod = make_pod("a")
    backoff = Backoff()
    backoff.next(backoff_key(pod, pod.spec.containers[0]), NOW - 1)
    actions = compute_pod_actions(pod, observed(ctr("a", EXITED, exit_code=1, finished=NOW - 1), sandboxes=(S1,)),
                                  backoff=backoff, now=NOW)
    assert actions.idle and "a" in actions.backing_off


@pytest.mark.parametrize(
    ("policy", "latest", "restart"),
    [
        pytest.param("Never", None, True, id="never-ran"),
        pytest.param("Never", ctr("a", EXITED, exit_code=1), False, id="never-exited"),
        pytest.param("OnFailure", ctr("a", EXITED), False, id="onfailure-success"),
        pytest.param("OnFailure", ctr("a", EXITED, exit_code=137), True, id="onfailure-killed"),
        pytest.param("Always", ctr("a", EXITED), True, id="always-success"),
        pytest.param("Always", ctr("a", RUNNING), False, id="running"),
        pytest.param("Never", ctr("a", CREATED), True, id="created"),
    ],
)
def test_should_restart(policy: str, latest: ContainerView | None, restart: bool) -> None:
    """Restart decisions follow restartPolicy and the exit code."""
    assert should_restart(policy, latest) is restart


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (0.5, "500ms")])
def test_format_duration(seconds: float, text: str) -> None:
    """Durations in messages read as Go prints them."""
    assert format_duration(seconds) == text


# ---------------------------------------------------------------- properties

STATES = st.sampled_from([RUNNING, EXITED, CREATED, UNKNOWN])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[core_pb2.Pod, ObservedPod, dict[str, str]]:
    apps = [f"c{i}" for i in range(draw(st.integers(1, 3)))]
    inits = [f"i{i}" for i in range(draw(st.integers(0, 2)))]
    pod = make_pod(*apps, init=tuple(inits), policy=draw(st.sampled_from(["Always", "OnFailure", "Never"])),
                   host_network=draw(st.booleans()))
    n_sandboxes = draw(st.integers(0, 2))
    sandboxes = tuple(
        SandboxView(f"s{a}", a, draw(st.booleans()), a + 1, draw(st.sampled_from(["", "10.0.0.9"])))
        for a in range(n_sandboxes)
    )
    views: list[ContainerView] = []
    for name in inits + apps:
        count = draw(st.integers(0, 3)) if sandboxes else 0
        for attempt in range(count):
            sb = draw(st.sampled_from(sandboxes))
            state = draw(STATES)
            views.append(ctr(name, state, attempt=attempt, sandbox_id=sb.id, exit_code=draw(st.sampled_from([0, 1])),
                             finished=NOW - draw(st.integers(0, 100))))
    running = [v.id for v in views if v.running]
    unhealthy = {cid: "Container failed liveness probe" for cid in running if draw(st.booleans())}
    return pod, observed(*views, sandboxes=sandboxes), unhealthy


@settings(max_examples=400, deadline=None)
@given(scenarios(), st.booleans())
def test_actions_invariants(case: tuple[core_pb2.Pod, ObservedPod, dict[str, str]], backed_off: bool) -> None:
    """Whatever the runtime holds, the plan is coherent: it starts only spec containers, never a running
    one it does not kill, never both waits and starts one container, runs init before app containers,
    and never starts again what restartPolicy Never let finish."""
    pod, obs, unhealthy = case
    backoff = Backoff()
    if backed_off:
        for c in (*pod.spec.init_containers, *pod.spec.containers):
            backoff.next(backoff_key(pod, c), NOW - 1)
    a = compute_pod_actions(pod, obs, backoff=backoff, now=NOW, unhealthy=unhealthy)
    app_names = {c.name for c in pod.spec.containers}
    init_names = [c.name for c in pod.spec.init_containers]
    killed = {k.id for k in a.containers_to_kill}
    assert set(a.containers_to_start) <= app_names
    assert a.next_init_container in ("", *init_names)
    assert not (a.next_init_container and a.containers_to_start), "init containers run before app containers"
    assert not set(a.containers_to_start) & set(a.backing_off)
    assert len(set(a.containers_to_start)) == len(a.containers_to_start)
    if a.kill_pod and not a.create_sandbox:
        assert not a.containers_to_start and not a.next_init_container
    if a.create_sandbox:
        assert not a.containers_to_kill, "killing the pod covers every container"
    for name in a.containers_to_start:
        latest = obs.latest(name)
        if latest is not None and latest.running:
            assert latest.id in killed or a.kill_pod, "a running container is only started again once killed"
        if pod.spec.restart_policy == "Never" and latest is not None and latest.exited and not a.create_sandbox:
            pytest.fail("restartPolicy Never started an exited container again")
    for kill in a.containers_to_kill:
        assert any(c.id == kill.id and c.state in (RUNNING, UNKNOWN) for c in obs.containers)
    if a.requeue_after is not None:
        assert a.backing_off and 0 <= a.requeue_after <= backoff.max


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2), st.sampled_from(["Always", "OnFailure", "Never"]))
def test_steady_state_is_idle(apps: int, inits: int, policy: str) -> None:
    """A pod whose init containers succeeded and whose containers all run in one ready sandbox needs nothing."""
    pod = make_pod(*(f"c{i}" for i in range(apps)), init=tuple(f"i{i}" for i in range(inits)), policy=policy)
    views = [ctr(c.name, EXITED) for c in pod.spec.init_containers]
    views += [ctr(c.name, RUNNING, hash_=identity.container_hash(c)) for c in pod.spec.containers]
    a = compute_pod_actions(pod, observed(*views, sandboxes=(S1,)), backoff=Backoff(), now=NOW)
    assert a.idle and not a.backing_off


def test_init_progress_counts_only_current_sandbox() -> None:
    """Init containers that succeeded in an earlier sandbox run again in a new one."""
    pod = make_pod("a", init=("i1",))
    obs = observed(ctr("i1", EXITED, sandbox_id="old"), sandboxes=(sandbox("new", 1),))
    assert init_progress(pod, obs, "new").next == "i1"
    assert init_progress(pod, obs, "old").done


def test_sandbox_fields_unused_when_creating() -> None:
    """A plan that creates a sandbox carries the new attempt; one that keeps it names the sandbox."""
    keep = compute_pod_actions(make_pod("a"), observed(ctr("a"), sandboxes=(sandbox("s7", 7),)),
                               backoff=Backoff(), now=NOW)
    assert (keep.sandbox_id, keep.attempt, keep.create_sandbox) == ("s7", 7, False)
    fresh = compute_pod_actions(make_pod("a"), ObservedPod("u1", (SandboxView("s7", 7, False, 1),)),
                                backoff=Backoff(), now=NOW)
    assert (fresh.attempt, fresh.create_sandbox) == (8, True)
