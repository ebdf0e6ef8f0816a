"""`kubelite apiserver`: the API over etcd."""

from __future__ import annotations

import click

from api import logs
from apiserver.storage import limits
from cli.daemons import serve


@click.command()
@click.option("--etcd-servers", default="http://127.0.0.1:2379", show_default=True,
              help="comma-separated etcd client URLs (1 or 3 members)")
@click.option("--listen", multiple=True, default=["127.0.0.1:6443"], show_default=True,
              help="address to serve on: host:port or unix:///path (repeatable)")
@click.option("--service-cidr", default="10.96.0.0/16", show_default=True)
@click.option("--node-port-range", default="30000-32767", show_default=True)
@click.option("--lb-pool", default="", help="CIDR from which LoadBalancer services get addresses")
@click.option("--default-toleration-seconds", type=int, default=2, show_default=True,
              help="how long pods tolerate an unreachable or not-ready node")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="file holding the bearer token clients must present")
@click.option("--tls-cert-file", default="", help="serve TLS with this certificate")
@click.option("--tls-private-key-file", default="")
@click.option("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
@click.option("--etcd-max-txn-ops", type=int, default=limits.MAX_TXN_OPS, show_default=True,
              help="etcd's --max-txn-ops: no transaction holds more operations")
@click.option("--etcd-max-request-bytes", type=int, default=limits.MAX_REQUEST_BYTES, show_default=True,
              help="etcd's --max-request-bytes: no transaction is larger")
@click.option("--max-object-bytes", type=int, default=limits.MAX_OBJECT_BYTES, show_default=True,
              help="objects larger than this are refused (RESOURCE_EXHAUSTED)")
@click.option("--encryption-provider-config", type=click.Path(dir_okay=False), default="",
              help="EncryptionConfiguration file (aesgcm, identity); without one, Secrets are refused")
@click.option("--log-level", default="info")
def apiserver(etcd_servers: str, listen: tuple[str, ...], service_cidr: str, node_port_range: str, lb_pool: str,
              default_toleration_seconds: int, token_file: str | None, tls_cert_file: str, tls_private_key_file: str,
              metrics_port: int, etcd_max_txn_ops: int, etcd_max_request_bytes: int, max_object_bytes: int,
              encryption_provider_config: str, log_level: str) -> None:
    """Serve the API over etcd."""
    from pathlib import Path

    from apiserver.registry import Config as RegistryConfig
    from apiserver.server import ApiServer, Config

    logs.configure("apiserver", level=log_level)
    token = Path(token_file).read_text().strip() if token_file else ""
    try:
        from apiserver.allocator import Ranges

        Ranges.parse(service_cidr, node_port_range, lb_pool)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    try:
        etcd_limits = limits.Limits(etcd_max_txn_ops, etcd_max_request_bytes, max_object_bytes)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if encryption_provider_config:
        from apiserver import encryption

        try:
            encryption.load(encryption_provider_config)
        except encryption.EncryptionConfigError as e:
            raise click.BadParameter(str(e), param_hint="--encryption-provider-config") from None
    config = Config(
        etcd_servers=etcd_servers, listen=list(listen),
        registry=RegistryConfig(service_cidr=service_cidr, node_port_range=node_port_range, lb_pool=lb_pool,
                                toleration_seconds=default_toleration_seconds),
        token=token, tls_cert=tls_cert_file, tls_key=tls_private_key_file, metrics_port=metrics_port,
        limits=etcd_limits, encryption_config=encryption_provider_config,
    )
    serve(ApiServer(config).run())


COMMANDS: list[click.Command] = [apiserver]
