"""Commands that act on a local cluster default to the config file's current cluster, as kubectl's context."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from client import config as client_config


@pytest.fixture
def current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A config file whose current cluster is a fresh name no cluster on this machine has."""
    monkeypatch.setenv("KUBELITE_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.delenv("KUBELITE_CLUSTER", raising=False)
    name = f"t{secrets.token_hex(3)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "apiserver.log").write_text("line one\nline two\n")
    client_config.set_cluster(name, server="unix:///nonexistent.sock", log_dir=str(logs))
    return name


@pytest.mark.parametrize("args", [
    pytest.param(["status"], id="status"),
    pytest.param(["images", "load", "--cache", "/nonexistent"], id="images-load"),
    pytest.param(["chaos", "restart", "apiserver"], id="chaos"),
])
def test_local_cluster_commands_use_the_current_cluster(current: str, args: list[str]) -> None:
    """Without --name, status, images load and chaos look for the config file's current cluster."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert f"cluster {current!r} is not" in result.output


def test_cluster_flag_overrides_the_config(current: str) -> None:
    """The global --cluster names the cluster instead of the config file's current one."""
    other = f"t{secrets.token_hex(3)}"
    result = CliRunner().invoke(main, ["--cluster", other, "status"])
    assert result.exit_code != 0 and f"cluster {other!r} is not" in result.output


def test_component_logs_of_the_current_cluster(current: str, capfd: pytest.CaptureFixture[str]) -> None:
    """`logs --component` reads the current cluster's log files, which `kubelite up` recorded in the config file."""
    result = CliRunner().invoke(main, ["logs", "--component", "apiserver"])
    assert result.exit_code == 0, result.output
    assert capfd.readouterr().out == "line one\nline two\n"  # printed by tail(1) itself


def test_component_logs_need_a_local_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster the config file knows no log directory for gets one clear error."""
    monkeypatch.setenv("KUBELITE_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.delenv("KUBELITE_CLUSTER", raising=False)
    client_config.set_cluster("remote", server="127.0.0.1:6443")
    result = CliRunner().invoke(main, ["logs", "--component", "apiserver"])
    assert result.exit_code == 1
    assert "cluster 'remote' has no component logs on this machine" in result.output
