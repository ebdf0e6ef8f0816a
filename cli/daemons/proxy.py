"""`kubelite proxy`: the service proxy (iptables or nftables), one per node."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from typing import NoReturn

import click

from api import logs
from cli.common import connection_options
from cli.daemons import serve
from client.api import Client
from client.config import ClientConfig


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.command()
@connection_options
@click.option("--node-name", default="", help="the node this proxy programs (required unless --cleanup)")
@click.option("--mode", type=click.Choice(["iptables", "nftables"]), default="iptables", show_default=True,
              help="iptables rules in kube-proxy's shape, or one nftables table `kubelite` with verdict maps")
@click.option("--cluster-cidr", default="",
              help="the cluster's pod CIDR; traffic to cluster IPs from outside it is masqueraded")
@click.option("--min-sync-period", type=float, default=0.1, show_default=True,
              help="at most one sync per this many seconds; a change is applied within it")
@click.option("--sync-period", type=float, default=30.0, show_default=True,
              help="rewrite every rule at least this often (seconds)")
@click.option("--flush-check-period", type=float, default=1.0, show_default=True,
              help="how often to check that nobody flushed the rules (seconds)")
@click.option("--full-sync-batch", type=int, default=100, show_default=True,
              help="Services per iptables-restore transaction in a full sync")
@click.option("--netns", default="",
              help="write the rules into this named network namespace (or /path) instead of the proxy's own")
@click.option("--allow-root-netns", is_flag=True,
              help="allow writing rules into the machine's root network namespace (a VM that is itself the node)")
@click.option("--cleanup", is_flag=True,
              help="remove every rule, chain and table the proxy installed in either mode, then exit")
@click.option("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
@click.option("--metrics-address", default="127.0.0.1", show_default=True, help="address the metrics port binds")
@click.option("--log-level", default="info")
def proxy(conn: ClientConfig, node_name: str, mode: str, cluster_cidr: str, min_sync_period: float,
          sync_period: float, flush_check_period: float, full_sync_batch: int, netns: str, allow_root_netns: bool,
          cleanup: bool, metrics_port: int, metrics_address: str, log_level: str) -> None:
    """Turn Services and EndpointSlices into iptables or nftables rules in this node's network namespace."""
    from proxy.modes import SyncErrors
    from proxy.proxier import Proxier, ProxierConfig, RootNamespaceError, check_namespace, cleanup_rules

    if not cleanup and not node_name:
        raise click.UsageError("--node-name is required")
    if cluster_cidr:
        try:
            ipaddress.IPv4Network(cluster_cidr, strict=False)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--cluster-cidr") from None
    if min_sync_period < 0 or sync_period <= 0 or flush_check_period <= 0 or full_sync_batch <= 0:
        raise click.UsageError("sync periods and --full-sync-batch must be positive")
    logs.configure("proxy", level=log_level, node=node_name)
    config = ProxierConfig(
        node_name=node_name, mode=mode, cluster_cidr=cluster_cidr, min_sync_period=min_sync_period,
        sync_period=sync_period, flush_check_period=flush_check_period, full_sync_batch=full_sync_batch, netns=netns,
        allow_root_netns=allow_root_netns, metrics_port=metrics_port, metrics_address=metrics_address,
    )
    try:
        if cleanup:
            removed = asyncio.run(cleanup_rules(config))
            click.echo(f"removed {removed} chain(s)")
            return
        # Checked before anything else runs, so a refusal touches nothing.
        check_namespace(config)
    except (RootNamespaceError, *SyncErrors) as e:
        _fail(str(e))

    async def main() -> None:
        async with Client(conn) as client:
            await Proxier(client, config).run()

    serve(main())


COMMANDS: list[click.Command] = [proxy]
