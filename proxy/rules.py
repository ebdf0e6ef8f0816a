"""Services + EndpointSlices -> iptables-restore input, in kube-proxy's iptables-mode shape.

Pure: nothing here touches the kernel. The proxier keeps one `ServiceRules` per
Service (what that Service contributes to the shared chains, and the chains it
owns) and writes either everything (`render_full`) or only what changed between
two states (`render_changes`). `render_rules` is the whole payload from objects.

Lines are written exactly as `iptables-save` (iptables 1.8, nf_tables) prints
them back (`--set-xmark` for MARK, the statistic probability as the kernel
stores it, quoting like xtables_save_string), so an applied ruleset reads back
line for line.

nat
  PREROUTING, OUTPUT -> KUBE-SERVICES: one rule per service port and address
      (cluster IP -> KUBE-SVC-*, or KUBE-SVL-* with internalTrafficPolicy Local; external
      IPs -> KUBE-EXT-*; load-balancer IPs -> KUBE-EXT-*, or KUBE-FW-* with source ranges),
      last a jump to KUBE-NODEPORTS for local destination addresses.
  KUBE-NODEPORTS: one rule per node port -> KUBE-EXT-*.
  KUBE-FW-*: one rule per loadBalancerSourceRange -> KUBE-EXT-*; the rest is dropped in filter.
  KUBE-EXT-*: externalTrafficPolicy Cluster: mark for masquerade (the reply must come back
      through this node; only if there is an endpoint), then KUBE-SVC-*. Local: the node's
      own traffic is masqueraded and goes to KUBE-SVC-* (pod traffic too, given the cluster
      CIDR); everything else goes to KUBE-SVL-*, unmasqueraded: the endpoint sees the client.
  KUBE-SVC-* (every endpoint) and KUBE-SVL-* (this node's): [ClientIP affinity: `recent
      --rcheck` per endpoint], then one rule per endpoint with `statistic --probability
      1/(n-i)`, the last unconditional -> KUBE-SEP-*. The endpoints are the ready ones, or if
      there is none, those still serving while they terminate.
  KUBE-SEP-*: mark hairpin traffic (endpoint to itself) for masquerade (the MARK inline rather
      than a jump to KUBE-MARK-MASQ: see MARK_FOR_MASQ); DNAT (`recent --set`).
  POSTROUTING -> KUBE-POSTROUTING: masquerade packets carrying the mark.
filter
  FORWARD, OUTPUT -> KUBE-SERVICES; INPUT, FORWARD -> KUBE-EXTERNAL-SERVICES: REJECT new
      connections to service ports without an endpoint (the client is refused at once); DROP
      those a Local policy cannot serve on this node, and load-balancer traffic from outside
      the source ranges (whatever reached here was not DNATed).
  FORWARD -> KUBE-FORWARD: drop what conntrack calls INVALID (a stray packet of a connection it
      does not track would otherwise reach a pod and be answered with a reset that kills the
      client's real connection), accept marked and established service traffic.

A service port with no endpoints keeps its KUBE-SERVICES rule and an empty
KUBE-SVC chain, so the large nat KUBE-SERVICES chain changes only when the set of
service ports changes, never on an endpoint change.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import ipaddress
import re
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from api.pb import core_pb2, discovery_pb2
from proxy import chains
from proxy.chains import FILTER, MASQ_MARK, NAT
from proxy.services import (
    PortEndpoints,
    ServicePort,
    compute_endpoints,
    compute_service_ports,
    service_key,
    slice_service_key,
)

# How a new connection to a service port without endpoints is refused. kube-proxy sends ICMP port
# unreachable for every protocol; for TCP we send a reset: the kernel drops an ICMP error that
# arrives while connect() still holds the socket (the client then waits for the SYN retransmit,
# a second later), and ICMP errors to a host are rate-limited (starved entirely when the node also
# sends that host redirects), whereas a RST is queued and refuses the connection at once.
REJECT = {
    "tcp": "-j REJECT --reject-with tcp-reset",
    "udp": "-j REJECT --reject-with icmp-port-unreachable",
    "sctp": "-j REJECT --reject-with icmp-port-unreachable",
}
# What KUBE-MARK-MASQ does, written inline in the 50,000 KUBE-SEP chains of a large cluster: every
# commit that adds a rule makes nf_tables validate every jump path from the built-in chains (the
# floor of a partial sync, see bench/proxy.py), and a jump per KUBE-SEP into KUBE-MARK-MASQ adds a
# chain visit per endpoint, per path, to that walk.
MARK_FOR_MASQ = f"-j MARK --set-xmark {MASQ_MARK}/{MASQ_MARK}"
NODEPORTS_LAST = ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
                  'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')

FIXED_RULES: dict[str, tuple[str, ...]] = {
    FILTER: (
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} '
        "-j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ),
    NAT: (
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --set-xmark {MASQ_MARK}/0x0",  # --xor-mark: clear it
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ {MARK_FOR_MASQ}",  # --or-mark
    ),
}

# Chains several services write into; each service's share is kept apart so a change
# to one service tells whether the shared chain must be rewritten.
SHARED: tuple[tuple[str, str], ...] = (
    (NAT, chains.SERVICES),
    (NAT, chains.NODEPORTS),
    (FILTER, chains.SERVICES),
    (FILTER, chains.EXTERNAL_SERVICES),
)


@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain that leads into the proxy's chains (kept out of the payload)."""

    table: str
    chain: str  # PREROUTING, OUTPUT, ...
    spec: tuple[str, ...]  # the rule after `-A <chain>`, as argv

    @property
    def saved(self) -> str:
        """The rule as iptables-save prints it."""
        args = list(self.spec)
        for i, a in enumerate(args[:-1]):
            if a == "--comment":
                args[i + 1] = quote(args[i + 1])
        return f"-A {self.chain} " + " ".join(args)


def _jump(table: str, chain: str, comment: str, target: str, *, new_only: bool = False) -> Jump:
    state = ("-m", "conntrack", "--ctstate", "NEW") if new_only else ()
    return Jump(table, chain, (*state, "-m", "comment", "--comment", comment, "-j", target))


_PORTALS = "kubernetes service portals"
_EXTERNAL = "kubernetes externally-visible service portals"
# In the order they end up in each built-in chain: in FORWARD the REJECTs of services
# without endpoints come before KUBE-FORWARD's accepts.
JUMPS: tuple[Jump, ...] = (
    _jump(FILTER, "INPUT", _EXTERNAL, chains.EXTERNAL_SERVICES, new_only=True),
    _jump(FILTER, "FORWARD", _PORTALS, chains.SERVICES, new_only=True),
    _jump(FILTER, "FORWARD", _EXTERNAL, chains.EXTERNAL_SERVICES, new_only=True),
    _jump(FILTER, "FORWARD", "kubernetes forwarding rules", chains.FORWARD),
    _jump(FILTER, "OUTPUT", _PORTALS, chains.SERVICES, new_only=True),
    _jump(NAT, "PREROUTING", _PORTALS, chains.SERVICES),
    _jump(NAT, "OUTPUT", _PORTALS, chains.SERVICES),
    _jump(NAT, "POSTROUTING", "kubernetes postrouting rules", chains.POSTROUTING),
)


@dataclass(frozen=True)
class Node:
    """What the rules need to know about the node they are written for."""

    name: str
    # The cluster's pod CIDR. When set, traffic to a cluster IP from outside it (a
    # node-local process, another host) is masqueraded, like kube-proxy --cluster-cidr.
    cluster_cidr: str = ""


@dataclass(frozen=True)
class ServiceRules:
    """Everything one Service contributes: its lines in the shared chains and the nat chains it owns."""

    shared: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    owned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # nat chain -> rules, in write order
    # UDP destinations ("ip:port", ":nodePort") -> IPs of the endpoints still serving, to clear conntrack entries
    # of the others.
    udp: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def count(self, table: str) -> int:
        n = sum(len(lines) for (t, _), lines in self.shared.items() if t == table)
        return n + (sum(len(r) for r in self.owned.values()) if table == NAT else 0)


EMPTY = ServiceRules()

_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE = re.compile(r"""["'\\]""")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def quote(text: str) -> str:
    """A match argument as iptables-save writes it: bare if only [A-Za-z0-9_-], else double-quoted.

    A control character cannot be written into a rule (a newline would end it before its target):
    such a value is refused, never written. compute_service_ports drops Services that hold one.
    """
    if _SAFE.fullmatch(text):
        return text
    if _CONTROL.search(text):
        raise ValueError(f"refusing to write a control character into an iptables rule: {text!r}")
    if '"' in text or "'" in text or "\\" in text:
        text = _ESCAPE.sub(lambda m: "\\" + m.group(0), text)
    return f'"{text}"'


@functools.lru_cache(maxsize=1024)
def probability(remaining: int) -> str:
    """1/remaining as the statistic match stores it (a 31-bit fraction) and iptables-save prints it."""
    stored = int(0x80000000 / remaining + 0.5)  # lround() in libxt_statistic
    return f"{stored / 0x80000000:.11f}"


def _cidr(value: str) -> str:
    return str(ipaddress.IPv4Network(value, strict=False)) if value else ""


def render_service(ports: Sequence[ServicePort], slices: Sequence[discovery_pb2.EndpointSlice],
                   node: Node) -> ServiceRules:
    """The rules of one Service's ports, given its EndpointSlices."""
    if not ports:
        return EMPTY
    shared: dict[tuple[str, str], list[str]] = {k: [] for k in SHARED}
    owned: dict[str, tuple[str, ...]] = {}
    udp: dict[str, tuple[str, ...]] = {}
    seen: set[tuple[str, str]] = set()
    cluster_cidr = _cidr(node.cluster_cidr)
    for sp in ports:
        if (sp.display, sp.protocol) in seen:  # two unnamed ports: the apiserver should have refused it
            continue
        seen.add((sp.display, sp.protocol))
        eps = compute_endpoints(slices, sp, node.name)
        _render_port(sp, eps, cluster_cidr, shared, owned)
        if sp.protocol == "UDP":
            ips = tuple(sorted(eps.serving, key=socket.inet_aton))
            for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
                udp[f"{ip}:{sp.port}"] = ips
            if sp.node_port:
                udp[f":{sp.node_port}"] = ips
    return ServiceRules({k: tuple(v) for k, v in shared.items() if v}, owned, udp)


def _render_port(sp: ServicePort, eps: PortEndpoints, cluster_cidr: str,
                 shared: dict[tuple[str, str], list[str]], owned: dict[str, tuple[str, ...]]) -> None:
    name, p = sp.display, sp.proto
    svc = chains.service_chain(name, sp.protocol)
    svl = chains.local_chain(name, sp.protocol)
    ext = chains.external_chain(name, sp.protocol) if sp.external else ""
    fw = chains.firewall_chain(name, sp.protocol) if sp.load_balancer_ips and sp.source_ranges else ""
    # The cluster-wide chain serves the Cluster policies, and under an external Local policy the node's own traffic.
    uses_svc = not sp.internal_local or bool(ext)
    uses_svl = sp.internal_local or (bool(ext) and sp.external_local)
    match = f"-p {p} -m comment --comment {quote(name + ' cluster IP')} -m {p} --dport {sp.port}"

    services = shared[(NAT, chains.SERVICES)]
    services.append(f"-A KUBE-SERVICES -d {sp.cluster_ip}/32 {match} -j {svl if sp.internal_local else svc}")
    for kind, ips, target in (("external IP", sp.external_ips, ext), ("loadbalancer IP", sp.load_balancer_ips,
                                                                     fw or ext)):
        comment = quote(f"{name} {kind}")
        for ip in ips:
            services.append(f"-A KUBE-SERVICES -d {ip}/32 -p {p} -m comment --comment {comment} "
                            f"-m {p} --dport {sp.port} -j {target}")
    if sp.node_port:
        shared[(NAT, chains.NODEPORTS)].append(
            f"-A KUBE-NODEPORTS -p {p} -m comment --comment {quote(name)} -m {p} --dport {sp.node_port} -j {ext}")
    if fw:
        comment = quote(f"{name} loadbalancer IP")
        owned[fw] = tuple(f"-A {fw} -s {cidr} -m comment --comment {comment} -j {ext}" for cidr in sp.source_ranges)
    if ext:
        owned[ext] = _external_rules(sp, ext, svc, svl, eps, cluster_cidr)
    _filter_rules(sp, eps, fw, shared)

    if uses_svc:
        masq = (f"-A {svc} ! -s {cluster_cidr} -d {sp.cluster_ip}/32 {match} -j KUBE-MARK-MASQ",) \
            if cluster_cidr else ()
        owned[svc] = (*masq, *_pick_rules(svc, sp, eps.cluster))
    if uses_svl:
        owned[svl] = _pick_rules(svl, sp, eps.local)

    plain = quote(name)
    hairpin = f" -m comment --comment {plain} {MARK_FOR_MASQ}"
    dnat = f" -p {p} -m comment --comment {plain}"
    used = sorted({*(eps.cluster if uses_svc else ()), *(eps.local if uses_svl else ())}, key=_endpoint_order)
    for ep, sep in zip(used, chains.endpoint_chains(name, sp.protocol, used), strict=True):
        recent = f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource" if sp.affinity_seconds else ""
        owned[sep] = (
            f"-A {sep} -s {ep.rpartition(':')[0]}/32{hairpin}",
            f"-A {sep}{dnat}{recent} -m {p} -j DNAT --to-destination {ep}",
        )


def _endpoint_order(ep: str) -> tuple[bytes, int]:
    ip, _, port = ep.rpartition(":")
    return socket.inet_aton(ip), int(port)


def _external_rules(sp: ServicePort, ext: str, svc: str, svl: str, eps: PortEndpoints,
                    cluster_cidr: str) -> tuple[str, ...]:
    name = sp.display
    if not sp.external_local:
        # Masquerade (so replies come back through this node) only when there is an endpoint to send to: an
        # unmarked packet of a service without endpoints meets the filter REJECT.
        masq = (f"-A {ext} -m comment --comment {quote(f'masquerade traffic for {name} external destinations')} "
                "-j KUBE-MARK-MASQ",) if eps.cluster else ()
        return (*masq, f"-A {ext} -j {svc}")
    # Local: only this node's endpoints, and no masquerade, so the endpoint sees the client's address.
    rules = []
    if cluster_cidr:  # a pod's traffic to an external address goes anywhere, as if out and back in
        rules.append(f"-A {ext} -s {cluster_cidr} -m comment "
                     f"--comment {quote(f'pod traffic for {name} external destinations')} -j {svc}")
    rules += [
        f"-A {ext} -m comment --comment {quote(f'masquerade LOCAL traffic for {name} external destinations')} "
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        f"-A {ext} -m comment --comment {quote(f'route LOCAL traffic for {name} external destinations')} "
        f"-m addrtype --src-type LOCAL -j {svc}",
        f"-A {ext} -j {svl}",
    ]
    return tuple(rules)


def _filter_rules(sp: ServicePort, eps: PortEndpoints, fw: str, shared: dict[tuple[str, str], list[str]]) -> None:
    """REJECT what has no endpoint at all, DROP what a Local policy cannot serve here or a firewall keeps out."""
    name, p = sp.display, sp.proto
    internal, external = shared[(FILTER, chains.SERVICES)], shared[(FILTER, chains.EXTERNAL_SERVICES)]
    if fw:
        comment = quote(f"{name} traffic not accepted by {fw}")
        for ip in sp.load_balancer_ips:
            external.append(f"-A KUBE-EXTERNAL-SERVICES -d {ip}/32 -p {p} -m comment --comment {comment} "
                            f"-m {p} --dport {sp.port} -j DROP")
    if not eps.cluster:
        comment, verdict = quote(f"{name} has no endpoints"), REJECT[p]
        internal.append(f"-A KUBE-SERVICES -d {sp.cluster_ip}/32 -p {p} -m comment --comment {comment} "
                        f"-m {p} --dport {sp.port} {verdict}")
    else:
        comment, verdict = quote(f"{name} has no local endpoints"), "-j DROP"
        if sp.internal_local and not eps.local:
            internal.append(f"-A KUBE-SERVICES -d {sp.cluster_ip}/32 -p {p} -m comment --comment {comment} "
                            f"-m {p} --dport {sp.port} {verdict}")
        if not sp.external_local or eps.local:
            return
    for ip in (*sp.external_ips, *sp.load_balancer_ips):
        external.append(f"-A KUBE-EXTERNAL-SERVICES -d {ip}/32 -p {p} -m comment --comment {comment} "
                        f"-m {p} --dport {sp.port} {verdict}")
    if sp.node_port:
        external.append(f"-A KUBE-EXTERNAL-SERVICES -p {p} -m comment --comment {comment} "
                        f"-m addrtype --dst-type LOCAL -m {p} --dport {sp.node_port} {verdict}")


def _pick_rules(chain: str, sp: ServicePort, eps: Sequence[str]) -> tuple[str, ...]:
    """A policy chain's rules: [ClientIP affinity checks], then a random pick among `eps` -> KUBE-SEP-*."""
    rules: list[str] = []
    name, affinity = sp.display, sp.affinity_seconds
    seps = chains.endpoint_chains(name, sp.protocol, eps)
    # "<name> -> <ip:port>" has spaces, so it is always quoted; escaping is needed only if the name has quotes.
    escape = _ESCAPE.search(name) is not None
    comments = [quote(f"{name} -> {ep}") if escape else f'"{name} -> {ep}"' for ep in eps]
    if affinity:
        for sep, comment in zip(seps, comments, strict=True):
            rules.append(f"-A {chain} -m comment --comment {comment} -m recent --rcheck --seconds {affinity} --reap "
                         f"--name {sep} --mask 255.255.255.255 --rsource -j {sep}")
    n = len(eps)
    for i, (sep, comment) in enumerate(zip(seps, comments, strict=True)):
        pick = f" -m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
        rules.append(f"-A {chain} -m comment --comment {comment}{pick} -j {sep}")
    return tuple(rules)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC for the duration: rendering 10,000 Services makes ~10^6 acyclic objects, and the
    collections they trigger (each scanning every live object) cost a fifth of the time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def compute_state(services: Iterable[core_pb2.Service], slices: Iterable[discovery_pb2.EndpointSlice],
                  node: Node) -> dict[str, ServiceRules]:
    """One ServiceRules per programmed Service, keyed `namespace/name`."""
    with gc_paused():
        return _compute_state(services, slices, node)


def slices_by_service(slices: Iterable[discovery_pb2.EndpointSlice]) -> dict[str, list[discovery_pb2.EndpointSlice]]:
    out: dict[str, list[discovery_pb2.EndpointSlice]] = {}
    for es in slices:
        key = slice_service_key(es)
        if key is not None:
            out.setdefault(key, []).append(es)
    return out


def _compute_state(services: Iterable[core_pb2.Service], slices: Iterable[discovery_pb2.EndpointSlice],
                   node: Node) -> dict[str, ServiceRules]:
    by_service = slices_by_service(slices)
    out: dict[str, ServiceRules] = {}
    for svc in services:
        key = service_key(svc.metadata.namespace, svc.metadata.name)
        rules = render_service(compute_service_ports(svc), by_service.get(key, ()), node)
        if rules is not EMPTY:
            out[key] = rules
    return out


def render_rules(services: Iterable[core_pb2.Service], slices: Iterable[discovery_pb2.EndpointSlice],
                 node: Node) -> str:
    """The whole iptables-restore payload (for --noflush) for these objects on `node`."""
    with gc_paused():
        return render_full(compute_state(services, slices, node))


def _shared_lines(state: Mapping[str, ServiceRules], key: tuple[str, str], order: Sequence[str]) -> list[str]:
    out: list[str] = []
    for k in order:
        lines = state[k].shared.get(key)
        if lines:
            out.extend(lines)
    if key == (NAT, chains.SERVICES):
        out.append(NODEPORTS_LAST)
    return out


def table_lines(table: str, declare: Iterable[str], rules: Iterable[str], delete: Iterable[str] = ()) -> list[str]:
    out = [f"*{table}"]
    out.extend(f":{c} - [0:0]" for c in declare)
    out.extend(rules)
    out.extend(f"-X {c}" for c in delete)
    out.append("COMMIT")
    return out


def render_full(state: Mapping[str, ServiceRules], *, stale: Iterable[str] = (),
                jumps: Iterable[str] = ()) -> str:
    """Every proxy chain, declared (so flushed under --noflush) and filled.

    `stale` names nat chains to delete (per-service chains found in the kernel that
    the state no longer has); `jumps` are extra lines (jump rule insertions or
    deletions in built-in chains) placed after the rules of their table, given as
    `table:line`.
    """
    order = sorted(state)
    stale = sorted(set(stale))
    extra = _split_jumps(jumps)
    filter_rules = [*FIXED_RULES[FILTER]]
    for key in SHARED:
        if key[0] == FILTER:
            filter_rules += _shared_lines(state, key, order)
    nat_declare = [*chains.FIXED[NAT]]
    nat_rules = [*FIXED_RULES[NAT]]
    for key in SHARED:
        if key[0] == NAT:
            nat_rules += _shared_lines(state, key, order)
    for k in order:
        for chain, rules in state[k].owned.items():
            nat_declare.append(chain)
            nat_rules.extend(rules)
    nat_declare += stale
    lines = table_lines(FILTER, chains.FIXED[FILTER], [*filter_rules, *extra[FILTER]])
    lines += table_lines(NAT, nat_declare, [*nat_rules, *extra[NAT]], stale)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Changes:
    """What a partial sync writes: the payload and the chains it declares."""

    payload: str  # "" when nothing changed
    written: tuple[str, ...]  # `table/chain` of every chain declared (rewritten or deleted)
    deleted: tuple[str, ...]  # nat chains deleted


def render_changes(old: Mapping[str, ServiceRules], new: Mapping[str, ServiceRules],
                   keys: Iterable[str]) -> Changes:
    """Only the chains that differ for the Services in `keys` (kube-proxy's partial sync).

    A shared chain (KUBE-SERVICES, KUBE-NODEPORTS, the filter reject chains) is
    rewritten whole, from `new`, only if one of these Services' share of it changed;
    a per-service chain is rewritten if its rules changed and deleted if it is gone.
    """
    shared_changed: set[tuple[str, str]] = set()
    write: dict[str, tuple[str, ...]] = {}
    delete: list[str] = []
    for key in keys:
        o, n = old.get(key, EMPTY), new.get(key, EMPTY)
        if o is n or o == n:
            continue
        for sk in SHARED:
            if o.shared.get(sk, ()) != n.shared.get(sk, ()):
                shared_changed.add(sk)
        for chain, rules in n.owned.items():
            if o.owned.get(chain) != rules:
                write[chain] = rules
        delete.extend(c for c in o.owned if c not in n.owned)
    if not shared_changed and not write and not delete:
        return Changes("", (), ())
    order = sorted(new) if shared_changed else []
    lines: list[str] = []
    written: list[str] = []
    filter_chains = [sk[1] for sk in SHARED if sk[0] == FILTER and sk in shared_changed]
    if filter_chains:
        rules = [line for sk in SHARED if sk[0] == FILTER and sk in shared_changed
                 for line in _shared_lines(new, sk, order)]
        lines += table_lines(FILTER, filter_chains, rules)
        written += [f"{FILTER}/{c}" for c in filter_chains]
    nat_shared = [sk[1] for sk in SHARED if sk[0] == NAT and sk in shared_changed]
    if nat_shared or write or delete:
        rules = [line for sk in SHARED if sk[0] == NAT and sk in shared_changed
                 for line in _shared_lines(new, sk, order)]
        for chain_rules in write.values():
            rules.extend(chain_rules)
        declare = [*nat_shared, *write, *delete]
        lines += table_lines(NAT, declare, rules, delete)
        written += [f"{NAT}/{c}" for c in declare]
    return Changes("\n".join(lines) + "\n", tuple(written), tuple(delete))


def count_rules(state: Mapping[str, ServiceRules]) -> dict[str, int]:
    """`-A` lines per table in the full payload of `state` (without the jump rules)."""
    out = {t: len(FIXED_RULES[t]) for t in (FILTER, NAT)}
    out[NAT] += 1  # NODEPORTS_LAST
    for rules in state.values():
        for t in out:
            out[t] += rules.count(t)
    return out


def render_full_batches(state: Mapping[str, ServiceRules], *, stale: Iterable[str] = (),
                        jumps: Iterable[str] = (), batch: int = 100) -> list[str]:
    """The full sync as a sequence of payloads of at most `batch` Services each.

    iptables-nft's restore slows down quadratically with the number of chains in
    one --noflush transaction (60,000 chains take minutes, not seconds), so a large
    state is written in slices: first the masquerade chains every other chain
    jumps to, then the per-service chains, last the shared chains, jump rules and
    stale-chain deletions. Each slice is atomic and consistent on its own: a
    Service's chains are all in one slice, and nothing references a chain before
    the slice that creates it.
    """
    order = sorted(state)
    if len(order) <= batch:
        return [render_full(state, stale=stale, jumps=jumps)]
    leaves = (chains.POSTROUTING, chains.MARK_MASQ)
    payloads = ["\n".join(table_lines(NAT, leaves, FIXED_RULES[NAT])) + "\n"]
    for i in range(0, len(order), batch):
        declare: list[str] = []
        rules: list[str] = []
        for k in order[i:i + batch]:
            for chain, chain_rules in state[k].owned.items():
                declare.append(chain)
                rules.extend(chain_rules)
        payloads.append("\n".join(table_lines(NAT, declare, rules)) + "\n")
    extra = _split_jumps(jumps)
    stale = sorted(set(stale))
    filter_rules = [*FIXED_RULES[FILTER]]
    for key in SHARED:
        if key[0] == FILTER:
            filter_rules += _shared_lines(state, key, order)
    nat_rules = [line for key in SHARED if key[0] == NAT for line in _shared_lines(state, key, order)]
    lines = table_lines(FILTER, chains.FIXED[FILTER], [*filter_rules, *extra[FILTER]])
    lines += table_lines(NAT, [chains.SERVICES, chains.NODEPORTS, *stale], [*nat_rules, *extra[NAT]], stale)
    payloads.append("\n".join(lines) + "\n")
    return payloads


def _split_jumps(jumps: Iterable[str]) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {FILTER: [], NAT: []}
    for item in jumps:
        table, _, line = item.partition(":")
        extra[table].append(line)
    return extra
