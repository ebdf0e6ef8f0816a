"""`kubelite kubeconfig`: a kubeconfig for kubectl and Kubernetes' client libraries, with this CLI's credentials
(the cluster CA and the user's client certificate, or its bearer token) and the cluster's REST API URL."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import CliError, run
from client import config as client_config
from client import kubeconfig, pki


def _read(data: bytes, path: str, what: str) -> bytes:
    if data:
        return data
    if not path:
        raise CliError(f"the cluster's config names no {what}")
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"cannot read the {what} {path}: {e.strerror}") from None


@click.command("kubeconfig")
@click.option("--rest-server", default=None,
              help="the REST API's URL, https://host:port (default: the cluster's rest-server in the config file, "
                   "which `kubelite up` writes)")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="write the kubeconfig to this file (mode 0600) instead of printing it")
def kubeconfig_command(rest_server: str | None, output: str | None) -> None:
    """Print a kubeconfig that kubectl reads: `kubelite kubeconfig -o ~/.kube/config; kubectl get nodes`."""
    run(_kubeconfig(rest_server, output))


async def _kubeconfig(rest_server: str | None, output: str | None) -> None:
    """The command's work; its failures are one line (cli.common.run)."""
    try:
        conn = client_config.resolve()
        entry = (client_config.read_file().get("clusters") or {}).get(conn.cluster) or {}
    except client_config.ConfigError as e:
        raise CliError(str(e)) from None
    server = rest_server or entry.get("rest-server", "")
    if not server:
        raise CliError(f"cluster {conn.cluster or '(none)'} has no rest-server in {client_config.config_path()}: "
                       f"give --rest-server https://HOST:PORT (the apiserver's --rest-listen)")
    if not server.startswith("https://"):
        raise CliError(f"--rest-server {server}: the REST API is served over HTTPS (https://HOST:PORT)")
    if conn.insecure_plaintext:
        raise CliError("this cluster is reached without TLS; a kubeconfig needs its CA and a client certificate")
    ca = _read(conn.ca_data, conn.ca_file, "certificate-authority")
    if conn.token_file and not (conn.cert_file or conn.cert_data):
        token = _read(b"", conn.token_file, "token-file").decode().strip()
        text = kubeconfig.render_token(server, ca, token, cluster=conn.cluster or "kubelite")
    else:
        text = kubeconfig.render(server, ca, _read(conn.cert_data, conn.cert_file, "client-certificate"),
                                 _read(conn.key_data, conn.key_file, "client-key"), cluster=conn.cluster or "kubelite")
    if output:
        pki.write_private(Path(output), text.encode())
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


COMMANDS: list[click.Command] = [kubeconfig_command]
