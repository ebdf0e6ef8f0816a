"""Pod workers: one task per pod, so one pod is never synced twice at once.

Updates from the API (a new spec or status, deletion, the pod vanishing),
container events from the runtime relist and probe results only record the
latest pod and wake its worker; the worker runs the sync function again,
then sleeps until woken or until the sync's requeue delay. A sync that raises
is retried with back-off. A worker ends when its sync reports the pod done
(removed from the API and from the runtime); later updates for that uid are
ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from api.pb import core_pb2

log = structlog.get_logger(__name__)

# What a sync returns: seconds until it runs again, WAIT (until woken), or DONE.
WAIT: float | None = None
DONE = -1.0
FINISHED_TTL = 600.0


@dataclass(eq=False)
class PodWork:
    """A worker's view of its pod: the latest API object, and whether the API still has it."""

    uid: str
    pod: core_pb2.Pod
    gone: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    syncs: int = 0
    failures: int = 0
    first_seen: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"


SyncFn = Callable[[PodWork], Awaitable[float | None]]


class PodWorkers:
    def __init__(self, tg: asyncio.TaskGroup, sync: SyncFn, *, max_retry: float = 30.0) -> None:
        self._tg = tg
        self._sync = sync
        self.max_retry = max_retry
        self._workers: dict[str, PodWork] = {}
        self._finished: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def uids(self) -> set[str]:
        return set(self._workers)

    def get(self, uid: str) -> PodWork | None:
        return self._workers.get(uid)

    def items(self) -> list[PodWork]:
        return list(self._workers.values())

    def update(self, pod: core_pb2.Pod, *, wake: bool = True) -> None:
        """The API's latest copy of a pod: start its worker, or record it and (unless told not to) wake it."""
        uid = pod.metadata.uid
        if uid in self._finished:
            return
        work = self._workers.get(uid)
        if work is None:
            work = self._workers[uid] = PodWork(uid, pod)
            work.wake.set()
            work.task = self._tg.create_task(self._run(work))
            return
        work.pod = pod
        if wake:
            work.wake.set()

    def gone(self, pod: core_pb2.Pod) -> None:
        """The pod was removed from the API: its worker stops and removes it."""
        work = self._workers.get(pod.metadata.uid)
        if work is None:
            return
        work.gone = True
        work.wake.set()

    def wake(self, uid: str) -> None:
        work = self._workers.get(uid)
        if work is not None:
            work.wake.set()

    def finished(self, uid: str) -> bool:
        return uid in self._finished

    async def _run(self, work: PodWork) -> None:
        delay: float | None = 0.0
        try:
            while True:
                if delay is None:
                    await work.wake.wait()
                elif delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await work.wake.wait()
                work.wake.clear()
                started = time.monotonic()
                try:
                    delay = await self._sync(work)
                    work.failures = 0
                except Exception as exc:
                    work.failures += 1
                    delay = min(self.max_retry, 0.5 * 2 ** (work.failures - 1))
                    log.warning("pod_sync_failed", pod=work.key, uid=work.uid, error=str(exc) or repr(exc),
                                error_type=type(exc).__name__, retry_in=delay)
                work.syncs += 1
                log.debug("pod_synced", pod=work.key, duration_ms=round((time.monotonic() - started) * 1000, 1))
                if delay == DONE:
                    self._finished[work.uid] = time.monotonic()
                    return
        finally:
            if self._workers.get(work.uid) is work:
                del self._workers[work.uid]
            self._prune_finished()

    def _prune_finished(self) -> None:
        cutoff = time.monotonic() - FINISHED_TTL
        for uid in [u for u, t in self._finished.items() if t < cutoff]:
            del self._finished[uid]
