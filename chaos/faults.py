"""Fault drivers: stop a node, cut it off, restart a component — on the lab or, over ssh, on VMs.

Every fault has an undo, and scenarios always undo what they did, so a chaos
run leaves the cluster as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from client.config import ClientConfig
from deploy.lab import cluster as lab_cluster
from deploy.lab import network
from deploy.lab import status as lab_status
from deploy.lab.cluster import (
    control_plane_dir,
    daemon_name,
    find_running,
    node_dir,
    node_spec,
    recorded_proxy_mode,
    runs_ingress,
)
from deploy.lab.plan import LabPlan, Member
from deploy.lab.procs import ProcRecord, Supervisor, is_alive
from deploy.node import bootstrap
from deploy.node.launch import SupervisorLauncher
from deploy.vm.plan import root_over_ssh

log = structlog.get_logger(component="chaos")

# A disk fill never writes more than this, whatever level was asked: the lab's disk is the machine's.
MAX_FILL_BYTES = 1 << 30
FILL_FILE = "chaos-fill"


# On a machine reached over ssh: kubelite's units and data directory (deploy/node/launch.py's names).
REMOTE_DATA = "/var/lib/kubelite"
ACTIVE_UNITS = "systemctl list-units 'kubelite-*' --state=active --plain --no-legend | awk '{print $1}'"
NODE_UNITS = ("kubelite-containerd.service", "kubelite-kubelet.service", "kubelite-proxy.service",
              "kubelite-speaker.service")


class ChaosError(Exception):
    pass


def main_pid(unit: str) -> str:
    """Shell: $pid is the unit's main process, or the script fails saying the unit is not running."""
    return (f"pid=$(systemctl show -p MainPID --value {unit}) && "
            f"{{ [ \"$pid\" -gt 0 ] || {{ echo '{unit} is not running' >&2; exit 3; }}; }}")


def kill_and_wait_script(unit: str, timeout: float) -> str:
    """Shell: SIGKILL the unit's main process (only it: containerd's shims stay, as in a crash), then wait for
    systemd to run it again. Prints `back START END` (unix times), or `started START` when it had to be started
    by hand after `timeout` seconds."""
    return (f"{main_pid(unit)} && start=$(date +%s.%N) && kill -KILL $pid && end=$(( $(date +%s) + {int(timeout)} )) "
            f"&& while [ $(date +%s) -lt $end ]; do "
            f"new=$(systemctl show -p MainPID --value {unit}); "
            f"if [ \"$new\" -gt 0 ] && [ \"$new\" != \"$pid\" ] && systemctl is-active -q {unit}; then "
            f"echo back $start $(date +%s.%N); exit 0; fi; sleep 0.05; done; "
            f"systemctl reset-failed {unit}; systemctl start {unit} && echo started $start")


def parse_back(out: str, unit: str, node: str) -> float | None:
    """kill_and_wait_script's answer: the seconds until the unit ran again, None if it was started by hand."""
    words = out.split()
    if len(words) == 3 and words[0] == "back":
        return round(float(words[2]) - float(words[1]), 2)
    if len(words) == 2 and words[0] == "started":
        return None
    raise ChaosError(f"{node}: {unit}: unexpected answer {out.strip()!r}")


def etcd_leader_of(members: Sequence[dict]) -> str:
    """The machine whose etcd member leads and answers, from `kubelite bootstrap etcd-members -o json`'s list."""
    leaders = [m["name"] for m in members if m.get("leader") and m.get("healthy")]
    if len(leaders) != 1:
        raise ChaosError(f"expected one etcd leader, found {', '.join(leaders) or 'none'}")
    return leaders[0]


def pid_alive(pid: int | None) -> bool:
    """Whether a process on this machine runs and is not stopped."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("T", "t", "Z", "X")
    except (OSError, IndexError):
        return False


def machine_of_daemon(daemon: str, component: str, machines: Sequence[str]) -> str:
    """The control-plane machine a lab daemon runs on: `scheduler` on the first, `scheduler-cp2` on cp2."""
    for machine in machines:
        if daemon and daemon == daemon_name(machine, component):
            return machine
    raise ChaosError(f"no {component} of this cluster holds its lease (holder: {daemon or 'none'})")


class Target(Protocol):
    """A cluster faults can be applied to."""

    async def stop_node(self, node: str) -> None:
        """The node dies: its kubelet, proxy, speaker, ingress controller and containerd stop (containers keep
        running, as after a kubelet crash; they are killed when the kubelet returns and finds them deleted)."""
        ...

    async def start_node(self, node: str) -> None: ...

    async def cut_off(self, node: str) -> None:
        """The node is partitioned from everything else, processes still running."""
        ...

    async def heal(self, node: str) -> None: ...

    async def restart(self, component: str) -> None:
        """Kill a component with SIGKILL and start it again (a dead one is just started)."""
        ...


def kernel_netem_missing() -> str:
    """Why this machine's kernel cannot delay or drop packets with netem ('' if it can), tried on the loopback
    of a network namespace that lives only as long as the probe."""
    try:
        r = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return "" if r.returncode == 0 else (r.stderr.strip() or f"tc exited {r.returncode}")


@dataclass
class LabTarget:
    """A cluster made by `kubelite up` on this machine."""

    cluster: str
    plan: LabPlan = field(init=False)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        running = find_running(self.cluster)
        if running is None or not running.healthy:
            raise ChaosError(f"cluster {self.cluster!r} is not up")
        self.plan = running.plan
        self.supervisor = Supervisor.for_plan(self.plan)

    # What a chaos run needs of its cluster besides the faults (chaos.vm.VmTarget has the same).

    remote_clock = False  # the load client runs on this machine: its times are ours
    call_timeout = 2.0  # a lab's apiserver answers a write in milliseconds; 2 s is an outage

    @property
    def control_plane_machines(self) -> tuple[str, ...]:
        return tuple(m.role for m in self.plan.control_planes)

    @property
    def worker_machines(self) -> tuple[str, ...]:
        return tuple(n.role for n in self.plan.nodes)

    def client_config(self) -> ClientConfig:
        return lab_cluster.client_config_for(self.plan)

    def load_argv(self, node: str, args: Sequence[str]) -> list[str]:
        """The load client (chaos.loadclient with `args`), run in `node`'s network namespace."""
        return ["nsenter", f"--net={network.netns_path(self.plan.node(node).netns)}", sys.executable, "-m",
                "chaos.loadclient", *args]

    def holder_alive(self, holder: str) -> bool:
        """Whether a lease holder's process runs and is not stopped (the lab's daemons share this host's pids)."""
        return pid_alive(lab_status.holder_pid(holder))

    def _node_index(self, node: str) -> int:
        for i, n in enumerate(self.plan.nodes):
            if n.role == node:
                return i
        raise ChaosError(f"no node {node!r} in cluster {self.cluster!r} "
                         f"(nodes: {', '.join(m.role for m in self.plan.members)})")

    def _is_control_plane(self, node: str) -> bool:
        return any(m.role == node for m in self.plan.control_planes)

    def _member(self, node: str) -> Member:
        if self._is_control_plane(node):
            return self.plan.control_plane_member(node)
        return self.plan.nodes[self._node_index(node)]

    async def resolve(self, node: str) -> str:
        """The machine a fault aims at: `node` itself, or whichever control-plane machine now leads
        (chaos.plan.ETCD_LEADER, SCHEDULER_LEADER, CONTROLLER_MANAGER_LEADER)."""
        if not node.startswith("@"):
            return node
        if node == "@etcd-leader":
            return await asyncio.to_thread(self.etcd_leader)
        component = node.removeprefix("@").removesuffix("-leader")
        return await self.lease_holder(component)

    def etcd_leader(self) -> str:
        try:
            return etcd_leader_of(lab_status.etcd_members(self.plan))
        except RuntimeError as e:
            raise ChaosError(f"cannot list the etcd members: {e}") from None

    async def lease_holder(self, component: str) -> str:
        """The control-plane machine whose `component` (scheduler, controller-manager) holds its lease."""
        holders = await lab_status.lease_holders_or_error(self.plan)
        if isinstance(holders, str):
            raise ChaosError(f"cannot read the {component} lease: {holders}")
        daemon = next((h.daemon for h in holders if h.component == component), "")
        return machine_of_daemon(daemon, component, [m.role for m in self.plan.control_planes])

    async def stop_node(self, node: str) -> None:
        if self._is_control_plane(node):
            # The whole machine: etcd, apiserver, scheduler, controller-manager and the rest.
            await lab_cluster.stop_control_plane_machine(self.cluster, node)
            log.info("node_stopped", node=node)
            return
        self._node_index(node)
        # Stopped, not killed: the watchdog leaves them alone until start_node.
        for daemon in (f"kubelet-{node}", f"proxy-{node}", f"speaker-{node}", f"ingress-{node}",
                       f"containerd-{node}"):
            await asyncio.to_thread(self.supervisor.stop, daemon)
        log.info("node_stopped", node=node)

    async def start_node(self, node: str) -> None:
        if self._is_control_plane(node):
            await lab_cluster.start_control_plane_machine(self.cluster, node)
            log.info("node_started", node=node)
            return
        # As `up` started it: the cluster's proxy mode, and an ingress controller only where one ran.
        spec = node_spec(self.plan, self._node_index(node), proxy_mode=recorded_proxy_mode(self.plan),
                         ingress=runs_ingress(self.plan, node))
        await bootstrap.bootstrap_node(spec, SupervisorLauncher(self.supervisor))
        log.info("node_started", node=node)

    async def cut_off(self, node: str) -> None:
        member = self._member(node)
        await asyncio.to_thread(network.apply_link_state, self.plan, member, up=False)

    async def heal(self, node: str) -> None:
        member = self._member(node)
        await asyncio.to_thread(network.apply_link_state, self.plan, member, up=True)

    async def restart(self, component: str) -> None:
        record = next((r for r in self.supervisor.records() if r.name == component), None)
        if record is None:
            names = ", ".join(sorted(r.name for r in self.supervisor.records()))
            raise ChaosError(f"no component {component!r} in cluster {self.cluster!r} (components: {names})")
        await asyncio.to_thread(self.supervisor.stop, component, timeout=0.0)
        await asyncio.to_thread(self.supervisor.start, component, list(record.argv), netns=record.netns,
                                env=record.env, cwd=Path(record.cwd))
        log.info("component_restarted", component=component)

    # Faults on one component of one machine, by the names of chaos.plan.

    def daemon(self, component: str, node: str) -> str:
        """The supervisor's name of `component` on `node`: the first control plane's daemons by their own names,
        another control plane's as `<component>-<machine>`, a worker's as `<component>-<node>`."""
        if self._is_control_plane(node):
            return daemon_name(node, component)
        self._node_index(node)
        return f"{component}-{node}"

    def _live(self, name: str) -> ProcRecord:
        record = self.supervisor.get(name)
        if record is None or not is_alive(record):
            raise ChaosError(f"component {name} of cluster {self.cluster!r} is not running")
        return record

    async def kill(self, component: str, node: str, *, timeout: float = 30.0) -> float | None:
        """SIGKILL the component, as a crash would; the supervisor starts it again. Returns the seconds until it
        runs again (None if it did not within `timeout`: it is then started by hand)."""
        name = self.daemon(component, node)
        record = self._live(name)
        start = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        log.info("component_killed", component=name, pid=record.pid)
        while time.monotonic() - start < timeout:
            now = self.supervisor.get(name)
            if now is not None and now.pid != record.pid and is_alive(now):
                return round(time.monotonic() - start, 2)
            await asyncio.sleep(0.05)
        await self.ensure_running(name, record)
        return None

    async def ensure_running(self, name: str, record: ProcRecord) -> None:
        now = self.supervisor.get(name)
        if now is None or not is_alive(now):
            await asyncio.to_thread(self.supervisor.start, name, list(record.argv), netns=record.netns,
                                    env=record.env, cwd=Path(record.cwd))
            log.info("component_started", component=name)

    async def pause(self, component: str, node: str) -> Callable[[], Awaitable[None]]:
        """SIGSTOP the component's process (it stays, frozen, holding its sockets); returns the resume."""
        record = self._live(self.daemon(component, node))
        os.kill(record.pid, signal.SIGSTOP)
        log.info("component_paused", component=record.name, pid=record.pid)
        return lambda: asyncio.to_thread(self.resume, record.pid)

    def resume(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        log.info("component_resumed", pid=pid)

    def _netns(self, node: str) -> str:
        return self._member(node).netns

    def netem_missing(self) -> str:
        """Why this cluster's nodes cannot run netem ('' if they can): they share this machine's kernel."""
        return kernel_netem_missing()

    async def check_netem(self, node: str) -> None:
        """Whether the kernel has the netem qdisc, tried on the node's loopback (inside its namespace)."""
        member = self._netns(node)
        try:
            await asyncio.to_thread(network.run, ["tc", "-n", member, "qdisc", "add", "dev", "lo", "root", "netem",
                                                  "delay", "0ms"])
        except network.NetworkError as e:
            raise ChaosError(f"netem: this kernel cannot delay or drop packets ({e}); leave netem out "
                             "(`kubelite chaos soak --without netem`)") from None
        await asyncio.to_thread(network.run, ["tc", "-n", member, "qdisc", "del", "dev", "lo", "root"])

    async def netem(self, node: str, *, delay_ms: int, loss_percent: float) -> None:
        """Delay and drop packets leaving the node's link to the lab, inside the node's own namespace."""
        member = self._netns(node)
        argv = ["tc", "-n", member, "qdisc", "replace", "dev", self.plan.control_plane.iface, "root", "netem",
                "delay", f"{delay_ms}ms", "loss", f"{loss_percent:g}%"]
        await asyncio.to_thread(network.run, argv)
        log.info("netem_applied", node=node, delay_ms=delay_ms, loss_percent=loss_percent)

    async def clear_netem(self, node: str) -> None:
        member = self._netns(node)
        qdiscs = await asyncio.to_thread(network.run, ["tc", "-n", member, "qdisc", "show", "dev",
                                                       self.plan.control_plane.iface])
        if "netem" in qdiscs:
            await asyncio.to_thread(network.run, ["tc", "-n", member, "qdisc", "del", "dev",
                                                  self.plan.control_plane.iface, "root"])
        log.info("netem_cleared", node=node)

    def fill_path(self, node: str) -> Path:
        if node == self.plan.control_plane.role:
            return self.plan.paths.data_dir / FILL_FILE
        if self._is_control_plane(node):
            return control_plane_dir(self.plan, node) / FILL_FILE
        self._node_index(node)
        return node_dir(self.plan, node) / FILL_FILE

    async def fill_disk(self, node: str, level: float, *, max_bytes: int = MAX_FILL_BYTES) -> int:
        """Allocate a file in the node's data directory so its filesystem is `level` full, never more than
        `max_bytes`; returns the bytes allocated."""
        path = self.fill_path(node)
        usage = shutil.disk_usage(path.parent)
        size = max(0, min(int(usage.total * level) - usage.used, max_bytes))
        await asyncio.to_thread(network.run, ["fallocate", "-l", str(size), str(path)] if size else ["true"])
        log.info("disk_filled", node=node, path=str(path), bytes=size)
        return size

    async def free_disk(self, node: str) -> None:
        self.fill_path(node).unlink(missing_ok=True)
        log.info("disk_freed", node=node)


@dataclass
class SshTarget:
    """VMs reached over ssh (e.g. `vagrant ssh-config` hosts), daemons as systemd units.

    `machines` is the command that powers VMs off and on (`vagrant` or a wrapper of it);
    without it only the daemons can be stopped.
    """

    hosts: dict[str, str]  # node or "cp" -> ssh destination
    ssh: Sequence[str] = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5")
    machines: Sequence[str] = ()
    machine_timeout: float = 600.0
    addresses: dict[str, str] = field(default_factory=dict)  # machine -> its cluster address (for netem)
    _stopped: dict[str, list[str]] = field(default_factory=dict, init=False)  # machine -> the units stop_node stopped

    async def _machine(self, node: str, *args: str) -> None:
        if not self.machines:
            raise ChaosError("no command to power VMs off and on (SshTarget.machines)")
        if node not in self.hosts:
            raise ChaosError(f"no VM {node!r} (VMs: {', '.join(sorted(self.hosts))})")
        argv = [*self.machines, *args, node]
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                         timeout=self.machine_timeout)
        if result.returncode != 0:
            raise ChaosError(f"{node}: {' '.join(args)}: {(result.stderr or result.stdout).strip()[-1000:]}")

    async def halt_node(self, node: str) -> None:
        """The whole VM goes down (`vagrant halt`): kernel, daemons and containers alike."""
        await self._machine(node, "halt")
        log.info("node_halted", node=node)

    async def power_off_node(self, node: str) -> None:
        """The VM loses power: its kernel stops at once (sysrq `o`), no service stops cleanly, nothing is written
        back. What a node whose machine dies looks like, in seconds (`vagrant halt` waits for a clean shutdown,
        minutes under emulation). The command returns before the kernel stops, so ssh sees it succeed."""
        await self._run(node, "nohup sh -c 'sleep 1; echo o > /proc/sysrq-trigger' >/dev/null 2>&1 &")
        log.info("node_powered_off", node=node)

    async def boot_node(self, node: str) -> None:
        """Boot a halted VM again; its systemd units bring the node back."""
        await self._machine(node, "up", "--no-provision")
        log.info("node_booted", node=node)

    async def _run(self, node: str, command: str, *, timeout: float = 60.0) -> str:
        host = self.hosts.get(node)
        if host is None:
            raise ChaosError(f"no ssh host for {node!r}")
        argv = root_over_ssh(self.ssh, host, command)
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ChaosError(f"{node}: {(result.stderr or result.stdout).strip()[-500:] or command}")
        return result.stdout

    async def stop_node(self, node: str) -> None:
        """Every kubelite daemon on the machine stops (on a control plane: etcd, the apiserver and the rest
        too); containerd's shims and the containers keep running, as in the lab. start_node starts the same."""
        out = await self._run(node, f"{ACTIVE_UNITS} && systemctl stop $({ACTIVE_UNITS})")
        self._stopped[node] = out.split()
        log.info("node_stopped", node=node, units=self._stopped[node])

    async def start_node(self, node: str) -> None:
        units = self._stopped.pop(node, None) or list(NODE_UNITS)
        await self._run(node, "systemctl start " + " ".join(shlex.quote(u) for u in units))
        log.info("node_started", node=node)

    async def cut_off(self, node: str) -> None:
        # Drop cluster traffic but keep ssh, so the fault can be undone.
        await self._run(node, "iptables -I INPUT -p tcp --dport 22 -j ACCEPT -m comment --comment kubelite-chaos && "
                              "iptables -I INPUT 2 -j DROP -m comment --comment kubelite-chaos")

    async def heal(self, node: str) -> None:
        await self._run(node, "iptables-save | grep -v kubelite-chaos | iptables-restore")

    async def kill(self, component: str, node: str, *, timeout: float = 30.0) -> float | None:
        """SIGKILL the component's unit, as a crash would; systemd starts it again. Returns the seconds until it
        runs again with another pid (None if not within `timeout`: it is then started by hand)."""
        unit = f"kubelite-{component}.service"
        out = await self._run(node, kill_and_wait_script(unit, timeout), timeout=timeout + 60)
        seconds = parse_back(out, unit, node)
        log.info("component_killed", component=component, node=node, back=seconds)
        return seconds

    async def pause(self, component: str, node: str) -> Callable[[], Awaitable[None]]:
        """SIGSTOP the unit's main process (it stays, frozen, holding its sockets); returns the resume."""
        unit = f"kubelite-{component}.service"
        pid = int(await self._run(node, f"{main_pid(unit)} && kill -STOP $pid && echo $pid"))
        log.info("component_paused", component=component, node=node, pid=pid)

        async def resume() -> None:
            await self._run(node, f"kill -CONT {pid} 2>/dev/null || true")
            log.info("component_resumed", component=component, node=node)
        return resume

    async def check_netem(self, node: str) -> None:
        """Whether the machine's kernel has the netem qdisc, tried on its loopback."""
        try:
            await self._run(node, "modprobe sch_netem 2>/dev/null; tc qdisc add dev lo root netem delay 0ms && "
                                  "tc qdisc del dev lo root")
        except ChaosError as e:
            raise ChaosError(f"netem: {node}'s kernel cannot delay or drop packets ({e}); leave netem out "
                             "(`kubelite chaos soak --without netem`)") from None

    async def netem(self, node: str, *, delay_ms: int, loss_percent: float) -> None:
        """Delay and drop packets leaving the machine's cluster address (not the link ssh uses)."""
        await self._run(node, f"tc qdisc replace dev $({self._iface(node)}) root netem delay {delay_ms}ms "
                              f"loss {loss_percent:g}%")
        log.info("netem_applied", node=node, delay_ms=delay_ms, loss_percent=loss_percent)

    async def clear_netem(self, node: str) -> None:
        iface = f"$({self._iface(node)})"
        await self._run(node, f"if tc qdisc show dev {iface} | grep -q netem; then tc qdisc del dev {iface} root; fi")
        log.info("netem_cleared", node=node)

    def _iface(self, node: str) -> str:
        address = self.addresses.get(node)
        if address is None:
            raise ChaosError(f"no cluster address for {node!r}: netem needs to know its link")
        return f"ip -o -4 addr show | awk -v a={address}/ 'index($4, a) == 1 {{print $2; exit}}'"

    async def fill_disk(self, node: str, level: float, *, max_bytes: int = MAX_FILL_BYTES) -> int:
        """Allocate a file in the machine's kubelite data directory so its filesystem is `level` full, never more
        than `max_bytes`; returns the bytes allocated."""
        out = await self._run(node, f"df -B1 --output=size,used {REMOTE_DATA} | tail -1")
        total, used = (int(x) for x in out.split())
        size = max(0, min(int(total * level) - used, max_bytes))
        if size:
            await self._run(node, f"fallocate -l {size} {REMOTE_DATA}/{FILL_FILE}")
        log.info("disk_filled", node=node, bytes=size)
        return size

    async def free_disk(self, node: str) -> None:
        await self._run(node, f"rm -f {REMOTE_DATA}/{FILL_FILE}")
        log.info("disk_freed", node=node)

    async def restart(self, component: str) -> None:
        await self._run("cp", f"systemctl kill -s KILL kubelite-{component} && systemctl restart kubelite-{component}")
