"""The scheduling queue: active (by priority, then age), backoff, and unschedulable pods.

A pod that fits nowhere goes to the unschedulable set, remembering which
plugins rejected it. It leaves only when a cluster event that could help one
of those plugins happens (a node added, a node's allocatable grows, an
assigned pod deleted, ...) or after `unschedulable_timeout`; it then waits out
its backoff (initial * 2^(attempts-1), capped) before its next try, so a busy
cluster cannot spin it in a hot loop. An event that arrives while a pod is
being scheduled sends that pod to backoff instead of the unschedulable set,
so the event is not lost (kube-scheduler's moveRequestCycle).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler import cache as events
from scheduler.framework.types import PodInfo

POD_ADDED = "AssignedPodAdded"
STORAGE_CHANGED = "PvcOrPvOrStorageClassChanged"

# Which rejecting plugins an event may satisfy.
HELPS: dict[str, frozenset[str]] = {
    events.NODE_ALLOCATABLE_GREW: frozenset({"NodeResourcesFit"}),
    events.NODE_LABELS_CHANGED: frozenset({"NodeAffinity", "PodTopologySpread", "InterPodAffinity"}),
    events.NODE_TAINTS_CHANGED: frozenset({"TaintToleration"}),
    events.NODE_SCHEDULABLE: frozenset({"NodeUnschedulable"}),
    events.NODE_READY: frozenset({"NodeReady"}),
    events.POD_DELETED: frozenset({"NodeResourcesFit", "NodePorts", "InterPodAffinity", "PodTopologySpread",
                                   "VolumeRestrictions"}),
    POD_ADDED: frozenset({"InterPodAffinity", "PodTopologySpread"}),
    STORAGE_CHANGED: frozenset({"VolumeBinding", "VolumeRestrictions"}),
}


@dataclass
class QueuedPod:
    info: PodInfo
    attempts: int = 0
    # Plugins that rejected the pod last time; empty means any change may help.
    rejected_by: frozenset[str] = field(default_factory=frozenset)
    backoff_until: float = 0.0
    since: float = 0.0  # when it entered the unschedulable set
    cycle: int = 0  # scheduling cycle in which it was popped
    seq: int = 0


class SchedulingQueue:
    def __init__(self, *, backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 unschedulable_timeout: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.unschedulable_timeout = unschedulable_timeout
        self.clock = clock
        self._seq = itertools.count()
        self._active: list[tuple[int, float, int, str]] = []
        self._active_entries: dict[str, QueuedPod] = {}
        self._backoff: list[tuple[float, int, str]] = []
        self._backoff_entries: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._inflight: dict[str, QueuedPod] = {}
        self._wakeup = asyncio.Event()
        self.cycle = 0
        self.move_request_cycle = -1

    # ------------------------------------------------------------ reads

    def __len__(self) -> int:
        return len(self._active_entries) + len(self._backoff_entries) + len(self._unschedulable)

    def __contains__(self, key: str) -> bool:
        return key in self._active_entries or key in self._backoff_entries or key in self._unschedulable \
            or key in self._inflight

    def counts(self) -> dict[str, int]:
        return {"active": len(self._active_entries), "backoff": len(self._backoff_entries),
                "unschedulable": len(self._unschedulable), "inflight": len(self._inflight)}

    def pending(self) -> list[QueuedPod]:
        return [*self._active_entries.values(), *self._backoff_entries.values(), *self._unschedulable.values()]

    def backoff_duration(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return min(self.backoff_max, self.backoff_initial * (2 ** min(attempts - 1, 30)))

    # ------------------------------------------------------------ changes

    def _push_active(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._active_entries[qp.info.key] = qp
        heapq.heappush(self._active, (-qp.info.priority, qp.info.created, qp.seq, qp.info.key))
        self._wakeup.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        self._backoff_entries[qp.info.key] = qp
        heapq.heappush(self._backoff, (qp.backoff_until, qp.seq, qp.info.key))
        self._wakeup.set()

    def _detach(self, key: str) -> QueuedPod | None:
        qp = self._active_entries.pop(key, None) or self._backoff_entries.pop(key, None) or \
            self._unschedulable.pop(key, None)
        return qp  # heap entries are dropped lazily: their seq no longer matches

    def add(self, info: PodInfo) -> None:
        """A pending pod was added or changed."""
        key = info.key
        inflight = self._inflight.get(key)
        if inflight is not None:
            inflight.info = info
            return
        qp = self._active_entries.get(key) or self._backoff_entries.get(key)
        if qp is not None:
            if qp.info.priority != info.priority and key in self._active_entries:
                self._active_entries.pop(key)
                qp.info = info
                self._push_active(qp)
            else:
                qp.info = info
            return
        qp = self._unschedulable.pop(key, None)
        if qp is not None:
            qp.info = info  # an update to the pod itself may make it fit: retry after its backoff
            self._requeue_after_backoff(qp)
            return
        self._push_active(QueuedPod(info))

    def delete(self, key: str) -> None:
        self._detach(key)
        self._inflight.pop(key, None)

    async def pop(self) -> QueuedPod:
        """The next pod to schedule (highest priority, then oldest); waits while there is none."""
        while True:
            self._flush_backoff()
            while self._active:
                _, _, seq, key = heapq.heappop(self._active)
                qp = self._active_entries.get(key)
                if qp is None or qp.seq != seq:
                    continue
                del self._active_entries[key]
                self.cycle += 1
                qp.cycle = self.cycle
                self._inflight[key] = qp
                return qp
            self._wakeup.clear()
            delay = self._next_wake()
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def pop_nowait(self) -> QueuedPod | None:
        self._flush_backoff()
        while self._active:
            _, _, seq, key = heapq.heappop(self._active)
            qp = self._active_entries.get(key)
            if qp is None or qp.seq != seq:
                continue
            del self._active_entries[key]
            self.cycle += 1
            qp.cycle = self.cycle
            self._inflight[key] = qp
            return qp
        return None

    def _next_wake(self) -> float:
        now = self.clock()
        wake = 1.0  # at least once a second: the unschedulable timeout is checked here too
        while self._backoff:
            until, seq, key = self._backoff[0]
            qp = self._backoff_entries.get(key)
            if qp is None or qp.seq != seq:
                heapq.heappop(self._backoff)
                continue
            wake = min(wake, max(0.001, until - now))
            break
        return wake

    def _flush_backoff(self) -> None:
        now = self.clock()
        while self._backoff:
            until, seq, key = self._backoff[0]
            qp = self._backoff_entries.get(key)
            if qp is None or qp.seq != seq:
                heapq.heappop(self._backoff)
                continue
            if until > now:
                break
            heapq.heappop(self._backoff)
            del self._backoff_entries[key]
            self._push_active(qp)
        if self._unschedulable and self.unschedulable_timeout > 0:
            stale = [qp for qp in self._unschedulable.values() if now - qp.since >= self.unschedulable_timeout]
            for qp in stale:
                del self._unschedulable[qp.info.key]
                self._requeue_after_backoff(qp)

    def _requeue_after_backoff(self, qp: QueuedPod) -> None:
        if qp.backoff_until > self.clock():
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    def done(self, key: str) -> None:
        """The pod's cycle ended with a decision (it is assumed and binding)."""
        self._inflight.pop(key, None)

    def unschedulable(self, qp: QueuedPod, rejected_by: set[str] | frozenset[str]) -> None:
        """The pod fit nowhere: park it until something that may help happens (backoff after that)."""
        key = qp.info.key
        if self._inflight.pop(key, None) is None:
            return  # deleted meanwhile
        qp.attempts += 1
        now = self.clock()
        qp.backoff_until = now + self.backoff_duration(qp.attempts)
        qp.rejected_by = frozenset(rejected_by)
        if self.move_request_cycle >= qp.cycle:
            self._push_backoff(qp)  # the cluster changed while it was being scheduled
        else:
            qp.since = now
            self._unschedulable[key] = qp

    def retry(self, qp: QueuedPod) -> None:
        """An error (a failed bind, an API error): try again after backoff."""
        key = qp.info.key
        self._inflight.pop(key, None)
        if key in self._active_entries or key in self._backoff_entries or key in self._unschedulable:
            return
        qp.attempts += 1
        qp.backoff_until = self.clock() + self.backoff_duration(qp.attempts)
        self._push_backoff(qp)

    def move(self, event: str) -> int:
        """A cluster event happened: pods it may help leave the unschedulable set. Returns how many moved."""
        self.move_request_cycle = self.cycle
        if not self._unschedulable:
            return 0
        helps = HELPS.get(event)
        moved = [qp for qp in self._unschedulable.values()
                 if helps is None or not qp.rejected_by or qp.rejected_by & helps]
        for qp in moved:
            del self._unschedulable[qp.info.key]
            self._requeue_after_backoff(qp)
        return len(moved)
