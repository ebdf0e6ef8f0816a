"""VM lab planning: names, the KVM-or-emulation choice, the box key, libvirt's confinement, the wheelhouse."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest

from chaos.faults import ChaosError, SshTarget
from deploy.vm import plan, wheelhouse
from deploy.vm.plan import VmLabPlan, VmPlanError


def test_lab_names_carry_the_lab_name(tmp_path: Path) -> None:
    """Namespace, directory and domains are named after the lab, so labs side by side never meet."""
    p = VmLabPlan("t123", workers=2, state_root=tmp_path)
    assert p.netns == "klvm-t123"
    assert p.state_dir == tmp_path / "vm-t123"
    assert p.domain_prefix == "klvm-t123-"
    assert p.machines == ["cp", "n1", "n2"]
    assert [p.address(m) for m in p.machines] == ["192.168.56.10", "192.168.56.11", "192.168.56.12"]
    assert p.server == "192.168.56.10:6443"
    assert p.nodes == p.machines


def test_three_control_planes_add_cp2_and_cp3_beside_the_workers(tmp_path: Path) -> None:
    """cp2 and cp3 sit at .22 and .23 (the Vagrantfile's addresses), every client lists all three apiservers,
    and only cp and the workers are nodes."""
    p = VmLabPlan("ha", workers=2, state_root=tmp_path, control_planes=3)
    assert p.machines == ["cp", "cp2", "cp3", "n1", "n2"]
    assert p.nodes == ["cp", "n1", "n2"]
    assert [p.address(m) for m in p.machines] == ["192.168.56.10", "192.168.56.22", "192.168.56.23",
                                                  "192.168.56.11", "192.168.56.12"]
    assert p.server == "192.168.56.10:6443,192.168.56.22:6443,192.168.56.23:6443"


@pytest.mark.parametrize(("name", "workers", "control_planes", "field"), [
    pytest.param("Bad_Name", 2, 1, "--name", id="uppercase-and-underscore"),
    pytest.param("a" * 21, 2, 1, "--name", id="too-long"),
    pytest.param("-x", 2, 1, "--name", id="leading-dash"),
    pytest.param("ok", 0, 1, "--workers", id="no-workers"),
    pytest.param("ok", 10, 1, "--workers", id="too-many-workers"),
    pytest.param("ok", 2, 2, "--control-planes", id="even-control-planes"),
    pytest.param("ok", 2, 9, "--control-planes", id="too-many-control-planes"),
])
def test_bad_lab_settings_are_refused_by_name(name: str, workers: int, control_planes: int, field: str) -> None:
    """A lab name, worker count or control-plane count that would not fit is refused, naming the flag."""
    with pytest.raises(VmPlanError, match=field):
        VmLabPlan(name, workers, control_planes=control_planes)


@pytest.mark.parametrize(("flags", "kvm", "expected"), [
    pytest.param("fpu vme sse2 vmx ept", True, "kvm", id="intel-vt"),
    pytest.param("fpu sse2 svm npt", True, "kvm", id="amd-v"),
    pytest.param("fpu sse2 hypervisor", True, "qemu", id="pvm-kvm-without-vmx"),
    pytest.param("fpu sse2 vmx", False, "qemu", id="no-kvm-device"),
])
def test_driver_is_kvm_only_with_hardware_virtualization(flags: str, kvm: bool, expected: str) -> None:
    """A /dev/kvm without vmx/svm (PVM) cannot run a stock kernel: QEMU emulates instead."""
    cpuinfo = f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    assert plan.choose_driver(cpuinfo, kvm_device=kvm) == expected
    assert plan.timeout_scale(expected) == (10 if expected == "qemu" else 1)


def test_box_key_follows_every_input() -> None:
    """The cache key changes with any builder file or setting, and only with them."""
    files = {"build-box.sh": b"echo build", "node-packages.txt": b"containerd\n"}
    settings = {"KUBELITE_DEBIAN_MIRROR": ""}
    key = plan.box_key(files, settings)
    assert key == plan.box_key(dict(reversed(files.items())), settings)
    assert key != plan.box_key({**files, "node-packages.txt": b"containerd\nrunc\n"}, settings)
    assert key != plan.box_key(files, {"KUBELITE_DEBIAN_MIRROR": "http://mirror.example/debian"})
    assert plan.box_name(key) == f"kubelite/debian12-{key}"


def test_qemu_runs_unconfined_in_the_lab() -> None:
    """qemu.conf keeps the packaged settings and adds root, no relabelling and no security driver."""
    conf = plan.render_qemu_conf('#vnc_listen = "0.0.0.0"\n')
    assert conf.startswith('#vnc_listen = "0.0.0.0"\n')
    for line in ('user = "root"', "dynamic_ownership = 0", 'security_driver = "none"'):
        assert line in conf.splitlines()


def test_libvirt_sees_only_the_labs_directories_and_devices(tmp_path: Path) -> None:
    """The start script covers every libvirt directory and the net sysfs before starting the daemons."""
    p = VmLabPlan("x", state_root=tmp_path)
    lines = plan.render_start_script(p).splitlines()
    for sub, target in plan.LIBVIRT_MOUNTS:
        assert f"mount --bind {p.libvirt_dir / sub} {target}" in lines
    assert f"mount --bind {p.libvirt_dir / 'sys/class/net'} /sys/class/net" in lines
    daemons = [i for i, line in enumerate(lines) if line.startswith(("virtlogd", "libvirtd"))]
    mounts = [i for i, line in enumerate(lines) if line.startswith("mount")]
    assert len(daemons) == 2 and max(mounts) < min(daemons)
    assert f"libvirtd -d -p {p.libvirt_dir / 'run/libvirtd.pid'}" in lines


def test_lab_processes_are_found_by_namespace() -> None:
    """Teardown picks exactly the processes in the lab's namespace, never another's."""
    entries = [(10, 111), (11, 222), (12, 111), (13, None)]
    assert plan.processes_in(111, entries) == [10, 12]
    assert plan.processes_in(333, entries) == []


def test_wheelhouse_uses_the_lock_file_when_there_is_one(tmp_path: Path) -> None:
    """With requirements.lock the wheelhouse is the locked set with hashes; without, pyproject's dependencies."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["grpcio==1.85.1", "click>=8"]\n')
    assert wheelhouse.requirements_args(tmp_path) == ["grpcio==1.85.1", "click>=8"]
    (tmp_path / "requirements.lock").write_text("click==8.1.7 --hash=sha256:00\n")
    assert wheelhouse.requirements_args(tmp_path) == ["--require-hashes", "-r", str(tmp_path / "requirements.lock")]
    argv = wheelhouse.download_argv(tmp_path / "out", tmp_path)
    assert argv[argv.index("--python-version") + 1] == wheelhouse.GUEST_PYTHON
    assert "--only-binary=:all:" in argv


def test_ssh_target_halts_a_vm_with_its_machines_command(tmp_path: Path) -> None:
    """halt_node and boot_node run the machines command with the VM's name; unknown VMs are refused."""
    record = tmp_path / "calls"
    target = SshTarget(hosts={"n1": "n1"}, machines=["sh", "-c", f'echo "$@" >> {record}', "vagrant"])
    asyncio.run(target.halt_node("n1"))
    asyncio.run(target.boot_node("n1"))
    assert record.read_text().splitlines() == ["halt n1", "up --no-provision n1"]
    with pytest.raises(ChaosError, match="no VM 'n9'"):
        asyncio.run(target.halt_node("n9"))
    with pytest.raises(ChaosError, match="power VMs"):
        asyncio.run(SshTarget(hosts={"n1": "n1"}).halt_node("n1"))


def test_a_failed_vagrant_up_shows_the_failed_machines_own_lines() -> None:
    """vagrant interleaves machines, so the failure report gathers the failed one's lines, not only the tail."""
    log = "\n".join([
        "  10.0 ==> n2: Running provisioner: shell...",
        "  11.0     n2: provision: 192.168.56.12 is not an address of this VM; refusing to guess",
        "  12.0 ==> n2: An error occurred. The error will be shown after all tasks complete.",
        *[f"  {20 + i}.0     n1: line {i}" for i in range(50)],
        "  90.0 An error occurred while executing the action on the 'n2'",
        "  90.0 machine. Please handle this error then try again:",
    ])
    excerpt = plan.failure_excerpt(log, tail=5)
    assert "--- n2's last lines:" in excerpt
    assert "refusing to guess" in excerpt
    assert "n1: line 10" not in excerpt  # the tail is short; n1's lines are not the failed machine's
    assert excerpt.endswith("machine. Please handle this error then try again:")


def test_a_vagrant_failure_without_a_named_machine_shows_the_tail() -> None:
    """A failure before any machine ran (a bad Vagrantfile) still shows the end of the log."""
    excerpt = plan.failure_excerpt("a\nb\nThere is a syntax error in the following Vagrantfile.", tail=2)
    assert excerpt == "--- the end of the log:\nb\nThere is a syntax error in the following Vagrantfile."


@pytest.mark.parametrize(("command", "remote"), [
    ("systemctl stop kubelite-kubelet", "sudo sh -c 'systemctl stop kubelite-kubelet'"),
    ("iptables-save | grep -v 'kubelite chaos' > /tmp/x",
     "sudo sh -c 'iptables-save | grep -v '\"'\"'kubelite chaos'\"'\"' > /tmp/x'"),
])
def test_root_over_ssh_gives_the_remote_shell_one_word(command: str, remote: str) -> None:
    argv = plan.root_over_ssh(["ssh", "-F", "cfg"], "n1", command)
    assert argv == ["ssh", "-F", "cfg", "n1", remote]
    # What the remote login shell hands to `sh -c` is the command itself.
    assert shlex.split(argv[-1]) == ["sudo", "sh", "-c", command]
