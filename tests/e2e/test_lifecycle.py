"""`kubelite up` and `down` as a user meets them: twice, without a cluster, and after a crash;
and nothing left behind on the machine afterwards."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.lab.plan import plan_lab
from deploy.lab.procs import Supervisor, cgroup_dirs
from deploy.node import containerd

from .lab import KUBELITE


@pytest.fixture(autouse=True)
def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's clusters are remembered in a config file of its own, gone with its tmp_path."""
    monkeypatch.setenv("KUBELITE_CONFIG", str(tmp_path / "config.yaml"))


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBELITE, *args], capture_output=True, text=True, timeout=timeout)


def leftovers(name: str) -> list[str]:
    """Everything of cluster `name` still on this machine."""
    plan = plan_lab(name, 0)
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"kl-{name}-")]
    for d in (plan.paths.run_dir, plan.paths.data_dir):
        if d.exists():
            found.append(f"directory {d}")
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {m}" for m in mounts.split() if f"/kubelite/{name}/" in m or m.endswith(f"/kubelite/{name}")]
    found += [f"cgroup {d}" for d in cgroup_dirs(plan.cgroup)]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"/kubelite/{name}/" in cmd or f"kl-{name}-" in cmd:
            found.append(f"process {pid}: {cmd[:120]}")
    return found


def root_namespace_kube_rules() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30).stdout
    return [line for line in out.splitlines() if "KUBE-" in line]


@pytest.fixture
def name() -> str:
    n = f"lc{secrets.token_hex(2)}"
    yield n
    run("down", "--name", n)


def test_up_down_twice_without_and_after_a_crash(name: str) -> None:
    """down without up, up twice, up after a crash (stale namespaces and pid files), down twice: each does the
    right thing with a clear message, and nothing is left behind."""
    first = run("down", "--name", name)
    assert first.returncode == 0 and "not running; nothing to do" in first.stderr, first.stderr
    rules_before = root_namespace_kube_rules()

    up = run("up", "--nodes", "1", "--name", name)
    assert up.returncode == 0, up.stderr
    assert "is up" in up.stderr
    again = run("up", "--nodes", "1", "--name", name)
    assert again.returncode == 0 and "already up" in again.stderr, again.stderr

    # A crash: every daemon and containerd die at once; namespaces and pid files stay.
    plan = plan_lab(name, 1)
    for record in Supervisor.for_plan(plan).records():
        os.kill(record.pid, signal.SIGKILL)
    pid = containerd.read_pid(plan.paths.data_dir / "nodes" / "n1" / "containerd")
    if pid:
        os.kill(pid, signal.SIGKILL)
    recovered = run("up", "--nodes", "1", "--name", name)
    assert recovered.returncode == 0, recovered.stderr
    assert "leftovers" in recovered.stderr and "is up" in recovered.stderr, recovered.stderr
    nodes = run("get", "nodes", "--cluster", name)  # as `up` left the config file: server, CA, admin certificate
    assert nodes.returncode == 0 and " Ready " in nodes.stdout, nodes.stdout + nodes.stderr

    down = run("down", "--name", name)
    assert down.returncode == 0 and "removed" in down.stderr, down.stderr
    twice = run("down", "--name", name)
    assert twice.returncode == 0 and "nothing to do" in twice.stderr
    assert leftovers(name) == []
    assert root_namespace_kube_rules() == rules_before


def test_up_says_what_is_missing(tmp_path: Path) -> None:
    """Without the tools it needs, `up` names each missing one on its own line and starts nothing."""
    env = {**os.environ, "PATH": str(tmp_path), "KUBELITE_CONFIG": str(tmp_path / "c.yaml")}
    result = subprocess.run([KUBELITE, "up", "--name", "nothing"], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 1
    assert "missing etcd (apt-get install etcd-server)" in result.stderr
    assert "missing containerd (apt-get install containerd)" in result.stderr
    assert not Path("/run/kubelite/nothing").exists()


def test_up_chaos_down_cycles_leave_nothing(tmp_path: Path) -> None:
    """Two rounds of scripts/cycles.py: up, the demo, a partition (then an apiserver restart), down; every command
    succeeds without a traceback and nothing of the cluster is left (the script checks the whole machine)."""
    name = f"cy{secrets.token_hex(2)}"
    script = Path(__file__).resolve().parents[2] / "scripts" / "cycles.py"
    result = subprocess.run([sys.executable, str(script), "--cycles", "2", "--nodes", "2", "--name", name],
                            capture_output=True, text=True, timeout=900)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(c["scenario"], c["ok"]) for c in lines[:-1]] == [("partition", True), ("apiserver-restart", True)]
    assert lines[-1]["failed"] == 0
