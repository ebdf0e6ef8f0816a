"""Pod workers: one sync at a time per pod, updates coalesced, retries, and which updates need a sync."""

from __future__ import annotations

import asyncio

from api.pb import core_pb2
from kubelet.kubelet import needs_sync
from kubelet.podworkers import DONE, WAIT, PodWork, PodWorkers

from .podbuild import make_pod


async def test_one_sync_at_a_time_per_pod_and_updates_coalesce() -> None:
    """Updates arriving during a sync run it once more afterwards, never concurrently; pods sync in parallel."""
    running: dict[str, int] = {}
    overlap: list[str] = []
    seen: dict[str, list[str]] = {}
    gate = asyncio.Event()

    async def sync(work: PodWork) -> float | None:
        running[work.uid] = running.get(work.uid, 0) + 1
        if running[work.uid] > 1:
            overlap.append(work.uid)
        seen.setdefault(work.uid, []).append(work.pod.metadata.labels.get("v", ""))
        await gate.wait()
        running[work.uid] -= 1
        return WAIT

    async with asyncio.TaskGroup() as tg:
        workers = PodWorkers(tg, sync)
        a, b = make_pod("x", uid="a"), make_pod("x", uid="b")
        workers.update(a)
        workers.update(b)
        await asyncio.sleep(0.01)
        for v in ("1", "2", "3"):
            newer = core_pb2.Pod()
            newer.CopyFrom(a)
            newer.metadata.labels["v"] = v
            workers.update(newer)
        assert running == {"a": 1, "b": 1}, "two pods sync at the same time"
        gate.set()
        await asyncio.sleep(0.05)
        assert seen["a"] == ["", "3"], "three updates during a sync give one more sync, with the latest pod"
        assert not overlap
        for w in workers.items():
            assert w.task is not None
            w.task.cancel()


async def test_failures_retry_and_done_ends_worker() -> None:
    """A sync that raises is retried; DONE ends the worker and later updates for that uid are ignored."""
    calls = 0

    async def sync(work: PodWork) -> float | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("transient")
        return DONE

    async with asyncio.TaskGroup() as tg:
        workers = PodWorkers(tg, sync, max_retry=0.01)
        pod = make_pod("x", uid="u")
        workers.update(pod)
        work = workers.get("u")
        assert work is not None and work.task is not None
        await asyncio.wait_for(work.task, 5)
        assert calls == 2 and workers.finished("u")
        workers.update(pod)
        assert len(workers) == 0


async def test_requeue_delay_and_gone() -> None:
    """A sync's delay schedules the next one; a pod gone from the API is marked for its worker."""
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def sync(work: PodWork) -> float | None:
        times.append(loop.time())
        return DONE if work.gone else 0.05

    async with asyncio.TaskGroup() as tg:
        workers = PodWorkers(tg, sync)
        pod = make_pod("x", uid="g")
        workers.update(pod)
        await asyncio.sleep(0.12)
        work = workers.get("g")
        assert work is not None and work.task is not None
        workers.gone(pod)
        await asyncio.wait_for(work.task, 5)
    assert len(times) >= 3, "requeued without being woken"


def test_needs_sync() -> None:
    """Only changes to spec, labels, annotations or deletion need a sync; status-only updates do not."""
    old = make_pod("a")
    status_only = core_pb2.Pod()
    status_only.CopyFrom(old)
    status_only.status.phase = "Running"
    status_only.metadata.resource_version = "9"
    assert not needs_sync(old, status_only)
    deleted = core_pb2.Pod()
    deleted.CopyFrom(old)
    deleted.metadata.deletion_timestamp.seconds = 5
    assert needs_sync(old, deleted)
    image = core_pb2.Pod()
    image.CopyFrom(old)
    image.spec.containers[0].image = "busybox:2"
    assert needs_sync(old, image)
    labelled = core_pb2.Pod()
    labelled.CopyFrom(old)
    labelled.metadata.labels["x"] = "y"
    assert needs_sync(old, labelled)
