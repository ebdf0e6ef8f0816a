"""A tiny iptables evaluator for the subset of rules the proxy renders, to trace packets without a kernel.

`Ruleset(payload)` parses iptables-restore text (plus the jump rules the proxy
keeps in the built-in chains); `trace(packet)` follows a new connection's first
packet through nat PREROUTING or OUTPUT, the filter table and nat POSTROUTING,
and returns every possible outcome with its probability: the statistic match
forks the trace, so the outcomes of a service with n endpoints are n DNATs
whose probabilities can be summed exactly. Anything outside the subset raises,
so a rule the proxy starts emitting cannot be silently misread.

It also simulates applying payloads to a kernel's tables (`Kernel`), with
--noflush semantics, for tests of partial and batched syncs.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from proxy.rules import JUMPS

BUILTIN = {
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}


class UnsupportedRuleError(Exception):
    pass


@dataclass(frozen=True)
class Rule:
    chain: str
    text: str
    src: tuple[bool, str] | None = None  # (negated, cidr)
    dst: tuple[bool, str] | None = None
    proto: str | None = None
    dport: int | None = None
    comment: str | None = None
    dst_type: str | None = None
    src_type: str | None = None
    probability: float | None = None
    recent_check: tuple[str, int] | None = None  # (name, seconds)
    recent_set: str | None = None
    mark: tuple[bool, int, int] | None = None  # (negated, value, mask)
    ctstate: frozenset[str] | None = None
    target: str = ""
    to_destination: str | None = None
    set_xmark: tuple[int, int] | None = None


def parse_rule(line: str) -> Rule:
    tokens = shlex.split(line)
    if tokens[0] != "-A":
        raise UnsupportedRuleError(line)
    fields: dict[str, object] = {"chain": tokens[1], "text": line}
    i, negate = 2, False
    while i < len(tokens):
        t = tokens[i]
        arg = tokens[i + 1] if i + 1 < len(tokens) else ""
        step = 2
        if t == "!":
            negate, step = True, 1
        elif t in ("-s", "-d"):
            fields["src" if t == "-s" else "dst"] = (negate, arg)
            negate = False
        elif t == "-p":
            fields["proto"] = arg
        elif t == "-m":
            if arg not in ("comment", "tcp", "udp", "sctp", "addrtype", "statistic", "recent", "mark", "conntrack"):
                raise UnsupportedRuleError(f"match {arg}: {line}")
        elif t == "--comment":
            fields["comment"] = arg
        elif t == "--dport":
            fields["dport"] = int(arg)
        elif t == "--dst-type":
            fields["dst_type"] = arg
        elif t == "--src-type":
            fields["src_type"] = arg
        elif t == "--mode":
            if arg != "random":
                raise UnsupportedRuleError(line)
        elif t == "--probability":
            fields["probability"] = float(arg)
        elif t == "--rcheck":
            fields["recent_check"] = ("", 0)
            step = 1
        elif t == "--set":
            fields["recent_set"] = ""
            step = 1
        elif t in ("--reap", "--rsource", "--random-fully"):
            step = 1
        elif t == "--seconds":
            fields["recent_check"] = (fields["recent_check"][0], int(arg))  # type: ignore[index]
        elif t == "--name":
            if "recent_set" in fields:
                fields["recent_set"] = arg
            else:
                fields["recent_check"] = (arg, fields["recent_check"][1])  # type: ignore[index]
        elif t == "--mask":
            if arg != "255.255.255.255":
                raise UnsupportedRuleError(line)
        elif t == "--mark":
            value, _, mask = arg.partition("/")
            fields["mark"] = (negate, int(value, 16), int(mask or "0xffffffff", 16))
            negate = False
        elif t == "--ctstate":
            fields["ctstate"] = frozenset(arg.split(","))
        elif t == "-j":
            fields["target"] = arg
        elif t == "--to-destination":
            fields["to_destination"] = arg
        elif t == "--set-xmark":
            value, _, mask = arg.partition("/")
            fields["set_xmark"] = (int(value, 16), int(mask, 16))
        elif t == "--reject-with":
            expected = "tcp-reset" if fields.get("proto") == "tcp" else "icmp-port-unreachable"
            if arg != expected:
                raise UnsupportedRuleError(line)
        else:
            raise UnsupportedRuleError(f"{t!r} in {line}")
        i += step
    if negate:
        raise UnsupportedRuleError(f"dangling '!': {line}")
    return Rule(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"


@dataclass(frozen=True)
class Outcome:
    probability: float
    chains: tuple[str, ...]  # every chain entered, in order (nat, filter, nat POSTROUTING)
    dnat: str | None  # "ip:port" the connection was DNATed to
    verdict: str  # ACCEPT, REJECT or DROP
    masquerade: bool  # whether POSTROUTING masqueraded it
    recent: frozenset[tuple[str, str]]  # (recent list, source address) after this packet


@dataclass(frozen=True)
class _State:
    packet: Packet
    local: frozenset[str]
    mark: int = 0
    dnat: str | None = None
    masquerade: bool = False
    recent: frozenset[tuple[str, str]] = frozenset()
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class _End:
    state: _State
    probability: float
    verdict: str | None  # None: fell off the chain (or RETURN): the caller continues


def _in(addr: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(addr) in ipaddress.IPv4Network(cidr, strict=False)


class Ruleset:
    def __init__(self, payload: str, *, jumps: bool = True) -> None:
        kernel = Kernel()
        kernel.restore(payload)
        if jumps:
            for j in JUMPS:
                kernel.tables[j.table].setdefault(j.chain, []).append(j.saved)
        self.tables = {t: {c: [parse_rule(r) for r in rules] for c, rules in chains.items()}
                       for t, chains in kernel.tables.items()}

    def _matches(self, rule: Rule, s: _State) -> bool:
        p = s.packet
        for spec, addr in ((rule.src, p.src), (rule.dst, p.dst)):
            if spec is not None and _in(addr, spec[1]) == spec[0]:
                return False
        if rule.proto is not None and rule.proto != p.proto:
            return False
        if rule.dport is not None and rule.dport != p.dport:
            return False
        if rule.dst_type is not None and (rule.dst_type != "LOCAL" or p.dst not in s.local):
            return False
        if rule.src_type is not None and (rule.src_type != "LOCAL" or p.src not in s.local):
            return False
        if rule.mark is not None:
            negated, value, mask = rule.mark
            if ((s.mark & mask) == value) == negated:
                return False
        if rule.ctstate is not None and "NEW" not in rule.ctstate:
            return False  # traces are of new connections
        return not (rule.recent_check is not None and (rule.recent_check[0], p.src) not in s.recent)

    def _chain(self, table: str, chain: str, s: _State, prob: float, depth: int = 0) -> list[_End]:
        if depth > 20:
            raise UnsupportedRuleError(f"jump loop at {chain}")
        rules = self.tables[table].get(chain)
        if rules is None:
            raise UnsupportedRuleError(f"jump to missing chain {table}/{chain}")
        return self._walk(table, rules, 0, replace(s, path=(*s.path, chain)), prob, depth)

    def _walk(self, table: str, rules: list[Rule], i: int, st: _State, pr: float, depth: int) -> list[_End]:
        """Walk `rules` from index i; every way the packet can leave, with its probability."""
        ends: list[_End] = []
        while i < len(rules):
            rule = rules[i]
            i += 1
            if not self._matches(rule, st):
                continue
            if rule.probability is not None:
                # Fork: not picked (continue with the next rule) or picked (take this rule's target).
                ends += self._walk(table, rules, i, st, pr * (1 - rule.probability), depth)
                pr *= rule.probability
            if rule.recent_set is not None:
                st = replace(st, recent=st.recent | {(rule.recent_set, st.packet.src)})
            t = rule.target
            if t == "MARK":
                value, mask = rule.set_xmark  # type: ignore[misc]
                st = replace(st, mark=(st.mark & ~mask) ^ value)
                continue
            if t == "RETURN":
                return [*ends, _End(st, pr, None)]
            if t == "DNAT":
                return [*ends, _End(replace(st, dnat=rule.to_destination), pr, "ACCEPT")]
            if t == "MASQUERADE":
                return [*ends, _End(replace(st, masquerade=True), pr, "ACCEPT")]
            if t in ("ACCEPT", "REJECT", "DROP"):
                return [*ends, _End(st, pr, t)]
            if t in self.tables[table]:
                for end in self._chain(table, t, st, pr, depth + 1):
                    if end.verdict is None:  # came back: go on with the next rule here
                        ends += self._walk(table, rules, i, end.state, end.probability, depth)
                    else:
                        ends.append(end)
                return ends
            raise UnsupportedRuleError(f"target {t}: {rule.text}")
        return [*ends, _End(st, pr, None)]

    def trace(self, packet: Packet, *, local: Iterable[str] = (), output: bool = False,
              recent: frozenset[tuple[str, str]] = frozenset()) -> list[Outcome]:
        """All outcomes of a new connection's first packet: arriving from a pod (PREROUTING) or sent locally."""
        start = _State(packet, frozenset(local), recent=recent)
        outcomes: list[Outcome] = []
        for nat in self._chain("nat", "OUTPUT" if output else "PREROUTING", start, 1.0):
            s = nat.state
            if s.dnat is not None:
                ip, _, port = s.dnat.rpartition(":")
                s = replace(s, packet=replace(s.packet, dst=ip, dport=int(port)))
            hook = "OUTPUT" if output else "INPUT" if s.packet.dst in s.local else "FORWARD"
            for flt in self._chain("filter", hook, s, nat.probability):
                f = flt.state
                verdict = flt.verdict or "ACCEPT"
                masq = False
                if verdict == "ACCEPT" and hook != "INPUT":
                    post = self._chain("nat", "POSTROUTING", f, flt.probability)
                    if len(post) != 1:
                        raise UnsupportedRuleError("POSTROUTING forked")
                    f = post[0].state
                    masq = f.masquerade
                outcomes.append(Outcome(flt.probability, f.path, nat.state.dnat, verdict, masq, f.recent))
        return outcomes


def distribution(outcomes: list[Outcome]) -> dict[str | None, float]:
    """Probability of each DNAT destination (None: not DNATed)."""
    out: dict[str | None, float] = {}
    for o in outcomes:
        out[o.dnat] = out.get(o.dnat, 0.0) + o.probability
    return out


@dataclass
class Kernel:
    """The nat and filter tables as iptables-restore --noflush would leave them (chain -> rule lines)."""

    tables: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {t: {c: [] for c in chains} for t, chains in BUILTIN.items()})

    def restore(self, payload: str) -> None:
        """Apply a payload like `iptables-restore --noflush`: all of a table's changes or, on error, none."""
        table: str | None = None
        work: dict[str, list[str]] = {}
        for line in payload.splitlines():
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:]
                work = {c: list(r) for c, r in self.tables[table].items()}
            elif line == "COMMIT":
                assert table is not None
                self._check(table, work)
                self.tables[table] = work
                table = None
            elif line.startswith(":"):
                work[line[1:].split(" ", 1)[0]] = []
            else:
                op, chain, *rest = line.split(" ", 2)
                if chain not in work:
                    raise UnsupportedRuleError(f"{op} into missing chain {chain}: {line}")
                if op == "-A":
                    work[chain].append(line)
                elif op == "-I":
                    num, _, spec = rest[0].partition(" ")
                    work[chain].insert(int(num) - 1, f"-A {chain} {spec}")
                elif op == "-D":
                    work[chain].remove(f"-A {chain} {rest[0]}")
                elif op == "-X":
                    if work[chain]:
                        raise UnsupportedRuleError(f"-X of non-empty chain {chain}")
                    del work[chain]
                else:
                    raise UnsupportedRuleError(line)

    def _check(self, table: str, work: dict[str, list[str]]) -> None:
        """Every jump target exists (the kernel refuses the transaction otherwise)."""
        for rules in work.values():
            for line in rules:
                target = line.rpartition(" -j ")[2].split(" ", 1)[0]
                if target.startswith("KUBE-") and target not in work:
                    raise UnsupportedRuleError(f"jump to missing chain {target} in {table}")

    def user_chains(self, table: str) -> dict[str, list[str]]:
        return {c: r for c, r in self.tables[table].items() if c not in BUILTIN[table]}
