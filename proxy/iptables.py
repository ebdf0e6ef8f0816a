"""Running iptables-restore, iptables-save and iptables, optionally inside a named network namespace.

Every command has a deadline; a command that overruns it is killed. With a
namespace, commands run under `nsenter --net=...` (not `ip netns exec`, which
remounts /sys for nothing here).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.netns import netns_path


class IptablesError(Exception):
    """An iptables command failed; the message carries its stderr."""


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


class Iptables:
    def __init__(self, netns: str = "", *, timeout: float = 120.0) -> None:
        self.netns = netns
        self.timeout = timeout
        self._prefix = ["nsenter", f"--net={netns_path(netns)}", "--"] if netns else []

    async def run(self, argv: Sequence[str], *, stdin: str | None = None, timeout: float | None = None) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *self._prefix, *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout or self.timeout):
                out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def restore(self, payload: str) -> None:
        """Apply a payload atomically, leaving chains it does not mention alone (--noflush)."""
        r = await self.run(["iptables-restore", "-w", "--noflush"], stdin=payload)
        if r.code != 0:
            raise IptablesError(f"iptables-restore failed (exit {r.code}): {r.stderr.strip()}")

    async def save(self, table: str) -> str:
        r = await self.run(["iptables-save", "-t", table])
        if r.code != 0:
            raise IptablesError(f"iptables-save -t {table} failed (exit {r.code}): {r.stderr.strip()}")
        return r.stdout

    async def list_chain(self, table: str, chain: str) -> list[str] | None:
        """The rules of one chain as `-A ...` lines (a cheap read: only that chain), None if it is missing."""
        r = await self.run(["iptables", "-w", "-t", table, "-S", chain], timeout=10.0)
        if r.code != 0:
            return None
        return [line for line in r.stdout.splitlines() if line.startswith("-A ")]
