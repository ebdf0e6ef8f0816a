"""The cluster's DNS names, computed from Services and Endpoints, and the answer to one query.

Pure: `compute_records` turns one Service (and its Endpoints) into records,
`Zone` holds the records of every Service and answers a parsed query with a
response message. The daemon (proxy/dns.py) only moves bytes.

Names, as in the Kubernetes DNS specification:
  <svc>.<ns>.svc.<domain>               A      the cluster IP; for a headless Service
                                               (clusterIP None) the ready endpoint IPs
  <host>.<svc>.<ns>.svc.<domain>        A      headless: one per ready endpoint (its hostname,
                                               else its IP with dashes)
  _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV named ports: the Service's port and name; for a
                                               headless Service one per endpoint
  <svc>.<ns>.svc.<domain>               CNAME  ExternalName Services (with the target's records when
                                               it is a name of this cluster)
Nothing outside the cluster domain is answered (REFUSED): this server forwards nothing.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from api.pb import core_pb2

A = dns.rdatatype.A
SRV = dns.rdatatype.SRV
CNAME = dns.rdatatype.CNAME
SOA = dns.rdatatype.SOA
ANY = dns.rdatatype.ANY
IN = dns.rdataclass.IN

# name -> type -> rdata texts
Records = dict[dns.name.Name, dict[int, list[str]]]


def _ipv4(value: str) -> str | None:
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value))
    except (OSError, ValueError):
        return None


def _label(text: str) -> str:
    return text.lower()


def _add(records: Records, name: dns.name.Name, rdtype: int, text: str) -> None:
    texts = records.setdefault(name, {}).setdefault(rdtype, [])
    if text not in texts:
        texts.append(text)


def compute_records(svc: core_pb2.Service, ep: core_pb2.Endpoints | None, domain: dns.name.Name) -> Records:
    """Every record one Service contributes (an empty dict for one that has no name to answer)."""
    records: Records = {}
    ns, name = svc.metadata.namespace, svc.metadata.name
    if not ns or not name:
        return records
    base = dns.name.Name((_label(name), _label(ns), "svc")).concatenate(domain)
    spec = svc.spec
    if spec.type == "ExternalName":
        if spec.external_name:
            target = dns.name.from_text(spec.external_name)
            _add(records, base, CNAME, target.to_text())
        return records
    if spec.cluster_ip == "None":
        _headless(records, base, ep)
        return records
    ip = _ipv4(spec.cluster_ip)
    if ip is None:
        return records
    _add(records, base, A, ip)
    for p in spec.ports:
        if p.name:
            srv = dns.name.Name((f"_{_label(p.name)}", f"_{(p.protocol or 'TCP').lower()}")).concatenate(base)
            _add(records, srv, SRV, f"0 100 {p.port} {base.to_text()}")
    return records


def _headless(records: Records, base: dns.name.Name, ep: core_pb2.Endpoints | None) -> None:
    if ep is None:
        return
    # Sorted so that answers (and tests) are stable.
    hosts: dict[str, str] = {}  # host label -> ip
    ports: dict[tuple[str, str], set[tuple[int, str]]] = {}  # (name, proto) -> {(port, host)}
    for subset in ep.subsets:
        subset_hosts = []
        for addr in subset.addresses:
            ip = _ipv4(addr.ip)
            if ip is None:
                continue
            host = _label(addr.hostname) if addr.hostname else ip.replace(".", "-")
            hosts.setdefault(host, ip)
            subset_hosts.append(host)
        for p in subset.ports:
            if p.name:
                key = (_label(p.name), (p.protocol or "TCP").lower())
                ports.setdefault(key, set()).update((p.port, h) for h in subset_hosts)
    for host, ip in sorted(hosts.items(), key=lambda kv: socket.inet_pton(socket.AF_INET, kv[1])):
        _add(records, base, A, ip)
        _add(records, dns.name.Name((host,)).concatenate(base), A, ip)
    for (port_name, proto), targets in sorted(ports.items()):
        srv = dns.name.Name((f"_{port_name}", f"_{proto}")).concatenate(base)
        weight = max(1, 100 // len(targets))
        for port, host in sorted(targets):
            target = dns.name.Name((host,)).concatenate(base)
            _add(records, srv, SRV, f"0 {weight} {port} {target.to_text()}")


@dataclass(frozen=True)
class Limits:
    udp_default: int = 512  # without EDNS
    udp_max: int = 1232  # what we advertise and never exceed over UDP


class Zone:
    """All names of the cluster domain, replaced one Service at a time."""

    def __init__(self, domain: str = "cluster.local", *, ttl: int = 5) -> None:
        self.domain = dns.name.from_text(domain)
        self.ttl = ttl
        self.serial = 1
        self._by_service: dict[str, Records] = {}
        self._names: dict[dns.name.Name, dict[int, list[str]]] = {}
        self._owners: Counter[dns.name.Name] = Counter()  # how many Services hold each name
        self._ancestors: Counter[dns.name.Name] = Counter()  # names that exist only as parents

    def __len__(self) -> int:
        return len(self._names)

    def set_service(self, key: str, svc: core_pb2.Service | None, ep: core_pb2.Endpoints | None) -> bool:
        """Replace the records of Service `key` (None: it is gone). True if anything changed."""
        new = compute_records(svc, ep, self.domain) if svc is not None else {}
        old = self._by_service.get(key, {})
        if new == old:
            return False
        self._drop(old)
        if new:
            self._by_service[key] = new
        else:
            self._by_service.pop(key, None)
        self._put(new)
        self.serial += 1
        return True

    def _put(self, records: Records) -> None:
        for name, types in records.items():
            merged = self._names.setdefault(name, {})
            for rdtype, texts in types.items():
                have = merged.setdefault(rdtype, [])
                have.extend(t for t in texts if t not in have)
            self._owners[name] += 1
            for parent in self._parents(name):
                self._ancestors[parent] += 1

    def _drop(self, records: Records) -> None:
        for name, types in records.items():
            merged = self._names.get(name)
            if merged is not None:
                for rdtype, texts in types.items():
                    have = merged.get(rdtype, [])
                    for t in texts:
                        if t in have:
                            have.remove(t)
                    if not have:
                        merged.pop(rdtype, None)
            self._owners[name] -= 1
            if self._owners[name] <= 0:
                del self._owners[name]
                self._names.pop(name, None)
            for parent in self._parents(name):
                self._ancestors[parent] -= 1
                if self._ancestors[parent] <= 0:
                    del self._ancestors[parent]

    def _parents(self, name: dns.name.Name) -> Iterable[dns.name.Name]:
        while name != self.domain and len(name) > len(self.domain):
            name = name.parent()
            yield name

    # ------------------------------------------------------------ answers

    def soa(self) -> dns.rrset.RRset:
        d = self.domain.to_text()
        text = f"ns.dns.{d} hostmaster.{d} {self.serial} 7200 1800 86400 {self.ttl}"
        return dns.rrset.from_text(self.domain, self.ttl, IN, SOA, text)

    def _rrset(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        texts = self._names.get(name, {}).get(rdtype)
        if not texts:
            return None
        return dns.rrset.from_text_list(name, self.ttl, IN, rdtype, texts)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to one parsed query."""
        response = dns.message.make_response(query, our_payload=Limits.udp_max)
        response.flags &= ~dns.flags.RA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        q = query.question[0]
        qname, qtype = q.name, q.rdtype
        if q.rdclass != IN or not qname.is_subdomain(self.domain):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        if qname == self.domain and qtype in (SOA, ANY):
            response.answer.append(self.soa())
            return response
        types = self._names.get(qname)
        if types is None:
            if qname != self.domain and qname not in self._ancestors:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self.soa())
            return response
        wanted = list(types) if qtype == ANY else [CNAME] if CNAME in types else [qtype]
        for rdtype in wanted:
            rrset = self._rrset(qname, rdtype)
            if rrset is not None:
                response.answer.append(rrset)
        if not response.answer:
            response.authority.append(self.soa())
            return response
        if CNAME in types and qtype not in (CNAME, ANY):
            # An ExternalName naming a Service of this cluster: its records follow the CNAME, as an
            # authoritative server answers a CNAME into its own zone (one step, so no loop).
            target = self._rrset(dns.name.from_text(types[CNAME][0]), qtype)
            if target is not None:
                response.answer.append(target)
        for rrset in list(response.answer):
            if rrset.rdtype == SRV:
                seen: set[dns.name.Name] = set()
                for rd in rrset:
                    if rd.target not in seen:
                        seen.add(rd.target)
                        extra = self._rrset(rd.target, A)
                        if extra is not None:
                            response.additional.append(extra)
        return response


def parse_query(wire: bytes) -> dns.message.Message:
    """A query from the wire (raises dns.exception.DNSException for anything malformed)."""
    return dns.message.from_wire(wire, question_only=False)


def error_response(wire: bytes, rcode: int) -> bytes | None:
    """A bare response with `rcode` to a query that could not be parsed; None if not even a header."""
    if len(wire) < 12:
        return None
    flags = int.from_bytes(wire[2:4], "big")
    if flags & dns.flags.QR:
        return None  # a response, not a query: never answer it (no loops)
    out_flags = dns.flags.QR | (flags & (dns.flags.RD | (0xF << 11))) | rcode
    return wire[:2] + out_flags.to_bytes(2, "big") + bytes(8)


def to_wire(response: dns.message.Message, *, max_size: int) -> bytes:
    """The response in at most `max_size` bytes; truncated (TC set, no records) when it does not fit."""
    try:
        return response.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=max_size)


def udp_limit(query: dns.message.Message) -> int:
    if query.edns >= 0:
        return max(Limits.udp_default, min(query.payload, Limits.udp_max))
    return Limits.udp_default
