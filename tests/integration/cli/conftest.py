"""Run the real `kubelite` command against the test apiserver, as a user would."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import testpki
from conftest import RunningApiserver

KUBELITE = str(Path(sys.executable).parent / "kubelite")
DOCS = Path(__file__).resolve().parents[2] / "data" / "k8s-docs"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment minus any KUBELITE_* setting, with a config file that holds the test cluster's CA and the
    admin's certificate (and a server where nothing listens: tests name theirs with --server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBELITE_")}
    env["HOME"] = str(tmp)
    env["KUBELITE_CONFIG"] = testpki.get().cli_config()
    return env


async def run_kubelite(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60) -> Result:
    proc = await asyncio.create_subprocess_exec(
        KUBELITE, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout)
    return Result(proc.returncode or 0, out.decode(), err.decode())


Kubelite = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path)


@pytest.fixture
def kubelite(apiserver: RunningApiserver, cli_env: dict[str, str]) -> Kubelite:
    """`await kubelite("get", "pods")` runs the command against the test apiserver (via --server)."""

    async def go(*args: str, stdin: str | None = None, server: bool = True) -> Result:
        extra = ("--server", apiserver.address) if server else ()
        return await run_kubelite(*args, *extra, env=cli_env, stdin=stdin)

    return go
