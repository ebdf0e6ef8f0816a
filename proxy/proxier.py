"""The proxy daemon: Services + Endpoints from the apiserver -> iptables rules in this node's namespace.

Shaped like kube-proxy's iptables proxier. Informers on Services and Endpoints
mark the Services they touch as changed and ask a bounded-frequency runner for
a sync; one writer (the runner) renders only those Services and writes only the
chains that differ (a partial sync), or, on start, after an error, after a
flush of the tables and every --sync-period, everything (a full sync, which also
restores the jump rules and removes stale chains).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import structlog

from api.pb import core_pb2
from client.api import Client
from client.informer import Informer, key_of
from proxy import conntrack, metrics, netns
from proxy.chains import FILTER, NAT, is_owned
from proxy.iptables import Iptables, IptablesError
from proxy.metrics import ProxyMetrics
from proxy.rules import (
    EMPTY,
    JUMPS,
    Changes,
    Node,
    ServiceRules,
    count_rules,
    gc_paused,
    render_changes,
    render_full_batches,
    render_service,
)
from proxy.runner import BoundedFrequencyRunner
from proxy.saved import parse_saved, plan_jumps, render_cleanup, stale_chains
from proxy.services import compute_service_ports

log = structlog.get_logger()

# One jump per table whose absence means someone flushed the table.
SENTINELS = tuple(j for j in JUMPS if (j.table, j.chain) in ((NAT, "PREROUTING"), (FILTER, "OUTPUT")))


class RootNamespaceError(Exception):
    """The proxy was about to write rules into the machine's root network namespace."""


@dataclass
class ProxierConfig:
    node_name: str
    cluster_cidr: str = ""  # masquerade traffic to cluster IPs from outside this CIDR
    min_sync_period: float = 0.1
    sync_period: float = 30.0  # full resync at least this often
    flush_check_period: float = 1.0  # how often to look for the jump rules
    full_sync_batch: int = 100  # Services per iptables-restore transaction in a full sync
    netns: str = ""  # write rules into this named namespace (or path) instead of the proxy's own
    allow_root_netns: bool = False
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    command_timeout: float = 300.0


def target_namespace(config: ProxierConfig) -> str:
    return netns.netns_path(config.netns) if config.netns else "/proc/self/ns/net"


def check_namespace(config: ProxierConfig) -> None:
    """Refuse the root network namespace unless allowed (RootNamespaceError)."""
    where = target_namespace(config)
    verdict = netns.check(where)
    if verdict.root and not config.allow_root_netns:
        raise RootNamespaceError(
            f"refusing to write iptables rules into {where}: {verdict.reason}; the proxy runs inside a node's "
            "network namespace (pass --allow-root-netns on a machine that is itself the node)")


async def cleanup_rules(config: ProxierConfig) -> int:
    """Remove every rule and chain the proxy installed; returns how many chains were removed."""
    check_namespace(config)
    iptables = Iptables(config.netns, timeout=config.command_timeout)
    saved = {t: parse_saved(await iptables.save(t)) for t in (FILTER, NAT)}
    for payload in render_cleanup(saved, batch=config.full_sync_batch * 6):
        await iptables.restore(payload)
    removed = sum(1 for t, s in saved.items() for c in s.chains if is_owned(t, c))
    log.info("rules_cleaned_up", chains=removed, netns=target_namespace(config))
    return removed


class Proxier:
    def __init__(self, client: Client, config: ProxierConfig) -> None:
        self.client = client
        self.config = config
        self.node = Node(config.node_name, config.cluster_cidr)
        self.iptables = Iptables(config.netns, timeout=config.command_timeout)
        self.metrics = ProxyMetrics()
        self.services: Informer[core_pb2.Service] = Informer(client, core_pb2.Service, name="services")
        self.endpoints: Informer[core_pb2.Endpoints] = Informer(client, core_pb2.Endpoints, name="endpoints")
        for informer in (self.services, self.endpoints):
            informer.add_handlers(self._touch, lambda _old, new: self._touch(new), self._touch)
        self.runner = BoundedFrequencyRunner(self.sync, min_interval=config.min_sync_period,
                                             max_interval=config.sync_period)
        self.state: dict[str, ServiceRules] = {}  # what the kernel has, per Service
        self.synced = asyncio.Event()  # set after the first successful full sync
        self.last_changes: Changes | None = None  # what the last partial sync wrote
        self.full_syncs = 0
        self.partial_syncs = 0
        self._dirty: set[str] = set()
        self._rendered: dict[str, tuple[tuple[str, str], ServiceRules]] = {}
        self._rule_counts: dict[str, int] = {}  # rules installed per table, kept up to date by each sync
        self._needs_full = True
        self._last_full = -math.inf
        self._failures = 0
        self._lock = asyncio.Lock()
        self._log = log.bind(node=config.node_name)

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        """Sync until cancelled. Rules stay in place on exit: a restarted proxy takes over without a gap."""
        check_namespace(self.config)
        with metrics.serving(self.metrics.registry, self.config.metrics_port, self.config.metrics_address):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.services.run())
                tg.create_task(self.endpoints.run())
                await asyncio.gather(self.services.synced.wait(), self.endpoints.synced.wait())
                self._log.info("proxy_started", netns=target_namespace(self.config),
                               services=len(self.services.store))
                tg.create_task(self.runner.run())
                tg.create_task(self._watch_flushes())

    def _touch(self, obj: core_pb2.Service | core_pb2.Endpoints) -> None:
        self._dirty.add(key_of(obj))
        self.runner.request()

    def request_full_sync(self) -> None:
        self._needs_full = True
        self.runner.request()

    # ------------------------------------------------------------ sync

    async def sync(self) -> None:
        """One sync: full when needed or due, else only the changed Services."""
        async with self._lock:
            full = self._needs_full or time.monotonic() - self._last_full >= self.config.sync_period
            mode = "full" if full else "partial"
            t0 = time.perf_counter()
            try:
                written = await (self._sync_full() if full else self._sync_partial())
            except (IptablesError, OSError, TimeoutError) as e:
                self._needs_full = True
                self._failures += 1
                self.metrics.sync_errors.labels(mode).inc()
                delay = min(0.1 * 2 ** self._failures, 10.0)
                self._log.warning("sync_failed", mode=mode, error=str(e), retry_in_s=delay)
                asyncio.get_running_loop().call_later(delay, self.runner.request)
                return
            self._failures = 0
            elapsed = time.perf_counter() - t0
            if written is None:
                return
            self.metrics.sync_duration.labels(mode).observe(elapsed)
            self.metrics.last_sync.set(time.time())
            self.metrics.chains_written.labels(mode).inc(written)
            for table, n in self._rule_counts.items():
                self.metrics.rules.labels(table).set(n)
            self._log.info("rules_synced", mode=mode, services=len(self.state), chains=written,
                           duration_ms=round(elapsed * 1000, 1))

    def _render(self, key: str) -> ServiceRules:
        """The rules of Service `key` from the informer caches; reused while neither object changed."""
        svc = self.services.get(key)
        if svc is None:
            self._rendered.pop(key, None)
            return EMPTY
        ep = self.endpoints.get(key)
        stamp = (svc.metadata.resource_version, ep.metadata.resource_version if ep is not None else "-")
        cached = self._rendered.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        rules = render_service(compute_service_ports(svc), ep, self.node)
        if all(stamp):  # objects from the apiserver always carry a resourceVersion
            self._rendered[key] = (stamp, rules)
        return rules

    async def _sync_partial(self) -> int | None:
        """Write the chains of changed Services; None when nothing changed."""
        if not self._dirty:
            return None
        dirty, self._dirty = self._dirty, set()
        new = dict(self.state)
        for key in dirty:
            rules = self._render(key)
            if rules is EMPTY:
                new.pop(key, None)
            else:
                new[key] = rules
        changes = render_changes(self.state, new, dirty)
        if not changes.payload:
            self.state = new
            return None
        await self.iptables.restore(changes.payload)
        for key in dirty:  # adjust the rule counts by what changed, instead of recounting 10,000s of rules
            before, after = self.state.get(key, EMPTY), new.get(key, EMPTY)
            for table in self._rule_counts:
                self._rule_counts[table] += after.count(table) - before.count(table)
        old, self.state = self.state, new
        self.last_changes = changes
        await conntrack.apply(self.iptables, conntrack.plan(old, new, dirty))
        self.partial_syncs += 1  # counted once the sync is complete, stale flows included
        return len(changes.written)

    async def _sync_full(self) -> int:
        """Write every chain, restore the jump rules, delete stale chains."""
        self._dirty.clear()  # everything is rendered now; later changes are marked again
        self._rendered = {k: v for k, v in self._rendered.items() if k in self.services.store}
        state: dict[str, ServiceRules] = {}
        with gc_paused():
            for key in list(self.services.store):
                rules = self._render(key)
                if rules is not EMPTY:
                    state[key] = rules
        saved = {t: parse_saved(await self.iptables.save(t)) for t in (FILTER, NAT)}
        stale = stale_chains(saved[NAT], state)
        jumps = plan_jumps(saved)
        payloads = render_full_batches(state, stale=stale, jumps=jumps, batch=self.config.full_sync_batch)
        for payload in payloads:
            await self.iptables.restore(payload)
        old, self.state = self.state, state
        self._rule_counts = count_rules(state)
        self._needs_full = False
        self._last_full = time.monotonic()
        self.full_syncs += 1
        self.synced.set()
        await conntrack.apply(self.iptables, conntrack.plan(old, state, set(old) | set(state)))
        if jumps or stale:
            self._log.info("rules_repaired", jumps=len(jumps), stale_chains=len(stale))
        return sum(len(r.owned) for r in state.values()) + len(stale)

    # ------------------------------------------------------------ flushes

    async def flushed(self) -> bool:
        """Whether a jump rule the proxy installed is gone (someone flushed the table)."""
        for jump in SENTINELS:
            rules = await self.iptables.list_chain(jump.table, jump.chain)
            if rules is None or jump.saved not in rules:
                return True
        return False

    async def _watch_flushes(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_check_period)
            if self._needs_full or not self.synced.is_set():
                continue
            async with self._lock:
                try:
                    gone = await self.flushed()
                except (OSError, TimeoutError) as e:
                    self._log.warning("flush_check_failed", error=str(e))
                    continue
            if gone:
                self.metrics.flushes.inc()
                self._log.warning("rules_flush_detected")
                self.request_full_sync()
