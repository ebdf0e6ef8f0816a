"""The scenario table, fault validation, and a soak's fault sequence as a function of its seed."""

from __future__ import annotations

import pytest

from chaos import plan as cp
from chaos.plan import Fault, PlanError, Topology, plan_scenario, plan_soak, plan_topology, validate_fault

TOPO = plan_topology(("cp",), ("n1", "n2", "n3"), ("n1", "n2"))


@pytest.mark.parametrize(("name", "kind", "node", "component"), [
    pytest.param("worker-stop", cp.STOP_NODE, "n2", "", id="worker-stop-breaks-a-worker-with-demo-pods"),
    pytest.param("worker-partition", cp.PARTITION, "n2", "", id="worker-partition"),
    pytest.param("containerd-kill", cp.KILL, "n2", "containerd", id="containerd-kill"),
    pytest.param("kubelet-kill", cp.KILL, "n2", "kubelet", id="kubelet-kill"),
    pytest.param("scheduler-kill-rollout", cp.KILL, "cp", "scheduler", id="scheduler-kill-during-rollout"),
    pytest.param("apiserver-kill", cp.KILL, "cp", "apiserver", id="apiserver-kill"),
    pytest.param("etcd-kill", cp.KILL, "cp", "etcd", id="etcd-kill"),
])
def test_each_scenario_breaks_one_thing_never_the_client_node(name: str, kind: str, node: str,
                                                              component: str) -> None:
    """A scenario's one fault hits the machine and component its name says, never the load client's node."""
    run = plan_scenario(name, TOPO)
    assert [(f.kind, f.node, f.component) for f in run.faults] == [(kind, node, component)]
    assert all(f.node != TOPO.client_node for f in run.faults)
    assert all(f.at + f.duration < run.duration for f in run.faults)


def test_worker_stop_promises_what_users_check() -> None:
    """worker-stop checks 95% success over a 30 s window with the fault and replacements within 10 s."""
    checks = plan_scenario("worker-stop", TOPO).checks
    assert (checks.min_success, checks.replacements_within) == (0.95, 10.0)


def test_a_victim_without_demo_pods_is_chosen_only_when_no_other_is_left() -> None:
    """With no demo pod beside the client's node, the last worker other than the client's is broken."""
    assert plan_scenario("worker-stop", plan_topology(("cp",), ("n1", "n2", "n3"), ("n1",))).faults[0].node == "n3"


@pytest.mark.parametrize(("name", "topo", "message"), [
    pytest.param("nosuch", TOPO, "no scenario 'nosuch' (scenarios: worker-stop,", id="unknown-scenario"),
    pytest.param("worker-stop", plan_topology(("cp",), ("n1",)), "needs a worker besides n1", id="one-worker"),
])
def test_a_scenario_the_cluster_cannot_run_is_refused_by_name(name: str, topo: Topology, message: str) -> None:
    """An unknown scenario or a cluster too small for it: one error naming what is wrong."""
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        plan_scenario(name, topo)


def test_a_scenario_needing_more_control_planes_is_refused() -> None:
    """A scenario that needs three control-plane machines says so on a cluster with one."""
    cp.SCENARIOS["cp-stop-test"] = cp.Scenario("cp-stop-test", "", lambda t: cp.RunPlan("x", (), 30.0),
                                                control_planes=3)
    try:
        with pytest.raises(PlanError, match="needs 3 control-plane machines; the cluster has 1"):
            plan_scenario("cp-stop-test", TOPO)
    finally:
        del cp.SCENARIOS["cp-stop-test"]


@pytest.mark.parametrize(("fault", "message"), [
    pytest.param(Fault("melt", "n2", 1, 5), "fault kind 'melt' is unknown", id="unknown-kind"),
    pytest.param(Fault(cp.STOP_NODE, "n9", 1, 5), "no node 'n9'", id="unknown-node"),
    pytest.param(Fault(cp.KILL, "n2", 1, component="apiserver"), "no component 'apiserver' on n2",
                 id="control-plane-component-on-a-worker"),
    pytest.param(Fault(cp.KILL, "cp", 1, component="kubelet"), "no component 'kubelet' on cp",
                 id="worker-component-on-the-control-plane"),
    pytest.param(Fault(cp.PARTITION, "n2", 1, 0), "duration 0s is out of range", id="timed-fault-without-time"),
    pytest.param(Fault(cp.PAUSE, "n2", 1, 500, component="kubelet"), "duration 500s", id="too-long"),
    pytest.param(Fault(cp.NETEM, "n2", 1, 5, loss_percent=150), "netem: delay", id="loss-over-100"),
    pytest.param(Fault(cp.FILL_DISK, "n2", 1, 5, level=1.0), "level 1.0 out of range", id="disk-full"),
])
def test_bad_faults_are_refused_naming_the_field(fault: Fault, message: str) -> None:
    """Each bad fault is refused before anything breaks, naming what is wrong."""
    with pytest.raises(PlanError, match=message):
        validate_fault(fault, TOPO)


def _sequence(seed: int, duration: float = 600.0, fault_set: str = "workers") -> list[tuple]:
    return [(f.at, f.kind, f.node, f.component, f.duration) for f in plan_soak(seed, duration, TOPO, fault_set).faults]


@pytest.mark.parametrize(("seed", "duration", "fault_set", "first"), [
    pytest.param(7, 60.0, "workers", [(10.0, "pause", "n3", "kubelet", 19.2)], id="seed-7-one-minute"),
    pytest.param(7, 120.0, "workers", [(10.0, "pause", "n3", "kubelet", 19.2),
                                       (40.7, "partition", "n2", "", 17.3), (66.7, "stop-node", "n2", "", 18.6)],
                 id="seed-7-two-minutes"),
    pytest.param(1, 60.0, "control-plane", [(10.0, "kill", "cp", "scheduler", 0.0)], id="seed-1-control-plane"),
])
def test_a_soak_sequence_is_a_pure_function_of_its_seed(seed: int, duration: float, fault_set: str,
                                                       first: list[tuple]) -> None:
    """The same seed, duration and topology give exactly this sequence, every time."""
    assert _sequence(seed, duration, fault_set) == first
    assert _sequence(seed, duration, fault_set) == first


def test_different_seeds_give_different_soaks() -> None:
    """Seeds 1..20 over 10 minutes give 20 different sequences."""
    assert len({tuple(_sequence(s)) for s in range(1, 21)}) == 20


@pytest.mark.parametrize("seed", range(30))
def test_a_soak_is_bounded_and_spares_the_client_node(seed: int) -> None:
    """Faults come one at a time, each valid, all undone SOAK_TAIL seconds before the end, none on the client's
    node; a longer run only adds faults after the shorter one's."""
    run = plan_soak(seed, 600.0, TOPO, "all")
    ends = [f.at + (f.duration or cp.SOAK_FAULT_SECONDS[1]) for f in run.faults]
    assert run.faults and run.seed == seed
    assert all(f.at >= cp.SOAK_WARMUP for f in run.faults)
    assert all(nxt.at > end for nxt, end in zip(run.faults[1:], ends, strict=False))
    assert ends[-1] + cp.SOAK_TAIL <= 600.0
    assert all(f.node != TOPO.client_node for f in run.faults)
    for f in run.faults:
        validate_fault(f, TOPO)
    longer = plan_soak(seed, 1200.0, TOPO, "all").faults
    assert longer[:len(run.faults)] == run.faults


@pytest.mark.parametrize(("duration", "fault_set", "message"), [
    pytest.param(600.0, "everything", "no fault set 'everything'", id="unknown-set"),
    pytest.param(20.0, "workers", "soak duration 20s is out of range", id="too-short"),
])
def test_a_soak_the_plan_cannot_make_is_refused(duration: float, fault_set: str, message: str) -> None:
    """An unknown fault set or a duration too short for one fault and its recovery: one error."""
    with pytest.raises(PlanError, match=message):
        plan_soak(1, duration, TOPO, fault_set)


@pytest.mark.parametrize(("without", "gone"), [
    pytest.param(("netem",), {"netem"}, id="a-kind"),
    pytest.param(("kubelet",), {"kill-kubelet", "pause-kubelet"}, id="a-component"),
    pytest.param(("kill",), {"kill-kubelet", "kill-proxy", "kill-containerd"}, id="every-kill"),
])
def test_a_soak_without_some_faults_never_draws_them(without: tuple[str, ...], gone: set[str]) -> None:
    """--without leaves a kind or a component out of the set; the rest is still drawn by seed."""
    labels = {(f.kind, f.component) for s in range(40) for f in plan_soak(s, 600.0, TOPO, "workers", without).faults}
    drawn = {f"{k}-{c}" if c else k for k, c in labels}
    assert drawn and not drawn & gone


def test_without_an_unknown_fault_is_refused() -> None:
    """A name that is no fault's kind or component is refused, listing the faults."""
    with pytest.raises(PlanError, match="--without 'fish': not a fault of any set"):
        plan_soak(1, 600.0, TOPO, "workers", ("fish",))
