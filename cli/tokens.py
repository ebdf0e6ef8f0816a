"""`kubelite token create|list|delete`: join tokens, with which nodes join the cluster.

`create` prints K10<sha256 of the cluster CA>::<id>.<secret>; the cluster
keeps only the id, a hash of the secret and the expiry (a BootstrapToken),
so the token is shown once and never again. The CA's hash comes from the
CA this client trusts (the config file's certificate-authority).
"""

from __future__ import annotations

import datetime

import click

from api import kinds
from api.errors import NotFoundError
from cli import printers
from cli.common import CliError, connection_options, with_client
from cli.pods import parse_duration
from client import pki, tokens
from client.api import Client
from client.config import ClientConfig


@click.group()
def token() -> None:
    """Join tokens: `kubelite bootstrap node --token-file FILE` joins a node with one."""


def _ca_hash(conn: ClientConfig) -> str:
    if conn.insecure_plaintext:
        raise CliError("a join token pins the cluster CA, and this cluster is reached without TLS")
    try:
        pem = conn.ca_data or open(conn.ca_file, "rb").read()  # noqa: SIM115
        return pki.ca_hash(pki.load_cert(pem, conn.ca_file or "certificate-authority-data"))
    except (OSError, pki.CertificateError) as e:
        raise CliError(f"cannot read the cluster CA ({conn.ca_file or 'none configured'}): {e}") from None


@token.command("create")
@click.option("--ttl", default="24h", show_default=True, help="how long the token works, e.g. 30m, 2h (0: forever)")
@click.option("--description", default="", help="what the token is for (shown by `token list`)")
@connection_options
def create(ttl: str, description: str, conn: ClientConfig) -> None:
    """Create a join token and print it (it is not shown again)."""
    seconds = parse_duration(ttl)

    async def go(c: Client) -> tokens.JoinToken:
        join = tokens.generate(_ca_hash(conn))
        lifetime = datetime.timedelta(seconds=seconds) if seconds else None
        await c.create(tokens.token_object(join, ttl=lifetime, description=description))
        return join

    click.echo(str(with_client(conn, go)))


@token.command("list")
@connection_options
def list_(conn: ClientConfig) -> None:
    """Join tokens: id, time left, expiry, description (never the secret)."""

    async def go(c: Client) -> None:
        items = (await c.list("bootstraptokens")).items
        kind = kinds.lookup("BootstrapToken")
        rows = [printers.row(t, wide=False, namespaced=False) for t in items]
        click.echo(printers.table(rows, printers.headers(kind, wide=False, namespaced=False)) or "No join tokens.")

    with_client(conn, go)


@token.command("delete")
@click.argument("ids", nargs=-1, required=True)
@connection_options
def delete(ids: tuple[str, ...], conn: ClientConfig) -> None:
    """Delete join tokens by id (or whole token): nodes can no longer join with them."""
    names = []
    for value in ids:
        try:
            names.append(tokens.parse(value).id)
        except tokens.TokenFormatError:
            names.append(value)

    async def go(c: Client) -> None:
        missing = []
        for name in names:
            try:
                await c.delete("bootstraptokens", name)
                click.echo(f'bootstraptoken "{name}" deleted')
            except NotFoundError:
                missing.append(name)
        if missing:
            raise CliError(f"no join token {', '.join(missing)}")

    with_client(conn, go)


COMMANDS: list[click.Command] = [token]
