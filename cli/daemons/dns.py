"""`kubelite dns`: the cluster DNS add-on."""

from __future__ import annotations

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
@click.option("--listen", default="0.0.0.0:53", show_default=True, help="IP:PORT to answer on, UDP and TCP")
@click.option("--domain", default="cluster.local", show_default=True, help="the cluster domain")
@click.option("--ttl", type=int, default=5, show_default=True, help="TTL of answers (seconds)")
@click.option("--publish", default="kube-system/kube-dns", show_default=True,
              help="NAMESPACE/NAME of the Endpoints to keep this server's address in ('' for none)")
@click.option("--advertise-address", default="",
              help="the address to publish (default: the --listen IP)")
@click.option("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
@click.option("--metrics-address", default="127.0.0.1", show_default=True, help="address the metrics port binds")
@click.option("--log-level", default="info")
def dns(conn: ClientConfig, listen: str, domain: str, ttl: int, publish: str, advertise_address: str,
        metrics_port: int, metrics_address: str, log_level: str) -> None:
    """Answer DNS queries for the cluster's Services (cluster add-on behind the kube-dns Service)."""
    from proxy.dns import DnsConfig, DnsServer, check_config, split_host_port

    try:
        host, _ = split_host_port(listen)
        ipaddress.ip_address(host)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--listen") from None
    if publish and publish.count("/") != 1:
        raise click.BadParameter("expected NAMESPACE/NAME", param_hint="--publish")
    config = DnsConfig(listen=listen, domain=domain, ttl=ttl, publish=publish, advertise_address=advertise_address,
                       metrics_port=metrics_port, metrics_address=metrics_address)
    try:
        check_config(config)
    except ValueError as e:
        _fail(str(e))
    logs.configure("dns", level=log_level)

    async def main() -> None:
        async with Client(conn) as client:
            await DnsServer(client, config).run()

    serve(main())


COMMANDS: list[click.Command] = [dns]
