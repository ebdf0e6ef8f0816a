"""Mount points under a directory, from /proc/self/mountinfo, and unmounting them before the directory goes.

A node's mountinfo grows with its pods (each has a netns, a /dev/shm and its volumes' tmpfs mounts: a thousand
lines at 300 pods) and a pod's removal reads it twice, so a line is decoded only when it holds the directory's
path as mountinfo spells it: the kernel writes space, tab, newline and backslash as octal escapes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import re
from pathlib import Path

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPED = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}
_OCTAL = re.compile(r"\\([0-7]{3})")
_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def escape(path: str) -> str:
    """`path` as mountinfo writes it."""
    return "".join(_ESCAPED.get(c, c) for c in path)


def unescape(field: str) -> str:
    """A mountinfo path field as the path it names."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def points_under(root: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or under `root`, in mountinfo's order, from /proc/self/mountinfo (or the given text)."""
    top = str(root).rstrip("/") or "/"
    needle = escape(top)
    text = mountinfo if mountinfo is not None else Path(MOUNTINFO).read_text()
    found = []
    at = text.find(needle)
    while at != -1:  # only the lines that hold the needle are split and decoded
        start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
        end = len(text) if end == -1 else end
        fields = text[start:end].split(" ", 5)
        point = unescape(fields[4]) if len(fields) >= 5 else ""
        if point == top or point.startswith(top.rstrip("/") + "/"):
            found.append(point)
        at = text.find(needle, end)
    return found


def unmount_all(root: Path) -> list[str]:
    """Unmount every mount at or under `root`, deepest first (detached if busy); what is still mounted."""
    found = points_under(root)
    if not found:
        return []
    for point in sorted(set(found), key=lambda p: p.count("/"), reverse=True):
        # EINVAL: no longer a mount point (a stacked mount went with the one above it).
        if _libc.umount2(point.encode(), 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            _libc.umount2(point.encode(), _MNT_DETACH)
    return points_under(root)
