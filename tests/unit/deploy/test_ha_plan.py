"""A highly available control plane's plan: machines, addresses, etcd flags and apiserver lists, without I/O."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deploy.lab import cluster
from deploy.lab.plan import LabPlanError, parse_netns, plan_lab
from deploy.node import bootstrap


def test_three_control_planes_get_their_own_namespaces_addresses_and_routes() -> None:
    """cp, cp2, cp3 at 10.250.0.2-4, each routing every pod CIDR; the first is the single control plane's."""
    plan = plan_lab("demo", 2, control_planes=3)
    assert [(m.role, m.netns, m.lab_port, str(m.address)) for m in plan.control_planes] == [
        ("cp", "kl-demo-cp", "demo-cp", "10.250.0.2"),
        ("cp2", "kl-demo-cp2", "demo-cp2", "10.250.0.3"),
        ("cp3", "kl-demo-cp3", "demo-cp3", "10.250.0.4"),
    ]
    assert plan.control_plane == plan.control_planes[0]
    assert plan.netns_names == ("kl-demo-lab", "kl-demo-cp", "kl-demo-cp2", "kl-demo-cp3", "kl-demo-n1", "kl-demo-n2")
    for member in plan.control_planes:
        assert {str(r.dest) for r in member.routes} == {"10.244.1.0/24", "10.244.2.0/24"}
    assert parse_netns("kl-demo-cp3") == ("demo", "cp3")


def test_one_control_plane_plan_is_unchanged() -> None:
    """Without the flag the plan has the one control plane it always had."""
    assert plan_lab("demo", 1) == plan_lab("demo", 1, control_planes=1)
    assert [m.role for m in plan_lab("demo", 1).control_planes] == ["cp"]


@pytest.mark.parametrize("count", [
    pytest.param(0, id="none"), pytest.param(2, id="even"), pytest.param(4, id="even-4"),
    pytest.param(9, id="too-many"),
])
def test_invalid_control_plane_counts_are_refused(count: int) -> None:
    """An even count (no more tolerance than the odd one below) or one outside 1..7 is refused naming the count."""
    with pytest.raises(LabPlanError, match=f"control-plane count {count}"):
        plan_lab("demo", 1, control_planes=count)


@pytest.mark.parametrize(("members", "expected"), [
    pytest.param([("kubelite", "127.0.0.1")], "kubelite=https://127.0.0.1:2380", id="one"),
    pytest.param([("cp", "10.250.0.2"), ("cp2", "10.250.0.3"), ("cp3", "10.250.0.4")],
                 "cp=https://10.250.0.2:2380,cp2=https://10.250.0.3:2380,cp3=https://10.250.0.4:2380", id="three"),
])
def test_initial_cluster(members: list[tuple[str, str]], expected: str) -> None:
    """etcd's --initial-cluster names each member's peer URL."""
    assert bootstrap.render_initial_cluster(members) == expected


def test_initial_cluster_refuses_a_repeated_name() -> None:
    """Two members of one name would make etcd refuse to start: refused here, naming them."""
    with pytest.raises(ValueError, match="repeat"):
        bootstrap.render_initial_cluster([("cp", "10.250.0.2"), ("cp", "10.250.0.3")])


def test_apiserver_reaches_its_own_etcd_member_first_then_the_others() -> None:
    """--etcd-servers: loopback first, then every other member's client URL."""
    members = [("cp", "10.250.0.2"), ("cp2", "10.250.0.3"), ("cp3", "10.250.0.4")]
    assert bootstrap.render_etcd_servers(members, "10.250.0.3") == \
        "https://127.0.0.1:2379,https://10.250.0.2:2379,https://10.250.0.4:2379"


def spec_argv(plan, role: str, state: str = "new") -> list[str]:  # type: ignore[no-untyped-def]
    return bootstrap.etcd_argv(cluster.control_plane_spec(plan, role=role, etcd_state=state))


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_each_machine_runs_one_member_of_one_etcd_cluster_with_tls_peers() -> None:
    """cp2's etcd: named cp2, peers and clients on its address over https with etcd's CA on both links, the same
    initial cluster as the others; a machine coming back joins the existing cluster."""
    plan = plan_lab("demo", 1, control_planes=3, data_root=Path("/d"))
    argv = spec_argv(plan, "cp2")
    assert flag(argv, "--name") == "cp2"
    assert flag(argv, "--listen-peer-urls") == "https://10.250.0.3:2380"
    assert flag(argv, "--listen-client-urls") == "https://127.0.0.1:2379,https://10.250.0.3:2379"
    assert flag(argv, "--initial-cluster") == flag(spec_argv(plan, "cp"), "--initial-cluster")
    assert flag(argv, "--initial-cluster-state") == "new"
    assert flag(argv, "--data-dir") == "/d/demo/control-plane-cp2/etcd"
    assert "--peer-client-cert-auth" in argv and "--client-cert-auth" in argv
    assert flag(argv, "--peer-trusted-ca-file").endswith("/control-plane-cp2/pki/etcd/ca.crt")
    assert flag(spec_argv(plan, "cp3", "existing"), "--initial-cluster-state") == "existing"


def test_single_control_plane_etcd_stays_on_loopback() -> None:
    """One control plane: the etcd it always had, named kubelite, on loopback only."""
    argv = spec_argv(plan_lab("demo", 1), "cp")
    assert flag(argv, "--name") == "kubelite"
    assert flag(argv, "--initial-cluster") == "kubelite=https://127.0.0.1:2380"
    assert "--initial-cluster-state" not in argv


def test_control_plane_daemons_fail_over_to_the_other_apiservers() -> None:
    """cp2's scheduler, controller-manager and DNS list its own apiserver first, then the others; its daemons carry
    its name in the lab."""
    spec = cluster.control_plane_spec(plan_lab("demo", 1, control_planes=3), role="cp2")
    servers = "10.250.0.3:6443,10.250.0.2:6443,10.250.0.4:6443"
    for argv in (bootstrap.scheduler_argv(spec), bootstrap.controller_manager_argv(spec), bootstrap.dns_argv(spec)):
        assert flag(argv, "--server") == servers
    assert spec.daemon("apiserver") == "apiserver-cp2"
    one = cluster.control_plane_spec(plan_lab("demo", 1))
    assert flag(bootstrap.scheduler_argv(one), "--server") == "10.250.0.2:6443"
    assert one.daemon("apiserver") == "apiserver"


def test_several_control_planes_give_nodes_a_grace_longer_than_an_etcd_election() -> None:
    """With three control planes a node is lost after 4 s without a renewal (an election stops writes up to 3 s)
    and its pods evicted 2 s later; with one, after the 2 s and the 1 s the lab aims its 5 s replacement at."""
    for control_planes, grace in ((3, "4.0"), (1, "2.0")):
        for role in [m.role for m in plan_lab("demo", 1, control_planes=control_planes).control_planes]:
            spec = cluster.control_plane_spec(plan_lab("demo", 1, control_planes=control_planes), role=role)
            assert flag(bootstrap.controller_manager_argv(spec), "--node-monitor-grace-period") == grace
            argv = bootstrap.apiserver_argv(spec)
            assert ("--default-toleration-seconds" in argv) == (control_planes == 3)
            if control_planes == 3:
                assert flag(argv, "--default-toleration-seconds") == "2"


def test_nodes_know_every_apiserver_starting_at_different_ones() -> None:
    """Node i lists every apiserver starting at control plane i mod 3, so nodes spread over them; with one control
    plane a node has the one address it always had. The admin's config lists every apiserver's unix socket."""
    plan = plan_lab("demo", 3, control_planes=3, run_root=Path("/r"))
    assert [cluster.node_spec(plan, i).server for i in range(3)] == [
        "10.250.0.2:6443,10.250.0.3:6443,10.250.0.4:6443",
        "10.250.0.3:6443,10.250.0.4:6443,10.250.0.2:6443",
        "10.250.0.4:6443,10.250.0.2:6443,10.250.0.3:6443",
    ]
    assert cluster.node_spec(plan, 0).join_target() == "10.250.0.2:6444"
    assert cluster.client_config_for(plan).server == \
        "unix:///r/demo/api.sock,unix:///r/demo/api-cp2.sock,unix:///r/demo/api-cp3.sock"
    single = plan_lab("demo", 1, run_root=Path("/r"))
    assert cluster.node_spec(single, 0).server == "10.250.0.2:6443"
    assert cluster.client_config_for(single).server == "unix:///r/demo/api.sock"


@pytest.mark.parametrize(("scale", "expected"), [
    (1.0, []),
    (2.0, ["--heartbeat-interval", "200", "--election-timeout", "2000"]),
    (10.0, ["--heartbeat-interval", "500", "--election-timeout", "5000"]),
])
def test_etcd_on_slow_machines_waits_longer_before_calling_an_election(scale: float, expected: list[str]) -> None:
    """etcd's own timings on real machines; on emulated ones longer, at most five times (elections stay short)."""
    assert bootstrap.etcd_timing_flags(scale) == expected


def test_a_slow_control_planes_etcd_member_gets_the_longer_timings() -> None:
    spec = cluster.control_plane_spec(plan_lab("demo", 1, control_planes=3), role="cp2")
    slow = bootstrap.etcd_argv(dataclasses.replace(spec, timeout_scale=10.0))
    assert flag(slow, "--election-timeout") == "5000"
    assert "--election-timeout" not in bootstrap.etcd_argv(spec)
