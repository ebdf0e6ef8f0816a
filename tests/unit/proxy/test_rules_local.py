"""externalTrafficPolicy Local: outside traffic to this node's endpoints only, with the client's address kept."""

from __future__ import annotations

from api.pb import core_pb2
from proxy.rules import Node, render_rules
from unit.proxy.objects import svc


def _local_lb(*endpoints: tuple[str, str]) -> str:
    service = svc("edge", cluster_ip="10.96.0.7", type="LoadBalancer", external_traffic_policy="Local",
                  ports=[{"name": "http", "port": 80, "node_port": 31080}],
                  status={"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}})
    ep = core_pb2.Endpoints(metadata={"namespace": "default", "name": "edge"}, subsets=[{
        "addresses": [{"ip": ip, "node_name": node} for ip, node in endpoints],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
    return render_rules([service], [ep], Node("n1", cluster_cidr="10.244.0.0/16"))


def _chain(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"-A {prefix}")]


def test_local_policy_sends_outside_traffic_to_local_endpoints_unmasqueraded() -> None:
    """KUBE-EXT masquerades only the node's own traffic, sends pods to every endpoint and the rest to
    KUBE-SVL, which holds only this node's endpoint."""
    out = _local_lb(("10.244.1.5", "n1"), ("10.244.2.5", "n2"))
    ext = _chain(out, "KUBE-EXT-")
    assert len(ext) == 4, ext
    assert "-s 10.244.0.0/16" in ext[0] and ext[0].endswith("-j " + ext[2].rsplit(" ", 1)[-1]), ext
    assert "--src-type LOCAL -j KUBE-MARK-MASQ" in ext[1] and "--src-type LOCAL -j KUBE-SVC-" in ext[2]
    assert ext[3].split(" -j ")[1].startswith("KUBE-SVL-")
    svl = _chain(out, "KUBE-SVL-")
    assert len(svl) == 1 and "10.244.1.5:8080" in svl[0], svl
    assert "has no local endpoints" not in out
    assert len([r for r in _chain(out, "KUBE-SVC-") if " -> " in r]) == 2  # in-cluster traffic still reaches both


def test_local_policy_without_a_local_endpoint_rejects_outside_traffic() -> None:
    """A node with no endpoint of its own rejects outside traffic to the address and the node port."""
    out = _local_lb(("10.244.2.5", "n2"))
    assert _chain(out, "KUBE-SVL-") == []
    rejects = [line for line in out.splitlines() if "has no local endpoints" in line]
    assert len(rejects) == 2 and "-d 10.250.0.130/32" in rejects[0] and "--dport 31080" in rejects[1], rejects


def test_cluster_policy_is_unchanged() -> None:
    """Without Local, KUBE-EXT masquerades and goes to every endpoint, as before."""
    service = svc("edge", cluster_ip="10.96.0.7", type="LoadBalancer",
                  ports=[{"name": "http", "port": 80, "node_port": 31080}])
    out = render_rules([service], [], Node("n1"))
    assert "KUBE-SVL-" not in out
