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
class Ranges:
    service_cidr: ipaddress.IPv4Network
    node_ports: tuple[int, int]
    lb_pool: ipaddress.IPv4Network | None

    @classmethod
    def parse(cls, service_cidr: str, node_ports: str, lb_pool: str) -> Ranges:
        lo, _, hi = node_ports.partition("-")
        return cls(ipaddress.ip_network(service_cidr), (int(lo), int(hi or lo)),
                   ipaddress.ip_network(lb_pool) if lb_pool else None)


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
    if svc.spec.health_check_node_port:
        out.add(port_key(svc.spec.health_check_node_port, "TCP"))
    for ing in svc.status.load_balancer.ingress:
        if ing.ip:
            out.add(lb_key(ing.ip))
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
    hc = svc.spec.health_check_node_port
    if hc and not lo <= hc <= hi:
        errs.append(FieldError("spec.healthCheckNodePort", "Invalid value",
                               f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}", hc))
    return errs
