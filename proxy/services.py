"""Services and Endpoints as the proxy sees them: one ServicePort per port, ready "ip:port" endpoints.

Everything an apiserver object can carry that iptables cannot take (an IPv6 or
malformed address, a port out of range, an unknown protocol, a name that is not
a DNS label) is dropped here, because one bad line would make iptables-restore
refuse the whole payload and every other service with it. Names go into rule
comments: a newline in one would end the rule before its target.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from typing import NamedTuple

from api import loadbalancer
from api.pb import core_pb2
from proxy import chains

PROTOCOLS = ("TCP", "UDP", "SCTP")
DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' default ClientIP timeout (3 hours)


class ServicePort(NamedTuple):  # a NamedTuple: built 10,000s of times per full sync, and cheaply
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    port: int
    cluster_ip: str
    node_port: int = 0  # 0: none
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_seconds: int = 0  # 0: no ClientIP session affinity
    local: bool = False  # externalTrafficPolicy Local: outside traffic only to this node's endpoints, unmasqueraded

    @property
    def display(self) -> str:
        """`ns/svc:port`, the name used in comments and chain hashes."""
        return chains.port_name(self.namespace, self.name, self.port_name)

    @property
    def proto(self) -> str:
        return self.protocol.lower()


_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def is_label(value: str) -> bool:
    """A DNS-1123 label (what namespace, Service and port names are): safe in a rule, unquoted or quoted."""
    return len(value) <= 63 and _LABEL.fullmatch(value) is not None


def service_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _packed(value: str) -> bytes | None:
    """The 4 bytes of a dotted-quad IPv4 address, None for anything else (inet_pton is strict and fast)."""
    try:
        return socket.inet_pton(socket.AF_INET, value)
    except (OSError, ValueError, TypeError):
        return None


def _ipv4(value: str) -> str | None:
    packed = _packed(value)
    return None if packed is None else socket.inet_ntop(socket.AF_INET, packed)


def _ipv4s(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        ip = _ipv4(v)
        if ip is not None and ip not in out:
            out.append(ip)
    return tuple(out)


def compute_service_ports(svc: core_pb2.Service) -> list[ServicePort]:
    """The ports the proxy programs for a Service; none for headless, ExternalName or unallocated ones."""
    spec = svc.spec
    if spec.type == "ExternalName" or not (is_label(svc.metadata.namespace) and is_label(svc.metadata.name)):
        return []
    cluster_ip = _ipv4(spec.cluster_ip) if spec.cluster_ip and spec.cluster_ip != "None" else None
    if cluster_ip is None:
        return []
    affinity = 0
    if spec.session_affinity == "ClientIP":
        cfg = spec.session_affinity_config.client_ip
        affinity = cfg.timeout_seconds if cfg.HasField("timeout_seconds") and cfg.timeout_seconds > 0 \
            else DEFAULT_AFFINITY_SECONDS
    external = _ipv4s(spec.external_ips)
    # The allocated address too: rules are in place on every node before one announces it.
    lb = _ipv4s([*(i.ip for i in svc.status.load_balancer.ingress if i.ip), loadbalancer.allocated_ip(svc)]
                if spec.type == "LoadBalancer" else ())
    with_node_ports = spec.type in ("NodePort", "LoadBalancer")
    out: list[ServicePort] = []
    for p in spec.ports:
        protocol = p.protocol or "TCP"
        if protocol not in PROTOCOLS or not 0 < p.port < 65536 or (p.name and not is_label(p.name)):
            continue
        node_port = p.node_port if with_node_ports and 0 < p.node_port < 65536 else 0
        out.append(ServicePort(
            namespace=svc.metadata.namespace, name=svc.metadata.name, port_name=p.name, protocol=protocol,
            port=p.port, cluster_ip=cluster_ip, node_port=node_port, external_ips=external,
            load_balancer_ips=lb, affinity_seconds=affinity,
            local=with_node_ports and spec.external_traffic_policy == "Local",
        ))
    return out


def compute_endpoints(ep: core_pb2.Endpoints | None, port: ServicePort) -> tuple[str, ...]:
    """The ready endpoints ("ip:port") of a service port: Endpoints ports matched by name and protocol.

    The endpoints controller has already resolved named target ports into numbers
    in Endpoints, so the service port's own targetPort is not needed here.
    """
    if ep is None:
        return ()
    found: set[tuple[bytes, int]] = set()
    for subset in ep.subsets:
        numbers = [p.port for p in subset.ports
                   if p.name == port.port_name and (p.protocol or "TCP") == port.protocol and 0 < p.port < 65536]
        if not numbers:
            continue
        for addr in subset.addresses:
            packed = _packed(addr.ip)
            if packed is None:
                continue
            for n in numbers:
                found.add((packed, n))
    # Sorted by address (big-endian bytes sort numerically), then port: a stable order.
    return tuple(f"{socket.inet_ntop(socket.AF_INET, ip)}:{n}" for ip, n in sorted(found))
