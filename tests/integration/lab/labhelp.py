"""Helpers for lab tests: run commands inside namespaces, read their state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from deploy.lab import netns_path


def in_netns(netns: str | Path, *argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run a command inside a network namespace (a name under /run/netns, or a path)."""
    path = netns if isinstance(netns, Path) else netns_path(netns)
    return subprocess.run(
        ["nsenter", f"--net={path}", "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ping(netns: str | Path, address: object) -> bool:
    return in_netns(netns, "busybox", "ping", "-c", "1", "-W", "2", str(address)).returncode == 0


def ip(*args: str) -> str:
    """Run `ip` (read-only uses in these tests) and return its stdout."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def routes(netns: str) -> list[str]:
    return sorted(line.strip() for line in ip("-n", netns, "-4", "route", "show").splitlines())


def sysctl(netns: str, key: str) -> str:
    return in_netns(netns, "sysctl", "-n", key).stdout.strip()


def pids_in_net_namespaces(inodes: set[int]) -> list[int]:
    """Live processes whose network namespace is one of `inodes`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    found.append(int(entry))
            except OSError:
                continue  # exited, or a zombie without namespaces
    return found
