"""A Runtime wrapper that times every call (kubelet's instrumented_services.go).

Metrics are created once per registry and shared by every wrapper using it,
so one process can host hundreds of hollow kubelets without registering the
same metric twice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import TypeVar

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from kubelet.runtime.interface import (
    Container,
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    ExecResult,
    Image,
    PodSandbox,
    PodSandboxConfig,
    PodSandboxStatus,
    Runtime,
    RuntimeStatus,
    RuntimeVersion,
    SandboxState,
)

T = TypeVar("T")
log = structlog.get_logger(__name__)

# CRI calls range from ~1 ms (status) to minutes (pulls, stops with a grace period).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "kubelite_runtime_operations_duration_seconds",
            "Duration of container runtime operations, by operation.",
            ["operation"], registry=registry, buckets=BUCKETS,
        )
        self.errors = Counter(
            "kubelite_runtime_operations_errors_total",
            "Container runtime operations that failed, by operation and error.",
            ["operation", "error"], registry=registry,
        )


_metrics: dict[int, RuntimeMetrics] = {}


def metrics_for(registry: CollectorRegistry = REGISTRY) -> RuntimeMetrics:
    """The one RuntimeMetrics of a registry."""
    key = id(registry)
    if key not in _metrics:
        _metrics[key] = RuntimeMetrics(registry)
    return _metrics[key]


class InstrumentedRuntime:
    """Delegates to `inner`, recording latency and errors per operation."""

    def __init__(self, inner: Runtime, *, registry: CollectorRegistry = REGISTRY, node: str = "") -> None:
        self.inner = inner
        self._metrics = metrics_for(registry)
        self._log = log.bind(node=node) if node else log

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        try:
            result = await call
        except Exception as exc:
            elapsed = time.perf_counter() - start
            self._metrics.duration.labels(operation).observe(elapsed)
            self._metrics.errors.labels(operation, type(exc).__name__).inc()
            self._log.warning("runtime_call_failed", operation=operation,
                              duration_ms=round(elapsed * 1000, 1), error=str(exc))
            raise
        elapsed = time.perf_counter() - start
        self._metrics.duration.labels(operation).observe(elapsed)
        self._log.debug("runtime_call_finished", operation=operation, duration_ms=round(elapsed * 1000, 1))
        return result

    async def version(self) -> RuntimeVersion:
        return await self._timed("version", self.inner.version())

    async def status(self) -> RuntimeStatus:
        return await self._timed("status", self.inner.status())

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        return await self._timed("run_pod_sandbox", self.inner.run_pod_sandbox(config))

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._timed("stop_pod_sandbox", self.inner.stop_pod_sandbox(sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._timed("remove_pod_sandbox", self.inner.remove_pod_sandbox(sandbox_id))

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        return await self._timed("pod_sandbox_status", self.inner.pod_sandbox_status(sandbox_id))

    async def list_pod_sandboxes(
        self, *, state: SandboxState | None = None, labels: Mapping[str, str] | None = None
    ) -> list[PodSandbox]:
        return await self._timed("list_pod_sandboxes", self.inner.list_pod_sandboxes(state=state, labels=labels))

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        return await self._timed("create_container", self.inner.create_container(sandbox_id, config, sandbox_config))

    async def start_container(self, container_id: str) -> None:
        await self._timed("start_container", self.inner.start_container(container_id))

    async def stop_container(self, container_id: str, timeout: int) -> None:
        await self._timed("stop_container", self.inner.stop_container(container_id, timeout))

    async def remove_container(self, container_id: str) -> None:
        await self._timed("remove_container", self.inner.remove_container(container_id))

    async def container_status(self, container_id: str) -> ContainerStatus:
        return await self._timed("container_status", self.inner.container_status(container_id))

    async def list_containers(
        self,
        *,
        sandbox_id: str | None = None,
        state: ContainerState | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]:
        return await self._timed(
            "list_containers", self.inner.list_containers(sandbox_id=sandbox_id, state=state, labels=labels)
        )

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float) -> ExecResult:
        return await self._timed("exec_sync", self.inner.exec_sync(container_id, cmd, timeout))

    async def stream_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool) -> str:
        return await self._timed("stream_url", self.inner.stream_url(container_id, cmd, tty=tty, stdin=stdin))

    async def image_status(self, image: str) -> Image | None:
        return await self._timed("image_status", self.inner.image_status(image))

    async def pull_image(self, image: str) -> str:
        return await self._timed("pull_image", self.inner.pull_image(image))

    async def list_images(self) -> list[Image]:
        return await self._timed("list_images", self.inner.list_images())

    async def remove_image(self, image: str) -> None:
        await self._timed("remove_image", self.inner.remove_image(image))

    async def close(self) -> None:
        await self.inner.close()
