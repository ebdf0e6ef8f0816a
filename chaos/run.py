"""A chaos run on the lab or on VMs: the live workload, the faults on their schedule, and what both saw.

The workload runs for the whole plan: the load client (a process in a lab node's network namespace, or on a
worker VM, sending HTTP requests to the demo Service's cluster IP), an API writer creating ConfigMaps and
recording each acknowledgement, and a watcher sampling the Deployment's pods and the nodes, checking invariants
as it goes.
Faults start on their schedule; each is undone in a `finally`, so a failure or Ctrl-C undoes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog
import tenacity

from api.convert import from_dict
from api.errors import AlreadyExistsError, ApiError, CertificateError, NotFoundError, UnavailableError
from api.pb import apps_pb2, core_pb2
from chaos import plan as cplan
from chaos.faults import ChaosError
from chaos.invariants import Invariants, PodView, RolloutView, Violation, lost_writes, resolve_int_or_percent
from chaos.timeline import LeaseSample, Request, Sample, Write
from client.api import Client
from client.config import ClientConfig
from deploy.lab.status import LEADER_LEASES
from kubelet.runtime.images import PAUSE_IMAGE

log = structlog.get_logger(component="chaos")

RATE = 50.0  # requests per second from the load client
WRITES_PER_SECOND = 10.0
SAMPLE_EVERY = 0.5
TAIL = 10.0  # the workload keeps running this long after the last fault is undone: the recovery must show
MAX_OVERRUN = 300.0  # however long undoing takes, the load client stops this long after the planned end
ROLLOUT_OVERRUN = 120.0  # a run waits this much longer past its planned end for its rollout to finish
ROLLOUT_TAIL = 5.0
ROLLOUT_ANNOTATION = "kubelite.io/chaos-rollout"
ROLLOUT_DEPLOYMENT = "chaos-rollout"  # a scenario's own rollout, in the run's namespace
ROLLOUT_SURGE, ROLLOUT_UNAVAILABLE = "5%", "25%"  # a small surge: 300 pods fill three nodes' 330 pod slots
ROLLOUT_READY_WITHIN = 300.0
SETUP_PATIENCE = 30.0  # seconds a setup call is asked again while the API is briefly unavailable

T = TypeVar("T")


def _transient(e: BaseException) -> bool:
    return isinstance(e, UnavailableError) and not isinstance(e, CertificateError)


async def steady(call: Callable[[], Awaitable[T]], *, patience: float = SETUP_PATIENCE) -> T:
    """`call()`, asked again while the API is briefly unavailable (an etcd election, an apiserver failing over), for
    up to `patience` seconds: a run on a cluster that has just lost a machine starts once the cluster answers, not
    on its first hiccup. Any other error, or the last one, goes to the caller."""
    retrying = tenacity.AsyncRetrying(retry=tenacity.retry_if_exception(_transient),
                                      stop=tenacity.stop_after_delay(patience),
                                      wait=tenacity.wait_exponential(multiplier=0.2, max=2.0), reraise=True)
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("tenacity ends with a result or the last error")


async def create_once(client: Client, obj: Any) -> None:
    """Create `obj`, whose name is the run's own: AlreadyExists means an earlier try was applied after all."""
    with contextlib.suppress(AlreadyExistsError):
        await client.create(obj)


class RunTarget(Protocol):
    """A cluster a run can break and watch: the lab (chaos.faults.LabTarget) or VMs (chaos.vm.VmTarget)."""

    cluster: str
    remote_clock: bool  # the load client's clock is another machine's
    call_timeout: float  # seconds the run's own API calls (its writes, its samples) may take before they fail

    @property
    def control_plane_machines(self) -> tuple[str, ...]: ...
    @property
    def worker_machines(self) -> tuple[str, ...]: ...
    def client_config(self) -> ClientConfig: ...
    def load_argv(self, node: str, args: Sequence[str]) -> list[str]: ...
    def holder_alive(self, holder: str) -> bool: ...
    async def resolve(self, node: str) -> str: ...
    async def kill(self, component: str, node: str, *, timeout: float = 30.0) -> float | None: ...
    async def stop_node(self, node: str) -> None: ...
    async def start_node(self, node: str) -> None: ...
    async def cut_off(self, node: str) -> None: ...
    async def heal(self, node: str) -> None: ...
    async def pause(self, component: str, node: str) -> Callable[[], Awaitable[None]]: ...
    async def check_netem(self, node: str) -> None: ...
    async def netem(self, node: str, *, delay_ms: int, loss_percent: float) -> None: ...
    async def clear_netem(self, node: str) -> None: ...
    async def fill_disk(self, node: str, level: float) -> int: ...
    async def free_disk(self, node: str) -> None: ...


@dataclass
class FaultRecord:
    fault: cplan.Fault
    start: float | None = None
    undo_start: float | None = None  # when undoing began (a node's start takes a while)
    end: float | None = None
    component_back: float | None = None  # kill: seconds until the supervisor had it running again
    note: str = ""


@dataclass
class Observed:
    """Everything a run recorded, in seconds since it started."""

    plan: cplan.RunPlan
    cluster: str
    started_at: float  # unix time of t=0
    duration: float = 0.0  # how long the workload ran: the plan's duration, longer if an undo ran late
    requests: list[Request] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    leases: list[LeaseSample] = field(default_factory=list)  # the leader leases, with several control planes
    faults: list[FaultRecord] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    pods_kept: dict[str, Any] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # ReplicaSets running more pods than their replicas
    rollout_started: float | None = None
    rollout_done: float | None = None
    client_node: str = ""
    control_planes: tuple[str, ...] = ()
    deployment: str = ""  # namespace/name of the Deployment the samples count
    errors: list[str] = field(default_factory=list)


def topology(target: RunTarget, workload_nodes: tuple[str, ...] = ()) -> cplan.Topology:
    return cplan.plan_topology(target.control_plane_machines, target.worker_machines, workload_nodes)


async def workload_nodes(client: Client, namespace: str = "default", deployment: str = "web") -> tuple[str, ...]:
    """The nodes running a pod of the Deployment (none if it does not exist: preflight says so later)."""
    try:
        dep = await client.get("deployments", deployment, namespace)
    except ApiError:
        return ()
    selector = ",".join(f"{k}={v}" for k, v in sorted(dep.spec.selector.match_labels.items()))
    pods = (await client.list("pods", namespace, label_selector=selector)).items
    return tuple(sorted({p.spec.node_name for p in pods if p.spec.node_name}))


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _pod_view(p: Any) -> PodView:
    owner = next((r for r in p.metadata.owner_references if r.controller), None)
    return PodView(p.metadata.uid, p.metadata.name, p.metadata.namespace, p.spec.node_name,
                   owner.kind if owner else "", owner.name if owner else "", _ready(p),
                   p.metadata.HasField("deletion_timestamp"))


def _restarts(pods: list[Any]) -> dict[str, int]:
    return {p.metadata.uid: sum(c.restart_count for c in p.status.container_statuses) for p in pods}


class Run:
    def __init__(self, target: RunTarget, client: Client, plan: cplan.RunPlan, *, namespace: str = "default",
                 deployment: str = "web", service: str = "web", rate: float = RATE,
                 progress: Callable[[str], None] = lambda _: None) -> None:
        self.target, self.client, self.plan = target, client, plan
        self.namespace, self.deployment, self.service, self.rate = namespace, deployment, service, rate
        self.progress = progress
        self.topo = topology(target)  # the faults' names are checked against the cluster's machines
        self.run_id = secrets.token_hex(3)
        self.writes_ns = f"chaos-{self.run_id}"
        self.t0 = 0.0
        self.obs = Observed(plan, target.cluster, time.time(), client_node=self.topo.client_node,
                            control_planes=self.topo.control_planes)
        self.invariants = Invariants()
        self.selector = ""
        # The Deployment whose ready pods the samples count and whose rollout the invariants bound.
        self.rolled_ns, self.rolled_name = ((self.writes_ns, ROLLOUT_DEPLOYMENT) if plan.rollout_pods
                                            else (namespace, deployment))
        self.obs.deployment = f"{self.rolled_ns}/{self.rolled_name}"
        self.done = asyncio.Event()
        self.rolled_out = asyncio.Event()
        self.rollout_progressed = asyncio.Event()  # the plan's fraction of the rollout's pods is updated

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    async def _call(self, coro: Any) -> Any:
        async with asyncio.timeout(self.target.call_timeout):
            return await coro

    async def preflight(self) -> tuple[str, list[Any]]:
        """The demo's Deployment, Ready, and its Service's cluster IP; the pods running before any fault."""
        try:
            dep = await steady(lambda: self.client.get("deployments", self.deployment, self.namespace))
            svc = await steady(lambda: self.client.get("services", self.service, self.namespace))
        except ApiError as e:
            raise ChaosError(f"a chaos run needs the demo: {e.message} (kubelite apply -f examples/)") from e
        if dep.status.available_replicas < dep.spec.replicas:
            raise ChaosError(f"deployment {self.deployment} has {dep.status.available_replicas} of "
                             f"{dep.spec.replicas} replicas available; wait for it before breaking things")
        if not svc.spec.cluster_ip or svc.spec.cluster_ip == "None":
            raise ChaosError(f"service {self.service} has no cluster IP")
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(dep.spec.selector.match_labels.items()))
        pods = (await steady(lambda: self.client.list("pods", self.namespace, label_selector=self.selector))).items
        return svc.spec.cluster_ip, [p for p in pods if not p.metadata.HasField("deletion_timestamp")]

    async def execute(self) -> Observed:
        for f in self.plan.faults:
            cplan.validate_fault(f, self.topo)
        cluster_ip, before = await self.preflight()
        for node in sorted({f.node for f in self.plan.faults if f.kind == cplan.NETEM}):
            await self.target.check_netem(node)
        if self.plan.rollout_pods:
            await self.check_room(self.plan.rollout_pods)
        await steady(lambda: create_once(self.client, core_pb2.Namespace(
            metadata={"name": self.writes_ns, "labels": {"kubelite.io/chaos": self.run_id}})))
        try:
            if self.plan.rollout_pods:
                await self.start_rollout_workload(self.plan.rollout_pods)
            self.t0 = time.monotonic()
            self.obs.started_at = time.time()
            self.progress(f"{self.plan.name}: {self.plan.duration:.0f}s of load at {self.rate:g} req/s on "
                          f"{self.topo.client_node}, {len(self.plan.faults)} fault(s)")
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.load(cluster_ip))
                    tg.create_task(self.writer())
                    tg.create_task(self.watcher())
                    if len(self.topo.control_planes) > 1:
                        tg.create_task(self.lease_watcher())
                    tg.create_task(self.schedule())
                    if self.plan.rollout_at is not None:
                        tg.create_task(self.rollout())
            except BaseExceptionGroup as group:
                # The first failure says what went wrong; the rest are its consequences.
                raise group.exceptions[0] from None
            await self.check_pods_kept(before)
        finally:
            # Also on failure: the writes are checked, and the run's namespace (with its own rollout) goes.
            with contextlib.suppress(ApiError, TimeoutError):
                await self.check_writes()
        return self.obs

    async def check_room(self, pods: int) -> None:
        """A rollout of the run's own fits in the pod slots the Ready, schedulable nodes have free, surge
        included; said before anything is created."""
        listed = (await steady(lambda: self.client.list("nodes"))).items
        nodes = [n for n in listed if _ready(n) and not n.spec.unschedulable
                 and not any(t.effect == "NoSchedule" for t in n.spec.taints)]
        names = {n.metadata.name for n in nodes}
        used = sum(1 for p in (await steady(lambda: self.client.list("pods"))).items
                   if p.spec.node_name in names and p.status.phase not in ("Succeeded", "Failed"))
        free = sum(int(n.status.allocatable.get("pods", "0") or 0) for n in nodes) - used
        need = pods + resolve_int_or_percent(ROLLOUT_SURGE, pods, round_up=True)
        if need > free:
            raise ChaosError(f"a {pods}-pod rollout needs {need} free pod slots (maxSurge {ROLLOUT_SURGE} "
                             f"included); the cluster's {len(nodes)} schedulable node(s) have {free} "
                             f"(add nodes: kubelite up --nodes 3, or pass a smaller --rollout-pods)")

    async def start_rollout_workload(self, pods: int) -> None:
        """The Deployment the scenario rolls: `pods` tiny pause containers, all available before the run starts."""
        dep = from_dict(apps_pb2.Deployment, {
            "metadata": {"name": ROLLOUT_DEPLOYMENT, "namespace": self.writes_ns},
            "spec": {
                "replicas": pods,
                "selector": {"matchLabels": {"app": ROLLOUT_DEPLOYMENT}},
                "strategy": {"rollingUpdate": {"maxSurge": ROLLOUT_SURGE, "maxUnavailable": ROLLOUT_UNAVAILABLE}},
                "template": {
                    "metadata": {"labels": {"app": ROLLOUT_DEPLOYMENT}},
                    "spec": {"containers": [{"name": "pause", "image": PAUSE_IMAGE,
                                             "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]},
                },
            },
        })
        await steady(lambda: create_once(self.client, dep))
        self.progress(f"deployment {ROLLOUT_DEPLOYMENT}: waiting for {pods} pods before the run starts")
        deadline = time.monotonic() + ROLLOUT_READY_WITHIN
        while True:
            got = await steady(lambda: self.client.get("deployments", ROLLOUT_DEPLOYMENT, self.writes_ns))
            if got.status.available_replicas >= pods:
                return
            if time.monotonic() > deadline:
                raise ChaosError(f"deployment {ROLLOUT_DEPLOYMENT} has {got.status.available_replicas} of {pods} "
                                 f"pods available after {ROLLOUT_READY_WITHIN:.0f}s")
            await asyncio.sleep(1.0)

    # The workload.

    async def load(self, cluster_ip: str) -> None:
        """The load client runs until the run is done (bounded by its own --duration); what it printed by then
        counts."""
        argv = self.target.load_argv(self.topo.client_node, [cluster_ip, "--rate", str(self.rate), "--duration",
                                                             str(self.plan.duration + MAX_OVERRUN)])
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)

        async def read() -> None:
            assert proc.stdout is not None
            async for line in proc.stdout:
                parts = line.decode().split()
                if len(parts) >= 3:
                    # A remote machine's clock is not ours: a request was sent its latency before its line came.
                    sent = time.time() - float(parts[2]) / 1000 if self.target.remote_clock else float(parts[0])
                    t = round(sent - self.obs.started_at, 3)
                    self.obs.requests.append(Request(t, parts[1] == "1", float(parts[2]),
                                                     parts[3] if len(parts) > 3 else ""))

        reader = asyncio.ensure_future(read())
        try:
            done, _ = await asyncio.wait([reader, asyncio.ensure_future(self.done.wait())],
                                         return_when=asyncio.FIRST_COMPLETED)
            if reader in done and not self.done.is_set():
                await proc.wait()
                assert proc.stderr is not None
                err = (await proc.stderr.read()).decode().strip()
                raise ChaosError(f"the load client exited {proc.returncode} early: {err[-500:]}")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def writer(self) -> None:
        i = 0
        while not self.done.is_set():
            await asyncio.sleep(max(0.0, i / WRITES_PER_SECOND - self.now()))
            name = f"w-{i:06d}"
            sent = self.now()
            cm = core_pb2.ConfigMap(metadata={"name": name, "namespace": self.writes_ns}, data={"i": str(i)})
            try:
                await self._call(self.client.create(cm))
                ok = True
            except (ApiError, TimeoutError):
                ok = False
            self.obs.writes.append(Write(sent, ok, round((self.now() - sent) * 1000, 1), name))
            i += 1

    async def watcher(self) -> None:
        while not self.done.is_set():
            started = self.now()
            with contextlib.suppress(ApiError, TimeoutError):
                await self._sample()
            await asyncio.sleep(max(0.0, SAMPLE_EVERY - (self.now() - started)))

    async def lease_watcher(self) -> None:
        """The scheduler's and controller-manager's leases: who holds them, and whether they are renewed."""
        while not self.done.is_set():
            started = self.now()
            for component, lease_name in LEADER_LEASES:
                with contextlib.suppress(ApiError, TimeoutError):
                    lease = await self._call(self.client.get("leases", lease_name, "kube-system"))
                    holder = lease.spec.holder_identity
                    renew = lease.spec.renew_time
                    renewed = round(renew.seconds + renew.nanos / 1e9 - self.obs.started_at, 3)
                    self.obs.leases.append(LeaseSample(self.now(), component, holder, renewed,
                                                       self.target.holder_alive(holder)))
            await asyncio.sleep(max(0.0, SAMPLE_EVERY - (self.now() - started)))

    async def _sample(self) -> None:
        t = self.now()
        pods = [p for ns in sorted({self.namespace, self.rolled_ns})
                for p in (await self._call(self.client.list("pods", ns))).items]
        nodes = (await self._call(self.client.list("nodes"))).items
        dep = await self._call(self.client.get("deployments", self.rolled_name, self.rolled_ns))
        ready_nodes = {n.metadata.name for n in nodes if _ready(n)}
        views = [_pod_view(p) for p in pods]
        mine = [p for p in pods if p.metadata.namespace == self.rolled_ns
                and all(p.metadata.labels.get(k) == v for k, v in dep.spec.selector.match_labels.items())]
        by_node = Counter(p.spec.node_name for p in mine if _ready(p) and not p.metadata.HasField("deletion_timestamp"))
        updated = sum(1 for p in mine if _ready(p) and not p.metadata.HasField("deletion_timestamp")
                      and p.metadata.annotations.get(ROLLOUT_ANNOTATION) == self.run_id)
        self.obs.samples.append(Sample(t, dep.spec.replicas, dict(by_node), len(ready_nodes), len(nodes), updated))
        if self.plan.faults_at_rollout and updated >= self.plan.faults_at_rollout * dep.spec.replicas:
            self.rollout_progressed.set()
        rolling = self._rolling(dep, t)
        ru = dep.spec.strategy.rolling_update
        rollout = RolloutView(self.rolled_name, dep.spec.replicas,
                              resolve_int_or_percent(ru.max_surge or "25%", dep.spec.replicas, round_up=True),
                              resolve_int_or_percent(ru.max_unavailable or "25%", dep.spec.replicas,
                                                     round_up=False),
                              sum(by_node.values()), rolling)
        self.obs.violations += self.invariants.observe(t, views, ready_nodes, rollout, disrupted=self._disrupted(t))

    def _rolling(self, dep: Any, t: float) -> bool:
        if self.plan.rollout_at is None or t < self.plan.rollout_at or self.obs.rollout_done is not None:
            return False
        s = dep.status
        done = (dep.spec.template.metadata.annotations.get(ROLLOUT_ANNOTATION) == self.run_id
                and s.observed_generation >= dep.metadata.generation
                and s.updated_replicas == s.replicas == s.available_replicas == dep.spec.replicas)
        if done:
            self.obs.rollout_done = t
            self.rolled_out.set()
        return not done

    def _disrupted(self, t: float) -> bool:
        """A fault that takes pods away (a node, its kubelet or containerd) is on, or ended in the last 10 s."""
        for r in self.obs.faults:
            if r.fault.node in self.topo.control_planes or r.start is None:
                continue
            if r.start <= t and (r.end is None or t <= r.end + 10):
                return True
        return False

    async def rollout(self) -> None:
        """Change the Deployment's template, as `kubelite rollout restart` does."""
        assert self.plan.rollout_at is not None
        await asyncio.sleep(max(0.0, self.plan.rollout_at - self.now()))
        for _ in range(20):
            try:
                dep = await self._call(self.client.get("deployments", self.rolled_name, self.rolled_ns))
                dep.spec.template.metadata.annotations[ROLLOUT_ANNOTATION] = self.run_id
                await self._call(self.client.update(dep))
                self.obs.rollout_started = self.now()
                self.progress(f"{self.now():6.1f}s rollout of deployment {self.rolled_name} "
                              f"({dep.spec.replicas} pods) started")
                return
            except (ApiError, TimeoutError):
                await asyncio.sleep(0.2)
        self.obs.errors.append("could not start the rollout")

    # The faults.

    async def schedule(self) -> None:
        """Faults in order, each undone before the next; then the run ends at its planned duration, or TAIL
        seconds after the last undo if that is later."""
        try:
            for fault in self.plan.faults:
                record = FaultRecord(fault)
                self.obs.faults.append(record)
                await asyncio.sleep(max(0.0, fault.at - self.now()))
                if self.plan.faults_at_rollout:
                    # Bounded: a rollout that never gets there still gets its fault before the run ends.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.0, self.plan.duration - TAIL - self.now())):
                            await self.rollout_progressed.wait()
                await self.inflict(record)
            last = max((r.end or 0.0 for r in self.obs.faults), default=0.0)
            await asyncio.sleep(max(0.0, max(self.plan.duration, last + TAIL) - self.now()))
            if self.plan.rollout_at is not None:
                # A rollout still going is part of what the run shows: it runs on until the rollout ends.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ROLLOUT_OVERRUN):
                        await self.rolled_out.wait()
                if self.obs.rollout_done is not None:
                    await asyncio.sleep(max(0.0, self.obs.rollout_done + ROLLOUT_TAIL - self.now()))
        finally:
            self.obs.duration = self.now()
            self.done.set()

    async def inflict(self, r: FaultRecord) -> None:
        t = self.target
        if r.fault.node in cplan.LEADERS:
            # Who leads is known only now; the report names the machine.
            aim = r.fault.node
            r.fault = dataclasses.replace(r.fault, node=await t.resolve(aim))
            r.note = f"{aim.removeprefix('@')}: {r.fault.node}"
        f = r.fault
        self.progress(f"{self.now():6.1f}s {f.label}")
        r.start = self.now()
        try:
            if f.kind == cplan.KILL:
                r.component_back = await t.kill(f.component, f.node)
                if r.component_back is None:
                    r.note = "; ".join(filter(None, (r.note, f"{f.component} did not come back by itself; "
                                                              "started by hand")))
                return
            undo: Callable[[], Any]
            if f.kind == cplan.STOP_NODE:
                await t.stop_node(f.node)
                undo = lambda: t.start_node(f.node)  # noqa: E731
            elif f.kind == cplan.PARTITION:
                await t.cut_off(f.node)
                undo = lambda: t.heal(f.node)  # noqa: E731
            elif f.kind == cplan.PAUSE:
                undo = await t.pause(f.component, f.node)
            elif f.kind == cplan.NETEM:
                await t.netem(f.node, delay_ms=f.delay_ms, loss_percent=f.loss_percent)
                undo = lambda: t.clear_netem(f.node)  # noqa: E731
            elif f.kind == cplan.FILL_DISK:
                size = await t.fill_disk(f.node, f.level)
                r.note = f"{size} bytes allocated"
                undo = lambda: t.free_disk(f.node)  # noqa: E731
            else:
                raise ChaosError(f"fault kind {f.kind!r} has no driver")
            try:
                await asyncio.sleep(f.duration)
            finally:
                r.undo_start = self.now()
                # Awaited even when the run is cancelled (Ctrl-C): a fault never outlives it.
                await undo()
        finally:
            r.end = self.now()
            self.progress(f"{self.now():6.1f}s {f.label}: undone")

    # Checks at the end.

    async def check_writes(self) -> None:
        """Every acknowledged write is stored; then the writes' namespace goes."""
        acked = [w.name for w in self.obs.writes if w.ok]
        for _ in range(30):
            try:
                items = await self.client.list_all("configmaps", self.writes_ns)
                self.obs.lost = lost_writes(acked, (c.metadata.name for c in items))
                break
            except ApiError:
                await asyncio.sleep(1.0)
        else:
            self.obs.errors.append("could not list the written ConfigMaps to check them")
        with contextlib.suppress(ApiError):
            await self.client.delete("namespaces", self.writes_ns)
        if self.plan.rollout_pods:
            await self.wait_namespace_gone()

    async def wait_namespace_gone(self) -> None:
        """The run's own rollout leaves with its namespace before the command returns: its pods' slots are free
        for the next run."""
        self.progress(f"deleting namespace {self.writes_ns} and its {self.plan.rollout_pods}-pod deployment")
        deadline = time.monotonic() + ROLLOUT_READY_WITHIN
        while time.monotonic() < deadline:
            try:
                await self.client.get("namespaces", self.writes_ns)
            except NotFoundError:
                return
            except ApiError:
                pass
            await asyncio.sleep(1.0)
        self.obs.errors.append(f"namespace {self.writes_ns} was still there {ROLLOUT_READY_WITHIN:.0f}s later")

    async def check_pods_kept(self, before: list[Any]) -> None:
        """Pods that ran before the run still run, unrestarted, once it is over (or why not); and, with a
        rollout, that it finished."""
        deadline = time.monotonic() + 60 + self.plan.rollout_pods / cplan.ROLLOUT_PODS_PER_SECOND
        while True:
            try:
                pods = (await self.client.list("pods", self.namespace, label_selector=self.selector)).items
                dep = await self.client.get("deployments", self.rolled_name, self.rolled_ns)
            except ApiError:
                pods, dep = [], None
            if dep is not None and self.plan.rollout_at is not None and self.obs.rollout_done is None:
                self._rolling(dep, self.now())
            if ((self.plan.rollout_at is None or self.obs.rollout_done is not None) and dep is not None \
                    and dep.status.available_replicas >= dep.spec.replicas) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await self.check_duplicates()
        was, now = _restarts(before), _restarts([p for p in pods if _ready(p)])
        self.obs.pods_kept = {"before": sorted(was), "gone": sorted(set(was) - set(now)),
                              "restarted": sorted(u for u in was if u in now and now[u] > was[u])}

    async def check_duplicates(self, timeout: float = 30.0) -> None:
        """No ReplicaSet runs more pods than its replicas once the cluster settles (a returning node's kubelet
        stops what was replaced meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                spaces = sorted({self.namespace, self.rolled_ns})
                rsets = [r for ns in spaces for r in (await self.client.list("replicasets", ns)).items]
                pods = [p for ns in spaces for p in (await self.client.list("pods", ns)).items]
            except ApiError:
                rsets, pods = [], []
            live = Counter(r.uid for p in pods if not p.metadata.HasField("deletion_timestamp")
                           for r in p.metadata.owner_references if r.controller and r.kind == "ReplicaSet")
            self.obs.duplicates = [f"replicaset {rs.metadata.name}: {live[rs.metadata.uid]} pods for "
                                   f"{rs.spec.replicas} replicas" for rs in rsets
                                   if live[rs.metadata.uid] > rs.spec.replicas]
            if not self.obs.duplicates or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)
