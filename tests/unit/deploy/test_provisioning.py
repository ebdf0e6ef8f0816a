"""The VM provisioning files: the Vagrantfile validates, the scripts pass shellcheck, units render."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy.node import bootstrap, containerd
from deploy.node.launch import render_exec, render_unit

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = [ROOT / "deploy/vagrant/provision.sh", ROOT / "deploy/vagrant/build-box.sh",
           *sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci/run"]


def vagrant_validate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed (scripts/install.sh installs it)")
    for name in ("Vagrantfile", "provision.sh", "node-packages.txt"):
        shutil.copy(ROOT / "deploy/vagrant" / name, tmp_path / name)
    return subprocess.run(["vagrant", "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "VAGRANT_HOME": str(tmp_path / ".vd"),
                               **env})


@pytest.mark.parametrize("env", [
    pytest.param({"KUBELITE_WORKERS": "3"}, id="one-control-plane"),
    pytest.param({"KUBELITE_WORKERS": "2", "KUBELITE_CONTROL_PLANES": "3"}, id="three-control-planes"),
])
def test_vagrantfile_validates(tmp_path: Path, env: dict[str, str]) -> None:
    """`vagrant validate` accepts the Vagrantfile (run on a copy, so no state lands in the repo)."""
    result = vagrant_validate(tmp_path, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_vagrantfile_refuses_an_even_control_plane_count(tmp_path: Path) -> None:
    """KUBELITE_CONTROL_PLANES=2 is refused naming the setting (etcd needs a majority)."""
    result = vagrant_validate(tmp_path, KUBELITE_CONTROL_PLANES="2")
    assert result.returncode != 0
    assert "KUBELITE_CONTROL_PLANES=2" in result.stdout + result.stderr


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


@pytest.mark.parametrize(("component", "identity"), [
    pytest.param(lambda spec: bootstrap.kubelet_argv(spec, "/run/c.sock"), "kubelet", id="kubelet"),
    pytest.param(bootstrap.proxy_argv, "kube-proxy", id="proxy"),
    pytest.param(bootstrap.ingress_argv, "kubelet", id="ingress-speaks-for-its-node"),
    pytest.param(bootstrap.speaker_argv, "kubelet", id="speaker-speaks-for-its-node"),
])
@pytest.mark.parametrize("netns", [pytest.param("kl-n1", id="lab"), pytest.param(None, id="vm")])
def test_node_components_present_the_nodes_certificates(tmp_path: Path, component: Any, identity: str,
                                                        netns: str | None) -> None:
    """Every node component reaches the apiserver over mutual TLS with a certificate the node joined for, checked
    against the cluster CA: no token, no plaintext switch."""
    spec = bootstrap.NodeSpec(name="n1", address="10.250.0.11", pod_cidr="10.244.1.0/24",
                              server="10.250.0.2:6443", node_dir=tmp_path, netns=netns, join_token_file="/t",
                              ingress=True, proxy_mode="nftables")
    argv = component(spec)
    pki = tmp_path / "pki"

    def flag(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert flag("--server") == "10.250.0.2:6443"
    assert flag("--certificate-authority") == f"{pki}/ca.crt"
    assert flag("--client-certificate") == f"{pki}/{identity}.crt"
    assert flag("--client-key") == f"{pki}/{identity}.key"
    assert not {a for a in argv if "token" in a or "insecure" in a or "plaintext" in a}


def test_node_address_is_the_one_given(tmp_path: Path) -> None:
    """The kubelet publishes and listens on the address it was given, never a guessed one."""
    spec = bootstrap.NodeSpec(name="n2", address="192.168.56.12", pod_cidr="10.244.2.0/24",
                              server="192.168.56.10:6443", node_dir=tmp_path)
    argv = bootstrap.kubelet_argv(spec, "/run/containerd.sock")
    assert argv[argv.index("--node-ip") + 1] == "192.168.56.12"
    assert argv[argv.index("--listen") + 1] == "192.168.56.12:10250"
    assert argv[argv.index("--pod-cidr") + 1] == "10.244.2.0/24"


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["/usr/bin/kubelite", "proxy", "--server", "10.0.0.1:6443"],
                 "/usr/bin/kubelite proxy --server 10.0.0.1:6443", id="plain-words"),
    pytest.param(["sh", "-c", 'echo $$ > "$0"; exec "$@"', "/run/c.pid"],
                 r'sh -c "echo $$$$ > \"$$0\"; exec \"$$@\"" /run/c.pid', id="dollars-and-quotes"),
    pytest.param(["printf", "100%", "%n"], 'printf "100%%" "%%n"', id="specifiers"),
    pytest.param(["echo", "it's", "a b", ""], 'echo "it\'s" "a b" ""', id="spaces-and-empty"),
    pytest.param(["echo", "back\\slash", "two\nlines"], r'echo "back\\slash" "two\nlines"', id="c-escapes"),
    pytest.param(["echo", ";", "x;y"], r'echo \; "x;y"', id="semicolons"),
])
def test_exec_start_is_literal_to_systemd(argv: list[str], expected: str) -> None:
    """ExecStart escapes what systemd would expand or split: `$`, `%`, quotes, backslashes and a lone `;`."""
    assert render_exec(argv) == expected


@pytest.mark.parametrize("argv", [
    pytest.param([], id="empty"),
    pytest.param([""], id="empty-command"),
    pytest.param(["-containerd"], id="prefix-character"),
])
def test_exec_start_refuses_what_systemd_would_misread(argv: list[str]) -> None:
    """A command systemd would read as missing or as carrying a prefix is refused, not written."""
    with pytest.raises(ValueError, match="command"):
        render_exec(argv)


def test_containerd_unit_records_its_own_pid(tmp_path: Path) -> None:
    """The containerd unit hands `$$` to sh as `$$`, so the pid file gets a pid, not a `$`."""
    cfg = containerd.NodeConfig(name="n1", node_dir=tmp_path, netns="/proc/1/ns/net", pod_cidr="10.244.1.0/24")
    unit = render_unit("containerd", containerd.argv(cfg), log_file=tmp_path / "c%d.log",
                       template="kubelite-containerd.service")
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_line.startswith(r'ExecStart=sh -c "echo $$$$ > \"$$0\"; exec \"$$@\"" ')
    assert f"StandardOutput=append:{tmp_path}/c%%d.log" in unit


@pytest.mark.parametrize(("scale", "expected"), [
    pytest.param(1.0, {}, id="real-machine-defaults"),
    pytest.param(10.0, {"--runtime-request-timeout": "300", "--lease-renew": "4", "--lease-duration": "40",
                        "--pleg-period": "2"}, id="emulated"),
])
def test_slow_machines_get_longer_kubelet_timings(tmp_path: Path, scale: float, expected: dict[str, str]) -> None:
    """A timeout scale stretches the node's waits, CRI timeouts and heartbeats; 1 keeps the defaults."""
    spec = bootstrap.NodeSpec(name="n1", address="192.168.56.11", pod_cidr="10.244.1.0/24",
                              server="192.168.56.10:6443", node_dir=tmp_path, timeout_scale=scale)
    argv = bootstrap.kubelet_argv(spec, "/run/c.sock")
    for flag in ("--runtime-request-timeout", "--lease-renew", "--lease-duration", "--pleg-period"):
        assert (argv[argv.index(flag) + 1] if flag in argv else None) == expected.get(flag)
    assert bootstrap.containerd_config(spec).start_timeout == 30.0 * scale


@pytest.mark.parametrize(("scale", "grace"), [
    pytest.param(1.0, 2.0, id="real-machine-four-half-second-renewals"),
    pytest.param(1.5, 6.0, id="slow-machine-its-kubelets-lease-duration"),
    pytest.param(10.0, 40.0, id="emulated-keeps-40s"),
])
def test_node_grace_follows_the_machines_speed(scale: float, grace: float) -> None:
    """A node is lost after 2 s without a renewal on a real machine; on a slower one after its kubelet's
    lease duration (4 s x the scale), which emulated VMs need."""
    assert bootstrap.node_monitor_grace(scale) == grace


@pytest.mark.parametrize(("scale", "grace"), [
    pytest.param(1.0, 4.0, id="real-machines-outlast-an-election"),
    pytest.param(10.0, 40.0, id="emulated-unchanged"),
])
def test_an_etcd_cluster_gives_nodes_a_grace_longer_than_an_election(scale: float, grace: float) -> None:
    """With several control planes an etcd election stops every write (renewals too) for up to 3 s: the grace
    outlasts it."""
    assert bootstrap.node_monitor_grace(scale, clustered=True) == grace


def test_the_lab_control_plane_uses_the_short_grace(tmp_path: Path) -> None:
    """A control plane bootstrapped with the defaults starts its controller-manager with the 2 s grace."""
    cm = bootstrap.controller_manager_argv(bootstrap.ControlPlaneSpec(address="10.0.0.1", data_dir=tmp_path))
    assert cm[cm.index("--node-monitor-grace-period") + 1] == "2.0"


def test_slow_control_planes_keep_their_leaders(tmp_path: Path) -> None:
    """On an emulated machine the scheduler and controller-manager hold their leases 10x longer; else defaults."""
    slow = bootstrap.ControlPlaneSpec(address="192.168.56.10", data_dir=tmp_path, timeout_scale=10)
    cm = bootstrap.controller_manager_argv(slow)
    assert cm[cm.index("--leader-elect-lease-duration") + 1] == "40"
    assert cm[cm.index("--leader-elect-renew-interval") + 1] == "2"
    sched = bootstrap.scheduler_argv(slow)
    assert sched[sched.index("--config") + 1] == str(tmp_path / "scheduler.yaml")
    assert bootstrap.render_scheduler_config(slow) == "leaseDurationSeconds: 40\nrenewIntervalSeconds: 2\n"
    fast = bootstrap.ControlPlaneSpec(address="10.0.0.1", data_dir=tmp_path)
    assert "--config" not in bootstrap.scheduler_argv(fast)
    assert "--leader-elect-lease-duration" not in bootstrap.controller_manager_argv(fast)


def test_control_plane_daemons_get_their_files(tmp_path: Path) -> None:
    """The apiserver gets the Secrets' encryption key file, its TLS files and its audit log as paths under the data
    dir; the registry serves mutual TLS with its own certificate; containerd pulls from it with the node's
    certificate."""
    spec = bootstrap.ControlPlaneSpec(address="192.168.56.10", data_dir=tmp_path)
    argv = bootstrap.apiserver_argv(spec)
    flags = dict(itertools.pairwise(argv))
    assert flags["--encryption-provider-config"] == str(tmp_path / "encryption-config.yaml")
    assert flags["--tls-cert-file"] == str(tmp_path / "pki" / "apiserver.crt")
    assert flags["--audit-log-path"] == str(tmp_path / "audit" / "audit.log")
    registry = dict(itertools.pairwise(bootstrap.registry_argv(spec)))
    assert (registry["--listen"], registry["--tls-cert-file"], registry["--client-ca-file"]) == (
        "192.168.56.10:5000", str(tmp_path / "pki" / "registry.crt"), str(tmp_path / "pki" / "ca.crt"))
    node = bootstrap.NodeSpec(name="n1", address="192.168.56.11", pod_cidr="10.244.1.0/24",
                              server="192.168.56.10:6443", node_dir=tmp_path / "node")
    cfg = bootstrap.containerd_config(node)
    assert cfg.registry_mirror == "https://192.168.56.10:5000"
    assert cfg.registry_tls == bootstrap.registry.MirrorTLS(str(tmp_path / "node" / "pki" / "ca.crt"),
                                                            str(tmp_path / "node" / "pki" / "kubelet.crt"),
                                                            str(tmp_path / "node" / "pki" / "kubelet.key"))
