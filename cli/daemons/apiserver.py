"""`kubelite apiserver`: the API over etcd."""

from __future__ import annotations

import sys

import click

from api import logs
from apiserver.storage import limits
from cli.daemons import serve
from cli.pods import parse_duration


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.command()
@click.option("--etcd-servers", default="https://127.0.0.1:2379", show_default=True,
              help="comma-separated etcd client URLs (1 or 3 members)")
@click.option("--etcd-cafile", default="", help="CA of etcd's serving certificate")
@click.option("--etcd-certfile", default="", help="client certificate presented to etcd")
@click.option("--etcd-keyfile", default="", help="its key")
@click.option("--listen", multiple=True, default=["127.0.0.1:6443"], show_default=True,
              help="serve the API here with mutual TLS: host:port or unix:///path (repeatable)")
@click.option("--token-listen", multiple=True, default=[],
              help="also serve TLS without client certificates here, for bearer and join tokens only (repeatable)")
@click.option("--rest-listen", multiple=True, default=[],
              help="also serve Kubernetes' REST API (kubectl) here, HTTPS under the same certificate: host:port or "
                   "unix:///path (repeatable); a client certificate of the cluster CA or a bearer token names the "
                   "caller")
@click.option("--tls-cert-file", default="", help="the apiserver's serving certificate")
@click.option("--tls-private-key-file", default="", help="its key")
@click.option("--client-ca-file", default="", help="clients' certificates must be signed by this CA")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help='users\' bearer tokens: token,user,uid,"group1,group2" per line (accepted on --token-listen)')
@click.option("--kubelet-certificate-authority", default="", help="CA of the kubelets' serving certificates")
@click.option("--kubelet-client-certificate", default="", help="client certificate presented to kubelets")
@click.option("--kubelet-client-key", default="", help="its key")
@click.option("--cluster-signing-cert-file", default="", help="the cluster CA, which signs nodes' certificates")
@click.option("--cluster-signing-key-file", default="", help="its key")
@click.option("--cluster-signing-duration", default="8760h", show_default=True,
              help="lifetime of the certificates signed for nodes (e.g. 8760h, 60s)")
@click.option("--service-account-signing-key-file", default="",
              help="EC P-256 private key that signs ServiceAccount tokens (none: no tokens are issued)")
@click.option("--service-account-key-file", multiple=True, default=[],
              help="public (or private) keys ServiceAccount tokens are checked with (repeatable; default: the "
                   "signing key's)")
@click.option("--service-account-issuer", default="https://kubernetes.default.svc.cluster.local",
              show_default=True, help="the tokens' iss claim")
@click.option("--api-audiences", default="",
              help="audiences (comma-separated) a token must name to authenticate here; default: the issuer")
@click.option("--insecure-plaintext", is_flag=True,
              help="TESTS AND BENCHMARKS ONLY: no TLS anywhere, every caller is cluster admin; loopback and unix "
                   "sockets only")
@click.option("--insecure-plaintext-on-the-network-for-anyone", "plaintext_network", is_flag=True,
              help="allow --insecure-plaintext on addresses other hosts reach: anyone there is cluster admin")
@click.option("--no-batch-calls", "no_batch_calls", is_flag=True,
              help="BENCHMARKS AND TESTS ONLY: answer CreateMany and BindMany UNIMPLEMENTED, as servers before them "
                   "did (clients then send one Create or Bind per object)")
@click.option("--service-cidr", default="10.96.0.0/16", show_default=True)
@click.option("--node-port-range", default="30000-32767", show_default=True)
@click.option("--lb-pool", default="",
              help="LoadBalancer addresses: CIDRs or first-last ranges, comma-separated (none: no addresses)")
@click.option("--service-external-ip-cidrs", default="",
              help="CIDRs (comma-separated) a Service's spec.externalIPs may come from; none: externalIPs are "
                   "refused")
@click.option("--default-toleration-seconds", type=int, default=1, show_default=True,
              help="how long pods tolerate an unreachable or not-ready node")
@click.option("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
@click.option("--metrics-address", default="127.0.0.1", show_default=True, help="address the metrics port binds")
@click.option("--etcd-max-txn-ops", type=int, default=limits.MAX_TXN_OPS, show_default=True,
              help="etcd's --max-txn-ops: no transaction holds more operations")
@click.option("--etcd-max-request-bytes", type=int, default=limits.MAX_REQUEST_BYTES, show_default=True,
              help="etcd's --max-request-bytes: no transaction is larger")
@click.option("--max-object-bytes", type=int, default=limits.MAX_OBJECT_BYTES, show_default=True,
              help="objects larger than this are refused (RESOURCE_EXHAUSTED)")
@click.option("--encryption-provider-config", type=click.Path(dir_okay=False), default="",
              help="EncryptionConfiguration file (aesgcm, identity); without one, Secrets are refused")
@click.option("--authorization-mode", default="Node,RBAC", show_default=True,
              type=click.Choice(["Node,RBAC", "RBAC,Node", "AlwaysAllow"]),
              help="AlwaysAllow lets every authenticated caller do anything: for benchmarks' baselines only")
@click.option("--audit-log-path", default="", type=click.Path(dir_okay=False),
              help="one JSON line per mutating, exec/log or denied request (file 0600); empty: no audit log")
@click.option("--audit-log-maxsize", default=100, show_default=True, type=click.IntRange(1),
              help="megabytes before the audit log is rotated")
@click.option("--audit-log-maxbackup", default=5, show_default=True, type=click.IntRange(0),
              help="rotated audit logs kept")
@click.option("--log-level", default="info")
def apiserver(etcd_servers: str, etcd_cafile: str, etcd_certfile: str, etcd_keyfile: str, listen: tuple[str, ...],
              token_listen: tuple[str, ...], rest_listen: tuple[str, ...], tls_cert_file: str,
              tls_private_key_file: str, client_ca_file: str,
              token_file: str | None, kubelet_certificate_authority: str, kubelet_client_certificate: str,
              kubelet_client_key: str, cluster_signing_cert_file: str, cluster_signing_key_file: str,
              cluster_signing_duration: str, service_account_signing_key_file: str,
              service_account_key_file: tuple[str, ...], service_account_issuer: str, api_audiences: str,
              insecure_plaintext: bool, plaintext_network: bool, no_batch_calls: bool, service_cidr: str,
              node_port_range: str, lb_pool: str, service_external_ip_cidrs: str, default_toleration_seconds: int,
              metrics_port: int,
              metrics_address: str, etcd_max_txn_ops: int, etcd_max_request_bytes: int, max_object_bytes: int,
              encryption_provider_config: str, authorization_mode: str, audit_log_path: str, audit_log_maxsize: int,
              audit_log_maxbackup: int, log_level: str) -> None:
    """Serve the API over etcd."""
    import datetime

    from apiserver.audit import AuditConfig
    from apiserver.authn import TokenFileError
    from apiserver.kubelet_proxy import KubeletTLS
    from apiserver.nodecerts import SignerConfig
    from apiserver.registry import Config as RegistryConfig
    from apiserver.server import ApiServer, Config, ConfigError, ServingTLS
    from apiserver.serviceaccounts import TokenConfig
    from apiserver.storage.etcd import EtcdTLS
    from client.pki import CertificateError

    logs.configure("apiserver", level=log_level)
    try:
        from apiserver.allocator import Ranges
        from apiserver.serviceip import parse_cidrs

        Ranges.parse(service_cidr, node_port_range, lb_pool)
        parse_cidrs(service_external_ip_cidrs)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    try:
        etcd_limits = limits.Limits(etcd_max_txn_ops, etcd_max_request_bytes, max_object_bytes)
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    def group(flags: dict[str, str], what: str) -> bool:
        given = [f for f, v in flags.items() if v]
        if given and len(given) != len(flags):
            raise click.UsageError(f"{what} needs all of {', '.join(flags)} (missing: "
                                   f"{', '.join(f for f in flags if f not in given)})")
        return bool(given)

    serving = group({"--tls-cert-file": tls_cert_file, "--tls-private-key-file": tls_private_key_file,
                     "--client-ca-file": client_ca_file}, "serving TLS")
    etcd = group({"--etcd-cafile": etcd_cafile, "--etcd-certfile": etcd_certfile, "--etcd-keyfile": etcd_keyfile},
                 "TLS to etcd")
    kubelets = group({"--kubelet-certificate-authority": kubelet_certificate_authority,
                      "--kubelet-client-certificate": kubelet_client_certificate,
                      "--kubelet-client-key": kubelet_client_key}, "TLS to kubelets")
    group({"--cluster-signing-cert-file": cluster_signing_cert_file,
           "--cluster-signing-key-file": cluster_signing_key_file}, "signing nodes' certificates")
    if parse_duration(cluster_signing_duration) <= 0:
        raise click.BadParameter("must be positive", param_hint="--cluster-signing-duration")
    if encryption_provider_config:
        from apiserver import encryption

        try:
            encryption.load(encryption_provider_config)
        except encryption.EncryptionConfigError as e:
            raise click.BadParameter(str(e), param_hint="--encryption-provider-config") from None
    config = Config(
        etcd_servers=etcd_servers, etcd_tls=EtcdTLS(etcd_cafile, etcd_certfile, etcd_keyfile) if etcd else None,
        listen=list(listen), token_listen=list(token_listen), rest_listen=list(rest_listen),
        registry=RegistryConfig(service_cidr=service_cidr, node_port_range=node_port_range, lb_pool=lb_pool,
                                toleration_seconds=default_toleration_seconds,
                                external_ip_cidrs=service_external_ip_cidrs),
        tls=ServingTLS(tls_cert_file, tls_private_key_file, client_ca_file) if serving else None,
        token_file=token_file or "",
        kubelet_tls=KubeletTLS(kubelet_certificate_authority, kubelet_client_certificate, kubelet_client_key)
        if kubelets else None,
        signer=SignerConfig(cluster_signing_cert_file, cluster_signing_key_file,
                            datetime.timedelta(seconds=parse_duration(cluster_signing_duration))),
        insecure_plaintext=insecure_plaintext, insecure_plaintext_network=plaintext_network,
        batch_calls=not no_batch_calls,
        metrics_port=metrics_port, metrics_address=metrics_address, limits=etcd_limits,
        encryption_config=encryption_provider_config, authorization_mode=authorization_mode,
        audit=AuditConfig(audit_log_path, audit_log_maxsize, audit_log_maxbackup),
        service_accounts=TokenConfig(service_account_signing_key_file, tuple(service_account_key_file),
                                     service_account_issuer,
                                     tuple(a.strip() for a in api_audiences.split(",") if a.strip())),
    )
    try:
        server = ApiServer(config)
    except (ConfigError, TokenFileError, CertificateError, ValueError, OSError) as e:
        _fail(str(e))
    serve(server.run())


COMMANDS: list[click.Command] = [apiserver]
