"""Make the running virtualenv hold exactly what a lock file names.

Run with the venv's python after `pip install --require-hashes -r LOCK`: removes every
distribution the lock does not name (left by an earlier install) except the project
itself, then fails if any locked package is missing or at another version.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

PROJECT = "kubelite"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
            if m:
                out[canonical(m.group(1))] = m.group(2)
    return out


def main() -> int:
    want = locked(sys.argv[1])
    have = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    extra = sorted(name for name in have if name not in want and name != PROJECT)
    if extra:
        print(f"removing what the lock does not name: {' '.join(extra)}")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *extra], check=True)
    wrong = [f"{name}=={version} (installed: {have.get(name, 'missing')})"
             for name, version in sorted(want.items()) if have.get(name) != version]
    if wrong:
        print("the virtualenv does not match the lock: " + ", ".join(wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
