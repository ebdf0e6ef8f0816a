"""The lock files still satisfy pyproject.toml, and the virtualenv holds what they pin."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The platform the locks are made for (scripts/lock.sh): CPython 3.11 on Linux x86_64.
TARGET = {**default_environment(), "python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64",
          "platform_system": "Linux", "implementation_name": "cpython", "platform_python_implementation": "CPython"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;.*?)?\s*\\?$")


def read_lock(name: str) -> dict[str, str]:
    """Package -> pinned version; fails unless every pin carries at least one hash."""
    pins: dict[str, str] = {}
    lines = (ROOT / name).read_text().splitlines()
    for i, line in enumerate(lines):
        m = _PIN.match(line)
        if m is None:
            continue
        pins[canonicalize_name(m.group(1))] = m.group(2)
        assert i + 1 < len(lines) and lines[i + 1].strip().startswith("--hash=sha256:"), f"{name}: {line} has no hash"
    assert pins, f"{name} pins nothing"
    return pins


RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]


@pytest.mark.parametrize(("lock", "requirements"), [
    pytest.param("requirements.lock", RUNTIME, id="runtime-lock-runtime-deps"),
    pytest.param("requirements-dev.lock", RUNTIME, id="dev-lock-runtime-deps"),
    pytest.param("requirements-dev.lock", DEV, id="dev-lock-dev-extra"),
    pytest.param("requirements-dev.lock", BUILD, id="dev-lock-build-backend"),
])
def test_lock_satisfies_pyproject(lock: str, requirements: list[Requirement]) -> None:
    """Every requirement of pyproject.toml has a locked version inside its range (re-lock: bash scripts/lock.sh)."""
    pins = read_lock(lock)
    wrong = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(TARGET):
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req} (locked: {version or 'nothing'})")
    assert not wrong, f"{lock} does not satisfy pyproject.toml; run `bash scripts/lock.sh`: {', '.join(wrong)}"


def test_runtime_lock_is_the_dev_lock_without_the_tools() -> None:
    """A node runs the versions the tests ran: every runtime pin equals the dev lock's."""
    runtime, dev = read_lock("requirements.lock"), read_lock("requirements-dev.lock")
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differ, f"requirements.lock and requirements-dev.lock disagree (runtime, dev): {differ}"
    assert "pytest" not in runtime and "setuptools" not in runtime


def test_virtualenv_holds_the_locked_versions() -> None:
    """The environment running the tests was installed from requirements-dev.lock (bash scripts/install.sh)."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {name: (v, installed.get(name)) for name, v in read_lock("requirements-dev.lock").items()
             if installed.get(name) != v}
    assert not wrong, f"installed versions differ from the lock (locked, installed): {wrong}"
