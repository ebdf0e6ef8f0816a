"""Which filesystem a path is on, read from /proc/self/mountinfo.

A kubelet whose directory is in memory (tmpfs: hollow nodes) does its pods'
volume and log file work inline: nothing there can wait on a disk, and a
thread hop costs more than the work itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

IN_MEMORY = frozenset({"tmpfs", "ramfs"})


def mount_of(mountinfo: str, path: str) -> tuple[str, str]:
    """(mount point, filesystem type) of the mount that holds the absolute `path`: the longest mount point that
    is the path or one of its parents; of mounts on the same point, the last (it hides the others)."""
    best = ("", "")
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if not sep or len(fields) < 5 or not rest:
            continue
        point = _unescape(fields[4])
        if _under(path, point) and len(point) >= len(best[0]):
            best = (point, rest[0])
    return best


def in_memory(path: Path) -> bool:
    """Whether `path` (which need not exist yet) is on a filesystem in memory; False when it cannot be told."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return False
    return mount_of(text, os.path.realpath(path))[1] in IN_MEMORY


def _under(path: str, point: str) -> bool:
    return point == "/" or path == point or path.startswith(point.rstrip("/") + "/")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in a path as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
