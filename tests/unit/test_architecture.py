"""The layout's promises, checked: components never import each other, user commands import only api and client."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_components_import_only_api_and_client() -> None:
    """import-linter keeps apiserver, scheduler, controllers, kubelet and proxy independent of each other,
    api/ and client/ free of every component, and the user commands free of everything but api/ and client/."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_every_user_command_module_is_under_the_contract() -> None:
    """Every cli module outside cli/daemons/ (and the root group) is listed in the user-command contract."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    listed = set(config["importlinter:contract:user-cli"]["source_modules"].split())
    modules = {f"cli.{p.stem}" for p in (ROOT / "cli").glob("*.py") if p.stem not in ("__init__", "main")}
    assert modules == listed
