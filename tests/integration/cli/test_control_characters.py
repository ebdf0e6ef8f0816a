"""Names with control characters are refused naming the field, from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.api import Client

from .conftest import Kubelite

BAD_NAMES = [pytest.param("web\n", id="trailing-newline"), pytest.param("a\tb", id="tab"),
             pytest.param("web\x1b[31m", id="escape-sequence"), pytest.param("w\x00eb", id="nul"),
             pytest.param("web\u2028", id="line-separator")]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_cli_refuses_a_control_character_in_a_manifest(kubelite: Kubelite, client: Client, tmp_path: Path,
                                                             name: str) -> None:
    """`kubelite apply` of a manifest whose name holds a control character: one error line naming the file and
    the field, exit 1, nothing written."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                                "spec": {"ports": [{"port": 80}]}}))
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    problems = [line for line in result.err_lines if not line.endswith("nothing was applied")]
    assert len(problems) == 1, result.err
    assert problems[0].startswith(f"error: {path} (document 1): ")
    assert "metadata.name: Invalid value" in problems[0]
    assert (await client.list("services", "default")).items == []


async def test_cli_refuses_a_control_character_in_an_argument(kubelite: Kubelite, client: Client) -> None:
    """`kubelite create namespace $'web\\n'` is refused naming the field, exit 1, and creates nothing."""
    before = {n.metadata.name for n in (await client.list("namespaces")).items}
    result = await kubelite("create", "namespace", "web\n")
    assert result.code == 1
    assert "metadata.name: Invalid value: 'web\\n'" in result.err
    assert len(result.err_lines) == 1
    assert {n.metadata.name for n in (await client.list("namespaces")).items} == before
