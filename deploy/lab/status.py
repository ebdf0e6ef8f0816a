"""What `kubelite status` says of a lab cluster's control plane: its etcd members and who holds the leader leases.

The etcd members' addresses are on the lab network, which this host's own namespace does not
reach, so their status is asked from inside a control-plane machine's namespace by the same
command a VM's operator runs (`kubelite bootstrap etcd-members`), as the nodes' joins are.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass

from api.errors import ApiError, NotFoundError
from client.api import Client
from deploy.lab.cluster import client_config_for, control_plane_spec, daemon_name
from deploy.lab.network import netns_path
from deploy.lab.plan import LabPlan
from deploy.lab.procs import Supervisor
from deploy.node import bootstrap, certs

# The leases the control plane's leader-elected components hold (kube-system).
LEADER_LEASES = (("scheduler", "kube-scheduler"), ("controller-manager", "kube-controller-manager"))


@dataclass(frozen=True)
class LeaseHolder:
    component: str
    lease: str
    holder: str  # the holder's identity, "" when the lease is free or missing
    daemon: str  # the lab daemon whose process holds it, "" if none of this cluster's


def etcd_client_urls(plan: LabPlan) -> list[str]:
    """Every etcd member's client URL (one etcd on loopback for a single control plane)."""
    if len(plan.control_planes) == 1:
        return [bootstrap.ETCD_URL]
    return [f"https://{m.address}:{bootstrap.ETCD_CLIENT_PORT}" for m in plan.control_planes]


def etcd_members(plan: LabPlan, *, timeout: float = 15.0) -> list[dict]:
    """The members as `kubelite bootstrap etcd-members -o json` lists them, asked from the first control-plane
    machine whose namespace is there; raises RuntimeError with its message when none could answer."""
    last = ""
    for member in plan.control_planes:
        if not netns_path(member.netns).exists():
            continue
        store = control_plane_spec(plan, role=member.role).pki
        argv = ["nsenter", f"--net={netns_path(member.netns)}", "--", *bootstrap.kubelite_argv(), "bootstrap",
                "etcd-members", "--endpoints", ",".join(etcd_client_urls(plan)),
                "--cacert", str(store.crt(certs.ETCD_CA)), "--cert", str(store.crt("apiserver-etcd-client")),
                "--key", str(store.key("apiserver-etcd-client")), "-o", "json"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            last = f"no answer from inside {member.netns} in {timeout:.0f}s"
            continue
        if done.returncode == 0:
            return json.loads(done.stdout)
        last = done.stderr.strip() or f"exit {done.returncode}"
    raise RuntimeError(last or "no control-plane machine is there")


def holder_pid(identity: str) -> int | None:
    """The pid in a component's default identity (`host_pid` or `host_pid_suffix`)."""
    parts = identity.split("_")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


async def lease_holders(plan: LabPlan) -> list[LeaseHolder]:
    """Who holds the scheduler's and the controller-manager's leases, and which of the lab's daemons that is."""
    sup = Supervisor.for_plan(plan)
    by_pid = {}
    for member in plan.control_planes:
        for component, _ in LEADER_LEASES:
            record = sup.get(daemon_name(member.role, component))
            if record is not None:
                by_pid[record.pid] = record.name
    out = []
    async with Client(client_config_for(plan)) as client:
        for component, name in LEADER_LEASES:
            try:
                lease = await client.get("leases", name, "kube-system")
                holder = lease.spec.holder_identity
            except NotFoundError:
                holder = ""
            pid = holder_pid(holder)
            out.append(LeaseHolder(component, name, holder, by_pid.get(pid, "") if pid else ""))
    return out


async def lease_holders_or_error(plan: LabPlan) -> list[LeaseHolder] | str:
    try:
        async with asyncio.timeout(10.0):
            return await lease_holders(plan)
    except (ApiError, TimeoutError) as e:
        return str(e) or type(e).__name__
