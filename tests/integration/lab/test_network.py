"""The lab network on this machine (root): built, checked, damaged, repaired and torn down.

Every cluster has a unique `kltest....` name and is torn down by the make_lab fixture even when
a test fails. No test sends traffic anywhere but between lab namespaces: 198.51.100.1 (TEST-NET-2;
not TEST-NET-1, which is this host's own uplink network) is only ever tried from namespaces
without a route to it, so it fails before leaving; the host's own addresses are only looked up
with `ip route get`, which sends nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from deploy.lab import (
    LabPlan,
    NetworkError,
    Node,
    Supervisor,
    all_lab_namespaces,
    apply_link_state,
    apply_service_route,
    apply_topology,
    destroy_topology,
    lab_namespaces,
    netns_path,
)
from deploy.lab.procs import cgroup_dirs

from .labhelp import in_netns, ip, pids_in_net_namespaces, ping, routes, sysctl

OUTSIDE = "198.51.100.1"
CNI_BIN = Path("/usr/lib/cni")


def expected_routes(plan: LabPlan, member_netns: str) -> list[str]:
    member = next(m for m in plan.members if m.netns == member_netns)
    lines = [f"{r.dest} via {r.via} dev {member.iface}" for r in member.routes]
    lines.append(f"{plan.lab_subnet} dev {member.iface} proto kernel scope link src {member.address}")
    return sorted(lines)


def assert_fully_connected(plan: LabPlan) -> None:
    for src in plan.members:
        for dst in plan.members:
            if src != dst:
                assert ping(src.netns, dst.address), f"{src.role} cannot reach {dst.role} ({dst.address})"


def link_indexes(plan: LabPlan) -> dict[tuple[str, str], int]:
    """ifindex of every interface in the cluster's namespaces: a rebuilt one gets a new index."""
    indexes = {}
    for netns in plan.netns_names:
        for link in json.loads(ip("-j", "-n", netns, "link", "show")):
            indexes[(netns, link["ifname"])] = link["ifindex"]
    return indexes


def root_snapshot() -> tuple[list[str], str, str]:
    names = sorted(link["ifname"] for link in json.loads(ip("-j", "link", "show")))
    return names, ip("-4", "route", "show", "table", "all"), ip("-6", "route", "show", "table", "all")


def host_ipv4_addresses() -> set[str]:
    """This host's own IPv4 addresses and gateways (read from the root namespace, never used)."""
    found = {a["local"] for link in json.loads(ip("-j", "-4", "addr", "show")) for a in link["addr_info"]}
    found |= {r["gateway"] for r in json.loads(ip("-j", "-4", "route", "show")) if "gateway" in r}
    return {address for address in found if not address.startswith("127.")}


def test_members_reach_each_other_across_the_lab_bridge(lab: LabPlan) -> None:
    """Control plane and nodes ping each other over the lab bridge, in every direction."""
    assert_fully_connected(lab)


def test_no_default_route_and_outside_is_unreachable(lab: LabPlan) -> None:
    """No lab namespace has a default route, so outside and host addresses fail locally in each."""
    outside = {OUTSIDE, *host_ipv4_addresses()}
    for netns in lab.netns_names:
        assert ip("-n", netns, "-4", "route", "show", "default") == ""
        assert ip("-n", netns, "-6", "route", "show", "default") == ""
        for address in outside:
            lookup = subprocess.run(
                ["ip", "-n", netns, "route", "get", address], capture_output=True, text=True, timeout=10
            )
            assert lookup.returncode != 0, f"{netns} has a route to {address}: {lookup.stdout}"
            assert "Network is unreachable" in lookup.stderr
        probe = in_netns(netns, "busybox", "ping", "-c", "1", "-W", "1", OUTSIDE)
        assert probe.returncode != 0
        assert "unreachable" in probe.stderr.lower()


def test_routes_addresses_and_sysctls_follow_the_plan(lab: LabPlan) -> None:
    """Each member has exactly its planned routes; forwarding is on in nodes only."""
    for member in lab.members:
        assert routes(member.netns) == expected_routes(lab, member.netns)
    for node in lab.nodes:
        assert sysctl(node.netns, "net.ipv4.ip_forward") == "1"
        assert sysctl(node.netns, "net.bridge.bridge-nf-call-iptables") == "1"
        assert "UP" in ip("-n", node.netns, "link", "show", "lo")
    assert sysctl(lab.control_plane.netns, "net.ipv4.ip_forward") == "0"
    assert sysctl(lab.lab_netns, "net.ipv4.ip_forward") == "0"
    assert sysctl(lab.lab_netns, "net.bridge.bridge-nf-call-iptables") == "0"
    ports = json.loads(ip("-j", "-n", lab.lab_netns, "link", "show", "master", lab.bridge))
    assert sorted(p["ifname"] for p in ports) == sorted(m.lab_port for m in lab.members)


def test_lab_namespaces_are_listed_per_cluster(make_lab) -> None:
    """Stale detection finds exactly a cluster's namespaces, and tells clusters apart."""
    first, second = make_lab(2), make_lab(1)
    assert lab_namespaces(first.cluster) == sorted(first.netns_names)
    assert lab_namespaces(second.cluster) == sorted(second.netns_names)
    found = all_lab_namespaces()
    assert found[first.cluster] == sorted(first.netns_names)
    assert found[second.cluster] == sorted(second.netns_names)


def test_apply_twice_changes_nothing(lab: LabPlan) -> None:
    """A second apply creates nothing and keeps every interface (no rebuild under running daemons)."""
    before = link_indexes(lab)
    with capture_logs() as logs:
        apply_topology(lab)
    assert [e["event"] for e in logs] == ["lab_topology_applied"]
    assert link_indexes(lab) == before
    assert_fully_connected(lab)


def test_destroy_twice_and_destroy_of_nothing(make_lab) -> None:
    """Destroy removes all namespaces once; again, or for a cluster never made, it does nothing."""
    plan = make_lab(2)
    assert destroy_topology(plan.cluster) == sorted(plan.netns_names)
    assert destroy_topology(plan.cluster) == []
    assert lab_namespaces(plan.cluster) == []
    never = make_lab(1, apply=False)
    assert destroy_topology(never.cluster) == []


def _delete_lab_port(plan: LabPlan) -> None:
    ip("-n", plan.lab_netns, "link", "delete", plan.node("n2").lab_port)


def _delete_node_namespace(plan: LabPlan) -> None:
    ip("netns", "delete", plan.node("n3").netns)


def _delete_node_namespace_in_use(plan: LabPlan) -> None:
    # A process keeps the deleted namespace alive, and with it the veth pair into the lab.
    Supervisor.for_plan(plan).start("n3-holder", ["sleep", "600"], netns=plan.node("n3").netns)
    ip("netns", "delete", plan.node("n3").netns)


def _leave_stale_netns_file(plan: LabPlan) -> None:
    # What a crash inside `ip netns add` leaves: the file without the namespace mounted on it.
    ip("netns", "delete", plan.node("n1").netns)
    netns_path(plan.node("n1").netns).touch()


def _scramble_addresses_and_routes(plan: LabPlan) -> None:
    n1 = plan.node("n1")
    ip("-n", n1.netns, "route", "delete", str(plan.node("n2").pod_cidr))
    ip("-n", n1.netns, "route", "add", "10.99.0.0/24", "via", "10.250.0.13", "dev", n1.iface)
    ip("-n", n1.netns, "route", "add", "default", "via", "10.250.0.12", "dev", n1.iface)
    ip("-n", n1.netns, "addr", "add", "10.250.0.99/24", "dev", n1.iface)
    ip("-n", plan.node("n2").netns, "addr", "flush", "dev", plan.node("n2").iface)


def _delete_lab_namespace(plan: LabPlan) -> None:
    ip("netns", "delete", plan.lab_netns)


def _delete_bridge(plan: LabPlan) -> None:
    ip("-n", plan.lab_netns, "link", "delete", plan.bridge)


def _links_down(plan: LabPlan) -> None:
    ip("-n", plan.lab_netns, "link", "set", plan.node("n3").lab_port, "down")
    ip("-n", plan.control_plane.netns, "link", "set", plan.control_plane.iface, "down")
    ip("-n", plan.node("n1").netns, "link", "set", "lo", "down")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_delete_lab_port, id="veth-deleted"),
        pytest.param(_delete_node_namespace, id="node-namespace-deleted"),
        pytest.param(_delete_node_namespace_in_use, id="node-namespace-deleted-while-in-use"),
        pytest.param(_leave_stale_netns_file, id="stale-netns-file"),
        pytest.param(_scramble_addresses_and_routes, id="addresses-and-routes-changed"),
        pytest.param(_delete_bridge, id="bridge-deleted"),
        pytest.param(_delete_lab_namespace, id="lab-namespace-deleted"),
        pytest.param(_links_down, id="links-down"),
    ],
)
def test_apply_repairs_a_half_made_topology(lab: LabPlan, damage) -> None:
    """Whatever a crash or a hand left broken, applying again restores the planned topology."""
    damage(lab)
    apply_topology(lab)
    assert lab_namespaces(lab.cluster) == sorted(lab.netns_names)
    for member in lab.members:
        assert routes(member.netns) == expected_routes(lab, member.netns)
    assert "UP" in ip("-n", lab.node("n1").netns, "link", "show", "lo")
    assert_fully_connected(lab)
    holder = Supervisor.for_plan(lab).get("n3-holder")
    if holder is not None:  # the orphaned namespace is cut off from the lab
        assert not ping(Path(f"/proc/{holder.pid}/ns/net"), lab.node("n1").address)


def test_apply_repairs_a_topology_interrupted_midway(make_lab) -> None:
    """A first apply that died after some steps is completed by the next one."""
    plan = make_lab(3, apply=False)
    for netns in plan.netns_names[:3]:
        ip("netns", "add", netns)
    ip("-n", plan.lab_netns, "link", "add", plan.bridge, "type", "bridge")
    veth = ["type", "veth", "peer", "name", plan.control_plane.iface, "netns", plan.control_plane.netns]
    ip("-n", plan.lab_netns, "link", "add", plan.control_plane.lab_port, *veth)
    apply_topology(plan)
    assert_fully_connected(plan)


def test_apply_removes_namespaces_beyond_the_node_count(make_lab) -> None:
    """Re-applying a cluster with fewer nodes deletes the extra node namespaces."""
    big = make_lab(3)
    small = make_lab(2, cluster=big.cluster)
    assert lab_namespaces(big.cluster) == sorted(small.netns_names)
    assert_fully_connected(small)


def test_two_clusters_coexist_and_tear_down_independently(make_lab) -> None:
    """Two clusters with the same addresses live side by side; destroying one leaves the other working."""
    first, second = make_lab(2), make_lab(2)
    assert_fully_connected(first)
    assert_fully_connected(second)
    destroy_topology(first.cluster)
    assert lab_namespaces(first.cluster) == []
    assert_fully_connected(second)


def test_cut_off_node_and_reconnect(lab: LabPlan) -> None:
    """A node cut off at the lab bridge is unreachable until reconnected (by link state or apply)."""
    n1, n2 = lab.node("n1"), lab.node("n2")
    apply_link_state(lab, n2, up=False)
    assert not ping(n1.netns, n2.address)
    apply_link_state(lab, n2, up=True)
    assert ping(n1.netns, n2.address)
    apply_link_state(lab, n2, up=False)
    apply_topology(lab)
    assert ping(n1.netns, n2.address)


def _start_pod(plan: LabPlan, node: Node, supervisor: Supervisor, data_dir: Path) -> tuple[Path, str]:
    """A pod-like network namespace wired by the real CNI bridge plugin, as containerd would."""
    holder = supervisor.start(f"{node.role}-pod", ["unshare", "--net", "--", "sleep", "600"])
    pod_netns = Path(f"/proc/{holder.pid}/ns/net")
    own = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + 5
    while os.stat(pod_netns).st_ino == own:  # until unshare has run
        assert time.monotonic() < deadline, "pod namespace holder did not unshare"
        time.sleep(0.02)
    config = {
        "cniVersion": "0.4.0",
        "name": "kubelite",
        "type": "bridge",
        "bridge": node.cni_bridge,
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": str(node.pod_cidr), "gateway": str(node.pod_gateway)}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(data_dir / node.role),
        },
    }
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": f"{plan.cluster}-{node.role}",
        "CNI_NETNS": str(pod_netns),
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(CNI_BIN),
        "PATH": os.environ["PATH"],
    }
    added = subprocess.run(
        ["nsenter", f"--net={netns_path(node.netns)}", "--", str(CNI_BIN / "bridge")],
        input=json.dumps(config),
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    address = json.loads(added.stdout)["ips"][0]["address"].split("/")[0]
    return pod_netns, address


def test_pods_reach_across_nodes_and_service_route_uses_cni0(lab: LabPlan, tmp_path: Path) -> None:
    """Pods on two nodes talk via host-gw routes; the service route works whether cni0 came first or not.

    On n1 the service route is applied before the CNI plugin runs (pre-created cni0, which the
    plugin must adopt); on n2 after (found).
    """
    supervisor = Supervisor.for_plan(lab)
    n1, n2 = lab.node("n1"), lab.node("n2")
    apply_service_route(lab, n1)
    cni0_before = link_indexes(lab)[(n1.netns, n1.cni_bridge)]
    pod1, pod1_ip = _start_pod(lab, n1, supervisor, tmp_path / "cni")
    assert link_indexes(lab)[(n1.netns, n1.cni_bridge)] == cni0_before
    pod2, pod2_ip = _start_pod(lab, n2, supervisor, tmp_path / "cni")
    apply_service_route(lab, n2)
    apply_service_route(lab, n2)  # idempotent

    assert ping(pod1, pod2_ip)
    assert ping(pod2, pod1_ip)
    assert ping(pod1, lab.control_plane.address)  # the control plane routes pod CIDRs
    assert ping(pod1, lab.node("n3").address)
    for node in (n1, n2):
        lookup = ip("-n", node.netns, "route", "get", str(lab.dns_service_ip))
        assert f"dev {node.cni_bridge} src {node.pod_gateway}" in lookup
    probe = in_netns(pod1, "busybox", "ping", "-c", "1", "-W", "1", OUTSIDE)
    assert probe.returncode != 0


def test_service_route_refuses_a_cni0_the_plugin_would_refuse(lab: LabPlan) -> None:
    """A cni0 that is no bridge, or carries another address, is reported instead of half-used."""
    n1, n2 = lab.node("n1"), lab.node("n2")
    ip("-n", n1.netns, "link", "add", n1.cni_bridge, "type", "veth", "peer", "name", "cni0peer")
    with pytest.raises(NetworkError, match="cni0 exists but is a veth, not a bridge"):
        apply_service_route(lab, n1)
    ip("-n", n2.netns, "link", "add", n2.cni_bridge, "type", "bridge")
    ip("-n", n2.netns, "addr", "add", "10.244.9.1/24", "dev", n2.cni_bridge)
    with pytest.raises(NetworkError, match=r"cni0 has \['10.244.9.1/24'\], expected only 10.244.2.1/24"):
        apply_service_route(lab, n2)


def test_teardown_leaves_nothing_behind(make_lab) -> None:
    """After stop_all and destroy: no namespace, process, cgroup, or root-namespace change remains."""
    root_before = root_snapshot()
    plan = make_lab(3)
    supervisor = Supervisor.for_plan(plan)
    inodes = {os.stat(netns_path(netns)).st_ino for netns in plan.netns_names}
    supervisor.start("cp-echo", ["busybox", "nc", "-ll", "-p", "7000", "-e", "cat"], netns=plan.control_plane.netns)
    supervisor.start("n1-sleep", ["sleep", "600"], netns=plan.node("n1").netns)
    supervisor.start("n2-sleep", ["sh", "-c", "setsid sleep 600 & exec sleep 600"], netns=plan.node("n2").netns)
    deadline = time.monotonic() + 5
    while len(pids_in_net_namespaces(inodes)) < 4:
        assert time.monotonic() < deadline, "daemons did not enter their namespaces"
        time.sleep(0.02)

    assert sorted(supervisor.stop_all(timeout=2.0)) == ["cp-echo", "n1-sleep", "n2-sleep"]
    assert destroy_topology(plan.cluster) == sorted(plan.netns_names)

    assert lab_namespaces(plan.cluster) == []
    assert not [ns for ns in os.listdir("/run/netns") if plan.cluster in ns]
    assert pids_in_net_namespaces(inodes) == []
    assert cgroup_dirs(plan.cgroup) == []
    assert supervisor.records() == []
    root_after = root_snapshot()
    assert root_after == root_before
    assert not [name for name in root_after[0] if plan.cluster in name or name == "lab0"]
