"""The scheduling queue: order, backoff, and moving unschedulable pods only on events that may help."""

from __future__ import annotations

import asyncio

import pytest

from scheduler import cache as events
from scheduler.framework.types import PodInfo
from scheduler.queue import POD_ADDED, SchedulingQueue
from unit.scheduler.objects import pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def info(name: str, *, priority: int = 0, created: int = 0) -> PodInfo:
    p = pod(name, priority=priority)
    p.metadata.creation_timestamp.seconds = created
    return PodInfo(p)


def new_queue(clock: Clock, **kw: float) -> SchedulingQueue:
    return SchedulingQueue(backoff_initial=kw.get("initial", 1.0), backoff_max=kw.get("max", 60.0),
                           unschedulable_timeout=kw.get("timeout", 300.0), clock=clock)


async def test_pops_by_priority_then_age() -> None:
    """Higher priority first; among equals, the older pod first."""
    q = new_queue(Clock())
    q.add(info("young", created=20))
    q.add(info("old", created=10))
    q.add(info("vip", priority=100, created=30))
    assert [(await q.pop()).info.name for _ in range(3)] == ["vip", "old", "young"]


def test_backoff_doubles_to_the_cap() -> None:
    """Backoff is initial * 2^(attempts-1), capped."""
    q = new_queue(Clock(), initial=1.0, max=60.0)
    assert [q.backoff_duration(n) for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 32, 60, 60]


async def test_unschedulable_pod_waits_for_a_relevant_event_then_backoff() -> None:
    """A pod rejected for cpu ignores a taint change, moves on a pod deletion, and waits out its backoff."""
    clock = Clock()
    q = new_queue(clock)
    q.add(info("p"))
    qp = await q.pop()
    q.unschedulable(qp, {"NodeResourcesFit"})
    assert q.counts()["unschedulable"] == 1
    assert q.move(events.NODE_TAINTS_CHANGED) == 0
    assert q.move(events.POD_DELETED) == 1
    assert q.counts()["backoff"] == 1 and q.pop_nowait() is None
    clock.now += 1.0
    assert q.pop_nowait() is not None


@pytest.mark.parametrize(("event", "rejected_by", "moves"), [
    pytest.param(events.NODE_ADDED, {"NodeAffinity"}, True, id="node-added-helps-all"),
    pytest.param(events.NODE_ALLOCATABLE_GREW, {"NodeResourcesFit"}, True, id="allocatable-fit"),
    pytest.param(events.NODE_ALLOCATABLE_GREW, {"NodeAffinity"}, False, id="allocatable-not-affinity"),
    pytest.param(events.NODE_LABELS_CHANGED, {"NodeAffinity"}, True, id="labels-affinity"),
    pytest.param(events.NODE_SCHEDULABLE, {"NodeUnschedulable"}, True, id="uncordon"),
    pytest.param(events.NODE_READY, {"NodeReady"}, True, id="ready"),
    pytest.param(events.NODE_READY, {"TaintToleration"}, False, id="ready-not-taints"),
    pytest.param(POD_ADDED, {"InterPodAffinity"}, True, id="pod-added-affinity"),
    pytest.param(POD_ADDED, {"NodeResourcesFit"}, False, id="pod-added-not-fit"),
    pytest.param(events.POD_DELETED, set(), True, id="unknown-rejection-moves-on-anything"),
])
async def test_which_events_move_which_pods(event: str, rejected_by: set[str], moves: bool) -> None:
    """An event moves an unschedulable pod only if it may help a plugin that rejected it."""
    q = new_queue(Clock())
    q.add(info("p"))
    q.unschedulable(await q.pop(), rejected_by)
    assert q.move(event) == (1 if moves else 0)


async def test_event_during_a_cycle_sends_the_pod_to_backoff() -> None:
    """A cluster change while a pod is being scheduled makes its failure retry after backoff, not park it."""
    clock = Clock()
    q = new_queue(clock)
    q.add(info("p"))
    qp = await q.pop()
    q.move(events.NODE_ADDED)
    q.unschedulable(qp, {"NodeResourcesFit"})
    assert q.counts() == {"active": 0, "backoff": 1, "unschedulable": 0, "inflight": 0}


async def test_unschedulable_pods_are_retried_after_the_timeout() -> None:
    """Even with no event, a parked pod is retried after unschedulable_timeout."""
    clock = Clock()
    q = new_queue(clock, timeout=30.0)
    q.add(info("p"))
    q.unschedulable(await q.pop(), {"NodeResourcesFit"})
    clock.now += 29
    assert q.pop_nowait() is None
    clock.now += 2
    assert q.pop_nowait() is not None


async def test_deleted_pod_leaves_every_queue() -> None:
    """Deleting a pod removes it whether active, parked or in flight."""
    q = new_queue(Clock())
    q.add(info("a"))
    q.add(info("b"))
    qp = await q.pop()
    q.delete("default/a")
    q.delete("default/b")
    q.unschedulable(qp, {"NodeResourcesFit"})
    assert len(q) == 0 and q.pop_nowait() is None


async def test_repeated_failures_grow_the_backoff() -> None:
    """Each failed attempt doubles the wait before the next one."""
    clock = Clock()
    q = new_queue(clock)
    q.add(info("p"))
    waits = []
    for _ in range(4):
        qp = await q.pop()
        q.unschedulable(qp, {"NodeResourcesFit"})
        q.move(events.NODE_ADDED)
        waits.append(qp.backoff_until - clock.now)
        clock.now = qp.backoff_until
    assert waits == [1, 2, 4, 8]


async def test_a_waiting_pop_obeys_a_cancellation_that_meets_a_wakeup() -> None:
    """A scheduler stopping just as a pod arrives: the cancellation must end the loop, not be lost to the
    wakeup (on 3.11 `asyncio.wait_for` dropped it, and the scheduler outlived its shutdown)."""
    q = new_queue(Clock())
    popped: list[str] = []

    async def loop() -> None:
        while True:
            popped.append((await q.pop()).info.name)

    task = asyncio.ensure_future(loop())
    await asyncio.sleep(0.01)  # waiting on an empty queue
    q.add(info("late"))
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1.0)
    assert done and task.cancelled(), popped
