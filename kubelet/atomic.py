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


def read_current(target: Path) -> dict[str, File] | None:
    """The files `..data` shows now (None if the volume was never written)."""
    data = target / DATA
    if not data.is_symlink():
        return None
    root = target / os.readlink(data)
    out: dict[str, File] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = Path(dirpath, name)
            st = full.lstat()
            out[str(full.relative_to(root))] = File(full.read_bytes(), st.st_mode & 0o7777)
    return out


def write(target: Path, files: Mapping[str, File]) -> bool:
    """Make the volume at `target` show exactly `files` (relative path -> content); False if it already did."""
    target.mkdir(parents=True, exist_ok=True)
    if read_current(target) == dict(files):
        return False
    old = os.readlink(target / DATA) if (target / DATA).is_symlink() else None
    new_dir = _timestamp_dir()
    while (target / new_dir).exists():
        new_dir = _timestamp_dir()
    root = target / new_dir
    root.mkdir(mode=0o755)
    for rel, f in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(f.content)
        os.chmod(path, f.mode)
    tmp = target / DATA_TMP
    tmp.unlink(missing_ok=True)
    os.symlink(new_dir, tmp)
    os.rename(tmp, target / DATA)
    # The names the user sees: the top-level entries of the new set, each a link through ..data.
    visible = {rel.split("/", 1)[0] for rel in files}
    for name in visible:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA}/{name}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in visible and entry.is_symlink():
            entry.unlink()
    if old is not None and old != new_dir:
        shutil.rmtree(target / old, ignore_errors=True)
    return True
