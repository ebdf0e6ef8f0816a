"""The proxy daemon: Services + EndpointSlices from the apiserver -> rules in this node's namespace.

Shaped like kube-proxy's proxier. Informers on Services and EndpointSlices
mark the Services they touch as changed and ask a bounded-frequency runner for
a sync; one writer (the runner) renders only those Services and writes only
what differs (a partial sync), or, on start, after an error, after a flush of
the rules and every --sync-period, everything (a full sync, which also
repairs what someone changed and removes what is stale). How rules are
written is the mode's (modes.py): iptables (the default) or nftables. The
proxier also answers the health checks of Local Services (healthcheck.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import structlog

from api.pb import core_pb2, discovery_pb2
from client.api import Client
from client.informer import Informer, key_of
from proxy import conntrack, metrics, modes, netns
from proxy.healthcheck import HealthCheckServer, compute_health_checks
from proxy.iptables import Iptables
from proxy.metrics import ProxyMetrics
from proxy.rules import Node, gc_paused
from proxy.runner import BoundedFrequencyRunner
from proxy.services import compute_service_ports, slice_service_key

log = structlog.get_logger()

SERVICE = "service"  # EndpointSlices by "namespace/service"


class RootNamespaceError(Exception):
    """The proxy was about to write rules into the machine's root network namespace."""


@dataclass
class ProxierConfig:
    node_name: str
    mode: str = "iptables"  # iptables or nftables
    cluster_cidr: str = ""  # masquerade traffic to cluster IPs from outside this CIDR
    min_sync_period: float = 0.1
    sync_period: float = 30.0  # full resync at least this often
    flush_check_period: float = 1.0  # how often to look for the rules
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
            f"refusing to write proxy rules into {where}: {verdict.reason}; the proxy runs inside a node's "
            "network namespace (pass --allow-root-netns on a machine that is itself the node)")


async def cleanup_rules(config: ProxierConfig) -> int:
    """Remove every rule, chain and table the proxy installed, in both modes; returns how many chains went."""
    check_namespace(config)
    removed = 0
    for name in modes.MODES:
        mode = modes.make(name, config.netns, timeout=config.command_timeout)
        removed += await mode.cleanup(batch=config.full_sync_batch * 6)
    log.info("rules_cleaned_up", chains=removed, netns=target_namespace(config))
    return removed


class Proxier:
    def __init__(self, client: Client, config: ProxierConfig) -> None:
        self.client = client
        self.config = config
        self.node = Node(config.node_name, config.cluster_cidr)
        self.mode: modes.Mode = modes.make(config.mode, config.netns, timeout=config.command_timeout)
        # conntrack (and any other command) runs in the node's namespace through this runner
        self.commands = Iptables(config.netns, timeout=config.command_timeout)
        self.metrics = ProxyMetrics()
        self.health = HealthCheckServer(config.netns)
        self.services: Informer[core_pb2.Service] = Informer(client, core_pb2.Service, name="services")
        self.slices: Informer[discovery_pb2.EndpointSlice] = Informer(client, discovery_pb2.EndpointSlice,
                                                                      name="endpointslices")
        self.slices.add_index(SERVICE, lambda es: [k] if (k := slice_service_key(es)) else [])
        self.services.add_handlers(self._touch, lambda _old, new: self._touch(new), self._touch)
        self.slices.add_handlers(self._touch_slice, self._slice_updated, self._touch_slice)
        self.runner = BoundedFrequencyRunner(self.sync, min_interval=config.min_sync_period,
                                             max_interval=config.sync_period)
        self.state: dict[str, Any] = {}  # what the kernel has, per Service
        self.synced = asyncio.Event()  # set after the first successful full sync
        self.last_changes: Any = None  # what the last partial sync wrote
        self.full_syncs = 0
        self.partial_syncs = 0
        self._dirty: set[str] = set()
        self._health_keys: set[str] = set()  # Services that have (or had) a healthCheckNodePort
        self._rendered: dict[str, tuple[tuple, Any]] = {}
        self._rule_counts: dict[str, int] = {}  # rules installed per table, kept up to date by each sync
        self._needs_full = True
        self._last_full = -math.inf
        self._failures = 0
        self._lock = asyncio.Lock()
        self._log = log.bind(node=config.node_name, mode=config.mode)

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        """Sync until cancelled. Rules stay in place on exit: a restarted proxy takes over without a gap."""
        check_namespace(self.config)
        try:
            with metrics.serving(self.metrics.registry, self.config.metrics_port, self.config.metrics_address):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.services.run())
                    tg.create_task(self.slices.run())
                    await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
                    self._log.info("proxy_started", netns=target_namespace(self.config),
                                   services=len(self.services.store))
                    tg.create_task(self.runner.run())
                    tg.create_task(self._watch_flushes())
        finally:
            self.health.close()

    def _touch(self, obj: core_pb2.Service) -> None:
        key = key_of(obj)
        self._dirty.add(key)
        if obj.spec.health_check_node_port:
            self._health_keys.add(key)
        self.runner.request()

    def _touch_slice(self, es: discovery_pb2.EndpointSlice) -> None:
        key = slice_service_key(es)
        if key is not None:
            self._dirty.add(key)
            self.runner.request()

    def _slice_updated(self, old: discovery_pb2.EndpointSlice, new: discovery_pb2.EndpointSlice) -> None:
        self._touch_slice(old)  # a slice relabelled to another Service changes both
        self._touch_slice(new)

    def request_full_sync(self) -> None:
        self._needs_full = True
        self.runner.request()

    # ------------------------------------------------------------ sync

    async def sync(self) -> None:
        """One sync: full when needed or due, else only the changed Services."""
        async with self._lock:
            full = self._needs_full or time.monotonic() - self._last_full >= self.config.sync_period
            kind = "full" if full else "partial"
            t0 = time.perf_counter()
            try:
                written = await (self._sync_full() if full else self._sync_partial())
            except modes.SyncErrors as e:
                self._needs_full = True
                self._failures += 1
                self.metrics.sync_errors.labels(kind).inc()
                delay = min(0.1 * 2 ** self._failures, 10.0)
                self._log.warning("sync_failed", sync=kind, error=str(e), retry_in_s=delay)
                asyncio.get_running_loop().call_later(delay, self.runner.request)
                return
            self._failures = 0
            elapsed = time.perf_counter() - t0
            if written is None:
                return
            self.metrics.sync_duration.labels(kind).observe(elapsed)
            self.metrics.last_sync.set(time.time())
            self.metrics.chains_written.labels(kind).inc(written)
            for table, n in self._rule_counts.items():
                self.metrics.rules.labels(table).set(n)
            self._log.info("rules_synced", sync=kind, services=len(self.state), chains=written,
                           duration_ms=round(elapsed * 1000, 1))
            await self._sync_health_checks()

    def _render(self, key: str) -> Any:
        """The rules of Service `key` from the informer caches; reused while none of its objects changed."""
        svc = self.services.get(key)
        if svc is None:
            self._rendered.pop(key, None)
            return self.mode.empty
        slices = self.slices.by_index(SERVICE, key)
        stamp = (svc.metadata.resource_version,
                 tuple(sorted((es.metadata.name, es.metadata.resource_version) for es in slices)))
        cached = self._rendered.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        rendered = self.mode.render(compute_service_ports(svc), slices, self.node)
        if svc.metadata.resource_version and all(es.metadata.resource_version for es in slices):
            self._rendered[key] = (stamp, rendered)  # objects from the apiserver always carry a resourceVersion
        return rendered

    async def _sync_partial(self) -> int | None:
        """Write what changed for the changed Services; None when nothing did."""
        if not self._dirty:
            return None
        dirty, self._dirty = self._dirty, set()
        new = dict(self.state)
        for key in dirty:
            rendered = self._render(key)
            if rendered is self.mode.empty:
                new.pop(key, None)
            else:
                new[key] = rendered
        changes = await self.mode.partial(self.state, new, dirty)
        if changes is None:
            self.state = new
            return None
        empty = self.mode.empty
        for key in dirty:  # adjust the rule counts by what changed, instead of recounting 10,000s of rules
            before, after = self.state.get(key, empty), new.get(key, empty)
            for table in self._rule_counts:
                self._rule_counts[table] += after.count(table) - before.count(table)
        old, self.state = self.state, new
        self.last_changes = changes
        await conntrack.apply(self.commands, conntrack.plan(old, new, dirty))
        self.partial_syncs += 1  # counted once the sync is complete, stale flows included
        return len(changes.written)

    async def _sync_full(self) -> int:
        """Write everything; the mode also repairs and removes what is stale."""
        self._dirty.clear()  # everything is rendered now; later changes are marked again
        self._rendered = {k: v for k, v in self._rendered.items() if k in self.services.store}
        state: dict[str, Any] = {}
        with gc_paused():
            for key in list(self.services.store):
                rendered = self._render(key)
                if rendered is not self.mode.empty:
                    state[key] = rendered
        written = await self.mode.full(state, batch=self.config.full_sync_batch)
        old, self.state = self.state, state
        self._rule_counts = self.mode.counts(state)
        self._needs_full = False
        self._last_full = time.monotonic()
        self.full_syncs += 1
        self.synced.set()
        await conntrack.apply(self.commands, conntrack.plan(old, state, set(old) | set(state)))
        return written

    async def _sync_health_checks(self) -> None:
        """Only Services with a healthCheckNodePort are looked at: a sync at 10,000 Services must stay small."""
        services = [s for k in list(self._health_keys) if (s := self.services.get(k)) is not None
                    and s.spec.health_check_node_port]
        self._health_keys = {key_of(s) for s in services}
        slices = {key_of(s): self.slices.by_index(SERVICE, key_of(s)) for s in services}
        await self.health.sync(compute_health_checks(services, slices, self.node.name))

    # ------------------------------------------------------------ flushes

    async def flushed(self) -> bool:
        """Whether the proxy's rules are gone (someone flushed the tables or deleted the table)."""
        return await self.mode.flushed()

    async def _watch_flushes(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_check_period)
            if self._needs_full or not self.synced.is_set():
                continue
            async with self._lock:
                try:
                    gone = await self.flushed()
                except modes.SyncErrors as e:
                    self._log.warning("flush_check_failed", error=str(e))
                    continue
            if gone:
                self.metrics.flushes.inc()
                self._log.warning("rules_flush_detected")
                self.request_full_sync()
