"""Hollow nodes: many kubelets with the fake runtime in one process, for benchmarks.

Each hollow node is a full Kubelet (its own Node, Lease, pod informer, pod
workers and status stream) over a `FakeRuntime`, so the control plane sees
real nodes whose pods start at once and run until stopped. They share one
client channel and one Services informer, which keeps hundreds of them cheap.

Node loss on demand: `HollowCluster.stop_node(name)` cancels that kubelet
(its Lease stops being renewed and its status stream closes, as when a
machine dies; its fake containers stay as they were), `start_node(name)`
brings it back over the same runtime, which it adopts. From outside the
process the same is done with files: with a control directory, creating
`<dir>/<node>.stop` stops the node and removing it starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from api.pb import core_pb2
from client.api import Client
from client.informer import Informer
from kubelet.config import DEFAULT_MAX_PODS, KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.node import MachineInfo
from kubelet.runtime import images
from kubelet.runtime.fake import FakeRuntime, ImageBehavior

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class HollowConfig:
    count: int
    prefix: str = "hollow-"
    start_index: int = 0
    max_pods: int = DEFAULT_MAX_PODS
    cpu_milli: int = 4000
    memory: int = 16 * 1024**3
    lease_renew: float = 0.5  # as a kubelet's: the controller-manager's 2 s grace is four renewals
    lease_duration: int = 4
    node_status_period: float = 10.0
    pleg_period: float = 1.0
    root_dir: Path | None = None
    control_dir: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # How containers of some images behave (e.g. exit 0 after a second, for Jobs); others run until stopped.
    behaviors: dict[str, ImageBehavior] = field(default_factory=dict)


def hollow_addresses(index: int) -> tuple[str, str]:
    """(node IP, pod CIDR) of hollow node `index`: 10.64.x.y and 10.(128+i/256).(i%256).0/24."""
    hi, lo = divmod(index, 256)
    return f"10.64.{hi}.{lo}", f"10.{128 + hi}.{lo}.0/24"


@dataclass(eq=False)
class HollowNode:
    name: str
    kubelet_config: KubeletConfig
    runtime: FakeRuntime
    kubelet: Kubelet | None = None
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class HollowCluster:
    """`run()` runs every hollow node until cancelled; nodes can be stopped and started meanwhile."""

    def __init__(self, client: Client, config: HollowConfig) -> None:
        self.client = client
        self.config = config
        self.services: Informer[core_pb2.Service] = Informer(client, "services", name="services@hollow")
        self._root = config.root_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.nodes: dict[str, HollowNode] = {}
        self._tg: asyncio.TaskGroup | None = None
        self.started = asyncio.Event()

    def names(self) -> list[str]:
        return list(self.nodes)

    def _build(self) -> None:
        if self._root is None:
            # Hollow pods' files (tokens, configMaps) are state, not data: in memory when the machine has
            # /dev/shm, so 100 nodes' writes and removals cost no journal.
            shm = Path("/dev/shm")
            self._tmp = tempfile.TemporaryDirectory(prefix="kubelite-hollow-", dir=shm if shm.is_dir() else None)
            self._root = Path(self._tmp.name)
        c = self.config
        for i in range(c.start_index, c.start_index + c.count):
            name = f"{c.prefix}{i}"
            node_ip, pod_cidr = hollow_addresses(i)
            cfg = KubeletConfig(
                node_name=name, node_ip=node_ip, pod_cidr=pod_cidr, root_dir=self._root / name,
                capacity_cpu_milli=c.cpu_milli, capacity_memory=c.memory, max_pods=c.max_pods,
                lease_renew=c.lease_renew, lease_duration=c.lease_duration,
                node_status_period=c.node_status_period, pleg_period=c.pleg_period, resync_period=30.0,
                housekeeping_period=5.0, events=False, hollow=True,
                node_labels={"kubelite.io/hollow": "true", **c.labels},
            )
            runtime = FakeRuntime(images=(images.PAUSE_IMAGE, images.BUSYBOX_IMAGE), pod_cidr=pod_cidr,
                                  node_ip=node_ip, behaviors=c.behaviors)
            self.nodes[name] = HollowNode(name, cfg, runtime)

    def _machine(self, name: str) -> MachineInfo:
        return MachineInfo(cpu_milli=self.config.cpu_milli, memory=self.config.memory, kernel="hollow",
                           os_image="kubelite hollow node", architecture="amd64", machine_id=name, boot_id=name,
                           hostname=name)

    async def run(self) -> None:
        self._build()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.services.run())
                for name in self.nodes:
                    self.start_node(name)
                if self.config.control_dir is not None:
                    tg.create_task(self._watch_control_dir(self.config.control_dir))
                log.info("hollow_nodes_started", count=len(self.nodes), prefix=self.config.prefix)
                self.started.set()
        finally:
            self._tg = None
            if self._tmp is not None:
                self._tmp.cleanup()

    def start_node(self, name: str) -> None:
        """Start (or restart) a hollow node's kubelet over its runtime."""
        node = self.nodes[name]
        if node.running or self._tg is None:
            return
        node.kubelet = Kubelet(node.kubelet_config, self.client, node.runtime, services=self.services,
                               machine=self._machine(name))
        node.task = self._tg.create_task(node.kubelet.run())
        log.info("hollow_node_started", node=name)

    def stop_node(self, name: str) -> None:
        """Stop a hollow node's kubelet as if its machine died (its pods are left as they were)."""
        node = self.nodes[name]
        if node.task is not None and not node.task.done():
            node.task.cancel()
            log.info("hollow_node_stopped", node=name)

    async def stop_node_and_wait(self, name: str) -> None:
        node = self.nodes[name]
        self.stop_node(name)
        if node.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await node.task

    async def wait_registered(self, timeout: float = 60.0) -> None:
        """Until every running hollow node has registered its Node."""
        async with asyncio.timeout(timeout):
            await self.started.wait()
            for node in self.nodes.values():
                if node.kubelet is not None:
                    await node.kubelet.started.wait()
                    assert node.kubelet.node is not None
                    await node.kubelet.node.registered.wait()

    async def _watch_control_dir(self, directory: Path) -> None:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        while True:
            stopped = await asyncio.to_thread(lambda: {p.stem for p in directory.glob("*.stop")})
            for name, node in self.nodes.items():
                if name in stopped and node.running:
                    self.stop_node(name)
                elif name not in stopped and not node.running:
                    self.start_node(name)
            await asyncio.sleep(0.5)
