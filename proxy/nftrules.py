"""Services + EndpointSlices -> one nftables table, in the shape of kube-proxy's nftables mode.

Pure, like rules.py. Each rule is a tuple of statements that know their nft
text (exactly as `nft list` prints it, so a listing reads back line for line)
and that nfnetlink.py turns into the kernel's expressions; partial syncs are
written over netlink, full syncs through `nft -f` (see modes.py).

table ip kubelite
  maps (verdict maps: the only place a service address is looked up)
    service-ips            ip . proto . port -> goto the Service's chain (cluster, external and LB IPs)
    service-nodeports      proto . port -> goto its external chain (on local destination addresses)
    no-endpoint-services   ip . proto . port -> goto reject-chain (no endpoint) or drop (none for a Local
                           policy here); checked in filter for new connections that were not DNATed
    no-endpoint-nodeports  proto . port -> the same for node ports
    firewall-ips           LB ip . proto . port -> goto the Service's firewall chain (loadBalancerSourceRanges)
  base chains
    nat-prerouting, nat-output -> services; nat-postrouting -> masquerading
    filter-prerouting (before DNAT) -> firewall-check; filter-input, -forward, -output -> the endpoint checks;
    filter-forward first drops what conntrack calls invalid
  per service port
    service-H-ns/name/proto/port    every endpoint (Cluster policy): [mark traffic from outside the cluster
                                    CIDR for masquerade], mark hairpin traffic (a source that is one of the
                                    endpoints), then one DNAT rule per endpoint, picked by `numgen random
                                    mod (n-i)` as iptables' statistic cascade picks
    local-H-...                     the same over this node's endpoints (a Local policy)
    external-H-...                  node ports, external and LB IPs: Cluster: mark, goto service; Local: the
                                    node's own traffic marked and to service, the rest to local
    firewall-H-...                  return for each source range, else drop
  with ClientIP affinity, kube-proxy's per-endpoint shape instead: endpoint-H-...__ip/port chains that
  remember the client in an affinity-H-... set with the affinity timeout, and a service chain that sends
  remembered clients back to their endpoint before picking one.

An endpoint change rewrites one service (or local) chain: its rules hold the endpoints inline, so no map
and no other chain changes. Two things keep that cheap at 10,000 Services, both because of what the
kernel does on every commit that adds a jump or a NAT rule (it walks every chain reachable from the base
chains to validate them): no per-endpoint chains (50,000 more chains to walk) and no jumps to a marking
chain (the mark is set inline); and no anonymous sets, whose `__set%d` names the kernel allocates by
scanning every set of the table (a full sync would be quadratic in Services). The hairpin rule marks a
source that is any endpoint of the Service (not only the one chosen), which costs a pod that calls its
own Service through another replica its source address, never its connection.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from api.pb import core_pb2, discovery_pb2
from proxy.rules import Node, gc_paused, slices_by_service
from proxy.services import PortEndpoints, ServicePort, compute_endpoints, compute_service_ports, service_key

TABLE = "kubelite"
FAMILY = "ip"
REJECT_CHAIN = "reject-chain"
MASQ_MARK = 0x4000

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
FIREWALL_IPS = "firewall-ips"
# Named maps: name -> (key type, comment).
ADDRESS_KEY = "ipv4_addr . inet_proto . inet_service"
PORT_KEY = "inet_proto . inet_service"
MAPS: dict[str, tuple[str, str]] = {
    SERVICE_IPS: (ADDRESS_KEY, "ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    SERVICE_NODEPORTS: (PORT_KEY, "NodePort traffic"),
    NO_ENDPOINT_SERVICES: (ADDRESS_KEY, "vmap to drop or reject packets to services with no endpoints"),
    NO_ENDPOINT_NODEPORTS: (PORT_KEY, "vmap to drop or reject packets to service nodeports with no endpoints"),
    FIREWALL_IPS: (ADDRESS_KEY, "destinations that are subject to LoadBalancerSourceRanges"),
}

# Base chains: name -> (type, hook, priority as nft lists it).
BASE_CHAINS: dict[str, tuple[str, str, str]] = {
    "nat-prerouting": ("nat", "prerouting", "dstnat"),
    "nat-output": ("nat", "output", "-100"),
    "nat-postrouting": ("nat", "postrouting", "srcnat"),
    "filter-prerouting": ("filter", "prerouting", "dstnat - 10"),
    "filter-input": ("filter", "input", "-110"),
    "filter-forward": ("filter", "forward", "-110"),
    "filter-output": ("filter", "output", "-110"),
}
# Every fixed chain with its rules, in nft list text.
FIXED_RULES: dict[str, tuple[str, ...]] = {
    "nat-prerouting": ("jump services",),
    "nat-output": ("jump services",),
    "nat-postrouting": ("jump masquerading",),
    "filter-prerouting": ("ct state new jump firewall-check",),
    "filter-input": ("ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"),
    "filter-forward": ("ct state invalid drop", "ct state new jump service-endpoints-check"),
    "filter-output": ("ct state new jump service-endpoints-check", "ct state new jump firewall-check"),
    "services": (f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
                 f"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
    "service-endpoints-check": (f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",),
    "nodeport-endpoints-check": (
        f"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",),
    "firewall-check": (f"ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}",),
    # A TCP client is refused with a reset, at once (see rules.REJECT for why not an ICMP error).
    REJECT_CHAIN: ("reject with tcp reset", "reject"),
    "masquerading": (f"meta mark & 0x{MASQ_MARK:08x} == 0x00000000 return",
                     f"meta mark set meta mark ^ 0x{MASQ_MARK:08x}", "masquerade fully-random"),
}

CHAIN_PREFIXES = ("service-", "local-", "external-", "firewall-", "endpoint-")
SET_PREFIX = "affinity-"


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class IpMatch:
    """`ip saddr|daddr [!=] <address or CIDR>`."""

    field: str  # saddr or daddr
    value: str
    negate: bool = False

    def text(self) -> str:
        return f"ip {self.field} {'!= ' if self.negate else ''}{self.value}"


@dataclass(frozen=True)
class NumgenIs:
    """`numgen random mod n 0`: true once in n (a cascade of them picks uniformly, as iptables' statistic)."""

    modulus: int

    def text(self) -> str:
        return f"numgen random mod {self.modulus} 0"


@dataclass(frozen=True)
class MarkMasquerade:
    """Mark the packet for masquerade in nat-postrouting (inline: a jump would cost every commit a chain walk)."""

    def text(self) -> str:
        return f"meta mark set meta mark | 0x{MASQ_MARK:08x}"


@dataclass(frozen=True)
class InSet:
    """`ip saddr @set` (a named set)."""

    set_name: str

    def text(self) -> str:
        return f"ip saddr @{self.set_name}"


@dataclass(frozen=True)
class L4Proto:
    proto: str  # tcp, udp, sctp

    def text(self) -> str:
        return f"meta l4proto {self.proto}"


@dataclass(frozen=True)
class Dport:
    proto: str
    port: int

    def text(self) -> str:
        return f"{self.proto} dport {self.port}"


@dataclass(frozen=True)
class FibLocal:
    """`fib saddr type local`: the packet comes from an address of this node."""

    def text(self) -> str:
        return "fib saddr type local"


@dataclass(frozen=True)
class Verdict:
    kind: str  # jump, goto, drop, accept, return
    chain: str = ""

    def text(self) -> str:
        return f"{self.kind} {self.chain}" if self.chain else self.kind


@dataclass(frozen=True)
class Dnat:
    """DNAT to `target` ("ip:port")."""

    target: str

    def text(self) -> str:
        return f"dnat to {self.target}"


@dataclass(frozen=True)
class Update:
    """`update @set { ip saddr }`: remember the client (ClientIP affinity)."""

    set_name: str

    def text(self) -> str:
        return f"update @{self.set_name} {{ ip saddr }}"


Stmt = IpMatch | NumgenIs | MarkMasquerade | InSet | L4Proto | Dport | FibLocal | Verdict | Dnat | Update
Rule = tuple[Stmt, ...]


def rule_text(rule: Rule) -> str:
    return " ".join(s.text() for s in rule)


@dataclass(frozen=True, order=True)
class Element:
    """One element of a named verdict map: key parts (ip, proto, port or proto, port) -> verdict."""

    map: str
    key: tuple[str | int, ...]
    verdict: Verdict = field(compare=False)

    def text(self) -> str:
        return f"{' . '.join(str(k) for k in self.key)} : {self.verdict.text()}"


# ---------------------------------------------------------------- per Service


@dataclass(frozen=True)
class ServiceRules:
    """Everything one Service contributes: map elements, the chains and affinity sets it owns."""

    elements: frozenset[tuple[str, tuple[str | int, ...], str, str]] = frozenset()  # (map, key, verdict, chain)
    chains: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    sets: Mapping[str, int] = field(default_factory=dict)  # affinity set -> timeout (seconds)
    udp: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # as rules.ServiceRules.udp

    def element_list(self) -> list[Element]:
        return [Element(m, k, Verdict(v, c)) for m, k, v, c in sorted(self.elements, key=repr)]

    def count(self, table: str = TABLE) -> int:
        return sum(len(r) for r in self.chains.values()) + len(self.elements)


EMPTY = ServiceRules()


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def chain_names(sp: ServicePort) -> dict[str, str]:
    """The Service port's chain names (kube-proxy's: prefix, 8 hash characters, ns/name/proto/port)."""
    port = sp.port_name or str(sp.port)
    base = f"{sp.namespace}/{sp.name}/{sp.proto}/{port}"
    h = _hash(sp.display + sp.proto)
    return {kind: f"{kind}-{h}-{base}" for kind in ("service", "local", "external", "firewall")}


def endpoint_chain(sp: ServicePort, endpoint: str) -> str:
    port = sp.port_name or str(sp.port)
    ip, _, number = endpoint.rpartition(":")
    h = _hash(sp.display + sp.proto + endpoint)
    return f"endpoint-{h}-{sp.namespace}/{sp.name}/{sp.proto}/{port}__{ip}/{number}"


def affinity_set(sp: ServicePort, endpoint: str) -> str:
    return "affinity-" + endpoint_chain(sp, endpoint).removeprefix("endpoint-")


def render_service(ports: Sequence[ServicePort], slices: Sequence[discovery_pb2.EndpointSlice],
                   node: Node) -> ServiceRules:
    """The map elements, chains and sets of one Service's ports, given its EndpointSlices."""
    if not ports:
        return EMPTY
    elements: set[tuple[str, tuple[str | int, ...], str, str]] = set()
    owned: dict[str, tuple[Rule, ...]] = {}
    sets: dict[str, int] = {}
    udp: dict[str, tuple[str, ...]] = {}
    seen: set[tuple[str, str]] = set()
    cidr = str(ipaddress.IPv4Network(node.cluster_cidr, strict=False)) if node.cluster_cidr else ""
    for sp in ports:
        if (sp.display, sp.protocol) in seen:
            continue
        seen.add((sp.display, sp.protocol))
        eps = compute_endpoints(slices, sp, node.name)
        _render_port(sp, eps, cidr, elements, owned, sets)
        if sp.protocol == "UDP":
            ips = tuple(sorted(eps.serving, key=socket.inet_aton))
            for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
                udp[f"{ip}:{sp.port}"] = ips
            if sp.node_port:
                udp[f":{sp.node_port}"] = ips
    return ServiceRules(frozenset(elements), owned, sets, udp)


def _render_port(sp: ServicePort, eps: PortEndpoints, cidr: str,
                 elements: set[tuple[str, tuple[str | int, ...], str, str]],
                 owned: dict[str, tuple[Rule, ...]], sets: dict[str, int]) -> None:
    names = chain_names(sp)
    svc, loc, ext, fw = names["service"], names["local"], names["external"], names["firewall"]
    p = sp.proto
    external = sp.external
    uses_svc = not sp.internal_local or external
    uses_loc = sp.internal_local or (external and sp.external_local)
    elements.add((SERVICE_IPS, (sp.cluster_ip, p, sp.port), "goto", loc if sp.internal_local else svc))
    for ip in (*sp.external_ips, *sp.load_balancer_ips):
        elements.add((SERVICE_IPS, (ip, p, sp.port), "goto", ext))
    if sp.node_port:
        elements.add((SERVICE_NODEPORTS, (p, sp.node_port), "goto", ext))
    if sp.load_balancer_ips and sp.source_ranges:
        # One rule per range (no interval set): a listed source goes back to firewall-check; the rest is dropped.
        owned[fw] = (*((IpMatch("saddr", cidr), Verdict("return")) for cidr in sp.source_ranges), (Verdict("drop"),))
        for ip in sp.load_balancer_ips:
            elements.add((FIREWALL_IPS, (ip, p, sp.port), "goto", fw))
    # New connections that were not DNATed: rejected without any endpoint, dropped under a Local policy.
    if not eps.cluster:
        verdict = ("goto", REJECT_CHAIN)
        internal_dead = external_dead = True
    else:
        verdict = ("drop", "")
        internal_dead = sp.internal_local and not eps.local
        external_dead = sp.external_local and not eps.local
    if internal_dead:
        elements.add((NO_ENDPOINT_SERVICES, (sp.cluster_ip, p, sp.port), *verdict))
    if external_dead:
        for ip in (*sp.external_ips, *sp.load_balancer_ips):
            elements.add((NO_ENDPOINT_SERVICES, (ip, p, sp.port), *verdict))
        if sp.node_port:
            elements.add((NO_ENDPOINT_NODEPORTS, (p, sp.node_port), *verdict))
    if external:
        if not sp.external_local:
            masq: tuple[Rule, ...] = ((MarkMasquerade(),),) if eps.cluster else ()
            owned[ext] = (*masq, (Verdict("goto", svc),))
        else:
            pods: tuple[Rule, ...] = ((IpMatch("saddr", cidr), Verdict("goto", svc)),) if cidr else ()
            owned[ext] = (*pods, (FibLocal(), MarkMasquerade()), (FibLocal(), Verdict("goto", svc)),
                          (Verdict("goto", loc),))
    if uses_svc:
        masq = ((IpMatch("daddr", sp.cluster_ip), Dport(p, sp.port), IpMatch("saddr", cidr, negate=True),
                 MarkMasquerade()),) if cidr else ()
        owned[svc] = (*masq, *_pick(sp, eps.cluster, owned, sets))
    if uses_loc:
        owned[loc] = _pick(sp, eps.local, owned, sets)


def _pick(sp: ServicePort, eps: Sequence[str], owned: dict[str, tuple[Rule, ...]],
          sets: dict[str, int]) -> tuple[Rule, ...]:
    """The rules that pick one of `eps`: inline (hairpin marks, then the DNAT cascade), or per-endpoint chains
    with ClientIP affinity."""
    if not eps:
        return ()
    p, n = sp.proto, len(eps)
    if not sp.affinity_seconds:
        ips = sorted({e.rpartition(":")[0] for e in eps}, key=socket.inet_aton)
        hairpin = tuple((IpMatch("saddr", ip), MarkMasquerade()) for ip in ips)
        picks = tuple((L4Proto(p), NumgenIs(n - i), Dnat(e)) if i < n - 1 else (L4Proto(p), Dnat(e))
                      for i, e in enumerate(eps))
        return (*hairpin, *picks)
    chains = tuple(endpoint_chain(sp, e) for e in eps)
    rules: list[Rule] = []
    for e, chain in zip(eps, chains, strict=True):
        aff = affinity_set(sp, e)
        sets[aff] = sp.affinity_seconds
        owned[chain] = ((IpMatch("saddr", e.rpartition(":")[0]), MarkMasquerade()), (Update(aff),),
                        (L4Proto(p), Dnat(e)))
        rules.append((InSet(aff), Verdict("goto", chain)))
    rules.extend((NumgenIs(n - i), Verdict("goto", c)) if i < n - 1 else (Verdict("goto", c),)
                 for i, c in enumerate(chains))
    return tuple(rules)


def compute_state(services: Iterable[core_pb2.Service], slices: Iterable[discovery_pb2.EndpointSlice],
                  node: Node) -> dict[str, ServiceRules]:
    """One ServiceRules per programmed Service, keyed `namespace/name`."""
    with gc_paused():
        by_service = slices_by_service(slices)
        out: dict[str, ServiceRules] = {}
        for svc in services:
            key = service_key(svc.metadata.namespace, svc.metadata.name)
            rules = render_service(compute_service_ports(svc), by_service.get(key, ()), node)
            if rules is not EMPTY:
                out[key] = rules
        return out


# ---------------------------------------------------------------- transactions


@dataclass(frozen=True)
class Op:
    """One command of a transaction, in `nft -f` words."""

    verb: str  # add, flush, delete
    what: str  # chain, rule, element, set
    name: str  # chain, map or set name
    rule: Rule = ()
    elements: tuple[Element, ...] = ()
    timeout: int = 0  # for `add set`

    def text(self) -> str:
        if self.what == "map":  # flush map
            return f"{self.verb} map {FAMILY} {TABLE} {self.name}"
        head = f"{self.verb} {self.what} {FAMILY} {TABLE} {self.name}"
        if self.what == "rule":
            return f"{head} {rule_text(self.rule)}"
        if self.what == "element":
            return f"{head} {{ {', '.join(e.text() for e in self.elements)} }}"
        if self.what == "set" and self.verb == "add":
            return f"{head} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {self.timeout}s ; }}"
        return head


def text(ops: Iterable[Op]) -> str:
    return "".join(op.text() + "\n" for op in ops)


def _elements(verb: str, items: Iterable[Element]) -> list[Op]:
    by_map: dict[str, list[Element]] = {}
    for e in sorted(items):
        by_map.setdefault(e.map, []).append(e)
    return [Op(verb, "element", m, elements=tuple(es)) for m, es in by_map.items()]


def _chain_rules(name: str, rules: Sequence[Rule]) -> list[Op]:
    return [Op("add", "rule", name, rule=r) for r in rules]


def skeleton() -> str:
    """The table, its maps and fixed chains, as one `nft -f` transaction that rewrites the fixed rules.

    Per-service chains and map elements are left alone (see service_ops), so writing the skeleton never
    interrupts a Service; `add` of anything that exists is a no-op, so it works on any starting state.
    """
    lines = [f'add table {FAMILY} {TABLE} {{ comment "rules for kubelite\'s service proxy" ; }}']
    for name, (key, comment) in MAPS.items():
        lines.append(f'add map {FAMILY} {TABLE} {name} {{ type {key} : verdict ; comment "{comment}" ; }}')
    for name, (kind, hook, priority) in BASE_CHAINS.items():
        lines.append(f"add chain {FAMILY} {TABLE} {name} {{ type {kind} hook {hook} priority {priority} ; "
                     "policy accept ; }")
    for name in FIXED_RULES:
        if name not in BASE_CHAINS:
            lines.append(f"add chain {FAMILY} {TABLE} {name}")
    for name, rules in FIXED_RULES.items():
        lines.append(f"flush chain {FAMILY} {TABLE} {name}")
        lines.extend(f"add rule {FAMILY} {TABLE} {name} {r}" for r in rules)
    return "\n".join(lines) + "\n"


def service_ops(state: Mapping[str, ServiceRules], *, stale_chains: Iterable[str] = (),
                stale_sets: Iterable[str] = ()) -> list[Op]:
    """Every Service's chains, sets and map elements rewritten, as one transaction; stale ones deleted."""
    order = sorted(state)
    ops: list[Op] = []
    for key in order:
        ops.extend(Op("add", "set", name, timeout=timeout) for name, timeout in state[key].sets.items())
    for key in order:
        ops.extend(Op("add", "chain", name) for name in state[key].chains)
    stale = sorted(set(stale_chains))
    for key in order:
        for name, rules in state[key].chains.items():
            ops.append(Op("flush", "chain", name))
            ops.extend(_chain_rules(name, rules))
    ops.extend(Op("flush", "map", name) for name in MAPS)
    ops.extend(_elements("add", (e for key in order for e in state[key].element_list())))
    ops.extend(Op("flush", "chain", c) for c in stale)
    ops.extend(Op("delete", "chain", c) for c in stale)
    ops.extend(Op("delete", "set", s) for s in sorted(set(stale_sets)))
    return ops


def render_full(state: Mapping[str, ServiceRules], *, stale_chains: Iterable[str] = (),
                stale_sets: Iterable[str] = ()) -> str:
    """The whole table as one `nft -f` transaction: the skeleton, then every Service (service_ops)."""
    return skeleton() + text(service_ops(state, stale_chains=stale_chains, stale_sets=stale_sets))


def stale(chains: Iterable[str], sets: Iterable[str], state: Mapping[str, ServiceRules]) -> tuple[list[str], list[str]]:
    """Chains and affinity sets found in the table that no Service of `state` owns (fixed ones excepted)."""
    want_chains = {c for rules in state.values() for c in rules.chains}
    want_sets = {s for rules in state.values() for s in rules.sets}
    old_chains = [c for c in chains if c not in FIXED_RULES and c not in BASE_CHAINS and c not in want_chains]
    old_sets = [s for s in sets if not s.startswith("__") and s not in MAPS and s not in want_sets]
    return old_chains, old_sets


@dataclass(frozen=True)
class Changes:
    """What a partial sync writes: the operations, in order, and the chains they touch."""

    ops: tuple[Op, ...]
    written: tuple[str, ...]  # chains added, rewritten or deleted
    elements: int  # map elements added or deleted

    @property
    def payload(self) -> str:
        return text(self.ops)


def render_changes(old: Mapping[str, ServiceRules], new: Mapping[str, ServiceRules],
                   keys: Iterable[str]) -> Changes:
    """Only what differs for the Services in `keys`: their map elements, chains and sets.

    Order matters within the one transaction: sets and new chains first, then chain contents, then map
    elements (which may name the new chains), last the deletions of what nothing refers to any more.
    """
    add_sets: list[Op] = []
    add_chains: list[Op] = []
    contents: list[Op] = []
    del_elements: list[Element] = []
    add_elements: list[Element] = []
    deletions: list[Op] = []
    written: list[str] = []
    for key in sorted(keys):
        o, n = old.get(key, EMPTY), new.get(key, EMPTY)
        if o is n or o == n:
            continue
        gone = o.elements - n.elements
        came = n.elements - o.elements
        del_elements.extend(Element(m, k, Verdict(v, c)) for m, k, v, c in sorted(gone, key=repr))
        add_elements.extend(Element(m, k, Verdict(v, c)) for m, k, v, c in sorted(came, key=repr))
        for name, timeout in n.sets.items():
            if name not in o.sets:
                add_sets.append(Op("add", "set", name, timeout=timeout))
        for name, rules in n.chains.items():
            before = o.chains.get(name)
            if before == rules:
                continue
            if before is None:
                add_chains.append(Op("add", "chain", name))
            else:
                contents.append(Op("flush", "chain", name))
            contents.extend(_chain_rules(name, rules))
            written.append(name)
        for name in o.chains:
            if name not in n.chains:
                contents.append(Op("flush", "chain", name))
                deletions.append(Op("delete", "chain", name))
                written.append(name)
        deletions.extend(Op("delete", "set", s) for s in o.sets if s not in n.sets)
    ops = [*add_sets, *add_chains, *contents, *_elements("delete", del_elements), *_elements("add", add_elements),
           *deletions]
    return Changes(tuple(ops), tuple(written), len(del_elements) + len(add_elements))


def render_rules(services: Iterable[core_pb2.Service], slices: Iterable[discovery_pb2.EndpointSlice],
                 node: Node) -> str:
    """The whole `nft -f` input for these objects on `node`."""
    return render_full(compute_state(services, slices, node))


def is_owned_chain(name: str) -> bool:
    return name in FIXED_RULES or name in BASE_CHAINS or name.startswith(CHAIN_PREFIXES)
