"""The container runtime as the kubelet sees it: a small, async CRI.

One Protocol shaped like CRI's RuntimeService + ImageService, plain
dataclasses for configs and statuses (no protobuf leaks out of `cri`), and
one error hierarchy whose `reason` is the Kubernetes waiting reason the
kubelet reports (ErrImagePull, CreateContainerError, RunContainerError).
Timestamps are nanoseconds since the epoch, as in CRI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

# ---- errors ----


class ContainerRuntimeError(Exception):
    """Base of every runtime failure; `reason` is the Kubernetes-style reason."""

    reason = "RuntimeError"


class RuntimeUnavailableError(ContainerRuntimeError):
    """The runtime cannot be reached (socket missing, daemon down)."""

    reason = "RuntimeUnavailable"


class NotFoundError(ContainerRuntimeError):
    """The sandbox or container id is unknown to the runtime."""

    reason = "NotFound"


class ImagePullError(ContainerRuntimeError):
    """Pulling an image failed (registry unreachable, auth, bad reference)."""

    reason = "ErrImagePull"


class ImageNotFoundError(ImagePullError):
    """The image does not exist where the runtime looked for it."""


class SandboxCreateError(ContainerRuntimeError):
    """RunPodSandbox failed (network setup, pause image, cgroups)."""

    reason = "CreatePodSandboxError"


class ContainerCreateError(ContainerRuntimeError):
    reason = "CreateContainerError"


class ContainerStartError(ContainerRuntimeError):
    reason = "RunContainerError"


class ExecTimeoutError(ContainerRuntimeError):
    """exec_sync's command outlived its timeout (a probe timing out)."""

    reason = "ExecTimeout"


class StreamingUnsupportedError(ContainerRuntimeError):
    """The runtime has no streaming server (interactive exec, attach)."""


# ---- states ----


class ContainerState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class SandboxState(StrEnum):
    READY = "ready"
    NOTREADY = "notready"


# Reasons a runtime gives an exited container (containerd's words).
REASON_COMPLETED = "Completed"
REASON_ERROR = "Error"
REASON_OOM_KILLED = "OOMKilled"


def exit_reason(exit_code: int, *, oom_killed: bool = False) -> str:
    if oom_killed:
        return REASON_OOM_KILLED
    return REASON_COMPLETED if exit_code == 0 else REASON_ERROR


# ---- configs ----


@dataclass(frozen=True)
class DNSConfig:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class LinuxSandboxOptions:
    """Pod-level Linux settings. host_network runs the pod in the node's netns;
    share_process_namespace gives the pod's containers one PID namespace."""

    host_network: bool = False
    share_process_namespace: bool = False
    sysctls: Mapping[str, str] = field(default_factory=dict)
    host_pid: bool = False  # the node's PID namespace (hostPID)
    host_ipc: bool = False  # the node's IPC namespace (hostIPC)
    privileged: bool = False  # a container of the pod is privileged (the runtime then allows it)


@dataclass(frozen=True, kw_only=True)
class PodSandboxConfig:
    name: str
    namespace: str
    uid: str
    attempt: int = 0
    hostname: str = ""
    # Containers log to <log_directory>/<ContainerConfig.log_path>.
    log_directory: str = ""
    dns: DNSConfig = DNSConfig()
    port_mappings: tuple[PortMapping, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # A cgroupfs path such as /kubelite/<node>/pod<uid>; the runtime never removes it.
    cgroup_parent: str = ""
    linux: LinuxSandboxOptions = LinuxSandboxOptions()


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    readonly: bool = False


@dataclass(frozen=True)
class Security:
    """A container's Linux security settings (CRI's LinuxContainerSecurityContext). None/empty: the image's user,
    the runtime's default capabilities, no seccomp profile ("" seccomp: unconfined, as Kubernetes' default)."""

    privileged: bool = False
    run_as_user: int | None = None
    run_as_username: str = ""  # the image's non-numeric user, when no uid is given
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    no_new_privs: bool = False
    seccomp: str = ""  # "", RuntimeDefault or Unconfined


@dataclass(frozen=True)
class Resources:
    """Linux limits; 0 means unset. cpu_shares 1024 = one CPU's weight,
    cpu_quota/cpu_period in microseconds."""

    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    memory_limit_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    name: str
    image: str
    attempt: int = 0
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    # Relative to the sandbox's log_directory.
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    tty: bool = False
    stdin: bool = False
    security: Security = Security()


# ---- statuses ----


@dataclass(frozen=True, kw_only=True)
class PodSandbox:
    """A sandbox as listed."""

    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: SandboxState
    created_at: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PodSandboxStatus(PodSandbox):
    """A sandbox in detail: adds its addresses. ip is empty for host-network pods."""

    ip: str = ""
    additional_ips: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Container:
    """A container as listed."""

    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    image_ref: str
    state: ContainerState
    created_at: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ContainerStatus:
    id: str
    name: str
    attempt: int
    state: ContainerState
    created_at: int
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    # Absolute path of the CRI-format log file ("" if the container has none).
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass(frozen=True)
class Image:
    id: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0
    uid: int | None = None  # the image's user, if numeric (0 also for an image that names no user)
    username: str = ""  # the image's user, if not numeric


@dataclass(frozen=True)
class RuntimeVersion:
    runtime_name: str
    runtime_version: str
    runtime_api_version: str


@dataclass(frozen=True)
class RuntimeCondition:
    type: str
    status: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class RuntimeStatus:
    conditions: tuple[RuntimeCondition, ...]

    def _is(self, kind: str) -> bool:
        return any(c.type == kind and c.status for c in self.conditions)

    @property
    def runtime_ready(self) -> bool:
        return self._is("RuntimeReady")

    @property
    def network_ready(self) -> bool:
        return self._is("NetworkReady")


# ---- the interface ----


@runtime_checkable
class Runtime(Protocol):
    """What the kubelet needs from a container runtime (CRI's shape).

    Stop and remove are idempotent: stopping a stopped sandbox or container,
    or removing a removed one, succeeds. Status calls on unknown ids raise
    NotFoundError.
    """

    async def version(self) -> RuntimeVersion: ...

    async def status(self) -> RuntimeStatus: ...

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus: ...

    async def list_pod_sandboxes(
        self, *, state: SandboxState | None = None, labels: Mapping[str, str] | None = None
    ) -> list[PodSandbox]: ...

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: int) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(
        self,
        *,
        sandbox_id: str | None = None,
        state: ContainerState | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]: ...

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float) -> ExecResult: ...

    async def stream_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool) -> str:
        """The runtime's streaming URL (WebSocket, v4.channel.k8s.io) for an interactive exec of `cmd`, or, with
        no `cmd`, an attach to the container's process; StreamingUnsupportedError where the runtime has none."""
        ...

    async def image_status(self, image: str) -> Image | None:
        """The image if present, else None (absence is not an error)."""
        ...

    async def pull_image(self, image: str) -> str:
        """Fetch the image; returns its image ref (id)."""
        ...

    async def list_images(self) -> list[Image]: ...

    async def remove_image(self, image: str) -> None: ...

    async def close(self) -> None: ...


async def ensure_image(runtime: Runtime, image: str) -> str:
    """IfNotPresent: the image ref, pulling only when the image is missing.

    CRI pulls always contact the registry even for a present image, so ask
    for its status first.
    """
    present = await runtime.image_status(image)
    if present is not None:
        return present.id
    return await runtime.pull_image(image)
