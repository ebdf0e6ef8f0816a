"""The Runtime as plain host processes: no images, for laptops and fast tests.

A pod sandbox is a holder process (`sleep infinity`) in new network, UTS and
IPC namespaces, like CRI's pause container; each container is a host
process that joins them (so containers share the pod's IP, loopback and
hostname) through `procinit`. Pods get real addresses from the CNI plugins
(bridge + host-local + portmap, the same conflist as containerd's), run in
the node's network namespace. Containers log in the CRI file format, so the
kubelet reads these logs the same way.

What a host process does not get: a root filesystem (the image is only a
name, every command runs from the host's PATH), its own PID namespace, a
tty or stdin, per-pod resolv.conf. Mounts are bind mounts in the
container's private mount namespace and need the target to exist on the
host. With a cgroup_parent, each container gets a cgroup with its memory and
CPU limits, and a container the kernel OOM-kills reports OOMKilled.

State lives in this object: close() tears everything down, and children die
with the process that started them (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from kubelet.runtime import cgroups
from kubelet.runtime.cni import CNIError, CNINetwork, PortMap
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
    NotFoundError,
    PodSandbox,
    PodSandboxConfig,
    PodSandboxStatus,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeVersion,
    SandboxCreateError,
    SandboxState,
    Security,
    StreamingUnsupportedError,
    exit_reason,
)
from kubelet.runtime.logs import LogWriter

log = structlog.get_logger(__name__)

PROCINIT = str(Path(__file__).with_name("procinit.py"))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProcessRuntimeConfig:
    """cni_conflist None: pods get their own network namespace with loopback only, no IP.
    node_netns: the node's netns path, where CNI plugins run and host-network
    pods live (None: this process's)."""

    cni_conflist: Mapping[str, Any] | None = None
    cni_bin_dir: str = "/usr/lib/cni"
    node_netns: str | None = None
    holder_command: tuple[str, ...] = ("sleep", "infinity")
    python: str = sys.executable


@dataclass(eq=False)
class _Sandbox:
    id: str
    config: PodSandboxConfig
    created_at: int
    holder: asyncio.subprocess.Process
    state: SandboxState = SandboxState.READY
    ips: tuple[str, ...] = ()

    def ns(self, kind: str) -> str:
        return f"/proc/{self.holder.pid}/ns/{kind}"


@dataclass(eq=False)
class _Container:
    id: str
    sandbox: _Sandbox
    config: ContainerConfig
    created_at: int
    log_path: str
    cgroup: str
    state: ContainerState = ContainerState.CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    proc: asyncio.subprocess.Process | None = None
    supervisor: asyncio.Task[None] | None = None
    image_ref: str = ""


def _image_id(image: str) -> str:
    """A stable id for an image name: there is no image, only the name."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def _matches(labels: Mapping[str, str], selector: Mapping[str, str] | None) -> bool:
    return not selector or all(labels.get(k) == v for k, v in selector.items())


class ProcessRuntime:
    """A Runtime of host processes in per-pod namespaces (needs root)."""

    def __init__(self, config: ProcessRuntimeConfig = ProcessRuntimeConfig()) -> None:
        self.config = config
        self._cni = (
            CNINetwork(config.cni_conflist, bin_dir=config.cni_bin_dir, netns=config.node_netns)
            if config.cni_conflist is not None
            else None
        )
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._images: dict[str, Image] = {}

    # ---- runtime ----

    async def version(self) -> RuntimeVersion:
        return RuntimeVersion("kubelite-process", "0.1.0", "v1")

    async def status(self) -> RuntimeStatus:
        net = "" if self._cni else "no CNI config: pods get loopback only"
        return RuntimeStatus((RuntimeCondition("RuntimeReady", True), RuntimeCondition("NetworkReady", True, "", net)))

    # ---- children ----

    async def _spawn(
        self, spec: dict[str, Any], *, stdout: int | None, stderr: int | None
    ) -> asyncio.subprocess.Process:
        """Start procinit with a spec; returns once it has exec'd, or raises what it reported."""
        r, w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                self.config.python, "-I", "-S", PROCINIT, json.dumps({**spec, "status_fd": w}),
                stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                pass_fds=(w,), start_new_session=True,
            )
        except OSError:
            os.close(r)
            raise
        finally:
            os.close(w)
        try:
            # EOF means the exec happened (the fd is close-on-exec); bytes are procinit's error.
            failure = await asyncio.to_thread(os.read, r, 4096)
        except BaseException:
            # Cancelled mid-start: nobody would track this child.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        finally:
            os.close(r)
        if failure:
            await proc.wait()
            raise OSError(failure.decode(errors="replace"))
        return proc

    # ---- sandboxes ----

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        linux = config.linux
        unenforced = [name for name, on in (("hostPID", linux.host_pid), ("hostIPC", linux.host_ipc),
                                            ("securityContext.sysctls", bool(linux.sysctls))) if on]
        if unenforced:
            raise SandboxCreateError(f"the process runtime does not enforce {', '.join(unenforced)}; run this pod on "
                                     f"a node with the CRI runtime")
        sandbox_id = secrets.token_hex(32)
        host_net = config.linux.host_network
        spec: dict[str, Any] = {
            "argv": list(self.config.holder_command),
            "env": {"PATH": DEFAULT_PATH},
            "unshare": ["uts", "ipc"] if host_net else ["net", "uts", "ipc"],
            "join": {"net": self.config.node_netns} if host_net and self.config.node_netns else {},
            "hostname": config.hostname or config.name,
            "sysctls": {} if host_net else dict(config.linux.sysctls),
        }
        try:
            holder = await self._spawn(spec, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            raise SandboxCreateError(f"sandbox holder failed: {exc}") from exc
        sandbox = _Sandbox(sandbox_id, config, time.time_ns(), holder)
        if self._cni is not None and not host_net:
            try:
                sandbox.ips = tuple(await self._cni.add(sandbox_id, sandbox.ns("net"), ports=_ports(config)))
            except BaseException as exc:
                # Undo a half-made network (or a cancelled one) before the holder goes.
                await self._teardown_network(sandbox)
                await _kill(holder)
                if isinstance(exc, CNIError):
                    raise SandboxCreateError(f"pod network setup failed: {exc}") from exc
                raise
        self._sandboxes[sandbox_id] = sandbox
        log.debug("sandbox_started", sandbox_id=sandbox_id, pod=f"{config.namespace}/{config.name}", ips=sandbox.ips)
        return sandbox_id

    async def _teardown_network(self, sandbox: _Sandbox) -> None:
        if self._cni is None or sandbox.config.linux.host_network:
            return
        try:
            await self._cni.delete(sandbox.id, sandbox.ns("net"), ports=_ports(sandbox.config))
        except CNIError as exc:
            log.warning("pod_network_teardown_failed", sandbox_id=sandbox.id, error=str(exc))

    def _sandbox(self, sandbox_id: str) -> _Sandbox:
        try:
            return self._sandboxes[sandbox_id]
        except KeyError:
            raise NotFoundError(f"pod sandbox {sandbox_id} not found") from None

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandbox(sandbox_id)
        running = [c for c in self._containers.values() if c.sandbox is sandbox]
        await asyncio.gather(*(self._stop(c, 0) for c in running))
        if sandbox.state == SandboxState.READY:
            # Release the address while the netns still exists.
            await self._teardown_network(sandbox)
            await _kill(sandbox.holder)
            sandbox.state = SandboxState.NOTREADY
            log.debug("sandbox_stopped", sandbox_id=sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        if sandbox_id not in self._sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        sandbox = self._sandboxes[sandbox_id]
        for c in [c for c in self._containers.values() if c.sandbox is sandbox]:
            await self.remove_container(c.id)
        del self._sandboxes[sandbox_id]

    def _sandbox_fields(self, s: _Sandbox) -> dict[str, Any]:
        c = s.config
        # A holder that died takes the pod's namespaces with it.
        state = s.state if s.holder.returncode is None else SandboxState.NOTREADY
        return {"id": s.id, "name": c.name, "namespace": c.namespace, "uid": c.uid, "attempt": c.attempt,
                "state": state, "created_at": s.created_at, "labels": dict(c.labels),
                "annotations": dict(c.annotations)}

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        s = self._sandbox(sandbox_id)
        return PodSandboxStatus(**self._sandbox_fields(s), ip=s.ips[0] if s.ips else "", additional_ips=s.ips[1:])

    async def list_pod_sandboxes(
        self, *, state: SandboxState | None = None, labels: Mapping[str, str] | None = None
    ) -> list[PodSandbox]:
        items = [PodSandbox(**self._sandbox_fields(s)) for s in self._sandboxes.values()]
        return [p for p in items if (state is None or p.state == state) and _matches(p.labels, labels)]

    # ---- containers ----

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.state != SandboxState.READY:
            raise ContainerCreateError(f"pod sandbox {sandbox_id} is not ready")
        if not (config.command or config.args):
            raise ContainerCreateError("the process runtime has no images: a container needs a command")
        if config.security != Security():
            raise ContainerCreateError("the process runtime does not enforce securityContext (users, groups, "
                                       "capabilities, seccomp, privileged, read-only root); run this pod on a node "
                                       "with the CRI runtime")
        missing = _missing_mount_paths(config)
        if missing:
            raise ContainerCreateError(f"mount paths must exist on the host: {', '.join(missing)}")
        container_id = secrets.token_hex(32)
        base = sandbox.config.log_directory
        log_path = os.path.join(base, config.log_path) if base and config.log_path else ""
        cgroup = f"{sandbox.config.cgroup_parent.rstrip('/')}/{container_id}" if sandbox.config.cgroup_parent else ""
        self._containers[container_id] = _Container(
            container_id, sandbox, config, time.time_ns(), log_path, cgroup, image_ref=_image_id(config.image)
        )
        return container_id

    def _container(self, container_id: str) -> _Container:
        try:
            return self._containers[container_id]
        except KeyError:
            raise NotFoundError(f"container {container_id} not found") from None

    def _join_spec(self, c: _Container) -> dict[str, str]:
        s = c.sandbox
        join = {"uts": s.ns("uts"), "ipc": s.ns("ipc")}
        if not s.config.linux.host_network:
            join["net"] = s.ns("net")
        elif self.config.node_netns:
            join["net"] = self.config.node_netns
        return join

    def _env(self, c: _Container) -> dict[str, str]:
        return {"PATH": DEFAULT_PATH, "HOSTNAME": c.sandbox.config.hostname or c.sandbox.config.name,
                **c.config.env}

    async def start_container(self, container_id: str) -> None:
        c = self._container(container_id)
        if c.state != ContainerState.CREATED:
            raise ContainerStartError(f"container {container_id} is {c.state}, not created")
        if c.sandbox.state != SandboxState.READY:
            raise ContainerStartError(f"pod sandbox {c.sandbox.id} is not ready")
        cfg = c.config
        procs: list[str] = []
        if c.cgroup:
            r = cfg.resources
            try:
                dirs = await asyncio.to_thread(
                    cgroups.create, c.cgroup, memory_limit=r.memory_limit_bytes, cpu_shares=r.cpu_shares,
                    cpu_quota=r.cpu_quota, cpu_period=r.cpu_period,
                )
            except OSError as exc:
                raise ContainerStartError(f"container cgroup {c.cgroup}: {exc}") from exc
            procs = [str(d / "cgroup.procs") for d in dirs]
        spec = {
            "argv": [*cfg.command, *cfg.args],
            "env": self._env(c),
            "cwd": cfg.working_dir or "/",
            "cgroups": procs,
            "join": self._join_spec(c),
            "mounts": [[m.host_path, m.container_path, m.readonly] for m in cfg.mounts],
        }
        try:
            writer = await asyncio.to_thread(LogWriter, c.log_path) if c.log_path else None
        except OSError as exc:
            raise ContainerStartError(f"container log {c.log_path}: {exc}") from exc
        out = asyncio.subprocess.PIPE if writer else asyncio.subprocess.DEVNULL
        try:
            proc = await self._spawn(spec, stdout=out, stderr=out)
        except OSError as exc:
            if writer is not None:
                writer.close()
            c.state, c.exit_code, c.finished_at = ContainerState.EXITED, 128, time.time_ns()
            c.reason, c.message = "StartError", str(exc)
            raise ContainerStartError(str(exc)) from exc
        c.proc, c.state, c.started_at = proc, ContainerState.RUNNING, time.time_ns()
        c.supervisor = asyncio.create_task(self._supervise(c, proc, writer), name=f"container-{container_id[:12]}")

    async def _supervise(self, c: _Container, proc: asyncio.subprocess.Process, writer: LogWriter | None) -> None:
        """Copy output to the log until the process exits, then record how it ended."""
        pumps = []
        if writer is not None and proc.stdout is not None and proc.stderr is not None:
            pumps = [asyncio.create_task(writer.pump(proc.stdout, "stdout")),
                     asyncio.create_task(writer.pump(proc.stderr, "stderr"))]
        try:
            rc = await proc.wait()
            finished = time.time_ns()
            # As when a container's init exits: nothing it started outlives it.
            self._kill_rest(c)
            if pumps:
                await asyncio.wait(pumps, timeout=2.0)
        finally:
            for p in pumps:
                p.cancel()
            if writer is not None:
                writer.close()
        c.exit_code = 128 - rc if rc < 0 else rc
        oom = bool(c.cgroup) and await asyncio.to_thread(cgroups.oom_kills, c.cgroup) > 0
        c.reason = exit_reason(c.exit_code, oom_killed=oom)
        c.state, c.finished_at = ContainerState.EXITED, finished
        log.debug("container_exited", container_id=c.id, exit_code=c.exit_code, reason=c.reason)

    def _kill_rest(self, c: _Container) -> None:
        if c.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGKILL)
        if c.cgroup:
            cgroups.kill(c.cgroup)

    async def _stop(self, c: _Container, timeout: int) -> None:
        if c.state != ContainerState.RUNNING or c.proc is None or c.supervisor is None:
            return
        with contextlib.suppress(ProcessLookupError):
            c.proc.send_signal(signal.SIGTERM)
        done, _ = await asyncio.wait({c.supervisor}, timeout=max(timeout, 0))
        if not done:
            self._kill_rest(c)
            await asyncio.wait({c.supervisor})

    async def stop_container(self, container_id: str, timeout: int) -> None:
        await self._stop(self._container(container_id), timeout)

    async def remove_container(self, container_id: str) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        await self._stop(c, 0)
        if c.cgroup:
            try:
                await cgroups.remove(c.cgroup, kill_procs=True)
            except OSError as exc:
                raise ContainerRuntimeError(f"removing cgroup {c.cgroup}: {exc}") from exc
        self._containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        c = self._container(container_id)
        return ContainerStatus(
            id=c.id, name=c.config.name, attempt=c.config.attempt, state=c.state, created_at=c.created_at,
            started_at=c.started_at, finished_at=c.finished_at, exit_code=c.exit_code, reason=c.reason,
            message=c.message, image=c.config.image, image_ref=c.image_ref, log_path=c.log_path,
            labels=dict(c.config.labels), annotations=dict(c.config.annotations),
        )

    async def list_containers(
        self,
        *,
        sandbox_id: str | None = None,
        state: ContainerState | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]:
        return [
            Container(id=c.id, sandbox_id=c.sandbox.id, name=c.config.name, attempt=c.config.attempt,
                      image=c.config.image, image_ref=c.image_ref, state=c.state, created_at=c.created_at,
                      labels=dict(c.config.labels), annotations=dict(c.config.annotations))
            for c in self._containers.values()
            if (sandbox_id is None or c.sandbox.id == sandbox_id)
            and (state is None or c.state == state)
            and _matches(c.config.labels, labels)
        ]

    async def stream_url(self, container_id: str, cmd: Sequence[str], *, tty: bool, stdin: bool) -> str:
        raise StreamingUnsupportedError("the process runtime has no streaming server: interactive exec and attach "
                                        "need the CRI runtime (containerd)")

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float) -> ExecResult:
        c = self._container(container_id)
        if c.state != ContainerState.RUNNING or c.proc is None:
            raise ContainerRuntimeError(f"container {container_id} is {c.state}, not running")
        join = self._join_spec(c)
        if c.config.mounts:
            join["mnt"] = f"/proc/{c.proc.pid}/ns/mnt"
        procs = [str(d / "cgroup.procs") for d in cgroups.paths(c.cgroup) if d.exists()] if c.cgroup else []
        spec = {"argv": list(cmd), "env": self._env(c), "cwd": c.config.working_dir or "/",
                "cgroups": procs, "join": join}
        try:
            proc = await self._spawn(spec, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ContainerRuntimeError(f"exec in {container_id}: {exc}") from exc
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise ExecTimeoutError(f"exec {list(cmd)} in {container_id} timed out after {timeout}s") from None
        rc = proc.returncode if proc.returncode is not None else -1
        return ExecResult(out, err, 128 - rc if rc < 0 else rc)

    # ---- images: names only ----

    async def image_status(self, image: str) -> Image | None:
        """Every image is 'present': commands run from the host."""
        return self._images.get(image) or Image(_image_id(image), (image,))

    async def pull_image(self, image: str) -> str:
        self._images[image] = Image(_image_id(image), (image,))
        return _image_id(image)

    async def list_images(self) -> list[Image]:
        return list(self._images.values())

    async def remove_image(self, image: str) -> None:
        self._images.pop(image, None)

    async def close(self) -> None:
        """Stop and remove every pod: nothing outlives the runtime."""
        for sandbox_id in list(self._sandboxes):
            await self.remove_pod_sandbox(sandbox_id)


def _missing_mount_paths(config: ContainerConfig) -> list[str]:
    """Bind mounts need both ends: there is no root filesystem to create targets in."""
    return [p for m in config.mounts for p in (m.host_path, m.container_path) if not os.path.exists(p)]


def _ports(config: PodSandboxConfig) -> list[PortMap]:
    return [PortMap(p.host_port, p.container_port, p.protocol, p.host_ip)
            for p in config.port_mappings if p.host_port]


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()
