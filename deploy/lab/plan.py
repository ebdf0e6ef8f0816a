"""The lab's address and naming plan: a pure function of cluster name and node count.

Every name that lands on the machine carries the cluster name, so two clusters (or two test
runs) coexist: namespaces are `kl-<cluster>-<role>`, lab-side veth ends and the lab bridge are
`<cluster>-<role>` (they live inside the cluster's own lab namespace), cgroups sit under
`kubelite/<cluster>`. The member end of each veth is always `lab0`, like a VM's NIC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

NETNS_PREFIX = "kl-"
MEMBER_IFACE = "lab0"
CNI_BRIDGE = "cni0"
LAB_SUBNET = IPv4Network("10.250.0.0/24")
CLUSTER_CIDR = IPv4Network("10.244.0.0/16")
SERVICE_CIDR = IPv4Network("10.96.0.0/16")
DNS_SERVICE_IP = IPv4Address("10.96.0.10")
CONTROL_PLANE_HOST = 2  # 10.250.0.2; control plane k (cp, cp2, cp3, ...) is 10.250.0.(1 + k)
NODE_HOST_BASE = 10  # node i is 10.250.0.(10 + i)
DEFAULT_RUN_ROOT = Path("/run/kubelite")
DEFAULT_DATA_ROOT = Path("/var/lib/kubelite")
CGROUP_ROOT = "kubelite"

IFNAMSIZ = 15  # the kernel's interface name limit, without the NUL
# The last node's address must stay below the subnet's broadcast address.
MAX_NODES = LAB_SUBNET.num_addresses - 2 - NODE_HOST_BASE
# Control-plane addresses end below the first node's.
MAX_CONTROL_PLANES = NODE_HOST_BASE - CONTROL_PLANE_HOST - 1
# `<cluster>-n<MAX_NODES>` is the longest interface name the plan makes.
MAX_CLUSTER_NAME = IFNAMSIZ - len(f"-n{MAX_NODES}")

_CLUSTER_RE = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
# Roles never contain '-', so the cluster is everything between "kl-" and the last '-'.
_NETNS_RE = re.compile(rf"{NETNS_PREFIX}(?P<cluster>[a-z0-9-]+)-(?P<role>lab|cp[2-9]?|n[1-9][0-9]*)")


class LabPlanError(ValueError):
    """A cluster name or node count the lab cannot be built from."""


@dataclass(frozen=True)
class Route:
    dest: IPv4Network
    via: IPv4Address


@dataclass(frozen=True)
class Paths:
    """Where a cluster keeps its state on the host."""

    run_dir: Path  # sockets and pid files (tmpfs: gone after a reboot, like the namespaces)
    data_dir: Path  # etcd data, images, logs

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


@dataclass(frozen=True)
class Member:
    """A namespace joined to the lab bridge by a veth pair."""

    role: str  # "cp", "n1", ...
    netns: str  # kl-<cluster>-<role>
    lab_port: str  # veth end inside the lab namespace, enslaved to the bridge
    iface: str  # veth end inside this namespace
    address: IPv4Address  # on iface, in the lab subnet
    routes: tuple[Route, ...]
    sysctls: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Node(Member):
    index: int
    pod_cidr: IPv4Network
    pod_gateway: IPv4Address  # the CNI bridge's address; pods route through it
    cni_bridge: str
    cgroup_parent: str  # suggested CRI cgroup_parent for this node's pods


@dataclass(frozen=True)
class LabPlan:
    cluster: str
    lab_netns: str
    bridge: str
    lab_sysctls: tuple[tuple[str, str], ...]
    lab_subnet: IPv4Network
    control_planes: tuple[Member, ...]  # cp, then cp2, cp3, ... for a highly available control plane
    nodes: tuple[Node, ...]
    cluster_cidr: IPv4Network
    service_cidr: IPv4Network
    dns_service_ip: IPv4Address
    paths: Paths
    cgroup: str  # relative to a cgroup hierarchy's root; every daemon and pod of the cluster

    @property
    def control_plane(self) -> Member:
        """The first control-plane machine: the one a single-machine control plane has."""
        return self.control_planes[0]

    @property
    def members(self) -> tuple[Member, ...]:
        return (*self.control_planes, *self.nodes)

    @property
    def netns_names(self) -> tuple[str, ...]:
        return (self.lab_netns, *(m.netns for m in self.members))

    def control_plane_member(self, role: str) -> Member:
        for member in self.control_planes:
            if member.role == role:
                return member
        raise LabPlanError(f"cluster {self.cluster!r} has no control-plane machine {role!r} "
                           f"(control planes: {', '.join(m.role for m in self.control_planes)})")

    def node(self, role: str) -> Node:
        for node in self.nodes:
            if node.role == role:
                return node
        raise LabPlanError(f"cluster {self.cluster!r} has no node {role!r}")


def validate_cluster_name(cluster: str) -> None:
    if not _CLUSTER_RE.fullmatch(cluster):
        raise LabPlanError(
            f"cluster name {cluster!r} is invalid: use lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    if len(cluster) > MAX_CLUSTER_NAME:
        raise LabPlanError(
            f"cluster name {cluster!r} is {len(cluster)} characters; at most {MAX_CLUSTER_NAME} "
            f"fit the {IFNAMSIZ}-character interface names built from it"
        )


def netns_name(cluster: str, role: str) -> str:
    return f"{NETNS_PREFIX}{cluster}-{role}"


def parse_netns(name: str) -> tuple[str, str] | None:
    """(cluster, role) of a lab namespace name, or None for a namespace the lab did not make."""
    match = _NETNS_RE.fullmatch(name)
    if match is None or not _CLUSTER_RE.fullmatch(match["cluster"]):
        return None
    return match["cluster"], match["role"]


def node_address(index: int) -> IPv4Address:
    return LAB_SUBNET.network_address + NODE_HOST_BASE + index


def control_plane_role(index: int) -> str:
    """`cp` for the first control-plane machine (as a single one is named), `cp<k>` for the k-th after it."""
    return "cp" if index == 1 else f"cp{index}"


def control_plane_address(index: int) -> IPv4Address:
    return LAB_SUBNET.network_address + CONTROL_PLANE_HOST + index - 1


def pod_cidr(index: int) -> IPv4Network:
    return IPv4Network(f"10.244.{index}.0/24")


def plan_lab(
    cluster: str,
    nodes: int,
    *,
    control_planes: int = 1,
    run_root: Path = DEFAULT_RUN_ROOT,
    data_root: Path = DEFAULT_DATA_ROOT,
) -> LabPlan:
    """Every name, address and route of a cluster with `nodes` nodes (n1..nN) and `control_planes`
    control-plane machines (cp, cp2, ...)."""
    validate_cluster_name(cluster)
    if not 0 <= nodes <= MAX_NODES:
        raise LabPlanError(f"node count {nodes} is out of range: 0..{MAX_NODES} fit the lab subnet")
    if not 1 <= control_planes <= MAX_CONTROL_PLANES or control_planes % 2 == 0:
        # etcd needs a majority: an even count tolerates no more failures than the odd one below it.
        raise LabPlanError(f"control-plane count {control_planes} is invalid: use an odd number from 1 to "
                           f"{MAX_CONTROL_PLANES} (etcd keeps working while a majority of its members is up)")
    indexes = range(1, nodes + 1)
    # Each control plane routes to every pod CIDR: pods reach the DNS server (and node IPs of
    # the control plane) through service DNAT, and its replies go back to pod addresses.
    members = tuple(Member(
        role=control_plane_role(k),
        netns=netns_name(cluster, control_plane_role(k)),
        lab_port=f"{cluster}-{control_plane_role(k)}",
        iface=MEMBER_IFACE,
        address=control_plane_address(k),
        routes=tuple(Route(pod_cidr(i), node_address(i)) for i in indexes),
        sysctls=(("net.ipv4.ip_forward", "0"),),
    ) for k in range(1, control_planes + 1))
    return LabPlan(
        cluster=cluster,
        lab_netns=netns_name(cluster, "lab"),
        bridge=f"{cluster}-br",
        # The lab bridge is a plain switch: bridged node-to-node frames skip its netfilter.
        lab_sysctls=(("net.ipv4.ip_forward", "0"), ("net.bridge.bridge-nf-call-iptables", "0")),
        lab_subnet=LAB_SUBNET,
        control_planes=members,
        nodes=tuple(_plan_node(cluster, i, indexes) for i in indexes),
        cluster_cidr=CLUSTER_CIDR,
        service_cidr=SERVICE_CIDR,
        dns_service_ip=DNS_SERVICE_IP,
        paths=Paths(run_dir=run_root / cluster, data_dir=data_root / cluster),
        cgroup=f"{CGROUP_ROOT}/{cluster}",
    )


def _plan_node(cluster: str, index: int, indexes: range) -> Node:
    role = f"n{index}"
    cidr = pod_cidr(index)
    return Node(
        role=role,
        netns=netns_name(cluster, role),
        lab_port=f"{cluster}-{role}",
        iface=MEMBER_IFACE,
        address=node_address(index),
        # host-gw: each other node's pod CIDR via that node's lab address.
        routes=tuple(Route(pod_cidr(j), node_address(j)) for j in indexes if j != index),
        # Nodes route between lab0 and the CNI bridge; same-node pod -> service -> pod traffic
        # is DNATed only if bridged frames pass through iptables (lab-facts).
        # Service traffic leaves through cni0, where pod traffic comes in: redirects would only
        # use up the ICMP budget that refusals (UDP port unreachable) need.
        sysctls=(("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1"),
                 ("net.ipv4.conf.all.send_redirects", "0"), ("net.ipv4.conf.default.send_redirects", "0")),
        index=index,
        pod_cidr=cidr,
        pod_gateway=cidr.network_address + 1,
        cni_bridge=CNI_BRIDGE,
        cgroup_parent=f"/{CGROUP_ROOT}/{cluster}/pods/{role}",
    )
