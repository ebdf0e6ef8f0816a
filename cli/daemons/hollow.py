"""`kubelite hollow-nodes`: many kubelets with the fake runtime in one process, for benchmarks."""

from __future__ import annotations

from pathlib import Path

import click

from api import logs as logging_setup
from cli.common import connection_options
from cli.daemons import serve
from cli.daemons.kubelet import _labels, _quantity
from client.api import Client
from client.config import ClientConfig


@click.command("hollow-nodes")
@connection_options
@click.option("--count", type=int, required=True, help="how many hollow nodes")
@click.option("--prefix", default="hollow-", show_default=True, help="node names are <prefix><index>")
@click.option("--start-index", type=int, default=0, show_default=True)
@click.option("--pods-per-node", "max_pods", type=int, default=110, show_default=True, help="each node's pod capacity")
@click.option("--cpu", default="4", show_default=True, help="each node's cpu capacity")
@click.option("--memory", default="16Gi", show_default=True, help="each node's memory capacity")
@click.option("--lease-renew", type=float, default=0.5, show_default=True, help="seconds between Lease renewals")
@click.option("--node-labels", default="", help="extra labels on every hollow node: k=v,k2=v2")
@click.option("--control-dir", type=click.Path(path_type=Path), default=None,
              help="create <dir>/<node>.stop to stop a node (node loss), remove it to start the node again")
@click.option("--image-exits", "image_exits", multiple=True, metavar="IMAGE=CODE[@SECONDS]",
              help="containers of IMAGE exit with CODE after SECONDS (default 0) instead of running until stopped; "
                   "repeatable")
@click.option("--log-level", default="info")
def hollow_nodes(conn: ClientConfig, count: int, prefix: str, start_index: int, max_pods: int, cpu: str, memory: str,
                 lease_renew: float, node_labels: str, control_dir: Path | None, image_exits: tuple[str, ...],
                 log_level: str) -> None:
    """Run COUNT kubelets with the fake runtime in this one process (benchmarks)."""
    from kubelet.hollow import HollowCluster, HollowConfig
    from kubelet.runtime.fake import ImageBehavior

    behaviors = {}
    for item in image_exits:
        image, sep, rest = item.rpartition("=")
        code, _, after = rest.partition("@")
        try:
            if not sep or not image:
                raise ValueError
            behaviors[image] = ImageBehavior(exit_code=int(code), run_seconds=float(after or 0))
        except ValueError:
            raise click.BadParameter(f"{item!r}: use IMAGE=CODE[@SECONDS], e.g. busybox:1.35=0@1.5",
                                     param_hint="--image-exits") from None

    logging_setup.configure("hollow-nodes", level=log_level)
    config = HollowConfig(count=count, prefix=prefix, start_index=start_index, max_pods=max_pods,
                          cpu_milli=_quantity(cpu, "--cpu", milli=True),
                          memory=_quantity(memory, "--memory", milli=False), lease_renew=lease_renew,
                          control_dir=control_dir, labels=_labels(node_labels), behaviors=behaviors)

    async def go() -> None:
        client = Client(conn)
        try:
            await HollowCluster(client, config).run()
        finally:
            await client.close()

    serve(go())


COMMANDS: list[click.Command] = [hollow_nodes]
