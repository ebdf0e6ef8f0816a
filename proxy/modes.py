"""The two ways the proxy writes its rules: iptables (the default) and nftables.

Each mode renders a Service (pure, rules.py or nftrules.py), writes the whole
state (a full sync) or only what changed for some Services (a partial sync),
tells whether someone removed its rules, and removes them all (cleanup). The
proxier does everything else the same way for both.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from api.pb import discovery_pb2
from proxy import nfnetlink, nftrules, rules
from proxy.chains import FILTER, NAT, is_owned
from proxy.iptables import Iptables, IptablesError
from proxy.nft import Nft, NftError
from proxy.saved import parse_saved, plan_jumps, render_cleanup, stale_chains
from proxy.services import ServicePort

log = structlog.get_logger()

MODES = ("iptables", "nftables")
# The errors a sync can meet; the proxier retries after any of them with a full sync.
SyncErrors = (IptablesError, NftError, nfnetlink.NetlinkError, OSError, TimeoutError)


class Mode(Protocol):
    name: str
    empty: Any  # the rules of a Service with nothing to program

    def render(self, ports: Sequence[ServicePort], slices: Sequence[discovery_pb2.EndpointSlice],
               node: rules.Node) -> Any: ...

    async def full(self, state: Mapping[str, Any], *, batch: int) -> int:
        """Write everything; returns how many chains it wrote."""

    async def partial(self, old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str]) -> Any | None:
        """Write what changed for `keys`; returns the changes written (with `.written`), None if nothing did."""

    def counts(self, state: Mapping[str, Any]) -> dict[str, int]:
        """Rules installed, per table."""

    async def flushed(self) -> bool:
        """Whether the rules were removed behind the proxy's back."""

    async def cleanup(self, *, batch: int) -> int:
        """Remove everything this mode installed; returns how many chains (or tables) went."""


# One jump per table whose absence means someone flushed the table.
SENTINELS = tuple(j for j in rules.JUMPS if (j.table, j.chain) in ((NAT, "PREROUTING"), (FILTER, "OUTPUT")))


class IptablesMode:
    name = "iptables"
    empty = rules.EMPTY

    def __init__(self, netns: str, *, timeout: float) -> None:
        self.iptables = Iptables(netns, timeout=timeout)

    def render(self, ports: Sequence[ServicePort], slices: Sequence[discovery_pb2.EndpointSlice],
               node: rules.Node) -> rules.ServiceRules:
        return rules.render_service(ports, slices, node)

    async def full(self, state: Mapping[str, rules.ServiceRules], *, batch: int) -> int:
        saved = {t: parse_saved(await self.iptables.save(t)) for t in (FILTER, NAT)}
        stale = stale_chains(saved[NAT], state)
        jumps = plan_jumps(saved)
        for payload in rules.render_full_batches(state, stale=stale, jumps=jumps, batch=batch):
            await self.iptables.restore(payload)
        if jumps or stale:
            log.info("rules_repaired", jumps=len(jumps), stale_chains=len(stale))
        return sum(len(r.owned) for r in state.values()) + len(stale)

    async def partial(self, old: Mapping[str, rules.ServiceRules], new: Mapping[str, rules.ServiceRules],
                      keys: Iterable[str]) -> rules.Changes | None:
        changes = rules.render_changes(old, new, keys)
        if not changes.payload:
            return None
        await self.iptables.restore(changes.payload)
        return changes

    def counts(self, state: Mapping[str, rules.ServiceRules]) -> dict[str, int]:
        return rules.count_rules(state)

    async def flushed(self) -> bool:
        for jump in SENTINELS:
            found = await self.iptables.list_chain(jump.table, jump.chain)
            if found is None or jump.saved not in found:
                return True
        return False

    async def cleanup(self, *, batch: int) -> int:
        saved = {t: parse_saved(await self.iptables.save(t)) for t in (FILTER, NAT)}
        for payload in render_cleanup(saved, batch=batch):
            await self.iptables.restore(payload)
        return sum(1 for t, s in saved.items() for c in s.chains if is_owned(t, c))


class NftablesMode:
    """One table, `kubelite`: the skeleton through `nft -f`, every Service's chains and elements over netlink."""

    name = "nftables"
    empty = nftrules.EMPTY

    def __init__(self, netns: str, *, timeout: float) -> None:
        self.nft = Nft(netns, timeout=timeout)
        self.socket = nfnetlink.NftSocket(netns)
        self.timeout = timeout

    def render(self, ports: Sequence[ServicePort], slices: Sequence[discovery_pb2.EndpointSlice],
               node: rules.Node) -> nftrules.ServiceRules:
        return nftrules.render_service(ports, slices, node)

    async def _write(self, ops: list[nftrules.Op]) -> None:
        try:
            batch = nfnetlink.encode(ops)
        except nfnetlink.UnsupportedError as e:
            log.info("nft_written_by_cli", reason=str(e))
            await self.nft.apply(nftrules.text(ops))
            return
        await asyncio.to_thread(self.socket.apply, batch, timeout=self.timeout)

    async def full(self, state: Mapping[str, nftrules.ServiceRules], *, batch: int) -> int:
        await self.nft.apply(nftrules.skeleton())
        found_chains = await asyncio.to_thread(self.socket.names, nfnetlink.MSG_GETCHAIN, 3) or []
        found_sets = await asyncio.to_thread(self.socket.names, nfnetlink.MSG_GETSET, 2) or []
        stale_chains, stale_sets = nftrules.stale(found_chains, found_sets, state)
        await self._write(nftrules.service_ops(state, stale_chains=stale_chains, stale_sets=stale_sets))
        if stale_chains or stale_sets:
            log.info("rules_repaired", stale_chains=len(stale_chains), stale_sets=len(stale_sets))
        return sum(len(r.chains) for r in state.values()) + len(stale_chains)

    async def partial(self, old: Mapping[str, nftrules.ServiceRules], new: Mapping[str, nftrules.ServiceRules],
                      keys: Iterable[str]) -> nftrules.Changes | None:
        changes = nftrules.render_changes(old, new, keys)
        if not changes.ops:
            return None
        await self._write(list(changes.ops))
        return changes

    def counts(self, state: Mapping[str, nftrules.ServiceRules]) -> dict[str, int]:
        fixed = sum(len(r) for r in nftrules.FIXED_RULES.values())
        return {nftrules.TABLE: fixed + sum(r.count() for r in state.values())}

    async def flushed(self) -> bool:
        count = await asyncio.to_thread(self.socket.rule_count, "nat-prerouting")
        return count != len(nftrules.FIXED_RULES["nat-prerouting"])

    async def cleanup(self, *, batch: int) -> int:
        self.socket.close()
        if shutil.which("nft") is None:
            return 0  # without nft installed there cannot be a table of ours
        return 1 if await self.nft.delete_table() else 0


def make(name: str, netns: str, *, timeout: float) -> Mode:
    if name == "iptables":
        return IptablesMode(netns, timeout=timeout)
    if name == "nftables":
        return NftablesMode(netns, timeout=timeout)
    raise ValueError(f"unknown proxy mode {name!r}; known: {', '.join(MODES)}")



