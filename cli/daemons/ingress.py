"""`kubelite ingress`: the ingress controller (nginx), one per chosen node."""

from __future__ import annotations

import ipaddress
import shutil
import sys
from pathlib import Path
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
@click.option("--node-name", required=True, help="the node this controller runs on (events name it)")
@click.option("--state-dir", type=click.Path(path_type=Path), required=True,
              help="where nginx.conf, the certificates, the pid file and nginx's temp files live")
@click.option("--publish-address", default="",
              help="the address written into the served Ingresses' status.loadBalancer (default: none)")
@click.option("--http-port", type=click.IntRange(1, 65535), default=80, show_default=True)
@click.option("--https-port", type=click.IntRange(1, 65535), default=443, show_default=True)
@click.option("--listen-address", default="0.0.0.0", show_default=True, help="the address nginx listens on")
@click.option("--controller-name", default="kubelite.dev/ingress-nginx", show_default=True,
              help="serve Ingresses of the IngressClasses naming this controller")
@click.option("--watch-ingress-without-class", is_flag=True, help="also serve Ingresses that name no class")
@click.option("--netns", default="",
              help="run nginx in this named network namespace (or /path) instead of this process's own")
@click.option("--allow-root-netns", is_flag=True,
              help="allow nginx in the machine's root network namespace (a VM that is itself the node)")
@click.option("--debounce", type=float, default=0.1, show_default=True,
              help="render once changes stop for this long (seconds)")
@click.option("--max-delay", type=float, default=1.0, show_default=True,
              help="but at most this long after the first change (seconds)")
@click.option("--log-level", default="info")
def ingress(conn: ClientConfig, node_name: str, state_dir: Path, publish_address: str, http_port: int,
            https_port: int, listen_address: str, controller_name: str, watch_ingress_without_class: bool, netns: str,
            allow_root_netns: bool, debounce: float, max_delay: float, log_level: str) -> None:
    """Serve the cluster's Ingresses with nginx: Host and path routing to Service endpoints, TLS by SNI."""
    from ingress.controller import IngressConfig, IngressController
    from proxy import netns as namespaces

    for value, flag in ((listen_address, "--listen-address"), (publish_address, "--publish-address")):
        if value:
            try:
                ipaddress.IPv4Address(value)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint=flag) from None
    if debounce < 0 or max_delay <= 0 or debounce > max_delay:
        raise click.UsageError("--debounce must be >= 0 and at most --max-delay, which must be positive")
    if shutil.which("nginx") is None:
        _fail("nginx is not installed (apt-get install nginx)")
    where = namespaces.netns_path(netns) if netns else "/proc/self/ns/net"
    verdict = namespaces.check(where)
    if verdict.root and not allow_root_netns:
        _fail(f"refusing to run nginx in {where}: {verdict.reason}; the ingress controller runs inside a node's "
              "network namespace (pass --allow-root-netns on a machine that is itself the node)")
    logs.configure("ingress", level=log_level, node=node_name)
    config = IngressConfig(
        node_name=node_name, state_dir=state_dir.resolve(), publish_address=publish_address,
        netns=namespaces.netns_path(netns) if netns else "", http_port=http_port, https_port=https_port,
        listen_address=listen_address, controller=controller_name,
        watch_without_class=watch_ingress_without_class, debounce=debounce, max_delay=max_delay,
    )

    async def main() -> None:
        async with Client(conn) as client:
            await IngressController(client, config).run()

    serve(main())


COMMANDS: list[click.Command] = [ingress]
