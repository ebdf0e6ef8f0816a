"""The Runtime over CRI gRPC (containerd, CRI-O), with grpc.aio.

Pods are CRI sandboxes: a pause container holds the network, IPC and UTS
namespaces that the pod's containers join, so they share the IP (from
PodSandboxStatus) and hostname. Every call carries a deadline. Things CRI
leaves to the kubelet: logs are files (see `logs`), and pod cgroups
(cgroup_parent) outlive their sandbox (see `cgroups.remove`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import structlog

from kubelet.runtime.criapi import api_pb2 as api
from kubelet.runtime.criapi import api_pb2_grpc as api_grpc
from kubelet.runtime.interface import (
    Container,
    ContainerConfig,
    ContainerCreateError,
    ContainerRuntimeError,
    ContainerStartError,
    ContainerState,
    ContainerStatus,
    ExecResult,
    ExecTimeoutError,
    Image,
    ImageNotFoundError,
    ImagePullError,
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    PodSandboxStatus,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeUnavailableError,
    RuntimeVersion,
    SandboxCreateError,
    SandboxState,
    Security,
)

log = structlog.get_logger(__name__)

_CONTAINER_STATE = {
    api.CONTAINER_CREATED: ContainerState.CREATED,
    api.CONTAINER_RUNNING: ContainerState.RUNNING,
    api.CONTAINER_EXITED: ContainerState.EXITED,
    api.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
}
_CONTAINER_STATE_PB = {v: k for k, v in _CONTAINER_STATE.items()}
_SANDBOX_STATE = {api.SANDBOX_READY: SandboxState.READY, api.SANDBOX_NOTREADY: SandboxState.NOTREADY}
_SANDBOX_STATE_PB = {v: k for k, v in _SANDBOX_STATE.items()}
_PROTOCOL = {"TCP": api.TCP, "UDP": api.UDP, "SCTP": api.SCTP}


def _target(address: str) -> str:
    return address if "://" in address or address.startswith("unix:") else f"unix://{address}"


class CRIRuntime:
    """A Runtime speaking CRI v1 to a socket such as /run/containerd/containerd.sock.

    `timeout` bounds every call; pulls get `pull_timeout`, and stop and exec
    get their own timeout on top. Construct it inside the event loop.
    """

    def __init__(self, address: str, *, timeout: float = 30.0, pull_timeout: float = 600.0) -> None:
        self.address = address
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._channel = grpc.aio.insecure_channel(
            _target(address), options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        )
        self._rt = api_grpc.RuntimeServiceStub(self._channel)
        self._img = api_grpc.ImageServiceStub(self._channel)

    async def _call(
        self,
        method: Any,
        request: Any,
        *,
        timeout: float | None = None,
        error: type[ContainerRuntimeError] = ContainerRuntimeError,
        not_found: type[ContainerRuntimeError] = NotFoundError,
    ) -> Any:
        try:
            return await method(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                raise RuntimeUnavailableError(f"runtime at {self.address} unavailable: {details}") from exc
            if code == grpc.StatusCode.NOT_FOUND:
                raise not_found(details) from exc
            raise error(details or code.name) from exc

    # ---- runtime ----

    async def version(self) -> RuntimeVersion:
        resp = await self._call(self._rt.Version, api.VersionRequest(version="v1"))
        return RuntimeVersion(resp.runtime_name, resp.runtime_version, resp.runtime_api_version)

    async def status(self) -> RuntimeStatus:
        resp = await self._call(self._rt.Status, api.StatusRequest())
        return RuntimeStatus(tuple(
            RuntimeCondition(c.type, c.status, c.reason, c.message) for c in resp.status.conditions
        ))

    # ---- sandboxes ----

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        req = api.RunPodSandboxRequest(config=sandbox_config_pb(config))
        resp = await self._call(self._rt.RunPodSandbox, req, error=SandboxCreateError, not_found=SandboxCreateError)
        log.debug("sandbox_started", sandbox_id=resp.pod_sandbox_id, pod=f"{config.namespace}/{config.name}")
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call(self._rt.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call(self._rt.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        resp = await self._call(self._rt.PodSandboxStatus, api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))
        s = resp.status
        return PodSandboxStatus(
            **_sandbox_fields(s),
            ip=s.network.ip,
            additional_ips=tuple(ip.ip for ip in s.network.additional_ips),
        )

    async def list_pod_sandboxes(
        self, *, state: SandboxState | None = None, labels: Mapping[str, str] | None = None
    ) -> list[PodSandbox]:
        filt = api.PodSandboxFilter(label_selector=dict(labels or {}))
        if state is not None:
            filt.state.state = _SANDBOX_STATE_PB[state]
        resp = await self._call(self._rt.ListPodSandbox, api.ListPodSandboxRequest(filter=filt))
        return [PodSandbox(**_sandbox_fields(s)) for s in resp.items]

    # ---- containers ----

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        req = api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id,
            config=container_config_pb(config, sandbox_config),
            sandbox_config=sandbox_config_pb(sandbox_config),
        )
        resp = await self._call(
            self._rt.CreateContainer, req, error=ContainerCreateError, not_found=ContainerCreateError
        )
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        await self._call(
            self._rt.StartContainer, api.StartContainerRequest(container_id=container_id), error=ContainerStartError
        )

    async def stop_container(self, container_id: str, timeout: int) -> None:
        req = api.StopContainerRequest(container_id=container_id, timeout=timeout)
        await self._call(self._rt.StopContainer, req, timeout=self.timeout + timeout)

    async def remove_container(self, container_id: str) -> None:
        await self._call(self._rt.RemoveContainer, api.RemoveContainerRequest(container_id=container_id))

    async def container_status(self, container_id: str) -> ContainerStatus:
        resp = await self._call(self._rt.ContainerStatus, api.ContainerStatusRequest(container_id=container_id))
        s = resp.status
        return ContainerStatus(
            id=s.id,
            name=s.metadata.name,
            attempt=s.metadata.attempt,
            state=_CONTAINER_STATE[s.state],
            created_at=s.created_at,
            started_at=s.started_at,
            finished_at=s.finished_at,
            exit_code=s.exit_code,
            reason=s.reason,
            message=s.message,
            image=s.image.image,
            image_ref=s.image_ref,
            log_path=s.log_path,
            labels=dict(s.labels),
            annotations=dict(s.annotations),
        )

    async def list_containers(
        self,
        *,
        sandbox_id: str | None = None,
        state: ContainerState | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]:
        filt = api.ContainerFilter(pod_sandbox_id=sandbox_id or "", label_selector=dict(labels or {}))
        if state is not None:
            filt.state.state = _CONTAINER_STATE_PB[state]
        resp = await self._call(self._rt.ListContainers, api.ListContainersRequest(filter=filt))
        return [
            Container(
                id=c.id,
                sandbox_id=c.pod_sandbox_id,
                name=c.metadata.name,
                attempt=c.metadata.attempt,
                image=c.image.image,
                image_ref=c.image_ref,
                state=_CONTAINER_STATE[c.state],
                created_at=c.created_at,
                labels=dict(c.labels),
                annotations=dict(c.annotations),
            )
            for c in resp.containers
        ]

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float) -> ExecResult:
        seconds = max(1, math.ceil(timeout))
        req = api.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=seconds)
        try:
            resp = await self._call(self._rt.ExecSync, req, timeout=self.timeout + seconds)
        except ContainerRuntimeError as exc:
            # containerd reports its own exec timeout as an error mentioning it.
            if "timeout" in str(exc) and "exceeded" in str(exc):
                raise ExecTimeoutError(str(exc)) from exc
            raise
        return ExecResult(resp.stdout, resp.stderr, resp.exit_code)

    async def stream_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool) -> str:
        if cmd:
            exec_req = api.ExecRequest(container_id=container_id, cmd=list(cmd), tty=tty, stdin=stdin, stdout=True,
                                       stderr=not tty)
            return (await self._call(self._rt.Exec, exec_req)).url
        attach = api.AttachRequest(container_id=container_id, tty=tty, stdin=stdin, stdout=True, stderr=not tty)
        return (await self._call(self._rt.Attach, attach)).url

    # ---- images ----

    async def image_status(self, image: str) -> Image | None:
        resp = await self._call(self._img.ImageStatus, api.ImageStatusRequest(image=api.ImageSpec(image=image)))
        return _image(resp.image) if resp.HasField("image") else None

    async def pull_image(self, image: str) -> str:
        req = api.PullImageRequest(image=api.ImageSpec(image=image))
        try:
            resp = await self._call(
                self._img.PullImage, req, timeout=self.pull_timeout, error=ImagePullError, not_found=ImageNotFoundError
            )
        except ImagePullError as exc:
            if not isinstance(exc, ImageNotFoundError) and "not found" in str(exc):
                raise ImageNotFoundError(str(exc)) from exc
            raise
        return resp.image_ref

    async def list_images(self) -> list[Image]:
        resp = await self._call(self._img.ListImages, api.ListImagesRequest())
        return [_image(i) for i in resp.images]

    async def remove_image(self, image: str) -> None:
        """Remove an image. CRI removes by image id, so every tag of it goes."""
        await self._call(self._img.RemoveImage, api.RemoveImageRequest(image=api.ImageSpec(image=image)))

    async def close(self) -> None:
        await self._channel.close()


# ---- conversions ----


def _namespace_options(config: PodSandboxConfig) -> api.NamespaceOption:
    """The kubelet's defaults: pod network and IPC; a PID namespace per container
    unless the pod shares one."""
    linux = config.linux
    pid = api.NODE if linux.host_pid else api.POD if linux.share_process_namespace else api.CONTAINER
    return api.NamespaceOption(
        network=api.NODE if linux.host_network else api.POD,
        pid=pid,
        ipc=api.NODE if linux.host_ipc else api.POD,
    )


_SECCOMP = {"RuntimeDefault": api.SecurityProfile.RuntimeDefault, "Unconfined": api.SecurityProfile.Unconfined}


def container_security_pb(s: Security, sandbox: PodSandboxConfig) -> api.LinuxContainerSecurityContext:
    """CRI's security context for one container."""
    out = api.LinuxContainerSecurityContext(
        namespace_options=_namespace_options(sandbox),
        privileged=s.privileged,
        run_as_username=s.run_as_username,
        readonly_rootfs=s.readonly_rootfs,
        supplemental_groups=s.supplemental_groups,
        no_new_privs=s.no_new_privs,
    )
    if s.add_capabilities or s.drop_capabilities:
        out.capabilities.CopyFrom(api.Capability(add_capabilities=s.add_capabilities,
                                                 drop_capabilities=s.drop_capabilities))
    if s.run_as_user is not None:
        out.run_as_user.value = s.run_as_user
    if s.run_as_group is not None:
        out.run_as_group.value = s.run_as_group
    if s.seccomp:
        out.seccomp.CopyFrom(api.SecurityProfile(profile_type=_SECCOMP[s.seccomp]))
    return out


def sandbox_config_pb(c: PodSandboxConfig) -> api.PodSandboxConfig:
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=c.name, uid=c.uid, namespace=c.namespace, attempt=c.attempt),
        hostname=c.hostname,
        log_directory=c.log_directory,
        dns_config=api.DNSConfig(servers=c.dns.servers, searches=c.dns.searches, options=c.dns.options),
        port_mappings=[
            api.PortMapping(protocol=_PROTOCOL[p.protocol.upper()], container_port=p.container_port,
                            host_port=p.host_port, host_ip=p.host_ip)
            for p in c.port_mappings
        ],
        labels=dict(c.labels),
        annotations=dict(c.annotations),
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=c.cgroup_parent,
            security_context=api.LinuxSandboxSecurityContext(namespace_options=_namespace_options(c),
                                                             privileged=c.linux.privileged),
            sysctls=dict(c.linux.sysctls),
        ),
    )


def container_config_pb(c: ContainerConfig, sandbox: PodSandboxConfig) -> api.ContainerConfig:
    r = c.resources
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=c.name, attempt=c.attempt),
        image=api.ImageSpec(image=c.image),
        command=c.command,
        args=c.args,
        working_dir=c.working_dir,
        envs=[api.KeyValue(key=k, value=v.encode()) for k, v in c.env.items()],
        mounts=[
            api.Mount(container_path=m.container_path, host_path=m.host_path, readonly=m.readonly) for m in c.mounts
        ],
        labels=dict(c.labels),
        annotations=dict(c.annotations),
        log_path=c.log_path,
        stdin=c.stdin,
        tty=c.tty,
        linux=api.LinuxContainerConfig(
            resources=api.LinuxContainerResources(
                cpu_period=r.cpu_period, cpu_quota=r.cpu_quota, cpu_shares=r.cpu_shares,
                memory_limit_in_bytes=r.memory_limit_bytes,
            ),
            security_context=container_security_pb(c.security, sandbox),
        ),
    )


def _sandbox_fields(s: Any) -> dict[str, Any]:
    """The fields PodSandbox and PodSandboxStatus messages share."""
    return {
        "id": s.id,
        "name": s.metadata.name,
        "namespace": s.metadata.namespace,
        "uid": s.metadata.uid,
        "attempt": s.metadata.attempt,
        "state": _SANDBOX_STATE[s.state],
        "created_at": s.created_at,
        "labels": dict(s.labels),
        "annotations": dict(s.annotations),
    }


def _image(i: api.Image) -> Image:
    uid = i.uid.value if i.HasField("uid") else None
    return Image(i.id, tuple(i.repo_tags), tuple(i.repo_digests), i.size, uid=uid, username=i.username)
