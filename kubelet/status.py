"""The status manager: every pod's status to the apiserver over one stream.

One bidirectional StreamPodStatus per kubelet carries the status of all its
pods. Updates are coalesced per pod: the latest status wins, at most one is
in flight per pod, and a newer one waiting behind an acknowledged one goes
out next, so nothing is queued behind a stale status. Acks come back by
sequence number. A NotFound ack means the pod (that uid) is gone; other
errors are retried with back-off. When the stream breaks (or an ack is
overdue), it is reopened and each pod's latest unacknowledged status is sent
again. If the API's copy of a status drifts from what was acknowledged
(another writer, e.g. the node lifecycle controller marking pods not ready),
the kubelet's status is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field

import grpc
import structlog

from api.pb import api_pb2, core_pb2
from client.api import Client

log = structlog.get_logger(__name__)


@dataclass
class _Entry:
    namespace: str
    name: str
    uid: str
    status: core_pb2.PodStatus
    seq: int
    sent_seq: int = 0
    sent_status: core_pb2.PodStatus | None = None
    sent_at: float = 0.0
    acked_seq: int = 0
    acked: core_pb2.PodStatus | None = None
    failures: int = 0
    retry_at: float = 0.0
    gone: bool = False
    waiters: list[tuple[int, asyncio.Future[bool]]] = field(default_factory=list)

    def settle(self) -> None:
        """Resolve waiters whose status was acknowledged (True) or whose pod is gone (False)."""
        keep = []
        for target, fut in self.waiters:
            if fut.done():
                continue
            if self.gone:
                fut.set_result(False)
            elif self.acked_seq >= target:
                fut.set_result(True)
            else:
                keep.append((target, fut))
        self.waiters = keep


class StatusManager:
    """Owns the pod status stream of one kubelet. `run()` keeps it open until cancelled."""

    def __init__(self, client: Client, *, node: str, ack_timeout: float = 30.0, max_retry: float = 30.0) -> None:
        self.client = client
        self.node = node
        self.ack_timeout = ack_timeout
        self.max_retry = max_retry
        self._entries: dict[str, _Entry] = {}
        self._dirty: set[str] = set()
        self._inflight: dict[int, str] = {}
        self._wake = asyncio.Event()
        # Sequence numbers keep rising across restarts: they start from the clock (µs).
        self._seq = itertools.count(time.time_ns() // 1000)
        self.connected = asyncio.Event()
        self.sessions = 0
        self.sent = 0
        self.acked = 0
        self._log = log.bind(node=node)

    # ------------------------------------------------------------ the pod workers' side

    def set(self, pod: core_pb2.Pod, status: core_pb2.PodStatus) -> None:
        """Make `status` the pod's latest; it replaces any not yet sent."""
        uid = pod.metadata.uid
        entry = self._entries.get(uid)
        if entry is not None and entry.status == status and not entry.gone:
            return
        seq = next(self._seq)
        if entry is None or entry.gone:
            waiters = entry.waiters if entry is not None else []
            entry = self._entries[uid] = _Entry(pod.metadata.namespace, pod.metadata.name, uid, status, seq,
                                                waiters=waiters)
        else:
            entry.status, entry.seq = status, seq
        self._dirty.add(uid)
        self._wake.set()

    def latest(self, uid: str) -> core_pb2.PodStatus | None:
        entry = self._entries.get(uid)
        return entry.status if entry is not None else None

    def acknowledged(self, uid: str) -> bool:
        entry = self._entries.get(uid)
        return entry is not None and entry.acked_seq == entry.seq

    def api_changed(self, pod: core_pb2.Pod) -> None:
        """The informer saw the pod; resend ours if the API's copy drifted from what was acknowledged."""
        entry = self._entries.get(pod.metadata.uid)
        if entry is None or entry.gone or entry.acked_seq != entry.seq:
            return
        expected = core_pb2.PodStatus()
        expected.CopyFrom(entry.status)
        if not expected.nominated_node_name:
            expected.nominated_node_name = pod.status.nominated_node_name
        if expected != pod.status:
            entry.seq = next(self._seq)
            self._dirty.add(entry.uid)
            self._wake.set()

    async def wait_acked(self, uid: str, timeout: float) -> bool:
        """Wait until the pod's latest status is acknowledged; False if the pod is gone or time runs out."""
        entry = self._entries.get(uid)
        if entry is None:
            return False
        if entry.acked_seq >= entry.seq:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry.waiters.append((entry.seq, fut))
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            return False

    def forget(self, uid: str) -> None:
        entry = self._entries.pop(uid, None)
        self._dirty.discard(uid)
        if entry is not None:
            entry.gone = True
            entry.settle()

    def uids(self) -> set[str]:
        return set(self._entries)

    # ------------------------------------------------------------ the stream

    async def run(self) -> None:
        backoff = 0.2
        while True:
            call = self.client.stream_pod_status()
            started = time.monotonic()
            try:
                await self._session(call)
            finally:
                call.cancel()
                self.connected.clear()
            if time.monotonic() - started > 5:
                backoff = 0.2
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _session(self, call: grpc.aio.StreamStreamCall) -> None:
        self.sessions += 1
        self._inflight.clear()
        for uid, entry in self._entries.items():
            entry.sent_seq = 0
            if entry.acked_seq != entry.seq:
                self._dirty.add(uid)
        done = asyncio.Event()

        async def guarded(loop_fn) -> None:  # type: ignore[no-untyped-def]
            try:
                await loop_fn(call)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                self._log.info("status_stream_broken", error=detail)
            finally:
                done.set()

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(guarded(self._write_loop)), tg.create_task(guarded(self._read_loop))]
            await done.wait()
            for t in tasks:
                t.cancel()

    async def _write_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        self.connected.set()
        self._wake.set()
        while True:
            self._wake.clear()
            now = time.monotonic()
            soonest = 1.0
            for uid in list(self._dirty):
                entry = self._entries.get(uid)
                if entry is None or entry.acked_seq == entry.seq:
                    self._dirty.discard(uid)
                    continue
                if entry.sent_seq:
                    continue  # one in flight per pod; the ack brings the next
                if entry.retry_at > now:
                    soonest = min(soonest, entry.retry_at - now)
                    continue
                self._dirty.discard(uid)
                entry.sent_seq, entry.sent_status, entry.sent_at = entry.seq, entry.status, now
                self._inflight[entry.seq] = uid
                await call.write(api_pb2.PodStatusUpdate(namespace=entry.namespace, name=entry.name, uid=uid,
                                                         sequence=entry.seq, status=entry.status))
                self.sent += 1
            overdue = [e for e in self._entries.values() if e.sent_seq and now - e.sent_at > self.ack_timeout]
            if overdue:
                self._log.info("status_ack_overdue", pods=len(overdue))
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(soonest):
                    await self._wake.wait()

    async def _read_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                return
            uid = self._inflight.pop(ack.sequence, None)
            entry = self._entries.get(uid) if uid is not None else None
            if entry is None or entry.sent_seq != ack.sequence:
                continue
            entry.sent_seq = 0
            self.acked += 1
            if ack.error and ack.code == "NotFound":
                self._log.debug("pod_status_rejected", pod=f"{entry.namespace}/{entry.name}", error=ack.error)
                entry.gone = True
                entry.settle()
                self._entries.pop(entry.uid, None)
            elif ack.error:
                entry.failures += 1
                entry.retry_at = time.monotonic() + min(self.max_retry, 0.5 * 2 ** (entry.failures - 1))
                self._dirty.add(entry.uid)
                self._log.info("pod_status_failed", pod=f"{entry.namespace}/{entry.name}", error=ack.error,
                               code=ack.code, failures=entry.failures)
            else:
                self._log.debug("pod_status_acked", pod=f"{entry.namespace}/{entry.name}", phase=entry.sent_status.phase
                                if entry.sent_status is not None else "",
                                duration_ms=round((time.monotonic() - entry.sent_at) * 1000, 1))
                entry.failures = 0
                entry.acked_seq, entry.acked = ack.sequence, entry.sent_status
                if entry.seq != entry.acked_seq:
                    self._dirty.add(entry.uid)
                entry.settle()
            self._wake.set()
