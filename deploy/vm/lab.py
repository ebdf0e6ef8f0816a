"""A VM lab: vagrant and libvirt confined to a project-made network namespace.

`up` creates the namespace, starts virtlogd and libvirtd inside it (in a private
mount namespace whose libvirt directories and network sysfs are the lab's own),
then runs `vagrant up` there, so every bridge, tap, dnsmasq and QEMU process lives
in the lab and the machine's own namespace is untouched. `down` destroys the
VMs, then ends every process left in the namespace by pid, deletes the namespace
and the lab's directory (libvirt volumes included). A failed or interrupted `up`
runs `down` itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from deploy.vm import box as box_mod
from deploy.vm import plan as vm_plan
from deploy.vm import wheelhouse
from deploy.vm.plan import VmLabPlan

VAGRANT_DIR = Path(__file__).resolve().parents[1] / "vagrant"
TOOLS = ("vagrant", "libvirtd", "virtlogd", "qemu-system-x86_64", "nsenter", "unshare", "ip", "ssh")
Progress = Callable[[str], None]


class VmLabError(Exception):
    pass


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise VmLabError(f"missing: {', '.join(missing)} (bash scripts/install.sh installs them)")
    if os.geteuid() != 0:
        raise VmLabError("a VM lab needs root (network namespaces and libvirt)")


def _run(argv: Sequence[str], *, timeout: float, check: bool = True, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise VmLabError(f"{' '.join(argv[:4])} failed: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float], progress: Progress) -> Iterator[None]:
    """Time one step of bringing a lab up; the duration is reported even when it fails."""
    start = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - start, 1)
        progress(f"phase {name}: {timings[name]:.1f}s")


# ---- what runs where ----


def _state(plan: VmLabPlan) -> dict[str, int]:
    try:
        return json.loads((plan.state_dir / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def load_plan(name: str) -> VmLabPlan:
    """The plan of lab `name` as it was brought up (its worker and control-plane counts are in its state)."""
    plan = VmLabPlan(name)
    state = _state(plan)
    return VmLabPlan(name, state.get("workers") or plan.workers, control_planes=state.get("control_planes") or 1)


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def libvirtd_pid(plan: VmLabPlan) -> int | None:
    return _pid(plan.pid_file("libvirtd"))


def is_up(plan: VmLabPlan) -> bool:
    return plan.netns_path.exists() and libvirtd_pid(plan) is not None


def in_netns(plan: VmLabPlan, argv: Sequence[str]) -> list[str]:
    """`argv` run in the lab's network namespace (the machine's own mounts)."""
    return ["nsenter", f"--net={plan.netns_path}", "--", *argv]


def in_lab(plan: VmLabPlan, argv: Sequence[str]) -> list[str]:
    """`argv` run beside libvirtd: its network namespace and its mount namespace."""
    pid = libvirtd_pid(plan)
    if pid is None or not plan.netns_path.exists():
        raise VmLabError(f"VM lab {plan.name!r} is not up (kubelite vm up --name {plan.name})")
    return ["nsenter", f"--mount=/proc/{pid}/ns/mnt", f"--net={plan.netns_path}", f"--wd={VAGRANT_DIR}", "--",
            *argv]


def vagrant_env(plan: VmLabPlan, box_name: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update(VAGRANT_CWD=str(VAGRANT_DIR), VAGRANT_DOTFILE_PATH=str(plan.vagrant_dir),
               VAGRANT_DEFAULT_PROVIDER="libvirt", KUBELITE_WORKERS=str(plan.workers),
               KUBELITE_CONTROL_PLANES=str(plan.control_planes),
               KUBELITE_VM_PREFIX=plan.domain_prefix, VAGRANT_CHECKPOINT_DISABLE="1")
    if box_name and "KUBELITE_BOX" not in os.environ:
        env["KUBELITE_BOX"] = box_name
    return env


def vagrant_argv(plan: VmLabPlan, args: Sequence[str]) -> list[str]:
    return in_lab(plan, ["vagrant", *args])


# The admin's credentials, copied from the control plane once it is up (0600, in the lab's state directory).
ADMIN_FILES = {"ca.crt": "ca.crt", "admin.crt": "admin.crt", "admin.key": "admin.key"}
CP_PKI = "/var/lib/kubelite/control-plane/pki"


def fetch_admin_credentials(plan: VmLabPlan) -> None:
    """Copy the cluster CA and the admin's certificate and key from the control plane, over ssh."""
    from client import pki

    target = pki.private_dir(plan.state_dir / "pki")
    for local, remote in ADMIN_FILES.items():
        result = _run([*ssh_argv(plan), "cp", "sudo", "cat", f"{CP_PKI}/{remote}"], timeout=120)
        (target / local).unlink(missing_ok=True)
        pki.write_private(target / local, result.stdout.encode())


def cluster_env(plan: VmLabPlan) -> dict[str, str]:
    """How a host-side `kubelite` in the lab's namespace reaches the cluster: as the admin, over mutual TLS."""
    creds = plan.state_dir / "pki"
    return {"KUBELITE_SERVER": plan.server, "KUBELITE_CA": str(creds / "ca.crt"),
            "KUBELITE_CLIENT_CERTIFICATE": str(creds / "admin.crt"), "KUBELITE_CLIENT_KEY": str(creds / "admin.key")}


def ssh_argv(plan: VmLabPlan) -> list[str]:
    """ssh to the lab's machines by name (cp, n1, ...), from inside its namespace."""
    return in_netns(plan, ["ssh", "-F", str(plan.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                           "-o", "LogLevel=ERROR"])


def run_on(plan: VmLabPlan, machine: str, command: str, *, timeout: float = 120) -> str:
    """`command` run as root on `machine` over ssh; its output. VmLabError with its error output if it fails."""
    result = _run(vm_plan.root_over_ssh(ssh_argv(plan), machine, command), timeout=timeout, check=False)
    if result.returncode != 0:
        raise VmLabError(f"{machine}: {command}: {(result.stderr or result.stdout).strip()[-1000:]}")
    return result.stdout


# ---- up ----


def _create_namespace(plan: VmLabPlan) -> None:
    _run(["ip", "netns", "add", plan.netns], timeout=30)
    _run(["ip", "-n", plan.netns, "link", "set", "lo", "up"], timeout=30)
    state = {"netns_inode": plan.netns_path.stat().st_ino, "workers": plan.workers,
             "control_planes": plan.control_planes}
    (plan.state_dir / "state.json").write_text(json.dumps(state) + "\n")


def _prepare_libvirt(plan: VmLabPlan) -> None:
    """Scratch copies of libvirt's directories: the packaged config, no networks, no state."""
    d = plan.libvirt_dir
    shutil.copytree("/etc/libvirt", d / "etc", symlinks=True)
    networks = d / "etc" / "qemu" / "networks"
    shutil.rmtree(networks, ignore_errors=True)
    (networks / "autostart").mkdir(parents=True)
    qemu_conf = d / "etc" / "qemu.conf"
    qemu_conf.write_text(vm_plan.render_qemu_conf(qemu_conf.read_text()))
    for sub in ("lib/images", "lib/qemu", "lib/network", "lib/dnsmasq", "lib/boot", "run", "log/qemu", "cache",
                "sys"):
        (d / sub).mkdir(parents=True, exist_ok=True)


def _start_daemons(plan: VmLabPlan) -> None:
    script = vm_plan.render_start_script(plan)
    _run(["nsenter", f"--net={plan.netns_path}", "--", "unshare", "--mount", "--propagation", "slave", "--",
          "sh", "-c", script], timeout=60)
    deadline = time.monotonic() + 60
    while not (plan.libvirt_socket.exists() and libvirtd_pid(plan)):
        if time.monotonic() > deadline:
            raise VmLabError(f"libvirtd did not start; see {plan.libvirt_dir / 'log'}")
        time.sleep(0.2)


def _stream(argv: Sequence[str], *, env: dict[str, str], log: Path, timeout: float, progress: Progress | None
            ) -> None:
    """Run a long command, its output appended to `log` with the seconds since it started
    (and shown, when asked); killed after `timeout` seconds."""
    start = time.monotonic()
    with open(log, "a") as out, subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                text=True, env=env, stdin=subprocess.DEVNULL) as proc:
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(f"{time.monotonic() - start:7.1f} {line}")
                out.flush()
                if progress is not None:
                    progress(line.rstrip("\n"))
            code = proc.wait()
        finally:
            watchdog.cancel()
    if time.monotonic() - start >= timeout:
        raise VmLabError(f"{' '.join(argv[-3:])} took longer than {timeout:.0f}s; see {log}")
    if code != 0:
        excerpt = vm_plan.failure_excerpt(log.read_text(errors="replace"))
        raise VmLabError(f"{' '.join(argv[-3:])} failed (exit {code}); from {log}:\n{excerpt}")


def write_ssh_config(plan: VmLabPlan) -> None:
    result = _run(vagrant_argv(plan, ["ssh-config"]), timeout=300, env=vagrant_env(plan))
    plan.ssh_config.write_text(result.stdout)


def up(plan: VmLabPlan, *, progress: Progress = print, show_vagrant: bool = True,
       timeout: float = 1800.0) -> dict[str, float]:
    """Bring the lab up: box, wheelhouse, namespace with libvirt, then `vagrant up`.

    Returns each phase's duration. On any failure (or Ctrl-C) everything started is torn down.
    """
    check_tools()
    if is_up(plan):
        raise VmLabError(f"VM lab {plan.name!r} is already up (kubelite vm down --name {plan.name} first)")
    if plan.state_dir.exists() or plan.netns_path.exists():
        down(plan, progress=progress)  # leftovers of a lab that died
    timings: dict[str, float] = {}
    with phase("box", timings, progress):
        box = box_mod.ensure(progress=progress)
    with phase("wheelhouse", timings, progress):
        wheels = wheelhouse.build()
        progress(f"wheelhouse: {len(wheels)} wheels and the node images in {wheelhouse.WHEELHOUSE}")
    try:
        plan.state_dir.mkdir(parents=True)
        with phase("libvirt", timings, progress):
            _create_namespace(plan)
            _prepare_libvirt(plan)
            _start_daemons(plan)
        with phase("vagrant-up", timings, progress):
            _stream(vagrant_argv(plan, ["up", "--provider", "libvirt"]), env=vagrant_env(plan, box.name),
                    log=plan.state_dir / "vagrant.log", timeout=timeout, progress=progress if show_vagrant else None)
            write_ssh_config(plan)
            fetch_admin_credentials(plan)
    except BaseException:
        progress(f"VM lab {plan.name!r} failed to come up: tearing it down")
        down(plan, progress=progress)
        raise
    return timings


# ---- down ----


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def lab_processes(inode: int) -> list[int]:
    entries = ((int(p.name), _netns_inode(int(p.name))) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [pid for pid in vm_plan.processes_in(inode, entries) if pid != os.getpid()]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _end(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def down(plan: VmLabPlan, *, progress: Progress = print) -> list[str]:
    """Destroy the VMs, end the lab's processes, delete its namespace and directory.
    Returns what was removed; safe to run again, and on a lab that died half-way."""
    removed: list[str] = []
    if is_up(plan) and plan.vagrant_dir.exists():
        try:
            result = _run(vagrant_argv(plan, ["destroy", "-f"]), timeout=300, check=False, env=vagrant_env(plan))
            if result.returncode == 0:
                removed.append("VMs")
            else:
                progress(f"vagrant destroy failed, ending the VMs' processes instead: {result.stderr.strip()[-500:]}")
        except subprocess.TimeoutExpired:
            progress("vagrant destroy timed out, ending the VMs' processes instead")
    inode = _state(plan).get("netns_inode")
    if inode is None and plan.netns_path.exists():
        inode = plan.netns_path.stat().st_ino
    if inode is not None:
        seen = set(pids := lab_processes(inode))
        if pids:
            _end(pids, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while (pids := lab_processes(inode)) and time.monotonic() < deadline:
                seen.update(pids)
                time.sleep(0.2)
            _end(pids, signal.SIGKILL)
            # An exiting process leaves its namespace before it is gone: wait for every one seen.
            deadline = time.monotonic() + 15
            while (left := [p for p in seen | set(lab_processes(inode)) if _alive(p)]) and time.monotonic() < deadline:
                time.sleep(0.2)
            if left:
                raise VmLabError(f"processes {sorted(left)} of {plan.netns} did not end")
            removed.append("processes")
    if plan.netns_path.exists():
        _run(["ip", "netns", "delete", plan.netns], timeout=30)
        removed.append(f"namespace {plan.netns}")
    if plan.state_dir.exists():
        shutil.rmtree(plan.state_dir)
        removed.append(str(plan.state_dir))
    return removed


def running_labs(state_root: Path = vm_plan.STATE_ROOT) -> list[str]:
    return sorted(p.name.removeprefix("vm-") for p in state_root.glob("vm-*") if p.is_dir())
