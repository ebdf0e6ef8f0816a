"""The VM provisioning files: the Vagrantfile validates, the scripts pass shellcheck, units render."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.node import bootstrap
from deploy.node.launch import render_unit

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = [ROOT / "deploy/vagrant/provision.sh", *sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci/run"]


def test_vagrantfile_validates(tmp_path: Path) -> None:
    """`vagrant validate` accepts the Vagrantfile (run on a copy, so no state lands in the repo)."""
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed (scripts/install.sh installs it)")
    for name in ("Vagrantfile", "provision.sh"):
        shutil.copy(ROOT / "deploy/vagrant" / name, tmp_path / name)
    result = subprocess.run(["vagrant", "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "VAGRANT_HOME": str(tmp_path / ".vd"),
                                 "KUBELITE_WORKERS": "3"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_pass_shellcheck(script: Path) -> None:
    """Every shell script the machines run is shellcheck-clean."""
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (scripts/install.sh installs it)")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_unit_runs_the_bootstrap_command(tmp_path: Path) -> None:
    """A systemd unit carries the exact command the lab runs, quoted, with its log file."""
    spec = bootstrap.NodeSpec(name="n1", address="192.168.56.11", pod_cidr="10.244.1.0/24",
                              server="192.168.56.10:6443", node_dir=tmp_path)
    argv = bootstrap.proxy_argv(spec)
    unit = render_unit("proxy", argv, log_file=tmp_path / "proxy.log", after="containerd")
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    pki = tmp_path / "pki"
    assert exec_line.endswith(f"proxy --server 192.168.56.10:6443 --certificate-authority {pki}/ca.crt "
                              f"--client-certificate {pki}/kube-proxy.crt --client-key {pki}/kube-proxy.key "
                              f"--node-name n1 --allow-root-netns --log-level info")
    assert "After=network-online.target kubelite-containerd.service" in unit
    assert f"StandardOutput=append:{tmp_path / 'proxy.log'}" in unit


def test_node_address_is_the_one_given(tmp_path: Path) -> None:
    """The kubelet publishes and listens on the address it was given, never a guessed one."""
    spec = bootstrap.NodeSpec(name="n2", address="192.168.56.12", pod_cidr="10.244.2.0/24",
                              server="192.168.56.10:6443", node_dir=tmp_path)
    argv = bootstrap.kubelet_argv(spec, "/run/containerd.sock")
    assert argv[argv.index("--node-ip") + 1] == "192.168.56.12"
    assert argv[argv.index("--listen") + 1] == "192.168.56.12:10250"
    assert argv[argv.index("--pod-cidr") + 1] == "10.244.2.0/24"
