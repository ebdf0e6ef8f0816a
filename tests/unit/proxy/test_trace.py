"""Packets traced through rendered rules (no kernel): which chain, which DNAT, masquerade or REJECT."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import chains
from proxy.rules import Node, render_rules
from unit.proxy.objects import slice_of, subset, svc
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
    return Ruleset(render_rules([svc("web", **spec)], [slice_of("web", subset(ready(n), ["10.244.9.9"],
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
                              [slice_of("web", subset(ready(2), ports=[("http", 8080, "TCP")]))], N1))
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
                              [slice_of("web", subset(["10.244.2.10"], ports=[("http", 8080, "TCP")]))],
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
        endpoints.append(slice_of(f"s{i}", subset(ips[:n_ready], ips[n_ready:], [("p", 8000 + i, proto)])))
    rs = Ruleset(render_rules(services, endpoints, N1))
    for i, (n_ready, _, proto) in enumerate(spec):
        outcomes = rs.trace(Packet(POD, f"10.96.3.{i + 1}", 80, proto=proto.lower()))
        if n_ready == 0:
            assert [o.verdict for o in outcomes] == ["REJECT"]
            continue
        dist = distribution(outcomes)
        assert set(dist) == {f"10.244.{i + 1}.{j + 1}:{8000 + i}" for j in range(n_ready)}
        assert all(p == pytest.approx(1 / n_ready, abs=1e-8) for p in dist.values())


# Endpoints on this node (n1: 10.244.1.x) and elsewhere.
LOCAL_EP, REMOTE_EP = "10.244.1.10", "10.244.2.10"


def policy(*, endpoints: list[str], terminating: list[str] = (), **spec: object) -> Ruleset:
    spec.setdefault("ports", [{"name": "http", "port": 80, "node_port": 30080}])
    spec.setdefault("cluster_ip", "10.96.0.5")
    spec.setdefault("type", "NodePort")
    status = spec.pop("status", None)
    ready_ips = [ip for ip in endpoints if ip not in terminating]
    nodes = {ip: "n1" if ip.startswith("10.244.1.") else "n2" for ip in endpoints}
    es = slice_of("web", subset(ready_ips, list(terminating), [("http", 8080, "TCP")]), nodes=nodes,
                  terminating=terminating)
    return Ruleset(render_rules([svc("web", status=status, **spec)], [es], N1))


@pytest.mark.parametrize(("endpoints", "want"), [
    pytest.param([LOCAL_EP, REMOTE_EP], {f"{LOCAL_EP}:8080": pytest.approx(1.0)}, id="local-endpoint-only"),
    pytest.param([REMOTE_EP], None, id="no-local-endpoint-drops"),
])
def test_external_traffic_policy_local(endpoints: list[str], want: dict | None) -> None:
    """externalTrafficPolicy Local: a node port reaches only this node's endpoints, unmasqueraded (the endpoint sees
    the client); with none here the connection is dropped, while the cluster IP still reaches every endpoint."""
    rs = policy(endpoints=endpoints, external_traffic_policy="Local")
    outcomes = rs.trace(Packet(OUTSIDE, NODE_IP, 30080), local=[NODE_IP])
    if want is None:
        assert [(o.verdict, o.dnat) for o in outcomes] == [("DROP", None)]
    else:
        assert distribution(outcomes) == want
        assert not any(o.masquerade for o in outcomes)
    inside = distribution(rs.trace(Packet(POD, "10.96.0.5", 80)))
    assert set(inside) == {f"{ip}:8080" for ip in endpoints}


def test_external_local_from_the_node_itself_goes_anywhere() -> None:
    """The node's own connection to its node port is masqueraded and may reach any endpoint (kube-proxy's LOCAL
    traffic rule), even with no endpoint on the node."""
    rs = policy(endpoints=[REMOTE_EP], external_traffic_policy="Local")
    outcomes = rs.trace(Packet(NODE_IP, NODE_IP, 30080), local=[NODE_IP], output=True)
    assert distribution(outcomes) == {f"{REMOTE_EP}:8080": pytest.approx(1.0)}
    assert all(o.masquerade for o in outcomes)


def test_pod_traffic_short_circuits_with_a_cluster_cidr() -> None:
    """Given the cluster CIDR, a pod's connection to an external address of a Local Service goes to any endpoint."""
    rs = Ruleset(render_rules([svc("web", cluster_ip="10.96.0.5", type="NodePort", external_traffic_policy="Local",
                                   ports=[{"name": "http", "port": 80, "node_port": 30080}])],
                              [slice_of("web", subset([REMOTE_EP], ports=[("http", 8080, "TCP")]),
                                        nodes={REMOTE_EP: "n2"})],
                              Node("n1", cluster_cidr="10.244.0.0/16")))
    assert distribution(rs.trace(Packet(POD, NODE_IP, 30080), local=[NODE_IP])) == {
        f"{REMOTE_EP}:8080": pytest.approx(1.0)}


@pytest.mark.parametrize(("endpoints", "want"), [
    pytest.param([LOCAL_EP, REMOTE_EP], {f"{LOCAL_EP}:8080": pytest.approx(1.0)}, id="local-endpoint-only"),
    pytest.param([REMOTE_EP], None, id="no-local-endpoint-drops"),
])
def test_internal_traffic_policy_local(endpoints: list[str], want: dict | None) -> None:
    """internalTrafficPolicy Local: the cluster IP reaches only this node's endpoints; with none here it is
    dropped (not rejected: the Service has endpoints, just not here)."""
    rs = policy(endpoints=endpoints, type="ClusterIP", internal_traffic_policy="Local",
                ports=[{"name": "http", "port": 80}])
    outcomes = rs.trace(Packet(POD, "10.96.0.5", 80))
    if want is None:
        assert [(o.verdict, o.dnat) for o in outcomes] == [("DROP", None)]
    else:
        assert distribution(outcomes) == want


@pytest.mark.parametrize(("source", "verdict"), [
    pytest.param("203.0.113.7", "ACCEPT", id="inside-range"),
    pytest.param(OUTSIDE, "DROP", id="outside-range"),
])
def test_load_balancer_source_ranges(source: str, verdict: str) -> None:
    """loadBalancerSourceRanges: the load-balancer IP takes connections only from the ranges; the node port and the
    cluster IP are not filtered."""
    rs = policy(endpoints=[REMOTE_EP], type="LoadBalancer", load_balancer_source_ranges=["203.0.113.0/24"],
                status={"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}})
    outcomes = rs.trace(Packet(source, "10.250.0.130", 80))
    assert [o.verdict for o in outcomes] == [verdict]
    assert (outcomes[0].dnat is not None) == (verdict == "ACCEPT")
    assert [o.verdict for o in rs.trace(Packet(OUTSIDE, NODE_IP, 30080), local=[NODE_IP])] == ["ACCEPT"]


def test_terminating_endpoints_serve_when_none_is_ready() -> None:
    """While a ready endpoint exists, terminating ones get no new connection; without one, they do."""
    both = policy(endpoints=[LOCAL_EP, REMOTE_EP], terminating=[REMOTE_EP], type="ClusterIP",
                  ports=[{"name": "http", "port": 80}])
    assert distribution(both.trace(Packet(POD, "10.96.0.5", 80))) == {f"{LOCAL_EP}:8080": pytest.approx(1.0)}
    only = policy(endpoints=[REMOTE_EP], terminating=[REMOTE_EP], type="ClusterIP",
                  ports=[{"name": "http", "port": 80}])
    assert distribution(only.trace(Packet(POD, "10.96.0.5", 80))) == {f"{REMOTE_EP}:8080": pytest.approx(1.0)}
