"""How the DNS server keeps its own address in the kube-dns Endpoints."""

from __future__ import annotations

from proxy.dns import plan_published, plan_withdrawn
from unit.proxy.objects import eps, subset

DNS_PORTS = [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]


def addresses(ep) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    return [tuple(a.ip for a in s.addresses) for s in ep.subsets]


def test_creates_the_endpoints_when_missing() -> None:
    """With no Endpoints yet, one subset with this address on dns/UDP and dns-tcp/TCP."""
    ep = plan_published(None, "kube-system", "kube-dns", "10.250.0.2", 53)
    assert ep is not None
    assert (ep.metadata.namespace, ep.metadata.name) == ("kube-system", "kube-dns")
    assert addresses(ep) == [("10.250.0.2",)]
    assert [(p.name, p.port, p.protocol) for p in ep.subsets[0].ports] == DNS_PORTS


def test_nothing_to_do_when_already_published() -> None:
    """An Endpoints that already lists this address ready on these ports needs no write."""
    ep = eps("kube-dns", subset(["10.250.0.2"], ports=DNS_PORTS), ns="kube-system")
    assert plan_published(ep, "kube-system", "kube-dns", "10.250.0.2", 53) is None


def test_joins_other_instances_and_moves_from_old_ports_or_not_ready() -> None:
    """Another server's address stays; this one's stale entries (other port, not ready) are replaced."""
    ep = eps("kube-dns",
             subset(["10.250.0.3"], ["10.250.0.2"], DNS_PORTS),
             subset(["10.250.0.2"], ports=[("dns", 5353, "UDP"), ("dns-tcp", 5353, "TCP")]), ns="kube-system")
    out = plan_published(ep, "kube-system", "kube-dns", "10.250.0.2", 53)
    assert out is not None
    assert addresses(out) == [("10.250.0.3", "10.250.0.2")]
    assert not out.subsets[0].not_ready_addresses


def test_withdraw_removes_only_this_address() -> None:
    """On shutdown only this server's address goes; empty subsets are dropped; absent means nothing to do."""
    ep = eps("kube-dns", subset(["10.250.0.3", "10.250.0.2"], ports=DNS_PORTS), ns="kube-system")
    out = plan_withdrawn(ep, "10.250.0.2")
    assert out is not None and addresses(out) == [("10.250.0.3",)]
    alone = plan_withdrawn(eps("kube-dns", subset(["10.250.0.2"], ports=DNS_PORTS), ns="kube-system"), "10.250.0.2")
    assert alone is not None and list(alone.subsets) == []
    assert plan_withdrawn(out, "10.250.0.2") is None
    assert plan_withdrawn(None, "10.250.0.2") is None
