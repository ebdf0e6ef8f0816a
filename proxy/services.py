"""Services and EndpointSlices as the proxy sees them: one ServicePort per port, the endpoints each policy uses.

Everything an apiserver object can carry that iptables cannot take (an IPv6 or
malformed address, a port out of range, an unknown protocol, a name that is not
a DNS label) is dropped here, because one bad line would make iptables-restore
refuse the whole payload and every other service with it. Names go into rule
comments: a newline in one would end the rule before its target.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import NamedTuple

from api import loadbalancer
from api.pb import core_pb2, discovery_pb2
from proxy import chains

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
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
    external_local: bool = False  # externalTrafficPolicy Local: outside traffic only to this node's endpoints
    internal_local: bool = False  # internalTrafficPolicy Local: cluster IP traffic only to this node's endpoints
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges (CIDRs): who may use the load-balancer IPs
    health_check_node_port: int = 0  # the Service's healthCheckNodePort (0: none)

    @property
    def display(self) -> str:
        """`ns/svc:port`, the name used in comments and chain hashes."""
        return chains.port_name(self.namespace, self.name, self.port_name)

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def external(self) -> bool:
        """Reachable from outside the cluster (node port, external or load-balancer IPs)."""
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


class PortEndpoints(NamedTuple):
    """The endpoints ("ip:port", sorted) of one service port on one node, per traffic policy."""

    cluster: tuple[str, ...] = ()  # ready ones; if there are none, those still serving while terminating
    local: tuple[str, ...] = ()  # the same choice among this node's endpoints
    serving: frozenset[str] = frozenset()  # IPs of every endpoint still serving (flows to others are stale)

    def policy(self, local: bool) -> tuple[str, ...]:
        return self.local if local else self.cluster


NO_ENDPOINTS = PortEndpoints()


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
    ranges = _cidrs(spec.load_balancer_source_ranges) if spec.type == "LoadBalancer" else ()
    health_check = spec.health_check_node_port if 0 < spec.health_check_node_port < 65536 else 0
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
            external_local=spec.external_traffic_policy == "Local",
            internal_local=spec.HasField("internal_traffic_policy") and spec.internal_traffic_policy == "Local",
            source_ranges=ranges, health_check_node_port=health_check,
        ))
    return out


def _cidrs(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        try:
            cidr = str(ipaddress.IPv4Network(v.strip(), strict=False))
        except ValueError:
            continue
        if cidr not in out:
            out.append(cidr)
    return tuple(out)


def slice_service_key(es: discovery_pb2.EndpointSlice) -> str | None:
    """`namespace/service` of the Service a slice belongs to (its kubernetes.io/service-name label)."""
    name = es.metadata.labels.get(SERVICE_NAME_LABEL)
    return service_key(es.metadata.namespace, name) if name else None


def _true(conditions: discovery_pb2.EndpointConditions, field: str, unset: bool) -> bool:
    return getattr(conditions, field) if conditions.HasField(field) else unset


def compute_endpoints(slices: Iterable[discovery_pb2.EndpointSlice], port: ServicePort,
                      node: str = "") -> PortEndpoints:
    """The endpoints of a service port: slice ports matched by name and protocol, IPv4 addresses only.

    Kubernetes' rules: new connections go to ready endpoints; only when there is none, to endpoints
    still serving while they terminate (so a rollout's last pods keep answering). A ready condition
    left unset counts as ready; `serving` unset follows `ready`.
    """
    ready: set[tuple[bytes, int]] = set()
    terminating: set[tuple[bytes, int]] = set()
    local_ready: set[tuple[bytes, int]] = set()
    local_terminating: set[tuple[bytes, int]] = set()
    serving: set[str] = set()
    for es in slices:
        if es.address_type != "IPv4":
            continue
        numbers = [p.port for p in es.ports
                   if p.name == port.port_name and (p.protocol or "TCP") == port.protocol and 0 < p.port < 65536]
        if not numbers:
            continue
        for ep in es.endpoints:
            c = ep.conditions
            is_ready = _true(c, "ready", True)
            is_serving = _true(c, "serving", is_ready)
            is_terminating = _true(c, "terminating", False)
            local = bool(node) and ep.HasField("node_name") and ep.node_name == node
            for address in ep.addresses[:1]:  # Kubernetes: consumers use the first address
                packed = _packed(address)
                if packed is None:
                    continue
                if is_serving or is_ready:
                    serving.add(socket.inet_ntop(socket.AF_INET, packed))
                for n in numbers:
                    if is_ready:
                        ready.add((packed, n))
                        if local:
                            local_ready.add((packed, n))
                    elif is_serving and is_terminating:
                        terminating.add((packed, n))
                        if local:
                            local_terminating.add((packed, n))
    return PortEndpoints(_addresses(ready or terminating), _addresses(local_ready or local_terminating),
                         frozenset(serving))


def _addresses(found: set[tuple[bytes, int]]) -> tuple[str, ...]:
    # Sorted by address (big-endian bytes sort numerically), then port: a stable order.
    return tuple(f"{socket.inet_ntop(socket.AF_INET, ip)}:{n}" for ip, n in sorted(found))
