"""Carrying out a pod's plan against the runtime (kuberuntime's SyncPod, KillPod, GC).

`Syncer.sync_pod` computes the pod's actions and applies them in order:

1. compute the plan (`actions.compute_pod_actions`)
2. kill the pod if the sandbox changed or nothing is left to run
3. kill the containers the plan names (failed liveness, changed spec)
4. prune exited containers beyond the newest two of each name, and dead sandboxes left empty
5. create the sandbox if needed; rewrite the volumes whose ConfigMaps, Secrets or pod fields changed
6. start the next init container
7. start the containers to start

Starting one container is its own sequence (image per pull policy, with
pull back-off; volumes and environment; create; start) whose failures become
the container's waiting reason: ErrImagePull / ImagePullBackOff /
ErrImageNeverPull, CreateContainerConfigError, CreateContainerError,
RunContainerError. Those reasons, and CrashLoopBackOff for containers held
back, are kept per pod until the container starts, for the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from api import securitycontext
from api.pb import core_pb2
from kubelet import envvars, filesystems, identity, specs, volumes
from kubelet.actions import PodActions, Waiting, backoff_key, compute_pod_actions, format_duration
from kubelet.backoff import Backoff
from kubelet.config import KubeletConfig
from kubelet.envvars import PodObjects
from kubelet.observed import ObservedPod
from kubelet.runtime import cgroups
from kubelet.runtime.interface import (
    ContainerCreateError,
    ContainerRuntimeError,
    ContainerStartError,
    ContainerState,
    ImagePullError,
    NotFoundError,
    PodSandboxConfig,
    Runtime,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
RUN_CONTAINER_ERROR = "RunContainerError"
CONTAINER_CREATING = "ContainerCreating"
KEEP_PER_NAME = 2  # the current attempt and the previous one (logs --previous)

Recorder = Callable[[core_pb2.Pod, str, str, str], None]


def _no_events(pod: core_pb2.Pod, type_: str, reason: str, message: str) -> None:
    del pod, type_, reason, message


@dataclass
class SyncResult:
    actions: PodActions
    changed: bool = False  # the runtime state changed (observe again before computing status)
    requeue_after: float | None = None

    def requeue(self, seconds: float) -> None:
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


class _StartFailedError(Exception):
    def __init__(self, waiting: Waiting, *, retry: float | None = None) -> None:
        super().__init__(waiting.message)
        self.waiting = waiting
        self.retry = retry


@dataclass
class Syncer:
    """Applies pod plans to one runtime for one node."""

    runtime: Runtime
    config: KubeletConfig
    services: Callable[[], Iterable[core_pb2.Service]] = lambda: ()
    record: Recorder = _no_events
    backoff: Backoff = field(init=False)
    pull_backoff: Backoff = field(init=False)
    _waiting: dict[str, dict[str, Waiting]] = field(default_factory=dict)
    _sandbox_slots: asyncio.Semaphore | None = None
    _in_memory: bool | None = None  # whether the kubelet's directory is on tmpfs (filesystems.in_memory)

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)
        self.pull_backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)

    async def _file_work(self, fn: Callable[..., T], *args: Any, pod: core_pb2.Pod | None = None, **kwargs: Any) -> T:
        """A pod's volume or log file work: inline when it all stays in the kubelet's directory and that is in memory
        (a hundred hollow kubelets in one process: a thread hop costs more than the work, and hands the GIL
        around), else on a thread, where a slow disk blocks no other pod."""
        if self._in_memory is None:
            self._in_memory = filesystems.in_memory(Path(self.config.root_dir))
        if self._in_memory and (pod is None or volumes.within_pods_dir(pod)):
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    def waiting(self, uid: str) -> Mapping[str, Waiting]:
        """Why each of the pod's containers is not running, as of the last sync."""
        return self._waiting.get(uid, {})

    def forget(self, uid: str) -> None:
        self._waiting.pop(uid, None)
        self.backoff.forget_prefix(uid + "/")
        self.pull_backoff.forget_prefix(uid + "/")

    # ------------------------------------------------------------ SyncPod

    async def sync_pod(self, pod: core_pb2.Pod, observed: ObservedPod, *,
                       unhealthy: Mapping[str, str] | None = None, pod_ip_hint: str = "",
                       objects: PodObjects | None = None) -> SyncResult:
        uid = pod.metadata.uid
        now = time.time()
        objects = objects or PodObjects()
        # Step 1: the plan.
        actions = compute_pod_actions(pod, observed, backoff=self.backoff, now=now, unhealthy=unhealthy)
        result = SyncResult(actions, requeue_after=actions.requeue_after)
        waiting = self._waiting.setdefault(uid, {})
        waiting.update(actions.backing_off)
        for name in actions.backing_off:
            self.record(pod, "Warning", "BackOff",
                        f"Back-off restarting failed container {name} in pod {identity.full_name(pod)}")

        # Step 2: kill the pod when the sandbox changed or nothing is left to run.
        if actions.kill_pod:
            await self.kill_pod(observed, identity.grace_period(pod), pod=pod)
            result.changed = True

        # Step 3: kill the containers the plan names.
        if actions.containers_to_kill:
            grace = identity.grace_period(pod)
            await asyncio.gather(*(self._kill_container(pod, k.id, k.name, k.message, grace)
                                   for k in actions.containers_to_kill))
            result.changed = True

        # Step 4: prune what is no longer needed.
        if await self.prune(observed):
            result.changed = True

        # Step 5: the sandbox.
        sandbox_id, pod_ip = actions.sandbox_id, observed.sandbox.ip if observed.sandbox else pod_ip_hint
        sandbox_config = specs.compute_sandbox_config(pod, self.config, attempt=actions.attempt)
        if actions.create_sandbox:
            result.changed = True
            try:
                sandbox_id, pod_ip = await self._create_sandbox(pod, sandbox_config)
            except ContainerRuntimeError as exc:
                message = f"Failed to create pod sandbox: {exc}"
                self.record(pod, "Warning", "FailedCreatePodSandBox", message)
                for c in (*pod.spec.init_containers, *pod.spec.containers):
                    waiting[c.name] = Waiting(CONTAINER_CREATING, message)
                result.requeue(self.config.backoff_initial)
                return result
        if not sandbox_id:
            return result

        # Step 5b: rewrite configMap, secret, downwardAPI and projected volumes whose sources changed, and a renewed
        # ServiceAccount token.
        if observed.sandbox is not None and (objects.service_account is not None or any(
                volumes.in_memory(v) or v.HasField("config_map") for v in pod.spec.volumes)):
            changed = await self._file_work(volumes.update_volumes, pod, self.config.pods_dir, objects,
                                            self._pod_context(pod, pod_ip), pod=pod)
            if changed:
                log.info("volumes_updated", pod=f"{pod.metadata.namespace}/{pod.metadata.name}", volumes=changed)

        # Step 6: the next init container.
        if actions.next_init_container:
            init = next(c for c in pod.spec.init_containers if c.name == actions.next_init_container)
            await self._start(pod, init, observed, sandbox_id, sandbox_config, pod_ip, actions, result, objects)

        # Step 7: the containers to start.
        for name in actions.containers_to_start:
            container = next(c for c in pod.spec.containers if c.name == name)
            await self._start(pod, container, observed, sandbox_id, sandbox_config, pod_ip, actions, result, objects)
        return result

    async def _create_sandbox(self, pod: core_pb2.Pod, config: PodSandboxConfig) -> tuple[str, str]:
        await self._file_work(Path(config.log_directory).mkdir, parents=True, exist_ok=True)
        if self._sandbox_slots is None:
            self._sandbox_slots = asyncio.Semaphore(self.config.max_parallel_sandboxes or 1_000_000)
        async with self._sandbox_slots:
            sandbox_id = await self.runtime.run_pod_sandbox(config)
        ip = ""
        if not pod.spec.host_network:
            ip = (await self.runtime.pod_sandbox_status(sandbox_id)).ip
        log.debug("sandbox_created", pod=f"{pod.metadata.namespace}/{pod.metadata.name}", sandbox_id=sandbox_id,
                  attempt=config.attempt, ip=ip)
        return sandbox_id, ip

    async def _start(self, pod: core_pb2.Pod, container: core_pb2.Container, observed: ObservedPod,
                     sandbox_id: str, sandbox_config: PodSandboxConfig, pod_ip: str, actions: PodActions,
                     result: SyncResult, objects: PodObjects) -> None:
        uid = pod.metadata.uid
        waiting = self._waiting.setdefault(uid, {})
        result.changed = True
        try:
            await self._start_container(pod, container, observed, sandbox_id, sandbox_config, pod_ip, actions,
                                        objects)
        except _StartFailedError as exc:
            waiting[container.name] = exc.waiting
            result.requeue(exc.retry if exc.retry is not None else self.config.backoff_initial)
            log.info("container_start_failed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}",
                     container=container.name, reason=exc.waiting.reason, message=exc.waiting.message)
            return
        waiting.pop(container.name, None)

    async def _start_container(self, pod: core_pb2.Pod, container: core_pb2.Container, observed: ObservedPod,
                               sandbox_id: str, sandbox_config: PodSandboxConfig, pod_ip: str,
                               actions: PodActions, objects: PodObjects) -> None:
        """kuberuntime's startContainer: back-off, image, config, create, start."""
        latest = observed.latest(container.name)
        attempt = latest.attempt + 1 if latest is not None else 0
        if container.name in actions.restarts:
            self.backoff.next(backoff_key(pod, container), actions.restarts[container.name])

        await self._ensure_image(pod, container)
        try:
            ctx = self._pod_context(pod, pod_ip)
            paths = await self._file_work(volumes.prepare_volumes, pod, self.config.pods_dir, objects, ctx,
                                          tmpfs=not self.config.hollow, pod=pod)
            mounts = volumes.container_mounts(container, paths)
            env = envvars.container_env(pod, container, services=envvars.pod_service_env(pod, self.services()),
                                        ctx=ctx, objects=objects)
        except (volumes.VolumeError, envvars.EnvError) as exc:
            self.record(pod, "Warning", "Failed", f"Error: {exc}")
            raise _StartFailedError(Waiting(CREATE_CONTAINER_CONFIG_ERROR, str(exc))) from None
        try:
            image = await self.runtime.image_status(container.image) \
                if specs.needs_image_user(pod, container) else None
            security = specs.compute_security(pod, container, image)
        except securitycontext.NonRootError as exc:
            self.record(pod, "Warning", "Failed", f"Error: {exc}")
            raise _StartFailedError(Waiting(CREATE_CONTAINER_CONFIG_ERROR, str(exc))) from None
        except ContainerRuntimeError as exc:
            raise _StartFailedError(Waiting(CREATE_CONTAINER_CONFIG_ERROR, f"image status of {container.image}: "
                                                                           f"{exc}")) from None
        command, args = envvars.expand_command(container, env)
        config = specs.compute_container_config(pod, container, attempt=attempt, env=env, command=command,
                                                args=args, mounts=mounts, node=self.config.node_name,
                                                security=security)
        # A container created but never started (a kubelet stopped in between) is replaced.
        for stale in observed.of(container.name):
            if stale.state == ContainerState.CREATED:
                with contextlib.suppress(ContainerRuntimeError):
                    await self.runtime.remove_container(stale.id)
        try:
            cid = await self.runtime.create_container(sandbox_id, config, sandbox_config)
        except ContainerCreateError as exc:
            self.record(pod, "Warning", "Failed", f"Error: {exc}")
            raise _StartFailedError(Waiting(CREATE_CONTAINER_ERROR, str(exc))) from None
        except ContainerRuntimeError as exc:
            raise _StartFailedError(Waiting(CREATE_CONTAINER_ERROR, str(exc))) from None
        self.record(pod, "Normal", "Created", f"Created container {container.name}")
        try:
            await self.runtime.start_container(cid)
        except ContainerStartError as exc:
            self.record(pod, "Warning", "Failed", f"Error: {exc}")
            raise _StartFailedError(Waiting(RUN_CONTAINER_ERROR, str(exc))) from None
        except ContainerRuntimeError as exc:
            raise _StartFailedError(Waiting(RUN_CONTAINER_ERROR, str(exc))) from None
        self.record(pod, "Normal", "Started", f"Started container {container.name}")

    def _pod_context(self, pod: core_pb2.Pod, pod_ip: str) -> envvars.PodContext:
        return envvars.PodContext(node_name=self.config.node_name, host_ip=self.config.node_ip,
                                  pod_ip=self.config.node_ip if pod.spec.host_network else pod_ip,
                                  allocatable_cpu_milli=self.config.capacity_cpu_milli,
                                  allocatable_memory=self.config.capacity_memory)

    async def _ensure_image(self, pod: core_pb2.Pod, container: core_pb2.Container) -> str:
        """The image per pull policy, with pull back-off (kubelet's image manager)."""
        image = container.image
        policy = container.image_pull_policy or "IfNotPresent"
        try:
            present = None if policy == "Always" else await self.runtime.image_status(image)
        except ContainerRuntimeError as exc:
            raise _StartFailedError(Waiting(ERR_IMAGE_PULL, f"image status of {image}: {exc}")) from None
        if present is not None:
            return present.id
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.record(pod, "Warning", ERR_IMAGE_NEVER_PULL, message)
            raise _StartFailedError(Waiting(ERR_IMAGE_NEVER_PULL, message))
        key = f"{pod.metadata.uid}/{container.name}/{image}"
        now = time.time()
        if self.pull_backoff.in_backoff_since_update(key, now):
            message = f'Back-off pulling image "{image}"'
            self.record(pod, "Normal", "BackOff", message)
            raise _StartFailedError(Waiting(IMAGE_PULL_BACK_OFF, message),
                                    retry=self.pull_backoff.remaining_since_update(key, now))
        self.record(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            ref = await self.runtime.pull_image(image)
        except ImagePullError as exc:
            delay = self.pull_backoff.next(key, time.time())
            message = f'Failed to pull image "{image}": {exc}'
            self.record(pod, "Warning", "Failed", message)
            raise _StartFailedError(Waiting(ERR_IMAGE_PULL, message), retry=delay) from None
        except ContainerRuntimeError as exc:
            delay = self.pull_backoff.next(key, time.time())
            raise _StartFailedError(Waiting(ERR_IMAGE_PULL, f'Failed to pull image "{image}": {exc}'),
                                    retry=delay) from None
        self.record(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in '
                                              f"{format_duration(time.monotonic() - started)}")
        return ref

    # ------------------------------------------------------------ KillPod, KillContainer

    async def _kill_container(self, pod: core_pb2.Pod | None, cid: str, name: str, message: str,
                              grace: int) -> None:
        if pod is not None:
            self.record(pod, "Normal", "Killing", f"Stopping container {name}" + (f": {message}" if message else ""))
        try:
            await self.runtime.stop_container(cid, grace)
        except NotFoundError:
            return

    async def kill_pod(self, observed: ObservedPod, grace: int, *, pod: core_pb2.Pod | None = None) -> None:
        """Stop every running container (in parallel, each with the grace period), then every sandbox."""
        await asyncio.gather(*(self._kill_container(pod, c.id, c.name, "", grace) for c in observed.running))
        for s in observed.sandboxes:
            with contextlib.suppress(NotFoundError):
                await self.runtime.stop_pod_sandbox(s.id)

    # ------------------------------------------------------------ GC and removal

    async def prune(self, observed: ObservedPod) -> bool:
        """Remove exited containers beyond the newest two of each name, and old sandboxes left empty."""
        removed = False
        seen: dict[str, int] = {}
        doomed = []
        for c in observed.containers:
            seen[c.name] = seen.get(c.name, 0) + 1
            if seen[c.name] > KEEP_PER_NAME and c.exited:
                doomed.append(c)
        for c in doomed:
            await self._remove_container(c.id, c.log_path)
            removed = True
        kept = {c.sandbox_id for c in observed.containers if c not in doomed}
        for s in observed.sandboxes[1:]:
            if not s.ready and s.id not in kept:
                with contextlib.suppress(NotFoundError):
                    await self.runtime.remove_pod_sandbox(s.id)
                removed = True
        return removed

    async def _remove_container(self, cid: str, log_path: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.runtime.remove_container(cid)
        if log_path:
            with contextlib.suppress(OSError):
                await self._file_work(os.unlink, log_path)

    async def remove_pod(self, uid: str, namespace: str, name: str, observed: ObservedPod) -> None:
        """Remove everything of a stopped pod: containers, sandboxes, logs, volumes, cgroup."""
        for c in observed.containers:
            await self._remove_container(c.id, c.log_path)
        for s in observed.sandboxes:
            with contextlib.suppress(NotFoundError):
                await self.runtime.remove_pod_sandbox(s.id)
        meta = core_pb2.Pod(metadata={"uid": uid, "namespace": namespace, "name": name})
        log_dir = specs.pod_log_dir(self.config.logs_dir, meta)
        await self._file_work(shutil.rmtree, log_dir, True)
        try:
            await self._file_work(volumes.remove_pod_dir, self.config.pods_dir, uid)
        except volumes.VolumeError as exc:
            log.warning("pod_volumes_not_removed", uid=uid, error=str(exc))
        cgroup = specs.pod_cgroup(self.config, uid)
        if cgroup:
            try:
                await cgroups.remove(cgroup, kill_procs=True)
            except OSError as exc:
                log.warning("pod_cgroup_not_removed", cgroup=cgroup, error=str(exc))
        self.forget(uid)
