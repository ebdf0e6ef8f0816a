"""Service address and port allocation: picking free values, the claims a Service holds, range checks."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pb import core_pb2
from apiserver import allocator


def test_ranges_parse() -> None:
    """Flags parse into a CIDR, an inclusive port range and an optional LB pool."""
    r = allocator.Ranges.parse("10.96.0.0/16", "30000-32767", "")
    assert r.service_cidr == ipaddress.ip_network("10.96.0.0/16")
    assert r.node_ports == (30000, 32767)
    assert r.lb_pool is None
    assert allocator.Ranges.parse("10.0.0.0/24", "31000", "192.168.1.0/28").node_ports == (31000, 31000)


@pytest.mark.parametrize(("cidr", "ports"), [
    pytest.param("10.96.0.0/33", "30000-32767", id="bad-prefix"),
    pytest.param("10.96.0.1/16", "30000-32767", id="host-bits-set"),
    pytest.param("10.96.0.0/16", "a-b", id="bad-ports"),
])
def test_ranges_parse_rejects_bad_flags(cidr: str, ports: str) -> None:
    """Malformed range flags are refused at start, not at the first Service."""
    with pytest.raises(ValueError):
        allocator.Ranges.parse(cidr, ports, "")


def test_pick_ip_skips_reserved_addresses() -> None:
    """The network address, .1 (the apiserver's own service) and the broadcast address are never handed out."""
    net = ipaddress.ip_network("10.0.0.0/29")  # .0 .. .7
    rng = random.Random(1)
    taken: set[str] = set()
    for _ in range(5):
        taken.add(allocator.pick_ip(net, taken, rng))
    assert taken == {f"10.0.0.{i}" for i in range(2, 7)}
    with pytest.raises(allocator.ExhaustedError, match=r"range 10\.0\.0\.0/29 is full"):
        allocator.pick_ip(net, taken, rng)


def test_pick_ip_finds_the_last_free_address_in_a_dense_range() -> None:
    """In an almost-full range the one free address is found (random probing falls back to a scan)."""
    net = ipaddress.ip_network("10.0.0.0/22")
    hosts = [str(ipaddress.ip_address(n)) for n in range(int(net.network_address) + 2,
                                                             int(net.broadcast_address))]
    free = hosts[517]
    assert allocator.pick_ip(net, set(hosts) - {free}, random.Random(0)) == free


@given(st.sets(st.integers(30000, 30099), max_size=99), st.integers(0, 2**32))
def test_pick_port_never_returns_a_taken_port(taken: set[int], seed: int) -> None:
    """Whatever is taken, the picked port is free and inside the range."""
    port = allocator.pick_port(30000, 30099, taken, random.Random(seed))
    assert 30000 <= port <= 30099 and port not in taken


def test_pick_port_full_range() -> None:
    """A full port range is refused naming the range."""
    with pytest.raises(allocator.ExhaustedError, match="range 30000-30001 is full"):
        allocator.pick_port(30000, 30001, {30000, 30001}, random.Random(0))


def _svc(type_: str = "ClusterIP", ip: str = "", node_ports: tuple[int, ...] = (), lb: tuple[str, ...] = (),
         allocate_lb_ports: bool | None = None) -> core_pb2.Service:
    svc = core_pb2.Service(spec={"type": type_, "cluster_ip": ip})
    for i, p in enumerate(node_ports or (0,)):
        svc.spec.ports.add(port=80 + i, node_port=p, protocol="UDP" if i == 1 else "TCP")
    for addr in lb:  # allocated by the apiserver; the status is the announcing node's
        svc.metadata.annotations["kubelite.io/load-balancer-ip"] = addr
    if allocate_lb_ports is not None:
        svc.spec.allocate_load_balancer_node_ports = allocate_lb_ports
    return svc


@pytest.mark.parametrize(("svc", "keys"), [
    pytest.param(_svc(ip="10.96.0.10"), {"/registry/ranges/serviceips/10.96.0.10"}, id="cluster-ip"),
    pytest.param(_svc(ip="None"), set(), id="headless"),
    pytest.param(_svc("NodePort", "10.96.0.11", (30001, 30002)),
                 {"/registry/ranges/serviceips/10.96.0.11", "/registry/ranges/nodeports/tcp/30001",
                  "/registry/ranges/nodeports/udp/30002"}, id="node-ports-by-protocol"),
    pytest.param(_svc("LoadBalancer", "10.96.0.12", (30003,), ("192.168.1.5",)),
                 {"/registry/ranges/serviceips/10.96.0.12", "/registry/ranges/nodeports/tcp/30003",
                  "/registry/ranges/lbips/192.168.1.5"}, id="load-balancer"),
    pytest.param(_svc("ExternalName"), set(), id="external-name"),
])
def test_claims(svc: core_pb2.Service, keys: set[str]) -> None:
    """A Service claims one etcd key per address and node port it holds."""
    assert allocator.claims(svc) == keys


@pytest.mark.parametrize(("svc", "needs"), [
    pytest.param(_svc("ClusterIP"), False, id="cluster-ip"),
    pytest.param(_svc("NodePort"), True, id="node-port"),
    pytest.param(_svc("LoadBalancer"), True, id="load-balancer-default"),
    pytest.param(_svc("LoadBalancer", allocate_lb_ports=False), False, id="load-balancer-without-node-ports"),
])
def test_needs_node_ports(svc: core_pb2.Service, needs: bool) -> None:
    """NodePort and (by default) LoadBalancer services get node ports; others do not."""
    assert allocator.needs_node_ports(svc) is needs


RANGES = allocator.Ranges.parse("10.96.0.0/16", "30000-32767", "")


@pytest.mark.parametrize(("svc", "errors"), [
    pytest.param(_svc(ip="10.96.3.4"), [], id="ip-inside"),
    pytest.param(_svc(ip="10.97.0.1"), ["spec.clusterIP: Invalid value: '10.97.0.1': provided IP is not in the valid "
                                        "range. The range of valid IPs is 10.96.0.0/16"], id="ip-outside"),
    pytest.param(_svc(ip="not-an-ip"), [], id="malformed-ip-left-to-validation"),
    pytest.param(_svc("NodePort", node_ports=(30000, 32767)), [], id="ports-at-the-edges"),
    pytest.param(_svc("NodePort", node_ports=(8080,)), ["spec.ports[0].nodePort: Invalid value: 8080: provided port "
                                                        "is not in the valid range. The range of valid ports is "
                                                        "30000-32767"], id="port-outside"),
])
def test_check_requested(svc: core_pb2.Service, errors: list[str]) -> None:
    """Requested addresses and ports outside the configured ranges are refused naming the field and the range."""
    assert [str(e) for e in allocator.check_requested(svc, RANGES)] == errors


@pytest.mark.parametrize(("text", "addresses"), [
    pytest.param("10.250.0.128/30", {"10.250.0.129", "10.250.0.130"}, id="cidr-without-network-and-broadcast"),
    pytest.param("10.0.0.5-10.0.0.7", {"10.0.0.5", "10.0.0.6", "10.0.0.7"}, id="inclusive-range"),
    pytest.param("10.0.0.9/32,10.0.1.1-10.0.1.2", {"10.0.0.9", "10.0.1.1", "10.0.1.2"}, id="several-entries"),
])
def test_lb_pool_hands_out_every_address_once(text: str, addresses: set[str]) -> None:
    """A pool of CIDRs and ranges yields each of its addresses, then says it is full."""
    pool = allocator.Pool.parse(text)
    taken: set[str] = set()
    for _ in addresses:
        taken.add(pool.pick(taken, random.Random(3)))
    assert taken == addresses and all(a in pool for a in addresses)
    with pytest.raises(allocator.ExhaustedError, match=r"pool .* is full"):
        pool.pick(taken, random.Random(3))


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("10.0.0.0/33", "10.0.0.0/33", id="bad-prefix"),
    pytest.param("10.0.0.9-10.0.0.1", "below the first", id="reversed-range"),
    pytest.param("10.0.0.0/24,10.0.0.5-10.0.0.6", "overlaps", id="overlap"),
    pytest.param("10.0.0.0/24,", "empty entry", id="empty-entry"),
    pytest.param("ten", "'ten'", id="not-an-address"),
])
def test_lb_pool_rejects_bad_flags(text: str, message: str) -> None:
    """A malformed --lb-pool is refused at start, naming the entry."""
    with pytest.raises(ValueError, match=message):
        allocator.Pool.parse(text)
