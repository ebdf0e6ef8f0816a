"""The layout's promises, checked: components never import each other, user commands import only api and client."""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_components_import_only_api_and_client() -> None:
    """import-linter keeps apiserver, scheduler, controllers, kubelet, proxy, speaker and ingress independent of
    each other, api/ and client/ free of every component, and the user commands free of everything but api/ and
    client/."""
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


COMPONENTS = ("api", "client", "apiserver", "scheduler", "controllers", "kubelet", "proxy", "speaker", "ingress",
              "cli", "chaos", "deploy")


@pytest.mark.parametrize("package", COMPONENTS)
def test_each_component_opens_with_a_map_of_its_modules(package: str) -> None:
    """A component's __init__ docstring names every module and subpackage it holds."""
    init = ROOT / package / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    children = {p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
    children |= {p.name for p in (ROOT / package).iterdir() if (p / "__init__.py").exists()}
    missing = sorted(c for c in children if not re.search(rf"\b{re.escape(c)}\b", doc))
    assert missing == [], f"{package}/__init__.py does not map {missing}"
