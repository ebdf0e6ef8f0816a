"""nftables mode rendering: each kind of Service's chains and map elements (golden text), and what a change writes."""
# ruff: noqa: E501  (golden lines are as long as `nft list` prints them)

from __future__ import annotations

import pytest

from proxy import nfnetlink, nftrules
from proxy.rules import Node
from proxy.services import compute_service_ports
from unit.proxy.objects import slice_of, subset, svc

N1 = Node("n1")


def state(*services: tuple, node: Node = N1) -> dict:
    return nftrules.compute_state([s for s, _ in services], [es for _, es in services], node)


def web(endpoints: list[str], **spec: object) -> tuple:
    spec.setdefault("ports", [{"name": "http", "port": 80}])
    spec.setdefault("cluster_ip", "10.96.0.5")
    return svc("web", **spec), slice_of("web", subset(endpoints, ports=[("http", 8080, "TCP")]),
                                        nodes={ip: "n1" if ".1." in ip else "n2" for ip in endpoints})


def chains_text(rules: nftrules.ServiceRules) -> dict[str, list[str]]:
    return {name: [nftrules.rule_text(r) for r in chain] for name, chain in rules.chains.items()}


def elements_text(rules: nftrules.ServiceRules) -> list[str]:
    return [f"{e.map}: {e.text()}" for e in rules.element_list()]


def test_cluster_ip_with_three_endpoints() -> None:
    """The cluster IP maps to the service chain, which marks hairpin traffic and picks an endpoint by a numgen
    cascade (1/3, then 1/2 of the rest, then the last)."""
    rules = state(web(["10.244.2.7", "10.244.1.5", "10.244.3.9"]))["default/web"]
    assert chains_text(rules) == {"service-CDGGSHYL-default/web/tcp/http": [
        "ip saddr 10.244.1.5 meta mark set meta mark | 0x00004000",
        "ip saddr 10.244.2.7 meta mark set meta mark | 0x00004000",
        "ip saddr 10.244.3.9 meta mark set meta mark | 0x00004000",
        "meta l4proto tcp numgen random mod 3 0 dnat to 10.244.1.5:8080",
        "meta l4proto tcp numgen random mod 2 0 dnat to 10.244.2.7:8080",
        "meta l4proto tcp dnat to 10.244.3.9:8080",
    ]}
    assert elements_text(rules) == [
        "service-ips: 10.96.0.5 . tcp . 80 : goto service-CDGGSHYL-default/web/tcp/http"]


def test_cluster_cidr_masquerades_traffic_from_outside_it() -> None:
    """With the cluster CIDR, traffic to the cluster IP from outside it is marked for masquerade first."""
    rules = state(web(["10.244.1.5"]), node=Node("n1", cluster_cidr="10.244.0.0/16"))["default/web"]
    assert chains_text(rules)["service-CDGGSHYL-default/web/tcp/http"][0] == (
        "ip daddr 10.96.0.5 tcp dport 80 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000")


def test_service_without_endpoints_is_rejected_by_the_filter_map() -> None:
    """No endpoint: an empty service chain, and the address and node port in the no-endpoint maps -> reject-chain."""
    rules = state(web([], type="NodePort", ports=[{"name": "http", "port": 80, "node_port": 30080}]))["default/web"]
    assert chains_text(rules) == {"external-CDGGSHYL-default/web/tcp/http": ["goto service-CDGGSHYL-default/web/tcp/http"],
                                  "service-CDGGSHYL-default/web/tcp/http": []}
    assert elements_text(rules) == [
        "no-endpoint-nodeports: tcp . 30080 : goto reject-chain",
        "no-endpoint-services: 10.96.0.5 . tcp . 80 : goto reject-chain",
        "service-ips: 10.96.0.5 . tcp . 80 : goto service-CDGGSHYL-default/web/tcp/http",
        "service-nodeports: tcp . 30080 : goto external-CDGGSHYL-default/web/tcp/http",
    ]


def test_local_load_balancer_with_source_ranges() -> None:
    """externalTrafficPolicy Local and source ranges: external traffic goes to the local chain (the node's own to
    the service chain, marked); the LB IP passes the firewall chain first; with no local endpoint the external
    addresses are dropped by the filter map."""
    rules = state(web(["10.244.2.8"], type="LoadBalancer", external_traffic_policy="Local",
                      load_balancer_source_ranges=["203.0.113.0/24", "10.1.0.0/16"],
                      ports=[{"name": "http", "port": 443, "node_port": 31443}],
                      status={"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}}))["default/web"]
    name = "default/web/tcp/http"
    assert chains_text(rules) == {
        f"firewall-CDGGSHYL-{name}": ["ip saddr 203.0.113.0/24 return", "ip saddr 10.1.0.0/16 return", "drop"],
        f"external-CDGGSHYL-{name}": ["fib saddr type local meta mark set meta mark | 0x00004000",
                                      f"fib saddr type local goto service-CDGGSHYL-{name}",
                                      f"goto local-CDGGSHYL-{name}"],
        f"service-CDGGSHYL-{name}": ["ip saddr 10.244.2.8 meta mark set meta mark | 0x00004000",
                                     "meta l4proto tcp dnat to 10.244.2.8:8080"],
        f"local-CDGGSHYL-{name}": [],
    }
    assert elements_text(rules) == [
        f"firewall-ips: 10.250.0.130 . tcp . 443 : goto firewall-CDGGSHYL-{name}",
        "no-endpoint-nodeports: tcp . 31443 : drop",
        "no-endpoint-services: 10.250.0.130 . tcp . 443 : drop",
        f"service-ips: 10.250.0.130 . tcp . 443 : goto external-CDGGSHYL-{name}",
        f"service-ips: 10.96.0.5 . tcp . 443 : goto service-CDGGSHYL-{name}",
        f"service-nodeports: tcp . 31443 : goto external-CDGGSHYL-{name}",
    ]


def test_client_ip_affinity_uses_endpoint_chains_and_sets() -> None:
    """ClientIP affinity: kube-proxy's shape, an endpoint chain that remembers the client in a timed set, and a
    service chain that sends a remembered client back first."""
    rules = state(web(["10.244.1.7", "10.244.2.7"], session_affinity="ClientIP",
                      session_affinity_config={"client_ip": {"timeout_seconds": 60}}))["default/web"]
    text = chains_text(rules)
    svc_chain = text["service-CDGGSHYL-default/web/tcp/http"]
    assert len(rules.sets) == 2 and set(rules.sets.values()) == {60}
    first, second = sorted(rules.sets)
    assert svc_chain[:2] == [f"ip saddr @{s} goto endpoint-{s.removeprefix('affinity-')}" for s in sorted(
        rules.sets, key=lambda s: s.endswith("10.244.2.7/8080"))]
    assert svc_chain[2].startswith("numgen random mod 2 0 goto endpoint-")
    endpoint = next(c for c in text if c.startswith("endpoint-") and c.endswith("10.244.1.7/8080"))
    assert text[endpoint] == ["ip saddr 10.244.1.7 meta mark set meta mark | 0x00004000",
                              f"update @affinity-{endpoint.removeprefix('endpoint-')} {{ ip saddr }}",
                              "meta l4proto tcp dnat to 10.244.1.7:8080"]
    assert first != second


def test_endpoint_change_rewrites_one_chain_and_no_map() -> None:
    """Replacing an endpoint: flush and rewrite the service chain, nothing else: no element, no other chain."""
    old = state(web(["10.244.1.5", "10.244.2.5"], type="NodePort",
                    ports=[{"name": "http", "port": 80, "node_port": 30080}]))
    new = state(web(["10.244.1.5", "10.244.3.5"], type="NodePort",
                    ports=[{"name": "http", "port": 80, "node_port": 30080}]))
    changes = nftrules.render_changes(old, new, ["default/web"])
    chain = "service-CDGGSHYL-default/web/tcp/http"
    assert changes.written == (chain,) and changes.elements == 0
    assert [op.text().split(" ip kubelite ")[0] for op in changes.ops] == ["flush chain"] + ["add rule"] * 4
    assert {op.name for op in changes.ops} == {chain}


def test_new_and_removed_services() -> None:
    """A new Service adds its chains before the elements that name them; a removed one deletes its elements
    before its chains."""
    empty: dict = {}
    added = nftrules.render_changes(empty, state(web(["10.244.1.5"])), ["default/web"])
    verbs = [f"{op.verb} {op.what}" for op in added.ops]
    assert verbs == ["add chain", "add rule", "add rule", "add element"]
    removed = nftrules.render_changes(state(web(["10.244.1.5"])), empty, ["default/web"])
    assert [f"{op.verb} {op.what}" for op in removed.ops] == ["flush chain", "delete element", "delete chain"]


def test_unchanged_service_writes_nothing() -> None:
    """The same objects render the same rules: no operation at all."""
    assert nftrules.render_changes(state(web(["10.244.1.5"])), state(web(["10.244.1.5"])), ["default/web"]).ops == ()


@pytest.mark.parametrize("spec", [
    pytest.param({}, id="cluster-ip"),
    pytest.param({"type": "LoadBalancer", "external_traffic_policy": "Local",
                  "load_balancer_source_ranges": ["203.0.113.0/24", "10.1.0.0/20"],
                  "ports": [{"name": "http", "port": 80, "node_port": 30080}],
                  "status": {"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}}}, id="local-lb-ranges"),
    pytest.param({"session_affinity": "ClientIP"}, id="affinity"),
    pytest.param({"internal_traffic_policy": "Local", "ports": [{"name": "http", "port": 80, "protocol": "UDP"}]},
                 id="internal-local-udp"),
])
def test_every_statement_encodes_for_netlink(spec: dict) -> None:
    """Every rule the renderer writes has a netlink encoding: a full sync of it is one batch."""
    rules = state(web(["10.244.1.5", "10.244.2.5"], **spec), node=Node("n1", cluster_cidr="10.244.0.0/16"))
    batch = nfnetlink.encode(nftrules.service_ops(rules))
    data, count = nfnetlink.serialize(batch)
    assert count == len(batch.messages) > 0 and len(data) > count * 20


def test_compute_service_ports_feeds_both_modes() -> None:
    """Both renderers take the same ServicePorts (the mode-independent reading of a Service)."""
    (sp,) = compute_service_ports(web(["10.244.1.5"])[0])
    assert nftrules.chain_names(sp)["service"] == "service-CDGGSHYL-default/web/tcp/http"
