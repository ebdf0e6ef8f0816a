"""Fault drivers: stop a node, cut it off, restart a component — on the lab or, over ssh, on VMs.

Every fault has an undo, and scenarios always undo what they did, so a chaos
run leaves the cluster as it found it.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from deploy.lab import network
from deploy.lab.cluster import find_running, node_spec, recorded_proxy_mode, runs_ingress
from deploy.lab.plan import LabPlan
from deploy.lab.procs import Supervisor
from deploy.node import bootstrap
from deploy.node.launch import SupervisorLauncher

log = structlog.get_logger(component="chaos")


class ChaosError(Exception):
    pass


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

    def _node_index(self, node: str) -> int:
        for i, n in enumerate(self.plan.nodes):
            if n.role == node:
                return i
        raise ChaosError(f"no node {node!r} in cluster {self.cluster!r} "
                         f"(nodes: {', '.join(n.role for n in self.plan.nodes)})")

    async def stop_node(self, node: str) -> None:
        self._node_index(node)
        # Stopped, not killed: the watchdog leaves them alone until start_node.
        for daemon in (f"kubelet-{node}", f"proxy-{node}", f"speaker-{node}", f"ingress-{node}",
                       f"containerd-{node}"):
            await asyncio.to_thread(self.supervisor.stop, daemon)
        log.info("node_stopped", node=node)

    async def start_node(self, node: str) -> None:
        # As `up` started it: the cluster's proxy mode, and an ingress controller only where one ran.
        spec = node_spec(self.plan, self._node_index(node), proxy_mode=recorded_proxy_mode(self.plan),
                         ingress=runs_ingress(self.plan, node))
        await bootstrap.bootstrap_node(spec, SupervisorLauncher(self.supervisor))
        log.info("node_started", node=node)

    async def cut_off(self, node: str) -> None:
        member = self.plan.nodes[self._node_index(node)]
        await asyncio.to_thread(network.apply_link_state, self.plan, member, up=False)

    async def heal(self, node: str) -> None:
        member = self.plan.nodes[self._node_index(node)]
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

    async def boot_node(self, node: str) -> None:
        """Boot a halted VM again; its systemd units bring the node back."""
        await self._machine(node, "up", "--no-provision")
        log.info("node_booted", node=node)

    async def _run(self, node: str, command: str) -> None:
        host = self.hosts.get(node)
        if host is None:
            raise ChaosError(f"no ssh host for {node!r}")
        argv = [*self.ssh, host, "sudo sh -c " + shlex.quote(command)]
        result = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise ChaosError(f"{node}: {command}: {result.stderr.strip()}")

    async def stop_node(self, node: str) -> None:
        await self._run(node, "systemctl stop kubelite-kubelet kubelite-proxy kubelite-speaker kubelite-containerd")

    async def start_node(self, node: str) -> None:
        await self._run(node, "systemctl start kubelite-containerd kubelite-kubelet kubelite-proxy kubelite-speaker")

    async def cut_off(self, node: str) -> None:
        # Drop cluster traffic but keep ssh, so the fault can be undone.
        await self._run(node, "iptables -I INPUT -p tcp --dport 22 -j ACCEPT -m comment --comment kubelite-chaos && "
                              "iptables -I INPUT 2 -j DROP -m comment --comment kubelite-chaos")

    async def heal(self, node: str) -> None:
        await self._run(node, "iptables-save | grep -v kubelite-chaos | iptables-restore")

    async def restart(self, component: str) -> None:
        await self._run("cp", f"systemctl kill -s KILL kubelite-{component} && systemctl restart kubelite-{component}")
