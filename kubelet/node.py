"""The kubelet's Node: registration, status with the Ready condition, and the heartbeat Lease.

`compute_node` renders the Node this kubelet wants (labels, podCIDR,
capacity and allocatable, addresses, daemon endpoint, node info,
conditions); `NodeAgent` registers it (creating it, or taking over the
existing Node of the same name after a restart or rebuild), renews the Lease
in kube-node-lease every `lease_renew` seconds, and posts the node status
when the runtime's readiness changes or every `node_status_period` (the
Lease is the frequent heartbeat, as in Kubernetes).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from api import quantity, timestamps, volumes
from api.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from api.pb import apps_pb2, core_pb2
from client.api import Client
from client.retry import create_or_update, retry_on_conflict
from kubelet.config import KubeletConfig
from kubelet.runtime.interface import ContainerRuntimeError, Runtime, RuntimeStatus, RuntimeVersion

log = structlog.get_logger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
HOSTNAME_LABEL = "kubernetes.io/hostname"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def kubelet_version() -> str:
    try:
        return "v" + importlib.metadata.version("kubelite")
    except importlib.metadata.PackageNotFoundError:
        return "v0.0.0"


@dataclass(frozen=True)
class MachineInfo:
    cpu_milli: int
    memory: int
    kernel: str
    os_image: str
    architecture: str
    machine_id: str = ""
    boot_id: str = ""
    hostname: str = ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def _mem_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_info() -> MachineInfo:
    """This machine's resources and identity."""
    return MachineInfo(
        cpu_milli=(os.cpu_count() or 1) * 1000, memory=_mem_total(), kernel=platform.release(),
        os_image=_os_image(), architecture=_ARCH.get(platform.machine(), platform.machine()),
        machine_id=_read("/etc/machine-id"), boot_id=_read("/proc/sys/kernel/random/boot_id"),
        hostname=platform.node(),
    )


def _ts(seconds: float) -> Timestamp:
    return Timestamp(seconds=int(seconds))


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    message: str


# How long the runtime may go unanswered before the node says it is down (Kubernetes' kubelet: 30 s,
# maxWaitForContainerRuntime). A containerd that crashed and was started again meanwhile (its pods ran on in their
# shims) leaves the node Ready, so no taint evicts pods that never stopped; seen: a 2 s NotReady after a
# containerd kill, and a pod evicted by the 2 s toleration just as the node was back. A runtime that answers
# "not ready" is reported at once.
RUNTIME_DOWN_AFTER = 30.0


def runtime_readiness(status: RuntimeStatus | None, error: str, *, previous: Readiness,
                      silent_for: float | None) -> Readiness:
    """The node's readiness after a runtime check: `status` None when the runtime did not answer (`error` says
    why), for `silent_for` seconds since its last answer (None: it never answered)."""
    if status is None and silent_for is not None and silent_for < RUNTIME_DOWN_AFTER:
        return previous
    return compute_readiness(status, error)


def compute_readiness(status: RuntimeStatus | None, error: str = "") -> Readiness:
    """Ready while the runtime and its network are; otherwise why not, in the kubelet's words."""
    if status is None:
        return Readiness(False, "KubeletNotReady", f"container runtime is down: {error}")
    problems = [f"{c.type}=false reason:{c.reason} message:{c.message}" for c in status.conditions
                if c.type in ("RuntimeReady", "NetworkReady") and not c.status]
    for wanted in ("RuntimeReady", "NetworkReady"):
        if not any(c.type == wanted for c in status.conditions):
            problems.append(f"{wanted} not reported")
    if problems:
        what = "network" if not status.network_ready and status.runtime_ready else "runtime"
        return Readiness(False, "KubeletNotReady", f"container runtime {what} not ready: {'; '.join(problems)}")
    return Readiness(True, "KubeletReady", "kubelet is posting ready status")


def compute_capacity(config: KubeletConfig, machine: MachineInfo) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable): the machine or the flags, minus what is reserved."""
    cpu = config.capacity_cpu_milli or machine.cpu_milli
    memory = config.capacity_memory or machine.memory
    capacity = {"cpu": quantity.format_milli(cpu), "memory": quantity.format_bytes(memory),
                "pods": str(config.max_pods)}
    allocatable = {"cpu": quantity.format_milli(max(0, cpu - config.reserved_cpu_milli)),
                   "memory": quantity.format_bytes(max(0, memory - config.reserved_memory)),
                   "pods": str(config.max_pods)}
    if config.local_path_capacity:
        capacity[volumes.LOCAL_PATH_CAPACITY] = allocatable[volumes.LOCAL_PATH_CAPACITY] = \
            quantity.format_bytes(config.local_path_capacity)
    return capacity, allocatable


def compute_labels(config: KubeletConfig, machine: MachineInfo) -> dict[str, str]:
    labels = {HOSTNAME_LABEL: config.node_name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": machine.architecture, "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": machine.architecture}
    labels.update(config.node_labels)
    return labels


def compute_node_status(config: KubeletConfig, machine: MachineInfo, version: RuntimeVersion, readiness: Readiness,
                        *, previous: core_pb2.NodeStatus | None, now: float) -> core_pb2.NodeStatus:
    capacity, allocatable = compute_capacity(config, machine)
    status = core_pb2.NodeStatus(capacity=capacity, allocatable=allocatable)
    status.addresses.add(type="InternalIP", address=config.node_ip)
    status.addresses.add(type="Hostname", address=config.node_name)
    status.daemon_endpoints.kubelet_endpoint.port = config.listen_port
    info = status.node_info
    info.machine_id, info.system_uuid, info.boot_id = machine.machine_id, machine.machine_id, machine.boot_id
    info.kernel_version, info.os_image = machine.kernel, machine.os_image
    info.container_runtime_version = f"{version.runtime_name}://{version.runtime_version}"
    info.kubelet_version = info.kube_proxy_version = kubelet_version()
    info.operating_system, info.architecture = "linux", machine.architecture
    wanted = [(t, "False", reason, message) for t, reason, message in PRESSURE_CONDITIONS]
    wanted.append(("Ready", "True" if readiness.ready else "False", readiness.reason, readiness.message))
    for type_, value, reason, message in wanted:
        cond = status.conditions.add(type=type_, status=value, reason=reason, message=message,
                                     last_heartbeat_time=_ts(now))
        old = next((c for c in previous.conditions if c.type == type_), None) if previous is not None else None
        if old is not None and old.status == value and old.HasField("last_transition_time"):
            cond.last_transition_time.CopyFrom(old.last_transition_time)
        else:
            cond.last_transition_time.CopyFrom(_ts(now))
    return status


def compute_node(config: KubeletConfig, machine: MachineInfo, version: RuntimeVersion, readiness: Readiness, *,
                 now: float) -> core_pb2.Node:
    """The Node a kubelet registers."""
    node = core_pb2.Node(metadata={"name": config.node_name, "labels": compute_labels(config, machine)})
    if not config.hollow:
        node.metadata.annotations[volumes.LOCAL_PATH_DIR] = str(config.local_path_root)
    if config.pod_cidr:
        node.spec.pod_cidr = config.pod_cidr
        node.spec.pod_cidrs.append(config.pod_cidr)
    node.status.CopyFrom(compute_node_status(config, machine, version, readiness, previous=None, now=now))
    return node


def merge_registration(existing: core_pb2.Node, wanted: core_pb2.Node) -> core_pb2.Node | None:
    """The existing Node with our labels and podCIDR (others' labels, taints and
    unschedulable kept); None when nothing changes."""
    merged = core_pb2.Node()
    merged.CopyFrom(existing)
    for k, v in wanted.metadata.labels.items():
        merged.metadata.labels[k] = v
    for k, v in wanted.metadata.annotations.items():
        merged.metadata.annotations[k] = v
    if wanted.spec.pod_cidr and not merged.spec.pod_cidr:
        merged.spec.pod_cidr = wanted.spec.pod_cidr
        del merged.spec.pod_cidrs[:]
        merged.spec.pod_cidrs.extend(wanted.spec.pod_cidrs)
    return None if merged == existing else merged


class NodeAgent:
    """Registers the node, then keeps its Lease and status fresh until cancelled."""

    def __init__(self, client: Client, config: KubeletConfig, runtime: Runtime, machine: MachineInfo,
                 version: RuntimeVersion) -> None:
        self.client = client
        self.config = config
        self.runtime = runtime
        self.machine = machine
        self.version = version
        self.node: core_pb2.Node | None = None
        self.registered = asyncio.Event()
        self.readiness = Readiness(False, "KubeletNotReady", "kubelet is starting")
        self._runtime_answered: float | None = None  # monotonic time of the runtime's last answer
        self.lease_renewals = 0
        self.status_updates = 0
        self._lease: apps_pb2.Lease | None = None
        self._log = log.bind(node=config.node_name)

    async def run(self) -> None:
        await self.register()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._lease_loop())
            tg.create_task(self._status_loop())

    async def check_runtime(self) -> Readiness:
        try:
            async with asyncio.timeout(5):
                status = await self.runtime.status()
        except (ContainerRuntimeError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            answered = self._runtime_answered
            silent_for = None if answered is None else time.monotonic() - answered
            self._log.info("runtime_unanswered", error=error, silent_for=silent_for)
            return runtime_readiness(None, error, previous=self.readiness, silent_for=silent_for)
        self._runtime_answered = time.monotonic()
        return runtime_readiness(status, "", previous=self.readiness, silent_for=0.0)

    # ------------------------------------------------------------ registration

    async def register(self) -> core_pb2.Node:
        """Create the Node, or take over an existing one of this name; retried until it works."""
        delay = 0.2
        while True:
            try:
                async with asyncio.timeout(30):
                    self.readiness = await self.check_runtime()
                    self.node = await self._register_once()
                self.registered.set()
                self._log.info("node_registered", ready=self.readiness.ready)
                return self.node
            except (ApiError, TimeoutError) as exc:
                self._log.info("node_registration_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _register_once(self) -> core_pb2.Node:
        wanted = compute_node(self.config, self.machine, self.version, self.readiness, now=time.time())
        try:
            return await self.client.create(wanted)
        except AlreadyExistsError:
            pass
        seen: list[core_pb2.Node] = []

        async def read() -> core_pb2.Node:
            existing: core_pb2.Node = await self.client.get("nodes", self.config.node_name)
            if existing.spec.pod_cidr and wanted.spec.pod_cidr and existing.spec.pod_cidr != wanted.spec.pod_cidr:
                self._log.warning("node_pod_cidr_kept", existing=existing.spec.pod_cidr, flag=wanted.spec.pod_cidr)
            seen[:] = [existing]
            return existing

        merged = await retry_on_conflict(read, lambda existing: merge_registration(existing, wanted),
                                         self.client.update, what=f"node {self.config.node_name}")
        current = merged if merged is not None else seen[0]
        current.status.CopyFrom(compute_node_status(self.config, self.machine, self.version, self.readiness,
                                                    previous=seen[0].status, now=time.time()))
        current.metadata.resource_version = ""
        return await self.client.update_status(current)

    # ------------------------------------------------------------ status

    async def _status_loop(self) -> None:
        last_post = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.config.node_status_period))
            readiness = await self.check_runtime()
            changed = readiness != self.readiness
            if changed:
                self._log.info("node_readiness_changed", ready=readiness.ready, message=readiness.message)
            self.readiness = readiness
            if changed or time.monotonic() - last_post >= self.config.node_status_period:
                try:
                    async with asyncio.timeout(30):
                        await self._post_status()
                    last_post = time.monotonic()
                except NotFoundError:
                    self._log.info("node_vanished")
                    await self.register()
                except (ApiError, TimeoutError) as exc:
                    self._log.info("node_status_failed", error=str(exc) or type(exc).__name__)

    async def _post_status(self) -> None:
        current: core_pb2.Node = await self.client.get("nodes", self.config.node_name)
        status = compute_node_status(self.config, self.machine, self.version, self.readiness,
                                     previous=current.status, now=time.time())
        current.status.CopyFrom(status)
        current.metadata.resource_version = ""
        self.node = await self.client.update_status(current)
        self.status_updates += 1

    # ------------------------------------------------------------ lease

    def _new_lease(self) -> apps_pb2.Lease:
        lease = apps_pb2.Lease(metadata={"name": self.config.node_name, "namespace": LEASE_NAMESPACE})
        if self.node is not None and self.node.metadata.uid:
            lease.metadata.owner_references.add(api_version="v1", kind="Node", name=self.node.metadata.name,
                                                uid=self.node.metadata.uid)
        lease.spec.holder_identity = self.config.node_name
        lease.spec.lease_duration_seconds = self.config.lease_duration
        return lease

    async def _lease_loop(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                async with asyncio.timeout(max(self.config.lease_duration, 2)):
                    await self.renew_lease()
                if failures:
                    self._log.info("lease_renewed_again", failures=failures)
                failures = 0
            except (ApiError, TimeoutError) as exc:
                self._lease = None
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    self._log.info("lease_renew_failed", error=str(exc) or type(exc).__name__, failures=failures)
            # Renewals start every lease_renew seconds, however long each took.
            await asyncio.sleep(max(0.0, started + self.config.lease_renew - loop.time()))

    async def renew_lease(self) -> None:
        """Renew (or create) the node's Lease: compare-and-swap on the copy last written."""
        async def read() -> apps_pb2.Lease:
            if self._lease is not None:
                return self._lease
            try:
                return await self.client.get("leases", self.config.node_name, LEASE_NAMESPACE)
            except NotFoundError:
                return self._new_lease()  # never written: created below

        def renew(lease: apps_pb2.Lease) -> apps_pb2.Lease:
            lease.spec.holder_identity = self.config.node_name
            lease.spec.lease_duration_seconds = self.config.lease_duration
            lease.spec.renew_time.CopyFrom(timestamps.timestamp())
            if not lease.metadata.resource_version:
                lease.spec.acquire_time.CopyFrom(lease.spec.renew_time)
            return lease

        async def write(lease: apps_pb2.Lease) -> apps_pb2.Lease:
            try:
                return await create_or_update(self.client, lease)
            except ConflictError:
                self._lease = None  # start again from what the server holds
                raise

        self._lease = await retry_on_conflict(read, renew, write, attempts=3, what=f"lease {self.config.node_name}")
        self.lease_renewals += 1

