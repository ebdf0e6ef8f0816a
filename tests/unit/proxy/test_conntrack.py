"""Which UDP conntrack entries are forgotten after a sync."""

from __future__ import annotations

from proxy import conntrack
from proxy.rules import Node, compute_state
from unit.proxy.objects import slice_of, subset, svc


def state(endpoints: list[str], protocol: str = "UDP") -> dict:
    return compute_state(
        [svc("dns", "kube-system", cluster_ip="10.96.0.10", type="NodePort",
             ports=[{"name": "dns", "port": 53, "protocol": protocol, "node_port": 30053}])],
        [slice_of("dns", subset(endpoints, ports=[("dns", 53, protocol)]), ns="kube-system")], Node("n1"))


def test_removed_udp_endpoint_is_forgotten_for_cluster_ip_and_node_port() -> None:
    """A UDP endpoint that left gets its entries deleted, for the cluster IP and the node port."""
    cmds = conntrack.plan(state(["10.250.0.2", "10.250.0.3"]), state(["10.250.0.3"]), ["kube-system/dns"])
    assert cmds == [
        ["conntrack", "-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
         "--dst-nat", "10.250.0.2"],
        ["conntrack", "-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.250.0.2"],
    ]


def test_added_endpoints_and_tcp_need_nothing() -> None:
    """New endpoints, unchanged ones and TCP services leave conntrack alone."""
    assert conntrack.plan(state(["10.250.0.2"]), state(["10.250.0.2", "10.250.0.3"]), ["kube-system/dns"]) == []
    assert conntrack.plan(state(["10.250.0.2"], "TCP"), state([], "TCP"), ["kube-system/dns"]) == []


def test_deleted_service_forgets_all_its_endpoints() -> None:
    """When the Service goes, every endpoint's entries go."""
    cmds = conntrack.plan(state(["10.250.0.2"]), {}, ["kube-system/dns"])
    assert len(cmds) == 2 and all(c[-1] == "10.250.0.2" for c in cmds)
