"""What to do to bring a pod's runtime state to its spec: a pure plan.

`compute_pod_actions` is the kubelet's kuberuntime computePodActions: given
the pod and what the runtime holds for it, decide whether the sandbox must be
(re)created, which containers to kill, which init container runs next, and
which containers to start, holding back those still in crash-loop back-off.
`sync.sync_pod` carries the plan out. No I/O here: tests drive it with
tables and hypothesis.

Rules, as Kubernetes:
- A pod runs in one ready sandbox. None, a dead one, or one that lost its IP
  means killing what is left and creating a sandbox with attempt + 1, unless
  the pod already ran and will never run again (restartPolicy Never, or
  nothing left to start).
- Init containers run one at a time, in order, in the current sandbox; each
  must exit 0. A failed one is restarted unless restartPolicy is Never, which
  fails the pod. Once an app container exists in the sandbox, init is done.
- An app container that is not running is started again per restartPolicy
  (Always: always; OnFailure: after a non-zero exit; Never: only if it never
  ran). A running one is killed (and restarted unless Never) when its liveness
  or startup probe failed or its spec changed.
- A restart after an exit waits out the container's back-off since that exit
  (10 s doubling to 5 min): meanwhile it is waiting with CrashLoopBackOff.
- When nothing runs and nothing will start, the sandbox is stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from api.pb import core_pb2
from kubelet import identity
from kubelet.backoff import Backoff
from kubelet.observed import ContainerView, ObservedPod
from kubelet.runtime.interface import ContainerState

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"


@dataclass(frozen=True)
class KillContainer:
    id: str
    name: str
    message: str


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str


@dataclass(frozen=True)
class PodActions:
    """The plan for one sync.

    kill_pod: stop every container and sandbox of the pod first.
    create_sandbox: then create a sandbox with `attempt`; else use `sandbox_id`.
    restarts: container name -> when its previous instance finished (seconds),
    the event its back-off is counted from.
    requeue_after: seconds until a held-back container may start.
    """

    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    next_init_container: str = ""
    containers_to_start: tuple[str, ...] = ()
    containers_to_kill: tuple[KillContainer, ...] = ()
    backing_off: Mapping[str, Waiting] = field(default_factory=dict)
    restarts: Mapping[str, float] = field(default_factory=dict)
    requeue_after: float | None = None

    @property
    def idle(self) -> bool:
        """Nothing to do."""
        return not (self.kill_pod or self.create_sandbox or self.next_init_container or self.containers_to_start
                    or self.containers_to_kill)


def backoff_key(pod: core_pb2.Pod, container: core_pb2.Container) -> str:
    """Back-off is per pod, container and spec: a new image starts over."""
    return f"{pod.metadata.uid}/{container.name}/{identity.container_hash(container)}"


def format_duration(seconds: float) -> str:
    """A duration as Go prints it in kubelet messages: 10s, 1m20s, 5m0s, 500ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def should_restart(policy: str, latest: ContainerView | None) -> bool:
    """Whether a container that is not running should be started (again)."""
    if latest is None:
        return True
    if latest.running:
        return False
    if latest.state in (ContainerState.CREATED, ContainerState.UNKNOWN):
        return True
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return latest.exit_code != 0
    return True


def succeeded(latest: ContainerView | None) -> bool:
    return latest is not None and latest.exited and latest.exit_code == 0


def sandbox_changed(pod: core_pb2.Pod, observed: ObservedPod) -> tuple[bool, int, str]:
    """(must (re)create the sandbox, the attempt to create it with, the sandbox to use otherwise)."""
    sandbox = observed.sandbox
    if sandbox is None:
        return True, 0, ""
    if not sandbox.ready:
        return True, sandbox.attempt + 1, sandbox.id
    if sum(1 for s in observed.sandboxes if s.ready) > 1:
        return True, sandbox.attempt + 1, sandbox.id
    if not pod.spec.host_network and not sandbox.ip:
        return True, sandbox.attempt + 1, sandbox.id
    return False, sandbox.attempt, sandbox.id


@dataclass(frozen=True)
class InitProgress:
    next: str = ""  # the init container to run now
    failed: ContainerView | None = None  # it ran and failed (or is in an unknown state)
    done: bool = False


def init_progress(pod: core_pb2.Pod, observed: ObservedPod, sandbox_id: str) -> InitProgress:
    """Where a pod's init containers are, counting only those in the current sandbox."""
    inits = pod.spec.init_containers
    if not inits:
        return InitProgress(done=True)

    def in_sandbox(name: str) -> ContainerView | None:
        return next((c for c in observed.of(name) if c.sandbox_id == sandbox_id), None) if sandbox_id else None

    if any(in_sandbox(c.name) is not None for c in pod.spec.containers):
        return InitProgress(done=True)
    for c in inits:
        st = in_sandbox(c.name)
        if st is None:
            return InitProgress(next=c.name)
        if st.running:
            return InitProgress()
        if succeeded(st):
            continue
        return InitProgress(next=c.name, failed=st)
    return InitProgress(done=True)


def _something_to_kill(observed: ObservedPod) -> bool:
    return any(s.ready for s in observed.sandboxes) or bool(observed.running)


@dataclass
class _Plan:
    """Accumulates starts, holds and restarts while walking containers."""

    pod: core_pb2.Pod
    backoff: Backoff
    now: float
    start: list[str] = field(default_factory=list)
    backing_off: dict[str, Waiting] = field(default_factory=dict)
    restarts: dict[str, float] = field(default_factory=dict)
    requeue: float | None = None

    def consider(self, container: core_pb2.Container, latest: ContainerView | None) -> None:
        """Start the container, unless it exited and is still in back-off."""
        if latest is not None and latest.exited:
            finished = (latest.finished_at or latest.created_at) / 1e9
            key = backoff_key(self.pod, container)
            if self.backoff.in_backoff_since(key, finished, self.now):
                delay = self.backoff.delay(key)
                self.backing_off[container.name] = Waiting(
                    CRASH_LOOP_BACK_OFF,
                    f"back-off {format_duration(delay)} restarting failed container={container.name} "
                    f"pod={identity.full_name(self.pod)}",
                )
                wait = self.backoff.remaining(key, finished, self.now)
                self.requeue = wait if self.requeue is None else min(self.requeue, wait)
                return
            self.restarts[container.name] = finished
        self.start.append(container.name)


def compute_pod_actions(
    pod: core_pb2.Pod,
    observed: ObservedPod,
    *,
    backoff: Backoff,
    now: float,
    unhealthy: Mapping[str, str] | None = None,
) -> PodActions:
    """The plan for a pod that should be running (not deleted, not finished).

    unhealthy maps the ids of running containers whose liveness or startup
    probe failed to a message saying so. `now` is seconds since the epoch.
    """
    unhealthy = unhealthy or {}
    spec = pod.spec
    policy = spec.restart_policy or "Always"
    plan = _Plan(pod, backoff, now)
    changed, attempt, sandbox_id = sandbox_changed(pod, observed)

    if changed:
        kill = _something_to_kill(observed)
        if policy == "Never" and attempt != 0 and observed.containers:
            # It ran once and must not run again: only clean up.
            return PodActions(kill_pod=kill)
        app = [c for c in spec.containers if not (policy == "OnFailure" and succeeded(observed.latest(c.name)))]
        if not app and not spec.init_containers:
            return PodActions(kill_pod=kill)
        if spec.init_containers:
            first = spec.init_containers[0]
            plan.consider(first, observed.latest(first.name))
        else:
            for c in app:
                plan.consider(c, observed.latest(c.name))
        starts = tuple(plan.start)
        return PodActions(
            kill_pod=kill, create_sandbox=True, attempt=attempt,
            next_init_container=starts[0] if spec.init_containers and starts else "",
            containers_to_start=() if spec.init_containers else starts,
            backing_off=plan.backing_off, restarts=plan.restarts, requeue_after=plan.requeue,
        )

    # Running containers no spec container accounts for: older attempts, init containers of
    # other sandboxes, names not in the spec. The newest of each app container is judged below.
    kills: list[KillContainer] = []
    judged = {v.id for c in spec.containers if (v := observed.latest(c.name)) is not None}
    inits = {c.name for c in spec.init_containers}
    for c in observed.running:
        if c.id in judged:
            continue
        newest_init = c.name in inits and observed.latest(c.name) is c and c.sandbox_id == sandbox_id
        if not newest_init:
            kills.append(KillContainer(c.id, c.name, f"Container {c.name} is not part of the pod's current state"))

    progress = init_progress(pod, observed, sandbox_id)
    if not progress.done:
        if progress.failed is not None and progress.failed.exited and policy == "Never":
            # A failed init container under Never fails the pod.
            return PodActions(kill_pod=_something_to_kill(observed), sandbox_id=sandbox_id)
        if progress.next:
            init = next(c for c in spec.init_containers if c.name == progress.next)
            if progress.failed is not None and progress.failed.state == ContainerState.UNKNOWN:
                kills.append(KillContainer(progress.failed.id, init.name, f"Init container {init.name} is in an "
                                                                          "unknown state, will be restarted"))
            plan.consider(init, progress.failed)
        return PodActions(
            sandbox_id=sandbox_id, attempt=attempt, next_init_container=plan.start[0] if plan.start else "",
            containers_to_kill=tuple(kills), backing_off=plan.backing_off, restarts=plan.restarts,
            requeue_after=plan.requeue,
        )

    keep = 0
    for container in spec.containers:
        latest = observed.latest(container.name)
        if latest is None or not latest.running:
            if latest is not None and latest.state == ContainerState.UNKNOWN:
                kills.append(KillContainer(latest.id, container.name,
                                           f"Container {container.name} is in an unknown state, will be restarted"))
            if should_restart(policy, latest):
                plan.consider(container, latest)
            continue
        if latest.sandbox_id != sandbox_id:
            message = f"Container {container.name} runs outside the pod's current sandbox"
        elif latest.hash and latest.hash != identity.container_hash(container):
            message = f"Container {container.name} definition changed"
        elif latest.id in unhealthy:
            message = unhealthy[latest.id]
        else:
            keep += 1
            continue
        if policy != "Never":
            message += ", will be restarted"
            plan.start.append(container.name)
        kills.append(KillContainer(latest.id, container.name, message))

    kill_pod = keep == 0 and not plan.start and not plan.backing_off and _something_to_kill(observed)
    return PodActions(
        kill_pod=kill_pod, sandbox_id=sandbox_id, attempt=attempt, containers_to_start=tuple(plan.start),
        containers_to_kill=() if kill_pod else tuple(kills), backing_off=plan.backing_off,
        restarts=plan.restarts, requeue_after=plan.requeue,
    )
