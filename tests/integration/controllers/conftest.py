"""Fixtures for controller integration tests: a real apiserver over real etcd, the controller-manager in-process,
and, where pods must really run and become Ready, the real scheduler and hollow kubelets (fake runtime)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testpki
import yaml

from api import convert, kinds
from api.errors import ConflictError
from client.api import Client
from controllers.manager import Config, ControllerManager
from kubelet.hollow import HollowCluster, HollowConfig
from scheduler.daemon import Scheduler, wait_leading
from scheduler.framework.config import SchedulerConfig

IMAGE = "localhost:5000/kubelite/busybox:1.35"
# Every component stops within a second or two of a cancel; far longer is a lost cancellation.
STOP_TIMEOUT = 30.0
KUBELITE_PATH = str(Path(sys.executable).parent / "kubelite")
# CLI subprocesses must not pick up a developer's ~/.kubelite/config.yaml.
KUBELITE_ENV = {**os.environ, "KUBELITE_CONFIG": testpki.get().cli_config()}


@dataclass
class Running:
    """Background tasks started for a test, cancelled (and awaited) when it ends."""

    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def start(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def stop(self) -> None:
        for task in reversed(self.tasks):
            task.cancel()
        tasks, self.tasks = self.tasks, []
        if not tasks:
            return  # stopped already (a test stopping its components before its apiserver)
        done, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: a component's own error at shutdown is not this test's result
        if stuck:
            # Name the component that ignored its cancellation instead of hanging until the suite's timeout.
            stacks = io.StringIO()
            for task in stuck:
                task.print_stack(file=stacks)
            raise AssertionError(f"{len(stuck)} task(s) still running {STOP_TIMEOUT:.0f}s after cancel:\n"
                                 f"{stacks.getvalue()}")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        await r.stop()


async def start_manager(running: Running, address: str, **overrides: Any) -> ControllerManager:
    """A controller-manager with its own client; leader election off unless asked for."""
    settings: dict[str, Any] = {"leader_elect": False}
    settings.update(overrides)
    conn = testpki.get().client(address, "controller-manager")
    client = Client(conn)
    manager = ControllerManager(Config(client=conn, **settings), client=client)

    async def run() -> None:
        try:
            await manager.run()
        finally:
            await client.close()

    running.start(run())
    if not settings["leader_elect"]:
        await asyncio.wait_for(manager.leading.wait(), 10)
        for controller in manager.controllers.values():
            await asyncio.wait_for(controller.ready(), 10)
    return manager


@pytest.fixture
async def manager(apiserver: Any, running: Running) -> ControllerManager:
    return await start_manager(running, apiserver.address)


async def start_scheduler(running: Running, address: str) -> Scheduler:
    client = Client(testpki.get().client(address, "scheduler"))
    scheduler = Scheduler(client, SchedulerConfig(leader_elect=False, backoff_initial=0.2, backoff_max=1.0),
                          identity="test-scheduler")

    async def run() -> None:
        try:
            await scheduler.run()
        finally:
            await client.close()

    running.start(run())
    await wait_leading(scheduler, 20)
    return scheduler


async def start_hollow(running: Running, address: str, count: int, **overrides: Any) -> HollowCluster:
    """`count` hollow kubelets (fake runtime) named hollow-0, hollow-1, ..."""
    client = Client(testpki.get().client(address))
    cluster = HollowCluster(client, HollowConfig(count=count, **overrides))

    async def run() -> None:
        try:
            await cluster.run()
        finally:
            await client.close()

    running.start(run())
    await cluster.wait_registered(30)
    return cluster


@pytest.fixture
async def cluster(apiserver: Any, running: Running, manager: ControllerManager) -> HollowCluster:
    """Controller-manager, scheduler and three hollow nodes."""
    await start_scheduler(running, apiserver.address)
    return await start_hollow(running, apiserver.address, 3)


async def change(client: Client, resource: str, name: str, mutate: Callable[[Any], None],
                 namespace: str = "default") -> Any:
    """Read, change and write back, again on a conflict: a controller's status write may land between the read and
    the write, as for any client of Kubernetes (retry on conflict)."""
    for _ in range(20):
        current = await client.get(resource, name, namespace)
        mutate(current)
        try:
            return await client.update(current)
        except ConflictError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{resource}/{name}: still conflicting after 20 writes")


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05,
                     what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


def manifest(text: str) -> Any:
    """A typed object from YAML."""
    return kinds.unwrap(convert.manifest_to_object(yaml.safe_load(text)))


def deployment_yaml(name: str = "web", replicas: int = 3, *, image: str = IMAGE, strategy: str = "",
                    extra_spec: str = "", grace: int = 1) -> str:
    strategy_text = f"\n  strategy: {strategy}" if strategy else ""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}{strategy_text}{extra_spec}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
      - name: web
        image: {image}
        ports: [{{name: http, containerPort: 8080}}]
"""


async def create(client: Client, text: str) -> Any:
    return await client.create(manifest(text))


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def owned_by(obj: Any, uid: str) -> bool:
    return any(r.uid == uid for r in obj.metadata.owner_references)


@dataclass
class PodCensus:
    """A watcher's running view of the pods in a namespace, with the extremes it has seen."""

    selector: str = ""
    pods: dict[str, Any] = field(default_factory=dict)
    max_total: int = 0
    max_active: int = 0
    min_ready: int = 10**9
    samples: int = 0

    def load(self, pods: list[Any]) -> None:
        """Start from a listed state (all at once, so extremes are not taken half-way through the list)."""
        self.pods = {p.metadata.name: p for p in pods}
        self._record()

    def apply(self, type_: str, pod: Any) -> None:
        if type_ == "DELETED":
            self.pods.pop(pod.metadata.name, None)
        else:
            self.pods[pod.metadata.name] = pod
        self._record()

    def _record(self) -> None:
        self.samples += 1
        self.max_total = max(self.max_total, len(self.pods))
        self.max_active = max(self.max_active, self.active)
        self.min_ready = min(self.min_ready, self.ready)

    @property
    def active(self) -> int:
        return sum(1 for p in self.pods.values() if not p.metadata.HasField("deletion_timestamp"))

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods.values() if not p.metadata.HasField("deletion_timestamp") and is_ready(p))


async def watch_census(client: Client, census: PodCensus, namespace: str = "default") -> None:
    """Keep `census` current from a watch (every change, not samples)."""
    listed = await client.list("pods", namespace, label_selector=census.selector)
    census.load(listed.items)
    async for ev in client.watch("pods", namespace, resource_version=listed.resource_version,
                                 label_selector=census.selector):
        if ev.type != "BOOKMARK":
            census.apply(ev.type, ev.object)


class FreezableProxy:
    """A TCP proxy to the apiserver that can stop passing bytes (a network stall, not a closed connection)."""

    def __init__(self, upstream: str) -> None:
        self.host, port = upstream.rsplit(":", 1)
        self.port = int(port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
