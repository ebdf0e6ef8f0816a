"""What iptables-save shows, and the plans made from it: jump-rule repair, stale chains, cleanup.

Pure like rules.py: the proxier reads the tables, these functions decide, the
proxier writes the payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proxy import chains
from proxy.chains import FILTER, NAT
from proxy.rules import JUMPS, ServiceRules, table_lines


@dataclass(frozen=True)
class Saved:
    """One table as iptables-save printed it."""

    chains: tuple[str, ...]
    rules: tuple[str, ...]


def parse_saved(text: str) -> Saved:
    found_chains: list[str] = []
    rules: list[str] = []
    for line in text.splitlines():
        if line.startswith(":"):
            found_chains.append(line[1:].split(" ", 1)[0])
        elif line.startswith("-A "):
            rules.append(line)
    return Saved(tuple(found_chains), tuple(rules))


def plan_jumps(saved: Mapping[str, Saved]) -> list[str]:
    """`table:line` restore lines that leave exactly one of each jump rule in the built-in chains."""
    out: list[str] = []
    # Inserted at the top in reverse, so that a fresh chain holds them in JUMPS order.
    for jump in reversed(JUMPS):
        line = jump.saved
        have = saved[jump.table].rules.count(line)
        if have == 0:
            out.append(f"{jump.table}:-I {jump.chain} 1 " + line.split(" ", 2)[2])
        for _ in range(have - 1):
            out.append(f"{jump.table}:-D" + line[2:])
    return out


def stale_chains(saved_nat: Saved, state: Mapping[str, ServiceRules]) -> list[str]:
    """Per-service nat chains in the kernel that no Service in `state` owns."""
    wanted: set[str] = set()
    for rules in state.values():
        wanted.update(rules.owned)
    return [c for c in saved_nat.chains if chains.is_per_service(c) and c not in wanted]


def render_cleanup(saved: Mapping[str, Saved], *, batch: int = 600) -> list[str]:
    """Payloads that remove everything the proxy installed: jump rules, then every owned chain.

    First the jump rules go and the shared chains are emptied, so nothing leads into
    the per-service chains any more; then those are emptied and deleted, `batch`
    chains per transaction (see render_full_batches for why); last the fixed chains.
    """
    payloads: list[list[str]] = []
    first: list[str] = []
    per_service: list[str] = []
    fixed_nat: list[str] = []
    for table in (FILTER, NAT):
        tab = saved.get(table)
        if tab is None:
            continue
        owned = [c for c in tab.chains if chains.is_owned(table, c)]
        deletes = []
        for rule in tab.rules:
            chain, _, rest = rule[3:].partition(" ")
            target = rest.rpartition("-j ")[2].split(" ", 1)[0]
            if not chains.is_owned(table, chain) and chains.is_owned(table, target):
                deletes.append("-D" + rule[2:])
        if table == FILTER:
            if owned or deletes:
                first += table_lines(FILTER, owned, deletes, owned)
            continue
        per_service = [c for c in owned if chains.is_per_service(c)]
        fixed_nat = [c for c in owned if not chains.is_per_service(c)]
        shared = [c for c in fixed_nat if c in (chains.SERVICES, chains.NODEPORTS)]
        if deletes or shared:
            first += table_lines(NAT, shared, deletes)
    if first:
        payloads.append(first)
    for i in range(0, len(per_service), batch):
        payloads.append(table_lines(NAT, per_service[i:i + batch], ()))
    for i in range(0, len(per_service), batch):
        payloads.append(table_lines(NAT, (), (), per_service[i:i + batch]))
    if fixed_nat:
        payloads.append(table_lines(NAT, fixed_nat, (), fixed_nat))
    return ["\n".join(p) + "\n" for p in payloads]
