"""Helpers for tests against real containerd, runc and CNI, inside network namespaces
the tests create (named kltest-*) and always delete."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from kubelet.runtime import cgroups
from kubelet.runtime.interface import ContainerState, ContainerStatus, Runtime


@contextlib.contextmanager
def network_namespace() -> Iterator[str]:
    """A fresh network namespace with loopback up, deleted on exit."""
    name = f"kltest-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def processes_mentioning(needle: str) -> list[str]:
    """Command lines of live processes that contain needle."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text()
            if needle in cmd and stat.rsplit(")", 1)[-1].split()[0] != "Z":
                found.append(f"{proc.name}: {cmd}")
    return found


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix)]


def cgroup_dirs(cgroup: str) -> list[Path]:
    return [p for p in cgroups.paths(cgroup) if p.exists()]


async def wait_exited(rt: Runtime, container_id: str, timeout: float = 10.0) -> ContainerStatus:
    """Poll until the container has exited (CRI has no wait call)."""
    async with asyncio.timeout(timeout):
        while True:
            status = await rt.container_status(container_id)
            if status.state == ContainerState.EXITED:
                return status
            await asyncio.sleep(0.05)


async def run_on_node(netns: str, *argv: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Run a host command inside the node's network namespace (never the root one)."""
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{netns}", "--", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out


@contextlib.asynccontextmanager
async def removed_cgroup(cgroup: str) -> AsyncIterator[str]:
    """Yields the cgroup path and removes it afterwards, as the kubelet does for pod cgroups."""
    try:
        yield cgroup
    finally:
        await cgroups.remove(cgroup, kill_procs=True)
