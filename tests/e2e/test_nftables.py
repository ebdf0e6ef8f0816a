"""The nftables proxy mode on a lab of its own (`up --proxy-mode nftables`): a Service's cluster IP, its node
ports and externalTrafficPolicy Local behave as in the iptables lab, and each node holds one nftables table and
no iptables Service rule."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from deploy.lab import cluster

from .lab import Lab, wait_until
from .test_networking import ROOT, apply, deployment, get, in_lab, node_ip, service

HTTP_STATUS = r"""
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/{sys.argv[3]}", timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError as e:
    print(getattr(e, "reason", e))
"""


@pytest.fixture(scope="module")
def nft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two nodes whose proxies run in nftables mode (no ingress controller), with web behind a NodePort Service
    and a client pod."""
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, containerd)")
    os.environ.setdefault("KUBELITE_CONFIG", str(tmp_path_factory.mktemp("kubelite-config") / "config.yaml"))
    name = f"nft{secrets.token_hex(2)}"
    lines: list[str] = []
    try:
        plan = asyncio.run(cluster.up(name, 2, progress=lines.append, timeout=120, proxy_mode="nftables",
                                      ingress_nodes=()))
    except BaseException:
        print("\n".join(lines))
        asyncio.run(cluster.down(name, progress=lambda _: None))
        raise
    lab = Lab(plan)
    try:
        lab.kubelite("apply", "-f", str(ROOT / "examples" / "client.yaml"))
        apply(lab, deployment("web"), service("web", "web", type="NodePort"))
        lab.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
        lab.kubelite("wait", "--for=condition=Ready", "pod/client", "--timeout", "90", timeout=120)
        yield lab
    except BaseException:
        print(lab.logs_text())
        raise
    finally:
        asyncio.run(cluster.down(name, progress=lambda _: None))


def _in_node(lab: Lab, role: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", lab.plan.node(role).netns, *argv], capture_output=True, text=True,
                          timeout=30)


def test_each_node_programs_one_nftables_table_and_no_iptables_service_rule(nft: Lab) -> None:
    """`nft list table ip kubelite` shows the Service's cluster IP in a verdict map; iptables' nat table has no
    KUBE-SVC chain."""
    ip = nft.get_json("service", "web")["spec"]["clusterIP"]
    for node in nft.plan.nodes:
        table = wait_until(lambda n=node: ip in (out := _in_node(nft, n.role, "nft", "list", "table", "ip",
                                                                   "kubelite")).stdout and out.stdout,
                           timeout=20, what=f"{ip} in {node.role}'s nftables table")
        assert "vmap" in table
        nat = _in_node(nft, node.role, "iptables-save", "-t", "nat")
        assert "KUBE-SVC-" not in nat.stdout, nat.stdout


def test_cluster_ip_and_node_ports_answer(nft: Lab) -> None:
    """From a pod the Service's name answers; from the lab network its node port answers on every node; with no
    endpoint left the node port refuses at once instead of timing out."""
    _, body = wait_until(lambda: (r := get(nft, "http://web/bar"))[0] == 0 and r, timeout=20, what="web by name")
    assert body.startswith("web "), body
    port = str(nft.get_json("service", "web")["spec"]["ports"][0]["nodePort"])
    for node in nft.plan.nodes:
        assert in_lab(nft, HTTP_STATUS, node_ip(nft, node.role), port, "bar").strip() == "200"
    nft.kubelite("scale", "deployment", "web", "--replicas", "0")
    try:
        wait_until(lambda: not nft.get_json("pods", "-l", "app=web")["items"], timeout=60, what="web scaled to 0")
        t0 = time.monotonic()
        got = wait_until(lambda: (r := in_lab(nft, HTTP_STATUS, node_ip(nft, "n1"), port, "bar").strip()) != "200"
                         and r, timeout=20, what="the node port without endpoints")
        assert "refused" in got.lower(), got
        assert time.monotonic() - t0 < 10
    finally:
        nft.kubelite("scale", "deployment", "web", "--replicas", "2")
        nft.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)


def test_local_traffic_policy_keeps_the_client_and_drops_without_a_local_endpoint(nft: Lab) -> None:
    """externalTrafficPolicy Local on a LoadBalancer: the backend on n1 sees the client pod's address through n1's
    node port; n2, with no endpoint of its own, drops the connection, and its health-check port answers 503 (n1's
    200)."""
    apply(nft, deployment("local", 1, node="n1"), service("local", "local", type="LoadBalancer",
                                                          externalTrafficPolicy="Local"))
    try:
        nft.kubelite("rollout", "status", "deployment/local", "--timeout", "120s", timeout=150)
        svc = nft.get_json("service", "local")
        port, health = svc["spec"]["ports"][0]["nodePort"], svc["spec"]["healthCheckNodePort"]
        client_ip = nft.get_json("pod", "client")["status"]["podIP"]
        got = wait_until(lambda: (r := get(nft, f"http://{node_ip(nft, 'n1')}:{port}/cgi-bin/ip"))[0] == 0 and r,
                         timeout=20, what="the node port on n1")
        assert got[1].strip().removeprefix("[::ffff:").removesuffix("]") == client_ip, got
        t0 = time.monotonic()
        code, _ = get(nft, f"http://{node_ip(nft, 'n2')}:{port}/cgi-bin/ip")
        assert code != 0 and time.monotonic() - t0 > 4  # dropped: wget waited for its 5 s timeout
        assert in_lab(nft, HTTP_STATUS, node_ip(nft, "n1"), str(health), "").strip() == "200"
        assert in_lab(nft, HTTP_STATUS, node_ip(nft, "n2"), str(health), "").strip() == "503"
    finally:
        nft.kubelite("delete", "deployment", "local", check=False)
        nft.kubelite("delete", "service", "local", check=False)


def test_a_node_brought_back_by_chaos_keeps_the_nftables_mode(nft: Lab) -> None:
    """`chaos stop-node` brings n2 back with the cluster's proxy mode: nftables again, no iptables Service rule,
    and its node port answers."""
    nft.kubelite("chaos", "stop-node", "n2", "--name", nft.name, "--for", "1", timeout=180)
    wait_until(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                           for c in nft.get_json("node", "n2")["status"]["conditions"]), timeout=60, what="n2 Ready")
    ip = nft.get_json("service", "web")["spec"]["clusterIP"]
    wait_until(lambda: ip in _in_node(nft, "n2", "nft", "list", "table", "ip", "kubelite").stdout, timeout=30,
               what="n2's nftables table back")
    assert "KUBE-SVC-" not in _in_node(nft, "n2", "iptables-save", "-t", "nat").stdout
    port = str(nft.get_json("service", "web")["spec"]["ports"][0]["nodePort"])
    wait_until(lambda: in_lab(nft, HTTP_STATUS, node_ip(nft, "n2"), port, "bar").strip() == "200", timeout=30,
               what="n2's node port")
