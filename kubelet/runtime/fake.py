"""A Runtime with no processes, for tests and hollow nodes.

Containers "run" the moment they start and keep running until stopped,
unless their image's behaviour says they exit (with a code, after some
seconds, possibly OOM-killed) or fail to create or start. Exits are worked
out lazily from the clock whenever state is read, so there are no timers or
tasks: one process can host hundreds of hollow kubelets. Pass a clock to
move time by hand in tests.
"""

from __future__ import annotations

import collections
import hashlib
import ipaddress
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelet.runtime.interface import (
    Container,
    ContainerConfig,
    ContainerCreateError,
    ContainerRuntimeError,
    ContainerStartError,
    ContainerState,
    ContainerStatus,
    ExecResult,
    Image,
    ImageNotFoundError,
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    PodSandboxStatus,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeVersion,
    SandboxCreateError,
    SandboxState,
    StreamingUnsupportedError,
    exit_reason,
)
from kubelet.runtime.logs import format_record

EXEC_OK = ExecResult(b"", b"", 0)



def _new_id() -> str:
    """A runtime-style 64-hex ID. Unique, not secret: no random-device read, which for a hundred hollow kubelets
    in one process is a system call per container that hands the GIL to the volume threads."""
    return f"{random.getrandbits(256):064x}"

@dataclass(frozen=True)
class ImageBehavior:
    """How containers of one image behave.

    exit_code None means run until stopped; otherwise exit with it
    run_seconds after starting (oom: killed as OOMKilled, code 137).
    ignore_sigterm makes a stop end in SIGKILL (137) rather than 143.
    """

    exit_code: int | None = None
    run_seconds: float = 0.0
    oom: bool = False
    ignore_sigterm: bool = False
    create_error: str = ""
    start_error: str = ""
    logs: tuple[str, ...] = ()
    exec_result: ExecResult = EXEC_OK


@dataclass(eq=False)
class _Sandbox:
    id: str
    config: PodSandboxConfig
    created_at: int
    ip: str
    state: SandboxState = SandboxState.READY


@dataclass(eq=False)
class _Container:
    id: str
    sandbox_id: str
    config: ContainerConfig
    behavior: ImageBehavior
    created_at: int
    log_path: str
    state: ContainerState = ContainerState.CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""


def _image(name: str) -> Image:
    return Image("sha256:" + hashlib.sha256(name.encode()).hexdigest(), (name,), (), 1024)


@dataclass
class FakeRuntime:
    """In-memory Runtime. pull_any: any image pulls; else only those in `images`."""

    images: Iterable[str] = ()
    behaviors: Mapping[str, ImageBehavior] = field(default_factory=dict)
    pull_any: bool = True
    pod_cidr: str = "10.88.0.0/16"
    node_ip: str = "10.0.0.1"
    clock: Callable[[], float] = time.time
    # The last operations called, oldest first (bounded so hollow nodes stay small).
    calls: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=1000))

    def __post_init__(self) -> None:
        self._images = {name: _image(name) for name in self.images}
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._failures: dict[str, collections.deque[Exception]] = collections.defaultdict(collections.deque)
        # The first address is the bridge's, as on a real node.
        self._free_ips = (str(ip) for i, ip in enumerate(ipaddress.ip_network(self.pod_cidr).hosts()) if i)
        self._released: list[str] = []

    def fail_next(self, operation: str, error: Exception) -> None:
        """Make the next call of `operation` (e.g. "start_container") raise `error`."""
        self._failures[operation].append(error)

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        if self._failures.get(operation):
            raise self._failures[operation].popleft()

    def _now(self) -> int:
        return int(self.clock() * 1e9)

    # ---- runtime ----

    async def version(self) -> RuntimeVersion:
        self._enter("version")
        return RuntimeVersion("kubelite-fake", "0.1.0", "v1")

    async def status(self) -> RuntimeStatus:
        self._enter("status")
        return RuntimeStatus((RuntimeCondition("RuntimeReady", True), RuntimeCondition("NetworkReady", True)))

    # ---- sandboxes ----

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        self._enter("run_pod_sandbox")
        sandbox_id = _new_id()
        ip = self.node_ip if config.linux.host_network else self._allocate_ip()
        self._sandboxes[sandbox_id] = _Sandbox(sandbox_id, config, self._now(), ip)
        return sandbox_id

    def _allocate_ip(self) -> str:
        if self._released:
            return self._released.pop()
        ip = next(self._free_ips, None)
        if ip is None:  # the words of CNI's host-local IPAM, which a real node would report
            raise SandboxCreateError(f"failed to allocate for range 0: no IP addresses available in range set "
                                     f"{self.pod_cidr}")
        return ip

    def _sandbox(self, sandbox_id: str) -> _Sandbox:
        try:
            return self._sandboxes[sandbox_id]
        except KeyError:
            raise NotFoundError(f"pod sandbox {sandbox_id} not found") from None

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("stop_pod_sandbox")
        s = self._sandbox(sandbox_id)
        for c in self._containers.values():
            if c.sandbox_id == sandbox_id:
                self._stop(c, graceful=False)
        if s.state == SandboxState.READY:
            s.state = SandboxState.NOTREADY
            if not s.config.linux.host_network:
                self._released.append(s.ip)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("remove_pod_sandbox")
        if sandbox_id not in self._sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        self._containers = {k: c for k, c in self._containers.items() if c.sandbox_id != sandbox_id}
        del self._sandboxes[sandbox_id]

    def _sandbox_fields(self, s: _Sandbox) -> dict[str, Any]:
        c = s.config
        return {"id": s.id, "name": c.name, "namespace": c.namespace, "uid": c.uid, "attempt": c.attempt,
                "state": s.state, "created_at": s.created_at, "labels": dict(c.labels),
                "annotations": dict(c.annotations)}

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        self._enter("pod_sandbox_status")
        s = self._sandbox(sandbox_id)
        ip = s.ip if s.state == SandboxState.READY or s.config.linux.host_network else ""
        return PodSandboxStatus(**self._sandbox_fields(s), ip=ip)

    async def list_pod_sandboxes(
        self, *, state: SandboxState | None = None, labels: Mapping[str, str] | None = None
    ) -> list[PodSandbox]:
        self._enter("list_pod_sandboxes")
        return [
            PodSandbox(**self._sandbox_fields(s))
            for s in self._sandboxes.values()
            if (state is None or s.state == state)
            and all(s.config.labels.get(k) == v for k, v in (labels or {}).items())
        ]

    # ---- containers ----

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        self._enter("create_container")
        s = self._sandboxes.get(sandbox_id)
        if s is None or s.state != SandboxState.READY:
            raise ContainerCreateError(f"pod sandbox {sandbox_id} is not ready")
        if config.image not in self._images:
            raise ContainerCreateError(f'failed to resolve image "{config.image}": not found')
        behavior = self.behaviors.get(config.image, ImageBehavior())
        if behavior.create_error:
            raise ContainerCreateError(behavior.create_error)
        container_id = _new_id()
        base = s.config.log_directory
        log_path = os.path.join(base, config.log_path) if base and config.log_path else ""
        self._containers[container_id] = _Container(
            container_id, sandbox_id, config, behavior, self._now(), log_path
        )
        return container_id

    def _container(self, container_id: str) -> _Container:
        try:
            c = self._containers[container_id]
        except KeyError:
            raise NotFoundError(f"container {container_id} not found") from None
        self._advance(c)
        return c

    def _advance(self, c: _Container) -> None:
        """Exit a running container whose behaviour says its time is up."""
        b = c.behavior
        if c.state != ContainerState.RUNNING or (b.exit_code is None and not b.oom):
            return
        ends = c.started_at + int(b.run_seconds * 1e9)
        if self._now() >= ends:
            code = 137 if b.oom else int(b.exit_code or 0)
            self._exit(c, code, ends, oom=b.oom)

    def _exit(self, c: _Container, code: int, at: int, *, oom: bool = False) -> None:
        c.state, c.exit_code, c.finished_at = ContainerState.EXITED, code, at
        c.reason = exit_reason(code, oom_killed=oom)

    async def start_container(self, container_id: str) -> None:
        self._enter("start_container")
        c = self._container(container_id)
        if c.state != ContainerState.CREATED:
            raise ContainerStartError(f"container {container_id} is {c.state}, not created")
        if c.behavior.start_error:
            self._exit(c, 128, self._now())
            c.reason, c.message = "StartError", c.behavior.start_error
            raise ContainerStartError(c.behavior.start_error)
        c.state, c.started_at = ContainerState.RUNNING, self._now()
        if c.log_path and c.behavior.logs:
            self._write_logs(c)
        self._advance(c)

    def _write_logs(self, c: _Container) -> None:
        os.makedirs(os.path.dirname(c.log_path), exist_ok=True)
        with open(c.log_path, "ab") as f:
            for line in c.behavior.logs:
                f.write(format_record(c.started_at, "stdout", line.encode()))

    def _stop(self, c: _Container, *, graceful: bool) -> None:
        self._advance(c)
        if c.state == ContainerState.RUNNING:
            killed = c.behavior.ignore_sigterm or not graceful
            self._exit(c, 137 if killed else 143, self._now())

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self._enter("stop_container")
        self._stop(self._container(container_id), graceful=timeout > 0)

    async def remove_container(self, container_id: str) -> None:
        self._enter("remove_container")
        self._containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        self._enter("container_status")
        c = self._container(container_id)
        return ContainerStatus(
            id=c.id, name=c.config.name, attempt=c.config.attempt, state=c.state, created_at=c.created_at,
            started_at=c.started_at, finished_at=c.finished_at, exit_code=c.exit_code, reason=c.reason,
            message=c.message, image=c.config.image, image_ref=_image(c.config.image).id, log_path=c.log_path,
            labels=dict(c.config.labels), annotations=dict(c.config.annotations),
        )

    async def list_containers(
        self,
        *,
        sandbox_id: str | None = None,
        state: ContainerState | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]:
        self._enter("list_containers")
        out = []
        for c in self._containers.values():
            self._advance(c)
            if sandbox_id is not None and c.sandbox_id != sandbox_id:
                continue
            if (state is not None and c.state != state) or any(
                c.config.labels.get(k) != v for k, v in (labels or {}).items()
            ):
                continue
            out.append(Container(
                id=c.id, sandbox_id=c.sandbox_id, name=c.config.name, attempt=c.config.attempt,
                image=c.config.image, image_ref=_image(c.config.image).id, state=c.state,
                created_at=c.created_at, labels=dict(c.config.labels), annotations=dict(c.config.annotations),
            ))
        return out

    async def stream_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool) -> str:
        raise StreamingUnsupportedError("the fake runtime runs no processes to stream")

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float) -> ExecResult:
        self._enter("exec_sync")
        c = self._container(container_id)
        if c.state != ContainerState.RUNNING:
            raise ContainerRuntimeError(f"container {container_id} is {c.state}, not running")
        return c.behavior.exec_result

    # ---- images ----

    async def image_status(self, image: str) -> Image | None:
        self._enter("image_status")
        return self._images.get(image)

    async def pull_image(self, image: str) -> str:
        self._enter("pull_image")
        if image not in self._images:
            if not self.pull_any:
                raise ImageNotFoundError(f'failed to resolve reference "{image}": not found')
            self._images[image] = _image(image)
        return self._images[image].id

    async def list_images(self) -> list[Image]:
        self._enter("list_images")
        return list(self._images.values())

    async def remove_image(self, image: str) -> None:
        self._enter("remove_image")
        self._images.pop(image, None)

    async def close(self) -> None:
        self.calls.append("close")
