"""cgroupfs helpers: create a cgroup with limits, read its OOM count, remove it.

A cgroup path such as /kubelite/node-1/pod<uid> exists once per mounted
hierarchy: under every v1 controller mount (and the unified one in hybrid
mode), or once under a pure v2 /sys/fs/cgroup. containerd leaves pod
cgroups (cgroup_parent) behind when a sandbox is removed, so the kubelet
removes them with `remove_cgroup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import structlog

from kubelet.runtime import mounts

log = structlog.get_logger(__name__)

MOUNTINFO = "/proc/self/mountinfo"
# Super options of a v1 mount mix controllers with flags (xattr, noprefix, ...).
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
    "perf_event", "hugetlb", "pids", "rdma", "misc",
})


@dataclass(frozen=True)
class Hierarchy:
    mount: Path
    version: int
    controllers: frozenset[str]


def hierarchies(mountinfo: str | None = None) -> list[Hierarchy]:
    """Mounted cgroup hierarchies, from /proc/self/mountinfo (or the given text)."""
    return _parse(mountinfo) if mountinfo is not None else list(_mounted())


@functools.cache
def _mounted() -> tuple[Hierarchy, ...]:
    """This process's hierarchies, read once: cgroup mounts do not change under a running kubelet, while
    mountinfo grows with every pod's mounts (a thousand lines at 300 pods), and removing a pod asks for the
    hierarchies every 50 ms until its cgroup is empty."""
    return tuple(_parse(None))


def _parse(mountinfo: str | None) -> list[Hierarchy]:
    text = mountinfo if mountinfo is not None else Path(MOUNTINFO).read_text()
    found = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mount = Path(mounts.unescape(fields[4]))
        if tail[0] == "cgroup2":
            ctl = Path(mount, "cgroup.controllers")
            controllers = frozenset(ctl.read_text().split()) if mountinfo is None and ctl.exists() else frozenset()
            found.append(Hierarchy(mount, 2, controllers))
        else:
            opts = {o for o in tail[2].split(",") if o in V1_CONTROLLERS or o.startswith("name=")}
            found.append(Hierarchy(mount, 1, frozenset(opts)))
    return found


def _under(h: Hierarchy, cgroup: str) -> Path:
    return h.mount / cgroup.strip("/")


def paths(cgroup: str) -> list[Path]:
    """The directories of a cgroup path in every hierarchy (existing or not)."""
    return [_under(h, cgroup) for h in hierarchies()]


def _controller(cgroup: str, name: str) -> Path | None:
    """Where a controller's files for the cgroup live: its v1 mount, else the v2 tree."""
    hs = hierarchies()
    for h in hs:
        if h.version == 1 and name in h.controllers:
            return _under(h, cgroup)
    for h in hs:
        if h.version == 2 and name in h.controllers:
            return _under(h, cgroup)
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def create(cgroup: str, *, memory_limit: int = 0, cpu_shares: int = 0, cpu_quota: int = 0, cpu_period: int = 0
           ) -> list[Path]:
    """mkdir the cgroup in every hierarchy and apply limits; returns the directories to join.

    A memory limit also caps swap, so a container over its limit is OOM-killed
    instead of swapping (what runc does for CRI). The v1 cpuset hierarchy is
    skipped: a new cpuset cgroup has no CPUs until they are copied into it,
    and joining it fails before that.
    """
    dirs = []
    for h in hierarchies():
        if h.version == 1 and "cpuset" in h.controllers:
            continue
        d = _under(h, cgroup)
        if h.version == 2:
            _enable_v2_controllers(h, d)
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(d)
    mem, cpu = _controller(cgroup, "memory"), _controller(cgroup, "cpu")
    if mem is not None and memory_limit:
        if (mem / "memory.limit_in_bytes").exists():
            _write(mem / "memory.limit_in_bytes", str(memory_limit))
            if (mem / "memory.memsw.limit_in_bytes").exists():
                _write(mem / "memory.memsw.limit_in_bytes", str(memory_limit))
        else:
            _write(mem / "memory.max", str(memory_limit))
            if (mem / "memory.swap.max").exists():
                _write(mem / "memory.swap.max", "0")
    if cpu is not None:
        if (cpu / "cpu.shares").exists():
            if cpu_shares:
                _write(cpu / "cpu.shares", str(cpu_shares))
            if cpu_period:
                _write(cpu / "cpu.cfs_period_us", str(cpu_period))
            if cpu_quota:
                _write(cpu / "cpu.cfs_quota_us", str(cpu_quota))
        else:
            if cpu_shares:
                # The kubelet's shares -> weight mapping ([2, 262144] -> [1, 10000]).
                _write(cpu / "cpu.weight", str(1 + ((cpu_shares - 2) * 9999) // 262142))
            if cpu_quota:
                _write(cpu / "cpu.max", f"{cpu_quota} {cpu_period or 100000}")
    return dirs


def _enable_v2_controllers(h: Hierarchy, leaf: Path) -> None:
    """v2 gives a child a controller only if every ancestor delegates it."""
    wanted = [c for c in ("cpu", "memory", "pids") if c in h.controllers]
    node = h.mount
    for part in leaf.relative_to(h.mount).parts:
        for c in wanted:
            try:
                _write(node / "cgroup.subtree_control", f"+{c}")
            except OSError:
                continue
        node = node / part
        node.mkdir(exist_ok=True)


def _subtree(top: Path) -> list[Path]:
    """top and every cgroup below it, deepest first; children removed meanwhile are simply missing
    (os.walk ignores a directory that vanished under it, where Path.rglob raises)."""
    found = [Path(dirpath) for dirpath, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def pids(cgroup: str) -> set[int]:
    """Processes anywhere in the cgroup's subtree."""
    found: set[int] = set()
    for d in paths(cgroup):
        for sub in _subtree(d):
            try:
                found.update(int(p) for p in (sub / "cgroup.procs").read_text().split())
            except OSError:
                continue  # removed meanwhile (ENOENT, or ENODEV once opened)
    return found


def oom_kills(cgroup: str) -> int:
    """How many processes the kernel OOM-killed in this cgroup (0 if unknown)."""
    mem = _controller(cgroup, "memory")
    if mem is None:
        return 0
    for name in ("memory.oom_control", "memory.events"):
        try:
            for line in (mem / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            continue
    return 0


def kill(cgroup: str, sig: int = signal.SIGKILL) -> int:
    """Signal every process in the cgroup's subtree; returns how many were signalled."""
    count = 0
    for pid in pids(cgroup):
        try:
            os.kill(pid, sig)
            count += 1
        except ProcessLookupError:
            continue
    return count


async def remove(
    cgroup: str, *, kill_procs: bool = False, prune_parents: bool = False, timeout: float = 5.0
) -> None:
    """Remove a cgroup and its children from every hierarchy.

    rmdir fails with EBUSY while a process is inside: with kill_procs they
    are SIGKILLed first, and dying ones are waited for up to `timeout`.
    With prune_parents, ancestors left empty are removed too (others'
    cgroups keep theirs busy, so shared parents survive).
    """
    if not cgroup.strip("/"):
        raise ValueError("refusing to remove the root cgroup")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if kill_procs:
            kill(cgroup)
        busy = []
        for top in paths(cgroup):
            # Children before parents: a cgroup with children cannot be removed.
            for d in _subtree(top):
                busy += _rmdir(d)
        if not busy:
            if prune_parents:
                _prune(cgroup)
            log.debug("cgroup_removed", cgroup=cgroup)
            return
        if loop.time() > deadline:
            raise OSError(errno.EBUSY, f"cgroup {cgroup} still busy: {', '.join(map(str, busy))}")
        await asyncio.sleep(0.05)


def _prune(cgroup: str) -> None:
    parent = Path(cgroup.strip("/")).parent
    while parent != Path("."):
        for h in hierarchies():
            with contextlib.suppress(OSError):
                _under(h, str(parent)).rmdir()
        parent = parent.parent


def _rmdir(d: Path) -> list[Path]:
    try:
        d.rmdir()
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return [d]
        if exc.errno not in (errno.ENOENT, errno.ENODEV):  # removed meanwhile: done
            raise
    return []
