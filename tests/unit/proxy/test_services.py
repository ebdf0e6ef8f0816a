"""Service ports and ready endpoints as the proxy reads them from the API objects."""

from __future__ import annotations

import pytest

from proxy.services import DEFAULT_AFFINITY_SECONDS, compute_endpoints, compute_service_ports
from unit.proxy.objects import slice_of, subset, svc


def test_node_ports_and_lb_ips_only_for_their_types() -> None:
    """Node ports count only for NodePort/LoadBalancer, ingress IPs only for LoadBalancer."""
    lb = {"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}}
    (cluster,) = compute_service_ports(svc("a", cluster_ip="10.96.0.1", status=lb,
                                           ports=[{"port": 80, "node_port": 30001}]))
    assert cluster.node_port == 0 and cluster.load_balancer_ips == ()
    (balanced,) = compute_service_ports(svc("a", cluster_ip="10.96.0.1", type="LoadBalancer", status=lb,
                                            ports=[{"port": 80, "node_port": 30001}]))
    assert balanced.node_port == 30001 and balanced.load_balancer_ips == ("10.250.0.130",)


@pytest.mark.parametrize("config,expected", [
    pytest.param({}, DEFAULT_AFFINITY_SECONDS, id="default-timeout"),
    pytest.param({"client_ip": {"timeout_seconds": 30}}, 30, id="explicit-timeout"),
])
def test_client_ip_affinity_timeout(config: dict, expected: int) -> None:
    """ClientIP affinity uses timeoutSeconds, or Kubernetes' 3 hours when unset."""
    (port,) = compute_service_ports(svc("a", cluster_ip="10.96.0.1", session_affinity="ClientIP",
                                        session_affinity_config=config, ports=[{"port": 80}]))
    assert port.affinity_seconds == expected


def test_addresses_iptables_cannot_take_are_dropped() -> None:
    """IPv6 and malformed external IPs, bad protocols and ports are skipped instead of breaking the payload."""
    ports = compute_service_ports(svc("a", cluster_ip="10.96.0.1", external_ips=["fd00::1", "1.2.3", "192.0.2.1"],
                                      ports=[{"name": "ok", "port": 80}, {"name": "bad", "port": 81,
                                                                           "protocol": "ICMP"},
                                             {"name": "zero", "port": 0}]))
    assert [p.port_name for p in ports] == ["ok"]
    assert ports[0].external_ips == ("192.0.2.1",)


def test_only_ready_addresses_with_the_port_name_and_protocol() -> None:
    """Endpoints are the ready addresses of slices that carry the port's name and protocol, sorted numerically."""
    (port,) = compute_service_ports(svc("a", cluster_ip="10.96.0.1", ports=[{"name": "dns", "port": 53,
                                                                             "protocol": "UDP"}]))
    slices = [slice_of("a", subset(["10.244.1.10", "10.244.1.9"], ["10.244.1.11"], [("dns", 5353, "UDP")])),
              slice_of("a", subset(["10.244.2.1"], ports=[("dns-tcp", 53, "TCP")]), suffix="b"),
              slice_of("a", subset(["10.244.1.9", "not-an-ip"], ports=[("dns", 5353, "UDP")]), suffix="c")]
    assert compute_endpoints(slices, port).cluster == ("10.244.1.9:5353", "10.244.1.10:5353")
    assert compute_endpoints([], port).cluster == ()


@pytest.mark.parametrize(("ready", "terminating", "cluster", "local"), [
    pytest.param(["10.244.1.5", "10.244.2.5"], ["10.244.1.6"], ("10.244.1.5:80", "10.244.2.5:80"),
                 ("10.244.1.5:80",), id="ready-ones-first"),
    pytest.param(["10.244.2.5"], ["10.244.1.6"], ("10.244.2.5:80",), ("10.244.1.6:80",),
                 id="local-falls-back-to-terminating"),
    pytest.param([], ["10.244.1.6", "10.244.2.6"], ("10.244.1.6:80", "10.244.2.6:80"), ("10.244.1.6:80",),
                 id="only-terminating"),
    pytest.param([], [], (), (), id="none"),
])
def test_terminating_endpoints_serve_only_when_nothing_is_ready(ready: list[str], terminating: list[str],
                                                                cluster: tuple, local: tuple) -> None:
    """New connections go to ready endpoints; terminating ones that still serve are used only when none is ready,
    for the cluster-wide and the node-local choice separately (Kubernetes' ProxyTerminatingEndpoints)."""
    (port,) = compute_service_ports(svc("a", cluster_ip="10.96.0.1", ports=[{"port": 80}]))
    nodes = {ip: "n1" if ".1." in ip else "n2" for ip in [*ready, *terminating]}
    es = slice_of("a", subset(ready, terminating, [("", 80, "TCP")]), nodes=nodes, terminating=terminating)
    got = compute_endpoints([es], port, "n1")
    assert (got.cluster, got.local) == (cluster, local)
    assert got.serving == frozenset(ready + terminating)
