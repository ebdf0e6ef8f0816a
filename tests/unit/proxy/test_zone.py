"""DNS answers from Services and Endpoints, without sockets."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from proxy.zone import Zone, error_response, to_wire, udp_limit
from unit.proxy.objects import eps, subset, svc

DOMAIN = "cluster.local"


@pytest.fixture
def zone() -> Zone:
    z = Zone(DOMAIN)
    web = svc("web", cluster_ip="10.96.0.5", ports=[{"name": "http", "port": 80}, {"port": 81}])
    z.set_service("default/web", web, eps("web", subset(["10.244.1.5"], ports=[("http", 8080, "TCP")])))
    db = svc("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432}])
    z.set_service("default/db", db, eps("db", subset(["10.244.2.7", "10.244.1.6"], ["10.244.3.3"],
                                                     [("pg", 5432, "TCP")], hostnames={"10.244.1.6": "db-0"})))
    ext = svc("mail", "infra", type="ExternalName", external_name="mail.example.com")
    z.set_service("infra/mail", ext, None)
    return z


def ask(zone: Zone, name: str, rdtype: str = "A") -> dns.message.Message:
    return zone.answer(dns.message.make_query(name, rdtype))


def texts(response: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(rd.to_text() for rrset in getattr(response, section) for rd in rrset)


def test_cluster_ip_a_record(zone: Zone) -> None:
    """`<svc>.<ns>.svc.cluster.local` answers the cluster IP, authoritatively, case-insensitively."""
    r = ask(zone, "WEB.Default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR
    assert texts(r) == ["10.96.0.5"]
    assert r.flags & dns.flags.AA
    assert r.answer[0].ttl == 5


def test_headless_service_answers_ready_pod_ips(zone: Zone) -> None:
    """A headless Service's name answers every ready endpoint IP (not the unready one), each pod its own name."""
    assert texts(ask(zone, "db.default.svc.cluster.local")) == ["10.244.1.6", "10.244.2.7"]
    assert texts(ask(zone, "db-0.db.default.svc.cluster.local")) == ["10.244.1.6"]
    assert texts(ask(zone, "10-244-2-7.db.default.svc.cluster.local")) == ["10.244.2.7"]


def test_srv_for_named_ports(zone: Zone) -> None:
    """`_<port>._<proto>.<svc>...` gives the port and target, with the target's A record as additional data."""
    r = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert texts(r) == ["0 100 80 web.default.svc.cluster.local."]
    assert texts(r, "additional") == ["10.96.0.5"]
    headless = ask(zone, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert texts(headless) == ["0 50 5432 10-244-2-7.db.default.svc.cluster.local.",
                               "0 50 5432 db-0.db.default.svc.cluster.local."]
    assert texts(headless, "additional") == ["10.244.1.6", "10.244.2.7"]


def test_external_name_is_a_cname(zone: Zone) -> None:
    """An ExternalName Service answers a CNAME (and nothing is resolved outside the cluster)."""
    r = ask(zone, "mail.infra.svc.cluster.local")
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.CNAME]
    assert texts(r) == ["mail.example.com."]


@pytest.mark.parametrize("name,rdtype,rcode,answers", [
    pytest.param("nope.default.svc.cluster.local", "A", dns.rcode.NXDOMAIN, 0, id="unknown-service"),
    pytest.param("web.other.svc.cluster.local", "A", dns.rcode.NXDOMAIN, 0, id="wrong-namespace"),
    pytest.param("_grpc._tcp.web.default.svc.cluster.local", "SRV", dns.rcode.NXDOMAIN, 0, id="unknown-port"),
    pytest.param("web.default.svc.cluster.local", "AAAA", dns.rcode.NOERROR, 0, id="no-ipv6"),
    pytest.param("default.svc.cluster.local", "A", dns.rcode.NOERROR, 0, id="namespace-is-empty-non-terminal"),
    pytest.param("cluster.local", "SOA", dns.rcode.NOERROR, 1, id="apex-soa"),
    pytest.param("example.com", "A", dns.rcode.REFUSED, 0, id="outside-the-cluster"),
    pytest.param("5.0.96.10.in-addr.arpa", "PTR", dns.rcode.REFUSED, 0, id="reverse-lookups"),
])
def test_negative_and_foreign_answers(zone: Zone, name: str, rdtype: str, rcode: int, answers: int) -> None:
    """Unknown cluster names are NXDOMAIN, known names without that type NODATA, other domains REFUSED."""
    r = ask(zone, name, rdtype)
    assert r.rcode() == rcode
    assert len(r.answer) == answers
    if rcode != dns.rcode.REFUSED and not answers:
        assert [rrset.rdtype for rrset in r.authority] == [dns.rdatatype.SOA]


def test_records_follow_changes_and_deletions(zone: Zone) -> None:
    """A changed cluster IP replaces the old answer; a deleted Service's names go, and with them the namespace."""
    assert zone.set_service("default/web", svc("web", cluster_ip="10.96.0.6", ports=[{"port": 80}]), None)
    assert texts(ask(zone, "web.default.svc.cluster.local")) == ["10.96.0.6"]
    assert ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert not zone.set_service("default/web", svc("web", cluster_ip="10.96.0.6", ports=[{"port": 80}]), None)
    zone.set_service("default/web", None, None)
    zone.set_service("default/db", None, None)
    assert ask(zone, "web.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(zone, "default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(zone, "mail.infra.svc.cluster.local", "CNAME").rcode() == dns.rcode.NOERROR


def test_large_answers_are_truncated_over_udp() -> None:
    """A headless answer too big for the client's UDP size comes back with TC set, for a retry over TCP."""
    z = Zone(DOMAIN)
    ips = [f"10.244.{i // 200}.{i % 200 + 1}" for i in range(100)]
    z.set_service("default/big", svc("big", cluster_ip="None"), eps("big", subset(ips, ports=[("", 80, "TCP")])))
    query = dns.message.make_query("big.default.svc.cluster.local", "A")
    response = z.answer(query)
    small = dns.message.from_wire(to_wire(response, max_size=udp_limit(query)))
    assert small.flags & dns.flags.TC and not small.answer
    full = dns.message.from_wire(to_wire(z.answer(query), max_size=65535))
    assert len(texts(full)) == 100


def test_edns_raises_the_udp_limit_up_to_1232() -> None:
    """Clients announcing a larger EDNS buffer get up to 1232 bytes, never more; plain DNS gets 512."""
    assert udp_limit(dns.message.make_query("a.cluster.local", "A")) == 512
    assert udp_limit(dns.message.make_query("a.cluster.local", "A", use_edns=0, payload=4096)) == 1232
    assert udp_limit(dns.message.make_query("a.cluster.local", "A", use_edns=0, payload=800)) == 800


def test_malformed_queries_get_formerr_and_responses_are_ignored() -> None:
    """Garbage after a valid header gets FORMERR with the same id; a response or a runt gets nothing."""
    wire = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    reply = error_response(wire[:12] + b"\xff\xff", dns.rcode.FORMERR)
    assert reply is not None and reply[:2] == wire[:2]
    assert dns.rcode.from_flags(int.from_bytes(reply[2:4], "big"), 0) == dns.rcode.FORMERR
    assert error_response(b"\x00\x01", dns.rcode.FORMERR) is None
    response = bytearray(wire)
    response[2] |= 0x80  # QR
    assert error_response(bytes(response), dns.rcode.FORMERR) is None


def test_non_query_opcodes_are_not_implemented(zone: Zone) -> None:
    """NOTIFY, UPDATE and friends get NOTIMP."""
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    assert zone.answer(query).rcode() == dns.rcode.NOTIMP


def test_external_name_inside_the_cluster_carries_the_targets_address() -> None:
    """An ExternalName naming another Service of the cluster answers the CNAME and, after it, that Service's A
    record; one outside the cluster answers the CNAME alone."""
    z = Zone()
    web = svc("web", "default", cluster_ip="10.96.0.5", ports=[{"port": 80}])
    alias = svc("alias", "default", type="ExternalName", external_name="web.default.svc.cluster.local")
    z.set_service("default/web", web, None)
    z.set_service("default/alias", alias, None)
    r = ask(z, "alias.default.svc.cluster.local", "A")
    assert [(rrset.rdtype, [rd.to_text() for rd in rrset]) for rrset in r.answer] == [
        (dns.rdatatype.CNAME, ["web.default.svc.cluster.local."]), (dns.rdatatype.A, ["10.96.0.5"])]
