"""Pure planning for VM labs: names, paths, rendered configs and cache keys (no I/O)."""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STATE_ROOT = Path("/var/lib/kubelite")
BOX_CACHE = Path("/var/cache/kubelite/boxes")
# The control plane's and the workers' private-network addresses (Vagrantfile).
NETWORK = "192.168.56"
API_PORT = 6443
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?")
# Every kind of process a VM lab starts; all of them live in its network namespace.
DAEMONS = ("virtlogd", "libvirtd")


class VmPlanError(ValueError):
    pass


@dataclass(frozen=True)
class VmLabPlan:
    """One VM lab: its namespace, its private libvirt, its vagrant state, all named after it."""

    name: str
    workers: int = 2
    state_root: Path = STATE_ROOT
    control_planes: int = 1  # cp, then cp2, cp3, ... joining cp's etcd cluster (the Vagrantfile's rule)

    def __post_init__(self) -> None:
        if not NAME_RE.fullmatch(self.name):
            raise VmPlanError(f"--name {self.name!r}: use 1-20 lowercase letters, digits and dashes")
        if not 1 <= self.workers <= 9:
            raise VmPlanError(f"--workers {self.workers}: between 1 and 9")
        if not (1 <= self.control_planes <= 7 and self.control_planes % 2):
            raise VmPlanError(f"--control-planes {self.control_planes}: 1, 3, 5 or 7 (etcd needs a majority)")

    @property
    def netns(self) -> str:
        return f"klvm-{self.name}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def state_dir(self) -> Path:
        return self.state_root / f"vm-{self.name}"

    @property
    def libvirt_dir(self) -> Path:
        """Scratch copies bind-mounted over libvirt's own directories in the lab's mount namespace."""
        return self.state_dir / "libvirt"

    @property
    def vagrant_dir(self) -> Path:
        """VAGRANT_DOTFILE_PATH: this lab's machine ids, separate from any other lab's."""
        return self.state_dir / "vagrant"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh-config"

    @property
    def domain_prefix(self) -> str:
        return f"klvm-{self.name}-"

    @property
    def control_plane_machines(self) -> list[str]:
        return ["cp", *(f"cp{k}" for k in range(2, self.control_planes + 1))]

    @property
    def nodes(self) -> list[str]:
        """The machines that run a kubelet: cp (kept free of workloads) and the workers; cp2... run none."""
        return ["cp", *(f"n{i}" for i in range(1, self.workers + 1))]

    @property
    def machines(self) -> list[str]:
        return [*self.control_plane_machines, *self.nodes[1:]]

    @property
    def server(self) -> str:
        """Every apiserver, as a client lists them (cp's first)."""
        return ",".join(f"{self.address(m)}:{API_PORT}" for m in self.control_plane_machines)

    def address(self, machine: str) -> str:
        """The private-network address of `machine` (never its management one): cp .10, worker nK .(10+K),
        control plane cpK .(20+K)."""
        if machine == "cp":
            return f"{NETWORK}.10"
        if machine.startswith("cp"):
            return f"{NETWORK}.{20 + int(machine[2:])}"
        return f"{NETWORK}.{10 + int(machine[1:])}"

    def pid_file(self, daemon: str) -> Path:
        return self.libvirt_dir / "run" / f"{daemon}.pid"

    @property
    def libvirt_socket(self) -> Path:
        return self.libvirt_dir / "run" / "libvirt-sock"


# (scratch subdirectory, the directory it covers in the lab's mount namespace)
LIBVIRT_MOUNTS = (
    ("etc", "/etc/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("run", "/run/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
)


def root_over_ssh(ssh: Sequence[str], host: str, command: str) -> list[str]:
    """The argv that runs `command` as root on `host`: one word for the remote shell, so its pipes, redirections
    and quotes reach `sh -c` whole."""
    return [*ssh, host, "sudo sh -c " + shlex.quote(command)]


def render_qemu_conf(base: str) -> str:
    """qemu.conf for a lab: QEMU as root without relabelling or a security driver, which a
    namespace-confined libvirtd cannot apply."""
    return base.rstrip("\n") + "\n\n# kubelite VM lab\n" + "\n".join([
        'user = "root"', 'group = "root"', "dynamic_ownership = 0", 'security_driver = "none"',
    ]) + "\n"


def render_start_script(plan: VmLabPlan) -> str:
    """Run inside `unshare --mount` in the lab's netns: cover libvirt's directories and the
    network devices' sysfs with the lab's own, then start virtlogd and libvirtd as daemons."""
    s = plan.libvirt_dir
    lines = ["set -eu"]
    for sub, target in LIBVIRT_MOUNTS:
        lines += [f"mkdir -p {target}", f"mount --bind {s / sub} {target}"]
    # A sysfs mounted from inside the netns lists the netns's devices, which libvirt inspects.
    lines += [f"mount -t sysfs sysfs {s / 'sys'}",
              f"mount --bind {s / 'sys/class/net'} /sys/class/net",
              f"mount --bind {s / 'sys/devices/virtual/net'} /sys/devices/virtual/net",
              f"virtlogd -d -p {plan.pid_file('virtlogd')}",
              f"libvirtd -d -p {plan.pid_file('libvirtd')}"]
    return "\n".join(lines) + "\n"


def choose_driver(cpuinfo: str, *, kvm_device: bool) -> str:
    """libvirt's domain type: "kvm" only where the CPU offers hardware virtualization.

    A /dev/kvm without vmx/svm (a paravirtual hypervisor such as PVM) runs only guest
    kernels built for it; stock kernels hang, so QEMU emulates instead.
    """
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return "kvm" if kvm_device and flags & {"vmx", "svm"} else "qemu"


def timeout_scale(driver: str) -> int:
    """How much longer bootstrap waits are on the VMs: emulated guests run 10-18x slower."""
    return 10 if driver == "qemu" else 1


def box_key(files: Mapping[str, bytes], settings: Mapping[str, str]) -> str:
    """The box cache key: a hash of the builder's inputs (its files and settings)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"file {name} {len(files[name])}\n".encode())
        h.update(files[name])
    for k in sorted(settings):
        h.update(f"setting {k}={settings[k]}\n".encode())
    return h.hexdigest()[:16]


def box_name(key: str) -> str:
    return f"kubelite/debian12-{key}"


def processes_in(netns_inode: int, entries: Iterable[tuple[int, int | None]]) -> list[int]:
    """The pids whose network namespace is the lab's, from (pid, netns inode) pairs."""
    return sorted(pid for pid, inode in entries if inode == netns_inode)


# vagrant's summary names each machine whose action failed: "... executing the action on the 'n2'".
_FAILED_MACHINE = re.compile(r"action on the '([A-Za-z0-9_-]+)'")


def failure_excerpt(log: str, *, tail: int = 30, per_machine: int = 40) -> str:
    """What to show when `vagrant up` fails: every failed machine's own last lines (vagrant
    interleaves the machines, so a plain tail often holds none of the failed one's output),
    then the log's end."""
    lines = log.splitlines()
    parts = []
    for machine in dict.fromkeys(_FAILED_MACHINE.findall(log)):
        marks = (f" {machine}: ", f"==> {machine}: ")
        own = [line for line in lines if any(m in line for m in marks)]
        parts.append(f"--- {machine}'s last lines:\n" + "\n".join(own[-per_machine:]))
    parts.append("--- the end of the log:\n" + "\n".join(lines[-tail:]))
    return "\n".join(parts)
