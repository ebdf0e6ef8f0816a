"""The lab plan: names, addresses, routes and paths of a cluster, computed without touching the machine."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.lab.plan import (
    MAX_CLUSTER_NAME,
    MAX_NODES,
    LabPlanError,
    Route,
    parse_netns,
    plan_lab,
    validate_cluster_name,
)


def test_three_node_plan_names_and_addresses() -> None:
    """A 3-node cluster gets the documented namespaces, interfaces and addresses."""
    plan = plan_lab("demo", 3)
    assert plan.lab_netns == "kl-demo-lab"
    assert plan.bridge == "demo-br"
    assert plan.lab_subnet == IPv4Network("10.250.0.0/24")
    cp = plan.control_plane
    assert (cp.netns, cp.lab_port, cp.iface, cp.address) == (
        "kl-demo-cp",
        "demo-cp",
        "lab0",
        IPv4Address("10.250.0.2"),
    )
    assert [(n.role, n.netns, n.lab_port, str(n.address), str(n.pod_cidr), str(n.pod_gateway)) for n in plan.nodes] == [
        ("n1", "kl-demo-n1", "demo-n1", "10.250.0.11", "10.244.1.0/24", "10.244.1.1"),
        ("n2", "kl-demo-n2", "demo-n2", "10.250.0.12", "10.244.2.0/24", "10.244.2.1"),
        ("n3", "kl-demo-n3", "demo-n3", "10.250.0.13", "10.244.3.0/24", "10.244.3.1"),
    ]
    assert plan.netns_names == ("kl-demo-lab", "kl-demo-cp", "kl-demo-n1", "kl-demo-n2", "kl-demo-n3")
    assert plan.service_cidr == IPv4Network("10.96.0.0/16")
    assert plan.dns_service_ip == IPv4Address("10.96.0.10")
    assert plan.cluster_cidr == IPv4Network("10.244.0.0/16")
    assert plan.dns_service_ip in plan.service_cidr


def test_nodes_route_every_other_pod_cidr_via_its_node() -> None:
    """host-gw: each node routes each other node's pod CIDR via that node's lab address, never its own."""
    plan = plan_lab("demo", 3)
    assert plan.node("n2").routes == (
        Route(IPv4Network("10.244.1.0/24"), IPv4Address("10.250.0.11")),
        Route(IPv4Network("10.244.3.0/24"), IPv4Address("10.250.0.13")),
    )
    for node in plan.nodes:
        assert all(route.dest != node.pod_cidr for route in node.routes)
        assert all(route.dest in {n.pod_cidr for n in plan.nodes} for route in node.routes)


def test_control_plane_routes_every_pod_cidr() -> None:
    """The control plane can answer pods (DNS behind a service IP), so it routes all pod CIDRs."""
    plan = plan_lab("demo", 2)
    assert plan.control_plane.routes == (
        Route(IPv4Network("10.244.1.0/24"), IPv4Address("10.250.0.11")),
        Route(IPv4Network("10.244.2.0/24"), IPv4Address("10.250.0.12")),
    )


def test_sysctls_per_namespace_kind() -> None:
    """Nodes forward, pass bridged frames to iptables and send no redirects; the lab bridge and control plane
    do neither."""
    plan = plan_lab("demo", 1)
    assert dict(plan.node("n1").sysctls) == {
        "net.ipv4.ip_forward": "1",
        "net.bridge.bridge-nf-call-iptables": "1",
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.conf.default.send_redirects": "0",
    }
    assert dict(plan.lab_sysctls) == {"net.ipv4.ip_forward": "0", "net.bridge.bridge-nf-call-iptables": "0"}
    assert dict(plan.control_plane.sysctls) == {"net.ipv4.ip_forward": "0"}


def test_paths_default_and_configurable_roots(tmp_path: Path) -> None:
    """State lives under /run/kubelite and /var/lib/kubelite by default, under given roots in tests."""
    default = plan_lab("demo", 1).paths
    assert default.run_dir == Path("/run/kubelite/demo")
    assert default.pid_dir == Path("/run/kubelite/demo/pids")
    assert default.data_dir == Path("/var/lib/kubelite/demo")
    assert default.log_dir == Path("/var/lib/kubelite/demo/logs")
    custom = plan_lab("demo", 1, run_root=tmp_path / "run", data_root=tmp_path / "data").paths
    assert custom.pid_dir == tmp_path / "run" / "demo" / "pids"
    assert custom.log_dir == tmp_path / "data" / "demo" / "logs"


def test_cgroups_are_per_cluster() -> None:
    """Daemons and pods of a cluster share one cgroup subtree named after it."""
    plan = plan_lab("demo", 2)
    assert plan.cgroup == "kubelite/demo"
    assert plan.node("n2").cgroup_parent == "/kubelite/demo/pods/n2"


def test_zero_nodes_is_a_control_plane_only_lab() -> None:
    """A cluster without nodes still has its lab and control-plane namespaces."""
    plan = plan_lab("demo", 0)
    assert plan.nodes == ()
    assert plan.netns_names == ("kl-demo-lab", "kl-demo-cp")
    assert plan.control_plane.routes == ()


def test_largest_plan_fits_interface_names_and_subnet() -> None:
    """The longest cluster name with the most nodes still makes valid interface names and addresses."""
    plan = plan_lab("a" * MAX_CLUSTER_NAME, MAX_NODES)
    names = [plan.bridge, *(m.lab_port for m in plan.members), *(m.iface for m in plan.members)]
    assert max(len(name) for name in names) <= 15
    addresses = [m.address for m in plan.members]
    assert len(set(addresses)) == len(addresses)
    assert all(address in plan.lab_subnet for address in addresses)
    assert max(addresses) < plan.lab_subnet.broadcast_address
    assert len({n.pod_cidr for n in plan.nodes}) == MAX_NODES
    assert all(n.pod_cidr.subnet_of(plan.cluster_cidr) for n in plan.nodes)


def test_node_lookup_of_unknown_role_fails() -> None:
    """Asking for a node the plan does not have names the cluster and the role."""
    with pytest.raises(LabPlanError, match="'demo' has no node 'n4'"):
        plan_lab("demo", 3).node("n4")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("", "invalid", id="empty"),
        pytest.param("Demo", "invalid", id="uppercase"),
        pytest.param("1demo", "invalid", id="leading-digit"),
        pytest.param("demo-", "invalid", id="trailing-dash"),
        pytest.param("de_mo", "invalid", id="underscore"),
        pytest.param("de.mo", "invalid", id="dot"),
        pytest.param("a" * (MAX_CLUSTER_NAME + 1), "at most 10 fit", id="too-long"),
    ],
)
def test_invalid_cluster_names_are_refused(name: str, message: str) -> None:
    """Cluster names that cannot become DNS labels and short interface names raise a clear error."""
    with pytest.raises(LabPlanError, match=message):
        plan_lab(name, 1)


@pytest.mark.parametrize("name", ["a", "demo", "kltest0f3a", "a-b-c", "x9"])
def test_valid_cluster_names_are_accepted(name: str) -> None:
    """Short lowercase DNS-label-like names are accepted."""
    validate_cluster_name(name)


@pytest.mark.parametrize("nodes", [-1, MAX_NODES + 1])
def test_node_count_out_of_range_is_refused(nodes: int) -> None:
    """A node count that does not fit the lab subnet raises, naming the allowed range."""
    with pytest.raises(LabPlanError, match=f"0..{MAX_NODES}"):
        plan_lab("demo", nodes)


@pytest.mark.parametrize(
    "name",
    ["kl-demo", "kl-demo-n0", "kl-demo-n01", "kl-demo-x", "kl--lab", "xx-demo-lab", "kl-Demo-lab", "kl-demo-lab-"],
)
def test_foreign_namespace_names_do_not_parse(name: str) -> None:
    """Names the lab would not make are not mistaken for a cluster's namespaces."""
    assert parse_netns(name) is None


_cluster_names = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(cluster=_cluster_names, nodes=st.integers(min_value=0, max_value=12))
def test_every_planned_namespace_parses_back_to_its_cluster(cluster: str, nodes: int) -> None:
    """Stale detection can attribute each namespace name to exactly the cluster that made it."""
    plan = plan_lab(cluster, nodes)
    parsed = [parse_netns(name) for name in plan.netns_names]
    assert parsed == [(cluster, "lab"), (cluster, "cp"), *((cluster, n.role) for n in plan.nodes)]


@given(a=_cluster_names, b=_cluster_names)
def test_two_clusters_never_share_a_namespace_name(a: str, b: str) -> None:
    """Distinct clusters on one machine get disjoint namespace names (cluster names may contain '-')."""
    if a != b:
        assert not set(plan_lab(a, 12).netns_names) & set(plan_lab(b, 12).netns_names)
