"""Endpoints rendering: ready and not-ready addresses, target ports by number or name, repacking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.pb import core_pb2
from controllers.endpoints.plan import find_port, needs_update, render_endpoints, should_include

from .builders import T0, pod


def service(name: str = "web", *, ports: list[tuple[str, int, str]] | None = None, selector: dict | None = None,
            publish: bool = False, headless: bool = False) -> core_pb2.Service:
    s = core_pb2.Service(metadata={"name": name, "namespace": "default"})
    s.spec.selector.update(selector if selector is not None else {"app": "web"})
    for pname, port, target in ports if ports is not None else [("http", 80, "8080")]:
        s.spec.ports.add(name=pname, port=port, target_port=target, protocol="TCP")
    s.spec.publish_not_ready_addresses = publish
    s.spec.cluster_ip = "None" if headless else "10.96.0.10"
    return s


WEB = {"app": "web"}


def _ips(ep: core_pb2.Endpoints) -> tuple[list[str], list[str]]:
    return ([a.ip for s in ep.subsets for a in s.addresses], [a.ip for s in ep.subsets for a in s.not_ready_addresses])


def test_ready_and_not_ready() -> None:
    """Ready pods are addresses, others not-ready addresses; each with nodeName and a Pod targetRef."""
    pods = [pod("a", labels=WEB, ip="10.0.0.1", node="n1", ready=True),
            pod("b", labels=WEB, ip="10.0.0.2", node="n2", ready=False),
            pod("c", labels={"app": "db"}, ip="10.0.0.3", ready=True)]
    ep = render_endpoints(service(), pods)
    assert len(ep.subsets) == 1
    s = ep.subsets[0]
    assert [a.ip for a in s.addresses] == ["10.0.0.1"] and [a.ip for a in s.not_ready_addresses] == ["10.0.0.2"]
    a = s.addresses[0]
    assert a.node_name == "n1" and (a.target_ref.kind, a.target_ref.name, a.target_ref.uid) == ("Pod", "a", "uid-a")
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "TCP")]


@pytest.mark.parametrize(("p", "include_terminating", "expect"), [
    pytest.param(pod("x", ip=""), False, False, id="no-ip"),
    pytest.param(pod("x", ip="1.1.1.1", phase="Succeeded"), False, False, id="finished"),
    pytest.param(pod("x", ip="1.1.1.1", deleting=T0), False, False, id="terminating"),
    pytest.param(pod("x", ip="1.1.1.1", deleting=T0), True, True, id="terminating-published"),
    pytest.param(pod("x", ip="1.1.1.1"), False, True, id="running"),
])
def test_should_include(p: core_pb2.Pod, include_terminating: bool, expect: bool) -> None:
    """Pods without an IP, finished or terminating (unless publishing not-ready addresses) are left out."""
    assert should_include(p, include_terminating=include_terminating) is expect


def test_publish_not_ready_addresses() -> None:
    """publishNotReadyAddresses lists every pod with an IP as ready, terminating ones too."""
    pods = [pod("a", labels=WEB, ip="10.0.0.1", ready=False), pod("b", labels=WEB, ip="10.0.0.2", deleting=T0)]
    assert _ips(render_endpoints(service(publish=True), pods)) == (["10.0.0.1", "10.0.0.2"], [])


def test_named_target_port() -> None:
    """A named target port resolves per pod; a pod without that port is left out for it only."""
    svc = service(ports=[("http", 80, "web"), ("metrics", 9090, "9090")])
    pods = [pod("a", labels=WEB, ip="10.0.0.1", ready=True, ports=[("web", 8080, "TCP")]),
            pod("b", labels=WEB, ip="10.0.0.2", ready=True, ports=[("web", 8081, "TCP")]),
            pod("c", labels=WEB, ip="10.0.0.3", ready=True, ports=[("other", 1, "TCP")])]
    ep = render_endpoints(svc, pods)
    got = {(tuple(a.ip for a in s.addresses), tuple((p.name, p.port) for p in s.ports)) for s in ep.subsets}
    assert got == {(("10.0.0.1",), (("http", 8080),)), (("10.0.0.2",), (("http", 8081),)),
                   (("10.0.0.1", "10.0.0.2", "10.0.0.3"), (("metrics", 9090),))}


def test_find_port_protocol_must_match() -> None:
    """A named port matches only a container port of the same protocol."""
    p = pod("a", ports=[("dns", 53, "UDP")])
    with pytest.raises(Exception, match="no container port named"):
        find_port(p, core_pb2.ServicePort(name="dns", port=53, target_port="dns", protocol="TCP"))
    assert find_port(p, core_pb2.ServicePort(name="dns", port=53, target_port="dns", protocol="UDP")) == 53


def test_headless_without_ports() -> None:
    """A headless Service without ports lists its pods' addresses with no ports."""
    ep = render_endpoints(service(ports=[], headless=True), [pod("a", labels=WEB, ip="10.0.0.1", ready=True)])
    assert _ips(ep) == (["10.0.0.1"], []) and not ep.subsets[0].ports
    assert ep.metadata.labels["service.kubernetes.io/headless"] == ""
    assert not render_endpoints(service(ports=[]), [pod("a", labels=WEB, ip="10.0.0.1", ready=True)]).subsets


def test_hostname_when_subdomain_matches() -> None:
    """An address carries the pod's hostname when its subdomain is the Service's name."""
    p = pod("a", labels=WEB, ip="10.0.0.1", ready=True)
    p.spec.hostname, p.spec.subdomain = "a0", "web"
    assert render_endpoints(service(), [p]).subsets[0].addresses[0].hostname == "a0"


pods_st = st.lists(
    st.builds(lambda i, ready, lab, port, dying: pod(
        f"p{i}", labels={"app": lab}, ip=f"10.1.{i // 250}.{i % 250}", ready=ready,
        ports=[("web", port, "TCP")] if port else [], deleting=T0 if dying else None),
        st.integers(0, 999), st.booleans(), st.sampled_from(["web", "db"]), st.sampled_from([0, 8080, 8081]),
        st.booleans()),
    max_size=30, unique_by=lambda p: p.metadata.name)


@settings(max_examples=150, deadline=None)
@given(pods_st, st.permutations(list(range(30))))
def test_render_properties(pods: list[core_pb2.Pod], perm: list[int]) -> None:
    """Random pods: every address is a selected live pod, ready ones only as ready, each (pod, port) pair once,
    and the result does not depend on the order pods are listed in."""
    svc = service(ports=[("http", 80, "web"), ("plain", 81, "9000")])
    ep = render_endpoints(svc, pods)
    by_ip = {p.status.pod_ip: p for p in pods}
    seen: set[tuple[str, str]] = set()
    for s in ep.subsets:
        for a in [*s.addresses, *s.not_ready_addresses]:
            p = by_ip[a.ip]
            assert p.metadata.labels["app"] == "web" and not p.metadata.HasField("deletion_timestamp")
            for port in s.ports:
                assert (a.ip, port.name) not in seen
                seen.add((a.ip, port.name))
        assert all(any(c.type == "Ready" and c.status == "True" for c in by_ip[a.ip].status.conditions)
                   for a in s.addresses)
    live = [p for p in pods if p.metadata.labels["app"] == "web" and not p.metadata.HasField("deletion_timestamp")]
    assert {ip for ip, name in seen if name == "plain"} == {p.status.pod_ip for p in live}
    shuffled = [pods[i] for i in perm if i < len(pods)]
    assert not needs_update(ep, render_endpoints(svc, shuffled))
