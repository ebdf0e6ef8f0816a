"""Chaos on a VM lab (`kubelite vm up`): chaos.plan's faults over ssh, the load client on a worker VM.

The VMs' private network exists only inside the lab's network namespace, so a run on VMs runs there
(`kubelite chaos run --vm NAME` enters it by itself). Daemons are systemd units, killed and paused by their
main process as the lab's are; systemd starts a killed one again as the lab's supervisor does.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from api.errors import ApiError
from chaos.faults import ChaosError, SshTarget, etcd_leader_of
from client.api import Client
from client.config import ClientConfig
from deploy.lab.status import LEADER_LEASES
from deploy.vm import lab
from deploy.vm.plan import VmLabPlan

VENV_PYTHON = "/opt/kubelite-venv/bin/python"  # where provision.sh installs kubelite on every VM
CP_PKI = "/var/lib/kubelite/control-plane/pki"


def holder_machine(identity: str) -> str:
    """The machine in a lease holder's default identity (`hostname_pid`, as the lab's `host_pid`)."""
    return identity.split("_", 1)[0]


def etcd_members_command(plan: VmLabPlan) -> str:
    """`kubelite bootstrap etcd-members` as a control-plane machine runs it: every member, asked over TLS with
    the apiserver's etcd client certificate, with 10 s for each answer (an emulated machine's TLS handshake alone
    can take seconds)."""
    endpoints = ",".join(f"https://{plan.address(m)}:2379" for m in plan.control_plane_machines)
    return (f"kubelite bootstrap etcd-members --endpoints {endpoints} --cacert {CP_PKI}/etcd/ca.crt "
            f"--cert {CP_PKI}/apiserver-etcd-client.crt --key {CP_PKI}/apiserver-etcd-client.key -o json --timeout 10")


@dataclass(kw_only=True)
class VmTarget(SshTarget):
    plan: VmLabPlan
    remote_clock: ClassVar[bool] = True  # the load client's lines carry a VM's clock, not ours
    # An emulated VM's apiserver takes 0.3-2 s for a write when all is well, and a client moving to another
    # apiserver needs a new TLS handshake with it: a 2 s limit there counts slowness as failures.
    call_timeout: ClassVar[float] = 10.0

    def netem_missing(self) -> str:
        """'': each VM has its own kernel, tried when a run that draws netem starts (check_netem)."""
        return ""

    @classmethod
    def of(cls, name: str) -> VmTarget:
        plan = lab.load_plan(name)
        if not lab.is_up(plan):
            raise ChaosError(f"VM lab {name!r} is not up (kubelite vm up --name {name})")
        return cls(hosts={m: m for m in plan.machines}, ssh=lab.ssh_argv(plan), plan=plan,
                   addresses={m: plan.address(m) for m in plan.machines})

    @property
    def cluster(self) -> str:
        return self.plan.name

    @property
    def control_plane_machines(self) -> tuple[str, ...]:
        return tuple(self.plan.control_plane_machines)

    @property
    def worker_machines(self) -> tuple[str, ...]:
        return tuple(m for m in self.plan.nodes if m not in self.plan.control_plane_machines)

    def client_config(self) -> ClientConfig:
        env = lab.cluster_env(self.plan)
        return ClientConfig(server=env["KUBELITE_SERVER"], ca_file=env["KUBELITE_CA"],
                            cert_file=env["KUBELITE_CLIENT_CERTIFICATE"], key_file=env["KUBELITE_CLIENT_KEY"],
                            cluster=self.plan.name)

    def load_argv(self, node: str, args: Sequence[str]) -> list[str]:
        """The load client on `node`, as its ssh user: it stops when ssh does (its next line meets a closed pipe),
        or at its own --duration."""
        return [*self.ssh, self.hosts[node], shlex.join([VENV_PYTHON, "-m", "chaos.loadclient", *args])]

    def holder_alive(self, holder: str) -> bool:
        # A VM's processes cannot be seen from here; a lease renewed after a fault began is proof enough that its
        # holder runs (a killed or paused one renews nothing).
        return True

    async def etcd_members(self, machine: str) -> list[dict]:
        try:
            return json.loads(await self._run(machine, etcd_members_command(self.plan), timeout=120))
        except ValueError as e:
            raise ChaosError(f"{machine}: etcd-members: {e}") from None

    async def resolve(self, node: str) -> str:
        """The machine a fault aims at: `node` itself, or whichever control-plane machine now leads."""
        if not node.startswith("@"):
            return node
        if node == "@etcd-leader":
            errors = []
            for machine in self.control_plane_machines:  # any member that answers knows the leader
                try:
                    return etcd_leader_of(await self.etcd_members(machine))
                except ChaosError as e:
                    errors.append(str(e))
            raise ChaosError(f"cannot find the etcd leader: {'; '.join(errors)}")
        component = node.removeprefix("@").removesuffix("-leader")
        lease_name = dict(LEADER_LEASES).get(component)
        if lease_name is None:
            raise ChaosError(f"no leader lease for {component!r}")
        try:
            async with Client(self.client_config()) as client:
                lease = await client.get("leases", lease_name, "kube-system")
        except ApiError as e:
            raise ChaosError(f"cannot read the {component} lease: {e.message}") from None
        machine = holder_machine(lease.spec.holder_identity)
        if machine not in self.control_plane_machines:
            raise ChaosError(f"no {component} of this cluster holds its lease "
                             f"(holder: {lease.spec.holder_identity or 'none'})")
        return machine
