"""What every CLI verb shares: connection flags, running a coroutine, one-line errors."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from api import text
from api.errors import ApiError, CertificateError, UnavailableError
from client.api import Client
from client.config import ClientConfig, ConfigError, current_cluster, resolve
from client.pki import CertificateError as BadCertificateError

T = TypeVar("T")


class CliError(Exception):
    """A user error found before talking to the server; printed as `error: ...`."""


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the connection flags (server, cluster, credentials files) and pass the resolved ClientConfig as `conn`.

    Credentials are files, never values on the command line: a certificate and key, or a bearer token file."""

    @click.option("--server", "-s", envvar="KUBELITE_SERVER", default=None,
                  help="apiserver address (host:port or unix:///path); default from the config file")
    @click.option("--cluster", envvar="KUBELITE_CLUSTER", default=None, help="cluster name in the config file")
    @click.option("--kubeconfig", envvar="KUBELITE_CONFIG", default=None,
                  help="config file to read (default ~/.kubelite/config.yaml)")
    @click.option("--certificate-authority", "ca_file", envvar="KUBELITE_CA", default=None,
                  help="the cluster CA's certificate: checks the apiserver's")
    @click.option("--client-certificate", "cert_file", default=None, help="this client's certificate file")
    @click.option("--client-key", "key_file", default=None, help="this client's key file")
    @click.option("--token-file", envvar="KUBELITE_TOKEN_FILE", default=None,
                  help="present the bearer token in this file (to the apiserver's token port) instead of a certificate")
    @click.option("--as", "as_user", default=None,
                  help="act as this user (the caller needs the impersonate verb, as cluster admins have)")
    @click.option("--as-group", "as_groups", multiple=True, help="with --as: act in this group too (repeatable)")
    @functools.wraps(fn)
    def wrapper(*args: Any, server: str | None, cluster: str | None, kubeconfig: str | None, ca_file: str | None,
                cert_file: str | None, key_file: str | None, token_file: str | None, as_user: str | None,
                as_groups: tuple[str, ...], **kwargs: Any) -> Any:
        if as_groups and not as_user:
            raise click.UsageError("--as-group needs --as")
        try:
            conn = resolve(server, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                           token_file=token_file, cluster=cluster, kubeconfig=kubeconfig)
        except ConfigError as e:
            click.echo(f"error: {text.escape(str(e))}", err=True)
            sys.exit(1)
        if as_user:
            conn = dataclasses.replace(conn, impersonate_user=as_user, impersonate_groups=as_groups)
        kwargs["conn"] = conn
        return fn(*args, **kwargs)

    return wrapper


def run(coro: Coroutine[Any, Any, T], conn: ClientConfig | None = None) -> T:
    """Run a CLI coroutine; turn every error into one line on stderr and a non-zero exit."""
    try:
        return asyncio.run(coro)
    except CertificateError as e:
        where = f" at {conn.server}" if conn else ""
        click.echo(f"error: cannot talk to the apiserver{where}: {text.escape(e.message)}", err=True)
        sys.exit(1)
    except (ConfigError, BadCertificateError) as e:
        click.echo(f"error: {text.escape(str(e))}", err=True)
        sys.exit(1)
    except UnavailableError as e:
        where = f" at {conn.server}" if conn else ""
        detail = e.message.splitlines()[0] if e.message else "unavailable"
        click.echo(f"error: cannot reach the apiserver{where}: {detail} (is the cluster up? `kubelite up` starts a "
                   f"local one; --server chooses another)", err=True)
        sys.exit(1)
    except ApiError as e:
        click.echo(f"Error from server ({e.reason}): {text.escape(e.message)}", err=True)
        sys.exit(1)
    except CliError as e:
        click.echo(f"error: {text.escape(str(e))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def with_client(conn: ClientConfig, fn: Callable[[Client], Awaitable[T]]) -> T:
    async def go() -> T:
        async with Client(conn) as client:
            return await fn(client)

    return run(go(), conn)


def local_cluster_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--name for commands acting on a local cluster: by default the config file's current cluster."""

    def current(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
        return current_cluster(value)

    return click.option("--name", default=None, callback=current,
                        help="local cluster (default: the config file's current cluster)")(fn)


def namespace_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--namespace", "-n", default="", help="namespace (default: default)")(fn)
