"""Kubernetes' AtomicWriter: a volume's files change all at once, never half-written.

The files live in a hidden, timestamped directory (`..2026_12_02_10_11_12.123456789`);
the `..data` symlink points at the current one; every name the user sees at
the top of the volume is a symlink through `..data` (`key -> ..data/key`). An
update writes a new timestamped directory, points `..data_tmp` at it and
renames that over `..data` (one atomic rename), then adds and removes the
visible links and deletes the old directory. A reader sees either all old or
all new files; a bind mount of the volume directory sees the change at once.
A file mounted alone by subPath is bound to the old file's inode and keeps it,
as in Kubernetes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class File:
    content: bytes
    mode: int = 0o644


def _timestamp_dir() -> str:
    now = time.time_ns()
    return time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime(now // 1_000_000_000)) + f".{now % 1_000_000_000:09d}"


def _data_dir(target: Path) -> str | None:
    """The directory `..data` points at (None if the volume was never written)."""
    try:
        return os.readlink(os.path.join(target, DATA))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.EINVAL:  # ..data is there but not a link
            return None
        raise


def _read_files(target: Path, data_dir: str | None) -> dict[str, File] | None:
    if data_dir is None:
        return None
    out: dict[str, File] = {}
    _read_tree(os.path.join(target, data_dir), "", out)
    return out


def read_current(target: Path) -> dict[str, File] | None:
    """The files `..data` shows now (None if the volume was never written)."""
    return _read_files(target, _data_dir(target))


def _read_tree(directory: str, prefix: str, out: dict[str, File]) -> None:
    # os-level calls rather than pathlib: a kubelet reads every pod's token volume at each of its syncs.
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir():
                if not entry.is_symlink():
                    _read_tree(entry.path, f"{prefix}{entry.name}/", out)
                continue
            with open(entry.path, "rb") as f:
                content = f.read()
            out[prefix + entry.name] = File(content, entry.stat(follow_symlinks=False).st_mode & 0o7777)


def write(target: Path, files: Mapping[str, File]) -> bool:
    """Make the volume at `target` show exactly `files` (relative path -> content); False if it already did."""
    if not os.path.isdir(target):
        os.makedirs(target, exist_ok=True)
    old = _data_dir(target)
    if _read_files(target, old) == dict(files):
        return False
    data = os.path.join(target, DATA)
    # As few system calls as will do: a kubelet writes every new pod's token volume.
    while True:
        new_dir = _timestamp_dir()
        root = os.path.join(target, new_dir)
        try:
            os.mkdir(root, 0o755)
            break
        except FileExistsError:
            continue
    for rel, f in files.items():
        path = os.path.join(root, rel)
        if "/" in rel:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(f.content)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, f.mode)
        finally:
            os.close(fd)
    tmp = os.path.join(target, DATA_TMP)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(new_dir, tmp)
    os.rename(tmp, data)
    # The names the user sees: the top-level entries of the new set, each a link through ..data.
    visible = {rel.split("/", 1)[0] for rel in files}
    for name in visible:
        link = os.path.join(target, name)
        try:
            os.symlink(f"{DATA}/{name}", link)
            continue
        except FileExistsError:
            pass
        if os.path.islink(link):
            continue  # already through ..data
        if os.path.isdir(link):
            shutil.rmtree(link)
        else:
            os.unlink(link)
        os.symlink(f"{DATA}/{name}", link)
    with os.scandir(target) as entries:
        stale = [e.path for e in entries
                 if not e.name.startswith("..") and e.name not in visible and e.is_symlink()]
    for path in stale:
        os.unlink(path)
    if old is not None and old != new_dir:
        shutil.rmtree(os.path.join(target, old), ignore_errors=True)
    return True
