"""What a chaos run does and when: faults, the scenario table, and a soak's fault sequence from its seed.

Pure: nothing here touches the cluster. A run's plan is a function of the scenario (or seed) and the
cluster's topology, so the same seed on the same cluster shape always gives the same faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# Fault kinds. Timed ones last `duration` seconds and are then undone; a kill is over when the process is dead
# (the lab's supervisor, like systemd on a VM, starts it again).
STOP_NODE = "stop-node"
PARTITION = "partition"
KILL = "kill"
PAUSE = "pause"
NETEM = "netem"
FILL_DISK = "fill-disk"
KINDS = (STOP_NODE, PARTITION, KILL, PAUSE, NETEM, FILL_DISK)

# Components by where they run: one per control-plane machine, one per worker.
CONTROL_PLANE_COMPONENTS = ("etcd", "apiserver", "scheduler", "controller-manager")
NODE_COMPONENTS = ("kubelet", "proxy", "containerd")
COMPONENTS = CONTROL_PLANE_COMPONENTS + NODE_COMPONENTS

# Machines named by their role in the control plane, found when the fault starts (who leads changes).
ETCD_LEADER = "@etcd-leader"
SCHEDULER_LEADER = "@scheduler-leader"
CONTROLLER_MANAGER_LEADER = "@controller-manager-leader"
LEADERS = (ETCD_LEADER, SCHEDULER_LEADER, CONTROLLER_MANAGER_LEADER)

MAX_FAULT_SECONDS = 120.0
ROLLOUT_PODS = 300  # the leader-kill rollout's size, as the scenario promises
MAX_ROLLOUT_PODS = 1000
ROLLOUT_PODS_PER_SECOND = 2.5  # pods replaced per second in a rollout on a three-node lab (300 in 115–165 s here)
MAX_RUN_SECONDS = 24 * 3600.0


class PlanError(ValueError):
    """A scenario, fault set or soak the cluster cannot run."""


@dataclass(frozen=True)
class Topology:
    """The machines a run can break: control-plane machines, workers, and the worker the load client runs on
    (never broken, so what the client sees is the Service, not its own machine)."""

    control_planes: tuple[str, ...]
    workers: tuple[str, ...]
    client_node: str
    workload_nodes: tuple[str, ...] = ()  # the workers that run a pod of the demo Deployment when the run starts

    @property
    def victims(self) -> tuple[str, ...]:
        return tuple(w for w in self.workers if w != self.client_node)


def plan_topology(control_planes: tuple[str, ...], workers: tuple[str, ...],
                  workload_nodes: tuple[str, ...] = ()) -> Topology:
    """The load client runs on the first worker; the others may be broken."""
    if not workers:
        raise PlanError("a chaos run needs at least one worker (for the load client)")
    return Topology(control_planes, workers, workers[0], tuple(n for n in workers if n in workload_nodes))


@dataclass(frozen=True)
class Fault:
    kind: str
    node: str
    at: float  # seconds after the run starts
    duration: float = 0.0  # how long a timed fault lasts before it is undone
    component: str = ""  # kill, pause
    delay_ms: int = 0  # netem
    loss_percent: float = 0.0  # netem
    level: float = 0.0  # fill-disk: the fraction of the disk to fill up to

    @property
    def label(self) -> str:
        what = {
            STOP_NODE: f"stop {self.node}",
            PARTITION: f"partition {self.node}",
            KILL: f"kill {self.component} on {self.node}",
            PAUSE: f"pause {self.component} on {self.node}",
            NETEM: f"netem {self.node} +{self.delay_ms}ms {self.loss_percent:g}% loss",
            FILL_DISK: f"fill {self.node}'s disk to {self.level:.0%}",
        }
        return what.get(self.kind, self.kind)

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "node": self.node, "at": self.at, "duration": self.duration,
                "component": self.component, "delay_ms": self.delay_ms, "loss_percent": self.loss_percent,
                "level": self.level, "label": self.label}


def validate_fault(f: Fault, topo: Topology) -> None:
    """One line naming what is wrong, before anything is broken."""
    nodes = (*topo.control_planes, *topo.workers)
    if f.kind not in KINDS:
        raise PlanError(f"fault kind {f.kind!r} is unknown (kinds: {', '.join(KINDS)})")
    if f.node in LEADERS:
        if len(topo.control_planes) < 2:
            raise PlanError(f"{f.kind}: {f.node} needs several control-plane machines; the cluster has "
                            f"{len(topo.control_planes)}")
        if f.kind not in (STOP_NODE, PARTITION, KILL, PAUSE):
            raise PlanError(f"{f.kind}: cannot be aimed at {f.node}")
    elif f.node not in nodes:
        raise PlanError(f"{f.kind}: no node {f.node!r} (nodes: {', '.join(nodes)})")
    if f.kind in (KILL, PAUSE):
        on_cp = f.node in LEADERS or f.node in topo.control_planes
        here = CONTROL_PLANE_COMPONENTS if on_cp else NODE_COMPONENTS
        if f.component not in here:
            raise PlanError(f"{f.kind}: no component {f.component!r} on {f.node} (components: {', '.join(here)})")
    if f.kind != KILL and not 0 < f.duration <= MAX_FAULT_SECONDS:
        raise PlanError(f"{f.kind}: duration {f.duration:g}s is out of range (0, {MAX_FAULT_SECONDS:g}]")
    if f.kind == NETEM and not (0 <= f.delay_ms <= 5000 and 0 <= f.loss_percent <= 100):
        raise PlanError(f"netem: delay {f.delay_ms}ms or loss {f.loss_percent}% out of range (0-5000 ms, 0-100%)")
    if f.kind == FILL_DISK and not 0 < f.level < 1:
        raise PlanError(f"fill-disk: level {f.level} out of range (0, 1)")
    if f.at < 0:
        raise PlanError(f"{f.kind}: start {f.at}s is negative")


@dataclass(frozen=True)
class Checks:
    """What a scenario promises, checked on its report."""

    min_success: float | None = None  # over the worst 30 s window containing a fault
    replacements_within: float | None = None  # seconds from the fault to every replica Ready off the lost node
    api_writable_within: float | None = None
    pods_kept: bool = False  # the pods that ran before the fault run after it (same uids, no restart)
    rollout_completes: bool = False


@dataclass(frozen=True)
class RunPlan:
    name: str
    faults: tuple[Fault, ...]
    duration: float  # the workload runs this long; every fault is undone before it ends
    rollout_at: float | None = None  # start a rollout then: of the demo Deployment, or of the run's own
    rollout_pods: int = 0  # roll a Deployment of this many pods of the run's own (0: the demo's)
    faults_at_rollout: float = 0.0  # faults also wait until this fraction of the rollout's pods is updated
    checks: Checks = field(default_factory=Checks)
    seed: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[Topology], RunPlan]
    control_planes: int = 1  # the fewest control-plane machines it needs


def _first_victim(topo: Topology) -> str:
    """The last worker that runs a pod of the demo (so losing it costs replicas), besides the client's."""
    if not topo.victims:
        raise PlanError(f"the scenario needs a worker besides {topo.client_node} (which runs the load client)")
    busy = [n for n in topo.victims if n in topo.workload_nodes]
    return (busy or list(topo.victims))[-1]


def _cp(topo: Topology) -> str:
    return topo.control_planes[0]


def _minority(topo: Topology) -> str:
    """The control-plane machine to cut off alone: the last one (the first is where clients on this host start)."""
    return topo.control_planes[-1]


# Each scenario: warm up 10 s, break one thing, keep the workload running long enough to see the recovery.
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("worker-stop", "stop a worker's kubelet, proxy and containerd for 15 s",
             lambda t: RunPlan("worker-stop", (Fault(STOP_NODE, _first_victim(t), 10.0, 15.0),), 40.0,
                               checks=Checks(min_success=0.95, replacements_within=10.0))),
    Scenario("worker-partition", "cut a worker off the lab network for 15 s",
             lambda t: RunPlan("worker-partition", (Fault(PARTITION, _first_victim(t), 10.0, 15.0),), 40.0,
                               checks=Checks(replacements_within=10.0))),
    Scenario("containerd-kill", "SIGKILL containerd on a worker: pods keep running, the kubelet reconnects",
             lambda t: RunPlan("containerd-kill", (Fault(KILL, _first_victim(t), 10.0, component="containerd"),),
                               30.0, checks=Checks(min_success=0.95, pods_kept=True))),
    Scenario("kubelet-kill", "SIGKILL the kubelet on a worker: pods keep running and are adopted",
             lambda t: RunPlan("kubelet-kill", (Fault(KILL, _first_victim(t), 10.0, component="kubelet"),), 30.0,
                               checks=Checks(min_success=0.95, pods_kept=True))),
    Scenario("scheduler-kill-rollout", "SIGKILL the scheduler leader in the middle of a rollout",
             lambda t: RunPlan("scheduler-kill-rollout", (Fault(KILL, _cp(t), 11.0, component="scheduler"),), 45.0,
                               rollout_at=10.0, checks=Checks(min_success=0.95, rollout_completes=True))),
    Scenario("apiserver-kill", "SIGKILL the apiserver: every acknowledged write survives, the API comes back",
             lambda t: RunPlan("apiserver-kill", (Fault(KILL, _cp(t), 10.0, component="apiserver"),), 30.0,
                               checks=Checks(min_success=0.95, api_writable_within=10.0))),
    Scenario("etcd-kill", "SIGKILL etcd: every acknowledged write survives, the API comes back",
             lambda t: RunPlan("etcd-kill", (Fault(KILL, _cp(t), 10.0, component="etcd"),), 30.0,
                               checks=Checks(min_success=0.95, api_writable_within=15.0))),
    # Three control-plane machines: losing any one must not stop the cluster.
    Scenario("control-plane-stop", "stop the control-plane machine holding the scheduler's lease (every daemon on it) "
             "for 15 s", lambda t: RunPlan("control-plane-stop", (Fault(STOP_NODE, SCHEDULER_LEADER, 10.0, 15.0),),
                                           40.0, checks=Checks(min_success=0.95, api_writable_within=5.0)),
             control_planes=3),
    Scenario("etcd-leader-kill", "SIGKILL the leading etcd member: another is elected, the API stays writable",
             lambda t: RunPlan("etcd-leader-kill", (Fault(KILL, ETCD_LEADER, 10.0, component="etcd"),), 30.0,
                               checks=Checks(min_success=0.95, api_writable_within=5.0)),
             control_planes=3),
    Scenario("control-plane-partition", "cut one control-plane machine (a minority) off the lab network for 20 s",
             lambda t: RunPlan("control-plane-partition", (Fault(PARTITION, _minority(t), 10.0, 20.0),), 45.0,
                               checks=Checks(min_success=0.95, api_writable_within=5.0)),
             control_planes=3),
    Scenario("scheduler-leader-kill-rollout", f"SIGKILL the scheduler holding the lease once a third of a "
             f"{ROLLOUT_PODS}-pod rollout is done", lambda t: leader_kill_rollout(ROLLOUT_PODS), control_planes=3),
)}


def leader_kill_rollout(pods: int) -> RunPlan:
    """The run rolls a Deployment of its own with `pods` replicas; the scheduler's leader dies once a third of
    them are updated, and the run lasts as long as the rollout takes at the lab's pace, with time to spare (and
    longer if the rollout is still going)."""
    if not 1 <= pods <= MAX_ROLLOUT_PODS:
        raise PlanError(f"--rollout-pods {pods} is out of range [1, {MAX_ROLLOUT_PODS}]")
    rollout_at = 10.0
    return RunPlan("scheduler-leader-kill-rollout",
                   (Fault(KILL, SCHEDULER_LEADER, rollout_at + 1.0, component="scheduler"),),
                   round(rollout_at + pods / ROLLOUT_PODS_PER_SECOND + 10.0), rollout_at=rollout_at,
                   rollout_pods=pods, faults_at_rollout=1 / 3,
                   checks=Checks(min_success=0.95, rollout_completes=True))


def plan_scenario(name: str, topo: Topology, rollout_pods: int | None = None) -> RunPlan:
    """`rollout_pods` sizes the rollout of a scenario that rolls a Deployment of its own."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise PlanError(f"no scenario {name!r} (scenarios: {', '.join(SCENARIOS)})")
    if len(topo.control_planes) < scenario.control_planes:
        raise PlanError(f"scenario {name} needs {scenario.control_planes} control-plane machines; "
                        f"the cluster has {len(topo.control_planes)} (`kubelite up --control-planes "
                        f"{scenario.control_planes}`)")
    plan = scenario.build(topo)
    if rollout_pods is not None:
        if not plan.rollout_pods:
            raise PlanError(f"--rollout-pods does not apply to scenario {name} (only to "
                            f"scheduler-leader-kill-rollout: it rolls a Deployment of its own)")
        plan = leader_kill_rollout(rollout_pods)
    for f in plan.faults:
        validate_fault(f, topo)
    return plan


# Named fault sets for soaks: which kinds, on which machines.
FAULT_SETS: dict[str, tuple[str, ...]] = {
    "workers": ("stop-node", "partition", "kill-kubelet", "kill-proxy", "kill-containerd", "pause-kubelet",
                "netem", "fill-disk"),
    "control-plane": ("kill-apiserver", "kill-scheduler", "kill-controller-manager", "kill-etcd", "pause-apiserver"),
}
FAULT_SETS["all"] = FAULT_SETS["workers"] + FAULT_SETS["control-plane"]

SOAK_WARMUP = 10.0
SOAK_TAIL = 20.0  # after the last fault is undone: the recovery must show before the run ends
SOAK_GAP = (5.0, 15.0)  # quiet seconds between faults
SOAK_FAULT_SECONDS = (5.0, 20.0)


def _choose(rng: random.Random, move: str, topo: Topology, at: float) -> Fault:
    duration = round(rng.uniform(*SOAK_FAULT_SECONDS), 1)
    if move.startswith(("kill-", "pause-")):
        kind, component = move.split("-", 1)
        nodes = topo.control_planes if component in CONTROL_PLANE_COMPONENTS else topo.victims
        node = rng.choice(nodes)
        return Fault(kind, node, at, 0.0 if kind == KILL else duration, component=component)
    node = rng.choice(topo.victims)
    if move == NETEM:
        return Fault(NETEM, node, at, duration, delay_ms=rng.choice((50, 100, 200)),
                     loss_percent=rng.choice((0.0, 5.0, 20.0)))
    if move == FILL_DISK:
        return Fault(FILL_DISK, node, at, duration, level=rng.choice((0.5, 0.7, 0.8)))
    return Fault(move, node, at, duration)


def plan_soak(seed: int, duration: float, topo: Topology, fault_set: str = "workers",
              without: tuple[str, ...] = ()) -> RunPlan:
    """Random faults one after another, each from the named set (less the kinds or components `without` names),
    each undone before the next; the same seed, set and topology give the same sequence."""
    moves = FAULT_SETS.get(fault_set)
    if moves is None:
        raise PlanError(f"no fault set {fault_set!r} (sets: {', '.join(FAULT_SETS)})")
    known = {part for m in FAULT_SETS["all"] for part in (m, *m.split("-", 1))}
    unknown = sorted(set(without) - known)
    if unknown:
        raise PlanError(f"--without {unknown[0]!r}: not a fault of any set (faults: {', '.join(FAULT_SETS['all'])})")
    moves = tuple(m for m in moves if m not in without and not set(m.split("-", 1)) & set(without))
    if not moves:
        raise PlanError(f"fault set {fault_set} has nothing left without {', '.join(without)}")
    if not SOAK_WARMUP + SOAK_TAIL + SOAK_FAULT_SECONDS[1] <= duration <= MAX_RUN_SECONDS:
        raise PlanError(f"soak duration {duration:g}s is out of range "
                        f"[{SOAK_WARMUP + SOAK_TAIL + SOAK_FAULT_SECONDS[1]:g}, {MAX_RUN_SECONDS:g}]")
    if any(not m.startswith(("kill-", "pause-")) or m.split("-", 1)[1] in NODE_COMPONENTS for m in moves) \
            and not topo.victims:
        raise PlanError(f"fault set {fault_set} breaks workers; the cluster has none besides {topo.client_node}")
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = SOAK_WARMUP
    while True:
        fault = _choose(rng, rng.choice(moves), topo, round(at, 1))
        # A kill lasts as long as the restart takes: leave it the longest fault's time.
        end = fault.at + (fault.duration or SOAK_FAULT_SECONDS[1])
        if end + SOAK_TAIL > duration:
            break
        validate_fault(fault, topo)
        faults.append(fault)
        at = end + rng.uniform(*SOAK_GAP)
    return RunPlan(f"soak-{seed}", tuple(faults), duration, seed=seed)
