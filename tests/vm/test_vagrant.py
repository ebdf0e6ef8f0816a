"""End to end on real VMs: a locally built box, VMs booted by vagrant in a network namespace of their own.

Four VMs: three control planes (one etcd cluster with TLS peers; an apiserver, scheduler and controller-manager
on each) and a worker; cp, which runs a kubelet, takes workloads too. The test serves the demo across cp and the
worker, runs a chaos scenario on them, powers off the etcd leader's machine and then a node running web pods,
checks that the cluster goes on after each, and leaves nothing behind. Under QEMU emulation (no usable KVM) it
takes about 20 minutes; each phase's duration is printed. KUBELITE_SKIP_VM_TEST=1 skips it on a developer's
machine; CI never sets it, and the test refuses to be skipped where CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.faults import etcd_leader_of
from chaos.vm import VENV_PYTHON, VmTarget, etcd_members_command
from deploy.vm import lab
from deploy.vm.plan import VmLabPlan

from .vmlab import (
    ROOT,
    Phases,
    in_lab,
    kubelite,
    lab_torn_down,
    pods,
    ready_nodes,
    ready_web_pods,
    table,
    wait_for,
)

SKIP_SWITCH = "KUBELITE_SKIP_VM_TEST"
BUDGET = 3000.0  # seconds for the whole test: about 20 minutes under emulation on an idle machine, more on a busy one
# Under emulation (ten times slower) the leader leases last 40 s; the API itself must take writes much sooner.
WRITABLE_WITHIN = 60.0


pytestmark = [pytest.mark.vm, pytest.mark.timeout(BUDGET + 300)]


def configmaps(path: Path, names: list[str]) -> Path:
    path.write_text("".join(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  n: \"{n}\"\n---\n"
                            for n in names))
    return path


def members_if(plan: VmLabPlan, machine: str, healthy: list[str]) -> list[dict] | None:
    """The etcd members as `machine`'s control plane sees them, once exactly `healthy` are healthy and one of them
    leads."""
    try:
        members = json.loads(lab.run_on(plan, machine, etcd_members_command(plan)))
    except (lab.VmLabError, ValueError) as e:
        raise AssertionError(str(e)) from None  # wait_for asks again, and shows it if it was the last answer
    ok = sorted(m["name"] for m in members if m["healthy"]) == healthy
    return members if ok and sum(1 for m in members if m["leader"] and m["healthy"]) == 1 else None


def fetch_in_lab(plan: VmLabPlan, url: str) -> str:
    """The page at `url`, fetched from the lab's namespace (the VMs' private network)."""
    fetch = [sys.executable, "-c", f"import urllib.request; print(urllib.request.urlopen({url!r}, "
                                   "timeout=10).read().decode())"]
    return subprocess.run(lab.in_netns(plan, fetch), capture_output=True, text=True, timeout=30).stdout


def fetch_on(plan: VmLabPlan, machine: str, url: str) -> str:
    """The page at `url` as a process on `machine` itself gets it: a node-local client, which reaches Service IPs
    through the VM's route to them and the proxy's rules."""
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    try:
        return lab.run_on(plan, machine, f"{VENV_PYTHON} -c {shlex.quote(fetch)}", timeout=60)
    except lab.VmLabError as e:
        raise AssertionError(str(e)) from None


def assert_service_answers(name: str) -> None:
    page = wait_for("the page through the Service", lambda: in_lab(
        name, "exec", "client", "--", "timeout", "10", "wget", "-q", "-O", "-", "http://web").stdout, timeout=180)
    assert page.startswith("hello from web-"), page


def test_vms_serve_the_demo_and_go_on_when_a_control_plane_and_a_worker_lose_power(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Four VMs from the local box (cp, cp2 and cp3 as one etcd cluster; the worker n1) form a cluster on their
    private addresses and serve the demo, spread over cp and n1, through a Service, a NodePort and a LoadBalancer
    address, and keep serving while cp's apiserver is killed under `kubelite chaos run --vm`. When the etcd
    leader's machine loses power, the API takes writes again within WRITABLE_WITHIN, every
    write acknowledged before is there, the other two members elect a leader and the Service answers; when a node
    running web pods is lost too, its pods come back on the other one (the scheduler's and controller-manager's
    leases have moved on). Nothing of the lab is left afterwards."""
    if os.environ.get(SKIP_SWITCH) == "1":
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SKIP_SWITCH} is set in CI, which always runs the VM test")
        pytest.skip(f"{SKIP_SWITCH}=1: VM test skipped on this machine")
    name = f"t{os.getpid()}"
    plan = VmLabPlan(name, workers=1, control_planes=3)
    phases = Phases(capsys, BUDGET)
    with lab_torn_down(plan, phases, label="vm test", timeout=900):
        with phases("box"):
            kubelite("vm", "box", timeout=1200)
        with phases("up"):
            result = kubelite("vm", "up", "--name", name, "--control-planes", "3", "--workers", "1", "--quiet",
                              "--timeout", str(int(phases.left() - 600)), timeout=phases.left())
        for step, seconds in json.loads(result.stdout.splitlines()[-1])["seconds"].items():
            phases.seconds[f"up/{step}"] = seconds

        with phases("ready"):
            nodes = wait_for("two Ready nodes", lambda: ready_nodes(name, 2), timeout=300)
            assert {r["NAME"]: r["INTERNAL-IP"] for r in nodes} == {m: plan.address(m) for m in plan.nodes}
            wait_for("three healthy etcd members and a leader",
                     lambda: members_if(plan, "cp", plan.control_plane_machines), timeout=300)
            # cp takes workloads too, so that either node's pods have somewhere to go (as on a small kubeadm
            # cluster whose control-plane taint was removed).
            in_lab(name, "taint", "nodes", "cp", "node-role.kubernetes.io/control-plane:NoSchedule-")

        with phases("apply"):
            in_lab(name, "apply", "-f", str(ROOT / "examples"))
            web = wait_for("three ready web pods", lambda: ready_web_pods(name), timeout=300)
            assert {r["NODE"] for r in web} == set(plan.nodes), f"web pods not spread over {plan.nodes}: {web}"
            client = wait_for("a running client pod",
                              lambda: [r for r in pods(name, "app=client") if r["STATUS"] == "Running"], timeout=180)
            before = [f"before-{i:02d}" for i in range(20)]
            in_lab(name, "apply", "-f", str(configmaps(tmp_path / "before.yaml", before)), timeout=120)
        other = next(m for m in plan.nodes if m != client[0]["NODE"])

        with phases("service"):
            assert_service_answers(name)
        with phases("nodeport"):
            url = f"http://{plan.address(other)}:30080/"
            page = wait_for(f"the page through the NodePort of {other}", lambda: fetch_in_lab(plan, url), timeout=180)
            assert page.startswith("hello from web-"), page
        with phases("loadbalancer"):
            # The demo's web-lb: its address, announced by one VM's speaker, answers on the private network.
            ip = wait_for("web-lb's EXTERNAL-IP", lambda: next(
                (r["EXTERNAL-IP"] for r in table(in_lab(name, "get", "service", "web-lb").stdout)
                 if r["EXTERNAL-IP"] != "<pending>"), ""), timeout=120)
            page = wait_for(f"the page through {ip}", lambda: fetch_in_lab(plan, f"http://{ip}/"), timeout=120)
            assert page.startswith("hello from web-"), page

        with phases("chaos"):
            # `kubelite chaos` on VMs: cp's apiserver SIGKILLed over ssh under a live workload (the load client on
            # n1, through the Service's address); systemd runs it again while the other apiservers take the writes.
            report_dir = tmp_path / "chaos"
            run = kubelite("chaos", "run", "apiserver-kill", "--vm", name, "--rate", "20", "--report",
                           str(report_dir), timeout=300, check=False)
            with capsys.disabled():
                print(run.stdout, flush=True)
            assert (report_dir / "report.json").exists(), f"no report: {run.stdout}{run.stderr}"
            report = json.loads((report_dir / "report.json").read_text())
            # Every outcome check must hold: no violation, no lost write, no duplicate, the Service's success.
            # The timing checks ("within N s") are the lab's; ten times slower VMs report their times only.
            failed = [c["name"] for c in report["checks"] if not c["ok"] and "within" not in c["name"]]
            assert not failed and run.returncode in (0, 1), f"{failed}\n{run.stdout}{run.stderr}"
            assert report["client_node"] == "n1" and report["requests"]["ok"] > 0
            assert (report_dir / "timeline.png").stat().st_size > 0

        target = VmTarget.of(name)
        # The etcd leader's machine: its loss needs an election as well as another apiserver.
        members = wait_for("the etcd leader", lambda: members_if(plan, "cp", plan.control_plane_machines),
                           timeout=120)
        victim = etcd_leader_of(members)
        survivors = [m for m in plan.control_plane_machines if m != victim]
        with phases("cp-power-off"):
            asyncio.run(target.power_off_node(victim))
            cut = time.monotonic() + 1.0  # the VM's kernel stops a second after the command returns
        with phases("writable"):
            attempt = 0

            def write() -> bool:
                nonlocal attempt
                attempt += 1
                path = configmaps(tmp_path / f"after-{attempt}.yaml", [f"after-{attempt:03d}"])
                return in_lab(name, "apply", "-f", str(path), timeout=30, check=False).returncode == 0

            time.sleep(max(0.0, cut - time.monotonic()))
            wait_for(f"a write acknowledged after {victim} lost power", write, timeout=WRITABLE_WITHIN, every=0.5)
            phases.seconds["api_writable_after_power_cut"] = round(time.monotonic() - cut, 1)
            rows = table(in_lab(name, "get", "configmaps").stdout)
            assert set(before) <= {r["NAME"] for r in rows}, "a ConfigMap acknowledged before the power cut is gone"
        with phases("members"):
            wait_for(f"{' and '.join(survivors)} healthy, one of them leading",
                     lambda: members_if(plan, survivors[0], survivors), timeout=120)
        with phases("service-after-cp"):
            # From a node that is still up (the client pod may have been on the lost machine): the Service's
            # address, as a process on that VM reaches it.
            node = next(m for m in reversed(plan.nodes) if m != victim)
            ip = next(r["CLUSTER-IP"] for r in table(in_lab(name, "get", "service", "web").stdout))
            page = wait_for(f"the page through the Service from {node}",
                            lambda: fetch_on(plan, node, f"http://{ip}/"), timeout=180)
            assert page.startswith("hello from web-"), page

        # Then a node with web pods is lost: the other must end up running all three, which takes a
        # controller-manager and a scheduler that hold their leases without the lost control plane. If cp led
        # etcd, it is that node already; otherwise the worker loses power now (another control plane would take
        # etcd's majority with it).
        lost = victim if victim in plan.nodes else "n1"
        survivor = next(m for m in plan.nodes if m != lost)
        with phases("node-power-off"):
            if lost != victim:
                asyncio.run(target.power_off_node(lost))
        with phases("replaced"):
            wait_for(f"web pods replaced on {survivor}", lambda: ready_web_pods(name, on={survivor}), timeout=300)
            rows = table(in_lab(name, "get", "nodes").stdout)
            assert {r["NAME"]: r["STATUS"] for r in rows}[lost] != "Ready"
