"""Chaos on VMs: what the ssh target knows of a VM lab, and how it reads the answers of its remote scripts."""

from __future__ import annotations

import shlex

import pytest

from chaos.faults import ChaosError, parse_back
from chaos.plan import plan_scenario
from chaos.run import topology
from chaos.vm import VENV_PYTHON, VmTarget, etcd_members_command, holder_machine
from deploy.vm.plan import VmLabPlan


def target(control_planes: int = 3, workers: int = 2) -> VmTarget:
    plan = VmLabPlan("ha", workers=workers, control_planes=control_planes)
    return VmTarget(hosts={m: m for m in plan.machines}, ssh=["ssh", "-F", "cfg"], plan=plan,
                    addresses={m: plan.address(m) for m in plan.machines})


@pytest.mark.parametrize(("control_planes", "cps", "workers"), [
    pytest.param(1, ("cp",), ("n1", "n2"), id="one-control-plane"),
    pytest.param(3, ("cp", "cp2", "cp3"), ("n1", "n2"), id="three-control-planes"),
])
def test_a_vm_lab_breaks_its_control_planes_and_workers_by_name(control_planes: int, cps: tuple[str, ...],
                                                              workers: tuple[str, ...]) -> None:
    """cp is a node too, but tainted: the workload's workers are the machines a run may stop (the first one
    keeps the load client)."""
    t = target(control_planes)
    assert (t.cluster, t.control_plane_machines, t.worker_machines) == ("ha", cps, workers)
    run = plan_scenario("kubelet-kill", topology(t, ("n1", "n2")))
    assert [(f.kind, f.node, f.component) for f in run.faults] == [("kill", "n2", "kubelet")]


def test_the_load_client_runs_on_the_vm_from_its_venv() -> None:
    argv = target().load_argv("n1", ["10.96.0.10", "--rate", "20", "--duration", "a b"])
    assert argv[:4] == ["ssh", "-F", "cfg", "n1"]
    assert shlex.split(argv[4]) == [VENV_PYTHON, "-m", "chaos.loadclient", "10.96.0.10", "--rate", "20",
                                    "--duration", "a b"]


def test_the_client_is_the_labs_admin_on_every_apiserver() -> None:
    cfg = target().client_config()
    assert cfg.server == "192.168.56.10:6443,192.168.56.22:6443,192.168.56.23:6443"
    assert cfg.cert_file.endswith("/vm-ha/pki/admin.crt") and cfg.key_file.endswith("/vm-ha/pki/admin.key")
    assert cfg.cluster == "ha"


def test_etcd_members_are_asked_of_every_member() -> None:
    command = etcd_members_command(VmLabPlan("ha", control_planes=3))
    assert "--endpoints https://192.168.56.10:2379,https://192.168.56.22:2379,https://192.168.56.23:2379" in command
    assert "-o json" in command
    assert command.endswith("--timeout 10")  # an emulated machine's TLS handshake alone can take seconds


@pytest.mark.parametrize(("identity", "machine"), [
    ("cp2_1234", "cp2"),  # the scheduler's hostname_pid
    ("cp3_88_1a2b3c", "cp3"),  # the controller-manager's hostname_pid_suffix
    ("", ""),
])
def test_a_lease_holder_names_its_machine(identity: str, machine: str) -> None:
    assert holder_machine(identity) == machine


@pytest.mark.parametrize(("out", "seconds"), [
    ("back 1733364000.100000000 1733364001.350000000\n", 1.25),
    ("started 1733364000.1\n", None),
])
def test_a_killed_unit_is_back_after_the_seconds_its_script_saw(out: str, seconds: float | None) -> None:
    assert parse_back(out, "kubelite-kubelet.service", "n2") == seconds


def test_an_unexpected_answer_is_an_error_naming_the_unit() -> None:
    with pytest.raises(ChaosError, match=r"n2: kubelite-kubelet\.service: unexpected answer 'Failed'"):
        parse_back("Failed", "kubelite-kubelet.service", "n2")
