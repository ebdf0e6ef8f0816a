"""Chain names: kube-proxy's hashes, within iptables' length limit, and which chains the proxy owns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy import chains

NAMES = st.from_regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


def test_names_match_kube_proxy() -> None:
    """The hashes equal kube-proxy's for the same service port (from its iptables proxier tests)."""
    assert chains.service_chain("ns1/svc1:p80", "TCP") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert chains.endpoint_chain("ns1/svc1:p80", "TCP", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert chains.external_chain("ns2/svc2:p80", "TCP") == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"


@given(NAMES, NAMES, st.from_regex(r"[a-z0-9]{0,15}", fullmatch=True), st.sampled_from(["TCP", "UDP", "SCTP"]),
       st.ip_addresses(v=4), st.integers(1, 65535))
def test_names_fit_and_differ(ns: str, name: str, port: str, proto: str, ip: object, number: int) -> None:
    """Every name fits iptables' 28 characters and the three kinds of chain never collide."""
    spn = chains.port_name(ns, name, port)
    made = [chains.service_chain(spn, proto), chains.external_chain(spn, proto),
            chains.endpoint_chain(spn, proto, f"{ip}:{number}")]
    assert all(len(c) <= chains.MAX_CHAIN_NAME for c in made)
    assert len(set(made)) == 3
    assert all(chains.is_per_service(c) and chains.is_owned("nat", c) for c in made)


def test_protocol_is_part_of_the_name() -> None:
    """A TCP and a UDP port with the same name get different chains."""
    assert chains.service_chain("kube-system/kube-dns:dns", "UDP") != chains.service_chain(
        "kube-system/kube-dns:dns", "TCP")


@pytest.mark.parametrize("table,chain,owned", [
    ("nat", "KUBE-SERVICES", True),
    ("nat", "KUBE-MARK-MASQ", True),
    ("nat", "KUBE-SEP-ABC", True),
    ("filter", "KUBE-SERVICES", True),
    ("filter", "KUBE-FORWARD", True),
    ("filter", "KUBE-SEP-ABC", False),
    ("nat", "PREROUTING", False),
    ("nat", "CNI-HOSTPORT-DNAT", False),
    ("nat", "KUBE-MARK-DROP", False),
])
def test_owned_chains(table: str, chain: str, owned: bool) -> None:
    """Only the fixed chains and per-service chains are the proxy's to flush and delete."""
    assert chains.is_owned(table, chain) is owned


def test_unnamed_port_display_name() -> None:
    """A single unnamed port is called `ns/svc`, a named one `ns/svc:port`."""
    assert chains.port_name("default", "web", "") == "default/web"
    assert chains.port_name("default", "web", "http") == "default/web:http"


def test_endpoint_chains_equal_one_by_one() -> None:
    """The batch helper names every endpoint exactly as endpoint_chain does."""
    eps = ["10.244.1.5:8080", "10.244.2.5:8080"]
    assert chains.endpoint_chains("default/web:http", "TCP", eps) == [
        chains.endpoint_chain("default/web:http", "TCP", ep) for ep in eps]
