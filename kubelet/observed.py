"""What the runtime holds for one pod, read through its CRI labels.

`observe_pod` lists the pod's sandboxes and containers (every attempt still
present) and returns plain frozen views, newest first, that the pure
planners (`actions`, `status`) work on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kubelet import identity
from kubelet.runtime.interface import ContainerState, NotFoundError, Runtime, SandboxState


@dataclass(frozen=True)
class SandboxView:
    id: str
    attempt: int
    ready: bool
    created_at: int
    ip: str = ""


@dataclass(frozen=True, kw_only=True)
class ContainerView:
    id: str
    sandbox_id: str
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
    hash: str = ""
    log_path: str = ""

    @property
    def running(self) -> bool:
        return self.state == ContainerState.RUNNING

    @property
    def exited(self) -> bool:
        return self.state == ContainerState.EXITED


@dataclass(frozen=True)
class ObservedPod:
    """A pod's runtime state; sandboxes and containers newest first."""

    uid: str
    sandboxes: tuple[SandboxView, ...] = ()
    containers: tuple[ContainerView, ...] = ()

    @property
    def sandbox(self) -> SandboxView | None:
        """The newest sandbox, the one the pod's containers belong in."""
        return self.sandboxes[0] if self.sandboxes else None

    def of(self, name: str) -> list[ContainerView]:
        """Every container of this name, newest first."""
        return [c for c in self.containers if c.name == name]

    def latest(self, name: str) -> ContainerView | None:
        return next((c for c in self.containers if c.name == name), None)

    def previous(self, name: str) -> ContainerView | None:
        """The attempt before the latest one (what `logs --previous` reads)."""
        found = self.of(name)
        return found[1] if len(found) > 1 else None

    @property
    def running(self) -> list[ContainerView]:
        return [c for c in self.containers if c.running]

    @property
    def active(self) -> bool:
        """Anything of the pod still runs: a container or a ready sandbox."""
        return bool(self.running) or any(s.ready for s in self.sandboxes)


def _newest_first(c: ContainerView) -> tuple[int, int]:
    return (-c.attempt, -c.created_at)


async def observe_pod(runtime: Runtime, uid: str) -> ObservedPod:
    """List a pod's sandboxes and containers and read each one's status."""
    sandboxes, containers = await asyncio.gather(
        runtime.list_pod_sandboxes(labels={identity.POD_UID: uid}),
        runtime.list_containers(labels={identity.POD_UID: uid}),
    )
    sandboxes.sort(key=lambda s: (-s.attempt, -s.created_at))
    views: list[SandboxView] = []
    for i, s in enumerate(sandboxes):
        ready = s.state == SandboxState.READY
        ip = ""
        if i == 0 and ready:
            try:
                ip = (await runtime.pod_sandbox_status(s.id)).ip
            except NotFoundError:
                ready = False
        views.append(SandboxView(s.id, s.attempt, ready, s.created_at, ip))

    async def status(c_id: str, sandbox_id: str) -> ContainerView | None:
        try:
            st = await runtime.container_status(c_id)
        except NotFoundError:
            return None
        return ContainerView(
            id=st.id, sandbox_id=sandbox_id, name=st.name, attempt=st.attempt, state=st.state,
            created_at=st.created_at, started_at=st.started_at, finished_at=st.finished_at,
            exit_code=st.exit_code, reason=st.reason, message=st.message, image=st.image, image_ref=st.image_ref,
            hash=st.annotations.get(identity.CONTAINER_HASH, ""), log_path=st.log_path,
        )

    found = await asyncio.gather(*(status(c.id, c.sandbox_id) for c in containers))
    cviews = sorted((c for c in found if c is not None), key=_newest_first)
    return ObservedPod(uid, tuple(views), tuple(cviews))
