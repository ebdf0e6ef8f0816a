"""The Debian 12 box the VMs boot: built locally from the Debian archive, cached by a hash
of its inputs (so a second run reuses it), and added to Vagrant."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.vm import plan

VAGRANT_DIR = Path(__file__).resolve().parents[1] / "vagrant"
BUILDER = VAGRANT_DIR / "build-box.sh"
INPUTS = (BUILDER, VAGRANT_DIR / "node-packages.txt")
# Settings the builder reads from the environment change the box too.
SETTINGS = ("KUBELITE_DEBIAN_MIRROR", "KUBELITE_DEBIAN_SECURITY", "VAGRANT_INSECURE_PUBKEY")
CURRENT = "current.json"  # the Vagrantfile's default box, written after each build or reuse


class BoxError(Exception):
    pass


@dataclass(frozen=True)
class Box:
    name: str
    path: Path
    built: bool  # False: reused from the cache


def key() -> str:
    files = {p.name: p.read_bytes() for p in INPUTS}
    return plan.box_key(files, {k: os.environ.get(k, "") for k in SETTINGS})


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per key at a time: a second `up` waits for the first one's box."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure(cache: Path = plan.BOX_CACHE, *, progress: Callable[[str], None] = print) -> Box:
    """Build the box unless the cache has it for these inputs, then make sure Vagrant has it."""
    k = key()
    path = cache / k / "kubelite-debian12.box"
    built = False
    with _locked(cache / f"{k}.lock"):
        if not path.exists():
            progress(f"building box {plan.box_name(k)} (about 2 minutes; only the Debian archive is reached)")
            result = subprocess.run(["bash", str(BUILDER), str(path)], capture_output=True, text=True, timeout=1800)
            if result.returncode != 0:
                raise BoxError(f"box build failed:\n{(result.stdout + result.stderr).strip()[-3000:]}")
            built = True
        box = Box(plan.box_name(k), path, built)
        _add(box, progress)
        (cache / CURRENT).write_text(json.dumps({"name": box.name, "path": str(path)}) + "\n")
    return box


def _add(box: Box, progress: Callable[[str], None]) -> None:
    listed = subprocess.run(["vagrant", "box", "list", "--machine-readable"], capture_output=True, text=True,
                            timeout=120)
    if f",box-name,{box.name}\n" in listed.stdout + "\n":
        return
    progress(f"adding box {box.name} to vagrant")
    result = subprocess.run(["vagrant", "box", "add", "--force", "--name", box.name, str(box.path)],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise BoxError(f"vagrant box add failed: {(result.stdout + result.stderr).strip()[-2000:]}")
