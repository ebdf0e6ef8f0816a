"""Prometheus metrics of the proxy and DNS daemons, each in its own registry, served over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sync_duration = Histogram(
            "kubelite_proxy_sync_proxy_rules_duration_seconds",
            "Time to render and apply the rules, by mode (full or partial).",
            ["mode"], buckets=SYNC_BUCKETS, registry=self.registry)
        self.last_sync = Gauge(
            "kubelite_proxy_sync_proxy_rules_last_timestamp_seconds",
            "Unix time of the last successful sync.", registry=self.registry)
        self.rules = Gauge(
            "kubelite_proxy_iptables_rules", "Rules the proxy has installed, by table.", ["table"],
            registry=self.registry)
        self.chains_written = Counter(
            "kubelite_proxy_chains_written_total", "Chains declared (rewritten or deleted) by syncs, by mode.",
            ["mode"], registry=self.registry)
        self.sync_errors = Counter(
            "kubelite_proxy_sync_proxy_rules_errors_total", "Syncs that failed, by mode.", ["mode"],
            registry=self.registry)
        self.flushes = Counter(
            "kubelite_proxy_flushes_detected_total", "Times the proxy's jump rules were found missing.",
            registry=self.registry)


class DnsMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queries = Counter(
            "kubelite_dns_queries_total", "Answered queries by transport and response code.", ["transport", "rcode"],
            registry=self.registry)
        self.duration = Histogram(
            "kubelite_dns_query_duration_seconds", "Time to answer a query.", ["transport"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05), registry=self.registry)
        self.records = Gauge("kubelite_dns_names", "Names the server answers for.", registry=self.registry)


@contextlib.contextmanager
def serving(registry: CollectorRegistry, port: int, address: str = "127.0.0.1") -> Iterator[int]:
    """Serve `registry` on address:port (port 0: not at all) for the duration of the block; yields the port."""
    if not port:
        yield 0
        return
    server, thread = start_http_server(port, address, registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
