"""The wheelhouse the VMs install from with `pip install --no-index`: kubelite's locked
runtime dependencies plus a wheel of kubelite itself, built on the host; beside them in
images/, the node images, so emulated VMs need not compile them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from deploy.node import images

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / "deploy" / "vagrant" / ".wheelhouse"
# The box's Python (Debian 12): wheels are fetched for it, whatever Python runs here.
GUEST_PYTHON = "3.11"
GUEST_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


class WheelhouseError(Exception):
    pass


def requirements_args(root: Path = ROOT) -> list[str]:
    """What `pip download` fetches: the lock file when there is one (exact versions and
    hashes), else pyproject.toml's runtime dependencies."""
    lock = root / "requirements.lock"
    if lock.exists():
        return ["--require-hashes", "-r", str(lock)]
    return list(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])


def download_argv(out: Path, root: Path = ROOT) -> list[str]:
    platforms = [arg for p in GUEST_PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(out), "--only-binary=:all:",
            "--python-version", GUEST_PYTHON, "--implementation", "cp", *platforms, *requirements_args(root)]


def build(out: Path = WHEELHOUSE, root: Path = ROOT) -> list[str]:
    """Build the wheelhouse afresh in `out`; returns the wheel file names."""
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    steps = [download_argv(tmp, root),
             # Built by this venv's (locked) setuptools: no download beyond the locked set.
             [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
              str(tmp), str(root)]]
    # setuptools' scratch copy could carry modules since removed from the source.
    shutil.rmtree(root / "build", ignore_errors=True)
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=root)
        if result.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise WheelhouseError(f"{' '.join(argv[2:5])} failed:\n{result.stderr.strip()[-2000:]}")
    images.build_all(tmp / "images")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sorted(p.name for p in out.glob("*.whl"))
