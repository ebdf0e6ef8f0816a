"""Helpers for kubelet tests: start a kubelet for a block, build pods, wait for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import testpki
from conftest import apiserver_config

from api.errors import NotFoundError, UnavailableError
from api.pb import core_pb2
from apiserver.server import ApiServer
from client.api import Client
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet, running
from kubelet.runtime.interface import Runtime

T = TypeVar("T")
BUSYBOX = "localhost:5000/kubelite/busybox:1.35"


def config(node: str, root: Path, **overrides: Any) -> KubeletConfig:
    """A kubelet config quick enough for tests: fast heartbeats, relists and back-off; its API over mutual TLS."""
    files = testpki.get().node(node)
    base: dict[str, Any] = {
        "serving_cert_file": files["kubelet-serving"], "serving_key_file": files["kubelet-serving-key"],
        "client_ca_file": testpki.get().ca_file,
        "node_name": node, "root_dir": root, "listen": "127.0.0.1:0", "lease_renew": 0.2, "node_status_period": 2.0,
        "pleg_period": 0.2, "resync_period": 5.0, "housekeeping_period": 0.3, "backoff_initial": 0.3,
        "backoff_max": 1.2, "cluster_dns": ("10.96.0.10",), "events": False,
    }
    base.update(overrides)
    return KubeletConfig(**base)


class Apiserver:
    """An in-process apiserver a test can stop and start again at the same address."""

    def __init__(self, etcd_url: str, **overrides: Any) -> None:
        self.etcd_url = etcd_url
        self.overrides = overrides
        self.address = ""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        listen = self.address or "127.0.0.1:0"
        server = ApiServer(apiserver_config(self.etcd_url, listen=[listen], **self.overrides))
        self._task = asyncio.ensure_future(server.run())
        async with asyncio.timeout(30):
            while not server.started.is_set():
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.02)
        self.address = f"127.0.0.1:{server.ports[0]}"
        return self.address

    def client(self) -> Client:
        return Client(testpki.get().client(self.address))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@contextlib.asynccontextmanager
async def kubelet(client: Client, runtime: Runtime, cfg: KubeletConfig, **kw: Any) -> AsyncIterator[Kubelet]:
    k = Kubelet(cfg, client, runtime, **kw)
    async with running(k):
        assert k.node is not None
        async with asyncio.timeout(20):
            await k.node.registered.wait()
        yield k


def pod(name: str, node: str, *containers: dict[str, Any], policy: str = "Always", grace: int = 1,
        namespace: str = "default", init: tuple[dict[str, Any], ...] = (), **spec: Any) -> core_pb2.Pod:
    """A pod bound to `node`; containers are dicts of Container fields (image defaults to busybox)."""
    return core_pb2.Pod(
        metadata={"name": name, "namespace": namespace},
        spec={"node_name": node, "restart_policy": policy, "termination_grace_period_seconds": grace,
              "containers": [{"image": BUSYBOX, **c} for c in containers or ({"name": "main"},)],
              "init_containers": [{"image": BUSYBOX, **c} for c in init], **spec},
    )


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, interval: float = 0.05,
                     what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = await check()
        except (NotFoundError, UnavailableError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def pod_where(client: Client, name: str, predicate: Callable[[core_pb2.Pod], bool], *, namespace: str = "default",
                    timeout: float = 20.0, what: str = "") -> core_pb2.Pod:
    async def check() -> core_pb2.Pod | None:
        p = await client.get("pods", name, namespace)
        return p if predicate(p) else None

    return await eventually(check, timeout=timeout, what=what or f"pod {name}")


async def gone(client: Client, kind: str, name: str, namespace: str = "", *, timeout: float = 20.0) -> None:
    async def check() -> bool:
        try:
            await client.get(kind, name, namespace)
        except NotFoundError:
            return True
        return False

    await eventually(check, timeout=timeout, what=f"{kind} {name} to be gone")


def state_of(p: core_pb2.Pod, container: str) -> core_pb2.ContainerStatus | None:
    return next((c for c in (*p.status.container_statuses, *p.status.init_container_statuses) if c.name == container),
                None)


def running_ready(p: core_pb2.Pod) -> bool:
    return p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses) and bool(
        p.status.container_statuses)


def condition(p: core_pb2.Pod, type_: str) -> str:
    return next((c.status for c in p.status.conditions if c.type == type_), "")

