"""Cluster IPs, NodePorts and load-balancer addresses for Services.

Each claim is a key in etcd (`/registry/ranges/...`) created in the same
transaction as the Service, so two apiservers can never hand out the same
address, and deleting the Service releases it atomically. Picking a free
value is pure and works from the set this apiserver knows to be taken.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from api import loadbalancer
from api.errors import FieldError, InvalidError
from api.pb import core_pb2

RANGES = "/registry/ranges/"


def ip_key(ip: str) -> str:
    return f"{RANGES}serviceips/{ip}"


def port_key(port: int, protocol: str = "TCP") -> str:
    return f"{RANGES}nodeports/{protocol.lower()}/{port}"


def lb_key(ip: str) -> str:
    return f"{RANGES}lbips/{ip}"


@dataclass(frozen=True)
class Pool:
    """LoadBalancer addresses: inclusive (first, last) ranges of IPv4 addresses as integers."""

    ranges: tuple[tuple[int, int], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> Pool:
        """`10.250.0.128/25,10.250.0.100-10.250.0.110`: CIDRs (without their network and broadcast
        addresses) and inclusive ranges, comma-separated."""
        out: list[tuple[int, int]] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                raise ValueError(f"--lb-pool {text!r}: empty entry")
            try:
                if "/" in part:
                    net = ipaddress.IPv4Network(part)
                    lo, hi = int(net.network_address), int(net.broadcast_address)
                    if net.prefixlen < 31:
                        lo, hi = lo + 1, hi - 1
                else:
                    first, _, last = part.partition("-")
                    lo = int(ipaddress.IPv4Address(first.strip()))
                    hi = int(ipaddress.IPv4Address(last.strip())) if last else lo
            except ValueError as e:
                raise ValueError(f"--lb-pool entry {part!r}: {e}") from None
            if hi < lo:
                raise ValueError(f"--lb-pool entry {part!r}: the last address is below the first")
            for a, b in out:
                if lo <= b and a <= hi:
                    raise ValueError(f"--lb-pool entry {part!r} overlaps another entry")
            out.append((lo, hi))
        return cls(tuple(out), text)

    def __contains__(self, ip: str) -> bool:
        try:
            n = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        return any(lo <= n <= hi for lo, hi in self.ranges)

    def pick(self, taken: set[str], rng: random.Random) -> str:
        """A free address of the pool."""
        size = sum(hi - lo + 1 for lo, hi in self.ranges)
        for _ in range(64):
            k = rng.randrange(size)
            for lo, hi in self.ranges:
                if k <= hi - lo:
                    candidate = str(ipaddress.IPv4Address(lo + k))
                    break
                k -= hi - lo + 1
            if candidate not in taken:
                return candidate
        for lo, hi in self.ranges:  # dense: scan
            for n in range(lo, hi + 1):
                candidate = str(ipaddress.IPv4Address(n))
                if candidate not in taken:
                    return candidate
        raise ExhaustedError([FieldError("spec.loadBalancerIP", "Invalid value",
                                         f"load-balancer pool {self.text} is full")])


@dataclass(frozen=True)
class Ranges:
    service_cidr: ipaddress.IPv4Network
    node_ports: tuple[int, int]
    lb_pool: Pool | None

    @classmethod
    def parse(cls, service_cidr: str, node_ports: str, lb_pool: str) -> Ranges:
        lo, _, hi = node_ports.partition("-")
        return cls(ipaddress.ip_network(service_cidr), (int(lo), int(hi or lo)),
                   Pool.parse(lb_pool) if lb_pool else None)


class ExhaustedError(InvalidError):
    pass


def pick_ip(network: ipaddress.IPv4Network, taken: set[str], rng: random.Random) -> str:
    """A free address in `network`, skipping the network, first and broadcast addresses."""
    first = int(network.network_address) + 2  # .1 is kept for the apiserver's own service
    last = int(network.broadcast_address) - 1
    size = last - first + 1
    if size <= 0 or len(taken) >= size:
        raise ExhaustedError([FieldError("spec.clusterIP", "Invalid value", f"range {network} is full")])
    for _ in range(64):
        candidate = str(ipaddress.ip_address(first + rng.randrange(size)))
        if candidate not in taken:
            return candidate
    for n in range(first, last + 1):  # dense: scan
        candidate = str(ipaddress.ip_address(n))
        if candidate not in taken:
            return candidate
    raise ExhaustedError([FieldError("spec.clusterIP", "Invalid value", f"range {network} is full")])


def pick_port(lo: int, hi: int, taken: set[int], rng: random.Random) -> int:
    size = hi - lo + 1
    if len(taken) >= size:
        raise ExhaustedError([FieldError("spec.ports.nodePort", "Invalid value", f"range {lo}-{hi} is full")])
    for _ in range(64):
        candidate = lo + rng.randrange(size)
        if candidate not in taken:
            return candidate
    for candidate in range(lo, hi + 1):
        if candidate not in taken:
            return candidate
    raise ExhaustedError([FieldError("spec.ports.nodePort", "Invalid value", f"range {lo}-{hi} is full")])


def claims(svc: core_pb2.Service) -> set[str]:
    """Every range key a Service holds."""
    out = set()
    if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
        out.add(ip_key(svc.spec.cluster_ip))
    for p in svc.spec.ports:
        if p.node_port:
            out.add(port_key(p.node_port, p.protocol or "TCP"))
    if loadbalancer.allocated_ip(svc):
        out.add(lb_key(loadbalancer.allocated_ip(svc)))
    if svc.spec.health_check_node_port:
        out.add(port_key(svc.spec.health_check_node_port, "TCP"))
    return out


def needs_node_ports(svc: core_pb2.Service) -> bool:
    if svc.spec.type == "NodePort":
        return True
    if svc.spec.type == "LoadBalancer":
        return not svc.spec.HasField("allocate_load_balancer_node_ports") or svc.spec.allocate_load_balancer_node_ports
    return False


def needs_health_check_port(svc: core_pb2.Service) -> bool:
    """Kubernetes allocates a healthCheckNodePort to LoadBalancer Services with externalTrafficPolicy Local."""
    return svc.spec.type == "LoadBalancer" and svc.spec.external_traffic_policy == "Local"


def check_requested(svc: core_pb2.Service, ranges: Ranges) -> list[FieldError]:
    """Errors for addresses and ports the user asked for that lie outside the ranges."""
    errs = []
    ip = svc.spec.cluster_ip
    if ip and ip != "None":
        try:
            if ipaddress.ip_address(ip) not in ranges.service_cidr:
                errs.append(FieldError("spec.clusterIP", "Invalid value",
                                       f"provided IP is not in the valid range. The range of valid IPs is "
                                       f"{ranges.service_cidr}", ip))
        except ValueError:
            pass  # validation already named it
    lo, hi = ranges.node_ports
    for i, p in enumerate(svc.spec.ports):
        if p.node_port and not lo <= p.node_port <= hi:
            errs.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value",
                                   f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}",
                                   p.node_port))
    wanted = svc.spec.load_balancer_ip
    if wanted and loadbalancer.is_ours(svc) and ranges.lb_pool is not None and wanted not in ranges.lb_pool:
        errs.append(FieldError("spec.loadBalancerIP", "Invalid value",
                               f"not in the load-balancer pool {ranges.lb_pool.text}", wanted))
    hc = svc.spec.health_check_node_port
    if hc and not lo <= hc <= hi:
        errs.append(FieldError("spec.healthCheckNodePort", "Invalid value",
                               f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}", hc))
    return errs
