"""Chaos on three control-plane machines: the scenario table's entries, faults aimed at a leader, and how the
leaders are found (etcd's member list, the lease holders' daemon names)."""

from __future__ import annotations

import pytest

from chaos import plan as cp
from chaos.faults import ChaosError, etcd_leader_of, machine_of_daemon
from chaos.plan import Fault, PlanError, plan_scenario, plan_topology, validate_fault
from chaos.timeline import LeaseSample, seconds_to_lease_held

HA = plan_topology(("cp", "cp2", "cp3"), ("n1", "n2"), ("n1", "n2"))
ONE = plan_topology(("cp",), ("n1", "n2"), ("n1", "n2"))


@pytest.mark.parametrize(("name", "kind", "node", "component", "duration", "checks"), [
    pytest.param("control-plane-stop", cp.STOP_NODE, cp.SCHEDULER_LEADER, "", 15.0,
                 cp.Checks(min_success=0.95, api_writable_within=5.0), id="control-plane-stop"),
    pytest.param("etcd-leader-kill", cp.KILL, cp.ETCD_LEADER, "etcd", 0.0,
                 cp.Checks(min_success=0.95, api_writable_within=5.0), id="etcd-leader-kill"),
    pytest.param("control-plane-partition", cp.PARTITION, "cp3", "", 20.0,
                 cp.Checks(min_success=0.95, api_writable_within=5.0), id="control-plane-partition-minority-20s"),
    pytest.param("scheduler-leader-kill-rollout", cp.KILL, cp.SCHEDULER_LEADER, "scheduler", 0.0,
                 cp.Checks(min_success=0.95, rollout_completes=True), id="scheduler-leader-kill-rollout"),
])
def test_control_plane_scenarios_break_one_control_plane_machine(name: str, kind: str, node: str, component: str,
                                                                 duration: float, checks: cp.Checks) -> None:
    """Each control-plane scenario needs three machines and breaks one, for the time and with the checks it
    promises; the fault is undone before the run ends."""
    assert cp.SCENARIOS[name].control_planes == 3
    run = plan_scenario(name, HA)
    assert [(f.kind, f.node, f.component, f.duration) for f in run.faults] == [(kind, node, component, duration)]
    assert run.checks == checks
    assert all(f.at + f.duration < run.duration for f in run.faults)


@pytest.mark.parametrize(("pods", "duration"), [
    pytest.param(None, 140.0, id="default-300-pods"),
    pytest.param(300, 140.0, id="300-pods"),
    pytest.param(30, 32.0, id="30-pods"),
    pytest.param(1, 20.0, id="one-pod"),
    pytest.param(1000, 420.0, id="1000-pods"),
])
def test_the_leader_kill_lands_a_third_of_the_way_into_the_rollout(pods: int | None, duration: float) -> None:
    """scheduler-leader-kill-rollout rolls a Deployment of its own (300 pods unless told) and kills the scheduler
    holding the lease once a third of its pods are updated (not before 1 s in); the run lasts as long as the
    rollout takes at the lab's pace (2.5 pods/s) plus 10 s (and longer if the rollout is still going)."""
    run = plan_scenario("scheduler-leader-kill-rollout", HA, pods)
    assert run.rollout_pods == (pods or 300) and run.faults_at_rollout == pytest.approx(1 / 3)
    assert (run.rollout_at, run.faults[0].at, run.duration) == (10.0, 11.0, duration)


@pytest.mark.parametrize(("name", "pods", "message"), [
    pytest.param("scheduler-leader-kill-rollout", 0, r"--rollout-pods 0 is out of range \[1, 1000\]", id="zero"),
    pytest.param("scheduler-leader-kill-rollout", 1001, r"--rollout-pods 1001 is out of range", id="too-many"),
    pytest.param("control-plane-stop", 30, "--rollout-pods does not apply to scenario control-plane-stop",
                 id="no-rollout"),
])
def test_rollout_pods_is_refused_where_it_cannot_apply(name: str, pods: int, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_scenario(name, HA, pods)


def test_scheduler_kill_rollout_rolls_the_demo() -> None:
    """The one-control-plane scenario rolls the demo's Deployment: it has no size of its own to change."""
    assert plan_scenario("scheduler-kill-rollout", ONE).rollout_pods == 0
    with pytest.raises(PlanError, match=r"only to scheduler-leader-kill-rollout: it rolls a Deployment of its own"):
        plan_scenario("scheduler-kill-rollout", ONE, 30)


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n, s in cp.SCENARIOS.items() if s.control_planes == 3])
def test_a_control_plane_scenario_is_refused_on_one_control_plane(name: str) -> None:
    """On one control plane the error names what is missing and how to get it."""
    with pytest.raises(PlanError, match=r"needs 3 control-plane machines; the cluster has 1 \(`kubelite up "
                                        r"--control-planes 3`\)"):
        plan_scenario(name, ONE)


@pytest.mark.parametrize(("fault", "topo", "message"), [
    pytest.param(Fault(cp.STOP_NODE, cp.ETCD_LEADER, 1, 5), ONE, "needs several control-plane machines",
                 id="leader-on-one-control-plane"),
    pytest.param(Fault(cp.NETEM, cp.ETCD_LEADER, 1, 5, delay_ms=10), HA, "cannot be aimed at @etcd-leader",
                 id="netem-at-a-leader"),
    pytest.param(Fault(cp.KILL, cp.SCHEDULER_LEADER, 1, component="kubelet"), HA,
                 "no component 'kubelet' on @scheduler-leader", id="worker-component-on-a-leader"),
    pytest.param(Fault(cp.KILL, "cp4", 1, component="etcd"), HA, "no node 'cp4'", id="unknown-control-plane"),
])
def test_a_fault_aimed_wrongly_at_the_control_plane_is_refused(fault: Fault, topo: cp.Topology, message: str) -> None:
    """A leader needs several control planes and a fault that can hit a machine; the component must run there."""
    with pytest.raises(PlanError, match=message):
        validate_fault(fault, topo)


@pytest.mark.parametrize("fault", [
    pytest.param(Fault(cp.KILL, "cp2", 1, component="etcd"), id="kill-etcd-on-cp2"),
    pytest.param(Fault(cp.STOP_NODE, "cp3", 1, 10), id="stop-cp3"),
    pytest.param(Fault(cp.PAUSE, cp.CONTROLLER_MANAGER_LEADER, 1, 5, component="controller-manager"),
                 id="pause-the-controller-manager-leader"),
])
def test_faults_on_any_control_plane_machine_are_accepted(fault: Fault) -> None:
    """Every control-plane machine, by name or by what it leads, can be broken."""
    validate_fault(fault, HA)


@pytest.mark.parametrize(("members", "want"), [
    pytest.param([{"name": "cp", "leader": False, "healthy": True}, {"name": "cp2", "leader": True, "healthy": True},
                  {"name": "cp3", "leader": False, "healthy": True}], "cp2", id="one-leader"),
    pytest.param([{"name": "cp", "leader": True, "healthy": True}], "cp", id="single-member"),
])
def test_the_etcd_leader_is_read_from_the_member_list(members: list[dict], want: str) -> None:
    """The member marked leader names the machine."""
    assert etcd_leader_of(members) == want


@pytest.mark.parametrize("members", [
    pytest.param([{"name": "cp", "leader": False}, {"name": "cp2"}], id="none-during-an-election"),
    pytest.param([{"name": "cp", "leader": True, "healthy": True}, {"name": "cp2", "leader": True, "healthy": True}],
                 id="two"),
    # the others still name a leader that no longer answers: it is not there to be killed
    pytest.param([{"name": "cp", "leader": True, "healthy": False}, {"name": "cp2", "healthy": True}],
                 id="leader-gone"),
])
def test_no_single_etcd_leader_is_an_error(members: list[dict]) -> None:
    """Without exactly one leader nothing is killed."""
    with pytest.raises(ChaosError, match="expected one etcd leader"):
        etcd_leader_of(members)


@pytest.mark.parametrize(("daemon", "component", "want"), [
    pytest.param("scheduler", "scheduler", "cp", id="first-machine-by-bare-name"),
    pytest.param("scheduler-cp2", "scheduler", "cp2", id="second-machine"),
    pytest.param("controller-manager-cp3", "controller-manager", "cp3", id="controller-manager-on-cp3"),
])
def test_the_lease_holders_machine_from_its_daemon(daemon: str, component: str, want: str) -> None:
    """`scheduler` runs on cp, `scheduler-cp2` on cp2."""
    assert machine_of_daemon(daemon, component, ("cp", "cp2", "cp3")) == want


@pytest.mark.parametrize("daemon", [pytest.param("", id="free-lease"), pytest.param("scheduler-cp9", id="stranger")])
def test_a_lease_no_daemon_of_the_cluster_holds_is_an_error(daemon: str) -> None:
    """A free lease, or one held by a process that is not this cluster's, names no machine."""
    with pytest.raises(ChaosError, match="no scheduler of this cluster holds its lease"):
        machine_of_daemon(daemon, "scheduler", ("cp", "cp2", "cp3"))


@pytest.mark.parametrize(("leases", "want"), [
    pytest.param([LeaseSample(9.5, "scheduler", "a_1", 9.0, True), LeaseSample(10.5, "scheduler", "a_1", 9.0, False),
                  LeaseSample(14.0, "scheduler", "b_2", 13.8, True)], 4.0, id="taken-over-by-another"),
    pytest.param([LeaseSample(11.0, "scheduler", "a_1", 10.8, True)], 1.0, id="kept-through-the-fault"),
    pytest.param([LeaseSample(11.0, "scheduler", "a_1", 9.0, True)], None, id="not-renewed-since"),
    pytest.param([LeaseSample(11.0, "controller-manager", "a_1", 10.5, True)], None, id="another-component"),
    pytest.param([LeaseSample(31.0, "scheduler", "b_2", 30.5, True)], None, id="after-the-horizon"),
])
def test_seconds_to_lease_held(leases: list[LeaseSample], want: float | None) -> None:
    """From the fault until a live holder renewed the lease after it."""
    assert seconds_to_lease_held(leases, "scheduler", 10.0, 30.0) == want
