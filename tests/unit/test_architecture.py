"""The layout's promises, checked: components never import each other, generated code is fresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_components_import_only_api_and_client() -> None:
    """import-linter keeps apiserver, scheduler, controllers, kubelet and proxy independent of each other,
    and api/ and client/ free of every component."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
