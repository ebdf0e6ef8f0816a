"""`kubelite speaker`: announces LoadBalancer addresses on the node network (ARP), one per node."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import click

from api import logs
from cli.common import connection_options
from cli.daemons import serve
from client.api import Client
from client.config import ClientConfig


@click.command()
@connection_options
@click.option("--node-name", required=True, help="the node this speaker runs on")
@click.option("--node-ip", required=True, help="the node's address; ARP is answered on the interface holding it")
@click.option("--interface", default="", help="answer ARP on this interface instead")
@click.option("--resync", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="look at every Service at least this often (seconds)")
@click.option("--allow-root-netns", is_flag=True,
              help="allow answering ARP in the machine's root network namespace (a VM that is itself the node)")
@click.option("--log-level", default="info")
def speaker(conn: ClientConfig, node_name: str, node_ip: str, interface: str, resync: float,
            allow_root_netns: bool, log_level: str) -> None:
    """Answer ARP for the LoadBalancer addresses this node announces, and take them over from failed nodes."""
    from speaker.speaker import RootNamespaceError, Speaker, SpeakerConfig, check

    try:
        ipaddress.IPv4Address(node_ip)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--node-ip") from None
    logs.configure("speaker", level=log_level, node=node_name)
    config = SpeakerConfig(node_name=node_name, node_ip=node_ip, interface=interface, resync=resync,
                           allow_root_netns=allow_root_netns)
    try:
        # Checked before anything else runs, so a refusal touches nothing.
        interface_ = check(config)
    except (RootNamespaceError, LookupError, OSError, subprocess.SubprocessError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)

    async def main() -> None:
        async with Client(conn) as client:
            await Speaker(client, config, interface_).run()

    try:
        serve(main())
    except OSError as e:  # the interface vanished or refused a raw socket
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


COMMANDS: list[click.Command] = [speaker]
