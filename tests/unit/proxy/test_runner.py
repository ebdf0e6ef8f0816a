"""The bounded-frequency runner: bursts merged, at most one run per min interval, one per max interval anyway."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from proxy.runner import BoundedFrequencyRunner


class Recorder:
    def __init__(self, duration: float = 0.0) -> None:
        self.starts: list[float] = []
        self.duration = duration

    async def __call__(self) -> None:
        self.starts.append(time.monotonic())
        await asyncio.sleep(self.duration)


@contextlib.asynccontextmanager
async def running(runner: BoundedFrequencyRunner):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_first_run_is_immediate_and_a_burst_costs_one_run() -> None:
    """The runner runs at start; 50 requests in a burst lead to exactly one more run, within min_interval."""
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.2, max_interval=60)
    async with running(runner):
        await asyncio.sleep(0.05)
        assert len(rec.starts) == 1
        t0 = time.monotonic()
        for _ in range(50):
            runner.request()
            await asyncio.sleep(0)
        await asyncio.sleep(0.6)
    assert len(rec.starts) == 2
    assert rec.starts[1] - t0 <= 0.2 + 0.15  # slack for a loaded machine
    assert rec.starts[1] - rec.starts[0] >= 0.2 - 0.01


async def test_runs_are_at_least_min_interval_apart() -> None:
    """Requests arriving all the time still give runs no closer than min_interval."""
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.1, max_interval=60)
    async with running(runner):
        deadline = time.monotonic() + 0.55
        while time.monotonic() < deadline:
            runner.request()
            await asyncio.sleep(0.01)
    gaps = [b - a for a, b in zip(rec.starts, rec.starts[1:], strict=False)]
    assert 4 <= len(rec.starts) <= 7
    assert min(gaps) >= 0.1 - 0.01


async def test_runs_every_max_interval_without_requests() -> None:
    """With no requests at all it still runs every max_interval."""
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.1)
    async with running(runner):
        await asyncio.sleep(0.35)
    assert 3 <= len(rec.starts) <= 5


async def test_a_request_during_a_run_is_not_lost() -> None:
    """A change that arrives while a run is in progress gets a run of its own afterwards."""
    rec = Recorder(duration=0.1)
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=60)
    async with running(runner):
        await asyncio.sleep(0.05)
        runner.request()  # during the first run
        await asyncio.sleep(0.3)
    assert len(rec.starts) == 2


def test_rejects_nonsense_intervals() -> None:
    """A zero max interval would spin; it is refused."""
    with pytest.raises(ValueError):
        BoundedFrequencyRunner(Recorder(), min_interval=0.1, max_interval=0)
