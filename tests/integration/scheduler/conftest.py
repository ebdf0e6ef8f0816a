"""Fixtures for scheduler integration tests: a real apiserver over real etcd, and a scheduler running in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import testpki

from client.api import Client
from scheduler.daemon import Scheduler, Term, wait_leading
from scheduler.framework.config import SchedulerConfig


@dataclass
class RunningScheduler:
    scheduler: Scheduler
    task: asyncio.Task

    @property
    def term(self) -> Term:
        assert self.scheduler.term is not None
        return self.scheduler.term

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def start_scheduler(client: Client, *, identity: str = "test", **overrides: object) -> RunningScheduler:
    settings: dict[str, object] = {"leader_elect": False, "backoff_initial": 0.2, "backoff_max": 1.0}
    settings.update(overrides)
    s = Scheduler(client, SchedulerConfig(**settings), identity=identity)  # type: ignore[arg-type]
    task = asyncio.create_task(s.run())
    if not settings["leader_elect"]:
        await wait_leading(s, 20)
    return RunningScheduler(s, task)


@pytest.fixture
async def scheduler(client: Client) -> AsyncIterator[RunningScheduler]:
    running = await start_scheduler(client)
    try:
        yield running
    finally:
        await running.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


KUBELITE = str(Path(sys.executable).parent / "kubelite")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


async def cli(server: str, *args: str, stdin: str | None = None, timeout: float = 60.0) -> CliResult:
    """Run the `kubelite` command as a user would, against `server`."""
    proc = await asyncio.create_subprocess_exec(
        KUBELITE, *args, "--server", server, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KUBELITE_CONFIG": testpki.get().cli_config()})
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout)
    return CliResult(proc.returncode or 0, out.decode(), err.decode())


async def bound_nodes(client: Client, namespace: str = "default") -> dict[str, str]:
    return {p.metadata.name: p.spec.node_name for p in await client.list_all("pods", namespace)}


async def wait_bound(client: Client, names: list[str], timeout: float = 20.0,
                     namespace: str = "default") -> dict[str, str]:
    out: dict[str, str] = {}

    async def check() -> bool:
        current = await bound_nodes(client, namespace)
        for n in names:
            if current.get(n):
                out[n] = current[n]
        return len(out) == len(names)

    await eventually(check, timeout)
    return out


async def pending_message(client: Client, name: str, timeout: float = 20.0, *, namespace: str = "default",
                          expect: str | None = None) -> str:
    """The pod's PodScheduled=False message, once the scheduler wrote one (and it equals `expect`, if given)."""
    found: list[str] = []

    async def check() -> bool:
        p = await client.get("pods", name, namespace)
        for c in p.status.conditions:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                found.append(c.message)
                return expect is None or c.message == expect
        return False

    try:
        await eventually(check, timeout)
    except AssertionError:
        raise AssertionError(f"pod {name}: pending message {found[-1] if found else None!r}, wanted {expect!r}")\
            from None
    return found[-1]
