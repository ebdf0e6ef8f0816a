"""`images`: build kubelite's own OCI images and load them into containerd."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from client.config import current_cluster
from deploy.node import images as imagelib


@click.group()
def images() -> None:
    """Build and load kubelite's images (pause, busybox) without a registry."""


@images.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=imagelib.DEFAULT_CACHE_DIR, show_default=True, help="Cache directory for the tarballs.")
def build(out: Path) -> None:
    """Build the image tarballs (skipped when their inputs are unchanged)."""
    try:
        built = imagelib.build_all(out)
    except imagelib.ImageError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, path in built.items():
        click.echo(f"{name}\t{path}")


@images.command()
@click.argument("tarballs", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--address", "-a", "addresses", multiple=True,
              help="containerd socket; repeat for several nodes (default: every node of the local cluster).")
@click.option("--name", "cluster", default=None, callback=lambda ctx, param, value: current_cluster(value),
              help="local cluster whose nodes get the images when no --address is given "
                   "(default: the config file's current cluster)")
@click.option("--namespace", "-n", default="k8s.io", show_default=True, help="containerd namespace (CRI uses k8s.io).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=imagelib.DEFAULT_CACHE_DIR,
              show_default=True, help="Where to build the default images when no TARBALL is given.")
def load(tarballs: tuple[Path, ...], addresses: tuple[str, ...], cluster: str, namespace: str,
         cache: Path) -> None:
    """Import OCI image-layout tarballs (default: kubelite's own, built if needed) into every node."""
    if not addresses:
        addresses = _cluster_sockets(cluster)
    try:
        paths = list(tarballs) or list(imagelib.build_all(cache).values())
        asyncio.run(_load(paths, addresses, namespace))
    except imagelib.ImageError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"loaded {len(paths)} image(s) into {len(addresses)} containerd(s)")


def _cluster_sockets(cluster: str) -> tuple[str, ...]:
    """The containerd socket of every node of local cluster `cluster`."""
    from deploy.lab.cluster import find_running, node_dir

    running = find_running(cluster)
    if running is None or not running.nodes:
        raise click.ClickException(f"cluster {cluster!r} is not up: start it with `kubelite up --name {cluster}` "
                                   f"or name containerd sockets with --address")
    return tuple(str(node_dir(running.plan, n.role) / "containerd" / "run" / "containerd.sock")
                 for n in running.plan.nodes)


async def _load(paths: list[Path], addresses: tuple[str, ...], namespace: str) -> None:
    """Every image into every containerd at once; all failures reported together."""
    results = await asyncio.gather(
        *(imagelib.import_image(p, a, namespace) for a in addresses for p in paths), return_exceptions=True
    )
    errors = [str(r) for r in results if isinstance(r, imagelib.ImageError)]
    if errors:
        raise imagelib.ImageError("\n".join(errors))
    for r in results:
        if isinstance(r, BaseException):
            raise r


@click.command()
@click.option("--image-dir", type=click.Path(file_okay=False, path_type=Path), default=imagelib.DEFAULT_CACHE_DIR,
              show_default=True, help="the image tarballs to serve")
@click.option("--listen", default="127.0.0.1:5000", show_default=True, help="host:port")
@click.option("--tls-cert-file", default="", help="the registry's serving certificate (signed by the cluster CA)")
@click.option("--tls-private-key-file", default="", help="its key")
@click.option("--client-ca-file", default="", help="clients must present a certificate from this CA")
@click.option("--log-level", default="info")
def registry(image_dir: Path, listen: str, tls_cert_file: str, tls_private_key_file: str, client_ca_file: str,
             log_level: str) -> None:
    """Serve the image tarballs as a read-only registry (the lab's mirror of docker.io and registry.k8s.io),
    over mutual TLS; without TLS only on loopback."""
    import ipaddress
    import ssl

    from api import logs
    from cli.daemons import serve
    from deploy.node import registry as registrylib

    host, _, port = listen.rpartition(":")
    given = [f for f, v in (("--tls-cert-file", tls_cert_file), ("--tls-private-key-file", tls_private_key_file),
                            ("--client-ca-file", client_ca_file)) if v]
    if given and len(given) != 3:
        raise click.UsageError("mutual TLS needs all of --tls-cert-file, --tls-private-key-file, --client-ca-file")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not given and not loopback:
        raise click.UsageError(f"--listen {listen} is not loopback: give --tls-cert-file, --tls-private-key-file "
                               "and --client-ca-file (mutual TLS), or listen on loopback")
    logs.configure("registry", level=log_level)
    tls = registrylib.RegistryTLS(tls_cert_file, tls_private_key_file, client_ca_file) if given else None
    try:
        server = registrylib.serve(image_dir, host, int(port), tls=tls)
    except (OSError, ssl.SSLError) as e:
        raise click.ClickException(f"registry: {e}") from None

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            server.shutdown()

    serve(run())


COMMANDS: list[click.Command] = [images, registry]
