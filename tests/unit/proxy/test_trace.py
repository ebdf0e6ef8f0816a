"""Packets traced through rendered rules (no kernel): which chain, which DNAT, masquerade or REJECT."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import chains
from proxy.rules import Node, render_rules
from unit.proxy.objects import eps, subset, svc
from unit.proxy.tracer import Packet, Ruleset, distribution

N1 = Node("n1")
POD = "10.244.1.50"  # a client pod on this node
NODE_IP = "10.250.0.11"
OUTSIDE = "10.250.0.1"


def ready(n: int) -> list[str]:
    return [f"10.244.{i % 3 + 1}.{10 + i}" for i in range(n)]


def web(n: int, **spec: object) -> Ruleset:
    spec.setdefault("ports", [{"name": "http", "port": 80, "node_port": 30080}])
    spec.setdefault("cluster_ip", "10.96.0.5")
    return Ruleset(render_rules([svc("web", **spec)], [eps("web", subset(ready(n), ["10.244.9.9"],
                                                                         [("http", 8080, "TCP")]))], N1))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_every_ready_endpoint_is_reached_with_probability_one_nth(n: int) -> None:
    """Over all statistic branches each of n endpoints gets exactly 1/n, and the not-ready one nothing."""
    rs = web(n)
    dist = distribution(rs.trace(Packet(POD, "10.96.0.5", 80)))
    assert set(dist) == {f"{ip}:8080" for ip in ready(n)}
    for p in dist.values():
        assert p == pytest.approx(1 / n, abs=1e-8)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_statistic_probabilities_are_one_over_n_minus_i(n: int) -> None:
    """The i-th endpoint rule of KUBE-SVC has probability 1/(n-i); the last has none (unconditional)."""
    rs = web(n)
    svc_chain = chains.service_chain("default/web:http", "TCP")
    rules = rs.tables["nat"][svc_chain]
    assert len(rules) == n
    for i, rule in enumerate(rules[:-1]):
        assert rule.probability == pytest.approx(1 / (n - i), abs=1e-9)
    assert rules[-1].probability is None


def test_cluster_ip_path_goes_through_svc_and_sep_chains() -> None:
    """A pod's packet to the cluster IP goes KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP: DNAT, no masquerade."""
    (outcome,) = web(1).trace(Packet(POD, "10.96.0.5", 80))
    sep = chains.endpoint_chain("default/web:http", "TCP", "10.244.1.10:8080")
    assert outcome.chains[:4] == ("PREROUTING", "KUBE-SERVICES", chains.service_chain("default/web:http", "TCP"), sep)
    assert outcome.dnat == "10.244.1.10:8080"
    assert outcome.verdict == "ACCEPT"
    assert not outcome.masquerade


def test_node_port_on_a_local_address_is_dnated_and_masqueraded() -> None:
    """A node port on one of the node's addresses goes KUBE-NODEPORTS -> KUBE-EXT (masquerade) -> an endpoint."""
    outcomes = web(3, type="NodePort").trace(Packet(OUTSIDE, NODE_IP, 30080), local=[NODE_IP])
    assert set(distribution(outcomes)) == {f"{ip}:8080" for ip in ready(3)}
    assert all(o.masquerade and "KUBE-NODEPORTS" in o.chains for o in outcomes)


def test_node_port_on_a_foreign_address_is_left_alone() -> None:
    """The node port only applies to the node's own (LOCAL) addresses."""
    outcomes = web(3, type="NodePort").trace(Packet(OUTSIDE, "10.250.0.12", 30080), local=[NODE_IP])
    assert distribution(outcomes) == {None: pytest.approx(1.0)}


def test_node_port_is_not_opened_for_a_cluster_ip_service() -> None:
    """A ClusterIP Service has no node port even if the port carries one."""
    outcomes = web(2, type="ClusterIP").trace(Packet(OUTSIDE, NODE_IP, 30080), local=[NODE_IP])
    assert distribution(outcomes) == {None: pytest.approx(1.0)}


@pytest.mark.parametrize("address,spec", [
    pytest.param("192.0.2.10", {"external_ips": ["192.0.2.10"]}, id="external-ip"),
    pytest.param("10.250.0.130", {"type": "LoadBalancer",
                                  "status": {"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}}}, id="lb-ip"),
])
def test_external_addresses_are_dnated_and_masqueraded(address: str, spec: dict) -> None:
    """External and load-balancer IPs reach the endpoints through KUBE-EXT, masqueraded."""
    status = spec.pop("status", None)
    rs = Ruleset(render_rules([svc("web", cluster_ip="10.96.0.5", status=status,
                                   ports=[{"name": "http", "port": 80, "node_port": 30080}], **spec)],
                              [eps("web", subset(ready(2), ports=[("http", 8080, "TCP")]))], N1))
    outcomes = rs.trace(Packet(OUTSIDE, address, 80))
    assert set(distribution(outcomes)) == {f"{ip}:8080" for ip in ready(2)}
    assert all(o.masquerade for o in outcomes)


def test_hairpin_traffic_is_masqueraded() -> None:
    """An endpoint that reaches itself through the service is masqueraded so the reply comes back to the service IP."""
    (outcome,) = web(1).trace(Packet("10.244.1.10", "10.96.0.5", 80))
    assert outcome.dnat == "10.244.1.10:8080"
    assert outcome.masquerade


@pytest.mark.parametrize("packet,local,output", [
    pytest.param(Packet(POD, "10.96.0.5", 80), (), False, id="cluster-ip-from-pod"),
    pytest.param(Packet(NODE_IP, "10.96.0.5", 80), (NODE_IP,), True, id="cluster-ip-from-node"),
    pytest.param(Packet(OUTSIDE, NODE_IP, 30080), (NODE_IP,), False, id="node-port"),
    pytest.param(Packet(OUTSIDE, "192.0.2.10", 80), (), False, id="external-ip"),
])
def test_service_without_endpoints_is_rejected(packet: Packet, local: tuple[str, ...], output: bool) -> None:
    """A new connection to any address of a service port without ready endpoints is REJECTed, never DNATed."""
    rs = web(0, type="NodePort", external_ips=["192.0.2.10"])
    outcomes = rs.trace(packet, local=local, output=output)
    assert [o.verdict for o in outcomes] == ["REJECT"]
    assert outcomes[0].dnat is None


def test_other_ports_of_the_cluster_ip_fall_through() -> None:
    """Only the service's own port and protocol are DNATed."""
    rs = web(2)
    assert distribution(rs.trace(Packet(POD, "10.96.0.5", 81))) == {None: pytest.approx(1.0)}
    assert distribution(rs.trace(Packet(POD, "10.96.0.5", 80, proto="udp"))) == {None: pytest.approx(1.0)}


def test_client_ip_affinity_sticks_to_the_first_choice() -> None:
    """After a first connection, the same client always gets the same endpoint; another client still gets any."""
    rs = web(3, session_affinity="ClientIP")
    first = rs.trace(Packet(POD, "10.96.0.5", 80))
    assert len(first) == 3
    for outcome in first:
        again = rs.trace(Packet(POD, "10.96.0.5", 80), recent=outcome.recent)
        assert distribution(again) == {outcome.dnat: pytest.approx(1.0)}
        other = rs.trace(Packet("10.244.2.99", "10.96.0.5", 80), recent=outcome.recent)
        assert len(distribution(other)) == 3


def test_cluster_cidr_masquerades_only_non_pod_sources() -> None:
    """With --cluster-cidr, a node-local client is masqueraded and a pod is not."""
    rs = Ruleset(render_rules([svc("web", cluster_ip="10.96.0.5", ports=[{"name": "http", "port": 80}])],
                              [eps("web", subset(["10.244.2.10"], ports=[("http", 8080, "TCP")]))],
                              Node("n1", cluster_cidr="10.244.0.0/16")))
    (from_node,) = rs.trace(Packet(NODE_IP, "10.96.0.5", 80), local=[NODE_IP], output=True)
    (from_pod,) = rs.trace(Packet(POD, "10.96.0.5", 80))
    assert from_node.dnat == from_pod.dnat == "10.244.2.10:8080"
    assert from_node.masquerade and not from_pod.masquerade


services_strategy = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 2), st.sampled_from(["TCP", "UDP"])),
    min_size=1, max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(services_strategy)
def test_every_service_reaches_exactly_its_ready_endpoints(spec: list[tuple[int, int, str]]) -> None:
    """For any mix of services, each cluster IP is DNATed to exactly its ready endpoints, uniformly, or rejected."""
    services, endpoints = [], []
    for i, (n_ready, n_unready, proto) in enumerate(spec):
        services.append(svc(f"s{i}", cluster_ip=f"10.96.3.{i + 1}", ports=[{"name": "p", "port": 80,
                                                                            "protocol": proto}]))
        ips = [f"10.244.{i + 1}.{j + 1}" for j in range(n_ready + n_unready)]
        endpoints.append(eps(f"s{i}", subset(ips[:n_ready], ips[n_ready:], [("p", 8000 + i, proto)])))
    rs = Ruleset(render_rules(services, endpoints, N1))
    for i, (n_ready, _, proto) in enumerate(spec):
        outcomes = rs.trace(Packet(POD, f"10.96.3.{i + 1}", 80, proto=proto.lower()))
        if n_ready == 0:
            assert [o.verdict for o in outcomes] == ["REJECT"]
            continue
        dist = distribution(outcomes)
        assert set(dist) == {f"10.244.{i + 1}.{j + 1}:{8000 + i}" for j in range(n_ready)}
        assert all(p == pytest.approx(1 / n_ready, abs=1e-8) for p in dist.values())
